//! Time types of the protocol core: NTP timestamps and durations (era-safe), poll intervals,
//! and the monotonic instant used for scheduling.
//!
//! Two clocks are kept apart on purpose. [`Mono`] is a monotonic instant that only orders
//! events and drives timers; it never appears on the wire. [`NtpTimestamp`] is a reading of
//! the disciplined (local) clock on the NTP timescale; it is what packets carry.
//!
//! NTP timestamps carry no era number (RFC 5905 section 6). All arithmetic is therefore done
//! on first-order differences: the wrapping difference of two 64-bit timestamps, read as a
//! signed 64-bit number, is correct whenever the two lie within 68 years of each other, and
//! that holds across the 2036 rollover. Raw `u64` values are never compared.

use core::fmt;
use core::ops::{Add, AddAssign, Neg, Sub, SubAssign};

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
pub const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A 64-bit NTP timestamp: 32 bits of seconds and 32 bits of fraction, era unknown.
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash)]
pub struct NtpTimestamp(u64);

impl NtpTimestamp {
    /// The all-zero timestamp, which RFC 5905 reserves for "unknown or not set".
    pub const ZERO: Self = Self(0);

    /// From the 64 bits as they appear on the wire (big endian already decoded).
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// The 64 bits as they go on the wire.
    pub const fn to_bits(self) -> u64 {
        self.0
    }

    /// True for the reserved "unknown" value.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// From seconds and nanoseconds since the Unix epoch. Times after 2036-02-07 fall into
    /// era 1 and wrap, as the wire format requires.
    pub fn from_unix(secs: i64, nanos: u32) -> Self {
        let ntp_secs = (secs as u64).wrapping_add(NTP_UNIX_OFFSET) & 0xffff_ffff;
        let frac = ((nanos as u64) << 32) / 1_000_000_000;
        Self((ntp_secs << 32) | frac)
    }

    /// Seconds since the Unix epoch, resolving the era by taking the value nearest to
    /// `pivot` (itself seconds since the Unix epoch, usually the local clock's reading).
    pub fn to_unix_near(self, pivot: i64) -> (i64, u32) {
        let pivot_ts = Self::from_unix(pivot, 0);
        let diff = self - pivot_ts;
        let total_nanos = diff.to_nanos() as i128 + pivot as i128 * 1_000_000_000;
        let secs = total_nanos.div_euclid(1_000_000_000) as i64;
        let nanos = total_nanos.rem_euclid(1_000_000_000) as u32;
        (secs, nanos)
    }

    /// Seconds part (the upper 32 bits).
    pub const fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// Fraction part (the lower 32 bits), in units of 2^-32 s.
    pub const fn fraction(self) -> u32 {
        self.0 as u32
    }

    /// Replaces the bits below `precision` (a log2 of seconds, e.g. -20) with `random` bits,
    /// so that served timestamps do not reveal more than the clock's precision (RFC 5905 s. 6).
    pub fn fuzz_below_precision(self, precision: i8, random: u64) -> Self {
        let bits = (32 + precision as i32).clamp(0, 63) as u32;
        let mask = (1u64 << bits) - 1;
        Self((self.0 & !mask) | (random & mask))
    }
}

impl fmt::Debug for NtpTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NtpTimestamp({:08x}.{:08x})",
            self.seconds(),
            self.fraction()
        )
    }
}

impl fmt::Display for NtpTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}.{:08X}", self.seconds(), self.fraction())
    }
}

impl Sub for NtpTimestamp {
    type Output = NtpDuration;
    /// First-order difference, valid when both lie within 68 years of each other.
    fn sub(self, rhs: Self) -> NtpDuration {
        NtpDuration(self.0.wrapping_sub(rhs.0) as i64)
    }
}

impl Add<NtpDuration> for NtpTimestamp {
    type Output = Self;
    fn add(self, rhs: NtpDuration) -> Self {
        Self(self.0.wrapping_add(rhs.0 as u64))
    }
}

impl Sub<NtpDuration> for NtpTimestamp {
    type Output = Self;
    fn sub(self, rhs: NtpDuration) -> Self {
        Self(self.0.wrapping_sub(rhs.0 as u64))
    }
}

impl AddAssign<NtpDuration> for NtpTimestamp {
    fn add_assign(&mut self, rhs: NtpDuration) {
        *self = *self + rhs;
    }
}

/// A signed span of NTP time in units of 2^-32 s (about 233 ps), range +-68 years.
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NtpDuration(i64);

