//! The `simulated` driver: a software clock on top of the host's CLOCK_REALTIME with a chosen
//! initial offset and frequency error, disciplined in software so tests never touch the host.
//!
//! Model: `sim(t) = host(t) + offset(t)`, where between updates
//! `offset(t) = offset(t0) + (frequency_error_ppm + correction_ppm) * 1e-6 * (t - t0)`
//! and `t0` is the host time of the last frequency change (or of construction). Host times
//! are kept as integer nanoseconds (i128) and only their *differences* become f64, so no
//! precision is lost on absolute Unix times; the offset is added to the NTP timestamp as an
//! [`NtpDuration`], keeping sub-nanosecond resolution.
//!
//! Leap seconds are executed like the kernel executes them for the `system` driver
//! (`STA_INS` / `STA_DEL`): a leap handed over with [`Clock::set_sync_status`] is armed for
//! the next UTC midnight of the simulated clock; an insertion repeats the second 23:59:59
//! (the clock goes back one second at 00:00:00), a deletion skips 23:59:59 (the clock goes
//! from 23:59:59 straight to 00:00:00). After it, the clock waits for the announcement to end
//! before it arms another, and an announcement withdrawn before midnight disarms it.

use std::io;

use meridian_proto::time::{NtpDuration, NtpTimestamp};
use meridian_proto::wire::Leap;

use super::timex;
use super::{host_realtime, measure_precision, Clock, SyncStatus};

/// A source of host CLOCK_REALTIME readings, injectable so tests can drive the clock with
/// fake host times.
pub trait HostTime {
    /// Current host time: (seconds, nanoseconds) since the Unix epoch.
    fn realtime(&self) -> (i64, u32);
}

/// The real host clock (`clock_gettime(CLOCK_REALTIME)`).
#[derive(Clone, Copy, Debug, Default)]
pub struct HostRealtime;

impl HostTime for HostRealtime {
    fn realtime(&self) -> (i64, u32) {
        host_realtime()
    }
}

fn to_nanos(secs: i64, nanos: u32) -> i128 {
    secs as i128 * 1_000_000_000 + nanos as i128
}

const NANOS: i128 = 1_000_000_000;
const DAY: i64 = 86_400;

/// The leap-second state of the simulated clock (the kernel's `time_state`, simplified).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeapState {
    /// No leap second announced.
    Idle,
    /// `leap` (insert or delete) happens at `midnight` (Unix seconds, on the simulated
    /// clock's UTC).
    Armed { leap: Leap, midnight: i64 },
    /// `leap` happened at `midnight`; no other is armed until the announcement ends.
    Done { leap: Leap, midnight: i64 },
}

/// A software clock running at a chosen offset and frequency error from the host clock.
#[derive(Debug)]
pub struct SimulatedClock<H: HostTime = HostRealtime> {
    host: H,
    /// Host time of the last rate change, nanoseconds since the Unix epoch.
    base_host_ns: i128,
    /// `sim - host` at `base_host_ns`, seconds.
    base_offset: f64,
    /// Free-running frequency error, ppm (positive = the simulated clock runs fast).
    frequency_error_ppm: f64,
    /// Correction applied by the daemon, ppm (positive = faster), within +-500.
    correction_ppm: f64,
    status: SyncStatus,
    precision: i8,
    /// Armed or executed leap second; an armed one that is due is folded into
    /// `base_offset` by the next call that changes the clock (see [`Self::settle_leap`]).
    leap: LeapState,
}

impl SimulatedClock<HostRealtime> {
    /// A simulated clock over the real host clock, `initial_offset_s` seconds ahead of it
    /// (negative = behind) and running `frequency_error_ppm` fast (negative = slow). The
    /// precision is the host clock's, measured now.
    pub fn new(initial_offset_s: f64, frequency_error_ppm: f64) -> Self {
        let precision = measure_precision(host_realtime);
        Self::with_host(
            initial_offset_s,
            frequency_error_ppm,
            HostRealtime,
            precision,
        )
    }
}

impl<H: HostTime> SimulatedClock<H> {
    /// Like [`SimulatedClock::new`] over any host time source, with a given precision.
    pub fn with_host(
        initial_offset_s: f64,
        frequency_error_ppm: f64,
        host: H,
        precision_log2: i8,
    ) -> Self {
        let (s, n) = host.realtime();
        Self {
            host,
            base_host_ns: to_nanos(s, n),
            base_offset: initial_offset_s,
            frequency_error_ppm,
            correction_ppm: 0.0,
            status: SyncStatus::default(),
            precision: precision_log2,
            leap: LeapState::Idle,
        }
    }

