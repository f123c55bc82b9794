//! Tests: cross-references between tables, duplicates, files (`load`, `check_file`, keys file)
//! and the shipped `examples/full.toml`.

use std::path::{Path, PathBuf};

use super::tests::{errs, ok};
use super::*;

#[test]
fn key_references_must_exist() {
    let e = errs("[[unicast-server]]\naddress = \"198.18.0.1\"\nkey-id = 42\n");
    assert_eq!(
        e,
        vec![(3, 10, "`key-id` 42 is not a configured key".into())]
    );
    let e = errs("[[interface]]\nname = \"e\"\nmulticast-server = { key-id = 5 }\n[authentication]\ntrusted = [7]\n");
    assert_eq!(
        e,
        vec![
            (3, 31, "`key-id` 5 is not a configured key".into()),
            (5, 12, "trusted key 7 is not a configured key".into())
        ]
    );
    ok("[[unicast-peer]]\naddress = \"198.18.0.1\"\nkey-id = 42\n[authentication]\nkeys = [{ id = 42, algorithm = \"md5\", secret = \"k\" }]\ntrusted = [42]\n");
}

#[test]
fn vpn_instance_references_must_be_declared() {
    let e = errs("[[unicast-server]]\naddress = \"198.18.0.1\"\nvpn-instance = \"red\"\n[[interface]]\nname = \"e\"\nvpn-instance = \"blue\"\n");
    assert_eq!(
        e[0],
        (
            3,
            16,
            "`vpn-instance` \"red\" is not declared (add a [vpn-instance.red] table)".into()
        )
    );
    assert_eq!((e[1].0, e[1].1), (6, 16));
    ok("[[unicast-server]]\naddress = \"198.18.0.1\"\nvpn-instance = \"red\"\n[vpn-instance.red]\nvrf = \"red\"\n");
}

#[test]
fn access_rights_must_name_a_defined_acl() {
    let e = errs("[access]\npeer = \"2001\"\nquery = 2002\n[acl.2001]\n");
    assert_eq!(
        e,
        vec![(
            3,
            9,
            "ACL 2002 is not defined (add an [acl.2002] table)".into()
        )]
    );
}

#[test]
fn duplicate_servers_in_the_same_instance() {
    let two = |a: &str, va: &str, kb: &str, b: &str, vb: &str| {
        format!(
            "[[unicast-server]]\naddress = \"{a}\"\n{va}\n[[{kb}]]\naddress = \"{b}\"\n{vb}\n\
             [vpn-instance.v]\nnetns = \"v\"\n"
        )
    };
    let e = errs(&two("198.18.0.1", "", "unicast-server", "198.18.0.1", ""));
    assert_eq!(e, vec![(5, 11, "unicast-server \"198.18.0.1\" duplicates the unicast-server at 2:11 in the public network".into())]);
    // Same address written differently, and host names ignoring case.
    assert_eq!(
        errs(&two(
            "2001:2::1",
            "",
            "unicast-server",
            "2001:0002:0::1",
            ""
        ))
        .len(),
        1
    );
    assert_eq!(
        errs(&two(
            "Ntp.Example.net",
            "",
            "unicast-peer",
            "ntp.example.net.",
            ""
        ))
        .len(),
        1
    );
    let v = "vpn-instance = \"v\"";
    assert!(
        errs(&two("198.18.0.1", v, "unicast-peer", "198.18.0.1", v))[0]
            .2
            .contains("in VPN instance \"v\"")
    );
    // Different instances are different networks.
    ok(&two("198.18.0.1", v, "unicast-server", "198.18.0.1", ""));
    ok(&two("198.18.0.1", "", "unicast-server", "198.18.0.2", ""));
    // The same address on another port is another server; on the same port it is not.
    ok(&two(
        "127.0.0.1",
        "port = 11123",
        "unicast-server",
        "127.0.0.1",
        "port = 11124",
    ));
    assert_eq!(
        errs(&two(
            "127.0.0.1",
            "port = 11123",
            "unicast-server",
            "127.0.0.1",
            "port = 11123"
        ))
        .len(),
        1
    );
    assert_eq!(
        errs(&two(
            "127.0.0.1",
            "",
            "unicast-server",
            "127.0.0.1",
            "port = 123"
        ))
        .len(),
        1
    );
}

#[test]
fn duplicate_interfaces() {
    let e = errs("[[interface]]\nname = \"e\"\n[[interface]]\nname = \"e\"\n");
    assert_eq!(
        e,
        vec![(4, 1, "interface \"e\" is already configured at 2:1".into())]
    );
    ok("[[interface]]\nname = \"e\"\n[[interface]]\nname = \"e\"\nvpn-instance = \"v\"\n[vpn-instance.v]\nnetns = \"v\"\n");
}

#[test]
fn simulated_only_keys_refused_with_other_drivers() {
    for driver in ["system", "read-only"] {
        let e = errs(&format!(
            "[clock]\ndriver = \"{driver}\"\ninitial-offset = \"1s\"\nfrequency-ppm = 1\n"
        ));
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!((e[0].0, e[0].1, e[1].0, e[1].1), (3, 18, 4, 17));
        assert!(e[0].2.contains(&format!("driver is \"{driver}\"")));
    }
    // Absent driver means "system".
    assert_eq!(errs("[clock]\nfrequency-ppm = 0\n").len(), 1);
}

fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn shipped_full_example_loads_with_its_keys_file() {
    // Git keeps the example keys file world-readable, which `load` refuses: load a private
    // copy of the example and its keys file.
    let s = Scratch::new("full-example");
    let text = |rel: &str| std::fs::read_to_string(manifest_path(rel)).unwrap();
    let path = s.write("full.toml", &text("../../examples/full.toml"));
    let keys = s.write("keys", &text("../../examples/keys"));
    let c = load(&path).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.unicast_servers.len(), 2);
    assert_eq!(c.unicast_peers[0].address, "2001:2::1");
    assert_eq!(c.interfaces.len(), 2);
    assert_eq!(
        c.interfaces[0].multicast_client.unwrap().group,
        "ff05::101".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(c.vpn_instances.len(), 2);
    assert_eq!(c.acls.len(), 4);
    let auth = &c.authentication;
    let mut ids: Vec<u32> = auth.keys.iter().map(|k| k.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![7, 42, 43, 99]);
    assert_eq!(auth.key(7).unwrap().secret, b"meridian-key");
    assert_eq!(auth.keys_file.as_deref(), Some(keys.as_path()));
    // Without reading the keys file, the text alone is also valid.
    parse_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(check_file(&path).is_ok());
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("meridian-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        // Keys files must be private; configuration files may be too.
        set_mode(&p, 0o600);
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn key_in_keys_file_satisfies_references_only_when_read() {
    let s = Scratch::new("keysref");
    let text = "[[unicast-server]]\naddress = \"198.18.0.1\"\nkey-id = 5\n\
                [authentication]\nkeys-file = \"keys\"\ntrusted = [5]\n";
    let cfg = s.write("c.toml", text);
    s.write("keys", "5 md5 K\n");
    assert_eq!(
        load(&cfg).unwrap().authentication.key(5).unwrap().secret,
        b"K"
    );
    s.write("keys", "6 md5 K\n");
    let e = load(&cfg).unwrap_err();
    assert_eq!(
        (e[0].line, e[0].column, e[1].line, e[1].column),
        (3, 10, 6, 12),
        "{e:?}"
    );
}

/// attacks.md K7: a keys file readable by others is refused.
#[test]
fn keys_file_readable_by_others_is_refused() {
    let s = Scratch::new("keysmode");
    let cfg = s.write("c.toml", "[authentication]\nkeys-file = \"keys\"\n");
    let keys = s.write("keys", "1 md5 Secret\n");
    for (mode, ok) in [
        (0o600, true),
        (0o400, true),
        (0o644, false),
        (0o640, false),
        (0o604, false),
        (0o620, false),
    ] {
        set_mode(&keys, mode);
        match load(&cfg) {
            Ok(_) => assert!(ok, "mode {mode:o} accepted"),
            Err(e) => {
                assert!(!ok, "mode {mode:o} refused: {e:?}");
                assert_eq!((e.len(), e[0].line, e[0].column), (1, 2, 13));
                assert!(
                    e[0].message.contains(&format!("mode {mode:04o}"))
                        && e[0].message.contains("chmod 600"),
                    "{e:?}"
                );
                assert!(!e[0].message.contains("Secret"));
            }
        }
    }
}

#[test]
fn keys_file_problems_point_at_keys_file() {
    let s = Scratch::new("keysbad");
    let cfg = s.write("c.toml", "[authentication]\nkeys-file = \"keys\"\n");
    let e = load(&cfg).unwrap_err();
    assert_eq!((e.len(), e[0].line, e[0].column), (1, 2, 13));
    assert!(e[0].message.contains("cannot read keys file"), "{e:?}");
    s.write("keys", "# ok\n1 md5 a\n2 blowfish b\n");
    let e = load(&cfg).unwrap_err();
    assert_eq!((e.len(), e[0].line, e[0].column), (1, 2, 13));
    assert!(
        e[0].message
            .contains("keys:3:3: unknown key type \"blowfish\""),
        "{e:?}"
    );
    s.write("keys", "1 md5 a\n");
    let cfg2 = s.write("d.toml", "[authentication]\nkeys-file = \"keys\"\nkeys = [{ id = 1, algorithm = \"md5\", secret = \"b\" }]\n");
    assert!(load(&cfg2).unwrap_err()[0]
        .message
        .contains("both inline and in the keys file"));
}

#[test]
fn load_and_check_file_report_with_file_name() {
    let s = Scratch::new("check");
    let missing = s.0.join("absent.toml");
    let e = load(&missing).unwrap_err();
    assert_eq!((e.len(), e[0].line, e[0].column), (1, 0, 0));
    let cfg = s.write("bad.toml", "[service]\nport = 0\nfoo = 1\n");
    let report = check_file(&cfg).unwrap_err();
    let lines: Vec<&str> = report.lines().collect();
    let name = cfg.display().to_string();
    assert_eq!(lines.len(), 2, "{report}");
    assert!(lines[0].starts_with(&format!("{name}:2:8: ")), "{report}");
    assert!(
        lines[1].starts_with(&format!("{name}:3:1: unknown key `foo`")),
        "{report}"
    );
    assert!(check_file(&missing)
        .unwrap_err()
        .starts_with(&format!("{}:0:0: cannot read", missing.display())));
}

#[test]
fn server_threads_need_a_clock_the_threads_can_read() {
    let c = ok("[service]\nserver-threads = 2\n[clock]\ndriver = \"read-only\"\n");
    assert_eq!(c.service.server_threads, 2);
    assert_eq!(
        ok("").service.server_threads,
        0,
        "default: the main loop serves"
    );
    let e = errs("[service]\nserver-threads = 3\n[clock]\ndriver = \"simulated\"\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].0, e[0].1), (2, 18));
    assert!(
        e[0].2.contains("`server-threads`") && e[0].2.contains("simulated"),
        "{e:?}"
    );
    // Zero threads is the simulator's setting and always accepted.
    ok("[service]\nserver-threads = 0\n[clock]\ndriver = \"simulated\"\n");
    assert_eq!(errs("[service]\nserver-threads = 65\n").len(), 1);
    assert_eq!(errs("[service]\nserver-threads = -1\n").len(), 1);
}
