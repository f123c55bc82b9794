//! Kiss-o'-Death between two real `meridiand` peers in network namespaces: A refuses the
//! mode 1 packets of B (active toward A) with a kiss, and B acts on it.
//!
//! * RATE: A rate-limits with `kod` and has no room for dynamic associations
//!   (`max-dynamic-sessions = 0`), so every mode 1 packet of B goes through A's gate. B's poll
//!   toward A grows at once to what the kiss asks for (A's interval), capped by B's maxpoll,
//!   and B keeps polling. Without the kisses, B's poll would only grow after 8 unanswered
//!   polls, one step per poll: 8 s after about 14 s, 16 s after about 22 s, later than the
//!   10 s allowed here.
//! * RSTR: B has only the `synchronization` right on A. A answers B's mode 3 calibration
//!   request (B calibrates), then refuses B's first mode 1 packet with an RSTR kiss: B's
//!   association shows `denied` and B sends nothing more (A's received counter stops).
//! * Keyed RATE: A and B share a trusted key and B's peer association uses it. A's RATE kiss
//!   is signed with that key (a keyed association ignores an unsigned kiss), so B's poll
//!   again grows at once.
//!
//! Needs root (network namespaces); prints SKIPPED otherwise. No process can set the clock.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{control, require_root, start_meridiand, status, temp_dir, wait_for, TestNet};

/// A: the host clock (read-only) as a stratum-3 local reference, plus `service` lines and
/// further tables.
fn a_config(service: &str, tables: &str) -> String {
    format!(
        "[service]\nport = 123\n{service}\n[clock]\ndriver = \"read-only\"\n\n\
         [local-reference]\naddress = \"127.127.1.0\"\nstratum = 3\n{tables}"
    )
}

/// B: a simulated clock and an active peer toward `a` (no iburst: one packet per poll).
fn b_config(a: &str, maxpoll: i8) -> String {
    format!(
        "[service]\nport = 123\n\n[clock]\ndriver = \"simulated\"\ninitial-offset = \"+0.2s\"\n\n\
         [[unicast-peer]]\naddress = \"{a}\"\nminpoll = 0\nmaxpoll = {maxpoll}\n"
    )
}

fn session_of(socket: &Path, source: &str) -> Option<Value> {
    control(socket, "sessions")?["sessions"]
        .as_array()?
        .iter()
        .find(|s| s["source"] == source)
        .cloned()
}

