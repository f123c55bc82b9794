//! Clock drivers: the [`Clock`] trait the daemon disciplines, and its three drivers
//! (`system`, `read-only`, `simulated`), plus host clock reading and precision measurement.
//!
//! Policy (step threshold, panic threshold, when to declare sync) lives in the core; a
//! driver only executes what it is told and reports what it has applied.

mod readonly;
mod simulated;
pub mod stepwatch;
mod system;
pub mod timex;

use meridian_proto::time::NtpTimestamp;
use meridian_proto::wire::Leap;

// Not all drivers are constructed by the daemon yet.
#[allow(unused_imports)]
pub use readonly::ReadOnlyClock;
#[allow(unused_imports)]
pub use simulated::{HostRealtime, HostTime, SimulatedClock};
#[allow(unused_imports)]
pub use system::SystemClock;

/// A clock the daemon reads and disciplines.
///
/// Signs follow one rule throughout: positive frequency makes the clock run faster, a
/// positive step moves it forward.
pub trait Clock {
    /// Current reading on the NTP timescale (from CLOCK_REALTIME for system/read-only; the
    /// simulated time otherwise).
    fn now(&self) -> NtpTimestamp;

    /// Convert a kernel receive timestamp (CLOCK_REALTIME, Unix seconds + nanoseconds, e.g.
    /// from SO_TIMESTAMPNS) into this clock's timescale.
    // The name is part of the agreed interface; it converts *into* this clock's timescale.
    #[allow(clippy::wrong_self_convention)]
    fn from_realtime(&self, secs: i64, nanos: u32) -> NtpTimestamp;

    /// Frequency correction currently applied, in ppm; positive makes the clock run faster.
    fn frequency_ppm(&self) -> f64;

    /// Set the absolute frequency correction in ppm (positive = faster), clamped to
    /// +-83,333 ppm (kernel frequency plus tick length; the discipline keeps the lasting part
    /// within +-500 ppm, larger values are temporary slews). NaN is rejected with `InvalidInput`.
    fn set_frequency_ppm(&mut self, ppm: f64) -> std::io::Result<()>;

    /// Step the clock by `offset` seconds (positive = forward). A non-finite or absurd
    /// (> 146 years) offset is rejected with `InvalidInput`.
    fn step(&mut self, offset: f64) -> std::io::Result<()>;

    /// Tell the kernel / clock the synchronization state (maximum and estimated error in
    /// seconds, leap indicator, synchronized or not). No-op for read-only and simulated
    /// clocks, which only remember it.
    fn set_sync_status(&mut self, status: &SyncStatus) -> std::io::Result<()>;

    /// log2 of the clock's reading precision in seconds (measured at start, e.g. -20 .. -24).
    fn precision_log2(&self) -> i8;

    /// "system", "read-only" or "simulated".
    fn name(&self) -> &'static str;

    /// How fast CLOCK_MONOTONIC (which poll(2) timeouts use) runs against CLOCK_MONOTONIC_RAW
    /// (which the daemon schedules with): 1 + the frequency correction for the system clock,
    /// whose corrections slew CLOCK_MONOTONIC too; 1 for clocks that leave the kernel alone.
    fn monotonic_rate(&self) -> f64 {
        1.0
    }
}

/// The synchronization state published to the kernel (and to anyone reading the clock).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyncStatus {
    /// True once the core has selected a source and disciplined the clock.
    pub synchronized: bool,
    /// Leap second announced for the end of the current UTC day (or the alarm condition).
    pub leap: Leap,
    /// Maximum error (root distance), seconds, non-negative.
    pub max_error: f64,
    /// Estimated error (root dispersion / jitter), seconds, non-negative.
    pub est_error: f64,
}

impl Default for SyncStatus {
    /// Not synchronized, alarm leap indicator, errors at the kernel's ceiling of 16 s.
    fn default() -> Self {
        Self {
            synchronized: false,
            leap: Leap::Unsynchronized,
            max_error: 16.0,
            est_error: 16.0,
        }
    }
}

