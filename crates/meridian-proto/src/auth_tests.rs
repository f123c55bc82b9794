//! The key matrix: every algorithm against missing MAC, wrong key, flipped bits, truncated
//! and lengthened digests, unknown and untrusted keys, key id 0 and crypto-NAK.

use super::*;
use crate::keys::Algorithm;
use crate::time::NtpTimestamp;
use crate::wire::{self, Mode};

const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::Md5,
    Algorithm::Sha1,
    Algorithm::Sha256,
    Algorithm::Aes128Cmac,
    Algorithm::Aes256Cmac,
];

fn secret(alg: Algorithm, seed: u8) -> Vec<u8> {
    let len = alg.required_secret_len().unwrap_or(20);
    (0..len as u8).map(|i| i.wrapping_mul(7) ^ seed).collect()
}

fn key(id: u32, alg: Algorithm, seed: u8, trusted: bool) -> Key {
    Key::new(KeyId(id), alg, &secret(alg, seed), trusted).unwrap()
}

fn header_bytes() -> [u8; 48] {
    let mut h = Header::new(Mode::Client);
    h.transmit_ts = NtpTimestamp::from_bits(0x0123_4567_89ab_cdef);
    h.to_bytes()
}

fn signed(key: &Key) -> Vec<u8> {
    let mut buf = [0u8; 96];
    buf[..48].copy_from_slice(&header_bytes());
    let n = append_mac(key, &mut buf, 48).unwrap();
    buf[..n].to_vec()
}

fn verify_bytes(k: &Key, table: &KeyTable, bytes: &[u8]) -> (AuthResult, AuthResult) {
    let p = wire::parse(bytes).unwrap();
    (
        verify_with_key(k, p.authenticated, p.mac),
        verify(table, p.authenticated, p.mac),
    )
}

/// attacks.md K1, K4: every algorithm x missing MAC, wrong digest, wrong length, unknown and
/// untrusted key.
#[test]
fn matrix() {
    for alg in ALGORITHMS {
        let k = key(42, alg, 1, true);
        let mut table = KeyTable::new();
        table.insert(k).unwrap();
        table.insert(key(43, alg, 2, true)).unwrap();
        table.insert(key(44, alg, 1, false)).unwrap();
        let id = KeyId(42);
        let good = signed(&k);
        assert_eq!(good.len(), 48 + 4 + alg.digest_len(), "{alg:?}");
        assert_eq!(
            verify_bytes(&k, &table, &good),
            (AuthResult::Ok(id), AuthResult::Ok(id))
        );

        // Missing MAC.
        assert_eq!(
            verify_bytes(&k, &table, &good[..48]),
            (AuthResult::NoMac, AuthResult::NoMac)
        );

        // Another trusted key, correctly signed: the server accepts it, the association
        // bound to key 42 does not.
        let other = signed(&key(43, alg, 2, true));
        assert_eq!(
            verify_bytes(&k, &table, &other),
            (
                AuthResult::WrongKey {
                    expected: id,
                    got: KeyId(43)
                },
                AuthResult::Ok(KeyId(43))
            )
        );
        // Key id 42 but signed with another secret.
        let forged = signed(&key(42, alg, 9, true));
        assert_eq!(
            verify_bytes(&k, &table, &forged),
            (AuthResult::BadDigest(id), AuthResult::BadDigest(id))
        );

        // Every single flipped bit, in the header or in the digest.
        for bit in (0..48 * 8).step_by(37).chain(52 * 8..good.len() * 8) {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let (a, b) = verify_bytes(&k, &table, &bad);
            assert!(!a.is_ok() && !b.is_ok(), "{alg:?} bit {bit}: {a:?} {b:?}");
        }

        // Truncated and lengthened digests (built as MAC values: the wire parser already
        // refuses most such lengths).
        let p = wire::parse(&good).unwrap();
        let digest = p.mac.unwrap().digest;
        let mut long = digest.to_vec();
        long.extend([0; 4]);
        for d in [&digest[..digest.len() - 4], &digest[..1], &long[..]] {
            let mac = Some(Mac {
                key_id: 42,
                digest: d,
            });
            assert_eq!(
                verify_with_key(&k, p.authenticated, mac),
                AuthResult::BadLength(id)
            );
            assert_eq!(
                verify(&table, p.authenticated, mac),
                AuthResult::BadLength(id)
            );
        }

        // Unknown key.
        let unknown = signed(&key(45, alg, 1, true));
        assert_eq!(
            verify_bytes(&k, &table, &unknown).1,
            AuthResult::UnknownKey(KeyId(45))
        );
        // Untrusted key: right secret, right digest, still refused.
        let untrusted = key(44, alg, 1, false);
        let bytes = signed(&untrusted);
        assert_eq!(
            verify_bytes(&untrusted, &table, &bytes),
            (
                AuthResult::UntrustedKey(KeyId(44)),
                AuthResult::UntrustedKey(KeyId(44))
            )
        );

        // Key id 0 with a digest is never a key.
        let mut zero = good.clone();
        zero[48..52].fill(0);
        assert_eq!(
            verify_bytes(&k, &table, &zero),
            (
                AuthResult::UnknownKey(KeyId(0)),
                AuthResult::UnknownKey(KeyId(0))
            )
        );

        // Crypto-NAK, and a 4-byte trailer that is not one.
        let mut nak = header_bytes().to_vec();
        nak.extend([0; 4]);
        assert_eq!(
            verify_bytes(&k, &table, &nak),
            (AuthResult::CryptoNak, AuthResult::CryptoNak)
        );
        nak[51] = 42;
        assert_eq!(
            verify_bytes(&k, &table, &nak),
            (AuthResult::BadLength(id), AuthResult::BadLength(id))
        );
    }
}

