//! Running `meridiand` in a test host and reading its state: config files in the test's temp
//! dir, the control socket spoken directly (one JSON line each way), and `meridianctl`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::netns::Host;
use super::procs::Proc;

/// Path of the `meridiand` binary under test.
pub fn meridiand_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_meridiand"))
}

/// `meridianctl`, built next to `meridiand` by `cargo test --workspace`. Missing: a failure in
/// CI, a printed SKIP locally (`None`).
pub fn meridianctl_bin(test: &str) -> Option<PathBuf> {
    let path = meridiand_bin().with_file_name("meridianctl");
    if path.exists() {
        return Some(path);
    }
    if super::in_ci() {
        panic!(
            "{test}: {} not built (run the workspace test command)",
            path.display()
        );
    }
    eprintln!("SKIPPED part of {test}: meridianctl not built; run cargo test --workspace");
    None
}

/// `meridian-load` (the load generator), built next to `meridiand` by
/// `cargo test --workspace` or `cargo build -p meridian-load`. Missing: a failure in CI, a
/// printed SKIP locally (`None`).
pub fn meridian_load_bin(test: &str) -> Option<PathBuf> {
    let path = meridiand_bin().with_file_name("meridian-load");
    if path.exists() {
        return Some(path);
    }
    if super::in_ci() {
        panic!(
            "{test}: {} not built (run the workspace test command)",
            path.display()
        );
    }
    super::skip(test, "meridian-load not built; run cargo test --workspace");
    None
}

/// Writes `DIR/TAG.toml` with `body`, adding a `[control]` table with a socket in `dir`
/// unless the body has one. Returns (config path, control socket path).
pub fn write_config(dir: &Path, tag: &str, body: &str) -> (PathBuf, PathBuf) {
    // Unix socket paths are limited to 107 bytes; test dirs carry long test names.
    let mut socket = dir.join(format!("{tag}.sock"));
    if socket.as_os_str().len() > 100 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        dir.hash(&mut h);
        socket = std::env::temp_dir().join(format!("mrd-{:016x}-{tag}.sock", h.finish()));
    }
    let mut text = body.to_owned();
    if !text.contains("[control]") {
        text.push_str(&format!("\n[control]\nsocket = \"{}\"\n", socket.display()));
    }
    let path = dir.join(format!("{tag}.toml"));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    (path, socket)
}

/// Starts `meridiand --config DIR/TAG.toml` in `host` (without CAP_SYS_TIME, like every
/// daemon in the tests); log in `DIR/TAG.log`. Returns the process and its control socket.
pub fn start_meridiand(host: &Host, dir: &Path, tag: &str, body: &str) -> (Proc, PathBuf) {
    let (config, socket) = write_config(dir, tag, body);
    let config = config.to_string_lossy().into_owned();
    let proc = host.spawn(
        meridiand_bin(),
        ["--config", config.as_str(), "--debug"],
        &dir.join(format!("{tag}.log")),
    );
    (proc, socket)
}

/// Sends one control request (`status`, `sessions`) and returns the JSON answer, or None if
/// the daemon is not (yet) listening.
pub fn control(socket: &Path, request: &str) -> Option<serde_json::Value> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(format!("{{\"request\":\"{request}\"}}\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// The `status` answer's fields, if the daemon answers.
pub fn status(socket: &Path) -> Option<serde_json::Value> {
    control(socket, "status").filter(|v| v["answer"] == "status")
}

/// A server config: the host clock as a local reference at `stratum`, read-only clock.
pub fn local_server_config(stratum: u8) -> String {
    format!(
        "[service]\nport = 123\n\n[clock]\ndriver = \"read-only\"\n\n\
         [local-reference]\naddress = \"127.127.1.0\"\nstratum = {stratum}\n"
    )
}

/// A client config on a simulated clock polling `server` (port 123) quickly.
pub fn simulated_client_config(server: &str, offset: &str, ppm: f64) -> String {
    format!(
        "[service]\nport = 123\n\n[clock]\ndriver = \"simulated\"\ninitial-offset = \"{offset}\"\n\
         frequency-ppm = {ppm:.1}\n\n[[unicast-server]]\naddress = \"{server}\"\niburst = true\n\
         minpoll = 0\nmaxpoll = 2\n"
    )
}

/// Waits until the daemon behind `socket` reports synchronized; returns its last status.
pub fn wait_synchronized(socket: &Path, timeout: Duration) -> Option<serde_json::Value> {
    let mut last = None;
    let ok = super::wait_for(timeout, Duration::from_millis(250), || {
        last = status(socket);
        last.as_ref().is_some_and(|s| s["synchronized"] == true)
    });
    ok.then_some(last).flatten()
}

/// The time `server` serves, measured by ntpdig from host `from` against the host clock: the
/// best (smallest error bound, i.e. least delayed) of `tries` queries, as any NTP filter would
/// take. Under CPU load a single query can be delayed by milliseconds in either program.
pub fn served_offset(
    net: &super::TestNet,
    from: usize,
    server: std::net::IpAddr,
    tries: usize,
) -> Option<f64> {
    let answers: Vec<_> = (0..tries)
        .filter_map(|_| super::ntpdig_query(net.host(from), server))
        .collect();
    eprintln!(
        "ntpdig {server}: {:?}",
        answers
            .iter()
            .map(|a| (a.offset, a.error))
            .collect::<Vec<_>>()
    );
    answers
        .into_iter()
        .min_by(|a, b| a.error.total_cmp(&b.error))
        .map(|a| a.offset)
}

/// Waits until the served time is within `limit` seconds (or returns the last measurement
/// when the timeout expires).
pub fn wait_served_offset(
    net: &super::TestNet,
    from: usize,
    server: std::net::IpAddr,
    limit: f64,
    timeout: Duration,
) -> Option<f64> {
    let mut last = None;
    super::wait_for(timeout, Duration::from_millis(500), || {
        last = served_offset(net, from, server, 3);
        last.is_some_and(|o| o.abs() < limit)
    });
    last
}
