//! Runs a parsed command line: picks the socket, talks to the daemon (or the network for
//! `query`) and prints plain text or JSON.

use std::path::Path;

use meridian_proto::report::{ControlAnswer, ControlRequest};
use serde::Serialize;

use crate::args::{Cli, Command};
use crate::control;
use crate::display;
use crate::error::CtlError;
use crate::query;
use crate::trace;

/// Executes the verb of `cli`.
pub fn run(cli: &Cli) -> Result<(), CtlError> {
    match &cli.command {
        Command::Query(args) => query::run(args),
        Command::Trace(args) => {
            let default_port = match cli.config.as_deref() {
                Some(path) => control::port_from_config(path)?.unwrap_or(123),
                None => 123,
            };
            let start = trace::start_address(args.start.as_deref(), default_port)?;
            let timeout = std::time::Duration::from_secs_f64(args.timeout);
            let (hops, end) = trace::walk(start, start.port(), timeout, args.max_hops as usize)?;
            if args.json {
                print_json(&hops)?;
            } else {
                print!("{}", display::format_trace(&hops));
            }
            match end {
                trace::End::Primary(_) | trace::End::LocalClock(_) => Ok(()),
                trace::End::Unsynchronized => Err(CtlError::failed(
                    "trace: the last server is not synchronized",
                )),
                trace::End::Opaque(id) => Err(CtlError::failed(format!(
                    "trace: cannot follow reference id {id} (not an IPv4 address)"
                ))),
                trace::End::Loop(ip) => Err(CtlError::failed(format!("trace: loop at {ip}"))),
                trace::End::Timeout(server) => {
                    Err(CtlError::failed(format!("trace: no answer from {server}")))
                }
                trace::End::TooManyHops => Err(CtlError::failed("trace: too many servers")),
            }
        }
        Command::Convert(args) => convert(&args.file),
        Command::Simulate(args) => crate::simulate::run(args),
        Command::Status(flag) => {
            let socket = control::socket_path(cli.socket.as_deref(), cli.config.as_deref())?;
            match ask(&socket, &ControlRequest::Status)? {
                ControlAnswer::Status(report) if flag.json => print_json(&report),
                ControlAnswer::Status(report) => {
                    print!("{}", display::format_status(&report, display::now_unix()));
                    Ok(())
                }
                other => Err(unexpected(&socket, &other)),
            }
        }
        Command::Sessions(args) => {
            let socket = control::socket_path(cli.socket.as_deref(), cli.config.as_deref())?;
            match ask(&socket, &ControlRequest::Sessions)? {
                ControlAnswer::Sessions { sessions } if args.json => print_json(&sessions),
                ControlAnswer::Sessions { sessions } if args.verbose => {
                    let now = display::now_unix();
                    print!("{}", display::format_sessions_verbose(&sessions, now));
                    Ok(())
                }
                ControlAnswer::Sessions { sessions } => {
                    print!("{}", display::format_sessions_brief(&sessions));
                    Ok(())
                }
                other => Err(unexpected(&socket, &other)),
            }
        }
        Command::Reload => {
            let socket = control::socket_path(cli.socket.as_deref(), cli.config.as_deref())?;
            match ask(&socket, &ControlRequest::Reload)? {
                ControlAnswer::Reloaded { message } => {
                    println!("{message}");
                    Ok(())
                }
                other => Err(unexpected(&socket, &other)),
            }
        }
    }
}

/// `convert FILE`: the equivalent TOML on stdout, warnings on stderr; every error (with its
/// line and column) fails the verb.
fn convert(path: &Path) -> Result<(), CtlError> {
    match meridiand::config::load_any(path) {
        Ok((config, warnings)) => {
            for w in warnings {
                eprintln!("meridianctl: {}: {w}", path.display());
            }
            print!("{}", meridiand::config::to_toml(&config));
            Ok(())
        }
        Err(errors) => {
            let report: Vec<String> = errors
                .iter()
                .map(|e| format!("{}:{e}", path.display()))
                .collect();
            Err(CtlError::failed(report.join("\n")))
        }
    }
}

fn ask(socket: &Path, request: &ControlRequest) -> Result<ControlAnswer, CtlError> {
    control::exchange(socket, request)
}

fn unexpected(socket: &Path, answer: &ControlAnswer) -> CtlError {
    let kind = match answer {
        ControlAnswer::Status(_) => "status",
        ControlAnswer::Sessions { .. } => "sessions",
        ControlAnswer::Reloaded { .. } => "reloaded",
        ControlAnswer::Error { .. } => "error",
    };
    CtlError::failed(format!(
        "{}: answered `{kind}` to a different request",
        socket.display()
    ))
}

fn print_json<T: Serialize>(value: &T) -> Result<(), CtlError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CtlError::failed(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
