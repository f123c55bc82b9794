//! Leap-second announcements: which leap indicator the system takes from its sources.
//!
//! Two rules (attacks.md C7 and D5). A leap second is armed only when more than half of the
//! truechimers of selection (sources whose intervals meet the majority interval) announce
//! the same one, so a single source (spoofed, or simply wrong) cannot insert or delete a
//! second (CVE-2016-4954). And it is armed only on the last day of a month (UTC): a leap
//! second only ever ends a month, and RFC 8633 section 3.7 recommends that servers announce
//! it on that day only. So an early announcement never reaches the kernel, which would
//! execute it at the next midnight (chrony is stricter: 30 June and 31 December only).

use crate::time::{civil_from_days, NtpTimestamp};
use crate::wire::Leap;

/// Seconds since the Unix epoch used to resolve the NTP era of the local time when telling
/// the calendar day (2026-01-01): right from 1958 to 2094.
const ERA_PIVOT: i64 = 1_767_225_600;

/// The leap indicator the system advertises and hands to its clock.
///
/// `system_peer` is the indicator of the system peer; `voters` are those of every truechimer
/// of selection (the system peer included); `local_now` is the local clock time.
/// An alarm (unsynchronized) system peer keeps the alarm; otherwise the result is a leap only
/// if a strict majority of the voters announces it and today is the last day of a month.
pub fn vote(
    system_peer: Leap,
    voters: impl IntoIterator<Item = Leap>,
    local_now: NtpTimestamp,
) -> Leap {
    if system_peer == Leap::Unsynchronized {
        return Leap::Unsynchronized;
    }
    let (mut votes, mut insert, mut delete) = (0usize, 0usize, 0usize);
    for leap in voters {
        votes += 1;
        match leap {
            Leap::AddSecond => insert += 1,
            Leap::DeleteSecond => delete += 1,
            Leap::None | Leap::Unsynchronized => {}
        }
    }
    let armed = if insert * 2 > votes {
        Leap::AddSecond
    } else if delete * 2 > votes {
        Leap::DeleteSecond
    } else {
        return Leap::None;
    };
    if is_last_day_of_month(local_now) {
        armed
    } else {
        Leap::None
    }
}

/// Whether `ts` (UTC) falls on the last day of a month.
pub fn is_last_day_of_month(ts: NtpTimestamp) -> bool {
    let (secs, _) = ts.to_unix_near(ERA_PIVOT);
    let tomorrow = secs.div_euclid(86_400) + 1;
    civil_from_days(tomorrow).2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(secs: i64) -> NtpTimestamp {
        NtpTimestamp::from_unix(secs, 0)
    }

    /// 2026-12-31 12:00 UTC and 2026-06-15 12:00 UTC.
    const DEC_31: i64 = 1_798_718_400;
    const JUN_15: i64 = 1_781_524_800;

    #[test]
    fn calendar_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(DEC_31 / 86_400), (2026, 12, 31));
        assert_eq!(civil_from_days(JUN_15 / 86_400), (2026, 6, 15));
        // 2028-02-29 (a leap year) and 2100-03-01 (not one).
        assert_eq!(civil_from_days(21_243), (2028, 2, 29));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn last_days_of_months() {
        assert!(is_last_day_of_month(utc(DEC_31)));
        assert!(is_last_day_of_month(utc(DEC_31 + 43_199))); // 23:59:59
        assert!(!is_last_day_of_month(utc(DEC_31 + 43_200))); // 2027-01-01 00:00
        assert!(!is_last_day_of_month(utc(JUN_15)));
        assert!(is_last_day_of_month(utc(JUN_15 + 15 * 86_400))); // 30 June
        assert!(is_last_day_of_month(utc(21_243 * 86_400))); // 29 February 2028
        assert!(!is_last_day_of_month(utc(21_242 * 86_400))); // 28 February 2028
                                                              // Across the NTP era boundary (2036-02-07): 2036-02-29.
        assert!(is_last_day_of_month(utc(24_165 * 86_400)));
        assert_eq!(civil_from_days(24_165), (2036, 2, 29));
    }

    /// attacks.md D5: an announcement is armed only on the last day of a month.
    #[test]
    fn d5_announcement_armed_only_on_the_last_day_of_the_month() {
        let all = [Leap::AddSecond; 3];
        assert_eq!(vote(Leap::AddSecond, all, utc(JUN_15)), Leap::None);
        assert_eq!(
            vote(Leap::AddSecond, all, utc(JUN_15 + 15 * 86_400)),
            Leap::AddSecond
        );
        let del = [Leap::DeleteSecond; 2];
        assert_eq!(
            vote(Leap::DeleteSecond, del, utc(DEC_31)),
            Leap::DeleteSecond
        );
        assert_eq!(vote(Leap::DeleteSecond, del, utc(JUN_15)), Leap::None);
    }

    #[test]
    fn majority_of_voters() {
        let t = utc(DEC_31);
        use Leap::{AddSecond as A, DeleteSecond as D, None as N, Unsynchronized as U};
        let cases: [(&[Leap], Leap); 8] = [
            (&[A], A),
            (&[A, N], N),
            (&[A, A, N], A),
            (&[A, N, N], N),
            (&[A, A, N, N], N),
            (&[A, A, A, N, D], A),
            (&[D, D, A], D),
            (&[A, A, U, U], N),
        ];
        for (leaps, want) in cases {
            assert_eq!(vote(N, leaps.iter().copied(), t), want, "{leaps:?}");
        }
        assert_eq!(
            vote(U, [A, A, A], t),
            U,
            "an alarm system peer keeps the alarm"
        );
    }
}

#[cfg(test)]
#[path = "system_leap_tests.rs"]
mod system_leap_tests;
