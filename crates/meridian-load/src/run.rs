//! The measurement: paced sending of mode 3 requests over many sockets from one thread,
//! poll(2) for the answers in between, and the report (rates, loss, latency percentiles);
//! with `--mix`, the datagrams come from [`Mixer`] and answers are counted per kind.

use crate::args::{nth_address, Options};
use crate::mix::{empty_counts, kind_of, KindCount, Mixer, KINDS, MAX_DATAGRAM};
use crate::net::{poll_readable, wildcard, Source};
use serde::Serialize;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Requests sent back to back before looking for answers.
const SEND_BATCH: u64 = 64;
/// Shortest sleep between bursts of requests: below it the generator would spin, taking the
/// CPU time the kernel needs to move the packets; requests then leave in bursts of
/// rate x this.
const MIN_SLEEP: Duration = Duration::from_micros(200);
/// Answers read from one socket before looking at the others.
const RECV_BATCH: usize = 256;
/// NTP header length.
const HEADER_LEN: usize = 48;

/// A client request (LI 0, version 4, mode 3) whose transmit timestamp carries `stamp`,
/// which a server copies into the origin timestamp of its answer.
pub fn request(stamp: u64) -> [u8; HEADER_LEN] {
    let mut p = [0u8; HEADER_LEN];
    p[0] = 0x23;
    p[40..48].copy_from_slice(&stamp.to_be_bytes());
    p
}

/// What an answer is.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// A server reply (mode 4) to the request stamped with this value.
    Reply(u64),
    /// A kiss-o'-death (mode 4, stratum 0), e.g. RATE.
    Kiss,
    /// Anything else.
    Invalid,
}

/// Classifies a received datagram.
pub fn classify(data: &[u8]) -> Answer {
    if data.len() < HEADER_LEN || data[0] & 7 != 4 {
        return Answer::Invalid;
    }
    if data[1] == 0 {
        return Answer::Kiss;
    }
    let mut origin = [0u8; 8];
    origin.copy_from_slice(&data[24..32]);
    match u64::from_be_bytes(origin) {
        0 => Answer::Invalid,
        stamp => Answer::Reply(stamp),
    }
}

/// Response latency percentiles, microseconds.
#[derive(Debug, Serialize, PartialEq)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// Nearest-rank percentiles of latencies in nanoseconds (sorts `ns`); None when empty.
pub fn percentiles(ns: &mut [u64]) -> Option<Latency> {
    if ns.is_empty() {
        return None;
    }
    ns.sort_unstable();
    let rank = |p: f64| {
        let k = ((p / 100.0) * ns.len() as f64).ceil() as usize;
        ns[k.clamp(1, ns.len()) - 1] as f64 / 1000.0
    };
    Some(Latency {
        p50_us: rank(50.0),
        p99_us: rank(99.0),
        max_us: *ns.last().unwrap_or(&0) as f64 / 1000.0,
    })
}

/// The result of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub target: String,
    pub requested_rate_pps: u64,
    /// Time from the first to the last request, seconds.
    pub send_duration_s: f64,
    pub sources: usize,
    /// Distinct source addresses (0: the sockets' own addresses).
    pub client_addresses: u64,
    pub sent: u64,
    /// Requests not sent because a socket's send buffer was full.
    pub send_blocked: u64,
    pub offered_pps: f64,
    pub answered: u64,
    pub answered_pps: f64,
    pub kisses: u64,
    pub invalid: u64,
    /// 1 - answered / sent.
    pub loss: f64,
    pub latency: Option<Latency>,
    /// With `--mix`: the seed and what was sent and answered per kind. `answered` and
    /// `loss` then count only the kinds a server should answer (valid and auth).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mix: Option<MixReport>,
}

/// The per-kind part of a mixed run's report.
#[derive(Debug, Serialize)]
pub struct MixReport {
    pub seed: u64,
    /// Datagrams of the kinds a correct server answers (valid, auth).
    pub expected_replies: u64,
    pub kinds: Vec<KindCount>,
}

struct Tally {
    answered: u64,
    kisses: u64,
    invalid: u64,
    latencies: Vec<u64>,
    /// With `--mix`: counts per kind, in `KINDS` order.
    kinds: Option<Vec<KindCount>>,
}

/// Length of a reply carrying only a crypto-NAK.
const CRYPTO_NAK_LEN: usize = HEADER_LEN + 4;

