//! `meridianctl query`: a one-shot NTP client (mode 3 out, mode 4 in) that needs no daemon.
//!
//! Each request carries a random transmit timestamp from getrandom(2), never the local time,
//! so the request reveals nothing about our clock and the reply's origin field proves that
//! the answer belongs to it. T1 is read from CLOCK_REALTIME just before sending, T4 just after
//! receiving; offset and delay use the era-safe first-order differences of `NtpTimestamp`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meridian_proto::report::QueryReport;
use meridian_proto::time::{NtpDuration, NtpTimestamp};
use meridian_proto::wire::{self, Header, Leap, Mode};

use crate::args::QueryArgs;
use crate::error::CtlError;
use crate::netns;

/// The NTP port used when HOST has none.
pub const NTP_PORT: u16 = 123;

/// Splits `HOST`, `HOST:PORT`, a bare IPv6 address, or `[IPV6]:PORT` / `[IPV6]`.
pub fn split_host_port(text: &str) -> Result<(String, u16), CtlError> {
    let bad = || CtlError::usage(format!("`{text}` is not HOST[:PORT] or [IPV6]:PORT"));
    let port_of = |p: &str| p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad);
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        if host.is_empty() {
            return Err(bad());
        }
        return match after {
            "" => Ok((host.to_string(), NTP_PORT)),
            _ => Ok((
                host.to_string(),
                port_of(after.strip_prefix(':').ok_or_else(bad)?)?,
            )),
        };
    }
    if text.parse::<IpAddr>().is_ok() {
        return Ok((text.to_string(), NTP_PORT));
    }
    match text.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Err(bad()),
        Some((host, port)) if !host.is_empty() => Ok((host.to_string(), port_of(port)?)),
        Some(_) => Err(bad()),
        None if text.is_empty() => Err(bad()),
        None => Ok((text.to_string(), NTP_PORT)),
    }
}

/// Eight bytes from the kernel's random source.
pub fn random_u64() -> Result<u64, CtlError> {
    let mut buf = [0u8; 8];
    let mut filled = 0;
    while filled < buf.len() {
        let want = buf.len() - filled;
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), want, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(CtlError::failed(format!("getrandom: {e}")));
        }
        filled += n as usize;
    }
    Ok(u64::from_ne_bytes(buf))
}

/// The local clock (CLOCK_REALTIME) on the NTP timescale.
pub fn realtime_now() -> NtpTimestamp {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => NtpTimestamp::from_unix(d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let nanos = -(d.as_nanos().min(i64::MAX as u128) as i64);
            NtpTimestamp::from_unix(0, 0) + NtpDuration::from_nanos(nanos)
        }
    }
}

/// The 48-byte client request carrying `transmit` (random, not a time).
pub fn build_request(version: u8, transmit: NtpTimestamp) -> [u8; wire::HEADER_LEN] {
    let mut header = Header::new(Mode::Client);
    header.version = version;
    header.transmit_ts = transmit;
    header.to_bytes()
}

/// What one received datagram means for the query.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// A valid answer; `unsynchronized` when the server says it has no time (LI 3 or
    /// stratum 16).
    Answer {
        report: QueryReport,
        unsynchronized: bool,
    },
    /// A kiss-o'-death that belongs to our request; the server wants us to stop.
    Kiss { code: String },
    /// Not an answer to our request; keep waiting. The text names the failed check.
    Discard(&'static str),
}

