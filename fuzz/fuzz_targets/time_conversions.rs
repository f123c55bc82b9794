//! Entry point of the `time_conversions` fuzz target: libFuzzer under `cargo fuzz`, a file replayer
//! on stable (`cargo run --bin time_conversions -- FILE_OR_DIR...`). The checks live in the library.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meridian_fuzz::time_conversions(data));

#[cfg(not(fuzzing))]
fn main() {
    meridian_fuzz::replay_main("time_conversions", meridian_fuzz::time_conversions);
}
