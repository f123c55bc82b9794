//! Per-association sample processing: keeps the recent samples of one server, models each
//! sample's offset uncertainty from its excess delay, and derives the RFC 5905 peer statistics.
//!
//! Design (see `docs/algorithms.md`): the asymmetry error of an NTP offset is
//! `(d_out - d_in) / 2`, bounded by half the round-trip delay. Of the round-trip delay, the
//! part above the path's minimum (the *excess* delay `x`) is queueing noise; given `x`, the
//! offset error lies within `+-x/2`, which we model as uniform, i.e. variance `x^2 / 12`.
//! Every sample is therefore passed on with its own variance; the downstream estimator
//! (the discipline's Kalman filter) weights it accordingly. Low-delay samples dominate,
//! high-delay ones are nearly ignored, and no sample is thrown away.
//!
//! Units: seconds for offsets, delays, dispersions and jitter; seconds^2 for variances.

use crate::time::Mono;

/// Frequency tolerance PHI of RFC 5905 (s/s): the rate at which dispersion grows with age.
pub const PHI: f64 = 15e-6;
/// Number of stages of the clock register shown to users (RFC 5905 NSTAGE).
pub const NSTAGE: usize = 8;
/// Number of samples kept to learn the path's minimum delay.
pub const HISTORY: usize = 64;
/// Dispersion of an empty stage (RFC 5905 MAXDISP), seconds.
pub const MAXDISP: f64 = 16.0;

/// One measurement of a server.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Sample {
    /// Server time minus local time, seconds (positive: the local clock is behind).
    pub offset: f64,
    /// Round-trip delay, seconds (>= 0 once clamped to the precision).
    pub delay: f64,
    /// Dispersion of the sample when taken (server root dispersion + precisions), seconds.
    pub dispersion: f64,
    /// Monotonic time at which the response was received.
    pub time: Mono,
}

/// What the filter passes on about one server.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct PeerEstimate {
    /// Offset of the passed sample, seconds (server - local).
    pub offset: f64,
    /// Its round-trip delay, seconds.
    pub delay: f64,
    /// RFC 5905 peer dispersion, grown with age at PHI, seconds.
    pub dispersion: f64,
    /// RMS of the offset differences in the register (RFC 5905 peer jitter), seconds.
    pub jitter: f64,
    /// Monotonic time of the passed sample.
    pub time: Mono,
    /// Source frequency relative to the local clock in ppm, when estimated (not done here:
    /// frequency is estimated once, in the discipline).
    pub frequency_ppm: Option<f64>,
    /// Variance of `offset` as an estimate of the true offset at `time`, seconds^2.
    pub offset_variance: f64,
}

/// The per-association filter.
#[derive(Clone, Debug, Default)]
pub struct ClockFilter {
    /// Samples, newest first, at most `HISTORY`.
    history: Vec<Sample>,
    /// Precision given with the newest sample, seconds.
    precision: f64,
    /// The delay outliers dropped in a row that agree with each other, (offset, delay) (see
    /// [`ClockFilter::delay_outlier`]).
    outliers: Vec<(f64, f64)>,
}

/// Samples needed before delays are judged (see [`ClockFilter::add`]).
const DELAY_TEST_MIN_SAMPLES: usize = 8;
/// Outliers dropped in a row before the filter believes the path itself changed.
const DELAY_TEST_MAX_IN_ROW: u32 = 4;

fn finite_or(x: f64, fallback: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        fallback
    }
}

impl ClockFilter {
    pub fn new() -> Self {
        Self {
            history: Vec::with_capacity(HISTORY),
            precision: 0.0,
            outliers: Vec::new(),
        }
    }

