//! The symmetric modes of one instance: mode 1 and 2 packets arriving on its NTP-port
//! sockets (and mode 4 answers to an active association's calibration requests) go to the
//! peer association of their source address (configured or dynamic), or,
//! for a mode 1 packet from an unknown address, through the access gate (the `peer` right)
//! to the creation of a passive association. Every symmetric packet leaves from the NTP port
//! (RFC 5905 section 9.1), from the server socket of the right address family. A configured
//! peer's packets carry the primary address of its source interface (`source-interface`, its
//! own or the instance's default) as their source address, set per packet (IP_PKTINFO /
//! IPV6_PKTINFO) since the socket is shared; without one, or while that interface is down, the
//! kernel picks the outgoing interface's address. A passive association answers from the
//! address its peer wrote to.

use super::{Instance, ServerCounters, RECV_BUF};
use crate::clock::Clock;
use crate::udp::RecvMeta;
use meridian_proto::access;
use meridian_proto::discipline::ClockAdjustment;
use meridian_proto::entropy::Entropy;
use meridian_proto::system::{DynamicOrigin, SourceId, System};
use meridian_proto::time::{Mono, NtpTimestamp};
use meridian_proto::wire::{self, Mode, ReferenceId};
use std::net::{IpAddr, SocketAddr};

/// Where the packets of one symmetric association go.
#[derive(Clone, Debug)]
pub struct PeerRoute {
    pub id: SourceId,
    /// The peer's address (for a configured peer: with its configured port).
    pub remote: SocketAddr,
    /// A configured peer's own `source-interface` (the instance's default applies when absent).
    pub source_interface: Option<String>,
    /// The source address its packets leave from (`None`: the outgoing interface's): for a
    /// configured peer kept up to date by `refresh_sources`, for a passive one the address
    /// the first packet arrived on.
    pub source: Option<IpAddr>,
    /// Created by an incoming mode 1 packet (passive), not configured.
    pub dynamic: bool,
}

impl PeerRoute {
    /// A configured peer's route; its source is chosen by the next `refresh_sources`.
    pub fn configured(id: SourceId, remote: SocketAddr, source_interface: Option<String>) -> Self {
        Self {
            id,
            remote,
            source_interface,
            source: None,
            dynamic: false,
        }
    }
}

/// Whether a datagram is a symmetric-mode packet (mode 1 or 2).
pub fn is_symmetric(data: &[u8]) -> bool {
    data.first().is_some_and(|b| {
        matches!(
            Mode::from_bits(b & 7),
            Mode::SymmetricActive | Mode::SymmetricPassive
        )
    })
}

fn count(counters: &mut ServerCounters, reason: &'static str) {
    *counters.dropped.entry(reason).or_default() += 1;
}

impl Instance {
    /// The symmetric associations of this instance.
    pub fn peers(&self) -> &[PeerRoute] {
        &self.peers
    }

    /// Forgets the routes of removed (expired) sources.
    pub fn forget_sources(&mut self, gone: &[SourceId]) {
        self.peers.retain(|p| !gone.contains(&p.id));
        self.bcast.routes.retain(|r| !gone.contains(&r.id));
    }

    /// Sends a configured peer's mode 1 packet from the NTP port; false if `id` is not ours.
    pub(super) fn send_to_peer(&self, id: SourceId, bytes: &[u8]) -> bool {
        let Some(route) = self.peers.iter().find(|p| p.id == id) else {
            return false;
        };
        match self.socket_for(route.remote) {
            Some(i) => {
                let socket = &self.servers[i];
                let source = route
                    .source
                    .filter(|s| s.is_ipv6() == route.remote.is_ipv6());
                let mut sent = socket.send(bytes, Some(route.remote), source);
                if source.is_some() && sent.is_err() {
                    // The address may have gone since the last check: the routing table's
                    // choice now, the interface's again after the next `refresh_sources`.
                    sent = socket.send(bytes, Some(route.remote), None);
                }
                if let Err(e) = sent {
                    crate::debug!(
                        "{}packet to peer {} failed: {e}",
                        self.label(),
                        route.remote
                    );
                }
            }
            None => crate::debug!("{}no NTP-port socket for {}", self.label(), route.remote),
        }
        true
    }