/// Checks a datagram received from `from` after sending `sent` to `server` at `t1`
/// (received at `t4`) and computes offset and delay:
/// offset = ((T2 - T1) + (T3 - T4)) / 2, delay = (T4 - T1) - (T3 - T2).
pub fn evaluate(
    data: &[u8],
    from: SocketAddr,
    server: SocketAddr,
    sent: NtpTimestamp,
    t1: NtpTimestamp,
    t4: NtpTimestamp,
) -> Verdict {
    if from != server {
        return Verdict::Discard("from another address");
    }
    let Ok(packet) = wire::parse(data) else {
        return Verdict::Discard("malformed");
    };
    let h = packet.header;
    if h.mode != Mode::Server {
        return Verdict::Discard("not a server reply (mode 4)");
    }
    // Checked before anything else in the reply is believed, a kiss-o'-death included.
    if h.origin_ts != sent {
        return Verdict::Discard("origin does not match our request");
    }
    if let Some(code) = h.kiss_code() {
        return Verdict::Kiss {
            code: code.display(0),
        };
    }
    if h.transmit_ts.is_zero() || h.receive_ts.is_zero() {
        return Verdict::Discard("zero receive or transmit timestamp");
    }
    let (t2, t3) = (h.receive_ts, h.transmit_ts);
    let offset = NtpDuration::from_bits(((t2 - t1).to_bits() / 2) + ((t3 - t4).to_bits() / 2));
    let delay = (t4 - t1) - (t3 - t2);
    let unsynchronized = h.leap == Leap::Unsynchronized || h.stratum >= 16;
    // ASCII codes (LOCL, GPS, INIT) are shown as text for stratum 1 and 16.
    let refid_stratum = if h.stratum >= 16 { 0 } else { h.stratum };
    Verdict::Answer {
        report: QueryReport {
            server: server.ip().to_string(),
            stratum: h.stratum,
            reference_id: h.reference_id.display(refid_stratum),
            leap: h.leap.as_str().to_string(),
            offset_ms: offset.to_seconds() * 1e3,
            delay_ms: delay.to_seconds() * 1e3,
            root_delay_ms: h.root_delay.to_seconds() * 1e3,
            root_dispersion_ms: h.root_dispersion.to_seconds() * 1e3,
            version: h.version,
            mode: h.mode.as_str().to_string(),
        },
        unsynchronized,
    }
}

/// The one-line plain form of an answer.
pub fn format_answer(report: &QueryReport) -> String {
    format!(
        "server {}, stratum {}, offset {:+.6} s, delay {:.6} s, refid {}, leap {}",
        report.server,
        report.stratum,
        report.offset_ms / 1e3,
        report.delay_ms / 1e3,
        report.reference_id,
        report.leap
    )
}

/// Outcome of one request.
enum Outcome {
    Answered,
    Kissed,
    Failed,
}

/// Runs the verb: resolves, sends `--count` requests, prints each answer. Exit status 0 if
/// at least one answer came back, 1 if none did or a kiss-o'-death was received.
pub fn run(args: &QueryArgs) -> Result<(), CtlError> {
    let (host, port) = split_host_port(&args.server)?;
    if let Some(name) = &args.vpn_instance {
        netns::enter(name)?;
    }
    let server = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| CtlError::failed(format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| CtlError::failed(format!("{host} has no address")))?;
    let socket = connect(server)?;
    let timeout = Duration::from_secs_f64(args.timeout);
    let interval = Duration::from_secs_f64(args.interval);

    let mut answered = false;
    let mut kissed = false;
    for i in 0..args.count {
        let started = Instant::now();
        match query_once(&socket, server, args, timeout)? {
            Outcome::Answered => answered = true,
            Outcome::Kissed => {
                kissed = true;
                break;
            }
            Outcome::Failed => {}
        }
        if i + 1 < args.count {
            std::thread::sleep(interval.saturating_sub(started.elapsed()));
        }
    }
    if kissed {
        Err(CtlError::failed("stopped: the server sent a kiss-o'-death"))
    } else if answered {
        Ok(())
    } else {
        Err(CtlError::failed(format!("no answer from {server}")))
    }
}

/// What one request brought back.
pub enum Exchange {
    Answer {
        report: QueryReport,
        unsynchronized: bool,
    },
    Kiss(String),
    /// Nothing valid before the timeout; the last discarded reply's reason, if any.
    Timeout(Option<&'static str>),
    Error(String),
}

/// Sends one request with a random transmit timestamp on a connected socket and waits up to
/// `timeout` for the answer that matches it.
pub fn exchange(
    socket: &UdpSocket,
    server: SocketAddr,
    version: u8,
    timeout: Duration,
) -> Result<Exchange, CtlError> {
    let sent = NtpTimestamp::from_bits(random_u64()?);
    let request = build_request(version, sent);
    let deadline = Instant::now() + timeout;
    let t1 = realtime_now();
    if let Err(e) = socket.send(&request) {
        return Ok(Exchange::Error(format!("send failed: {e}")));
    }
    let mut discarded: Option<&'static str> = None;
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Exchange::Timeout(discarded));
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| CtlError::failed(format!("socket: {e}")))?;
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Ok(Exchange::Error(e.to_string())),
        };
        let t4 = realtime_now();
        match evaluate(&buf[..len], from, server, sent, t1, t4) {
            Verdict::Answer {
                report,
                unsynchronized,
            } => {
                return Ok(Exchange::Answer {
                    report,
                    unsynchronized,
                })
            }
            Verdict::Kiss { code } => return Ok(Exchange::Kiss(code)),
            Verdict::Discard(why) => discarded = Some(why),
        }
    }
}

