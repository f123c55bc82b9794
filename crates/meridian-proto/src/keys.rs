//! Symmetric keys for NTP authentication: key ids, algorithms, secrets, the trusted flag, the
//! key table, and the digest each algorithm computes over a message.
//!
//! Digest forms (what chrony, NTPsec and ntpd put on the wire): MD5 and SHA-1 are the classic
//! `hash(secret || message)`; SHA-256 is the same form truncated to 20 bytes, since an NTPv4
//! MAC carries at most 20 digest bytes (NTPsec truncates every long digest to 20, chrony
//! truncates to what fits in a 24-byte v4 MAC); AES-128-CMAC and AES-256-CMAC are RFC 4493
//! CMACs keyed with the secret (RFC 8573), 16 bytes.

use cmac::{Cmac, Mac as _};
use core::fmt;
use subtle::ConstantTimeEq;

/// Most keys one table holds (the Comware limit, "a maximum of 1024 keys").
pub const MAX_KEYS: usize = 1024;
/// Longest secret accepted, bytes.
pub const MAX_SECRET_LEN: usize = 64;
/// Longest digest on the wire (SHA-1, truncated SHA-256), bytes.
pub const MAX_DIGEST_LEN: usize = 20;

/// A key identifier as carried in the MAC. 0 is never a key: a MAC with key id 0 and no
/// digest is a crypto-NAK.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct KeyId(pub u32);

/// MAC algorithm of a key.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Algorithm {
    /// MD5(secret || message), 16 bytes (RFC 5905).
    Md5,
    /// SHA-1(secret || message), 20 bytes.
    Sha1,
    /// SHA-256(secret || message), first 20 bytes.
    Sha256,
    /// AES-128-CMAC (RFC 4493, RFC 8573), 16-byte secret, 16 bytes.
    Aes128Cmac,
    /// AES-256-CMAC, 32-byte secret, 16 bytes.
    Aes256Cmac,
}

impl Algorithm {
    /// Digest bytes on the wire (after the 4-byte key id).
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Md5 | Algorithm::Aes128Cmac | Algorithm::Aes256Cmac => 16,
            Algorithm::Sha1 | Algorithm::Sha256 => 20,
        }
    }

    /// The exact secret length a cipher-based algorithm needs; `None` for the digests.
    pub fn required_secret_len(self) -> Option<usize> {
        match self {
            Algorithm::Aes128Cmac => Some(16),
            Algorithm::Aes256Cmac => Some(32),
            _ => None,
        }
    }

    /// Name used in configuration and displays.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Aes128Cmac => "aes128-cmac",
            Algorithm::Aes256Cmac => "aes256-cmac",
        }
    }
}

/// Why a key or a table entry was refused.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum KeyError {
    /// Key id 0 is reserved for the crypto-NAK.
    ZeroId,
    EmptySecret,
    /// Longer than [`MAX_SECRET_LEN`].
    SecretTooLong(usize),
    /// A CMAC secret of the wrong length.
    WrongSecretLength {
        expected: usize,
        got: usize,
    },
    /// The table already has this id.
    Duplicate(KeyId),
    /// The table is full ([`MAX_KEYS`]).
    TooMany,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::ZeroId => write!(f, "key id 0 is reserved"),
            KeyError::EmptySecret => write!(f, "empty secret"),
            KeyError::SecretTooLong(n) => {
                write!(f, "secret of {n} bytes, at most {MAX_SECRET_LEN}")
            }
            KeyError::WrongSecretLength { expected, got } => {
                write!(f, "secret must be {expected} bytes, got {got}")
            }
            KeyError::Duplicate(id) => write!(f, "key {} defined twice", id.0),
            KeyError::TooMany => write!(f, "more than {MAX_KEYS} keys"),
        }
    }
}

/// A computed digest (at most [`MAX_DIGEST_LEN`] bytes).
#[derive(Copy, Clone)]
pub struct Digest {
    bytes: [u8; MAX_DIGEST_LEN],
    len: usize,
}

