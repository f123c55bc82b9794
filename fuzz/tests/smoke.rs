//! Deterministic smoke run of every fuzz target on stable Rust: the seed corpus, then a few
//! thousand inputs made from it by seeded random mutation, plus structured random packets.
//! `MERIDIAN_FUZZ_ITERATIONS` (default 3000) and `MERIDIAN_FUZZ_SEED` change the run; a
//! failing input is written to `target/smoke-failures/` and can be replayed with
//! `cargo run --bin TARGET -- FILE`.

use meridian_fuzz::{corpus_files, Target, TARGETS};
use meridian_proto::entropy::{Entropy, SplitMix64};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(SplitMix64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.0.next_u64() as u8
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Tokens worth inserting: every word and punctuation run of the seeds, plus extremes.
fn dictionary(seeds: &[Vec<u8>], extra: &[&str]) -> Vec<Vec<u8>> {
    let mut tokens: Vec<Vec<u8>> = extra.iter().map(|t| t.as_bytes().to_vec()).collect();
    for seed in seeds {
        let Ok(text) = std::str::from_utf8(seed) else {
            continue;
        };
        let mut word = String::new();
        for c in text.chars() {
            if c.is_alphanumeric() || c == '-' || c == '_' || c == '.' {
                word.push(c);
            } else {
                if !word.is_empty() {
                    tokens.push(std::mem::take(&mut word).into_bytes());
                }
                tokens.push(c.to_string().into_bytes());
            }
        }
    }
    tokens.sort();
    tokens.dedup();
    tokens
}

const INTERESTING: &[u8] = &[
    0, 1, 0x10, 0x1c, 0x16, 0x17, 0x1b, 0x23, 0x24, 0x7f, 0x80, 0xe3, 0xff,
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>], dict: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(6) {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.byte();
            }
            3 if !dict.is_empty() => {
                let token = &dict[rng.below(dict.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, token.iter().copied());
            }
            4 if len > 0 => {
                // Delete a range (whole 4-byte words half the time, to keep packets aligned).
                let at = rng.below(len);
                let n = if rng.chance(2) { 4 } else { 1 + rng.below(16) };
                input.drain(at..(at + n).min(len));
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let piece: Vec<u8> = input[at..(at + 1 + rng.below(32)).min(len)].to_vec();
                let to = rng.below(len + 1);
                input.splice(to..to, piece);
            }
            6 => input.truncate(rng.below(len + 1)),
            7 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            _ => {
                let n = 4 * (1 + rng.below(8));
                input.extend((0..n).map(|_| rng.byte()));
            }
        }
    }
}

/// A random datagram with plausible framing: header, extension fields, trailer.
fn random_packet(rng: &mut Rng) -> Vec<u8> {
    let mut p: Vec<u8> = (0..48).map(|_| rng.byte()).collect();
    p[0] = (p[0] & 0xc7) | ((1 + rng.below(4) as u8) << 3);
    if rng.chance(2) {
        p[0] = (p[0] & 0xf8) | 3;
    }
    for _ in 0..rng.below(5) {
        let len = [16usize, 20, 28, 32, 44, 4 * rng.below(300)][rng.below(6)];
        let declared = if rng.chance(8) { rng.below(70000) } else { len };
        let mut field: Vec<u8> = (0..len.max(4)).map(|_| rng.byte()).collect();
        field[2..4].copy_from_slice(&(declared as u16).to_be_bytes());
        p.extend(field);
    }
    let trailer = [0usize, 4, 8, 16, 20, 24, 28][rng.below(7)];
    p.extend((0..trailer).map(|_| rng.byte()));
    p
}

fn run_one(name: &str, target: Target, data: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| target(data))).is_err() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/smoke-failures");
        let file = dir.join(format!("{name}-{}", data.len()));
        let saved = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&file, data));
        panic!(
            "{name} failed on {what} ({} bytes, saved: {}): {data:02x?}",
            data.len(),
            saved.map_or("no".into(), |_| file.display().to_string())
        );
    }
}

