//! Pure arithmetic for the kernel `timex` interface: ppm <-> scaled ppm, seconds -> step
//! fields, status-bit composition, error bounds. Nothing here calls the kernel.
//!
//! Units used by Linux `clock_adjtime(2)`:
//! - `freq`: parts per million scaled by 2^16 ("scaled ppm"); positive makes the clock run
//!   faster. The kernel refuses nothing but clamps to +-500 ppm (`MAXFREQ`); we clamp first
//!   so that what we remember equals what the kernel applies.
//! - `time` with `ADJ_SETOFFSET | ADJ_NANO`: a `timeval` whose `tv_usec` field carries
//!   nanoseconds. The kernel requires `0 <= tv_usec < 1e9`, so a negative offset is written
//!   as a negative (floored) second count plus a non-negative fraction.
//! - `maxerror`, `esterror`: microseconds.

use meridian_proto::wire::Leap;

use super::SyncStatus;

/// Largest frequency correction the kernel accepts, in ppm (Linux `MAXFREQ`).
pub const MAX_FREQ_PPM: f64 = 500.0;

/// Largest total rate change, ppm: the kernel frequency (at most 500 ppm) plus a change of the
/// tick length (at most 10 %). Large values are temporary slews; chrony's default
/// `maxslewrate` is the same 1/12.
pub const MAX_SLEW_PPM: f64 = 83_333.0;

/// One ppm in the kernel's scaled-ppm unit.
const SCALED_PPM_PER_PPM: f64 = 65536.0;

/// Largest error bound the kernel keeps, microseconds (Linux `NTP_PHASE_LIMIT`, 16 s).
pub const MAX_ERROR_US: i64 = 16_000_000;

/// Clamps a frequency correction to the kernel limit of +-500 ppm. NaN becomes zero (callers
/// reject NaN before this; zero is the harmless choice if one slips through).
pub fn clamp_ppm(ppm: f64) -> f64 {
    if ppm.is_nan() {
        0.0
    } else {
        ppm.clamp(-MAX_FREQ_PPM, MAX_FREQ_PPM)
    }
}

/// ppm (positive = faster) to the kernel's scaled ppm, clamped to +-500 ppm and rounded to
/// the nearest unit (1/65536 ppm, about 15 ppt).
/// Clamps a total rate (frequency plus tick) to +-[`MAX_SLEW_PPM`]; NaN becomes 0.
pub fn clamp_slew_ppm(ppm: f64) -> f64 {
    if ppm.is_nan() {
        0.0
    } else {
        ppm.clamp(-MAX_SLEW_PPM, MAX_SLEW_PPM)
    }
}

/// Splits a total rate into a tick length (µs per kernel tick, nominal `nominal_tick_us`) and
/// the kernel frequency (ppm, |f| below one tick step). One µs of tick is worth
/// `1e6 / nominal_tick_us` ppm (100 ppm at USER_HZ 100).
pub fn split_rate(ppm: f64, nominal_tick_us: i64) -> (i64, f64) {
    let ppm = clamp_slew_ppm(ppm);
    let per_tick = 1e6 / nominal_tick_us.max(1) as f64;
    let ticks = (ppm / per_tick).trunc();
    (nominal_tick_us + ticks as i64, ppm - ticks * per_tick)
}

/// The total rate of a tick length and a kernel frequency (the inverse of [`split_rate`]).
pub fn total_rate(tick_us: i64, freq_ppm: f64, nominal_tick_us: i64) -> f64 {
    (tick_us - nominal_tick_us) as f64 * 1e6 / nominal_tick_us.max(1) as f64 + freq_ppm
}

pub fn ppm_to_scaled(ppm: f64) -> i64 {
    (clamp_ppm(ppm) * SCALED_PPM_PER_PPM).round() as i64
}

/// The kernel's scaled ppm to ppm.
pub fn scaled_to_ppm(scaled: i64) -> f64 {
    scaled as f64 / SCALED_PPM_PER_PPM
}

/// A step offset split for `ADJ_SETOFFSET | ADJ_NANO`: whole seconds (floored, so negative
/// for negative offsets) and nanoseconds in `0..1_000_000_000`; the value is
/// `secs + nanos * 1e-9`. Returns `None` for NaN, infinities and offsets beyond +-2^62 ns
/// (about 146 years), which no sane caller asks for.
pub fn split_offset_nanos(offset: f64) -> Option<(i64, i64)> {
    if !offset.is_finite() {
        return None;
    }
    let total = (offset * 1e9).round();
    if total.abs() > (1u64 << 62) as f64 {
        return None;
    }
    let total = total as i64;
    Some((
        total.div_euclid(1_000_000_000),
        total.rem_euclid(1_000_000_000),
    ))
}

/// Seconds to the microseconds of `maxerror` / `esterror`, clamped to `0..=16 s` (the
/// kernel's ceiling); NaN is treated as "unknown", i.e. the ceiling.
pub fn error_to_micros(seconds: f64) -> i64 {
    if seconds.is_nan() {
        return MAX_ERROR_US;
    }
    ((seconds * 1e6).round() as i64).clamp(0, MAX_ERROR_US)
}

