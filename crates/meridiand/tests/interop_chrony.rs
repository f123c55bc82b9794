//! Client/server interoperability with chrony: chronyd synchronizes to `meridiand`, and
//! `meridiand` synchronizes to chronyd, each in its own network namespace.
//!
//! Needs root (network namespaces); prints SKIPPED otherwise. chronyd runs with `-x` and
//! without CAP_SYS_TIME; meridiand on a simulated clock.

mod support;

use std::time::Duration;

use support::{
    binary, local_server_config, require_root, simulated_client_config, start_chronyd,
    start_meridiand, status, temp_dir, wait_for, TestNet,
};

#[test]
fn chronyd_synchronizes_to_meridiand() {
    let test = "chronyd_synchronizes_to_meridiand";
    if !require_root(test) {
        return;
    }
    let Some(chronyd) = binary(test, "chronyd") else {
        return;
    };
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let (server, _) = start_meridiand(net.host(0), dir.path(), "server", &local_server_config(3));
    let addr = net.host(0).ipv4();
    let line = format!("server {addr} iburst minpoll 0 maxpoll 1");
    let chrony = start_chronyd(&chronyd, net.host(1), dir.path(), "chronyd", &[&line]);
    let selected = format!("Selected source {addr}");
    let ok = wait_for(Duration::from_secs(40), Duration::from_millis(500), || {
        chrony.log().contains(&selected)
    });
    assert!(
        ok,
        "chronyd did not select meridiand:\n{}\n--- meridiand:\n{}",
        chrony.log(),
        server.log()
    );
    assert!(server.is_running());
}

#[test]
fn meridiand_synchronizes_to_chronyd() {
    let test = "meridiand_synchronizes_to_chronyd";
    if !require_root(test) {
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
        &["local stratum 1", "allow"],
    );
    let addr = net.host(0).ipv4().to_string();
    let (client, sock) = start_meridiand(
        net.host(1),
        dir.path(),
        "client",
        &simulated_client_config(&addr, "-0.8s", -25.0),
    );
    let mut last = None;
    let ok = wait_for(Duration::from_secs(40), Duration::from_millis(500), || {
        last = status(&sock);
        last.as_ref().is_some_and(|s| s["synchronized"] == true)
    });
    assert!(
        ok,
        "meridiand did not synchronize to chronyd: {last:?}\n{}\n--- chronyd:\n{}",
        client.log(),
        chrony.log()
    );
    let st = last.unwrap();
    assert_eq!(st["stratum"], 2, "{st}");
    assert_eq!(st["reference_id"], addr);
    assert!(st["offset_ms"].as_f64().unwrap().abs() < 5.0, "{st}");
}

#[test]
fn trace_walks_through_chronyd() {
    let test = "trace_walks_through_chronyd";
    if !require_root(test) {
        return;
    }
    let Some(chronyd) = binary(test, "chronyd") else {
        return;
    };
    let Some(ctl) = support::meridianctl_bin(test) else {
        return;
    };
    let dir = temp_dir(test);
    let net = TestNet::new(test, 3);
    // meridiand (stratum 1, local clock) <- chronyd <- meridiand: the chain crosses chronyd.
    let (_a, _) = start_meridiand(net.host(0), dir.path(), "a", &local_server_config(1));
    let a = net.host(0).ipv4();
    let line = format!("server {a} iburst minpoll 0 maxpoll 1");
    let chrony = start_chronyd(
        &chronyd,
        net.host(1),
        dir.path(),
        "chronyd",
        &[&line, "allow"],
    );
    assert!(
        wait_for(Duration::from_secs(40), Duration::from_millis(500), || {
            chrony.log().contains("Selected source")
        }),
        "{}",
        chrony.log()
    );
    let b = net.host(1).ipv4().to_string();
    let (c, sock) = start_meridiand(
        net.host(2),
        dir.path(),
        "c",
        &simulated_client_config(&b, "+0.01s", 2.0),
    );
    assert!(
        wait_for(Duration::from_secs(40), Duration::from_millis(500), || {
            status(&sock).is_some_and(|s| s["synchronized"] == true)
        }),
        "{}",
        c.log()
    );
    let out = net.host(2).run(&ctl, ["trace"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[1].starts_with(&format!("server {b},stratum 2,")),
        "chronyd's hop: {text}"
    );
    assert!(
        lines[2].starts_with(&format!("server {a},stratum 1,")),
        "{text}"
    );
    assert_eq!(lines[3], "refid LOCL");
}
