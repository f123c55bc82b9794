//! Clock discipline: a two-state Kalman filter over (offset, frequency) that knows the
//! frequency it commanded, turned into clock actions (step once at start, then absolute
//! frequency settings that include a temporary slew of the remaining offset).
//!
//! Internal units: seconds and s/s; ppm only at the interface. Sign conventions: offset =
//! server - local (positive: the local clock is behind); frequency positive = faster.
//! See `docs/algorithms.md` for the derivation.

use crate::time::{Mono, NtpTimestamp, PollInterval};

/// Limits and thresholds of the discipline.
/// Samples in a row beyond the step threshold before a later step (with `spike_interval`).
const SPIKE_SAMPLES: u32 = 3;

#[derive(Copy, Clone, Debug, PartialEq)]
pub struct DisciplineConfig {
    /// Offsets beyond this (s) are stepped, not slewed (first update, or when persistent).
    pub step_threshold: f64,
    /// Offsets beyond this (s) are refused (`Panic`).
    pub panic_threshold: f64,
    /// Largest absolute base frequency (the clock's own error), ppm.
    pub max_frequency_ppm: f64,
    /// Largest absolute frequency commanded while slewing an offset away (base plus slew),
    /// ppm. Clock drivers reach it with the kernel tick (chrony's `maxslewrate`).
    pub max_slew_ppm: f64,
    /// How long (s) an offset beyond the step threshold must persist before it is stepped.
    pub spike_interval: f64,
    /// No update may move the clock to before this time (RFC 8633 s.5.2: a floor at the
    /// software's build date, against servers that claim a time years back); `None`: none.
    pub time_floor: Option<NtpTimestamp>,
}

impl Default for DisciplineConfig {
    fn default() -> Self {
        Self {
            step_threshold: 0.128,
            panic_threshold: 1000.0,
            max_frequency_ppm: 500.0,
            max_slew_ppm: 83_333.0,
            spike_interval: 900.0,
            time_floor: None,
        }
    }
}

/// What the clock driver should do after an update.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum ClockAdjustment {
    /// Nothing to change.
    None,
    /// Step the clock by `offset` s (positive: forward), then set the absolute frequency.
    Step { offset: f64, frequency_ppm: f64 },
    /// Set the absolute frequency (ppm, positive faster), held until the next update.
    Frequency { frequency_ppm: f64 },
    /// The offset (s) exceeds the panic threshold: nothing done, report it.
    Panic { offset: f64 },
    /// The offset (s) would set the clock before the time floor: nothing done, report it.
    BeforeFloor { offset: f64 },
}

/// Coarse state for display.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DisciplineState {
    /// No update yet.
    Unset,
    /// Running, but the frequency is not yet known to within `TRAINED_FREQ_SD`.
    Training,
    /// Locked.
    Sync,
    /// An offset beyond the step threshold was seen and is being watched.
    Spike,
}

/// Frequency standard deviation (s/s) below which the discipline reports `Sync`.
const TRAINED_FREQ_SD: f64 = 0.5e-6;
/// Floor of a measurement variance, s^2 (10 ns).
const MIN_VARIANCE: f64 = 1e-16;
/// Bounds and start value of the frequency random-walk density, (s/s)^2 per s.
const WANDER_MIN: f64 = 1e-21;
const WANDER_MAX: f64 = 1e-13;
const WANDER_START: f64 = 1e-18;
/// Squared normalized innovation beyond which a measurement is an outlier (6 sigma).
const OUTLIER_NIS: f64 = 36.0;
/// Squared normalized innovation within which an offset beyond the step threshold is what
/// the filter predicted (3 sigma), so a measurement rather than a spike.
const EXPECTED_NIS: f64 = 9.0;
/// A spike that begins this long (s) after the last accepted sample follows a holdover.
const HOLDOVER_GAP: f64 = 3600.0;

/// The discipline. Pure state machine: time comes in as `now`.
#[derive(Clone, Debug)]

