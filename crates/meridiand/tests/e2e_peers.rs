//! Symmetric peers end to end: real `meridiand` processes in network namespaces. Peer A serves
//! the host clock as a stratum-3 local reference (read-only clock); peer B runs a simulated
//! clock 0.8 s off. Whichever side is configured active, B synchronizes to A within 1 ms
//! (measured from a third host with `ntpdig`) and A does not move. A flood of mode 1 packets
//! from 200 addresses creates at most `max-dynamic-sessions` passive associations and stops
//! none of the existing ones.
//!
//! Needs root (network namespaces); prints SKIPPED otherwise. No process can set the clock.

mod support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    binary, control, local_server_config, ntpdig_query, require_root, start_meridiand, status,
    temp_dir, wait_for, wait_synchronized, TestNet,
};

fn peer_table(address: &str) -> String {
    format!(
        "\n[[unicast-peer]]\naddress = \"{address}\"\niburst = true\nminpoll = 0\nmaxpoll = 2\n"
    )
}

fn simulated_config(offset: &str) -> String {
    format!(
        "[service]\nport = 123\n\n[clock]\ndriver = \"simulated\"\ninitial-offset = \"{offset}\"\n\
         frequency-ppm = 30.0\n"
    )
}

fn sessions(socket: &Path) -> Vec<Value> {
    control(socket, "sessions")
        .and_then(|v| v["sessions"].as_array().cloned())
        .unwrap_or_default()
}

fn session_of(socket: &Path, source: &str) -> Option<Value> {
    sessions(socket).into_iter().find(|s| s["source"] == source)
}

