//! Known-answer tests of the digests (RFC 1321, FIPS 180 and RFC 4493 / SP 800-38B vectors)
//! and the key table rules.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn key(algorithm: Algorithm, secret: &[u8]) -> Key {
    Key::new(KeyId(1), algorithm, secret, true).unwrap()
}

/// The classic digests hash secret || message, so a standard test vector split anywhere into
/// secret and message gives the standard answer.
#[test]
fn prefix_digests_match_standard_vectors() {
    // RFC 1321 appendix A.5.
    let cases = [
        (
            Algorithm::Md5,
            "a",
            "bc",
            "900150983cd24fb0d6963f7d28e17f72",
        ),
        (
            Algorithm::Md5,
            "message ",
            "digest",
            "f96b697d7cb7938d525a2f31aaf161d0",
        ),
        (
            Algorithm::Md5,
            "abcdefghijklm",
            "nopqrstuvwxyz",
            "c3fcd3d76192e4007dfb496cca67e13b",
        ),
        // FIPS 180-2 appendix A.1 / B.1 (SHA-256 truncated to 20 bytes on the wire).
        (
            Algorithm::Sha1,
            "ab",
            "c",
            "a9993e364706816aba3e25717850c26c9cd0d89d",
        ),
        (
            Algorithm::Sha1,
            "abcdbcdecdefdefgefghfghighijhijk",
            "ijkljklmklmnlmnomnopnopq",
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
        ),
        (
            Algorithm::Sha256,
            "abc",
            "",
            "ba7816bf8f01cfea414140de5dae2223b00361a3",
        ),
        (
            Algorithm::Sha256,
            "abcdbcdecdefdefgefghfghighijhijk",
            "ijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce459",
        ),
    ];
    for (alg, secret, message, want) in cases {
        let d = key(alg, secret.as_bytes()).digest(message.as_bytes());
        assert_eq!(d.as_slice(), hex(want), "{alg:?} {secret:?}+{message:?}");
        assert_eq!(d.as_slice().len(), alg.digest_len());
    }
}

/// RFC 4493 section 4 (AES-128) and NIST SP 800-38B appendix D.3 (AES-256) examples 1-4.
#[test]
/// attacks.md K4: AES-CMAC test vectors.
fn cmac_matches_rfc4493_and_sp800_38b() {
    let msg = hex(
        "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51 \
         30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710",
    );
    let k128 = key(
        Algorithm::Aes128Cmac,
        &hex("2b7e151628aed2a6abf7158809cf4f3c"),
    );
    let k256 = key(
        Algorithm::Aes256Cmac,
        &hex("603deb1015ca71be2b73aef0857d7781 1f352c073b6108d72d9810a30914dff4"),
    );
    let cases = [
        (
            0,
            "bb1d6929e95937287fa37d129b756746",
            "028962f61b7bf89efc6b551f4667d983",
        ),
        (
            16,
            "070a16b46b4d4144f79bdd9dd04a287c",
            "28a7023f452e8f82bd4bf28d8c37c35c",
        ),
        (
            40,
            "dfa66747de9ae63030ca32611497c827",
            "aaf3d8f1de5640c232f5b169b9c911e6",
        ),
        (
            64,
            "51f0bebf7e3b9d92fc49741779363cfe",
            "e1992190549f6ed5696a2c056c315410",
        ),
    ];
    for (len, want128, want256) in cases {
        assert_eq!(
            k128.digest(&msg[..len]).as_slice(),
            hex(want128),
            "AES-128 len {len}"
        );
        assert_eq!(
            k256.digest(&msg[..len]).as_slice(),
            hex(want256),
            "AES-256 len {len}"
        );
    }
}

#[test]
/// attacks.md K3: digests compared over their exact length (constant time, `subtle`), every bit matters.
fn digest_comparison_needs_exact_length_and_bytes() {
    let d = key(Algorithm::Sha1, b"k").digest(b"message");
    let good = d.as_slice().to_vec();
    assert!(d.matches(&good));
    assert!(!d.matches(&good[..16]), "truncated");
    let mut longer = good.clone();
    longer.push(0);
    assert!(!d.matches(&longer));
    for bit in 0..good.len() * 8 {
        let mut bad = good.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(!d.matches(&bad), "bit {bit}");
    }
}

#[test]
/// attacks.md K7: key material rules (lengths, ID 0, types).
fn key_rules() {
    assert_eq!(
        Key::new(KeyId(0), Algorithm::Md5, b"k", true),
        Err(KeyError::ZeroId)
    );
    assert_eq!(
        Key::new(KeyId(1), Algorithm::Md5, b"", true),
        Err(KeyError::EmptySecret)
    );
    assert_eq!(
        Key::new(KeyId(1), Algorithm::Sha1, &[1; 65], true),
        Err(KeyError::SecretTooLong(65))
    );
    assert!(Key::new(KeyId(1), Algorithm::Sha1, &[1; 64], true).is_ok());
    assert_eq!(
        Key::new(KeyId(1), Algorithm::Aes128Cmac, &[1; 15], true),
        Err(KeyError::WrongSecretLength {
            expected: 16,
            got: 15
        })
    );
    assert_eq!(
        Key::new(KeyId(1), Algorithm::Aes256Cmac, &[1; 16], true),
        Err(KeyError::WrongSecretLength {
            expected: 32,
            got: 16
        })
    );
    let k = Key::new(KeyId(u32::MAX), Algorithm::Md5, b"TopSecret", false).unwrap();
    let shown = format!("{k:?}");
    assert!(
        !shown.contains("TopSecret") && shown.contains("9 bytes"),
        "{shown}"
    );
    assert!(!k.trusted() && k.with_trusted(true).trusted());
    assert_eq!(k.mac_len(), 20);
}

#[test]
fn table_lookup_duplicates_and_limit() {
    let mut t = KeyTable::new();
    for id in (1..=MAX_KEYS as u32).rev() {
        t.insert(Key::new(KeyId(id * 3), Algorithm::Md5, b"k", id % 2 == 0).unwrap())
            .unwrap();
    }
    assert_eq!(t.len(), MAX_KEYS);
    assert_eq!(t.get(KeyId(6)).map(|k| k.trusted()), Some(true));
    assert_eq!(t.get(KeyId(9)).map(|k| k.trusted()), Some(false));
    assert!(t.get(KeyId(7)).is_none());
    assert!(t.get(KeyId(0)).is_none());
    let extra = Key::new(KeyId(1), Algorithm::Md5, b"k", true).unwrap();
    assert_eq!(t.insert(extra), Err(KeyError::TooMany));
    let mut small = KeyTable::new();
    small.insert(extra).unwrap();
    assert_eq!(small.insert(extra), Err(KeyError::Duplicate(KeyId(1))));
    let ids: Vec<u32> = t.iter().take(3).map(|k| k.id().0).collect();
    assert_eq!(ids, vec![3, 6, 9]);
}