pub struct Discipline {
    config: DisciplineConfig,
    state: DisciplineState,
    /// Estimated offset at `last` (s), server - local.
    offset: f64,
    /// Estimated frequency (s/s) at which the local clock keeps true time.
    freq: f64,
    /// Covariance of (offset, freq): [p00 s^2, p01 s, p11 (s/s)^2].
    p: [f64; 3],
    /// Time of the last update.
    last: Option<Mono>,
    /// Frequency (s/s) commanded since `last`.
    commanded: f64,
    /// When the slew part of `commanded` has corrected the offset it was meant for; from
    /// then on the clock must run at `after_slew` (the base frequency). Without this end, a
    /// slew whose next update never comes (a lost network) would run on forever.
    slew_end: Option<Mono>,
    after_slew: f64,
    /// The owner still has to set `after_slew` at `slew_end` (see [`Discipline::poll_timeout`]).
    slew_pending: bool,
    /// Frequency random-walk density, (s/s)^2 / s, adapted from the innovations.
    wander: f64,
    /// Running mean of the squared normalized innovations.
    nis: f64,
    spike_since: Option<Mono>,
    /// Samples beyond the step threshold in a row.
    spikes_in_row: u32,
    initial_freq: f64,
    initial_freq_var: f64,
    /// Time of the last sample the filter accepted (not a spike).
    accepted: Option<Mono>,
}

fn finite(x: f64) -> bool {
    x.is_finite()
}

impl Discipline {
    /// `initial_frequency_ppm` is the drift file's value (0 if none). A non-zero value is
    /// trusted to about 5 ppm, zero to about 100 ppm.
    pub fn new(config: DisciplineConfig, initial_frequency_ppm: f64) -> Self {
        let max = config.max_frequency_ppm.abs() * 1e-6;
        let f0 = if finite(initial_frequency_ppm) {
            (initial_frequency_ppm * 1e-6).clamp(-max, max)
        } else {
            0.0
        };
        let sd = if f0 == 0.0 { 100e-6 } else { 5e-6 };
        Self {
            config,
            state: DisciplineState::Unset,
            offset: 0.0,
            freq: f0,
            p: [0.0, 0.0, sd * sd],
            last: None,
            commanded: f0,
            slew_end: None,
            after_slew: f0,
            slew_pending: false,
            wander: WANDER_START,
            nis: 1.0,
            spike_since: None,
            spikes_in_row: 0,
            initial_freq: f0,
            initial_freq_var: sd * sd,
            accepted: None,
        }
    }

    fn max_freq(&self) -> f64 {
        self.config.max_frequency_ppm.abs() * 1e-6
    }

    /// Current base frequency (the estimate of the clock's true-time frequency), ppm.
    pub fn frequency_ppm(&self) -> f64 {
        self.freq.clamp(-self.max_freq(), self.max_freq()) * 1e6
    }

    /// Frequency currently commanded (base + slew), ppm.
    pub fn commanded_frequency_ppm(&self) -> f64 {
        self.commanded * 1e6
    }

    /// Estimated remaining offset at the last update, s, and its standard deviation, s.
    pub fn offset_estimate(&self) -> (f64, f64) {
        (self.offset, self.p[0].max(0.0).sqrt())
    }

    /// Standard deviation of the frequency estimate, ppm.
    pub fn frequency_sd_ppm(&self) -> f64 {
        self.p[2].max(0.0).sqrt() * 1e6
    }

    /// Current frequency wander estimate, (s/s)^2 per second, and the running mean of the
    /// normalized squared innovations (about 1 when the noise model fits).
    pub fn noise_model(&self) -> (f64, f64) {
        (self.wander, self.nis)
    }

    pub fn state(&self) -> DisciplineState {
        self.state
    }

    /// Forgets everything but the frequency (e.g. after the clock was set by hand).
    pub fn reset(&mut self) {
        let freq = self.freq;
        *self = Self::new(self.config, freq * 1e6);
    }

