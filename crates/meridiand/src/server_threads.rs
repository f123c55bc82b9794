//! Optional server threads (`[service] server-threads = N`): N more sockets on an instance's
//! NTP port (SO_REUSEPORT, same bind, namespace, VRF device and DSCP as the main loop's), each
//! served by its own thread: receive, the same admission checks as the main loop (receive
//! switch, loopback spoofing, access rights, rate), `respond`, send. A thread answers client
//! requests (mode 3) only; every other datagram the kernel hashed to its socket (symmetric
//! peers, broadcasts, mode 6, replies) is handed to the main loop through a channel and an
//! eventfd the main loop polls, so it is handled exactly as if it had arrived there.
//!
//! What a thread reads is published by the main loop: the server state (`PublishedState`,
//! extrapolated to the thread's own time) and the instance's policy (`ThreadPolicy`, swapped on
//! reload). Each thread keeps its own rate-limit table (a client's requests hash to one socket,
//! so to one table). The clock is read from CLOCK_REALTIME, which is why the configuration
//! refuses threads with the simulated clock driver.

use crate::instance::{ServerCounters, RECV_BUF};
use crate::shared::{PublishedState, SnapshotCell, SnapshotReader};
use crate::udp::{RecvMeta, UdpSocket};
use meridian_proto::access::{self, AccessPolicy};
use meridian_proto::gate::ServerGate;
use meridian_proto::keys::KeyTable;
use meridian_proto::ratelimit::{self, RateLimitConfig, RateVerdict};
use meridian_proto::server::{self, DropReason};
use meridian_proto::time::NtpTimestamp;
use meridian_proto::wire;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What a server thread needs to know about its instance; replaced as a whole.
#[derive(Debug, Clone)]
pub struct ThreadPolicy {
    pub policy: AccessPolicy,
    pub rate_limit: Option<RateLimitConfig>,
    pub keys: KeyTable,
    /// Interfaces with `receive = false`.
    pub receive_disabled: Vec<String>,
    /// Directed broadcast addresses of the instance's interfaces (requests to them are not
    /// answered).
    pub local_broadcasts: Vec<Ipv4Addr>,
    /// Moves when the access rules or rate limits were replaced: threads then start a new
    /// rate-limit table, as the main loop does.
    pub gate_epoch: u64,
}

/// A datagram a server thread does not answer itself.
#[derive(Debug)]
pub struct Handoff {
    /// Index of the socket family it arrived on (the same index as the main loop's socket).
    pub server: usize,
    pub data: Vec<u8>,
    pub meta: RecvMeta,
}

/// What one thread reports to the main loop.
#[derive(Debug, Clone, Default)]
pub struct ThreadStats {
    pub counters: ServerCounters,
    /// Entries in the thread's rate-limit table.
    pub rate_entries: usize,
}

fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain eventfd(2) call; the result is checked and wrapped at once.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an eventfd; failure (counter full) is harmless.
    unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
}

fn clear(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64 from a non-blocking eventfd.
    unsafe { libc::read(fd, &mut v as *mut u64 as *mut libc::c_void, 8) };
}

/// The server threads of one instance.
pub struct ServerPool {
    policy: Arc<SnapshotCell<ThreadPolicy>>,
    stats: Vec<Arc<Mutex<ThreadStats>>>,
    handles: Vec<JoinHandle<()>>,
    stop: Arc<OwnedFd>,
    wake: Arc<OwnedFd>,
    handoffs: Receiver<Handoff>,
}

