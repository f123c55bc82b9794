//! Client/server mode end to end: real `meridiand` processes in network namespaces, one
//! serving the host clock as its local reference, one on a simulated clock that starts off
//! and synchronizes to it; the result is measured from outside with `ntpdig`, and
//! `meridianctl` shows it in the guide's layout.
//!
//! Needs root (network namespaces); prints SKIPPED otherwise. No process can set the clock.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{
    binary, local_server_config, meridianctl_bin, ntpdig_query, require_root, served_offset,
    simulated_client_config, start_meridiand, status, temp_dir, wait_served_offset,
    wait_synchronized, TestNet,
};

fn client_synchronizes_to_server(test: &str, v6: bool) {
    if !require_root(test) || binary(test, "ntpdig").is_none() {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let (server, server_sock) =
        start_meridiand(net.host(0), dir.path(), "server", &local_server_config(2));
    let server_ip = net.host(0).ip(v6);
    let client_body = simulated_client_config(&server_ip.to_string(), "+1.5s", 40.0);
    let (client, client_sock) = start_meridiand(net.host(1), dir.path(), "client", &client_body);

    let start = Instant::now();
    let st = wait_synchronized(&client_sock, Duration::from_secs(30)).unwrap_or_else(|| {
        panic!(
            "client never synchronized:\n{}\n{}",
            client.log(),
            server.log()
        )
    });
    eprintln!("{test}: synchronized after {:?}", start.elapsed());
    assert_eq!(st["stratum"], 3, "one below the stratum-2 server: {st}");
    assert_eq!(st["reference_id"], server_ip.to_string());
    assert_eq!(st["system_peer"], server_ip.to_string());
    assert_eq!(st["clock_driver"], "simulated");
    // The 1.5 s error is stepped (the step is the first burst's combined offset: within
    // the loopback's noise and the 40 ppm drift of a few seconds of 1.5 s either way).
    let log = client.log();
    let step: f64 = log
        .split("stepping the clock by ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no step in the log:\n{log}"));
    assert!(
        (step + 1.5).abs() < 0.01,
        "the 1.5 s error is stepped, not {step}:\n{log}"
    );

    // The server is synchronized to its local reference and says so.
    let sst = status(&server_sock).expect("server status");
    assert_eq!(
        (sst["synchronized"].clone(), sst["stratum"].clone()),
        (true.into(), 2.into()),
        "{sst}"
    );
    assert_eq!(sst["reference_id"], "127.127.1.0");

    // Truth: the time the client now serves, measured from the server's namespace against
    // the host clock, is within 1 ms (its simulated clock ran 40 ppm fast from 1.5 s off).
    let client_ip = net.host(1).ip(v6);
    let offset = wait_served_offset(&net, 0, client_ip, 1e-3, Duration::from_secs(60));
    eprintln!(
        "{test}: client serves time {offset:?} s off the host clock after {:?}",
        start.elapsed()
    );
    let offset = offset.unwrap_or_else(|| panic!("no answer from the client:\n{}", client.log()));
    assert!(
        offset.abs() < 1e-3,
        "served time {offset} s off:\n{}",
        client.log()
    );
    // And it still does a little later: the frequency error is corrected, not just the offset.
    std::thread::sleep(Duration::from_secs(8));
    let later = served_offset(&net, 0, client_ip, 5).expect("answer");
    assert!(
        later.abs() < 1e-3,
        "served time drifted to {later} s:\n{}",
        client.log()
    );
    assert!(client.is_running() && server.is_running());
}

#[test]
fn client_synchronizes_to_meridian_server_ipv4() {
    client_synchronizes_to_server("client_synchronizes_to_meridian_server_ipv4", false);
}

#[test]
fn client_synchronizes_to_meridian_server_ipv6() {
    client_synchronizes_to_server("client_synchronizes_to_meridian_server_ipv6", true);
}

