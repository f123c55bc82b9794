//! attacks.md G4 (CVE-2016-7426): server-side rate limits never reach the replies of our own
//! sources. An attacker floods spoofed packets "from" our server S: client requests through
//! the gate (which limits them), and bogus replies both to the NTP port and to the
//! association; S's real replies are still accepted, every one.

use super::*;
use crate::client::ClientConfig;
use crate::entropy::SplitMix64;
use crate::system::{System, SystemConfig};
use crate::time::{NtpDuration, NtpTimestamp, PollInterval};
use crate::wire::{self, Header, Leap, ReferenceId};
use std::net::Ipv4Addr;
use std::time::Duration;

const S: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

fn local(secs: f64) -> NtpTimestamp {
    NtpTimestamp::from_unix(1_800_000_000, 0) + NtpDuration::from_seconds(secs)
}

fn mono(secs: f64) -> Mono {
    Mono::from_seconds(50.0 + secs)
}

fn packet(mode: Mode, origin: NtpTimestamp, t: f64) -> Vec<u8> {
    let mut h = Header::new(mode);
    h.leap = Leap::None;
    h.stratum = 1;
    h.precision = -20;
    h.reference_id = ReferenceId(*b"GPS\0");
    h.reference_ts = local(t - 4.0);
    h.origin_ts = origin;
    h.receive_ts = local(t + 0.000_5);
    h.transmit_ts = local(t + 0.000_51);
    h.to_bytes().to_vec()
}

/// attacks.md G4: aggressive limits, a flood of spoofed requests and bogus replies from S,
/// and still every real reply of S is accepted by our association.
#[test]
fn g4_rate_limits_never_touch_replies_of_our_own_server() {
    let mut rng = SplitMix64::new(26);
    let limits = RateLimitConfig {
        interval: Duration::from_secs(64),
        burst: 1,
        leak: 0,
        kod: 0,
        table_size: 64,
    };
    let mut gate = ServerGate::new(AccessPolicy::open(), Some(limits), &mut rng);
    let mut system = System::new(SystemConfig::for_tests());
    let config = ClientConfig {
        iburst: true,
        minpoll: PollInterval::new(4),
        maxpoll: PollInterval::new(6),
        ..Default::default()
    };
    let id = system.add_client(config, ReferenceId::from_ip(S), false, mono(0.0), &mut rng);

    let (mut requests_admitted, mut requests_limited) = (0u32, 0u32);
    let (mut sent, mut accepted) = (0u32, 0u32);
    for second in 0..900u32 {
        let t = f64::from(second);
        // The flood, every second: 20 spoofed requests and 20 bogus replies to the NTP port,
        // 20 bogus replies (random origins, and zero) to the association.
        for i in 0..20u64 {
            let request = packet(Mode::Client, NtpTimestamp::ZERO, t);
            match gate.admit(S, &request, mono(t), &mut rng) {
                Ok(a) => {
                    assert_eq!(a.rate, RateVerdict::Pass);
                    requests_admitted += 1;
                }
                Err(GateDrop::RateLimited) => requests_limited += 1,
                Err(other) => panic!("request dropped for {}", other.as_str()),
            }
            let origin = NtpTimestamp::from_bits(rng.next_u64() | 1);
            let bogus = packet(Mode::Server, origin, t);
            // A reply arriving at the server path is not a request: refused before the
            // limiter, whose state it does not touch.
            assert_eq!(
                gate.admit(S, &bogus, mono(t), &mut rng),
                Err(GateDrop::Access(crate::access::AccessDenied::NotRequest))
            );
            let bogus = if i == 0 {
                packet(Mode::Server, NtpTimestamp::ZERO, t)
            } else {
                bogus
            };
            let parsed = wire::parse(&bogus).unwrap();
            assert!(system
                .handle_reply(id, mono(t), local(t + 0.001), &parsed)
                .is_err());
        }
        // S's real replies go straight to the association (its own socket in the daemon).
        for (_, request) in system.handle_timeout(mono(t), local(t), &mut rng) {
            sent += 1;
            let nonce = wire::parse(&request).unwrap().header.transmit_ts;
            let bytes = packet(Mode::Server, nonce, t);
            let reply = wire::parse(&bytes).unwrap();
            if system
                .handle_reply(id, mono(t), local(t + 0.001_01), &reply)
                .is_ok()
            {
                accepted += 1;
            }
        }
    }
    // The limits were in force: one request per 64 s after a burst of one.
    assert!(requests_admitted <= 1 + 900 / 64 + 1, "{requests_admitted}");
    assert!(requests_limited > 17_000, "{requests_limited}");
    // ...and every real reply of S counted.
    assert!(sent >= 900 / 64, "{sent} requests");
    assert_eq!(accepted, sent);
    let source = system.source(id).unwrap();
    assert_eq!(source.association.reach(), 0xff);
    assert!(system.synchronized());
}
