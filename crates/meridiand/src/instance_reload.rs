//! Adding and removing the configured associations of a running instance, for a
//! configuration reload: a new association gets its socket opened inside the instance's
//! namespace (or on its VRF device) exactly as at start-up; a removed one loses its socket,
//! its route and its slot in the `System`. Associations that did not change are not touched.

use super::{peers::PeerRoute, Binding, ClientSocket, ClientSpec, Instance};
use crate::udp::UdpSocket;
use meridian_proto::entropy::Entropy;
use meridian_proto::system::{SourceId, System};
use meridian_proto::time::Mono;
use meridian_proto::wire::ReferenceId;
use std::io;
use std::net::SocketAddr;

impl Instance {
    /// Opens a client association's connected socket (random port, RFC 9109) where this
    /// instance lives: `Ok(None)` when it cannot be opened yet (logged; retried later).
    pub(super) fn client_socket(
        &self,
        remote: SocketAddr,
        dscp: u8,
    ) -> io::Result<Option<UdpSocket>> {
        let _inside = match &self.binding {
            Binding::Netns(path) => Some(crate::netns::enter(path)?),
            _ => None,
        };
        let device = match &self.binding {
            Binding::Vrf(dev) => Some(dev.as_str()),
            _ => None,
        };
        Ok(
            super::sources::open_client_socket(remote, None, dscp, device)
                .map_err(|e| super::sources::log_unopened(&self.label(), remote, &e))
                .ok(),
        )
    }

    /// A new `[[unicast-server]]` association of this instance. A socket that cannot be
    /// opened yet (no route) is retried by `refresh_sources`, as at start-up; only entering
    /// the namespace can fail.
    pub fn add_client(
        &mut self,
        spec: &ClientSpec,
        dscp: u8,
        system: &mut System,
        now: Mono,
        rng: &mut dyn Entropy,
    ) -> io::Result<SourceId> {
        let socket = self.client_socket(spec.remote, dscp)?;
        let refid = ReferenceId::from_ip(spec.remote.ip());
        let id = system.add_client(spec.config, refid, spec.prefer, now, rng);
        self.clients.push(ClientSocket {
            id,
            remote: spec.remote,
            socket,
            source_interface: spec.source_interface.clone(),
            bound: None,
        });
        self.refresh_sources(dscp);
        Ok(id)
    }

    /// A new `[[unicast-peer]]` association of this instance (it sends from the NTP port, so
    /// the instance must have its server sockets: checked by the caller).
    pub fn add_configured_peer(
        &mut self,
        spec: &ClientSpec,
        dscp: u8,
        system: &mut System,
        now: Mono,
        rng: &mut dyn Entropy,
    ) -> SourceId {
        let refid = ReferenceId::from_ip(spec.remote.ip());
        let id = system.add_peer(spec.config, refid, spec.prefer, now, rng);
        self.peers.push(PeerRoute::configured(
            id,
            spec.remote,
            spec.source_interface.clone(),
        ));
        self.refresh_sources(dscp);
        id
    }

    /// Whether this instance has NTP-port sockets (serves, or has symmetric peers).
    pub fn has_server_sockets(&self) -> bool {
        !self.servers.is_empty()
    }

    /// The configured association of this instance to `remote` (client or peer), if any.
    pub fn configured_source(&self, remote: SocketAddr, peer: bool) -> Option<SourceId> {
        if peer {
            self.peers.iter().find(|p| p.remote == remote).map(|p| p.id)
        } else {
            self.clients
                .iter()
                .find(|c| c.remote == remote)
                .map(|c| c.id)
        }
    }

    /// Drops the socket and route of source `id` (the caller removes it from the `System`).
    pub fn remove_source(&mut self, id: SourceId) {
        self.clients.retain(|c| c.id != id);
        self.peers.retain(|p| p.id != id);
    }
}
