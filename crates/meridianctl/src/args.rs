//! Command-line grammar of `meridianctl` (clap derive); usage errors exit with status 2.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Default control socket when neither `--socket` nor `--config` names one.
pub const DEFAULT_SOCKET: &str = "/run/meridian/control.sock";

/// The operator's tool for the Meridian NTP daemon.
#[derive(Debug, Parser)]
#[command(name = "meridianctl", version, about)]
pub struct Cli {
    /// Control socket of the daemon (default: `[control] socket` of --config, else
    /// /run/meridian/control.sock).
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Daemon configuration file to read the control socket path from.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// System clock state [display ntp-service status].
    Status(JsonFlag),
    /// Associations [display ntp-service sessions [verbose]].
    Sessions(SessionsArgs),
    /// Chain of servers back to the primary reference [display ntp-service trace].
    Trace(TraceArgs),
    /// One-shot measurement against an NTP server; needs no daemon.
    Query(QueryArgs),
    /// Make the daemon re-read its configuration.
    Reload,
    /// Print a configuration file (Comware commands or TOML) as the equivalent TOML.
    Convert(ConvertArgs),
    /// Run a simulation scenario (TOML) through the protocol core; exit 1 if a limit fails.
    Simulate(SimulateArgs),
}

/// Arguments of `simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Scenario file (see docs/simulator.md).
    #[arg(value_name = "SCENARIO.toml")]
    pub scenario: PathBuf,
    /// Seed instead of the file's `seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the offset of every measured node over time as an SVG plot.
    #[arg(long, value_name = "OUT.svg")]
    pub svg: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Comware command file (its side file FILE.toml is read when present) or TOML file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `--json` alone.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sessions`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// Show every field of every session.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Print the report as JSON (a list of sessions).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Where to start: HOST or HOST:PORT (default: this device, 127.0.0.1, on the port of
    /// `--config`'s `[service] port`, else 123). Upstream servers are queried on the same port.
    #[arg(value_name = "HOST[:PORT]")]
    pub start: Option<String>,
    /// Seconds to wait for each server.
    #[arg(long, default_value_t = 2.0, value_parser = parse_seconds)]
    pub timeout: f64,
    /// Give up after this many servers.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_hops: u32,
    /// Print the chain as JSON (a list of hops).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// HOST, HOST:PORT, IPV6 or [IPV6]:PORT; the port defaults to 123.
    #[arg(value_name = "HOST[:PORT]")]
    pub server: String,
    /// Send from inside network namespace /run/netns/NAME (needs CAP_SYS_ADMIN).
    #[arg(long, value_name = "NAME")]
    pub vpn_instance: Option<String>,
    /// Number of requests to send.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub count: u32,
    /// Seconds between requests when --count is more than 1.
    #[arg(long, default_value_t = 1.0, value_parser = parse_seconds)]
    pub interval: f64,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 2.0, value_parser = parse_seconds)]
    pub timeout: f64,
    /// NTP version of the request (1..=4).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=4))]
    pub version: u8,
    /// Print each answer as a JSON object on its own line.
    #[arg(long)]
    pub json: bool,
}

/// A positive, finite number of seconds, at most one hour.
fn parse_seconds(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if value.is_finite() && value > 0.0 && value <= 3600.0 {
        Ok(value)
    } else {
        Err(format!("`{text}` is out of range (0 < seconds <= 3600)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn query_flags_parse() {
        let cli = Cli::try_parse_from([
            "meridianctl",
            "query",
            "[2001:2::1]:1123",
            "--count",
            "3",
            "--timeout",
            "0.5",
            "--json",
        ])
        .unwrap();
        let Command::Query(q) = cli.command else {
            panic!("not a query")
        };
        assert_eq!(q.server, "[2001:2::1]:1123");
        assert_eq!(q.count, 3);
        assert_eq!(q.timeout, 0.5);
        assert!(q.json);
    }

    #[test]
    fn simulate_flags_parse() {
        let cli = Cli::try_parse_from([
            "meridianctl",
            "simulate",
            "s.toml",
            "--seed",
            "9",
            "--svg",
            "out.svg",
        ])
        .unwrap();
        let Command::Simulate(a) = cli.command else {
            panic!("not simulate")
        };
        assert_eq!(a.scenario, PathBuf::from("s.toml"));
        assert_eq!(a.seed, Some(9));
        assert_eq!(a.svg, Some(PathBuf::from("out.svg")));
        assert!(!a.json);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for argv in [
            &["meridianctl", "query", "h", "--timeout", "0"][..],
            &["meridianctl", "query", "h", "--version", "5"][..],
            &["meridianctl", "query", "h", "--count", "0"][..],
            &["meridianctl", "frobnicate"][..],
        ] {
            let err = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv:?}");
        }
    }
}