impl ServerPool {
    /// Starts one thread per entry of `sockets` (each: the thread's socket per family, in the
    /// order of the main loop's server sockets).
    pub fn start(
        label: &str,
        sockets: Vec<Vec<UdpSocket>>,
        state: Arc<SnapshotCell<PublishedState>>,
        policy: ThreadPolicy,
    ) -> io::Result<Self> {
        let stop = Arc::new(eventfd()?);
        let wake = Arc::new(eventfd()?);
        let policy = SnapshotCell::new(policy);
        let (tx, handoffs) = mpsc::channel();
        let mut pool = Self {
            policy,
            stats: Vec::new(),
            handles: Vec::new(),
            stop,
            wake,
            handoffs,
        };
        for (n, socks) in sockets.into_iter().enumerate() {
            let stats = Arc::new(Mutex::new(ThreadStats::default()));
            let worker = Worker {
                sockets: socks,
                state: SnapshotReader::new(state.clone()),
                policy: SnapshotReader::new(pool.policy.clone()),
                gate: None,
                gate_epoch: u64::MAX,
                stats: stats.clone(),
                local: ServerCounters::default(),
                handoff: tx.clone(),
                stop: pool.stop.clone(),
                wake: pool.wake.clone(),
                rng: crate::entropy::OsEntropy::new(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("{label}server-{n}"))
                .spawn(move || worker.run())?;
            pool.stats.push(stats);
            pool.handles.push(handle);
        }
        Ok(pool)
    }

    /// Replaces what the threads know about the instance.
    pub fn publish_policy(&self, policy: ThreadPolicy) {
        self.policy.publish(policy);
    }

    /// The policy the threads currently use.
    pub fn policy(&self) -> Arc<ThreadPolicy> {
        self.policy.load()
    }

    /// The descriptor that becomes readable when datagrams were handed over.
    pub fn wake_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// Takes every datagram handed over so far.
    pub fn take_handoffs(&self) -> Vec<Handoff> {
        clear(self.wake.as_raw_fd());
        self.handoffs.try_iter().collect()
    }

    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    /// The threads' counters, summed.
    pub fn counters(&self) -> ServerCounters {
        let mut sum = ServerCounters::default();
        for s in &self.stats {
            let s = s.lock().unwrap_or_else(|e| e.into_inner());
            add_counters(&mut sum, &s.counters);
        }
        sum
    }

    /// Entries in the threads' rate-limit tables, summed.
    pub fn rate_entries(&self) -> usize {
        self.stats
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).rate_entries)
            .sum()
    }
}

impl Drop for ServerPool {
    fn drop(&mut self) {
        signal(self.stop.as_raw_fd());
        for h in self.handles.drain(..) {
            if h.join().is_err() {
                crate::error!("a server thread panicked");
            }
        }
    }
}

/// `into += from`, counter by counter.
pub fn add_counters(into: &mut ServerCounters, from: &ServerCounters) {
    into.received += from.received;
    into.answered += from.answered;
    for (k, v) in &from.dropped {
        *into.dropped.entry(k).or_default() += v;
    }
}

/// Publish the thread's counters at least this often while it is busy.
const FLUSH_EVERY: u32 = 256;

struct Worker {
    sockets: Vec<UdpSocket>,
    state: SnapshotReader<PublishedState>,
    policy: SnapshotReader<ThreadPolicy>,
    gate: Option<ServerGate>,
    gate_epoch: u64,
    stats: Arc<Mutex<ThreadStats>>,
    /// Counted since the last flush into `stats`.
    local: ServerCounters,
    handoff: Sender<Handoff>,
    stop: Arc<OwnedFd>,
    wake: Arc<OwnedFd>,
    rng: crate::entropy::OsEntropy,
}

