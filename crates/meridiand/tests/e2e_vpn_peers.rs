//! Dynamic symmetric associations per VPN instance end to end: one `meridiand` (the PE) with
//! `max-dynamic-sessions = 1` and two VPN instances (network namespaces) whose CE routers
//! share the address 198.18.1.1 and are both configured active toward the PE. Each instance
//! has room for its own dynamic association, so the PE holds one passive association in each,
//! shown with its VPN instance; a second active peer in vpn1 (another site) is refused.
//!
//! Needs root (network namespaces); prints SKIPPED otherwise.

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;
use support::{
    control, local_server_config, require_root, start_meridiand, status, temp_dir, wait_for,
    TestNet,
};

const CE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const PE_IN_VPN: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
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

    let passive_in = |sessions: &[Value], vpn: &str| -> Vec<Value> {
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
        passive_in(&sessions, "vpn1").len() == 1 && passive_in(&sessions, "vpn2").len() == 1
    });
    assert!(
        ok,
        "one passive association per instance: {sessions:#?}\n{}",
        pe.log()
    );
    for vpn in ["vpn1", "vpn2"] {
        let s = &passive_in(&sessions, vpn)[0];
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
    assert_eq!(passive_in(&sessions, "vpn1").len(), 1, "{sessions:#?}");
    assert_eq!(passive_in(&sessions, "vpn2").len(), 1, "{sessions:#?}");
    assert!(pe.is_running() && ces.iter().all(|c| c.is_running()) && ce3.is_running());
}
