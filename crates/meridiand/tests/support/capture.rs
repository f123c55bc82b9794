//! Capturing NTP packets on the wire in a test namespace (`ntp_capture.py`, AF_PACKET, no
//! tcpdump needed) and reading what was seen: addresses, ports, TOS, NTP mode and stratum.
//!
//! Include it next to the harness with `#[path = "support/capture.rs"] mod capture;`.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{netns::Host, procs::Proc, wait_for};

/// One captured NTP datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Received on the interface (else sent through it).
    pub inbound: bool,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    /// IPv4 TOS byte or IPv6 traffic class.
    pub tos: u8,
    pub mode: u8,
    pub stratum: u8,
}

/// A capture running on one interface of one namespace until the test network is dropped.
pub struct Capture {
    log: PathBuf,
    proc: Proc,
}

impl Capture {
    /// Starts capturing on `iface` in `host`'s namespace (log `DIR/capture-TAG.log`); returns
    /// once the capture socket is open. Needs python3 (the caller checks).
    pub fn start(host: &Host, dir: &Path, iface: &str, tag: &str) -> Capture {
        let script = dir.join("ntp_capture.py");
        std::fs::write(&script, include_str!("ntp_capture.py")).expect("write ntp_capture.py");
        let log = dir.join(format!("capture-{tag}.log"));
        let proc = host.spawn(
            "python3",
            [
                script.to_string_lossy().as_ref(),
                "capture",
                log.to_string_lossy().as_ref(),
                iface,
            ],
            &dir.join(format!("capture-{tag}.out")),
        );
        let ready = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.starts_with("ready"))
        });
        assert!(ready, "capture on {iface} did not start: {}", proc.log());
        Capture { log, proc }
    }

    /// Everything captured so far, in order.
    pub fn packets(&self) -> Vec<Packet> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(parse)
            .collect()
    }

    pub fn is_running(&self) -> bool {
        self.proc.is_running()
    }
}

fn parse(line: &str) -> Option<Packet> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 9 || f[0] != "packet" {
        return None;
    }
    Some(Packet {
        inbound: f[1] == "in",
        src: f[2].parse().ok()?,
        sport: f[3].parse().ok()?,
        dst: f[4].parse().ok()?,
        dport: f[5].parse().ok()?,
        tos: f[6].parse().ok()?,
        mode: f[7].parse().ok()?,
        stratum: f[8].parse().ok()?,
    })
}
