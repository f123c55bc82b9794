//! Comware's timestamp layout `HH:MM:SS.mmm UTC Mon D YYYY(XXXXXXXX.XXXXXXXX)` and the
//! calendar arithmetic behind it.

use meridian_proto::time::civil_from_days;
use meridian_proto::time::{NtpTimestamp, NTP_UNIX_OFFSET};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses the NTP hex text `XXXXXXXX.XXXXXXXX` (either case) the daemon reports.
pub fn parse_ntp_hex(text: &str) -> Option<NtpTimestamp> {
    let (secs, frac) = text.trim().split_once('.')?;
    if secs.len() != 8 || frac.len() != 8 {
        return None;
    }
    let secs = u32::from_str_radix(secs, 16).ok()?;
    let frac = u32::from_str_radix(frac, 16).ok()?;
    Some(NtpTimestamp::from_bits(((secs as u64) << 32) | frac as u64))
}

/// `HH:MM:SS.mmm UTC Mon D YYYY` for seconds and nanoseconds since the Unix epoch
/// (milliseconds truncated, as Comware prints them).
pub fn format_unix(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{:02}:{:02}:{:02}.{:03} UTC {} {} {}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        nanos / 1_000_000,
        MONTHS[(month - 1) as usize],
        day,
        year
    )
}

/// Comware's full timestamp: the civil time followed by the hex value in parentheses. The
/// era is the one nearest to `now_unix`; the reserved zero value prints as Jan 1 1900, as
/// Comware 5 does. Text that is not NTP hex is printed unchanged.
pub fn format_ntp_hex(text: &str, now_unix: i64) -> String {
    let Some(ts) = parse_ntp_hex(text) else {
        return text.to_string();
    };
    let civil = if ts.is_zero() {
        format_unix(-(NTP_UNIX_OFFSET as i64), 0)
    } else {
        let (secs, nanos) = ts.to_unix_near(now_unix);
        format_unix(secs, nanos)
    };
    format!("{civil}({ts})")
}

/// The local clock as seconds since the Unix epoch (only used to pick the NTP era).
pub fn now_unix() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01, only used to choose the era.
    const NOW: i64 = 1_767_225_600;

    #[test]
    fn zero_timestamp_is_1900() {
        assert_eq!(
            format_ntp_hex("00000000.00000000", NOW),
            "00:00:00.000 UTC Jan 1 1900(00000000.00000000)"
        );
    }

    #[test]
    fn guide_samples() {
        // From the Comware guide, section 4.3. (The 3Com sample of section 4.1 pairs
        // BF422AE4 with Apr 2 2007, but BF422AE4 is Sep 6 2001: the date of that sample is wrong.)
        assert_eq!(
            format_ntp_hex("BF422AE4.05AEA86C", NOW),
            "17:03:32.022 UTC Sep 6 2001(BF422AE4.05AEA86C)"
        );
        assert_eq!(
            format_ntp_hex("ce2686d6.71484513", NOW),
            "10:56:22.442 UTC Aug 7 2009(CE2686D6.71484513)"
        );
    }

    #[test]
    fn era_one_after_2036() {
        // Two seconds into era 1 (2036-02-07 06:28:18), seen from a clock in 2036.
        let now = 2_085_978_496 + 100;
        assert_eq!(
            format_ntp_hex("00000002.80000000", now),
            "06:28:18.500 UTC Feb 7 2036(00000002.80000000)"
        );
    }

    #[test]
    fn calendar_edges() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-25_567), (1900, 1, 1));
        assert_eq!(civil_from_days(-25_567 + 59), (1900, 3, 1)); // 1900 is no leap year
    }

    #[test]
    fn garbage_is_passed_through() {
        assert_eq!(format_ntp_hex("never", NOW), "never");
        assert_eq!(parse_ntp_hex("123.456"), None);
        assert_eq!(parse_ntp_hex("GGGGGGGG.00000000"), None);
    }
}