    /// The server socket of the remote's address family (IPv4 first, then IPv6).
    pub(super) fn socket_for(&self, remote: SocketAddr) -> Option<usize> {
        let want_v4 = remote.is_ipv4();
        self.servers
            .iter()
            .position(|s| s.local_addr().is_ok_and(|a| a.is_ipv4() == want_v4))
    }

    /// A mode 4 datagram from the address of one of our symmetric associations: the answer
    /// to an active association's mode 3 calibration request (or a kiss).
    pub(super) fn is_peer_answer(&self, data: &[u8], meta: &RecvMeta) -> bool {
        let mode4 = data
            .first()
            .is_some_and(|b| Mode::from_bits(b & 7) == Mode::Server);
        let source = access::canonical(meta.source.ip());
        mode4
            && self
                .peers
                .iter()
                .any(|p| access::canonical(p.remote.ip()) == source)
    }

    /// A mode 1 or 2 datagram (or a peer's mode 4 answer) on server socket `index`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn symmetric(
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
        self.counters.received += 1;
        if meta.source.port() == 0 {
            count(&mut self.counters, "source-port-zero");
            return None;
        }
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
        if let Some(dst) = meta.destination {
            system.add_own_address(dst);
        }
        let source = access::canonical(meta.source.ip());
        let known = self
            .peers
            .iter()
            .find(|p| access::canonical(p.remote.ip()) == source)
            .map(|p| p.id);
        if let Some(id) = known {
            let out = system.handle_symmetric(id, now, rx_local, &packet, rng, || clock.now());
            if let Some(reply) = out.reply {
                self.reply(index, &reply, meta);
            }
            if out.removed {
                crate::info!(
                    "{}symmetric passive association with {} removed (kiss)",
                    self.label(),
                    meta.source
                );
                self.forget_sources(&[id]);
            }
            return match out.result {
                Ok(adj) => Some(adj),
                Err(reason) => {
                    crate::debug!(
                        "{}peer packet from {} rejected: {reason}",
                        self.label(),
                        meta.source
                    );
                    count(&mut self.counters, "peer-rejected");
                    None
                }
            };
        }
        if packet.header.mode != Mode::SymmetricActive {
            count(&mut self.counters, "no-association");
            return None;
        }
        // A new peer: the access right (`peer`) and the rate limit first.
        if !self.admit(index, data, meta, now, rng) {
            return None;
        }
        let refid = ReferenceId::from_ip(source);
        let origin = DynamicOrigin {
            vpn: self.name.clone(),
            address: source,
        };
        match system.accept_passive_in(
            origin,
            &packet,
            &self.server_keys,
            self.auth_enabled,
            refid,
            now,
            rx_local,
            rng,
            || clock.now(),
        ) {
            Ok((id, reply)) => {
                crate::info!(
                    "{}symmetric passive association with {}",
                    self.label(),
                    meta.source
                );
                self.peers.push(PeerRoute {
                    id,
                    remote: meta.source,
                    source_interface: None,
                    source: meta.destination,
                    dynamic: true,
                });
                self.reply(index, &reply, meta);
            }
            Err(refusal) => count(&mut self.counters, refusal.as_str()),
        }
        None
    }

    fn reply(&mut self, index: usize, bytes: &[u8], meta: &RecvMeta) {
        match self.servers[index].send(bytes, Some(meta.source), meta.destination) {
            Ok(_) => self.counters.answered += 1,
            Err(e) => {
                crate::debug!("{}answer to peer {} failed: {e}", self.label(), meta.source);
                count(&mut self.counters, "send-error");
            }
        }
    }

    /// The interface checks of the server path: receive disabled, loopback source from a
    /// real interface.
    pub(super) fn interface_drop(&self, meta: &RecvMeta) -> Option<&'static str> {
        if !self.receive_disabled.is_empty() {
            let name = meta.ifindex.and_then(crate::ifname::name_of);
            if name.is_some_and(|n| self.receive_disabled.contains(&n)) {
                return Some("interface-disabled");
            }
        }
        let loopback_spoofed = access::is_loopback(meta.source.ip())
            && meta
                .ifindex
                .is_some_and(|i| !crate::ifname::is_loopback_interface(i));
        loopback_spoofed.then_some("loopback-spoofed")
    }
}