/// A UDP socket connected to `server`, from an ephemeral port.
pub fn connect(server: SocketAddr) -> Result<UdpSocket, CtlError> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal address")
    } else {
        "[::]:0".parse().expect("literal address")
    };
    UdpSocket::bind(bind)
        .and_then(|s| s.connect(server).map(|()| s))
        .map_err(|e| CtlError::failed(format!("cannot open a socket to {server}: {e}")))
}

/// Sends one request and waits for its answer; prints what happened.
fn query_once(
    socket: &UdpSocket,
    server: SocketAddr,
    args: &QueryArgs,
    timeout: Duration,
) -> Result<Outcome, CtlError> {
    match exchange(socket, server, args.version, timeout)? {
        Exchange::Answer {
            report,
            unsynchronized,
        } => {
            if args.json {
                let line = serde_json::to_string(&report)
                    .map_err(|e| CtlError::failed(format!("json: {e}")))?;
                println!("{line}");
            } else {
                println!("{}", format_answer(&report));
            }
            if unsynchronized {
                eprintln!("query {server}: warning: the server is not synchronized");
            }
            Ok(Outcome::Answered)
        }
        Exchange::Kiss(code) => {
            eprintln!("query {server}: kiss-o'-death {code}");
            Ok(Outcome::Kissed)
        }
        Exchange::Timeout(discarded) => {
            let why = discarded
                .map(|d| format!(" (discarded a reply: {d})"))
                .unwrap_or_default();
            eprintln!(
                "query {server}: no valid answer within {} s{why}",
                timeout.as_secs_f64()
            );
            Ok(Outcome::Failed)
        }
        Exchange::Error(e) => {
            eprintln!("query {server}: {e}");
            Ok(Outcome::Failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_proto::wire::ReferenceId;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_port_forms() {
        let ok = |t: &str| split_host_port(t).unwrap();
        assert_eq!(ok("198.18.0.1"), ("198.18.0.1".into(), 123));
        assert_eq!(ok("198.18.0.1:1123"), ("198.18.0.1".into(), 1123));
        assert_eq!(ok("ntp.example:9"), ("ntp.example".into(), 9));
        assert_eq!(ok("2001:2::1"), ("2001:2::1".into(), 123));
        assert_eq!(ok("[2001:2::1]:1123"), ("2001:2::1".into(), 1123));
        assert_eq!(ok("[2001:2::1]"), ("2001:2::1".into(), 123));
        for bad in [
            "", ":123", "h:", "h:0", "h:70000", "[::1", "[::1]x", "[]:1", "a:b:c",
        ] {
            assert_eq!(split_host_port(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn request_is_mode_3_with_our_transmit_only() {
        let xmt = NtpTimestamp::from_bits(0x0123_4567_89ab_cdef);
        let bytes = build_request(4, xmt);
        let h = wire::parse(&bytes).unwrap().header;
        assert_eq!(h.mode, Mode::Client);
        assert_eq!(h.version, 4);
        assert_eq!(h.transmit_ts, xmt);
        assert!(h.origin_ts.is_zero() && h.receive_ts.is_zero() && h.reference_ts.is_zero());
    }

    #[test]
    fn random_values_differ() {
        assert_ne!(random_u64().unwrap(), random_u64().unwrap());
    }

    fn reply(sent: NtpTimestamp, t2: NtpTimestamp, t3: NtpTimestamp) -> Header {
        let mut h = Header::new(Mode::Server);
        h.leap = Leap::None;
        h.stratum = 2;
        h.reference_id = ReferenceId([198, 18, 0, 1]);
        h.root_delay = NtpDuration::from_seconds(0.5);
        h.origin_ts = sent;
        h.receive_ts = t2;
        h.transmit_ts = t3;
        h
    }

    /// A server 1 s ahead, 10 ms each way, 2 ms processing, straddling the 2036 rollover.
    #[test]
    fn offset_and_delay_across_the_era() {
        let srv = addr("198.18.0.1:123");
        let sent = NtpTimestamp::from_bits(0xdead_beef_0000_0001);
        let t1 = NtpTimestamp::from_unix(2_085_978_496 - 1, 0);
        let ahead = NtpDuration::ONE_SECOND;
        let ms = |n: f64| NtpDuration::from_seconds(n / 1e3);
        let t2 = t1 + ahead + ms(10.0);
        let t3 = t2 + ms(2.0);
        let t4 = t3 - ahead + ms(10.0);
        let bytes = reply(sent, t2, t3).to_bytes();
        let Verdict::Answer {
            report,
            unsynchronized,
        } = evaluate(&bytes, srv, srv, sent, t1, t4)
        else {
            panic!("rejected")
        };
        assert!(!unsynchronized);
        assert!((report.offset_ms - 1000.0).abs() < 1e-3, "{report:?}");
        assert!((report.delay_ms - 20.0).abs() < 1e-3, "{report:?}");
        assert_eq!(report.reference_id, "198.18.0.1");
        assert_eq!(report.root_delay_ms, 500.0);
        assert_eq!(report.mode, "server");
        assert_eq!(
            format_answer(&report),
            "server 198.18.0.1, stratum 2, offset +1.000000 s, delay 0.020000 s, \
             refid 198.18.0.1, leap none"
        );
    }

    #[test]
    fn bogus_replies_are_discarded() {
        let srv = addr("127.0.0.1:123");
        let sent = NtpTimestamp::from_bits(42);
        let t = NtpTimestamp::from_unix(1_767_225_600, 0);
        let good = reply(sent, t, t);
        let check = |h: Header, from: &str| evaluate(&h.to_bytes(), addr(from), srv, sent, t, t);
        assert!(matches!(
            check(good, "127.0.0.1:123"),
            Verdict::Answer { .. }
        ));
        assert!(matches!(check(good, "127.0.0.2:123"), Verdict::Discard(_)));
        let mut wrong_origin = good;
        wrong_origin.origin_ts = t;
        assert!(matches!(
            check(wrong_origin, "127.0.0.1:123"),
            Verdict::Discard(_)
        ));
        let mut wrong_mode = good;
        wrong_mode.mode = Mode::SymmetricPassive;
        assert!(matches!(
            check(wrong_mode, "127.0.0.1:123"),
            Verdict::Discard(_)
        ));
        let mut zero = good;
        zero.transmit_ts = NtpTimestamp::ZERO;
        assert!(matches!(check(zero, "127.0.0.1:123"), Verdict::Discard(_)));
        let short = &good.to_bytes()[..40];
        assert!(matches!(
            evaluate(short, srv, srv, sent, t, t),
            Verdict::Discard(_)
        ));
    }

    #[test]
    fn kiss_and_unsynchronized() {
        let srv = addr("127.0.0.1:123");
        let sent = NtpTimestamp::from_bits(7);
        let t = NtpTimestamp::from_unix(1_767_225_600, 0);
        let mut kod = reply(sent, t, t);
        kod.stratum = 0;
        kod.leap = Leap::Unsynchronized;
        kod.reference_id = ReferenceId::KISS_RATE;
        assert_eq!(
            evaluate(&kod.to_bytes(), srv, srv, sent, t, t),
            Verdict::Kiss {
                code: "RATE".into()
            }
        );
        // A KoD that does not echo our transmit timestamp could be spoofed: ignored.
        kod.origin_ts = NtpTimestamp::from_bits(8);
        assert!(matches!(
            evaluate(&kod.to_bytes(), srv, srv, sent, t, t),
            Verdict::Discard(_)
        ));
        let mut unsync = reply(sent, t, t);
        unsync.stratum = 16;
        unsync.leap = Leap::Unsynchronized;
        unsync.reference_id = ReferenceId::INIT;
        let Verdict::Answer {
            report,
            unsynchronized,
        } = evaluate(&unsync.to_bytes(), srv, srv, sent, t, t)
        else {
            panic!("rejected")
        };
        assert!(unsynchronized);
        assert_eq!(report.leap, "unsynchronized");
        assert_eq!(report.reference_id, "INIT");
    }
}