impl NtpDuration {
    pub const ZERO: Self = Self(0);
    pub const MAX: Self = Self(i64::MAX);
    pub const ONE_SECOND: Self = Self(1 << 32);

    /// From raw 2^-32 s units.
    pub const fn from_bits(bits: i64) -> Self {
        Self(bits)
    }

    pub const fn to_bits(self) -> i64 {
        self.0
    }

    /// From floating seconds, saturating at the range; NaN becomes zero.
    pub fn from_seconds(secs: f64) -> Self {
        if secs.is_nan() {
            return Self::ZERO;
        }
        // `as` saturates for floats out of range, which is what we want.
        Self((secs * 4_294_967_296.0) as i64)
    }

    pub fn to_seconds(self) -> f64 {
        self.0 as f64 / 4_294_967_296.0
    }

    pub const fn from_nanos(nanos: i64) -> Self {
        // nanos * 2^32 / 1e9 without overflow for |nanos| < 2^63 / 2^32 * ... use i128.
        Self(((nanos as i128 * (1i128 << 32)) / 1_000_000_000) as i64)
    }

    pub const fn to_nanos(self) -> i64 {
        ((self.0 as i128 * 1_000_000_000) >> 32) as i64
    }

    /// From the 32-bit NTP short format (16.16 unsigned seconds) used for root delay and
    /// root dispersion on the wire.
    pub const fn from_short_bits(bits: u32) -> Self {
        Self((bits as i64) << 16)
    }

    /// To the NTP short format, clamped to 0..=65535.99998 s (negative becomes zero).
    pub fn to_short_bits(self) -> u32 {
        if self.0 <= 0 {
            0
        } else {
            (self.0 >> 16).min(u32::MAX as i64) as u32
        }
    }

    pub fn abs(self) -> Self {
        Self(self.0.saturating_abs())
    }

    /// 2^exp seconds, for precision and poll exponents; clamped to +-62.
    pub fn from_exponent(exp: i8) -> Self {
        let e = (exp as i32 + 32).clamp(0, 62);
        Self(1i64 << e)
    }
}

impl fmt::Debug for NtpDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.9}s", self.to_seconds())
    }
}

impl Add for NtpDuration {
    type Output = Self;
    fn add(self, rhs: Self) -> Self {
        Self(self.0.saturating_add(rhs.0))
    }
}

impl Sub for NtpDuration {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        Self(self.0.saturating_sub(rhs.0))
    }
}

impl AddAssign for NtpDuration {
    fn add_assign(&mut self, rhs: Self) {
        *self = *self + rhs;
    }
}

impl SubAssign for NtpDuration {
    fn sub_assign(&mut self, rhs: Self) {
        *self = *self - rhs;
    }
}

impl Neg for NtpDuration {
    type Output = Self;
    fn neg(self) -> Self {
        Self(self.0.saturating_neg())
    }
}

/// A poll interval as log2 of seconds, as carried in the packet's poll field.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PollInterval(i8);

impl PollInterval {
    /// Smallest poll exponent a client may be configured with (RFC 5905 MINPOLL is 4; we allow
    /// lower for LAN and test use, like chrony).
    pub const MIN: Self = Self(-6);
    /// Largest poll exponent (RFC 5905 MAXPOLL 17, 36.4 hours).
    pub const MAX: Self = Self(17);
    pub const DEFAULT_MIN: Self = Self(6);
    pub const DEFAULT_MAX: Self = Self(10);

    /// Clamps `log2` into the supported range.
    pub fn new(log2: i8) -> Self {
        Self(log2.clamp(Self::MIN.0, Self::MAX.0))
    }

    pub const fn log2(self) -> i8 {
        self.0
    }

    pub fn as_seconds(self) -> f64 {
        2f64.powi(self.0 as i32)
    }

    pub fn as_duration(self) -> core::time::Duration {
        core::time::Duration::from_secs_f64(self.as_seconds())
    }

    /// One step longer, not past `max`.
    pub fn inc(self, max: Self) -> Self {
        Self(self.0.saturating_add(1).min(max.0).max(self.0.min(max.0)))
    }

    /// One step shorter, not below `min`.
    pub fn dec(self, min: Self) -> Self {
        Self(self.0.saturating_sub(1).max(min.0))
    }
}

