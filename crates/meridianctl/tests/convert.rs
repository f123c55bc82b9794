//! `meridianctl convert FILE`: a Comware command file becomes TOML that the daemon's TOML reader
//! accepts as the same configuration; a broken file fails with its line and column.

use std::process::Command;

fn ctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meridianctl"))
}

#[test]
fn converts_a_comware_file_to_equivalent_toml() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pe.cfg");
    std::fs::write(
        &path,
        "#\n sysname PE1\n#\n ntp-service refclock-master 3\n ntp-service unicast-server 198.18.0.1 \
         vpn-instance blue version 3\n ntp-service access peer 2001\n#\nacl number 2001\n rule 0 \
         permit source 198.18.0.0 0.0.0.255\n#\nreturn\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("pe.cfg.toml"),
        "[vpn-instance.blue]\nvrf = \"blue\"\n",
    )
    .unwrap();
    let out = ctl().arg("convert").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("skipped 1 line").count(), 1, "{stderr}");
    let toml = String::from_utf8(out.stdout).unwrap();
    let converted = meridiand::config::parse_str(&toml).unwrap();
    let (direct, _) = meridiand::config::load_any(&path).unwrap();
    assert_eq!(converted, direct);
    assert_eq!(
        converted.unicast_servers[0].vpn_instance.as_deref(),
        Some("blue")
    );
    assert_eq!(converted.unicast_servers[0].version, 3);
    assert_eq!(converted.local_reference.unwrap().stratum, 3);
    assert_eq!(converted.access.peer, Some(2001));
    assert!(toml.contains("vrf = \"blue\""), "{toml}");
}

#[test]
fn a_broken_file_fails_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.cfg");
    std::fs::write(
        &path,
        "interface eth0\n ntp-service multicast-server 224.0.1.1 ttl 0\n",
    )
    .unwrap();
    let out = ctl().arg("convert").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("bad.cfg:2:45: the TTL must be 1 to 255"),
        "{stderr}"
    );
}
