//! End to end in network namespaces, attacks.md G4 (CVE-2016-7426): a client whose own
//! server path has aggressive rate limits keeps accepting the replies of its server S while
//! an attacker floods it with packets spoofed "from" S: client requests and bogus replies to
//! the NTP port (rate limited or refused there), and bogus replies to the association's own
//! socket (refused by the packet tests). The rate limits never touch S's real replies.
//!
//! Needs root (network namespaces, a raw socket for the spoofed sources); prints SKIPPED
//! otherwise. Every meridiand runs without CAP_SYS_TIME (read-only and simulated clocks).

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::{
    control, local_server_config, require_root, simulated_client_config, start_meridiand, status,
    temp_dir, wait_synchronized, TestNet,
};

/// Sends, for `seconds`, rounds of three spoofed IPv4/UDP packets from `src`:123 to `dst`:
/// a client request to port 123, a bogus server reply (random origin) to port 123, and a
/// bogus server reply to `port` (the association's socket). Prints the number of rounds.
const SPOOFER: &str = r#"
import os, socket, struct, sys, time
src, dst, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
def send(sport, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    s.sendto(ip + udp, (dst, 0))
rounds = 0
end = time.time() + seconds
while time.time() < end:
    request = bytes([0x23]) + bytes(39) + os.urandom(8)
    # LI 0, VN 4, mode 4, stratum 1, then a random origin and timestamps.
    bogus = bytes([0x24, 1, 0, 0xec]) + bytes(8) + b"GPS\0" + os.urandom(32)
    send(123, 123, request)
    send(123, 123, bogus)
    send(123, port, bogus)
    rounds += 1
    time.sleep(0.004)
print("rounds", rounds)
"#;

/// The local port of meridiand's association socket toward `server`:123 in host `h`.
fn association_port(net: &TestNet, h: usize, server: &str) -> Option<u16> {
    let out = net.host(h).run("ss", ["-Hnua"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let peer = format!("{server}:123");
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() >= 5 && f[4] == peer)
        .and_then(|f| f[3].rsplit(':').next()?.parse().ok())
}

fn session_of(socket: &Path, source: &str) -> Option<Value> {
    control(socket, "sessions")?["sessions"]
        .as_array()?
        .iter()
        .find(|s| s["source"] == source)
        .cloned()
}

fn dropped(st: &Value, reason: &str) -> u64 {
    st["server_counters"]["dropped"][reason]
        .as_u64()
        .unwrap_or(0)
}

/// attacks.md G4: aggressive limits; a flood of spoofed requests and bogus replies "from"
/// server S; S's real replies are still accepted (reach stays full, still synchronized).
#[test]
fn g4_spoofed_flood_from_our_server_leaves_its_replies_accepted() {
    let test = "g4_spoofed_flood_from_our_server_leaves_its_replies_accepted";
    if !require_root(test) {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 3);
    let s_ip = net.host(0).ipv4().to_string();
    let c_ip = net.host(1).ipv4().to_string();
    let (s, _) = start_meridiand(net.host(0), dir.path(), "s", &local_server_config(1));
    let body = format!(
        "{}\n[rate-limit]\ninterval = \"60s\"\nburst = 1\nleak = 0\nkod = 0\n",
        simulated_client_config(&s_ip, "+0.02s", 10.0)
    );
    let (c, c_sock) = start_meridiand(net.host(1), dir.path(), "c", &body);
    wait_synchronized(&c_sock, Duration::from_secs(40))
        .unwrap_or_else(|| panic!("C never synchronized:\n{}\n--- S:\n{}", c.log(), s.log()));
    let port = association_port(&net, 1, &s_ip).expect("C's association socket toward S");
    assert_ne!(port, 123);

    let before = status(&c_sock).expect("C's status");
    let out = net.host(2).run(
        "/usr/bin/python3",
        ["-c", SPOOFER, &s_ip, &c_ip, &port.to_string(), "20"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "spoofer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rounds: u64 = text
        .trim()
        .strip_prefix("rounds ")
        .and_then(|n| n.parse().ok())
        .expect("rounds");
    eprintln!("{test}: {rounds} rounds of spoofed packets");
    assert!(rounds > 500, "{rounds}");

    let after = status(&c_sock).expect("C's status");
    // The flood arrived and the limits were in force on C's server path...
    let limited = dropped(&after, "rate-limited") - dropped(&before, "rate-limited");
    let refused = dropped(&after, "not-a-request") - dropped(&before, "not-a-request");
    assert!(
        limited + 2 >= rounds * 9 / 10,
        "{limited} of {rounds}: {after}"
    );
    assert!(refused >= rounds * 9 / 10, "{refused} of {rounds}: {after}");
    // The bogus replies reached the association's socket and were refused there (C logs
    // each rejection at --debug).
    let rejected = c
        .log()
        .lines()
        .filter(|l| l.contains(&format!("reply from {s_ip}:123 rejected")))
        .count() as u64;
    assert!(
        rejected >= rounds * 9 / 10,
        "{rejected} of {rounds} refused"
    );
    // ...and every real reply of S during the flood counted: the last eight polls reached S.
    let session = session_of(&c_sock, &s_ip).expect("C's session of S");
    assert_eq!(session["reach"], 255, "{session}");
    assert!(
        session["last_receive_s"].as_u64().is_some_and(|s| s <= 5),
        "{session}"
    );
    assert_eq!(after["synchronized"], true, "{after}");
    assert_eq!(after["system_peer"], s_ip.as_str(), "{after}");
    assert!(c.is_running() && s.is_running());
}
