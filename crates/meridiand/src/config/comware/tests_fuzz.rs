//! Stable stand-in for a fuzz target: thousands of seeded random and mutated command files go
//! through the reader; it must never panic, and whatever it accepts must survive the TOML
//! round trip unchanged.

use super::{parse_comware, to_toml};
use crate::config::parse_str;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const SEEDS: &[&str] = &[
    "ntp-service unicast-server 1.0.1.11",
    "ntp-service unicast-server vpn-instance v1 10.1.1.1 authentication-keyid 7 priority",
    "ntp-service unicast-server 10.3.1.2 vpn-instance v2 source eth1 version 3 minpoll 4 maxpoll 9",
    "ntp-service ipv6 unicast-server 2001:2::1",
    "ntp-service unicast-peer 3.0.1.33 version 2",
    "ntp-service refclock-master 127.127.1.1 4",
    "ntp-service refclock-master 2",
    "ntp-service source-interface eth0",
    "ntp-service max-dynamic-sessions 50",
    "ntp-service access peer 2001",
    "ntp-service query acl 2002",
    "ntp-service authentication enable",
    "ntp-service authentication-keyid 7 authentication-mode md5 simple BetterKey",
    "ntp-service reliable authentication-keyid 7",
    "ntp-service dscp 46",
    "undo ntp-service unicast-server 1.0.1.11",
    "interface eth1",
    "interface Vlan-interface 2",
    " ntp-service broadcast-server authentication-keyid 7 version 3",
    " ntp-service broadcast-client",
    " ntp-service multicast-server 239.1.1.1 ttl 4",
    " ntp-service multicast-client",
    " ntp-service in-interface disable",
    " ip binding vpn-instance v1",
    "acl number 2001",
    "acl ipv6 basic 2002",
    " rule 5 permit source 10.0.0.0 0.0.0.255",
    " rule deny source any",
    " rule permit source 2001:2::/48",
    "#",
    "quit",
    "sysname R1",
    "[R1] ntp-service unicast-server 1.0.1.12",
];

const WORDS: &[&str] = &[
    "ntp-service",
    "undo",
    "ipv6",
    "vpn-instance",
    "authentication-keyid",
    "version",
    "0",
    "1",
    "16",
    "255",
    "4294967296",
    "-1",
    "127.127.1.3",
    "224.0.1.1",
    "::",
    "\"",
    "[",
    "]",
    "<x>",
    "acl",
    "rule",
    "source",
    "0.0.0.0",
    "255.255.255.255",
    "interface",
    "é",
    "\t",
    "2001",
    "simple",
    "cipher",
    "md5",
    "hmac-sha-1",
    "#",
    "quit",
    "priority",
    "source-interface",
];

fn mutate(rng: &mut Rng, line: &str) -> String {
    let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
    for _ in 0..rng.below(4) {
        let i = rng.below(words.len() + 1);
        match rng.below(5) {
            0 if i < words.len() => {
                words.remove(i);
            }
            1 => words.insert(i, rng.pick(WORDS).to_string()),
            2 if i < words.len() => words[i] = rng.pick(WORDS).to_string(),
            3 if i < words.len() => {
                let cut = rng.below(words[i].len() + 1);
                let w: String = words[i].chars().take(cut).collect();
                words[i] = w;
            }
            _ => {}
        }
    }
    let mut s = words.join(if rng.below(8) == 0 { "  " } else { " " });
    if rng.below(20) == 0 {
        let bytes = ['\u{0}', '\r', '\u{feff}', 'ß', '"'];
        let boundaries: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
        let at = boundaries[rng.below(boundaries.len())];
        s.insert(at, bytes[rng.below(bytes.len())]);
    }
    s
}

#[test]
fn random_and_mutated_files_never_panic_and_round_trip() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for _ in 0..3000 {
        let n = 1 + rng.below(12);
        let mut text = String::new();
        for _ in 0..n {
            let seed = rng.pick(SEEDS);
            let line = if rng.below(3) == 0 {
                mutate(&mut rng, seed)
            } else {
                seed.to_string()
            };
            text.push_str(&line);
            text.push('\n');
        }
        if let Ok((config, _)) = parse_comware(&text) {
            accepted += 1;
            let back = parse_str(&to_toml(&config)).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
            assert_eq!(back, config, "{text}");
        }
    }
    // The generator must exercise both outcomes.
    assert!(
        accepted > 300 && accepted < 2900,
        "accepted {accepted} of 3000"
    );
}
