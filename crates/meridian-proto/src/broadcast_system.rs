//! The broadcast/multicast client part of the [`System`]: who may create a dynamic
//! broadcast client association (a [`BroadcastClient`]) with its first mode 5 packet.
//!
//! Creation rules (the guide's result table, attack guide B1): the caller has checked that the
//! packet arrived where a broadcast or multicast client is configured and that the sender
//! may synchronize us; here the packet must be mode 5 with a non-zero transmit timestamp;
//! with authentication enabled it must carry a valid MAC of a trusted key (the association
//! is then bound to that key); with authentication disabled it must carry no MAC at all (a
//! signed broadcast is not for an unauthenticated client: the table's "server signs, client
//! does not authenticate" row fails). A crypto-NAK never creates anything. The association
//! is dynamic: it counts against `max-dynamic-sessions` of its VPN instance, and only
//! [`System::expire_dynamic`] removes it.

use crate::association::Association;
use crate::auth::{self, AuthResult, Received};
use crate::broadcast::BroadcastClient;
use crate::client::ClientConfig;
use crate::keys::KeyTable;
use crate::system::{DynamicOrigin, Source, SourceId, System};
use crate::system_peer::PassiveRefusal;
use crate::time::Mono;
use crate::wire::{Mode, ReferenceId};

/// Why a mode 5 packet from an unknown server created no association.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BroadcastRefusal {
    /// Not mode 5, or no transmit timestamp.
    NotBroadcast,
    /// Authentication is enabled and the packet has no valid MAC of a trusted key.
    NotAuthenticated(AuthResult),
    /// Authentication is disabled and the packet carries a MAC (or a crypto-NAK).
    UnexpectedMac,
    /// The server is not synchronized (stratum 0 or 16 and above, or LI 3).
    Unsynchronized,
    /// `max-dynamic-sessions` reached.
    DynamicLimit,
    /// All associations in use.
    TotalLimit,
}

impl BroadcastRefusal {
    /// Counter name.
    pub fn as_str(self) -> &'static str {
        match self {
            BroadcastRefusal::NotBroadcast => "not-broadcast",
            BroadcastRefusal::NotAuthenticated(_) => "broadcast-not-authenticated",
            BroadcastRefusal::UnexpectedMac => "broadcast-unexpected-mac",
            BroadcastRefusal::Unsynchronized => "broadcast-unsynchronized",
            BroadcastRefusal::DynamicLimit => "dynamic-limit",
            BroadcastRefusal::TotalLimit => "association-limit",
        }
    }
}

/// Whether the client side accepts a mode 5 packet's MAC under the table's rules; returns
/// the key to bind. Shared by creation and by the table tests.
pub fn client_accepts<R: Received + ?Sized>(
    packet: &R,
    keys: &KeyTable,
    auth_enabled: bool,
) -> Result<Option<crate::keys::Key>, BroadcastRefusal> {
    let result = auth::verify(keys, packet.authenticated(), packet.mac());
    match (auth_enabled, result) {
        (true, AuthResult::Ok(id)) => keys
            .get(id)
            .copied()
            .map(Some)
            .ok_or(BroadcastRefusal::NotAuthenticated(result)),
        (true, other) => Err(BroadcastRefusal::NotAuthenticated(other)),
        (false, AuthResult::NoMac) => Ok(None),
        (false, _) => Err(BroadcastRefusal::UnexpectedMac),
    }
}

impl System {
    /// A mode 5 packet from a server with no association, received at `now` (local time
    /// `local_rx` is unused until the volley). Creates a dynamic broadcast client association
    /// (`multicast`: it came to a multicast group) and returns its id; its first poll sends
    /// the volley's first request. `refid` identifies the server to our clients.
    pub fn accept_broadcast<R: Received + ?Sized>(
        &mut self,
        packet: &R,
        keys: &KeyTable,
        auth_enabled: bool,
        refid: ReferenceId,
        multicast: bool,
        now: Mono,
    ) -> Result<SourceId, BroadcastRefusal> {
        self.accept_broadcast_from(None, packet, keys, auth_enabled, refid, multicast, now)
    }

    /// [`Self::accept_broadcast`] for a packet from `origin` (its VPN instance and source
    /// address): the dynamic limit is that instance's.
    #[allow(clippy::too_many_arguments)]
    pub fn accept_broadcast_in<R: Received + ?Sized>(
        &mut self,
        origin: DynamicOrigin,
        packet: &R,
        keys: &KeyTable,
        auth_enabled: bool,
        refid: ReferenceId,
        multicast: bool,
        now: Mono,
    ) -> Result<SourceId, BroadcastRefusal> {
        self.accept_broadcast_from(
            Some(origin),
            packet,
            keys,
            auth_enabled,
            refid,
            multicast,
            now,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn accept_broadcast_from<R: Received + ?Sized>(
        &mut self,
        origin: Option<DynamicOrigin>,
        packet: &R,
        keys: &KeyTable,
        auth_enabled: bool,
        refid: ReferenceId,
        multicast: bool,
        now: Mono,
    ) -> Result<SourceId, BroadcastRefusal> {
        let h = packet.header();
        if h.mode != Mode::Broadcast || h.transmit_ts.is_zero() {
            return Err(BroadcastRefusal::NotBroadcast);
        }
        let key = client_accepts(packet, keys, auth_enabled)?;
        if h.leap == crate::wire::Leap::Unsynchronized || h.stratum == 0 || h.stratum >= 16 {
            return Err(BroadcastRefusal::Unsynchronized);
        }
        match self.room_for_dynamic(origin.as_ref()) {
            Err(PassiveRefusal::TotalLimit) => return Err(BroadcastRefusal::TotalLimit),
            Err(_) => return Err(BroadcastRefusal::DynamicLimit),
            Ok(()) => {}
        }
        let config = ClientConfig {
            key,
            ..ClientConfig::default()
        };
        let mut assoc = BroadcastClient::new(config, multicast, h, now);
        if let Some(k) = key {
            assoc.set_last_auth(AuthResult::Ok(k.id()));
        }
        let mut source = Source::new(Association::Broadcast(assoc), refid, false);
        source.origin = origin;
        Ok(self.insert(source))
    }
}
