//! Broadcast and multicast modes (NTP mode 5; Comware `broadcast-server`, `broadcast-client`,
//! `multicast-server`, `multicast-client`; RFC 5905 section 9.2 NEWBC).
//!
//! Server side: [`BroadcastServer`] is a timer per interface. Every 2^poll seconds it builds
//! a mode 5 packet from the system's [`ServerState`], signed when it has a key, but only while
//! the system is synchronized (to a server or to its local reference): an unsynchronized
//! server sends nothing (Comware: "can synchronize broadcast clients only when its clock has
//! been synchronized").
//!
//! Client side: [`BroadcastClient`] is the dynamic association that the first acceptable
//! mode 5 packet from a server creates (see `broadcast_system.rs` for who may create one).
//! It first measures the path delay with a short mode 3/4 volley to that server
//! ([`CALIBRATION_REPLIES`] replies, at most [`CALIBRATION_ATTEMPTS`] requests
//! [`CALIBRATION_SPACING`] apart; the replies also give ordinary samples), keeps the smallest
//! delay, and from then on synchronizes from mode 5 packets alone:
//! offset = T3 (server transmit) + delay / 2 - T4 (local receive). The samples report the
//! calibrated delay plus twice the recent one-way jitter ([`oneway_jitter`]), so the filter
//! gives them the uncertainty that queueing on the one-way path really adds.
//!
//! Which mode 5 packets are believed (attack guide 1.F, B2-B4): mode 5, a non-zero transmit
//! timestamp strictly later than that of the last accepted mode 5 packet (a replay of the same
//! or an older packet is rejected), a valid MAC of the association's key when it has one (no
//! MAC at all when it has none), and not sooner than half the announced interval after the
//! last accepted one. Every check runs before anything is stored: a rejected packet changes
//! only the rejection counter, never the replay state (last transmit timestamp), the interval
//! state (time of the last accepted packet), reach, the calibrated delay or the association's
//! existence. Mode 4 replies of the volley pass the client tests 1-3 and 5 like any client's.

use crate::auth::{self, AuthResult, Received};
use crate::checks::PacketChecks;
use crate::client::{
    ClientConfig, ClientStats, ExchangeTimes, Measurement, PeerInfo, Reply, Request, PHI,
};
use crate::entropy::Entropy;
use crate::keys::{Key, KeyId, KeyTable};
use crate::peer::DYNAMIC_TIMEOUT;
use crate::server::ServerState;
use crate::time::{Mono, NtpDuration, NtpTimestamp, PollInterval};
use crate::wire::{Header, Leap, Mode};
use core::time::Duration;

/// Replies of the delay-calibration volley needed before mode 5 packets give samples.
pub const CALIBRATION_REPLIES: u8 = 4;
/// Requests of the volley at most; afterwards the best delay so far is used, or (with no
/// reply at all) a new volley starts one poll interval later.
pub const CALIBRATION_ATTEMPTS: u8 = 8;
/// Spacing of the volley's requests.
pub const CALIBRATION_SPACING: Duration = Duration::from_secs(2);
/// Mode 5 samples over which the smallest apparent one-way time is taken.
pub const ONEWAY_WINDOW: usize = 8;
/// Default send interval exponent of a broadcast/multicast server (64 s).
pub const DEFAULT_POLL: PollInterval = PollInterval::DEFAULT_MIN;

/// The key a broadcast/multicast server signs with, after the guide's result table: only
/// when authentication is enabled, a key id is associated with the server, and that key is
/// configured and trusted. Otherwise the server sends unsigned packets.
pub fn sender_key(auth_enabled: bool, keys: &KeyTable, key_id: Option<KeyId>) -> Option<Key> {
    if !auth_enabled {
        return None;
    }
    keys.get(key_id?).filter(|k| k.trusted()).copied()
}

/// Configuration of one broadcast or multicast server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BroadcastServerConfig {
    /// NTP version sent, 1..=4.
    pub version: u8,
    /// Send interval.
    pub poll: PollInterval,
    /// Signing key (see [`sender_key`]); `None`: unsigned.
    pub key: Option<Key>,
}

