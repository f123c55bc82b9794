//! End to end in network namespaces: NTP mode 6 control queries against meridiand with the
//! tools operators use: NTPsec's `ntpq -p` / `ntpq -c rv` and the monitoring plugin
//! `check_ntp_peer`, on loopback without any extra configuration; remote queries only with a
//! configured right (`query`), none by default, none with `[control] mode6 = false`.
//!
//! Needs root (network namespaces); prints SKIPPED otherwise. Every meridiand runs with the
//! read-only or the simulated clock driver; the host clock is only read.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{
    binary, local_server_config, ntpq_command, require_root, simulated_client_config,
    start_meridiand, status, temp_dir, wait_for, Host, TestNet,
};

/// Sends one mode 6 READSTAT to `server` port 123 from inside `host` and prints the number
/// of bytes received within one second (0 for none).
const READSTAT: &str = r#"
import socket, sys
server = sys.argv[1]
s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
s.sendto(bytes([0x26, 0x01, 0x00, 0x07]) + bytes(8), (server, 123))
try:
    print(len(s.recv(2048)))
except socket.timeout:
    print(0)
"#;

fn readstat_reply_len(host: &Host, server: &str) -> usize {
    let out = host.run("/usr/bin/python3", ["-c", READSTAT, server]);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("python output: {out:?}"))
}

