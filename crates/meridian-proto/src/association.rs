//! The kinds of association a source of the [`crate::system::System`] can be (a client of a
//! server, or a symmetric peer, active or passive) behind one interface, so selection, the
//! daemon and the displays need not know which. The shared result types live in
//! [`crate::client`] and are re-exported here.

use crate::auth::{AuthResult, Received};
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

    pub fn config(&self) -> &ClientConfig {
        match self {
            Association::Client(c) => c.config(),
            Association::Peer(p) => p.config(),
        }
    }

    /// Our mode: client, symmetric active or symmetric passive.
    pub fn local_mode(&self) -> Mode {
        match self {
            Association::Client(_) => Mode::Client,
            Association::Peer(p) => p.local_mode(),
        }
    }

    /// The peer's mode as seen in its last genuine packet.
    pub fn peer_mode(&self) -> Option<Mode> {
        self.peer().map(|p| p.mode)
    }

    /// Configured by the user (static) rather than created by a packet (dynamic).
    pub fn configured(&self) -> bool {
        !matches!(self, Association::Peer(p) if p.role() == PeerRole::Passive)
    }

    pub fn poll_timeout(&self) -> Option<Mono> {
        match self {
            Association::Client(c) => c.poll_timeout(),
            Association::Peer(p) => p.poll_timeout(),
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
        }
    }

    pub fn apply_step(&mut self, step: f64) {
        match self {
            Association::Client(c) => c.apply_step(step),
            Association::Peer(p) => p.apply_step(step),
        }
    }

    pub fn set_system_poll(&mut self, poll: PollInterval) {
        match self {
            Association::Client(c) => c.set_system_poll(poll),
            Association::Peer(p) => p.set_system_poll(poll),
        }
    }

    pub fn reach(&self) -> u8 {
        match self {
            Association::Client(c) => c.reach(),
            Association::Peer(p) => p.reach(),
        }
    }

    pub fn poll(&self) -> PollInterval {
        match self {
            Association::Client(c) => c.poll(),
            Association::Peer(p) => p.poll(),
        }
    }

    pub fn peer(&self) -> Option<&PeerInfo> {
        match self {
            Association::Client(c) => c.peer(),
            Association::Peer(p) => p.peer(),
        }
    }

    pub fn last_receive(&self) -> Option<Mono> {
        match self {
            Association::Client(c) => c.last_receive(),
            Association::Peer(p) => p.last_receive(),
        }
    }

    pub fn times(&self) -> ExchangeTimes {
        match self {
            Association::Client(c) => c.times(),
            Association::Peer(p) => p.times(),
        }
    }

    pub fn stats(&self) -> ClientStats {
        match self {
            Association::Client(c) => c.stats(),
            Association::Peer(p) => p.stats(),
        }
    }

    pub fn last_auth(&self) -> Option<AuthResult> {
        match self {
            Association::Client(c) => c.last_auth(),
            Association::Peer(p) => p.last_auth(),
        }
    }

    pub fn auth_status(&self) -> &'static str {
        match self {
            Association::Client(c) => c.auth_status(),
            Association::Peer(p) => p.auth_status(),
        }
    }
}
