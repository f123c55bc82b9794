//! Property tests of the protocol core: era-safe timestamp arithmetic, header round trips,
//! the wire framing rules against an independent naive model, and the server's reply size.

use meridian_proto::entropy::SplitMix64;
use meridian_proto::server::{respond, DropReason, ServerState};
use meridian_proto::time::{NtpDuration, NtpTimestamp};
use meridian_proto::wire::{self, Header, Leap, Mode, ReferenceId, HEADER_LEN};
use proptest::prelude::*;

/// 2036-02-07 06:28:16 UTC in Unix seconds: the first second of NTP era 1.
const ERA1_UNIX: i64 = 2_085_978_496;
/// First-order differences are valid for times less than 2^31 s (68 years) apart.
const SPAN_68_YEARS: i64 = (1 << 31) - 1;
/// Unix seconds of 1900-01-01 and 2200-01-01: the pivots a real clock can plausibly read.
const PIVOT_RANGE: core::ops::Range<i64> = -2_208_988_800..7_258_118_400;

fn nanos_since_unix(secs: i64, nanos: u32) -> i128 {
    secs as i128 * 1_000_000_000 + nanos as i128
}

proptest! {
    #[test]
    fn timestamp_plus_difference_is_the_other_timestamp(a: u64, b: u64) {
        let (a, b) = (NtpTimestamp::from_bits(a), NtpTimestamp::from_bits(b));
        prop_assert_eq!(a + (b - a), b);
        prop_assert_eq!(b - (b - a), a);
    }

    #[test]
    fn adding_a_duration_and_subtracting_gives_it_back(a: u64, d: i64) {
        let (a, d) = (NtpTimestamp::from_bits(a), NtpDuration::from_bits(d));
        prop_assert_eq!((a + d) - a, d);
        prop_assert_eq!((a - d) - a, NtpDuration::from_bits(d.to_bits().wrapping_neg()));
    }

    #[test]
    fn differences_across_the_2036_rollover(
        x in -(10 * 365 * 86_400i64)..(10 * 365 * 86_400),
        y in -(10 * 365 * 86_400i64)..(10 * 365 * 86_400),
        xn in 0u32..1_000_000_000,
        yn in 0u32..1_000_000_000,
    ) {
        let (t1, t2) = (ERA1_UNIX + x, ERA1_UNIX + y);
        let (a, b) = (NtpTimestamp::from_unix(t1, xn), NtpTimestamp::from_unix(t2, yn));
        let expected = nanos_since_unix(t2, yn) - nanos_since_unix(t1, xn);
        let got = (b - a).to_nanos() as i128;
        // Two truncations to 2^-32 s and one to 1 ns: at most 2 ns off.
        prop_assert!((got - expected).abs() <= 2, "{} vs {}", got, expected);
        if expected.abs() > 2 {
            prop_assert_eq!((b - a) > NtpDuration::ZERO, expected > 0, "order across eras");
        }
    }

    #[test]
    fn unix_time_round_trips_within_68_years_of_the_pivot(
        pivot in PIVOT_RANGE,
        delta in -SPAN_68_YEARS..=SPAN_68_YEARS,
        nanos in 0u32..1_000_000_000,
    ) {
        let t = pivot + delta;
        let (secs, back) = NtpTimestamp::from_unix(t, nanos).to_unix_near(pivot);
        prop_assert!(back < 1_000_000_000);
        let lost = nanos_since_unix(t, nanos) - nanos_since_unix(secs, back);
        prop_assert!((0..=1).contains(&lost), "{}.{:09} -> {}.{:09}", t, nanos, secs, back);
    }

    #[test]
    fn header_emit_parse_round_trip(
        leap in 0u8..4, version in 1u8..=4, mode in 0u8..8, stratum: u8, poll: i8,
        precision: i8, root_delay: u32, root_dispersion: u32, refid: [u8; 4],
        ts: [u64; 4],
    ) {
        let header = Header {
            leap: Leap::from_bits(leap),
            version,
            mode: Mode::from_bits(mode),
            stratum,
            poll,
            precision,
            root_delay: NtpDuration::from_short_bits(root_delay),
            root_dispersion: NtpDuration::from_short_bits(root_dispersion),
            reference_id: ReferenceId(refid),
            reference_ts: NtpTimestamp::from_bits(ts[0]),
            origin_ts: NtpTimestamp::from_bits(ts[1]),
            receive_ts: NtpTimestamp::from_bits(ts[2]),
            transmit_ts: NtpTimestamp::from_bits(ts[3]),
        };
        let bytes = header.to_bytes();
        prop_assert_eq!(Header::parse(&bytes), Ok(header));
        prop_assert_eq!(wire::parse(&bytes).map(|p| p.header), Ok(header));
        prop_assert_eq!(bytes[0], leap << 6 | version << 3 | mode);
    }

    #[test]
    fn any_header_bytes_re_emit_identically(
        head in prop::array::uniform32(any::<u8>()),
        rest in prop::array::uniform16(any::<u8>()),
    ) {
        let mut data = [0u8; HEADER_LEN];
        data[..32].copy_from_slice(&head);
        data[32..].copy_from_slice(&rest);
        let version = (data[0] >> 3) & 7;
        match Header::parse(&data) {
            Ok(h) => prop_assert_eq!(h.to_bytes(), data),
            Err(e) => prop_assert!(!(1..=4).contains(&version), "version {} refused: {:?}", version, e),
        }
    }
}

