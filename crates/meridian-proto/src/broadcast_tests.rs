//! Tests of the broadcast/multicast modes: the server's timer and packets, who may create a
//! client association, the delay volley, mode 5 samples, replays, forgeries that must change
//! nothing (attack guide B1-B4), expiry, and the guide's authentication result table row by
//! row.

use super::*;
use crate::broadcast_system::BroadcastRefusal;
use crate::entropy::SplitMix64;
use crate::keys::Algorithm;
use crate::system::{SourceId, System, SystemConfig};
use crate::wire::{self, ReferenceId, HEADER_LEN};

fn base() -> NtpTimestamp {
    NtpTimestamp::from_unix(1_800_000_000, 0)
}

fn at(secs: f64) -> NtpTimestamp {
    base() + NtpDuration::from_seconds(secs)
}

fn mono(secs: f64) -> Mono {
    Mono::from_seconds(secs)
}

fn key(id: u32, trusted: bool) -> Key {
    Key::new(KeyId(id), Algorithm::Md5, b"BetterKey", trusted).unwrap()
}

fn table(keys: &[Key]) -> KeyTable {
    let mut t = KeyTable::new();
    for k in keys {
        t.insert(*k).unwrap();
    }
    t
}

fn synced_state() -> ServerState {
    ServerState {
        leap: Leap::None,
        stratum: 2,
        precision: -20,
        poll: 4,
        root_delay: NtpDuration::from_seconds(0.001),
        root_dispersion: NtpDuration::from_seconds(0.001),
        reference_id: ReferenceId::LOCL,
        reference_ts: base(),
    }
}

fn server(poll: i8, key: Option<Key>) -> BroadcastServer {
    let config = BroadcastServerConfig {
        version: 4,
        poll: PollInterval::new(poll),
        key,
    };
    BroadcastServer::new(config, mono(0.0), &mut SplitMix64::new(1))
}

/// The mode 5 packet a server with `key` sends at server time `xmt` (poll 4).
fn mode5(xmt: f64, key: Option<Key>) -> Vec<u8> {
    let mut s = server(4, key);
    let mut rng = SplitMix64::new(xmt.to_bits());
    s.handle_timeout(mono(5.0), at(xmt), &synced_state(), &mut rng)
        .expect("due")
        .to_vec()
}

fn system() -> System {
    System::new(SystemConfig::for_tests())
}

fn create(sys: &mut System, bytes: &[u8], keys: &KeyTable, auth: bool, now: f64) -> SourceId {
    let p = wire::parse(bytes).unwrap();
    sys.accept_broadcast(&p, keys, auth, ReferenceId::NONE, false, mono(now))
        .expect("created")
}

fn bclient(sys: &System, id: SourceId) -> &BroadcastClient {
    sys.source(id).unwrap().association.as_broadcast().unwrap()
}

/// Answers a volley request as a server whose clock is `offset` ahead, `one_way` away.
fn answer(request: &[u8], t1_true: f64, one_way: f64, offset: f64, key: Option<&Key>) -> Vec<u8> {
    let req = wire::parse(request).unwrap().header;
    let mut h = Header::new(Mode::Server);
    h.leap = Leap::None;
    h.stratum = 2;
    h.precision = -20;
    h.reference_id = ReferenceId::LOCL;
    h.reference_ts = base();
    h.origin_ts = req.transmit_ts;
    h.receive_ts = at(t1_true + one_way + offset);
    h.transmit_ts = at(t1_true + one_way + offset + 0.0001);
    let mut buf = [0u8; 80];
    buf[..HEADER_LEN].copy_from_slice(&h.to_bytes());
    let len = key.map_or(HEADER_LEN, |k| {
        auth::append_mac(k, &mut buf, HEADER_LEN).unwrap()
    });
    buf[..len].to_vec()
}

