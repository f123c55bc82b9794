//! `meridiand`: the Meridian NTP daemon. Parses the command line, loads the configuration and
//! hands over to the event loop in `runtime`.

use meridiand::{config, error, log, runtime};

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: meridiand --config FILE [--debug]
       meridiand --check-config FILE
       meridiand --version

  --config FILE        run in the foreground with this configuration, logging to stderr
  --check-config FILE  validate FILE: exit 0, or exit 1 printing every problem (line:column)
  --debug              log every packet decision
";

enum Command {
    Run { config: PathBuf, debug: bool },
    Check(PathBuf),
    Version,
    Help,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut config = None;
    let mut debug = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--config" | "-c" => {
                config = Some(PathBuf::from(it.next().ok_or("--config needs a FILE")?))
            }
            "--check-config" => {
                return Ok(Command::Check(PathBuf::from(
                    it.next().ok_or("--check-config needs a FILE")?,
                )))
            }
            "--debug" | "-d" => debug = true,
            "--version" | "-V" => return Ok(Command::Version),
            "--help" | "-h" => return Ok(Command::Help),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Command::Run {
        config: config.ok_or("--config FILE is required")?,
        debug,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args) {
        Err(e) => {
            eprintln!("meridiand: {e}\n{USAGE}");
            ExitCode::from(2)
        }
        Ok(Command::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("meridiand {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Check(path)) => match config::check_file(&path) {
            Ok(_) => {
                println!("{}: configuration is valid", path.display());
                ExitCode::SUCCESS
            }
            Err(report) => {
                eprint!("{report}");
                if !report.ends_with('\n') {
                    eprintln!();
                }
                ExitCode::from(1)
            }
        },
        Ok(Command::Run { config, debug }) => {
            if debug {
                log::set_level(3);
            }
            let cfg = match config::check_file(&config) {
                Ok(c) => c,
                Err(report) => {
                    eprint!("{report}");
                    return ExitCode::from(1);
                }
            };
            match runtime::Runtime::new(cfg, &config).and_then(|mut rt| rt.run()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
