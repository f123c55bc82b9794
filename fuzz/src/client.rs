//! Client target: one `ClientAssociation` driven by an arbitrary sequence of operations
//! (time passing, timeouts, replies that echo or miss the nonce, arbitrary headers, kisses,
//! replays, clock steps, poll requests), checking its invariants after every step.

use crate::input::Input;
use core::time::Duration;
use meridian_proto::client::{ClientAssociation, ClientConfig, Reply};
use meridian_proto::entropy::SplitMix64;
use meridian_proto::time::{Mono, NtpDuration, NtpTimestamp, PollInterval};
use meridian_proto::wire::{self, Header, Leap, Mode, ReferenceId, HEADER_LEN};

/// Most operations one input may run, so work stays bounded.
const MAX_OPS: usize = 512;

/// Everything of the association except its counters, for "nothing changed" checks. The
/// type has no `PartialEq`; its `Debug` form lists every field, `stats` last.
fn state_without_stats(a: &ClientAssociation) -> String {
    let text = format!("{a:?}");
    let cut = text
        .rfind(", stats: ")
        .expect("stats field in Debug output");
    text[..cut].to_string()
}

struct Driver<'a> {
    input: Input<'a>,
    assoc: ClientAssociation,
    config: ClientConfig,
    rng: SplitMix64,
    now: Mono,
    /// Local clock minus monotonic time, as NTP time (changed by steps).
    local_base: NtpTimestamp,
    precision: i8,
    /// The last request sent, and the last header handed to the association.
    last_request: Option<Header>,
    last_header: Option<Header>,
}