#[test]
fn mac_covers_extension_fields() {
    let k = key(5, Algorithm::Aes128Cmac, 3, true);
    let mut buf = [0u8; 128];
    buf[..48].copy_from_slice(&header_bytes());
    // One 16-byte extension field.
    buf[48..52].copy_from_slice(&[0x12, 0x34, 0x00, 0x10]);
    let n = append_mac(&k, &mut buf, 64).unwrap();
    let p = wire::parse(&buf[..n]).unwrap();
    assert_eq!(p.extensions().count(), 1);
    assert!(verify_with_key(&k, p.authenticated, p.mac).is_ok());
    let mut bad = buf;
    bad[60] ^= 1;
    let p = wire::parse(&bad[..n]).unwrap();
    assert_eq!(
        verify_with_key(&k, p.authenticated, p.mac),
        AuthResult::BadDigest(KeyId(5))
    );
}

/// attacks.md K5: with the plain `hash(key || message)` MACs (MD5, SHA-1) anyone can append to a
/// signed
/// message and extend the MAC; extension fields under such a MAC are refused, whatever the
/// digest says. CMAC and the truncated SHA-256 are not affected.
#[test]
fn extension_fields_under_md5_or_sha1_are_refused() {
    for (alg, refused) in [
        (Algorithm::Md5, true),
        (Algorithm::Sha1, true),
        (Algorithm::Sha256, false),
        (Algorithm::Aes128Cmac, false),
    ] {
        let k = key(6, alg, 3, true);
        let mut buf = [0u8; 128];
        buf[..48].copy_from_slice(&header_bytes());
        buf[48..52].copy_from_slice(&[0x12, 0x34, 0x00, 0x10]);
        let n = append_mac(&k, &mut buf, 64).unwrap();
        let p = wire::parse(&buf[..n]).unwrap();
        let result = verify_with_key(&k, p.authenticated, p.mac);
        if refused {
            assert_eq!(
                result,
                AuthResult::ExtensionsWithPrefixHash(KeyId(6)),
                "{alg:?}"
            );
        } else {
            assert!(result.is_ok(), "{alg:?}: {result:?}");
        }
        // Without extension fields every algorithm verifies.
        let mut plain = [0u8; 128];
        plain[..48].copy_from_slice(&header_bytes());
        let n = append_mac(&k, &mut plain, 48).unwrap();
        let p = wire::parse(&plain[..n]).unwrap();
        assert!(
            verify_with_key(&k, p.authenticated, p.mac).is_ok(),
            "{alg:?}"
        );
    }
}

#[test]
fn append_respects_buffer() {
    let k = key(5, Algorithm::Sha1, 3, true);
    let mut small = [0u8; 71];
    assert_eq!(append_mac(&k, &mut small, 48), None);
    let mut exact = [0u8; 72];
    assert_eq!(append_mac(&k, &mut exact, 48), Some(72));
    assert_eq!(&exact[48..52], &[0, 0, 0, 5]);
    let mut nak = [0xffu8; 52];
    assert_eq!(append_crypto_nak(&mut nak, 48), Some(52));
    assert_eq!(&nak[48..], &[0; 4]);
    assert_eq!(append_crypto_nak(&mut nak, 49), None);
}

#[test]
fn names() {
    let all = [
        AuthResult::Ok(KeyId(1)),
        AuthResult::NoMac,
        AuthResult::CryptoNak,
        AuthResult::UnknownKey(KeyId(1)),
        AuthResult::UntrustedKey(KeyId(1)),
        AuthResult::WrongKey {
            expected: KeyId(1),
            got: KeyId(2),
        },
        AuthResult::BadLength(KeyId(1)),
        AuthResult::BadDigest(KeyId(1)),
    ];
    let names: std::collections::HashSet<_> = all.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), all.len());
    assert_eq!(all.iter().filter(|r| r.is_ok()).count(), 1);
}
