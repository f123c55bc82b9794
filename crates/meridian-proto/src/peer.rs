//! One symmetric association (NTP modes 1 and 2, RFC 5905 sections 8-9, basic mode only):
//! the active side polls its peer with mode 1 packets; the passive side, created on demand
//! for an authorised mode 1 packet, answers each genuine mode 1 packet at once with mode 2.
//! Both sides measure offset and delay from the peer's packets.
//!
//! Bookkeeping. A symmetric packet carries `org` = the peer's last transmit timestamp we
//! accepted, `rec` = our local time when that packet arrived, `xmt` = our local time now.
//! The peer computes its sample from our packet (T1 = `org`, its own earlier send time;
//! T2 = `rec`; T3 = `xmt`; T4 = its receive time), so unlike client requests the transmit
//! timestamp must be the real local time: symmetric mode cannot hide the clock (chrony and
//! ntpd also send real time in symmetric mode). Only the bits below the clock precision are
//! random, as in the server path.
//!
//! Which packets are believed. We remember the transmit timestamps of our last
//! [`SENT_RING`] packets. A received packet must be mode 1 (or 2 on the active side), have a
//! non-zero transmit timestamp different from the last one accepted (test 1), carry an
//! origin that is one of our remembered transmit timestamps (test 2) or zero (the peer has
//! not received anything of ours yet: a start or restart), and, on a keyed association,
//! a valid MAC of exactly its key (test 5; a crypto-NAK never passes). Anything else is
//! rejected and changes nothing but the rejection counter: no timestamps, no reach, no peer
//! variables, no timer, no reply. Remembering several transmit timestamps instead of only the
//! last one lets two peers whose packets cross (both active, different polls) or whose
//! packets get lost resume without either side having to believe a bogus-origin packet.
//! A genuine packet whose origin is the fresh (not yet used) transmit timestamp of ours gives
//! one sample; that entry and all older ones are then used, so a replay gives none. A packet
//! answering one of ours must also be newer than the last such packet accepted, so a replayed
//! older genuine packet changes nothing either.
//!
//! An unauthenticated association cannot tell a forged packet with origin zero from a peer
//! restart; such a packet only moves the timestamps we echo, which costs at most one exchange
//! (the peer's next packet carries our real transmit timestamp again). It never touches reach,
//! the peer variables or the samples. Authenticated associations are immune.
//!
//! Before the peers settle (Comware, "Symmetric peers": the two sides first exchange mode 3
//! and mode 4 messages, then the active side sends mode 1 periodically), a static active
//! association calibrates: its first polls send client requests (mode 3, random transmit
//! timestamp, its key), checked as a client checks a reply (origin, duplicate, MAC of exactly
//! its key, never a crypto-NAK). The first valid mode 4 reply gives the first sample (its
//! delay measured like a client's) and switches the association to mode 1. A peer that never
//! answers mode 3 (chronyd without `allow` for our address, an ACL granting only `peer`
//! toward an implementation without client service) must not break the exchange: after
//! [`CALIBRATION_TRIES`] unanswered requests, or on a valid kiss answering one, we fall back
//! to mode 1 all the same. [`PeerAssociation::calibration`] shows where an association stands.
//! See `peer_calib.rs`.
//!
//! Kiss-o'-Death (attack guide C6). A kiss counts only with an origin that is one of our
//! remembered transmit timestamps not answered yet (or the outstanding mode 3 request; the
//! kiss then answers it, so a replay counts for nothing) and, on a keyed
//! association, a valid MAC of its key; anything else is a rejected packet like any forgery.
//! RATE lengthens our poll by one step (capped by maxpoll and [`crate::client::KOD_MAX_POLL`]);
//! DENY and RSTR stop an active association (it sends nothing more,
//! [`PeerAssociation::denied`]) and make the system remove a passive one. No kiss gives a
//! sample or updates the peer variables.

