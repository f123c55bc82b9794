//! System-level tests of the symmetric modes: who may create a passive association, the
//! dynamic limits and expiry, forged packets that must neither change nor remove one, and
//! the stratum rules (the lower stratum synchronizes the other, two unsynchronized peers do
//! not, a peer synchronized to us is never selected).

use crate::auth::{self, AuthResult};
use crate::client::ClientConfig;
use crate::entropy::SplitMix64;
use crate::keys::{Algorithm, Key, KeyId, KeyTable};
use crate::peer::DYNAMIC_TIMEOUT;
use crate::system::{LocalReference, SourceId, SyncSource, System, SystemConfig};
use crate::system_peer::{PassiveRefusal, MAX_ASSOCIATIONS};
use crate::time::{Mono, NtpDuration, NtpTimestamp, PollInterval};
use crate::wire::{self, Header, Mode, ReferenceId, HEADER_LEN};
use std::net::{IpAddr, Ipv4Addr};

const A_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn base() -> NtpTimestamp {
    NtpTimestamp::from_unix(1_800_000_000, 0)
}

fn system(local_stratum: Option<u8>) -> System {
    let mut s = System::new(SystemConfig {
        local_reference: local_stratum.map(|stratum| LocalReference {
            stratum,
            address: Ipv4Addr::new(127, 127, 1, 0),
        }),
        ..SystemConfig::for_tests()
    });
    s.housekeeping(Mono::from_seconds(1.0), base());
    s
}

fn key(id: u32, trusted: bool) -> Key {
    Key::new(KeyId(id), Algorithm::Aes128Cmac, &[7; 16], trusted).unwrap()
}

fn table(keys: &[Key]) -> KeyTable {
    let mut t = KeyTable::new();
    for k in keys {
        t.insert(*k).unwrap();
    }
    t
}

/// A mode 1 packet as a fresh active peer sends it (org and rec zero), signed with `key`.
fn mode1(xmt_secs: f64, key: Option<&Key>) -> Vec<u8> {
    let mut h = Header::new(Mode::SymmetricActive);
    h.stratum = 3;
    h.poll = 4;
    h.transmit_ts = base() + NtpDuration::from_seconds(xmt_secs);
    let mut buf = [0u8; 80];
    buf[..HEADER_LEN].copy_from_slice(&h.to_bytes());
    let len = key.map_or(HEADER_LEN, |k| {
        auth::append_mac(k, &mut buf, HEADER_LEN).unwrap()
    });
    buf[..len].to_vec()
}

fn accept(
    s: &mut System,
    bytes: &[u8],
    keys: &KeyTable,
    auth: bool,
    n: u8,
) -> Result<SourceId, PassiveRefusal> {
    let p = wire::parse(bytes).unwrap();
    let mut rng = SplitMix64::new(u64::from(n));
    let now = Mono::from_seconds(2.0);
    let refid = ReferenceId::from_ipv4(Ipv4Addr::new(198, 18, 1, n));
    s.accept_passive(&p, keys, auth, refid, now, base(), &mut rng, base)
        .map(|(id, reply)| {
            let r = wire::parse(&reply).unwrap();
            assert_eq!(r.header.mode, Mode::SymmetricPassive);
            assert_eq!(r.header.origin_ts, p.header.transmit_ts);
            id
        })
}

/// attacks.md S2: only the peer right (and a trusted key when authentication is on) creates a
/// passive association.
#[test]
fn who_may_create_a_passive_association() {
    let trusted = key(1, true);
    let untrusted = key(2, false);
    let keys = table(&[trusted, untrusted]);
    let mut s = system(Some(3));
    let nak = {
        let mut v = mode1(1.0, None);
        v.extend_from_slice(&[0; 4]);
        v
    };
    let mut bad = mode1(1.0, Some(&trusted));
    *bad.last_mut().unwrap() ^= 1;
    let mut mode2 = mode1(1.0, Some(&trusted));
    mode2[0] = (mode2[0] & !7) | 2;
    let refusals = [
        ("no MAC with authentication on", mode1(1.0, None)),
        ("crypto-NAK", nak.clone()),
        ("bad MAC", bad),
        ("untrusted key", mode1(1.0, Some(&untrusted))),
        ("unknown key", mode1(1.0, Some(&key(3, true)))),
        ("mode 2", mode2),
        ("zero transmit", {
            let mut v = mode1(0.0, Some(&trusted));
            v[40..48].fill(0);
            let h = wire::parse(&v).unwrap().header;
            let mut buf = [0u8; 80];
            buf[..HEADER_LEN].copy_from_slice(&h.to_bytes());
            let len = auth::append_mac(&trusted, &mut buf, HEADER_LEN).unwrap();
            buf[..len].to_vec()
        }),
    ];
    for (what, bytes) in &refusals {
        assert!(accept(&mut s, bytes, &keys, true, 1).is_err(), "{what}");
    }
    assert_eq!(s.sources().count(), 0, "nothing was created");
    // Authentication disabled: a plain packet creates, any MAC or a crypto-NAK does not.
    let empty = KeyTable::new();
    assert_eq!(
        accept(&mut s, &nak, &empty, false, 1),
        Err(PassiveRefusal::UnexpectedMac)
    );
    assert!(accept(&mut s, &mode1(1.0, Some(&trusted)), &empty, false, 1).is_err());
    let id = accept(&mut s, &mode1(1.0, None), &empty, false, 1).unwrap();
    assert_eq!(s.source(id).unwrap().association.auth_status(), "none");
    // Authentication enabled and a trusted key: created, bound to that key.
    let id = accept(&mut s, &mode1(1.0, Some(&trusted)), &keys, true, 2).unwrap();
    let assoc = &s.source(id).unwrap().association;
    assert!(!assoc.configured());
    assert_eq!(assoc.local_mode(), Mode::SymmetricPassive);
    assert_eq!(assoc.config().key.map(|k| k.id()), Some(KeyId(1)));
    assert_eq!(assoc.last_auth(), Some(AuthResult::Ok(KeyId(1))));
}