/// Runs the volley: the client's clock is true time; the server `offset` ahead, `one_way`
/// away each direction. Starts at true time `start`; returns the time after it.
fn calibrate(
    sys: &mut System,
    id: SourceId,
    start: f64,
    one_way: f64,
    offset: f64,
    key: Option<&Key>,
) -> f64 {
    let mut rng = SplitMix64::new(9);
    let mut t = start;
    for _ in 0..CALIBRATION_REPLIES {
        let out = sys.handle_timeout(mono(t), at(t), &mut rng);
        let (_, req) = out.into_iter().find(|(i, _)| *i == id).expect("a request");
        let reply = answer(&req, t, one_way, offset, key);
        let p = wire::parse(&reply).unwrap();
        let rx = t + 2.0 * one_way + 0.0001;
        sys.handle_reply(id, mono(rx), at(rx), &p)
            .expect("reply accepted");
        t += CALIBRATION_SPACING.as_secs_f64();
    }
    assert_eq!(bclient(sys, id).phase(), Phase::Listening);
    t
}

#[test]
/// attacks.md B6: the broadcast server sends only while synchronized.
fn server_sends_every_interval_only_while_synchronized() {
    let mut s = server(4, None);
    let mut rng = SplitMix64::new(2);
    let first = s.poll_timeout();
    assert!(first <= mono(1.0), "first packet within a second");
    assert!(
        s.handle_timeout(mono(0.0), at(0.0), &synced_state(), &mut rng)
            .is_none()
            || first == mono(0.0)
    );
    let p = s
        .handle_timeout(mono(1.0), at(1.0), &synced_state(), &mut rng)
        .expect("due");
    let h = wire::parse(&p).unwrap().header;
    assert_eq!(
        (h.mode, h.stratum, h.poll, h.version),
        (Mode::Broadcast, 2, 4, 4)
    );
    assert!(h.origin_ts.is_zero() && h.receive_ts.is_zero());
    assert!((h.transmit_ts - at(1.0)).to_seconds().abs() < 1e-5);
    assert_eq!(p.len(), HEADER_LEN, "no key, no MAC");
    assert_eq!(s.poll_timeout(), mono(17.0), "next one 16 s later");
    assert!(s
        .handle_timeout(mono(16.9), at(16.9), &synced_state(), &mut rng)
        .is_none());
    // Unsynchronized: the interval passes without a packet.
    let unsync = ServerState::unsynchronized(-20);
    assert!(s
        .handle_timeout(mono(17.0), at(17.0), &unsync, &mut rng)
        .is_none());
    assert_eq!((s.sent(), s.skipped()), (1, 1));
    assert_eq!(s.poll_timeout(), mono(33.0));
    assert!(s
        .handle_timeout(mono(33.0), at(33.0), &synced_state(), &mut rng)
        .is_some());
}

#[test]
/// attacks.md B6: the broadcast server signs with its configured key.
fn server_signs_with_its_key() {
    let k = key(4, true);
    let p = mode5(10.0, Some(k));
    let parsed = wire::parse(&p).unwrap();
    assert_eq!(
        auth::verify(&table(&[k]), parsed.authenticated, parsed.mac),
        AuthResult::Ok(KeyId(4))
    );
}

#[test]
/// attacks.md B5: a new association calibrates before it uses broadcasts.
fn first_packet_creates_a_dynamic_association_that_calibrates_first() {
    let mut sys = system();
    let id = create(
        &mut sys,
        &mode5(100.0, None),
        &KeyTable::new(),
        false,
        100.0,
    );
    assert_eq!(sys.dynamic_count(), 1);
    let a = &sys.source(id).unwrap().association;
    assert!(!a.configured());
    assert_eq!(a.local_mode_name(), "bclient");
    assert_eq!(bclient(&sys, id).phase(), Phase::Calibrating);
    // The first poll sends a mode 3 request to the server.
    let mut rng = SplitMix64::new(3);
    let out = sys.handle_timeout(mono(100.0), at(100.0), &mut rng);
    assert_eq!(out.len(), 1);
    let req = wire::parse(&out[0].1).unwrap().header;
    assert_eq!(req.mode, Mode::Client);
    // Mode 5 packets before the delay is known give no sample.
    let p = mode5(116.0, None);
    let adj = sys
        .handle_reply(id, mono(116.0), at(116.0), &wire::parse(&p).unwrap())
        .unwrap();
    assert_eq!(adj, crate::discipline::ClockAdjustment::None);
    assert!(sys.source(id).unwrap().last_measurement().is_none());
}

