//! The `read-only` driver: serves and measures against CLOCK_REALTIME and never adjusts it;
//! requested corrections are only recorded so that status reports can show them.
//!
//! Leap seconds: the driver never arms the kernel (no `STA_INS` / `STA_DEL`), so it never
//! executes one; whatever keeps the host clock must. It only reports: the announced leap
//! indicator is remembered ([`ReadOnlyClock::sync_status`]), served to clients in the leap
//! bits and shown by `meridianctl status` (`leap`), and the start of an announcement is logged.

use std::io;

use meridian_proto::time::NtpTimestamp;
use meridian_proto::wire::Leap;

use super::timex;
use super::{host_realtime, measure_precision, Clock, SyncStatus};

/// The host clock, read but never touched.
#[derive(Debug)]
pub struct ReadOnlyClock {
    /// Last requested frequency correction, ppm (clamped like the kernel would), not applied.
    requested_freq_ppm: f64,
    /// Sum of all requested steps, seconds, not applied.
    requested_steps: f64,
    /// Number of steps requested.
    step_count: u64,
    status: SyncStatus,
    precision: i8,
}

impl ReadOnlyClock {
    /// Measures the host clock's precision; changes nothing.
    pub fn new() -> Self {
        Self {
            requested_freq_ppm: 0.0,
            requested_steps: 0.0,
            step_count: 0,
            status: SyncStatus::default(),
            precision: measure_precision(host_realtime),
        }
    }

    /// Total of the steps requested so far (seconds, positive = forward) and their number.
    pub fn requested_steps(&self) -> (f64, u64) {
        (self.requested_steps, self.step_count)
    }

    /// The last synchronization state handed over (remembered, never applied).
    pub fn sync_status(&self) -> &SyncStatus {
        &self.status
    }
}

impl Default for ReadOnlyClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ReadOnlyClock {
    fn now(&self) -> NtpTimestamp {
        let (s, n) = host_realtime();
        NtpTimestamp::from_unix(s, n)
    }

    fn from_realtime(&self, secs: i64, nanos: u32) -> NtpTimestamp {
        NtpTimestamp::from_unix(secs, nanos)
    }

    /// The last requested correction: it is not applied to the host clock, but reporting it
    /// keeps the core's loop and the status output consistent with what was asked.
    fn frequency_ppm(&self) -> f64 {
        self.requested_freq_ppm
    }

    fn set_frequency_ppm(&mut self, ppm: f64) -> io::Result<()> {
        if ppm.is_nan() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frequency is NaN",
            ));
        }
        self.requested_freq_ppm = timex::clamp_slew_ppm(ppm);
        Ok(())
    }

    fn step(&mut self, offset: f64) -> io::Result<()> {
        if timex::split_offset_nanos(offset).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot step by {offset} s"),
            ));
        }
        self.requested_steps += offset;
        self.step_count += 1;
        Ok(())
    }

    fn set_sync_status(&mut self, status: &SyncStatus) -> io::Result<()> {
        let announced = |l: Leap| matches!(l, Leap::AddSecond | Leap::DeleteSecond);
        if announced(status.leap) && status.leap != self.status.leap {
            crate::info!(
                "leap second ({}) announced for the end of the UTC day; the read-only clock \
                 driver does not execute it",
                status.leap.as_str()
            );
        }
        self.status = *status;
        Ok(())
    }

    fn precision_log2(&self) -> i8 {
        self.precision
    }

    fn name(&self) -> &'static str {
        "read-only"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::system::read_kernel_state;

    fn offset_from_host(clock: &ReadOnlyClock) -> f64 {
        let (s, n) = host_realtime();
        (clock.now() - NtpTimestamp::from_unix(s, n)).to_seconds()
    }

    #[test]
    fn adjustments_are_recorded_but_never_reach_the_host() {
        let kernel_before = read_kernel_state().expect("read kernel state");
        let mut clock = ReadOnlyClock::new();
        clock.set_frequency_ppm(250.0).unwrap();
        clock.set_frequency_ppm(-800.0).unwrap();
        clock.step(3600.0).unwrap();
        clock.step(-0.25).unwrap();
        clock
            .set_sync_status(&SyncStatus {
                synchronized: true,
                leap: Leap::AddSecond,
                max_error: 0.1,
                est_error: 0.01,
            })
            .unwrap();

        // The host clock neither jumped an hour nor changed frequency or leap state.
        assert!(offset_from_host(&clock).abs() < 0.5);
        let kernel_after = read_kernel_state().expect("read kernel state");
        assert_eq!(kernel_before.freq, kernel_after.freq);
        assert_eq!(
            kernel_before.status & (libc::STA_INS | libc::STA_DEL),
            kernel_after.status & (libc::STA_INS | libc::STA_DEL)
        );

        // ...but what was asked is visible.
        assert_eq!(clock.frequency_ppm(), -800.0);
        assert_eq!(clock.requested_steps(), (3599.75, 2));
        assert_eq!(clock.sync_status().leap, Leap::AddSecond);
        assert_eq!(clock.name(), "read-only");
    }

    #[test]
    fn invalid_requests_are_rejected() {
        let mut clock = ReadOnlyClock::new();
        assert!(clock.set_frequency_ppm(f64::NAN).is_err());
        assert!(clock.step(f64::INFINITY).is_err());
        assert_eq!(clock.requested_steps(), (0.0, 0));
    }
}