/// attacks.md S3: dynamic sessions are capped by max-dynamic-sessions and expire when idle.
#[test]
fn dynamic_limit_and_expiry() {
    let mut s = system(None);
    let mut rng = SplitMix64::new(1);
    let empty = KeyTable::new();
    s.set_max_dynamic(3);
    let configured = s.add_peer(
        ClientConfig::default(),
        ReferenceId::from_ipv4(B_ADDR),
        false,
        Mono::from_seconds(1.0),
        &mut rng,
    );
    for n in 0..3 {
        accept(&mut s, &mode1(1.0, None), &empty, false, n).unwrap();
    }
    assert_eq!(
        accept(&mut s, &mode1(1.0, None), &empty, false, 9),
        Err(PassiveRefusal::DynamicLimit)
    );
    // Lowering the limit keeps the existing ones and refuses new ones.
    s.set_max_dynamic(1);
    assert_eq!(s.dynamic_count(), 3);
    assert!(accept(&mut s, &mode1(1.0, None), &empty, false, 9).is_err());
    // A static association can still be added while the dynamic ones are full.
    s.add_client(
        ClientConfig::default(),
        ReferenceId::from_ipv4(A_ADDR),
        false,
        Mono::from_seconds(1.0),
        &mut rng,
    );
    // Idle for 12 minutes: removed; the configured peer stays and keeps its id.
    let later = Mono::from_seconds(2.0) + DYNAMIC_TIMEOUT;
    assert!(s.expire_dynamic(Mono::from_seconds(600.0)).is_empty());
    assert_eq!(s.expire_dynamic(later).len(), 3);
    assert_eq!(s.dynamic_count(), 0);
    assert!(s.source(configured).unwrap().association.configured());
    assert_eq!(s.sources().count(), 2);
    // Room again, up to the new limit.
    accept(&mut s, &mode1(1.0, None), &empty, false, 5).unwrap();
    assert_eq!(
        accept(&mut s, &mode1(1.0, None), &empty, false, 6),
        Err(PassiveRefusal::DynamicLimit)
    );
}

#[test]
fn at_most_128_associations_in_all() {
    let mut s = system(None);
    let mut rng = SplitMix64::new(1);
    for _ in 0..MAX_ASSOCIATIONS - 2 {
        s.add_client(
            ClientConfig::default(),
            ReferenceId::from_ipv4(A_ADDR),
            false,
            Mono::from_seconds(1.0),
            &mut rng,
        );
    }
    let empty = KeyTable::new();
    accept(&mut s, &mode1(1.0, None), &empty, false, 1).unwrap();
    accept(&mut s, &mode1(1.0, None), &empty, false, 2).unwrap();
    assert_eq!(
        accept(&mut s, &mode1(1.0, None), &empty, false, 3),
        Err(PassiveRefusal::TotalLimit)
    );
}

