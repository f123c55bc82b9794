//! `meridianctl`: the operator's tool for Meridian.
fn main() {}
