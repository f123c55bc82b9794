//! A simulated local clock against true time: initial offset, constant frequency error,
//! optional random-walk wander, and the corrections (frequency, steps) a daemon applies.

use meridian_proto::entropy::Entropy;
use meridian_proto::time::{NtpDuration, NtpTimestamp};

/// Default true time 0 of a simulation, as a Unix time (2026-01-01T00:00:00Z).
pub const EPOCH_UNIX: i64 = 1_767_225_600;

/// The error of a clock is kept as an f64 offset from true time, advanced piecewise: between
/// two events the clock runs at (1 + (frequency_error + correction) * 1e-6) true seconds.
#[derive(Clone, Debug)]
pub struct SimClock {
    /// Local minus true time at `last`, seconds.
    offset: f64,
    /// True time of the last update, seconds.
    last: f64,
    /// Free-running frequency error, ppm (positive: fast).
    pub frequency_error_ppm: f64,
    /// Correction applied by the discipline, ppm (positive: faster).
    pub correction_ppm: f64,
    /// Standard deviation of the frequency random walk, ppm per sqrt(second).
    pub wander_ppm: f64,
    /// Unix time of true time 0.
    pub epoch_unix: i64,
}

impl SimClock {
    pub fn new(initial_offset: f64, frequency_error_ppm: f64, wander_ppm: f64) -> Self {
        Self {
            offset: initial_offset,
            last: 0.0,
            frequency_error_ppm,
            correction_ppm: 0.0,
            wander_ppm,
            epoch_unix: EPOCH_UNIX,
        }
    }

    /// Advances the model to true time `t` (never backwards).
    pub fn advance(&mut self, t: f64, rng: &mut dyn Entropy) {
        let dt = t - self.last;
        if dt <= 0.0 {
            return;
        }
        self.offset += dt * (self.frequency_error_ppm + self.correction_ppm) * 1e-6;
        if self.wander_ppm > 0.0 {
            self.frequency_error_ppm += self.wander_ppm * dt.sqrt() * gaussian(rng);
        }
        self.last = t;
    }

    /// Local minus true time at the last advance, seconds.
    pub fn error(&self) -> f64 {
        self.offset
    }

    /// Reading of this clock at true time `t` (after `advance(t)`).
    pub fn read(&self, t: f64) -> NtpTimestamp {
        true_timestamp(self.epoch_unix, t)
            + NtpDuration::from_seconds(
                self.offset
                    + (t - self.last) * (self.frequency_error_ppm + self.correction_ppm) * 1e-6,
            )
    }

    pub fn step(&mut self, offset: f64) {
        self.offset += offset;
    }
}

/// The NTP timestamp of true time `t`.
pub fn true_timestamp(epoch_unix: i64, t: f64) -> NtpTimestamp {
    let whole = t.floor();
    NtpTimestamp::from_unix(epoch_unix + whole as i64, ((t - whole) * 1e9) as u32)
}

/// A standard normal deviate (Box-Muller).
pub fn gaussian(rng: &mut dyn Entropy) -> f64 {
    let u1 = rng.next_f64().max(1e-300);
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
