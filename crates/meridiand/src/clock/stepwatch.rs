//! Notices steps of the clock that the daemon did not make (`date -s`, a VM resumed from a
//! snapshot, a host resumed from suspend, another program) by comparing the clock's reading
//! with CLOCK_MONOTONIC_RAW between loop iterations; the core is told through
//! `System::handle_external_step`.

use meridian_proto::time::{Mono, NtpTimestamp};

/// An unexplained jump below this is not reported (it is within what the kernel's own
/// frequency, unknown to us for a read-only clock, can make up), seconds.
const TOLERANCE: f64 = 0.05;
/// Rate tolerance on top of the frequency we command (s/s): the host kernel's frequency set
/// by someone else (at most 500 ppm) and rounding of the commanded one.
const RATE_TOLERANCE: f64 = 1e-3;

/// The last reading that is known to be consistent: where the clock should be now.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepWatch {
    base: Option<(Mono, NtpTimestamp, f64)>,
}

impl StepWatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts over from a reading (`clock_now` at `mono`) taken while the clock runs at
    /// `frequency_ppm` against CLOCK_MONOTONIC_RAW: after every adjustment the daemon makes
    /// itself, so that its own steps and frequency changes are never reported.
    pub fn rebase(&mut self, mono: Mono, clock_now: NtpTimestamp, frequency_ppm: f64) {
        let ppm = if frequency_ppm.is_finite() {
            frequency_ppm
        } else {
            0.0
        };
        self.base = Some((mono, clock_now, ppm));
    }

    /// A new reading. Returns the jump (seconds, positive: the clock was moved forward) when
    /// the clock is off from where its rate since the last reading puts it by more than the
    /// tolerance; rebases either way.
    pub fn check(
        &mut self,
        mono: Mono,
        clock_now: NtpTimestamp,
        frequency_ppm: f64,
    ) -> Option<f64> {
        let base = self.base;
        self.rebase(mono, clock_now, frequency_ppm);
        let (mono0, clock0, ppm) = base?;
        let elapsed = mono.saturating_since(mono0).as_secs_f64();
        let advanced = (clock_now - clock0).to_seconds();
        let jump = advanced - elapsed * (1.0 + ppm * 1e-6);
        (jump.abs() > TOLERANCE + RATE_TOLERANCE * elapsed).then_some(jump)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_proto::time::NtpDuration;

    fn at(base: NtpTimestamp, secs: f64) -> NtpTimestamp {
        base + NtpDuration::from_seconds(secs)
    }

    #[test]
    fn reports_a_step_made_behind_its_back_and_nothing_else() {
        let t0 = NtpTimestamp::from_unix(1_800_000_000, 0);
        let mut w = StepWatch::new();
        assert_eq!(w.check(Mono::from_seconds(10.0), t0, 300.0), None);
        // 60 s at +300 ppm: the clock gained 18 ms, as commanded. Not a step.
        let t1 = at(t0, 60.0 * (1.0 + 300e-6));
        assert_eq!(w.check(Mono::from_seconds(70.0), t1, 300.0), None);
        // Someone sets the clock forward by 100 s within the next second.
        let t2 = at(t1, 1.0 + 100.0);
        let jump = w
            .check(Mono::from_seconds(71.0), t2, 300.0)
            .expect("a step");
        assert!((jump - 100.0).abs() < 1e-3, "{jump}");
        // Back to normal: reported once only.
        let t3 = at(t2, 1.0);
        assert_eq!(w.check(Mono::from_seconds(72.0), t3, 300.0), None);
        // A step of our own, followed by a rebase: not reported.
        w.rebase(Mono::from_seconds(72.0), at(t3, -0.5), 0.0);
        let t4 = at(t3, -0.5 + 2.0);
        assert_eq!(w.check(Mono::from_seconds(74.0), t4, 0.0), None);
        // A backward step of 200 ms.
        let t5 = at(t4, 1.0 - 0.2);
        let jump = w.check(Mono::from_seconds(75.0), t5, 0.0).expect("a step");
        assert!((jump + 0.2).abs() < 1e-3, "{jump}");
    }
}
