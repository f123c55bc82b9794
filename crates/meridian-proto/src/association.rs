//! The kinds of association a source of the [`crate::system::System`] can be (a client of a
//! server, a symmetric peer, active or passive, or a broadcast/multicast client) behind one interface, so selection, the
//! daemon and the displays need not know which. The shared result types live in
//! [`crate::client`] and are re-exported here.

use crate::auth::{AuthResult, Received};
use crate::broadcast::BroadcastClient;
use crate::checks::PacketChecks;
use crate::client::{ClientAssociation, Request};
pub use crate::client::{ClientConfig, ClientStats, ExchangeTimes, Measurement, PeerInfo, Reply};
use crate::entropy::Entropy;
use crate::peer::{PeerAssociation, PeerRole};
use crate::server::ServerState;
use crate::time::{Mono, NtpTimestamp, PollInterval};
use crate::wire::Mode;

/// One association of any kind.
#[derive(Clone, Debug)]
pub enum Association {
    Client(ClientAssociation),
    Peer(PeerAssociation),
    /// A broadcast or multicast client (dynamic, created by a mode 5 packet).
    Broadcast(BroadcastClient),
}

impl Association {
    pub fn as_client(&self) -> Option<&ClientAssociation> {
        match self {
            Association::Client(c) => Some(c),
            _ => None,
        }
    }

    pub fn as_peer(&self) -> Option<&PeerAssociation> {
        match self {
            Association::Peer(p) => Some(p),
            _ => None,
        }
    }

    pub fn as_broadcast(&self) -> Option<&BroadcastClient> {
        match self {
            Association::Broadcast(b) => Some(b),
            _ => None,
        }
    }

    /// Dynamic and idle for too long (passive peers, broadcast clients).
    pub fn expired(&self, now: Mono) -> bool {
        match self {
            Association::Client(_) => false,
            Association::Peer(p) => p.expired(now),
            Association::Broadcast(b) => b.expired(now),
        }
    }

    /// Our mode as the displays name it: `client`, `sym_active`, `sym_passive`, `bclient`
    /// or `mclient`.
    pub fn local_mode_name(&self) -> &'static str {
        match self {
            Association::Broadcast(b) if b.multicast() => "mclient",
            Association::Broadcast(_) => "bclient",
            other => other.local_mode().as_str(),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        match self {
            Association::Client(c) => c.config(),
            Association::Peer(p) => p.config(),
            Association::Broadcast(b) => b.config(),
        }
    }

    /// Our mode: client, symmetric active or symmetric passive.
    pub fn local_mode(&self) -> Mode {
        match self {
            Association::Client(_) => Mode::Client,
            Association::Peer(p) => p.local_mode(),
            Association::Broadcast(_) => Mode::Broadcast,
        }
    }

    /// The peer's mode as seen in its last genuine packet.
    pub fn peer_mode(&self) -> Option<Mode> {
        self.peer().map(|p| p.mode)
    }

    /// Configured by the user (static) rather than created by a packet (dynamic).
    pub fn configured(&self) -> bool {
        !matches!(self, Association::Peer(p) if p.role() == PeerRole::Passive)
            && !matches!(self, Association::Broadcast(_))
    }

    pub fn poll_timeout(&self) -> Option<Mono> {
        match self {
            Association::Client(c) => c.poll_timeout(),
            Association::Peer(p) => p.poll_timeout(),
            Association::Broadcast(b) => b.poll_timeout(),
        }
    }

    /// A packet to send at `now`, if due. `state` is what symmetric packets advertise.
    pub fn handle_timeout(
        &mut self,
        now: Mono,
        local_now: NtpTimestamp,
        state: &ServerState,
        rng: &mut dyn Entropy,
    ) -> Option<Request> {
        match self {
            Association::Client(c) => c.handle_timeout(now, local_now, rng),
            Association::Peer(p) => p.handle_timeout(now, local_now, state, rng),
            Association::Broadcast(b) => b.handle_timeout(now, local_now, rng),
        }
    }

    pub fn handle_packet<R: Received + ?Sized>(
        &mut self,
        now: Mono,
        local_rx: NtpTimestamp,
        packet: &R,
        precision: i8,
    ) -> Result<Reply, PacketChecks> {
        match self {
            Association::Client(c) => c.handle_packet(now, local_rx, packet, precision),
            Association::Peer(p) => p.handle_packet(now, local_rx, packet, precision),
            Association::Broadcast(b) => b.handle_packet(now, local_rx, packet, precision),
        }
    }

    pub fn apply_step(&mut self, step: f64) {
        match self {
            Association::Client(c) => c.apply_step(step),
            Association::Peer(p) => p.apply_step(step),
            Association::Broadcast(b) => b.apply_step(step),
        }
    }

    pub fn set_system_poll(&mut self, poll: PollInterval) {
        match self {
            Association::Client(c) => c.set_system_poll(poll),
            Association::Peer(p) => p.set_system_poll(poll),
            Association::Broadcast(_) => {}
        }
    }

    pub fn reach(&self) -> u8 {
        match self {
            Association::Client(c) => c.reach(),
            Association::Peer(p) => p.reach(),
            Association::Broadcast(b) => b.reach(),
        }
    }

    pub fn poll(&self) -> PollInterval {
        match self {
            Association::Client(c) => c.poll(),
            Association::Peer(p) => p.poll(),
            Association::Broadcast(b) => b.poll(),
        }
    }

    pub fn peer(&self) -> Option<&PeerInfo> {
        match self {
            Association::Client(c) => c.peer(),
            Association::Peer(p) => p.peer(),
            Association::Broadcast(b) => b.peer(),
        }
    }

    pub fn last_receive(&self) -> Option<Mono> {
        match self {
            Association::Client(c) => c.last_receive(),
            Association::Peer(p) => p.last_receive(),
            Association::Broadcast(b) => b.last_receive(),
        }
    }

    pub fn times(&self) -> ExchangeTimes {
        match self {
            Association::Client(c) => c.times(),
            Association::Peer(p) => p.times(),
            Association::Broadcast(b) => b.times(),
        }
    }

    pub fn stats(&self) -> ClientStats {
        match self {
            Association::Client(c) => c.stats(),
            Association::Peer(p) => p.stats(),
            Association::Broadcast(b) => b.stats(),
        }
    }

    pub fn last_auth(&self) -> Option<AuthResult> {
        match self {
            Association::Client(c) => c.last_auth(),
            Association::Peer(p) => p.last_auth(),
            Association::Broadcast(b) => b.last_auth(),
        }
    }

    pub fn auth_status(&self) -> &'static str {
        match self {
            Association::Client(c) => c.auth_status(),
            Association::Peer(p) => p.auth_status(),
            Association::Broadcast(b) => b.auth_status(),
        }
    }
}
