//! `--mix`: a deterministic (seeded) stream of valid, malformed and MD5-authenticated NTP
//! datagrams in configured proportions, for soak tests of a server.

use serde::Serialize;

/// NTP header length.
const HEADER_LEN: usize = 48;
/// Largest datagram the mix sends (the "oversized" kind).
pub const MAX_DATAGRAM: usize = 1400;
/// Longest random-bytes datagram (exclusive bound is this + 1).
const RANDOM_MAX: usize = 1100;

/// What one datagram of the mix is; the discriminant travels in the low bits of the
/// transmit timestamp so that an answer can be attributed to its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A plain mode 3 request.
    Valid,
    /// A mode 3 request with a correct MD5 MAC.
    Auth,
    /// A mode 3 request with a MAC whose digest is wrong.
    BadAuth,
    /// Random bytes, 0..=1100 of them (the transmit timestamp tagged when there is one).
    Random,
    /// A valid request cut short (0..=47 bytes).
    Truncated,
    /// Mode 3 with version 0, 5, 6 or 7.
    BadVersion,
    /// A mode 6 READVAR probe.
    Mode6,
    /// A mode 7 MON_GETLIST probe (monlist).
    Mode7,
    /// A request followed by a broken extension field.
    ExtensionGarbage,
    /// A request padded with garbage to 1400 bytes.
    Oversized,
}

/// The malformed kinds, chosen uniformly within the malformed share.
const MALFORMED: [Kind; 7] = [
    Kind::Random,
    Kind::Truncated,
    Kind::BadVersion,
    Kind::Mode6,
    Kind::Mode7,
    Kind::ExtensionGarbage,
    Kind::Oversized,
];

/// Every kind, in discriminant order (index = the value carried in the timestamp).
pub const KINDS: [Kind; 10] = [
    Kind::Valid,
    Kind::Auth,
    Kind::BadAuth,
    Kind::Random,
    Kind::Truncated,
    Kind::BadVersion,
    Kind::Mode6,
    Kind::Mode7,
    Kind::ExtensionGarbage,
    Kind::Oversized,
];

/// Low bits of the transmit timestamp that carry the kind.
pub const KIND_BITS: u32 = 4;

impl Kind {
    pub fn index(self) -> usize {
        KINDS.iter().position(|k| *k == self).unwrap_or(0)
    }

    /// Whether a correct server answers this kind with a normal reply (a crypto-NAK for
    /// `BadAuth` is counted separately).
    pub fn expects_answer(self) -> bool {
        matches!(self, Kind::Valid | Kind::Auth)
    }
}

/// Proportions (weights) of the four families, and the key for the authenticated ones.
#[derive(Clone, Debug, PartialEq)]
pub struct MixSpec {
    pub valid: u32,
    pub malformed: u32,
    pub auth: u32,
    pub bad_auth: u32,
    pub seed: u64,
    pub key_id: u32,
    pub secret: Vec<u8>,
}

/// Default secret of key 1 (as written in a keys file: `1 md5 SoakTestKey`).
pub const DEFAULT_SECRET: &str = "SoakTestKey";

impl MixSpec {
    /// Parses `valid=W,malformed=W,auth=W,bad-auth=W` (missing families weigh 0).
    pub fn parse_weights(text: &str) -> Result<[u32; 4], String> {
        let mut w = [0u32; 4];
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("--mix: want NAME=WEIGHT, got {part}"))?;
            let value: u32 = value
                .parse()
                .map_err(|_| format!("--mix: not a number: {value}"))?;
            let slot = match name {
                "valid" => 0,
                "malformed" => 1,
                "auth" => 2,
                "bad-auth" => 3,
                _ => {
                    return Err(format!(
                        "--mix: unknown family {name} (valid, malformed, auth, bad-auth)"
                    ))
                }
            };
            w[slot] = value.min(1_000_000);
        }
        if w.iter().all(|&x| x == 0) {
            return Err("--mix: every weight is 0".into());
        }
        Ok(w)
    }

    /// A secret as in a keys file: `HEX:...` or ASCII.
    pub fn parse_secret(text: &str) -> Result<Vec<u8>, String> {
        match text.strip_prefix("HEX:") {
            None if !text.is_empty() => Ok(text.as_bytes().to_vec()),
            None => Err("--key-secret: empty".into()),
            Some(hex) => {
                if hex.is_empty() || hex.len() % 2 != 0 {
                    return Err("--key-secret: HEX: needs an even number of digits".into());
                }
                (0..hex.len())
                    .step_by(2)
                    .map(|i| {
                        u8::from_str_radix(&hex[i..i + 2], 16)
                            .map_err(|_| format!("--key-secret: not hex: {hex}"))
                    })
                    .collect()
            }
        }
    }
}

