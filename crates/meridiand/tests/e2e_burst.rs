//! End to end in network namespaces: a burst of requests that all wait in the server's
//! sockets before meridiand wakes (it is stopped with SIGSTOP while they arrive), so that
//! they are read in batches (recvmmsg, 32 at a time). The server has several addresses of
//! each family and the requests come from several sockets and addresses. Checked for every
//! request: exactly one answer, to the socket that asked, from the address the request was
//! sent to, echoing its transmit timestamp, with a receive timestamp from when the request
//! arrived (before the daemon resumed) rather than from when it was read. Once with the main
//! loop alone, once with two server threads (which also send a batch's replies together).
//!
//! Needs root (network namespaces) and python3; prints SKIPPED otherwise.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{binary, local_server_config, require_root, start_meridiand, status, temp_dir};
use support::{wait_synchronized, TestNet};

/// Opens the client sockets, sends every request (each with its own transmit timestamp),
/// lets them land, resumes the daemon (SIGCONT) and collects the answers. Prints JSON.
const BURST: &str = r#"
import json, os, select, signal, socket, struct, sys, time
spec = json.loads(sys.argv[1])
socks = []
for fam, addr in spec["clients"]:
    s = socket.socket(socket.AF_INET6 if fam == 6 else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 0))
    s.setblocking(False)
    socks.append((fam, s))
sent = []
t_start = time.time()
for rnd in range(spec["rounds"]):
    for ci, (fam, s) in enumerate(socks):
        for sa in [a for f, a in spec["servers"] if f == fam]:
            stamp = 0x0123456700000000 + len(sent) * 0x10001
            s.sendto(bytes([0x23]) + bytes(39) + struct.pack("!Q", stamp), (sa, 123))
            sent.append([ci, sa, stamp])
time.sleep(0.3)
t_resume = time.time()
os.kill(spec["pid"], signal.SIGCONT)
got = []
deadline = time.time() + 5
while len(got) < len(sent) and time.time() < deadline:
    ready, _, _ = select.select([s for _, s in socks], [], [], 0.2)
    for s in ready:
        ci = [x for _, x in socks].index(s)
        while True:
            try:
                data, frm = s.recvfrom(2048)
            except BlockingIOError:
                break
            if len(data) < 48:
                got.append([ci, frm[0], 0, 0, 0, 0, 0])
                continue
            origin, rx, tx = struct.unpack("!QQQ", data[24:48])
            got.append([ci, frm[0], origin, data[0] & 7, data[1], rx, tx])
print(json.dumps({"sent": sent, "got": got, "t_start": t_start, "t_resume": t_resume}))
"#;

/// Seconds since 1970 of an NTP timestamp (as u64 bits).
fn unix_seconds(ntp: u64) -> f64 {
    (ntp >> 32) as f64 - 2_208_988_800.0 + (ntp & 0xffff_ffff) as f64 / 4_294_967_296.0
}

fn ip(ns: &str, args: &[&str]) {
    let out = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Resumes a stopped process when dropped (also when the test fails halfway).
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        // SAFETY: kill(2) with the pid of the daemon this test started.
        unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
    }
}

