//! Plain layouts of `meridianctl sessions` (brief table) and `sessions --verbose`, after
//! Comware 5's `display ntp-service sessions [verbose]`.
//!
//! The `reach` column and field print the 8-bit reachability register as a decimal number
//! (0..=255), the same value as the JSON `reach`; ntpd's octal (377) is not used.

use std::fmt::Write;

use meridian_proto::report::SessionReport;

use super::time::format_ntp_hex;

/// The flag legend printed under the brief table.
pub const NOTE: &str = "note: 1 source(master),2 source(peer),3 selected,4 candidate,5 configured";

/// Minimum width of the line of `*` under the header (Comware's is 73 wide).
const MIN_RULE: usize = 73;

/// The `[12345]` digits for a session: flags named in the report, plus 5 when configured.
pub fn flag_digits(session: &SessionReport) -> String {
    let has = |name: &str| session.flags.iter().any(|f| f == name);
    let mut digits = String::new();
    for (digit, name) in [
        ('1', "master"),
        ('2', "peer"),
        ('3', "selected"),
        ('4', "candidate"),
    ] {
        if has(name) {
            digits.push(digit);
        }
    }
    if has("configured") || session.configured {
        digits.push('5');
    }
    digits
}

/// The `now` column: seconds up to 2048 s, then minutes up to 300 min, then hours up to
/// 96 h, then days; `-` when nothing was ever received.
pub fn format_age(seconds: Option<u64>) -> String {
    let Some(s) = seconds else {
        return "-".to_string();
    };
    if s <= 2048 {
        s.to_string()
    } else if s <= 300 * 60 {
        format!("{}m", s / 60)
    } else if s <= 96 * 3600 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86_400)
    }
}

/// The cells of one table row, in header order.
fn row_cells(session: &SessionReport) -> [String; 9] {
    let digits = flag_digits(session);
    let source = if digits.is_empty() {
        session.source.clone()
    } else {
        format!("[{digits}]{}", session.source)
    };
    [
        source,
        session.reference_id.clone(),
        session.stratum.to_string(),
        session.reach.to_string(),
        session.poll_s.to_string(),
        format_age(session.last_receive_s),
        format!("{:.4}", session.offset_ms),
        format!("{:.4}", session.delay_ms),
        format!("{:.4}", session.dispersion_ms),
    ]
}

/// Whether a session is displayed: the broadcast and multicast servers' own sessions are
/// counted in the total but not shown (as Comware does).
fn shown(session: &SessionReport) -> bool {
    !matches!(session.local_mode.as_str(), "broadcast" | "multicast")
}

/// The brief table with its legend and total.
pub fn format_sessions_brief(sessions: &[SessionReport]) -> String {
    const HEADER: [&str; 9] = [
        "source",
        "reference",
        "stra",
        "reach",
        "poll",
        "now",
        "offset",
        "delay",
        "disper",
    ];
    let rows: Vec<[String; 9]> = sessions
        .iter()
        .filter(|s| shown(s))
        .map(row_cells)
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let render = |cells: [&str; 9]| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            // Source and reference are text, left-aligned; the rest are numbers.
            if i < 2 {
                let _ = write!(line, "{cell:<w$}", w = widths[i]);
            } else {
                let _ = write!(line, "{cell:>w$}", w = widths[i]);
            }
        }
        line.trim_end().to_string()
    };
    let header = render(HEADER);
    let mut out = String::new();
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{}", "*".repeat(header.len().max(MIN_RULE)));
    for row in &rows {
        let _ = writeln!(out, "{}", render(row.each_ref().map(String::as_str)));
    }
    let _ = writeln!(out, "{NOTE}");
    let _ = writeln!(out, "Total associations : {}", sessions.len());
    out
}

