//! Symmetric peers in VPN instances end to end, one PE `meridiand` and CE routers in VPN
//! instances (network namespaces) that share the address 198.18.1.1:
//! - the same peer address in two instances is two passive associations, each with the state
//!   of its own CE (stratum 3 in vpn1, 5 in vpn2), shown with its VPN instance by
//!   `meridianctl sessions --json`;
//! - `max-dynamic-sessions` counts per VPN instance: with a limit of 1 each instance holds its
//!   own passive association, and a second site in vpn1 is refused.
//!
//! Needs root (network namespaces); prints SKIPPED otherwise.

mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{
    control, local_server_config, meridianctl_bin, require_root, start_meridiand, status, temp_dir,
    wait_for, TestNet,
};

const CE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const PE_IN_VPN: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);

/// `meridianctl --socket SOCK sessions --json`, parsed: the list of sessions.
fn ctl_sessions(ctl: &Path, sock: &Path) -> Vec<Value> {
    let out = Command::new(ctl)
        .arg("--socket")
        .arg(sock)
        .args(["sessions", "--json"])
        .output()
        .expect("run meridianctl");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let list = if v.is_array() { &v } else { &v["sessions"] };
    list.as_array().cloned().unwrap_or_default()
}

fn passive_in(sessions: &[Value], vpn: &str) -> Option<Value> {
    sessions
        .iter()
        .find(|s| {
            s["vpn_instance"] == vpn
                && s["source"] == CE.to_string()
                && s["local_mode"] == "sym_passive"
        })
        .cloned()
}

#[test]
fn the_same_peer_address_in_two_vpn_instances_is_two_passive_associations() {
    let test = "the_same_peer_address_in_two_vpn_instances_is_two_passive_associations";
    if !require_root(test) {
        return;
    }
    let Some(ctl) = meridianctl_bin(test) else {
        return;
    };
    let dir = temp_dir(test);
    let mut net = TestNet::new(test, 1);
    let mut vpn_ns = Vec::new();
    let mut ces = Vec::new();
    for (i, stratum) in [(1, 3u8), (2, 5u8)] {
        let vpn = net.add_namespace(&format!("vpn{i}"));
        let ce = net.add_namespace(&format!("ce{i}"));
        net.connect(&vpn, "pe0", PE_IN_VPN, &ce, "eth0", CE);
        let host = net.host_in(&ce, CE);
        let body = format!(
            "{}\n[[unicast-peer]]\naddress = \"{PE_IN_VPN}\"\niburst = true\nminpoll = 0\nmaxpoll = 2\n",
            local_server_config(stratum)
        );
        let (proc, sock) = start_meridiand(&host, dir.path(), &format!("ce{i}"), &body);
        ces.push((proc, sock));
        vpn_ns.push(vpn);
    }
    let body = format!(
        "[service]\nport = 123\n\n[clock]\ndriver = \"simulated\"\ninitial-offset = \"+0.2s\"\n\n\
         [vpn-instance.vpn1]\nnetns = \"{}\"\n\n[vpn-instance.vpn2]\nnetns = \"{}\"\n",
        vpn_ns[0], vpn_ns[1]
    );
    let (pe, sock) = start_meridiand(net.host(0), dir.path(), "pe", &body);

    // Two passive associations with the one address, each in its instance with its CE's state.
    let mut sessions = Vec::new();
    let ok = wait_for(Duration::from_secs(30), Duration::from_millis(300), || {
        sessions = ctl_sessions(&ctl, &sock);
        matches!((passive_in(&sessions, "vpn1"), passive_in(&sessions, "vpn2")), (Some(a), Some(b))
            if a["reach"].as_u64() > Some(0) && b["reach"].as_u64() > Some(0)
                && a["stratum"] == 3 && b["stratum"] == 5)
    });
    assert!(
        ok,
        "not two passive associations apart: {sessions:#?}\n{}\n--- ce1:\n{}\n--- ce2:\n{}",
        pe.log(),
        ces[0].0.log(),
        ces[1].0.log()
    );
    let with_ce: Vec<_> = sessions
        .iter()
        .filter(|s| s["source"] == CE.to_string())
        .collect();
    assert_eq!(with_ce.len(), 2, "{sessions:#?}");
    assert!(
        with_ce.iter().all(|s| s["configured"] == false),
        "{with_ce:#?}"
    );

    // Each CE's own association reaches the PE (replies went back into the right instance).
    for (i, (proc, ce_sock)) in ces.iter().enumerate() {
        let reached = wait_for(Duration::from_secs(20), Duration::from_millis(300), || {
            control(ce_sock, "sessions").is_some_and(|v| {
                v["sessions"].as_array().is_some_and(|l| {
                    l.iter().any(|s| {
                        s["source"] == PE_IN_VPN.to_string() && s["reach"].as_u64() > Some(0)
                    })
                })
            })
        });
        assert!(reached, "ce{} never reached the PE:\n{}", i + 1, proc.log());
    }
    // And the PE synchronizes to the better one (stratum 3 in vpn1).
    let ok = wait_for(Duration::from_secs(30), Duration::from_millis(300), || {
        status(&sock).is_some_and(|s| s["synchronized"] == true && s["stratum"] == 4)
    });
    assert!(ok, "PE not synchronized: {:?}\n{}", status(&sock), pe.log());
    assert!(pe.is_running());
}

