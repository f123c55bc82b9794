//! Symmetric keys: secret decoding and the keys-file format (`ID TYPE SECRET` per line).
//!
//! Format: blank lines and `#` comments are ignored (a `#` starts a comment anywhere outside
//! a secret). `ID` is 1..=4294967295, `TYPE` is md5, sha1, sha256, aes128-cmac or
//! aes256-cmac (case-insensitive; chrony's AES128/AES256 spellings too), `SECRET` is ASCII text without spaces, or `HEX:` followed by an even
//! number of hex digits.

use super::model::{AuthKey, KeyAlgorithm};
use super::reader::Diag;
use super::ConfigError;

/// Longest secret accepted, in bytes.
pub const MAX_SECRET_LEN: usize = 64;

/// Decode a secret as written (`HEX:` prefix for hex) and check its length for `algorithm`.
pub fn decode_secret(text: &str, algorithm: KeyAlgorithm) -> Result<Vec<u8>, String> {
    let bytes = match text.strip_prefix("HEX:") {
        Some(hex) => decode_hex(hex)?,
        None => {
            if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err("secret must not contain spaces or control characters".into());
            }
            text.as_bytes().to_vec()
        }
    };
    if bytes.is_empty() {
        return Err("secret must not be empty".into());
    }
    let exact = match algorithm {
        KeyAlgorithm::Aes128Cmac => Some(16),
        KeyAlgorithm::Aes256Cmac => Some(32),
        _ => None,
    };
    if let Some(n) = exact.filter(|&n| n != bytes.len()) {
        return Err(format!(
            "an {} secret must be exactly {n} bytes, got {}",
            algorithm.as_str(),
            bytes.len()
        ));
    }
    if bytes.len() > MAX_SECRET_LEN {
        return Err(format!(
            "secret is {} bytes, at most {MAX_SECRET_LEN} are allowed",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, String> {
    if hex.len() % 2 == 1 {
        return Err("HEX: secret must have an even number of hex digits".into());
    }
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| "HEX: secret contains a character that is not a hex digit".into())
        })
        .collect()
}

/// Parse a keys file. Every bad line is reported with its line and the column of the bad field.
pub fn parse_keys_file(text: &str) -> Result<Vec<AuthKey>, Vec<ConfigError>> {
    let mut d = Diag::new(text);
    let mut keys: Vec<AuthKey> = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let content = line.split('#').next().unwrap_or("");
        let fields: Vec<(usize, &str)> = split_fields(content)
            .into_iter()
            .map(|(i, f)| (start + i, f))
            .collect();
        let at = |i: usize| Some(i..i + 1);
        match fields.as_slice() {
            [] => {}
            [(id_at, id), (alg_at, alg), (sec_at, secret)] => {
                let id_ok = id.parse::<u32>().ok().filter(|&v| v >= 1);
                let alg_ok = KeyAlgorithm::from_name(alg);
                if id_ok.is_none() {
                    d.err(
                        &at(*id_at),
                        format!("key id \"{id}\" must be in 1..=4294967295"),
                    );
                }
                if alg_ok.is_none() {
                    d.err(
                        &at(*alg_at),
                        format!(
                            "unknown key type \"{alg}\" (use md5, sha1, sha256, aes128-cmac or aes256-cmac)"
                        ),
                    );
                }
                if let (Some(id), Some(algorithm)) = (id_ok, alg_ok) {
                    match decode_secret(secret, algorithm) {
                        Err(e) => d.err(&at(*sec_at), format!("key {id}: {e}")),
                        Ok(_) if keys.iter().any(|k| k.id == id) => {
                            d.err(&at(*id_at), format!("key {id} is defined twice"));
                        }
                        Ok(secret) => keys.push(AuthKey {
                            id,
                            algorithm,
                            secret,
                        }),
                    }
                }
            }
            [(first, _), ..] => d.err(
                &at(*first),
                "expected three fields: ID TYPE SECRET (e.g. `42 md5 BetterKey`)",
            ),
        }
    }
    if d.errors.is_empty() {
        Ok(keys)
    } else {
        Err(d.errors)
    }
}

/// Whitespace-separated fields with their byte offsets.
fn split_fields(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(b)) => {
                out.push((b, &s[b..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(b) = start {
        out.push((b, &s[b..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_with_comments_and_hex() {
        let text = "# keys\n\n42 md5 BetterKey\n  7 SHA1 HEX:00ff10  # trailing comment\n\
                    9 aes128-cmac HEX:000102030405060708090a0b0c0d0e0f\n10 sha256 s3cret\n";
        let keys = parse_keys_file(text).unwrap();
        assert_eq!(keys.len(), 4);
        assert_eq!(keys[0].id, 42);
        assert_eq!(keys[0].algorithm, KeyAlgorithm::Md5);
        assert_eq!(keys[0].secret, b"BetterKey");
        assert_eq!(keys[1].id, 7);
        assert_eq!(keys[1].algorithm, KeyAlgorithm::Sha1);
        assert_eq!(keys[1].secret, vec![0x00, 0xff, 0x10]);
        assert_eq!(keys[2].algorithm, KeyAlgorithm::Aes128Cmac);
        assert_eq!(keys[2].secret, (0u8..16).collect::<Vec<_>>());
        assert_eq!(keys[3].algorithm, KeyAlgorithm::Sha256);
    }

    #[test]
    fn reports_every_bad_line_with_position() {
        let text =
            "0 md5 a\n5 rot13 b\n6 md5\n7 md5 HEX:abc\n8 md5 x\n8 sha1 y\n9 aes128-cmac short\n";
        let errs = parse_keys_file(text).unwrap_err();
        let pos: Vec<(usize, usize)> = errs.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(
            pos,
            vec![(1, 1), (2, 3), (3, 1), (4, 7), (6, 1), (7, 15)],
            "{errs:?}"
        );
        assert!(errs[1].message.contains("rot13"));
        assert!(errs[4].message.contains("twice"));
        assert!(errs[5].message.contains("16 bytes"));
    }

    #[test]
    fn key_id_range() {
        assert_eq!(
            parse_keys_file("4294967295 md5 k\n").unwrap()[0].id,
            u32::MAX
        );
        assert!(parse_keys_file("4294967296 md5 k\n").is_err());
        assert_eq!(parse_keys_file("1 md5 k\n").unwrap()[0].id, 1);
        assert!(parse_keys_file("-1 md5 k\n").is_err());
    }

    #[test]
    fn secret_rules() {
        assert!(decode_secret("HEX:zz", KeyAlgorithm::Md5).is_err());
        assert!(decode_secret("HEX:", KeyAlgorithm::Md5).is_err());
        assert_eq!(
            decode_secret(&"a".repeat(64), KeyAlgorithm::Sha1)
                .unwrap()
                .len(),
            64
        );
        assert!(decode_secret(&"a".repeat(65), KeyAlgorithm::Sha1).is_err());
        assert_eq!(
            decode_secret(&"k".repeat(16), KeyAlgorithm::Aes128Cmac)
                .unwrap()
                .len(),
            16
        );
        assert!(decode_secret(&"k".repeat(17), KeyAlgorithm::Aes128Cmac).is_err());
        // Debug never shows the secret.
        let k = AuthKey {
            id: 1,
            algorithm: KeyAlgorithm::Md5,
            secret: b"TopSecret".to_vec(),
        };
        assert!(!format!("{k:?}").contains("TopSecret"));
    }
}
