//! One client association (NTP mode 3 to a server answering in mode 4): when to send, what
//! to send, which replies to believe, and the measurement each good reply gives.
//!
//! Call order, for the owner (the daemon's event loop or the simulator):
//! 1. [`ClientAssociation::poll_timeout`] tells when the next request is due;
//! 2. at that time call [`ClientAssociation::handle_timeout`], send the bytes it returns;
//! 3. for every datagram from the server, parse it and call
//!    [`ClientAssociation::handle_packet`] with the local receive time;
//! 4. when the clock is stepped, call [`ClientAssociation::apply_step`].
//!
//! Requests reveal nothing about the local clock (RFC 9109 spirit, chrony and ntpd-rs do the
//! same): every header field is zero except version and mode, and the transmit timestamp is a
//! random nonce that the reply must echo as its origin timestamp. The real local send time is
//! kept here, never sent. A reply that fails tests 1-3 changes no state at all.
//!
//! Authentication (the guide's client/server rules): an association configured with a key
//! ([`ClientConfig::key`]) signs every request with it and accepts only replies carrying a
//! valid MAC of that same key; anything else (no MAC, crypto-NAK, another key, bad digest,
//! and every reply while the key is not trusted) fails test 5 and, like tests 1-3, changes no
//! state. An association without a key (authentication disabled, or no key given) sends plain
//! requests and ignores any MAC on replies.

use crate::auth::{self, AuthResult, Received};
use crate::checks::PacketChecks;
use crate::entropy::Entropy;
use crate::keys::Key;
use crate::time::{Mono, NtpDuration, NtpTimestamp, PollInterval};
use crate::wire::{Header, Leap, Mode, ReferenceId, HEADER_LEN, MAX_V4_MAC_LEN};
use core::time::Duration;

/// Frequency tolerance of a clock, RFC 5905 PHI: 15 ppm, in s/s.
pub const PHI: f64 = 15e-6;
/// Requests sent in an initial burst (`iburst`).
pub const IBURST_COUNT: u8 = 4;
/// Spacing of burst requests.
pub const BURST_SPACING: Duration = Duration::from_secs(2);
/// RATE kisses never push the poll interval beyond this (RFC 8633: 2^13 s, about 2 hours).
pub const KOD_MAX_POLL: PollInterval = PollInterval::MAX;
/// Polls without a reply after which a server counts as unreachable and the poll backs off.
pub const UNREACH_POLLS: u32 = 8;

/// Static configuration of one client association.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// NTP version to send, 1..=4.
    pub version: u8,
    pub minpoll: PollInterval,
    pub maxpoll: PollInterval,
    /// Send a burst of requests at start and while unreachable.
    pub iburst: bool,
    /// Key of this association: `Some` when authentication is enabled and a key id is
    /// configured for the server (the key's trusted flag decides whether any reply can pass
    /// test 5); `None` when authentication is disabled or no key is given.
    pub key: Option<Key>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            version: 4,
            minpoll: PollInterval::DEFAULT_MIN,
            maxpoll: PollInterval::DEFAULT_MAX,
            iburst: false,
            key: None,
        }
    }
}

/// Longest request: the header and a MAC.
pub const MAX_REQUEST_LEN: usize = HEADER_LEN + MAX_V4_MAC_LEN;

/// The bytes of one request (header, then the MAC when the association has a key).
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Request {
    buf: [u8; MAX_REQUEST_LEN],
    len: usize,
}

impl Request {
    /// The header's 48 bytes, followed by its MAC when `key` is given (every mode builds its
    /// packets this way).
    pub(crate) fn build(header: &Header, key: Option<&Key>) -> Self {
        let mut request = Self {
            buf: [0; MAX_REQUEST_LEN],
            len: HEADER_LEN,
        };
        header.emit(
            (&mut request.buf[..HEADER_LEN])
                .try_into()
                .expect("48 bytes"),
        );
        if let Some(key) = key {
            request.len = auth::append_mac(key, &mut request.buf, HEADER_LEN)
                .expect("a MAC always fits after the header");
        }
        request
    }
}

impl core::ops::Deref for Request {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl AsRef<[u8]> for Request {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl core::fmt::Debug for Request {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Request({} bytes)", self.len)
    }
}

/// What the server said about itself in its last genuine reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub leap: Leap,
    pub version: u8,
    pub mode: Mode,
    pub stratum: u8,
    pub poll: i8,
    pub precision: i8,
    pub root_delay: NtpDuration,
    pub root_dispersion: NtpDuration,
    pub reference_id: ReferenceId,
    pub reference_ts: NtpTimestamp,
}

