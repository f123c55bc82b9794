//! Entry point of the `peer_association` fuzz target: libFuzzer under `cargo fuzz`, a file replayer
//! on stable (`cargo run --bin peer_association -- FILE_OR_DIR...`). The checks live in the library.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meridian_fuzz::peer_association(data));

#[cfg(not(fuzzing))]
fn main() {
    meridian_fuzz::replay_main("peer_association", meridian_fuzz::peer_association);
}