/// The framing rules written down once more, independently and naively, as a
/// specification: `None` when the datagram must be refused, else how many extension fields
/// it has and how long its MAC trailer is (0 for none).
fn naive_framing(d: &[u8]) -> Option<(usize, usize)> {
    let length_ok = d.len() >= 48 && d.len().is_multiple_of(4);
    let version = if length_ok { (d[0] >> 3) & 7 } else { 0 };
    if !(1..=4).contains(&version) {
        return None;
    }
    let tail = &d[48..];
    let is_mac_length = |n: usize| [0, 4, 20, 24].contains(&n);
    // Up to version 3, and for any tail short enough to be a MAC, the tail is the MAC.
    if version < 4 || tail.len() <= 24 {
        return is_mac_length(tail.len()).then_some((0, tail.len()));
    }
    // Otherwise: extension fields, by their declared lengths, while more than a MAC's worth
    // of bytes is left; the whole area may not exceed 1024 bytes.
    let mut lengths: Vec<usize> = Vec::new();
    let mut start = 0;
    while tail.len() - start > 24 {
        if start >= 1024 {
            return None;
        }
        let declared = u16::from_be_bytes([tail[start + 2], tail[start + 3]]) as usize;
        if declared < 16
            || !declared.is_multiple_of(4)
            || start + declared > tail.len()
            || start + declared > 1024
        {
            return None;
        }
        lengths.push(declared);
        start += declared;
    }
    let mac = tail.len() - start;
    let last_long_enough = lengths.last().is_some_and(|&l| l >= 28);
    match mac {
        0 if last_long_enough => Some((lengths.len(), 0)),
        4 | 20 | 24 => Some((lengths.len(), mac)),
        _ => None,
    }
}

fn check_against_naive(data: &[u8]) -> Result<(), TestCaseError> {
    let real = wire::parse(data);
    let model = naive_framing(data);
    prop_assert_eq!(real.is_ok(), model.is_some(), "{:?} vs {:?}", real, model);
    if let (Ok(p), Some((fields, mac))) = (real, model) {
        prop_assert_eq!(p.extensions().count(), fields);
        prop_assert_eq!(p.mac.map_or(0, |m| 4 + m.digest.len()), mac);
        prop_assert_eq!(p.len(), data.len());
    }
    Ok(())
}

/// A datagram whose layout is known: version, extension fields (type, length) and a trailer.
fn structured_packet() -> impl Strategy<Value = Vec<u8>> {
    let field = (
        any::<u16>(),
        4usize..80,
        any::<u8>(),
        prop::bool::weighted(0.1),
        any::<u16>(),
    );
    (
        prop::array::uniform32(any::<u8>()),
        0u8..8,
        prop::collection::vec(field, 0..6),
        prop::sample::select(vec![0usize, 4, 8, 12, 16, 20, 24, 28]),
    )
        .prop_map(|(head, version, fields, trailer)| {
            let mut p = vec![0u8; HEADER_LEN];
            p[..32].copy_from_slice(&head);
            p[0] = (p[0] & 0xc7) | (version << 3);
            for (field_type, words, fill, lie, declared) in fields {
                let len = 4 * words;
                let declared = if lie { declared } else { len as u16 };
                p.extend(field_type.to_be_bytes());
                p.extend(declared.to_be_bytes());
                p.extend(std::iter::repeat_n(fill, len - 4));
            }
            p.extend(std::iter::repeat_n(0x5a, trailer));
            p
        })
}

