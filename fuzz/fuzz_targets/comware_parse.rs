//! Entry point of the `comware_parse` fuzz target: libFuzzer under `cargo fuzz`, a file replayer
//! on stable (`cargo run --bin comware_parse -- FILE_OR_DIR...`). The checks live in the library.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meridian_fuzz::comware_parse(data));

#[cfg(not(fuzzing))]
fn main() {
    meridian_fuzz::replay_main("comware_parse", meridian_fuzz::comware_parse);
}