/// A monotonic instant in nanoseconds from an arbitrary origin; used only for scheduling and
/// ages, never on the wire. The daemon maps CLOCK_MONOTONIC onto it, the simulator its own time.
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Mono(u64);

impl Mono {
    pub const ZERO: Self = Self(0);

    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    pub fn from_seconds(secs: f64) -> Self {
        Self((secs.max(0.0) * 1e9) as u64)
    }

    pub fn as_seconds(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Self) -> core::time::Duration {
        core::time::Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<core::time::Duration> for Mono {
    type Output = Self;
    fn add(self, rhs: core::time::Duration) -> Self {
        Self(
            self.0
                .saturating_add(rhs.as_nanos().min(u64::MAX as u128) as u64),
        )
    }
}

/// (year, month 1..=12, day 1..=31) of a day counted from 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the origin to 0000-03-01 so that February, with its leap day, ends each year;
    // then split into 400-year cycles of 146,097 days.
    let z = days + 719_468;
    let cycle = z.div_euclid(146_097);
    let day_of_cycle = z.rem_euclid(146_097);
    let year_of_cycle = (day_of_cycle - day_of_cycle / 1_460 + day_of_cycle / 36_524
        - day_of_cycle / 146_096)
        / 365;
    let day_of_year =
        day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_cycle + cycle * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_round_trip() {
        let ts = NtpTimestamp::from_unix(1_700_000_000, 500_000_000);
        assert_eq!(ts.seconds() as u64, 1_700_000_000 + NTP_UNIX_OFFSET);
        assert_eq!(ts.fraction(), 1 << 31);
        let (s, n) = ts.to_unix_near(1_700_000_100);
        assert_eq!(s, 1_700_000_000);
        assert!((n as i64 - 500_000_000).abs() <= 1);
    }

    #[test]
    /// attacks.md P4: timestamp differences across the 2036 era rollover.
    fn era_rollover_differences() {
        // 2036-02-07 06:28:16 UTC is the first second of era 1: Unix 2085978496.
        let rollover = 2_085_978_496i64;
        let before = NtpTimestamp::from_unix(rollover - 1, 0);
        let after = NtpTimestamp::from_unix(rollover + 1, 0);
        assert_eq!(after.seconds(), 1);
        assert_eq!(before.seconds(), u32::MAX);
        assert_eq!((after - before).to_seconds(), 2.0);
        assert_eq!((before - after).to_seconds(), -2.0);
        assert_eq!(after.to_unix_near(rollover).0, rollover + 1);
        assert_eq!(before.to_unix_near(rollover).0, rollover - 1);
    }

    #[test]
    fn short_format() {
        let d = NtpDuration::from_seconds(1.5);
        assert_eq!(d.to_short_bits(), 0x0001_8000);
        assert_eq!(NtpDuration::from_short_bits(0x0001_8000), d);
        assert_eq!(NtpDuration::from_seconds(-1.0).to_short_bits(), 0);
        assert_eq!(NtpDuration::from_seconds(1e9).to_short_bits(), u32::MAX);
    }

    #[test]
    fn nanos_and_exponent() {
        assert_eq!(
            NtpDuration::from_nanos(1_000_000_000),
            NtpDuration::ONE_SECOND
        );
        assert_eq!(NtpDuration::from_nanos(-500_000_000).to_seconds(), -0.5);
        assert_eq!(NtpDuration::from_exponent(0), NtpDuration::ONE_SECOND);
        assert_eq!(NtpDuration::from_exponent(-1).to_seconds(), 0.5);
        assert_eq!(NtpDuration::from_exponent(-128).to_bits(), 1);
        assert_eq!(NtpDuration::from_seconds(f64::NAN), NtpDuration::ZERO);
    }

    #[test]
    fn fuzzing_keeps_upper_bits() {
        let ts = NtpTimestamp::from_bits(0x1234_5678_9abc_def0);
        let f = ts.fuzz_below_precision(-20, u64::MAX);
        assert_eq!(f.to_bits() >> 12, ts.to_bits() >> 12);
        assert_eq!(f.to_bits() & 0xfff, 0xfff);
    }

    #[test]
    fn poll_steps() {
        let p = PollInterval::new(6);
        assert_eq!(p.inc(PollInterval::new(10)).log2(), 7);
        assert_eq!(p.inc(PollInterval::new(6)).log2(), 6);
        assert_eq!(p.dec(PollInterval::new(6)).log2(), 6);
        assert_eq!(PollInterval::new(100).log2(), 17);
    }
}
