//! Plain layout of `meridianctl status`, after Comware's `display ntp-service status`.
//!
//! Comware 5's line order is kept, with Comware 7's `System peer:` and `Leap indicator:` lines
//! added. Comware reports the frequency of a 100 Hz system tick; a Linux clock has no such
//! tick, so `Nominal frequency` is that notional 100 Hz and `Actual frequency` is it scaled by
//! the frequency correction, and a `Frequency correction: x.xxx ppm` line gives the value the
//! two Hz lines are derived from.

use std::fmt::Write;

use meridian_proto::report::StatusReport;

use super::time::format_ntp_hex;

/// The notional tick Comware's frequency lines are based on.
const NOMINAL_HZ: f64 = 100.0;

/// Two leap-indicator bits as Comware 7 prints them, with their meaning.
fn leap_bits(leap: &str) -> String {
    let bits = match leap {
        "none" => "00",
        "add" => "01",
        "delete" => "10",
        "unsynchronized" => "11",
        _ => return leap.to_string(),
    };
    format!("{bits} ({leap})")
}

/// Renders the status report; `now_unix` only chooses the era of the reference time.
pub fn format_status(report: &StatusReport, now_unix: i64) -> String {
    let mut out = String::new();
    let state = if report.synchronized {
        "synchronized"
    } else {
        "unsynchronized"
    };
    let _ = writeln!(out, "Clock status: {state}");
    let _ = writeln!(out, "Clock stratum: {}", report.stratum);
    let peer = report.system_peer.as_deref().unwrap_or("none");
    let _ = writeln!(out, "System peer: {peer}");
    let _ = writeln!(out, "Reference clock ID: {}", report.reference_id);
    let _ = writeln!(out, "Leap indicator: {}", leap_bits(&report.leap));
    let _ = writeln!(out, "Nominal frequency: {NOMINAL_HZ:.4} Hz");
    let actual = NOMINAL_HZ * (1.0 + report.frequency_ppm * 1e-6);
    let _ = writeln!(out, "Actual frequency: {actual:.4} Hz");
    let _ = writeln!(
        out,
        "Frequency correction: {:+.3} ppm",
        report.frequency_ppm
    );
    let _ = writeln!(out, "Clock precision: 2^{}", report.precision_log2);
    let _ = writeln!(out, "Clock offset: {:.4} ms", report.offset_ms);
    let _ = writeln!(out, "Root delay: {:.2} ms", report.root_delay_ms);
    let _ = writeln!(out, "Root dispersion: {:.2} ms", report.root_dispersion_ms);
    let _ = writeln!(out, "Peer dispersion: {:.2} ms", report.peer_dispersion_ms);
    let _ = writeln!(
        out,
        "Reference time: {}",
        format_ntp_hex(&report.reference_time_ntp, now_unix)
    );
    if let Some(vpn) = &report.vpn_instance {
        let _ = writeln!(out, "VPN instance: {vpn}");
    }
    if let Some(c) = &report.server_counters {
        let _ = writeln!(out, "Requests received: {}", c.received);
        let _ = writeln!(out, "Requests answered: {}", c.answered);
        let total: u64 = c.dropped.values().sum();
        let reasons: Vec<String> = c
            .dropped
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        if reasons.is_empty() {
            let _ = writeln!(out, "Requests dropped: {total}");
        } else {
            let _ = writeln!(out, "Requests dropped: {total} ({})", reasons.join(", "));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn unsynchronized() -> StatusReport {
        StatusReport {
            synchronized: false,
            stratum: 16,
            reference_id: "none".into(),
            system_peer: None,
            vpn_instance: None,
            offset_ms: 0.0,
            root_delay_ms: 0.0,
            root_dispersion_ms: 0.0,
            peer_dispersion_ms: 0.0,
            frequency_ppm: 0.0,
            precision_log2: -20,
            leap: "unsynchronized".into(),
            reference_time: "1900-01-01T00:00:00Z".into(),
            reference_time_ntp: "00000000.00000000".into(),
            poll_log2: 6,
            clock_driver: "system".into(),
            server_counters: None,
        }
    }

    pub(crate) fn synchronized() -> StatusReport {
        StatusReport {
            synchronized: true,
            stratum: 2,
            reference_id: "3.0.1.32".into(),
            system_peer: Some("3.0.1.32".into()),
            vpn_instance: Some("vpn1".into()),
            offset_ms: 0.66,
            root_delay_ms: 27.47,
            root_dispersion_ms: 208.39,
            peer_dispersion_ms: 9.63,
            frequency_ppm: -12.5,
            precision_log2: -18,
            leap: "none".into(),
            reference_time: "2009-08-07T10:56:22.442Z".into(),
            reference_time_ntp: "CE2686D6.71484513".into(),
            poll_log2: 6,
            clock_driver: "system".into(),
            server_counters: None,
        }
    }

    const NOW: i64 = 1_767_225_600;

    #[test]
    fn server_counters_one_line_each() {
        let mut report = synchronized();
        let mut counters = meridian_proto::report::ServerCountersReport {
            received: 30,
            answered: 21,
            ..Default::default()
        };
        counters.dropped.insert("access-denied".into(), 5);
        counters.dropped.insert("rate-limited".into(), 4);
        report.server_counters = Some(counters);
        let text = format_status(&report, NOW);
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        assert_eq!(
            tail,
            [
                "Requests dropped: 9 (access-denied 5, rate-limited 4)",
                "Requests answered: 21",
                "Requests received: 30",
            ]
        );
        report.server_counters = Some(Default::default());
        assert!(format_status(&report, NOW)
            .lines()
            .any(|l| l == "Requests dropped: 0"));
    }

    #[test]
    fn unsynchronized_like_the_guide() {
        let text = format_status(&unsynchronized(), NOW);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "Clock status: unsynchronized",
                "Clock stratum: 16",
                "System peer: none",
                "Reference clock ID: none",
                "Leap indicator: 11 (unsynchronized)",
                "Nominal frequency: 100.0000 Hz",
                "Actual frequency: 100.0000 Hz",
                "Frequency correction: +0.000 ppm",
                "Clock precision: 2^-20",
                "Clock offset: 0.0000 ms",
                "Root delay: 0.00 ms",
                "Root dispersion: 0.00 ms",
                "Peer dispersion: 0.00 ms",
                "Reference time: 00:00:00.000 UTC Jan 1 1900(00000000.00000000)",
            ]
        );
    }

    #[test]
    fn synchronized_values() {
        let text = format_status(&synchronized(), NOW);
        for line in [
            "Clock status: synchronized",
            "Clock stratum: 2",
            "System peer: 3.0.1.32",
            "Reference clock ID: 3.0.1.32",
            "Leap indicator: 00 (none)",
            "Actual frequency: 99.9988 Hz",
            "Frequency correction: -12.500 ppm",
            "Clock precision: 2^-18",
            "Clock offset: 0.6600 ms",
            "Root delay: 27.47 ms",
            "Root dispersion: 208.39 ms",
            "Peer dispersion: 9.63 ms",
            "Reference time: 10:56:22.442 UTC Aug 7 2009(CE2686D6.71484513)",
            "VPN instance: vpn1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
