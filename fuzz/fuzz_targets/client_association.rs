//! Entry point of the `client_association` fuzz target: libFuzzer under `cargo fuzz`, a file replayer
//! on stable (`cargo run --bin client_association -- FILE_OR_DIR...`). The checks live in the library.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meridian_fuzz::client_association(data));

#[cfg(not(fuzzing))]
fn main() {
    meridian_fuzz::replay_main("client_association", meridian_fuzz::client_association);
}