impl PeerInfo {
    pub(crate) fn from_header(h: &Header) -> Self {
        Self {
            leap: h.leap,
            version: h.version,
            mode: h.mode,
            stratum: h.stratum,
            poll: h.poll,
            precision: h.precision,
            root_delay: h.root_delay,
            root_dispersion: h.root_dispersion,
            reference_id: h.reference_id,
            reference_ts: h.reference_ts,
        }
    }

    /// Root distance the server advertises: root delay / 2 + root dispersion, seconds.
    pub fn root_distance(&self) -> f64 {
        self.root_delay.to_seconds() / 2.0 + self.root_dispersion.to_seconds()
    }
}

/// One offset/delay measurement from a good reply (RFC 5905 section 8).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measurement {
    /// Server time minus local time, seconds (positive: the local clock is behind).
    pub offset: f64,
    /// Round-trip delay, seconds, at least the precision.
    pub delay: f64,
    /// Error bound from both precisions and the frequency tolerance over the exchange, seconds.
    pub dispersion: f64,
    /// Monotonic time of reception.
    pub time: Mono,
    /// The server's header values that came with it.
    pub peer: PeerInfo,
}

impl Measurement {
    /// The RFC 5905 on-wire calculation (section 8) for one exchange: `t1` our transmit time,
    /// `t2`/`t3` the other side's receive and transmit times from header `h`, `t4` our
    /// receive time; `precision` is our clock's. The delay is at least our precision; the
    /// dispersion covers both precisions and the frequency tolerance over the exchange.
    pub fn from_exchange(
        t1: NtpTimestamp,
        h: &Header,
        t4: NtpTimestamp,
        precision: i8,
        now: Mono,
    ) -> Self {
        let (t2, t3) = (h.receive_ts, h.transmit_ts);
        let precision_s = NtpDuration::from_exponent(precision).to_seconds();
        let peer_precision_s = NtpDuration::from_exponent(h.precision).to_seconds();
        Self {
            offset: ((t2 - t1).to_seconds() + (t3 - t4).to_seconds()) / 2.0,
            delay: ((t4 - t1).to_seconds() - (t3 - t2).to_seconds()).max(precision_s),
            dispersion: precision_s + peer_precision_s + PHI * (t4 - t1).to_seconds().abs(),
            time: now,
            peer: PeerInfo::from_header(h),
        }
    }
}

/// What a reply that passed tests 1-3 amounted to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reply {
    /// Usable for synchronization.
    Sample(Measurement),
    /// Genuine but not usable (unsynchronized server, implausible header); the checks say why.
    Unusable(PacketChecks),
    /// A Kiss-o'-Death with a valid origin; RATE has lengthened our poll, DENY and RSTR have
    /// stopped the association.
    Kiss(ReferenceId),
    /// Symmetric modes: a genuine packet that only updates the exchange state (the timestamps
    /// we echo), without a sample: the peer had nothing of ours yet, or answered a packet of
    /// ours that already gave a sample.
    Handshake,
}

/// The timestamps of the last exchange, for `sessions --verbose` (Comware's org/rcv/xmt).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExchangeTimes {
    pub origin: NtpTimestamp,
    pub receive: NtpTimestamp,
    pub transmit: NtpTimestamp,
}

/// Counters kept per association.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub sent: u64,
    pub received: u64,
    pub rejected: u64,
    pub last_rejection: Option<&'static str>,
}

/// The state machine of one client association.
#[derive(Clone, Debug)]
pub struct ClientAssociation {
    config: ClientConfig,
    /// Poll interval in use (between minpoll and maxpoll).
    poll: PollInterval,
    /// Poll interval the system asks for; `poll` follows it unless unreachable or kissed.
    system_poll: PollInterval,
    next_transmit: Mono,
    burst_left: u8,
    /// Reachability shift register: bit 0 is the most recent poll.
    reach: u8,
    /// Polls since the last genuine reply.
    unreach: u32,
    /// Random transmit timestamp of the outstanding request, if any.
    expected_origin: Option<NtpTimestamp>,
    /// Local clock reading when that request was sent (T1).
    sent_local: NtpTimestamp,
    last_accepted_transmit: Option<NtpTimestamp>,
    peer: Option<PeerInfo>,
    last_receive: Option<Mono>,
    times: ExchangeTimes,
    denied: Option<ReferenceId>,
    stats: ClientStats,
    /// Authentication result of the last reply that passed tests 1-3 (keyed associations).
    last_auth: Option<AuthResult>,
}