fn synchronized_server() -> ServerState {
    ServerState {
        leap: Leap::None,
        stratum: 2,
        precision: -20,
        poll: 6,
        root_delay: NtpDuration::from_seconds(0.01),
        root_dispersion: NtpDuration::from_seconds(0.02),
        reference_id: ReferenceId([198, 18, 0, 1]),
        reference_ts: NtpTimestamp::from_unix(ERA1_UNIX - 60, 0),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn parse_accepts_exactly_what_the_framing_rules_allow_random(
        data in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        check_against_naive(&data)?;
    }

    #[test]
    fn parse_accepts_exactly_what_the_framing_rules_allow_structured(
        data in structured_packet(),
    ) {
        check_against_naive(&data)?;
    }

    #[test]
    fn parse_accepts_exactly_what_the_framing_rules_allow_long(
        data in structured_packet(),
        words in 0usize..400,
        fill: u8,
    ) {
        // Long areas: many small fields, and the 1024-byte limit on the area.
        let mut data = data;
        let mut field = vec![fill; 16];
        field[2..4].copy_from_slice(&16u16.to_be_bytes());
        for _ in 0..words / 4 {
            data.splice(HEADER_LEN.min(data.len())..HEADER_LEN.min(data.len()), field.clone());
        }
        check_against_naive(&data)?;
    }

    #[test]
    fn unambiguous_layouts_parse_into_their_fields_and_mac(
        // At most 5 fields of 51 words: 1,020 bytes, within the 1,024-byte extension area.
        fields in prop::collection::vec((any::<u16>(), 4usize..52), 1..6),
        mac in prop::sample::select(vec![0usize, 20, 24]),
        key_id: u32,
    ) {
        let mut fields = fields;
        if mac == 0 {
            // Without a MAC the last field must be at least 28 bytes (7 words).
            let last = fields.last_mut().expect("one field");
            last.1 = last.1.max(7);
        }
        let mut p = Header::new(Mode::Client).to_bytes().to_vec();
        for &(field_type, words) in &fields {
            p.extend(field_type.to_be_bytes());
            p.extend(((4 * words) as u16).to_be_bytes());
            p.extend(std::iter::repeat_n(0xee, 4 * words - 4));
        }
        let authenticated = p.len();
        if mac > 0 {
            p.extend(key_id.to_be_bytes());
            p.extend(std::iter::repeat_n(0xcc, mac - 4));
        }
        let parsed = wire::parse(&p).expect("well-formed layout refused");
        let got: Vec<(u16, usize)> =
            parsed.extensions().map(|f| (f.field_type, (f.value.len() + 4) / 4)).collect();
        prop_assert_eq!(got, fields);
        prop_assert_eq!(parsed.authenticated.len(), authenticated);
        match parsed.mac {
            Some(m) => prop_assert_eq!((m.key_id, 4 + m.digest.len()), (key_id, mac)),
            None => prop_assert_eq!(mac, 0),
        }
    }

    #[test]
    fn server_reply_never_longer_than_the_request(
        data in prop_oneof![structured_packet(), prop::collection::vec(any::<u8>(), 0..120)],
        rx: u64,
        seed: u64,
    ) {
        let mut rng = SplitMix64::new(seed);
        let rx = NtpTimestamp::from_bits(rx);
        let mut out = [0u8; 1024];
        let result = respond(&data, rx, &synchronized_server(), &mut rng, || rx, &mut out);
        let request = wire::parse(&data).map(|p| p.header.mode);
        match result {
            Ok(n) => {
                prop_assert!(n <= data.len(), "{} byte reply to {} bytes", n, data.len());
                prop_assert_eq!(request, Ok(Mode::Client));
            }
            Err(DropReason::NoBuffer) => prop_assert!(false, "1024-byte buffer too small"),
            Err(_) => prop_assert_ne!(request, Ok(Mode::Client)),
        }
    }
}
