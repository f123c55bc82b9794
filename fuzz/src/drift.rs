//! Drift-file target: `meridiand::drift::parse` (what `drift::read` applies to the file's
//! text) on any bytes, and the text `drift::write` stores read back.

use meridiand::drift::{self, DriftRead, MAX_PPM};

/// Half the file's resolution (1e-6 ppm), plus room for the binary rounding of decimals.
const READ_BACK: f64 = 5.000_001e-7;

/// The text `drift::write` stores for `ppm` (kept in step with drift.rs: six decimals, one
/// line).
fn written(ppm: f64) -> String {
    format!("{ppm:.6}\n")
}

/// Parses the input as a drift file, and the input's first eight bytes as a frequency to
/// store and read back.
pub fn drift_file(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        match drift::parse(text) {
            DriftRead::Ok(ppm) => {
                assert!(ppm.is_finite() && ppm.abs() <= MAX_PPM, "{text:?} -> {ppm}");
                let mut words = text.split_whitespace();
                let first = words.next().expect("a value came from somewhere");
                assert_eq!(first.parse::<f64>().ok(), Some(ppm), "{text:?}");
                assert!(
                    words.count() <= 1,
                    "more than two numbers accepted: {text:?}"
                );
                // Surrounding whitespace changes nothing.
                let padded = format!(" \n\t{text}\n ");
                assert_eq!(drift::parse(&padded), DriftRead::Ok(ppm));
                // What we would store for it reads back to within the file's resolution.
                match drift::parse(&written(ppm)) {
                    DriftRead::Ok(back) => {
                        assert!((back - ppm).abs() <= READ_BACK, "{ppm} -> {back}")
                    }
                    other => panic!("stored {ppm} reads back as {other:?}"),
                }
            }
            DriftRead::Corrupt(why) => {
                assert!(!why.is_empty() && !why.contains('\n'), "{why:?}");
                assert!(why.len() <= 512, "unbounded warning: {} bytes", why.len());
            }
            DriftRead::Missing => panic!("parse cannot find a file missing"),
        }
    }
    let bits: [u8; 8] = {
        let mut b = [0u8; 8];
        let head = &data[..data.len().min(8)];
        b[..head.len()].copy_from_slice(head);
        b
    };
    let ppm = f64::from_be_bytes(bits);
    match drift::parse(&written(ppm)) {
        DriftRead::Ok(back) => {
            assert!(back.abs() <= MAX_PPM);
            assert!((back - ppm).abs() <= READ_BACK, "{ppm} -> {back}");
        }
        _ => assert!(
            !ppm.is_finite() || ppm.abs() > MAX_PPM - READ_BACK,
            "a storable frequency {ppm} does not read back"
        ),
    }
}
