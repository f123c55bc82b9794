//! The `meridiand` command line: `--check-config` accepts every shipped configuration and
//! reports every problem of a broken one with its line and column; usage errors exit 2.

use std::process::Command;

fn meridiand() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meridiand"))
}

#[test]
fn every_shipped_example_is_valid() {
    // Work on a copy: git does not keep the 0600 mode a keys file must have, and the daemon
    // refuses a keys file that others may read (as it should).
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let dir = std::env::temp_dir().join(format!("meridiand-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&shipped).expect("examples dir") {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("keys"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples copy") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = meridiand()
                .arg("--check-config")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(checked >= 3, "found only {checked} examples");
    // The configuration the systemd unit starts the daemon with.
    let packaged =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/meridian.toml");
    let out = meridiand()
        .arg("--check-config")
        .arg(&packaged)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_reports_each_problem_with_line_and_column() {
    let dir = std::env::temp_dir().join(format!("meridiand-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[service]\nport = 123\ncolour = \"blue\"\n\n[local-reference]\nstratum = 16\n\n[[unicast-server]]\naddress = \"198.18.0.1\"\nversion = 9\n",
    )
    .unwrap();
    let out = meridiand()
        .arg("--check-config")
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "three problems, one line each:\n{err}");
    assert!(
        lines[0].contains("bad.toml:3:1") && lines[0].contains("colour"),
        "{err}"
    );
    assert!(
        lines[1].contains(":6:11") && lines[1].contains("stratum"),
        "{err}"
    );
    assert!(
        lines[2].contains(":10:11") && lines[2].contains("version"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2_and_missing_config_exits_1() {
    let out = meridiand().arg("--frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = meridiand().output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no --config");
    let out = meridiand()
        .args(["--config", "/nonexistent/meridian.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/meridian.toml"));
    let out = meridiand().arg("--version").output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("meridiand "));
}