use crate::auth::{self, AuthResult, Received};
use crate::checks::PacketChecks;
use crate::client::{
    ClientConfig, ClientStats, ExchangeTimes, Measurement, PeerInfo, Reply, Request, IBURST_COUNT,
    MAX_REQUEST_LEN,
};
use crate::entropy::Entropy;
use crate::server::ServerState;
use crate::time::{Mono, NtpDuration, NtpTimestamp, PollInterval};
use crate::wire::{Header, Mode, ReferenceId, HEADER_LEN};
use core::time::Duration;

/// How many of our own transmit timestamps are remembered for test 2.
pub const SENT_RING: usize = 8;
/// A dynamic (passive) association without genuine packets for this long is removed
/// (Comware: "about 12 minutes").
pub const DYNAMIC_TIMEOUT: Duration = Duration::from_secs(720);
/// Mode 3 requests an active association sends before it falls back to mode 1 unanswered.
pub const CALIBRATION_TRIES: u8 = 2;

/// Where a symmetric-active association stands in the exchange before the peers settle.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Calibration {
    /// Still sending mode 3 requests.
    Pending,
    /// A valid mode 4 reply arrived: mode 1 from now on.
    Done,
    /// No valid mode 4 reply (unanswered, or refused with a kiss): mode 1 all the same.
    FellBack,
}

impl Calibration {
    /// Word for `sessions --verbose`.
    pub fn as_str(self) -> &'static str {
        match self {
            Calibration::Pending => "calibrating",
            Calibration::Done => "calibrated",
            Calibration::FellBack => "uncalibrated",
        }
    }
}

/// Which side of the symmetric exchange we are.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PeerRole {
    /// Configured (`[[unicast-peer]]`): polls the peer with mode 1.
    Active,
    /// Created by the peer's mode 1 packet: answers with mode 2, removed when idle.
    Passive,
}

#[derive(Copy, Clone, Debug)]
struct Sent {
    /// Transmit timestamp as it went on the wire.
    wire: NtpTimestamp,
    /// Local clock time of sending (moves with steps).
    local: NtpTimestamp,
    /// Already gave a sample (or is older than one that did).
    used: bool,
}

/// The state machine of one symmetric association.
#[derive(Clone, Debug)]
pub struct PeerAssociation {
    role: PeerRole,
    config: ClientConfig,
    poll: PollInterval,
    system_poll: PollInterval,
    next_transmit: Mono,
    burst_left: u8,
    reach: u8,
    /// Polls since the last genuine packet.
    unreach: u32,
    got_since_poll: bool,
    /// The peer's last accepted transmit timestamp, echoed as our origin (state `org`).
    remote_xmt: Option<NtpTimestamp>,
    /// Local time that packet arrived, echoed as our receive timestamp (state `rec`).
    remote_rx: NtpTimestamp,
    /// Transmit timestamp of the last accepted packet that answered one of ours: packets
    /// answering ours must be newer (replays of older genuine packets are refused).
    last_answer_xmt: Option<NtpTimestamp>,
    /// Our recent transmissions, newest last.
    sent: Vec<Sent>,
    peer: Option<PeerInfo>,
    last_receive: Option<Mono>,
    /// Last genuine packet or creation: the passive side expires from here.
    last_valid: Mono,
    times: ExchangeTimes,
    stats: ClientStats,
    last_auth: Option<AuthResult>,
    /// Active side: the mode 3/4 exchange before mode 1 (passive: always `Done`).
    calibration: Calibration,
    /// Mode 3 requests sent so far.
    calib_requests: u8,
    /// Random transmit timestamp of the outstanding mode 3 request.
    calib_expected: Option<NtpTimestamp>,
    /// Local time that request was sent (T1).
    calib_local: NtpTimestamp,
    /// The kiss (DENY or RSTR) that stopped this association.
    denied: Option<ReferenceId>,
    /// Poll a RATE kiss asked for: the system poll does not shorten below it until the
    /// peer's next genuine non-kiss packet.
    rate_floor: Option<PollInterval>,
}

