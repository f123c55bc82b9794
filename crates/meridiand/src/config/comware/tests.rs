//! Tests of the Comware reader: error positions and messages, views, undo, ACL translation,
//! detection and the side file.

use std::net::IpAddr;
use std::path::Path;

use super::*;

fn ok(text: &str) -> (Config, Vec<String>) {
    parse_comware(text).unwrap_or_else(|e| panic!("{e:?}\n--- in ---\n{text}"))
}

/// The single error of `text`: (line, column, message).
fn one_err(text: &str) -> (usize, usize, String) {
    let errs = parse_comware(text).expect_err(text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    (errs[0].line, errs[0].column, errs[0].message.clone())
}

#[test]
fn wrong_arguments_are_errors_at_the_word_in_the_guides_terms() {
    let cases: &[(&str, usize, usize, &str)] = &[
        ("ntp-service refclock-master 0\n", 1, 29, "stratum must be 1 to 15"),
        ("ntp-service refclock-master 127.127.1.4 2\n", 1, 29, "127.127.1.u with u 0 to 3"),
        ("#\n ntp-service unicast-server 1.0.1.11 version 5\n", 2, 46, "version must be 1 to 4"),
        ("ntp-service unicast-server 224.0.1.1\n", 1, 28, "not a multicast address"),
        ("ntp-service unicast-server 255.255.255.255\n", 1, 28, "not a broadcast address"),
        ("ntp-service unicast-server 127.127.1.0\n", 1, 28, "local clock"),
        ("ntp-service unicast-server 2001:2::1\n", 1, 28, "ntp-service ipv6 unicast-server"),
        ("ntp-service unicast-server\n", 1, 27, "expected the IP address"),
        ("ntp-service unicast-server 1.1.1.1 bogus\n", 1, 36, "not an option"),
        ("ntp-service max-dynamic-sessions 101\n", 1, 34, "must be 0 to 100"),
        ("ntp-service dscp 64\n", 1, 18, "DSCP value must be 0 to 63"),
        ("ntp-service access everything 2001\n", 1, 20, "peer, server, synchronization or query"),
        ("ntp-service access peer 3001\n", 1, 25, "ACL number must be 2000 to 2999"),
        ("ntp-service access peer 2001\n", 1, 25, "ACL 2001 is not defined"),
        ("ntp-service authentication-keyid 0 authentication-mode md5 k\n", 1, 34, "key ID must be 1 to 4294967295"),
        ("ntp-service authentication-keyid 1 authentication-mode md5 cipher $c$3$x\n", 1, 60, "cipher"),
        ("ntp-service authentication-keyid 1 authentication-mode hmac-sha-256 simple k\n", 1, 56, "not supported"),
        ("ntp-service authentication-keyid 1 authentication-mode md5 simple 123456789012345678901234567890123\n", 1, 67, "1 to 32 characters"),
        ("ntp-service unicast-server 1.0.1.11 authentication-keyid 9\n", 1, 58, "authentication-keyid 9 is not configured"),
        ("ntp-service reliable authentication-keyid 9\n", 1, 43, "not configured"),
        ("ntp-service broadcast-client\n", 1, 13, "interface view command"),
        ("interface eth0\n ntp-service multicast-server 10.0.0.1\n", 2, 31, "multicast address"),
        ("interface eth0\n ntp-service multicast-server ttl 256\n", 2, 35, "TTL must be 1 to 255"),
        ("interface eth0\n ntp-service broadcast-server ttl 2\n", 2, 31, "not an option"),
        ("interface eth0\n ntp-service in-interface enable\n", 2, 27, "expected `disable`"),
        ("interface GigabitEthernet1/0/1\n ntp-service broadcast-client\n", 1, 11, "side file"),
        ("ntp-service frobnicate\n", 1, 13, "unknown command"),
        ("ntp-service ipv6 refclock-master\n", 1, 18, "no `ntp-service ipv6 refclock-master`"),
        ("ntp-service unicast-server 1.1.1.1 minpoll 10 maxpoll 6\n", 1, 55, "must not exceed maxpoll"),
        ("ntp-service unicast-server 1.1.1.1\nntp-service unicast-peer 1.1.1.1\n", 2, 26, "already configured"),
        ("ntp-service unicast-server 1.1.1.1 vpn-instance abcdefghijabcdefghijabcdefghijXY\n", 1, 49, "1 to 31"),
    ];
    for (text, line, col, msg) in cases {
        let (l, c, m) = one_err(text);
        assert_eq!((l, c), (*line, *col), "{text}: {m}");
        assert!(m.contains(msg), "{text}: {m}");
    }
}

#[test]
fn every_error_of_a_file_is_reported() {
    let errs = parse_comware("ntp-service refclock-master 20\nsysname x\nntp-service dscp 99\n")
        .unwrap_err();
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![1, 3]);
}

