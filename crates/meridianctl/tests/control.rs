//! Runs `meridianctl status` / `sessions` / `reload` against a fake control server on a Unix
//! socket in a temporary directory.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use meridian_proto::report::{
    ControlAnswer, ControlRequest, SessionDetail, SessionReport, StatusReport,
};

/// Accepts one connection, reads the request line, answers `answer` (raw text), closes.
/// Returns the request it read.
fn fake_daemon(path: &Path, answer: String) -> JoinHandle<ControlRequest> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let request: ControlRequest = serde_json::from_str(&line).expect("request is JSON");
        let mut stream = reader.into_inner();
        stream.write_all(answer.as_bytes()).unwrap();
        request
    })
}

fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meridianctl"))
        .args(args)
        .output()
        .expect("meridianctl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn status_report() -> StatusReport {
    StatusReport {
        synchronized: true,
        stratum: 3,
        reference_id: "198.18.0.1".into(),
        system_peer: Some("198.18.0.1".into()),
        vpn_instance: None,
        offset_ms: 0.25,
        root_delay_ms: 1.5,
        root_dispersion_ms: 12.25,
        peer_dispersion_ms: 0.5,
        frequency_ppm: 3.25,
        precision_log2: -20,
        leap: "none".into(),
        reference_time: "2009-08-07T10:56:22.442Z".into(),
        reference_time_ntp: "CE2686D6.71484513".into(),
        poll_log2: 6,
        clock_driver: "read-only".into(),
        server_counters: None,
    }
}

fn session(source: &str, flags: &[&str], reach: u8) -> SessionReport {
    SessionReport {
        source: source.into(),
        vpn_instance: None,
        local_mode: "client".into(),
        peer_mode: "server".into(),
        configured: flags.contains(&"configured"),
        flags: flags.iter().map(|f| f.to_string()).collect(),
        stratum: 2,
        reference_id: "LOCL".into(),
        reach,
        poll_s: 64,
        last_receive_s: Some(17),
        offset_ms: 0.125,
        delay_ms: 0.5,
        dispersion_ms: 1.0,
        auth: "none".into(),
        verbose: SessionDetail {
            reftime: "CE2686D6.71484513".into(),
            orgtime: "00000000.00000000".into(),
            rcvtime: "CE2686D6.7149E881".into(),
            xmttime: "CE2686D6.71464DC2".into(),
            version: 4,
            ..SessionDetail::default()
        },
    }
}

struct Daemon {
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

fn daemon_dir() -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    Daemon { _dir: dir, socket }
}

fn run_against(answer: &ControlAnswer, args: &[&str]) -> (Output, ControlRequest) {
    let d = daemon_dir();
    let server = fake_daemon(&d.socket, serde_json::to_string(answer).unwrap());
    let socket = d.socket.to_str().unwrap();
    let mut argv = vec!["--socket", socket];
    argv.extend_from_slice(args);
    let out = ctl(&argv);
    (out, server.join().unwrap())
}

#[test]
fn status_plain_uses_the_guide_lines() {
    let (out, request) = run_against(&ControlAnswer::Status(status_report()), &["status"]);
    assert_eq!(request, ControlRequest::Status);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "Clock status: synchronized",
        "Clock stratum: 3",
        "System peer: 198.18.0.1",
        "Reference clock ID: 198.18.0.1",
        "Clock offset: 0.2500 ms",
        "Root delay: 1.50 ms",
        "Root dispersion: 12.25 ms",
        "Peer dispersion: 0.50 ms",
        "Clock precision: 2^-20",
        "Frequency correction: +3.250 ppm",
        "Reference time: 10:56:22.442 UTC Aug 7 2009(CE2686D6.71484513)",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no {line:?} in\n{stdout}"
        );
    }
}

