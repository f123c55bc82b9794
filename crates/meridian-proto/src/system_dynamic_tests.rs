//! Dynamic association limits across VPN instances (issue 7: `max-dynamic-sessions` applies per
//! instance, the 128-association cap stays global), one passive association per address and
//! instance, and the attack guide's S2 flood at unit level: 200 senders without a MAC under
//! authentication create nothing; with a trusted MAC at most the limit, and only senders the
//! ACL grants `peer`.

use crate::access::{prefix, rule, AccessPolicy, Acl, AclAction, AclSource, Right};
use crate::auth;
use crate::client::ClientConfig;
use crate::entropy::SplitMix64;
use crate::keys::{Algorithm, Key, KeyId, KeyTable};
use crate::peer::DYNAMIC_TIMEOUT;
use crate::system::{DynamicOrigin, SourceId, System, SystemConfig};
use crate::system_peer::{PassiveRefusal, MAX_ASSOCIATIONS};
use crate::time::{Mono, NtpDuration, NtpTimestamp};
use crate::wire::{self, Header, Leap, Mode, ReferenceId, HEADER_LEN};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn base() -> NtpTimestamp {
    NtpTimestamp::from_unix(1_800_000_000, 0)
}

fn system(max_dynamic: usize) -> System {
    let mut s = System::new(SystemConfig::for_tests());
    s.set_max_dynamic(max_dynamic);
    s
}

fn trusted() -> Key {
    Key::new(KeyId(5), Algorithm::Aes128Cmac, &[3; 16], true).unwrap()
}

/// A fresh active peer's first packet (mode 1, origin zero), signed with `key` if given.
fn packet(mode: Mode, key: Option<&Key>) -> Vec<u8> {
    let mut h = Header::new(mode);
    h.leap = Leap::None;
    h.stratum = 3;
    h.poll = 6;
    h.reference_ts = base();
    h.transmit_ts = base() + NtpDuration::from_seconds(1.0);
    let mut buf = [0u8; 80];
    buf[..HEADER_LEN].copy_from_slice(&h.to_bytes());
    let len = key.map_or(HEADER_LEN, |k| {
        auth::append_mac(k, &mut buf, HEADER_LEN).unwrap()
    });
    buf[..len].to_vec()
}

fn v4(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 1, 0)) + n))
}

fn origin(vpn: Option<&str>, address: IpAddr) -> DynamicOrigin {
    DynamicOrigin {
        vpn: vpn.map(str::to_owned),
        address,
    }
}

/// Offers `bytes` from `address` in `vpn` as the daemon does after the access check.
fn offer(
    s: &mut System,
    vpn: Option<&str>,
    address: IpAddr,
    bytes: &[u8],
    keys: &KeyTable,
    auth: bool,
) -> Result<SourceId, PassiveRefusal> {
    let p = wire::parse(bytes).unwrap();
    let mut rng = SplitMix64::new(1);
    let refid = ReferenceId::from_ip(address);
    let now = Mono::from_seconds(1.0);
    s.accept_passive_in(
        origin(vpn, address),
        &p,
        keys,
        auth,
        refid,
        now,
        base(),
        &mut rng,
        base,
    )
    .map(|(id, _)| id)
}

#[test]
fn max_dynamic_sessions_applies_per_vpn_instance() {
    let mut s = system(2);
    let none = KeyTable::new();
    let plain = packet(Mode::SymmetricActive, None);
    for vpn in [None, Some("vpn-a"), Some("vpn-b")] {
        offer(&mut s, vpn, v4(1), &plain, &none, false).unwrap();
        offer(&mut s, vpn, v4(2), &plain, &none, false).unwrap();
        assert_eq!(
            offer(&mut s, vpn, v4(3), &plain, &none, false),
            Err(PassiveRefusal::DynamicLimit),
            "{vpn:?}"
        );
        assert_eq!(s.dynamic_count_in(vpn), 2);
    }
    assert_eq!(s.dynamic_count(), 6);
    // A broadcast client counts against its own instance's limit too.
    let mut b = system(2);
    offer(&mut b, Some("vpn-a"), v4(1), &plain, &none, false).unwrap();
    let mode5_bytes = packet(Mode::Broadcast, None);
    let mode5 = wire::parse(&mode5_bytes).unwrap();
    let now = Mono::from_seconds(1.0);
    let bc = |b: &mut System, vpn: Option<&str>, n| {
        let o = origin(vpn, v4(n));
        b.accept_broadcast_in(o, &mode5, &none, false, ReferenceId::NONE, false, now)
    };
    bc(&mut b, Some("vpn-a"), 9).unwrap();
    assert!(bc(&mut b, Some("vpn-a"), 10).is_err(), "vpn-a is full");
    bc(&mut b, None, 10).unwrap();
    assert_eq!(b.dynamic_count_in(Some("vpn-a")), 2);
    assert_eq!(b.dynamic_count_in(None), 1);
    // Lowering the limit keeps every instance's associations and refuses new ones.
    s.set_max_dynamic(1);
    assert_eq!(s.dynamic_count(), 6);
    assert!(offer(&mut s, Some("vpn-c"), v4(1), &plain, &none, false).is_ok());
    assert!(offer(&mut s, Some("vpn-c"), v4(2), &plain, &none, false).is_err());
    // Expiry frees every instance's room.
    let later = Mono::from_seconds(1.0) + DYNAMIC_TIMEOUT;
    assert_eq!(s.expire_dynamic(later).len(), 7);
    assert!(offer(&mut s, Some("vpn-a"), v4(1), &plain, &none, false).is_ok());
}

