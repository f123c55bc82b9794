//! MAC target: the authentication path (`meridian_proto::auth` with `keys`) on packets with
//! extension fields and MACs of every algorithm against a key table: once on the input as a
//! datagram, once on a packet built from the input (header, extension fields, a MAC of one
//! key, then one tampering or none).
//!
//! Under `--cfg fuzzing` (cargo fuzz) the digest comparison in auth.rs is bypassed, so the
//! assertions that a wrong digest fails hold only in stable builds (the smoke harness).

use crate::input::Input;
use meridian_proto::auth::{self, AuthResult};
use meridian_proto::keys::{Algorithm, Key, KeyId, KeyTable};
use meridian_proto::wire::{self, Packet, HEADER_LEN};

const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::Md5,
    Algorithm::Sha1,
    Algorithm::Sha256,
    Algorithm::Aes128Cmac,
    Algorithm::Aes256Cmac,
];

/// Key ids 1-5: one trusted key per algorithm; 6: an untrusted SHA-256 key. Secrets from
/// the input (lengths 1..=64 for the digests).
fn key_table(input: &mut Input<'_>) -> Vec<Key> {
    let mut keys = Vec::new();
    for (i, algorithm) in ALGORITHMS
        .into_iter()
        .chain([Algorithm::Sha256])
        .enumerate()
    {
        let secret: [u8; 64] = input.array();
        let len = algorithm
            .required_secret_len()
            .unwrap_or(1 + usize::from(secret[0]) % 64);
        let key = Key::new(KeyId(i as u32 + 1), algorithm, &secret[..len], i < 5);
        keys.push(key.expect("valid key"));
    }
    keys
}

fn prefix_hash(algorithm: Algorithm) -> bool {
    matches!(algorithm, Algorithm::Md5 | Algorithm::Sha1)
}

/// What must hold for any parsed packet against the table.
fn check_packet(keys: &[Key], table: &KeyTable, packet: &Packet<'_>) {
    let result = auth::verify(table, packet.authenticated, packet.mac);
    let Some(mac) = packet.mac else {
        assert_eq!(result, AuthResult::NoMac);
        return;
    };
    if mac.key_id == 0 && mac.digest.is_empty() {
        assert_eq!(result, AuthResult::CryptoNak);
    }
    if let AuthResult::Ok(id) = result {
        assert_eq!(id.0, mac.key_id);
        let key = table.get(id).expect("verified with a key we have");
        assert!(key.trusted(), "untrusted key authenticated");
        assert_eq!(mac.digest.len(), key.digest_len());
        assert!(
            packet.authenticated.len() == HEADER_LEN || !prefix_hash(key.algorithm()),
            "extension fields under {:?} accepted",
            key.algorithm()
        );
        assert!(
            cfg!(fuzzing) || key.digest(packet.authenticated).matches(mac.digest),
            "wrong digest accepted"
        );
    }
    // An association bound to one key accepts exactly what the table accepts for that id.
    for key in keys {
        let bound = auth::verify_with_key(key, packet.authenticated, packet.mac);
        assert_eq!(
            bound.is_ok(),
            result == AuthResult::Ok(key.id()),
            "{bound:?} vs {result:?}"
        );
    }
}

/// Builds `header || extension fields || MAC of keys[k]` from the input; returns it and `k`.
fn build(input: &mut Input<'_>, keys: &[Key]) -> (Vec<u8>, usize) {
    let mut out: Vec<u8> = input.array::<HEADER_LEN>().to_vec();
    out[0] = (out[0] & 0xc7) | 4 << 3; // version 4
    for _ in 0..input.u8() % 4 {
        let field_type = input.u16();
        let len = 16 + 4 * usize::from(input.u8() % 16);
        let start = out.len();
        out.extend_from_slice(&field_type.to_be_bytes());
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(input.bytes(len - 4));
        out.resize(start + len, 0); // zero-padded at the end of the input
    }
    let k = usize::from(input.u8()) % keys.len();
    let key = &keys[k];
    let len = out.len();
    out.resize(len + key.mac_len(), 0);
    let end = auth::append_mac(key, &mut out, len).expect("room for the MAC");
    assert_eq!(end, out.len());
    (out, k)
}

/// Runs the authentication checks on the input as a datagram and on a packet built from it.
pub fn mac_check(data: &[u8]) {
    let mut input = Input::new(data);
    let keys = key_table(&mut input);
    let mut table = KeyTable::new();
    for key in &keys {
        table.insert(*key).expect("unique ids");
    }

    // 1. The input itself as a datagram.
    if let Ok(packet) = wire::parse(data) {
        check_packet(&keys, &table, &packet);
    }

    // 2. A packet signed with one of our keys.
    let (mut bytes, k) = build(&mut input, &keys);
    let key = &keys[k];
    let packet = wire::parse(&bytes).expect("a well-framed signed packet parses");
    let mac = packet.mac.expect("MAC found");
    assert_eq!(
        (mac.key_id, mac.digest.len()),
        (key.id().0, key.digest_len())
    );
    assert_eq!(packet.authenticated.len(), bytes.len() - key.mac_len());
    check_packet(&keys, &table, &packet);
    let has_fields = packet.authenticated.len() > HEADER_LEN;
    let expected = if !key.trusted() {
        AuthResult::UntrustedKey(key.id())
    } else if has_fields && prefix_hash(key.algorithm()) {
        AuthResult::ExtensionsWithPrefixHash(key.id())
    } else {
        AuthResult::Ok(key.id())
    };
    assert_eq!(
        auth::verify(&table, packet.authenticated, packet.mac),
        expected
    );

    // The same secret under another algorithm, or another secret under the same id, fails.
    let other = keys[(k + 1) % 5];
    if let Ok(impostor) = Key::new(key.id(), other.algorithm(), &[0x5a; 16], true) {
        let r = auth::verify_with_key(&impostor, packet.authenticated, packet.mac);
        if !cfg!(fuzzing) || impostor.digest_len() != key.digest_len() {
            assert!(!r.is_ok(), "a different key verified: {r:?}");
        }
    }

    // 3. One tampered bit: anywhere in the authenticated part or the digest.
    let flip = usize::from(input.u16()) % (bytes.len() * 8);
    let (at, bit) = (flip / 8, flip % 8);
    if at >= packet.authenticated.len() && at < packet.authenticated.len() + 4 {
        return; // the key id: another id, covered by the table checks above
    }
    bytes[at] ^= 1 << bit;
    if let Ok(tampered) = wire::parse(&bytes) {
        check_packet(&keys, &table, &tampered);
        let r = auth::verify(&table, tampered.authenticated, tampered.mac);
        if !cfg!(fuzzing) {
            assert!(!r.is_ok(), "a tampered packet verified (bit {flip})");
        }
    }
}