    /// The simulated clock at host time `host_ns` before any armed leap second, nanoseconds
    /// since the Unix epoch.
    fn raw_nanos(&self, host_ns: i128) -> i128 {
        host_ns + (self.offset_at(host_ns) * 1e9).round() as i128
    }

    /// Seconds an armed leap adds to the clock at host time `host_ns`: -1 from midnight on
    /// for an insertion, +1 from 23:59:59 on for a deletion, 0 before (or when not armed).
    fn leap_correction(&self, host_ns: i128) -> f64 {
        let LeapState::Armed { leap, midnight } = self.leap else {
            return 0.0;
        };
        let raw = self.raw_nanos(host_ns);
        match leap {
            Leap::AddSecond if raw >= midnight as i128 * NANOS => -1.0,
            Leap::DeleteSecond if raw >= (midnight - 1) as i128 * NANOS => 1.0,
            _ => 0.0,
        }
    }

    /// `sim - host` at host time `host_ns`, seconds, including an executed leap second.
    fn total_offset_at(&self, host_ns: i128) -> f64 {
        self.offset_at(host_ns) + self.leap_correction(host_ns)
    }

    fn host_nanos(&self) -> i128 {
        let (s, n) = self.host.realtime();
        to_nanos(s, n)
    }

    /// Makes a leap second that is due permanent: folds it into the offset and records it as
    /// done. Called before every change of the clock, so that readings stay continuous.
    fn settle_leap(&mut self) {
        let correction = self.leap_correction(self.host_nanos());
        if let LeapState::Armed { leap, midnight } = self.leap {
            if correction != 0.0 {
                self.base_offset += correction;
                self.leap = LeapState::Done { leap, midnight };
            }
        }
    }

    /// Arms, keeps or disarms the leap second for the leap indicator `leap` handed over now.
    fn follow_announcement(&mut self, leap: Leap) {
        let announced = matches!(leap, Leap::AddSecond | Leap::DeleteSecond);
        self.leap = match (self.leap, announced) {
            (LeapState::Done { .. }, true) => self.leap,
            (LeapState::Armed { leap: armed, .. }, true) if armed == leap => self.leap,
            (_, true) => {
                let now = self.raw_nanos(self.host_nanos());
                let today = now.div_euclid(NANOS) as i64;
                let mut midnight = (today.div_euclid(DAY) + 1) * DAY;
                // Past 23:59:59 a deletion can only happen at the next midnight.
                if leap == Leap::DeleteSecond && today >= midnight - 1 {
                    midnight += DAY;
                }
                LeapState::Armed { leap, midnight }
            }
            (_, false) => LeapState::Idle,
        };
    }

    /// The leap-second state now (an armed leap whose moment has passed shows as done).
    pub fn leap_state(&self) -> LeapState {
        match self.leap {
            LeapState::Armed { leap, midnight }
                if self.leap_correction(self.host_nanos()) != 0.0 =>
            {
                LeapState::Done { leap, midnight }
            }
            state => state,
        }
    }

    /// `sim - host` at host time `host_ns`, seconds, extrapolated at the current rate.
    fn offset_at(&self, host_ns: i128) -> f64 {
        let elapsed = (host_ns - self.base_host_ns) as f64 * 1e-9;
        self.base_offset + elapsed * (self.frequency_error_ppm + self.correction_ppm) * 1e-6
    }

    /// The current error of the simulated clock against the host clock, seconds
    /// (positive = ahead). This is the truth a simulation test compares against.
    pub fn offset(&self) -> f64 {
        self.total_offset_at(self.host_nanos())
    }

    /// The configured free-running frequency error, ppm.
    pub fn frequency_error_ppm(&self) -> f64 {
        self.frequency_error_ppm
    }

    /// The last synchronization state handed over (its leap indicator arms a leap second,
    /// see [`Self::leap_state`]).
    pub fn sync_status(&self) -> &SyncStatus {
        &self.status
    }
}

impl<H: HostTime> Clock for SimulatedClock<H> {
    fn now(&self) -> NtpTimestamp {
        let (s, n) = self.host.realtime();
        self.from_realtime(s, n)
    }