fn drain(sources: &[Source], ready: &[usize], start: Instant, t: &mut Tally) -> io::Result<()> {
    let mut buf = [0u8; 2048];
    for &i in ready {
        for _ in 0..RECV_BATCH {
            let Some(n) = sources[i].recv(&mut buf)? else {
                break;
            };
            let n = n.min(buf.len());
            match classify(&buf[..n]) {
                Answer::Reply(stamp) if t.kinds.is_some() => {
                    let kind = kind_of(stamp);
                    if let Some(c) = t.kinds.as_mut().map(|k| &mut k[kind.index()]) {
                        if n == CRYPTO_NAK_LEN {
                            c.crypto_naks += 1;
                        } else {
                            c.replies += 1;
                        }
                    }
                    if kind.expects_answer() && n != CRYPTO_NAK_LEN {
                        let now = start.elapsed().as_nanos() as u64 + 1;
                        t.answered += 1;
                        if stamp <= now {
                            t.latencies.push(now - stamp);
                        }
                    }
                }
                Answer::Reply(stamp) => {
                    let now = start.elapsed().as_nanos() as u64 + 1;
                    t.answered += 1;
                    if stamp <= now {
                        t.latencies.push(now - stamp);
                    }
                }
                Answer::Kiss => t.kisses += 1,
                Answer::Invalid => t.invalid += 1,
            }
        }
    }
    Ok(())
}

/// Opens the sockets the options ask for; returns them and whether requests choose their
/// source address themselves.
fn open_sources(o: &Options) -> io::Result<(Vec<Source>, bool)> {
    let per_packet = o.clients.is_some();
    let mut sources = Vec::with_capacity(o.sources);
    for i in 0..o.sources {
        let ip = match (o.source_base, per_packet) {
            (Some(base), false) => nth_address(base, o.prefix.unwrap_or(0), i as u64)
                .ok_or_else(|| io::Error::other("source address outside its prefix"))?,
            _ => wildcard(o.target),
        };
        let s = Source::open(SocketAddr::new(ip, 0), per_packet)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind a socket to {ip}: {e}")))?;
        sources.push(s);
    }
    Ok((sources, per_packet))
}

/// Runs the load as `o` says and measures the answers.
pub fn run(o: &Options) -> io::Result<Report> {
    let (sources, per_packet) = open_sources(o)?;
    let clients = o.clients.unwrap_or(0);
    let mut tally = Tally {
        answered: 0,
        kisses: 0,
        invalid: 0,
        latencies: Vec::with_capacity(o.max_packets.min(1 << 24) as usize),
        kinds: o.mix.as_ref().map(|_| empty_counts()),
    };
    let mut mixer = o.mix.as_ref().map(Mixer::new);
    let mut datagram = [0u8; MAX_DATAGRAM];
    let mut fds = Vec::with_capacity(sources.len());
    let mut ready = Vec::with_capacity(sources.len());
    let start = Instant::now();
    let send_end = start + o.duration;
    let interval = 1.0 / o.rate as f64;
    let (mut attempted, mut sent, mut blocked) = (0u64, 0u64, 0u64);
    let mut last_send = start;
    while attempted < o.max_packets {
        let now = Instant::now();
        if now >= send_end {
            break;
        }
        let elapsed = (now - start).as_secs_f64();
        let due = ((elapsed * o.rate as f64) as u64 + 1).min(o.max_packets);
        let batch_end = due.min(attempted + SEND_BATCH);
        while attempted < batch_end {
            let socket = &sources[(attempted % sources.len() as u64) as usize];
            let from: Option<IpAddr> = match (per_packet, o.source_base) {
                (true, Some(base)) => nth_address(base, o.prefix.unwrap_or(0), attempted % clients),
                _ => None,
            };
            let stamp = start.elapsed().as_nanos() as u64 + 1;
            let (data, kind) = match mixer.as_mut() {
                Some(m) => {
                    let (len, kind) = m.next(stamp, &mut datagram);
                    (&datagram[..len], Some(kind))
                }
                None => {
                    datagram[..HEADER_LEN].copy_from_slice(&request(stamp));
                    (&datagram[..HEADER_LEN], None)
                }
            };
            if socket.send(data, o.target, from)? {
                sent += 1;
                if let (Some(kind), Some(k)) = (kind, tally.kinds.as_mut()) {
                    k[kind.index()].datagrams += 1;
                }
            } else {
                blocked += 1;
            }
            attempted += 1;
        }
        last_send = Instant::now();
        let wait = if attempted < due {
            Duration::ZERO
        } else {
            let next = start + Duration::from_secs_f64(attempted as f64 * interval);
            next.saturating_duration_since(last_send)
                .max(MIN_SLEEP)
                .min(send_end.saturating_duration_since(last_send))
        };
        poll_readable(&sources, &mut fds, wait, &mut ready)?;
        drain(&sources, &ready, start, &mut tally)?;
    }
    let send_duration = last_send
        .duration_since(start)
        .max(Duration::from_micros(1));
    let drain_end = last_send + o.drain;
    let expected = match &tally.kinds {
        Some(k) => KINDS
            .iter()
            .zip(k)
            .filter(|(kind, _)| kind.expects_answer())
            .map(|(_, c)| c.datagrams)
            .sum(),
        None => sent,
    };
    loop {
        let now = Instant::now();
        if now >= drain_end || tally.answered + tally.kisses >= expected {
            break;
        }
        poll_readable(&sources, &mut fds, drain_end - now, &mut ready)?;
        drain(&sources, &ready, start, &mut tally)?;
    }
    let secs = send_duration.as_secs_f64();
    Ok(Report {
        target: o.target.to_string(),
        requested_rate_pps: o.rate,
        send_duration_s: secs,
        sources: sources.len(),
        client_addresses: clients,
        sent,
        send_blocked: blocked,
        offered_pps: sent as f64 / secs,
        answered: tally.answered,
        answered_pps: tally.answered as f64 / secs,
        kisses: tally.kisses,
        invalid: tally.invalid,
        loss: if expected == 0 {
            0.0
        } else {
            1.0 - (tally.answered.min(expected) as f64 / expected as f64)
        },
        latency: percentiles(&mut tally.latencies),
        mix: tally.kinds.take().map(|kinds| MixReport {
            seed: o.mix.as_ref().map_or(0, |m| m.seed),
            expected_replies: expected,
            kinds,
        }),
    })
}

