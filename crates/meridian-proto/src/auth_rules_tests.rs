//! The guide's client/server authentication rules (comware-ntp-inventory.md section 3.3), one
//! test each, run through the real client association and the real server path; plus the
//! client-side attacks of the guide's section 1.D (stripped MAC, foreign key, crypto-NAK).

use crate::auth::AuthResult;
use crate::client::{ClientAssociation, ClientConfig, Reply};
use crate::entropy::SplitMix64;
use crate::keys::{Algorithm, Key, KeyId, KeyTable};
use crate::server::{respond_with_keys, ServerState, MAX_REPLY_LEN};
use crate::time::{Mono, NtpDuration, NtpTimestamp, PollInterval};
use crate::wire::{self, Leap, ReferenceId};
use core::time::Duration;

const SECRET: &[u8] = b"BetterKey";

fn key(id: u32, trusted: bool) -> Key {
    Key::new(KeyId(id), Algorithm::Md5, SECRET, trusted).unwrap()
}

fn table(keys: &[Key]) -> KeyTable {
    let mut t = KeyTable::new();
    for k in keys {
        t.insert(*k).unwrap();
    }
    t
}

fn local(secs: f64) -> NtpTimestamp {
    NtpTimestamp::from_unix(1_800_000_000, 0) + NtpDuration::from_seconds(secs)
}

fn server_state() -> ServerState {
    ServerState {
        leap: Leap::None,
        stratum: 2,
        precision: -20,
        poll: 6,
        root_delay: NtpDuration::from_seconds(0.001),
        root_dispersion: NtpDuration::from_seconds(0.001),
        reference_id: ReferenceId::LOCL,
        reference_ts: local(-10.0),
    }
}

fn client(key: Option<Key>) -> (ClientAssociation, SplitMix64) {
    let mut rng = SplitMix64::new(11);
    let config = ClientConfig {
        minpoll: PollInterval::new(4),
        maxpoll: PollInterval::new(6),
        key,
        ..Default::default()
    };
    let a = ClientAssociation::new(config, Mono::from_seconds(1.0), Duration::ZERO, &mut rng);
    (a, rng)
}

/// One request from `a` answered by a server holding `server_keys` (server clock 0.1 s
/// ahead); `tamper` may change the reply bytes. Returns the client's verdict.
fn exchange(
    a: &mut ClientAssociation,
    rng: &mut SplitMix64,
    server_keys: &KeyTable,
    tamper: impl FnOnce(&mut Vec<u8>),
) -> Result<Reply, crate::checks::PacketChecks> {
    let now = a.poll_timeout().unwrap();
    let t1 = now.as_seconds();
    let request = a.handle_timeout(now, local(t1), rng).unwrap();
    let mut out = [0u8; MAX_REPLY_LEN];
    let len = respond_with_keys(
        &request,
        local(t1 + 0.101),
        &server_state(),
        server_keys,
        rng,
        || local(t1 + 0.1011),
        &mut out,
    )
    .expect("the server answers every client request");
    assert!(len <= request.len(), "reply longer than request");
    let mut reply = out[..len].to_vec();
    tamper(&mut reply);
    let packet = wire::parse(&reply).unwrap();
    a.handle_packet(
        now + Duration::from_millis(2),
        local(t1 + 0.0022),
        &packet,
        -20,
    )
}

fn synchronizes(r: &Result<Reply, crate::checks::PacketChecks>) -> bool {
    matches!(r, Ok(Reply::Sample(_)))
}

fn auth_failed(r: &Result<Reply, crate::checks::PacketChecks>) -> bool {
    matches!(r, Err(c) if c.auth_failed && c.first_failure() == Some("authentication"))
}

#[test]
fn all_tasks_on_both_sides_synchronize_authenticated() {
    let (mut a, mut rng) = client(Some(key(10, true)));
    let server = table(&[key(10, true)]);
    let r = exchange(&mut a, &mut rng, &server, |_| {});
    assert!(synchronizes(&r), "{r:?}");
    assert_eq!(a.last_auth(), Some(AuthResult::Ok(KeyId(10))));
    assert_eq!(a.auth_status(), "ok");
}

#[test]
fn every_algorithm_round_trips() {
    for (alg, secret) in [
        (Algorithm::Md5, &b"BetterKey"[..]),
        (Algorithm::Sha1, b"BetterKey"),
        (Algorithm::Sha256, b"BetterKey"),
        (Algorithm::Aes128Cmac, b"0123456789abcdef"),
        (Algorithm::Aes256Cmac, b"0123456789abcdef0123456789abcdef"),
    ] {
        let k = Key::new(KeyId(7), alg, secret, true).unwrap();
        let (mut a, mut rng) = client(Some(k));
        let r = exchange(&mut a, &mut rng, &table(&[k]), |reply| {
            assert_eq!(
                reply.len(),
                48 + k.mac_len(),
                "reply signed with the request's key"
            )
        });
        assert!(synchronizes(&r), "{alg:?}: {r:?}");
    }
}

#[test]
fn client_without_authentication_synchronizes_whatever_the_server_does() {
    // "if NTP authentication is not enabled or no key is specified ... the clock
    // synchronization between the server and client can be performed": no key on the client.
    for server in [
        KeyTable::new(),
        table(&[key(10, true)]),
        table(&[key(10, false)]),
    ] {
        let (mut a, mut rng) = client(None);
        let r = exchange(&mut a, &mut rng, &server, |reply| {
            assert_eq!(reply.len(), 48, "plain request, plain reply")
        });
        assert!(synchronizes(&r), "{r:?}");
        assert_eq!(a.auth_status(), "none");
    }
}

