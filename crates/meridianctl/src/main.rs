//! `meridianctl`: the operator's tool for Meridian (status, sessions, trace, query, reload).

mod args;
mod commands;
mod control;
mod display;
mod error;
mod netns;
mod query;
mod simulate;
mod trace;

use clap::Parser;

fn main() {
    // clap prints usage errors and exits with status 2 (help and version with 0).
    let cli = args::Cli::parse();
    if let Err(e) = commands::run(&cli) {
        eprintln!("meridianctl: {e}");
        std::process::exit(e.exit_code());
    }
}
