//! Proves the test-network harness with the reference daemons: chronyd serving, ntpdig and NTPsec's ntpd as clients, cleanup on panic.
//!
//! Needs root (network namespaces); prints SKIPPED otherwise. Every daemon
//! runs without CAP_SYS_TIME; the host clock is only read.

mod support;

use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use support::{
    binary, ntpdig_query, ntpq_command, require_root, start_chronyd, start_ntpsec_ntpd, temp_dir,
    wait_for, NtpdigAnswer, TestNet,
};

/// chronyd as a stratum-1 server (its "reference" is the host clock) in `host`.
const CHRONY_SERVER: &[&str] = &["local stratum 1", "allow"];

/// Polls ntpdig (each try has a 3 s timeout) until the server answers.
fn query_until_answer(net: &TestNet, client: usize, server: IpAddr) -> Option<NtpdigAnswer> {
    let mut answer = None;
    wait_for(Duration::from_secs(15), Duration::from_millis(200), || {
        answer = ntpdig_query(net.host(client), server);
        answer.is_some()
    });
    answer
}

fn chrony_answers_ntpdig(test: &str, v6: bool) {
    if !require_root(test) {
        return;
    }
    let (Some(chronyd), Some(_)) = (binary(test, "chronyd"), binary(test, "ntpdig")) else {
        return;
    };
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let server = net.host(0).ip(v6);
    let proc = start_chronyd(&chronyd, net.host(0), &dir, "chronyd", CHRONY_SERVER);

    let answer = query_until_answer(&net, 1, server)
        .unwrap_or_else(|| panic!("no answer from chronyd at {server}: {}", proc.describe()));
    assert_eq!(
        answer.server,
        server.to_string(),
        "answer from the wrong address"
    );
    assert_eq!(answer.stratum, 1, "local stratum 1 server");
    assert_eq!(answer.leap, "no-leap");
    // Server and client read the same host clock.
    assert!(answer.offset.abs() < 0.1, "offset {} s", answer.offset);
    assert!(proc.is_running(), "chronyd exited: {}", proc.describe());
}

#[test]
fn chronyd_serves_ntpdig_over_ipv4() {
    chrony_answers_ntpdig("chronyd_serves_ntpdig_over_ipv4", false);
}

#[test]
fn chronyd_serves_ntpdig_over_ipv6() {
    chrony_answers_ntpdig("chronyd_serves_ntpdig_over_ipv6", true);
}

#[test]
fn ntpsec_ntpd_selects_chronyd() {
    let test = "ntpsec_ntpd_selects_chronyd";
    if !require_root(test) {
        return;
    }
    let Some(chronyd) = binary(test, "chronyd") else {
        return;
    };
    let Some(ntpd) = binary(test, "ntpd") else {
        return;
    };
    let Some(_) = binary(test, "ntpq") else {
        return;
    };
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let server = net.host(0).ipv4();
    let chrony = start_chronyd(&chronyd, net.host(0), &dir, "chronyd", CHRONY_SERVER);
    let server_line = format!("server {server} iburst minpoll 4 maxpoll 4");
    let ntpd = start_ntpsec_ntpd(&ntpd, net.host(1), &dir, "ntpd", &[&server_line]);

    let selected = format!("*{server}");
    let mut last = String::new();
    let start = Instant::now();
    let ok = wait_for(Duration::from_secs(60), Duration::from_secs(1), || {
        let out = ntpq_command(net.host(1), &["-n", "-p", "127.0.0.1"])
            .output()
            .expect("run ntpq");
        last = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        last.lines().any(|l| l.starts_with(&selected))
    });
    assert!(
        ok,
        "ntpd did not select {server} within 60 s; last ntpq output:\n{last}\nntpd: {}\nchronyd: {}",
        ntpd.describe(),
        chrony.describe()
    );
    eprintln!("{test}: ntpd selected chronyd after {:?}", start.elapsed());
    assert!(ntpd.is_running() && chrony.is_running());
}

