//! More of the broadcast and multicast modes end to end: a multicast client whose interface
//! appears only after start still joins and synchronizes; replayed and forged mode 5 packets
//! (sent from the server's own address, with the key unknown to the attacker) change nothing
//! on an authenticated client; a mode 3 request to the broadcast address is never answered;
//! and interop: chronyd's `broadcast` directive as the server of a `meridiand` client.
//!
//! Needs root (network namespaces); prints SKIPPED otherwise. No process can set the clock.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{
    binary, control, local_server_config, ntpdig_query, require_root, start_chronyd,
    start_meridiand, status, temp_dir, wait_for, TestNet,
};

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn client_config(listen: &str, extra: &str) -> String {
    format!(
        "[service]\nport = 123\n\n[clock]\ndriver = \"simulated\"\ninitial-offset = \"+0.3s\"\n\
         frequency-ppm = 15.0\n\n[[interface]]\nname = \"late0\"\n{listen}\n{extra}"
    )
}

fn wait_synced(sock: &Path, secs: u64) -> bool {
    wait_for(
        Duration::from_secs(secs),
        Duration::from_millis(500),
        || status(sock).is_some_and(|s| s["synchronized"] == true),
    )
}

/// The least-delayed of a few ntpdig measurements.
fn served(net: &TestNet, from: usize, to: std::net::IpAddr) -> Option<f64> {
    (0..5)
        .filter_map(|_| ntpdig_query(net.host(from), to))
        .min_by(|a, b| a.error.total_cmp(&b.error))
        .map(|a| a.offset)
}

#[test]
/// attacks.md B5, N5: the group is joined on an interface that appears later.
fn multicast_client_joins_an_interface_that_appears_later() {
    let test = "multicast_client_joins_an_interface_that_appears_later";
    if !require_root(test) {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let server_body = format!(
        "{}\n[[interface]]\nname = \"eth0\"\nmulticast-server = {{ poll = 4 }}\n",
        local_server_config(2)
    );
    let (server, _) = start_meridiand(net.host(0), dir.path(), "server", &server_body);
    // The client listens on `late0`, which does not exist yet.
    let (client, sock) = start_meridiand(
        net.host(1),
        dir.path(),
        "client",
        &client_config("multicast-client = true", ""),
    );
    std::thread::sleep(Duration::from_secs(20));
    let st = status(&sock).expect("client runs");
    assert_eq!(st["synchronized"], false, "nothing to hear yet: {st}");
    // Now the interface appears (eth0 renamed to late0, with its address).
    let ns = net.host(1).name().to_owned();
    ip(&["-n", &ns, "link", "set", "eth0", "down"]);
    ip(&["-n", &ns, "link", "set", "eth0", "name", "late0"]);
    ip(&["-n", &ns, "link", "set", "late0", "up"]);
    assert!(
        wait_synced(&sock, 60),
        "client never synchronized after the interface appeared:\n{}\n{}",
        client.log(),
        server.log()
    );
    assert!(
        client.log().contains("joined 224.0.1.1 on late0"),
        "{}",
        client.log()
    );
}

/// Python run inside the attacker's namespace: hears two genuine broadcasts, then takes the
/// server's address (a /32; only now, as packets from a local address would be martians)
/// and from it sends to the client the same packets again (replays), a forged packet one day
/// ahead with poll 17 and no MAC, and one with a corrupted MAC; then gives the address back.
const ATTACK: &str = r#"
import socket, struct, subprocess, sys, time
server, client = sys.argv[1], sys.argv[2]
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("0.0.0.0", 123))
rx.settimeout(60)
got = []
while len(got) < 2:
    data, src = rx.recvfrom(2048)
    if src[0] == server and data[0] & 7 == 5:
        got.append(data)
rx.close()
subprocess.run(["ip", "addr", "add", server + "/32", "dev", "eth0"], check=True)
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tx.bind((server, 123))
forged = bytearray(got[1][:48])
forged[2] = 17
secs = struct.unpack("!I", forged[40:44])[0] + 86400
forged[40:44] = struct.pack("!I", secs)
bad = bytearray(got[1])
bad[-1] ^= 1
for _ in range(5):
    for p in (got[1], got[0], bytes(forged), bytes(bad)):
        tx.sendto(p, (client, 123))
    time.sleep(0.2)
tx.close()
subprocess.run(["ip", "addr", "del", server + "/32", "dev", "eth0"], check=True)
print("sent", 20)
"#;