/// The sending side of broadcast or multicast mode on one interface.
#[derive(Clone, Debug)]
pub struct BroadcastServer {
    config: BroadcastServerConfig,
    next: Mono,
    sent: u64,
    /// Intervals skipped because the system was not synchronized.
    skipped: u64,
    last_sent: Option<Mono>,
}

impl BroadcastServer {
    /// A server whose first packet is due within one second of `now` (at random).
    pub fn new(config: BroadcastServerConfig, now: Mono, rng: &mut dyn Entropy) -> Self {
        Self {
            config,
            next: now + Duration::from_secs(1).mul_f64(rng.next_f64()),
            sent: 0,
            skipped: 0,
            last_sent: None,
        }
    }

    pub fn config(&self) -> &BroadcastServerConfig {
        &self.config
    }

    /// When the next packet is due.
    pub fn poll_timeout(&self) -> Mono {
        self.next
    }

    /// Packets sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Intervals skipped while unsynchronized.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    pub fn last_sent(&self) -> Option<Mono> {
        self.last_sent
    }

    /// At the interval: the mode 5 packet to send, built from `state` with `local_now` (the
    /// local clock just before sending) as transmit time; `None` when not due or when the
    /// system is not synchronized.
    pub fn handle_timeout(
        &mut self,
        now: Mono,
        local_now: NtpTimestamp,
        state: &ServerState,
        rng: &mut dyn Entropy,
    ) -> Option<Request> {
        if now < self.next {
            return None;
        }
        self.next = now + self.config.poll.as_duration();
        if state.leap == Leap::Unsynchronized || state.stratum == 0 || state.stratum >= 16 {
            self.skipped += 1;
            return None;
        }
        let h = Header {
            leap: state.leap,
            version: self.config.version,
            mode: Mode::Broadcast,
            stratum: state.stratum,
            poll: self.config.poll.log2(),
            precision: state.precision,
            root_delay: state.root_delay,
            root_dispersion: state.root_dispersion,
            reference_id: state.reference_id,
            reference_ts: state.reference_ts,
            origin_ts: NtpTimestamp::ZERO,
            receive_ts: NtpTimestamp::ZERO,
            transmit_ts: local_now.fuzz_below_precision(state.precision, rng.next_u64()),
        };
        let request = Request::build(&h, self.config.key.as_ref());
        self.sent += 1;
        self.last_sent = Some(now);
        Some(request)
    }
}

/// Where a broadcast client is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Measuring the delay with mode 3/4 exchanges.
    Calibrating,
    /// Synchronizing from mode 5 packets with the measured delay.
    Listening,
}

/// The dynamic association of a broadcast or multicast client with one server.
#[derive(Clone, Debug)]
pub struct BroadcastClient {
    /// `key`: the key that authenticated the creating packet (bound from then on);
    /// `version`: the server's.
    config: ClientConfig,
    multicast: bool,
    phase: Phase,
    /// The server's announced interval.
    poll: PollInterval,
    /// Next aging of the reach register.
    next_poll: Mono,
    /// Next volley request, while calibrating.
    next_request: Mono,
    attempts: u8,
    replies: u8,
    /// Nonce of the outstanding volley request.
    expected_origin: Option<NtpTimestamp>,
    /// Local time that request left (T1).
    sent_local: NtpTimestamp,
    /// Transmit timestamp of the last accepted mode 4 reply (test 1).
    last_reply_xmt: Option<NtpTimestamp>,
    /// Smallest round-trip delay of the volley, seconds.
    delay: Option<f64>,
    /// Replay state: transmit timestamp of the last accepted mode 5 packet.
    last_bcast_xmt: NtpTimestamp,
    /// Interval state: when that packet arrived, and the poll it announced.
    last_bcast_at: Mono,
    last_bcast_poll: PollInterval,
    /// (Receive time, apparent one-way time = local receive minus server transmit, seconds)
    /// of the last [`ONEWAY_WINDOW`] mode 5 samples; see [`oneway_jitter`].
    oneway: Vec<(Mono, f64)>,
    reach: u8,
    peer: Option<PeerInfo>,
    last_receive: Option<Mono>,
    last_valid: Mono,
    times: ExchangeTimes,
    stats: ClientStats,
    last_auth: Option<AuthResult>,
}