/// Filter register values in milliseconds, two decimals each.
fn filter_row(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One session in the verbose layout (no trailing blank line).
pub fn format_session_verbose(session: &SessionReport, now_unix: i64) -> String {
    let d = &session.verbose;
    let mut out = String::new();
    let _ = writeln!(out, "clock source: {}", session.source);
    let _ = writeln!(out, "clock stratum: {}", session.stratum);
    let _ = writeln!(out, "clock status: {}", d.status.join(", "));
    let _ = writeln!(out, "reference clock ID: {}", session.reference_id);
    let vpn = session.vpn_instance.as_deref().unwrap_or("Not specified");
    let _ = writeln!(out, "VPN instance: {vpn}");
    let _ = writeln!(
        out,
        "local mode: {}, local poll: {}",
        session.local_mode, d.local_poll_log2
    );
    let _ = writeln!(
        out,
        "peer mode: {}, peer poll: {}",
        session.peer_mode, d.peer_poll_log2
    );
    // Comware prints no space after the first comma of this line.
    let _ = writeln!(
        out,
        "offset: {:.4} ms,delay: {:.2} ms, disper: {:.2} ms",
        session.offset_ms, session.delay_ms, session.dispersion_ms
    );
    let _ = writeln!(
        out,
        "root delay: {:.2} ms, root disper: {:.2} ms",
        d.root_delay_ms, d.root_dispersion_ms
    );
    let _ = writeln!(
        out,
        "reach: {}, sync dist: {:.3}",
        session.reach, d.sync_distance_s
    );
    let interface = d.source_interface.as_deref().unwrap_or("Not specified");
    let _ = writeln!(
        out,
        "precision: 2^{}, version: {}, peer interface: {interface}",
        d.precision_log2, d.version
    );
    for (name, value) in [
        ("reftime", &d.reftime),
        ("orgtime", &d.orgtime),
        ("rcvtime", &d.rcvtime),
        ("xmttime", &d.xmttime),
    ] {
        let _ = writeln!(out, "{name}: {}", format_ntp_hex(value, now_unix));
    }
    let _ = writeln!(out, "filter delay : {}", filter_row(&d.filter_delay_ms));
    let _ = writeln!(out, "filter offset: {}", filter_row(&d.filter_offset_ms));
    let _ = writeln!(
        out,
        "filter disper: {}",
        filter_row(&d.filter_dispersion_ms)
    );
    let last = d.last_rejection.as_deref().unwrap_or("none");
    let _ = writeln!(
        out,
        "packets sent: {}, received: {}, rejected: {}, last rejection: {last}",
        d.packets_sent, d.packets_received, d.packets_rejected
    );
    let _ = writeln!(out, "authentication: {}", session.auth);
    out
}

/// Every session in the verbose layout, separated by blank lines, then the total.
pub fn format_sessions_verbose(sessions: &[SessionReport], now_unix: i64) -> String {
    let mut out = String::new();
    for session in sessions.iter().filter(|s| shown(s)) {
        out.push_str(&format_session_verbose(session, now_unix));
        out.push('\n');
    }
    let _ = writeln!(out, "Total associations : {}", sessions.len());
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use meridian_proto::report::SessionDetail;

    pub(crate) fn session(source: &str, flags: &[&str], last: Option<u64>) -> SessionReport {
        SessionReport {
            source: source.into(),
            vpn_instance: None,
            local_mode: "client".into(),
            peer_mode: "server".into(),
            configured: flags.contains(&"configured"),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            stratum: 2,
            reference_id: "127.127.1.0".into(),
            reach: 255,
            poll_s: 64,
            last_receive_s: last,
            offset_ms: -14.3,
            delay_ms: 12.9,
            dispersion_ms: 2.7,
            auth: "none".into(),
            verbose: SessionDetail {
                local_poll_log2: 6,
                peer_poll_log2: 6,
                root_delay_ms: 0.0,
                root_dispersion_ms: 10.0,
                sync_distance_s: 0.01,
                precision_log2: -18,
                version: 4,
                source_interface: None,
                status: vec![
                    "configured".into(),
                    "master".into(),
                    "sane".into(),
                    "valid".into(),
                ],
                reftime: "CE2686D6.71484513".into(),
                orgtime: "CE2686D6.71484513".into(),
                rcvtime: "CE2686D6.7149E881".into(),
                xmttime: "00000000.00000000".into(),
                filter_delay_ms: vec![0.0; 8],
                filter_offset_ms: vec![1.25; 8],
                filter_dispersion_ms: vec![0.02; 8],
                packets_sent: 10,
                packets_received: 9,
                packets_rejected: 1,
                last_rejection: Some("bogus_origin".into()),
            },
        }
    }

    #[test]
    fn now_unit_boundaries() {
        assert_eq!(format_age(None), "-");
        assert_eq!(format_age(Some(0)), "0");
        assert_eq!(format_age(Some(2048)), "2048");
        assert_eq!(format_age(Some(2049)), "34m");
        assert_eq!(format_age(Some(300 * 60)), "300m");
        assert_eq!(format_age(Some(300 * 60 + 1)), "5h");
        assert_eq!(format_age(Some(96 * 3600)), "96h");
        assert_eq!(format_age(Some(96 * 3600 + 1)), "4d");
    }

    #[test]
    fn flags_only_those_that_apply() {
        let all = session(
            "a",
            &["master", "peer", "selected", "candidate", "configured"],
            None,
        );
        assert_eq!(flag_digits(&all), "12345");
        assert_eq!(
            flag_digits(&session("b", &["peer", "configured"], None)),
            "25"
        );
        let mut dynamic = session("c", &["candidate"], None);
        assert_eq!(flag_digits(&dynamic), "4");
        dynamic.configured = true;
        assert_eq!(flag_digits(&dynamic), "45");
    }

    #[test]
    fn brief_table() {
        let mut second = session("198.18.0.22", &["peer", "configured"], None);
        second.stratum = 3;
        second.reach = 1;
        second.reference_id = "LOCL".into();
        let sessions = [
            session(
                "3.0.1.32",
                &["master", "peer", "selected", "candidate"],
                Some(42),
            ),
            second,
        ];
        let text = format_sessions_brief(&sessions);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            [
                "source",
                "reference",
                "stra",
                "reach",
                "poll",
                "now",
                "offset",
                "delay",
                "disper"
            ]
        );
        assert!(lines[1].len() >= 73 && lines[1].chars().all(|c| c == '*'));
        let row: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            row,
            [
                "[1234]3.0.1.32",
                "127.127.1.0",
                "2",
                "255",
                "64",
                "42",
                "-14.3000",
                "12.9000",
                "2.7000"
            ]
        );
        let row: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(row[0], "[25]198.18.0.22");
        assert_eq!(row[1], "LOCL");
        assert_eq!(row[5], "-");
        // Columns line up: every number column ends where its header ends.
        for line in &lines[2..4] {
            assert_eq!(line.len(), lines[0].len());
        }
        assert_eq!(lines[4], NOTE);
        assert_eq!(lines[5], "Total associations : 2");
    }

    #[test]
    fn broadcast_server_sessions_are_counted_but_hidden() {
        let mut server = session("198.18.0.255", &["configured"], None);
        server.local_mode = "broadcast".to_owned();
        let mut bclient = session("198.18.0.1", &["peer"], Some(3));
        bclient.local_mode = "bclient".to_owned();
        let all = vec![bclient, server];
        let text = format_sessions_brief(&all);
        assert!(!text.contains("198.18.0.255"), "{text}");
        assert!(text.contains("198.18.0.1"), "the broadcast client is shown");
        assert!(text.ends_with(&format!("Total associations : {}\n", all.len())));
        let verbose = format_sessions_verbose(&all, 0);
        assert!(!verbose.contains("198.18.0.255"));
    }

    #[test]
    fn empty_table_still_has_total() {
        let text = format_sessions_brief(&[]);
        assert!(text.ends_with("Total associations : 0\n"));
    }

    #[test]
    fn verbose_layout() {
        let now = 1_767_225_600;
        let text = format_sessions_verbose(&[session("127.127.1.0", &["master"], Some(3))], now);
        let expected = [
            "clock source: 127.127.1.0",
            "clock stratum: 2",
            "clock status: configured, master, sane, valid",
            "reference clock ID: 127.127.1.0",
            "VPN instance: Not specified",
            "local mode: client, local poll: 6",
            "peer mode: server, peer poll: 6",
            "offset: -14.3000 ms,delay: 12.90 ms, disper: 2.70 ms",
            "root delay: 0.00 ms, root disper: 10.00 ms",
            "reach: 255, sync dist: 0.010",
            "precision: 2^-18, version: 4, peer interface: Not specified",
            "reftime: 10:56:22.442 UTC Aug 7 2009(CE2686D6.71484513)",
            "orgtime: 10:56:22.442 UTC Aug 7 2009(CE2686D6.71484513)",
            "rcvtime: 10:56:22.442 UTC Aug 7 2009(CE2686D6.7149E881)",
            "xmttime: 00:00:00.000 UTC Jan 1 1900(00000000.00000000)",
            "filter delay : 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00",
            "filter offset: 1.25 1.25 1.25 1.25 1.25 1.25 1.25 1.25",
            "filter disper: 0.02 0.02 0.02 0.02 0.02 0.02 0.02 0.02",
            "packets sent: 10, received: 9, rejected: 1, last rejection: bogus_origin",
            "authentication: none",
            "",
            "Total associations : 1",
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), expected);
    }
}
