//! Tests of the authenticated Kiss-o'-Death ([`signed_kiss`]): signed with the request's own
//! trusted key and honoured by a keyed client, plain for a plain request, none for a request
//! whose MAC we cannot accept.

use super::*;
use crate::auth::{verify_with_key, AuthResult};
use crate::client::{ClientAssociation, ClientConfig, Reply};
use crate::entropy::SplitMix64;
use crate::keys::{Algorithm, Key, KeyId, KeyTable};
use crate::server::MAX_REPLY_LEN;
use crate::time::{NtpDuration, NtpTimestamp, PollInterval};

fn key(id: u32, algorithm: Algorithm, trusted: bool) -> Key {
    let secret: &[u8] = match algorithm.required_secret_len() {
        Some(16) => b"0123456789abcdef",
        Some(32) => b"0123456789abcdef0123456789abcdef",
        _ => b"BetterKey",
    };
    Key::new(KeyId(id), algorithm, secret, trusted).unwrap()
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

/// A client polling every 16 s (at most 1024 s), keyed with `key` if given.
fn client(key: Option<Key>) -> (ClientAssociation, SplitMix64) {
    let mut rng = SplitMix64::new(21);
    let config = ClientConfig {
        minpoll: PollInterval::new(4),
        maxpoll: PollInterval::new(10),
        key,
        ..Default::default()
    };
    let a = ClientAssociation::new(config, Mono::from_seconds(1.0), Duration::ZERO, &mut rng);
    (a, rng)
}

/// The client's next request, kissed by a server holding `server_keys` with `code`; the
/// client's verdict on the kiss, or `None` when the server sends no kiss.
fn kissed(
    a: &mut ClientAssociation,
    rng: &mut SplitMix64,
    server_keys: &KeyTable,
    code: ReferenceId,
    tamper: impl FnOnce(&mut Vec<u8>),
) -> Option<Result<Reply, crate::checks::PacketChecks>> {
    let now = a.poll_timeout().unwrap();
    let t1 = now.as_seconds();
    let mut request = a.handle_timeout(now, local(t1), rng).unwrap().to_vec();
    tamper(&mut request);
    let mut out = [0u8; MAX_REPLY_LEN];
    let interval = Duration::from_secs(64);
    let len = signed_kiss(&request, code, interval, server_keys, &mut out)?;
    assert!(len <= request.len(), "kiss longer than request");
    let packet = wire::parse(&out[..len]).unwrap();
    assert!(packet.header.is_kiss());
    let at = now + Duration::from_millis(2);
    Some(a.handle_packet(at, local(t1 + 0.002), &packet, -20))
}

/// attacks.md C6: for every algorithm, the kiss to a signed request carries a MAC of the
/// request's own key, verifiable by the requester, and is exactly as long as the request.
#[test]
fn kiss_to_a_signed_request_is_signed_with_its_key() {
    for algorithm in [
        Algorithm::Md5,
        Algorithm::Sha1,
        Algorithm::Sha256,
        Algorithm::Aes128Cmac,
        Algorithm::Aes256Cmac,
    ] {
        let k = key(7, algorithm, true);
        let other = key(8, Algorithm::Sha1, true);
        let (mut a, mut rng) = client(Some(k));
        let now = a.poll_timeout().unwrap();
        let request = a.handle_timeout(now, local(0.0), &mut rng).unwrap();
        for code in [ReferenceId::KISS_RATE, ReferenceId::KISS_RSTR] {
            let mut out = [0u8; MAX_REPLY_LEN];
            let keys = table(&[other, k]);
            let len = signed_kiss(&request, code, Duration::from_secs(8), &keys, &mut out)
                .expect("a kiss for a request signed with a trusted key");
            assert_eq!(len, request.len(), "{algorithm:?}");
            let p = wire::parse(&out[..len]).unwrap();
            assert_eq!(p.header.kiss_code(), Some(code));
            assert_eq!(
                verify_with_key(&k, p.authenticated, p.mac),
                AuthResult::Ok(KeyId(7)),
                "{algorithm:?}"
            );
            assert!(!verify_with_key(&other, p.authenticated, p.mac).is_ok());
        }
    }
}

/// A plain request still gets a plain 48-byte kiss, whatever keys we hold.
#[test]
fn kiss_to_a_plain_request_is_plain() {
    let (mut a, mut rng) = client(None);
    let now = a.poll_timeout().unwrap();
    let request = a.handle_timeout(now, local(0.0), &mut rng).unwrap();
    let mut out = [0u8; MAX_REPLY_LEN];
    let keys = table(&[key(7, Algorithm::Md5, true)]);
    let len = signed_kiss(
        &request,
        ReferenceId::KISS_RATE,
        Duration::ZERO,
        &keys,
        &mut out,
    );
    assert_eq!(len, Some(48));
    assert_eq!(wire::parse(&out[..48]).unwrap().mac, None);
}

/// attacks.md C6, K1: a keyed association now honours the signed RATE kiss (its poll grows
/// to what the kiss asks for) and the signed RSTR kiss (it stops).
#[test]
fn keyed_client_honours_a_signed_kiss() {
    let k = key(10, Algorithm::Md5, true);
    let (mut a, mut rng) = client(Some(k));
    assert_eq!(a.poll(), PollInterval::new(4));
    let r = kissed(
        &mut a,
        &mut rng,
        &table(&[k]),
        ReferenceId::KISS_RATE,
        |_| {},
    );
    assert!(
        matches!(r, Some(Ok(Reply::Kiss(ReferenceId::KISS_RATE)))),
        "{r:?}"
    );
    assert_eq!(a.last_auth(), Some(AuthResult::Ok(KeyId(10))));
    assert_eq!(a.poll(), PollInterval::new(6), "the 64 s the kiss asks for");

    let (mut a, mut rng) = client(Some(k));
    let r = kissed(
        &mut a,
        &mut rng,
        &table(&[k]),
        ReferenceId::KISS_RSTR,
        |_| {},
    );
    assert!(matches!(r, Some(Ok(Reply::Kiss(_)))), "{r:?}");
    assert_eq!(a.denied(), Some(ReferenceId::KISS_RSTR));
}

/// A request whose MAC we cannot accept (bad digest, unknown key, untrusted key, a
/// crypto-NAK, a key id without digest) gets no kiss at all, signed or not.
#[test]
fn request_with_an_unacceptable_mac_gets_no_kiss() {
    let k = key(10, Algorithm::Md5, true);
    let untrusted = key(10, Algorithm::Md5, false);
    type Tamper = fn(&mut Vec<u8>);
    let cases: [(&str, KeyTable, Tamper); 5] = [
        ("bad digest", table(&[k]), |r| *r.last_mut().unwrap() ^= 1),
        (
            "unknown key",
            table(&[key(11, Algorithm::Md5, true)]),
            |_| {},
        ),
        ("untrusted key", table(&[untrusted]), |_| {}),
        ("no keys", KeyTable::new(), |_| {}),
        ("crypto-NAK", table(&[k]), |r| {
            r.truncate(48);
            r.extend([0; 4]);
        }),
    ];
    for (what, keys, tamper) in cases {
        let (mut a, mut rng) = client(Some(k));
        for code in [ReferenceId::KISS_RATE, ReferenceId::KISS_RSTR] {
            assert!(
                kissed(&mut a, &mut rng, &keys, code, tamper).is_none(),
                "{what}: {code:?}"
            );
        }
        assert_eq!(a.poll(), PollInterval::new(4), "{what}");
    }
    // The keyless entry points never kiss a signed request either.
    let (mut a, mut rng) = client(Some(k));
    let now = a.poll_timeout().unwrap();
    let request = a.handle_timeout(now, local(0.0), &mut rng).unwrap();
    let mut out = [0u8; MAX_REPLY_LEN];
    assert_eq!(rate_kiss(&request, Duration::ZERO, &mut out), None);
}