    /// Moves the state to `now` under the commanded frequency (Kalman prediction).
    fn predict(&mut self, now: Mono) {
        let Some(last) = self.last else { return };
        let dt = now.saturating_since(last).as_secs_f64();
        let [p00, p01, p11] = self.p;
        let q = self.wander;
        // The commanded frequency held until the slew ended, the base frequency after it.
        match self.slew_end {
            Some(end) if end < now => {
                let slewed = end.saturating_since(last).as_secs_f64().min(dt);
                self.offset += (self.freq - self.commanded) * slewed
                    + (self.freq - self.after_slew) * (dt - slewed);
                self.commanded = self.after_slew;
                self.slew_end = None;
            }
            _ => self.offset += (self.freq - self.commanded) * dt,
        }
        self.p = [
            p00 + 2.0 * dt * p01 + dt * dt * p11 + q * dt * dt * dt / 3.0,
            p01 + dt * p11 + q * dt * dt / 2.0,
            p11 + q * dt,
        ];
        self.last = Some(now);
    }

    /// Kalman measurement update with offset `z` of variance `r`; returns the squared
    /// normalized innovation.
    fn correct(&mut self, z: f64, r: f64) -> f64 {
        let [p00, p01, p11] = self.p;
        let y = z - self.offset;
        let s = p00 + r;
        let (k0, k1) = (p00 / s, p01 / s);
        self.offset += k0 * y;
        self.freq += k1 * y;
        self.p = [
            (1.0 - k0) * p00,
            (1.0 - k0) * p01,
            (p11 - k1 * p01).max(1e-30),
        ];
        y * y / s
    }

    /// Chooses the commanded frequency: base plus the remaining offset slewed over a time
    /// constant of `poll * (1 + RATIO * sd / |offset|)`, capped at 8 polls.
    fn command(&mut self, poll: PollInterval) -> f64 {
        let max = self.max_freq();
        let base = self.freq.clamp(-max, max);
        let poll_s = poll.as_seconds().max(1.0);
        let sd = self.p[0].max(0.0).sqrt();
        let k = (1.0 + SLEW_RATIO * sd / self.offset.abs().max(1e-12)).min(8.0);
        let tau = poll_s * k;
        let max_slew = (self.config.max_slew_ppm.abs() * 1e-6).max(max);
        self.commanded = (base + self.offset / tau).clamp(-max_slew, max_slew);
        // The slew ends when it has removed the estimated offset (later than tau when the
        // frequency limit cut the rate).
        let rate = self.commanded - base;
        self.slew_pending = rate.abs() > 1e-15;
        self.slew_end = match (self.slew_pending, self.last) {
            (true, Some(last)) => {
                let secs = (self.offset / rate).abs().min(1e6);
                Some(last + core::time::Duration::from_secs_f64(secs))
            }
            _ => None,
        };
        self.after_slew = base;
        self.commanded * 1e6
    }

