//! The symmetric part of the [`System`]: configured (active) peers, the dynamic passive
//! associations that an authorised mode 1 packet creates, their limits and their expiry, and
//! the addresses that identify us (a peer advertising one as its reference is synchronized
//! to us and never selected).
//!
//! Passive creation rules (attack guide 1.E, RFC 8633 section 5.6): the caller has already
//! checked the sender's `peer` access right; here the packet must be mode 1 with a non-zero
//! transmit timestamp; with authentication enabled it must carry a valid MAC of a trusted key
//! (the new association is bound to that key), without it it must carry no MAC at all; a
//! crypto-NAK never creates anything. Dynamic associations are at most `max-dynamic-sessions`
//! per VPN instance (the public network is one; lowering the limit keeps existing ones,
//! refuses new ones), one address holds at most one passive association per instance, and
//! all associations together are at most [`MAX_ASSOCIATIONS`]. A passive association is removed by [`System::expire_dynamic`],
//! after [`crate::peer::DYNAMIC_TIMEOUT`] without a genuine packet, or by a genuine DENY or
//! RSTR kiss (origin one of its transmit timestamps, valid MAC when keyed): no other packet
//! removes one.

use crate::association::Association;
use crate::auth::{self, AuthResult, Received};
use crate::client::{ClientConfig, Reply, Request};
use crate::discipline::ClockAdjustment;
use crate::entropy::Entropy;
use crate::keys::KeyTable;
use crate::peer::{PeerAssociation, PeerRole};
use crate::system::{DynamicOrigin, Source, SourceId, SyncSource, System};
use crate::time::{Mono, NtpTimestamp};
use crate::wire::{Mode, ReferenceId};
use core::time::Duration;
use std::net::IpAddr;

/// Default `max-dynamic-sessions`.
pub const DEFAULT_MAX_DYNAMIC: usize = 100;
/// Largest `max-dynamic-sessions`.
pub const MAX_DYNAMIC_LIMIT: usize = 100;
/// Associations of all kinds at most (Comware: 128).
pub const MAX_ASSOCIATIONS: usize = 128;
/// Own reference ids remembered for the loop check.
const MAX_OWN_REFIDS: usize = 32;

/// Why a mode 1 packet from an unknown peer created no association.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PassiveRefusal {
    /// Not mode 1, or no transmit timestamp.
    NotActive,
    /// Authentication is enabled and the packet has no valid MAC of a trusted key.
    NotAuthenticated(AuthResult),
    /// Authentication is disabled and the packet carries a MAC (or a crypto-NAK).
    UnexpectedMac,
    /// `max-dynamic-sessions` reached.
    DynamicLimit,
    /// [`MAX_ASSOCIATIONS`] reached.
    TotalLimit,
    /// The sender's address already has a passive association in this VPN instance.
    AddressInUse,
}

impl PassiveRefusal {
    /// Counter name.
    pub fn as_str(self) -> &'static str {
        match self {
            PassiveRefusal::NotActive => "not-symmetric-active",
            PassiveRefusal::NotAuthenticated(_) => "peer-not-authenticated",
            PassiveRefusal::UnexpectedMac => "peer-unexpected-mac",
            PassiveRefusal::DynamicLimit => "dynamic-limit",
            PassiveRefusal::TotalLimit => "association-limit",
            PassiveRefusal::AddressInUse => "peer-address-in-use",
        }
    }
}

/// What a symmetric packet for a known association led to.
#[derive(Debug)]
pub struct SymmetricOutcome {
    /// The clock adjustment to execute, or why the packet was rejected.
    pub result: Result<ClockAdjustment, &'static str>,
    /// The passive side's mode 2 answer, to send from the NTP port to the packet's source.
    pub reply: Option<Request>,
    /// A genuine DENY or RSTR kiss removed this (passive) association: the owner forgets
    /// its route.
    pub removed: bool,
}

impl System {
    /// Adds a configured symmetric-active association toward a peer whose reference ID (to
    /// our clients) is `refid`.
    pub fn add_peer(
        &mut self,
        config: ClientConfig,
        refid: ReferenceId,
        prefer: bool,
        now: Mono,
        rng: &mut dyn Entropy,
    ) -> SourceId {
        let assoc = PeerAssociation::active(config, now, Duration::from_secs(1), rng);
        self.insert(Source::new(Association::Peer(assoc), refid, prefer))
    }

    /// Sets `max-dynamic-sessions` (clamped to 0..=100). Existing dynamic associations stay.
    pub fn set_max_dynamic(&mut self, max: usize) {
        self.max_dynamic = max.min(MAX_DYNAMIC_LIMIT);
    }

