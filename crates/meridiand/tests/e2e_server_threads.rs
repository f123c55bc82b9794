//! End to end in network namespaces: meridiand with `[service] server-threads = 2`. Many
//! clients (meridian-load from 16 source ports, which the kernel spreads over the three
//! sockets of the port) are all answered, with the right time; the status counters are the
//! sum over the threads; mode 6 queries from many ports and a symmetric peer, whatever socket
//! the kernel hands them to, still reach the main loop; a reload replaces the access rules in
//! the threads too; SIGTERM stops the daemon with its threads.
//!
//! Needs root (network namespaces); prints SKIPPED otherwise. The server runs the read-only
//! clock driver, the peer the simulated one; the host clock is only read.

mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::{
    binary, control, local_server_config, meridian_load_bin, ntpdig_query, ntpq_command,
    require_root, served_offset, start_meridiand, status, temp_dir, wait_synchronized,
    write_config, Host, TestNet,
};

/// Sends one mode 6 READSTAT from each of `n` fresh sockets (so from `n` source ports) and
/// prints how many got an answer within one second.
const READSTATS: &str = r#"
import socket, sys
server, n = sys.argv[1], int(sys.argv[2])
ok = 0
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    s.sendto(bytes([0x26, 0x01, 0x00, i + 1]) + bytes(8), (server, 123))
    try:
        s.recv(2048)
        ok += 1
    except socket.timeout:
        pass
    s.close()
print(ok)
"#;

fn readstats_answered(host: &Host, server: &str, n: usize) -> usize {
    let out = host.run(
        "/usr/bin/python3",
        ["-c", READSTATS, server, &n.to_string()],
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("python output: {out:?}"))
}

fn counters(socket: &Path) -> Value {
    status(socket).expect("status")["server_counters"].clone()
}

fn count(c: &Value, key: &str) -> u64 {
    c[key].as_u64().unwrap_or(0)
}

fn dropped(c: &Value, reason: &str) -> u64 {
    c["dropped"][reason].as_u64().unwrap_or(0)
}

/// Runs meridian-load from `host` against `server` port 123: `n` requests from 16 ports.
fn load(load: &Path, host: &Host, dir: &Path, server: &str, n: u64, tag: &str) -> Value {
    let (rate, total) = (2000.to_string(), n.to_string());
    let secs = (n / 2000 + 1).to_string();
    let target = format!("{server}:123");
    let out = host.run(
        load,
        [
            "--target",
            &target,
            "--rate",
            &rate,
            "--duration",
            &secs,
            "--max-packets",
            &total,
            "--sources",
            "16",
            "--drain-ms",
            "1000",
            "--json",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    std::fs::write(dir.join(format!("{tag}.json")), &text).ok();
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("load report {e}: {out:?}"))
}

/// The names of the daemon's threads (from /proc).
fn thread_names(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_owned())
        .collect()
}

fn peer_table(address: &str) -> String {
    format!(
        "\n[[unicast-peer]]\naddress = \"{address}\"\niburst = true\nminpoll = 0\nmaxpoll = 2\n"
    )
}