/// The `status` word to write with `ADJ_STATUS`: kernel PLL and FLL off (we steer with the
/// frequency alone), PPS discipline off, `STA_UNSYNC` unless synchronized (or the leap
/// indicator says alarm), and `STA_INS` / `STA_DEL` for a pending leap second. Read-only bits
/// are left zero (the kernel ignores them on write).
pub fn status_bits(status: &SyncStatus) -> i32 {
    let mut bits = 0;
    if !status.synchronized || status.leap == Leap::Unsynchronized {
        bits |= libc::STA_UNSYNC;
    }
    match status.leap {
        Leap::AddSecond => bits |= libc::STA_INS,
        Leap::DeleteSecond => bits |= libc::STA_DEL,
        Leap::None | Leap::Unsynchronized => {}
    }
    bits
}

/// An all-zero `timex`, i.e. `modes = 0`: a pure read when passed to the kernel.
pub fn empty() -> libc::timex {
    // SAFETY: `timex` is a plain C struct of integers (and a `timeval` of integers); the
    // all-zero bit pattern is a valid value of every field.
    unsafe { std::mem::zeroed() }
}

/// The request that sets the frequency correction to `ppm` (clamped). When `status` is
/// given, the status word is written in the same call (used to switch the kernel PLL off
/// the first time we adjust).
/// A request setting the total rate `ppm` as tick length plus kernel frequency.
pub fn frequency_request(
    ppm: f64,
    status: Option<&SyncStatus>,
    nominal_tick_us: i64,
) -> libc::timex {
    let (tick, freq) = split_rate(ppm, nominal_tick_us);
    let mut tx = empty();
    tx.modes = libc::ADJ_FREQUENCY | libc::ADJ_TICK;
    tx.freq = ppm_to_scaled(freq) as libc::c_long;
    tx.tick = tick as libc::c_long;
    if let Some(s) = status {
        tx.modes |= libc::ADJ_STATUS;
        tx.status = status_bits(s);
    }
    tx
}

/// The request that steps the clock by `offset` seconds (positive = forward), or `None` if
/// the offset cannot be represented (see [`split_offset_nanos`]).
pub fn step_request(offset: f64) -> Option<libc::timex> {
    let (secs, nanos) = split_offset_nanos(offset)?;
    let mut tx = empty();
    tx.modes = libc::ADJ_SETOFFSET | libc::ADJ_NANO;
    tx.time.tv_sec = secs as libc::time_t;
    tx.time.tv_usec = nanos as libc::suseconds_t;
    Some(tx)
}

/// The request that publishes the synchronization state: status word (PLL off, unsync and
/// leap bits) and the maximum and estimated error.
pub fn sync_request(status: &SyncStatus) -> libc::timex {
    let mut tx = empty();
    tx.modes = libc::ADJ_STATUS | libc::ADJ_MAXERROR | libc::ADJ_ESTERROR;
    tx.status = status_bits(status);
    tx.maxerror = error_to_micros(status.max_error) as libc::c_long;
    tx.esterror = error_to_micros(status.est_error) as libc::c_long;
    tx
}

