//! Shared integration-test harness: a private test network of Linux network namespaces, processes confined to it, temp dirs and tool lookup.
//!
//! Include it from an integration test file with `mod support;`.
//!
//! * [`require_root`]: network namespaces need root; when not root a test prints
//!   `SKIPPED <test>: ...` and returns (in CI, `CI=true`, it fails instead).
//! * [`TestNet`]: a bridge namespace plus one namespace per host; a drop guard
//!   that kills the processes it started and deletes its namespaces, also when
//!   the test panics. See [`netns`] for the addressing rules.
//! * [`Host::command`] / [`Host::spawn`] / [`Host::run`]: run a program inside a
//!   host namespace, always without CAP_SYS_TIME.
//! * [`binary`]: locate chronyd, ntpdig, check_ntp_peer, NTPsec's ntpd/ntpq.
//! * [`ntpdig_offset`]: one SNTP query through `ntpdig`, offset in seconds.
//! * [`start_chronyd`], [`start_ntpsec_ntpd`]: reference daemons in a host.
//! * [`temp_dir`], [`wait_for`]: per-test scratch dir and bounded polling.
//!
//! Nothing here touches the host clock, the real interfaces or the root
//! namespace's addresses.

// Each test binary uses a different part of the harness.
#![allow(dead_code, unused_imports)]

pub mod meridian;
pub mod netns;
pub mod procs;
pub mod reference;
pub mod tools;

pub use meridian::{
    control, local_server_config, meridian_load_bin, meridianctl_bin, meridiand_bin, served_offset,
    simulated_client_config, start_meridiand, status, wait_served_offset, wait_synchronized,
    write_config,
};
pub use netns::{Host, TestNet};
pub use procs::Proc;
pub use reference::{start_chronyd, start_ntpsec_ntpd};
pub use tools::{binary, find_binary, ntpdig_offset, ntpdig_query, ntpq_command, NtpdigAnswer};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// True when running under CI (`CI=true`): missing prerequisites are failures there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// True when the tests run as root and may build network namespaces.
///
/// When not root: prints `SKIPPED <test>: needs root for network namespaces`
/// to stderr and returns false, so the caller returns early. Under CI, which
/// runs as root by contract, not being root is a misconfiguration and panics.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return true;
    }
    if in_ci() {
        panic!("{test}: CI=true but not running as root (euid {euid}); network-namespace tests need root");
    }
    skip(test, "needs root for network namespaces");
    false
}

/// Prints `SKIPPED <test>: <why>` straight to the process's stderr. The test
/// harness captures `eprintln!` output of passing tests, so a skip reported
/// that way would be invisible; a direct write is always shown.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
}

/// Polls `f` every `poll` until it returns true or `timeout` has passed.
/// Returns whether `f` succeeded; `f` is always tried at least once.
pub fn wait_for(timeout: Duration, poll: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(poll.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// A per-test scratch directory, removed when dropped unless the environment
/// variable `MERIDIAN_KEEP_TEST_DIRS` is set (then its path is printed).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path().join(name)`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MERIDIAN_KEEP_TEST_DIRS").is_some() {
            eprintln!("kept test dir {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Creates a fresh directory `meridian-<test>-<unique id>` under
/// `std::env::temp_dir()`.
pub fn temp_dir(test: &str) -> TempDir {
    let safe: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let path = std::env::temp_dir().join(format!("meridian-{safe}-{}", netns::unique_id(test)));
    std::fs::create_dir_all(&path)
        .unwrap_or_else(|e| panic!("cannot create test dir {}: {e}", path.display()));
    TempDir { path }
}