#[test]
fn meridianctl_shows_status_and_sessions_in_the_guides_layout() {
    let test = "meridianctl_shows_status_and_sessions_in_the_guides_layout";
    if !require_root(test) {
        return;
    }
    let Some(ctl) = meridianctl_bin(test) else {
        return;
    };
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let (_server, _) = start_meridiand(net.host(0), dir.path(), "server", &local_server_config(2));
    let server_ip = net.host(0).ipv4().to_string();
    let body = simulated_client_config(&server_ip, "+0.05s", 10.0);
    let (client, sock) = start_meridiand(net.host(1), dir.path(), "client", &body);
    wait_synchronized(&sock, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no sync:\n{}", client.log()));

    let run = |args: &[&str]| {
        let out = Command::new(&ctl)
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .output()
            .expect("run meridianctl");
        assert!(
            out.status.success(),
            "meridianctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = run(&["status"]);
    assert!(text.contains("Clock status: synchronized"), "{text}");
    assert!(text.contains("Clock stratum: 3"), "{text}");
    assert!(
        text.contains(&format!("Reference clock ID: {server_ip}")),
        "{text}"
    );

    let text = run(&["sessions"]);
    let row = text
        .lines()
        .find(|l| l.contains(&server_ip))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        row.starts_with("[12345]"),
        "system peer, stratum <= 15, selected, candidate, configured: {row}"
    );
    assert!(text.contains("Total associations : 1"), "{text}");

    let json: serde_json::Value =
        serde_json::from_str(&run(&["sessions", "--json"])).expect("JSON");
    let s = &json[0];
    assert_eq!(s["source"], server_ip);
    assert_eq!(s["local_mode"], "client");
    assert_eq!(s["peer_mode"], "server");
    assert_eq!(s["stratum"], 2);
    assert_eq!(s["configured"], true);
    assert!(s["reach"].as_u64().unwrap() > 0);
    for flag in ["master", "selected", "candidate", "configured"] {
        assert!(
            s["flags"].as_array().unwrap().iter().any(|f| f == flag),
            "{flag} in {s}"
        );
    }
    let verbose = run(&["sessions", "--verbose"]);
    assert!(
        verbose.contains(&format!("clock source: {server_ip}")),
        "{verbose}"
    );
    assert!(verbose.contains("local mode: client"), "{verbose}");
}

#[test]
fn trace_walks_three_daemons_to_the_primary_reference() {
    let test = "trace_walks_three_daemons_to_the_primary_reference";
    if !require_root(test) {
        return;
    }
    let Some(ctl) = meridianctl_bin(test) else {
        return;
    };
    let dir = temp_dir(test);
    let net = TestNet::new(test, 3);
    let (a, _) = start_meridiand(net.host(0), dir.path(), "a", &local_server_config(1));
    let a_ip = net.host(0).ipv4().to_string();
    let b_ip = net.host(1).ipv4().to_string();
    let (b, b_sock) = start_meridiand(
        net.host(1),
        dir.path(),
        "b",
        &simulated_client_config(&a_ip, "+0.1s", 5.0),
    );
    let (c, c_sock) = start_meridiand(
        net.host(2),
        dir.path(),
        "c",
        &simulated_client_config(&b_ip, "-0.1s", -5.0),
    );
    for (sock, proc) in [(&b_sock, &b), (&c_sock, &c)] {
        wait_synchronized(sock, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("no sync:\n{}", proc.log()));
    }
    let out = net.host(2).run(&ctl, ["trace"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        a.log()
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("server 127.0.0.1,stratum 3, offset "),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!("server {b_ip},stratum 2, offset ")),
        "{text}"
    );
    assert!(
        lines[2].starts_with(&format!("server {a_ip},stratum 1, offset ")),
        "{text}"
    );
    assert!(lines[0].contains("synch distance"), "{text}");
    assert_eq!(lines[3], "refid LOCL");

    let out = net.host(2).run(&ctl, ["trace", "--json"]);
    let hops: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(hops.as_array().unwrap().len(), 3);
    assert_eq!(hops[2]["reference_id"], "LOCL");
    assert_eq!(hops[1]["server"], b_ip);
}

/// Reads a capability mask (`CapEff:`, `CapPrm:` ...) of process `pid`.
fn capabilities(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    assert!(
        status.lines().any(|l| l == "Name:\tmeridiand"),
        "pid {pid} is not meridiand:\n{status}"
    );
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .expect("capability line");
    u64::from_str_radix(line[field.len()..].trim(), 16).expect("hex mask")
}

#[test]
fn daemon_keeps_only_the_capabilities_it_needs() {
    let test = "daemon_keeps_only_the_capabilities_it_needs";
    if !require_root(test) {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 1);
    let (server, sock) =
        start_meridiand(net.host(0), dir.path(), "server", &local_server_config(2));
    assert!(
        wait_synchronized(&sock, Duration::from_secs(10)).is_some(),
        "{}",
        server.log()
    );
    // A read-only clock on port 123: only CAP_NET_BIND_SERVICE (bit 10) is left, to rebind
    // the port; no CAP_SYS_ADMIN, CAP_DAC_OVERRIDE, ... (and never CAP_SYS_TIME in tests).
    for field in ["CapEff:", "CapPrm:"] {
        assert_eq!(
            capabilities(server.pid(), field),
            1 << 10,
            "{field}\n{}",
            server.log()
        );
    }
    assert_eq!(capabilities(server.pid(), "CapInh:"), 0);
    assert!(
        server
            .log()
            .contains("capabilities kept: CAP_NET_BIND_SERVICE"),
        "{}",
        server.log()
    );
    // It still serves.
    let answer = ntpdig_query(net.host(0), net.host(0).ipv4().into());
    assert!(
        answer.is_some_and(|a| a.stratum == 2),
        "no answer after dropping privileges"
    );
}