    pub fn max_dynamic(&self) -> usize {
        self.max_dynamic
    }

    /// Dynamic associations (passive peers, broadcast clients) now, in all VPN instances.
    pub fn dynamic_count(&self) -> usize {
        self.sources()
            .filter(|(_, s)| !s.association.configured())
            .count()
    }

    /// Dynamic associations of VPN instance `vpn` (`None`: the public network, which also
    /// holds those created without an origin).
    pub fn dynamic_count_in(&self, vpn: Option<&str>) -> usize {
        self.sources()
            .filter(|(_, s)| {
                !s.association.configured()
                    && s.origin.as_ref().and_then(|o| o.vpn.as_deref()) == vpn
            })
            .count()
    }

    /// Whether a new dynamic association from `origin` fits: `max-dynamic-sessions` per VPN
    /// instance and [`MAX_ASSOCIATIONS`] in all.
    pub(crate) fn room_for_dynamic(
        &self,
        origin: Option<&DynamicOrigin>,
    ) -> Result<(), PassiveRefusal> {
        let vpn = origin.and_then(|o| o.vpn.as_deref());
        if self.dynamic_count_in(vpn) >= self.max_dynamic {
            return Err(PassiveRefusal::DynamicLimit);
        }
        if self.sources().count() >= MAX_ASSOCIATIONS {
            return Err(PassiveRefusal::TotalLimit);
        }
        Ok(())
    }

    /// Registers one of our own addresses (a destination of received packets): a source whose
    /// reference ID is this address is synchronized to us and is never selected.
    pub fn add_own_address(&mut self, addr: IpAddr) {
        let refid = ReferenceId::from_ip(crate::access::canonical(addr));
        if !self.own_refids.contains(&refid) {
            if self.own_refids.len() == MAX_OWN_REFIDS {
                self.own_refids.remove(0);
            }
            self.own_refids.push(refid);
        }
    }

    /// A symmetric packet (mode 1 or 2) from the address of the peer association `id`.
    /// `transmit_time` is read last, for the passive side's answer.
    pub fn handle_symmetric<R: Received + ?Sized>(
        &mut self,
        id: SourceId,
        now: Mono,
        local_rx: NtpTimestamp,
        packet: &R,
        rng: &mut dyn Entropy,
        transmit_time: impl FnOnce() -> NtpTimestamp,
    ) -> SymmetricOutcome {
        let precision = self.config.precision;
        let state = self.server_state(now);
        let Some(source) = self.source_mut(id) else {
            return SymmetricOutcome {
                result: Err("unknown source"),
                reply: None,
                removed: false,
            };
        };
        let Association::Peer(peer) = &mut source.association else {
            return SymmetricOutcome {
                result: Err("not a peer"),
                reply: None,
                removed: false,
            };
        };
        let reply = match peer.handle_packet(now, local_rx, packet, precision) {
            Ok(r) => r,
            Err(c) => {
                return SymmetricOutcome {
                    result: Err(c.first_failure().unwrap_or("rejected")),
                    reply: None,
                    removed: false,
                }
            }
        };
        if let Reply::Kiss(code) = reply {
            // Never answered, never a sample. DENY/RSTR: an active association has stopped
            // itself; a passive one is removed.
            let stop = matches!(code, ReferenceId::KISS_DENY | ReferenceId::KISS_RSTR);
            let removed = stop && peer.role() == PeerRole::Passive;
            if removed {
                self.remove_source(id);
            } else if stop && self.vars.sync == SyncSource::Peer(id) {
                self.unsynchronize();
            }
            return SymmetricOutcome {
                result: Ok(ClockAdjustment::None),
                reply: None,
                removed,
            };
        }
        let answer = (peer.role() == PeerRole::Passive)
            .then(|| peer.respond(packet.header(), local_rx, &state, rng, transmit_time));
        SymmetricOutcome {
            result: Ok(self.use_reply(id, reply, now, local_rx)),
            reply: answer,
            removed: false,
        }
    }

