//! Bounded soak (attacks.md G5, G6): 200,000 mixed datagrams (valid, malformed, MD5-authenticated,
//! wrong-digest, oversized) from `meridian-load --mix` against meridiand in a network
//! namespace; RSS stays flat, a valid client is answered during and after, the log stays
//! small, the control socket still answers. The long run is `scripts/soak`.
//!
//! Needs root (network namespaces) and `meridian-load` built next to meridiand; prints
//! SKIPPED otherwise (fails under CI).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use support::{
    local_server_config, meridian_load_bin, meridianctl_bin, meridiand_bin, require_root, status,
    temp_dir, wait_for, write_config, Host, TestNet,
};

const PACKETS: u64 = 200_000;
const RATE: u64 = 25_000;
const SECRET: &str = "SoakTestKey";
/// The largest log the daemon may write for the whole run (start-up lines only).
const LOG_LIMIT: u64 = 8 * 1024;

fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// `meridianctl query` from `host` to 198.18.0.1, up to three requests (a client retries);
/// whether one was answered.
fn query(host: &Host, ctl: &std::path::Path) -> bool {
    #[rustfmt::skip]
    let args = ["query", "198.18.0.1", "--count", "3", "--interval", "0.2", "--timeout", "1"];
    host.run(ctl, args).status.success()
}

/// attacks.md G6 (bounded variant) and G5: a flood of mixed datagrams leaves RSS flat, the
/// log short, and the server answering valid clients and its control socket.
#[test]
fn g6_mixed_flood_keeps_rss_flat_and_answers_valid_clients() {
    let test = "g6_mixed_flood_keeps_rss_flat_and_answers_valid_clients";
    if !require_root(test) {
        return;
    }
    let Some(load) = meridian_load_bin(test) else {
        return;
    };
    let Some(ctl) = meridianctl_bin(test) else {
        return;
    };
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    let (server, client) = (net.host(0), net.host(1));
    let keys = dir.join("keys");
    std::fs::write(&keys, format!("1 md5 {SECRET}\n")).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let body = format!(
        "{}\n[authentication]\nenable = true\nkeys-file = \"{}\"\ntrusted = [1]\n\n\
         [rate-limit]\nenable = false\n",
        local_server_config(1),
        keys.display()
    );
    let (config, socket) = write_config(&dir, "server", &body);
    let config = config.to_string_lossy().into_owned();
    // No --debug: the log must show what a production daemon writes.
    let daemon = server.spawn(
        meridiand_bin(),
        ["--config", config.as_str()],
        &dir.join("server.log"),
    );
    assert!(
        wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
            query(client, &ctl)
        }),
        "server never answered: {}",
        daemon.describe()
    );

    let secs = (PACKETS / RATE + 1).to_string();
    let (packets, rate) = (PACKETS.to_string(), RATE.to_string());
    #[rustfmt::skip]
    let flood = client.spawn(&load, [
        "--target", "198.18.0.1:123", "--rate", rate.as_str(), "--duration", secs.as_str(),
        "--max-packets", packets.as_str(), "--sources", "8", "--drain-ms", "1000",
        "--mix", "valid=50,malformed=30,auth=15,bad-auth=5", "--seed", "7",
        "--key-id", "1", "--key-secret", SECRET, "--json",
    ], &dir.join("load.json"));

    // RSS every 250 ms; the first second is warm-up. One valid query mid-flood.
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut during = None;
    while flood.is_running() && start.elapsed() < Duration::from_secs(25) {
        std::thread::sleep(Duration::from_millis(250));
        let rss = rss_kib(daemon.pid());
        assert!(rss.is_some(), "daemon gone: {}", daemon.describe());
        samples.push((start.elapsed(), rss.unwrap_or(0)));
        if during.is_none() && start.elapsed() > Duration::from_secs(3) {
            during = Some(query(client, &ctl));
        }
    }
    assert!(
        !flood.is_running(),
        "load generator still running after 25 s"
    );
    let report: serde_json::Value = serde_json::from_str(flood.log().trim())
        .unwrap_or_else(|e| panic!("load report: {e}: {}", flood.log()));
    std::thread::sleep(Duration::from_millis(300));
    let last = rss_kib(daemon.pid()).expect("daemon still running after the flood");
    let after = query(client, &ctl);
    let st = status(&socket);
    let log_len = std::fs::metadata(daemon.log_path()).map_or(0, |m| m.len());

    let base = samples
        .iter()
        .find(|(t, _)| *t >= Duration::from_secs(1))
        .or(samples.first())
        .map_or(0, |s| s.1);
    let context = format!(
        "samples {samples:?}, last {last} KiB\nreport {report}\n{}",
        daemon.describe()
    );
    let sent = report["sent"].as_u64().unwrap_or(0);
    assert!(sent >= PACKETS * 9 / 10, "few datagrams sent: {context}");
    assert!(
        last.abs_diff(base) <= (base / 10).max(1024),
        "RSS not flat: {context}"
    );
    assert_eq!(
        during,
        Some(true),
        "valid client not answered during the flood: {context}"
    );
    assert!(
        after,
        "valid client not answered after the flood: {context}"
    );
    assert!(
        log_len < LOG_LIMIT,
        "log grew to {log_len} bytes: {context}"
    );
    assert!(
        st.is_some(),
        "control socket does not answer status: {context}"
    );

    // The mix itself: authenticated requests answered, wrong digests crypto-NAKed, and
    // nothing malformed answered at all.
    let kinds = report["mix"]["kinds"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let kind = |name: &str, field: &str| {
        kinds
            .iter()
            .find(|k| k["kind"] == name)
            .and_then(|k| k[field].as_u64())
            .unwrap_or(0)
    };
    let expected = report["mix"]["expected_replies"].as_u64().unwrap_or(0);
    let answered = report["answered"].as_u64().unwrap_or(0);
    assert!(
        answered * 2 >= expected,
        "most valid requests unanswered: {context}"
    );
    assert_eq!(
        report["invalid"], 0,
        "answers that are not mode 4: {context}"
    );
    assert!(
        kind("auth", "replies") > 0,
        "no authenticated replies: {context}"
    );
    assert_eq!(kind("auth", "crypto_naks"), 0, "{context}");
    assert!(
        kind("bad-auth", "crypto_naks") > 0,
        "no crypto-NAKs: {context}"
    );
    assert_eq!(
        kind("bad-auth", "replies"),
        0,
        "wrong digest answered: {context}"
    );
    // Random bytes are now and then a valid request by chance; only their count is checked.
    assert!(
        kind("random", "datagrams") > 0,
        "no random datagrams sent: {context}"
    );
    for k in [
        "truncated",
        "bad-version",
        "mode6",
        "mode7",
        "extension-garbage",
        "oversized",
    ] {
        assert!(kind(k, "datagrams") > 0, "no {k} sent: {context}");
        assert_eq!(
            kind(k, "replies") + kind(k, "crypto_naks"),
            0,
            "{k} answered: {context}"
        );
    }
}
