//! Meridian's fuzz targets as plain functions over bytes, shared by the libFuzzer binaries
//! (`cargo +nightly fuzz run TARGET`) and the stable smoke harness (`cargo test`).
//!
//! Every target panics exactly when it finds a bug: either the code under test panicked, or
//! one of the invariants asserted here does not hold. Inputs that are not meaningful for a
//! target (invalid UTF-8 for a text parser) are ignored, never rejected with a panic.

mod broadcast;
mod client;
mod drift;
mod forge;
mod input;
mod mac;
mod mode6;
mod packet;
mod peer;
mod text;
mod time;

pub use broadcast::broadcast_association;
pub use client::client_association;
pub use drift::drift_file;
pub use input::Input;
pub use mac::mac_check;
pub use mode6::mode6_request;
pub use packet::{server_respond, wire_parse};
pub use peer::peer_association;
pub use text::{comware_parse, config_parse, control_request, keys_file};
pub use time::time_conversions;

use std::path::Path;

/// A fuzz target: must not panic on any input.
pub type Target = fn(&[u8]);

/// Every target by name; the name is also the binary's and the corpus directory's.
pub const TARGETS: &[(&str, Target)] = &[
    ("wire_parse", wire_parse),
    ("server_respond", server_respond),
    ("client_association", client_association),
    ("peer_association", peer_association),
    ("broadcast_association", broadcast_association),
    ("mode6_request", mode6_request),
    ("mac_check", mac_check),
    ("config_parse", config_parse),
    ("comware_parse", comware_parse),
    ("keys_file", keys_file),
    ("drift_file", drift_file),
    ("control_request", control_request),
    ("time_conversions", time_conversions),
];

/// The files of a corpus directory (or the file itself), sorted; missing paths give none.
pub fn corpus_files(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// `main` of a target binary built without libFuzzer: runs the target over every file named
/// on the command line (directories are expanded), or over its seed corpus when none is.
pub fn replay_main(name: &str, target: Target) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let roots: Vec<std::path::PathBuf> = if args.is_empty() {
        vec![Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(name)]
    } else {
        args.iter().map(Into::into).collect()
    };
    let mut count = 0;
    for root in &roots {
        for file in corpus_files(root) {
            let data = std::fs::read(&file).unwrap_or_else(|e| {
                eprintln!("{name}: cannot read {}: {e}", file.display());
                std::process::exit(2);
            });
            eprintln!("{name}: {}", file.display());
            target(&data);
            count += 1;
        }
    }
    eprintln!("{name}: {count} inputs, no failure");
}
