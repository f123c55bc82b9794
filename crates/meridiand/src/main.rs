//! `meridiand`: the Meridian NTP daemon.
mod udp;
fn main() {}
