//! Faults the simulator injects between the protocol cores: per-direction links,
//! duplicated and reordered packets, links that are up only part of the time, nodes that
//! leave and return, external clock steps, and leap seconds announced by a server.

use crate::{Link, Simulation};
use meridian_proto::server::ServerState;
use meridian_proto::wire::Leap;
use std::collections::BTreeMap;

/// A link that is up for `up` seconds of every `period`, starting `phase` seconds into
/// the period at true time 0 (so `phase = 0` means up from time 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub period: f64,
    pub up: f64,
    pub phase: f64,
}

impl Schedule {
    /// Whether the link is up at true time `t`.
    pub fn is_up(&self, t: f64) -> bool {
        if self.period <= 0.0 {
            return true;
        }
        (t + self.phase).rem_euclid(self.period) < self.up
    }
}

/// What happens to packets on one direction of a link, besides delay, jitter and loss.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkFaults {
    /// Every packet arrives this many times (0 and 1: once), each copy with its own delay.
    pub duplicate: u32,
    /// Probability that a packet is held back by `reorder_delay`, so later ones overtake it.
    pub reorder: f64,
    /// Extra delay of a held-back packet, seconds.
    pub reorder_delay: f64,
    /// Periodic up/down schedule; `None`: always up (unless in a `down` window).
    pub schedule: Option<Schedule>,
    /// Windows `[from, until)` of true time during which the link is down.
    pub down: Vec<(f64, f64)>,
}

/// A leap second announced by a server from `from` until the leap at `at`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeapAnnouncement {
    pub node: usize,
    pub from: f64,
    pub at: f64,
    pub leap: Leap,
}

/// Faults of one simulation. Empty by default: the simulation then behaves (and draws
/// random numbers) exactly as without it.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    links: BTreeMap<(usize, usize), LinkFaults>,
    /// (node, from, until): the node neither sends nor receives in `[from, until)`.
    offline: Vec<(usize, f64, f64)>,
    leaps: Vec<LeapAnnouncement>,
}

impl Faults {
    /// The faults of the link `from -> to` (default: none).
    pub fn link_faults(&self, from: usize, to: usize) -> LinkFaults {
        self.links.get(&(from, to)).cloned().unwrap_or_default()
    }

    /// Whether `node` is away at true time `t`.
    pub fn offline(&self, node: usize, t: f64) -> bool {
        self.offline
            .iter()
            .any(|&(n, from, until)| n == node && t >= from && t < until)
    }

    /// Whether the link `from -> to` carries packets at true time `t`.
    pub fn link_up(&self, from: usize, to: usize, t: f64) -> bool {
        let Some(f) = self.links.get(&(from, to)) else {
            return true;
        };
        let scheduled = match f.schedule {
            Some(s) => s.is_up(t),
            None => true,
        };
        scheduled && !f.down.iter().any(|&(a, b)| t >= a && t < b)
    }

    /// The leap indicator `node` announces at `t`, if a leap announcement overrides it.
    pub fn announced_leap(&self, node: usize, t: f64) -> Option<Leap> {
        self.leaps
            .iter()
            .find(|l| l.node == node && t >= l.from && t < l.at)
            .map(|l| l.leap)
    }

    /// What `node`'s server path advertises at `t`: the core's state with an announced
    /// leap second in the leap bits (only while the node is synchronized).
    pub fn server_state(&self, node: usize, t: f64, mut state: ServerState) -> ServerState {
        if state.leap != Leap::Unsynchronized {
            if let Some(leap) = self.announced_leap(node, t) {
                state.leap = leap;
            }
        }
        state
    }
}

impl Simulation {
    /// Sets the link from `from` to `to` only (an asymmetric path).
    pub fn set_link_one_way(&mut self, from: usize, to: usize, link: Link) {
        self.links[from][to] = link;
    }

    /// Sets the faults of the link from `from` to `to` (one direction).
    pub fn set_link_faults(&mut self, from: usize, to: usize, faults: LinkFaults) {
        self.faults.links.insert((from, to), faults);
    }

    /// Takes `node` off the network during `[from, until)` (it returns at `until`).
    pub fn set_offline(&mut self, node: usize, from: f64, until: f64) {
        self.faults.offline.push((node, from, until));
    }

    /// Makes `node` announce a leap second (`Leap::AddSecond` or `Leap::DeleteSecond`) in its
    /// replies from `from` until `at`. The scenario runner executes the leap itself.
    pub fn announce_leap(&mut self, node: usize, from: f64, at: f64, leap: Leap) {
        self.faults.leaps.push(LeapAnnouncement {
            node,
            from,
            at,
            leap,
        });
    }

    /// Steps `node`'s clock by `seconds` now, behind its discipline's back (like `date -s`
    /// or a VM resume; for a server with a local reference: it becomes a falseticker). Not
    /// counted in [`crate::Node::steps`], which counts the steps the core commanded.
    pub fn step_clock(&mut self, node: usize, seconds: f64) {
        let now = self.now;
        self.nodes[node].clock.advance(now, &mut self.rng);
        self.nodes[node].clock.step(seconds);
    }