#[test]
/// attacks.md B5: the calibration volley measures the delay.
fn volley_measures_delay_then_mode5_gives_offset_with_it() {
    let mut sys = system();
    let id = create(&mut sys, &mode5(0.0, None), &KeyTable::new(), false, 0.0);
    // Server 0.25 s ahead, 3 ms each way.
    let t = calibrate(&mut sys, id, 0.0, 0.003, 0.25, None);
    let delay = bclient(&sys, id).delay().unwrap();
    assert!((delay - 0.006).abs() < 1e-3, "{delay}");
    // A broadcast sent at server time T3 = true + 0.25 arrives 3 ms later.
    let t_send = t + 20.0;
    let p = mode5(t_send + 0.25, None);
    let rx = t_send + 0.003;
    sys.handle_reply(id, mono(rx), at(rx), &wire::parse(&p).unwrap())
        .unwrap();
    let m = sys.source(id).unwrap().last_measurement().unwrap();
    assert!((m.offset - 0.25).abs() < 1e-3, "offset {}", m.offset);
    assert!((m.delay - delay).abs() < 1e-9);
}

#[test]
/// attacks.md B2: replays of the same or an older broadcast are rejected.
fn replays_of_the_same_or_an_older_packet_are_rejected() {
    let mut sys = system();
    let id = create(&mut sys, &mode5(0.0, None), &KeyTable::new(), false, 0.0);
    let t = calibrate(&mut sys, id, 0.0, 0.001, 0.0, None);
    let p1 = mode5(t + 16.0, None);
    let p2 = mode5(t + 32.0, None);
    let feed = |sys: &mut System, p: &[u8], when: f64| {
        sys.handle_reply(id, mono(when), at(when), &wire::parse(p).unwrap())
    };
    feed(&mut sys, &p1, t + 16.0).unwrap();
    feed(&mut sys, &p2, t + 32.0).unwrap();
    let before = bclient(&sys, id).stats();
    assert_eq!(
        feed(&mut sys, &p2, t + 48.0),
        Err("duplicate"),
        "same packet"
    );
    assert_eq!(feed(&mut sys, &p1, t + 64.0), Err("duplicate"), "older");
    let after = bclient(&sys, id).stats();
    assert_eq!(after.received, before.received);
    assert_eq!(after.rejected, before.rejected + 2);
    // The next genuine packet is still accepted.
    feed(&mut sys, &mode5(t + 48.0, None), t + 48.0).unwrap();
}

#[test]
/// attacks.md B1, B3: unsigned or badly signed broadcasts are ignored and change nothing.
fn keyed_association_ignores_packets_without_a_valid_mac() {
    let k = key(4, true);
    let keys = table(&[k]);
    let mut sys = system();
    let id = create(&mut sys, &mode5(0.0, Some(k)), &keys, true, 0.0);
    assert_eq!(bclient(&sys, id).auth_status(), "ok");
    let t = calibrate(&mut sys, id, 0.0, 0.001, 0.0, Some(&k));
    let feed = |sys: &mut System, p: &[u8], when: f64| {
        sys.handle_reply(id, mono(when), at(when), &wire::parse(p).unwrap())
    };
    // No MAC, a wrong key, a flipped digest bit.
    let other = Key::new(KeyId(4), Algorithm::Md5, b"WrongKey", true).unwrap();
    let mut flipped = mode5(t + 16.0, Some(k));
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    for bad in [
        mode5(t + 16.0, None),
        mode5(t + 16.0, Some(other)),
        mode5(t + 16.0, Some(key(5, true))),
        flipped,
    ] {
        assert_eq!(feed(&mut sys, &bad, t + 16.0), Err("authentication"));
    }
    assert_eq!(
        bclient(&sys, id).auth_status(),
        "ok",
        "forgeries change nothing"
    );
    feed(&mut sys, &mode5(t + 16.0, Some(k)), t + 16.0).unwrap();
    assert!(sys.source(id).unwrap().last_measurement().is_some());
}

