//! `meridiand`: the Meridian NTP daemon.
#[allow(dead_code)]
mod clock;
#[allow(dead_code)]
mod drift;

fn main() {}
