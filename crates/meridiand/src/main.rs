//! `meridiand`: the Meridian NTP daemon.
#[allow(dead_code)]
mod clock;
#[allow(dead_code)]
mod drift;
mod udp;
fn main() {}
