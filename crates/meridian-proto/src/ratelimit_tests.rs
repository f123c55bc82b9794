//! Tests of the rate limiter: pass/leak/kiss/drop ratios for steady and bursty clients,
//! a spoofed flood, bounded memory under a million source addresses, and the RATE kiss.

use super::*;
use crate::entropy::SplitMix64;
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Default, Debug)]
struct Tally {
    pass: u64,
    leak: u64,
    kiss: u64,
    drop: u64,
}

impl Tally {
    fn add(&mut self, v: RateVerdict) {
        match v {
            RateVerdict::Pass => self.pass += 1,
            RateVerdict::Leak => self.leak += 1,
            RateVerdict::Kiss => self.kiss += 1,
            RateVerdict::Drop => self.drop += 1,
        }
    }
    fn limited(&self) -> u64 {
        self.leak + self.kiss + self.drop
    }
}

fn at(secs: f64) -> Mono {
    Mono::from_seconds(1000.0 + secs)
}

/// `count` ~ Binomial(n, p) lies within five standard deviations of its mean.
fn assert_binomial(count: u64, n: u64, p: f64, what: &str) {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (count as f64 - mean).abs() <= 5.0 * sd + 1.0,
        "{what}: {count} of {n}, expected {mean:.0} ± {:.0}",
        5.0 * sd
    );
}

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

#[test]
fn steady_client_above_the_rate() {
    // 1 request/s against "one per 8 s, burst 8": the burst, then one in eight passes.
    let mut rng = SplitMix64::new(11);
    let mut rl = RateLimiter::new(RateLimitConfig::default(), &mut rng);
    let mut t = Tally::default();
    let n = 10_000u64;
    for i in 0..n {
        t.add(rl.check(CLIENT, at(i as f64), &mut rng));
    }
    // The burst of 8 (plus the token earned meanwhile: seconds 0..=8), then exactly one
    // request per 8 s.
    let expected = (0..n).filter(|s| *s <= 8 || s % 8 == 0).count() as u64;
    assert_eq!(t.pass, expected, "{t:?}");
    let limited = t.limited();
    assert_eq!(limited, n - t.pass);
    assert_binomial(t.leak, limited, 0.25, "leaked");
    assert_binomial(t.kiss, limited - t.leak, 0.25, "kissed");
    assert_eq!(t.drop, limited - t.leak - t.kiss);
}

#[test]
fn steady_client_within_the_rate_always_passes() {
    let mut rng = SplitMix64::new(12);
    let mut rl = RateLimiter::new(RateLimitConfig::default(), &mut rng);
    for i in 0..5000 {
        assert_eq!(
            rl.check(CLIENT, at(i as f64 * 8.0), &mut rng),
            RateVerdict::Pass
        );
    }
}

#[test]
fn bursty_client_gets_its_burst_per_refill() {
    // Bursts of 20 back-to-back requests every 64 s: the bucket refills 8 tokens (its
    // burst) between bursts, so exactly 8 of each 20 pass; the rest are limited.
    let mut rng = SplitMix64::new(13);
    let config = RateLimitConfig {
        leak: 0,
        kod: 2,
        ..RateLimitConfig::default()
    };
    let mut rl = RateLimiter::new(config, &mut rng);
    let mut total = Tally::default();
    for burst in 0..200 {
        let mut t = Tally::default();
        for k in 0..20 {
            t.add(rl.check(CLIENT, at(burst as f64 * 64.0 + k as f64 * 0.001), &mut rng));
        }
        assert_eq!(t.pass, 8, "burst {burst}: {t:?}");
        assert_eq!(t.leak, 0, "leak off");
        total.kiss += t.kiss;
        total.drop += t.drop;
    }
    assert_binomial(total.kiss, 200 * 12, 0.5, "kissed");
}

#[test]
fn no_leak_no_kod_means_silent_drops() {
    let mut rng = SplitMix64::new(14);
    let config = RateLimitConfig {
        leak: 0,
        kod: 0,
        burst: 1,
        interval: Duration::from_secs(2),
        table_size: 64,
    };
    let mut rl = RateLimiter::new(config, &mut rng);
    assert_eq!(rl.check(CLIENT, at(0.0), &mut rng), RateVerdict::Pass);
    for i in 1..100 {
        assert_eq!(
            rl.check(CLIENT, at(i as f64 * 0.01), &mut rng),
            RateVerdict::Drop
        );
    }
    assert_eq!(rl.check(CLIENT, at(2.0), &mut rng), RateVerdict::Pass);
}