/// A second site of vpn1: CE 3 behind the PE's second interface in that instance.
const CE3: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
const PE_IN_VPN_SITE2: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);

fn peer_toward(pe: Ipv4Addr) -> String {
    format!("\n[[unicast-peer]]\naddress = \"{pe}\"\niburst = true\nminpoll = 0\nmaxpoll = 2\n")
}

#[test]
fn max_dynamic_sessions_counts_per_vpn_instance() {
    let test = "max_dynamic_sessions_counts_per_vpn_instance";
    if !require_root(test) {
        return;
    }
    let dir = temp_dir(test);
    let mut net = TestNet::new(test, 1);
    let mut vpn_ns = Vec::new();
    let mut ces = Vec::new();
    for i in 1..=2 {
        let vpn = net.add_namespace(&format!("vpn{i}"));
        let ce = net.add_namespace(&format!("ce{i}"));
        net.connect(&vpn, "pe0", PE_IN_VPN, &ce, "eth0", CE);
        let host = net.host_in(&ce, CE);
        let body = local_server_config(3) + &peer_toward(PE_IN_VPN);
        ces.push(start_meridiand(&host, dir.path(), &format!("ce{i}"), &body).0);
        vpn_ns.push((vpn, ce));
    }
    let ce3 = net.add_namespace("ce3");
    net.connect(&vpn_ns[0].0, "pe1", PE_IN_VPN_SITE2, &ce3, "eth0", CE3);
    let body = format!(
        "[service]\nport = 123\nmax-dynamic-sessions = 1\n\n[clock]\ndriver = \"simulated\"\n\n\
         [vpn-instance.vpn1]\nnetns = \"{}\"\n\n[vpn-instance.vpn2]\nnetns = \"{}\"\n",
        vpn_ns[0].0, vpn_ns[1].0
    );
    let (pe, sock) = start_meridiand(net.host(0), dir.path(), "pe", &body);

    let passives_in = |sessions: &[Value], vpn: &str| -> Vec<Value> {
        sessions
            .iter()
            .filter(|s| s["vpn_instance"] == vpn && s["local_mode"] == "sym_passive")
            .cloned()
            .collect()
    };
    let mut sessions = Vec::new();
    let ok = wait_for(Duration::from_secs(30), Duration::from_millis(300), || {
        sessions = control(&sock, "sessions")
            .and_then(|a| a["sessions"].as_array().cloned())
            .unwrap_or_default();
        passives_in(&sessions, "vpn1").len() == 1 && passives_in(&sessions, "vpn2").len() == 1
    });
    assert!(
        ok,
        "one passive association per instance: {sessions:#?}\n{}",
        pe.log()
    );
    for vpn in ["vpn1", "vpn2"] {
        let s = &passives_in(&sessions, vpn)[0];
        assert_eq!(s["source"], CE.to_string(), "{s}");
        assert_eq!(s["configured"], false, "{s}");
    }

    // The third peer, in vpn1 (already at its limit), is refused and counted.
    let body = local_server_config(4) + &peer_toward(PE_IN_VPN_SITE2);
    let third = net.host_in(&ce3, CE3);
    let (ce3, _) = start_meridiand(&third, dir.path(), "ce3", &body);
    let refused = wait_for(Duration::from_secs(15), Duration::from_millis(300), || {
        status(&sock).is_some_and(|s| {
            s["server_counters"]["dropped"]["dynamic-limit"]
                .as_u64()
                .is_some_and(|n| n >= 2)
        })
    });
    assert!(
        refused,
        "vpn1's second peer refused: {:?}\n{}",
        status(&sock),
        pe.log()
    );
    let sessions = control(&sock, "sessions").unwrap()["sessions"]
        .as_array()
        .cloned()
        .unwrap();
    assert_eq!(passives_in(&sessions, "vpn1").len(), 1, "{sessions:#?}");
    assert_eq!(passives_in(&sessions, "vpn2").len(), 1, "{sessions:#?}");
    assert!(pe.is_running() && ces.iter().all(|c| c.is_running()) && ce3.is_running());
}
