//! `meridiand`: the Meridian NTP daemon.
fn main() {}