/// B4: a forged packet far in the future with poll 17 must not make real ones look like
/// replays or too early; B3: nor tear the association down.
#[test]
/// attacks.md B3, B4.
fn forged_packets_poison_neither_replay_nor_interval_state() {
    let k = key(4, true);
    let keys = table(&[k]);
    let mut sys = system();
    let id = create(&mut sys, &mode5(0.0, Some(k)), &keys, true, 0.0);
    let t = calibrate(&mut sys, id, 0.0, 0.001, 0.0, Some(&k));
    let mut forged = wire::parse(&mode5(t + 86_400.0, None)).unwrap().header;
    forged.poll = 17;
    let forged = forged.to_bytes();
    let reach = bclient(&sys, id).reach();
    for i in 0..50 {
        let when = t + 1.0 + i as f64 * 0.1;
        assert!(sys
            .handle_reply(id, mono(when), at(when), &wire::parse(&forged).unwrap())
            .is_err());
    }
    assert_eq!(bclient(&sys, id).reach(), reach);
    assert_eq!(bclient(&sys, id).phase(), Phase::Listening);
    let when = t + 16.0;
    sys.handle_reply(
        id,
        mono(when),
        at(when),
        &wire::parse(&mode5(when, Some(k))).unwrap(),
    )
    .expect("the real packet is accepted");
    // Bad packets keep coming for an hour, one per interval: the association stays, and
    // only genuine packets keep it alive.
    let mut now = when;
    for _ in 0..225 {
        now += 16.0;
        let _ = sys.handle_reply(id, mono(now), at(now), &wire::parse(&forged).unwrap());
        sys.handle_reply(
            id,
            mono(now + 0.5),
            at(now + 0.5),
            &wire::parse(&mode5(now + 0.5, Some(k))).unwrap(),
        )
        .unwrap();
        assert!(sys.expire_dynamic(mono(now + 1.0)).is_empty());
    }
    assert!(sys.source(id).is_some());
}

#[test]
/// attacks.md B2: broadcasts earlier than the announced interval allows are rejected.
fn packets_sooner_than_half_the_interval_are_rejected() {
    let mut sys = system();
    let id = create(&mut sys, &mode5(0.0, None), &KeyTable::new(), false, 0.0);
    let t = calibrate(&mut sys, id, 0.0, 0.001, 0.0, None);
    let feed = |sys: &mut System, xmt: f64, when: f64| {
        sys.handle_reply(
            id,
            mono(when),
            at(when),
            &wire::parse(&mode5(xmt, None)).unwrap(),
        )
    };
    feed(&mut sys, t + 16.0, t + 16.0).unwrap();
    assert!(
        feed(&mut sys, t + 17.0, t + 17.0).is_err(),
        "1 s after the last"
    );
    assert_eq!(bclient(&sys, id).stats().last_rejection, Some("too-early"));
    feed(&mut sys, t + 32.0, t + 32.0).expect("the next one in rhythm");
}

#[test]
/// attacks.md S3: an idle dynamic broadcast association frees its slot.
fn silent_association_expires_and_frees_its_dynamic_slot() {
    let mut sys = system();
    sys.set_max_dynamic(1);
    let id = create(&mut sys, &mode5(0.0, None), &KeyTable::new(), false, 0.0);
    let second = mode5(1.0, None);
    let p = wire::parse(&second).unwrap();
    assert_eq!(
        sys.accept_broadcast(
            &p,
            &KeyTable::new(),
            false,
            ReferenceId::NONE,
            false,
            mono(1.0)
        ),
        Err(BroadcastRefusal::DynamicLimit)
    );
    // Bad packets do not keep it alive.
    for i in 0..100 {
        let when = 10.0 + i as f64 * 7.0;
        let _ = sys.handle_reply(
            id,
            mono(when),
            at(when),
            &wire::parse(&mode5(0.0, None)).unwrap(),
        );
    }
    assert!(sys.expire_dynamic(mono(700.0)).is_empty());
    assert_eq!(sys.expire_dynamic(mono(721.0)), vec![id]);
    assert_eq!(sys.dynamic_count(), 0);
    assert!(sys
        .accept_broadcast(
            &p,
            &KeyTable::new(),
            false,
            ReferenceId::NONE,
            false,
            mono(722.0)
        )
        .is_ok());
}