#[test]
fn the_128_association_cap_stays_global() {
    let mut s = system(100);
    let mut rng = SplitMix64::new(2);
    for _ in 0..MAX_ASSOCIATIONS - 2 {
        let refid = ReferenceId::from_ipv4(Ipv4Addr::new(198, 18, 0, 1));
        s.add_client(ClientConfig::default(), refid, false, Mono::ZERO, &mut rng);
    }
    let none = KeyTable::new();
    let plain = packet(Mode::SymmetricActive, None);
    offer(&mut s, Some("vpn-a"), v4(1), &plain, &none, false).unwrap();
    offer(&mut s, Some("vpn-b"), v4(1), &plain, &none, false).unwrap();
    assert_eq!(
        offer(&mut s, Some("vpn-c"), v4(1), &plain, &none, false),
        Err(PassiveRefusal::TotalLimit)
    );
    assert_eq!(s.sources().count(), MAX_ASSOCIATIONS);
}

#[test]
fn one_passive_association_per_address_and_instance() {
    let mut s = system(100);
    let none = KeyTable::new();
    let plain = packet(Mode::SymmetricActive, None);
    let addr = v4(7);
    offer(&mut s, None, addr, &plain, &none, false).unwrap();
    assert_eq!(
        offer(&mut s, None, addr, &plain, &none, false),
        Err(PassiveRefusal::AddressInUse)
    );
    // The same address as IPv4-mapped IPv6 is the same sender.
    let IpAddr::V4(a4) = addr else { unreachable!() };
    let mapped = IpAddr::V6(a4.to_ipv6_mapped());
    assert_eq!(
        offer(&mut s, None, mapped, &plain, &none, false),
        Err(PassiveRefusal::AddressInUse)
    );
    // Another instance is another network: the same address may peer there.
    offer(&mut s, Some("vpn-a"), addr, &plain, &none, false).unwrap();
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 7));
    offer(&mut s, None, v6, &plain, &none, false).unwrap();
    assert_eq!(s.dynamic_count(), 3);
    assert_eq!(PassiveRefusal::AddressInUse.as_str(), "peer-address-in-use");
    // Once it expired, the address may create one again.
    s.expire_dynamic(Mono::from_seconds(1.0) + DYNAMIC_TIMEOUT);
    offer(&mut s, None, addr, &plain, &none, false).unwrap();
}

/// attacks.md S2 (a): with authentication on, 200 mode 1 packets without MAC from 200
/// addresses (all with the `peer` right) create no association.
#[test]
fn s2_flood_without_mac_creates_nothing_under_authentication() {
    let mut s = system(100);
    let keys = {
        let mut t = KeyTable::new();
        t.insert(trusted()).unwrap();
        t
    };
    let policy = AccessPolicy::open();
    let plain = packet(Mode::SymmetricActive, None);
    for n in 0..200 {
        assert_eq!(policy.check(v4(n), Mode::SymmetricActive), Ok(Right::Peer));
        let r = offer(&mut s, None, v4(n), &plain, &keys, true);
        assert!(
            matches!(r, Err(PassiveRefusal::NotAuthenticated(_))),
            "{r:?}"
        );
    }
    assert_eq!(s.sources().count(), 0);
}

/// attacks.md S2 (b): with a valid trusted MAC, at most `max-dynamic-sessions` associations,
/// and only for senders the ACL grants `peer` (the key alone is not enough: the ACL binds it
/// to addresses).
#[test]
fn s2_flood_with_a_trusted_mac_is_capped_and_limited_to_peer_addresses() {
    let keys = {
        let mut t = KeyTable::new();
        t.insert(trusted()).unwrap();
        t
    };
    // `peer` for 198.18.1.0/26 (64 addresses), `server` for everybody else.
    let policy = AccessPolicy {
        peer: Some(Acl {
            rules: vec![rule(AclAction::Permit, prefix(v4(0), 26))],
        }),
        server: Some(Acl {
            rules: vec![rule(AclAction::Permit, AclSource::Any)],
        }),
        ..AccessPolicy::default()
    };
    let signed = packet(Mode::SymmetricActive, Some(&trusted()));
    let peer_range = |a: IpAddr| match a {
        IpAddr::V4(v) => v.octets()[2] == 1 && v.octets()[3] < 64,
        IpAddr::V6(_) => false,
    };
    for (limit, want) in [(20, 20), (100, 64)] {
        let mut s = system(limit);
        let (mut denied, mut over) = (0, 0);
        for n in 0..200 {
            let addr = v4(n);
            // The daemon's order: the access right first, then creation.
            if policy.check(addr, Mode::SymmetricActive).is_err() {
                denied += 1;
                continue;
            }
            match offer(&mut s, None, addr, &signed, &keys, true) {
                Ok(_) => {}
                Err(PassiveRefusal::DynamicLimit) => over += 1,
                Err(e) => panic!("{addr}: {e:?}"),
            }
        }
        assert_eq!(s.dynamic_count(), want, "limit {limit}");
        assert_eq!(denied, 136, "every sender outside the peer ACL is refused");
        assert_eq!(over, 64 - want);
        for (_, src) in s.sources() {
            let o = src.origin.as_ref().unwrap();
            assert!(peer_range(o.address), "{o:?}");
            assert_eq!(src.association.config().key.map(|k| k.id()), Some(KeyId(5)));
        }
    }
}