/// Reads CLOCK_REALTIME via `clock_gettime(2)`: (seconds, nanoseconds) since the Unix epoch.
pub fn host_realtime() -> (i64, u32) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME always exists, so the call
    // cannot fail (if it somehow did, `ts` stays zero).
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    // time_t is not i64 on every target.
    #[allow(clippy::unnecessary_cast)]
    let secs = ts.tv_sec as i64;
    (secs, ts.tv_nsec as u32)
}

/// Number of nonzero increments observed when measuring precision.
const PRECISION_SAMPLES: usize = 100;
/// Give up after this many reads (a clock that barely advances).
const PRECISION_MAX_READS: usize = 1_000_000;

/// Measures the reading precision of a clock: reads it until [`PRECISION_SAMPLES`] nonzero
/// forward increments have been seen and returns log2 of the smallest, in seconds, rounded
/// up (the coarser side). A clock that never advances gets 0 (one second).
pub fn measure_precision(mut read: impl FnMut() -> (i64, u32)) -> i8 {
    let to_ns = |(s, n): (i64, u32)| s as i128 * 1_000_000_000 + n as i128;
    let mut last = to_ns(read());
    let mut smallest: Option<i128> = None;
    let mut seen = 0;
    for _ in 0..PRECISION_MAX_READS {
        let t = to_ns(read());
        let inc = t - last;
        last = t;
        if inc > 0 {
            smallest = Some(smallest.map_or(inc, |s| s.min(inc)));
            seen += 1;
            if seen >= PRECISION_SAMPLES {
                break;
            }
        }
    }
    match smallest {
        Some(ns) => precision_from_increment(ns.min(u64::MAX as i128) as u64),
        None => 0,
    }
}

/// log2 of `nanos` nanoseconds in seconds, rounded up, within -30 ..= 0.
pub fn precision_from_increment(nanos: u64) -> i8 {
    let secs = nanos.max(1) as f64 * 1e-9;
    (secs.log2().ceil() as i32).clamp(-30, 0) as i8
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn precision_rounds_up_to_the_coarser_power_of_two() {
        assert_eq!(precision_from_increment(1), -29); // 1 ns = 2^-29.9
        assert_eq!(precision_from_increment(1_000), -19); // 1 us = 2^-19.9
        assert_eq!(precision_from_increment(953), -20); // just under 2^-20 s
        assert_eq!(precision_from_increment(1_000_000_000), 0);
        assert_eq!(precision_from_increment(u64::MAX), 0);
    }

    #[test]
    fn measured_precision_takes_the_smallest_nonzero_step() {
        // A fake clock that advances 0, 5000, 0, 300, 0, 5000, 0, 300 ... ns per read, and
        // once steps backwards: the smallest forward step (300 ns) decides.
        let t = Cell::new(1_000_000_000i128);
        let n = Cell::new(0u32);
        let p = measure_precision(|| {
            let k = n.get();
            n.set(k + 1);
            let inc = match k % 4 {
                1 => 5000,
                3 => 300,
                _ => 0,
            };
            let inc = if k == 50 { -1_000_000 } else { inc };
            t.set(t.get() + inc);
            (
                (t.get() / 1_000_000_000) as i64,
                (t.get() % 1_000_000_000) as u32,
            )
        });
        assert_eq!(p, precision_from_increment(300));
        assert_eq!(p, -21);
    }

    #[test]
    fn frozen_clock_reports_one_second() {
        assert_eq!(measure_precision(|| (5, 0)), 0);
    }

    #[test]
    fn host_clock_precision_is_plausible() {
        let p = measure_precision(host_realtime);
        assert!((-30..=-10).contains(&p), "precision 2^{p} s");
    }

    #[test]
    fn host_realtime_is_after_2020_and_normalised() {
        let (s, n) = host_realtime();
        assert!(s > 1_577_836_800, "{s}");
        assert!(n < 1_000_000_000);
    }
}
