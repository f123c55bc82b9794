//! Entry point of the `wire_parse` fuzz target: libFuzzer under `cargo fuzz`, a file replayer
//! on stable (`cargo run --bin wire_parse -- FILE_OR_DIR...`). The checks live in the library.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meridian_fuzz::wire_parse(data));

#[cfg(not(fuzzing))]
fn main() {
    meridian_fuzz::replay_main("wire_parse", meridian_fuzz::wire_parse);
}
