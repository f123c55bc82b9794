//! Runs `meridianctl query` against tiny NTP responders on 127.0.0.1.

use std::net::UdpSocket;
use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meridian_proto::report::QueryReport;
use meridian_proto::time::{NtpDuration, NtpTimestamp};
use meridian_proto::wire::{self, Header, Leap, Mode, ReferenceId};

/// How a test responder answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// A correct server at stratum 2 with the host clock.
    Honest,
    /// Correct except for the origin timestamp.
    WrongOrigin,
    /// A kiss-o'-death with this code.
    Kiss(&'static [u8; 4]),
}

fn now() -> NtpTimestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    NtpTimestamp::from_unix(d.as_secs() as i64, d.subsec_nanos())
}

/// Starts a responder; it answers every request until 3 s pass without one.
fn responder(behaviour: Behaviour) -> (u16, JoinHandle<usize>) {
    responder_in(behaviour, None)
}

/// Moves the calling thread into network namespace /run/netns/`name`.
fn enter_netns(name: &str) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
    // SAFETY: plain syscall on a descriptor that `file` keeps open.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// A responder on 127.0.0.1, inside network namespace `netns` when given.
fn responder_in(behaviour: Behaviour, netns: Option<String>) -> (u16, JoinHandle<usize>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        if let Some(name) = &netns {
            enter_netns(name);
        }
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        tx.send(socket.local_addr().unwrap().port()).unwrap();
        let mut answered = 0;
        let mut buf = [0u8; 512];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            let t2 = now();
            let request = wire::parse(&buf[..len]).expect("request parses").header;
            assert_eq!(request.mode, Mode::Client);
            let mut reply = Header::new(Mode::Server);
            reply.leap = Leap::None;
            reply.version = request.version;
            reply.stratum = 2;
            reply.precision = -20;
            reply.reference_id = ReferenceId([198, 18, 0, 1]);
            reply.reference_ts = t2 - NtpDuration::ONE_SECOND;
            reply.root_delay = NtpDuration::from_seconds(0.001);
            reply.origin_ts = request.transmit_ts;
            reply.receive_ts = t2;
            match behaviour {
                Behaviour::Honest => {}
                Behaviour::WrongOrigin => {
                    reply.origin_ts = request.transmit_ts + NtpDuration::ONE_SECOND;
                }
                Behaviour::Kiss(code) => {
                    reply.leap = Leap::Unsynchronized;
                    reply.stratum = 0;
                    reply.reference_id = ReferenceId(*code);
                }
            }
            reply.transmit_ts = now();
            socket.send_to(&reply.to_bytes(), from).unwrap();
            answered += 1;
        }
        answered
    });
    let port = rx.recv().expect("responder started");
    (port, handle)
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

#[test]
fn honest_server_json() {
    let (port, server) = responder(Behaviour::Honest);
    let target = format!("127.0.0.1:{port}");
    let out = ctl(&["query", &target, "--json", "--timeout", "2"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let report: QueryReport = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert!(report.offset_ms.abs() < 50.0, "{report:?}");
    assert!(
        report.delay_ms >= 0.0 && report.delay_ms < 50.0,
        "{report:?}"
    );
    assert_eq!(report.server, "127.0.0.1");
    assert_eq!(report.stratum, 2);
    assert_eq!(report.reference_id, "198.18.0.1");
    assert_eq!(report.leap, "none");
    assert_eq!(report.mode, "server");
    assert_eq!(report.version, 4);
    assert!((report.root_delay_ms - 1.0).abs() < 0.1);
    // Field names as interface.md lists them.
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "server",
        "stratum",
        "reference_id",
        "leap",
        "offset_ms",
        "delay_ms",
        "root_delay_ms",
        "root_dispersion_ms",
        "version",
        "mode",
    ] {
        assert!(value.get(key).is_some(), "missing {key}");
    }
    assert_eq!(server.join().unwrap(), 1);
}

#[test]
fn honest_server_plain_with_count() {
    let (port, server) = responder(Behaviour::Honest);
    let target = format!("127.0.0.1:{port}");
    let out = ctl(&[
        "query",
        &target,
        "--count",
        "2",
        "--interval",
        "0.2",
        "--version",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in lines {
        assert!(
            line.starts_with("server 127.0.0.1, stratum 2, offset "),
            "{line}"
        );
        assert!(line.ends_with(", refid 198.18.0.1, leap none"), "{line}");
    }
    assert_eq!(server.join().unwrap(), 2);
}

#[test]
fn wrong_origin_is_no_answer() {
    let (port, _server) = responder(Behaviour::WrongOrigin);
    let target = format!("127.0.0.1:{port}");
    let out = ctl(&["query", &target, "--json", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "printed {}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("origin"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn nothing_listening_fails_within_the_timeout() {
    let port = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let target = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let out = ctl(&["query", &target, "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(!text(&out.stderr).is_empty());
}

#[test]
fn kiss_of_death_rate() {
    let (port, server) = responder(Behaviour::Kiss(b"RATE"));
    let target = format!("127.0.0.1:{port}");
    // A KoD stops the run: the second request must not be sent.
    let out = ctl(&["query", &target, "--count", "2", "--interval", "0.1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("RATE"), "{}", text(&out.stderr));
    assert_eq!(server.join().unwrap(), 1);
}

#[test]
fn ipv6_bracket_form() {
    let Ok(socket) = UdpSocket::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback; skipped");
        return;
    };
    // Nothing answers there: the point is that the address form is accepted (exit 1, not 2).
    let port = socket.local_addr().unwrap().port();
    drop(socket);
    let out = ctl(&["query", &format!("[::1]:{port}"), "--timeout", "0.5"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["query"][..],
        &["query", "127.0.0.1", "--count", "x"][..],
        &["query", "[::1"][..],
    ] {
        let out = ctl(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// A network namespace made for one test and deleted when dropped (also on failure).
struct Netns(String);

impl Netns {
    /// None when we may not create namespaces (not root, or no `ip`).
    fn create() -> Option<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let name = format!("mctl-test-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        let netns = Self(name);
        let up = Command::new("ip")
            .args(["-n", &netns.0, "link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(up.success());
        Some(netns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn vpn_instance_enters_the_namespace() {
    let Some(netns) = Netns::create() else {
        eprintln!("cannot create network namespaces here; skipped");
        return;
    };
    let (port, server) = responder_in(Behaviour::Honest, Some(netns.0.clone()));
    let target = format!("127.0.0.1:{port}");
    let out = ctl(&["query", &target, "--vpn-instance", &netns.0, "--json"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let report: QueryReport = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report.offset_ms.abs() < 50.0);
    // The same address outside the namespace has no such server.
    let out = ctl(&["query", &target, "--timeout", "0.5"]);
    assert_eq!(out.status.code(), Some(1));
    let out = ctl(&["query", &target, "--vpn-instance", "mctl-no-such-ns"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/run/netns/mctl-no-such-ns"));
    assert_eq!(server.join().unwrap(), 1);
}