impl Worker {
    fn run(mut self) {
        let mut pollfds: Vec<libc::pollfd> = std::iter::once(self.stop.as_raw_fd())
            .chain(self.sockets.iter().map(|s| s.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let mut buf = [0u8; RECV_BUF];
        loop {
            // SAFETY: pollfds is a live, correctly sized array of pollfd.
            let n = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, -1) };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                crate::error!("server thread: poll: {err}");
                return;
            }
            if pollfds[0].revents != 0 {
                self.flush();
                return;
            }
            for i in 0..self.sockets.len() {
                if pollfds[i + 1].revents != 0 {
                    self.drain(i, &mut buf);
                }
            }
            self.flush();
        }
    }

    fn drain(&mut self, index: usize, buf: &mut [u8; RECV_BUF]) {
        let mut since_flush = 0;
        loop {
            let meta = match self.sockets[index].recv(buf) {
                Ok(Some(meta)) => meta,
                Ok(None) => return,
                Err(e) => {
                    crate::warn!("server thread: receive error: {e}");
                    return;
                }
            };
            self.datagram(index, &buf[..meta.len.min(RECV_BUF)], &meta);
            since_flush += 1;
            if since_flush == FLUSH_EVERY {
                self.flush();
                since_flush = 0;
            }
        }
    }

    fn flush(&mut self) {
        let entries = self
            .gate
            .as_ref()
            .and_then(|g| g.limiter())
            .map_or(0, |l| l.len());
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        add_counters(&mut s.counters, &self.local);
        s.rate_entries = entries;
        self.local = ServerCounters::default();
    }

    fn drop(&mut self, reason: &'static str) {
        *self.local.dropped.entry(reason).or_default() += 1;
    }

    fn datagram(&mut self, index: usize, data: &[u8], meta: &RecvMeta) {
        let truncated = meta.len > RECV_BUF;
        if !truncated && data.first().is_none_or(|b| b & 7 != 3) {
            let handoff = Handoff {
                server: index,
                data: data.to_vec(),
                meta: *meta,
            };
            if self.handoff.send(handoff).is_ok() {
                signal(self.wake.as_raw_fd());
            }
            return;
        }
        let rx_local = match meta.timestamp {
            Some((secs, nanos)) => NtpTimestamp::from_unix(secs, nanos),
            None => host_now(),
        };
        self.local.received += 1;
        if meta.source.port() == 0 {
            return self.drop("source-port-zero");
        }
        if truncated {
            return self.drop(DropReason::Malformed.as_str());
        }
        let policy = self.policy.get().clone();
        if policy.gate_epoch != self.gate_epoch {
            self.gate = Some(ServerGate::new(
                policy.policy.clone(),
                policy.rate_limit,
                &mut self.rng,
            ));
            self.gate_epoch = policy.gate_epoch;
        }
        if to_broadcast(meta.destination, &policy.local_broadcasts) {
            return self.drop("broadcast-destination");
        }
        if !self.admit(index, data, meta, &policy) {
            return;
        }
        let state = self.state.get().at(crate::runtime::mono_now());
        let mut out = [0u8; server::MAX_REPLY_LEN];
        match server::respond_with_keys(
            data,
            rx_local,
            &state,
            &policy.keys,
            &mut self.rng,
            host_now,
            &mut out,
        ) {
            Ok(len) => {
                match self.sockets[index].send(&out[..len], Some(meta.source), meta.destination) {
                    Ok(_) => self.local.answered += 1,
                    Err(e) => {
                        crate::debug!("reply to {} failed: {e}", meta.source);
                        self.drop("send-error");
                    }
                }
            }
            Err(reason) => self.drop(reason.as_str()),
        }
    }

    /// The main loop's admission checks (see `Instance::admit`), on this thread's gate.
    fn admit(&mut self, index: usize, request: &[u8], meta: &RecvMeta, p: &ThreadPolicy) -> bool {
        if !p.receive_disabled.is_empty() {
            let name = meta.ifindex.and_then(crate::ifname::name_of);
            if name.is_some_and(|n| p.receive_disabled.contains(&n)) {
                self.drop("interface-disabled");
                return false;
            }
        }
        let source = meta.source.ip();
        if access::is_loopback(source)
            && meta
                .ifindex
                .is_some_and(|i| !crate::ifname::is_loopback_interface(i))
        {
            self.drop("loopback-spoofed");
            return false;
        }
        let now = crate::runtime::mono_now();
        let Some(gate) = self.gate.as_mut() else {
            return false;
        };
        let admitted = match gate.admit(source, request, now, &mut self.rng) {
            Ok(a) => a,
            Err(reason) => {
                self.drop(reason.as_str());
                return false;
            }
        };
        if admitted.rate != RateVerdict::Kiss {
            return true;
        }
        let interval = p
            .rate_limit
            .map_or(std::time::Duration::ZERO, |c| c.interval);
        let mut out = [0u8; wire::HEADER_LEN];
        let Some(len) = ratelimit::rate_kiss(request, interval, &mut out) else {
            self.drop("rate-limited");
            return false;
        };
        if let Err(e) = self.sockets[index].send(&out[..len], Some(meta.source), meta.destination) {
            crate::debug!("kiss to {} failed: {e}", meta.source);
        }
        self.drop("rate-kod");
        false
    }
}

fn host_now() -> NtpTimestamp {
    let (s, n) = crate::clock::host_realtime();
    NtpTimestamp::from_unix(s, n)
}

/// Whether a request went to a broadcast or multicast address (never answered, RFC 5905).
fn to_broadcast(destination: Option<IpAddr>, local_broadcasts: &[Ipv4Addr]) -> bool {
    match destination {
        Some(IpAddr::V4(a)) => {
            a.is_broadcast() || a.is_multicast() || local_broadcasts.contains(&a)
        }
        Some(IpAddr::V6(a)) => a.is_multicast(),
        None => false,
    }
}
