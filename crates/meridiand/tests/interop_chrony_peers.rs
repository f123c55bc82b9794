//! Symmetric-mode interoperability with chrony: chronyd configured with `peer` toward
//! `meridiand` (which creates a passive association), and `meridiand` active toward a chronyd
//! that has it as `peer` too; in each case the side with the higher stratum synchronizes to
//! the other. The active meridiand's mode 3/4 calibration with chronyd is checked both ways:
//! chronyd answering client requests (`allow`) and ignoring them (the fallback to mode 1).
//!
//! Needs root (network namespaces); prints SKIPPED otherwise. chronyd runs with `-x` and
//! without CAP_SYS_TIME (it selects, it never adjusts); meridiand on a simulated clock or the
//! read-only host clock.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::{
    binary, control, local_server_config, require_root, start_chronyd, start_meridiand, status,
    temp_dir, wait_for, TestNet,
};

fn session_of(socket: &Path, source: &str) -> Option<Value> {
    control(socket, "sessions")?["sessions"]
        .as_array()?
        .iter()
        .find(|s| s["source"] == source)
        .cloned()
}

#[test]
fn passive_meridiand_follows_chronyd_peer() {
    let test = "passive_meridiand_follows_chronyd_peer";
    if !require_root(test) {
        return;
    }
    let Some(chronyd) = binary(test, "chronyd") else {
        return;
    };
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let chrony_ip = net.host(0).ipv4().to_string();
    let meridian_ip = net.host(1).ipv4().to_string();
    let body = "[service]\nport = 123\n\n[clock]\ndriver = \"simulated\"\n\
                initial-offset = \"-0.8s\"\nfrequency-ppm = -20.0\n";
    let (m, sock) = start_meridiand(net.host(1), dir.path(), "meridian", body);
    let peer = format!("peer {meridian_ip} minpoll 0 maxpoll 2");
    let chrony = start_chronyd(
        &chronyd,
        net.host(0),
        dir.path(),
        "chronyd",
        &["local stratum 3", &peer],
    );
    let mut last = None;
    let ok = wait_for(Duration::from_secs(60), Duration::from_millis(500), || {
        last = status(&sock);
        last.as_ref().is_some_and(|s| s["synchronized"] == true)
    });
    assert!(
        ok,
        "meridiand did not follow chronyd: {last:?}\n{}\n--- chronyd:\n{}",
        m.log(),
        chrony.log()
    );
    let st = last.unwrap();
    assert_eq!(st["stratum"], 4, "{st}");
    assert_eq!(st["system_peer"], chrony_ip.as_str(), "{st}");
    let s = session_of(&sock, &chrony_ip).expect("a session of chronyd");
    assert_eq!(s["local_mode"], "sym_passive", "{s}");
    assert_eq!(s["peer_mode"], "sym_active", "{s}");
    assert_eq!(s["configured"], false, "{s}");
    // It keeps tracking: within a few ms after the step.
    std::thread::sleep(Duration::from_secs(5));
    let st = status(&sock).expect("status");
    assert!(st["offset_ms"].as_f64().unwrap().abs() < 5.0, "{st}");
    assert!(m.is_running());
}

/// `allow`: chronyd also serves clients, so it answers meridiand's mode 3 calibration
/// requests (meridiand calibrates); without it chronyd ignores them and meridiand falls back
/// to mode 1 after two requests.
fn chronyd_follows_active_meridiand(test: &str, allow: bool) {
    if !require_root(test) {
        return;
    }
    let Some(chronyd) = binary(test, "chronyd") else {
        return;
    };
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let chrony_ip = net.host(0).ipv4().to_string();
    let meridian_ip = net.host(1).ipv4().to_string();
    let mut body = local_server_config(3);
    body.push_str(&format!(
        "\n[[unicast-peer]]\naddress = \"{chrony_ip}\"\niburst = true\nminpoll = 0\nmaxpoll = 2\n"
    ));
    let (m, sock) = start_meridiand(net.host(1), dir.path(), "meridian", &body);
    let peer = format!("peer {meridian_ip} minpoll 0 maxpoll 2");
    let mut extra = vec![peer.as_str()];
    if allow {
        extra.push("allow");
    }
    let chrony = start_chronyd(&chronyd, net.host(0), dir.path(), "chronyd", &extra);
    let selected = format!("Selected source {meridian_ip}");
    let ok = wait_for(Duration::from_secs(60), Duration::from_millis(500), || {
        chrony.log().contains(&selected)
    });
    assert!(
        ok,
        "chronyd did not select meridiand:\n{}\n--- meridiand:\n{}",
        chrony.log(),
        m.log()
    );
    // meridiand stays on its local reference: chronyd (unsynchronized, then synchronized to
    // us) is never its source.
    let st = status(&sock).expect("status");
    assert_eq!(st["stratum"], 3, "{st}");
    assert_eq!(st["reference_id"], "127.127.1.0", "{st}");
    let s = session_of(&sock, &chrony_ip).expect("a session of chronyd");
    assert_eq!(s["local_mode"], "sym_active", "{s}");
    assert_eq!(s["configured"], true, "{s}");
    assert!(s["verbose"]["packets_received"].as_u64() > Some(0), "{s}");
    let word = if allow { "calibrated" } else { "uncalibrated" };
    assert!(
        s["verbose"]["status"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w == word),
        "{s}"
    );
}

#[test]
fn chronyd_peer_follows_active_meridiand() {
    chronyd_follows_active_meridiand("chronyd_peer_follows_active_meridiand", false);
}

#[test]
fn chronyd_peer_serving_clients_follows_calibrated_active_meridiand() {
    chronyd_follows_active_meridiand(
        "chronyd_peer_serving_clients_follows_calibrated_active_meridiand",
        true,
    );
}
