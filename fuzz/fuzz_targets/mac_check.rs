//! Entry point of the `mac_check` fuzz target: libFuzzer under `cargo fuzz`, a file replayer
//! on stable (`cargo run --bin mac_check -- FILE_OR_DIR...`). The checks live in the library.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meridian_fuzz::mac_check(data));

#[cfg(not(fuzzing))]
fn main() {
    meridian_fuzz::replay_main("mac_check", meridian_fuzz::mac_check);
}