    /// A mode 1 packet from a sender with no association whose `peer` right the caller has
    /// checked: creates a passive association and returns it with its answer, or says why
    /// not (then nothing changed). `keys` are the instance's keys; `auth_enabled` says
    /// whether authentication is on. `refid` identifies the sender to our clients. Counted
    /// with the public network's dynamic associations; the daemon uses
    /// [`Self::accept_passive_in`].
    #[allow(clippy::too_many_arguments)]
    pub fn accept_passive<R: Received + ?Sized>(
        &mut self,
        packet: &R,
        keys: &KeyTable,
        auth_enabled: bool,
        refid: ReferenceId,
        now: Mono,
        local_rx: NtpTimestamp,
        rng: &mut dyn Entropy,
        transmit_time: impl FnOnce() -> NtpTimestamp,
    ) -> Result<(SourceId, Request), PassiveRefusal> {
        self.accept_passive_from(
            None,
            packet,
            keys,
            auth_enabled,
            refid,
            now,
            local_rx,
            rng,
            transmit_time,
        )
    }

    /// [`Self::accept_passive`] for a packet from `origin` (the VPN instance it arrived in
    /// and its source address): the dynamic limit is that instance's, and an address that
    /// already has a passive association in that instance gets no second one.
    #[allow(clippy::too_many_arguments)]
    pub fn accept_passive_in<R: Received + ?Sized>(
        &mut self,
        origin: DynamicOrigin,
        packet: &R,
        keys: &KeyTable,
        auth_enabled: bool,
        refid: ReferenceId,
        now: Mono,
        local_rx: NtpTimestamp,
        rng: &mut dyn Entropy,
        transmit_time: impl FnOnce() -> NtpTimestamp,
    ) -> Result<(SourceId, Request), PassiveRefusal> {
        self.accept_passive_from(
            Some(origin),
            packet,
            keys,
            auth_enabled,
            refid,
            now,
            local_rx,
            rng,
            transmit_time,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn accept_passive_from<R: Received + ?Sized>(
        &mut self,
        origin: Option<DynamicOrigin>,
        packet: &R,
        keys: &KeyTable,
        auth_enabled: bool,
        refid: ReferenceId,
        now: Mono,
        local_rx: NtpTimestamp,
        rng: &mut dyn Entropy,
        transmit_time: impl FnOnce() -> NtpTimestamp,
    ) -> Result<(SourceId, Request), PassiveRefusal> {
        let h = packet.header();
        if h.mode != Mode::SymmetricActive || h.transmit_ts.is_zero() {
            return Err(PassiveRefusal::NotActive);
        }
        let result = auth::verify(keys, packet.authenticated(), packet.mac());
        let key = match (auth_enabled, result) {
            (true, AuthResult::Ok(id)) => keys.get(id).copied(),
            (true, other) => return Err(PassiveRefusal::NotAuthenticated(other)),
            (false, AuthResult::NoMac) => None,
            (false, _) => return Err(PassiveRefusal::UnexpectedMac),
        };
        if key.is_none() && auth_enabled {
            return Err(PassiveRefusal::NotAuthenticated(result));
        }
        if let Some(o) = &origin {
            let address = crate::access::canonical(o.address);
            let taken = self.sources().any(|(_, s)| {
                s.association
                    .as_peer()
                    .is_some_and(|p| p.role() == PeerRole::Passive)
                    && s.origin.as_ref().is_some_and(|x| {
                        x.vpn == o.vpn && crate::access::canonical(x.address) == address
                    })
            });
            if taken {
                return Err(PassiveRefusal::AddressInUse);
            }
        }
        self.room_for_dynamic(origin.as_ref())?;
        let config = ClientConfig {
            version: h.version.clamp(1, 4),
            key,
            ..ClientConfig::default()
        };
        let state = self.server_state(now);
        let mut assoc = PeerAssociation::passive(config, h, now, local_rx);
        if key.is_some() {
            assoc.set_last_auth(result);
        }
        let reply = assoc.respond(h, local_rx, &state, rng, transmit_time);
        let mut source = Source::new(Association::Peer(assoc), refid, false);
        source.origin = origin;
        let id = self.insert(source);
        Ok((id, reply))
    }

    /// Removes the dynamic associations (passive peers, broadcast clients) idle for too long; returns their ids so the owner
    /// forgets their routes (their slots may be reused afterwards).
    pub fn expire_dynamic(&mut self, now: Mono) -> Vec<SourceId> {
        let expired: Vec<SourceId> = self
            .sources()
            .filter(|(_, s)| s.association.expired(now))
            .map(|(id, _)| id)
            .collect();
        for &id in &expired {
            self.sources[id.0] = None;
            if self.vars.sync == SyncSource::Peer(id) {
                self.unsynchronize();
            }
        }
        expired
    }
}

#[cfg(test)]
#[path = "system_peer_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "system_dynamic_tests.rs"]
mod dynamic_tests;
