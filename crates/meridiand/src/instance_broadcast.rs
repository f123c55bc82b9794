//! The broadcast and multicast modes of one instance, on its NTP-port sockets.
//!
//! Server side: one [`Sender`] per `[[interface]]` with `broadcast-server` (IPv4: to the
//! interface's subnet broadcast address, or 255.255.255.255 when it has none) or
//! `multicast-server` (to the group, through that interface, with the configured TTL), sent
//! from the NTP port. Multicast loop is off, so a host never hears its own multicast.
//!
//! Client side: a [`Listener`] per `broadcast-client` / `multicast-client` interface. The
//! NTP-port socket bound to the wildcard address receives broadcasts by itself; multicast
//! groups are joined on the interface's index, and joined again at every refresh (every
//! [`REFRESH`]), so an interface that appears after start, or comes back with a new index,
//! gets its membership (joining twice is harmless). A mode 5 packet from an unknown server is
//! accepted only where a listener matches the arriving interface (PKTINFO ifindex) and
//! destination (the group, or a non-multicast address for broadcast), and only from a sender
//! with the `peer` access right (it is going to synchronize us); the core decides the rest
//! (`System::accept_broadcast`). The association's volley requests leave from the NTP port
//! to the server's address; the mode 4 replies come back to the same socket and are routed
//! here by source address.

use super::{Binding, Instance, ServerCounters, RECV_BUF};
use crate::clock::Clock;
use crate::config::InterfaceConfig;
use crate::ifaddr;
use crate::udp::RecvMeta;
use meridian_proto::access;
use meridian_proto::broadcast::{sender_key, BroadcastServer, BroadcastServerConfig};
use meridian_proto::discipline::ClockAdjustment;
use meridian_proto::entropy::Entropy;
use meridian_proto::keys::{KeyId, KeyTable};
use meridian_proto::system::{SourceId, System};
use meridian_proto::time::{Mono, NtpTimestamp, PollInterval};
use meridian_proto::wire::{self, Mode, ReferenceId};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// How often interface indexes, broadcast addresses and group memberships are refreshed.
pub const REFRESH: Duration = Duration::from_secs(5);

/// Where a sender sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SenderKind {
    Broadcast,
    Multicast { group: IpAddr, ttl: u8 },
}

/// The server side on one interface.
#[derive(Debug)]
pub struct Sender {
    pub interface: String,
    pub kind: SenderKind,
    pub server: BroadcastServer,
    /// From the last refresh.
    ifindex: Option<u32>,
    /// Subnet broadcast address (IPv4 broadcast senders), from the last refresh.
    broadcast: Option<Ipv4Addr>,
}

impl Sender {
    /// The destination address (without port) at the last refresh.
    pub fn destination(&self) -> IpAddr {
        match &self.kind {
            SenderKind::Broadcast => IpAddr::V4(self.broadcast.unwrap_or(Ipv4Addr::BROADCAST)),
            SenderKind::Multicast { group, .. } => *group,
        }
    }
}

/// A broadcast or multicast client interface.
#[derive(Clone, Debug)]
pub struct Listener {
    pub interface: String,
    /// The group for a multicast client; `None` for a broadcast client.
    pub group: Option<IpAddr>,
    /// Index the group was last joined on.
    joined: Option<u32>,
}

/// Where the packets of one broadcast client association go.
#[derive(Clone, Debug)]
pub struct BroadcastRoute {
    pub id: SourceId,
    /// The server's address and port (its mode 5 packets' source).
    pub remote: SocketAddr,
}

/// Everything broadcast about one instance.
#[derive(Debug, Default)]
pub struct BroadcastState {
    pub senders: Vec<Sender>,
    pub listeners: Vec<Listener>,
    pub routes: Vec<BroadcastRoute>,
    /// Broadcast addresses of our interfaces: a request sent to one is never answered.
    local_broadcasts: Vec<Ipv4Addr>,
    next_refresh: Mono,
    port: u16,
}

fn count(counters: &mut ServerCounters, reason: &'static str) {
    *counters.dropped.entry(reason).or_default() += 1;
}

/// Whether a datagram is a mode 5 packet or a mode 4 reply (broadcast client volley).
pub fn is_broadcast_mode(data: &[u8]) -> bool {
    data.first()
        .is_some_and(|b| matches!(Mode::from_bits(b & 7), Mode::Broadcast | Mode::Server))
}