/// attacks.md S4, K6: forged packets (crypto-NAKs included) neither change nor demobilize a passive
/// association.
#[test]
fn forged_packets_neither_change_nor_remove_a_passive_association() {
    let k = key(1, true);
    let keys = table(&[k]);
    let mut s = system(Some(3));
    let id = accept(&mut s, &mode1(1.0, Some(&k)), &keys, true, 1).unwrap();
    let before = format!("{:?}", s.source(id).unwrap().association);
    let mut rng = SplitMix64::new(4);
    let forged = [
        mode1(2.0, None),
        // Key id 1, another secret: a bad digest.
        mode1(
            3.0,
            Some(&Key::new(KeyId(1), Algorithm::Aes128Cmac, &[8; 16], true).unwrap()),
        ),
        {
            let mut v = mode1(4.0, None);
            v.extend_from_slice(&[0; 4]);
            v
        },
    ];
    for bytes in &forged {
        let p = wire::parse(bytes).unwrap();
        let out = s.handle_symmetric(id, Mono::from_seconds(3.0), base(), &p, &mut rng, base);
        assert!(out.result.is_err() && out.reply.is_none());
    }
    let assoc = &s.source(id).unwrap().association;
    let after = format!("{assoc:?}");
    // Only the rejection counter moved.
    let strip = |t: &str| t.split("stats:").next().unwrap().to_owned();
    assert_eq!(strip(&before), strip(&after));
    assert_eq!(assoc.stats().rejected, 3);
    assert!(s.expire_dynamic(Mono::from_seconds(500.0)).is_empty());
}

/// Runs A (stratum `a_local`) and B (stratum `b_local`), B active toward A, A passive, for
/// `rounds` polls of 16 s; B's clock is 50 ms ahead. Returns both systems.
fn run_pair(a_local: Option<u8>, b_local: Option<u8>, rounds: u32) -> (System, System) {
    let mut a = system(a_local);
    let mut b = system(b_local);
    a.add_own_address(IpAddr::V4(A_ADDR));
    b.add_own_address(IpAddr::V4(B_ADDR));
    let mut rng = SplitMix64::new(8);
    let config = ClientConfig {
        minpoll: PollInterval::new(4),
        maxpoll: PollInterval::new(4),
        ..Default::default()
    };
    let peer = b.add_peer(
        config,
        ReferenceId::from_ipv4(A_ADDR),
        false,
        Mono::from_seconds(1.0),
        &mut rng,
    );
    let mut passive = None;
    let empty = KeyTable::new();
    let mut t = 1.0;
    for _ in 0..rounds * 4 {
        t += 4.0;
        let now = Mono::from_seconds(t);
        let a_time = |t: f64| base() + NtpDuration::from_seconds(t);
        let b_time = |t: f64| base() + NtpDuration::from_seconds(t + 0.05);
        a.housekeeping(now, a_time(t));
        b.housekeeping(now, b_time(t));
        for (_, bytes) in b.handle_timeout(now, b_time(t), &mut rng) {
            let p = wire::parse(&bytes).unwrap();
            let (rx_t, rx_now) = (t + 0.001, Mono::from_seconds(t + 0.001));
            let reply = match passive {
                // B calibrates first: A's server path answers its mode 3 requests.
                _ if p.header.mode == Mode::Client => {
                    let mut out = [0u8; crate::server::MAX_REPLY_LEN];
                    let state = a.server_state(rx_now);
                    crate::server::respond(
                        &bytes,
                        a_time(rx_t),
                        &state,
                        &mut rng,
                        || a_time(rx_t),
                        &mut out,
                    )
                    .ok()
                    .map(|len| out[..len].to_vec())
                }
                None => {
                    let (id, reply) = a
                        .accept_passive(
                            &p,
                            &empty,
                            false,
                            ReferenceId::from_ipv4(B_ADDR),
                            rx_now,
                            a_time(rx_t),
                            &mut rng,
                            || a_time(rx_t),
                        )
                        .unwrap();
                    passive = Some(id);
                    Some(reply.to_vec())
                }
                Some(id) => {
                    let out =
                        a.handle_symmetric(id, rx_now, a_time(rx_t), &p, &mut rng, || a_time(rx_t));
                    out.reply.map(|r| r.to_vec())
                }
            };
            if let Some(reply) = reply {
                let r = wire::parse(&reply).unwrap();
                let back = t + 0.002;
                let _ = b.handle_symmetric(
                    peer,
                    Mono::from_seconds(back),
                    b_time(back),
                    &r,
                    &mut rng,
                    || b_time(back),
                );
            }
        }
    }
    (a, b)
}

/// attacks.md C8: two peers never form a synchronization loop.
#[test]
fn the_lower_stratum_synchronizes_the_other_and_no_loop_forms() {
    let (a, b) = run_pair(Some(3), None, 12);
    assert_eq!(a.vars().sync, SyncSource::Local, "A stays on its reference");
    assert_eq!(a.vars().stratum, 3);
    assert!(matches!(b.vars().sync, SyncSource::Peer(_)), "B follows A");
    assert_eq!(b.vars().stratum, 4);
    assert!(
        (b.vars().offset + 0.05).abs() < 0.005,
        "{}",
        b.vars().offset
    );
    // A hears B at stratum 4 with A's own address as reference: never a candidate.
    let (_, passive) = a.sources().next().unwrap();
    assert_eq!(passive.association.peer().unwrap().stratum, 4);
    assert_eq!(
        passive.association.peer().unwrap().reference_id,
        ReferenceId::from_ipv4(A_ADDR)
    );
    assert!(!passive.flags.candidate);
}