/// attacks.md G3: a flood spoofing the victim's address cannot stop the victim's own requests being
/// answered (the leak).
#[test]
fn spoofed_flood_cannot_silence_the_victim() {
    // An attacker sends 100 requests/s with the victim's address; the victim's own requests
    // (one per 64 s) are indistinguishable but still answered about a quarter of the time.
    let mut rng = SplitMix64::new(15);
    let mut rl = RateLimiter::new(RateLimitConfig::default(), &mut rng);
    let mut victim = Tally::default();
    let mut flood = Tally::default();
    for s in 0..64_000u64 {
        for k in 0..100 {
            flood.add(rl.check(CLIENT, at(s as f64 + k as f64 * 0.01), &mut rng));
        }
        if s % 64 == 63 {
            victim.add(rl.check(CLIENT, at(s as f64 + 0.995), &mut rng));
        }
    }
    let answered = victim.pass + victim.leak;
    assert_binomial(answered, 1000, 0.25 + 0.75 / 800.0, "victim answered");
    assert!(flood.pass <= 64_000 / 8 + 8, "{flood:?}");
}

#[test]
fn ipv4_and_mapped_ipv6_share_one_entry() {
    let mut rng = SplitMix64::new(16);
    let config = RateLimitConfig {
        leak: 0,
        kod: 0,
        burst: 2,
        ..RateLimitConfig::default()
    };
    let mut rl = RateLimiter::new(config, &mut rng);
    let mapped = IpAddr::V6(Ipv4Addr::new(198, 18, 0, 1).to_ipv6_mapped());
    assert_eq!(rl.check(CLIENT, at(0.0), &mut rng), RateVerdict::Pass);
    assert_eq!(rl.check(mapped, at(0.0), &mut rng), RateVerdict::Pass);
    assert_eq!(rl.check(CLIENT, at(0.0), &mut rng), RateVerdict::Drop);
    assert_eq!(rl.len(), 1);
}

/// attacks.md G3, G6: a million spoofed sources leave the rate-limit table within its fixed size.
#[test]
fn a_million_spoofed_sources_stay_within_the_table() {
    let mut rng = SplitMix64::new(17);
    let config = RateLimitConfig {
        table_size: 4096,
        leak: 0,
        kod: 0,
        ..RateLimitConfig::default()
    };
    let mut rl = RateLimiter::new(config, &mut rng);
    let bytes = rl.table_bytes();
    assert_eq!(rl.capacity(), 4096);
    let heavy = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x99));
    let mut heavy_tally = Tally::default();
    let mut src = SplitMix64::new(18);
    for i in 0..1_000_000u64 {
        let now = at(i as f64 * 0.001);
        let addr = if i % 2 == 0 {
            IpAddr::V4(Ipv4Addr::from(src.next_u64() as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(
                (0x2001_0002_u128 << 96) | u128::from(src.next_u64()),
            ))
        };
        rl.check(addr, now, &mut rng);
        if i % 100 == 0 {
            heavy_tally.add(rl.check(heavy, now, &mut rng));
        }
        assert!(rl.len() <= rl.capacity());
    }
    assert_eq!(rl.capacity(), 4096, "the table never grows");
    assert_eq!(rl.table_bytes(), bytes, "no memory added");
    assert!(rl.len() > 4000, "the table is in use: {}", rl.len());
    // The heavy sender (10 requests/s for 1000 s) stays tracked through the churn: about
    // one request per 8 s passes, not all of them.
    assert!(heavy_tally.pass <= 1000 / 8 + 8 + 5, "{heavy_tally:?}");
}

fn request(version: u8, mode: u8, poll: i8) -> Vec<u8> {
    let mut h = Header::new(Mode::Client);
    h.version = version;
    h.poll = poll;
    h.transmit_ts = crate::time::NtpTimestamp::from_bits(0x0123_4567_89ab_cdef);
    let mut b = h.to_bytes().to_vec();
    b[0] = (b[0] & !7) | mode;
    b
}

#[test]
fn rate_kiss_only_for_client_requests_and_symmetric_active_packets() {
    for version in 0..8u8 {
        for mode in 0..8u8 {
            let req = request(version, mode, 4);
            let mut out = [0u8; 64];
            let r = rate_kiss(&req, Duration::from_secs(8), &mut out);
            if (1..=4).contains(&version) && (mode == 3 || mode == 1) {
                let n = r.expect("kiss for a mode 3 request or a mode 1 packet");
                assert!(n <= req.len());
                let h = wire::parse(&out[..n]).unwrap().header;
                assert!(h.is_kiss());
                assert_eq!(h.kiss_code(), Some(ReferenceId::KISS_RATE));
                assert_eq!(
                    (h.mode, h.version, h.leap),
                    (Mode::Server, version, Leap::Unsynchronized),
                    "always mode 4, also to mode 1"
                );
                assert_eq!(h.origin_ts.to_bits(), 0x0123_4567_89ab_cdef);
                assert!(h.poll >= 3, "asks for at least the 8 s interval");
            } else {
                assert_eq!(r, None, "version {version} mode {mode}");
            }
        }
    }
}
