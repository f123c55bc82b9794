//! The measurement: paced sending of mode 3 requests over many sockets from one thread, in
//! batches (one sendmmsg per socket and burst), sleeping between bursts and then reading
//! whatever answers arrived (recvmmsg on the sockets epoll names), and the report (rates,
//! loss, latency percentiles, the generator's own CPU time); with `--mix`, the datagrams
//! come from [`Mixer`] and answers are counted per kind.

use crate::args::{nth_address, Options};
use crate::mix::{empty_counts, kind_of, Kind, KindCount, Mixer, KINDS};
use crate::net::{cpu_seconds, realtime_ns, wildcard, Poller, RecvBatch, SendBatch, Source};
use serde::Serialize;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Requests sent back to back before looking for answers.
const SEND_BATCH: u64 = 64;
/// Requests one socket sends in one sendmmsg; the next ones go through the next socket. A
/// burst of one request (low rates) thus moves to the next socket at every request.
const CHUNK: u64 = 16;
const _: () = assert!(
    CHUNK as usize <= crate::net::BATCH,
    "a chunk fits one send batch"
);
/// Shortest sleep between bursts of requests: below it the generator would spin, taking the
/// CPU time the kernel needs to move the packets; requests then leave in bursts of
/// rate x this. Answers wait in the sockets meanwhile (their arrival time is the kernel's
/// receive timestamp, so reading them later does not lengthen the measured latency).
const MIN_SLEEP: Duration = Duration::from_micros(200);
/// Batches (recvmmsg) read from one socket before looking at the others.
const RECV_ROUNDS: usize = 8;
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
    /// CPU time (user + system) the generator itself used for the run, seconds.
    pub cpu_s: f64,
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

/// Reads the answers waiting on the sockets `ready` names. Times are ns since `start_rt`
/// (CLOCK_REALTIME) + 1, as the stamps are.
fn drain(
    sources: &[Source],
    ready: &[usize],
    inbox: &mut RecvBatch,
    start_rt: u64,
    t: &mut Tally,
) -> io::Result<()> {
    for &i in ready {
        for _ in 0..RECV_ROUNDS {
            let n = inbox.recv(&sources[i])?;
            let read_at = realtime_ns();
            for (data, arrival) in inbox.iter() {
                let now = arrival.unwrap_or(read_at).saturating_sub(start_rt) + 1;
                tally(t, data, now);
            }
            if n < crate::net::BATCH {
                break;
            }
        }
    }
    Ok(())
}

/// Counts one answer that arrived at `now` (ns since the start + 1).
fn tally(t: &mut Tally, data: &[u8], now: u64) {
    let n = data.len();
    match classify(data) {
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
                t.answered += 1;
                if stamp <= now {
                    t.latencies.push(now - stamp);
                }
            }
        }
        Answer::Reply(stamp) => {
            t.answered += 1;
            if stamp <= now {
                t.latencies.push(now - stamp);
            }
        }
        Answer::Kiss => t.kisses += 1,
        Answer::Invalid => t.invalid += 1,
    }
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
        // Each socket with its own address talks to the target only: connected.
        let connect = (!per_packet).then_some(o.target);
        let s = Source::open(SocketAddr::new(ip, 0), per_packet, connect)
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
    let mut poller = Poller::new(&sources)?;
    let mut outbox = SendBatch::default();
    let mut inbox = RecvBatch::default();
    let mut ready = Vec::with_capacity(sources.len());
    let mut chunk_kinds: Vec<Option<Kind>> = Vec::with_capacity(CHUNK as usize);
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    // Stamps and arrival times: CLOCK_REALTIME (the clock of the kernel's receive
    // timestamps), in ns since the start + 1 (0 would read as "no origin timestamp").
    let start_rt = realtime_ns();
    let send_end = start + o.duration;
    let interval = 1.0 / o.rate as f64;
    let (mut attempted, mut sent, mut blocked) = (0u64, 0u64, 0u64);
    let mut next_socket = 0;
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
            // One chunk through one socket, then the next socket.
            let socket = &sources[next_socket];
            next_socket = (next_socket + 1) % sources.len();
            let chunk_end = batch_end.min(attempted + CHUNK);
            chunk_kinds.clear();
            for k in attempted..chunk_end {
                let from: Option<IpAddr> = match (per_packet, o.source_base) {
                    (true, Some(base)) => nth_address(base, o.prefix.unwrap_or(0), k % clients),
                    _ => None,
                };
                let stamp = realtime_ns().saturating_sub(start_rt) + 1;
                let Some(slot) = outbox.next_slot() else {
                    break;
                };
                let (len, kind) = match mixer.as_mut() {
                    Some(m) => {
                        let (len, kind) = m.next(stamp, slot);
                        (len, Some(kind))
                    }
                    None => {
                        slot[..HEADER_LEN].copy_from_slice(&request(stamp));
                        (HEADER_LEN, None)
                    }
                };
                outbox.push(len, from);
                chunk_kinds.push(kind);
            }
            let (ok, refused) = outbox.send(socket, o.target, |i| {
                chunk_kinds[i] = None;
            })?;
            if let Some(k) = tally.kinds.as_mut() {
                for kind in chunk_kinds.iter().flatten() {
                    k[kind.index()].datagrams += 1;
                }
            }
            sent += ok;
            blocked += refused;
            attempted = chunk_end;
        }
        last_send = Instant::now();
        if attempted >= due {
            let next = start + Duration::from_secs_f64(attempted as f64 * interval);
            let wait = next
                .saturating_duration_since(last_send)
                .max(MIN_SLEEP)
                .min(send_end.saturating_duration_since(last_send));
            std::thread::sleep(wait);
        }
        poller.wait(Duration::ZERO, &mut ready)?;
        drain(&sources, &ready, &mut inbox, start_rt, &mut tally)?;
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
        poller.wait(drain_end - now, &mut ready)?;
        drain(&sources, &ready, &mut inbox, start_rt, &mut tally)?;
    }
    let cpu = cpu_seconds() - cpu_before;
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
        cpu_s: cpu,
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
         {lat}\n\
         cpu          {:.2} s ({:.0} % of one CPU while sending)\n{mix}",
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
        r.cpu_s,
        100.0 * r.cpu_s / r.send_duration_s.max(1e-6),
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