    /// When the current slew ends and the owner must call [`Discipline::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Mono> {
        if self.slew_pending {
            self.slew_end
        } else {
            None
        }
    }

    /// At the end of a slew: the frequency to hold from now on (the base frequency), so a
    /// correction never outlives the offset it was for, even when no update follows.
    pub fn handle_timeout(&mut self, now: Mono) -> ClockAdjustment {
        match self.slew_end {
            Some(end) if self.slew_pending && now >= end => {
                self.slew_pending = false;
                ClockAdjustment::Frequency {
                    frequency_ppm: self.after_slew * 1e6,
                }
            }
            _ => ClockAdjustment::None,
        }
    }

    /// Drops a pending slew end (the frequency was just set otherwise).
    fn end_slew(&mut self) {
        self.slew_end = None;
        self.slew_pending = false;
        self.after_slew = self.commanded;
    }

    fn start(&mut self, now: Mono, offset: f64, r: f64) {
        self.offset = offset;
        self.freq = self.initial_freq;
        self.p = [r, 0.0, self.initial_freq_var];
        self.last = Some(now);
        self.commanded = self.freq;
        self.end_slew();
        self.state = DisciplineState::Training;
        self.spike_since = None;
        self.spikes_in_row = 0;
        self.accepted = Some(now);
    }

    fn refresh_state(&mut self) {
        self.state = if self.p[2].sqrt() < TRAINED_FREQ_SD {
            DisciplineState::Sync
        } else {
            DisciplineState::Training
        };
    }

    /// A new combined offset `offset` (s, server - local) of variance `offset_variance` (s^2)
    /// measured at `now`, with poll interval `poll`. Returns what to do to the clock.
    pub fn update(
        &mut self,
        now: Mono,
        offset: f64,
        offset_variance: f64,
        poll: PollInterval,
    ) -> ClockAdjustment {
        if !finite(offset) {
            return ClockAdjustment::None;
        }
        let r = if finite(offset_variance) {
            offset_variance.max(MIN_VARIANCE)
        } else {
            return ClockAdjustment::None;
        };
        if offset.abs() > self.config.panic_threshold {
            return ClockAdjustment::Panic { offset };
        }
        // Beyond the step threshold with confidence: a sample of a noisy path (its variance
        // from its excess delay) may lie far out without the clock being off.
        let big = offset.abs() > self.config.step_threshold + 2.0 * r.sqrt();
        if self.last.is_none() {
            if big {
                self.start(now, 0.0, r);
                return ClockAdjustment::Step {
                    offset,
                    frequency_ppm: self.commanded * 1e6,
                };
            }
            self.start(now, offset, r);
            return ClockAdjustment::Frequency {
                frequency_ppm: self.command(poll),
            };
        }
        let dt = now.saturating_since(self.last.unwrap_or(now)).as_secs_f64();
        self.predict(now);
        // After a long holdover the filter itself predicts a large error (a frequency known
        // only to a fraction of a ppm, integrated over a day): an offset beyond the step
        // threshold that lies within EXPECTED_NIS of that prediction is a measurement, not a
        // spike. It is used at once (see `holdover_step` below) instead of being ignored for
        // `spike_interval`, during which the clock would drift on.
        let innovation = offset - self.offset;
        let expected = innovation * innovation <= EXPECTED_NIS * (self.p[0] + r);
        if big && !expected {
            let since = *self.spike_since.get_or_insert(now);
            self.spikes_in_row += 1;
            // A real error persists: it is seen in several samples in a row over the whole
            // interval. Noise that sometimes exceeds the threshold (a path with 100 ms of
            // jitter) is not seen three times in a row.
            // After a holdover (no accepted sample for HOLDOVER_GAP before the spike began)
            // there is no time to watch: the samples in a row are the evidence.
            let gap = self
                .accepted
                .map_or(0.0, |a| since.saturating_since(a).as_secs_f64());
            let holdover = gap >= HOLDOVER_GAP;
            if (holdover || now.saturating_since(since).as_secs_f64() >= self.config.spike_interval)
                && self.spikes_in_row >= SPIKE_SAMPLES
            {
                if holdover {
                    return self.holdover_frequency_step(now, offset, r);
                }
                // Persistent: step, keep the frequency but doubt it.
                let freq = self.freq;
                let var = self.p[2] + (1e-6f64).powi(2);
                self.start(now, 0.0, r);
                self.freq = freq;
                self.p[2] = var;
                self.commanded = freq.clamp(-self.max_freq(), self.max_freq());
                self.end_slew();
                return ClockAdjustment::Step {
                    offset,
                    frequency_ppm: self.commanded * 1e6,
                };
            }
            // Ignore the spike; stop slewing until it resolves.
            self.state = DisciplineState::Spike;
            let max = self.max_freq();
            self.commanded = self.freq.clamp(-max, max);
            self.end_slew();
            return ClockAdjustment::Frequency {
                frequency_ppm: self.commanded * 1e6,
            };
        }
        self.spike_since = None;
        self.spikes_in_row = 0;
        // Model check before the update: an innovation beyond OUTLIER_NIS cannot be noise
        // (the filter's variance bounds the asymmetry error), so the frequency moved, some
        // time within the last poll or so. Widen both variances, independently: the offset
        // by the whole innovation, the frequency by innovation / poll. The offset is absorbed
        // now; the new frequency is learnt from the next samples with honest uncertainty.
        let y = offset - self.offset;
        if y * y > OUTLIER_NIS * (self.p[0] + r) {
            // The change happened at most `dt` ago: after an outage, the whole gap.
            let span = poll.as_seconds().max(dt).max(1.0);
            self.p[0] += y * y;
            self.p[2] += (y / span).powi(2);
        }
        let nis = self.correct(offset, r);
        self.accepted = Some(now);
        self.adapt_wander(nis);
        if !(finite(self.offset) && finite(self.freq) && self.p.iter().all(|x| finite(*x))) {
            self.reset();
            return ClockAdjustment::None;
        }
        self.refresh_state();
        if big && self.offset.abs() > self.config.step_threshold {
            return self.holdover_step();
        }
        ClockAdjustment::Frequency {
            frequency_ppm: self.command(poll),
        }
    }

    /// A persistent error found after a holdover, larger than the filter predicted: most
    /// likely the frequency was wrong all along the gap (a young estimate). If that is
    /// plausible (the implied frequency error within the frequency limit), the covariance
    /// is widened by a frequency error held over the whole span since the last accepted
    /// sample, so that the update corrects the frequency by about error / span, and the
    /// offset is stepped. Otherwise (an external step of the clock) as any persistent step.
    fn holdover_frequency_step(&mut self, now: Mono, offset: f64, r: f64) -> ClockAdjustment {
        let span = self
            .accepted
            .map_or(0.0, |a| now.saturating_since(a).as_secs_f64())
            .max(1.0);
        let y = offset - self.offset;
        let extra = (y * y - self.p[0] - r).max(0.0);
        if (y / span).abs() <= self.max_freq() {
            self.p[0] += extra;
            self.p[1] += extra / span;
            self.p[2] += extra / (span * span);
            self.correct(offset, r);
        } else {
            let freq = self.freq;
            let var = self.p[2] + (1e-6f64).powi(2);
            self.start(now, offset, r);
            self.freq = freq;
            self.p[2] = var;
        }
        self.spike_since = None;
        self.spikes_in_row = 0;
        self.accepted = Some(now);
        self.refresh_state();
        self.holdover_step()
    }

    /// Steps the estimated offset away after an expected large error (a holdover). The
    /// offset's uncertainty stays as it was (the step is exact); the frequency and the
    /// covariance are kept.
    fn holdover_step(&mut self) -> ClockAdjustment {
        let step = self.offset;
        self.offset = 0.0;
        let max = self.max_freq();
        self.commanded = self.freq.clamp(-max, max);
        self.end_slew();
        ClockAdjustment::Step {
            offset: step,
            frequency_ppm: self.commanded * 1e6,
        }
    }

    /// Adapts the frequency wander so that innovations stay consistent with their predicted
    /// variance: a long-run mean of the normalized squared innovation above 1 means the
    /// frequency moves more than assumed.
    fn adapt_wander(&mut self, nis: f64) {
        self.nis += (nis.min(25.0) - self.nis) / NIS_WINDOW;
        if self.nis > NIS_HIGH {
            self.wander = (self.wander * WANDER_STEP).min(WANDER_MAX);
        } else if self.nis < NIS_LOW {
            self.wander = (self.wander / WANDER_STEP).max(WANDER_MIN);
        }
    }
}

