//! Tests: reading each table — defaults, values, range boundaries, types and unknown keys.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use super::*;

/// Parse text that must be valid.
pub(super) fn ok(text: &str) -> Config {
    match parse_str(text) {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors: {e:?}\n--- in ---\n{text}"),
    }
}

/// Parse text that must be invalid; returns (line, column, message).
pub(super) fn errs(text: &str) -> Vec<(usize, usize, String)> {
    match parse_str(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e
            .into_iter()
            .map(|e| (e.line, e.column, e.message))
            .collect(),
    }
}

/// 1-based line and column (in characters) of the first `@` in `template`.
fn marker(template: &str) -> (usize, usize) {
    let at = template.find('@').expect("template has a marker");
    let before = &template[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap().chars().count() + 1;
    (line, col)
}

/// Every `good` value substituted for `@` parses; every `bad` one is one error at `@`.
pub(super) fn check_range(template: &str, good: &[&str], bad: &[&str]) {
    for g in good {
        ok(&template.replace('@', g));
    }
    let pos = marker(template);
    for b in bad {
        let e = errs(&template.replace('@', b));
        assert_eq!(e.len(), 1, "{b} in {template}: {e:?}");
        assert_eq!((e[0].0, e[0].1), pos, "{b} in {template}: {e:?}");
    }
}

#[test]
fn empty_file_gives_documented_defaults() {
    let c = ok("");
    assert_eq!(c.service.port, 123);
    assert_eq!(c.service.max_dynamic_sessions, 100);
    assert_eq!(c.service.dscp, 48);
    assert_eq!(c.service.source_interface, None);
    assert_eq!(
        c.control.socket,
        PathBuf::from("/run/meridian/control.sock")
    );
    assert!(c.control.mode6);
    assert_eq!(c.metrics.listen, None);
    assert_eq!(c.clock.driver, ClockDriverKind::System);
    assert_eq!(c.clock.step_threshold, 0.128);
    assert_eq!(c.clock.panic_threshold, 1000.0);
    assert_eq!(c.clock.initial_offset, 0.0);
    assert_eq!(c.clock.frequency_ppm, 0.0);
    assert!(c.local_reference.is_none());
    assert!(c.unicast_servers.is_empty() && c.unicast_peers.is_empty());
    assert!(c.interfaces.is_empty() && c.vpn_instances.is_empty() && c.acls.is_empty());
    assert!(!c.authentication.enable);
    assert_eq!(c.access, AccessConfig::default());
}

/// The interface.md example, verbatim.
const SPEC_EXAMPLE: &str = include_str!("spec_example.toml");

#[test]
fn spec_example_verbatim_reports_only_its_real_inconsistencies() {
    let e = errs(SPEC_EXAMPLE);
    let msgs: Vec<&str> = e.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(e.len(), 6, "{e:#?}");
    assert!(msgs[0].contains("`initial-offset` only applies to driver \"simulated\""));
    assert!(msgs[1].contains("`frequency-ppm` only applies"));
    assert!(msgs[2].contains("missing required key `address` in [[unicast-peer]]"));
    for (m, n) in msgs[3..].iter().zip([2002, 2003, 2004]) {
        assert!(m.contains(&format!("ACL {n} is not defined")), "{m}");
    }
}

#[test]
fn spec_example_made_consistent_parses_with_its_values() {
    let text = SPEC_EXAMPLE
        .replace("driver = \"system\"", "driver = \"simulated\"")
        .replace(
            "[[unicast-peer]]",
            "[[unicast-peer]]\naddress = \"198.18.0.2\"",
        )
        + "[acl.2002]\n[acl.2003]\n[acl.2004]\nrules = []\n";
    let c = ok(&text);
    assert_eq!(c.service.source_interface.as_deref(), Some("eth0"));
    assert_eq!(
        c.service.drift_file,
        Some(PathBuf::from("/var/lib/meridian/drift"))
    );
    assert_eq!(c.metrics.listen, Some("127.0.0.1:9975".parse().unwrap()));
    assert_eq!(c.clock.driver, ClockDriverKind::Simulated);
    assert_eq!(c.clock.initial_offset, 1.5);
    assert_eq!(c.clock.frequency_ppm, 40.0);
    let l = c.local_reference.unwrap();
    assert_eq!(
        (l.address, l.unit, l.stratum),
        (Ipv4Addr::new(127, 127, 1, 0), 0, 8)
    );
    let s = &c.unicast_servers[0];
    assert_eq!(s.address, "198.18.0.1");
    assert_eq!(s.vpn_instance.as_deref(), Some("vpn1"));
    assert_eq!(
        (s.key_id, s.priority, s.version, s.minpoll, s.maxpoll, s.iburst),
        (Some(42), false, 4, 6, 10, true)
    );
    assert_eq!(s.source_interface.as_deref(), Some("eth1"));
    let p = &c.unicast_peers[0];
    assert_eq!(
        (p.version, p.minpoll, p.maxpoll, p.key_id),
        (4, 6, 10, None)
    );
    let i = &c.interfaces[0];
    assert_eq!(i.name, "eth1");
    assert!(i.receive && i.broadcast_client);
    assert_eq!(
        i.broadcast_server,
        Some(BroadcastServerConfig {
            key_id: Some(4),
            version: 4,
            poll: 6
        })
    );
    let m = i.multicast_server.unwrap();
    assert_eq!(
        (m.group, m.ttl, m.key_id, m.version, m.poll),
        (DEFAULT_MULTICAST_GROUP, 16, Some(4), 4, 6)
    );
    assert_eq!(
        i.multicast_client.unwrap().group,
        IpAddr::V4(Ipv4Addr::new(224, 0, 1, 1))
    );
    let v = &c.vpn_instances["vpn1"];
    assert_eq!(v.binding, VpnBinding::Netns("vpn1".into()));
    assert!(v.serve);
    let a = &c.authentication;
    assert!(a.enable);
    assert_eq!(a.keys_file, Some(PathBuf::from("/etc/meridian/keys")));
    assert_eq!(a.keys[0].id, 42);
    assert_eq!(a.keys[0].secret, b"BetterKey");
    assert_eq!(a.trusted, vec![42]);
    assert_eq!(
        c.access,
        AccessConfig {
            peer: Some(2001),
            server: Some(2002),
            synchronization: Some(2003),
            query: Some(2004)
        }
    );
    let acl = &c.acls[&2001];
    assert_eq!(
        acl.evaluate("198.18.0.9".parse().unwrap()),
        Some(AclAction::Permit)
    );
    assert_eq!(
        acl.evaluate("198.18.1.9".parse().unwrap()),
        Some(AclAction::Deny)
    );
    assert_eq!(c.acls[&2004].evaluate("198.18.0.9".parse().unwrap()), None);
}

#[test]
fn service_ranges() {
    check_range(
        "[service]\nport = @\n",
        &["1", "65535"],
        &["0", "65536", "-1", "\"123\""],
    );
    check_range(
        "[service]\nmax-dynamic-sessions = @\n",
        &["0", "100"],
        &["-1", "101"],
    );
    check_range("[service]\ndscp = @\n", &["0", "63"], &["-1", "64", "4.5"]);
    check_range(
        "[service]\nsource-interface = @\n",
        &["\"eth0\"", "\"abcdefghijklmno\""],
        &["\"\"", "\"abcdefghijklmnop\"", "\"a/b\"", "1"],
    );
    check_range(
        "[service]\ndrift-file = @\n",
        &["\"/x\""],
        &["\"\"", "true"],
    );
}

#[test]
fn control_and_metrics() {
    let c = ok(
        "[control]\nsocket = \"/tmp/m.sock\"\nmode6 = false\n[metrics]\nlisten = \"[::1]:9975\"\n",
    );
    assert_eq!(c.control.socket, PathBuf::from("/tmp/m.sock"));
    assert!(!c.control.mode6);
    assert_eq!(c.metrics.listen, Some("[::1]:9975".parse().unwrap()));
    check_range(
        "[control]\nmode6 = @\n",
        &["true", "false"],
        &["\"yes\"", "1"],
    );
    check_range("[control]\nsocket = @\n", &["\"s\""], &["\"\"", "3"]);
    check_range(
        "[metrics]\nlisten = @\n",
        &["\"127.0.0.1:1\""],
        &["\"localhost:9975\"", "\"127.0.0.1\"", "9975"],
    );
}

#[test]
fn clock_keys() {
    check_range(
        "[clock]\ndriver = @\n",
        &["\"system\"", "\"read-only\"", "\"simulated\""],
        &["\"kernel\"", "\"System\"", "1"],
    );
    check_range(
        "[clock]\nstep-threshold = @\n",
        &["\"0s\"", "\"500us\"", "\"1000s\""],
        &["\"-1ms\"", "0.128", "\"128\"", "\"1001s\""],
    );
    check_range(
        "[clock]\npanic-threshold = @\n",
        &["\"0s\"", "\"2m\""],
        &["\"-1s\"", "\"1000\"", "1000"],
    );
    check_range(
        "[clock]\ndriver = \"simulated\"\ninitial-offset = @\n",
        &["\"-0.25s\"", "\"+1.5s\"", "\"0s\""],
        &["\"1.5\"", "-0.25"],
    );
    check_range(
        "[clock]\ndriver = \"simulated\"\nfrequency-ppm = @\n",
        &["-500", "500", "40.0", "-12.5"],
        &["-500.5", "501", "\"40\""],
    );
    let c =
        ok("[clock]\ndriver = \"read-only\"\nstep-threshold = \"2m\"\npanic-threshold = \"0s\"\n");
    assert_eq!(
        (
            c.clock.driver,
            c.clock.step_threshold,
            c.clock.panic_threshold
        ),
        (ClockDriverKind::ReadOnly, 120.0, 0.0)
    );
    let c = ok("[clock]\ndriver = \"simulated\"\ninitial-offset = \"-0.25s\"\n");
    assert_eq!(c.clock.initial_offset, -0.25);
}

#[test]
fn local_reference_keys() {
    check_range(
        "[local-reference]\naddress = @\n",
        &["\"127.127.1.0\"", "\"127.127.1.3\""],
        &[
            "\"127.127.1.4\"",
            "\"127.127.2.0\"",
            "\"127.0.0.1\"",
            "\"x\"",
        ],
    );
    check_range(
        "[local-reference]\nstratum = @\n",
        &["1", "15"],
        &["0", "16"],
    );
    let l = ok("[local-reference]\naddress = \"127.127.1.2\"\nstratum = 3\n")
        .local_reference
        .unwrap();
    assert_eq!((l.unit, l.stratum), (2, 3));
    assert_eq!(
        ok("[local-reference]\n").local_reference.unwrap().stratum,
        8
    );
}

const AUTH_FILE: &str = "\n[authentication]\nkeys-file = \"k\"\n";

#[test]
fn association_ranges() {
    for kind in ["unicast-server", "unicast-peer"] {
        let t = |rest: &str| format!("[[{kind}]]\naddress = \"198.18.0.1\"\n{rest}{AUTH_FILE}");
        check_range(&t("version = @\n"), &["1", "4"], &["0", "5"]);
        check_range(
            &t("maxpoll = 17\nminpoll = @\n"),
            &["-6", "17"],
            &["-7", "18"],
        );
        check_range(
            &t("minpoll = -6\nmaxpoll = @\n"),
            &["-6", "17"],
            &["-7", "18"],
        );
        check_range(
            &t("key-id = @\n"),
            &["1", "4294967295"],
            &["0", "4294967296", "\"42\""],
        );
        check_range(&t("priority = @\n"), &["true"], &["1"]);
        check_range(&t("iburst = @\n"), &["false"], &["\"no\""]);
        check_range(&t("source-interface = @\n"), &["\"eth1\""], &["\"\""]);
        check_range(&t("minpoll = 8\nmaxpoll = @\n"), &["8", "9"], &["7"]);
    }
}

#[test]
fn association_addresses() {
    let t = "[[unicast-server]]\naddress = @\n";
    check_range(
        t,
        &[
            "\"198.18.0.1\"",
            "\"2001:2::1\"",
            "\"ntp.example.net\"",
            "\"ntp.example.net.\"",
            "\"a-b.c1\"",
            "\"localhost\"",
        ],
        &[
            "\"224.0.1.1\"",
            "\"ff05::101\"",
            "\"255.255.255.255\"",
            "\"0.0.0.0\"",
            "\"::\"",
            "\"127.127.1.0\"",
            "\"198.18.0.256\"",
            "\"-bad.example\"",
            "\"a..b\"",
            "\"a_b.example\"",
            "\"\"",
            "42",
        ],
    );
    let e = errs("[[unicast-server]]\nversion = 4\n");
    assert_eq!(
        e,
        vec![(
            1,
            1,
            "missing required key `address` in [[unicast-server]]".into()
        )]
    );
}

#[test]
fn interface_keys() {
    let t = |rest: &str| format!("[[interface]]\nname = \"eth1\"\n{rest}{AUTH_FILE}");
    check_range(
        &t("broadcast-server = { poll = @ }\n"),
        &["4", "17"],
        &["3", "18"],
    );
    check_range(
        &t("multicast-server = { poll = @ }\n"),
        &["4", "17"],
        &["3", "18"],
    );
    check_range(
        &t("multicast-server = { ttl = @ }\n"),
        &["1", "255"],
        &["0", "256"],
    );
    check_range(
        &t("multicast-server = { version = @ }\n"),
        &["1", "4"],
        &["0", "5"],
    );
    check_range(
        &t("broadcast-server = { key-id = @ }\n"),
        &["1", "4294967295"],
        &["0", "4294967296"],
    );
    check_range(
        &t("multicast-server = { group = @ }\n"),
        &["\"239.1.2.3\"", "\"ff02::101\""],
        &["\"198.18.0.1\"", "\"2001:2::1\"", "\"x\""],
    );
    check_range(
        &t("multicast-client = { group = @ }\n"),
        &["\"224.0.1.1\"", "\"ff05::101\""],
        &["\"10.0.0.1\""],
    );
    check_range(&t("receive = @\n"), &["false"], &["0"]);
    check_range(&t("broadcast-client = @\n"), &["true"], &["\"true\""]);
    check_range(
        &t("broadcast-server = @\n"),
        &["true", "false", "{}"],
        &["1", "\"on\""],
    );
    check_range(
        "[[interface]]\nname = @\n",
        &["\"eth0\""],
        &["\"\"", "\"a-very-long-name0\"", "\"a b\"", "5"],
    );
    assert_eq!(
        errs("[[interface]]\nreceive = false\n"),
        vec![(1, 1, "missing required key `name` in [[interface]]".into())]
    );

    let c = ok(&t(
        "broadcast-server = true\nmulticast-server = true\nmulticast-client = true\n",
    ));
    let i = &c.interfaces[0];
    assert_eq!(
        i.broadcast_server,
        Some(BroadcastServerConfig {
            key_id: None,
            version: 4,
            poll: 6
        })
    );
    let m = i.multicast_server.unwrap();
    assert_eq!(
        (m.group, m.ttl, m.key_id, m.version, m.poll),
        (DEFAULT_MULTICAST_GROUP, 16, None, 4, 6)
    );
    assert_eq!(
        i.multicast_client,
        Some(MulticastClientConfig {
            group: DEFAULT_MULTICAST_GROUP
        })
    );
    let c = ok(&t("broadcast-server = false\nmulticast-client = false\n"));
    assert_eq!(
        (
            c.interfaces[0].broadcast_server,
            c.interfaces[0].multicast_client
        ),
        (None, None)
    );
}

#[test]
fn vpn_instance_keys() {
    let c = ok(
        "[vpn-instance.a]\nnetns = \"ns-a\"\n[vpn-instance.b]\nvrf = \"vrf-b\"\nserve = false\n",
    );
    assert_eq!(
        c.vpn_instances["a"],
        VpnInstanceConfig {
            binding: VpnBinding::Netns("ns-a".into()),
            serve: true
        }
    );
    assert_eq!(
        c.vpn_instances["b"],
        VpnInstanceConfig {
            binding: VpnBinding::Vrf("vrf-b".into()),
            serve: false
        }
    );
    assert_eq!(
        errs("[vpn-instance.a]\nnetns = \"a\"\nvrf = \"b\"\n"),
        vec![(
            3,
            7,
            "[vpn-instance.a] must have exactly one of `netns` or `vrf`, not both".into()
        )]
    );
    assert_eq!(
        errs("[vpn-instance.a]\nserve = true\n"),
        vec![(1, 1, "[vpn-instance.a] needs `netns` or `vrf`".into())]
    );
    check_range(
        "[vpn-instance.a]\nnetns = @\n",
        &["\"x\""],
        &["\"\"", "\"a/b\"", "\"..\""],
    );
    check_range(
        "[vpn-instance.a]\nvrf = @\n",
        &["\"vrf-blue\""],
        &["\"vrf-blue-0123456\""],
    );
    check_range(
        "[vpn-instance.a]\nnetns = \"a\"\nserve = @\n",
        &["false"],
        &["\"no\""],
    );
    assert_eq!(errs("vpn-instance = 3\n")[0].0, 1);
}

#[test]
fn authentication_keys() {
    let c = ok("[authentication]\nenable = true\nkeys = [ { id = 1, algorithm = \"SHA256\", secret = \"HEX:0a0b\" } ]\ntrusted = [1]\n");
    assert_eq!(c.authentication.keys[0].algorithm, KeyAlgorithm::Sha256);
    assert_eq!(c.authentication.keys[0].secret, vec![10, 11]);
    let k = |rest: &str| format!("[authentication]\nkeys = [ {{ {rest} }} ]\n");
    check_range(
        &k("id = @, algorithm = \"md5\", secret = \"s\""),
        &["1", "4294967295"],
        &["0", "4294967296"],
    );
    check_range(
        &k("id = 1, algorithm = @, secret = \"0123456789abcdef\""),
        &["\"md5\"", "\"sha1\"", "\"sha256\"", "\"aes128-cmac\""],
        &["\"des\"", "5"],
    );
    check_range(
        &k("id = 1, algorithm = @, secret = \"0123456789abcdef0123456789abcdef\""),
        &["\"aes256-cmac\"", "\"AES256\""],
        &["\"des\""],
    );
    check_range(
        &k("id = 1, algorithm = \"aes256-cmac\", secret = @"),
        &["\"0123456789abcdef0123456789abcdef\""],
        &["\"0123456789abcdef\""],
    );
    check_range(
        &k("id = 1, algorithm = \"md5\", secret = @"),
        &["\"x\""],
        &["\"\"", "\"HEX:0\"", "\"a b\""],
    );
    check_range(
        &k("id = 1, algorithm = \"aes128-cmac\", secret = @"),
        &["\"0123456789abcdef\""],
        &["\"short\""],
    );
    check_range(
        &k("id = 1, algorithm = \"md5\", secret = \"s\", @x = 1"),
        &[],
        &[""],
    );
    assert_eq!(
        errs(&k("id = 1, algorithm = \"md5\""))[0],
        (2, 10, "a key needs `secret`".into())
    );
    let e = errs("[authentication]\nkeys = [ { id = 1, algorithm = \"md5\", secret = \"a\" },\n { id = 1, algorithm = \"md5\", secret = \"b\" } ]\n");
    assert_eq!(e, vec![(3, 9, "key 1 is defined twice".into())]);
    let e = errs("[authentication]\nkeys-file = \"k\"\ntrusted = [5, 5, 0, \"6\"]\n");
    let pos: Vec<(usize, usize)> = e.iter().map(|x| (x.0, x.1)).collect();
    assert_eq!(pos, vec![(3, 15), (3, 18), (3, 21)], "{e:?}");
    check_range("[authentication]\nenable = @\n", &["true"], &["\"true\""]);
    check_range("[authentication]\nkeys-file = @\n", &["\"/k\""], &["\"\""]);
    check_range("[authentication]\ntrusted = @\n", &["[]"], &["42"]);
}

#[test]
fn access_and_acls() {
    let c = ok("[access]\nquery = 2000\n[acl.2000]\n[[acl.2000.rules]]\naction = \"deny\"\nsource = \"2001:2::/48\"\n");
    assert_eq!(c.access.query, Some(2000));
    assert_eq!(
        c.acls[&2000].evaluate("2001:2::5".parse().unwrap()),
        Some(AclAction::Deny)
    );
    assert_eq!(c.acls[&2000].evaluate("2001:3::5".parse().unwrap()), None);
    check_range(
        "[access]\npeer = @\n[acl.2999]\n[acl.2000]\n",
        &["\"2999\"", "2000"],
        &["\"1999\"", "3000", "\"x\"", "true"],
    );
    check_range("[acl.@]\n", &["2000", "2999"], &["1999", "3000", "abc"]);
    let r = |v: &str| format!("[acl.2001]\nrules = [ {{ action = \"permit\", source = {v} }} ]\n");
    check_range(
        &r("@"),
        &[
            "\"any\"",
            "\"198.18.0.0/15\"",
            "\"198.18.0.1\"",
            "\"::/0\"",
            "\"0.0.0.0/0\"",
            "\"2001:2::/48\"",
        ],
        &[
            "\"198.18.0.1/24\"",
            "\"198.18.0.0/33\"",
            "\"2001:2::/129\"",
            "\"host\"",
            "\"198.18.0.0/\"",
            "\"198.18.0.0/+8\"",
            "1",
        ],
    );
    check_range(
        "[acl.2001]\nrules = [ { action = @, source = \"any\" } ]\n",
        &["\"permit\"", "\"deny\""],
        &["\"allow\""],
    );
    // A mapped IPv6 client matches an IPv4 rule.
    let c = ok(&r("\"198.18.0.0/24\""));
    assert_eq!(
        c.acls[&2001].evaluate("::ffff:198.18.0.7".parse().unwrap()),
        Some(AclAction::Permit)
    );
    assert_eq!(
        errs("[acl.2001]\nrules = [ { action = \"permit\" } ]\n"),
        vec![(2, 11, "an ACL rule needs `source`".into())]
    );
}

#[test]
fn unknown_keys_are_reported_at_the_key() {
    assert_eq!(
        errs("[service]\nport = 123\nprot = 5\n"),
        vec![(3, 1, "unknown key `prot` in [service]".into())]
    );
    assert_eq!(
        errs("[servce]\n"),
        vec![(1, 2, "unknown key `servce` in the top level".into())]
    );
    assert_eq!(
        errs("[[unicast-server]]\naddress = \"198.18.0.1\"\n  key_id = 4\n"),
        vec![(
            3,
            3,
            "unknown key `key_id` in [[unicast-server]]; did you mean `key-id`?".into()
        )]
    );
    assert_eq!(
        errs("[[interface]]\nname = \"e\"\nbroadcast-server = { kye-id = 4 }\n"),
        vec![(3, 22, "unknown key `kye-id` in `broadcast-server`".into())]
    );
    assert_eq!(
        errs("[vpn-instance.v]\nnetns = \"v\"\nnetnss = \"w\"\n")[0],
        (3, 1, "unknown key `netnss` in [vpn-instance.v]".into())
    );
    assert_eq!(
        errs("[acl.2001]\nrule = []\n")[0],
        (2, 1, "unknown key `rule` in [acl.2001]".into())
    );
    // Columns count characters, not bytes.
    assert_eq!(errs("[control]\nsocket = \"/é\"; x = 1\n")[0].0, 2);
    assert_eq!(
        errs("[control]\n\"é\" = 1\n")[0],
        (2, 1, "unknown key `é` in [control]".into())
    );
}

#[test]
fn wrong_types_name_what_was_expected() {
    assert_eq!(
        errs("[service]\nport = \"123\"\n"),
        vec![(2, 8, "`port` must be an integer, found string".into())]
    );
    assert_eq!(
        errs("[control]\nmode6 = \"yes\"\n"),
        vec![(2, 9, "`mode6` must be true or false, found string".into())]
    );
    assert!(errs("[clock]\nstep-threshold = 0.128\n")[0]
        .2
        .contains("duration string with a unit"));
    assert_eq!(
        errs("[[service]]\n")[0].2,
        "[service] must be a table, found array of tables"
    );
    assert_eq!(
        errs("[unicast-server]\naddress = \"x.example\"\n")[0].2,
        "`unicast-server` must be written as [[unicast-server]] tables, found table"
    );
    assert_eq!(
        errs("unicast-server = [1]\n")[0],
        (
            1,
            19,
            "each element of [[unicast-server]] must be an inline table, found integer".into()
        )
    );
    assert_eq!(
        errs("[service.port]\n")[0].2,
        "`port` must be a value, found table"
    );
    assert_eq!(
        errs("[clock]\ndriver = 1979-05-27\n")[0].2,
        "`driver` must be a string, found date-time"
    );
}

#[test]
fn syntax_error_stops_with_a_position() {
    let e = errs("[service]\nport = 123\nport = 124\n");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].0, 3, "{e:?}");
    assert!(e[0].2.starts_with("TOML syntax"));
    assert!(e[0].2.contains("duplicate key `port`"), "{e:?}");
    let e = errs("[service\n");
    assert!(!e[0].2.contains('\n'), "one line per problem: {e:?}");
    assert_eq!((e.len(), e[0].0), (1, 1));
}

#[test]
fn several_problems_are_all_reported_in_order() {
    let text = "[service]\nport = 0\ndscp = 99\n\n[clock]\ndriver = \"atomic\"\nstep-threshold = \"1x\"\n\n\
                [[unicast-server]]\naddress = \"224.0.1.1\"\nversion = 9\nbogus = true\n";
    let e = errs(text);
    let pos: Vec<(usize, usize)> = e.iter().map(|x| (x.0, x.1)).collect();
    assert_eq!(
        pos,
        vec![
            (2, 8),
            (3, 8),
            (6, 10),
            (7, 18),
            (10, 11),
            (11, 11),
            (12, 1)
        ],
        "{e:#?}"
    );
    let shown = ConfigError {
        line: 2,
        column: 8,
        message: "m".into(),
    }
    .to_string();
    assert_eq!(shown, "2:8: m");
}