    /// The delay test: once the path is known (8 samples), a sample whose delay lies far
    /// beyond what the path has shown (min + 5 * (median - min) + 1 ms) is a reply that was
    /// held up somewhere (reordered, queued behind a burst) and is dropped, as chrony drops
    /// samples far above the minimum delay. Four such samples in a row that agree with each
    /// other (in delay and offset, within a tenth of their excess delay plus 1 ms) mean the
    /// path itself changed (a new route): then they are taken. Held-up replies do not agree:
    /// a reply held `h` seconds reads `+h/2`, a held request `-h/2`, both `0` with twice the
    /// delay, so a mixed run starts over and is never taken for a new path.
    fn delay_outlier(&mut self, offset: f64, delay: f64) -> bool {
        if self.history.len() < DELAY_TEST_MIN_SAMPLES {
            return false;
        }
        let mut delays: Vec<f64> = self.history.iter().map(|s| s.delay).collect();
        delays.sort_by(f64::total_cmp);
        let (min, median) = (delays[0], delays[delays.len() / 2]);
        let limit = min + 5.0 * (median - min) + 1e-3;
        if delay <= limit {
            self.outliers.clear();
            return false;
        }
        let tolerance = 0.1 * (delay - min) + 1e-3;
        let agrees = |&(o, d): &(f64, f64)| {
            (o - offset).abs() <= tolerance && (d - delay).abs() <= tolerance
        };
        if !self.outliers.iter().all(agrees) {
            self.outliers.clear();
        }
        if self.outliers.len() > DELAY_TEST_MAX_IN_ROW as usize {
            self.outliers.remove(0);
        }
        self.outliers.push((offset, delay));
        self.outliers.len() <= DELAY_TEST_MAX_IN_ROW as usize
    }

    /// Adds a sample (`precision` in seconds, the larger of the local and server precision)
    /// and returns the estimate built on it. Every sane sample is passed on, each with its own
    /// variance; samples with non-finite values, a time older than the newest one, or a delay
    /// far beyond the path's (the delay test) are dropped (`None`).
    pub fn add(&mut self, sample: Sample, precision: f64) -> Option<PeerEstimate> {
        let precision = finite_or(precision, 0.0).abs();
        if !sample.offset.is_finite() || !sample.delay.is_finite() {
            return None;
        }
        if self.history.first().is_some_and(|s| sample.time < s.time) {
            return None;
        }
        if self.delay_outlier(sample.offset, sample.delay) {
            return None;
        }
        let sample = Sample {
            delay: sample.delay.max(precision),
            dispersion: finite_or(sample.dispersion, MAXDISP).clamp(0.0, MAXDISP),
            ..sample
        };
        self.history.insert(0, sample);
        self.history.truncate(HISTORY);
        self.precision = precision;
        self.estimate(sample.time)
    }

    /// The path's minimum delay over the history, and how uncertain that minimum is (the gap
    /// to the fourth-smallest delay; with fewer than 4 samples the minimum itself).
    fn min_delay(&self) -> (f64, f64) {
        let mut delays: Vec<f64> = self.history.iter().map(|s| s.delay).collect();
        delays.sort_by(f64::total_cmp);
        let min = delays.first().copied().unwrap_or(0.0);
        let spread = if delays.len() >= 4 {
            delays[3] - min
        } else {
            min
        };
        (min, spread)
    }

    /// Offset variance of one sample (s^2): uniform error within half the excess delay
    /// (relative to the minimum delay, itself uncertain by `spread`), plus the precision.
    fn sample_variance(&self, sample: &Sample, precision: f64) -> f64 {
        variance_given(sample, self.min_delay(), precision)
    }