fn burst_answered_from_each_address(test: &str, server_threads: usize) {
    if !require_root(test) || binary(test, "python3").is_none() {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let (srv, cl) = (net.host(0).name(), net.host(1).name());
    let v4_servers = ["198.18.0.1", "198.18.0.11", "198.18.0.12", "198.18.0.13"];
    let v6_servers = ["2001:2::1", "2001:2::11", "2001:2::12"];
    for a in &v4_servers[1..] {
        ip(srv, &["addr", "add", &format!("{a}/24"), "dev", "eth0"]);
    }
    for a in &v6_servers[1..] {
        ip(
            srv,
            &["addr", "add", &format!("{a}/64"), "dev", "eth0", "nodad"],
        );
    }
    for a in ["198.18.0.21/24", "198.18.0.22/24"] {
        ip(cl, &["addr", "add", a, "dev", "eth0"]);
    }
    ip(
        cl,
        &["addr", "add", "2001:2::21/64", "dev", "eth0", "nodad"],
    );

    let threads = format!("port = 123\nserver-threads = {server_threads}\n");
    let body = local_server_config(3).replacen("port = 123\n", &threads, 1);
    let (daemon, socket) = start_meridiand(net.host(0), dir.path(), "server", &body);
    assert!(
        wait_synchronized(&socket, Duration::from_secs(10)).is_some(),
        "server not up: {}",
        daemon.describe()
    );
    let before = status(&socket).expect("status")["server_counters"].clone();

    // 4 IPv4 sockets x 4 server addresses and 2 IPv6 sockets x 3 addresses, 5 rounds: 80
    // requests on the IPv4 socket(s) (batches of 32, 32, 16 with the main loop alone) and
    // 30 on the IPv6 one(s).
    let clients = [
        (4, "198.18.0.2"),
        (4, "198.18.0.21"),
        (4, "198.18.0.22"),
        (4, "198.18.0.2"),
        (6, "2001:2::2"),
        (6, "2001:2::21"),
    ];
    let servers: Vec<(u8, &str)> = v4_servers
        .iter()
        .map(|a| (4, *a))
        .chain(v6_servers.iter().map(|a| (6, *a)))
        .collect();
    let spec = serde_json::json!({
        "pid": daemon.pid(),
        "clients": clients,
        "servers": servers,
        "rounds": 5,
    });
    // SAFETY: kill(2) with the pid of the daemon this test started; `Resume` undoes it.
    assert_eq!(unsafe { libc::kill(daemon.pid() as i32, libc::SIGSTOP) }, 0);
    let _resume = Resume(daemon.pid());
    let out = net.host(1).run("python3", ["-c", BURST, &spec.to_string()]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("burst script: {e}: {out:?}"));

    let sent = report["sent"].as_array().unwrap();
    let got = report["got"].as_array().unwrap();
    assert_eq!(sent.len(), 110);
    let (t_start, t_resume) = (
        report["t_start"].as_f64().unwrap(),
        report["t_resume"].as_f64().unwrap(),
    );
    for request in sent {
        let (client, server, stamp) = (&request[0], &request[1], request[2].as_u64().unwrap());
        let answers: Vec<&Value> = got
            .iter()
            .filter(|a| a[2].as_u64() == Some(stamp))
            .collect();
        assert_eq!(answers.len(), 1, "request {request}: answers {answers:?}");
        let a = answers[0];
        assert_eq!(&a[0], client, "answer to another socket: {request} {a}");
        assert_eq!(&a[1], server, "answer from another address: {request} {a}");
        assert_eq!((a[3].as_u64(), a[4].as_u64()), (Some(4), Some(3)), "{a}");
        // Received while the daemon was stopped (the kernel's timestamp of that datagram),
        // sent after it resumed.
        let (rx, tx) = (
            unix_seconds(a[5].as_u64().unwrap()),
            unix_seconds(a[6].as_u64().unwrap()),
        );
        assert!(
            rx > t_start - 0.05 && rx < t_resume,
            "receive time {rx} not within the burst [{t_start}, {t_resume}]: {a}"
        );
        assert!(tx > t_resume - 0.05 && tx >= rx, "transmit time {tx}: {a}");
    }
    assert_eq!(got.len(), sent.len(), "no answer without a request");

    let after = status(&socket).expect("status")["server_counters"].clone();
    let moved = |k: &str| after[k].as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0);
    assert_eq!(
        (moved("received"), moved("answered")),
        (110, 110),
        "{after}"
    );
    assert!(daemon.is_running(), "{}", daemon.describe());
}

#[test]
fn burst_answered_from_each_address_by_the_main_loop() {
    burst_answered_from_each_address("burst_answered_from_each_address_by_the_main_loop", 0);
}

#[test]
fn burst_answered_from_each_address_by_server_threads() {
    burst_answered_from_each_address("burst_answered_from_each_address_by_server_threads", 2);
}