/// Where a received packet's origin timestamp points.
enum Origin {
    /// One of our remembered transmissions (index into `sent`), fresh or used.
    Ours(usize),
    /// Zero: the peer has nothing of ours yet.
    Zero,
    Bogus,
}

impl PeerAssociation {
    /// A configured symmetric-active association whose first packet goes out at `now` plus
    /// up to `start_spread`.
    pub fn active(
        config: ClientConfig,
        now: Mono,
        start_spread: Duration,
        rng: &mut dyn Entropy,
    ) -> Self {
        let spread = start_spread.mul_f64(rng.next_f64());
        let mut a = Self::new(PeerRole::Active, config, now);
        a.next_transmit = now + spread;
        a.burst_left = if config.iburst { IBURST_COUNT } else { 1 };
        a
    }

    /// A symmetric-passive association for the peer whose mode 1 packet `first` (already
    /// authorised by the caller) arrived at `now`, local time `local_rx`. The caller answers
    /// with [`Self::respond`]. `config.key` is the key that authenticated `first`, if any.
    pub fn passive(
        mut config: ClientConfig,
        first: &Header,
        now: Mono,
        local_rx: NtpTimestamp,
    ) -> Self {
        let poll = PollInterval::new(
            first
                .poll
                .clamp(PollInterval::MIN.log2(), PollInterval::MAX.log2()),
        );
        config.minpoll = PollInterval::MIN;
        config.maxpoll = PollInterval::MAX;
        config.version = first.version;
        let mut a = Self::new(PeerRole::Passive, config, now);
        a.poll = poll;
        a.next_transmit = now + poll.as_duration();
        a.remote_xmt = Some(first.transmit_ts);
        a.remote_rx = local_rx;
        a.peer = Some(PeerInfo::from_header(first));
        a.last_receive = Some(now);
        a.times.receive = first.receive_ts;
        a.times.transmit = first.transmit_ts;
        a.stats.received = 1;
        a.reach = 1;
        a
    }

    fn new(role: PeerRole, config: ClientConfig, now: Mono) -> Self {
        Self {
            role,
            config,
            poll: config.minpoll,
            system_poll: config.minpoll,
            next_transmit: now,
            burst_left: 1,
            reach: 0,
            unreach: 0,
            got_since_poll: false,
            remote_xmt: None,
            remote_rx: NtpTimestamp::ZERO,
            last_answer_xmt: None,
            sent: Vec::with_capacity(SENT_RING),
            peer: None,
            last_receive: None,
            last_valid: now,
            times: ExchangeTimes::default(),
            stats: ClientStats::default(),
            last_auth: None,
            calibration: match role {
                PeerRole::Active => Calibration::Pending,
                PeerRole::Passive => Calibration::Done,
            },
            calib_requests: 0,
            calib_expected: None,
            calib_local: NtpTimestamp::ZERO,
            denied: None,
            rate_floor: None,
        }
    }

