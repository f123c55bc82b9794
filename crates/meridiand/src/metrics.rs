//! Prometheus metrics: a tiny HTTP/1.1 responder on `[metrics] listen`, served from the event
//! loop like the control socket (non-blocking, bounded request size and time), rendering the
//! same snapshots as `meridianctl` in the text exposition format.

use crate::requests::RequestServer;
use meridian_proto::report::{SessionReport, StatusReport};
use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::RawFd;
use std::time::Duration;

const MAX_REQUEST: usize = 8192;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);

/// Counters of one instance's server path, for the exposition.
pub struct ServerCounterView<'a> {
    pub vpn_instance: Option<&'a str>,
    pub received: u64,
    pub answered: u64,
    pub dropped: Vec<(&'a str, u64)>,
    /// Clients in the instance's rate-limit tables; `None` when rate limiting is off.
    pub rate_limit_entries: Option<u64>,
}

pub struct MetricsServer {
    server: RequestServer<TcpListener>,
}

impl MetricsServer {
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            server: RequestServer::new(listener, MAX_REQUEST, CLIENT_TIMEOUT, WRITE_TIMEOUT),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.server.listener.local_addr()
    }

    pub fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.server.fds()
    }

    pub fn busy(&self) -> bool {
        self.server.busy()
    }

    /// Answers complete HTTP requests (headers up to the blank line): `GET /metrics` with the
    /// text `render` produces, anything else with 404 or 405.
    pub fn service(&mut self, render: impl Fn() -> String) {
        let headers = |buf: &[u8]| buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
        self.server.service(headers, |request| {
            let first = request.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(first);
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("GET"), Some("/metrics")) => {
                    let body = render();
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
                (Some("GET"), Some(_)) => {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                }
                _ => "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned(),
            }
            .into_bytes()
        });
    }
}

/// A metric family over sessions: name, help text, and how to read the value.
type Family<T> = (&'static str, &'static str, fn(&SessionReport) -> T);

/// Escapes a label value (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Renders the exposition text.
pub fn render(
    status: &StatusReport,
    sessions: &[SessionReport],
    servers: &[ServerCounterView<'_>],
) -> String {
    let mut out = String::new();
    let gauges: [(&str, &str, f64); 8] = [
        (
            "meridian_synchronized",
            "1 when the system clock is synchronized",
            status.synchronized as u8 as f64,
        ),
        (
            "meridian_stratum",
            "stratum of the system clock",
            status.stratum as f64,
        ),
        (
            "meridian_offset_seconds",
            "offset of the last clock update (server - local)",
            status.offset_ms / 1e3,
        ),
        (
            "meridian_root_delay_seconds",
            "round-trip delay to the primary reference",
            status.root_delay_ms / 1e3,
        ),
        (
            "meridian_root_dispersion_seconds",
            "maximum error relative to the primary reference",
            status.root_dispersion_ms / 1e3,
        ),
        (
            "meridian_frequency_ppm",
            "frequency correction applied to the clock",
            status.frequency_ppm,
        ),
        (
            "meridian_poll_log2",
            "system poll interval, log2 seconds",
            status.poll_log2 as f64,
        ),
        (
            "meridian_precision_log2",
            "clock precision, log2 seconds",
            status.precision_log2 as f64,
        ),
    ];
    for (name, help, value) in gauges {
        family(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let per_session: [Family<f64>; 7] = [
        (
            "meridian_association_reach",
            "reachability register (0-255)",
            |s| s.reach as f64,
        ),
        (
            "meridian_association_stratum",
            "stratum the source advertises",
            |s| s.stratum as f64,
        ),
        (
            "meridian_association_offset_seconds",
            "filtered offset (server - local)",
            |s| s.offset_ms / 1e3,
        ),
        (
            "meridian_association_delay_seconds",
            "filtered round-trip delay",
            |s| s.delay_ms / 1e3,
        ),
        (
            "meridian_association_dispersion_seconds",
            "peer dispersion",
            |s| s.dispersion_ms / 1e3,
        ),
        (
            "meridian_association_poll_seconds",
            "poll interval in use",
            |s| s.poll_s as f64,
        ),
        (
            "meridian_association_selected",
            "1 for the system peer",
            |s| s.flags.iter().any(|f| f == "master") as u8 as f64,
        ),
    ];
    for (name, help, value) in per_session {
        family(&mut out, name, "gauge", help);
        for s in sessions {
            let _ = writeln!(
                out,
                "{name}{{source=\"{}\",vpn_instance=\"{}\",mode=\"{}\"}} {}",
                label(&s.source),
                label(s.vpn_instance.as_deref().unwrap_or("")),
                label(&s.local_mode),
                value(s)
            );
        }
    }
    let counters: [Family<u64>; 3] = [
        (
            "meridian_association_packets_sent_total",
            "requests sent",
            |s| s.verbose.packets_sent,
        ),
        (
            "meridian_association_packets_received_total",
            "genuine replies received",
            |s| s.verbose.packets_received,
        ),
        (
            "meridian_association_packets_rejected_total",
            "replies rejected by the packet tests",
            |s| s.verbose.packets_rejected,
        ),
    ];
    for (name, help, value) in counters {
        family(&mut out, name, "counter", help);
        for s in sessions {
            let _ = writeln!(
                out,
                "{name}{{source=\"{}\",vpn_instance=\"{}\"}} {}",
                label(&s.source),
                label(s.vpn_instance.as_deref().unwrap_or("")),
                value(s)
            );
        }
    }
    family(
        &mut out,
        "meridian_server_requests_total",
        "counter",
        "datagrams received on server sockets",
    );
    for c in servers {
        let _ = writeln!(
            out,
            "meridian_server_requests_total{{vpn_instance=\"{}\"}} {}",
            label(c.vpn_instance.unwrap_or("")),
            c.received
        );
    }
    family(
        &mut out,
        "meridian_server_responses_total",
        "counter",
        "replies sent",
    );
    for c in servers {
        let _ = writeln!(
            out,
            "meridian_server_responses_total{{vpn_instance=\"{}\"}} {}",
            label(c.vpn_instance.unwrap_or("")),
            c.answered
        );
    }
    family(
        &mut out,
        "meridian_server_drops_total",
        "counter",
        "requests not answered, by reason",
    );
    for c in servers {
        for (reason, n) in &c.dropped {
            let _ = writeln!(
                out,
                "meridian_server_drops_total{{vpn_instance=\"{}\",reason=\"{}\"}} {n}",
                label(c.vpn_instance.unwrap_or("")),
                label(reason)
            );
        }
    }
    family(
        &mut out,
        "meridian_server_rate_limit_entries",
        "gauge",
        "clients held in the rate-limit tables",
    );
    for c in servers {
        if let Some(n) = c.rate_limit_entries {
            let _ = writeln!(
                out,
                "meridian_server_rate_limit_entries{{vpn_instance=\"{}\"}} {n}",
                label(c.vpn_instance.unwrap_or(""))
            );
        }
    }
    out
}
