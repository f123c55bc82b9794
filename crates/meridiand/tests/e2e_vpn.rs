//! NTP for VPNs end to end: one `meridiand` (the PE) with associations in two VPN instances
//! whose servers share the same address, each instance a network namespace; the PE keeps them
//! apart, shows each with its VPN instance, and serves time into both.
//!
//! Needs root (network namespaces); prints SKIPPED otherwise.

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use support::{
    binary, control, local_server_config, ntpdig_query, require_root, start_meridiand, status,
    temp_dir, wait_for, TestNet,
};

const CE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const PE_IN_VPN: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);

#[test]
/// attacks.md V1: overlapping addresses in two VPN instances stay apart.
fn one_daemon_serves_and_uses_two_vpn_instances_with_overlapping_addresses() {
    let test = "one_daemon_serves_and_uses_two_vpn_instances_with_overlapping_addresses";
    if !require_root(test) || binary(test, "ntpdig").is_none() {
        return;
    }
    let dir = temp_dir(test);
    let mut net = TestNet::new(test, 2);
    // Public network: the PE (host 0) and a stratum-2 server (host 1).
    let (public_server, _) =
        start_meridiand(net.host(1), dir.path(), "public", &local_server_config(2));
    // Two VPN instances, each a namespace with a CE server at the same address 198.18.1.1.
    let mut vpn_ns = Vec::new();
    let mut ces = Vec::new();
    for (i, stratum) in [(1, 3u8), (2, 5u8)] {
        let vpn = net.add_namespace(&format!("vpn{i}"));
        let ce = net.add_namespace(&format!("ce{i}"));
        net.connect(&vpn, "pe0", PE_IN_VPN, &ce, "eth0", CE);
        let host = net.host_in(&ce, CE);
        let (proc, _) = start_meridiand(
            &host,
            dir.path(),
            &format!("ce{i}"),
            &local_server_config(stratum),
        );
        ces.push((host, proc));
        vpn_ns.push(vpn);
    }
    let public = net.host(1).ipv4();
    let body = format!(
        "[service]\nport = 123\n\n[clock]\ndriver = \"simulated\"\ninitial-offset = \"+0.2s\"\n\n\
         [[unicast-server]]\naddress = \"{public}\"\niburst = true\nminpoll = 0\nmaxpoll = 2\n\n\
         [[unicast-server]]\naddress = \"{CE}\"\nvpn-instance = \"vpn1\"\niburst = true\nminpoll = 0\nmaxpoll = 2\n\n\
         [[unicast-server]]\naddress = \"{CE}\"\nvpn-instance = \"vpn2\"\niburst = true\nminpoll = 0\nmaxpoll = 2\n\n\
         [vpn-instance.vpn1]\nnetns = \"{}\"\n\n[vpn-instance.vpn2]\nnetns = \"{}\"\n",
        vpn_ns[0], vpn_ns[1]
    );
    let (pe, sock) = start_meridiand(net.host(0), dir.path(), "pe", &body);

    // Both VPN associations reach their own server: stratum 3 in vpn1, 5 in vpn2.
    let mut sessions = serde_json::Value::Null;
    let ok = wait_for(Duration::from_secs(30), Duration::from_millis(300), || {
        sessions = control(&sock, "sessions")
            .map(|a| a["sessions"].clone())
            .unwrap_or_default();
        let in_vpn = |name: &str| {
            sessions.as_array().and_then(|list| {
                list.iter()
                    .find(|s| s["vpn_instance"] == name && s["source"] == CE.to_string())
                    .cloned()
            })
        };
        matches!((in_vpn("vpn1"), in_vpn("vpn2")), (Some(a), Some(b))
            if a["reach"].as_u64() > Some(0) && b["reach"].as_u64() > Some(0)
                && a["stratum"] == 3 && b["stratum"] == 5)
    });
    assert!(
        ok,
        "VPN associations not both reachable and apart: {sessions:#}\n{}",
        pe.log()
    );
    let list = sessions.as_array().unwrap();
    assert_eq!(list.len(), 3, "{sessions:#}");
    let public_session = list
        .iter()
        .find(|s| s["source"] == public.to_string())
        .expect("public session");
    assert!(public_session["vpn_instance"].is_null());

    // The PE synchronizes to the best source (the public stratum-2 server).
    let ok = wait_for(Duration::from_secs(30), Duration::from_millis(300), || {
        status(&sock).is_some_and(|s| s["synchronized"] == true && s["stratum"] == 3)
    });
    let st = status(&sock);
    assert!(ok, "PE not synchronized at stratum 3: {st:?}\n{}", pe.log());
    assert_eq!(st.unwrap()["system_peer"], public.to_string());

    // It serves time into both VPN instances, from its address there.
    for (i, (ce, _)) in ces.iter().enumerate() {
        let answer = ntpdig_query(ce, PE_IN_VPN.into())
            .unwrap_or_else(|| panic!("no answer from the PE in vpn{}:\n{}", i + 1, pe.log()));
        assert_eq!(answer.server, PE_IN_VPN.to_string());
        assert_eq!(answer.stratum, 3, "the PE's own stratum");
    }
    assert!(pe.is_running() && public_server.is_running());
}
