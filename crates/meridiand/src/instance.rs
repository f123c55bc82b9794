//! One NTP instance (the public network, or later one VPN instance): its protocol core
//! (`System`), its server sockets and one socket per client association, and the counters of
//! its server path. It turns readable sockets and timeouts into core calls, and the core's
//! answers into datagrams; clock adjustments go back to the runtime, which owns the clock.

use crate::clock::Clock;
use crate::udp::{RecvMeta, UdpSocket};
use meridian_proto::client::ClientConfig;
use meridian_proto::discipline::ClockAdjustment;
use meridian_proto::entropy::Entropy;
use meridian_proto::keys::KeyTable;
use meridian_proto::server::{self, DropReason};
use meridian_proto::system::{SourceId, System, SystemConfig};
use meridian_proto::time::{Mono, NtpTimestamp};
use meridian_proto::wire::{self, ReferenceId};
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

/// Receive buffer: NTP packets with extension fields stay well below this; longer datagrams
/// are reported truncated and dropped as malformed.
const RECV_BUF: usize = 2048;

/// A client association as configured, with its address resolved.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    /// What the user wrote (address or host name), for displays.
    pub label: String,
    pub remote: SocketAddr,
    pub config: ClientConfig,
    pub prefer: bool,
}

/// The sockets of one client association.
#[derive(Debug)]
pub struct ClientSocket {
    pub id: SourceId,
    pub remote: SocketAddr,
    socket: UdpSocket,
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
}

pub struct Instance {
    /// VPN instance name; `None` for the public network.
    pub name: Option<String>,
    pub system: System,
    servers: Vec<UdpSocket>,
    clients: Vec<ClientSocket>,
    pub counters: ServerCounters,
    /// Keys for authenticated requests (empty: authentication disabled).
    pub server_keys: KeyTable,
}

impl Instance {
    /// Opens the server sockets on `port` (IPv4 and IPv6 wildcard; IPv6 is optional) and one
    /// connected socket on a random ephemeral port per client association (RFC 9109).
    pub fn new(
        name: Option<String>,
        system_config: SystemConfig,
        port: u16,
        dscp: u8,
        clients: &[ClientSpec],
        now: Mono,
        rng: &mut dyn Entropy,
    ) -> io::Result<Self> {
        let mut servers = Vec::new();
        let v4 = UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot bind UDP port {port} (IPv4): {e}"))
            })?;
        servers.push(v4);
        match UdpSocket::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)) {
            Ok(s) => servers.push(s),
            Err(e) => crate::warn!("no IPv6 server socket on port {port}: {e}"),
        }
        for s in &servers {
            s.set_dscp(dscp)?;
        }
        let mut system = System::new(system_config);
        let mut sockets = Vec::new();
        for spec in clients {
            let local = match spec.remote {
                SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            };
            let socket = UdpSocket::bind(local)?;
            socket.set_dscp(dscp)?;
            socket.connect(spec.remote)?;
            let refid = ReferenceId::from_ip(spec.remote.ip());
            let id = system.add_client(spec.config, refid, spec.prefer, now, rng);
            sockets.push(ClientSocket {
                id,
                remote: spec.remote,
                socket,
            });
        }
        Ok(Self {
            name,
            system,
            servers,
            clients: sockets,
            counters: ServerCounters::default(),
            server_keys: KeyTable::new(),
        })
    }

    pub fn clients(&self) -> &[ClientSocket] {
        &self.clients
    }

    /// Every descriptor to poll for input, with what it is.
    pub fn fds(&self) -> Vec<(RawFd, SocketRef)> {
        let servers = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_raw_fd(), SocketRef::Server(i)));
        let clients = self
            .clients
            .iter()
            .enumerate()
            .map(|(i, c)| (c.socket.as_raw_fd(), SocketRef::Client(i)));
        servers.chain(clients).collect()
    }

    /// Reads everything waiting on one socket. Client replies may yield clock adjustments.
    pub fn on_readable(
        &mut self,
        which: SocketRef,
        clock: &dyn Clock,
        mono: impl Fn() -> Mono,
        rng: &mut dyn Entropy,
    ) -> Vec<ClockAdjustment> {
        let mut adjustments = Vec::new();
        let mut buf = [0u8; RECV_BUF];
        loop {
            let socket = match which {
                SocketRef::Server(i) => &self.servers[i],
                SocketRef::Client(i) => &self.clients[i].socket,
            };
            let meta = match socket.recv(&mut buf) {
                Ok(Some(meta)) => meta,
                Ok(None) => break,
                Err(e) => {
                    crate::warn!("receive error: {e}");
                    break;
                }
            };
            let rx_local = match meta.timestamp {
                Some((secs, nanos)) => clock.from_realtime(secs, nanos),
                None => clock.now(),
            };
            let data = &buf[..meta.len.min(RECV_BUF)];
            match which {
                SocketRef::Server(i) => self.serve(i, data, &meta, rx_local, clock, mono(), rng),
                SocketRef::Client(i) => {
                    if meta.len > RECV_BUF {
                        continue;
                    }
                    if let Some(adj) = self.client_reply(i, data, rx_local, mono()) {
                        adjustments.push(adj);
                    }
                }
            }
        }
        adjustments
    }

    #[allow(clippy::too_many_arguments)]
    fn serve(
        &mut self,
        index: usize,
        request: &[u8],
        meta: &RecvMeta,
        rx_local: NtpTimestamp,
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
        let state = self.system.server_state(now);
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

    fn client_reply(
        &mut self,
        index: usize,
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
        match self.system.handle_reply(client.id, now, rx_local, &packet) {
            Ok(adj) => Some(adj),
            Err(reason) => {
                crate::debug!("reply from {} rejected: {reason}", client.remote);
                None
            }
        }
    }

    /// Sends the requests that are due and runs the system's upkeep.
    pub fn on_timeout(&mut self, now: Mono, clock: &dyn Clock, rng: &mut dyn Entropy) {
        let local_now = clock.now();
        for (id, bytes) in self.system.handle_timeout(now, local_now, rng) {
            let Some(client) = self.clients.iter().find(|c| c.id == id) else {
                continue;
            };
            if let Err(e) = client.socket.send(&bytes, None, None) {
                crate::debug!("request to {} failed: {e}", client.remote);
            }
        }
        if self.system.housekeeping(now, local_now) {
            crate::info!(
                "{}synchronization source is now {:?}",
                self.label(),
                self.system.vars().sync
            );
        }
    }

    /// Next time the instance wants [`Instance::on_timeout`].
    pub fn next_deadline(&self) -> Option<Mono> {
        self.system.poll_timeout()
    }

    fn label(&self) -> String {
        self.name
            .as_ref()
            .map(|n| format!("[{n}] "))
            .unwrap_or_default()
    }
}