fn status_words(session: &Value) -> Vec<String> {
    session["verbose"]["status"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| w.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn dropped(socket: &Path, reason: &str) -> u64 {
    status(socket).map_or(0, |s| {
        s["server_counters"]["dropped"][reason]
            .as_u64()
            .unwrap_or(0)
    })
}

#[test]
fn rate_kiss_from_a_meridiand_peer_lengthens_the_active_poll_up_to_maxpoll() {
    let test = "rate_kiss_from_a_meridiand_peer_lengthens_the_active_poll_up_to_maxpoll";
    if !require_root(test) {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 3);
    let a_ip = net.host(0).ipv4().to_string();
    // One request per 16 s, no burst, no leak, every limited packet kissed.
    let a_body = a_config(
        "max-dynamic-sessions = 0\n",
        "\n[rate-limit]\ninterval = \"16s\"\nburst = 1\nleak = 0\nkod = 1\n",
    );
    let (a, a_sock) = start_meridiand(net.host(0), dir.path(), "a", &a_body);
    std::thread::sleep(Duration::from_millis(300));
    // B1 may go up to 64 s (the kiss asks for 16 s); B2 is capped at 8 s.
    let (b1, b1_sock) = start_meridiand(net.host(1), dir.path(), "b1", &b_config(&a_ip, 6));
    let (b2, b2_sock) = start_meridiand(net.host(2), dir.path(), "b2", &b_config(&a_ip, 3));
    let start = Instant::now();
    // (seconds since B started, poll) at each change of B's poll toward A.
    let (mut polls1, mut polls2) = (Vec::new(), Vec::new());
    while start.elapsed() < Duration::from_secs(20) {
        for (sock, polls) in [(&b1_sock, &mut polls1), (&b2_sock, &mut polls2)] {
            if let Some(p) = session_of(sock, &a_ip).and_then(|s| s["poll_s"].as_u64()) {
                if polls.last().map(|(_, last)| *last) != Some(p) {
                    polls.push((start.elapsed().as_secs_f64(), p));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let kisses = dropped(&a_sock, "rate-kod");
    eprintln!("{test}: B1 polls {polls1:?}, B2 polls {polls2:?}, A sent {kisses} RATE kisses");
    let logs = || {
        format!(
            "--- A:\n{}\n--- B1:\n{}\n--- B2:\n{}",
            a.log(),
            b1.log(),
            b2.log()
        )
    };
    assert!(kisses >= 2, "A kissed both peers: {}", logs());
    let reached = |polls: &[(f64, u64)], at_least: u64| {
        polls.iter().find(|(_, p)| *p >= at_least).map(|(t, _)| *t)
    };
    let max = |polls: &[(f64, u64)]| polls.iter().map(|(_, p)| *p).max().unwrap_or(0);
    assert!(
        reached(&polls1, 16).is_some_and(|t| t < 10.0) && max(&polls1) <= 64,
        "B1's poll follows the kiss at once, within its maxpoll: {polls1:?}\n{}",
        logs()
    );
    assert!(
        reached(&polls2, 8).is_some_and(|t| t < 10.0) && max(&polls2) == 8,
        "B2's poll grows at once to its maxpoll and never past it: {polls2:?}\n{}",
        logs()
    );
    for (sock, name) in [(&b1_sock, "B1"), (&b2_sock, "B2")] {
        let s = session_of(sock, &a_ip).expect("B's session of A");
        let words = status_words(&s);
        assert!(
            words.iter().any(|w| w == "calibrated"),
            "{name}'s first mode 3 passed A's limit: {s}"
        );
        assert!(
            !words.iter().any(|w| w == "denied"),
            "a RATE kiss does not stop {name}: {s}"
        );
    }
    assert!(a.is_running() && b1.is_running() && b2.is_running());
}

#[test]
fn rstr_kiss_from_a_meridiand_stops_an_active_peer_without_the_peer_right() {
    let test = "rstr_kiss_from_a_meridiand_stops_an_active_peer_without_the_peer_right";
    if !require_root(test) {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let (a_ip, b_ip) = (
        net.host(0).ipv4().to_string(),
        net.host(1).ipv4().to_string(),
    );
    // B may get time from A (mode 3) but not peer with it.
    let access = format!(
        "\n[access]\nsynchronization = 2001\n\n[acl.2001]\n\
         rules = [ {{ action = \"permit\", source = \"{b_ip}\" }} ]\n"
    );
    let (a, a_sock) = start_meridiand(net.host(0), dir.path(), "a", &a_config("", &access));
    std::thread::sleep(Duration::from_millis(300));
    let (b, b_sock) = start_meridiand(net.host(1), dir.path(), "b", &b_config(&a_ip, 2));
    let mut session = Value::Null;
    let denied = wait_for(Duration::from_secs(15), Duration::from_millis(200), || {
        session = session_of(&b_sock, &a_ip).unwrap_or_default();
        status_words(&session).iter().any(|w| w == "denied")
    });
    let logs = || format!("--- A:\n{}\n--- B:\n{}", a.log(), b.log());
    assert!(
        denied,
        "B's association shows denied: {session}\n{}",
        logs()
    );
    assert!(
        status_words(&session).iter().any(|w| w == "calibrated"),
        "A answered B's mode 3 first: {session}"
    );
    assert_eq!(
        dropped(&a_sock, "rstr-kod"),
        1,
        "one kiss was enough: {}",
        logs()
    );
    assert!(
        session_of(&a_sock, &b_ip).is_none(),
        "A has no association with B"
    );
    // B stops: nothing more reaches A over several of B's polls (at most 4 s).
    let received = |s: &Path| status(s).and_then(|v| v["server_counters"]["received"].as_u64());
    let before = received(&a_sock).expect("A's counters");
    std::thread::sleep(Duration::from_secs(10));
    let after = received(&a_sock).expect("A's counters");
    eprintln!("{test}: A received {before} then {after}; B: {session}");
    assert_eq!(before, after, "B sent nothing after the kiss\n{}", logs());
    assert!(a.is_running() && b.is_running());
}

#[test]
fn signed_rate_kiss_from_a_keyed_meridiand_lengthens_the_keyed_peer_poll() {
    let test = "signed_rate_kiss_from_a_keyed_meridiand_lengthens_the_keyed_peer_poll";
    if !require_root(test) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let a_ip = net.host(0).ipv4().to_string();
    let keys = dir.path().join("kod.keys");
    std::fs::write(
        &keys,
        "5 sha1 HEX:000102030405060708090a0b0c0d0e0f10111213\n",
    )
    .unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let auth = format!(
        "\n[authentication]\nenable = true\nkeys-file = \"{}\"\ntrusted = [5]\n",
        keys.display()
    );
    let a_body = a_config(
        "max-dynamic-sessions = 0\n",
        &format!("\n[rate-limit]\ninterval = \"16s\"\nburst = 1\nleak = 0\nkod = 1\n{auth}"),
    );
    let (a, a_sock) = start_meridiand(net.host(0), dir.path(), "a", &a_body);
    std::thread::sleep(Duration::from_millis(300));
    let b_body = b_config(&a_ip, 6) + "key-id = 5\n" + &auth;
    let (b, b_sock) = start_meridiand(net.host(1), dir.path(), "b", &b_body);
    let start = Instant::now();
    let mut polls = Vec::new();
    while start.elapsed() < Duration::from_secs(12) {
        if let Some(p) = session_of(&b_sock, &a_ip).and_then(|s| s["poll_s"].as_u64()) {
            if polls.last().map(|(_, last)| *last) != Some(p) {
                polls.push((start.elapsed().as_secs_f64(), p));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let kisses = dropped(&a_sock, "rate-kod");
    let session = session_of(&b_sock, &a_ip).unwrap_or_default();
    eprintln!("{test}: B polls {polls:?}, A sent {kisses} RATE kisses; B: {session}");
    let logs = || format!("--- A:\n{}\n--- B:\n{}", a.log(), b.log());
    assert!(kisses >= 1, "A kissed B: {}", logs());
    assert_eq!(session["auth"], "ok", "B's association is keyed: {session}");
    assert!(
        polls.iter().any(|(t, p)| *p >= 16 && *t < 10.0),
        "B's keyed association acted on the signed kiss at once: {polls:?}\n{}",
        logs()
    );
    assert!(
        status_words(&session).iter().any(|w| w == "calibrated"),
        "B's first keyed mode 3 passed A's limit: {session}"
    );
    assert!(a.is_running() && b.is_running());
}
