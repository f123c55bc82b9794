//! Broadcast target: one `BroadcastClient` (unkeyed or keyed with any algorithm) fed by a
//! `BroadcastServer` with the same key, and an operation sequence: time passing, client
//! timeouts (the delay-calibration volley), the server's mode 5 packets after any transit
//! time, mode 4 replies echoing the volley nonce or not, forged mode 5 packets, arbitrary
//! headers, replays, wrong MACs, clock steps; the invariants are checked after every step.

use crate::input::Input;
use core::time::Duration;
use meridian_proto::auth::{self, AuthResult};
use meridian_proto::broadcast::{BroadcastClient, BroadcastServer, BroadcastServerConfig, Phase};
use meridian_proto::client::{ClientConfig, Reply};
use meridian_proto::entropy::SplitMix64;
use meridian_proto::keys::{Algorithm, Key, KeyId};
use meridian_proto::server::ServerState;
use meridian_proto::time::{Mono, NtpDuration, NtpTimestamp, PollInterval};
use meridian_proto::wire::{self, Header, Leap, Mode, ReferenceId, HEADER_LEN};

const MAX_OPS: usize = 512;

/// The client's `Debug` form up to its counters (`stats` and `last_auth` come last).
fn state_without_stats(a: &BroadcastClient) -> String {
    let text = format!("{a:?}");
    let cut = text.find(", stats: ").expect("stats field in Debug output");
    text[..cut].to_string()
}

fn key_from(input: &mut Input<'_>) -> Option<Key> {
    let algorithm = match input.u8() % 6 {
        0 => return None,
        1 => Algorithm::Md5,
        2 => Algorithm::Sha1,
        3 => Algorithm::Sha256,
        4 => Algorithm::Aes128Cmac,
        _ => Algorithm::Aes256Cmac,
    };
    let secret: [u8; 32] = input.array();
    let len = algorithm.required_secret_len().unwrap_or(20);
    Some(
        Key::new(
            KeyId(1 + input.u16() as u32),
            algorithm,
            &secret[..len],
            true,
        )
        .expect("key"),
    )
}

struct Driver<'a> {
    input: Input<'a>,
    client: BroadcastClient,
    server: BroadcastServer,
    key: Option<Key>,
    state: ServerState,
    rng: SplitMix64,
    now: Mono,
    local_base: NtpTimestamp,
    precision: i8,
    last_request: Option<Header>,
    last_datagram: Option<(Vec<u8>, bool)>,
    listened: bool,
}

