//! End to end in network namespaces: access rights (ACL permit/deny, `synchronization` gives
//! time but no control queries), rate limiting with RATE kisses, and `receive = false` on an
//! interface, each checked by what clients get back and by the drop counters in `status`.
//!
//! Needs root (network namespaces); prints SKIPPED otherwise. meridiand runs with the
//! read-only clock driver and without CAP_SYS_TIME; the host clock is only read.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use meridian_proto::report::{ControlAnswer, ServerCountersReport};
use support::{binary, ntpdig_query, require_root, temp_dir, wait_for, Host, Proc, TestNet};

/// A server on port 123 in host 0, serving its local reference at stratum 2.
fn server_config(dir: &Path, extra: &str) -> String {
    format!(
        "[service]\nport = 123\n[control]\nsocket = \"{}\"\n[clock]\ndriver = \"read-only\"\n\
         [local-reference]\naddress = \"127.127.1.0\"\nstratum = 2\n{extra}",
        dir.join("control.sock").display()
    )
}

fn start_meridiand(net: &TestNet, dir: &Path, extra: &str) -> Proc {
    let config = dir.join("meridiand.toml");
    std::fs::write(&config, server_config(dir, extra)).unwrap();
    let proc = net.host(0).spawn(
        env!("CARGO_BIN_EXE_meridiand"),
        ["--config", config.to_str().unwrap()],
        &dir.join("meridiand.log"),
    );
    assert!(
        proc.wait_for_log("started", Duration::from_secs(10)),
        "meridiand did not start: {}",
        proc.describe()
    );
    proc
}