#[test]
fn status_json_round_trips_with_contract_names() {
    let report = status_report();
    let (out, _) = run_against(
        &ControlAnswer::Status(report.clone()),
        &["status", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let back: StatusReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(back, report);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "synchronized",
        "stratum",
        "reference_id",
        "system_peer",
        "vpn_instance",
        "offset_ms",
        "root_delay_ms",
        "root_dispersion_ms",
        "peer_dispersion_ms",
        "frequency_ppm",
        "precision_log2",
        "leap",
        "reference_time",
    ] {
        assert!(value.get(key).is_some(), "missing {key}");
    }
    assert!(value["vpn_instance"].is_null());
}

#[test]
fn sessions_brief_table() {
    let sessions = vec![
        session(
            "198.18.0.1",
            &["master", "peer", "selected", "candidate", "configured"],
            255,
        ),
        session("198.18.0.2", &["peer", "configured"], 3),
    ];
    let (out, request) = run_against(&ControlAnswer::Sessions { sessions }, &["sessions"]);
    assert_eq!(request, ControlRequest::Sessions);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
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
    assert!(lines[1].starts_with("*****"));
    assert!(lines[2].starts_with("[12345]198.18.0.1 "), "{stdout}");
    assert!(lines[3].starts_with("[25]198.18.0.2 "), "{stdout}");
    assert!(stdout
        .contains("note: 1 source(master),2 source(peer),3 selected,4 candidate,5 configured\n"));
    assert!(stdout.ends_with("Total associations : 2\n"), "{stdout}");
}

#[test]
fn sessions_verbose_and_json() {
    let sessions = vec![session("198.18.0.1", &["configured"], 1)];
    let answer = ControlAnswer::Sessions {
        sessions: sessions.clone(),
    };
    let (out, _) = run_against(&answer, &["sessions", "--verbose"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "clock source: 198.18.0.1",
        "local mode: client, local poll: 0",
        "reach: 1, sync dist: 0.000",
        "reftime: 10:56:22.442 UTC Aug 7 2009(CE2686D6.71484513)",
        "orgtime: 00:00:00.000 UTC Jan 1 1900(00000000.00000000)",
        "VPN instance: Not specified",
        "Total associations : 1",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no {line:?} in\n{stdout}"
        );
    }

    let (out, _) = run_against(&answer, &["sessions", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let back: Vec<SessionReport> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(back, sessions);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &value.as_array().expect("a JSON list")[0];
    for key in [
        "source",
        "vpn_instance",
        "local_mode",
        "peer_mode",
        "configured",
        "flags",
        "stratum",
        "reference_id",
        "reach",
        "poll_s",
        "last_receive_s",
        "offset_ms",
        "delay_ms",
        "dispersion_ms",
        "auth",
    ] {
        assert!(first.get(key).is_some(), "missing {key}");
    }
}

#[test]
fn reload_and_daemon_errors() {
    let answer = ControlAnswer::Reloaded {
        message: "configuration reloaded: 1 association added".into(),
    };
    let (out, request) = run_against(&answer, &["reload"]);
    assert_eq!(request, ControlRequest::Reload);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("1 association added"));

    let refused = ControlAnswer::Error {
        message: "config line 3: unknown key".into(),
    };
    let (out, _) = run_against(&refused, &["reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("config line 3: unknown key"));

    // An answer to a different question is a failure, not a silent success.
    let (out, _) = run_against(&ControlAnswer::Status(status_report()), &["sessions"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn socket_from_config_file() {
    let d = daemon_dir();
    let config = d.socket.with_file_name("meridian.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\nport = 11123\n\n[control]\nsocket = \"{}\"\n",
            d.socket.display()
        ),
    )
    .unwrap();
    let server = fake_daemon(
        &d.socket,
        serde_json::to_string(&ControlAnswer::Status(status_report())).unwrap(),
    );
    let out = ctl(&["--config", config.to_str().unwrap(), "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(server.join().unwrap(), ControlRequest::Status);
}

#[test]
fn missing_socket_is_a_clear_failure() {
    let d = daemon_dir();
    let out = ctl(&["--socket", d.socket.to_str().unwrap(), "status"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot connect to"), "{stderr}");
    assert!(stderr.contains(d.socket.to_str().unwrap()), "{stderr}");
}

#[test]
fn silent_daemon_times_out() {
    let d = daemon_dir();
    let listener = UnixListener::bind(&d.socket).unwrap();
    let holder = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(4));
        drop(stream);
    });
    let started = Instant::now();
    let out = ctl(&["--socket", d.socket.to_str().unwrap(), "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_millis(3500));
    assert!(text(&out.stderr).contains("no complete answer"));
    holder.join().unwrap();
}

#[test]
fn garbage_answer_fails() {
    let d = daemon_dir();
    let server = fake_daemon(&d.socket, "this is not json".into());
    let out = ctl(&["--socket", d.socket.to_str().unwrap(), "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unreadable answer"));
    server.join().unwrap();
}

#[test]
fn trace_without_an_answer_fails_clearly() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = format!("127.0.0.1:{port}");
    let out = ctl(&["trace", &start, "--timeout", "0.5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("trace: no answer from {start}")),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &[][..],
        &["frobnicate"][..],
        &["status", "--bogus"][..],
        &["sessions", "extra"][..],
        &["--socket"][..],
    ] {
        let out = ctl(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = ctl(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
}
