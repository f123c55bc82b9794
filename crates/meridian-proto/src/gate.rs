//! The admission gate in front of the server path: cheapest checks first (the mode byte),
//! then the access right of the source, then its rate. Pure: time and randomness come in.
//!
//! A symmetric active (mode 1) packet from a source that holds a right, but one without
//! peering (`server`, `synchronization`, `query`), is refused with an RSTR kiss (RFC 5905
//! section 7.4: access denied by local policy) so that a misconfigured active peer stops
//! instead of polling us for ever; the kiss is charged to the source's rate and not sent
//! over it. Sources without any right get nothing, whatever the mode.

use crate::access::{AccessDenied, AccessPolicy, Right};
use crate::entropy::Entropy;
use crate::ratelimit::{RateLimitConfig, RateLimiter, RateVerdict};
use crate::time::Mono;
use crate::wire::Mode;
use std::net::IpAddr;

/// A request that may go on to [`crate::server::respond`] (or get a kiss).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The right the source was granted.
    pub right: Right,
    /// The request's mode (as sent; the right allows it).
    pub mode: Mode,
    /// Pass or Leak: answer normally. Kiss: answer with a RATE kiss instead.
    pub rate: RateVerdict,
}

/// Why the gate dropped a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateDrop {
    /// Empty datagram.
    Malformed,
    /// Refused by access control (or not a request mode at all).
    Access(AccessDenied),
    /// Over its rate, not leaked, no kiss.
    RateLimited,
    /// A mode 1 packet from a source whose right (the one given) does not allow peering,
    /// within its rate: answer with an RSTR kiss ([`crate::ratelimit::kiss`]).
    PeerRestricted(Right),
}

impl GateDrop {
    /// Counter name of this drop reason.
    pub fn as_str(self) -> &'static str {
        match self {
            GateDrop::Malformed => "malformed",
            GateDrop::Access(a) => a.as_str(),
            GateDrop::RateLimited => "rate-limited",
            GateDrop::PeerRestricted(_) => "rstr-kod",
        }
    }
}

/// Access policy plus rate limiter of one NTP instance.
#[derive(Debug, Clone)]
pub struct ServerGate {
    pub policy: AccessPolicy,
    limiter: Option<RateLimiter>,
}

impl ServerGate {
    /// `rate_limit: None` turns rate limiting off.
    pub fn new(
        policy: AccessPolicy,
        rate_limit: Option<RateLimitConfig>,
        rng: &mut dyn Entropy,
    ) -> Self {
        Self {
            policy,
            limiter: rate_limit.map(|c| RateLimiter::new(c, rng)),
        }
    }

    pub fn limiter(&self) -> Option<&RateLimiter> {
        self.limiter.as_ref()
    }

    /// Decides about a request from `source` (not a reply for one of our own associations:
    /// those never come through here, so they are never rate-limited).
    pub fn admit(
        &mut self,
        source: IpAddr,
        request: &[u8],
        now: Mono,
        rng: &mut dyn Entropy,
    ) -> Result<Admitted, GateDrop> {
        let first = *request.first().ok_or(GateDrop::Malformed)?;
        let mode = Mode::from_bits(first & 7);
        let right = match self.policy.check(source, mode) {
            Ok(right) => right,
            Err(AccessDenied::NotAllowed(right)) if mode == Mode::SymmetricActive => {
                // A source we serve otherwise, asking to peer: RSTR, within its rate.
                return Err(match self.rate(source, now, rng) {
                    RateVerdict::Pass | RateVerdict::Leak => GateDrop::PeerRestricted(right),
                    RateVerdict::Kiss | RateVerdict::Drop => GateDrop::RateLimited,
                });
            }
            Err(denied) => return Err(GateDrop::Access(denied)),
        };
        let rate = self.rate(source, now, rng);
        if rate == RateVerdict::Drop {
            return Err(GateDrop::RateLimited);
        }
        Ok(Admitted { right, mode, rate })
    }