    /// An external step of `node`'s clock (see [`Self::step_clock`]) that the node notices as
    /// the daemon does (CLOCK_REALTIME moved against CLOCK_MONOTONIC_RAW) and reports to its
    /// core through the same input, [`meridian_proto::system::System::handle_external_step`].
    pub fn external_step(&mut self, node: usize, seconds: f64) {
        self.step_clock(node, seconds);
        self.nodes[node].system.handle_external_step(seconds);
    }

    /// Delays after which the copies of one packet sent now from `from` reach `to`; empty
    /// when it is lost (loss, link down, either end away).
    pub(crate) fn transit(&mut self, from: usize, to: usize) -> Vec<f64> {
        let now = self.now;
        if self.faults.offline(from, now) || !self.faults.link_up(from, to, now) {
            return Vec::new();
        }
        let link = self.links[from][to];
        let Some(first) = link.sample(&mut self.rng) else {
            return Vec::new();
        };
        let mut delays = vec![first];
        let extra = self
            .faults
            .links
            .get(&(from, to))
            .cloned()
            .unwrap_or_default();
        let copy = Link { loss: 0.0, ..link };
        for _ in 1..extra.duplicate.max(1) {
            delays.extend(copy.sample(&mut self.rng));
        }
        if extra.reorder > 0.0 {
            for d in &mut delays {
                if self.rng_f64() < extra.reorder {
                    *d += extra.reorder_delay;
                }
            }
        }
        delays.retain(|d| !self.faults.offline(to, now + d));
        delays
    }

    fn rng_f64(&mut self) -> f64 {
        use meridian_proto::entropy::Entropy;
        self.rng.next_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeSpec;

    fn pair() -> Simulation {
        let mut sim = Simulation::new(5);
        sim.add_node(NodeSpec::default());
        sim.add_node(NodeSpec::default());
        sim.set_link(0, 1, Link::lan(0.001, 0.0005));
        sim
    }

    #[test]
    fn duplication_delivers_every_copy_with_its_own_delay() {
        let mut sim = pair();
        sim.set_link_faults(
            0,
            1,
            LinkFaults {
                duplicate: 4,
                ..Default::default()
            },
        );
        let d = sim.transit(0, 1);
        assert_eq!(d.len(), 4);
        assert!(d.iter().all(|&x| x >= 0.001));
        assert!(d.windows(2).any(|w| w[0] != w[1]), "independent jitter");
        assert_eq!(
            sim.transit(1, 0).len(),
            1,
            "the other direction is untouched"
        );
    }

    #[test]
    fn reordering_holds_packets_back() {
        let mut sim = pair();
        sim.set_link_faults(
            0,
            1,
            LinkFaults {
                reorder: 0.5,
                reorder_delay: 20.0,
                ..Default::default()
            },
        );
        let held = (0..1000)
            .map(|_| sim.transit(0, 1)[0])
            .filter(|&d| d >= 20.0)
            .count();
        assert!((400..600).contains(&held), "{held} of 1000 held back");
    }

    #[test]
    fn down_links_and_absent_nodes_carry_nothing() {
        let mut sim = pair();
        sim.set_link_faults(
            0,
            1,
            LinkFaults {
                schedule: Some(Schedule {
                    period: 100.0,
                    up: 10.0,
                    phase: 0.0,
                }),
                ..Default::default()
            },
        );
        sim.set_offline(1, 500.0, 600.0);
        let mut at = |t: f64, from, to| {
            sim.now = t;
            sim.transit(from, to).len()
        };
        assert_eq!(at(5.0, 0, 1), 1);
        assert_eq!(at(50.0, 0, 1), 0, "outside the up window");
        assert_eq!(at(50.0, 1, 0), 1, "the schedule is per direction");
        assert_eq!(at(550.0, 1, 0), 0, "node 1 is away");
        assert_eq!(at(505.0, 0, 1), 0, "nothing reaches node 1 while away");
        assert_eq!(at(650.0, 1, 0), 1, "node 1 is back");
    }

    #[test]
    fn leap_bits_are_announced_only_before_the_leap_and_when_synchronized() {
        let mut sim = pair();
        sim.announce_leap(0, 100.0, 200.0, Leap::AddSecond);
        let mut synced = ServerState::unsynchronized(-20);
        synced.leap = Leap::None;
        synced.stratum = 1;
        let f = &sim.faults;
        assert_eq!(f.server_state(0, 50.0, synced).leap, Leap::None);
        assert_eq!(f.server_state(0, 150.0, synced).leap, Leap::AddSecond);
        assert_eq!(f.server_state(1, 150.0, synced).leap, Leap::None);
        assert_eq!(f.server_state(0, 200.0, synced).leap, Leap::None);
        let unsynced = ServerState::unsynchronized(-20);
        assert_eq!(
            f.server_state(0, 150.0, unsynced).leap,
            Leap::Unsynchronized
        );
    }

    #[test]
    fn schedule_is_up_for_its_share_of_the_period() {
        let s = Schedule {
            period: 86_400.0,
            up: 1800.0,
            phase: 0.0,
        };
        let up = (0..86_400).filter(|&t| s.is_up(t as f64)).count();
        assert_eq!(up, 1800);
        assert!(s.is_up(86_400.0 + 10.0));
        assert!(!s.is_up(1800.0));
    }
}