    pub fn role(&self) -> PeerRole {
        self.role
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Our mode in this association.
    pub fn local_mode(&self) -> Mode {
        match self.role {
            PeerRole::Active => Mode::SymmetricActive,
            PeerRole::Passive => Mode::SymmetricPassive,
        }
    }

    /// When the next poll is due. The active side sends then; the passive side only ages its
    /// reach register (it sends nothing but answers).
    pub fn poll_timeout(&self) -> Option<Mono> {
        self.denied.is_none().then_some(self.next_transmit)
    }

    /// Whether a passive association has had no genuine packet for [`DYNAMIC_TIMEOUT`].
    pub fn expired(&self, now: Mono) -> bool {
        self.role == PeerRole::Passive && now.saturating_since(self.last_valid) >= DYNAMIC_TIMEOUT
    }

    /// At a poll: the active side returns its packet: a mode 3 request while calibrating,
    /// then mode 1, built from our system state `state`, with `local_now` (the local clock
    /// just before sending) as transmit time. Nothing once a kiss has stopped it.
    pub fn handle_timeout(
        &mut self,
        now: Mono,
        local_now: NtpTimestamp,
        state: &ServerState,
        rng: &mut dyn Entropy,
    ) -> Option<Request> {
        if self.denied.is_some() || now < self.next_transmit {
            return None;
        }
        if self.burst_left <= 1 {
            self.reach <<= 1;
            if !self.got_since_poll {
                self.unreach = self.unreach.saturating_add(1);
            }
            self.got_since_poll = false;
            self.update_poll();
        }
        match self.role {
            PeerRole::Passive => {
                self.next_transmit = now + self.poll.as_duration();
                None
            }
            PeerRole::Active => {
                if let Some(request) = self.calibration_request(local_now, rng) {
                    self.schedule_next(now, rng);
                    return Some(request);
                }
                let mut h = self.header(Mode::SymmetricActive, state);
                h.origin_ts = self.remote_xmt.unwrap_or(NtpTimestamp::ZERO);
                h.receive_ts = self.remote_rx;
                let request = self.finish(h, local_now, state.precision, rng);
                self.schedule_next(now, rng);
                Some(request)
            }
        }
    }

    /// The passive side's answer to a genuine mode 1 packet `to` received at `local_rx`:
    /// mode 2, our system state, `transmit_time` read last.
    pub fn respond(
        &mut self,
        to: &Header,
        local_rx: NtpTimestamp,
        state: &ServerState,
        rng: &mut dyn Entropy,
        transmit_time: impl FnOnce() -> NtpTimestamp,
    ) -> Request {
        let mut h = self.header(Mode::SymmetricPassive, state);
        h.origin_ts = to.transmit_ts;
        h.receive_ts = local_rx.fuzz_below_precision(state.precision, rng.next_u64());
        self.finish(h, transmit_time(), state.precision, rng)
    }

    fn header(&self, mode: Mode, state: &ServerState) -> Header {
        Header {
            leap: state.leap,
            version: self.config.version,
            mode,
            stratum: state.stratum,
            poll: self.poll.log2(),
            precision: state.precision,
            root_delay: state.root_delay,
            root_dispersion: state.root_dispersion,
            reference_id: state.reference_id,
            reference_ts: state.reference_ts,
            origin_ts: NtpTimestamp::ZERO,
            receive_ts: NtpTimestamp::ZERO,
            transmit_ts: NtpTimestamp::ZERO,
        }
    }

    /// Stamps, remembers and signs an outgoing packet.
    fn finish(
        &mut self,
        mut h: Header,
        local: NtpTimestamp,
        precision: i8,
        rng: &mut dyn Entropy,
    ) -> Request {
        let mut xmt = local.fuzz_below_precision(precision, rng.next_u64());
        // Never the same transmit timestamp twice, never zero, never the echoed origin.
        while xmt.is_zero() || xmt == h.origin_ts || self.sent.iter().any(|s| s.wire == xmt) {
            xmt = NtpTimestamp::from_bits(xmt.to_bits().wrapping_add(1));
        }
        h.transmit_ts = xmt;
        if self.sent.len() == SENT_RING {
            self.sent.remove(0);
        }
        self.sent.push(Sent {
            wire: xmt,
            local: xmt,
            used: false,
        });
        self.times.origin = xmt;
        self.stats.sent += 1;
        let request = Request::build(&h, self.config.key.as_ref());
        request
    }

    fn schedule_next(&mut self, now: Mono, rng: &mut dyn Entropy) {
        if self.burst_left > 1 {
            self.burst_left -= 1;
            let spacing = crate::client::BURST_SPACING
                .min(self.poll.as_duration())
                .max(Duration::from_millis(1));
            self.next_transmit = now + spacing;
        } else {
            let interval = self.poll.as_duration().mul_f64(1.0 - rng.next_f64() / 16.0);
            self.next_transmit = now + interval;
        }
    }

    fn update_poll(&mut self) {
        if self.role == PeerRole::Passive {
            // The passive side follows the peer's poll: it only ages its reach register.
            if let Some(p) = self.peer {
                self.poll = PollInterval::new(
                    p.poll
                        .clamp(PollInterval::MIN.log2(), PollInterval::MAX.log2()),
                );
            }
            return;
        }
        let (min, max) = (self.config.minpoll, self.config.maxpoll);
        self.poll = if self.unreach >= 8 {
            self.poll.inc(max)
        } else {
            let target = self.system_poll.max(min).min(max);
            self.rate_floor.map_or(target, |floor| target.max(floor))
        };
        if self.unreach >= 8 && self.config.iburst && self.reach == 0 {
            self.burst_left = IBURST_COUNT;
        }
    }

    pub fn set_system_poll(&mut self, poll: PollInterval) {
        self.system_poll = poll;
    }

    fn classify_origin(&self, org: NtpTimestamp) -> Origin {
        if org.is_zero() {
            return Origin::Zero;
        }
        match self.sent.iter().position(|s| s.wire == org) {
            Some(i) => Origin::Ours(i),
            None => Origin::Bogus,
        }
    }

    /// A symmetric packet from the peer's address, received at monotonic `now` and local
    /// time `local_rx`; `precision` is our clock's. Err: rejected, nothing changed but the
    /// rejection counter. Ok: genuine; on the passive side the caller then answers with
    /// [`Self::respond`].
    pub fn handle_packet<R: Received + ?Sized>(
        &mut self,
        now: Mono,
        local_rx: NtpTimestamp,
        packet: &R,
        precision: i8,
    ) -> Result<Reply, PacketChecks> {
        let h = packet.header();
        if h.mode == Mode::Server && self.calibration == Calibration::Pending {
            return self.handle_calibration_reply(now, local_rx, packet, precision);
        }
        let mode_ok = match self.role {
            PeerRole::Active => matches!(h.mode, Mode::SymmetricActive | Mode::SymmetricPassive),
            PeerRole::Passive => h.mode == Mode::SymmetricActive,
        } || (calib::is_kiss(h) && h.mode == Mode::Server);
        let mut checks = PacketChecks::default();
        if !mode_ok {
            checks.bogus_origin = true;
            return Err(self.reject(checks));
        }
        if h.transmit_ts.is_zero() {
            checks.zero_timestamp = true;
            return Err(self.reject(checks));
        }
        if self.remote_xmt == Some(h.transmit_ts) {
            checks.duplicate = true;
            return Err(self.reject(checks));
        }
        let origin = self.classify_origin(h.origin_ts);
        let newer_than = match origin {
            Origin::Bogus => {
                checks.bogus_origin = true;
                return Err(self.reject(checks));
            }
            Origin::Ours(_) => self.last_answer_xmt,
            Origin::Zero => self.remote_xmt,
        };
        if newer_than.is_some_and(|t| h.transmit_ts - t <= NtpDuration::ZERO) {
            // A replay of an older genuine packet (test 1 in spirit).
            checks.duplicate = true;
            return Err(self.reject(checks));
        }
        let Ok(result) = self.mac_test(packet) else {
            // Counted and named in the statistics only: a forgery must not even change what
            // `auth_status` shows.
            checks.auth_failed = true;
            return Err(self.reject(checks));
        };
        let keyed = self.config.key.is_some();
        if calib::is_kiss(h) {
            // Only a kiss answering a packet of ours that has had no answer yet counts (a zero
            // origin is no answer; a replayed kiss finds its packet answered).
            let index = match origin {
                Origin::Ours(i) if !self.sent[i].used => i,
                _ => {
                    checks.bogus_origin = true;
                    return Err(self.reject(checks));
                }
            };
            if keyed {
                self.last_auth = Some(result);
            }
            for s in &mut self.sent[..=index] {
                s.used = true;
            }
            self.stats.received += 1;
            return Ok(Reply::Kiss(self.handle_kiss(h, now)));
        }
        // Genuine: what we echo next (and, when keyed, the authentication it passed).
        if keyed {
            self.last_auth = Some(result);
        }
        self.remote_xmt = Some(h.transmit_ts);
        self.remote_rx = local_rx;
        self.stats.received += 1;
        self.last_valid = now;
        let index = match origin {
            Origin::Ours(i) => i,
            _ => return Ok(Reply::Handshake),
        };
        let sent = self.sent[index];
        self.last_answer_xmt = Some(h.transmit_ts);
        self.rate_floor = None;
        self.reach |= 1;
        self.unreach = 0;
        self.got_since_poll = true;
        self.last_receive = Some(now);
        self.peer = Some(PeerInfo::from_header(h));
        self.times.receive = h.receive_ts;
        self.times.transmit = h.transmit_ts;
        if sent.used || h.receive_ts.is_zero() {
            return Ok(Reply::Handshake);
        }
        for s in &mut self.sent[..=index] {
            s.used = true;
        }
        let run = PacketChecks::run(h, Some(h.origin_ts), None);
        checks.unsynchronized = run.unsynchronized || h.stratum == 0;
        checks.bad_header = run.bad_header;
        if !checks.passed() {
            self.stats.last_rejection = checks.first_failure();
            return Ok(Reply::Unusable(checks));
        }
        Ok(Reply::Sample(Measurement::from_exchange(
            sent.local, h, local_rx, precision, now,
        )))
    }

    /// Test 5 for both phases of the exchange: a crypto-NAK is never accepted; a keyed
    /// association needs a valid MAC of its own key. Ok: the result to record (when keyed);
    /// Err: the packet fails the test.
    pub(super) fn mac_test<R: Received + ?Sized>(
        &self,
        packet: &R,
    ) -> Result<AuthResult, AuthResult> {
        let result = match &self.config.key {
            Some(key) => auth::verify_with_key(key, packet.authenticated(), packet.mac()),
            None if packet
                .mac()
                .is_some_and(|m| m.key_id == 0 && m.digest.is_empty()) =>
            {
                AuthResult::CryptoNak
            }
            None => AuthResult::NoMac,
        };
        if (self.config.key.is_some() || result == AuthResult::CryptoNak) && !result.is_ok() {
            Err(result)
        } else {
            Ok(result)
        }
    }

    fn reject(&mut self, checks: PacketChecks) -> PacketChecks {
        self.stats.rejected += 1;
        self.stats.last_rejection = checks.first_failure();
        checks
    }

    /// The local clock was stepped by `step` seconds.
    pub fn apply_step(&mut self, step: f64) {
        let d = NtpDuration::from_seconds(step);
        for s in &mut self.sent {
            s.local += d;
        }
        if !self.remote_rx.is_zero() {
            self.remote_rx += d;
        }
        if !self.calib_local.is_zero() {
            self.calib_local += d;
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

    /// Records how the packet that created a passive association was authenticated.
    pub(crate) fn set_last_auth(&mut self, result: AuthResult) {
        self.last_auth = Some(result);
    }

    /// `none`, `ok` or `failed`, as for client associations.
    pub fn auth_status(&self) -> &'static str {
        AuthResult::session_status(self.last_auth)
    }
}

/// Room for a request built by [`PeerAssociation`].
const _: () = assert!(MAX_REQUEST_LEN >= HEADER_LEN + crate::wire::MAX_V4_MAC_LEN);

#[path = "peer_calib.rs"]
mod calib;

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "peer_calib_tests.rs"]
mod calib_tests;
