//! Unit tests of the client association: request contents, the packet tests and what a
//! rejected reply must leave untouched, kisses, reach and polling.

use super::*;
use crate::entropy::SplitMix64;
use crate::wire::parse;

const PRECISION: i8 = -20;

fn local(secs: f64) -> NtpTimestamp {
    NtpTimestamp::from_unix(1_800_000_000, 0) + NtpDuration::from_seconds(secs)
}

fn mono(secs: f64) -> Mono {
    Mono::from_seconds(1000.0 + secs)
}

fn assoc(iburst: bool) -> (ClientAssociation, SplitMix64) {
    let mut rng = SplitMix64::new(7);
    let config = ClientConfig {
        iburst,
        minpoll: PollInterval::new(4),
        maxpoll: PollInterval::new(8),
        ..Default::default()
    };
    (
        ClientAssociation::new(config, mono(0.0), Duration::ZERO, &mut rng),
        rng,
    )
}

/// A server reply to `request` from a server whose clock is `server_ahead` seconds ahead,
/// received `delay` seconds after T1 = `t1` (local seconds).
fn reply_to(request: &[u8], t1: f64, server_ahead: f64, delay: f64) -> (Header, NtpTimestamp) {
    let req = parse(request).unwrap().header;
    let mut h = Header::new(Mode::Server);
    h.leap = Leap::None;
    h.stratum = 2;
    h.precision = -20;
    h.reference_id = ReferenceId([198, 18, 0, 1]);
    h.reference_ts = local(t1 + server_ahead - 10.0);
    h.origin_ts = req.transmit_ts;
    h.receive_ts = local(t1 + server_ahead + delay / 2.0);
    h.transmit_ts = local(t1 + server_ahead + delay / 2.0 + 0.0001);
    (h, local(t1 + delay + 0.0001))
}

/// attacks.md C4: client requests reveal no clock or state, and the transmit timestamp is a fresh
/// random nonce.
#[test]
fn requests_reveal_nothing_and_use_fresh_nonces() {
    let (mut a, mut rng) = assoc(false);
    let mut nonces = std::collections::HashSet::new();
    let mut now = mono(0.0);
    for _ in 0..200 {
        let bytes = a
            .handle_timeout(now, local(now.as_seconds()), &mut rng)
            .expect("due");
        let h = parse(&bytes).unwrap().header;
        assert_eq!(
            (h.mode, h.version, h.stratum, h.poll, h.precision),
            (Mode::Client, 4, 0, 0, 0)
        );
        assert_eq!(h.reference_id, ReferenceId::NONE);
        assert!(h.origin_ts.is_zero() && h.receive_ts.is_zero() && h.reference_ts.is_zero());
        assert!(nonces.insert(h.transmit_ts.to_bits()), "nonce repeated");
        let t = h.transmit_ts - local(now.as_seconds());
        assert!(
            t.abs().to_seconds() > 1.0,
            "transmit timestamp must not be the local time"
        );
        now = a.poll_timeout().unwrap();
    }
}

