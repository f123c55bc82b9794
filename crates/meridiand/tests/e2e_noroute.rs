//! A configured server without a route at start-up: `meridiand` starts anyway, says so in its
//! log, shows the association unreachable, keeps retrying, and synchronizes once the route
//! appears, without a restart. Server: a stratum-3 `meridiand` at 198.18.20.1 (an address
//! on its loopback), reachable from the client only through a route added later.
//!
//! Needs root (network namespaces); prints SKIPPED otherwise.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{
    control, local_server_config, require_root, start_meridiand, status, temp_dir, wait_for,
    wait_synchronized, TestNet,
};

const SERVER: &str = "198.18.20.1";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn session(sock: &std::path::Path) -> Option<serde_json::Value> {
    control(sock, "sessions")?["sessions"]
        .as_array()?
        .iter()
        .find(|s| s["source"] == SERVER)
        .cloned()
}

#[test]
fn a_server_without_a_route_at_start_up_is_retried_until_it_synchronizes() {
    let test = "a_server_without_a_route_at_start_up_is_retried_until_it_synchronizes";
    if !require_root(test) {
        return;
    }
    let dir = temp_dir(test);
    let mut net = TestNet::new(test, 1);
    let cl = net.add_namespace("cl");
    let srv = net.add_namespace("srv");
    net.connect(
        &cl,
        "eth1",
        "198.18.10.2".parse().unwrap(),
        &srv,
        "eth1",
        "198.18.10.1".parse().unwrap(),
    );
    ip(&[
        "-n",
        &srv,
        "addr",
        "add",
        &format!("{SERVER}/32"),
        "dev",
        "lo",
    ]);
    let srv_host = net.host_in(&srv, SERVER.parse().unwrap());
    let cl_host = net.host_in(&cl, "198.18.10.2".parse().unwrap());
    let (server, _) = start_meridiand(&srv_host, dir.path(), "server", &local_server_config(3));

    let body = format!(
        "[service]\nport = 123\n\n[clock]\ndriver = \"simulated\"\ninitial-offset = \"+0.05s\"\n\n\
         [[unicast-server]]\naddress = \"{SERVER}\"\niburst = true\nminpoll = 0\nmaxpoll = 1\n"
    );
    let (client, sock) = start_meridiand(&cl_host, dir.path(), "client", &body);
    // Started, and says why the server cannot be reached.
    let up = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        status(&sock).is_some()
    });
    assert!(up, "the daemon did not start: {}", client.log());
    assert!(
        client
            .log()
            .contains(&format!("cannot open the socket to {SERVER}:123")),
        "{}",
        client.log()
    );
    // It stays up with the association unreachable through a few retries (every 3 s).
    std::thread::sleep(Duration::from_secs(5));
    assert!(client.is_running(), "{}", client.log());
    let s = session(&sock).expect("the association is listed");
    assert_eq!(s["reach"], 0, "{s:#}");
    assert_eq!(status(&sock).unwrap()["synchronized"], false);

    // The route appears: the next retry opens the socket and the client synchronizes.
    ip(&[
        "-n",
        &cl,
        "route",
        "add",
        &format!("{SERVER}/32"),
        "via",
        "198.18.10.1",
    ]);
    let st = wait_synchronized(&sock, Duration::from_secs(30));
    assert!(
        st.as_ref()
            .is_some_and(|s| s["system_peer"] == SERVER && s["stratum"] == 4),
        "not synchronized after the route appeared: {st:?}\n{}\n--- server:\n{}",
        client.log(),
        server.log()
    );
    assert!(session(&sock).is_some_and(|s| s["reach"].as_u64() > Some(0)));
    assert!(client.is_running());
}