/// True when the kernel's own PLL or FLL is enabled in a status word read back from it.
pub fn kernel_pll_active(status: i32) -> bool {
    status & (libc::STA_PLL | libc::STA_FLL) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(synchronized: bool, leap: Leap) -> SyncStatus {
        SyncStatus {
            synchronized,
            leap,
            max_error: 0.01,
            est_error: 0.001,
        }
    }

    #[test]
    fn ppm_scaling_round_trips_and_keeps_sign() {
        assert_eq!(ppm_to_scaled(1.0), 65536);
        assert_eq!(ppm_to_scaled(-12.5), -819_200);
        assert_eq!(scaled_to_ppm(-819_200), -12.5);
        for ppm in [-499.9, -12.345678, 0.0, 0.001, 40.0, 123.456] {
            let back = scaled_to_ppm(ppm_to_scaled(ppm));
            // One scaled unit is 1/65536 ppm; rounding loses at most half of it.
            assert!((back - ppm).abs() <= 0.5 / 65536.0, "{ppm} -> {back}");
        }
    }

    #[test]
    fn frequency_is_clamped_to_kernel_limit() {
        assert_eq!(clamp_ppm(600.0), 500.0);
        assert_eq!(clamp_ppm(-1e9), -500.0);
        assert_eq!(clamp_ppm(f64::NAN), 0.0);
        assert_eq!(ppm_to_scaled(501.0), 500 * 65536);
        assert_eq!(ppm_to_scaled(f64::NEG_INFINITY), -500 * 65536);
        assert_eq!(ppm_to_scaled(499.0), 499 * 65536);
    }

    #[test]
    fn negative_offsets_use_floored_seconds_and_positive_nanos() {
        assert_eq!(split_offset_nanos(-1.5), Some((-2, 500_000_000)));
        assert_eq!(split_offset_nanos(1.5), Some((1, 500_000_000)));
        assert_eq!(split_offset_nanos(-0.000_000_001), Some((-1, 999_999_999)));
        assert_eq!(split_offset_nanos(-2.0), Some((-2, 0)));
        assert_eq!(split_offset_nanos(0.0), Some((0, 0)));
        assert_eq!(split_offset_nanos(f64::NAN), None);
        assert_eq!(split_offset_nanos(f64::INFINITY), None);
        assert_eq!(split_offset_nanos(1e12), None);
        for off in [-1000.25, -0.3, 0.7, 3_600.000_001] {
            let (s, n) = split_offset_nanos(off).unwrap();
            assert!((0..1_000_000_000).contains(&n));
            assert!((s as f64 + n as f64 * 1e-9 - off).abs() < 1e-9, "{off}");
        }
    }

    #[test]
    fn step_request_sets_nano_mode_fields() {
        let tx = step_request(-1.5).unwrap();
        assert_eq!(tx.modes, libc::ADJ_SETOFFSET | libc::ADJ_NANO);
        assert_eq!(tx.time.tv_sec, -2);
        assert_eq!(tx.time.tv_usec, 500_000_000);
        assert!(step_request(f64::NAN).is_none());
    }

    #[test]
    fn status_bits_for_each_leap_value() {
        let pll_bits = libc::STA_PLL | libc::STA_FLL | libc::STA_PPSFREQ | libc::STA_PPSTIME;
        let cases = [
            (true, Leap::None, 0),
            (true, Leap::AddSecond, libc::STA_INS),
            (true, Leap::DeleteSecond, libc::STA_DEL),
            (true, Leap::Unsynchronized, libc::STA_UNSYNC),
            (false, Leap::None, libc::STA_UNSYNC),
            (false, Leap::AddSecond, libc::STA_UNSYNC | libc::STA_INS),
            (false, Leap::Unsynchronized, libc::STA_UNSYNC),
        ];
        for (synced, leap, want) in cases {
            let bits = status_bits(&sync(synced, leap));
            assert_eq!(bits, want, "{synced} {leap:?}");
            assert_eq!(bits & pll_bits, 0, "kernel PLL must stay off");
            assert!(!kernel_pll_active(bits));
        }
        assert!(kernel_pll_active(libc::STA_PLL | libc::STA_UNSYNC));
    }

    #[test]
    fn sync_request_carries_errors_in_microseconds() {
        let tx = sync_request(&sync(true, Leap::AddSecond));
        assert_eq!(
            tx.modes,
            libc::ADJ_STATUS | libc::ADJ_MAXERROR | libc::ADJ_ESTERROR
        );
        assert_eq!(tx.maxerror, 10_000);
        assert_eq!(tx.esterror, 1_000);
        assert_eq!(tx.status, libc::STA_INS);
        assert_eq!(error_to_micros(-1.0), 0);
        assert_eq!(error_to_micros(100.0), MAX_ERROR_US);
        assert_eq!(error_to_micros(f64::NAN), MAX_ERROR_US);
    }

    #[test]
    fn frequency_request_optionally_writes_status() {
        let tx = frequency_request(-12.5, None, 10_000);
        assert_eq!(tx.modes, libc::ADJ_FREQUENCY | libc::ADJ_TICK);
        assert_eq!((tx.tick, tx.freq), (10_000, -819_200));
        // 700 ppm: 7 µs more per 10 ms tick, nothing left for the frequency.
        let tx = frequency_request(700.0, Some(&sync(false, Leap::None)), 10_000);
        assert_eq!(
            tx.modes,
            libc::ADJ_FREQUENCY | libc::ADJ_TICK | libc::ADJ_STATUS
        );
        assert_eq!((tx.tick, tx.freq), (10_007, 0));
        assert_eq!(tx.status, libc::STA_UNSYNC);
    }

    #[test]
    fn large_rates_use_the_tick() {
        assert_eq!(split_rate(0.0, 10_000), (10_000, 0.0));
        assert_eq!(split_rate(-12.5, 10_000), (10_000, -12.5));
        assert_eq!(split_rate(-250.5, 10_000), (9_998, -50.5));
        assert_eq!(split_rate(83_333.0, 10_000), (10_833, 33.0));
        assert_eq!(
            split_rate(1e9, 10_000),
            (10_833, 33.0),
            "clamped to MAX_SLEW_PPM"
        );
        assert_eq!(split_rate(f64::NAN, 10_000), (10_000, 0.0));
        // USER_HZ 1000: a µs of tick is 1000 ppm.
        assert_eq!(split_rate(-2_500.0, 1_000), (998, -500.0));
        for ppm in [-83_333.0, -4321.25, -0.5, 0.0, 99.9, 12_345.5, 83_333.0] {
            let (tick, freq) = split_rate(ppm, 10_000);
            assert!(freq.abs() < 100.0);
            assert!((total_rate(tick, freq, 10_000) - ppm).abs() < 1e-9, "{ppm}");
        }
    }
}