fn run_text(mut cmd: std::process::Command) -> (Option<i32>, String) {
    let out = cmd.output().expect("run tool");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

/// A drop counter of the daemon behind `socket`.
fn dropped(socket: &Path, reason: &str) -> u64 {
    let s = status(socket).expect("status");
    s["server_counters"]["dropped"][reason]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn ntpq_and_check_ntp_peer_read_a_synchronized_client() {
    let test = "ntpq_and_check_ntp_peer_read_a_synchronized_client";
    if !require_root(test) {
        return;
    }
    let (Some(_), Some(check)) = (binary(test, "ntpq"), binary(test, "check_ntp_peer")) else {
        return;
    };
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let server = net.host(0).ipv4().to_string();
    let (srv, _) = start_meridiand(net.host(0), dir.path(), "server", &local_server_config(2));
    let client_cfg = simulated_client_config(&server, "+0.02s", 5.0);
    let (cli, socket) = start_meridiand(net.host(1), dir.path(), "client", &client_cfg);
    let synced = wait_for(Duration::from_secs(40), Duration::from_millis(500), || {
        status(&socket).is_some_and(|s| s["synchronized"] == true)
    });
    assert!(
        synced,
        "client never synchronized\n{}\n{}",
        cli.describe(),
        srv.describe()
    );

    // ntpq -p: the server is the system peer (`*`), a unicast server at stratum 2 whose
    // reference is its local clock, reachable, with a small delay.
    let (code, text) = run_text(ntpq_command(net.host(1), &["-n", "-p", "127.0.0.1"]));
    assert_eq!(code, Some(0), "ntpq -p:\n{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("*{server}")))
        .unwrap_or_else(|| panic!("no sys.peer line for {server}:\n{text}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols.len(), 10, "columns of {line:?}");
    assert_eq!(cols[1], "127.127.1.0", "refid: {line}");
    assert_eq!((cols[2], cols[3]), ("2", "u"), "stratum and type: {line}");
    // `when`: seconds since the last packet; ntpq shows "-" below one second.
    let when: u64 = if cols[4] == "-" {
        0
    } else {
        cols[4].parse().unwrap_or(u64::MAX)
    };
    assert!(when <= 16, "last packet {when} s ago: {line}");
    let reach = u8::from_str_radix(cols[6], 8).unwrap_or_else(|_| panic!("reach: {line}"));
    assert!(reach & 1 == 1, "reach {reach:o}: {line}");
    let num = |i: usize| -> f64 {
        cols[i]
            .parse()
            .unwrap_or_else(|_| panic!("col {i}: {line}"))
    };
    assert!(num(7) > 0.0 && num(7) < 50.0, "delay ms: {line}");
    assert!(num(8).abs() < 100.0, "offset ms: {line}");
    assert!(num(9) >= 0.0, "jitter ms: {line}");

    // ntpq -c rv: system variables, the daemon at stratum 3 without leap warning.
    let (code, text) = run_text(ntpq_command(net.host(1), &["-c", "rv", "127.0.0.1"]));
    assert_eq!(code, Some(0), "ntpq -c rv:\n{text}");
    for want in [
        "stratum=3",
        "leap=00",
        &format!("refid={server}"),
        "version=\"meridiand",
    ] {
        assert!(text.contains(want), "{want} missing in:\n{text}");
    }

    // ntpq -c "rv 1": the peer variables of association 1 (SourceId 0), cooked by ntpq.
    let (code, text) = run_text(ntpq_command(net.host(1), &["-c", "rv 1", "127.0.0.1"]));
    assert_eq!(code, Some(0), "ntpq -c 'rv 1':\n{text}");
    for want in [
        format!("srcadr={server}"),
        "hmode=3".into(),
        "filtdelay =".into(),
    ] {
        assert!(text.contains(&want), "{want} missing in:\n{text}");
    }
    assert!(!text.contains("Traceback"), "{text}");

    // check_ntp_peer: OK with the offset of the system peer.
    let mut cmd = net
        .host(1)
        .command(&check, ["-H", "127.0.0.1", "-w", "0.5", "-c", "1"]);
    cmd.env("LC_ALL", "C");
    let (code, text) = run_text(cmd);
    assert_eq!(code, Some(0), "check_ntp_peer:\n{text}");
    assert!(text.starts_with("NTP OK: Offset"), "{text}");

    // The server's own host has no query right here: no [access], not loopback.
    assert_eq!(
        readstat_reply_len(net.host(0), &net.host(1).ipv4().to_string()),
        0
    );
    assert!(dropped(&socket, "mode6-not-loopback") >= 1);
    assert!(cli.is_running() && srv.is_running());
}

#[test]
fn check_ntp_peer_reports_an_unsynchronized_daemon_critical() {
    let test = "check_ntp_peer_reports_an_unsynchronized_daemon_critical";
    if !require_root(test) {
        return;
    }
    let (Some(_), Some(check)) = (binary(test, "ntpq"), binary(test, "check_ntp_peer")) else {
        return;
    };
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    // Host 0 runs nothing: the server never answers. Host 0 and loopback have the query
    // right (the highest right whose ACL permits a source applies, so loopback must not be
    // in the synchronization ACL).
    let silent = net.host(0).ipv4();
    let body = format!(
        "{}\n[access]\nsynchronization = \"2003\"\nquery = \"2004\"\n\
         [acl.2003]\nrules = [ {{ action = \"permit\", source = \"198.18.0.200/32\" }} ]\n\
         [acl.2004]\nrules = [ {{ action = \"permit\", source = \"{silent}/32\" }}, \
         {{ action = \"permit\", source = \"127.0.0.1/32\" }} ]\n",
        simulated_client_config(&silent.to_string(), "0s", 0.0)
    );
    let (cli, socket) = start_meridiand(net.host(1), dir.path(), "client", &body);
    assert!(
        wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
            status(&socket).is_some()
        }),
        "{}",
        cli.describe()
    );
    std::thread::sleep(Duration::from_secs(3));

    let mut cmd = net
        .host(1)
        .command(&check, ["-H", "127.0.0.1", "-w", "0.5", "-c", "1"]);
    cmd.env("LC_ALL", "C");
    let (code, text) = run_text(cmd);
    // CRITICAL (2) with "Offset unknown": an answer that lists no system peer. A daemon
    // that does not answer also gives 2, but with a socket timeout message instead.
    assert_eq!(code, Some(2), "check_ntp_peer:\n{text}");
    assert!(text.contains("Server not synchronized"), "{text}");
    assert!(text.contains("Offset unknown"), "{text}");

    // ntpq -p lists the unreachable server without a tally mark and with reach 0.
    let (code, text) = run_text(ntpq_command(net.host(1), &["-n", "-p", "127.0.0.1"]));
    assert_eq!(code, Some(0), "ntpq -p:\n{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!(" {silent}")))
        .unwrap_or_else(|| panic!("no line for {silent}:\n{text}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((cols[1], cols[2], cols[6]), (".INIT.", "16", "0"), "{line}");
    let (_, text) = run_text(ntpq_command(net.host(1), &["-c", "rv", "127.0.0.1"]));
    assert!(
        text.contains("leap=11") && text.contains("stratum=16"),
        "{text}"
    );

    // Host 0 holds the query right: its mode 6 query is answered (12 + 4 bytes: one
    // association); its time request would not be (synchronization is loopback only).
    assert_eq!(
        readstat_reply_len(net.host(0), &net.host(1).ipv4().to_string()),
        16
    );
    assert!(cli.is_running());
}

#[test]
fn mode6_false_answers_no_control_query() {
    let test = "mode6_false_answers_no_control_query";
    if !require_root(test) {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 1);
    let socket = dir.join("m.sock");
    let body = format!(
        "{}\n[control]\nsocket = \"{}\"\nmode6 = false\n",
        local_server_config(2),
        socket.display()
    );
    let (srv, _) = start_meridiand(net.host(0), dir.path(), "server", &body);
    assert!(
        wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
            status(&socket).is_some()
        }),
        "{}",
        srv.describe()
    );
    assert_eq!(readstat_reply_len(net.host(0), "127.0.0.1"), 0);
    assert_eq!(dropped(&socket, "mode6-disabled"), 1);
}