impl BroadcastClient {
    /// A new association from the creating mode 5 packet `first` (already authorised and
    /// authenticated by the caller; `config.key` is the key that did it). The volley starts
    /// at once.
    pub fn new(config: ClientConfig, multicast: bool, first: &Header, now: Mono) -> Self {
        let poll = PollInterval::new(first.poll.clamp(4, PollInterval::MAX.log2()));
        let config = ClientConfig {
            version: first.version.clamp(1, 4),
            minpoll: poll,
            maxpoll: poll,
            iburst: false,
            ..config
        };
        Self {
            config,
            multicast,
            phase: Phase::Calibrating,
            poll,
            next_poll: now + poll.as_duration(),
            next_request: now,
            attempts: 0,
            replies: 0,
            expected_origin: None,
            sent_local: NtpTimestamp::ZERO,
            last_reply_xmt: None,
            delay: None,
            last_bcast_xmt: first.transmit_ts,
            last_bcast_at: now,
            last_bcast_poll: poll,
            oneway: Vec::with_capacity(ONEWAY_WINDOW),
            reach: 1,
            peer: Some(PeerInfo::from_header(first)),
            last_receive: Some(now),
            last_valid: now,
            times: ExchangeTimes {
                transmit: first.transmit_ts,
                ..ExchangeTimes::default()
            },
            stats: ClientStats {
                received: 1,
                ..ClientStats::default()
            },
            last_auth: None,
        }
    }