/// The report as text, one field per line.
pub fn text(r: &Report) -> String {
    let lat = match &r.latency {
        Some(l) => format!(
            "latency      p50 {:.1} us, p99 {:.1} us, max {:.1} us",
            l.p50_us, l.p99_us, l.max_us
        ),
        None => "latency      (no answers)".to_owned(),
    };
    format!(
        "target       {}\n\
         sources      {} sockets{}\n\
         requested    {} pps for {:.2} s\n\
         offered      {:.0} pps ({} sent, {} blocked)\n\
         answered     {:.0} pps ({} answers, {} kisses, {} invalid)\n\
         loss         {:.2} %\n\
         {lat}\n{mix}",
        r.target,
        r.sources,
        if r.client_addresses > 0 {
            format!(", {} source addresses", r.client_addresses)
        } else {
            String::new()
        },
        r.requested_rate_pps,
        r.send_duration_s,
        r.offered_pps,
        r.sent,
        r.send_blocked,
        r.answered_pps,
        r.answered,
        r.kisses,
        r.invalid,
        r.loss * 100.0,
        mix = r.mix.as_ref().map_or(String::new(), mix_text),
    )
}

/// The per-kind lines of a mixed run.
fn mix_text(m: &MixReport) -> String {
    let mut out = format!(
        "mix          seed {}, {} datagrams should be answered\n",
        m.seed, m.expected_replies
    );
    for k in &m.kinds {
        out.push_str(&format!(
            "  {:<18} {:>10} sent {:>10} replies {:>8} crypto-NAKs\n",
            k.kind, k.datagrams, k.replies, k.crypto_naks
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_reply_layout() {
        let req = request(0x0102_0304_0506_0708);
        assert_eq!(req[0], 0x23);
        let mut reply = [0u8; 48];
        reply[0] = 0x24;
        reply[1] = 1;
        reply[24..32].copy_from_slice(&req[40..48]);
        assert_eq!(classify(&reply), Answer::Reply(0x0102_0304_0506_0708));
        reply[1] = 0;
        assert_eq!(classify(&reply), Answer::Kiss);
        assert_eq!(classify(&req), Answer::Invalid);
        assert_eq!(classify(&reply[..47]), Answer::Invalid);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u64> = (1..=100).rev().map(|x| x * 1000).collect();
        let l = percentiles(&mut v).unwrap();
        assert_eq!(l.p50_us, 50.0);
        assert_eq!(l.p99_us, 99.0);
        assert_eq!(l.max_us, 100.0);
        assert_eq!(percentiles(&mut []), None);
        let l = percentiles(&mut [7000]).unwrap();
        assert_eq!((l.p50_us, l.p99_us, l.max_us), (7.0, 7.0, 7.0));
    }
}
