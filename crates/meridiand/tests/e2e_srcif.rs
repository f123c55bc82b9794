//! Source interface, DSCP and interface changes end to end: a `meridiand` client in a
//! namespace with three interfaces polls a small python3 NTP server (`support/ntp_probe.py`)
//! that records the source address and TOS/traffic class of every request. Checked: requests
//! leave from the configured source interface's address (per association and global), carry
//! the configured DSCP in IPv4 and IPv6, and so do meridiand's replies; taking interfaces down
//! and up and changing an address is followed without restarting the daemon.
//!
//! Needs root (network namespaces) and python3; prints SKIPPED otherwise.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{
    binary, control, require_root, start_meridiand, status, temp_dir, wait_for, TestNet,
};

const DSCP: u8 = 46;
const TOS: i64 = (DSCP as i64) << 2;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The requests the probe logged: (source address, TOS).
fn requests(log: &Path) -> Vec<(String, i64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&"request") && f.len() == 5)
                .then(|| (f[1].to_owned(), f[3].parse().unwrap_or(-1)))
        })
        .collect()
}

/// Waits until a request logged after the first `skip` ones comes from `source`.
fn wait_request_from(log: &Path, skip: usize, source: &str) -> bool {
    wait_for(Duration::from_secs(12), Duration::from_millis(200), || {
        requests(log).iter().skip(skip).any(|(s, _)| s == source)
    })
}

fn session(sock: &Path, source: &str) -> Option<serde_json::Value> {
    let answer = control(sock, "sessions")?;
    answer["sessions"]
        .as_array()?
        .iter()
        .find(|s| s["source"] == source)
        .cloned()
}

