//! The `simulated` driver: a software clock on top of the host's CLOCK_REALTIME with a chosen
//! initial offset and frequency error, disciplined in software so tests never touch the host.
//!
//! Model: `sim(t) = host(t) + offset(t)`, where between updates
//! `offset(t) = offset(t0) + (frequency_error_ppm + correction_ppm) * 1e-6 * (t - t0)`
//! and `t0` is the host time of the last frequency change (or of construction). Host times
//! are kept as integer nanoseconds (i128) and only their *differences* become f64, so no
//! precision is lost on absolute Unix times; the offset is added to the NTP timestamp as an
//! [`NtpDuration`], keeping sub-nanosecond resolution.

use std::io;

use meridian_proto::time::{NtpDuration, NtpTimestamp};

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
        let (s, n) = self.host.realtime();
        self.offset_at(to_nanos(s, n))
    }

    /// The configured free-running frequency error, ppm.
    pub fn frequency_error_ppm(&self) -> f64 {
        self.frequency_error_ppm
    }

    /// The last synchronization state handed over (remembered, never applied).
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
        let offset = self.offset_at(to_nanos(secs, nanos));
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
        self.base_offset += offset;
        Ok(())
    }

    fn set_sync_status(&mut self, status: &SyncStatus) -> io::Result<()> {
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
            leap: meridian_proto::wire::Leap::DeleteSecond,
            max_error: 0.02,
            est_error: 0.001,
        };
        c.set_sync_status(&st).unwrap();
        assert_eq!(*c.sync_status(), st);
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