/// splitmix64: small, fast, and the same on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0; the tiny modulo bias does not matter here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Builds the datagrams of one mixed run.
#[derive(Debug)]
pub struct Mixer {
    weights: [u32; 4],
    total: u64,
    key_id: u32,
    secret: Vec<u8>,
    rng: Rng,
}

/// `stamp` with its low [`KIND_BITS`] replaced by `kind`.
pub fn tag(stamp: u64, kind: Kind) -> u64 {
    (stamp & !((1 << KIND_BITS) - 1)) | kind.index() as u64
}

/// The kind carried by an answer's origin timestamp.
pub fn kind_of(stamp: u64) -> Kind {
    KINDS
        .get((stamp & ((1 << KIND_BITS) - 1)) as usize)
        .copied()
        .unwrap_or(Kind::Random)
}

fn header(buf: &mut [u8], first: u8, stamp: u64) {
    buf[..HEADER_LEN].fill(0);
    buf[0] = first;
    buf[40..48].copy_from_slice(&stamp.to_be_bytes());
}

fn md5_mac(secret: &[u8], message: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    h.update(secret);
    h.update(message);
    h.finalize().into()
}

impl Mixer {
    pub fn new(spec: &MixSpec) -> Self {
        let weights = [spec.valid, spec.malformed, spec.auth, spec.bad_auth];
        Mixer {
            weights,
            total: weights.iter().map(|&w| u64::from(w)).sum::<u64>().max(1),
            key_id: spec.key_id,
            secret: spec.secret.clone(),
            rng: Rng::new(spec.seed),
        }
    }

    /// The next kind: a family by weight, then a malformed kind uniformly.
    pub fn next_kind(&mut self) -> Kind {
        let mut r = self.rng.below(self.total);
        let mut family = 0;
        for (i, &w) in self.weights.iter().enumerate() {
            if r < u64::from(w) {
                family = i;
                break;
            }
            r -= u64::from(w);
        }
        match family {
            0 => Kind::Valid,
            2 => Kind::Auth,
            3 => Kind::BadAuth,
            _ => MALFORMED[self.rng.below(MALFORMED.len() as u64) as usize],
        }
    }