impl Driver<'_> {
    fn local_now(&self) -> NtpTimestamp {
        crate::forge::local_at(self.local_base, self.now)
    }

    /// `h` as a datagram, signed or forged as the input picks (`forge::sign_or_forge`).
    fn datagram(&mut self, h: &Header) -> (Vec<u8>, bool) {
        crate::forge::sign_or_forge(&mut self.input, self.key.as_ref(), h)
    }

    /// A server packet with fields from the input; `reply`: mode 4 echoing the volley nonce.
    fn forged(&mut self, reply: bool) -> Header {
        let flags = self.input.u8();
        let mut h = Header::new(if reply { Mode::Server } else { Mode::Broadcast });
        h.leap = Leap::from_bits(flags);
        h.version = 1 + (flags >> 2) % 4;
        h.stratum = self.input.u8() % 17;
        h.poll = self.input.i8();
        h.precision = self.input.i8();
        h.root_delay = NtpDuration::from_short_bits(self.input.u16() as u32);
        h.root_dispersion = NtpDuration::from_short_bits(self.input.u16() as u32);
        h.reference_id = ReferenceId(self.input.array());
        let ahead = NtpDuration::from_bits(self.input.i64() >> (self.input.u8() % 64));
        h.receive_ts = self.local_now() + ahead;
        h.transmit_ts = h.receive_ts + NtpDuration::from_nanos(self.input.u16() as i64 * 1000);
        h.reference_ts = h.receive_ts - NtpDuration::from_bits(self.input.u32() as i64);
        h.origin_ts = match (reply && flags & 0x80 == 0, self.last_request) {
            (true, Some(req)) => req.transmit_ts,
            _ if reply => NtpTimestamp::from_bits(self.input.u64()),
            _ => NtpTimestamp::ZERO,
        };
        h
    }

    fn step(&mut self) {
        match self.input.u8() % 8 {
            0 => {
                let jitter = Duration::from_micros(self.input.u16() as u64);
                if let Some(due) = self.client.poll_timeout() {
                    self.now = self.now.max(due) + jitter;
                }
                self.timeout();
            }
            1 => {
                self.now = self.now + Duration::from_millis(self.input.u32() as u64);
                self.timeout();
            }
            2 => self.broadcast(),
            3 => {
                let h = self.forged(true);
                let (bytes, signed) = self.datagram(&h);
                self.packet(bytes, signed);
            }
            4 => {
                let h = self.forged(false);
                let (bytes, signed) = self.datagram(&h);
                self.packet(bytes, signed);
            }
            5 => {
                if let Some((old, signed)) = self.last_datagram.clone() {
                    self.packet(old, signed);
                }
            }
            6 => {
                let mut bytes: [u8; HEADER_LEN] = self.input.array();
                bytes[0] = (bytes[0] & !0x38) | ((1 + (bytes[0] >> 3) % 4) << 3);
                let h = Header::parse(&bytes).expect("version forced valid");
                let (bytes, signed) = self.datagram(&h);
                self.packet(bytes, signed);
            }
            _ => {
                // Any f64: the client must ignore a NaN or infinite step (no clock makes one),
                // which would otherwise poison its window of one-way times.
                let step = self.input.f64();
                self.client.apply_step(step);
                if step.is_finite() {
                    self.local_base += NtpDuration::from_seconds(step);
                }
            }
        }
        self.check_invariants();
    }

    /// The server's next packet, delivered after a transit time from the input.
    fn broadcast(&mut self) {
        let before = self.server.sent();
        self.now = self.now.max(self.server.poll_timeout());
        let local = self.local_now();
        let sent = self
            .server
            .handle_timeout(self.now, local, &self.state, &mut self.rng);
        let Some(bytes) = sent else {
            assert!(self.state.stratum >= 16, "a synchronized server skipped");
            return;
        };
        assert_eq!(self.server.sent(), before + 1);
        assert!(self.server.poll_timeout() > self.now);
        let p = wire::parse(&bytes).expect("our broadcast parses");
        let h = p.header;
        assert_eq!((h.mode, h.stratum), (Mode::Broadcast, self.state.stratum));
        assert_eq!(h.poll, self.server.config().poll.log2());
        assert!(h.origin_ts.is_zero() && h.receive_ts.is_zero() && !h.transmit_ts.is_zero());
        if let Some(key) = self.key {
            let r = auth::verify_with_key(&key, p.authenticated, p.mac);
            assert_eq!(r, AuthResult::Ok(key.id()), "our broadcast's MAC");
        }
        self.now = self.now + Duration::from_micros(self.input.u16() as u64 * 16);
        self.packet(bytes.to_vec(), true);
    }

    fn timeout(&mut self) {
        let before = self.client.stats();
        let calibrating = self.client.phase() == Phase::Calibrating;
        let local = self.local_now();
        let Some(bytes) = self.client.handle_timeout(self.now, local, &mut self.rng) else {
            return;
        };
        assert!(calibrating, "a request after calibration");
        let p = wire::parse(&bytes).expect("request parses");
        let h = p.header;
        assert_eq!(h.mode, Mode::Client);
        assert!(h.origin_ts.is_zero() && h.receive_ts.is_zero() && h.stratum == 0);
        assert!(!h.transmit_ts.is_zero());
        if let Some(prev) = self.last_request {
            assert_ne!(prev.transmit_ts, h.transmit_ts, "nonce reused");
        }
        if let Some(key) = self.key {
            let r = auth::verify_with_key(&key, p.authenticated, p.mac);
            assert_eq!(r, AuthResult::Ok(key.id()));
        }
        assert_eq!(self.client.stats().sent, before.sent + 1);
        self.last_request = Some(h);
    }

    fn packet(&mut self, bytes: Vec<u8>, signed: bool) {
        self.last_datagram = Some((bytes.clone(), signed));
        let Ok(packet) = wire::parse(&bytes) else {
            return;
        };
        let h = packet.header;
        let before = state_without_stats(&self.client);
        let stats = self.client.stats();
        let auth_before = self.client.last_auth();
        let local = self.local_now();
        let result = self
            .client
            .handle_packet(self.now, local, &packet, self.precision);
        match result {
            Err(_) => {
                assert_eq!(
                    state_without_stats(&self.client),
                    before,
                    "rejection changed state"
                );
                let after = self.client.stats();
                assert_eq!(after.rejected, stats.rejected + 1);
                assert_eq!((after.sent, after.received), (stats.sent, stats.received));
                let auth = self.client.last_auth();
                assert_eq!(
                    auth, auth_before,
                    "a rejected packet changed the auth status"
                );
            }
            Ok(reply) => {
                assert!(matches!(h.mode, Mode::Broadcast | Mode::Server));
                assert_eq!(self.client.stats().received, stats.received + 1);
                match self.key {
                    Some(key) => {
                        let mac = packet.mac.expect("keyed client accepted no MAC");
                        assert_eq!(mac.key_id, key.id().0);
                        assert!(signed || cfg!(fuzzing), "accepted a forged MAC");
                    }
                    None => assert!(packet.mac.is_none(), "unkeyed client accepted a MAC"),
                }
                if let Reply::Sample(m) = reply {
                    let p = NtpDuration::from_exponent(self.precision).to_seconds();
                    assert!(m.offset.is_finite() && m.delay.is_finite(), "{m:?}");
                    assert!(m.dispersion.is_finite() && m.dispersion >= 0.0, "{m:?}");
                    assert!(m.delay >= p, "{m:?}");
                    assert_eq!(m.time, self.now);
                    if h.mode == Mode::Broadcast {
                        assert_eq!(self.client.phase(), Phase::Listening);
                    }
                }
                let again =
                    self.client
                        .clone()
                        .handle_packet(self.now, local, &packet, self.precision);
                assert!(again.is_err(), "same packet accepted twice");
            }
        }
    }

    fn check_invariants(&mut self) {
        let poll = self.client.poll();
        assert!(
            PollInterval::new(4) <= poll && poll <= PollInterval::MAX,
            "{poll:?}"
        );
        assert!(self.client.poll_timeout().is_some());
        match self.client.phase() {
            Phase::Listening => {
                let d = self.client.delay().expect("listening without a delay");
                assert!(d.is_finite() && d > 0.0, "calibrated delay {d}");
                self.listened = true;
            }
            Phase::Calibrating => assert!(!self.listened, "calibration restarted"),
        }
        if let Some(t) = self.client.last_receive() {
            assert!(t <= self.now);
        }
        assert!(
            self.client.stats().received >= 1,
            "the creating packet counts"
        );
    }
}

