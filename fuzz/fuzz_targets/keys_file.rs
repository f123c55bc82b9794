//! Entry point of the `keys_file` fuzz target: libFuzzer under `cargo fuzz`, a file replayer
//! on stable (`cargo run --bin keys_file -- FILE_OR_DIR...`). The checks live in the library.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meridian_fuzz::keys_file(data));

#[cfg(not(fuzzing))]
fn main() {
    meridian_fuzz::replay_main("keys_file", meridian_fuzz::keys_file);
}