    /// The offset before the first clock update, combining the register's samples: until
    /// then the clock ran free, so every sample measured the same offset (up to the drift
    /// since it was taken, counted as PHI times its age, the same uniform bound as in
    /// [`ClockFilter::estimate`]). Weighted by inverse variance, the first update uses the
    /// whole burst instead of its last sample alone (on a noisy path the newest sample may be
    /// far out; the mean of four is half as far). Returns (offset, variance).
    pub fn start_estimate(&self, now: Mono) -> Option<(f64, f64)> {
        let (mut weights, mut sum) = (0.0, 0.0);
        let path = self.min_delay();
        for s in self.samples() {
            let grown = PHI * now.saturating_since(s.time).as_secs_f64();
            let w = 1.0 / (variance_given(s, path, self.precision) + grown * grown / 3.0);
            weights += w;
            sum += w * s.offset;
        }
        let (offset, variance) = (sum / weights, 1.0 / weights);
        (offset.is_finite() && variance.is_finite()).then_some((offset, variance))
    }

    /// The part of the RFC 5905 peer dispersion that the register's empty stages contribute
    /// (MAXDISP each, in the last places of the delay order): 0 once the register is full.
    pub fn empty_stage_dispersion(&self) -> f64 {
        (self.samples().count()..NSTAGE)
            .map(|i| MAXDISP / f64::from(1u32 << (i + 1)))
            .sum()
    }

    /// The estimate for display and selection at `now`: the newest sample, with the RFC 5905
    /// dispersion of the register grown at PHI, the register's jitter, and the variance of
    /// the newest sample grown by the dispersion it accumulated since (as a uniform bound).
    pub fn estimate(&self, now: Mono) -> Option<PeerEstimate> {
        let newest = *self.history.first()?;
        let age = |s: &Sample| now.saturating_since(s.time).as_secs_f64();
        // RFC 5905 s.10: sort register stages by delay, dispersion = sum eps_i / 2^(i+1).
        let mut stages: Vec<(f64, f64, f64)> = self
            .samples()
            .map(|s| (s.delay, s.offset, s.dispersion + PHI * age(s)))
            .collect();
        stages.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut dispersion = 0.0;
        for i in 0..NSTAGE {
            let eps = stages.get(i).map_or(MAXDISP, |s| s.2.min(MAXDISP));
            dispersion += eps / f64::from(1u32 << (i + 1));
        }
        let best_offset = stages.first().map_or(newest.offset, |s| s.1);
        let n = stages.len();
        let jitter = if n > 1 {
            let sum: f64 = stages
                .iter()
                .skip(1)
                .map(|s| (s.1 - best_offset).powi(2))
                .sum();
            (sum / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let grown = PHI * age(&newest);
        let variance = self.sample_variance(&newest, self.precision) + grown * grown / 3.0;
        Some(PeerEstimate {
            offset: newest.offset,
            delay: newest.delay,
            dispersion: finite_or(dispersion, MAXDISP),
            jitter: finite_or(jitter, MAXDISP),
            time: newest.time,
            frequency_ppm: None,
            offset_variance: variance,
        })
    }

    /// The clock was stepped by `step` seconds (positive: forward): stored offsets shrink by it.
    pub fn apply_step(&mut self, step: f64) {
        if !step.is_finite() {
            return;
        }
        for s in &mut self.history {
            s.offset -= step;
        }
        for o in &mut self.outliers {
            o.0 -= step;
        }
    }

    /// The local frequency changed by `delta_ppm` (positive: faster) at `now`. Stored offsets
    /// are rewritten as if the new frequency had always applied (the clock agreeing at `now`):
    /// a sample `a` seconds old gains `delta * a` (a faster clock would have been further
    /// behind in the past).
    pub fn apply_frequency_change(&mut self, now: Mono, delta_ppm: f64) {
        if !delta_ppm.is_finite() {
            return;
        }
        for s in &mut self.history {
            let age = now.saturating_since(s.time).as_secs_f64();
            s.offset += delta_ppm * 1e-6 * age;
        }
    }

    /// The register: the newest `NSTAGE` samples, newest first.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.history.iter().take(NSTAGE)
    }

    pub fn clear(&mut self) {
        self.history.clear();
        self.outliers.clear();
    }
}

/// [`ClockFilter::sample_variance`] for a path whose minimum delay and its uncertainty are
/// `(min, spread)` (from [`ClockFilter::min_delay`], computed once for many samples).
fn variance_given(sample: &Sample, (min, spread): (f64, f64), precision: f64) -> f64 {
    let excess = (sample.delay - min).max(0.0) + spread;
    let v = excess * excess / 12.0 + precision * precision + 1e-18;
    finite_or(v, MAXDISP * MAXDISP)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: f64, offset: f64, delay: f64) -> Sample {
        Sample {
            offset,
            delay,
            dispersion: 1e-6,
            time: Mono::from_seconds(t),
        }
    }

