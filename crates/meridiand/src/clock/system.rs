//! The `system` driver: reads and disciplines CLOCK_REALTIME through `clock_adjtime(2)`
//! (frequency only, kernel PLL off; steps with ADJ_SETOFFSET). Needs CAP_SYS_TIME to adjust.
//!
//! `clock_adjtime` is used rather than `adjtimex`/`ntp_adjtime` so that clknetsim, which
//! intercepts it, can run the daemon unchanged.

use std::io;

use meridian_proto::time::NtpTimestamp;

use super::timex;
use super::{host_realtime, measure_precision, Clock, SyncStatus};

/// Calls `clock_adjtime(CLOCK_REALTIME, tx)`; the kernel writes the current state back into
/// `tx`. With `tx.modes == 0` this only reads and needs no privilege.
fn clock_adjtime(tx: &mut libc::timex) -> io::Result<i32> {
    // SAFETY: `tx` is a valid, exclusively borrowed timex for the duration of the call.
    let rc = unsafe { libc::clock_adjtime(libc::CLOCK_REALTIME, tx) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Reads the kernel's clock state (`modes = 0`, no privilege needed, changes nothing).
pub fn read_kernel_state() -> io::Result<libc::timex> {
    let mut tx = timex::empty();
    clock_adjtime(&mut tx)?;
    Ok(tx)
}

/// The host's CLOCK_REALTIME, disciplined through the kernel.
#[derive(Debug)]
pub struct SystemClock {
    /// Total rate correction in ppm as the kernel holds it (tick and frequency together,
    /// after clamping and rounding).
    freq_ppm: f64,
    /// Nominal tick length, µs (1e6 / USER_HZ).
    nominal_tick_us: i64,
    /// True until our first adjustment has switched the kernel PLL/FLL off.
    pll_pending_off: bool,
    /// The last synchronization state written (or the unsynchronized default).
    status: SyncStatus,
    precision: i8,
}

impl SystemClock {
    /// Reads the kernel's current frequency and status (a pure read, `modes = 0`) and
    /// measures the clock's precision. Nothing is adjusted until the first call that sets
    /// something; that call also switches the kernel PLL off if it was on.
    pub fn open() -> io::Result<Self> {
        let tx = read_kernel_state()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let nominal_tick_us = if hz > 0 {
            1_000_000 / hz as i64
        } else {
            10_000
        };
        Ok(Self {
            freq_ppm: timex::total_rate(
                tx.tick as i64,
                timex::scaled_to_ppm(tx.freq as i64),
                nominal_tick_us,
            ),
            nominal_tick_us,
            pll_pending_off: true,
            status: SyncStatus::default(),
            precision: measure_precision(host_realtime),
        })
    }

    /// The last synchronization state handed to the kernel.
    pub fn sync_status(&self) -> &SyncStatus {
        &self.status
    }

    /// Switches the kernel PLL/FLL off (and writes the remembered status) if no adjustment
    /// has done so yet.
    fn ensure_pll_off(&mut self) -> io::Result<()> {
        if self.pll_pending_off {
            let mut tx = timex::empty();
            tx.modes = libc::ADJ_STATUS;
            tx.status = timex::status_bits(&self.status);
            clock_adjtime(&mut tx)?;
            self.pll_pending_off = false;
        }
        Ok(())
    }
}

impl Clock for SystemClock {
    fn monotonic_rate(&self) -> f64 {
        1.0 + self.freq_ppm * 1e-6
    }

    fn now(&self) -> NtpTimestamp {
        let (s, n) = host_realtime();
        NtpTimestamp::from_unix(s, n)
    }

    fn from_realtime(&self, secs: i64, nanos: u32) -> NtpTimestamp {
        NtpTimestamp::from_unix(secs, nanos)
    }

    fn frequency_ppm(&self) -> f64 {
        self.freq_ppm
    }

    fn set_frequency_ppm(&mut self, ppm: f64) -> io::Result<()> {
        if ppm.is_nan() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frequency is NaN",
            ));
        }
        let status = self.pll_pending_off.then_some(self.status);
        let mut tx = timex::frequency_request(ppm, status.as_ref(), self.nominal_tick_us);
        clock_adjtime(&mut tx)?;
        self.pll_pending_off = false;
        let (tick, freq) = timex::split_rate(ppm, self.nominal_tick_us);
        let freq = timex::scaled_to_ppm(timex::ppm_to_scaled(freq));
        self.freq_ppm = timex::total_rate(tick, freq, self.nominal_tick_us);
        Ok(())
    }

    fn step(&mut self, offset: f64) -> io::Result<()> {
        let Some(mut tx) = timex::step_request(offset) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot step by {offset} s"),
            ));
        };
        self.ensure_pll_off()?;
        clock_adjtime(&mut tx)?;
        Ok(())
    }

    fn set_sync_status(&mut self, status: &SyncStatus) -> io::Result<()> {
        let mut tx = timex::sync_request(status);
        clock_adjtime(&mut tx)?;
        self.status = *status;
        self.pll_pending_off = false;
        Ok(())
    }

    fn precision_log2(&self) -> i8 {
        self.precision
    }

    fn name(&self) -> &'static str {
        "system"
    }
}

#[cfg(test)]
mod tests {
    //! Only reads (`modes = 0`) are allowed here: these tests must never adjust the host.
    use super::*;

    #[test]
    fn open_reads_the_kernel_frequency_without_changing_it() {
        let before = read_kernel_state().expect("clock_adjtime read");
        let clock = SystemClock::open().expect("open");
        let after = read_kernel_state().expect("clock_adjtime read");
        assert_eq!(before.freq, after.freq, "opening must not adjust");
        assert_eq!(
            clock.frequency_ppm(),
            timex::total_rate(
                after.tick as i64,
                timex::scaled_to_ppm(after.freq as i64),
                clock.nominal_tick_us
            )
        );
        assert!(clock.frequency_ppm().abs() <= timex::MAX_SLEW_PPM);
        assert_eq!(clock.name(), "system");
        assert!((-30..=-10).contains(&clock.precision_log2()));
    }

    #[test]
    fn readings_follow_the_host_realtime_clock() {
        let clock = SystemClock::open().expect("open");
        let (s, n) = host_realtime();
        let host = NtpTimestamp::from_unix(s, n);
        let ours = clock.now();
        let d = (ours - host).to_seconds();
        assert!(
            (0.0..0.5).contains(&d),
            "now() is {d} s from the host clock"
        );
        assert_eq!(clock.from_realtime(s, n), host);
    }
}
