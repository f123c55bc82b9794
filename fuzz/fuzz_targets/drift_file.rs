//! Entry point of the `drift_file` fuzz target: libFuzzer under `cargo fuzz`, a file replayer
//! on stable (`cargo run --bin drift_file -- FILE_OR_DIR...`). The checks live in the library.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meridian_fuzz::drift_file(data));

#[cfg(not(fuzzing))]
fn main() {
    meridian_fuzz::replay_main("drift_file", meridian_fuzz::drift_file);
}