/// Slew time-constant ratio: how many offset standard deviations stretch the slew by a poll.
const SLEW_RATIO: f64 = 0.5;
const NIS_WINDOW: f64 = 32.0;
const NIS_HIGH: f64 = 2.0;
const NIS_LOW: f64 = 0.5;
const WANDER_STEP: f64 = 1.05;

#[cfg(test)]
mod tests {
    use super::*;

    fn poll() -> PollInterval {
        PollInterval::new(6)
    }

    fn at(s: f64) -> Mono {
        Mono::from_seconds(s)
    }

    #[test]
    fn first_large_offset_steps_small_slews_huge_panics() {
        let mut d = Discipline::new(DisciplineConfig::default(), 12.0);
        assert_eq!(d.state(), DisciplineState::Unset);
        match d.update(at(0.0), 2.0, 1e-8, poll()) {
            ClockAdjustment::Step {
                offset,
                frequency_ppm,
            } => {
                assert_eq!(offset, 2.0);
                assert_eq!(frequency_ppm, 12.0);
            }
            other => panic!("{other:?}"),
        }
        let mut d = Discipline::new(DisciplineConfig::default(), 0.0);
        match d.update(at(0.0), 0.010, 1e-8, poll()) {
            ClockAdjustment::Frequency { frequency_ppm } => assert!(frequency_ppm > 0.0),
            other => panic!("{other:?}"),
        }
        let mut d = Discipline::new(DisciplineConfig::default(), 0.0);
        assert_eq!(
            d.update(at(0.0), -2000.0, 1e-8, poll()),
            ClockAdjustment::Panic { offset: -2000.0 }
        );
        assert!(matches!(
            d.update(at(0.0), f64::NAN, 1e-8, poll()),
            ClockAdjustment::None
        ));
    }

