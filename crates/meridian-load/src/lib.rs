//! meridian-load: a bounded NTP load generator for benchmarking servers on loopback or
//! between test network namespaces (198.18.0.0/15, 2001:2::/48).

pub mod args;
pub mod mix;
pub mod net;
pub mod run;
