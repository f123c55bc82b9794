//! `meridiand`: the Meridian NTP daemon.
#[allow(dead_code)]
mod config;

fn main() {}
