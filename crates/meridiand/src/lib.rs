//! The Meridian NTP daemon as a library: the binary `meridiand` is a thin command line over
//! [`runtime::Runtime`]; integration tests and tools reuse the modules directly.

pub mod auth;
pub mod caps;
pub mod clock;
pub mod config;
pub mod control;
pub mod drift;
pub mod entropy;
pub mod ifaddr;
pub mod ifname;
pub mod instance;
pub mod log;
pub mod metrics;
pub mod mode6;
pub mod netns;
pub mod requests;
pub mod runtime;
pub mod server_threads;
pub mod shared;
pub mod snapshot;
pub mod srcif;
pub mod startup;
pub mod udp;