/// A (host 0, stratum 3) and B (host 1, 0.8 s off); `b_active`: B has the `[[unicast-peer]]`
/// toward A, else A toward B. Host 2 measures B.
fn higher_stratum_peer_follows(test: &str, b_active: bool) {
    if !require_root(test) || binary(test, "ntpdig").is_none() {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 3);
    let (a_ip, b_ip) = (
        net.host(0).ipv4().to_string(),
        net.host(1).ipv4().to_string(),
    );
    let mut a_body = local_server_config(3);
    let mut b_body = simulated_config("+0.8s");
    if b_active {
        b_body.push_str(&peer_table(&a_ip));
    } else {
        a_body.push_str(&peer_table(&b_ip));
    }
    let (a, a_sock) = start_meridiand(net.host(0), dir.path(), "a", &a_body);
    let (b, b_sock) = start_meridiand(net.host(1), dir.path(), "b", &b_body);
    let start = Instant::now();
    let st = wait_synchronized(&b_sock, Duration::from_secs(40))
        .unwrap_or_else(|| panic!("B never synchronized:\n{}\n--- A:\n{}", b.log(), a.log()));
    eprintln!("{test}: B synchronized after {:?}", start.elapsed());
    assert_eq!(st["stratum"], 4, "one below A: {st}");
    assert_eq!(st["system_peer"], a_ip.as_str());

    // Truth from outside: the time B serves is within 1 ms of the host clock.
    let mut offset = None;
    wait_for(Duration::from_secs(60), Duration::from_millis(500), || {
        offset = ntpdig_query(net.host(2), net.host(1).ipv4().into()).map(|x| x.offset);
        offset.is_some_and(|o| o.abs() < 1e-3)
    });
    eprintln!(
        "{test}: B serves {offset:?} s off after {:?}",
        start.elapsed()
    );
    let offset = offset.unwrap_or_else(|| panic!("no answer from B:\n{}", b.log()));
    assert!(offset.abs() < 1e-3, "B is {offset} s off:\n{}", b.log());

    // A did not move: still stratum 3 on its local reference, serving the host clock.
    let ast = status(&a_sock).expect("A's status");
    assert_eq!(ast["stratum"], 3, "{ast}");
    assert_eq!(ast["reference_id"], "127.127.1.0", "{ast}");
    let a_offset = ntpdig_query(net.host(2), net.host(0).ipv4().into()).expect("A answers");
    assert!(a_offset.offset.abs() < 1e-3, "A serves {a_offset:?}");

    // Each side shows the other with its modes; only the active side's is configured.
    let on_a = session_of(&a_sock, &b_ip).unwrap_or_else(|| panic!("A has no session of B"));
    let on_b = session_of(&b_sock, &a_ip).unwrap_or_else(|| panic!("B has no session of A"));
    let (active, passive) = if b_active {
        (&on_b, &on_a)
    } else {
        (&on_a, &on_b)
    };
    assert_eq!(active["local_mode"], "sym_active", "{active}");
    assert_eq!(active["peer_mode"], "sym_passive", "{active}");
    assert_eq!(active["configured"], true);
    // The other meridiand answered the active side's mode 3 requests: calibrated.
    let words = |s: &Value| {
        s["verbose"]["status"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert!(words(active).iter().any(|w| w == "calibrated"), "{active}");
    assert!(
        !words(passive).iter().any(|w| w == "calibrated"),
        "{passive}"
    );
    assert_eq!(passive["local_mode"], "sym_passive", "{passive}");
    assert_eq!(passive["peer_mode"], "sym_active", "{passive}");
    assert_eq!(passive["configured"], false);
    assert!(
        !passive["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "configured"),
        "{passive}"
    );
    assert!(passive["verbose"]["status"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "dynamic"));
    // A never selects B: B is synchronized to A (its reference is A's address).
    assert!(
        !on_a["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "master"),
        "{on_a}"
    );
    // `ntpq -p` in B's namespace shows A as B's system peer, with B's own mode toward it
    // (mode 6 lists symmetric associations too).
    if binary(test, "ntpq").is_some() {
        let out = support::ntpq_command(net.host(1), &["-n", "-p", "127.0.0.1"])
            .output()
            .expect("ntpq");
        let text = String::from_utf8_lossy(&out.stdout);
        let row = text
            .lines()
            .find(|l| l.contains(&a_ip))
            .unwrap_or_else(|| panic!("A not listed:\n{text}"));
        assert!(row.starts_with('*'), "A is B's system peer: {text}");
    }
    assert!(a.is_running() && b.is_running());
}

#[test]
fn active_peer_on_a_simulated_clock_follows_a_stratum_3_peer() {
    higher_stratum_peer_follows(
        "active_peer_on_a_simulated_clock_follows_a_stratum_3_peer",
        true,
    );
}

#[test]
fn passive_peer_on_a_simulated_clock_follows_a_stratum_3_active_peer() {
    higher_stratum_peer_follows(
        "passive_peer_on_a_simulated_clock_follows_a_stratum_3_active_peer",
        false,
    );
}

const FAKE_PEER_ENV: &str = "MERIDIAN_TEST_FAKE_PEER";

/// NTP timestamp of the host clock now.
fn ntp_now() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    ((d.as_secs() + 2_208_988_800) << 32) + ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}

/// Run by `active_peer_sends_mode_3_before_mode_1` inside host 1: a stand-in peer on port
/// 123 that records the mode of every packet for a few seconds and, with `answer`, answers
/// mode 3 requests as a stratum 2 server would.
#[test]
#[ignore = "helper: a stand-in peer inside a test namespace"]
fn fake_peer_helper() {
    let answer = std::env::var(FAKE_PEER_ENV).expect("run by the calibration test") == "answer";
    let socket = UdpSocket::bind("0.0.0.0:123").expect("bind port 123");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut modes = Vec::new();
    let end = Instant::now() + Duration::from_secs(9);
    let mut buf = [0u8; 512];
    while Instant::now() < end {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        if len < 48 {
            continue;
        }
        let mode = buf[0] & 7;
        modes.push(mode.to_string());
        if answer && mode == 3 {
            let rx = ntp_now();
            let mut reply = [0u8; 48];
            reply[0] = (buf[0] & 0x38) | 4; // leap 0, the request's version, mode 4
            reply[1] = 2;
            reply[2] = buf[2];
            reply[3] = 0xec; // precision 2^-20
            reply[12..16].copy_from_slice(&[198, 18, 0, 200]);
            reply[16..24].copy_from_slice(&(rx - (1u64 << 32)).to_be_bytes());
            reply[24..32].copy_from_slice(&buf[40..48]);
            reply[32..40].copy_from_slice(&rx.to_be_bytes());
            reply[40..48].copy_from_slice(&ntp_now().to_be_bytes());
            socket.send_to(&reply, from).expect("answer");
        }
    }
    println!("modes: {}", modes.join(","));
}

/// Comware's exchange before the peers settle: the active side's first packets are mode 3;
/// after a valid mode 4 answer it sends mode 1. A peer that never answers mode 3 gets mode 1
/// after two requests all the same.
#[test]
fn active_peer_sends_mode_3_before_mode_1() {
    let test = "active_peer_sends_mode_3_before_mode_1";
    if !require_root(test) {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let b_ip = net.host(1).ipv4().to_string();
    let me = std::env::current_exe().unwrap();
    for (tag, want_mode3) in [("answer", 1), ("silent", 2)] {
        let helper = net
            .host(1)
            .command(
                &me,
                ["--ignored", "--exact", "fake_peer_helper", "--nocapture"],
            )
            .env(FAKE_PEER_ENV, tag)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let body = local_server_config(3) + &peer_table(&b_ip);
        let (a, a_sock) = start_meridiand(net.host(0), dir.path(), &format!("a-{tag}"), &body);
        let out = helper.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let modes: Vec<&str> = text
            .lines()
            .find_map(|l| l.strip_prefix("modes: "))
            .unwrap_or_else(|| panic!("{text}\n{}", String::from_utf8_lossy(&out.stderr)))
            .split(',')
            .collect();
        eprintln!("{test}: {tag}: modes {modes:?}");
        assert!(
            modes.len() > want_mode3 + 1,
            "{tag}: {modes:?}\n{}",
            a.log()
        );
        assert!(
            modes[..want_mode3].iter().all(|m| *m == "3"),
            "{tag}: {modes:?}"
        );
        assert!(
            modes[want_mode3..].iter().all(|m| *m == "1"),
            "{tag}: {modes:?}"
        );
        let session = session_of(&a_sock, &b_ip).expect("A's session of the peer");
        let word = if tag == "answer" {
            "calibrated"
        } else {
            "uncalibrated"
        };
        assert!(
            session["verbose"]["status"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w == word),
            "{tag}: {session}"
        );
        assert!(a.is_running());
        a.stop();
    }
}

/// Flood sources: 198.18.0.50 .. 198.18.0.249 on host 2.
const FLOOD_FIRST: u8 = 50;
const FLOOD_COUNT: u8 = 200;
const FLOOD_ENV: &str = "MERIDIAN_TEST_FLOOD_TARGET";

/// Run by `mode1_flood_is_capped_and_stops_nothing` inside host 2 (this same test binary,
/// `--ignored --exact`): one unauthenticated mode 1 packet from each flood address.
#[test]
#[ignore = "helper: sends the flood from inside a test namespace"]
fn flood_helper() {
    let target: SocketAddr = std::env::var(FLOOD_ENV)
        .expect("run by the flood test")
        .parse()
        .unwrap();
    let mut sent = 0;
    for i in 0..FLOOD_COUNT {
        let source = Ipv4Addr::new(198, 18, 0, FLOOD_FIRST + i);
        let socket = UdpSocket::bind((source, 0)).expect("bind a flood address");
        let mut packet = [0u8; 48];
        packet[0] = 0x21; // version 4, mode 1
        packet[2] = 6;
        packet[40..48].copy_from_slice(&(0x8000_0000_0000_0000u64 + u64::from(i)).to_be_bytes());
        socket.send_to(&packet, target).expect("send");
        sent += 1;
    }
    println!("flood sent {sent}");
}

/// attacks.md S2, S3: a flood of mode 1 packets from many sources is capped by max-dynamic-sessions
/// and stops no configured association.
#[test]
fn mode1_flood_is_capped_and_stops_nothing() {
    let test = "mode1_flood_is_capped_and_stops_nothing";
    if !require_root(test) {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 3);
    let a_ip = net.host(0).ipv4().to_string();
    let b_ip = net.host(1).ipv4().to_string();
    let a_body =
        local_server_config(3).replace("port = 123\n", "port = 123\nmax-dynamic-sessions = 20\n");
    let (a, a_sock) = start_meridiand(net.host(0), dir.path(), "a", &a_body);
    let mut b_body = simulated_config("+0.05s");
    b_body.push_str(&peer_table(&a_ip));
    let (b, b_sock) = start_meridiand(net.host(1), dir.path(), "b", &b_body);
    wait_synchronized(&b_sock, Duration::from_secs(40))
        .unwrap_or_else(|| panic!("B never synchronized:\n{}\n--- A:\n{}", b.log(), a.log()));
    assert!(
        session_of(&a_sock, &b_ip).is_some(),
        "A has B's passive association"
    );

    // 200 spoofed sources on host 2's interface, one mode 1 packet from each.
    let batch = dir.join("flood.ip");
    let lines: String = (0..FLOOD_COUNT)
        .map(|i| format!("addr add 198.18.0.{}/24 dev eth0\n", FLOOD_FIRST + i))
        .collect();
    std::fs::write(&batch, lines).unwrap();
    let out = net.host(2).run("ip", ["-batch", batch.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let me = std::env::current_exe().unwrap();
    let out = net
        .host(2)
        .command(&me, ["--ignored", "--exact", "flood_helper", "--nocapture"])
        .env(FLOOD_ENV, format!("{a_ip}:123"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("flood sent 200"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The dynamic associations stay at the limit; the refusals are counted.
    let mut dynamic = 0;
    let counted = wait_for(Duration::from_secs(10), Duration::from_millis(250), || {
        let st = status(&a_sock).unwrap_or_default();
        st["server_counters"]["dropped"]["dynamic-limit"]
            .as_u64()
            .is_some_and(|n| n >= 180)
    });
    let list = sessions(&a_sock);
    for s in &list {
        if s["configured"] == false {
            dynamic += 1;
        }
    }
    eprintln!("{test}: {dynamic} dynamic associations after the flood");
    assert!(counted, "refusals counted: {:?}", status(&a_sock));
    assert_eq!(dynamic, 20, "B's and 19 of the flood");
    // B's association survives and keeps working; B stays synchronized to A.
    std::thread::sleep(Duration::from_secs(6));
    let on_a = session_of(&a_sock, &b_ip).expect("B's association is still there");
    assert_eq!(
        on_a["last_receive_s"].as_u64().map(|s| s < 5),
        Some(true),
        "{on_a}"
    );
    let bst = status(&b_sock).expect("B's status");
    assert_eq!(bst["synchronized"], true, "{bst}");
    assert_eq!(bst["system_peer"], a_ip.as_str());
    let on_b = session_of(&b_sock, &a_ip).expect("B's session of A");
    assert!(on_b["reach"].as_u64().unwrap() & 0x0f == 0x0f, "{on_b}");
    assert!(a.is_running() && b.is_running());
}

/// Authentication on: B's mode 1 packets carry a trusted key and get a passive association
/// on A, bound to that key; C's unauthenticated mode 1 packets create nothing.
#[test]
fn only_authenticated_active_peers_get_a_passive_association() {
    let test = "only_authenticated_active_peers_get_a_passive_association";
    if !require_root(test) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir(test);
    let net = TestNet::new(test, 3);
    let a_ip = net.host(0).ipv4().to_string();
    let (b_ip, c_ip) = (
        net.host(1).ipv4().to_string(),
        net.host(2).ipv4().to_string(),
    );
    let keys = dir.join("peers.keys");
    std::fs::write(
        &keys,
        "3 aes128-cmac HEX:000102030405060708090a0b0c0d0e0f\n",
    )
    .unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let auth = format!(
        "\n[authentication]\nenable = true\nkeys-file = \"{}\"\ntrusted = [3]\n",
        keys.display()
    );
    let (a, a_sock) = start_meridiand(
        net.host(0),
        dir.path(),
        "a",
        &(local_server_config(3) + &auth),
    );
    let b_body = simulated_config("+0.05s") + &peer_table(&a_ip) + "key-id = 3\n" + &auth;
    let (b, b_sock) = start_meridiand(net.host(1), dir.path(), "b", &b_body);
    let c_body = simulated_config("+0.05s") + &peer_table(&a_ip);
    let (c, c_sock) = start_meridiand(net.host(2), dir.path(), "c", &c_body);
    wait_synchronized(&b_sock, Duration::from_secs(40))
        .unwrap_or_else(|| panic!("B never synchronized:\n{}\n--- A:\n{}", b.log(), a.log()));
    let on_a = session_of(&a_sock, &b_ip).expect("B's passive association on A");
    assert_eq!(on_a["auth"], "ok", "{on_a}");
    let on_b = session_of(&b_sock, &a_ip).unwrap();
    assert_eq!(on_b["auth"], "ok");
    // B's keyed mode 3 requests were answered by A's server path with the same key.
    assert!(
        on_b["verbose"]["status"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w == "calibrated"),
        "{on_b}"
    );
    let refused = wait_for(Duration::from_secs(10), Duration::from_millis(250), || {
        status(&a_sock).is_some_and(|s| {
            s["server_counters"]["dropped"]["peer-not-authenticated"]
                .as_u64()
                .is_some_and(|n| n >= 3)
        })
    });
    assert!(refused, "C's packets were refused: {:?}", status(&a_sock));
    assert!(session_of(&a_sock, &c_ip).is_none(), "no association for C");
    assert_eq!(status(&c_sock).unwrap()["synchronized"], false);
    assert!(a.is_running() && b.is_running() && c.is_running());
}
