//! Locating the reference daemons and clients (Debian packages installed by .ci/run) and running `ntpdig`/`ntpq`.
//!
//! Where each tool is looked for:
//! * `chronyd`, `ntpdig`, other programs: `PATH`, then `/usr/sbin`, `/usr/bin`, `/sbin`.
//! * `check_*` (monitoring-plugins): `/usr/lib/nagios/plugins`.
//! * `ntpd`, `ntpq` (NTPsec, unpacked, not installed): `$MERIDIAN_NTPSEC_DIR/usr/sbin/ntpd`
//!   and `$MERIDIAN_NTPSEC_DIR/usr/bin/ntpq`; the default dir is
//!   [`DEFAULT_NTPSEC_DIR`]. Never another `ntpd` from `PATH`.
//! * `python3`: only `/usr/bin/python3` (Debian's, which has the `ntp` module
//!   ntpq and ntpdig need).
//!
//! `ntpdig` has no option for a server port (its `-p` is the sample count):
//! a server under test must listen on port 123 of its namespace, which is
//! free there because every test host has its own port space.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::netns::Host;

/// Where .ci/run unpacks NTPsec's package when `MERIDIAN_NTPSEC_DIR` is unset.
pub const DEFAULT_NTPSEC_DIR: &str = "/opt/meridian-test/ntpsec";

const PLUGIN_DIR: &str = "/usr/lib/nagios/plugins";

fn ntpsec_dir() -> PathBuf {
    std::env::var_os("MERIDIAN_NTPSEC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_NTPSEC_DIR))
}

fn is_file(p: &Path) -> bool {
    p.is_file()
}

/// Looks a tool up (see the module docs for where); `None` when absent.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match name {
        "ntpd" => vec![ntpsec_dir().join("usr/sbin/ntpd")],
        // ntpq is a Python script run by /usr/bin/python3: both must exist.
        "ntpq" if !is_file(Path::new("/usr/bin/python3")) => vec![],
        "ntpq" => vec![ntpsec_dir().join("usr/bin/ntpq")],
        "python3" => vec![PathBuf::from("/usr/bin/python3")],
        n if n.starts_with("check_") => vec![Path::new(PLUGIN_DIR).join(n)],
        n => std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
            .map(|dir| dir.join(n))
            .collect(),
    };
    candidates.into_iter().find(|p| is_file(p))
}

/// [`find_binary`] for a test that needs the tool: under CI (`CI=true`) a
/// missing tool panics (a test failure, since .ci/run installs them all);
/// locally it prints `SKIPPED <test>: <name> not found` to stderr and
/// returns `None`, and the test returns early.
pub fn binary(test: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = find_binary(name) {
        return Some(p);
    }
    let hint = match name {
        "ntpd" | "ntpq" => format!(
            "unpack NTPsec into {} (see .ci/run) or set MERIDIAN_NTPSEC_DIR",
            ntpsec_dir().display()
        ),
        _ => "install the Debian packages listed in .ci/run".to_owned(),
    };
    if super::in_ci() {
        panic!("{test}: required tool {name} not found under CI; {hint}");
    }
    super::skip(test, &format!("{name} not found; {hint}"));
    None
}

/// One answer as `ntpdig` prints it:
/// `2026-11-25 23:43:40.571922 (+0000) +0.000057 +/- 0.000154 198.18.0.1 s1 no-leap`.
#[derive(Debug, Clone, PartialEq)]
pub struct NtpdigAnswer {
    /// Server clock minus local (host) clock, seconds.
    pub offset: f64,
    /// ntpdig's error bound, seconds.
    pub error: f64,
    /// Address the answer came from, as printed.
    pub server: String,
    pub stratum: u8,
    /// `no-leap`, `add-leap`, `del-leap` or `unsync`.
    pub leap: String,
}

impl NtpdigAnswer {
    /// Parses one line of ntpdig's text output; `None` if it is not an answer.
    pub fn parse(line: &str) -> Option<NtpdigAnswer> {
        let f: Vec<&str> = line.split_whitespace().collect();
        let pm = f.iter().position(|t| *t == "+/-")?;
        if pm < 1 || f.len() < pm + 5 {
            return None;
        }
        Some(NtpdigAnswer {
            offset: f[pm - 1].parse().ok()?,
            error: f[pm + 1].parse().ok()?,
            server: f[pm + 2].to_owned(),
            stratum: f[pm + 3].strip_prefix('s')?.parse().ok()?,
            leap: f[pm + 4].to_owned(),
        })
    }
}

/// Queries `server` (port 123) once with `ntpdig -t 3` from inside `host`;
/// `None` when there is no answer. Panics if ntpdig is not installed (call
/// [`binary`] first to skip cleanly).
pub fn ntpdig_query(host: &Host, server: IpAddr) -> Option<NtpdigAnswer> {
    let ntpdig = find_binary("ntpdig").expect("ntpdig not installed");
    let out = host.run(&ntpdig, ["-t", "3", &server.to_string()]);
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(NtpdigAnswer::parse)
}

/// The offset (seconds, server minus host clock) from [`ntpdig_query`].
pub fn ntpdig_offset(host: &Host, server: IpAddr) -> Option<f64> {
    ntpdig_query(host, server).map(|a| a.offset)
}

/// A command running NTPsec's `ntpq ARGS` with `/usr/bin/python3` inside
/// `host`. Panics if ntpq is absent (call [`binary`] first).
pub fn ntpq_command(host: &Host, args: &[&str]) -> Command {
    let ntpq = find_binary("ntpq").expect("NTPsec ntpq not found");
    let mut all = vec![ntpq.into_os_string()];
    all.extend(args.iter().map(Into::into));
    host.command("/usr/bin/python3", all)
}