    fn rate(&mut self, source: IpAddr, now: Mono, rng: &mut dyn Entropy) -> RateVerdict {
        match self.limiter.as_mut() {
            Some(l) => l.check(source, now, rng),
            None => RateVerdict::Pass,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{host_v4, rule, Acl, AclAction};
    use crate::entropy::SplitMix64;
    use crate::ratelimit::rate_kiss;
    use crate::server::{respond, ServerState};
    use crate::time::NtpTimestamp;
    use crate::wire::{self, Header};
    use std::net::Ipv4Addr;

    const ALLOWED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const DENIED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn request(version: u8, mode: u8, extra: usize) -> Vec<u8> {
        let mut h = Header::new(Mode::Client);
        h.version = version;
        h.transmit_ts = NtpTimestamp::from_bits(0xdead_beef_0123_4567);
        let mut b = h.to_bytes().to_vec();
        b[0] = (b[0] & !7) | mode;
        b.extend(std::iter::repeat_n(0, extra));
        b
    }

    /// The whole server path as the daemon runs it: gate, then respond or kiss.
    fn serve(
        gate: &mut ServerGate,
        source: Ipv4Addr,
        req: &[u8],
        now: Mono,
        rng: &mut SplitMix64,
    ) -> Option<Vec<u8>> {
        let admitted = gate.admit(IpAddr::V4(source), req, now, rng).ok()?;
        let mut out = [0u8; 1024];
        let rx = NtpTimestamp::from_unix(1_800_000_000, 0);
        let n = match admitted.rate {
            RateVerdict::Kiss => rate_kiss(req, gate.limiter()?.config().interval, &mut out)?,
            _ => respond(
                req,
                rx,
                &ServerState::unsynchronized(-20),
                rng,
                || rx,
                &mut out,
            )
            .ok()?,
        };
        Some(out[..n].to_vec())
    }

    #[test]
    fn version_mode_matrix_replies_only_to_mode_3_and_never_larger() {
        let mut rng = SplitMix64::new(7);
        let policy = AccessPolicy {
            synchronization: Some(Acl {
                rules: vec![rule(AclAction::Permit, host_v4(ALLOWED))],
            }),
            ..AccessPolicy::default()
        };
        // Small limits so that passes, leaks and kisses all occur.
        let limits = RateLimitConfig {
            burst: 2,
            leak: 3,
            kod: 2,
            ..RateLimitConfig::default()
        };
        let mut gate = ServerGate::new(policy, Some(limits), &mut rng);
        let mut kinds = std::collections::HashSet::new();
        for round in 0..20u64 {
            for version in 0..8u8 {
                for mode in 0..8u8 {
                    for extra in [0usize, 20, 24, 68] {
                        let req = request(version, mode, extra);
                        let now = Mono::from_seconds(round as f64 * 0.1);
                        assert_eq!(serve(&mut gate, DENIED, &req, now, &mut rng), None);
                        let Some(reply) = serve(&mut gate, ALLOWED, &req, now, &mut rng) else {
                            continue;
                        };
                        assert_eq!(mode, 3, "reply to version {version} mode {mode}");
                        assert!((1..=4).contains(&version), "reply to version {version}");
                        assert!(reply.len() <= req.len(), "amplification");
                        let h = wire::parse(&reply).unwrap().header;
                        assert_eq!((h.mode, h.version), (Mode::Server, version));
                        kinds.insert(h.is_kiss());
                    }
                }
            }
        }
        assert_eq!(kinds.len(), 2, "both answers and kisses were exercised");
    }

    #[test]
    fn drop_reasons() {
        let mut rng = SplitMix64::new(8);
        let policy = AccessPolicy {
            synchronization: Some(Acl {
                rules: vec![rule(AclAction::Permit, host_v4(ALLOWED))],
            }),
            ..AccessPolicy::default()
        };
        let limits = RateLimitConfig {
            burst: 1,
            leak: 0,
            kod: 0,
            ..RateLimitConfig::default()
        };
        let mut gate = ServerGate::new(policy, Some(limits), &mut rng);
        let a = IpAddr::V4(ALLOWED);
        let d = IpAddr::V4(DENIED);
        let now = Mono::from_seconds(5.0);
        let reason = |r: Result<Admitted, GateDrop>| r.err().map(GateDrop::as_str);
        assert_eq!(reason(gate.admit(a, &[], now, &mut rng)), Some("malformed"));
        assert_eq!(
            reason(gate.admit(a, &request(4, 4, 0), now, &mut rng)),
            Some("not-a-request")
        );
        assert_eq!(
            reason(gate.admit(d, &request(4, 3, 0), now, &mut rng)),
            Some("access-denied")
        );
        assert_eq!(
            reason(gate.admit(a, &request(4, 6, 0), now, &mut rng)),
            Some("access-restricted")
        );
        assert_eq!(
            reason(gate.admit(a, &request(4, 3, 0), now, &mut rng)),
            None
        );
        assert_eq!(
            reason(gate.admit(a, &request(4, 3, 0), now, &mut rng)),
            Some("rate-limited")
        );
        // Refused requests cost no rate: the denied host was never entered in the table.
        assert_eq!(gate.limiter().unwrap().len(), 1);
    }
}

#[cfg(test)]
#[path = "gate_g4_tests.rs"]
mod g4_tests;

#[cfg(test)]
#[path = "gate_kod_tests.rs"]
mod kod_tests;
