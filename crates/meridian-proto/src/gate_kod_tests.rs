//! Kisses the gate asks for in answer to symmetric active (mode 1) packets: RSTR to a source
//! whose right does not include peering (within its rate), RATE to a peer over its rate,
//! nothing to a source without any right. The kisses are mode 4 and echo the packet's
//! transmit timestamp, so the active peer's origin check accepts them.

use super::*;
use crate::access::{host_v4, rule, Acl, AclAction};
use crate::entropy::SplitMix64;
use crate::ratelimit::{kiss, rate_kiss};
use crate::time::NtpTimestamp;
use crate::wire::{self, Header, ReferenceId};
use std::net::Ipv4Addr;
use std::time::Duration;

const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SERVED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const STRANGER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);

fn policy() -> AccessPolicy {
    let acl = |a| {
        Some(Acl {
            rules: vec![rule(AclAction::Permit, host_v4(a))],
        })
    };
    AccessPolicy {
        peer: acl(PEER),
        synchronization: acl(SERVED),
        ..AccessPolicy::default()
    }
}

fn mode1(xmt: u64) -> Vec<u8> {
    let mut h = Header::new(Mode::SymmetricActive);
    h.poll = 1;
    h.transmit_ts = NtpTimestamp::from_bits(xmt);
    h.to_bytes().to_vec()
}

fn admit(
    gate: &mut ServerGate,
    from: Ipv4Addr,
    t: f64,
    rng: &mut SplitMix64,
) -> Result<Admitted, GateDrop> {
    gate.admit(IpAddr::V4(from), &mode1(7), Mono::from_seconds(t), rng)
}

#[test]
fn mode1_from_a_source_without_the_peer_right_gets_rstr_within_its_rate() {
    let mut rng = SplitMix64::new(1);
    let limits = RateLimitConfig {
        interval: Duration::from_secs(60),
        burst: 2,
        leak: 0,
        kod: 1,
        table_size: 64,
    };
    let mut gate = ServerGate::new(policy(), Some(limits), &mut rng);
    assert_eq!(
        admit(&mut gate, SERVED, 1.0, &mut rng),
        Err(GateDrop::PeerRestricted(Right::Synchronization))
    );
    assert_eq!(
        admit(&mut gate, SERVED, 1.1, &mut rng)
            .err()
            .map(GateDrop::as_str),
        Some("rstr-kod")
    );
    // Over its rate: no kiss at all (a spoofed flood cannot make us kiss at its pace).
    assert_eq!(
        admit(&mut gate, SERVED, 1.2, &mut rng),
        Err(GateDrop::RateLimited)
    );
    // A stranger gets nothing and costs no rate.
    let before = gate.limiter().unwrap().len();
    assert_eq!(
        admit(&mut gate, STRANGER, 1.3, &mut rng),
        Err(GateDrop::Access(AccessDenied::NoRight))
    );
    assert_eq!(gate.limiter().unwrap().len(), before);
    // Mode 3 from the served source is still served: the RSTR is about peering only.
    let mut req = Header::new(Mode::Client);
    req.transmit_ts = NtpTimestamp::from_bits(9);
    let served = gate.admit(
        IpAddr::V4(SERVED),
        &req.to_bytes(),
        Mono::from_seconds(200.0),
        &mut rng,
    );
    assert_eq!(served.map(|a| a.right), Ok(Right::Synchronization));
}

#[test]
fn rstr_and_rate_kisses_for_mode1_are_mode4_and_echo_the_transmit_timestamp() {
    let packet = mode1(0x1234_5678_9abc_def0);
    for (code, interval) in [
        (ReferenceId::KISS_RSTR, Duration::ZERO),
        (ReferenceId::KISS_RATE, Duration::from_secs(16)),
    ] {
        let mut out = [0u8; 64];
        let n = if code == ReferenceId::KISS_RATE {
            rate_kiss(&packet, interval, &mut out)
        } else {
            kiss(&packet, code, interval, &mut out)
        };
        let n = n.expect("a kiss for mode 1");
        assert!(n <= packet.len());
        let h = wire::parse(&out[..n]).unwrap().header;
        assert_eq!(
            (h.mode, h.stratum, h.kiss_code()),
            (Mode::Server, 0, Some(code))
        );
        assert_eq!(h.origin_ts.to_bits(), 0x1234_5678_9abc_def0);
        if code == ReferenceId::KISS_RATE {
            assert!(h.poll >= 4, "asks for at least the 16 s interval");
        }
    }
}

#[test]
fn a_peer_over_its_rate_gets_rate_kisses_when_kod_is_set() {
    let mut rng = SplitMix64::new(2);
    let limits = RateLimitConfig {
        interval: Duration::from_secs(60),
        burst: 1,
        leak: 0,
        kod: 1,
        table_size: 64,
    };
    let mut gate = ServerGate::new(policy(), Some(limits), &mut rng);
    let first = admit(&mut gate, PEER, 1.0, &mut rng).expect("within its rate");
    assert_eq!((first.right, first.rate), (Right::Peer, RateVerdict::Pass));
    for i in 0..5 {
        let over = admit(&mut gate, PEER, 1.0 + f64::from(i), &mut rng).expect("kissed");
        assert_eq!(over.rate, RateVerdict::Kiss);
    }
}
