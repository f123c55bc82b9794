//! Per-client rate limiting of the server path: a token bucket (interval, burst) per source
//! address, kept in a fixed-capacity, set-associative table (constant work per packet, memory
//! bounded by the configured size), with a random leak so a spoofed flood cannot silence its
//! victim, and a RATE Kiss-o'-Death for a random share of the refused requests.
//!
//! Kisses and authentication ([`signed_kiss`]): a request without MAC gets a plain kiss; one
//! with a valid MAC of a key we hold as trusted gets a kiss signed with that same key (a keyed
//! client or peer trusts only an authenticated kiss, RFC 8633); any other MAC (unknown or
//! untrusted key, bad digest or length, crypto-NAK) gets no kiss at all: it is dropped, not
//! answered with a crypto-NAK, since a kiss is already a refusal.

use crate::auth::{self, AuthResult};
use crate::entropy::Entropy;
use crate::keys::KeyTable;
use crate::time::Mono;
use crate::wire::{self, Header, Leap, Mode, ReferenceId, HEADER_LEN};
use core::time::Duration;
use std::net::IpAddr;

/// Slots per hash bucket: the entries examined for each packet.
pub const WAYS: usize = 8;

/// Settings of the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Average time between requests a client is allowed.
    pub interval: Duration,
    /// Requests a client may send back to back after being quiet.
    pub burst: u32,
    /// One limited request in `leak` (on average, at random) is answered anyway; 0 = never.
    pub leak: u32,
    /// One limited, not leaked request in `kod` (at random) gets a RATE kiss; 0 = never.
    pub kod: u32,
    /// Client table size in entries (rounded up to a power of two, at least [`WAYS`]).
    pub table_size: usize,
}

impl Default for RateLimitConfig {
    /// One request per 8 s on average with bursts of 8 (chrony's `ratelimit interval 3
    /// burst 8`), a quarter of the excess leaked, a quarter of the rest kissed, 16384 clients.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(8),
            burst: 8,
            leak: 4,
            kod: 4,
            table_size: 16384,
        }
    }
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    /// Within the client's rate: answer.
    Pass,
    /// Over the rate, but answered anyway (the random leak).
    Leak,
    /// Over the rate: answer with a RATE Kiss-o'-Death instead (only to mode 3 requests and
    /// mode 1 packets).
    Kiss,
    /// Over the rate: no answer.
    Drop,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The client address as IPv6 (IPv4 mapped), meaningful when `used`.
    addr: u128,
    /// Theoretical arrival time (GCRA) in nanoseconds of [`Mono`]: when the bucket is full
    /// again minus nothing; a request is allowed while `tat <= now + (burst - 1) * interval`.
    tat: u64,
    used: bool,
}

/// The limiter: a table of per-client buckets. Memory is fixed at construction.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    config: RateLimitConfig,
    slots: Vec<Slot>,
    /// Number of buckets minus one (a power of two minus one).
    bucket_mask: usize,
    /// Secret hash keys, so that an outsider cannot aim addresses at one bucket.
    keys: [u64; 2],
    used: usize,
}