    /// Maps a host timestamp through the current model. For a timestamp taken before the
    /// last rate change the current rate is used; for the few milliseconds between a packet's
    /// arrival and its processing the error is far below a nanosecond.
    fn from_realtime(&self, secs: i64, nanos: u32) -> NtpTimestamp {
        let offset = self.total_offset_at(to_nanos(secs, nanos));
        NtpTimestamp::from_unix(secs, nanos) + NtpDuration::from_seconds(offset)
    }

    fn frequency_ppm(&self) -> f64 {
        self.correction_ppm
    }

    fn set_frequency_ppm(&mut self, ppm: f64) -> io::Result<()> {
        if ppm.is_nan() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frequency is NaN",
            ));
        }
        // Fold the drift accumulated at the old rate into the offset, then change the rate.
        self.settle_leap();
        let (s, n) = self.host.realtime();
        let now_ns = to_nanos(s, n);
        self.base_offset = self.offset_at(now_ns);
        self.base_host_ns = now_ns;
        self.correction_ppm = timex::clamp_slew_ppm(ppm);
        Ok(())
    }

    fn step(&mut self, offset: f64) -> io::Result<()> {
        if timex::split_offset_nanos(offset).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot step by {offset} s"),
            ));
        }
        self.settle_leap();
        self.base_offset += offset;
        Ok(())
    }

    /// Remembers the state and follows its leap indicator like the kernel follows
    /// `STA_INS` / `STA_DEL`.
    fn set_sync_status(&mut self, status: &SyncStatus) -> io::Result<()> {
        self.settle_leap();
        let before = self.leap;
        self.follow_announcement(status.leap);
        if let (LeapState::Idle, LeapState::Armed { leap, midnight }) = (before, self.leap) {
            crate::info!(
                "simulated clock: leap second ({}) armed for the next UTC midnight (Unix time {midnight})",
                leap.as_str()
            );
        }
        self.status = *status;
        Ok(())
    }

    fn precision_log2(&self) -> i8 {
        self.precision
    }

    fn name(&self) -> &'static str {
        "simulated"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A host clock the test moves by hand (nanoseconds since the Unix epoch).
    #[derive(Clone)]
    struct FakeHost(Rc<Cell<i128>>);

    impl FakeHost {
        fn at(secs: i64, nanos: u32) -> Self {
            Self(Rc::new(Cell::new(to_nanos(secs, nanos))))
        }
        fn advance(&self, secs: f64) {
            self.0.set(self.0.get() + (secs * 1e9).round() as i128);
        }
        fn ts(&self) -> NtpTimestamp {
            let (s, n) = self.realtime();
            NtpTimestamp::from_unix(s, n)
        }
    }

    impl HostTime for FakeHost {
        fn realtime(&self) -> (i64, u32) {
            let t = self.0.get();
            (
                t.div_euclid(1_000_000_000) as i64,
                t.rem_euclid(1_000_000_000) as u32,
            )
        }
    }

    /// `clock - host` in seconds as seen through the NTP timestamps.
    fn seen_offset<H: HostTime>(clock: &SimulatedClock<H>, host: &FakeHost) -> f64 {
        (clock.now() - host.ts()).to_seconds()
    }

    /// One NTP timestamp unit (2^-32 s) plus f64 rounding.
    const TOL: f64 = 3e-10;

    fn clock(offset: f64, ppm: f64) -> (SimulatedClock<FakeHost>, FakeHost) {
        // 2024-06-01 12:00:00.25 UTC: a large absolute time, to catch precision loss.
        let host = FakeHost::at(1_717_243_200, 250_000_000);
        (
            SimulatedClock::with_host(offset, ppm, host.clone(), -23),
            host,
        )
    }

    #[test]
    fn starts_at_the_initial_offset() {
        let (c, host) = clock(1.5, 40.0);
        assert!((seen_offset(&c, &host) - 1.5).abs() < TOL);
        let (c, host) = clock(-0.000_123_456, 0.0);
        assert!((seen_offset(&c, &host) + 0.000_123_456).abs() < TOL);
        assert_eq!(c.name(), "simulated");
        assert_eq!(c.precision_log2(), -23);
        assert_eq!(c.frequency_ppm(), 0.0);
    }

    #[test]
    fn drifts_at_the_frequency_error() {
        let (c, host) = clock(0.0, 40.0);
        host.advance(1000.0);
        // 40 ppm for 1000 s = 40 ms ahead.
        assert!((seen_offset(&c, &host) - 0.040).abs() < TOL);
        assert!((c.offset() - 0.040).abs() < 1e-12);
        let (c, host) = clock(0.5, -12.5);
        host.advance(86_400.0);
        assert!((seen_offset(&c, &host) - (0.5 - 1.08)).abs() < TOL);
    }

    #[test]
    fn a_matching_correction_stops_the_drift() {
        let (mut c, host) = clock(0.25, 40.0);
        host.advance(100.0); // 4 ms of drift accumulate first
        c.set_frequency_ppm(-40.0).unwrap();
        assert_eq!(c.frequency_ppm(), -40.0);
        let at_change = seen_offset(&c, &host);
        assert!((at_change - 0.254).abs() < TOL);
        host.advance(10_000.0);
        assert!((seen_offset(&c, &host) - 0.254).abs() < TOL);
        // A partial correction leaves the difference as drift.
        c.set_frequency_ppm(-30.0).unwrap();
        host.advance(1000.0);
        assert!((seen_offset(&c, &host) - (0.254 + 0.010)).abs() < TOL);
    }

    #[test]
    fn corrections_are_clamped_like_the_kernel() {
        let (mut c, host) = clock(0.0, 0.0);
        c.set_frequency_ppm(1e6).unwrap();
        assert_eq!(
            c.frequency_ppm(),
            timex::MAX_SLEW_PPM,
            "tick plus frequency limit"
        );
        c.set_frequency_ppm(900.0).unwrap();
        assert_eq!(c.frequency_ppm(), 900.0);
        host.advance(10.0);
        assert!((seen_offset(&c, &host) - 0.009).abs() < TOL);
        assert!(c.set_frequency_ppm(f64::NAN).is_err());
        assert_eq!(c.frequency_ppm(), 900.0);
    }

    #[test]
    fn steps_add_to_the_offset() {
        let (mut c, host) = clock(1.5, 40.0);
        c.step(-1.5).unwrap();
        assert!(seen_offset(&c, &host).abs() < TOL);
        host.advance(50.0);
        c.step(-0.002).unwrap(); // drift of 2 ms removed
        assert!(seen_offset(&c, &host).abs() < TOL);
        c.step(3600.0).unwrap();
        assert!((seen_offset(&c, &host) - 3600.0).abs() < TOL);
        assert!(c.step(f64::NAN).is_err());
        assert!((seen_offset(&c, &host) - 3600.0).abs() < TOL);
    }

    #[test]
    fn from_realtime_agrees_with_now() {
        let (mut c, host) = clock(-0.75, 40.0);
        host.advance(123.456_789_012);
        c.set_frequency_ppm(-10.0).unwrap();
        host.advance(7.0);
        let (s, n) = host.realtime();
        assert_eq!(c.from_realtime(s, n), c.now());
        // A packet received 5 ms ago maps to 5 ms (scaled by the clock's rate) before now.
        host.advance(-0.005);
        let (s, n) = host.realtime();
        host.advance(0.005);
        let back = (c.now() - c.from_realtime(s, n)).to_seconds();
        assert!((back - 0.005 * (1.0 + 30e-6)).abs() < TOL, "{back}");
    }

    #[test]
    fn sync_status_is_remembered_only() {
        let (mut c, _host) = clock(0.0, 0.0);
        let st = SyncStatus {
            synchronized: true,
            leap: Leap::DeleteSecond,
            max_error: 0.02,
            est_error: 0.001,
        };
        c.set_sync_status(&st).unwrap();
        assert_eq!(*c.sync_status(), st);
    }

    /// 2027-01-01 00:00:00 UTC.
    const NEW_YEAR: i64 = 1_798_761_600;

    fn status(leap: Leap) -> SyncStatus {
        SyncStatus {
            synchronized: true,
            leap,
            max_error: 0.01,
            est_error: 0.001,
        }
    }

    /// The simulated clock's reading as Unix seconds (with fraction), near 2027.
    fn reading<H: HostTime>(clock: &SimulatedClock<H>) -> f64 {
        let (s, n) = clock.now().to_unix_near(NEW_YEAR);
        (s - NEW_YEAR) as f64 + f64::from(n) * 1e-9
    }

    /// A clock over a fake host at `secs_before` seconds before 2027-01-01 (host time).
    fn before_new_year(secs_before: f64, offset: f64) -> (SimulatedClock<FakeHost>, FakeHost) {
        let host = FakeHost::at(NEW_YEAR, 0);
        host.advance(-secs_before);
        (
            SimulatedClock::with_host(offset, 0.0, host.clone(), -23),
            host,
        )
    }

    #[test]
    fn inserted_leap_second_repeats_23_59_59_at_midnight() {
        let (mut c, host) = before_new_year(10.5, 0.0);
        c.set_sync_status(&status(Leap::AddSecond)).unwrap();
        assert_eq!(
            c.leap_state(),
            LeapState::Armed {
                leap: Leap::AddSecond,
                midnight: NEW_YEAR
            }
        );
        host.advance(10.0); // 23:59:59.5
        assert!((reading(&c) + 0.5).abs() < 1e-6);
        host.advance(1.0); // the host's 00:00:00.5 is the clock's 23:59:59.5 again
        assert!((reading(&c) + 0.5).abs() < 1e-6, "{}", reading(&c));
        assert!((c.offset() + 1.0).abs() < 1e-9);
        host.advance(1.0);
        assert!((reading(&c) - 0.5).abs() < 1e-6);
        assert_eq!(
            c.leap_state(),
            LeapState::Done {
                leap: Leap::AddSecond,
                midnight: NEW_YEAR
            }
        );
        // Settling it (any change of the clock) keeps the reading continuous.
        let before = reading(&c);
        c.set_frequency_ppm(10.0).unwrap();
        assert!((reading(&c) - before).abs() < 1e-6);
        // The announcement still standing does not arm another leap; a day later the clock
        // is still one second behind the host, not two.
        c.set_frequency_ppm(0.0).unwrap();
        c.set_sync_status(&status(Leap::AddSecond)).unwrap();
        host.advance(86_400.0);
        c.set_sync_status(&status(Leap::None)).unwrap();
        assert_eq!(c.leap_state(), LeapState::Idle);
        assert!((c.offset() + 1.0).abs() < 1e-9, "{}", c.offset());
    }

    #[test]
    fn deleted_leap_second_skips_23_59_59() {
        let (mut c, host) = before_new_year(5.5, 0.0);
        c.set_sync_status(&status(Leap::DeleteSecond)).unwrap();
        host.advance(4.0); // 23:59:58.5
        assert!((reading(&c) + 1.5).abs() < 1e-6);
        host.advance(1.0); // 23:59:59.5 does not exist: 00:00:00.5
        assert!((reading(&c) - 0.5).abs() < 1e-6, "{}", reading(&c));
        assert!((c.offset() - 1.0).abs() < 1e-9);
        c.step(-0.25).unwrap(); // settles the leap, then steps
        assert!((c.offset() - 0.75).abs() < 1e-9);
    }

    #[test]
    fn a_withdrawn_announcement_executes_nothing() {
        let (mut c, host) = before_new_year(100.0, 0.0);
        c.set_sync_status(&status(Leap::AddSecond)).unwrap();
        host.advance(50.0);
        c.set_sync_status(&status(Leap::None)).unwrap();
        assert_eq!(c.leap_state(), LeapState::Idle);
        host.advance(100.0);
        assert!(c.offset().abs() < 1e-9);
        // An unsynchronized state (alarm) arms nothing either.
        let (mut c, host) = before_new_year(10.0, 0.0);
        c.set_sync_status(&status(Leap::Unsynchronized)).unwrap();
        host.advance(20.0);
        assert_eq!(c.leap_state(), LeapState::Idle);
        assert!(c.offset().abs() < 1e-9);
    }

    #[test]
    fn the_leap_happens_at_the_simulated_clocks_midnight() {
        // The clock runs an hour ahead of the host: its midnight is the host's 23:00.
        let (mut c, host) = before_new_year(3600.0 + 2.0, 3600.0);
        c.set_sync_status(&status(Leap::AddSecond)).unwrap();
        host.advance(1.0);
        assert!((c.offset() - 3600.0).abs() < 1e-9);
        host.advance(2.0);
        assert!((c.offset() - 3599.0).abs() < 1e-9);
        // Armed after 23:59:59, a deletion waits for the next day.
        let (mut c, _host) = before_new_year(0.5, 0.0);
        c.set_sync_status(&status(Leap::DeleteSecond)).unwrap();
        assert_eq!(
            c.leap_state(),
            LeapState::Armed {
                leap: Leap::DeleteSecond,
                midnight: NEW_YEAR + 86_400
            }
        );
    }

    #[test]
    fn runs_over_the_real_host_clock() {
        let c = SimulatedClock::new(2.0, 0.0);
        let (s, n) = host_realtime();
        let d = (c.now() - NtpTimestamp::from_unix(s, n)).to_seconds();
        assert!((d - 2.0).abs() < 0.5, "{d}");
        assert!((-30..=-10).contains(&c.precision_log2()));
    }
}
