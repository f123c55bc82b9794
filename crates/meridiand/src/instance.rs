//! One network instance: the public network or one VPN instance (a network namespace or a VRF
//! device). It owns the sockets that live there (server sockets, one socket per client
//! association) and the counters of its server path. The clock algorithm is shared: every
//! instance feeds the one `System` of the daemon, which keeps each association apart by
//! (instance, address). Clock adjustments go back to the runtime, which owns the clock.

use crate::clock::Clock;
use crate::server_threads::ServerPool;
use crate::udp::batch::{RecvBatch, BATCH};
use crate::udp::{PortShare, RecvMeta, UdpSocket};
use meridian_proto::access::{self, AccessPolicy};
use meridian_proto::client::ClientConfig;
use meridian_proto::discipline::ClockAdjustment;
use meridian_proto::entropy::Entropy;
use meridian_proto::gate::{GateDrop, ServerGate};
use meridian_proto::keys::KeyTable;
use meridian_proto::ratelimit::{self, RateVerdict};
use meridian_proto::server::{self, DropReason};
use meridian_proto::system::{SourceId, System};
use meridian_proto::time::{Mono, NtpTimestamp};
use meridian_proto::wire::{self, ReferenceId};
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

/// Receive buffer: NTP packets with extension fields stay well below this; longer datagrams
/// are reported truncated and dropped as malformed.
pub(crate) const RECV_BUF: usize = 2048;

/// A client association as configured, with its address resolved.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    /// What the user wrote (address or host name), for displays.
    pub label: String,
    pub remote: SocketAddr,
    pub config: ClientConfig,
    pub prefer: bool,
    /// `source-interface` of this association (the instance's default applies when absent).
    pub source_interface: Option<String>,
}

/// The sockets of one client association.
#[derive(Debug)]
pub struct ClientSocket {
    pub id: SourceId,
    pub remote: SocketAddr,
    /// `None` while it cannot be opened (no route to the server yet): `refresh_sources`
    /// retries, and the association meanwhile shows unreachable.
    socket: Option<UdpSocket>,
    /// The association's own `source-interface`, if configured.
    pub source_interface: Option<String>,
    /// The source address the socket is bound to (`None`: the unspecified address).
    pub bound: Option<IpAddr>,
}

/// Counters of the server path, by outcome.
#[derive(Clone, Debug, Default)]
pub struct ServerCounters {
    pub received: u64,
    pub answered: u64,
    pub dropped: BTreeMap<&'static str, u64>,
}

/// Which socket of the instance a descriptor belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SocketRef {
    Server(usize),
    Client(usize),
    /// The eventfd of the server threads: datagrams they handed over are waiting.
    Handoff,
}

/// Where an instance's sockets live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// The daemon's own network namespace.
    Public,
    /// A network namespace (path of its file, e.g. /run/netns/vpn1).
    Netns(std::path::PathBuf),
    /// A device in the daemon's namespace that the sockets are tied to (SO_BINDTODEVICE): a
    /// VRF device in production, but any device works, the kernel does not care about its
    /// type (the tests use veth devices, the test kernel having no VRF driver).
    Vrf(String),
}

pub struct Instance {
    /// VPN instance name; `None` for the public network.
    pub name: Option<String>,
    pub binding: Binding,
    servers: Vec<UdpSocket>,
    clients: Vec<ClientSocket>,
    pub counters: ServerCounters,
    /// Access rights and rate limiter of the server path.
    gate: ServerGate,
    /// Interfaces with `receive = false`: everything arriving on them is dropped.
    receive_disabled: Vec<String>,
    /// Keys for authenticated requests (empty: authentication disabled).
    pub server_keys: KeyTable,
    /// `[control] mode6`: answer NTP control queries (see `mode6.rs`).
    pub mode6: bool,
    /// Symmetric associations of this instance, configured and dynamic, by peer address.
    peers: Vec<peers::PeerRoute>,
    /// Authentication enabled: a passive association needs a packet with a trusted key.
    pub auth_enabled: bool,
    /// Broadcast and multicast senders, listeners and client associations.
    bcast: bcast::BroadcastState,
    /// `[service] source-interface`: the default source interface of client associations.
    pub source_interface: Option<String>,
    /// `[service] server-threads`: the threads' sockets, per thread one per server socket,
    /// until the threads start (then owned by `pool`).
    thread_sockets: Vec<Vec<UdpSocket>>,
    pool: Option<ServerPool>,
    /// Receive buffers of the server sockets (allocated at the first datagram).
    recv_batch: Option<Box<RecvBatch>>,
}

