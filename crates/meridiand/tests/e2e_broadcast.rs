//! Broadcast and multicast modes end to end: one `meridiand` serving the host clock as its
//! local reference broadcasts (or multicasts) on the test bridge; three `meridiand` clients on
//! simulated clocks with different errors hear it, calibrate the delay with a mode 3/4
//! volley, and synchronize from mode 5 packets. The truth is the time each client then
//! serves, measured with `ntpdig` against the host clock. Also: a client whose interface
//! appears after start, and requests sent to the broadcast address (never answered).
//!
//! Needs root (network namespaces); prints SKIPPED otherwise. No process can set the clock.

mod support;

use std::time::{Duration, Instant};

use support::{
    binary, local_server_config, require_root, served_offset, start_meridiand, status, temp_dir,
    wait_for, wait_served_offset, TestNet,
};

/// A client on a simulated clock with the given error, listening on eth0.
fn client_config(offset: &str, ppm: f64, listen: &str) -> String {
    format!(
        "[service]\nport = 123\n\n[clock]\ndriver = \"simulated\"\ninitial-offset = \"{offset}\"\n\
         frequency-ppm = {ppm:.1}\n\n[[interface]]\nname = \"eth0\"\n{listen}\n"
    )
}

/// What the server adds to its local-reference config, and what the clients listen with.
fn mode_lines(multicast: bool, v6: bool) -> (String, String) {
    match (multicast, v6) {
        (false, _) => (
            "broadcast-server = { poll = 4 }".to_owned(),
            "broadcast-client = true".to_owned(),
        ),
        (true, false) => (
            "multicast-server = { poll = 4, ttl = 1 }".to_owned(),
            "multicast-client = true".to_owned(),
        ),
        (true, true) => (
            "multicast-server = { group = \"ff05::101\", poll = 4 }".to_owned(),
            "multicast-client = { group = \"ff05::101\" }".to_owned(),
        ),
    }
}

const CLIENT_ERRORS: [(&str, f64); 3] = [("+0.5s", 20.0), ("-0.3s", -30.0), ("+40ms", 10.0)];

fn three_clients_synchronize(test: &str, multicast: bool, v6: bool) {
    if !require_root(test) || binary(test, "ntpdig").is_none() {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 4);
    let (send, listen) = mode_lines(multicast, v6);
    let server_body = format!(
        "{}\n[[interface]]\nname = \"eth0\"\n{send}\n",
        local_server_config(2)
    );
    let (server, server_sock) = start_meridiand(net.host(0), dir.path(), "server", &server_body);
    let clients: Vec<_> = CLIENT_ERRORS
        .iter()
        .enumerate()
        .map(|(i, (offset, ppm))| {
            let body = client_config(offset, *ppm, &listen);
            start_meridiand(net.host(i + 1), dir.path(), &format!("client{i}"), &body)
        })
        .collect();
    let start = Instant::now();
    let server_ip = net.host(0).ip(v6);
    for (i, (proc, sock)) in clients.iter().enumerate() {
        let synced = wait_for(Duration::from_secs(90), Duration::from_millis(500), || {
            status(sock).is_some_and(|s| s["synchronized"] == true)
        });
        assert!(
            synced,
            "client {i} never synchronized:\n{}\nserver:\n{}",
            proc.log(),
            server.log()
        );
        let st = status(sock).unwrap();
        assert_eq!(st["stratum"], 3, "{st}");
        assert_eq!(st["system_peer"], server_ip.to_string(), "{st}");
        let sessions = support::control(sock, "sessions").unwrap();
        let s = &sessions["sessions"][0];
        let mode = if multicast { "mclient" } else { "bclient" };
        assert_eq!(s["local_mode"], mode, "{sessions}");
        assert_eq!(s["configured"], false, "dynamic: {sessions}");
        assert_eq!(s["peer_mode"], "broadcast", "{sessions}");
    }
    eprintln!("{test}: all synchronized after {:?}", start.elapsed());
    // The server's own broadcast session is listed (counted), as its mode names it.
    let sessions = support::control(&server_sock, "sessions").unwrap();
    let own = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["local_mode"] == if multicast { "multicast" } else { "broadcast" })
        .cloned()
        .unwrap_or_else(|| panic!("no sender session: {sessions}"));
    assert!(
        own["verbose"]["packets_sent"].as_u64().unwrap() >= 1,
        "{own}"
    );

    for (i, (proc, _)) in clients.iter().enumerate() {
        let ip = net.host(i + 1).ip(v6);
        let offset = wait_served_offset(&net, 0, ip, 1e-3, Duration::from_secs(90));
        eprintln!(
            "{test}: client {i} serves {offset:?} s after {:?}",
            start.elapsed()
        );
        let offset = offset.unwrap_or_else(|| panic!("no answer:\n{}", proc.log()));
        assert!(
            offset.abs() < 1e-3,
            "client {i} serves time {offset} s off:\n{}",
            proc.log()
        );
    }
    // Still within 1 ms after several broadcast intervals, i.e. on mode 5 packets alone
    // (the volley ended long ago), with each frequency error corrected.
    std::thread::sleep(Duration::from_secs(40));
    for (i, (proc, sock)) in clients.iter().enumerate() {
        let ip = net.host(i + 1).ip(v6);
        let offset = served_offset(&net, 0, ip, 5).expect("answer");
        eprintln!(
            "{test}: client {i} serves {offset} s after {:?}",
            start.elapsed()
        );
        assert!(
            offset.abs() < 1e-3,
            "client {i} drifted to {offset} s:\n{}",
            proc.log()
        );
        let sessions = support::control(sock, "sessions").unwrap();
        let s = &sessions["sessions"][0];
        let sent = s["verbose"]["packets_sent"].as_u64().unwrap();
        let received = s["verbose"]["packets_received"].as_u64().unwrap();
        assert!(sent <= 8, "only the volley is sent: {s}");
        assert!(received >= sent + 3, "mode 5 packets keep arriving: {s}");
    }
    assert!(server.is_running());
}

#[test]
/// attacks.md B6: clients learn the time from our broadcast server.
fn broadcast_ipv4_three_clients() {
    three_clients_synchronize("broadcast_ipv4_three_clients", false, false);
}

#[test]
fn multicast_ipv4_three_clients() {
    three_clients_synchronize("multicast_ipv4_three_clients", true, false);
}

#[test]
fn multicast_ipv6_three_clients() {
    three_clients_synchronize("multicast_ipv6_three_clients", true, true);
}