#[test]
fn other_features_are_skipped_with_one_warning() {
    let text = "sysname R1\nvlan 10\n name users\ninterface Vlan-interface10\n ip address 10.0.0.1 \
                255.255.255.0\n ospf cost 10\n#\nospf 1\n area 0.0.0.0\n  network 10.0.0.0 0.0.0.255\n\
                #\nundo info-center enable\nntp-service unicast-server 1.0.1.11\nreturn\n";
    let (c, w) = ok(text);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("skipped 10 lines"), "{w:?}");
    assert!(w[0].contains("line 1: `sysname R1`"), "{w:?}");
    // An interface without NTP commands is not an [[interface]].
    assert!(c.interfaces.is_empty());
    assert_eq!(c.unicast_servers.len(), 1);
    assert!(ok("ntp-service unicast-server 1.0.1.11\n").1.is_empty());
}

#[test]
fn comware_5_and_7_spellings_give_the_same_configuration() {
    let c5 = "ntp-service unicast-server vpn-instance v1 1.0.1.11 source-interface eth1 \
              version 3 priority\nntp-service source-interface eth0\nntp-service access server \
              2001\ninterface eth2\n ntp-service in-interface disable\nacl number 2001\n rule \
              permit source 1.0.1.0 0.0.0.255\n";
    let c7 = "ntp-service enable\nntp-service unicast-server 1.0.1.11 vpn-instance v1 priority \
              source eth1 version 3\nntp-service source eth0\nntp-service server acl 2001\n\
              interface eth2\n undo ntp-service inbound enable\nacl basic 2001\n rule 0 permit \
              source 1.0.1.0 0.0.0.255\n";
    let (a, _) = ok(c5);
    let (b, _) = ok(c7);
    assert_eq!(a, b);
    assert!(!a.interfaces[0].receive);
    assert_eq!(
        a.unicast_servers[0].source_interface.as_deref(),
        Some("eth1")
    );
    assert_eq!(a.service.source_interface.as_deref(), Some("eth0"));
    assert_eq!(
        a.vpn_instances["v1"].binding,
        VpnBinding::Netns("v1".into())
    );
}

#[test]
fn cli_sessions_with_prompts_and_unindented_interface_views() {
    let text = "<R> system-view\n[R] interface vlan-interface 2\n[R-Vlan-interface2] ip address \
                1.1.1.1 24\n[R-Vlan-interface2] ntp-service multicast-client\n[R-Vlan-interface2] \
                quit\n[R] ntp-service refclock-master 127.127.1.2\n";
    let (c, _) = ok(text);
    assert_eq!(c.interfaces[0].name, "vlan-interface2");
    assert_eq!(
        c.interfaces[0].multicast_client.unwrap().group,
        "224.0.1.1".parse::<IpAddr>().unwrap()
    );
    let l = c.local_reference.unwrap();
    assert_eq!((l.unit, l.stratum), (2, 8));
}

#[test]
fn undo_and_reentering_commands() {
    let text = "ntp-service unicast-server 1.1.1.1 version 2\nntp-service unicast-server 1.1.1.1 \
                version 3\nntp-service unicast-server 2.2.2.2\nundo ntp-service unicast-server \
                2.2.2.2\nntp-service authentication-keyid 5 authentication-mode md5 a\nntp-service \
                reliable authentication-keyid 5\nundo ntp-service authentication-keyid 5\n\
                ntp-service refclock-master 3\nundo ntp-service refclock-master\ninterface eth0\n \
                ntp-service broadcast-client\n undo ntp-service broadcast-client\n ntp-service \
                in-interface disable\n";
    let (c, _) = ok(text);
    assert_eq!(c.unicast_servers.len(), 1);
    assert_eq!(c.unicast_servers[0].version, 3);
    assert!(c.authentication.keys.is_empty());
    assert!(
        c.authentication.trusted.is_empty(),
        "a deleted key is no longer trusted"
    );
    assert!(c.local_reference.is_none());
    assert!(!c.interfaces[0].broadcast_client);
    assert!(!c.interfaces[0].receive);
}

