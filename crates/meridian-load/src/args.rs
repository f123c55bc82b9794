//! Command line of `meridian-load`: parsing, bounds, and the address ranges it may use.

use crate::mix::{MixSpec, DEFAULT_SECRET};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Highest request rate accepted (packets per second).
pub const MAX_RATE: u64 = 5_000_000;
/// Longest run accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Most sockets (source ports) accepted.
pub const MAX_SOURCES: usize = 4096;
/// Most distinct source addresses accepted.
pub const MAX_CLIENTS: u64 = 1 << 20;
/// Most requests in one run, whatever the rate and duration.
pub const MAX_PACKETS: u64 = 100_000_000;

pub const USAGE: &str = "\
usage: meridian-load --target ADDR:PORT --rate N --duration SECS [options]

Sends NTP client (mode 3) requests at N per second for SECS seconds (both required and
bounded), then waits --drain-ms for late answers, and reports offered and answered rates,
loss, response latency (send to the kernel's receive timestamp of the answer) and its own
CPU time. Targets: 127.0.0.0/8, ::1, 198.18.0.0/15, 2001:2::/48 only.

options:
  --sources K          sockets (source ports) to send from, round robin by chunks of up to
                       16 requests sent in one system call (default 1)
  --source-base ADDR   socket i binds to ADDR+i (addresses added to an interface, or covered
                       by a local route); same ranges as the target
  --prefix P           the source addresses must stay inside ADDR/P (default 24 / 64)
  --clients N          with --source-base: N distinct source addresses ADDR..ADDR+N-1, chosen
                       per request (IP_PKTINFO, IP_FREEBIND) from K wildcard-bound sockets;
                       the addresses must be local (e.g. `ip route add local PREFIX dev lo`)
  --max-packets M      stop after M requests (default rate x duration)
  --drain-ms MS        wait for answers after the last request (default 500, at most 10000)
  --json               print the report as JSON
  --mix W              soak mix instead of plain requests, weights per family, e.g.
                       valid=60,malformed=25,auth=10,bad-auth=5; malformed = random bytes
                       (0..1100), truncated headers, bad versions, mode 6 and mode 7 probes,
                       extension-field garbage, 1400-byte datagrams, in equal parts
  --seed N             seed of the mix (default 1): same seed, same datagrams
  --key-id N           key id of the authenticated requests (default 1, MD5)
  --key-secret S       its secret as in a keys file, ASCII or HEX:... (default SoakTestKey)";

/// A validated command line.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub target: SocketAddr,
    pub rate: u64,
    pub duration: Duration,
    pub sources: usize,
    pub source_base: Option<IpAddr>,
    pub prefix: Option<u8>,
    /// Distinct source addresses chosen per packet (None: one address per socket).
    pub clients: Option<u64>,
    pub max_packets: u64,
    pub drain: Duration,
    pub json: bool,
    /// `--mix`: what to send instead of plain requests.
    pub mix: Option<MixSpec>,
}

/// Whether `addr` is in a range this tool may send to or from: loopback, or the
/// benchmarking ranges 198.18.0.0/15 and 2001:2::/48.
pub fn allowed(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            o[0] == 127 || (o[0] == 198 && (o[1] & 0xfe) == 18)
        }
        IpAddr::V6(a) => {
            if a == Ipv6Addr::LOCALHOST {
                return true;
            }
            let s = a.segments();
            s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0
        }
    }
}

/// The `index`-th address after `base` (`base + index`), if it stays inside `base/prefix`.
pub fn nth_address(base: IpAddr, prefix: u8, index: u64) -> Option<IpAddr> {
    match base {
        IpAddr::V4(b) => {
            let b = u32::from(b);
            let host_bits = 32u32.checked_sub(u32::from(prefix))?;
            let mask: u64 = if host_bits == 32 {
                0
            } else {
                !((1u64 << host_bits) - 1) & 0xffff_ffff
            };
            let a = u64::from(b).checked_add(index)?;
            (a <= 0xffff_ffff && (a & mask) == (u64::from(b) & mask))
                .then(|| IpAddr::V4(Ipv4Addr::from(a as u32)))
        }
        IpAddr::V6(b) => {
            let b = u128::from(b);
            let host_bits = 128u32.checked_sub(u32::from(prefix))?;
            let mask: u128 = if host_bits == 128 {
                0
            } else {
                !((1u128 << host_bits) - 1)
            };
            let a = b.checked_add(u128::from(index))?;
            ((a & mask) == (b & mask)).then(|| IpAddr::V6(Ipv6Addr::from(a)))
        }
    }
}

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, name: &str) -> Result<&'a str, String> {
    it.next()
        .map(String::as_str)
        .ok_or_else(|| format!("{name} needs a value"))
}