    /// Writes the next datagram into `buf`; returns its length and kind. `stamp` (the send
    /// time) goes into the transmit timestamp, tagged with the kind.
    pub fn next(&mut self, stamp: u64, buf: &mut [u8; MAX_DATAGRAM]) -> (usize, Kind) {
        let kind = self.next_kind();
        let stamp = tag(stamp, kind);
        let len = match kind {
            Kind::Valid => {
                header(buf, 0x23, stamp);
                HEADER_LEN
            }
            Kind::Auth | Kind::BadAuth => {
                header(buf, 0x23, stamp);
                buf[48..52].copy_from_slice(&self.key_id.to_be_bytes());
                let mut mac = md5_mac(&self.secret, &buf[..HEADER_LEN]);
                if kind == Kind::BadAuth {
                    mac[(self.rng.below(16)) as usize] ^= 1 << self.rng.below(8);
                }
                buf[52..68].copy_from_slice(&mac);
                68
            }
            Kind::Random => {
                let len = self.rng.below(RANDOM_MAX as u64 + 1) as usize;
                self.rng.fill(&mut buf[..len]);
                // Random bytes can be a valid request by chance (mode 3, version 1-4, a
                // framing that parses, or a MAC with an unknown key, answered with a
                // crypto-NAK); carry the tag so that such answers are counted here.
                if len >= HEADER_LEN {
                    buf[40..48].copy_from_slice(&stamp.to_be_bytes());
                }
                len
            }
            Kind::Truncated => {
                header(buf, 0x23, stamp);
                self.rng.below(HEADER_LEN as u64) as usize
            }
            Kind::BadVersion => {
                let version = [0u8, 5, 6, 7][self.rng.below(4) as usize];
                header(buf, (version << 3) | 3, stamp);
                HEADER_LEN
            }
            Kind::Mode6 => {
                // Version 2, mode 6, READVAR, sequence, no data: a 12-byte control header.
                buf[..12].fill(0);
                buf[..4].copy_from_slice(&[0x16, 0x02, 0x00, 0x01]);
                12
            }
            Kind::Mode7 => {
                buf[..48].fill(0);
                buf[..4].copy_from_slice(&[0x17, 0x00, 0x03, 0x2a]);
                48
            }
            Kind::ExtensionGarbage => {
                header(buf, 0x23, stamp);
                // A field header with a broken length (0, short, odd, past the end, huge),
                // then random bytes.
                // At least 28 bytes of body, so that the tail can never pass for a MAC.
                let body = 28 + 4 * self.rng.below(60) as usize;
                let field_len: u16 = match self.rng.below(5) {
                    0 => 0,
                    1 => 4 * self.rng.below(4) as u16,
                    2 => 17 + 4 * self.rng.below(8) as u16,
                    3 => (body as u16 + 64) & !3,
                    _ => 65532,
                };
                let field_type = self.rng.next_u64() as u16;
                buf[48..50].copy_from_slice(&field_type.to_be_bytes());
                buf[50..52].copy_from_slice(&field_len.to_be_bytes());
                self.rng.fill(&mut buf[52..52 + body]);
                52 + body
            }
            Kind::Oversized => {
                header(buf, 0x23, stamp);
                self.rng.fill(&mut buf[HEADER_LEN..MAX_DATAGRAM]);
                MAX_DATAGRAM
            }
        };
        (len, kind)
    }
}

/// Per-kind counts of one mixed run.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct KindCount {
    pub kind: String,
    /// Datagrams of this kind handed to the kernel.
    pub datagrams: u64,
    /// Normal replies (mode 4, right origin, MAC present for `auth`).
    pub replies: u64,
    /// Crypto-NAK replies (header + 4 zero bytes).
    pub crypto_naks: u64,
}