    pub(crate) fn set_last_auth(&mut self, result: AuthResult) {
        self.last_auth = Some(result);
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Created by a multicast packet (shown as `mclient`) rather than a broadcast (`bclient`).
    pub fn multicast(&self) -> bool {
        self.multicast
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The calibrated delay, seconds.
    pub fn delay(&self) -> Option<f64> {
        self.delay
    }

    /// Earliest of the next volley request and the next reach aging.
    pub fn poll_timeout(&self) -> Option<Mono> {
        Some(match self.phase {
            Phase::Calibrating => self.next_request.min(self.next_poll),
            Phase::Listening => self.next_poll,
        })
    }

    /// Idle for longer than [`DYNAMIC_TIMEOUT`] and four announced intervals.
    pub fn expired(&self, now: Mono) -> bool {
        let limit = DYNAMIC_TIMEOUT.max(self.poll.as_duration() * 4);
        now.saturating_since(self.last_valid) >= limit
    }

    /// Ages the reach register once per announced interval and, while calibrating, returns
    /// the next mode 3 request of the volley (to send to the server's address from the NTP
    /// port). `local_now` is the local time just before sending; it is kept, never sent.
    pub fn handle_timeout(
        &mut self,
        now: Mono,
        local_now: NtpTimestamp,
        rng: &mut dyn Entropy,
    ) -> Option<Request> {
        if now >= self.next_poll {
            self.reach <<= 1;
            self.next_poll = now + self.poll.as_duration();
        }
        if self.phase != Phase::Calibrating || now < self.next_request {
            return None;
        }
        if self.attempts >= CALIBRATION_ATTEMPTS {
            if self.delay.is_some() {
                self.phase = Phase::Listening;
                self.expected_origin = None;
                return None;
            }
            // Nobody answered: try a new volley one interval later.
            self.attempts = 0;
            self.next_request = now + self.poll.as_duration();
            return None;
        }
        self.attempts += 1;
        self.next_request = now + CALIBRATION_SPACING;
        let mut nonce = NtpTimestamp::from_bits(rng.next_u64());
        while nonce.is_zero() || Some(nonce) == self.expected_origin {
            nonce = NtpTimestamp::from_bits(rng.next_u64());
        }
        let mut h = Header::new(Mode::Client);
        h.version = self.config.version;
        h.transmit_ts = nonce;
        self.expected_origin = Some(nonce);
        self.sent_local = local_now;
        self.times.origin = local_now;
        self.stats.sent += 1;
        let request = Request::build(&h, self.config.key.as_ref());
        Some(request)
    }

    /// A mode 5 packet from the server, or a mode 4 reply to the volley, received at
    /// monotonic `now` and local time `local_rx`. Err: rejected, nothing changed but the
    /// rejection counter.
    pub fn handle_packet<R: Received + ?Sized>(
        &mut self,
        now: Mono,
        local_rx: NtpTimestamp,
        packet: &R,
        precision: i8,
    ) -> Result<Reply, PacketChecks> {
        match packet.header().mode {
            Mode::Broadcast => self.handle_broadcast(now, local_rx, packet, precision),
            Mode::Server => self.handle_reply(now, local_rx, packet, precision),
            _ => Err(self.reject(PacketChecks {
                bogus_origin: true,
                ..PacketChecks::default()
            })),
        }
    }

    /// Test 5 for this association: its key if it has one, else no MAC at all.
    fn authenticate<R: Received + ?Sized>(&self, packet: &R) -> Result<AuthResult, AuthResult> {
        match &self.config.key {
            Some(key) => {
                let r = auth::verify_with_key(key, packet.authenticated(), packet.mac());
                if r.is_ok() {
                    Ok(r)
                } else {
                    Err(r)
                }
            }
            None => match auth::verify(&KeyTable::new(), packet.authenticated(), packet.mac()) {
                AuthResult::NoMac => Ok(AuthResult::NoMac),
                other => Err(other),
            },
        }
    }

    fn handle_broadcast<R: Received + ?Sized>(
        &mut self,
        now: Mono,
        local_rx: NtpTimestamp,
        packet: &R,
        precision: i8,
    ) -> Result<Reply, PacketChecks> {
        let h = packet.header();
        let mut checks = PacketChecks::default();
        if h.transmit_ts.is_zero() {
            checks.zero_timestamp = true;
            return Err(self.reject(checks));
        }
        if h.transmit_ts - self.last_bcast_xmt <= NtpDuration::ZERO {
            // The same or an older transmit timestamp: a replay.
            checks.duplicate = true;
            return Err(self.reject(checks));
        }
        // The result is kept only once the packet has passed every check below: a signed
        // packet that is then refused changes nothing but the counters.
        let auth = match self.authenticate(packet) {
            Ok(r) => r,
            Err(_) => {
                checks.auth_failed = true;
                return Err(self.reject(checks));
            }
        };
        // Sooner than half the announced interval after the last one: not the server's
        // rhythm (checked only now, so that a forged poll field cannot decide it).
        let announced = self
            .last_bcast_poll
            .min(PollInterval::new(h.poll.clamp(4, PollInterval::MAX.log2())));
        if now.saturating_since(self.last_bcast_at) < announced.as_duration() / 2 {
            checks.duplicate = true;
            self.stats.rejected += 1;
            self.stats.last_rejection = Some("too-early");
            return Err(checks);
        }
        // Genuine.
        if self.config.key.is_some() {
            self.last_auth = Some(auth);
        }
        self.last_bcast_xmt = h.transmit_ts;
        self.last_bcast_at = now;
        self.last_bcast_poll = PollInterval::new(h.poll.clamp(4, PollInterval::MAX.log2()));
        self.poll = self.last_bcast_poll;
        self.stats.received += 1;
        self.last_valid = now;
        self.reach |= 1;
        self.last_receive = Some(now);
        self.peer = Some(PeerInfo::from_header(h));
        self.times.receive = NtpTimestamp::ZERO;
        self.times.transmit = h.transmit_ts;
        let Some(delay) = self.delay.filter(|_| self.phase == Phase::Listening) else {
            return Ok(Reply::Handshake);
        };
        let mut run = PacketChecks::run(h, None, None);
        run.bogus_origin = false;
        run.zero_timestamp = false;
        if !run.passed() {
            self.stats.last_rejection = run.first_failure();
            return Ok(Reply::Unusable(run));
        }
        let oneway = (local_rx - h.transmit_ts).to_seconds();
        let offset = delay / 2.0 - oneway;
        // Queueing on the way looks like a clock offset, and one packet cannot tell them
        // apart; the spread of recent packets' one-way times can. Report it (twice, as a
        // round trip would show it) in the sample's delay, so that the filter gives mode 5
        // samples the uncertainty a reply with that much excess delay would have.
        if self.oneway.len() == ONEWAY_WINDOW {
            self.oneway.remove(0);
        }
        self.oneway.push((now, oneway));
        let excess = oneway_jitter(&self.oneway);
        let precision_s = NtpDuration::from_exponent(precision).to_seconds();
        let peer_precision_s = NtpDuration::from_exponent(h.precision).to_seconds();
        let dispersion = precision_s + peer_precision_s + PHI * delay;
        Ok(Reply::Sample(Measurement {
            offset,
            delay: delay + 2.0 * excess,
            dispersion,
            time: now,
            peer: PeerInfo::from_header(h),
        }))
    }

    fn handle_reply<R: Received + ?Sized>(
        &mut self,
        now: Mono,
        local_rx: NtpTimestamp,
        packet: &R,
        precision: i8,
    ) -> Result<Reply, PacketChecks> {
        let h = packet.header();
        let mut checks = PacketChecks::run(h, self.expected_origin, self.last_reply_xmt);
        if !checks.genuine() {
            return Err(self.reject(checks));
        }
        match self.authenticate(packet) {
            Ok(r) if self.config.key.is_some() => self.last_auth = Some(r),
            Ok(_) => {}
            Err(_) => {
                checks.auth_failed = true;
                return Err(self.reject(checks));
            }
        }
        self.expected_origin = None;
        self.last_reply_xmt = Some(h.transmit_ts);
        self.stats.received += 1;
        self.last_valid = now;
        if h.is_kiss() {
            return Ok(Reply::Kiss(h.reference_id));
        }
        self.reach |= 1;
        self.last_receive = Some(now);
        self.times.receive = h.receive_ts;
        self.times.transmit = h.transmit_ts;
        if !checks.passed() {
            self.stats.last_rejection = checks.first_failure();
            return Ok(Reply::Unusable(checks));
        }
        let mut m = Measurement::from_exchange(self.sent_local, h, local_rx, precision, now);
        let delay = m.delay;
        self.delay = Some(self.delay.map_or(delay, |d| d.min(delay)));
        self.replies += 1;
        if self.replies >= CALIBRATION_REPLIES {
            self.phase = Phase::Listening;
        }
        // The server's mode 4 header is as good as its mode 5 header for the displays, but
        // the peer mode shown stays broadcast once a mode 5 packet was seen.
        let mut info = PeerInfo::from_header(h);
        info.mode = Mode::Broadcast;
        self.peer = Some(info);
        m.peer = info;
        Ok(Reply::Sample(m))
    }

    fn reject(&mut self, checks: PacketChecks) -> PacketChecks {
        self.stats.rejected += 1;
        self.stats.last_rejection = checks.first_failure();
        checks
    }

    /// The local clock was stepped by `step` seconds.
    pub fn apply_step(&mut self, step: f64) {
        if !step.is_finite() {
            // Not a step anyone can make; it would poison every later one-way time.
            return;
        }
        if !self.sent_local.is_zero() {
            self.sent_local += NtpDuration::from_seconds(step);
        }
        for (_, t) in &mut self.oneway {
            *t += step;
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

    pub fn last_auth(&self) -> Option<AuthResult> {
        self.last_auth
    }

    pub fn auth_status(&self) -> &'static str {
        AuthResult::session_status(self.last_auth)
    }
}

/// The one-way jitter of the mode 5 packets, seconds, from `window` (receive time, apparent
/// one-way time): the apparent one-way time moves with queueing and with the clocks' relative
/// drift; differences of consecutive values, less their median (the drift), leave the
/// queueing, whose robust spread (median absolute difference, scaled to a standard deviation
/// of one value) is returned. Zero with fewer than three values.
pub fn oneway_jitter(window: &[(Mono, f64)]) -> f64 {
    let steps: Vec<(f64, f64)> = window
        .windows(2)
        .filter_map(|w| {
            let dt = w[1].0.saturating_since(w[0].0).as_secs_f64();
            (dt > 0.0).then(|| (dt, w[1].1 - w[0].1))
        })
        .collect();
    if steps.len() < 2 {
        return 0.0;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rate = median(steps.iter().map(|(dt, dv)| dv / dt).collect());
    let mad = median(
        steps
            .iter()
            .map(|(dt, dv)| (dv - rate * dt).abs())
            .collect(),
    );
    // MAD of a difference of two values -> standard deviation of one value.
    1.4826 * mad / core::f64::consts::SQRT_2
}

#[cfg(test)]
#[path = "broadcast_tests.rs"]
mod tests;