impl Digest {
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Constant-time comparison with a received digest; lengths are compared first (a length
    /// is not secret).
    pub fn matches(&self, received: &[u8]) -> bool {
        received.len() == self.len && bool::from(self.as_slice().ct_eq(received))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest(")?;
        for b in self.as_slice() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// One symmetric key. `Copy` so association configurations stay plain values; `Debug` never
/// shows the secret.
#[derive(Copy, Clone)]
pub struct Key {
    id: KeyId,
    algorithm: Algorithm,
    secret: [u8; MAX_SECRET_LEN],
    secret_len: usize,
    trusted: bool,
}

impl Key {
    /// A key with `secret` (1..=64 bytes; exactly 16 for AES-128-CMAC, 32 for AES-256-CMAC).
    pub fn new(
        id: KeyId,
        algorithm: Algorithm,
        secret: &[u8],
        trusted: bool,
    ) -> Result<Self, KeyError> {
        if id.0 == 0 {
            return Err(KeyError::ZeroId);
        }
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        if secret.len() > MAX_SECRET_LEN {
            return Err(KeyError::SecretTooLong(secret.len()));
        }
        if let Some(expected) = algorithm.required_secret_len() {
            if secret.len() != expected {
                return Err(KeyError::WrongSecretLength {
                    expected,
                    got: secret.len(),
                });
            }
        }
        let mut bytes = [0u8; MAX_SECRET_LEN];
        bytes[..secret.len()].copy_from_slice(secret);
        Ok(Self {
            id,
            algorithm,
            secret: bytes,
            secret_len: secret.len(),
            trusted,
        })
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Trusted (`ntp-service reliable authentication-keyid`): only trusted keys authenticate.
    pub fn trusted(&self) -> bool {
        self.trusted
    }

    /// The same key with another trusted flag.
    pub fn with_trusted(mut self, trusted: bool) -> Self {
        self.trusted = trusted;
        self
    }

    /// Digest bytes on the wire.
    pub fn digest_len(&self) -> usize {
        self.algorithm.digest_len()
    }

    /// Whole MAC trailer length: key id plus digest.
    pub fn mac_len(&self) -> usize {
        4 + self.digest_len()
    }

    fn secret(&self) -> &[u8] {
        &self.secret[..self.secret_len]
    }

    /// The digest of `message` (the authenticated region: header and extension fields).
    pub fn digest(&self, message: &[u8]) -> Digest {
        let mut out = Digest {
            bytes: [0u8; MAX_DIGEST_LEN],
            len: self.digest_len(),
        };
        let mut put = |full: &[u8]| out.bytes[..out.len].copy_from_slice(&full[..out.len]);
        match self.algorithm {
            Algorithm::Md5 => put(&prefix_hash::<md5::Md5>(self.secret(), message)),
            Algorithm::Sha1 => put(&prefix_hash::<sha1::Sha1>(self.secret(), message)),
            Algorithm::Sha256 => put(&prefix_hash::<sha2::Sha256>(self.secret(), message)),
            Algorithm::Aes128Cmac => put(&cmac128(self.secret(), message)),
            Algorithm::Aes256Cmac => put(&cmac256(self.secret(), message)),
        }
        out
    }
}

fn prefix_hash<D: md5::Digest>(secret: &[u8], message: &[u8]) -> Vec<u8> {
    let mut h = D::new();
    h.update(secret);
    h.update(message);
    h.finalize().to_vec()
}

fn cmac128(secret: &[u8], message: &[u8]) -> [u8; 16] {
    // Secret lengths were checked in `Key::new`.
    let mut mac = Cmac::<aes::Aes128>::new_from_slice(secret).expect("16-byte secret");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn cmac256(secret: &[u8], message: &[u8]) -> [u8; 16] {
    let mut mac = Cmac::<aes::Aes256>::new_from_slice(secret).expect("32-byte secret");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.algorithm == other.algorithm
            && self.trusted == other.trusted
            && self.secret_len == other.secret_len
            && bool::from(self.secret().ct_eq(other.secret()))
    }
}

impl Eq for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id.0)
            .field("algorithm", &self.algorithm)
            .field("trusted", &self.trusted)
            .field("secret", &format_args!("<{} bytes>", self.secret_len))
            .finish()
    }
}

/// The keys of one NTP instance, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyTable {
    /// Sorted by id.
    keys: Vec<Key>,
}

impl KeyTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key; ids are unique, at most [`MAX_KEYS`].
    pub fn insert(&mut self, key: Key) -> Result<(), KeyError> {
        match self.keys.binary_search_by_key(&key.id, |k| k.id) {
            Ok(_) => Err(KeyError::Duplicate(key.id)),
            Err(_) if self.keys.len() >= MAX_KEYS => Err(KeyError::TooMany),
            Err(at) => {
                self.keys.insert(at, key);
                Ok(())
            }
        }
    }

    pub fn get(&self, id: KeyId) -> Option<&Key> {
        self.keys
            .binary_search_by_key(&id, |k| k.id)
            .ok()
            .map(|i| &self.keys[i])
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter()
    }
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
