//! The parts of a [`PeerAssociation`] outside the plain symmetric exchange: the mode 3/4
//! calibration of an active association before it sends mode 1, and Kiss-o'-Death handling
//! (see the module documentation of `peer.rs` for the rules).

use super::{Calibration, PeerAssociation, CALIBRATION_TRIES};
use crate::auth::Received;
use crate::checks::PacketChecks;
use crate::client::{Measurement, PeerInfo, Reply, Request, KOD_MAX_POLL};
use crate::entropy::Entropy;
use crate::time::{Mono, NtpTimestamp, PollInterval};
use crate::wire::{Header, Mode, ReferenceId};

/// A kiss we act on: stratum 0 with the code RATE, DENY or RSTR. Other stratum 0 packets
/// (an unsynchronized peer's, unknown codes) are ordinary packets that give no sample.
pub(super) fn is_kiss(h: &Header) -> bool {
    h.is_kiss()
        && matches!(
            h.reference_id,
            ReferenceId::KISS_RATE | ReferenceId::KISS_DENY | ReferenceId::KISS_RSTR
        )
}

impl PeerAssociation {
    /// Where the mode 3/4 exchange stands; `None` on the passive side (it never calibrates).
    pub fn calibration(&self) -> Option<Calibration> {
        (self.role == super::PeerRole::Active).then_some(self.calibration)
    }

    /// The kiss code (DENY or RSTR) that stopped this association, if one did.
    pub fn denied(&self) -> Option<ReferenceId> {
        self.denied
    }

    /// While calibrating, the next mode 3 request (or, after [`CALIBRATION_TRIES`]
    /// unanswered ones, the fallback to mode 1: `None`).
    pub(super) fn calibration_request(
        &mut self,
        local_now: NtpTimestamp,
        rng: &mut dyn Entropy,
    ) -> Option<Request> {
        if self.calibration != Calibration::Pending {
            return None;
        }
        if self.calib_requests >= CALIBRATION_TRIES {
            self.calibration = Calibration::FellBack;
            self.calib_expected = None;
            return None;
        }
        // As a client: a random transmit timestamp, the real send time kept here.
        let mut nonce = NtpTimestamp::from_bits(rng.next_u64());
        while nonce.is_zero() || Some(nonce) == self.calib_expected {
            nonce = NtpTimestamp::from_bits(rng.next_u64());
        }
        let mut h = Header::new(Mode::Client);
        h.version = self.config.version;
        h.poll = self.poll.log2();
        h.transmit_ts = nonce;
        self.calib_expected = Some(nonce);
        self.calib_local = local_now;
        self.calib_requests += 1;
        self.times.origin = local_now;
        self.stats.sent += 1;
        Some(Request::build(&h, self.config.key.as_ref()))
    }

    /// A mode 4 packet while calibrating: checked as a client checks a reply. Err: rejected,
    /// nothing changed but the rejection counter.
    pub(super) fn handle_calibration_reply<R: Received + ?Sized>(
        &mut self,
        now: Mono,
        local_rx: NtpTimestamp,
        packet: &R,
        precision: i8,
    ) -> Result<Reply, PacketChecks> {
        let h = packet.header();
        let mut checks = PacketChecks::run(h, self.calib_expected, None);
        if !checks.genuine() {
            return Err(self.reject(checks));
        }
        let Ok(result) = self.mac_test(packet) else {
            checks.auth_failed = true;
            return Err(self.reject(checks));
        };
        if self.config.key.is_some() {
            self.last_auth = Some(result);
        }
        // Genuine: one reply per request.
        self.calib_expected = None;
        self.stats.received += 1;
        self.last_valid = now;
        if is_kiss(h) {
            // The peer refuses client service (or asks us to slow down): mode 1 at once.
            self.calibration = Calibration::FellBack;
            let code = h.reference_id;
            if code == ReferenceId::KISS_RATE {
                self.rate_kiss(h, now);
            }
            return Ok(Reply::Kiss(code));
        }
        self.calibration = Calibration::Done;
        self.reach |= 1;
        self.unreach = 0;
        self.got_since_poll = true;
        self.last_receive = Some(now);
        self.peer = Some(PeerInfo::from_header(h));
        self.times.receive = h.receive_ts;
        self.times.transmit = h.transmit_ts;
        if !checks.passed() || h.stratum == 0 {
            checks.unsynchronized |= h.stratum == 0;
            self.stats.last_rejection = checks.first_failure();
            return Ok(Reply::Unusable(checks));
        }
        Ok(Reply::Sample(Measurement::from_exchange(
            self.calib_local,
            h,
            local_rx,
            precision,
            now,
        )))
    }

    /// A genuine kiss (origin and MAC already checked) in the symmetric exchange.
    pub(super) fn handle_kiss(&mut self, h: &Header, now: Mono) -> ReferenceId {
        let code = h.reference_id;
        match code {
            ReferenceId::KISS_DENY | ReferenceId::KISS_RSTR => {
                self.denied = Some(code);
                self.reach = 0;
            }
            ReferenceId::KISS_RATE => self.rate_kiss(h, now),
            _ => {}
        }
        code
    }

    /// RATE: one poll step longer (or the peer's poll if that is longer), within maxpoll
    /// and [`KOD_MAX_POLL`]; held until the peer's next genuine non-kiss packet. The passive
    /// side follows its peer's poll and sends nothing by itself, so only the active side
    /// slows down.
    fn rate_kiss(&mut self, h: &Header, now: Mono) {
        if self.role != super::PeerRole::Active {
            return;
        }
        let cap = self.config.maxpoll.min(KOD_MAX_POLL).max(self.poll);
        let asked = PollInterval::new(h.poll).min(cap);
        self.poll = self.poll.inc(cap).max(asked);
        self.rate_floor = Some(self.poll);
        // A pending burst would ignore the longer poll.
        self.burst_left = 1;
        self.next_transmit = self.next_transmit.max(now + self.poll.as_duration());
    }
}
