//! Meridian's sans-IO NTP protocol core.
//!
//! This crate owns no socket, no clock, no thread and no randomness source. Time, received
//! bytes and random values come in as arguments; decisions go out as small action values that
//! the daemon (or the simulator) executes. See `docs/architecture.md` for the data flow.
#![forbid(unsafe_code)]

pub mod access;
pub mod association;
pub mod auth;
pub mod broadcast;
pub mod broadcast_system;
pub mod checks;
pub mod client;
pub mod discipline;
pub mod entropy;
pub mod filter;
pub mod gate;
pub mod keys;
pub mod leap;
pub mod mode6;
pub mod peer;
pub mod ratelimit;
pub mod report;
pub mod select;
pub mod server;
pub mod system;
pub mod system_peer;
mod system_poll;
pub mod time;
pub mod wire;

#[cfg(test)]
mod attack_rows_tests;
#[cfg(test)]
mod auth_rules_tests;
#[cfg(test)]
mod system_start_tests;
#[cfg(test)]
mod system_step_tests;
