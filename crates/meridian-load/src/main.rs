//! `meridian-load`: parses the command line, runs one bounded load, prints the report.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", meridian_load::args::USAGE);
        return ExitCode::SUCCESS;
    }
    let options = match meridian_load::args::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("meridian-load: {e}\n\n{}", meridian_load::args::USAGE);
            return ExitCode::from(2);
        }
    };
    match meridian_load::run::run(&options) {
        Ok(report) => {
            if options.json {
                match serde_json::to_string(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("meridian-load: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", meridian_load::run::text(&report));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("meridian-load: {e}");
            ExitCode::FAILURE
        }
    }
}