#[test]
fn acl_rules_are_ordered_and_wildcards_become_prefixes() {
    let text = "ntp-service access peer 2001\nntp-service access query 2002\nacl number 2001\n \
                rule 20 deny\n rule 5 permit source 10.1.2.3 0.0.255.255\n rule permit source \
                10.9.9.9 0\n undo rule 20\nacl number 2002 match-order auto\n rule 0 permit \
                source any\n rule 5 deny source 192.0.2.0 0.0.0.255\n";
    let (c, _) = ok(text);
    let a = &c.acls[&2001];
    assert_eq!(a.rules.len(), 2);
    assert_eq!(
        a.evaluate("10.1.200.1".parse().unwrap()),
        Some(AclAction::Permit)
    );
    assert_eq!(
        a.evaluate("10.9.9.9".parse().unwrap()),
        Some(AclAction::Permit)
    );
    assert_eq!(a.evaluate("10.2.0.1".parse().unwrap()), None);
    // Auto order puts the more specific deny before `permit any`.
    let b = &c.acls[&2002];
    assert_eq!(
        b.evaluate("192.0.2.7".parse().unwrap()),
        Some(AclAction::Deny)
    );
    assert_eq!(
        b.evaluate("198.51.100.1".parse().unwrap()),
        Some(AclAction::Permit)
    );
}

#[test]
fn bad_wildcards_in_a_used_acl_are_errors_unused_acls_are_not_read() {
    let base = "ntp-service access peer 2001\nacl number 2001\n rule permit source 10.0.0.0 @\n";
    let (_, _, m) = one_err(&base.replace('@', "0.255.0.255"));
    assert!(m.contains("not contiguous"), "{m}");
    let (l, c, m) = one_err(&base.replace('@', "255.255.255.0"));
    assert_eq!((l, c), (3, 30));
    assert!(
        m.contains("looks like a netmask") && m.contains("0.0.0.255"),
        "{m}"
    );
    let (_, _, m) = one_err(&base.replace('@', "0.0.0.255 time-range work"));
    assert!(m.contains("time-range"), "{m}");
    // The same rules in an ACL that NTP does not use belong to another feature.
    let (c, w) = ok("acl number 2005\n rule permit source 10.0.0.0 0.255.0.255 time-range x\n");
    assert!(c.acls.is_empty());
    assert!(w[0].starts_with("skipped 2 lines"), "{w:?}");
}