/// Drives a broadcast client and its server through the operations the input spells.
pub fn broadcast_association(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let key = key_from(&mut input);
    let mut rng = SplitMix64::new(input.u64());
    let now = Mono::from_nanos(input.u64() >> 8);
    let local_base = NtpTimestamp::from_bits(input.u64());
    let precision = input.i8();
    let mut state = ServerState::unsynchronized(-20);
    if flags & 1 == 0 {
        state.leap = Leap::None;
        state.stratum = 1 + input.u8() % 15;
        state.reference_id = ReferenceId(input.array());
        state.reference_ts = local_base;
    }
    let poll = PollInterval::new(input.i8() % 20);
    let server = BroadcastServer::new(
        BroadcastServerConfig {
            version: 1 + (flags >> 1) % 4,
            poll,
            key,
        },
        now,
        &mut rng,
    );
    let mut first = Header::new(Mode::Broadcast);
    first.version = 1 + (flags >> 3) % 4;
    first.poll = input.i8();
    first.stratum = input.u8();
    first.transmit_ts =
        local_base + NtpDuration::from_nanos(now.as_nanos().min(i64::MAX as u64) as i64);
    let config = ClientConfig {
        key,
        ..ClientConfig::default()
    };
    let client = BroadcastClient::new(config, flags & 0x40 != 0, &first, now);
    let mut driver = Driver {
        input,
        client,
        server,
        key,
        state,
        rng,
        now,
        local_base,
        precision,
        last_request: None,
        last_datagram: None,
        listened: false,
    };
    driver.check_invariants();
    for _ in 0..MAX_OPS {
        if driver.input.is_empty() {
            break;
        }
        driver.step();
    }
}