impl ClientAssociation {
    /// A new association whose first request goes out at `now` (plus up to `start_spread`
    /// chosen at random, so many associations do not start in lockstep).
    pub fn new(
        config: ClientConfig,
        now: Mono,
        start_spread: Duration,
        rng: &mut dyn Entropy,
    ) -> Self {
        let poll = config.minpoll;
        let spread = start_spread.mul_f64(rng.next_f64());
        Self {
            config,
            poll,
            system_poll: poll,
            next_transmit: now + spread,
            burst_left: 0,
            reach: 0,
            unreach: 0,
            expected_origin: None,
            sent_local: NtpTimestamp::ZERO,
            last_accepted_transmit: None,
            peer: None,
            last_receive: None,
            times: ExchangeTimes::default(),
            denied: None,
            stats: ClientStats::default(),
            last_auth: None,
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// When the next request is due; `None` once the server denied us service.
    pub fn poll_timeout(&self) -> Option<Mono> {
        self.denied.is_none().then_some(self.next_transmit)
    }

    /// If a request is due at `now`, returns its bytes. `local_now` is the local clock's
    /// reading just before sending (T1); it is remembered, not sent.
    pub fn handle_timeout(
        &mut self,
        now: Mono,
        local_now: NtpTimestamp,
        rng: &mut dyn Entropy,
    ) -> Option<Request> {
        if self.denied.is_some() || now < self.next_transmit {
            return None;
        }
        if self.burst_left > 0 {
            // One more request of a burst: not a new poll.
            self.burst_left -= 1;
        } else {
            // A new poll: shift the reach register (a missing reply shows as a zero).
            self.reach <<= 1;
            if self.expected_origin.is_some() {
                self.unreach = self.unreach.saturating_add(1);
            }
            self.update_poll();
        }
        let mut nonce = NtpTimestamp::from_bits(rng.next_u64());
        while nonce.is_zero() || Some(nonce) == self.expected_origin {
            nonce = NtpTimestamp::from_bits(rng.next_u64());
        }
        let mut header = Header::new(Mode::Client);
        header.version = self.config.version;
        header.transmit_ts = nonce;
        self.expected_origin = Some(nonce);
        self.sent_local = local_now;
        self.times.origin = local_now;
        self.stats.sent += 1;
        self.schedule_next(now, rng);
        Some(Request::build(&header, self.config.key.as_ref()))
    }

    fn schedule_next(&mut self, now: Mono, rng: &mut dyn Entropy) {
        if self.burst_left > 0 {
            let spacing = BURST_SPACING
                .min(self.poll.as_duration())
                .max(Duration::from_millis(1));
            self.next_transmit = now + spacing;
        } else {
            // Up to 1/16 shorter than the interval, at random, so requests do not align.
            let interval = self.poll.as_duration().mul_f64(1.0 - rng.next_f64() / 16.0);
            self.next_transmit = now + interval;
        }
    }

    fn update_poll(&mut self) {
        let (min, max) = (self.config.minpoll, self.config.maxpoll);
        // iburst: the first poll opens a burst; its other requests follow at BURST_SPACING,
        // then a whole poll interval. The burst of a server coming back is sent when its
        // first reply arrives (`recover`), not at every poll while it is silent.
        if self.config.iburst && self.reach == 0 && self.stats.sent == 0 {
            self.burst_left = IBURST_COUNT - 1;
        }
        if self.unreach >= UNREACH_POLLS {
            // Unreachable for a while: back off one step per poll (RFC 5905 s. 13). With
            // iburst, single requests and a back-off capped two steps below maxpoll: the
            // same packet rate as a burst of four at maxpoll, but the first reply after an
            // outage comes four times sooner.
            let cap = if self.config.iburst {
                max.dec(min).dec(min)
            } else {
                max
            };
            self.poll = self.poll.inc(cap);
        } else {
            let target = self.system_poll.max(min).min(max);
            // Follow the system's wish, but never shorter than a RATE kiss asked for.
            self.poll = if target < self.poll && self.kissed_rate() {
                self.poll
            } else {
                target
            };
        }
    }

    /// The first reply from a server that was unreachable: polling restarts at minpoll (the
    /// system's poll adaptation lengthens it again), and with iburst the rest of one burst
    /// follows, so the server's first minutes back give many samples, not the one or two a
    /// backed-off interval would. Once per recovery: `unreach` is zero afterwards.
    fn recover(&mut self, now: Mono) {
        self.poll = self.config.minpoll;
        self.system_poll = self.config.minpoll;
        let next = if self.config.iburst && self.burst_left == 0 {
            self.burst_left = IBURST_COUNT - 1;
            now + BURST_SPACING
                .min(self.poll.as_duration())
                .max(Duration::from_millis(1))
        } else {
            now + self.poll.as_duration()
        };
        self.next_transmit = self.next_transmit.min(next);
    }

    fn kissed_rate(&self) -> bool {
        self.peer.is_some_and(|p| p.stratum == 0)
    }

    /// The poll interval the system discipline asks for (clamped to minpoll..=maxpoll at the
    /// next poll).
    pub fn set_system_poll(&mut self, poll: PollInterval) {
        self.system_poll = poll;
    }

    /// A datagram from the server (a parsed [`crate::wire::Packet`], or a bare [`Header`]
    /// when there is no MAC to check), received at monotonic `now` and local clock time
    /// `local_rx` (T4). `precision` is the local clock's precision exponent.
    ///
    /// Err: the reply failed tests 1-3 or 5 and nothing changed but the rejection counter
    /// (and, for test 5, the authentication result shown by [`Self::auth_status`]).
    pub fn handle_packet<R: Received + ?Sized>(
        &mut self,
        now: Mono,
        local_rx: NtpTimestamp,
        reply: &R,
        precision: i8,
    ) -> Result<Reply, PacketChecks> {
        let header = reply.header();
        if header.mode != Mode::Server {
            let checks = PacketChecks {
                bogus_origin: true,
                ..Default::default()
            };
            return Err(self.reject(checks));
        }
        let mut checks =
            PacketChecks::run(header, self.expected_origin, self.last_accepted_transmit);
        if !checks.genuine() {
            return Err(self.reject(checks));
        }
        if let Some(key) = &self.config.key {
            // Test 5, only for replies that passed tests 1-3 (others are noise).
            let result = auth::verify_with_key(key, reply.authenticated(), reply.mac());
            self.last_auth = Some(result);
            if !result.is_ok() {
                checks.auth_failed = true;
                return Err(self.reject(checks));
            }
        }
        // Genuine: accept at most one reply per request.
        self.expected_origin = None;
        self.last_accepted_transmit = Some(header.transmit_ts);
        self.stats.received += 1;

        if header.is_kiss() {
            return Ok(Reply::Kiss(self.handle_kiss(header)));
        }
        if self.unreach >= UNREACH_POLLS {
            self.recover(now);
        }
        self.reach |= 1;
        self.unreach = 0;
        self.last_receive = Some(now);
        self.peer = Some(PeerInfo::from_header(header));
        self.times.receive = header.receive_ts;
        self.times.transmit = header.transmit_ts;
        if !checks.passed() {
            self.stats.last_rejection = checks.first_failure();
            return Ok(Reply::Unusable(checks));
        }

        Ok(Reply::Sample(Measurement::from_exchange(
            self.sent_local,
            header,
            local_rx,
            precision,
            now,
        )))
    }

    fn reject(&mut self, checks: PacketChecks) -> PacketChecks {
        self.stats.rejected += 1;
        self.stats.last_rejection = checks.first_failure();
        checks
    }

    fn handle_kiss(&mut self, header: &Header) -> ReferenceId {
        let code = header.reference_id;
        match code {
            ReferenceId::KISS_DENY | ReferenceId::KISS_RSTR => self.denied = Some(code),
            ReferenceId::KISS_RATE => {
                // Lengthen by one step, or to the server's poll if that is longer, within limits.
                let cap = self.config.maxpoll.min(KOD_MAX_POLL).max(self.poll);
                let asked = PollInterval::new(header.poll).min(cap);
                self.poll = self.poll.inc(cap).max(asked);
                // Record the kiss so the system poll cannot undo it before a normal reply.
                let mut info = self.peer.unwrap_or(PeerInfo::from_header(header));
                info.stratum = 0;
                self.peer = Some(info);
            }
            _ => {} // Unknown codes are ignored (RFC 5905 s. 7.4).
        }
        code
    }

    /// The local clock was stepped by `step` seconds: the stored send time moves with it.
    pub fn apply_step(&mut self, step: f64) {
        if !self.sent_local.is_zero() {
            self.sent_local += NtpDuration::from_seconds(step);
        }
    }

    pub fn reach(&self) -> u8 {
        self.reach
    }

    pub fn poll(&self) -> PollInterval {
        self.poll
    }

    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    pub fn last_receive(&self) -> Option<Mono> {
        self.last_receive
    }

    pub fn times(&self) -> ExchangeTimes {
        self.times
    }

    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// Authentication result of the last reply that passed tests 1-3; `None` without a key
    /// or before such a reply.
    pub fn last_auth(&self) -> Option<AuthResult> {
        self.last_auth
    }

    /// `auth` as shown per session: `none` (no key, or no reply yet), `ok` (the last reply
    /// was authenticated) or `failed`.
    pub fn auth_status(&self) -> &'static str {
        AuthResult::session_status(self.last_auth)
    }

    /// The kiss code that stopped this association, if one did.
    pub fn denied(&self) -> Option<ReferenceId> {
        self.denied
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
