//! Meridian's sans-IO NTP protocol core.
//!
//! This crate owns no socket, no clock, no thread and no randomness source. Time, received
//! bytes and random values come in as arguments; decisions go out as small action values that
//! the daemon (or the simulator) executes. See `docs/architecture.md` for the data flow.
#![forbid(unsafe_code)]

pub mod discipline;
pub mod filter;
pub mod report;
pub mod select;
pub mod time;
pub mod wire;
