//! Tests of the active side's mode 3/4 calibration (request modes in sequence, forged or
//! unauthenticated mode 4 packets, the fallback to mode 1) and of Kiss-o'-Death handling in
//! the symmetric exchange (attack guide C6).

use super::*;
use crate::entropy::SplitMix64;
use crate::keys::{Algorithm, Key, KeyId, KeyTable};
use crate::server::{respond_with_keys, MAX_REPLY_LEN};
use crate::wire::{self, Leap, ReferenceId};

const DELAY: f64 = 0.01;
/// The peer's clock is this far ahead.
const B_OFFSET: f64 = 0.5;

fn base() -> NtpTimestamp {
    NtpTimestamp::from_unix(1_800_000_000, 0)
}

fn state() -> ServerState {
    ServerState {
        leap: Leap::None,
        stratum: 2,
        precision: -20,
        poll: 4,
        root_delay: NtpDuration::from_seconds(0.001),
        root_dispersion: NtpDuration::from_seconds(0.001),
        reference_id: ReferenceId([198, 18, 0, 99]),
        reference_ts: base(),
    }
}

fn key(id: u32, secret: &[u8]) -> Key {
    Key::new(KeyId(id), Algorithm::Sha1, secret, true).unwrap()
}

fn config(key: Option<Key>, iburst: bool, maxpoll: i8) -> ClientConfig {
    ClientConfig {
        minpoll: PollInterval::new(4),
        maxpoll: PollInterval::new(maxpoll),
        key,
        iburst,
        ..Default::default()
    }
}

/// Our side of the test: one active association and a time axis.
struct Sim {
    t: f64,
    rng: SplitMix64,
    a: PeerAssociation,
}

impl Sim {
    fn new(config: ClientConfig) -> Self {
        let mut rng = SplitMix64::new(3);
        let a = PeerAssociation::active(config, Mono::from_seconds(10.0), Duration::ZERO, &mut rng);
        Self { t: 10.0, rng, a }
    }
    fn local(&self) -> NtpTimestamp {
        base() + NtpDuration::from_seconds(self.t)
    }
    /// Advances to the next poll and returns what A sends (None: nothing due any more).
    fn poll(&mut self) -> Option<Vec<u8>> {
        self.t = self.t.max(self.a.poll_timeout()?.as_seconds());
        let (now, local) = (Mono::from_seconds(self.t), self.local());
        let out = self
            .a
            .handle_timeout(now, local, &state(), &mut self.rng)
            .map(|r| r.to_vec());
        self.t += DELAY;
        out
    }
    /// The peer's server path answering a mode 3 request (signed with `keys`).
    fn serve(&mut self, request: &[u8], keys: &KeyTable) -> Vec<u8> {
        let rx = base() + NtpDuration::from_seconds(self.t + B_OFFSET);
        let tx = rx + NtpDuration::from_seconds(0.0001);
        let mut out = [0u8; MAX_REPLY_LEN];
        let len = respond_with_keys(request, rx, &state(), keys, &mut self.rng, || tx, &mut out)
            .expect("the peer serves the request");
        self.t += DELAY;
        out[..len].to_vec()
    }
    fn receive(&mut self, bytes: &[u8]) -> Result<Reply, PacketChecks> {
        let p = wire::parse(bytes).unwrap();
        let (now, local) = (Mono::from_seconds(self.t), self.local());
        self.a.handle_packet(now, local, &p, -20)
    }
}

fn mode_of(bytes: &[u8]) -> Mode {
    wire::parse(bytes).unwrap().header.mode
}

fn xmt_of(bytes: &[u8]) -> NtpTimestamp {
    wire::parse(bytes).unwrap().header.transmit_ts
}

/// A kiss with `code` in `mode` answering `origin`, signed with `key` if given.
fn kiss(
    code: ReferenceId,
    mode: Mode,
    origin: NtpTimestamp,
    poll: i8,
    key: Option<&Key>,
) -> Vec<u8> {
    let mut h = Header::new(mode);
    h.leap = Leap::Unsynchronized;
    h.stratum = 0;
    h.poll = poll;
    h.reference_id = code;
    h.origin_ts = origin;
    h.receive_ts = origin;
    h.transmit_ts = base() + NtpDuration::from_seconds(77.0);
    sign(&h, key)
}