    #[test]
    fn single_spike_ignored_persistent_offset_stepped() {
        let mut d = Discipline::new(DisciplineConfig::default(), 0.0);
        let mut t = 0.0;
        for _ in 0..5 {
            d.update(at(t), 0.0, 1e-8, poll());
            t += 64.0;
        }
        let a = d.update(at(t), 0.5, 1e-8, poll());
        assert!(matches!(a, ClockAdjustment::Frequency { .. }));
        assert_eq!(d.state(), DisciplineState::Spike);
        t += 64.0;
        d.update(at(t), 0.0, 1e-8, poll());
        assert_ne!(d.state(), DisciplineState::Spike);
        // Now a persistent 0.5 s: stepped once 900 s have passed, not before.
        let mut stepped_at = None;
        let mut first_spike = None;
        for _ in 0..30 {
            t += 64.0;
            first_spike.get_or_insert(t);
            if let ClockAdjustment::Step { offset, .. } = d.update(at(t), 0.5, 1e-8, poll()) {
                assert_eq!(offset, 0.5);
                stepped_at = Some(t);
                break;
            }
        }
        let first_spike = first_spike.unwrap();
        let stepped_at = stepped_at.expect("persistent offset never stepped");
        assert!(stepped_at - first_spike >= 900.0);
        assert!(stepped_at - first_spike <= 900.0 + 64.0);
    }

    #[test]
    fn learns_frequency_from_noiseless_offsets() {
        // Local clock 20 ppm slow: offset grows unless the commanded frequency is +20 ppm.
        let mut d = Discipline::new(DisciplineConfig::default(), 0.0);
        let (mut x, mut t) = (0.001, 0.0);
        for _ in 0..200 {
            let f = match d.update(at(t), x, 1e-12, PollInterval::new(4)) {
                ClockAdjustment::Frequency { frequency_ppm } => frequency_ppm,
                other => panic!("{other:?}"),
            };
            // Offset evolves at (needed - commanded) over the next 16 s.
            x += (20.0 - f) * 1e-6 * 16.0;
            t += 16.0;
        }
        assert!(
            (d.frequency_ppm() - 20.0).abs() < 0.01,
            "{}",
            d.frequency_ppm()
        );
        assert!(x.abs() < 1e-6, "{x}");
        assert_eq!(d.state(), DisciplineState::Sync);
    }

    #[test]
    fn frequency_is_clamped() {
        let cfg = DisciplineConfig {
            max_frequency_ppm: 100.0,
            max_slew_ppm: 1000.0,
            ..DisciplineConfig::default()
        };
        let mut d = Discipline::new(cfg, 1e6);
        assert!((d.frequency_ppm() - 100.0).abs() < 1e-9);
        // A 100 ms offset is slewed at the slew limit; the base frequency stays within its own.
        match d.update(at(0.0), 0.1, 1e-8, poll()) {
            ClockAdjustment::Frequency { frequency_ppm } => assert_eq!(frequency_ppm, 1000.0),
            other => panic!("{other:?}"),
        }
        assert!(d.frequency_ppm() <= 100.0);
        // The slew ends once 0.1 s is removed at the 900 ppm above base: after about 111 s.
        let end = d.poll_timeout().expect("a slew end");
        let secs = end.as_seconds() - at(0.0).as_seconds();
        assert!((secs - 0.1 / 900e-6).abs() < 1e-6, "{secs}");
        assert_eq!(
            d.handle_timeout(at(secs - 1.0)),
            ClockAdjustment::None,
            "not before its end"
        );
        assert_eq!(
            d.handle_timeout(end),
            ClockAdjustment::Frequency {
                frequency_ppm: d.frequency_ppm()
            }
        );
        assert_eq!(d.poll_timeout(), None, "handled once");
    }

