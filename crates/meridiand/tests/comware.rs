//! The Comware reader against the guide's configuration examples (section 5) and a full router
//! configuration: each `*.cfg` in `comware_examples/` must load (with its side file
//! `*.cfg.toml` when present) to the same `Config` as its TOML twin `*.twin.toml`.

use std::path::{Path, PathBuf};
use std::process::Command;

use meridiand::config::{self, Config};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/comware_examples")
}

fn twin(cfg: &Path) -> Config {
    let name = cfg.file_stem().unwrap().to_string_lossy().to_string();
    let path = cfg.with_file_name(format!("{name}.twin.toml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    config::parse_str(&text).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
}

fn command_files() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cfg"))
        .collect();
    out.sort();
    out
}

#[test]
fn every_guide_example_matches_its_toml_twin() {
    let files = command_files();
    // 5.1 .. 5.8 and the full router configuration.
    for section in [
        "5.1",
        "5.2",
        "5.3",
        "5.4",
        "5.5",
        "5.6",
        "5.7",
        "5.8",
        "router-full",
    ] {
        assert!(
            files.iter().any(|f| f
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(section)),
            "no example for {section}"
        );
    }
    for cfg in files {
        let (got, _warnings) =
            config::load_any(&cfg).unwrap_or_else(|e| panic!("{}: {e:?}", cfg.display()));
        assert_eq!(got, twin(&cfg), "{}", cfg.display());
        // The same file through `load` (what `meridiand --config` uses).
        assert_eq!(config::load(&cfg).unwrap(), got, "{}", cfg.display());
    }
}

#[test]
fn conversion_round_trips_through_toml() {
    for cfg in command_files() {
        let (c, _) = config::load_any(&cfg).unwrap();
        let toml = config::to_toml(&c);
        let back =
            config::parse_str(&toml).unwrap_or_else(|e| panic!("{}: {e:?}\n{toml}", cfg.display()));
        assert_eq!(back, c, "{}:\n{toml}", cfg.display());
    }
}

#[test]
fn full_router_configuration_gives_one_summary_warning() {
    let cfg = examples_dir().join("router-full.cfg");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.lines().count() > 300,
        "the full configuration should be a few hundred lines"
    );
    let (c, warnings) = config::load_any(&cfg).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let ntp_lines = text.lines().filter(|l| l.contains("ntp-service")).count();
    let meaningful = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .count();
    // Every line that is neither NTP, nor an ACL/interface line NTP uses, is counted.
    let skipped: usize = warnings[0]
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("the warning starts with `skipped N`");
    assert!(
        skipped > 300 && skipped < meaningful - ntp_lines,
        "{}",
        warnings[0]
    );
    assert_eq!(c.unicast_servers.len(), 3);
}

#[test]
fn check_config_accepts_comware_and_prints_the_warning() {
    let cfg = examples_dir().join("router-full.cfg");
    let out = Command::new(env!("CARGO_BIN_EXE_meridiand"))
        .arg("--check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("skipped").count(), 1, "{stderr}");
}

#[test]
fn check_config_reports_comware_errors_with_line_and_column() {
    let dir = std::env::temp_dir().join(format!("meridiand-comware-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.cfg");
    std::fs::write(
        &path,
        "sysname R1\n ntp-service refclock-master 16\n ntp-service unicast-server 1.0.1.11 version 9\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meridiand"))
        .arg("--check-config")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bad.cfg:2:30: stratum must be 1 to 15"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.cfg:3:46: the NTP version must be 1 to 4"),
        "{stderr}"
    );
}