#[test]
/// attacks.md B1: who may create a broadcast association, and who may not.
fn creation_refusals() {
    let mut sys = system();
    let none = KeyTable::new();
    let accept = |sys: &mut System, bytes: &[u8], keys: &KeyTable, auth: bool| {
        let p = wire::parse(bytes).unwrap();
        sys.accept_broadcast(&p, keys, auth, ReferenceId::NONE, true, mono(0.0))
    };
    let mut client = wire::parse(&mode5(1.0, None)).unwrap().header;
    client.mode = Mode::Client;
    assert_eq!(
        accept(&mut sys, &client.to_bytes(), &none, false),
        Err(BroadcastRefusal::NotBroadcast)
    );
    let mut unsync = wire::parse(&mode5(1.0, None)).unwrap().header;
    unsync.leap = Leap::Unsynchronized;
    assert_eq!(
        accept(&mut sys, &unsync.to_bytes(), &none, false),
        Err(BroadcastRefusal::Unsynchronized)
    );
    let mut nak = mode5(1.0, None);
    nak.extend([0, 0, 0, 0]);
    assert_eq!(
        accept(&mut sys, &nak, &none, false),
        Err(BroadcastRefusal::UnexpectedMac)
    );
    assert!(matches!(
        accept(&mut sys, &nak, &table(&[key(4, true)]), true),
        Err(BroadcastRefusal::NotAuthenticated(AuthResult::CryptoNak))
    ));
    assert_eq!(sys.sources().count(), 0);
    let id = accept(&mut sys, &mode5(1.0, None), &none, false).unwrap();
    assert_eq!(
        sys.source(id).unwrap().association.local_mode_name(),
        "mclient"
    );
}

/// Outcome of one configuration of the guide's broadcast/multicast authentication table.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
    NoAuthentication,
}

/// Server: auth enabled, key configured and trusted, key associated with the server;
/// client: auth enabled, key configured and trusted.
fn run_row(s_auth: bool, s_trusted: bool, s_assoc: bool, c_auth: bool, c_trusted: bool) -> Outcome {
    // A key the daemon only loads with authentication enabled.
    let s_keys = if s_auth {
        table(&[key(4, s_trusted)])
    } else {
        KeyTable::new()
    };
    let s_key = sender_key(s_auth, &s_keys, s_assoc.then_some(KeyId(4)));
    let c_keys = if c_auth {
        table(&[key(4, c_trusted)])
    } else {
        KeyTable::new()
    };
    let mut sys = system();
    let packet = mode5(0.0, s_key);
    let p = wire::parse(&packet).unwrap();
    match sys.accept_broadcast(&p, &c_keys, c_auth, ReferenceId::NONE, false, mono(0.0)) {
        Err(_) => Outcome::Failed,
        Ok(id) => {
            let t = calibrate(&mut sys, id, 0.0, 0.001, 0.0, s_key.as_ref());
            let next = mode5(t + 16.0, s_key);
            match sys.handle_reply(
                id,
                mono(t + 16.0),
                at(t + 16.0),
                &wire::parse(&next).unwrap(),
            ) {
                Err(_) => Outcome::Failed,
                Ok(_) if bclient(&sys, id).auth_status() == "ok" => Outcome::Succeeded,
                Ok(_) => Outcome::NoAuthentication,
            }
        }
    }
}

#[test]
/// attacks.md B1: the authentication result table, row by row.
fn guide_result_table_row_by_row() {
    use Outcome::*;
    // None = N/A: both values must give the same result.
    type Row = (
        bool,
        Option<bool>,
        Option<bool>,
        bool,
        Option<bool>,
        Outcome,
    );
    let rows: [Row; 9] = [
        (true, Some(true), Some(true), true, Some(true), Succeeded),
        (true, Some(true), Some(true), true, Some(false), Failed),
        (true, Some(true), Some(true), false, None, Failed),
        (true, Some(false), Some(true), true, None, Failed),
        (true, Some(false), Some(true), false, None, NoAuthentication),
        (true, None, Some(false), true, None, Failed),
        (true, None, Some(false), false, None, NoAuthentication),
        (false, None, None, true, None, Failed),
        (false, None, None, false, None, NoAuthentication),
    ];
    let both = |v: Option<bool>| v.map_or(vec![true, false], |b| vec![b]);
    for (n, (s_auth, s_trusted, s_assoc, c_auth, c_trusted, expected)) in rows.iter().enumerate() {
        for st in both(*s_trusted) {
            for sa in both(*s_assoc) {
                for ct in both(*c_trusted) {
                    assert_eq!(
                        run_row(*s_auth, st, sa, *c_auth, ct),
                        *expected,
                        "row {} (server trusted {st}, associated {sa}; client trusted {ct})",
                        n + 1
                    );
                }
            }
        }
    }
}

