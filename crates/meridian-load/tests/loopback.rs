//! The `meridian-load` binary on loopback against a small responder thread: what it reports
//! matches what the responder saw and did (answers, drops, source addresses), and it refuses
//! targets outside loopback and the benchmarking ranges.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// What the responder saw.
struct Seen {
    requests: u64,
    answered: u64,
    sources: HashSet<IpAddr>,
    ports: HashSet<u16>,
}

/// A responder on 127.0.0.1: answers requests as an NTP server would (mode 4, origin =
/// request's transmit timestamp), except every `skip`-th (0: none). Stops after `life`.
fn responder(skip: u64, life: Duration) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let end = Instant::now() + life;
        let mut seen = Seen {
            requests: 0,
            answered: 0,
            sources: HashSet::new(),
            ports: HashSet::new(),
        };
        let mut buf = [0u8; 512];
        let mut since_skip = 0u64;
        while Instant::now() < end {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if n < 48 || buf[0] & 7 != 3 {
                continue;
            }
            seen.requests += 1;
            seen.sources.insert(from.ip());
            seen.ports.insert(from.port());
            since_skip += 1;
            if since_skip == skip {
                since_skip = 0;
                continue;
            }
            let mut reply = [0u8; 48];
            reply[0] = 0x24;
            reply[1] = 2;
            reply[24..32].copy_from_slice(&buf[40..48]);
            if sock.send_to(&reply, from).is_ok() {
                seen.answered += 1;
            }
        }
        let _ = tx.send(seen);
    });
    (addr, rx)
}

fn load(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meridian-load"))
        .args(args)
        .output()
        .expect("run meridian-load");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn field(json: &serde_json::Value, name: &str) -> f64 {
    json[name]
        .as_f64()
        .unwrap_or_else(|| panic!("no {name} in {json}"))
}

#[test]
fn every_answer_counted_with_its_latency() {
    let (addr, seen) = responder(0, Duration::from_secs(3));
    let target = addr.to_string();
    let (code, out, err) = load(&[
        "--target",
        &target,
        "--rate",
        "2000",
        "--duration",
        "0.5",
        "--sources",
        "8",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let seen = seen.recv().unwrap();
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(field(&r, "sent") as u64, seen.requests);
    assert_eq!(field(&r, "answered") as u64, seen.answered);
    assert!(
        seen.requests >= 700 && seen.requests <= 1001,
        "{}",
        seen.requests
    );
    assert_eq!(field(&r, "loss"), 0.0);
    assert_eq!(seen.ports.len(), 8, "8 sockets, 8 source ports");
    let p50 = field(&r["latency"], "p50_us");
    let p99 = field(&r["latency"], "p99_us");
    let max = field(&r["latency"], "max_us");
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= max && max < 1e6, "{r}");
    let offered = field(&r, "offered_pps");
    assert!(offered > 1400.0 && offered < 2600.0, "offered {offered}");
}

#[test]
fn unanswered_requests_are_loss() {
    let (addr, seen) = responder(4, Duration::from_secs(3));
    let target = addr.to_string();
    let (code, out, err) = load(&[
        "--target",
        &target,
        "--rate",
        "1000",
        "--duration",
        "0.4",
        "--drain-ms",
        "300",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let seen = seen.recv().unwrap();
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let expected = 1.0 - seen.answered as f64 / seen.requests as f64;
    assert!((field(&r, "loss") - expected).abs() < 1e-9, "{r}");
    assert!(expected > 0.2 && expected < 0.3);
}

#[test]
fn many_source_addresses() {
    // 127.0.0.0/8 is local on lo: bind to each of 16 addresses ...
    let (addr, seen) = responder(0, Duration::from_secs(2));
    let target = addr.to_string();
    let (code, _, err) = load(&[
        "--target",
        &target,
        "--rate",
        "500",
        "--duration",
        "0.2",
        "--sources",
        "16",
        "--source-base",
        "127.0.3.1",
    ]);
    assert_eq!(code, 0, "{err}");
    let seen = seen.recv().unwrap();
    assert_eq!(seen.sources.len(), 16);
    assert!(seen
        .sources
        .contains(&"127.0.3.16".parse::<IpAddr>().unwrap()));
    // ... or pick one of 300 per request from 4 sockets.
    let (addr, seen) = responder(0, Duration::from_secs(2));
    let target = addr.to_string();
    let (code, out, err) = load(&[
        "--target",
        &target,
        "--rate",
        "3000",
        "--duration",
        "0.2",
        "--sources",
        "4",
        "--source-base",
        "127.0.4.0",
        "--prefix",
        "16",
        "--clients",
        "300",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let seen = seen.recv().unwrap();
    assert_eq!(seen.sources.len(), 300);
    assert_eq!(seen.ports.len(), 4);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(field(&r, "answered") as u64, seen.answered);
}

#[test]
fn refuses_other_targets_and_unbounded_runs() {
    for args in [
        &[
            "--target",
            "192.0.2.1:123",
            "--rate",
            "10",
            "--duration",
            "1",
        ][..],
        &[
            "--target",
            "[2001:db8::1]:123",
            "--rate",
            "10",
            "--duration",
            "1",
        ][..],
        &["--target", "127.0.0.1:123", "--rate", "10"][..],
        &["--target", "127.0.0.1:123", "--duration", "1"][..],
    ] {
        let (code, out, err) = load(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains("meridian-load:"), "{err}");
    }
}