#[test]
/// attacks.md N5: interface address changes and down/up.
fn source_interface_dscp_and_interface_changes() {
    let test = "source_interface_dscp_and_interface_changes";
    if !require_root(test) || binary(test, "python3").is_none() {
        return;
    }
    let dir = temp_dir(test);
    let script = dir.join("ntp_probe.py");
    std::fs::write(&script, include_str!("support/ntp_probe.py")).unwrap();
    let script = script.to_string_lossy().into_owned();
    let mut net = TestNet::new(test, 1);
    let cl = net.add_namespace("cl");
    let srv = net.add_namespace("srv");
    for key in ["all", "default"] {
        let k = format!("net.ipv6.conf.{key}.keep_addr_on_down=1");
        ip(&["netns", "exec", &cl, "sysctl", "-qw", &k]);
    }
    // cl eth1 198.18.10.2 <-> srv eth1 198.18.10.1 (and 2001:2:10::/64): the only path.
    net.connect(
        &cl,
        "eth1",
        "198.18.10.2".parse().unwrap(),
        &srv,
        "eth1",
        "198.18.10.1".parse().unwrap(),
    );
    {
        ip(&[
            "-n",
            &cl,
            "addr",
            "add",
            "2001:2:10::2/64",
            "dev",
            "eth1",
            "nodad",
        ]);
        ip(&[
            "-n",
            &srv,
            "addr",
            "add",
            "2001:2:10::1/64",
            "dev",
            "eth1",
            "nodad",
        ]);
    }
    // Two more interfaces of the client (veth pairs kept inside it), reached from the server
    // through the client: src0 198.18.11.2 / 2001:2:11::2, src1 198.18.12.2 / 2001:2:12::2.
    for (dev, n) in [("src0", 11), ("src1", 12)] {
        let peer = format!("{dev}p");
        {
            ip(&[
                "-n", &cl, "link", "add", dev, "type", "veth", "peer", "name", &peer,
            ]);
            ip(&[
                "-n",
                &cl,
                "addr",
                "add",
                &format!("198.18.{n}.2/24"),
                "dev",
                dev,
            ]);
            ip(&[
                "-n",
                &cl,
                "addr",
                "add",
                &format!("2001:2:{n}::2/64"),
                "dev",
                dev,
                "nodad",
            ]);
            ip(&["-n", &cl, "link", "set", &peer, "up"]);
            ip(&["-n", &cl, "link", "set", dev, "up"]);
            ip(&[
                "-n",
                &srv,
                "route",
                "add",
                &format!("198.18.{n}.0/24"),
                "via",
                "198.18.10.2",
            ]);
            ip(&[
                "-n",
                &srv,
                "-6",
                "route",
                "add",
                &format!("2001:2:{n}::/64"),
                "via",
                "2001:2:10::2",
            ]);
        }
    }
    let srv_host = net.host_in(&srv, "198.18.10.1".parse().unwrap());
    let cl_host = net.host_in(&cl, "198.18.10.2".parse().unwrap());
    let log = dir.join("requests.log");
    let log_s = log.to_string_lossy().into_owned();
    let probe = srv_host.spawn(
        "python3",
        [script.as_str(), "serve", log_s.as_str()],
        &dir.join("probe.out"),
    );

    // The IPv4 association names src0; the IPv6 one takes the global src1.
    let body = format!(
        "[service]\nport = 123\nsource-interface = \"src1\"\ndscp = {DSCP}\n\n\
         [clock]\ndriver = \"simulated\"\ninitial-offset = \"+0.05s\"\n\n\
         [[unicast-server]]\naddress = \"198.18.10.1\"\nsource-interface = \"src0\"\n\
         iburst = true\nminpoll = 0\nmaxpoll = 1\n\n\
         [[unicast-server]]\naddress = \"2001:2:10::1\"\niburst = true\nminpoll = 0\nmaxpoll = 1\n"
    );
    let (client, sock) = start_meridiand(&cl_host, dir.path(), "client", &body);
    let synced = wait_for(Duration::from_secs(20), Duration::from_millis(300), || {
        status(&sock).is_some_and(|s| s["synchronized"] == true)
    });
    let all = requests(&log);
    assert!(
        synced,
        "client not synchronized to the probe: {:?}\n{all:?}\n{}\n{}",
        status(&sock),
        client.log(),
        probe.log()
    );
    assert!(all.iter().any(|(s, _)| s == "198.18.11.2"), "{all:?}");
    assert!(all.iter().any(|(s, _)| s == "2001:2:12::2"), "{all:?}");
    for (source, tos) in &all {
        assert!(
            ["198.18.11.2", "2001:2:12::2"].contains(&source.as_str()),
            "request from {source}, not from the source interface: {all:?}"
        );
        assert_eq!(*tos, TOS, "TOS of a request from {source}: {all:?}");
    }

    // meridiand's replies carry the DSCP too, IPv4 and IPv6.
    for server in ["198.18.10.2", "2001:2:10::2"] {
        let out = srv_host.run("python3", [script.as_str(), "query", server]);
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(
            fields.first(),
            Some(&"reply"),
            "no reply from {server}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            fields[1].parse::<i64>().ok(),
            Some(TOS),
            "reply from {server}"
        );
    }

    // src0 down: the IPv4 association falls back to the outgoing interface's address.
    let n = requests(&log).len();
    ip(&["-n", &cl, "link", "set", "dev", "src0", "down"]);
    assert!(
        wait_request_from(&log, n, "198.18.10.2"),
        "no fallback to eth1's address: {:?}\n{}",
        requests(&log),
        client.log()
    );
    // Up again: back to src0's address.
    let n = requests(&log).len();
    ip(&["-n", &cl, "link", "set", "dev", "src0", "up"]);
    assert!(
        wait_request_from(&log, n, "198.18.11.2"),
        "not back on src0: {:?}",
        requests(&log)
    );
    // src0's address changes (deleting a primary address drops its secondaries, so the
    // old one goes first): the socket follows.
    let n = requests(&log).len();
    ip(&["-n", &cl, "addr", "del", "198.18.11.2/24", "dev", "src0"]);
    ip(&["-n", &cl, "addr", "add", "198.18.11.3/24", "dev", "src0"]);
    assert!(
        wait_request_from(&log, n, "198.18.11.3"),
        "not on src0's new address: {:?}",
        requests(&log)
    );

    // The outgoing interface itself goes down: polls are lost; up again: reach comes back.
    ip(&["-n", &cl, "link", "set", "dev", "eth1", "down"]);
    let lost = wait_for(Duration::from_secs(12), Duration::from_millis(200), || {
        session(&sock, "198.18.10.1").is_some_and(|s| s["reach"].as_u64().unwrap_or(1) & 3 == 0)
    });
    assert!(
        lost,
        "polls not missed while eth1 is down: {:?}",
        session(&sock, "198.18.10.1")
    );
    let n = requests(&log).len();
    ip(&["-n", &cl, "link", "set", "dev", "eth1", "up"]);
    let back = wait_for(Duration::from_secs(15), Duration::from_millis(200), || {
        session(&sock, "198.18.10.1").is_some_and(|s| s["reach"].as_u64().unwrap_or(0) & 1 == 1)
            && status(&sock).is_some_and(|s| s["synchronized"] == true)
    });
    assert!(
        back,
        "not recovered after eth1 came back: {:?} {:?}\n{}",
        session(&sock, "198.18.10.1"),
        requests(&log).split_off(n.min(requests(&log).len())),
        client.log()
    );
    assert!(client.is_running(), "the daemon kept running");
}
