//! Duration strings of the configuration ("128ms", "+1.5s", "2m") to f64 seconds.

/// Units accepted after the number, with their length in seconds.
const UNITS: &[(&str, f64)] = &[
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
];

/// Parse `[+|-]DIGITS[.DIGITS]UNIT` (unit one of ns, us, µs, ms, s, m, h) into seconds.
///
/// No spaces, no exponent, a unit is required. The error is a sentence for the user.
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'+') => (false, &text[1..]),
        Some(b'-') => (true, &text[1..]),
        _ => (false, text),
    };
    let number_len = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, unit) = body.split_at(number_len);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    if digits == 0 || number.matches('.').count() > 1 || number.ends_with('.') {
        return Err(format!(
            "invalid duration \"{text}\": expected a number followed by a unit, like \"128ms\""
        ));
    }
    let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(if unit.is_empty() {
            format!("invalid duration \"{text}\": missing unit (ns, us, ms, s, m or h)")
        } else {
            format!(
                "invalid duration \"{text}\": unknown unit \"{unit}\" (use ns, us, ms, s, m or h)"
            )
        });
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration \"{text}\""))?;
    let seconds = value * scale;
    if !seconds.is_finite() {
        return Err(format!("duration \"{text}\" is too large"));
    }
    Ok(if negative { -seconds } else { seconds })
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn examples_from_the_spec() {
        assert!(close(parse_duration("128ms").unwrap(), 0.128));
        assert!(close(parse_duration("1000s").unwrap(), 1000.0));
        assert!(close(parse_duration("+1.5s").unwrap(), 1.5));
        assert!(close(parse_duration("-0.25s").unwrap(), -0.25));
        assert!(close(parse_duration("500us").unwrap(), 0.0005));
        assert!(close(parse_duration("500µs").unwrap(), 0.0005));
        assert!(close(parse_duration("2m").unwrap(), 120.0));
        assert!(close(parse_duration("1h").unwrap(), 3600.0));
        assert!(close(parse_duration("10ns").unwrap(), 1e-8));
        assert!(close(parse_duration(".5s").unwrap(), 0.5));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "s", "1", "1.5", "1 s", " 1s", "1s ", "1.s", "1..5s", "1.2.3s", "--1s", "+-1s",
            "1e3s", "1sec", "1S", "ms", "+s", "1d", "0x10s", "1,5s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn error_names_the_problem() {
        assert!(parse_duration("1.5").unwrap_err().contains("missing unit"));
        assert!(parse_duration("3d")
            .unwrap_err()
            .contains("unknown unit \"d\""));
    }

    proptest! {
        #[test]
        fn integer_and_fraction_in_every_unit(
            neg in any::<bool>(), plus in any::<bool>(), int in 0u64..1_000_000,
            frac in proptest::option::of(0u32..1_000_000), unit in 0usize..7,
        ) {
            let (name, scale) = super::UNITS[unit];
            let number = match frac {
                Some(f) => format!("{int}.{f:06}"),
                None => int.to_string(),
            };
            let sign = if neg { "-" } else if plus { "+" } else { "" };
            let text = format!("{sign}{number}{name}");
            let expected = number.parse::<f64>().unwrap() * scale * if neg { -1.0 } else { 1.0 };
            let got = parse_duration(&text).unwrap();
            prop_assert!(close(got, expected), "{} -> {} (expected {})", text, got, expected);
        }

        #[test]
        fn never_panics(text in "\\PC{0,12}") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn positive_seconds_round_trip(x in 0.0f64..1e9) {
            let text = format!("{x}s");
            prop_assert_eq!(parse_duration(&text).unwrap(), x);
        }
    }
}