#[test]
/// attacks.md B1, B2, B4: replayed and forged broadcasts over the wire.
fn replayed_and_forged_broadcasts_change_nothing() {
    let test = "replayed_and_forged_broadcasts_change_nothing";
    if !require_root(test) || binary(test, "ntpdig").is_none() {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 3);
    let auth = "[authentication]\nenable = true\n\
                keys = [ { id = 4, algorithm = \"md5\", secret = \"BetterKey\" } ]\ntrusted = [4]\n";
    let server_body = format!(
        "{}{auth}\n[[interface]]\nname = \"eth0\"\nbroadcast-server = {{ poll = 4, key-id = 4 }}\n",
        local_server_config(2)
    );
    let (server, _) = start_meridiand(net.host(0), dir.path(), "server", &server_body);
    let client_body = client_config("broadcast-client = true", auth).replace("late0", "eth0");
    let (client, sock) = start_meridiand(net.host(1), dir.path(), "client", &client_body);
    assert!(
        wait_synced(&sock, 60),
        "never synchronized:\n{}",
        client.log()
    );
    let session = |sock: &Path| control(sock, "sessions").unwrap()["sessions"].clone();
    let before = session(&sock);
    assert_eq!(before.as_array().unwrap().len(), 1, "{before}");
    assert_eq!(before[0]["auth"], "ok", "{before}");

    // The attacker listens, takes the server's address and attacks.
    let attacker = net.host(2);
    let server_ip = net.host(0).ipv4().to_string();
    let client_ip = net.host(1).ipv4().to_string();
    let out = attacker.run("python3", ["-c", ATTACK, &server_ip, &client_ip]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("sent 20"),
        "attack script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_secs(1));
    let after = session(&sock);
    let rejected = |s: &serde_json::Value| s[0]["verbose"]["packets_rejected"].as_u64().unwrap();
    let received = |s: &serde_json::Value| s[0]["verbose"]["packets_received"].as_u64().unwrap();
    assert_eq!(
        after.as_array().unwrap().len(),
        1,
        "no new session: {after}"
    );
    assert_eq!(
        rejected(&after),
        rejected(&before) + 20,
        "every attack packet arrived and was rejected: {after}"
    );
    assert_eq!(after[0]["auth"], "ok");
    assert_eq!(after[0]["local_mode"], "bclient");
    // The real broadcasts are still accepted afterwards, and the time stays right.
    let r = received(&after);
    let more = wait_for(Duration::from_secs(40), Duration::from_millis(500), || {
        received(&session(&sock)) >= r + 2
    });
    assert!(
        more,
        "genuine broadcasts rejected after the attack:\n{}",
        client.log()
    );
    let st = status(&sock).unwrap();
    assert_eq!(st["synchronized"], true, "{st}");
    // Measured from the attacker's host, whose neighbour entries are its own.
    let offset = served(&net, 2, net.host(1).ipv4().into()).expect("answer");
    assert!(
        offset.abs() < 1e-3,
        "served time {offset} s off:\n{}",
        client.log()
    );
    assert!(server.is_running());
}

/// Python: a mode 3 request to the subnet broadcast address; prints how many answers came.
const ASK_BROADCAST: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.settimeout(2)
s.sendto(b"\x23" + bytes(39) + b"\x01\x02\x03\x04\x05\x06\x07\x08", (sys.argv[1], 123))
n = 0
try:
    while True:
        s.recvfrom(2048)
        n += 1
except socket.timeout:
    pass
print("answers", n)
"#;

#[test]
/// attacks.md R5, B6: requests sent to a broadcast address get no answer.
fn requests_to_the_broadcast_address_are_not_answered() {
    let test = "requests_to_the_broadcast_address_are_not_answered";
    if !require_root(test) {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let body = format!(
        "{}\n[[interface]]\nname = \"eth0\"\nbroadcast-server = {{ poll = 4 }}\n",
        local_server_config(2)
    );
    let (server, sock) = start_meridiand(net.host(0), dir.path(), "server", &body);
    assert!(wait_for(
        Duration::from_secs(10),
        Duration::from_millis(200),
        || { status(&sock).is_some() }
    ));
    let out = net
        .host(1)
        .run("python3", ["-c", ASK_BROADCAST, "198.18.0.255"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "answers 0");
    let unicast = net
        .host(1)
        .run("python3", ["-c", ASK_BROADCAST, "198.18.0.1"]);
    assert_eq!(
        String::from_utf8_lossy(&unicast.stdout).trim(),
        "answers 1",
        "the same request to the unicast address is answered"
    );
    let st = status(&sock).unwrap();
    assert!(
        st["server_counters"]["dropped"]["broadcast-destination"].as_u64() >= Some(1),
        "{st}\n{}",
        server.log()
    );
}

#[test]
fn meridiand_is_a_broadcast_client_of_chronyd() {
    let test = "meridiand_is_a_broadcast_client_of_chronyd";
    if !require_root(test) || binary(test, "ntpdig").is_none() {
        return;
    }
    let Some(chronyd) = binary(test, "chronyd") else {
        return;
    };
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let chrony = start_chronyd(
        &chronyd,
        net.host(0),
        dir.path(),
        "chronyd",
        &["local stratum 1", "allow", "broadcast 16 198.18.0.255"],
    );
    let body = client_config("broadcast-client = true", "").replace("late0", "eth0");
    let (client, sock) = start_meridiand(net.host(1), dir.path(), "client", &body);
    assert!(
        wait_synced(&sock, 90),
        "meridiand never synchronized to chronyd's broadcasts:\n{}\n{}",
        client.log(),
        chrony.log()
    );
    let st = status(&sock).unwrap();
    assert_eq!(st["stratum"], 2, "{st}");
    let sessions = control(&sock, "sessions").unwrap();
    assert_eq!(
        sessions["sessions"][0]["local_mode"], "bclient",
        "{sessions}"
    );
    let ok = wait_for(Duration::from_secs(60), Duration::from_millis(500), || {
        served(&net, 0, net.host(1).ipv4().into()).is_some_and(|o| o.abs() < 1e-3)
    });
    assert!(ok, "served time not within 1 ms:\n{}", client.log());
}
