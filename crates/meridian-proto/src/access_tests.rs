//! Tests of the ACL matcher (against a bit-by-bit reference) and of the rights order.

use super::*;
use proptest::prelude::*;

/// Naive reference: compare the first `len` bits one at a time, on the address bytes.
fn naive_contains(net: IpAddr, len: u8, addr: IpAddr) -> bool {
    let addr = match addr {
        IpAddr::V6(v6) => match v6.octets() {
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d] => {
                IpAddr::V4(Ipv4Addr::new(a, b, c, d))
            }
            _ => addr,
        },
        v4 => v4,
    };
    let (n, a): (Vec<u8>, Vec<u8>) = match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => (n.octets().to_vec(), a.octets().to_vec()),
        (IpAddr::V6(n), IpAddr::V6(a)) => (n.octets().to_vec(), a.octets().to_vec()),
        _ => return false,
    };
    let bit = |v: &[u8], i: usize| (v[i / 8] >> (7 - i % 8)) & 1;
    (0..usize::from(len).min(n.len() * 8)).all(|i| bit(&n, i) == bit(&a, i))
}

/// Addresses near `net` (sharing a random number of leading bits) and random ones, in both
/// plain and IPv4-mapped form.
fn addr_near(net: IpAddr, keep: u32, noise: u128, mapped: bool) -> IpAddr {
    match net {
        IpAddr::V4(n) => {
            let n = u32::from(n);
            let mask = if keep >= 32 {
                u32::MAX
            } else {
                !(u32::MAX >> keep)
            };
            let a = Ipv4Addr::from((n & mask) | (noise as u32 & !mask));
            if mapped {
                IpAddr::V6(a.to_ipv6_mapped())
            } else {
                IpAddr::V4(a)
            }
        }
        IpAddr::V6(n) => {
            let n = u128::from(n);
            let mask = if keep >= 128 {
                u128::MAX
            } else {
                !(u128::MAX >> keep)
            };
            IpAddr::V6(Ipv6Addr::from((n & mask) | (noise & !mask)))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn prefix_matches_like_reference_v4(net: u32, len in 0u8..=32, keep in 0u32..=33, noise: u128, mapped: bool) {
        let net = IpAddr::V4(Ipv4Addr::from(net));
        let addr = addr_near(net, keep, noise, mapped);
        let p = IpPrefix { addr: net, len };
        prop_assert_eq!(p.contains(addr), naive_contains(net, len, addr));
        // An IPv4 prefix never matches a non-mapped IPv6 address.
        let v6 = IpAddr::V6(Ipv6Addr::from(noise | 1 << 100));
        prop_assert!(!p.contains(v6));
    }

    #[test]
    fn prefix_matches_like_reference_v6(net: u128, len in 0u8..=128, keep in 0u32..=129, noise: u128) {
        let net = IpAddr::V6(Ipv6Addr::from(net));
        let addr = addr_near(net, keep, noise, false);
        let p = IpPrefix { addr: net, len };
        prop_assert_eq!(p.contains(addr), naive_contains(net, len, addr));
    }

    #[test]
    fn first_match_wins_like_reference(
        rules in proptest::collection::vec((any::<bool>(), any::<u32>(), 0u8..=33), 0..8),
        addr: u32,
        mapped: bool,
    ) {
        let acl = Acl {
            rules: rules
                .iter()
                .map(|&(permit, net, len)| AclRule {
                    action: if permit { AclAction::Permit } else { AclAction::Deny },
                    // len 33 stands for "any".
                    source: if len == 33 {
                        AclSource::Any
                    } else {
                        prefix(IpAddr::V4(Ipv4Addr::from(net)), len)
                    },
                })
                .collect(),
        };
        let a = Ipv4Addr::from(addr);
        let addr = if mapped { IpAddr::V6(a.to_ipv6_mapped()) } else { IpAddr::V4(a) };
        let expected = rules.iter().find_map(|&(permit, net, len)| {
            (len == 33 || naive_contains(IpAddr::V4(Ipv4Addr::from(net)), len, addr))
                .then_some(if permit { AclAction::Permit } else { AclAction::Deny })
        });
        prop_assert_eq!(acl.evaluate(addr), expected);
    }
}

/// attacks.md G1: prefixes of odd lengths match exactly at their edges.
#[test]
fn edges_of_odd_prefix_lengths() {
    let net = |s: &str| s.parse::<IpAddr>().unwrap();
    let cases = [
        ("128.0.0.0", 1, "255.255.255.255", true),
        ("128.0.0.0", 1, "127.255.255.255", false),
        ("198.18.0.0", 7, "199.255.0.1", true),
        ("198.18.0.0", 7, "200.0.0.0", false),
        ("198.16.0.0", 13, "198.23.255.255", true),
        ("198.16.0.0", 13, "198.24.0.0", false),
        ("198.18.0.2", 31, "198.18.0.3", true),
        ("198.18.0.2", 31, "198.18.0.4", false),
        ("198.18.0.2", 31, "::ffff:198.18.0.3", true),
        ("2001:2::", 127, "2001:2::1", true),
        ("2001:2::", 127, "2001:2::2", false),
        ("2001:2::", 48, "2001:2:0:ffff::1", true),
        ("2001:2::", 48, "2001:3::1", false),
        ("0.0.0.0", 0, "::ffff:1.2.3.4", true),
        ("0.0.0.0", 0, "2001:2::1", false),
        ("::", 0, "198.18.0.1", false),
    ];
    for (n, len, a, expected) in cases {
        let p = IpPrefix { addr: net(n), len };
        assert_eq!(p.contains(net(a)), expected, "{n}/{len} contains {a}");
    }
}

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn acl(rules: &[(AclAction, AclSource)]) -> Option<Acl> {
    Some(Acl {
        rules: rules.iter().map(|&(a, s)| rule(a, s)).collect(),
    })
}

#[test]
fn nothing_configured_is_peer_for_everybody() {
    let policy = AccessPolicy::open();
    for a in ["198.18.0.1", "::1", "2001:2::7"] {
        assert_eq!(policy.right(v4(a)), Some(Right::Peer));
        assert_eq!(policy.check(v4(a), Mode::Client), Ok(Right::Peer));
        assert_eq!(policy.check(v4(a), Mode::Control), Ok(Right::Peer));
    }
}

#[test]
fn rights_are_matched_from_peer_to_query() {
    use AclAction::*;
    let host = |s| host_v4(s);
    let policy = AccessPolicy {
        peer: acl(&[(Permit, host(Ipv4Addr::new(198, 18, 0, 1)))]),
        server: acl(&[
            (Deny, host(Ipv4Addr::new(198, 18, 0, 9))),
            (Permit, prefix(v4("198.18.0.0"), 24)),
        ]),
        synchronization: acl(&[(Permit, prefix(v4("198.18.0.0"), 16))]),
        query: acl(&[(Permit, AclSource::Any)]),
    };
    // Highest matching right wins even though lower rights also permit.
    assert_eq!(policy.right(v4("198.18.0.1")), Some(Right::Peer));
    assert_eq!(policy.right(v4("::ffff:198.18.0.1")), Some(Right::Peer));
    assert_eq!(policy.right(v4("198.18.0.2")), Some(Right::Server));
    // Denied by `server`, so matching continues with `synchronization`.
    assert_eq!(policy.right(v4("198.18.0.9")), Some(Right::Synchronization));
    assert_eq!(policy.right(v4("198.18.1.1")), Some(Right::Synchronization));
    assert_eq!(policy.right(v4("203.0.113.1")), Some(Right::Query));
    // What each right allows (the guide's table).
    let matrix = [
        ("198.18.0.1", [true, true, true]),
        ("198.18.0.2", [true, true, false]),
        ("198.18.1.1", [true, false, false]),
        ("203.0.113.1", [false, true, false]),
    ];
    for (a, [time, control, peering]) in matrix {
        for (mode, allowed) in [
            (Mode::Client, time),
            (Mode::Control, control),
            (Mode::SymmetricActive, peering),
        ] {
            assert_eq!(policy.check(v4(a), mode).is_ok(), allowed, "{a} {mode:?}");
        }
        for mode in [
            Mode::Reserved,
            Mode::SymmetricPassive,
            Mode::Server,
            Mode::Broadcast,
            Mode::Private,
        ] {
            assert_eq!(policy.check(v4(a), mode), Err(AccessDenied::NotRequest));
        }
    }
}

#[test]
fn configured_rights_without_a_match_drop() {
    let policy = AccessPolicy {
        synchronization: acl(&[(AclAction::Permit, host_v6("2001:2::1".parse().unwrap()))]),
        // An ACL without rules permits nobody.
        query: Some(Acl::default()),
        ..AccessPolicy::default()
    };
    assert_eq!(
        policy.check(v4("2001:2::1"), Mode::Client),
        Ok(Right::Synchronization)
    );
    assert_eq!(
        policy.check(v4("2001:2::1"), Mode::Control),
        Err(AccessDenied::NotAllowed(Right::Synchronization))
    );
    assert_eq!(
        policy.check(v4("2001:2::2"), Mode::Client),
        Err(AccessDenied::NoRight)
    );
    assert_eq!(
        policy.check(v4("198.18.0.1"), Mode::Client),
        Err(AccessDenied::NoRight)
    );
}

/// attacks.md G2: loopback is recognised also as an IPv4-mapped IPv6 address.
#[test]
fn loopback_detection_sees_through_mapping() {
    assert!(is_loopback(v4("127.0.0.1")));
    assert!(is_loopback(v4("127.1.2.3")));
    assert!(is_loopback(v4("::1")));
    assert!(is_loopback(v4("::ffff:127.0.0.1")));
    assert!(!is_loopback(v4("198.18.0.1")));
    assert!(!is_loopback(v4("::ffff:198.18.0.1")));
}