#[test]
fn the_passive_side_follows_a_lower_stratum_active_side() {
    // B active at stratum 2 (local reference), A passive and unsynchronized.
    let (a, b) = run_pair(None, Some(2), 12);
    assert_eq!(b.vars().sync, SyncSource::Local);
    assert!(matches!(a.vars().sync, SyncSource::Peer(_)), "A follows B");
    assert_eq!(a.vars().stratum, 3);
}

#[test]
fn two_unsynchronized_peers_do_not_synchronize_each_other() {
    let (a, b) = run_pair(None, None, 12);
    assert_eq!(a.vars().sync, SyncSource::None);
    assert_eq!(b.vars().sync, SyncSource::None);
    assert_eq!(a.sources().count(), 1, "the passive association exists");
}

/// A kiss with `code` from the active peer answering our packet `origin`, signed with `key`.
fn kiss(code: ReferenceId, origin: NtpTimestamp, xmt_secs: f64, key: Option<&Key>) -> Vec<u8> {
    let mut h = Header::new(Mode::SymmetricActive);
    h.leap = crate::wire::Leap::Unsynchronized;
    h.stratum = 0;
    h.reference_id = code;
    h.origin_ts = origin;
    h.receive_ts = origin;
    h.transmit_ts = base() + NtpDuration::from_seconds(xmt_secs);
    let mut buf = [0u8; 80];
    buf[..HEADER_LEN].copy_from_slice(&h.to_bytes());
    let len = key.map_or(HEADER_LEN, |k| {
        auth::append_mac(k, &mut buf, HEADER_LEN).unwrap()
    });
    buf[..len].to_vec()
}

/// attacks.md C6: a genuine DENY or RSTR kiss (our origin, valid MAC) removes a passive
/// association; a forged one (bogus origin, no or a bad MAC) changes nothing, and a RATE kiss
/// removes nothing. No kiss is answered.
#[test]
fn only_a_genuine_deny_or_rstr_kiss_removes_a_passive_association() {
    let k = key(1, true);
    let forger = Key::new(KeyId(1), Algorithm::Aes128Cmac, &[8; 16], true).unwrap();
    let keys = table(&[k]);
    for code in [ReferenceId::KISS_DENY, ReferenceId::KISS_RSTR] {
        let mut s = system(Some(3));
        let mut rng = SplitMix64::new(4);
        let first_bytes = mode1(1.0, Some(&k));
        let first = wire::parse(&first_bytes).unwrap();
        let refid = ReferenceId::from_ipv4(B_ADDR);
        let now = Mono::from_seconds(2.0);
        let (id, reply) = s
            .accept_passive(&first, &keys, true, refid, now, base(), &mut rng, base)
            .unwrap();
        let ours = wire::parse(&reply).unwrap().header.transmit_ts;
        let forged = [
            kiss(code, ours, 2.0, None),
            kiss(code, ours, 2.0, Some(&forger)),
            kiss(code, base() + NtpDuration::from_seconds(0.5), 2.0, Some(&k)),
            kiss(code, NtpTimestamp::ZERO, 2.0, Some(&k)),
        ];
        for bytes in &forged {
            let p = wire::parse(bytes).unwrap();
            let out = s.handle_symmetric(id, now, base(), &p, &mut rng, base);
            assert!(out.result.is_err() && out.reply.is_none() && !out.removed);
            assert!(s.source(id).is_some(), "a forged kiss removed it");
        }
        let rate_bytes = kiss(ReferenceId::KISS_RATE, ours, 2.5, Some(&k));
        let rate = wire::parse(&rate_bytes).unwrap();
        let out = s.handle_symmetric(id, now, base(), &rate, &mut rng, base);
        assert!(out.result.is_ok() && out.reply.is_none() && !out.removed);
        assert!(s.source(id).is_some());
        // That kiss answered our only packet; the peer's next mode 1 gets a new answer.
        let next_bytes = mode1(2.6, Some(&k));
        let next = wire::parse(&next_bytes).unwrap();
        let out = s.handle_symmetric(id, now, base(), &next, &mut rng, base);
        let ours = wire::parse(&out.reply.unwrap()).unwrap().header.transmit_ts;
        let genuine_bytes = kiss(code, ours, 3.0, Some(&k));
        let genuine = wire::parse(&genuine_bytes).unwrap();
        let out = s.handle_symmetric(id, now, base(), &genuine, &mut rng, base);
        assert!(out.result.is_ok() && out.reply.is_none() && out.removed);
        assert!(s.source(id).is_none());
        assert_eq!(s.dynamic_count(), 0);
    }
}