/// attacks.md K4: a key that is not trusted never authenticates.
#[test]
fn untrusted_key_on_client_never_synchronizes() {
    // "the key is not a trusted key, the client does not synchronize to the server no matter
    // whether NTP authentication is enabled or not on the server".
    for server in [KeyTable::new(), table(&[key(10, true)])] {
        let (mut a, mut rng) = client(Some(key(10, false)));
        for _ in 0..3 {
            let r = exchange(&mut a, &mut rng, &server, |_| {});
            assert!(auth_failed(&r), "{r:?}");
        }
        assert_eq!(a.reach(), 0);
        assert_eq!(a.auth_status(), "failed");
        assert!(a.peer().is_none(), "no state from unauthenticated replies");
    }
}

#[test]
fn server_missing_tasks_means_no_synchronization() {
    // "A client can synchronize to the server only when you configure all the required tasks
    // on both the client and server": server without the key, with it untrusted, or with
    // authentication disabled (no keys) answers with a crypto-NAK.
    for server in [
        KeyTable::new(),
        table(&[key(11, true)]),
        table(&[key(10, false)]),
    ] {
        let (mut a, mut rng) = client(Some(key(10, true)));
        let r = exchange(&mut a, &mut rng, &server, |reply| {
            assert_eq!(reply.len(), 52, "crypto-NAK");
            assert_eq!(&reply[48..], &[0; 4]);
        });
        assert!(auth_failed(&r), "{r:?}");
        assert_eq!(a.last_auth(), Some(AuthResult::CryptoNak));
        assert_eq!(a.reach(), 0);
    }
}

/// attacks.md K4, R4: a wrong digest gets a crypto-NAK, never a signed reply.
#[test]
fn server_refuses_a_wrong_digest_with_a_crypto_nak() {
    let server = table(&[key(10, true)]);
    let bad = Key::new(KeyId(10), Algorithm::Md5, b"WrongKey", true).unwrap();
    let (mut a, mut rng) = client(Some(bad));
    let r = exchange(&mut a, &mut rng, &server, |reply| {
        assert_eq!(reply.len(), 52)
    });
    assert!(auth_failed(&r));
}

/// attacks.md K1, K6: a reply with its MAC stripped or replaced by a crypto-NAK is rejected and
/// changes nothing.
#[test]
fn stripped_mac_or_nak_is_rejected_and_changes_nothing() {
    let k = key(10, true);
    let server = table(&[k]);
    let (mut a, mut rng) = client(Some(k));
    // Stripped MAC (CVE-2015-1798).
    let r = exchange(&mut a, &mut rng, &server, |reply| reply.truncate(48));
    assert!(auth_failed(&r));
    assert_eq!(a.last_auth(), Some(AuthResult::NoMac));
    // Replaced by a crypto-NAK.
    let r = exchange(&mut a, &mut rng, &server, |reply| {
        reply.truncate(48);
        reply.extend([0; 4]);
    });
    assert!(auth_failed(&r));
    assert_eq!(a.reach(), 0);
    assert!(a.peer().is_none() && a.last_receive().is_none());
    assert_eq!(a.stats().received, 0);
    assert_eq!(a.stats().rejected, 2);
    // The association is unharmed: the next genuine reply is taken.
    let r = exchange(&mut a, &mut rng, &server, |_| {});
    assert!(synchronizes(&r), "{r:?}");
}

/// attacks.md K2: a reply signed with another trusted key than the association's is rejected.
#[test]
fn reply_signed_with_another_trusted_key_is_rejected() {
    // Both keys trusted by the client; the association is bound to key 10 (CVE-2015-7974).
    let k10 = key(10, true);
    let k11 = Key::new(KeyId(11), Algorithm::Sha1, b"OtherKey", true).unwrap();
    let (mut a, mut rng) = client(Some(k10));
    let r = exchange(&mut a, &mut rng, &table(&[k10]), |reply| {
        // Re-sign the reply's header with key 11.
        reply.truncate(48);
        let mut buf = [0u8; 72];
        buf[..48].copy_from_slice(reply);
        let n = crate::auth::append_mac(&k11, &mut buf, 48).unwrap();
        *reply = buf[..n].to_vec();
    });
    assert!(auth_failed(&r));
    assert_eq!(
        a.last_auth(),
        Some(AuthResult::WrongKey {
            expected: KeyId(10),
            got: KeyId(11)
        })
    );
}

/// attacks.md C6, K1: a keyed association ignores an unauthenticated kiss.
#[test]
fn unauthenticated_kiss_is_ignored_by_a_keyed_association() {
    let k = key(10, true);
    let (mut a, mut rng) = client(Some(k));
    let r = exchange(&mut a, &mut rng, &table(&[k]), |reply| {
        reply.truncate(48);
        reply[1] = 0; // stratum 0
        reply[12..16].copy_from_slice(b"DENY");
    });
    assert!(auth_failed(&r));
    assert!(a.denied().is_none() && a.poll_timeout().is_some());
}

#[test]
fn requests_carry_the_key_and_a_nak_request_is_dropped() {
    let k = key(10, true);
    let (mut a, mut rng) = client(Some(k));
    let now = a.poll_timeout().unwrap();
    let req = a.handle_timeout(now, local(0.0), &mut rng).unwrap();
    let p = wire::parse(&req).unwrap();
    assert_eq!(p.mac.map(|m| (m.key_id, m.digest.len())), Some((10, 16)));
    assert!(crate::auth::verify_with_key(&k, p.authenticated, p.mac).is_ok());
    let mut nak = req[..48].to_vec();
    nak.extend([0; 4]);
    let mut out = [0u8; MAX_REPLY_LEN];
    let r = respond_with_keys(
        &nak,
        local(0.0),
        &server_state(),
        &table(&[k]),
        &mut rng,
        || local(0.0),
        &mut out,
    );
    assert_eq!(r, Err(crate::server::DropReason::Malformed));
}