#[test]
fn good_reply_gives_offset_and_delay() {
    let (mut a, mut rng) = assoc(false);
    let req = a.handle_timeout(mono(0.0), local(0.0), &mut rng).unwrap();
    let (h, t4) = reply_to(&req, 0.0, 0.25, 0.002);
    match a.handle_packet(mono(0.002), t4, &h, PRECISION).unwrap() {
        Reply::Sample(m) => {
            assert!((m.offset - 0.25).abs() < 1e-6, "offset {}", m.offset);
            assert!((m.delay - 0.002).abs() < 1e-6, "delay {}", m.delay);
            assert!(m.dispersion > 0.0 && m.dispersion < 1e-4);
            assert_eq!(m.peer.stratum, 2);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(a.reach(), 1);
}

/// attacks.md C1, C2 (b, c): 1000 replies with a wrong or zero origin are rejected and change no
/// state; the real reply still counts.
#[test]
fn bogus_origin_changes_nothing_and_real_reply_still_counts() {
    let (mut a, mut rng) = assoc(false);
    let req = a.handle_timeout(mono(0.0), local(0.0), &mut rng).unwrap();
    let (good, t4) = reply_to(&req, 0.0, 0.1, 0.002);
    let before = (
        a.poll_timeout(),
        a.reach(),
        a.poll(),
        a.expected_origin,
        a.peer,
        a.times,
    );

    let mut spoof = good;
    spoof.origin_ts = NtpTimestamp::from_bits(good.origin_ts.to_bits() ^ 1);
    let mut zero = good;
    zero.origin_ts = NtpTimestamp::ZERO;
    for forged in [spoof, zero] {
        for _ in 0..1000 {
            let err = a
                .handle_packet(mono(0.001), t4, &forged, PRECISION)
                .unwrap_err();
            assert!(!err.genuine());
        }
        assert_eq!(
            before,
            (
                a.poll_timeout(),
                a.reach(),
                a.poll(),
                a.expected_origin,
                a.peer,
                a.times
            )
        );
    }
    assert_eq!(a.stats().rejected, 2000);
    assert!(matches!(
        a.handle_packet(mono(0.002), t4, &good, PRECISION),
        Ok(Reply::Sample(_))
    ));
}

/// attacks.md C2 (a): with no request outstanding (before the first one, and once the reply to
/// the last one was accepted) a reply with a zero origin is rejected and changes no state:
/// not the poll timer, reach, poll, expected origin, peer variables or timestamps.
#[test]
fn c2_zero_origin_rejected_without_state_change() {
    let (mut a, mut rng) = assoc(false);
    let snapshot = |a: &ClientAssociation| {
        (
            a.poll_timeout(),
            a.reach(),
            a.poll(),
            a.expected_origin,
            a.peer,
            a.times,
        )
    };
    // A well-formed server reply whose origin is zero (as if answering a request with a
    // zero transmit timestamp).
    let mut unsent = [0u8; 48];
    unsent[0] = 0x23;
    let (zero, t4) = reply_to(&unsent, 0.0, 0.1, 0.002);
    assert!(zero.origin_ts.is_zero());

    let before = snapshot(&a);
    for k in 0..100 {
        let mut forged = zero;
        forged.transmit_ts = local(0.1 + f64::from(k) * 0.001);
        let err = a
            .handle_packet(mono(0.001), t4, &forged, PRECISION)
            .unwrap_err();
        assert!(!err.genuine(), "zero origin before any request: {err:?}");
    }
    assert_eq!(before, snapshot(&a), "state changed before any request");

    let req = a.handle_timeout(mono(0.0), local(0.0), &mut rng).unwrap();
    let (good, t4) = reply_to(&req, 0.0, 0.1, 0.002);
    assert!(matches!(
        a.handle_packet(mono(0.002), t4, &good, PRECISION),
        Ok(Reply::Sample(_))
    ));
    let answered = snapshot(&a);
    for k in 0..100 {
        let mut forged = good;
        forged.origin_ts = NtpTimestamp::ZERO;
        forged.transmit_ts = local(0.2 + f64::from(k) * 0.001);
        let err = a
            .handle_packet(mono(0.003), t4, &forged, PRECISION)
            .unwrap_err();
        assert!(!err.genuine(), "zero origin after the reply: {err:?}");
    }
    assert_eq!(answered, snapshot(&a), "state changed after the reply");

    // The next exchange is untouched.
    let t = a.poll_timeout().unwrap();
    let t1 = t.as_seconds() - 1000.0;
    let req2 = a.handle_timeout(t, local(t1), &mut rng).unwrap();
    let (good2, t4b) = reply_to(&req2, t1, 0.1, 0.002);
    assert!(matches!(
        a.handle_packet(t, t4b, &good2, PRECISION),
        Ok(Reply::Sample(_))
    ));
    assert_eq!(a.reach(), 0b11);
}

/// attacks.md C3: a duplicate of the accepted reply and a late reply to an older request are
/// rejected.
#[test]
fn duplicate_and_unsolicited_replies_are_rejected() {
    let (mut a, mut rng) = assoc(false);
    let req = a.handle_timeout(mono(0.0), local(0.0), &mut rng).unwrap();
    let (good, t4) = reply_to(&req, 0.0, 0.1, 0.002);
    assert!(a.handle_packet(mono(0.002), t4, &good, PRECISION).is_ok());
    let dup = a
        .handle_packet(mono(0.003), t4, &good, PRECISION)
        .unwrap_err();
    assert!(dup.duplicate || dup.bogus_origin);
    assert_eq!(a.reach(), 1);

    // A reply to an old request arriving after a newer request went out.
    let t = a.poll_timeout().unwrap();
    let req2 = a
        .handle_timeout(t, local(t.as_seconds() - 1000.0), &mut rng)
        .unwrap();
    let mut late = good;
    late.transmit_ts = local(5.0);
    assert!(
        a.handle_packet(t, t4, &late, PRECISION)
            .unwrap_err()
            .bogus_origin
    );
    let (good2, t4b) = reply_to(&req2, t.as_seconds() - 1000.0, 0.1, 0.002);
    assert!(matches!(
        a.handle_packet(t, t4b, &good2, PRECISION),
        Ok(Reply::Sample(_))
    ));
}

#[test]
fn server_mode_only() {
    let (mut a, mut rng) = assoc(false);
    let req = a.handle_timeout(mono(0.0), local(0.0), &mut rng).unwrap();
    let (mut h, t4) = reply_to(&req, 0.0, 0.1, 0.002);
    for mode in [
        Mode::Client,
        Mode::SymmetricActive,
        Mode::SymmetricPassive,
        Mode::Broadcast,
    ] {
        h.mode = mode;
        assert!(a.handle_packet(mono(0.002), t4, &h, PRECISION).is_err());
    }
    assert_eq!(a.reach(), 0);
}

#[test]
fn unsynchronized_server_is_reachable_but_unusable() {
    let (mut a, mut rng) = assoc(false);
    let req = a.handle_timeout(mono(0.0), local(0.0), &mut rng).unwrap();
    let (mut h, t4) = reply_to(&req, 0.0, 0.1, 0.002);
    h.leap = Leap::Unsynchronized;
    h.stratum = 16;
    match a.handle_packet(mono(0.002), t4, &h, PRECISION).unwrap() {
        Reply::Unusable(c) => assert!(c.unsynchronized),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.reach(), 1);
    assert_eq!(a.peer().unwrap().stratum, 16);
}

/// attacks.md C6: a RATE kiss needs a valid origin, and lengthens the poll only up to maxpoll.
#[test]
fn kiss_rate_needs_valid_origin_and_is_bounded() {
    let (mut a, mut rng) = assoc(false);
    let req = a.handle_timeout(mono(0.0), local(0.0), &mut rng).unwrap();
    let (mut kiss, t4) = reply_to(&req, 0.0, 0.1, 0.002);
    kiss.leap = Leap::Unsynchronized;
    kiss.stratum = 0;
    kiss.reference_id = ReferenceId::KISS_RATE;
    kiss.poll = 17;
    let mut spoof = kiss;
    spoof.origin_ts = NtpTimestamp::from_bits(1);
    let poll_before = a.poll();
    assert!(a.handle_packet(mono(0.002), t4, &spoof, PRECISION).is_err());
    assert_eq!(a.poll(), poll_before);
    let next_before = a.poll_timeout();

    assert_eq!(
        a.handle_packet(mono(0.002), t4, &kiss, PRECISION).unwrap(),
        Reply::Kiss(ReferenceId::KISS_RATE)
    );
    assert!(a.poll() > poll_before);
    assert!(a.poll() <= a.config().maxpoll, "capped at maxpoll");
    assert_eq!(
        a.poll_timeout(),
        next_before,
        "a kiss never causes an early retransmission"
    );
    assert_eq!(a.reach(), 0, "a kiss is not a sample");
}

/// attacks.md C6: a DENY kiss with a valid origin stops the association; it is never a sample.
#[test]
fn kiss_deny_stops_the_association() {
    let (mut a, mut rng) = assoc(false);
    let req = a.handle_timeout(mono(0.0), local(0.0), &mut rng).unwrap();
    let (mut kiss, t4) = reply_to(&req, 0.0, 0.1, 0.002);
    kiss.stratum = 0;
    kiss.reference_id = ReferenceId::KISS_DENY;
    a.handle_packet(mono(0.002), t4, &kiss, PRECISION).unwrap();
    assert_eq!(a.denied(), Some(ReferenceId::KISS_DENY));
    assert_eq!(a.poll_timeout(), None);
    assert!(a
        .handle_timeout(mono(100_000.0), local(0.0), &mut rng)
        .is_none());
}

#[test]
fn iburst_then_regular_polling() {
    let (mut a, mut rng) = assoc(true);
    let mut times = vec![];
    let mut now = mono(0.0);
    for _ in 0..6 {
        a.handle_timeout(now, local(0.0), &mut rng).unwrap();
        times.push(now.as_seconds());
        now = a.poll_timeout().unwrap();
    }
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for g in &gaps[..3] {
        assert!((g - 2.0).abs() < 1e-9, "burst spacing {gaps:?}");
    }
    assert!(
        gaps[3] > 14.0 && gaps[3] <= 16.0,
        "then minpoll 2^4 {gaps:?}"
    );
}

#[test]
fn unreachable_server_backs_off_and_reach_decays() {
    let (mut a, mut rng) = assoc(false);
    let req = a.handle_timeout(mono(0.0), local(0.0), &mut rng).unwrap();
    let (h, t4) = reply_to(&req, 0.0, 0.1, 0.002);
    a.handle_packet(mono(0.002), t4, &h, PRECISION).unwrap();
    assert_eq!(a.reach(), 1);
    let mut now = a.poll_timeout().unwrap();
    for _ in 0..8 {
        a.handle_timeout(now, local(0.0), &mut rng).unwrap();
        now = a.poll_timeout().unwrap();
    }
    assert_eq!(a.reach(), 0, "eight unanswered polls clear the register");
    for _ in 0..8 {
        a.handle_timeout(now, local(0.0), &mut rng).unwrap();
        now = a.poll_timeout().unwrap();
    }
    assert_eq!(a.poll(), a.config().maxpoll, "backed off to maxpoll");
}

#[test]
fn step_moves_the_remembered_send_time() {
    let (mut a, mut rng) = assoc(false);
    let req = a.handle_timeout(mono(0.0), local(0.0), &mut rng).unwrap();
    // The clock is stepped forward by 2 s while the request is in flight.
    a.apply_step(2.0);
    let (mut h, _) = reply_to(&req, 0.0, 0.0, 0.002);
    h.receive_ts = local(2.001);
    h.transmit_ts = local(2.0011);
    let t4 = local(2.0021);
    match a.handle_packet(mono(0.002), t4, &h, PRECISION).unwrap() {
        Reply::Sample(m) => assert!(m.offset.abs() < 1e-5, "offset {}", m.offset),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unreachable_iburst_server_gets_one_burst_per_poll_not_a_flood() {
    let (mut a, mut rng) = assoc(true);
    let mut now = mono(0.0);
    let mut sent = 0;
    // A silent server for a simulated day.
    while now < mono(86_400.0) {
        if a.handle_timeout(now, local(now.as_seconds()), &mut rng)
            .is_some()
        {
            sent += 1;
        }
        now = a.poll_timeout().unwrap();
    }
    // With iburst, single requests backed off to maxpoll / 4: the packet rate of one burst
    // per maxpoll.
    assert_eq!(a.poll(), PollInterval::new(6), "backed off to maxpoll - 2");
    // maxpoll 2^8 s: about 338 polls a day, at most IBURST_COUNT requests each.
    let limit = IBURST_COUNT as u64 * (86_400 / 256 + 8 * 2);
    assert!(
        sent <= limit,
        "{sent} requests in a day to a silent server (limit {limit})"
    );
    assert!(sent >= 86_400 / 256, "still polling: {sent}");
}

/// Drives `a` against a server that answers every request while `up(now)` holds, from
/// `from` to `to` (seconds); returns the send times.
fn drive(
    a: &mut ClientAssociation,
    rng: &mut SplitMix64,
    from: f64,
    to: f64,
    up: impl Fn(f64) -> bool,
) -> Vec<f64> {
    let mut sent = vec![];
    let mut now = mono(from).max(a.poll_timeout().unwrap());
    while now < mono(to) {
        let t = now.as_seconds() - 1000.0;
        if let Some(req) = a.handle_timeout(now, local(t), rng) {
            sent.push(t);
            if up(t) {
                let (h, t4) = reply_to(&req, t, 0.0, 0.002);
                let rx = now + Duration::from_millis(2);
                a.handle_packet(rx, t4, &h, PRECISION).unwrap();
            }
        }
        now = a.poll_timeout().unwrap();
    }
    sent
}

/// A server silent for a day, then back: the association polls it at minpoll again right
/// after its first reply (not at the backed-off interval), never faster than minpoll apart
/// from one burst, and then follows the system's poll.
#[test]
fn poll_restarts_at_minpoll_when_an_unreachable_server_answers_again() {
    for iburst in [false, true] {
        let (mut a, mut rng) = assoc(iburst);
        // Up for the first 100 s, then silent for a day, then up again.
        let back = 86_400.0;
        let up = |t: f64| !(100.0..back).contains(&t);
        a.set_system_poll(PollInterval::new(8));
        drive(&mut a, &mut rng, 0.0, back, up);
        assert_eq!(a.reach(), 0, "unreachable after a day");
        assert!(a.poll() > a.config().minpoll, "backed off: {:?}", a.poll());
        let sent = drive(&mut a, &mut rng, back, back + 600.0, up);
        assert!(a.reach() != 0, "reachable again");
        // The first request after `back` is the one answered; then a burst (iburst) and
        // polls at minpoll (2^4 s): the system poll was 2^8 s before the outage.
        let first = sent[0];
        let burst = sent
            .windows(2)
            .filter(|w| w[1] - w[0] < 15.0 - 1e-9)
            .count();
        let want_burst = if iburst { IBURST_COUNT as usize - 1 } else { 0 };
        assert_eq!(
            burst, want_burst,
            "iburst {iburst}: one burst at most {sent:?}"
        );
        let polls_in_5_min = sent.iter().filter(|&&t| t < first + 300.0).count();
        assert!(
            polls_in_5_min >= 300 / 16 - 1,
            "iburst {iburst}: {polls_in_5_min} requests in 5 min after recovery: {sent:?}"
        );
        assert_eq!(a.poll(), a.config().minpoll, "iburst {iburst}");
        // The system lengthens the poll again: the association follows it at its next poll.
        a.set_system_poll(PollInterval::new(7));
        let later = drive(&mut a, &mut rng, back + 600.0, back + 2000.0, up);
        assert_eq!(a.poll(), PollInterval::new(7), "iburst {iburst}: {later:?}");
    }
}

/// The restart never goes below minpoll, and repeated outages give one burst per recovery
/// and no more: over ten days of a network up 30 minutes a day, the requests stay within
/// the polls at minpoll during the windows, a burst per window, and the backed-off polls.
#[test]
fn recoveries_never_poll_below_minpoll_nor_storm() {
    for iburst in [false, true] {
        let (mut a, mut rng) = assoc(iburst);
        let up = |t: f64| t % 86_400.0 < 1800.0;
        let sent = drive(&mut a, &mut rng, 0.0, 10.0 * 86_400.0, up);
        let short = sent
            .windows(2)
            .filter(|w| w[1] - w[0] < 15.0 - 1e-9)
            .count();
        let bursts = if iburst {
            (IBURST_COUNT as usize - 1) * 10
        } else {
            0
        };
        assert!(
            short <= bursts,
            "iburst {iburst}: {short} gaps below minpoll"
        );
        // Per day: 1800 s at minpoll 2^4 s, plus a burst, plus a day of backed-off polls
        // (at least 2^6 s apart).
        let limit = 10 * (1800 / 15 + IBURST_COUNT as usize + 86_400 / 60);
        assert!(
            sent.len() <= limit,
            "iburst {iburst}: {} requests",
            sent.len()
        );
        // And the windows are used: most of a window's requests are answered at minpoll.
        let in_windows = sent.iter().filter(|&&t| up(t)).count();
        assert!(
            in_windows >= 10 * 1800 / 16 / 2,
            "iburst {iburst}: {in_windows}"
        );
    }
}