impl Driver<'_> {
    fn local_now(&self) -> NtpTimestamp {
        crate::forge::local_at(self.local_base, self.now)
    }

    /// A header as a server would build it, fields partly from the input. `echo`: the
    /// origin timestamp is the nonce of the last request.
    fn reply(&mut self, echo: bool) -> Header {
        let mut h = Header::new(Mode::Server);
        let flags = self.input.u8();
        h.leap = Leap::from_bits(flags);
        h.version = 1 + (flags >> 2) % 4;
        h.stratum = match flags >> 4 {
            0 => 0,
            1 => 16,
            2 => self.input.u8(),
            _ => 1 + (flags >> 4) % 15,
        };
        h.poll = self.input.i8();
        h.precision = self.input.i8();
        h.root_delay = NtpDuration::from_short_bits(self.input.u16() as u32);
        h.root_dispersion = NtpDuration::from_short_bits(self.input.u16() as u32);
        h.reference_id = ReferenceId(self.input.array());
        let server_ahead = NtpDuration::from_bits(self.input.i64() >> (self.input.u8() % 64));
        let t2 = self.local_now() + server_ahead;
        h.receive_ts = t2;
        h.transmit_ts = t2 + NtpDuration::from_nanos(self.input.u16() as i64 * 1000);
        h.reference_ts = t2 - NtpDuration::from_bits(self.input.u32() as i64);
        h.origin_ts = match (echo, self.last_request) {
            (true, Some(req)) => req.transmit_ts,
            _ => NtpTimestamp::from_bits(self.input.u64()),
        };
        h
    }

    fn kiss(&mut self) -> Header {
        let mut h = self.reply(true);
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
        match self.input.u8() % 8 {
            0 | 1 => {
                // Jump to the next due time (or a little past it), then time out.
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
            3 => {
                let h = self.reply(true);
                self.packet(h);
            }
            4 => {
                let h = self.arbitrary_header();
                self.packet(h);
            }
            5 => {
                let h = self.kiss();
                self.packet(h);
            }
            6 => {
                if let Some(h) = self.last_header {
                    self.packet(h);
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

    /// 48 bytes of input as a header, whatever they say (version forced into 1..=4).
    fn arbitrary_header(&mut self) -> Header {
        let mut bytes: [u8; HEADER_LEN] = self.input.array();
        bytes[0] = (bytes[0] & !0x38) | ((1 + (bytes[0] >> 3) % 4) << 3);
        Header::parse(&bytes).expect("version forced valid")
    }

    fn timeout(&mut self) {
        let before = self.assoc.stats();
        let due = self.assoc.poll_timeout();
        let local = self.local_now();
        match self.assoc.handle_timeout(self.now, local, &mut self.rng) {
            Some(bytes) => {
                assert!(due.is_some_and(|d| d <= self.now), "sent before due");
                let req = wire::parse(&bytes).expect("request parses").header;
                assert_eq!((req.mode, req.version), (Mode::Client, self.config.version));
                assert!(!req.transmit_ts.is_zero(), "zero nonce");
                assert!(
                    req.origin_ts.is_zero() && req.receive_ts.is_zero() && req.stratum == 0,
                    "request reveals state: {req:?}"
                );
                if let Some(prev) = self.last_request {
                    assert_ne!(prev.transmit_ts, req.transmit_ts, "nonce reused");
                }
                assert_eq!(self.assoc.stats().sent, before.sent + 1);
                let next = self.assoc.poll_timeout().expect("still polling");
                assert!(
                    next > self.now || self.now.as_nanos() == u64::MAX,
                    "next poll not in the future"
                );
                self.last_request = Some(req);
            }
            None => assert!(due.is_none_or(|d| d > self.now), "due request not sent"),
        }
    }

    fn packet(&mut self, header: Header) {
        self.last_header = Some(header);
        let before = state_without_stats(&self.assoc);
        let stats = self.assoc.stats();
        self.now = self.now + Duration::from_micros(self.input.u16() as u64);
        let local = self.local_now();
        match self
            .assoc
            .handle_packet(self.now, local, &header, self.precision)
        {
            Err(checks) => {
                assert!(!checks.genuine(), "genuine reply rejected: {checks:?}");
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
                assert_eq!(header.mode, Mode::Server);
                assert_eq!(self.assoc.stats().received, stats.received + 1);
                if let Reply::Sample(m) = reply {
                    let precision = NtpDuration::from_exponent(self.precision).to_seconds();
                    assert!(m.offset.is_finite() && m.dispersion.is_finite(), "{m:?}");
                    assert!(m.delay.is_finite() && m.delay >= precision, "{m:?}");
                    assert!(m.dispersion >= 0.0 && m.time == self.now, "{m:?}");
                    assert_eq!(self.assoc.reach() & 1, 1, "sample without reach");
                }
                if let Reply::Kiss(code) = reply {
                    assert_eq!(code, header.reference_id);
                }
                // At most one reply per request: the same reply again is refused.
                let again = self
                    .assoc
                    .clone()
                    .handle_packet(self.now, local, &header, 0);
                assert!(again.is_err(), "second reply to one request accepted");
            }
        }
    }

    fn check_invariants(&self) {
        let poll = self.assoc.poll();
        let (min, max) = (self.config.minpoll, self.config.maxpoll);
        assert!(
            min <= poll && poll <= max,
            "poll {poll:?} outside {min:?}..={max:?}"
        );
        let stats = self.assoc.stats();
        if stats.received == 0 {
            assert_eq!(self.assoc.reach(), 0, "reach without any reply");
            assert!(self.assoc.peer().is_none());
        }
        assert!(stats.received <= stats.sent, "more replies than requests");
        if self.assoc.denied().is_some() {
            assert!(self.assoc.poll_timeout().is_none());
        }
        if let Some(t) = self.assoc.last_receive() {
            assert!(t <= self.now);
        }
    }
}

/// Drives one association through the operations the input spells.
pub fn client_association(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let (a, b) = (
        PollInterval::new(input.i8() % 24),
        PollInterval::new(input.i8() % 24),
    );
    let config = ClientConfig {
        version: 1 + flags % 4,
        minpoll: a.min(b),
        maxpoll: a.max(b),
        iburst: flags & 4 != 0,
        key: None,
    };
    let mut rng = SplitMix64::new(input.u64());
    let now = Mono::from_nanos(input.u64() >> (flags >> 3));
    let spread = Duration::from_millis(input.u16() as u64);
    let assoc = ClientAssociation::new(config, now, spread, &mut rng);
    let mut driver = Driver {
        local_base: NtpTimestamp::from_bits(input.u64()),
        precision: input.i8(),
        input,
        assoc,
        config,
        rng,
        now,
        last_request: None,
        last_header: None,
    };
    driver.check_invariants();
    for _ in 0..MAX_OPS {
        if driver.input.is_empty() {
            break;
        }
        driver.step();
    }
}