    /// attacks.md D3: replies held up on the path are dropped by the delay test, yet a lasting new
    /// path is learnt.
    #[test]
    fn held_up_replies_are_dropped_but_a_new_path_is_learnt() {
        let mut f = ClockFilter::new();
        let mut t = 0.0;
        for i in 0..10 {
            t += 16.0;
            assert!(f
                .add(s(t, 1e-5, 2e-4 + 1e-5 * (i % 3) as f64), 1e-7)
                .is_some());
        }
        // A reply held 20 s (reordered behind the next poll): not a sample.
        t += 16.0;
        assert!(f.add(s(t, 10.0, 20.0), 1e-7).is_none());
        assert!(
            f.samples().all(|x| x.delay < 1e-3),
            "the held-up reply is not in the register"
        );
        // A normal one is still taken afterwards.
        t += 16.0;
        assert!(f.add(s(t, 1e-5, 2.1e-4), 1e-7).is_some());
        // The route changes to 30 ms: the first four are doubted, then the path is believed.
        let taken: Vec<bool> = (0..6)
            .map(|_| {
                t += 16.0;
                f.add(s(t, 1e-3, 0.03), 1e-7).is_some()
            })
            .collect();
        assert_eq!(taken, [false, false, false, false, true, true]);
    }

    /// attacks.md D3 (reordering): replies held 20 s in either direction, many in a row,
    /// read +10 s, -10 s or 0 s (both held): they never pass for a new path.
    #[test]
    fn a_run_of_held_up_replies_is_not_a_new_path() {
        let mut f = ClockFilter::new();
        let mut t = 0.0;
        for i in 0..10 {
            t += 64.0;
            assert!(f
                .add(s(t, 1e-5, 2e-4 + 1e-5 * (i % 3) as f64), 1e-7)
                .is_some());
        }
        let held = [
            (-10.0, 20.0),
            (10.0, 20.0),
            (10.0, 20.0),
            (0.0, 40.0),
            (-10.0, 20.0),
        ];
        for (offset, delay) in held.iter().cycle().take(20) {
            t += 64.0;
            assert!(f.add(s(t, *offset, *delay), 1e-7).is_none());
        }
        t += 64.0;
        assert!(f.add(s(t, 1e-5, 2.1e-4), 1e-7).is_some());
    }

    #[test]
    fn low_delay_samples_get_small_variance() {
        let mut f = ClockFilter::new();
        for i in 0..10 {
            f.add(
                s(i as f64 * 16.0, 0.0, 0.010 + 0.001 * (i % 3) as f64),
                1e-7,
            );
        }
        let low = f.add(s(200.0, 0.0, 0.010), 1e-7).unwrap();
        // (A delay beyond min + 5 * (median - min) + 1 ms would not be a sample at all.)
        let high = f.add(s(216.0, 0.0, 0.0155), 1e-7).unwrap();
        assert!(low.offset_variance < high.offset_variance / 20.0);
        // Bounded by the (delay/2) error interval: sd <= excess / sqrt(12) + spread.
        assert!(high.offset_variance.sqrt() < 0.0155 / 2.0);
    }