#[test]
fn two_server_threads_answer_many_clients_and_leave_the_rest_to_the_main_loop() {
    let test = "two_server_threads_answer_many_clients_and_leave_the_rest_to_the_main_loop";
    if !require_root(test) || binary(test, "ntpdig").is_none() {
        return;
    }
    let Some(load_bin) = meridian_load_bin(test) else {
        return;
    };
    let Some(_) = binary(test, "ntpq") else {
        return;
    };
    let dir = temp_dir(test);
    let net = TestNet::new(test, 3);
    let server = net.host(0).ipv4().to_string();
    let peer = net.host(2).ipv4().to_string();
    let threads = "port = 123\nserver-threads = 2\n";
    let base = local_server_config(1).replacen("port = 123\n", threads, 1) + &peer_table(&peer);
    // Remote mode 6 queries need a configured right: `peer` for everyone (time, control,
    // peering).
    let acl =
        |rules: &str| format!("{base}\n[access]\npeer = 2002\n[acl.2002]\nrules = [ {rules} ]\n");
    let permit_any = "{ action = \"permit\", source = \"any\" }";
    let body = acl(permit_any);
    let (daemon, socket) = start_meridiand(net.host(0), dir.path(), "server", &body);
    assert!(
        wait_synchronized(&socket, Duration::from_secs(10)).is_some(),
        "server not up: {}",
        daemon.describe()
    );
    let names = thread_names(daemon.pid());
    assert!(
        names.iter().any(|n| n == "server-0") && names.iter().any(|n| n == "server-1"),
        "threads: {names:?}"
    );

    // The threads hold no capability the main thread dropped.
    let caps = |task: &str| {
        std::fs::read_to_string(format!("/proc/{}/task/{task}/status", daemon.pid()))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("CapEff:") || l.starts_with("CapPrm:"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let main_caps = caps(&daemon.pid().to_string());
    for task in std::fs::read_dir(format!("/proc/{}/task", daemon.pid())).unwrap() {
        let task = task.unwrap().file_name().to_string_lossy().into_owned();
        assert_eq!(caps(&task), main_caps, "thread {task}");
    }

    // Correct time, several queries (ntpdig uses a new port each time).
    let offset = served_offset(&net, 1, net.host(0).ipv4().into(), 5).expect("ntpdig answer");
    assert!(offset.abs() < 1e-3, "served offset {offset}");

    // Many clients: every request answered, and the counters say so, summed over threads.
    let before = counters(&socket);
    let report = load(&load_bin, net.host(1), dir.path(), &server, 4000, "load");
    let after = counters(&socket);
    let sent = count(&report, "sent");
    assert!(sent >= 3900, "load sent {sent}: {report}");
    assert_eq!(count(&report, "answered"), sent, "{report}");
    assert_eq!(count(&report, "invalid"), 0, "{report}");
    let received = count(&after, "received") - count(&before, "received");
    let answered = count(&after, "answered") - count(&before, "answered");
    // Exactly the load's requests, give or take the peer's few packets in the meantime.
    assert!(
        (sent..=sent + 20).contains(&received) && (sent..=sent + 20).contains(&answered),
        "counters moved by {received} received, {answered} answered for {sent}: {after}"
    );

    // Mode 6 from 12 source ports: the ones hashed to a thread are handed to the main loop.
    assert_eq!(
        readstats_answered(net.host(1), &server, 12),
        12,
        "{}",
        daemon.describe()
    );
    let ntpq = ntpq_command(net.host(1), &["-n", "-p", &server])
        .output()
        .expect("ntpq");
    let text = String::from_utf8_lossy(&ntpq.stdout);
    assert!(
        text.contains(&peer),
        "ntpq -p does not list the peer: {text}"
    );

    // A symmetric peer (simulated clock, 20 ms off) synchronizes to the threaded server.
    let peer_body = format!(
        "[service]\nport = 123\n\n[clock]\ndriver = \"simulated\"\ninitial-offset = \"+0.02s\"\n\
         frequency-ppm = 5.0\n{}",
        peer_table(&server)
    );
    let (p, p_socket) = start_meridiand(net.host(2), dir.path(), "peer", &peer_body);
    let st = wait_synchronized(&p_socket, Duration::from_secs(40))
        .unwrap_or_else(|| panic!("peer never synchronized:\n{}\n{}", p.log(), daemon.log()));
    assert_eq!(st["system_peer"], server.as_str(), "{st}");
    assert_eq!(st["stratum"], 2, "{st}");

    // Reload: deny the clients' host the server right; the threads apply it too.
    let deny = format!(
        "{{ action = \"deny\", source = \"{}\" }}, {permit_any}",
        net.host(1).ipv4()
    );
    let denied_body = acl(&deny);
    write_config(dir.path(), "server", &denied_body);
    let answer = control(&socket, "reload").expect("reload answer");
    assert_eq!(answer["answer"], "reloaded", "{answer}");
    let before = counters(&socket);
    let report = load(&load_bin, net.host(1), dir.path(), &server, 300, "denied");
    let after = counters(&socket);
    let sent = count(&report, "sent");
    assert!(sent >= 290, "{report}");
    assert_eq!(
        count(&report, "answered"),
        0,
        "denied host answered: {report}"
    );
    let denied = dropped(&after, "access-denied") - dropped(&before, "access-denied");
    assert_eq!(denied, sent, "{after}");

    // Rate limiting on (reload): one client address, from 16 ports, sits in at most one
    // table per socket (main loop and two threads); the status shows the sum.
    assert!(
        after["rate_limit_entries"].is_null(),
        "rate limiting is off: {after}"
    );
    write_config(
        dir.path(),
        "server",
        &(acl(permit_any) + "\n[rate-limit]\n"),
    );
    let answer = control(&socket, "reload").expect("reload answer");
    assert_eq!(answer["answer"], "reloaded", "{answer}");
    let report = load(&load_bin, net.host(1), dir.path(), &server, 300, "limited");
    assert!(count(&report, "answered") > 0, "{report}");
    let entries = counters(&socket)["rate_limit_entries"].as_u64();
    assert!(
        entries.is_some_and(|n| (1..=3).contains(&n)),
        "rate-limit entries {entries:?}"
    );

    // Shutdown: the threads stop with the daemon.
    p.stop();
    let exit = daemon.stop().expect("exit status");
    assert!(exit.success(), "{exit:?}: {}", daemon.log());
}

#[test]
fn server_threads_serve_inside_a_vpn_instance_namespace() {
    let test = "server_threads_serve_inside_a_vpn_instance_namespace";
    if !require_root(test) || binary(test, "ntpdig").is_none() {
        return;
    }
    let Some(load_bin) = meridian_load_bin(test) else {
        return;
    };
    const CE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
    const PE_IN_VPN: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
    let dir = temp_dir(test);
    let mut net = TestNet::new(test, 1);
    let vpn = net.add_namespace("vpn1");
    let ce_ns = net.add_namespace("ce1");
    net.connect(&vpn, "pe0", PE_IN_VPN, &ce_ns, "eth0", CE);
    let ce = net.host_in(&ce_ns, CE);
    let body =
        local_server_config(4).replacen("port = 123\n", "port = 123\nserver-threads = 2\n", 1)
            + &format!("\n[vpn-instance.vpn1]\nnetns = \"{vpn}\"\n");
    let (pe, socket) = start_meridiand(net.host(0), dir.path(), "pe", &body);
    assert!(
        wait_synchronized(&socket, Duration::from_secs(10)).is_some(),
        "{}",
        pe.describe()
    );
    // Two threads per instance: the public network's and vpn1's.
    let names = thread_names(pe.pid());
    for name in ["server-0", "server-1", "vpn1-server-0", "vpn1-server-1"] {
        assert!(
            names.iter().any(|n| n == name),
            "no thread {name}: {names:?}"
        );
    }
    // Inside the VPN: answered from the PE's address there, by whichever socket; the served
    // time is judged on the answer with the smallest error bound, as everywhere else (a
    // single answer can carry the client's own scheduling delay on a busy machine).
    let mut answers = Vec::new();
    for _ in 0..4 {
        let a = ntpdig_query(&ce, PE_IN_VPN.into())
            .unwrap_or_else(|| panic!("no answer in vpn1: {}", pe.describe()));
        assert_eq!(
            (a.server.as_str(), a.stratum),
            (PE_IN_VPN.to_string().as_str(), 4)
        );
        answers.push(a);
    }
    let best = answers
        .iter()
        .min_by(|a, b| a.error.total_cmp(&b.error))
        .expect("four answers");
    assert!(best.offset.abs() < 1e-3, "{answers:?}");
    let before = counters(&socket);
    let report = load(
        &load_bin,
        &ce,
        dir.path(),
        &PE_IN_VPN.to_string(),
        1000,
        "vpn-load",
    );
    let sent = count(&report, "sent");
    assert!(sent >= 990, "{report}");
    assert_eq!(count(&report, "answered"), sent, "{report}");
    let after = counters(&socket);
    assert_eq!(
        count(&after, "answered") - count(&before, "answered"),
        sent,
        "{after}"
    );
    let exit = pe.stop().expect("exit status");
    assert!(exit.success(), "{exit:?}: {}", pe.log());
}