fn addr_key(addr: IpAddr) -> u128 {
    match crate::access::canonical(addr) {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// 64-bit finalizer mix (from SplitMix64).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl RateLimiter {
    /// An empty table of `config.table_size` entries; `rng` seeds the hash keys.
    pub fn new(config: RateLimitConfig, rng: &mut dyn Entropy) -> Self {
        let size = config.table_size.max(WAYS).next_power_of_two();
        Self {
            config,
            slots: vec![Slot::default(); size],
            bucket_mask: size / WAYS - 1,
            keys: [rng.next_u64(), rng.next_u64()],
            used: 0,
        }
    }

    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Entries the table holds at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Entries in use.
    pub fn len(&self) -> usize {
        self.used
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Bytes of the client table (fixed for the limiter's life).
    pub fn table_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Slot>()
    }

    fn bucket(&self, key: u128) -> usize {
        let h = mix((key as u64) ^ self.keys[0]) ^ mix(((key >> 64) as u64) ^ self.keys[1]);
        (mix(h) as usize & self.bucket_mask) * WAYS
    }

    /// Decides about one request from `source` at `now`. Constant work: one bucket of
    /// [`WAYS`] entries is examined. When the client is new and its bucket full, the entry
    /// that has the least debt (the lowest theoretical arrival time) is replaced: that loses
    /// the least information, and heavy senders stay tracked longest.
    pub fn check(&mut self, source: IpAddr, now: Mono, rng: &mut dyn Entropy) -> RateVerdict {
        let key = addr_key(source);
        let start = self.bucket(key);
        let now_ns = now.as_nanos();
        let bucket = &mut self.slots[start..start + WAYS];
        let index = match bucket.iter().position(|s| s.used && s.addr == key) {
            Some(i) => i,
            None => {
                let i = bucket
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| (s.used, s.tat))
                    .map_or(0, |(i, _)| i);
                if !bucket[i].used {
                    self.used += 1;
                }
                bucket[i] = Slot {
                    addr: key,
                    tat: now_ns,
                    used: true,
                };
                i
            }
        };
        let slot = &mut bucket[index];
        let interval = u64::try_from(self.config.interval.as_nanos()).unwrap_or(u64::MAX);
        let tolerance = interval.saturating_mul(u64::from(self.config.burst.max(1) - 1));
        let tat = slot.tat.max(now_ns);
        if tat <= now_ns.saturating_add(tolerance) {
            slot.tat = tat.saturating_add(interval);
            return RateVerdict::Pass;
        }
        if one_in(self.config.leak, rng) {
            RateVerdict::Leak
        } else if one_in(self.config.kod, rng) {
            RateVerdict::Kiss
        } else {
            RateVerdict::Drop
        }
    }
}

/// True with probability 1/n; never for n = 0.
fn one_in(n: u32, rng: &mut dyn Entropy) -> bool {
    n != 0 && rng.next_u64().is_multiple_of(u64::from(n))
}

/// Builds a RATE Kiss-o'-Death for a mode 3 request or a symmetric active (mode 1) packet:
/// LI 3, stratum 0, refid "RATE", the request's transmit timestamp as origin and no time of
/// ours (receive and transmit carry the same value). The poll field asks for at least
/// `interval`. Returns its length (48, never more than the request); `None` when the request
/// is malformed, carries a MAC (use [`signed_kiss`] with our keys) or is neither mode 3 nor
/// mode 1 (no kiss in reply to modes 2, 4 or 5).
pub fn rate_kiss(request: &[u8], interval: Duration, out: &mut [u8]) -> Option<usize> {
    kiss(request, ReferenceId::KISS_RATE, interval, out)
}

/// [`signed_kiss`] with no keys: a request with a MAC gets no kiss.
pub fn kiss(
    request: &[u8],
    code: ReferenceId,
    interval: Duration,
    out: &mut [u8],
) -> Option<usize> {
    signed_kiss(request, code, interval, &KeyTable::new(), out)
}

/// Builds a Kiss-o'-Death with `code` for a mode 3 request or a mode 1 packet, as
/// [`rate_kiss`] does, authenticated with `keys` as the module docs say. The kiss is always
/// mode 4, whatever the request: that is the mode in which clients and peers recognize a
/// kiss (RFC 5905 section 7.4 defines kisses as server answers; ntpd only acts on a mode 4
/// kiss), and it names no association of ours, so it can never be taken for a symmetric
/// packet. `interval` is the shortest poll the kiss asks for. Returns its length: 48, or 48
/// plus the request's own MAC length (never more than the request); `out` should hold
/// [`crate::server::MAX_REPLY_LEN`] bytes.
pub fn signed_kiss(
    request: &[u8],
    code: ReferenceId,
    interval: Duration,
    keys: &KeyTable,
    out: &mut [u8],
) -> Option<usize> {
    let packet = wire::parse(request).ok()?;
    let req = packet.header;
    if !matches!(req.mode, Mode::Client | Mode::SymmetricActive) {
        return None;
    }
    let key = match auth::verify(keys, packet.authenticated, packet.mac) {
        AuthResult::NoMac => None,
        AuthResult::Ok(id) => Some(keys.get(id)?),
        _ => return None,
    };
    let len = HEADER_LEN + key.map_or(0, |k| k.mac_len());
    debug_assert!(len <= request.len());
    let out = out.get_mut(..len)?;
    let secs = interval.as_secs_f64().max(1.0);
    let min_poll = secs.log2().ceil().min(17.0) as i8;
    let kiss = Header {
        leap: Leap::Unsynchronized,
        version: req.version,
        mode: Mode::Server,
        stratum: 0,
        poll: req.poll.clamp(min_poll, 17),
        precision: 0,
        root_delay: Default::default(),
        root_dispersion: Default::default(),
        reference_id: code,
        reference_ts: Default::default(),
        origin_ts: req.transmit_ts,
        receive_ts: req.transmit_ts,
        transmit_ts: req.transmit_ts,
    };
    kiss.emit((&mut out[..HEADER_LEN]).try_into().ok()?);
    match key {
        Some(key) => auth::append_mac(key, out, HEADER_LEN),
        None => Some(HEADER_LEN),
    }
}

#[cfg(test)]
#[path = "ratelimit_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "ratelimit_kiss_auth_tests.rs"]
mod kiss_auth_tests;
