//! Entry point of the `broadcast_association` fuzz target: libFuzzer under `cargo fuzz`, a file replayer
//! on stable (`cargo run --bin broadcast_association -- FILE_OR_DIR...`). The checks live in the library.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meridian_fuzz::broadcast_association(data));

#[cfg(not(fuzzing))]
fn main() {
    meridian_fuzz::replay_main(
        "broadcast_association",
        meridian_fuzz::broadcast_association,
    );
}
