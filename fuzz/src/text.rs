//! Text targets: the daemon's configuration reader, the keys-file reader, duration strings,
//! and the control-socket request decoder.

use meridian_proto::report::ControlRequest;
use meridiand::config::{self, ConfigError, KeyAlgorithm, MAX_SECRET_LEN};

/// Problems must point into the text (or at 0:0 for "no position"), one line each, sorted.
fn check_errors(text: &str, errors: &[ConfigError]) {
    assert!(!errors.is_empty(), "rejected without a reason");
    let lines: Vec<&str> = text.split('\n').collect();
    for e in errors {
        assert!(!e.message.is_empty() && !e.message.contains('\n'), "{e:?}");
        assert_eq!(e.line == 0, e.column == 0, "half a position: {e:?}");
        if e.line > 0 {
            let line = lines
                .get(e.line - 1)
                .unwrap_or_else(|| panic!("past the end: {e:?}"));
            assert!(e.column <= line.chars().count() + 1, "past the line: {e:?}");
        }
    }
    assert!(
        errors
            .windows(2)
            .all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)),
        "errors not in file order"
    );
}

/// `config::parse_str` (and the duration syntax) on arbitrary UTF-8: never panics; every
/// error has a sane position.
pub fn config_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = config::parse_str(text) {
        check_errors(text, &errors);
    }
    if let Ok(seconds) = config::parse_duration(text) {
        assert!(seconds.is_finite(), "{text:?} -> {seconds}");
    }
}

/// The Comware command reader (`config::parse_comware`) on arbitrary UTF-8: never panics;
/// errors have sane positions; whatever it accepts, the TOML writer writes and the TOML
/// reader reads back to the same configuration (one model, two readers).
pub fn comware_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse_comware(text) {
        Err(errors) => check_errors(text, &errors),
        Ok((cfg, _warnings)) => {
            let toml = config::to_toml(&cfg);
            let back = config::parse_str(&toml)
                .unwrap_or_else(|e| panic!("written TOML refused: {e:?}\n{toml}"));
            assert_eq!(
                back, cfg,
                "TOML round trip changed the configuration:\n{toml}"
            );
        }
    }
}

/// `config::parse_keys_file` on arbitrary UTF-8: never panics; accepted keys obey the
/// documented limits; errors have sane positions.
pub fn keys_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse_keys_file(text) {
        Ok(keys) => {
            for (i, key) in keys.iter().enumerate() {
                assert!(key.id >= 1, "{key:?}");
                assert!(
                    !keys[..i].iter().any(|k| k.id == key.id),
                    "duplicate {}",
                    key.id
                );
                assert!((1..=MAX_SECRET_LEN).contains(&key.secret.len()), "{key:?}");
                if key.algorithm == KeyAlgorithm::Aes128Cmac {
                    assert_eq!(key.secret.len(), 16);
                }
            }
        }
        Err(errors) => check_errors(text, &errors),
    }
}

/// The control socket's request decoder on arbitrary bytes: never panics; what it accepts
/// encodes and decodes to the same request.
pub fn control_request(data: &[u8]) {
    if let Ok(request) = serde_json::from_slice::<ControlRequest>(data) {
        let text = serde_json::to_vec(&request).expect("requests encode");
        let again: ControlRequest = serde_json::from_slice(&text).expect("own output decodes");
        assert_eq!(again, request);
    }
}