impl Instance {
    /// Sets up the senders and listeners of the `[[interface]]` entries of this instance.
    /// `keys` are the instance's keys (empty when authentication is disabled).
    pub fn configure_broadcast(
        &mut self,
        interfaces: &[&InterfaceConfig],
        keys: &KeyTable,
        auth_enabled: bool,
        now: Mono,
        rng: &mut dyn Entropy,
    ) {
        let mut state = BroadcastState {
            next_refresh: now,
            port: self
                .servers
                .first()
                .and_then(|s| s.local_addr().ok())
                .map_or(123, |a| a.port()),
            ..BroadcastState::default()
        };
        for i in interfaces {
            let mut add = |kind, version, poll: i8, key_id: Option<u32>| {
                let key = sender_key(auth_enabled, keys, key_id.map(KeyId));
                if key_id.is_some() && key.is_none() {
                    crate::warn!(
                        "{}interface {}: key {} is not usable (authentication disabled, or the key is not trusted): sending unauthenticated",
                        self.label(),
                        i.name,
                        key_id.unwrap_or_default()
                    );
                }
                let config = BroadcastServerConfig {
                    version,
                    poll: PollInterval::new(poll),
                    key,
                };
                state.senders.push(Sender {
                    interface: i.name.clone(),
                    kind,
                    server: BroadcastServer::new(config, now, rng),
                    ifindex: None,
                    broadcast: None,
                });
            };
            if let Some(b) = &i.broadcast_server {
                add(SenderKind::Broadcast, b.version, b.poll, b.key_id);
            }
            if let Some(m) = &i.multicast_server {
                let kind = SenderKind::Multicast {
                    group: m.group,
                    ttl: m.ttl,
                };
                add(kind, m.version, m.poll, m.key_id);
            }
            if i.broadcast_client {
                state.listeners.push(Listener {
                    interface: i.name.clone(),
                    group: None,
                    joined: None,
                });
            }
            if let Some(m) = &i.multicast_client {
                state.listeners.push(Listener {
                    interface: i.name.clone(),
                    group: Some(m.group),
                    joined: None,
                });
            }
        }
        for s in &self.servers {
            if !s.is_ipv6() {
                if let Err(e) = s.set_broadcast(true) {
                    crate::warn!("{}SO_BROADCAST: {e}", self.label());
                }
            }
            if let Err(e) = s.set_multicast_loop(false) {
                crate::debug!("{}multicast loop: {e}", self.label());
            }
        }
        self.bcast = state;
    }

    pub fn broadcast(&self) -> &BroadcastState {
        &self.bcast
    }

    /// When the senders or the refresh next need [`Instance::broadcast_tick`].
    pub fn broadcast_timeout(&self) -> Option<Mono> {
        let senders = self.bcast.senders.iter().map(|s| s.server.poll_timeout());
        senders.chain(Some(self.bcast.next_refresh)).min()
    }

    /// Sends the mode 5 packets that are due and refreshes interfaces and memberships.
    pub fn broadcast_tick(
        &mut self,
        now: Mono,
        system: &System,
        clock: &dyn Clock,
        rng: &mut dyn Entropy,
    ) {
        if now >= self.bcast.next_refresh {
            self.refresh_interfaces();
            self.bcast.next_refresh = now + REFRESH;
        }
        let state = system.server_state(now);
        for i in 0..self.bcast.senders.len() {
            let sender = &mut self.bcast.senders[i];
            if now < sender.server.poll_timeout() {
                continue;
            }
            let Some(packet) = sender.server.handle_timeout(now, clock.now(), &state, rng) else {
                continue;
            };
            let sender = &self.bcast.senders[i];
            let Some(ifindex) = sender.ifindex else {
                crate::debug!("{}interface {} is absent", self.label(), sender.interface);
                continue;
            };
            let dest = SocketAddr::new(sender.destination(), self.bcast.port);
            let Some(socket) = self.socket_for(dest).map(|j| &self.servers[j]) else {
                continue;
            };
            let ready = match &sender.kind {
                SenderKind::Broadcast => Ok(()),
                SenderKind::Multicast { ttl, .. } => socket
                    .set_multicast_if(ifindex)
                    .and_then(|_| socket.set_multicast_ttl(*ttl)),
            };
            if let Err(e) = ready.and_then(|_| socket.send(&packet, Some(dest), None)) {
                crate::debug!("{}mode 5 packet to {dest} failed: {e}", self.label());
            }
        }
    }

