//! Time target: the conversions of `meridian_proto::time` on arbitrary values (any f64 bit
//! pattern, any pivot, any timestamp), checked against exact integer arithmetic.

use crate::input::Input;
use core::time::Duration;
use meridian_proto::time::{Mono, NtpDuration, NtpTimestamp, PollInterval};

/// Units of 2^-32 s per second.
const SCALE: f64 = 4_294_967_296.0;

/// Pivots (Unix seconds, about +-35000 years) whose results fit i64 nanoseconds easily.
const SANE_PIVOT: i64 = 1 << 40;

pub fn time_conversions(data: &[u8]) {
    let mut input = Input::new(data);
    while !input.is_empty() {
        one_round(&mut input);
    }
}

fn one_round(input: &mut Input<'_>) {
    // Floats: NaN is zero, the rest saturates; in range the error is below one unit.
    let secs = input.f64();
    let d = NtpDuration::from_seconds(secs);
    if secs.is_nan() {
        assert_eq!(d, NtpDuration::ZERO);
    } else if secs.abs() < 1e9 {
        let back = d.to_seconds();
        assert!(
            (back - secs).abs() <= 1.0 / SCALE + secs.abs() * 1e-15,
            "{secs} -> {back}"
        );
    } else {
        assert_eq!(
            d.to_bits().signum(),
            secs.signum() as i64,
            "{secs} -> {d:?}"
        );
    }
    let mono = Mono::from_seconds(secs);
    if secs.is_nan() || secs <= 0.0 {
        assert_eq!(mono, Mono::ZERO, "{secs}");
    }

    // Nanoseconds and the short format.
    let nanos = input.i64();
    let back = NtpDuration::from_nanos(nanos).to_nanos();
    if nanos.unsigned_abs() < 1u64 << 60 {
        assert!((back - nanos).abs() <= 1, "{nanos} -> {back}");
    }
    let short = input.u32();
    assert_eq!(NtpDuration::from_short_bits(short).to_short_bits(), short);
    let bits = input.i64();
    let s = NtpDuration::from_bits(bits).to_short_bits();
    assert!(bits > 0 || s == 0);
    let exp = input.i8();
    let e = NtpDuration::from_exponent(exp);
    assert!(e > NtpDuration::ZERO, "2^{exp} is not positive");

    // Timestamps: first-order differences are exact for any pair.
    let a = NtpTimestamp::from_bits(input.u64());
    let b = NtpTimestamp::from_bits(input.u64());
    assert_eq!(a + (b - a), b);
    assert_eq!(
        (b - a).to_bits(),
        b.to_bits().wrapping_sub(a.to_bits()) as i64
    );
    let fuzzed = a.fuzz_below_precision(exp, input.u64());
    let keep = (32 + exp as i32).clamp(0, 63) as u32;
    assert_eq!(fuzzed.to_bits() >> keep, a.to_bits() >> keep);

    // Era resolution: the result is within 68 years of the pivot and names `a` again.
    let pivot = input.i64() % SANE_PIVOT;
    let (unix, ns) = a.to_unix_near(pivot);
    assert!(ns < 1_000_000_000);
    assert!(
        (unix - pivot).abs() <= 1 << 31,
        "{a:?} near {pivot}: {unix}"
    );
    let again = NtpTimestamp::from_unix(unix, ns);
    let err = (a - again).to_bits();
    assert!(
        (0..=5).contains(&err),
        "{a:?} -> {unix}.{ns:09} -> {again:?}"
    );
    // Any pivot at all: no panic.
    let _ = b.to_unix_near(input.i64());

    // Poll intervals stay in range and step within their bounds.
    let p = PollInterval::new(input.i8());
    assert!(PollInterval::MIN <= p && p <= PollInterval::MAX);
    let bound = PollInterval::new(input.i8());
    assert!(p.inc(bound) <= p.max(bound) && p.dec(bound) >= p.min(bound));
    assert!(p.as_duration() > Duration::ZERO);

    // Monotonic time saturates instead of overflowing.
    let m = Mono::from_nanos(input.u64());
    let later = m + Duration::from_nanos(input.u64());
    assert!(later >= m);
    assert_eq!(m.saturating_since(later), Duration::ZERO);
}