fn sign(h: &Header, key: Option<&Key>) -> Vec<u8> {
    let mut buf = [0u8; 128];
    buf[..48].copy_from_slice(&h.to_bytes());
    let len = key.map_or(48, |k| crate::auth::append_mac(k, &mut buf, 48).unwrap());
    buf[..len].to_vec()
}

/// The association's state without its counters.
fn snapshot(a: &PeerAssociation) -> String {
    format!("{a:?}").split("stats:").next().unwrap().to_owned()
}

/// Skips calibration: two unanswered mode 3 requests, then the first mode 1 packet.
fn past_calibration(sim: &mut Sim) -> Vec<u8> {
    assert_eq!(mode_of(&sim.poll().unwrap()), Mode::Client);
    assert_eq!(mode_of(&sim.poll().unwrap()), Mode::Client);
    let first = sim.poll().unwrap();
    assert_eq!(mode_of(&first), Mode::SymmetricActive);
    first
}

#[test]
fn calibration_sends_mode_3_then_mode_1_after_a_valid_mode_4() {
    let mut sim = Sim::new(config(None, false, 4));
    assert_eq!(sim.a.calibration(), Some(Calibration::Pending));
    let request = sim.poll().unwrap();
    let h = wire::parse(&request).unwrap().header;
    assert_eq!(h.mode, Mode::Client);
    assert!(h.origin_ts.is_zero() && h.receive_ts.is_zero());
    // As a client: the transmit timestamp does not give away our clock.
    assert!((h.transmit_ts - sim.local()).to_seconds().abs() > 1.0);
    let reply = sim.serve(&request, &KeyTable::new());
    let m = match sim.receive(&reply) {
        Ok(Reply::Sample(m)) => m,
        other => panic!("expected a first sample, got {other:?}"),
    };
    assert!((m.delay - 2.0 * DELAY).abs() < 1e-3, "delay {}", m.delay);
    assert!((m.offset - B_OFFSET).abs() < 1e-3, "offset {}", m.offset);
    assert_eq!(sim.a.calibration(), Some(Calibration::Done));
    assert_eq!(sim.a.reach(), 1);
    assert_eq!(sim.a.peer().unwrap().mode, Mode::Server);
    // The same reply again: one reply per request.
    assert!(sim.receive(&reply).is_err());
    // From now on mode 1, with the real local time.
    for _ in 0..3 {
        let next = sim.poll().unwrap();
        assert_eq!(mode_of(&next), Mode::SymmetricActive);
        assert!((xmt_of(&next) - sim.local()).to_seconds().abs() < 0.1);
    }
}

#[test]
fn spoofed_or_unauthenticated_mode_4_during_calibration_changes_nothing() {
    let k = key(1, b"peer secret");
    let other = key(2, b"other secret");
    let mut keys = KeyTable::new();
    keys.insert(k).unwrap();
    keys.insert(other).unwrap();
    let mut sim = Sim::new(config(Some(k), false, 4));
    let request = sim.poll().unwrap();
    assert_eq!(wire::parse(&request).unwrap().mac.unwrap().key_id, 1);
    let genuine = sim.serve(&request, &keys);
    let h = wire::parse(&genuine).unwrap().header;
    let mut bad_mac = genuine.clone();
    *bad_mac.last_mut().unwrap() ^= 1;
    let mut nak = genuine[..48].to_vec();
    nak.extend_from_slice(&[0; 4]);
    let mut wrong_origin = h;
    wrong_origin.origin_ts = h.origin_ts + NtpDuration::from_seconds(1e-6);
    let forgeries = [
        ("no MAC", genuine[..48].to_vec()),
        ("bad MAC", bad_mac),
        ("crypto-NAK", nak),
        ("another trusted key", sign(&h, Some(&other))),
        ("wrong origin, valid MAC", sign(&wrong_origin, Some(&k))),
        ("zero origin, valid MAC", {
            let mut z = h;
            z.origin_ts = NtpTimestamp::ZERO;
            sign(&z, Some(&k))
        }),
        (
            "DENY kiss without MAC",
            kiss(ReferenceId::KISS_DENY, Mode::Server, h.origin_ts, 4, None),
        ),
    ];
    let before = snapshot(&sim.a);
    for (what, bytes) in &forgeries {
        assert!(sim.receive(bytes).is_err(), "{what} accepted");
        assert_eq!(snapshot(&sim.a), before, "{what} changed the association");
    }
    assert_eq!(sim.a.stats().rejected, forgeries.len() as u64);
    assert_eq!(sim.a.calibration(), Some(Calibration::Pending));
    assert!(matches!(sim.receive(&genuine), Ok(Reply::Sample(_))));
    assert_eq!(sim.a.calibration(), Some(Calibration::Done));
    assert_eq!(sim.a.auth_status(), "ok");

    // Unkeyed: a crypto-NAK is no answer either.
    let mut sim = Sim::new(config(None, false, 4));
    let request = sim.poll().unwrap();
    let mut nak = sim.serve(&request, &KeyTable::new());
    nak.extend_from_slice(&[0; 4]);
    assert!(sim.receive(&nak).is_err());
    assert_eq!(sim.a.calibration(), Some(Calibration::Pending));
}

