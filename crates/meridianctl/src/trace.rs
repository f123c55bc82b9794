//! `meridianctl trace`: walks from a server (by default this device's own daemon) up its
//! chain of synchronization sources with ordinary NTP client queries, as Comware's
//! `display ntp-service trace` does. Each answer names its source in the reference ID (an
//! IPv4 address below stratum 2); the walk stops at the primary reference (stratum 1), at a
//! local clock (127.127.x.x), at an unsynchronized server, on a loop, or on a timeout.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use meridian_proto::report::TraceHop;

use crate::error::CtlError;
use crate::query::{self, Exchange};

/// Why the walk ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// Reached the primary reference; its reference ID.
    Primary(String),
    /// The last server is synchronized to its local clock (127.127.1.u).
    LocalClock(String),
    /// The last server is not synchronized.
    Unsynchronized,
    /// The reference ID is not an address we can follow (an IPv6 hash, a code).
    Opaque(String),
    /// A server answered that was already in the chain.
    Loop(IpAddr),
    /// A server did not answer.
    Timeout(SocketAddr),
    TooManyHops,
}

/// Where to go next after a hop, or why to stop.
pub fn next_hop(hop: &TraceHop, seen: &[IpAddr]) -> Result<IpAddr, End> {
    if hop.stratum == 0 || hop.stratum >= 16 {
        return Err(End::Unsynchronized);
    }
    if hop.stratum == 1 {
        return Err(End::Primary(hop.reference_id.clone()));
    }
    let Ok(addr) = hop.reference_id.parse::<Ipv4Addr>() else {
        return Err(End::Opaque(hop.reference_id.clone()));
    };
    if addr.octets()[..2] == [127, 127] {
        return Err(End::LocalClock(hop.reference_id.clone()));
    }
    let ip = IpAddr::V4(addr);
    if seen.contains(&ip) {
        return Err(End::Loop(ip));
    }
    Ok(ip)
}

/// Walks the chain starting at `start`; every server is queried on `port`.
pub fn walk(
    start: SocketAddr,
    port: u16,
    timeout: Duration,
    max_hops: usize,
) -> Result<(Vec<TraceHop>, End), CtlError> {
    let mut hops = Vec::new();
    let mut seen = Vec::new();
    let mut server = start;
    loop {
        if hops.len() >= max_hops {
            return Ok((hops, End::TooManyHops));
        }
        let socket = query::connect(server)?;
        let report = match query::exchange(&socket, server, 4, timeout)? {
            Exchange::Answer { report, .. } => report,
            Exchange::Kiss(_) | Exchange::Timeout(_) | Exchange::Error(_) => {
                return Ok((hops, End::Timeout(server)))
            }
        };
        seen.push(server.ip());
        let hop = TraceHop {
            server: server.ip().to_string(),
            stratum: report.stratum,
            offset_ms: report.offset_ms,
            sync_distance_ms: report.root_delay_ms / 2.0
                + report.root_dispersion_ms
                + report.delay_ms / 2.0,
            reference_id: report.reference_id.clone(),
        };
        let next = next_hop(&hop, &seen);
        hops.push(hop);
        match next {
            Ok(ip) => server = SocketAddr::new(ip, port),
            Err(end) => return Ok((hops, end)),
        }
    }
}

/// Resolves `HOST[:PORT]` (default 127.0.0.1 and port `default_port`).
pub fn start_address(host: Option<&str>, default_port: u16) -> Result<SocketAddr, CtlError> {
    let (host, port) = match host {
        Some(text) => {
            let (h, p) = query::split_host_port(text)?;
            let explicit = text.ends_with(&format!(":{p}")) && !text.ends_with(']');
            (h, if explicit { p } else { default_port })
        }
        None => ("127.0.0.1".to_owned(), default_port),
    };
    (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| CtlError::failed(format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| CtlError::failed(format!("{host} has no address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(stratum: u8, refid: &str) -> TraceHop {
        TraceHop {
            server: "198.18.0.3".into(),
            stratum,
            offset_ms: 0.0,
            sync_distance_ms: 1.0,
            reference_id: refid.into(),
        }
    }

    #[test]
    fn where_the_walk_goes() {
        let seen = vec!["198.18.0.3".parse().unwrap()];
        assert_eq!(
            next_hop(&hop(3, "198.18.0.2"), &seen),
            Ok("198.18.0.2".parse().unwrap())
        );
        assert_eq!(
            next_hop(&hop(1, "LOCL"), &seen),
            Err(End::Primary("LOCL".into()))
        );
        assert_eq!(
            next_hop(&hop(2, "127.127.1.0"), &seen),
            Err(End::LocalClock("127.127.1.0".into()))
        );
        assert_eq!(next_hop(&hop(16, "INIT"), &seen), Err(End::Unsynchronized));
        assert_eq!(
            next_hop(&hop(3, "198.18.0.3"), &seen),
            Err(End::Loop("198.18.0.3".parse().unwrap()))
        );
        assert!(matches!(
            next_hop(&hop(3, "GPS"), &seen),
            Err(End::Opaque(_))
        ));
    }
}