fn smoke(name: &str, extra_tokens: &[&str], packets: bool) {
    let target = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("known target")
        .1;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let seeds: Vec<Vec<u8>> = corpus_files(&dir)
        .iter()
        .map(|f| std::fs::read(f).expect("readable seed"))
        .collect();
    assert!(!seeds.is_empty(), "no seed corpus in {}", dir.display());
    for (i, seed) in seeds.iter().enumerate() {
        run_one(name, target, seed, &format!("seed {i}"));
    }
    let dict = dictionary(&seeds, extra_tokens);
    let iterations = env_u64("MERIDIAN_FUZZ_ITERATIONS", 3000);
    let mut rng = Rng(SplitMix64::new(env_u64("MERIDIAN_FUZZ_SEED", 0x6d65_7269)));
    for i in 0..iterations {
        let mut input = match rng.below(8) {
            0 => (0..rng.below(200)).map(|_| rng.byte()).collect(),
            1 | 2 if packets => random_packet(&mut rng),
            _ => seeds[rng.below(seeds.len())].clone(),
        };
        if !rng.chance(8) {
            mutate(&mut rng, &mut input, &seeds, &dict);
        }
        run_one(name, target, &input, &format!("iteration {i}"));
    }
}

#[test]
fn every_target_has_a_seed_corpus_and_a_smoke_test() {
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    let this = include_str!("smoke.rs");
    for name in names {
        assert!(this.contains(&format!("fn {name}() {{")), "{name} untested");
    }
}

#[test]
fn wire_parse() {
    smoke("wire_parse", &[], true);
}

#[test]
fn server_respond() {
    smoke("server_respond", &[], true);
}

#[test]
fn client_association() {
    smoke("client_association", &[], false);
}

#[test]
fn peer_association() {
    smoke("peer_association", &[], false);
}

#[test]
fn mode6_request() {
    smoke(
        "mode6_request",
        &["stratum", "offset", "refid", "srcadr", "filtdelay", ","],
        false,
    );
}

#[test]
fn drift_file() {
    smoke(
        "drift_file",
        &["-", ".", "e", "inf", "NaN", " ", "\n", "500"],
        false,
    );
}

#[test]
fn mac_check() {
    smoke("mac_check", &[], false);
}

#[test]
fn broadcast_association() {
    smoke("broadcast_association", &[], false);
}

#[test]
fn config_parse() {
    smoke(
        "config_parse",
        &[
            "[[",
            "]]",
            "\"\"\"",
            "'''",
            "\r\n",
            "\t",
            "é",
            "µs",
            "1e999",
            "-0",
            "nan",
            "inf",
            "99999999999999999999",
            "-9223372036854775808",
            "0x",
            "\\u",
            "{}",
            "[]",
            "::",
            "/0",
        ],
        false,
    );
}

#[test]
fn keys_file() {
    smoke(
        "keys_file",
        &[
            "md5",
            "sha1",
            "sha256",
            "aes128-cmac",
            "HEX:",
            "4294967295",
            "4294967296",
            "0",
            "ff",
            "g0",
            "é",
            "\r\n",
            "\t",
            "\0",
        ],
        false,
    );
}

#[test]
fn control_request() {
    smoke(
        "control_request",
        &[
            "{",
            "}",
            "\"request\"",
            ":",
            "\"status\"",
            "\"sessions\"",
            "\"reload\"",
            ",",
            "\\u0000",
            "null",
            "[",
            "]",
            "\"",
            "1e999",
        ],
        false,
    );
}

#[test]
fn time_conversions() {
    smoke("time_conversions", &[], false);
}

#[test]
fn comware_parse() {
    smoke(
        "comware_parse",
        &[
            "ntp-service ",
            "unicast-server ",
            "refclock-master ",
            "authentication-keyid ",
            "interface ",
            "acl number 2001\n rule permit source ",
            " 0.0.0.255",
            "vpn-instance ",
            "undo ",
            "#\n",
            "\n quit\n",
            "\u{0}",
        ],
        false,
    );
}