#[test]
fn unanswered_calibration_falls_back_to_mode_1() {
    for iburst in [false, true] {
        let mut sim = Sim::new(config(None, iburst, 4));
        let modes: Vec<Mode> = (0..6).map(|_| mode_of(&sim.poll().unwrap())).collect();
        let mut want = vec![Mode::Client; usize::from(CALIBRATION_TRIES)];
        want.resize(6, Mode::SymmetricActive);
        assert_eq!(modes, want, "iburst {iburst}");
        assert_eq!(sim.a.calibration(), Some(Calibration::FellBack));
    }
    // A reply to a request that arrives after the fallback is not believed.
    let mut sim = Sim::new(config(None, false, 4));
    sim.poll().unwrap();
    let second = sim.poll().unwrap();
    let late = sim.serve(&second, &KeyTable::new());
    assert_eq!(mode_of(&sim.poll().unwrap()), Mode::SymmetricActive);
    assert!(sim.receive(&late).is_err());
    assert_eq!(sim.a.reach(), 0);
}

#[test]
fn a_kiss_answering_a_mode_3_request_ends_calibration_without_a_sample() {
    let mut sim = Sim::new(config(None, false, 6));
    let request = sim.poll().unwrap();
    let deny = kiss(
        ReferenceId::KISS_DENY,
        Mode::Server,
        xmt_of(&request),
        4,
        None,
    );
    assert_eq!(sim.receive(&deny), Ok(Reply::Kiss(ReferenceId::KISS_DENY)));
    assert_eq!(sim.a.calibration(), Some(Calibration::FellBack));
    // Refusing client service is not refusing the peer: mode 1 goes on.
    assert_eq!(sim.a.denied(), None);
    assert!(sim.a.peer().is_none() && sim.a.reach() == 0);
    assert_eq!(mode_of(&sim.poll().unwrap()), Mode::SymmetricActive);

    let mut sim = Sim::new(config(None, false, 6));
    let request = sim.poll().unwrap();
    let rate = kiss(
        ReferenceId::KISS_RATE,
        Mode::Server,
        xmt_of(&request),
        4,
        None,
    );
    assert_eq!(sim.receive(&rate), Ok(Reply::Kiss(ReferenceId::KISS_RATE)));
    assert_eq!(sim.a.poll(), PollInterval::new(5));
    assert_eq!(mode_of(&sim.poll().unwrap()), Mode::SymmetricActive);
}

#[test]
fn rate_kiss_lengthens_the_poll_one_step_up_to_maxpoll() {
    let mut sim = Sim::new(config(None, false, 6));
    let mut last = past_calibration(&mut sim);
    // A RATE kiss with a bogus origin changes nothing.
    let bogus = kiss(
        ReferenceId::KISS_RATE,
        Mode::SymmetricPassive,
        base(),
        4,
        None,
    );
    assert!(sim.receive(&bogus).is_err());
    assert_eq!(sim.a.poll(), PollInterval::new(4));
    for want in [5, 6, 6] {
        let rate = kiss(
            ReferenceId::KISS_RATE,
            Mode::SymmetricPassive,
            xmt_of(&last),
            4,
            None,
        );
        assert_eq!(sim.receive(&rate), Ok(Reply::Kiss(ReferenceId::KISS_RATE)));
        assert_eq!(sim.a.poll(), PollInterval::new(want));
        // The same kiss replayed: its packet is answered already.
        let before = snapshot(&sim.a);
        assert!(sim.receive(&rate).is_err());
        assert_eq!(snapshot(&sim.a), before);
        let sent_at = sim.t;
        last = sim.poll().unwrap();
        // The next packet waits (most of) the longer poll, and the system poll does not
        // shorten it again.
        let waited = sim.t - DELAY - sent_at;
        assert!(
            waited >= (1u64 << want) as f64 * 0.9,
            "{waited} s at poll {want}"
        );
        assert_eq!(sim.a.poll(), PollInterval::new(want));
        assert!(
            sim.a.peer().is_none(),
            "a kiss is no sample and no peer data"
        );
    }
}

