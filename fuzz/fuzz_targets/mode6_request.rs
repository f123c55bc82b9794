//! Entry point of the `mode6_request` fuzz target: libFuzzer under `cargo fuzz`, a file replayer
//! on stable (`cargo run --bin mode6_request -- FILE_OR_DIR...`). The checks live in the library.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meridian_fuzz::mode6_request(data));

#[cfg(not(fuzzing))]
fn main() {
    meridian_fuzz::replay_main("mode6_request", meridian_fuzz::mode6_request);
}