#[test]
fn ipv6_commands() {
    let text = "ntp-service ipv6 unicast-server 2001:2::9 authentication-keyid 3\nntp-service \
                authentication-keyid 3 authentication-mode md5 simple k3\nntp-service ipv6 peer \
                acl 2010\nacl ipv6 basic 2010\n rule permit source 2001:2::/48\ninterface eth0\n \
                ntp-service ipv6 multicast-client ff05::101\n";
    let (c, _) = ok(text);
    assert_eq!(c.unicast_servers[0].address, "2001:2::9");
    let acl = &c.acls[&2010];
    assert_eq!(
        acl.evaluate("2001:2::1".parse().unwrap()),
        Some(AclAction::Permit)
    );
    assert_eq!(
        c.interfaces[0].multicast_client.unwrap().group,
        "ff05::101".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn detection_of_the_format() {
    let p = Path::new("router.cfg");
    assert!(is_comware(
        p,
        "#\n sysname R\n#\n ntp-service unicast-server 1.0.1.11\n"
    ));
    assert!(is_comware(
        p,
        "domain system\nntp-service refclock-master\n"
    ));
    assert!(is_comware(p, "[R] ntp-service refclock-master 2\n"));
    assert!(!is_comware(p, "[service]\nport = 123\n"));
    assert!(!is_comware(p, "[service\nport = \n"));
    assert!(!is_comware(p, ""));
    assert!(!is_comware(
        Path::new("x.toml"),
        "ntp-service refclock-master\n"
    ));
}

#[test]
fn side_file_maps_interfaces_and_vpns_and_refuses_comware_settings() {
    let text = "interface GigabitEthernet1/0/1\n ip binding vpn-instance red\n ntp-service \
                broadcast-server\n";
    let side = "[interface-names]\n\"gigabitethernet1/0/1\" = \"eth1\"\n[vpn-instance.red]\n\
                vrf = \"vrf-red\"\nserve = false\n[service]\nport = 1123\n";
    let (c, _) = parse_comware_with(text, Some(("r.cfg.toml", side))).unwrap();
    assert_eq!(c.interfaces[0].name, "eth1");
    assert_eq!(c.interfaces[0].vpn_instance.as_deref(), Some("red"));
    assert_eq!(
        c.vpn_instances["red"].binding,
        VpnBinding::Vrf("vrf-red".into())
    );
    assert!(!c.vpn_instances["red"].serve);
    assert_eq!(c.service.port, 1123);
    for bad in [
        "[[unicast-server]]\naddress = \"1.1.1.1\"\n",
        "[service]\ndscp = 4\n",
    ] {
        let e = parse_comware_with("", Some(("r.cfg.toml", bad))).unwrap_err();
        assert!(
            e[0].message.starts_with("r.cfg.toml: ") && e[0].message.contains("Comware"),
            "{e:?}"
        );
    }
    let e = parse_comware_with("", Some(("s.toml", "[clock]\ndriver = \"nope\"\n"))).unwrap_err();
    assert!(e[0].message.starts_with("s.toml:2:10: "), "{e:?}");
    assert_eq!(
        side_file_path(Path::new("/etc/r.cfg")),
        Path::new("/etc/r.cfg.toml")
    );
}

#[test]
fn secrets_that_are_not_plain_text_round_trip_as_hex() {
    let text = "ntp-service authentication-keyid 1 authentication-mode md5 simple \"HEX:ab\"\n\
                ntp-service authentication-keyid 2 authentication-mode md5 simple \"a b\"\n";
    let (c, _) = ok(text);
    assert_eq!(c.authentication.keys[0].secret, b"HEX:ab");
    assert_eq!(c.authentication.keys[1].secret, b"a b");
    assert_eq!(crate::config::parse_str(&to_toml(&c)).unwrap(), c);
}

#[test]
fn to_toml_round_trips_every_table_of_the_toml_format() {
    let text = r#"
[service]
port = 1123
source-interface = "eth0"
max-dynamic-sessions = 7
dscp = 0
drift-file = "/var/lib/meridian/drift"
[control]
socket = "/tmp/m \"q\".sock"
mode6 = false
[metrics]
listen = "[::1]:9975"
[rate-limit]
interval = "2.5s"
burst = 3
leak = 0
kod = 2
table-size = 1024
[clock]
driver = "simulated"
step-threshold = "0.1s"
panic-threshold = "0s"
initial-offset = "-1.5ms"
frequency-ppm = -0.000001
[local-reference]
address = "127.127.1.3"
stratum = 15
[[unicast-server]]
address = "ntp.example.org."
iburst = true
port = 10123
minpoll = -6
maxpoll = 17
[[unicast-peer]]
address = "2001:2::7"
vpn-instance = "blue"
key-id = 4294967295
[[interface]]
name = "eth1"
vpn-instance = "blue"
multicast-server = { group = "ff05::101", poll = 17, version = 1 }
multicast-client = true
broadcast-server = { poll = 4 }
[vpn-instance.blue]
vrf = "vrf-blue"
serve = false
[authentication]
enable = false
keys-file = "keys"
keys = [ { id = 4294967295, algorithm = "aes128-cmac", secret = "HEX:000102030405060708090a0b0c0d0e0f" },
         { id = 2, algorithm = "sha1", secret = "HEX:20" } ]
trusted = [2]
[access]
synchronization = 2999
[acl.2999]
rules = [ { action = "deny", source = "2001:2::/48" }, { action = "permit", source = "any" } ]
"#;
    let c = crate::config::parse_str(text).unwrap();
    let written = to_toml(&c);
    assert_eq!(crate::config::parse_str(&written).unwrap(), c, "{written}");
}