#[test]
fn deny_or_rstr_stops_an_active_association() {
    for code in [ReferenceId::KISS_DENY, ReferenceId::KISS_RSTR] {
        for mode in [Mode::SymmetricPassive, Mode::SymmetricActive, Mode::Server] {
            let mut sim = Sim::new(config(None, false, 4));
            let last = past_calibration(&mut sim);
            // Bogus or zero origin: nothing.
            for origin in [NtpTimestamp::ZERO, base()] {
                assert!(sim.receive(&kiss(code, mode, origin, 4, None)).is_err());
                assert!(sim.a.denied().is_none());
            }
            assert_eq!(
                sim.receive(&kiss(code, mode, xmt_of(&last), 4, None)),
                Ok(Reply::Kiss(code))
            );
            assert_eq!(sim.a.denied(), Some(code));
            assert_eq!(sim.a.poll_timeout(), None);
            let far = Mono::from_seconds(sim.t + 1e5);
            assert!(sim
                .a
                .handle_timeout(far, sim.local(), &state(), &mut sim.rng)
                .is_none());
            assert!(sim.poll().is_none());
        }
    }
}

#[test]
fn unauthenticated_kiss_on_a_keyed_association_is_ignored() {
    let k = key(1, b"peer secret");
    let forger = key(1, b"guessed secret");
    for code in [
        ReferenceId::KISS_DENY,
        ReferenceId::KISS_RSTR,
        ReferenceId::KISS_RATE,
    ] {
        let mut sim = Sim::new(config(Some(k), false, 6));
        let last = past_calibration(&mut sim);
        let origin = xmt_of(&last);
        let before = snapshot(&sim.a);
        for (what, bytes) in [
            (
                "no MAC",
                kiss(code, Mode::SymmetricPassive, origin, 4, None),
            ),
            (
                "bad MAC",
                kiss(code, Mode::SymmetricPassive, origin, 4, Some(&forger)),
            ),
        ] {
            assert!(sim.receive(&bytes).is_err(), "{what}");
            assert_eq!(snapshot(&sim.a), before, "{what}");
        }
        let genuine = kiss(code, Mode::SymmetricPassive, origin, 4, Some(&k));
        assert_eq!(sim.receive(&genuine), Ok(Reply::Kiss(code)));
        assert_eq!(sim.a.denied().is_some(), code != ReferenceId::KISS_RATE);
    }
}

#[test]
fn passive_side_never_calibrates() {
    let mut h = Header::new(Mode::SymmetricActive);
    h.transmit_ts = base();
    let p = PeerAssociation::passive(config(None, false, 4), &h, Mono::from_seconds(1.0), base());
    assert_eq!(p.calibration(), None);
}

/// A correctly signed kiss that is refused for its origin changes nothing, not even the
/// authentication status of an association that has not heard a genuine packet yet (found
/// by the `peer_association` fuzz target).
#[test]
fn a_signed_kiss_with_a_bogus_origin_leaves_the_auth_status_alone() {
    let k = key(7, b"peer secret");
    let mut sim = Sim::new(config(Some(k), false, 6));
    let last = past_calibration(&mut sim);
    assert_eq!(sim.a.auth_status(), "none");
    // Origin zero: no answer to anything of ours, refused after the MAC check.
    let bogus = kiss(
        ReferenceId::KISS_RATE,
        Mode::SymmetricPassive,
        NtpTimestamp::ZERO,
        4,
        Some(&k),
    );
    assert!(sim.receive(&bogus).is_err());
    assert_eq!(sim.a.last_auth(), None);
    assert_eq!(sim.a.auth_status(), "none");
    // The same kiss answering our packet counts, and so does its authentication.
    let rate = kiss(
        ReferenceId::KISS_RATE,
        Mode::SymmetricPassive,
        xmt_of(&last),
        4,
        Some(&k),
    );
    assert_eq!(sim.receive(&rate), Ok(Reply::Kiss(ReferenceId::KISS_RATE)));
    assert_eq!(sim.a.auth_status(), "ok");
}