    #[test]
    fn register_newest_first_and_bounded() {
        let mut f = ClockFilter::new();
        for i in 0..20 {
            f.add(s(i as f64, i as f64 * 1e-3, 0.01), 1e-7);
        }
        let offs: Vec<f64> = f.samples().map(|s| s.offset).collect();
        assert_eq!(offs.len(), NSTAGE);
        assert_eq!(offs[0], 19e-3);
        assert_eq!(offs[7], 12e-3);
    }

    #[test]
    fn rejects_bad_and_out_of_order_samples() {
        let mut f = ClockFilter::new();
        assert!(f.add(s(10.0, f64::NAN, 0.01), 1e-7).is_none());
        assert!(f.add(s(10.0, 0.0, 0.01), 1e-7).is_some());
        assert!(f.add(s(5.0, 0.0, 0.01), 1e-7).is_none());
        assert_eq!(f.samples().count(), 1);
    }

    #[test]
    fn dispersion_grows_with_age_and_jitter_measures_spread() {
        let mut f = ClockFilter::new();
        for i in 0..8 {
            let off = if i % 2 == 0 { 1e-3 } else { -1e-3 };
            f.add(s(i as f64, off, 0.01), 1e-7);
        }
        let now = f.estimate(Mono::from_seconds(7.0)).unwrap();
        let later = f.estimate(Mono::from_seconds(1007.0)).unwrap();
        assert!(later.dispersion > now.dispersion + 0.9 * PHI * 1000.0);
        assert!(later.offset_variance > now.offset_variance);
        assert!(now.jitter > 1e-3 && now.jitter < 3e-3);
    }

    #[test]
    fn step_and_frequency_change_keep_samples_true() {
        let mut f = ClockFilter::new();
        f.add(s(0.0, 0.5, 0.01), 1e-7);
        f.add(s(100.0, 0.5, 0.01), 1e-7);
        f.apply_step(0.5);
        f.apply_frequency_change(Mono::from_seconds(100.0), 10.0);
        let offs: Vec<f64> = f.samples().map(|s| s.offset).collect();
        assert!(offs[0].abs() < 1e-12);
        assert!((offs[1] - 1e-3).abs() < 1e-12);
        f.clear();
        assert!(f.estimate(Mono::from_seconds(1.0)).is_none());
    }

    #[test]
    fn start_estimate_weighs_the_burst_by_variance_and_age() {
        // A noisy path, samples 2 s apart: the drift since (PHI * 6 s) is negligible next to
        // the excess delays, which decide: the two samples with 10 ms less delay (offsets 10
        // and 4 ms) count more than the two others (-6 and 8 ms).
        let mut f = ClockFilter::new();
        for (i, o) in [0.010, -0.006, 0.004, 0.008].iter().enumerate() {
            f.add(s(2.0 * i as f64, *o, 0.02 + 0.01 * (i % 2) as f64), 1e-7);
        }
        let (offset, var) = f.start_estimate(Mono::from_seconds(6.0)).unwrap();
        let mean = (0.010 - 0.006 + 0.004 + 0.008) / 4.0;
        let low_delay_mean = (0.010 + 0.004) / 2.0;
        assert!(
            offset > mean + 1e-3 && offset < low_delay_mean,
            "{offset}: between the plain mean {mean} and the low-delay samples' {low_delay_mean}"
        );
        let newest = f.estimate(Mono::from_seconds(6.0)).unwrap();
        assert!(var < newest.offset_variance / 2.0, "four samples beat one");
        // A quiet path, samples 60 s apart: an old sample may have drifted by PHI * age,
        // far more than the path's noise, so the newest one decides.
        let mut f = ClockFilter::new();
        for (i, o) in [0.001, 0.0005, 0.0].iter().enumerate() {
            f.add(s(60.0 * i as f64, *o, 1e-4), 1e-7);
        }
        let (offset, _) = f.start_estimate(Mono::from_seconds(120.0)).unwrap();
        assert!(offset.abs() < 1e-5, "{offset}");
        assert!(ClockFilter::new().start_estimate(Mono::ZERO).is_none());
    }
}