#[test]
fn step_moves_the_volley_send_time() {
    let mut sys = system();
    let id = create(&mut sys, &mode5(0.0, None), &KeyTable::new(), false, 0.0);
    let mut rng = SplitMix64::new(4);
    let out = sys.handle_timeout(mono(0.0), at(0.0), &mut rng);
    let req = out[0].1;
    // The local clock is stepped by +1 s before the reply: T1 moves with it.
    if let Some(crate::system::Source { association, .. }) = sys.source_mut(id) {
        association.apply_step(1.0);
    }
    let reply = answer(&req, 1.0, 0.002, 0.0, None);
    sys.handle_reply(id, mono(0.004), at(1.0041), &wire::parse(&reply).unwrap())
        .unwrap();
    let m = sys.source(id).unwrap().last_measurement().unwrap();
    assert!((m.delay - 0.004).abs() < 1e-3, "delay {}", m.delay);
}

#[test]
fn oneway_jitter_ignores_drift_and_measures_queueing() {
    // A steady drift of 20 ppm at 16 s intervals: no jitter.
    let drift: Vec<(Mono, f64)> = (0..8)
        .map(|i| (mono(16.0 * i as f64), 0.001 + 20e-6 * 16.0 * i as f64))
        .collect();
    assert!(oneway_jitter(&drift) < 1e-9);
    // The same with irregular queueing of 0..200 us: tens of microseconds.
    let queue = [0.0, 150e-6, 30e-6, 90e-6, 10e-6, 200e-6, 60e-6, 5e-6];
    let noisy: Vec<(Mono, f64)> = drift
        .iter()
        .zip(queue)
        .map(|(&(t, v), q)| (t, v + q))
        .collect();
    let j = oneway_jitter(&noisy);
    assert!((30e-6..200e-6).contains(&j), "{j}");
    assert_eq!(oneway_jitter(&drift[..2]), 0.0, "too few values");
}

/// A NaN or infinite "step" (no clock makes one) is ignored: it would otherwise poison the
/// window of one-way times every later mode 5 sample is judged by (found by the
/// `broadcast_association` fuzz target).
#[test]
fn non_finite_steps_are_ignored() {
    let mut sys = system();
    let id = create(&mut sys, &mode5(0.0, None), &KeyTable::new(), false, 0.0);
    let t = calibrate(&mut sys, id, 0.0, 0.001, 0.0, None);
    for i in 1..=3 {
        let when = t + 16.0 * f64::from(i);
        let p = mode5(when, None);
        sys.handle_reply(id, mono(when), at(when), &wire::parse(&p).unwrap())
            .unwrap();
    }
    let before = bclient(&sys, id).clone();
    for step in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut after = before.clone();
        after.apply_step(step);
        assert_eq!(format!("{after:?}"), format!("{before:?}"), "step {step}");
    }
}

/// A correctly signed mode 5 packet that is then refused (too early) changes nothing, not
/// even the authentication status of an association that has not accepted a packet yet
/// (found by the `broadcast_association` fuzz target).
#[test]
fn a_signed_but_refused_broadcast_leaves_the_auth_status_alone() {
    let k = key(4, true);
    let first = wire::parse(&mode5(0.0, Some(k))).unwrap().header;
    let config = ClientConfig {
        key: Some(k),
        ..Default::default()
    };
    let mut c = BroadcastClient::new(config, false, &first, mono(0.0));
    assert_eq!(c.last_auth(), None);
    let early = mode5(1.0, Some(k));
    let r = c.handle_packet(mono(1.0), at(1.0), &wire::parse(&early).unwrap(), -20);
    assert!(r.is_err(), "{r:?}");
    assert_eq!(c.stats().last_rejection, Some("too-early"));
    assert_eq!(c.last_auth(), None);
}
