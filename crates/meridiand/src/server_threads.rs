//! Optional server threads (`[service] server-threads = N`): N more sockets on an instance's
//! NTP port (SO_REUSEPORT, same bind, namespace, VRF device and DSCP as the main loop's), each
//! served by its own thread: receive (a batch per recvmmsg), the same admission checks as the
//! main loop (receive switch, loopback spoofing, access rights, rate), `respond`, and send
//! the replies of the batch together (sendmmsg: the threads never run under clknetsim). A
//! thread answers client requests (mode 3) only; every other datagram the kernel hashed to
//! its socket (symmetric peers, broadcasts, mode 6, replies) is handed to the main loop
//! through a channel and an eventfd the main loop polls, so it is handled exactly as if it
//! had arrived there.
//!
//! What a thread reads is published by the main loop: the server state (`PublishedState`,
//! extrapolated to the thread's own time) and the instance's policy (`ThreadPolicy`, swapped on
//! reload). Each thread keeps its own rate-limit table (a client's requests hash to one socket,
//! so to one table). The clock is read from CLOCK_REALTIME, which is why the configuration
//! refuses threads with the simulated clock driver.

use crate::instance::{ServerCounters, RECV_BUF};
use crate::shared::{PublishedState, SnapshotCell, SnapshotReader};
use crate::udp::batch::{RecvBatch, SendBatch, BATCH};
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
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
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
        let (tx, handoffs) = mpsc::sync_channel(HANDOFF_QUEUE);
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
                replies: SendBatch::new(BATCH, server::MAX_REPLY_LEN),
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
/// Datagrams waiting for the main loop, at most (a flood of them is dropped beyond).
const HANDOFF_QUEUE: usize = 4096;

struct Worker {
    sockets: Vec<UdpSocket>,
    state: SnapshotReader<PublishedState>,
    policy: SnapshotReader<ThreadPolicy>,
    gate: Option<ServerGate>,
    gate_epoch: u64,
    stats: Arc<Mutex<ThreadStats>>,
    /// Counted since the last flush into `stats`.
    local: ServerCounters,
    handoff: SyncSender<Handoff>,
    stop: Arc<OwnedFd>,
    wake: Arc<OwnedFd>,
    rng: crate::entropy::OsEntropy,
    /// The replies to the datagrams of the batch being handled.
    replies: SendBatch,
}

