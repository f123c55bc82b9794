//! NTP for VPNs, isolation end to end: one `meridiand` (the PE) with an association in each of
//! two VPN instances whose servers share the address 198.18.1.1. In vpn1 a python3 sniffer
//! (`support/ntp_probe.py sniff`) records the PE's requests without answering, so the vpn1
//! association always has an expected origin pending; in vpn2 a python3 server answers
//! genuinely and, on demand, first injects a forged reply (stratum 1) carrying vpn1's expected
//! origin into the PE's vpn2 client socket. The forgery must be rejected and change nothing:
//! neither the vpn2 association (stratum, reach) nor the vpn1 one (still unreachable).
//!
//! Needs root (network namespaces) and python3; prints SKIPPED otherwise.

mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use support::{binary, control, require_root, start_meridiand, temp_dir, wait_for, TestNet};

const CE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const PE_IN_VPN: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);

fn session(sock: &Path, vpn: &str) -> Option<serde_json::Value> {
    control(sock, "sessions")?["sessions"]
        .as_array()?
        .iter()
        .find(|s| s["vpn_instance"] == vpn && s["source"] == CE.to_string())
        .cloned()
}

/// Log lines of the probe starting with `kind`, split in fields.
fn lines(log: &Path, kind: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|f| f.first().map(String::as_str) == Some(kind))
        .collect()
}

#[test]
/// attacks.md V1: a reply carrying the other instance's origin is rejected.
fn reply_injected_into_the_second_vpn_with_the_first_ones_origin_is_rejected() {
    let test = "reply_injected_into_the_second_vpn_with_the_first_ones_origin_is_rejected";
    if !require_root(test) || binary(test, "python3").is_none() {
        return;
    }
    let dir = temp_dir(test);
    let script = dir.join("ntp_probe.py");
    std::fs::write(&script, include_str!("support/ntp_probe.py")).unwrap();
    let script = script.to_string_lossy().into_owned();
    let mut net = TestNet::new(test, 1);
    let (sniff_log, serve_log, forge) = (
        dir.join("vpn1.log"),
        dir.join("vpn2.log"),
        dir.join("forge"),
    );
    let mut vpn_ns = Vec::new();
    let mut probes = Vec::new();
    for i in 1..=2 {
        let vpn = net.add_namespace(&format!("vpn{i}"));
        let ce = net.add_namespace(&format!("ce{i}"));
        net.connect(&vpn, "pe0", PE_IN_VPN, &ce, "eth0", CE);
        let host = net.host_in(&ce, CE);
        let args: Vec<String> = if i == 1 {
            vec![
                script.clone(),
                "sniff".into(),
                sniff_log.display().to_string(),
            ]
        } else {
            vec![
                script.clone(),
                "serve".into(),
                serve_log.display().to_string(),
                forge.display().to_string(),
            ]
        };
        probes.push(host.spawn("python3", &args, &dir.join(&format!("probe{i}.out"))));
        vpn_ns.push(vpn);
    }
    let body = format!(
        "[service]\nport = 123\n\n[clock]\ndriver = \"simulated\"\n\n\
         [[unicast-server]]\naddress = \"{CE}\"\nvpn-instance = \"vpn1\"\niburst = true\nminpoll = 0\nmaxpoll = 1\n\n\
         [[unicast-server]]\naddress = \"{CE}\"\nvpn-instance = \"vpn2\"\niburst = true\nminpoll = 0\nmaxpoll = 1\n\n\
         [vpn-instance.vpn1]\nnetns = \"{}\"\n\n[vpn-instance.vpn2]\nnetns = \"{}\"\n",
        vpn_ns[0], vpn_ns[1]
    );
    let (pe, sock) = start_meridiand(net.host(0), dir.path(), "pe", &body);

    // vpn2 reaches its (python) server at stratum 2; vpn1 has sent requests, never answered.
    let ok = wait_for(Duration::from_secs(15), Duration::from_millis(200), || {
        session(&sock, "vpn2").is_some_and(|s| s["reach"].as_u64() > Some(0) && s["stratum"] == 2)
            && !lines(&sniff_log, "request").is_empty()
    });
    assert!(
        ok,
        "vpn2 not reachable or vpn1 silent: {:?}\n{}",
        session(&sock, "vpn2"),
        pe.log()
    );
    let before = session(&sock, "vpn2").unwrap();
    let rejected_before = before["verbose"]["packets_rejected"]
        .as_u64()
        .expect("packets_rejected");

    // vpn1's latest expected origin (the transmit timestamp of its latest request) goes to the
    // forger in vpn2, which sends it ahead of its next genuine answer.
    let origin = lines(&sniff_log, "request").last().unwrap()[4].clone();
    let tmp = dir.join("forge.tmp");
    std::fs::write(&tmp, &origin).unwrap();
    std::fs::rename(&tmp, &forge).unwrap();
    let sent = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        lines(&serve_log, "forged")
            .iter()
            .any(|f| f.get(3) == Some(&origin))
    });
    assert!(sent, "the forger in vpn2 never saw a request from the PE");
    let forged = lines(&serve_log, "forged");
    assert_eq!(
        forged[0][1],
        PE_IN_VPN.to_string(),
        "sent to the PE's vpn2 socket"
    );

    let rejected = wait_for(Duration::from_secs(5), Duration::from_millis(100), || {
        session(&sock, "vpn2")
            .and_then(|s| s["verbose"]["packets_rejected"].as_u64())
            .is_some_and(|r| r > rejected_before)
    });
    let after = session(&sock, "vpn2").unwrap();
    assert!(
        rejected,
        "forged reply not counted as rejected: before {before:#}\nafter {after:#}"
    );
    assert_eq!(
        after["stratum"], 2,
        "the forged stratum 1 was not taken: {after:#}"
    );
    assert!(after["reach"].as_u64() > Some(0), "{after:#}");
    let vpn1 = session(&sock, "vpn1").unwrap();
    assert_eq!(
        vpn1["reach"], 0,
        "vpn1 stays unreachable: its origin arrived in vpn2: {vpn1:#}"
    );
    assert!(pe.is_running());
}
