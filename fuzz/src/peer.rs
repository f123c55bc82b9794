//! Symmetric target: one `PeerAssociation` (active with its mode 3/4 calibration, or passive;
//! keyed with any algorithm or not) driven by an arbitrary sequence of operations (time
//! passing, timeouts, mode 1/2/4 packets echoing or missing our timestamps, origin-zero
//! packets, arbitrary headers, kisses, replays, forged MACs, clock steps, poll requests),
//! checking its invariants after every step.

use crate::input::Input;
use core::time::Duration;
use meridian_proto::auth::{self, AuthResult};
use meridian_proto::client::{ClientConfig, Reply};
use meridian_proto::entropy::SplitMix64;
use meridian_proto::keys::{Algorithm, Key, KeyId};
use meridian_proto::peer::{Calibration, PeerAssociation, PeerRole, SENT_RING};
use meridian_proto::server::ServerState;
use meridian_proto::time::{Mono, NtpDuration, NtpTimestamp, PollInterval};
use meridian_proto::wire::{self, Header, Leap, Mode, ReferenceId, HEADER_LEN};

/// Most operations one input may run, so work stays bounded.
const MAX_OPS: usize = 512;

/// The association's `Debug` form without its counters and its last authentication result,
/// for "nothing changed" checks (the authentication result is compared on its own in
/// [`Driver::packet`]).
fn state_without_stats(a: &PeerAssociation) -> String {
    let text = format!("{a:?}");
    let start = text.find(", stats: ").expect("stats field in Debug output");
    let end = text[start..]
        .find(", calibration: ")
        .expect("calibration follows stats and last_auth");
    format!("{}{}", &text[..start], &text[start + end..])
}

/// The key of a keyed association: algorithm and secret from the input.
fn key_from(input: &mut Input<'_>) -> Option<Key> {
    let algorithm = match input.u8() % 6 {
        0 => return None,
        1 => Algorithm::Md5,
        2 => Algorithm::Sha1,
        3 => Algorithm::Sha256,
        4 => Algorithm::Aes128Cmac,
        _ => Algorithm::Aes256Cmac,
    };
    let id = KeyId(1 + input.u16() as u32);
    let secret: [u8; 32] = input.array();
    let len = algorithm.required_secret_len().unwrap_or(20);
    Some(Key::new(id, algorithm, &secret[..len], true).expect("valid key"))
}

struct Driver<'a> {
    input: Input<'a>,
    assoc: PeerAssociation,
    key: Option<Key>,
    rng: SplitMix64,
    now: Mono,
    /// Local clock minus monotonic time, as NTP time (changed by steps).
    local_base: NtpTimestamp,
    state: ServerState,
    /// Our last packet as sent, and the last datagram handed to the association.
    last_sent: Option<Header>,
    sent_nonces: Vec<NtpTimestamp>,
    last_datagram: Option<(Vec<u8>, bool)>,
    calibration_left: bool,
}