impl Worker {
    fn run(mut self) {
        block_signals();
        let mut pollfds: Vec<libc::pollfd> = std::iter::once(self.stop.as_raw_fd())
            .chain(self.sockets.iter().map(|s| s.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let mut batch = RecvBatch::new(BATCH, RECV_BUF);
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
                    self.drain(i, &mut batch);
                }
            }
            self.flush();
        }
    }

    /// Handles what is waiting on socket `index`, a batch at a time: each datagram in turn,
    /// then the batch's replies in one sendmmsg. Stops at a batch shorter than the capacity
    /// (the socket was empty).
    fn drain(&mut self, index: usize, batch: &mut RecvBatch) {
        let mut since_flush = 0;
        loop {
            let n = match batch.recv(&self.sockets[index]) {
                Ok(n) => n,
                Err(e) => {
                    crate::warn!("server thread: receive error: {e}");
                    return;
                }
            };
            for (data, meta) in batch.iter() {
                self.datagram(index, data, meta);
            }
            self.send_replies(index);
            since_flush += n;
            if since_flush >= FLUSH_EVERY as usize {
                self.flush();
                since_flush = 0;
            }
            if n < batch.capacity() {
                return;
            }
        }
    }

    /// Sends the queued replies through socket `index`, counting them.
    fn send_replies(&mut self, index: usize) {
        let Self {
            sockets,
            replies,
            local,
            ..
        } = self;
        let sent = replies.flush(&sockets[index], |dest, e| {
            crate::debug!("reply to {dest} failed: {e}");
            *local.dropped.entry("send-error").or_default() += 1;
        });
        local.answered += sent as u64;
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
            match self.handoff.try_send(handoff) {
                Ok(()) => signal(self.wake.as_raw_fd()),
                Err(TrySendError::Full(_)) => {
                    // Counted here, as the main loop never sees it.
                    self.local.received += 1;
                    self.drop("main-loop-busy");
                }
                Err(TrySendError::Disconnected(_)) => {}
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
                if self.replies.is_full() {
                    self.send_replies(index);
                }
                if !self
                    .replies
                    .push(&out[..len], meta.source, meta.destination)
                {
                    self.drop("send-error");
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
        let mut out = [0u8; server::MAX_REPLY_LEN];
        let code = wire::ReferenceId::KISS_RATE;
        let Some(len) = ratelimit::signed_kiss(request, code, interval, &p.keys, &mut out) else {
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

/// Leaves SIGTERM, SIGINT and SIGHUP to the main thread, whose poll(2) they interrupt.
fn block_signals() {
    // SAFETY: a zeroed sigset_t initialised by sigemptyset and filled by sigaddset, passed to
    // pthread_sigmask for the calling thread only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::PublishedState;
    use meridian_proto::access::{rule, AclAction, AclSource};
    use meridian_proto::server::ServerState;
    use meridian_proto::wire::{Header, Leap, Mode, ReferenceId};
    use std::net::SocketAddr;
    use std::time::Duration;

    fn published(stratum: u8) -> PublishedState {
        PublishedState {
            state: ServerState {
                leap: Leap::None,
                stratum,
                precision: -20,
                poll: 6,
                root_delay: Default::default(),
                root_dispersion: Default::default(),
                reference_id: ReferenceId::LOCL,
                reference_ts: host_now(),
            },
            at: crate::runtime::mono_now(),
            dispersion_rate: 0,
        }
    }

    fn open_policy(epoch: u64) -> ThreadPolicy {
        ThreadPolicy {
            policy: AccessPolicy::open(),
            rate_limit: None,
            keys: KeyTable::new(),
            receive_disabled: Vec::new(),
            local_broadcasts: Vec::new(),
            gate_epoch: epoch,
        }
    }

    /// A client on loopback talking to the pool's one socket.
    fn client() -> std::net::UdpSocket {
        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        c
    }

    fn request() -> Vec<u8> {
        let mut h = Header::new(Mode::Client);
        h.transmit_ts = NtpTimestamp::from_bits(0x1234_5678_9abc_def0);
        h.to_bytes().to_vec()
    }

    fn exchange(c: &std::net::UdpSocket, to: SocketAddr, data: &[u8]) -> Option<Vec<u8>> {
        c.send_to(data, to).unwrap();
        let mut buf = [0u8; 512];
        c.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
    }

    fn wait(mut f: impl FnMut() -> bool) -> bool {
        let end = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn pool_answers_with_the_published_state_and_hands_the_rest_over() {
        let socket = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let state = SnapshotCell::new(published(3));
        let pool =
            ServerPool::start("t-", vec![vec![socket]], state.clone(), open_policy(0)).unwrap();
        let c = client();

        let reply = exchange(&c, addr, &request()).expect("answered");
        let h = Header::parse(reply[..48].try_into().unwrap()).unwrap();
        assert_eq!((h.mode, h.stratum), (Mode::Server, 3));
        assert_eq!(h.origin_ts, NtpTimestamp::from_bits(0x1234_5678_9abc_def0));
        let now = host_now();
        let off = (h.transmit_ts - now).to_seconds().abs();
        assert!(off < 0.5, "transmit time {off} s from the host clock");

        // A new state is used from the next request on.
        state.publish(published(7));
        let reply = exchange(&c, addr, &request()).expect("answered");
        assert_eq!(reply[1], 7);

        // Mode 6 (and anything but mode 3) goes to the main loop, untouched.
        let mode6 = [0x26u8, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            exchange(&c, addr, &mode6),
            None,
            "a thread does not answer mode 6"
        );
        let mut handed = Vec::new();
        assert!(wait(|| {
            handed.extend(pool.take_handoffs());
            !handed.is_empty()
        }));
        assert_eq!(handed.len(), 1);
        assert_eq!(handed[0].data, mode6);
        assert_eq!(handed[0].server, 0);
        assert_eq!(handed[0].meta.source, c.local_addr().unwrap());

        // A policy that denies loopback reaches the thread; counters add up.
        let mut deny = open_policy(1);
        deny.policy.server = Some(meridian_proto::access::Acl {
            rules: vec![rule(AclAction::Deny, AclSource::Any)],
        });
        pool.publish_policy(deny);
        assert_eq!(exchange(&c, addr, &request()), None, "denied, yet answered");
        assert!(wait(|| pool.counters().received == 3));
        let counters = pool.counters();
        assert_eq!(counters.answered, 2);
        assert_eq!(counters.dropped.values().sum::<u64>(), 1, "{counters:?}");
        drop(pool); // joins the thread: the test would hang if it did not stop
    }
}