/// Counts for every kind, in [`KINDS`] order.
pub fn empty_counts() -> Vec<KindCount> {
    KINDS
        .iter()
        .map(|k| KindCount {
            kind: serde_json::to_value(k)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            ..KindCount::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(w: [u32; 4], seed: u64) -> MixSpec {
        MixSpec {
            valid: w[0],
            malformed: w[1],
            auth: w[2],
            bad_auth: w[3],
            seed,
            key_id: 1,
            secret: DEFAULT_SECRET.as_bytes().to_vec(),
        }
    }

    fn run(w: [u32; 4], seed: u64, n: usize) -> Vec<(Vec<u8>, Kind)> {
        let mut m = Mixer::new(&spec(w, seed));
        let mut buf = [0u8; MAX_DATAGRAM];
        (0..n)
            .map(|i| {
                let (len, kind) = m.next(1000 * i as u64 + 1, &mut buf);
                (buf[..len].to_vec(), kind)
            })
            .collect()
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let a = run([50, 30, 15, 5], 7, 2000);
        assert_eq!(a, run([50, 30, 15, 5], 7, 2000));
        assert_ne!(a, run([50, 30, 15, 5], 8, 2000));
    }

    #[test]
    fn proportions_follow_the_weights_and_every_kind_appears() {
        let n = 100_000;
        let out = run([50, 30, 15, 5], 1, n);
        let mut counts = [0usize; 10];
        for (_, k) in &out {
            counts[k.index()] += 1;
        }
        let share = |c: usize| c as f64 / n as f64;
        assert!((share(counts[0]) - 0.50).abs() < 0.01, "{counts:?}");
        assert!((share(counts[1]) - 0.15).abs() < 0.01, "{counts:?}");
        assert!((share(counts[2]) - 0.05).abs() < 0.01, "{counts:?}");
        let malformed: usize = counts[3..].iter().sum();
        assert!((share(malformed) - 0.30).abs() < 0.01, "{counts:?}");
        assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
        let only_valid = run([1, 0, 0, 0], 1, 1000);
        assert!(only_valid
            .iter()
            .all(|(p, k)| *k == Kind::Valid && p.len() == 48));
    }

    #[test]
    fn datagrams_have_the_promised_shapes() {
        for (p, k) in run([0, 1, 1, 1], 3, 20_000) {
            match k {
                Kind::Random => assert!(p.len() <= 1100),
                Kind::Truncated => assert!(p.len() < 48),
                Kind::BadVersion => {
                    assert_eq!(p.len(), 48);
                    assert!([0, 5, 6, 7].contains(&((p[0] >> 3) & 7)));
                    assert_eq!(p[0] & 7, 3);
                }
                Kind::Mode6 => assert_eq!((p.len(), p[0] & 7), (12, 6)),
                Kind::Mode7 => assert_eq!(&p[..4], &[0x17, 0, 3, 0x2a]),
                Kind::ExtensionGarbage => assert!(p.len() > 48 && p.len() % 4 == 0),
                Kind::Oversized => assert_eq!(p.len(), 1400),
                Kind::Auth | Kind::BadAuth => {
                    assert_eq!(p.len(), 68);
                    assert_eq!(&p[48..52], &[0, 0, 0, 1]);
                    let good = md5_mac(DEFAULT_SECRET.as_bytes(), &p[..48]);
                    assert_eq!(p[52..] == good[..], k == Kind::Auth);
                }
                Kind::Valid => unreachable!("weight 0"),
            }
            if p.len() >= 48 && (p[0] & 7 == 3 || k == Kind::Random) {
                let stamp = u64::from_be_bytes(p[40..48].try_into().unwrap());
                assert_eq!(kind_of(stamp), k);
            }
        }
    }

    #[test]
    fn known_md5_vector() {
        // RFC 1321 test suite: MD5("abc"), split into secret and message.
        let d = md5_mac(b"a", b"bc");
        assert_eq!(
            d,
            [
                0x90, 0x01, 0x50, 0x98, 0x3c, 0xd2, 0x4f, 0xb0, 0xd6, 0x96, 0x3f, 0x7d, 0x28, 0xe1,
                0x7f, 0x72
            ]
        );
    }

    #[test]
    fn weights_and_secrets_parse() {
        assert_eq!(
            MixSpec::parse_weights("valid=60,malformed=25,auth=10,bad-auth=5"),
            Ok([60, 25, 10, 5])
        );
        assert_eq!(MixSpec::parse_weights("malformed=1"), Ok([0, 1, 0, 0]));
        assert!(MixSpec::parse_weights("valid=0").is_err());
        assert!(MixSpec::parse_weights("bogus=1").is_err());
        assert!(MixSpec::parse_weights("valid").is_err());
        assert_eq!(MixSpec::parse_secret("HEX:0aff"), Ok(vec![10, 255]));
        assert_eq!(MixSpec::parse_secret("abc"), Ok(b"abc".to_vec()));
        assert!(MixSpec::parse_secret("HEX:0").is_err());
        assert!(MixSpec::parse_secret("").is_err());
    }
}