impl Driver<'_> {
    fn local_now(&self) -> NtpTimestamp {
        crate::forge::local_at(self.local_base, self.now)
    }

    /// A packet as the peer would send it; `echo`: the origin is our last transmit timestamp.
    fn peer_header(&mut self, echo: bool) -> Header {
        let flags = self.input.u8();
        let mode = match (flags & 3, self.last_sent.map(|h| h.mode)) {
            (0, Some(Mode::Client)) => Mode::Server,
            (1, _) => Mode::SymmetricPassive,
            _ => Mode::SymmetricActive,
        };
        let mut h = Header::new(mode);
        h.leap = Leap::from_bits(flags >> 2);
        h.version = 1 + (flags >> 4) % 4;
        h.stratum = match flags >> 6 {
            0 => self.input.u8(),
            _ => 1 + self.input.u8() % 15,
        };
        h.poll = self.input.i8();
        h.precision = self.input.i8();
        h.root_delay = NtpDuration::from_short_bits(self.input.u16() as u32);
        h.root_dispersion = NtpDuration::from_short_bits(self.input.u16() as u32);
        h.reference_id = ReferenceId(self.input.array());
        let ahead = NtpDuration::from_bits(self.input.i64() >> (self.input.u8() % 64));
        let t2 = self.local_now() + ahead;
        h.receive_ts = t2;
        h.transmit_ts = t2 + NtpDuration::from_nanos(self.input.u16() as i64 * 1000);
        h.reference_ts = t2 - NtpDuration::from_bits(self.input.u32() as i64);
        h.origin_ts = match (echo, self.last_sent) {
            (true, Some(ours)) => ours.transmit_ts,
            (true, None) => NtpTimestamp::ZERO,
            _ => NtpTimestamp::from_bits(self.input.u64()),
        };
        h
    }

    /// `h` as a datagram, signed or forged as the input picks (`forge::sign_or_forge`).
    fn datagram(&mut self, h: &Header) -> (Vec<u8>, bool) {
        crate::forge::sign_or_forge(&mut self.input, self.key.as_ref(), h)
    }

    fn kiss(&mut self) -> Header {
        let mut h = self.peer_header(true);
        h.stratum = 0;
        h.reference_id = match self.input.u8() % 4 {
            0 => ReferenceId::KISS_RATE,
            1 => ReferenceId::KISS_DENY,
            2 => ReferenceId::KISS_RSTR,
            _ => h.reference_id,
        };
        h
    }

    fn step(&mut self) {
        match self.input.u8() % 9 {
            0 | 1 => {
                let jitter = Duration::from_micros(self.input.u16() as u64);
                if let Some(due) = self.assoc.poll_timeout() {
                    self.now = self.now.max(due) + jitter;
                }
                self.timeout();
            }
            2 => {
                self.now = self.now + Duration::from_millis(self.input.u32() as u64);
                self.timeout();
            }
            3 | 4 => {
                let h = self.peer_header(true);
                let (bytes, signed) = self.datagram(&h);
                self.packet(bytes, signed);
            }
            5 => {
                let mut h = self.peer_header(false);
                if self.input.bool() {
                    h.origin_ts = NtpTimestamp::ZERO;
                }
                let (bytes, signed) = self.datagram(&h);
                self.packet(bytes, signed);
            }
            6 => {
                let h = self.kiss();
                let (bytes, signed) = self.datagram(&h);
                self.packet(bytes, signed);
            }
            7 => {
                let mut bytes: [u8; HEADER_LEN] = self.input.array();
                bytes[0] = (bytes[0] & !0x38) | ((1 + (bytes[0] >> 3) % 4) << 3);
                let h = Header::parse(&bytes).expect("version forced valid");
                if let Some((old, signed)) =
                    self.last_datagram.clone().filter(|_| self.input.bool())
                {
                    self.packet(old, signed);
                } else {
                    let (bytes, signed) = self.datagram(&h);
                    self.packet(bytes, signed);
                }
            }
            _ => {
                if self.input.bool() {
                    let step = self.input.f64();
                    self.assoc.apply_step(step);
                    self.local_base += NtpDuration::from_seconds(step);
                } else {
                    self.assoc
                        .set_system_poll(PollInterval::new(self.input.i8()));
                }
            }
        }
        self.check_invariants();
    }

    fn timeout(&mut self) {
        let before = self.assoc.stats();
        let due = self.assoc.poll_timeout();
        let calibrating = self.assoc.calibration() == Some(Calibration::Pending);
        let local = self.local_now();
        let sent = self
            .assoc
            .handle_timeout(self.now, local, &self.state, &mut self.rng);
        let Some(bytes) = sent else {
            assert!(
                due.is_none_or(|d| d > self.now) || self.assoc.role() == PeerRole::Passive,
                "due packet not sent"
            );
            return;
        };
        assert_eq!(self.assoc.role(), PeerRole::Active, "passive side polled");
        assert!(due.is_some_and(|d| d <= self.now), "sent before due");
        let packet = wire::parse(&bytes).expect("our packet parses");
        let h = packet.header;
        if h.mode == Mode::Client {
            assert!(calibrating, "mode 3 after calibration ended");
            assert!(h.origin_ts.is_zero() && h.receive_ts.is_zero() && h.stratum == 0);
        } else {
            assert_eq!(h.mode, Mode::SymmetricActive);
            assert_eq!(h.stratum, self.state.stratum);
        }
        assert!(!h.transmit_ts.is_zero(), "zero transmit timestamp");
        // Unique among the transmit timestamps the association remembers (a clock stepped
        // back may repeat an older one; it can no longer be taken for an answer to us).
        let recent = &self.sent_nonces[self.sent_nonces.len().saturating_sub(SENT_RING)..];
        assert!(
            !recent.contains(&h.transmit_ts),
            "transmit timestamp reused"
        );
        match self.key {
            Some(key) => assert_eq!(
                auth::verify_with_key(&key, packet.authenticated, packet.mac),
                AuthResult::Ok(key.id()),
                "our own MAC does not verify"
            ),
            None => assert!(packet.mac.is_none(), "MAC without key"),
        }
        assert_eq!(self.assoc.stats().sent, before.sent + 1);
        let next = self.assoc.poll_timeout().expect("still polling");
        assert!(next > self.now || self.now.as_nanos() == u64::MAX);
        self.sent_nonces.push(h.transmit_ts);
        if self.sent_nonces.len() > SENT_RING {
            self.sent_nonces.remove(0);
        }
        self.last_sent = Some(h);
    }

    fn packet(&mut self, bytes: Vec<u8>, signed: bool) {
        self.last_datagram = Some((bytes.clone(), signed));
        let Ok(packet) = wire::parse(&bytes) else {
            return;
        };
        let h = packet.header;
        let before = state_without_stats(&self.assoc);
        let stats = self.assoc.stats();
        let auth_before = self.assoc.last_auth();
        self.now = self.now + Duration::from_micros(self.input.u16() as u64);
        let local = self.local_now();
        let precision = self.state.precision;
        let was_calibrating = self.assoc.calibration() == Some(Calibration::Pending);
        match self
            .assoc
            .handle_packet(self.now, local, &packet, precision)
        {
            Err(_) => {
                let auth = self.assoc.last_auth();
                assert_eq!(
                    auth, auth_before,
                    "a rejected packet changed the auth status"
                );
                assert_eq!(
                    state_without_stats(&self.assoc),
                    before,
                    "rejection changed state"
                );
                let after = self.assoc.stats();
                assert_eq!(after.rejected, stats.rejected + 1);
                assert_eq!((after.sent, after.received), (stats.sent, stats.received));
            }
            Ok(reply) => {
                assert_eq!(self.assoc.stats().received, stats.received + 1);
                assert!(!h.transmit_ts.is_zero(), "zero transmit accepted");
                if let Some(key) = self.key {
                    let mac = packet.mac.expect("keyed association accepted no MAC");
                    assert_eq!(mac.key_id, key.id().0, "accepted another key id");
                    assert_eq!(mac.digest.len(), key.digest_len());
                    assert!(
                        signed || cfg!(fuzzing),
                        "accepted a forged MAC: {:?}",
                        self.assoc.last_auth()
                    );
                    assert_eq!(self.assoc.auth_status(), "ok");
                }
                match reply {
                    Reply::Sample(m) => {
                        let p = NtpDuration::from_exponent(precision).to_seconds();
                        assert!(m.offset.is_finite() && m.dispersion.is_finite(), "{m:?}");
                        assert!(m.delay.is_finite() && m.delay >= p, "{m:?}");
                        assert!(m.dispersion >= 0.0 && m.time == self.now, "{m:?}");
                        assert_eq!(self.assoc.reach() & 1, 1, "sample without reach");
                    }
                    Reply::Kiss(code) => {
                        assert_eq!(code, h.reference_id);
                        assert_eq!(h.stratum, 0);
                        if matches!(code, ReferenceId::KISS_DENY | ReferenceId::KISS_RSTR)
                            && !was_calibrating
                        {
                            assert_eq!(self.assoc.denied(), Some(code));
                        }
                    }
                    _ => {}
                }
                if self.assoc.role() == PeerRole::Passive && !matches!(reply, Reply::Kiss(_)) {
                    let local = self.local_now();
                    let answer = self
                        .assoc
                        .respond(&h, local, &self.state, &mut self.rng, || local);
                    let a = wire::parse(&answer).expect("answer parses").header;
                    assert_eq!(a.mode, Mode::SymmetricPassive);
                    assert_eq!(a.origin_ts, h.transmit_ts, "answer does not echo");
                    assert!(!a.transmit_ts.is_zero());
                    // The answer is what the peer echoes next.
                    self.last_sent = Some(a);
                }
                // The same datagram again is refused, whatever state it was accepted in.
                let again = self
                    .assoc
                    .clone()
                    .handle_packet(self.now, local, &packet, precision);
                assert!(again.is_err(), "same packet accepted twice: {reply:?}");
            }
        }
    }

    fn check_invariants(&mut self) {
        let poll = self.assoc.poll();
        let (min, max) = match self.assoc.role() {
            PeerRole::Active => (self.assoc.config().minpoll, self.assoc.config().maxpoll),
            PeerRole::Passive => (PollInterval::MIN, PollInterval::MAX),
        };
        assert!(
            min <= poll && poll <= max,
            "poll {poll:?} outside {min:?}..={max:?}"
        );
        let stats = self.assoc.stats();
        if stats.received == 0 {
            assert_eq!(self.assoc.reach(), 0, "reach without any packet");
            assert!(self.assoc.peer().is_none());
        }
        if self.assoc.denied().is_some() {
            // A denied association sends nothing more (the timeout checks that it never
            // returns a packet); later genuine packets may still be counted.
            assert!(self.assoc.poll_timeout().is_none(), "denied but polling");
        }
        if let Some(t) = self.assoc.last_receive() {
            assert!(t <= self.now);
        }
        match self.assoc.calibration() {
            None => assert_eq!(self.assoc.role(), PeerRole::Passive),
            Some(Calibration::Pending) => {
                assert!(self.calibration_left, "calibration restarted")
            }
            Some(_) => self.calibration_left = false,
        }
    }
}