    /// Looks up interface indexes and broadcast addresses (inside the instance's namespace)
    /// and (re)joins multicast groups.
    fn refresh_interfaces(&mut self) {
        let _inside = match &self.binding {
            Binding::Netns(path) => match crate::netns::enter(path) {
                Ok(g) => Some(g),
                Err(e) => {
                    crate::warn!("{}cannot enter namespace: {e}", self.label());
                    return;
                }
            },
            _ => None,
        };
        let broadcasts = ifaddr::ipv4_broadcasts();
        self.bcast.local_broadcasts = broadcasts.iter().map(|b| b.broadcast).collect();
        for s in &mut self.bcast.senders {
            s.ifindex = ifaddr::index_of(&s.interface);
            s.broadcast = broadcasts
                .iter()
                .find(|b| b.interface == s.interface)
                .map(|b| b.broadcast);
        }
        let label = self.label();
        for l in &mut self.bcast.listeners {
            let Some(group) = l.group else { continue };
            let Some(index) = ifaddr::index_of(&l.interface) else {
                l.joined = None;
                continue;
            };
            let want_v6 = group.is_ipv6();
            let Some(socket) = self.servers.iter().find(|s| s.is_ipv6() == want_v6) else {
                continue;
            };
            match socket.join_multicast(group, index) {
                Ok(()) if l.joined != Some(index) => {
                    crate::info!("{label}joined {group} on {}", l.interface);
                    l.joined = Some(index);
                }
                Ok(()) => {}
                Err(e) => {
                    crate::debug!("{label}cannot join {group} on {}: {e}", l.interface);
                    l.joined = None;
                }
            }
        }
    }

    /// Directed broadcast addresses of the instance's interfaces (as of the last refresh).
    pub(super) fn local_broadcasts(&self) -> &[Ipv4Addr] {
        &self.bcast.local_broadcasts
    }

    /// Whether a request's destination is a broadcast or multicast address (never answered).
    pub(super) fn to_broadcast_address(&self, meta: &RecvMeta) -> bool {
        match meta.destination {
            Some(IpAddr::V4(a)) => {
                a.is_broadcast() || a.is_multicast() || self.bcast.local_broadcasts.contains(&a)
            }
            Some(IpAddr::V6(a)) => a.is_multicast(),
            None => false,
        }
    }

    /// Sends a broadcast client's volley request from the NTP port; false if `id` is not one.
    pub(super) fn send_to_broadcast_server(&self, id: SourceId, bytes: &[u8]) -> bool {
        let Some(route) = self.bcast.routes.iter().find(|r| r.id == id) else {
            return false;
        };
        if let Some(i) = self.socket_for(route.remote) {
            if let Err(e) = self.servers[i].send(bytes, Some(route.remote), None) {
                crate::debug!("{}request to {} failed: {e}", self.label(), route.remote);
            }
        }
        true
    }

    /// A mode 5 or mode 4 datagram on server socket `index`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn broadcast_packet(
        &mut self,
        data: &[u8],
        meta: &RecvMeta,
        rx_local: NtpTimestamp,
        system: &mut System,
        now: Mono,
    ) -> Option<ClockAdjustment> {
        self.counters.received += 1;
        if meta.len > RECV_BUF {
            count(&mut self.counters, "malformed");
            return None;
        }
        if let Some(reason) = self.interface_drop(meta) {
            count(&mut self.counters, reason);
            return None;
        }
        let Ok(packet) = wire::parse(data) else {
            count(&mut self.counters, "malformed");
            return None;
        };
        let source = access::canonical(meta.source.ip());
        let known = self
            .bcast
            .routes
            .iter()
            .find(|r| access::canonical(r.remote.ip()) == source)
            .map(|r| r.id);
        if let Some(id) = known {
            return match system.handle_reply(id, now, rx_local, &packet) {
                Ok(adj) => Some(adj),
                Err(reason) => {
                    crate::debug!(
                        "{}broadcast packet from {} rejected: {reason}",
                        self.label(),
                        meta.source
                    );
                    count(&mut self.counters, "broadcast-rejected");
                    None
                }
            };
        }
        if packet.header.mode != Mode::Broadcast {
            count(&mut self.counters, "not-a-request");
            return None;
        }
        let interface = meta.ifindex.and_then(crate::ifname::name_of);
        let multicast = meta.destination.is_some_and(|d| d.is_multicast());
        let listening = self.bcast.listeners.iter().any(|l| {
            Some(&l.interface) == interface.as_ref()
                && match l.group {
                    Some(g) => meta.destination == Some(g),
                    None => !multicast,
                }
        });
        if !listening {
            count(&mut self.counters, "broadcast-not-configured");
            return None;
        }
        if self
            .gate
            .policy
            .check(source, Mode::SymmetricActive)
            .is_err()
        {
            count(&mut self.counters, "broadcast-access");
            return None;
        }
        let origin = meridian_proto::system::DynamicOrigin {
            vpn: self.name.clone(),
            address: source,
        };
        match system.accept_broadcast_in(
            origin,
            &packet,
            &self.server_keys,
            self.auth_enabled,
            ReferenceId::from_ip(source),
            multicast,
            now,
        ) {
            Ok(id) => {
                crate::info!(
                    "{}{} client association with {}",
                    self.label(),
                    if multicast { "multicast" } else { "broadcast" },
                    meta.source
                );
                self.bcast.routes.push(BroadcastRoute {
                    id,
                    remote: meta.source,
                });
            }
            Err(refusal) => count(&mut self.counters, refusal.as_str()),
        }
        None
    }
}