/// The server counters from the control socket (`meridianctl status --json`).
fn counters(dir: &Path) -> ServerCountersReport {
    let mut stream = UnixStream::connect(dir.join("control.sock")).expect("control socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"{\"request\":\"status\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    match serde_json::from_str::<ControlAnswer>(&line) {
        Ok(ControlAnswer::Status(s)) => s.server_counters.expect("server counters in status"),
        other => panic!("unexpected answer {other:?} to status: {line}"),
    }
}

fn dropped(c: &ServerCountersReport, reason: &str) -> u64 {
    c.dropped.get(reason).copied().unwrap_or(0)
}

/// Sends `count` requests (mode 3, or a mode 6 READVAR) 20 ms apart from inside `host` with
/// python3, waits 1 s for stragglers, and returns (normal replies, RATE kisses, bytes in
/// the largest reply).
const BLASTER: &str = r#"
import os, socket, sys, time
server, count, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
normal = kisses = largest = 0
def drain():
    global normal, kisses, largest
    while True:
        try:
            data = s.recv(2048)
        except BlockingIOError:
            return
        largest = max(largest, len(data))
        if len(data) >= 48 and data[1] == 0 and data[12:16] == b"RATE":
            kisses += 1
        else:
            normal += 1
for i in range(count):
    if mode == 6:
        packet = bytes([0x16, 0x02, 0x00, 0x01]) + bytes(8)
    else:
        packet = bytes([0x23]) + bytes(39) + os.urandom(8)
    s.sendto(packet, (server, 123))
    time.sleep(0.02)
    drain()
end = time.time() + 1.0
while time.time() < end:
    time.sleep(0.05)
    drain()
print(normal, kisses, largest)
"#;

fn blast(host: &Host, server: &str, count: u32, mode: u8) -> (u32, u32, usize) {
    let out = host.run(
        "/usr/bin/python3",
        ["-c", BLASTER, server, &count.to_string(), &mode.to_string()],
    );
    assert!(
        out.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<usize> = text
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect();
    (v[0] as u32, v[1] as u32, v[2])
}

fn answered_within(net: &TestNet, client: usize, server: std::net::IpAddr) -> bool {
    wait_for(Duration::from_secs(12), Duration::from_millis(200), || {
        ntpdig_query(net.host(client), server).is_some()
    })
}

#[test]
fn acl_permits_one_host_and_denies_the_other() {
    let test = "acl_permits_one_host_and_denies_the_other";
    if !require_root(test) || binary(test, "ntpdig").is_none() {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 3);
    let (h1, h2) = (net.host(1), net.host(2));
    let access = format!(
        "[access]\nsynchronization = 2001\n[acl.2001]\nrules = [ {{ action = \"permit\", source = \"{}\" }}, \
         {{ action = \"permit\", source = \"{}\" }}, {{ action = \"deny\", source = \"any\" }} ]\n",
        h1.ipv4(),
        h1.ipv6()
    );
    let proc = start_meridiand(&net, &dir, &access);
    for v6 in [false, true] {
        let server = net.host(0).ip(v6);
        assert!(
            answered_within(&net, 1, server),
            "permitted host got no time from {server}: {}",
            proc.describe()
        );
        assert_eq!(
            ntpdig_query(h2, server),
            None,
            "denied host got an answer from {server}"
        );
    }
    let before = counters(&dir);
    assert!(dropped(&before, "access-denied") >= 2, "{before:?}");
    // The synchronization right gives time, not control queries: a mode 6 query from the
    // permitted host gets nothing and is counted as refused by access control.
    let server = net.host(0).ipv4().to_string();
    let (normal, kisses, _) = blast(h1, &server, 3, 6);
    assert_eq!((normal, kisses), (0, 0), "mode 6 answered");
    let after = counters(&dir);
    assert_eq!(
        dropped(&after, "access-restricted"),
        dropped(&before, "access-restricted") + 3,
        "{after:?}"
    );
    assert!(proc.is_running(), "{}", proc.describe());
}

#[test]
fn rate_limit_answers_the_burst_then_kisses_or_drops() {
    let test = "rate_limit_answers_the_burst_then_kisses_or_drops";
    if !require_root(test) {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let proc = start_meridiand(
        &net,
        &dir,
        "[rate-limit]\ninterval = \"10s\"\nburst = 3\nleak = 0\nkod = 2\n",
    );
    let server = net.host(0).ipv4().to_string();
    let count = 40;
    let (normal, kisses, largest) = blast(net.host(1), &server, count, 3);
    // 40 requests in 0.8 s at "one per 10 s, burst 3": the burst is answered, then about
    // half of the rest get a RATE kiss and the others nothing.
    assert_eq!(
        normal,
        3,
        "answers beyond the burst ({kisses} kisses): {}",
        proc.describe()
    );
    assert!(
        (5..=count - 3 - 5).contains(&kisses),
        "{kisses} kisses of {} limited requests",
        count - 3
    );
    assert!(largest <= 48, "a reply larger than the request: {largest}");
    let c = counters(&dir);
    assert_eq!(c.answered, 3, "{c:?}");
    assert_eq!(dropped(&c, "rate-kod"), u64::from(kisses), "{c:?}");
    assert_eq!(
        dropped(&c, "rate-limited"),
        u64::from(count - 3 - kisses),
        "{c:?}"
    );
    // Another client is not affected by the first one's rate.
    assert!(ntpdig_query(net.host(0), net.host(0).ipv4().into()).is_some());
}

#[test]
fn interface_with_receive_false_gets_no_answers() {
    let test = "interface_with_receive_false_gets_no_answers";
    if !require_root(test) || binary(test, "ntpdig").is_none() {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let proc = start_meridiand(
        &net,
        &dir,
        "[[interface]]\nname = \"eth0\"\nreceive = false\n",
    );
    let server = net.host(0).ipv4().into();
    assert_eq!(
        ntpdig_query(net.host(1), server),
        None,
        "answered on a disabled interface"
    );
    let c = counters(&dir);
    assert!(dropped(&c, "interface-disabled") >= 1, "{c:?}");
    // Loopback still receives: a local client is answered.
    assert!(
        answered_within(&net, 0, "127.0.0.1".parse().unwrap()),
        "no answer on lo: {}",
        proc.describe()
    );
}