/// Reads a capability mask line (`CapEff:\t...`) from /proc/self/status text.
fn cap_mask(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} missing in:\n{status}"));
    u64::from_str_radix(line[field.len()..].trim(), 16).expect("hex capability mask")
}

#[test]
fn hosts_have_their_addresses_no_default_route_and_no_sys_time() {
    let test = "hosts_have_their_addresses_no_default_route_and_no_sys_time";
    if !require_root(test) {
        return;
    }
    const CAP_SYS_TIME: u32 = 25;
    let net = TestNet::new(test, 3);
    for (i, host) in net.hosts().iter().enumerate() {
        let status = host.run("cat", ["/proc/self/status"]);
        let status = String::from_utf8_lossy(&status.stdout);
        for field in ["CapEff:", "CapPrm:", "CapBnd:", "CapInh:", "CapAmb:"] {
            assert_eq!(
                cap_mask(&status, field) & (1 << CAP_SYS_TIME),
                0,
                "{field} has CAP_SYS_TIME in {}",
                host.name()
            );
        }

        let addrs = host.run("ip", ["-o", "addr", "show", "dev", "eth0"]);
        let addrs = String::from_utf8_lossy(&addrs.stdout);
        assert!(
            addrs.contains(&format!("inet 198.18.0.{}/24", i + 1)),
            "{addrs}"
        );
        assert!(
            addrs.contains(&format!("inet6 2001:2::{:x}/64", i + 1)),
            "{addrs}"
        );
        for family in ["-4", "-6"] {
            let routes = host.run("ip", [family, "route", "show", "default"]);
            assert!(routes.status.success());
            let routes = String::from_utf8_lossy(&routes.stdout);
            assert!(
                routes.trim().is_empty(),
                "default route in {}: {routes}",
                host.name()
            );
        }
    }
    // The root namespace never gets an address from the test ranges.
    let root = std::process::Command::new("ip")
        .args(["-o", "addr"])
        .output()
        .unwrap();
    let root = String::from_utf8_lossy(&root.stdout);
    for range in [" 198.18.", " 198.19.", " 2001:2:"] {
        assert!(
            !root.contains(range),
            "root namespace has a{range} address:\n{root}"
        );
    }
}

#[test]
fn guard_removes_namespaces_and_processes_on_panic() {
    let test = "guard_removes_namespaces_and_processes_on_panic";
    if !require_root(test) {
        return;
    }
    let dir = temp_dir(test);
    let mut seen = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let net = TestNet::new(test, 2);
        let sleeper = net.host(1).spawn("sleep", ["300"], &dir.join("sleep.log"));
        let names = net.namespaces().to_vec();
        let present = support::netns::list_namespaces();
        assert!(
            names.iter().all(|n| present.contains(n)),
            "{names:?} vs {present:?}"
        );
        assert!(sleeper.is_running());
        seen = Some((names, sleeper.pid()));
        panic!("deliberate panic with a live test network");
    }));
    assert!(result.is_err(), "the closure must have panicked");
    let (names, pid) = seen.expect("network was built before the panic");
    assert_eq!(names.len(), 3, "bridge + 2 hosts");
    let present = support::netns::list_namespaces();
    let left: Vec<_> = names.iter().filter(|n| present.contains(n)).collect();
    assert!(left.is_empty(), "namespaces left after panic: {left:?}");
    // The sleeper was reaped by the guard: its pid is gone (or reused by a
    // process that is not our sleep).
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("sleep\x00300"),
        "sleep (pid {pid}) still running"
    );
}

#[test]
fn ntpdig_line_parses() {
    let line = "2026-11-25 23:43:40.571922 (+0000) -0.012500 +/- 0.000154 2001:2::1 s2 no-leap";
    let a = NtpdigAnswer::parse(line).expect("answer line");
    assert_eq!(a.offset, -0.0125);
    assert_eq!(a.error, 0.000154);
    assert_eq!(a.server, "2001:2::1");
    assert_eq!(a.stratum, 2);
    assert_eq!(a.leap, "no-leap");
    assert_eq!(NtpdigAnswer::parse("198.18.0.1: no response"), None);
}