fn number<T: std::str::FromStr>(s: &str, name: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{name}: not a number: {s}"))
}

/// Parses and checks the arguments (without the program name). `Err` carries the message.
pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut target = None;
    let mut rate = None;
    let mut duration = None;
    let mut sources = 1usize;
    let mut source_base = None;
    let mut prefix = None;
    let mut clients = None;
    let mut max_packets = None;
    let mut drain_ms = 500u64;
    let mut json = false;
    let mut mix = None;
    let mut seed = 1u64;
    let mut key_id = 1u32;
    let mut secret = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--target" => {
                let v = value(&mut it, arg)?;
                target = Some(
                    v.parse::<SocketAddr>()
                        .map_err(|_| format!("--target: want ADDR:PORT ([V6]:PORT), got {v}"))?,
                );
            }
            "--rate" => rate = Some(number::<u64>(value(&mut it, arg)?, arg)?),
            "--duration" => duration = Some(number::<f64>(value(&mut it, arg)?, arg)?),
            "--sources" => sources = number(value(&mut it, arg)?, arg)?,
            "--source-base" => {
                let v = value(&mut it, arg)?;
                source_base = Some(
                    v.parse::<IpAddr>()
                        .map_err(|_| format!("--source-base: not an address: {v}"))?,
                );
            }
            "--prefix" => prefix = Some(number::<u8>(value(&mut it, arg)?, arg)?),
            "--clients" => clients = Some(number::<u64>(value(&mut it, arg)?, arg)?),
            "--max-packets" => max_packets = Some(number::<u64>(value(&mut it, arg)?, arg)?),
            "--drain-ms" => drain_ms = number(value(&mut it, arg)?, arg)?,
            "--json" => json = true,
            "--mix" => mix = Some(MixSpec::parse_weights(value(&mut it, arg)?)?),
            "--seed" => seed = number(value(&mut it, arg)?, arg)?,
            "--key-id" => key_id = number(value(&mut it, arg)?, arg)?,
            "--key-secret" => secret = Some(MixSpec::parse_secret(value(&mut it, arg)?)?),
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    let target = target.ok_or("--target is required")?;
    if !allowed(target.ip()) {
        return Err(format!(
            "refusing target {}: only 127.0.0.0/8, ::1, 198.18.0.0/15 and 2001:2::/48",
            target.ip()
        ));
    }
    if target.port() == 0 {
        return Err("--target: port 0".into());
    }
    let rate = rate.ok_or("--rate is required (the run must be bounded)")?;
    if rate == 0 || rate > MAX_RATE {
        return Err(format!("--rate must be 1..={MAX_RATE}"));
    }
    let secs = duration.ok_or("--duration is required (the run must be bounded)")?;
    if !(secs > 0.0 && secs <= MAX_DURATION.as_secs_f64()) {
        return Err(format!(
            "--duration must be > 0 and <= {} s",
            MAX_DURATION.as_secs()
        ));
    }
    let duration = Duration::from_secs_f64(secs);
    if sources == 0 || sources > MAX_SOURCES {
        return Err(format!("--sources must be 1..={MAX_SOURCES}"));
    }
    let planned = (rate as f64 * secs).ceil() as u64;
    let max_packets = max_packets.unwrap_or(planned).min(planned);
    if max_packets == 0 || max_packets > MAX_PACKETS {
        return Err(format!("at most {MAX_PACKETS} requests in one run"));
    }
    if drain_ms > 10_000 {
        return Err("--drain-ms must be <= 10000".into());
    }
    if (prefix.is_some() || clients.is_some()) && source_base.is_none() {
        return Err("--prefix and --clients need --source-base".into());
    }
    if let Some(base) = source_base {
        if !allowed(base) || base.is_ipv4() != target.is_ipv4() {
            return Err(format!(
                "refusing --source-base {base}: same family as the target, and only \
                 127.0.0.0/8, ::1, 198.18.0.0/15 or 2001:2::/48"
            ));
        }
        let p = prefix.unwrap_or(if base.is_ipv4() { 24 } else { 64 });
        if p > if base.is_ipv4() { 32 } else { 128 } {
            return Err(format!("--prefix {p} too long"));
        }
        let count = clients.unwrap_or(sources as u64);
        if count == 0 || count > MAX_CLIENTS {
            return Err(format!("--clients must be 1..={MAX_CLIENTS}"));
        }
        match nth_address(base, p, count - 1) {
            Some(last) if allowed(last) => {}
            _ => {
                return Err(format!(
                "{count} addresses from {base} do not fit in {base}/{p} inside the allowed ranges"
            ))
            }
        }
        prefix = Some(p);
    }
    if mix.is_none() && secret.is_some() {
        return Err("--key-secret needs --mix".into());
    }
    let mix = mix.map(|w| MixSpec {
        valid: w[0],
        malformed: w[1],
        auth: w[2],
        bad_auth: w[3],
        seed,
        key_id,
        secret: secret.unwrap_or_else(|| DEFAULT_SECRET.as_bytes().to_vec()),
    });
    Ok(Options {
        target,
        rate,
        duration,
        sources,
        source_base,
        prefix,
        clients,
        max_packets,
        drain: Duration::from_millis(drain_ms),
        json,
        mix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn ranges() {
        for ok in [
            "127.0.0.1",
            "127.9.9.9",
            "198.18.0.1",
            "198.19.255.255",
            "::1",
            "2001:2::5",
        ] {
            assert!(allowed(ok.parse().unwrap()), "{ok}");
        }
        for bad in [
            "198.20.0.1",
            "198.17.255.255",
            "10.0.0.1",
            "8.8.8.8",
            "2001:2:1::1",
            "2001:db8::1",
            "::",
            "0.0.0.0",
        ] {
            assert!(!allowed(bad.parse().unwrap()), "{bad}");
        }
    }

    #[test]
    fn refuses_outside_targets_and_unbounded_runs() {
        assert!(parse(&args("--target 192.0.2.1:123 --rate 10 --duration 1")).is_err());
        assert!(parse(&args("--target 198.18.0.1:123 --rate 10")).is_err());
        assert!(parse(&args("--target 198.18.0.1:123 --duration 1")).is_err());
        assert!(parse(&args("--target 198.18.0.1:123 --rate 10 --duration 0")).is_err());
        assert!(parse(&args("--target 198.18.0.1:123 --rate 10 --duration 601")).is_err());
        assert!(parse(&args("--target 198.18.0.1:123 --rate 9999999 --duration 1")).is_err());
        let o = parse(&args("--target [2001:2::1]:123 --rate 10 --duration 2")).unwrap();
        assert_eq!(o.max_packets, 20);
        let o = parse(&args(
            "--target 198.18.0.1:123 --rate 10 --duration 2 --max-packets 5",
        ))
        .unwrap();
        assert_eq!(o.max_packets, 5);
    }

    #[test]
    fn source_addresses_stay_in_prefix_and_range() {
        let ok = parse(&args(
            "--target 198.18.0.1:123 --rate 1 --duration 1 --sources 10 --source-base 198.18.0.100",
        ))
        .unwrap();
        assert_eq!(ok.prefix, Some(24));
        // 198.18.0.250 + 9 leaves the /24.
        assert!(parse(&args(
            "--target 198.18.0.1:123 --rate 1 --duration 1 --sources 10 --source-base 198.18.0.250"
        ))
        .is_err());
        // 198.19.255.255 + 1 leaves 198.18.0.0/15 even with a short prefix.
        assert!(parse(&args(
            "--target 198.18.0.1:123 --rate 1 --duration 1 --sources 2 --source-base 198.19.255.255 --prefix 8"
        ))
        .is_err());
        assert!(parse(&args(
            "--target [2001:2::1]:123 --rate 1 --duration 1 --source-base 2001:2:0:1:: --clients 100000"
        ))
        .is_ok());
        assert!(parse(&args(
            "--target [2001:2::1]:123 --rate 1 --duration 1 --source-base 198.18.0.1"
        ))
        .is_err());
    }

    #[test]
    fn mix_options() {
        let o = parse(&args(
            "--target 198.18.0.1:123 --rate 10 --duration 1 --mix valid=3,auth=1 --seed 9 --key-secret HEX:01",
        ))
        .unwrap();
        let m = o.mix.unwrap();
        assert_eq!((m.valid, m.malformed, m.auth, m.bad_auth), (3, 0, 1, 0));
        assert_eq!((m.seed, m.key_id, m.secret), (9, 1, vec![1]));
        assert!(parse(&args(
            "--target 198.18.0.1:123 --rate 10 --duration 1 --mix x=1"
        ))
        .is_err());
        assert!(parse(&args(
            "--target 198.18.0.1:123 --rate 10 --duration 1 --key-secret a"
        ))
        .is_err());
        assert_eq!(
            parse(&args("--target 198.18.0.1:123 --rate 10 --duration 1"))
                .unwrap()
                .mix,
            None
        );
    }

    #[test]
    fn nth_address_arithmetic() {
        let b: IpAddr = "198.18.1.0".parse().unwrap();
        assert_eq!(
            nth_address(b, 24, 255),
            Some("198.18.1.255".parse().unwrap())
        );
        assert_eq!(nth_address(b, 24, 256), None);
        let b: IpAddr = "2001:2:0:1::".parse().unwrap();
        assert_eq!(
            nth_address(b, 64, 100_000),
            Some("2001:2:0:1::1:86a0".parse().unwrap())
        );
    }
}
