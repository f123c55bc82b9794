//! Entry point of the `server_respond` fuzz target: libFuzzer under `cargo fuzz`, a file replayer
//! on stable (`cargo run --bin server_respond -- FILE_OR_DIR...`). The checks live in the library.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meridian_fuzz::server_respond(data));

#[cfg(not(fuzzing))]
fn main() {
    meridian_fuzz::replay_main("server_respond", meridian_fuzz::server_respond);
}
