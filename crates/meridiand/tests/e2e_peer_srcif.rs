//! `source-interface` on symmetric peers end to end: `meridiand` B (simulated clock) in a
//! namespace with three interfaces has two `[[unicast-peer]]` associations toward A (a
//! stratum-3 `meridiand`), one per address family; the IPv4 one names `src0`, the IPv6 one
//! takes the global `src1`. Checked on packets captured on A's interface: B's mode 1 packets
//! leave from port 123 and from the source interface's primary address, DSCP-marked; B still
//! synchronizes to A; with `src0` down they leave from the outgoing interface's address, and
//! from `src0`'s again once it is back up.
//!
//! Needs root (network namespaces) and python3; prints SKIPPED otherwise.

#[path = "support/capture.rs"]
mod capture;
mod support;

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use capture::{Capture, Packet};
use support::{
    binary, control, local_server_config, require_root, start_meridiand, temp_dir, wait_for,
    wait_synchronized, TestNet,
};

const DSCP: u8 = 46;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// B's mode 1 packets as A received them.
fn from_b(cap: &Capture) -> Vec<Packet> {
    cap.packets()
        .into_iter()
        .filter(|p| p.inbound && p.mode == 1)
        .collect()
}

/// Waits until one of B's mode 1 packets captured after the first `skip` comes from `source`.
fn wait_peer_packet_from(cap: &Capture, skip: usize, source: &str) -> bool {
    wait_for(Duration::from_secs(15), Duration::from_millis(200), || {
        from_b(cap).iter().skip(skip).any(|p| p.src == addr(source))
    })
}

#[test]
fn symmetric_peers_send_from_their_source_interface() {
    let test = "symmetric_peers_send_from_their_source_interface";
    if !require_root(test) || binary(test, "python3").is_none() {
        return;
    }
    let dir = temp_dir(test);
    let mut net = TestNet::new(test, 1);
    let b_ns = net.add_namespace("b");
    let a_ns = net.add_namespace("a");
    for key in ["all", "default"] {
        let k = format!("net.ipv6.conf.{key}.keep_addr_on_down=1");
        ip(&["netns", "exec", &b_ns, "sysctl", "-qw", &k]);
    }
    // b eth1 198.18.10.2 / 2001:2:10::2 <-> a eth1 198.18.10.1 / 2001:2:10::1: the only path.
    net.connect(
        &b_ns,
        "eth1",
        "198.18.10.2".parse().unwrap(),
        &a_ns,
        "eth1",
        "198.18.10.1".parse().unwrap(),
    );
    ip(&[
        "-n",
        &b_ns,
        "addr",
        "add",
        "2001:2:10::2/64",
        "dev",
        "eth1",
        "nodad",
    ]);
    ip(&[
        "-n",
        &a_ns,
        "addr",
        "add",
        "2001:2:10::1/64",
        "dev",
        "eth1",
        "nodad",
    ]);
    // Two more interfaces of B (veth pairs kept inside it), reached from A through B's eth1.
    for (dev, n) in [("src0", 11), ("src1", 12)] {
        let peer = format!("{dev}p");
        #[rustfmt::skip]
        ip(&["-n", &b_ns, "link", "add", dev, "type", "veth", "peer", "name", &peer]);
        ip(&[
            "-n",
            &b_ns,
            "addr",
            "add",
            &format!("198.18.{n}.2/24"),
            "dev",
            dev,
        ]);
        #[rustfmt::skip]
        ip(&["-n", &b_ns, "addr", "add", &format!("2001:2:{n}::2/64"), "dev", dev, "nodad"]);
        ip(&["-n", &b_ns, "link", "set", &peer, "up"]);
        ip(&["-n", &b_ns, "link", "set", dev, "up"]);
        #[rustfmt::skip]
        ip(&["-n", &a_ns, "route", "add", &format!("198.18.{n}.0/24"), "via", "198.18.10.2"]);
        #[rustfmt::skip]
        ip(&["-n", &a_ns, "-6", "route", "add", &format!("2001:2:{n}::/64"), "via", "2001:2:10::2"]);
    }
    let a_host = net.host_in(&a_ns, "198.18.10.1".parse().unwrap());
    let b_host = net.host_in(&b_ns, "198.18.10.2".parse().unwrap());
    let cap = Capture::start(&a_host, dir.path(), "eth1", "a");
    let (a, a_sock) = start_meridiand(&a_host, dir.path(), "a", &local_server_config(3));

    let peer = |address: &str, srcif: Option<&str>| {
        let srcif = srcif.map_or(String::new(), |s| format!("source-interface = \"{s}\"\n"));
        format!(
            "\n[[unicast-peer]]\naddress = \"{address}\"\n{srcif}iburst = true\nminpoll = 0\nmaxpoll = 1\n"
        )
    };
    let body = format!(
        "[service]\nport = 123\nsource-interface = \"src1\"\ndscp = {DSCP}\n\n\
         [clock]\ndriver = \"simulated\"\ninitial-offset = \"+0.05s\"\n{}{}",
        peer("198.18.10.1", Some("src0")),
        peer("2001:2:10::1", None)
    );
    let (b, b_sock) = start_meridiand(&b_host, dir.path(), "b", &body);

    let st = wait_synchronized(&b_sock, Duration::from_secs(30));
    assert!(
        st.as_ref().is_some_and(|s| s["stratum"] == 4),
        "B not synchronized to A through its peers: {st:?}\n{}\n--- A:\n{}",
        b.log(),
        a.log()
    );
    let seen = from_b(&cap);
    let v4: Vec<_> = seen.iter().filter(|p| p.src.is_ipv4()).collect();
    let v6: Vec<_> = seen.iter().filter(|p| p.src.is_ipv6()).collect();
    assert!(!v4.is_empty() && !v6.is_empty(), "{seen:#?}\n{}", b.log());
    for p in &v4 {
        assert_eq!(p.src, addr("198.18.11.2"), "IPv4 peer packet: {p:?}");
    }
    for p in &v6 {
        assert_eq!(p.src, addr("2001:2:12::2"), "IPv6 peer packet: {p:?}");
    }
    for p in &seen {
        assert_eq!((p.sport, p.dport), (123, 123), "symmetric: port 123: {p:?}");
        assert_eq!(p.tos, DSCP << 2, "DSCP of a peer packet: {p:?}");
    }
    // A saw B at those addresses: its passive associations are keyed by them.
    let a_sessions = control(&a_sock, "sessions").expect("A answers");
    for source in ["198.18.11.2", "2001:2:12::2"] {
        assert!(
            a_sessions["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["source"] == source && s["local_mode"] == "sym_passive"),
            "A has no passive association with {source}: {a_sessions:#}"
        );
    }

    // src0 down: the IPv4 peer's packets leave from the outgoing interface's address.
    let n = from_b(&cap).len();
    ip(&["-n", &b_ns, "link", "set", "dev", "src0", "down"]);
    assert!(
        wait_peer_packet_from(&cap, n, "198.18.10.2"),
        "no fallback to eth1's address: {:#?}\n{}",
        from_b(&cap).split_off(n),
        b.log()
    );
    // Up again: back to src0's address.
    let n = from_b(&cap).len();
    ip(&["-n", &b_ns, "link", "set", "dev", "src0", "up"]);
    assert!(
        wait_peer_packet_from(&cap, n, "198.18.11.2"),
        "not back on src0: {:#?}",
        from_b(&cap).split_off(n)
    );
    assert!(b.is_running() && a.is_running() && cap.is_running());
}
