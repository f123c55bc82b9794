//! VPN instances bound to devices (`[vpn-instance.X] vrf = "DEV"`, SO_BINDTODEVICE) end to
//! end. The test kernel has no VRF driver, so the devices are plain veths, which exercises the
//! same code path: one PE namespace with `vethA` and `vethB` toward two CE namespaces that
//! both hold a server at 198.18.1.1 (stratum 3 behind A, stratum 5 behind B). The PE has the
//! same address 198.18.1.2 on both veths and a route to 198.18.1.0/24 through each, vethA's
//! preferred (lower metric): a socket tied to vethB must use vethB's route. Checked: each
//! instance reaches its own server (told apart by stratum), the PE synchronizes, and both CEs
//! get answers from the PE, each through its own device, while the public instance also
//! serves on the NTP port (the port is shared with SO_REUSEADDR).
//!
//! Needs root (network namespaces) and ntpdig; prints SKIPPED otherwise.

mod support;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use support::{
    binary, control, local_server_config, ntpdig_query, require_root, start_meridiand, status,
    temp_dir, wait_for, TestNet,
};

const CE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const PE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn instances_bound_to_devices_reach_and_serve_their_own_side() {
    let test = "instances_bound_to_devices_reach_and_serve_their_own_side";
    if !require_root(test) || binary(test, "ntpdig").is_none() {
        return;
    }
    let dir = temp_dir(test);
    let mut net = TestNet::new(test, 1);
    let pe_ns = net.add_namespace("pe");
    let mut ces = Vec::new();
    for (dev, suffix, metric, stratum) in [("vethA", "cea", "10", 3u8), ("vethB", "ceb", "20", 5)] {
        let ce_ns = net.add_namespace(suffix);
        #[rustfmt::skip]
        ip(&["-n", &pe_ns, "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", &ce_ns]);
        #[rustfmt::skip]
        ip(&["-n", &pe_ns, "addr", "add", &format!("{PE}/24"), "dev", dev, "noprefixroute"]);
        ip(&["-n", &pe_ns, "link", "set", dev, "up"]);
        #[rustfmt::skip]
        ip(&["-n", &pe_ns, "route", "add", "198.18.1.0/24", "dev", dev, "metric", metric]);
        ip(&[
            "-n",
            &ce_ns,
            "addr",
            "add",
            &format!("{CE}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ce_ns, "link", "set", "eth0", "up"]);
        let host = net.host_in(&ce_ns, CE);
        let (proc, _) = start_meridiand(&host, dir.path(), suffix, &local_server_config(stratum));
        ces.push((host, proc, stratum));
    }
    let pe_host = net.host_in(&pe_ns, PE);
    let server = |vpn: &str| {
        format!(
            "\n[[unicast-server]]\naddress = \"{CE}\"\nvpn-instance = \"{vpn}\"\n\
             iburst = true\nminpoll = 0\nmaxpoll = 2\n"
        )
    };
    let body = format!(
        "[service]\nport = 123\n\n[clock]\ndriver = \"simulated\"\ninitial-offset = \"+0.2s\"\n{}{}\n\
         [vpn-instance.a]\nvrf = \"vethA\"\n\n[vpn-instance.b]\nvrf = \"vethB\"\n",
        server("a"),
        server("b"),
    );
    let (pe, sock) = start_meridiand(&pe_host, dir.path(), "pe", &body);

    // Each instance reaches its own server: stratum 3 through vethA, 5 through vethB.
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
        matches!((in_vpn("a"), in_vpn("b")), (Some(a), Some(b))
            if a["reach"].as_u64() > Some(0) && b["reach"].as_u64() > Some(0)
                && a["stratum"] == 3 && b["stratum"] == 5)
    });
    assert!(
        ok,
        "instances not each on their own device: {sessions:#}\n{}",
        pe.log()
    );
    assert_eq!(sessions.as_array().unwrap().len(), 2, "{sessions:#}");

    let ok = wait_for(Duration::from_secs(30), Duration::from_millis(300), || {
        status(&sock).is_some_and(|s| s["synchronized"] == true && s["stratum"] == 4)
    });
    assert!(ok, "PE not synchronized: {:?}\n{}", status(&sock), pe.log());

    // Both sides get the PE's time, each answered through its own device (an answer from the
    // wrong socket would leave through vethA, the preferred route, and never reach CE B).
    for (host, proc, stratum) in &ces {
        let answer = ntpdig_query(host, PE.into()).unwrap_or_else(|| {
            panic!(
                "no answer from the PE behind the stratum-{stratum} CE:\n{}",
                pe.log()
            )
        });
        assert_eq!(answer.server, PE.to_string());
        assert_eq!(answer.stratum, 4, "the PE's own stratum");
        assert!(proc.is_running());
    }
    assert!(pe.is_running());
}