impl Instance {
    /// Opens the instance's sockets inside its namespace or on its VRF device: the server
    /// sockets on `port` when `serve` (IPv4 and IPv6 wildcard; IPv6 optional), and one
    /// connected socket on a random ephemeral port per client association (RFC 9109), whose
    /// source is registered with `system`. `share_port`: the NTP port is also bound by other
    /// instances in this namespace tied to devices (VRF instances), so it is bound with
    /// SO_REUSEADDR (see [`UdpSocket::bind_shared`]).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        name: Option<String>,
        binding: Binding,
        serve: bool,
        port: u16,
        share_port: bool,
        dscp: u8,
        server_threads: usize,
        clients: &[ClientSpec],
        peer_specs: &[ClientSpec],
        system: &mut System,
        now: Mono,
        rng: &mut dyn Entropy,
    ) -> io::Result<Self> {
        let _inside = match &binding {
            Binding::Netns(path) => Some(crate::netns::enter(path)?),
            _ => None,
        };
        let device = match &binding {
            Binding::Vrf(dev) => Some(dev.as_str()),
            _ => None,
        };
        let label = name
            .as_ref()
            .map(|n| format!(" in VPN instance {n}"))
            .unwrap_or_default();
        let mut servers = Vec::new();
        let shared = server_threads > 0 && serve;
        // Symmetric peers send from the NTP port, so they need the server sockets too.
        if serve || !peer_specs.is_empty() {
            let v4 = UdpSocket::bind_shared(
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                device,
                PortShare {
                    reuse_address: share_port,
                    reuse_port: shared,
                },
            )
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot bind UDP port {port} (IPv4){label}: {e}"),
                )
            })?;
            servers.push(v4);
            match UdpSocket::bind_shared(
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
                device,
                PortShare {
                    reuse_address: share_port,
                    reuse_port: shared,
                },
            ) {
                Ok(s) => servers.push(s),
                Err(e) => crate::warn!("no IPv6 server socket on port {port}{label}: {e}"),
            }
        }
        for s in &servers {
            s.set_dscp(dscp)?;
            s.set_dont_fragment()?;
        }
        let prefix = name.as_ref().map(|n| format!("[{n}] ")).unwrap_or_default();
        let mut thread_sockets = Vec::new();
        for _ in 0..if shared { server_threads } else { 0 } {
            let mut per_thread = Vec::new();
            for main in &servers {
                let local = main.local_addr()?;
                let s = UdpSocket::bind_shared(
                    local,
                    device,
                    PortShare {
                        reuse_address: share_port,
                        reuse_port: true,
                    },
                )
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot open a server thread's socket on {local}{label}: {e}"),
                    )
                })?;
                s.set_dscp(dscp)?;
                s.set_dont_fragment()?;
                per_thread.push(s);
            }
            thread_sockets.push(per_thread);
        }
        let mut sockets = Vec::new();
        for spec in clients {
            // Bound to the unspecified address for now; `refresh_sources` then moves it to
            // its source interface's address. A server without a route yet (the interface
            // towards it not configured) does not stop the daemon: retried every few seconds.
            let socket = sources::open_client_socket(spec.remote, None, dscp, device)
                .map_err(|e| sources::log_unopened(&prefix, spec.remote, &e))
                .ok();
            let refid = ReferenceId::from_ip(spec.remote.ip());
            let id = system.add_client(spec.config, refid, spec.prefer, now, rng);
            sockets.push(ClientSocket {
                id,
                remote: spec.remote,
                socket,
                source_interface: spec.source_interface.clone(),
                bound: None,
            });
        }
        let peers = peer_specs
            .iter()
            .map(|spec| {
                let id = system.add_peer(
                    spec.config,
                    ReferenceId::from_ip(spec.remote.ip()),
                    spec.prefer,
                    now,
                    rng,
                );
                peers::PeerRoute::configured(id, spec.remote, spec.source_interface.clone())
            })
            .collect();
        Ok(Self {
            name,
            binding,
            servers,
            clients: sockets,
            counters: ServerCounters::default(),
            gate: ServerGate::new(AccessPolicy::open(), None, rng),
            receive_disabled: Vec::new(),
            server_keys: KeyTable::new(),
            mode6: true,
            peers,
            auth_enabled: false,
            bcast: bcast::BroadcastState::default(),
            source_interface: None,
            thread_sockets,
            pool: None,
            recv_batch: None,
        })
    }

    /// Installs the access rights, the rate limiter (inside `gate`) and the names of the
    /// interfaces that must not receive NTP messages.
    pub fn set_server_policy(&mut self, gate: ServerGate, receive_disabled: Vec<String>) {
        self.gate = gate;
        self.receive_disabled = receive_disabled;
    }

    pub fn clients(&self) -> &[ClientSocket] {
        &self.clients
    }

    /// Every descriptor to poll for input, with what it is.
    pub fn fds(&self) -> impl Iterator<Item = (RawFd, SocketRef)> + '_ {
        let servers = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_raw_fd(), SocketRef::Server(i)));
        let clients = self
            .clients
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((c.socket.as_ref()?.as_raw_fd(), SocketRef::Client(i))));
        let handoff = self.pool.iter().map(|p| (p.wake_fd(), SocketRef::Handoff));
        servers.chain(clients).chain(handoff)
    }

    /// Reads everything waiting on one socket. Client replies may yield clock adjustments.
    pub fn on_readable(
        &mut self,
        which: SocketRef,
        system: &mut System,
        clock: &dyn Clock,
        mono: impl Fn() -> Mono,
        rng: &mut dyn Entropy,
    ) -> Vec<ClockAdjustment> {
        let mut adjustments = Vec::new();
        if which == SocketRef::Handoff {
            let handoffs = self.pool.as_ref().map(|p| p.take_handoffs());
            for h in handoffs.into_iter().flatten() {
                let rx_local = match h.meta.timestamp {
                    Some((secs, nanos)) => clock.from_realtime(secs, nanos),
                    None => clock.now(),
                };
                let adj = self.server_datagram(
                    h.server,
                    &h.data,
                    &h.meta,
                    rx_local,
                    system,
                    clock,
                    mono(),
                    rng,
                );
                adjustments.extend(adj);
            }
            return adjustments;
        }
        if let SocketRef::Server(i) = which {
            self.drain_server(i, &mut adjustments, system, clock, &mono, rng);
            return adjustments;
        }
        let SocketRef::Client(i) = which else {
            return adjustments;
        };
        let mut buf = [0u8; RECV_BUF];
        while let Some(socket) = &self.clients[i].socket {
            let meta = match socket.recv(&mut buf) {
                Ok(Some(meta)) => meta,
                Ok(None) => break,
                Err(e) => {
                    crate::warn!("receive error: {e}");
                    break;
                }
            };
            if meta.len > RECV_BUF {
                continue;
            }
            let rx_local = match meta.timestamp {
                Some((secs, nanos)) => clock.from_realtime(secs, nanos),
                None => clock.now(),
            };
            let data = &buf[..meta.len];
            if let Some(adj) = self.client_reply(i, system, data, rx_local, mono()) {
                adjustments.push(adj);
            }
        }
        adjustments
    }

    /// Reads everything waiting on server socket `index`, a batch (recvmmsg) at a time, and
    /// handles each datagram in arrival order. A batch shorter than the capacity means the
    /// socket was empty: no further call just to hear EAGAIN (poll(2) is level-triggered).
    fn drain_server(
        &mut self,
        index: usize,
        adjustments: &mut Vec<ClockAdjustment>,
        system: &mut System,
        clock: &dyn Clock,
        mono: &impl Fn() -> Mono,
        rng: &mut dyn Entropy,
    ) {
        // Taken out while its datagrams are handled (they need `self`), then put back.
        let mut batch = self
            .recv_batch
            .take()
            .unwrap_or_else(|| Box::new(RecvBatch::new(BATCH, RECV_BUF)));
        loop {
            let n = match batch.recv(&self.servers[index]) {
                Ok(n) => n,
                Err(e) => {
                    crate::warn!("receive error: {e}");
                    break;
                }
            };
            for (data, meta) in batch.iter() {
                let rx_local = match meta.timestamp {
                    Some((secs, nanos)) => clock.from_realtime(secs, nanos),
                    None => clock.now(),
                };
                let adj =
                    self.server_datagram(index, data, meta, rx_local, system, clock, mono(), rng);
                adjustments.extend(adj);
            }
            if n < batch.capacity() {
                break;
            }
        }
        self.recv_batch = Some(batch);
    }

    /// A datagram that arrived on NTP-port socket `index` (or on a server thread's socket of
    /// the same family, handed over): broadcast, symmetric, or for the server path.
    #[allow(clippy::too_many_arguments)]
    fn server_datagram(
        &mut self,
        index: usize,
        data: &[u8],
        meta: &RecvMeta,
        rx_local: NtpTimestamp,
        system: &mut System,
        clock: &dyn Clock,
        now: Mono,
        rng: &mut dyn Entropy,
    ) -> Option<ClockAdjustment> {
        if self.is_peer_answer(data, meta) {
            // A configured peer's mode 4 answer to its calibration request.
            self.symmetric(index, data, meta, rx_local, system, clock, now, rng)
        } else if bcast::is_broadcast_mode(data) {
            self.broadcast_packet(data, meta, rx_local, system, now)
        } else if peers::is_symmetric(data) {
            self.symmetric(index, data, meta, rx_local, system, clock, now, rng)
        } else {
            self.serve(index, data, meta, rx_local, system, clock, now, rng);
            None
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn serve(
        &mut self,
        index: usize,
        request: &[u8],
        meta: &RecvMeta,
        rx_local: NtpTimestamp,
        system: &System,
        clock: &dyn Clock,
        now: Mono,
        rng: &mut dyn Entropy,
    ) {
        self.counters.received += 1;
        if meta.source.port() == 0 {
            *self.counters.dropped.entry("source-port-zero").or_default() += 1;
            return;
        }
        if meta.len > RECV_BUF {
            *self
                .counters
                .dropped
                .entry(DropReason::Malformed.as_str())
                .or_default() += 1;
            return;
        }
        if self.to_broadcast_address(meta) {
            // RFC 5905 FXMIT: never answer a request sent to a broadcast or multicast address.
            *self
                .counters
                .dropped
                .entry("broadcast-destination")
                .or_default() += 1;
            return;
        }
        if !self.admit(index, request, meta, now, rng) {
            return;
        }
        if request.first().is_some_and(|b| b & 7 == 6) {
            let policy = crate::mode6::ControlPolicy {
                enabled: self.mode6,
                open_access: self.gate.policy.is_open(),
            };
            let source = meta.source.ip();
            let routes: Vec<_> = self
                .clients
                .iter()
                .map(|c| (c.id, c.remote))
                .chain(self.peers.iter().map(|p| (p.id, p.remote)))
                .chain(self.bcast.routes.iter().map(|r| (r.id, r.remote)))
                .collect();
            match crate::mode6::answer(policy, source, request, system, &routes, clock, now) {
                Ok(replies) => self.send_all(index, &replies, meta),
                Err(reason) => *self.counters.dropped.entry(reason).or_default() += 1,
            }
            return;
        }
        let state = system.server_state(now);
        let mut out = [0u8; server::MAX_REPLY_LEN];
        let keys = &self.server_keys;
        match server::respond_with_keys(
            request,
            rx_local,
            &state,
            keys,
            rng,
            || clock.now(),
            &mut out,
        ) {
            Ok(len) => {
                let socket = &self.servers[index];
                match socket.send(&out[..len], Some(meta.source), meta.destination) {
                    Ok(_) => self.counters.answered += 1,
                    Err(e) => {
                        crate::debug!("reply to {} failed: {e}", meta.source);
                        *self.counters.dropped.entry("send-error").or_default() += 1;
                    }
                }
            }
            Err(reason) => *self.counters.dropped.entry(reason.as_str()).or_default() += 1,
        }
    }

    /// Sends the datagrams of one answer (several for a fragmented control response).
    fn send_all(&mut self, index: usize, replies: &[Vec<u8>], meta: &RecvMeta) {
        for reply in replies {
            if let Err(e) = self.servers[index].send(reply, Some(meta.source), meta.destination) {
                crate::debug!("reply to {} failed: {e}", meta.source);
                *self.counters.dropped.entry("send-error").or_default() += 1;
                return;
            }
        }
        self.counters.answered += 1;
    }

    /// The checks in front of `respond`, cheapest first: interface receive switch, loopback
    /// source on a real interface, access right, rate. Returns whether to go on; a drop is
    /// counted with its reason, a RATE kiss is sent here (and counted as `rate-kod`), as is
    /// the RSTR kiss for a mode 1 packet from a source without the `peer` right (`rstr-kod`);
    /// both signed as the normal reply would be (`ratelimit::signed_kiss`).
    fn admit(
        &mut self,
        index: usize,
        request: &[u8],
        meta: &RecvMeta,
        now: Mono,
        rng: &mut dyn Entropy,
    ) -> bool {
        let drop = |counters: &mut ServerCounters, reason: &'static str| {
            *counters.dropped.entry(reason).or_default() += 1;
            false
        };
        if !self.receive_disabled.is_empty() {
            let name = meta.ifindex.and_then(crate::ifname::name_of);
            if name.is_some_and(|n| self.receive_disabled.contains(&n)) {
                return drop(&mut self.counters, "interface-disabled");
            }
        }
        let source = meta.source.ip();
        if access::is_loopback(source)
            && meta
                .ifindex
                .is_some_and(|i| !crate::ifname::is_loopback_interface(i))
        {
            return drop(&mut self.counters, "loopback-spoofed");
        }
        let code = match self.gate.admit(source, request, now, rng) {
            Ok(a) if a.rate != RateVerdict::Kiss => return true,
            Ok(_) => ReferenceId::KISS_RATE,
            Err(GateDrop::PeerRestricted(_)) => ReferenceId::KISS_RSTR,
            Err(reason) => return drop(&mut self.counters, reason.as_str()),
        };
        let interval = match code {
            ReferenceId::KISS_RATE => self
                .gate
                .limiter()
                .map_or(std::time::Duration::ZERO, |l| l.config().interval),
            _ => std::time::Duration::ZERO,
        };
        // Signed with the request's key when that is a trusted key of ours; a request with
        // any other MAC gets no kiss (counted as the plain drop below).
        let mut out = [0u8; server::MAX_REPLY_LEN];
        let keys = &self.server_keys;
        let Some(len) = ratelimit::signed_kiss(request, code, interval, keys, &mut out) else {
            let reason = match code {
                ReferenceId::KISS_RATE => "rate-limited",
                _ => "access-restricted",
            };
            return drop(&mut self.counters, reason);
        };
        if let Err(e) = self.servers[index].send(&out[..len], Some(meta.source), meta.destination) {
            crate::debug!("kiss to {} failed: {e}", meta.source);
        }
        let reason = match code {
            ReferenceId::KISS_RATE => "rate-kod",
            _ => "rstr-kod",
        };
        drop(&mut self.counters, reason)
    }

    fn client_reply(
        &mut self,
        index: usize,
        system: &mut System,
        data: &[u8],
        rx_local: NtpTimestamp,
        now: Mono,
    ) -> Option<ClockAdjustment> {
        let client = &self.clients[index];
        let packet = match wire::parse(data) {
            Ok(p) => p,
            Err(e) => {
                crate::debug!("malformed reply from {}: {e:?}", client.remote);
                return None;
            }
        };
        match system.handle_reply(client.id, now, rx_local, &packet) {
            Ok(adj) => Some(adj),
            Err(reason) => {
                crate::debug!("reply from {} rejected: {reason}", client.remote);
                None
            }
        }
    }

    /// Sends `bytes` for source `id` if it belongs to this instance; returns whether it did.
    pub fn send_request(&self, id: SourceId, bytes: &[u8]) -> bool {
        let Some(client) = self.clients.iter().find(|c| c.id == id) else {
            return self.send_to_peer(id, bytes) || self.send_to_broadcast_server(id, bytes);
        };
        let Some(socket) = &client.socket else {
            crate::debug!("{}no socket to {} yet", self.label(), client.remote);
            return true;
        };
        if let Err(e) = socket.send(bytes, None, None) {
            crate::debug!("{}request to {} failed: {e}", self.label(), client.remote);
        }
        true
    }

    pub fn label(&self) -> String {
        self.name
            .as_ref()
            .map(|n| format!("[{n}] "))
            .unwrap_or_default()
    }
}

#[path = "instance_peers.rs"]
mod peers;
#[path = "instance_reload.rs"]
mod reload;
pub use peers::PeerRoute;

#[path = "instance_srcif.rs"]
mod sources;

#[path = "instance_broadcast.rs"]
mod bcast;
pub use bcast::{BroadcastRoute, BroadcastState, Listener, Sender, SenderKind};

#[path = "instance_threads.rs"]
mod threads;
