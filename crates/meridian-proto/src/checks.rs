//! The RFC 5905 packet tests (section 8 and appendix A.5.1.1) as one small pure function whose
//! named results are kept, logged on rejection and shown by `sessions --verbose`.
//!
//! The tests fall in two groups. Tests 1-3 (and 5, authentication) decide whether a reply is
//! genuine: a reply that fails them may be forged or replayed and must change no state of
//! the association. Tests 6-7 (and 8, the sample itself) decide whether a genuine reply is
//! usable for synchronization.

use crate::time::{NtpDuration, NtpTimestamp};
use crate::wire::{Header, Leap};

/// Maximum root distance of a usable server, seconds (RFC 5905 MAXDISP is 16 s for the
/// dispersion; we use the tighter selection limit MAXDIST of 1.5 s for the root distance).
pub const MAX_ROOT_DISTANCE: f64 = 16.0;

/// Results of the packet tests for one reply. `true` means the test FAILED.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PacketChecks {
    /// Test 1: the transmit timestamp equals that of the last accepted reply (duplicate).
    pub duplicate: bool,
    /// Test 2: the origin timestamp does not match the transmit timestamp of our outstanding
    /// request, or there is no outstanding request (bogus or replayed reply).
    pub bogus_origin: bool,
    /// Test 3: origin, receive or transmit timestamp is zero.
    pub zero_timestamp: bool,
    /// Test 5: authentication failed (set by the caller once keys exist).
    pub auth_failed: bool,
    /// Test 6: the server is not synchronized (LI 3 or stratum 16 and above).
    pub unsynchronized: bool,
    /// Test 7: implausible header: root distance beyond the limit, or the server's reference
    /// time is zero or later than its transmit time.
    pub bad_header: bool,
}

impl PacketChecks {
    /// Runs tests 1, 2, 3, 6 and 7 on a reply to a request whose transmit timestamp was
    /// `expected_origin` (None: no request outstanding), given the transmit timestamp of the
    /// last reply we accepted.
    pub fn run(
        header: &Header,
        expected_origin: Option<NtpTimestamp>,
        last_accepted_transmit: Option<NtpTimestamp>,
    ) -> Self {
        let duplicate = last_accepted_transmit == Some(header.transmit_ts);
        let bogus_origin = match expected_origin {
            Some(expected) => header.origin_ts != expected,
            None => true,
        };
        let zero_timestamp = header.origin_ts.is_zero()
            || header.receive_ts.is_zero()
            || header.transmit_ts.is_zero();
        let unsynchronized = header.leap == Leap::Unsynchronized || header.stratum >= 16;
        let root_distance =
            header.root_delay.to_seconds() / 2.0 + header.root_dispersion.to_seconds();
        let reference_after_transmit =
            (header.transmit_ts - header.reference_ts) < NtpDuration::ZERO;
        let bad_header = root_distance >= MAX_ROOT_DISTANCE
            || header.reference_ts.is_zero()
            || reference_after_transmit;
        Self {
            duplicate,
            bogus_origin,
            zero_timestamp,
            auth_failed: false,
            unsynchronized,
            bad_header,
        }
    }

    /// True when the reply is genuine: tests 1, 2, 3 and 5 passed.
    pub fn genuine(&self) -> bool {
        !(self.duplicate || self.bogus_origin || self.zero_timestamp || self.auth_failed)
    }

    /// True when every test passed and the reply may give a sample.
    pub fn passed(&self) -> bool {
        self.genuine() && !self.unsynchronized && !self.bad_header
    }

    /// Name of the first failed test, for logs and displays.
    pub fn first_failure(&self) -> Option<&'static str> {
        [
            (self.duplicate, "duplicate"),
            (self.bogus_origin, "bogus-origin"),
            (self.zero_timestamp, "zero-timestamp"),
            (self.auth_failed, "authentication"),
            (self.unsynchronized, "unsynchronized"),
            (self.bad_header, "bad-header"),
        ]
        .into_iter()
        .find(|(failed, _)| *failed)
        .map(|(_, name)| name)
    }

    /// The results as a bit mask, test 1 in bit 0 (like ntpd's `flash`), for logs and JSON.
    pub fn bits(&self) -> u16 {
        [
            self.duplicate,
            self.bogus_origin,
            self.zero_timestamp,
            false,
            self.auth_failed,
            self.unsynchronized,
            self.bad_header,
        ]
        .iter()
        .enumerate()
        .fold(0, |acc, (i, &b)| acc | ((b as u16) << i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Mode, ReferenceId};

    fn ts(x: u64) -> NtpTimestamp {
        NtpTimestamp::from_bits(x << 32)
    }

    fn good_reply() -> Header {
        let mut h = Header::new(Mode::Server);
        h.leap = Leap::None;
        h.stratum = 2;
        h.reference_id = ReferenceId([198, 18, 0, 9]);
        h.reference_ts = ts(90);
        h.origin_ts = ts(1000);
        h.receive_ts = ts(100);
        h.transmit_ts = ts(101);
        h
    }

    #[test]
    fn good_reply_passes() {
        let c = PacketChecks::run(&good_reply(), Some(ts(1000)), None);
        assert!(c.passed(), "{c:?}");
        assert_eq!(c.first_failure(), None);
        assert_eq!(c.bits(), 0);
    }

    /// attacks.md C1, C3, C8: each RFC 5905 packet test fails on its own field.
    #[test]
    fn each_test_fails_alone() {
        let h = good_reply();
        let c = PacketChecks::run(&h, Some(ts(1000)), Some(ts(101)));
        assert_eq!(c.first_failure(), Some("duplicate"));
        assert!(!c.genuine());

        let c = PacketChecks::run(&h, Some(ts(999)), None);
        assert_eq!(c.first_failure(), Some("bogus-origin"));
        let c = PacketChecks::run(&h, None, None);
        assert_eq!(
            c.first_failure(),
            Some("bogus-origin"),
            "no request outstanding"
        );

        let mut z = h;
        z.origin_ts = NtpTimestamp::ZERO;
        let c = PacketChecks::run(&z, Some(NtpTimestamp::ZERO), None);
        assert!(
            c.zero_timestamp && !c.genuine(),
            "zero origin is never valid"
        );

        let mut u = h;
        u.leap = Leap::Unsynchronized;
        let c = PacketChecks::run(&u, Some(ts(1000)), None);
        assert!(c.genuine() && !c.passed());
        assert_eq!(c.first_failure(), Some("unsynchronized"));
        let mut s = h;
        s.stratum = 16;
        assert!(PacketChecks::run(&s, Some(ts(1000)), None).unsynchronized);

        let mut b = h;
        b.root_dispersion = NtpDuration::from_seconds(20.0);
        assert_eq!(
            PacketChecks::run(&b, Some(ts(1000)), None).first_failure(),
            Some("bad-header")
        );
        let mut r = h;
        r.reference_ts = ts(200);
        assert!(
            PacketChecks::run(&r, Some(ts(1000)), None).bad_header,
            "reference after transmit"
        );
        let mut r0 = h;
        r0.reference_ts = NtpTimestamp::ZERO;
        assert!(PacketChecks::run(&r0, Some(ts(1000)), None).bad_header);
    }

    #[test]
    fn bits_follow_test_numbers() {
        let c = PacketChecks {
            bogus_origin: true,
            bad_header: true,
            ..Default::default()
        };
        assert_eq!(c.bits(), 0b100_0010);
    }
}