/// Drives one symmetric association through the operations the input spells.
pub fn peer_association(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let (a, b) = (
        PollInterval::new(input.i8() % 24),
        PollInterval::new(input.i8() % 24),
    );
    let key = key_from(&mut input);
    let config = ClientConfig {
        version: 1 + flags % 4,
        minpoll: a.min(b),
        maxpoll: a.max(b),
        iburst: flags & 4 != 0,
        key,
    };
    let mut rng = SplitMix64::new(input.u64());
    let now = Mono::from_nanos(input.u64() >> (flags >> 3 & 31));
    let local_base = NtpTimestamp::from_bits(input.u64());
    let mut state = ServerState::unsynchronized(input.i8());
    if input.bool() {
        state.leap = Leap::None;
        state.stratum = 1 + input.u8() % 15;
        state.reference_id = ReferenceId(input.array());
        state.reference_ts = local_base;
    }
    let assoc = if flags & 0x80 == 0 {
        let spread = Duration::from_millis(input.u16() as u64);
        PeerAssociation::active(config, now, spread, &mut rng)
    } else {
        let mut first = Header::new(Mode::SymmetricActive);
        first.version = 1 + input.u8() % 4;
        first.poll = input.i8();
        first.stratum = input.u8();
        first.transmit_ts = NtpTimestamp::from_bits(input.u64() | 1);
        first.receive_ts = NtpTimestamp::from_bits(input.u64());
        let local =
            local_base + NtpDuration::from_nanos(now.as_nanos().min(i64::MAX as u64) as i64);
        PeerAssociation::passive(config, &first, now, local)
    };
    let mut driver = Driver {
        input,
        assoc,
        key,
        rng,
        now,
        local_base,
        state,
        last_sent: None,
        sent_nonces: Vec::new(),
        last_datagram: None,
        calibration_left: true,
    };
    driver.check_invariants();
    for _ in 0..MAX_OPS {
        if driver.input.is_empty() {
            break;
        }
        driver.step();
    }
}