    #[test]
    fn expected_large_offset_after_outage_is_stepped_at_once() {
        // Half an hour of samples with 10 ms of noise leaves the frequency known to a few
        // ppm only; a day later the clock may be 0.3 s off, and the filter knows it.
        let mut d = Discipline::new(DisciplineConfig::default(), 0.0);
        let mut t = 0.0;
        for i in 0..28 {
            let noise = if i % 2 == 0 { 0.005 } else { -0.005 };
            d.update(at(t), noise, 1e-4, poll());
            t += 64.0;
        }
        let (_, sd) = d.offset_estimate();
        assert!(sd < 0.05, "{sd}");
        let sd_freq = d.frequency_sd_ppm();
        assert!(sd_freq > 1.0, "{sd_freq}");
        t += 86_400.0;
        match d.update(at(t), 0.3, 1e-4, poll()) {
            ClockAdjustment::Step { offset, .. } => {
                assert!((offset - 0.3).abs() < 0.01, "{offset}")
            }
            other => panic!("expected a step, got {other:?}"),
        }
        assert_ne!(d.state(), DisciplineState::Spike);
        // The day-long gap measured the frequency: known better than before it.
        assert!(
            d.frequency_sd_ppm() < sd_freq / 2.0,
            "{}",
            d.frequency_sd_ppm()
        );
        // The next sample finds the clock on time.
        t += 2.0;
        assert!(matches!(
            d.update(at(t), 0.0, 1e-4, poll()),
            ClockAdjustment::Frequency { .. }
        ));
        // Without the outage, the same 0.3 s is a spike and is ignored.
        let mut d = Discipline::new(DisciplineConfig::default(), 0.0);
        let mut t = 0.0;
        for i in 0..28 {
            let noise = if i % 2 == 0 { 0.005 } else { -0.005 };
            d.update(at(t), noise, 1e-4, poll());
            t += 64.0;
        }
        assert!(matches!(
            d.update(at(t), 0.3, 1e-4, poll()),
            ClockAdjustment::Frequency { .. }
        ));
        assert_eq!(d.state(), DisciplineState::Spike);
    }

    #[test]
    fn unexpected_error_after_outage_steps_after_three_samples_and_corrects_frequency() {
        // Locked at the right frequency (0 ppm), then a day without samples; the clock
        // really ran 20 ppm fast all day, 1.7 s, far beyond what the filter predicted.
        let mut d = Discipline::new(DisciplineConfig::default(), 0.0);
        let mut t = 0.0;
        for _ in 0..40 {
            d.update(at(t), 0.0, 1e-10, poll());
            t += 64.0;
        }
        assert!(d.frequency_sd_ppm() < 0.5);
        t += 86_400.0;
        let err = -20e-6 * 86_400.0;
        // The first two are watched (a single bad reply must not step the clock) ...
        for _ in 0..2 {
            assert!(matches!(
                d.update(at(t), err, 1e-6, poll()),
                ClockAdjustment::Frequency { .. }
            ));
            assert_eq!(d.state(), DisciplineState::Spike);
            t += 2.0;
        }
        // ... the third in a row steps, long before the 900 s spike interval.
        match d.update(at(t), err, 1e-6, poll()) {
            ClockAdjustment::Step { offset, .. } => {
                assert!((offset - err).abs() < 0.01, "{offset}")
            }
            other => panic!("expected a step, got {other:?}"),
        }
        // The frequency error over the gap is learnt: about -20 ppm.
        let f = d.frequency_ppm();
        assert!((f + 20.0).abs() < 2.0, "{f}");
    }
}
