//! A deterministic, seeded simulator that drives Meridian's real protocol core (`System`,
//! the client associations, the server path) over simulated clocks and links, thousands of
//! simulated seconds per real second. Tests use it for pass limits on accuracy; later it
//! becomes `meridianctl simulate`.
//!
//! Model: one true time axis. Every node has a [`SimClock`] (local minus true time) which its
//! own discipline corrects. A packet from A to B leaves at A's true send time, takes the
//! link's base delay plus a random jitter, and is stamped on arrival with B's clock. Each
//! node's monotonic clock is true time (its drift does not matter for scheduling).
#![forbid(unsafe_code)]

pub mod clock;
pub mod faults;
pub mod plot;
pub mod runner;
pub mod scenario;

use clock::{gaussian, SimClock};
use meridian_proto::broadcast::{BroadcastServer, BroadcastServerConfig};
use meridian_proto::client::ClientConfig;
use meridian_proto::discipline::{ClockAdjustment, DisciplineConfig};
use meridian_proto::entropy::{Entropy, SplitMix64};
use meridian_proto::keys::KeyTable;
use meridian_proto::server;
use meridian_proto::system::{LocalReference, SourceId, System, SystemConfig};
use meridian_proto::time::{Mono, PollInterval};
use meridian_proto::wire::{self, ReferenceId};
use std::collections::BinaryHeap;

/// One direction of a link: base delay plus a jitter drawn per packet.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// Fixed one-way delay, seconds.
    pub delay: f64,
    /// Scale of the random extra delay, seconds.
    pub jitter: f64,
    pub jitter_kind: Jitter,
    /// Probability that a packet is lost.
    pub loss: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Exponential with mean `jitter` (queueing-like, one-sided).
    Exponential,
    /// |normal| with standard deviation `jitter`.
    HalfNormal,
    /// Normal with standard deviation `jitter` around the base delay (never below zero).
    Normal,
    /// Uniform in `[0, jitter)`.
    Uniform,
}

impl Link {
    pub fn lan(delay: f64, jitter: f64) -> Self {
        Self {
            delay,
            jitter,
            jitter_kind: Jitter::Exponential,
            loss: 0.0,
        }
    }

    fn sample(&self, rng: &mut dyn Entropy) -> Option<f64> {
        if self.loss > 0.0 && rng.next_f64() < self.loss {
            return None;
        }
        let extra = match self.jitter_kind {
            Jitter::Exponential => -self.jitter * (1.0 - rng.next_f64()).ln(),
            Jitter::HalfNormal => self.jitter * gaussian(rng).abs(),
            Jitter::Normal => self.jitter * gaussian(rng),
            Jitter::Uniform => self.jitter * rng.next_f64(),
        };
        Some((self.delay + extra).max(0.0))
    }
}

/// A node: a protocol core plus its simulated clock.
pub struct Node {
    pub system: System,
    pub clock: SimClock,
    /// Servers this node polls: (source id in its system, index of the server node).
    pub upstream: Vec<(SourceId, usize)>,
    /// Symmetric associations, active and passive: (source id, index of the peer node).
    pub peers: Vec<(SourceId, usize)>,
    /// Broadcast/multicast servers of this node, each with the nodes that hear it.
    pub senders: Vec<Sender>,
    /// Broadcast client associations: (source id, index of the broadcasting node). They are
    /// also in `upstream`, as their delay volley is an ordinary exchange.
    pub bclients: Vec<(SourceId, usize)>,
    pub steps: u32,
}

/// A broadcast or multicast server on a node and the segment (or group) that hears it.
pub struct Sender {
    pub server: BroadcastServer,
    pub listeners: Vec<usize>,
    pub multicast: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum EventKind {
    /// The node's timers are due.
    Timer { node: usize },
    /// A request from `client` (its source `source`) reaches `server`.
    Request {
        server: usize,
        client: usize,
        source: SourceId,
        bytes: Vec<u8>,
    },
    /// A packet between peers (mode 1 or 2, or a calibration request or its mode 4 reply)
    /// from node `from` reaches node `to`.
    Symmetric {
        to: usize,
        from: usize,
        bytes: Vec<u8>,
    },
    /// A mode 5 packet from `from` reaches listener `to`.
    Broadcast {
        to: usize,
        from: usize,
        multicast: bool,
        bytes: Vec<u8>,
    },
    /// A reply reaches `client`.
    Reply {
        client: usize,
        source: SourceId,
        bytes: Vec<u8>,
    },
}

#[derive(Clone, Debug, PartialEq)]
struct Event {
    time: f64,
    seq: u64,
    kind: EventKind,
}

impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    /// Earliest first in a max-heap; ties broken by insertion order for determinism.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .time
            .total_cmp(&self.time)
            .then(other.seq.cmp(&self.seq))
    }
}

/// A simulation of nodes and links.
pub struct Simulation {
    pub nodes: Vec<Node>,
    /// links[a][b]: the link from node a to node b.
    links: Vec<Vec<Link>>,
    events: BinaryHeap<Event>,
    seq: u64,
    pub now: f64,
    rng: SplitMix64,
    /// Scheduled timer per node, to avoid duplicates.
    timer_at: Vec<Option<f64>>,
    /// Link and node faults (duplication, reordering, outages, leap announcements).
    pub faults: faults::Faults,
}

/// Static description of a node.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub initial_offset: f64,
    pub frequency_ppm: f64,
    pub wander_ppm: f64,
    pub local_reference_stratum: Option<u8>,
    pub precision: i8,
    pub discipline: DisciplineConfig,
    /// Unix time at which the simulation starts (all nodes of one simulation should agree).
    pub epoch_unix: i64,
}

impl Default for NodeSpec {
    fn default() -> Self {
        Self {
            initial_offset: 0.0,
            frequency_ppm: 0.0,
            wander_ppm: 0.0,
            local_reference_stratum: None,
            precision: -24,
            discipline: DisciplineConfig::default(),
            epoch_unix: clock::EPOCH_UNIX,
        }
    }
}

fn mono(t: f64) -> Mono {
    Mono::from_seconds(t + 1.0)
}

impl Simulation {
    pub fn new(seed: u64) -> Self {
        Self {
            nodes: Vec::new(),
            links: Vec::new(),
            events: BinaryHeap::new(),
            seq: 0,
            now: 0.0,
            rng: SplitMix64::new(seed),
            timer_at: Vec::new(),
            faults: faults::Faults::default(),
        }
    }

    /// Adds a node; returns its index.
    pub fn add_node(&mut self, spec: NodeSpec) -> usize {
        let config = SystemConfig {
            precision: spec.precision,
            local_reference: spec.local_reference_stratum.map(|stratum| LocalReference {
                stratum,
                address: std::net::Ipv4Addr::new(127, 127, 1, 0),
            }),
            discipline: spec.discipline,
            initial_frequency_ppm: 0.0,
            min_survivors: 1,
        };
        let mut system = System::new(config);
        let own = std::net::Ipv4Addr::new(198, 18, 0, self.nodes.len() as u8 + 1);
        system.add_own_address(own.into());
        system.housekeeping(mono(0.0), clock::true_timestamp(spec.epoch_unix, 0.0));
        let mut clock = SimClock::new(spec.initial_offset, spec.frequency_ppm, spec.wander_ppm);
        clock.epoch_unix = spec.epoch_unix;
        self.nodes.push(Node {
            system,
            clock,
            upstream: Vec::new(),
            peers: Vec::new(),
            senders: Vec::new(),
            bclients: Vec::new(),
            steps: 0,
        });
        let n = self.nodes.len();
        for row in &mut self.links {
            row.push(Link::lan(0.0001, 0.0));
        }
        self.links.push(vec![Link::lan(0.0001, 0.0); n]);
        self.timer_at.push(None);
        n - 1
    }

    /// Sets the link in both directions.
    pub fn set_link(&mut self, a: usize, b: usize, link: Link) {
        self.links[a][b] = link;
        self.links[b][a] = link;
    }

    /// Makes `client` poll `server`.
    pub fn add_server(&mut self, client: usize, server: usize, config: ClientConfig) {
        let refid = ReferenceId([198, 18, 0, server as u8 + 1]);
        let id = self.nodes[client].system.add_client(
            config,
            refid,
            false,
            mono(self.now),
            &mut self.rng,
        );
        self.nodes[client].upstream.push((id, server));
        self.schedule_timer(client);
    }

    /// Makes `active` a symmetric-active peer of `passive`, which gets a dynamic passive
    /// association from the first packet.
    pub fn add_peer(&mut self, active: usize, passive: usize, config: ClientConfig) {
        let refid = ReferenceId([198, 18, 0, passive as u8 + 1]);
        let id =
            self.nodes[active]
                .system
                .add_peer(config, refid, false, mono(self.now), &mut self.rng);
        self.nodes[active].peers.push((id, passive));
        self.schedule_timer(active);
    }

    /// Makes `node` a broadcast (or multicast) server every 2^`poll` s, heard by `listeners`
    /// (the broadcast client nodes of its segment, or the members of its group).
    pub fn add_broadcast_server(
        &mut self,
        node: usize,
        poll: i8,
        listeners: &[usize],
        multicast: bool,
    ) {
        let config = BroadcastServerConfig {
            version: 4,
            poll: PollInterval::new(poll),
            key: None,
        };
        let server = BroadcastServer::new(config, mono(self.now), &mut self.rng);
        self.nodes[node].senders.push(Sender {
            server,
            listeners: listeners.to_vec(),
            multicast,
        });
        self.schedule_timer(node);
    }

    /// Sends `bytes` from node `from` to node `to` over their link.
    fn send_symmetric(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        for d in self.transit(from, to) {
            let bytes = bytes.clone();
            self.push(self.now + d, EventKind::Symmetric { to, from, bytes });
        }
    }

    fn apply(&mut self, node: usize, adj: ClockAdjustment) {
        let n = &mut self.nodes[node];
        match adj {
            ClockAdjustment::None
            | ClockAdjustment::Panic { .. }
            | ClockAdjustment::BeforeFloor { .. } => {}
            ClockAdjustment::Frequency { frequency_ppm } => n.clock.correction_ppm = frequency_ppm,
            ClockAdjustment::Step {
                offset,
                frequency_ppm,
            } => {
                n.clock.step(offset);
                n.clock.correction_ppm = frequency_ppm;
                n.steps += 1;
            }
        }
    }

    fn push(&mut self, time: f64, kind: EventKind) {
        self.seq += 1;
        self.events.push(Event {
            time,
            seq: self.seq,
            kind,
        });
    }

    fn schedule_timer(&mut self, node: usize) {
        let system = &self.nodes[node].system;
        let senders = self.nodes[node].senders.iter();
        let Some(deadline) = [system.poll_timeout(), system.clock_timeout()]
            .into_iter()
            .chain(senders.map(|s| Some(s.server.poll_timeout())))
            .flatten()
            .min()
        else {
            return;
        };
        // A few nanoseconds late, so the core never finds itself just short of its deadline.
        let t = (deadline.as_seconds() - 1.0 + 4e-9).max(self.now);
        if self.timer_at[node].is_some_and(|at| at <= t && at >= self.now) {
            return;
        }
        self.timer_at[node] = Some(t);
        self.push(t, EventKind::Timer { node });
    }

    /// True offset (local minus true time) of `node` now, seconds.
    pub fn error(&mut self, node: usize) -> f64 {
        let now = self.now;
        self.nodes[node].clock.advance(now, &mut self.rng);
        self.nodes[node].clock.error()
    }

    /// Runs until true time `until`, calling `observe(sim)` every `every` seconds.
    pub fn run(&mut self, until: f64, every: f64, mut observe: impl FnMut(&mut Simulation)) {
        let mut next_observe = self.now;
        loop {
            let next_event = self.events.peek().map_or(f64::INFINITY, |e| e.time);
            if next_observe <= next_event && next_observe <= until {
                self.now = next_observe;
                observe(self);
                next_observe += every;
                continue;
            }
            if next_event > until {
                self.now = until;
                return;
            }
            let event = self.events.pop().expect("peeked");
            self.now = event.time;
            self.handle(event.kind);
        }
    }

    fn handle(&mut self, kind: EventKind) {
        let now = self.now;
        match kind {
            EventKind::Timer { node } => {
                if self.timer_at[node] != Some(now) {
                    return; // superseded
                }
                self.timer_at[node] = None;
                let n = &mut self.nodes[node];
                n.clock.advance(now, &mut self.rng);
                if let ClockAdjustment::Frequency { frequency_ppm } =
                    n.system.handle_clock_timeout(mono(now))
                {
                    n.clock.correction_ppm = frequency_ppm;
                }
                let local = n.clock.read(now);
                let sends = n.system.handle_timeout(mono(now), local, &mut self.rng);
                n.system.housekeeping(mono(now), local);
                self.broadcast_due(node, local);
                for (source, bytes) in sends {
                    if let Some(&(_, peer)) =
                        self.nodes[node].peers.iter().find(|(s, _)| *s == source)
                    {
                        self.send_symmetric(node, peer, bytes.to_vec());
                        continue;
                    }
                    let Some(&(_, server)) =
                        self.nodes[node].upstream.iter().find(|(s, _)| *s == source)
                    else {
                        continue;
                    };
                    for d in self.transit(node, server) {
                        self.push(
                            now + d,
                            EventKind::Request {
                                server,
                                client: node,
                                source,
                                bytes: bytes.to_vec(),
                            },
                        );
                    }
                }
                self.schedule_timer(node);
            }
            EventKind::Request {
                server,
                client,
                source,
                bytes,
            } => {
                let n = &mut self.nodes[server];
                n.clock.advance(now, &mut self.rng);
                let rx = n.clock.read(now);
                let state = self
                    .faults
                    .server_state(server, now, n.system.server_state(mono(now)));
                let mut out = [0u8; wire::HEADER_LEN];
                let clock = n.clock.clone();
                if let Ok(len) = server::respond(
                    &bytes,
                    rx,
                    &state,
                    &mut self.rng,
                    || clock.read(now),
                    &mut out,
                ) {
                    for d in self.transit(server, client) {
                        self.push(
                            now + d,
                            EventKind::Reply {
                                client,
                                source,
                                bytes: out[..len].to_vec(),
                            },
                        );
                    }
                }
            }
            EventKind::Symmetric { to, from, bytes } => {
                let n = &mut self.nodes[to];
                n.clock.advance(now, &mut self.rng);
                let rx = n.clock.read(now);
                let clock = n.clock.clone();
                let Ok(packet) = wire::parse(&bytes) else {
                    return;
                };
                if packet.header.mode == wire::Mode::Client {
                    // An active peer's calibration request: the server path answers it from
                    // the NTP port, as the daemon does (no access control in the simulator).
                    self.serve_peer_request(to, from, &bytes);
                    return;
                }
                let route = n.peers.iter().find(|(_, p)| *p == from).map(|(s, _)| *s);
                let reply = match route {
                    Some(id) => {
                        let out = n.system.handle_symmetric(
                            id,
                            mono(now),
                            rx,
                            &packet,
                            &mut self.rng,
                            || clock.read(now),
                        );
                        if let Ok(adj) = out.result {
                            self.apply(to, adj);
                        }
                        out.reply
                    }
                    None => {
                        let refid = ReferenceId([198, 18, 0, from as u8 + 1]);
                        match n.system.accept_passive(
                            &packet,
                            &KeyTable::new(),
                            false,
                            refid,
                            mono(now),
                            rx,
                            &mut self.rng,
                            || clock.read(now),
                        ) {
                            Ok((id, reply)) => {
                                n.peers.push((id, from));
                                Some(reply)
                            }
                            Err(_) => None,
                        }
                    }
                };
                if let Some(reply) = reply {
                    self.send_symmetric(to, from, reply.to_vec());
                }
                self.schedule_timer(to);
            }
            EventKind::Broadcast {
                to,
                from,
                multicast,
                bytes,
            } => self.hear_broadcast(to, from, multicast, &bytes),
            EventKind::Reply {
                client,
                source,
                bytes,
            } => {
                let n = &mut self.nodes[client];
                n.clock.advance(now, &mut self.rng);
                let rx = n.clock.read(now);
                let Ok(packet) = wire::parse(&bytes) else {
                    return;
                };
                if let Ok(adj) = n.system.handle_reply(source, mono(now), rx, &packet.header) {
                    match adj {
                        ClockAdjustment::None
                        | ClockAdjustment::Panic { .. }
                        | ClockAdjustment::BeforeFloor { .. } => {}
                        ClockAdjustment::Frequency { frequency_ppm } => {
                            n.clock.correction_ppm = frequency_ppm
                        }
                        ClockAdjustment::Step {
                            offset,
                            frequency_ppm,
                        } => {
                            n.clock.step(offset);
                            n.clock.correction_ppm = frequency_ppm;
                            n.steps += 1;
                        }
                    }
                }
                self.schedule_timer(client);
            }
        }
    }
}

impl Simulation {
    /// A mode 3 request from peer node `from` at node `to`: the server path answers it with
    /// mode 4 over the symmetric route, where `from`'s active association takes it as its
    /// calibration reply.
    fn serve_peer_request(&mut self, to: usize, from: usize, bytes: &[u8]) {
        let now = self.now;
        let n = &mut self.nodes[to];
        let rx = n.clock.read(now);
        let state = self
            .faults
            .server_state(to, now, n.system.server_state(mono(now)));
        let clock = n.clock.clone();
        let mut out = [0u8; wire::HEADER_LEN];
        if let Ok(len) = server::respond(
            bytes,
            rx,
            &state,
            &mut self.rng,
            || clock.read(now),
            &mut out,
        ) {
            self.send_symmetric(to, from, out[..len].to_vec());
        }
    }

    /// Sends the mode 5 packets of `node` that are due, to every listener over its link.
    fn broadcast_due(&mut self, node: usize, local: meridian_proto::time::NtpTimestamp) {
        let now = self.now;
        let state = self.nodes[node].system.server_state(mono(now));
        let mut out = Vec::new();
        for s in &mut self.nodes[node].senders {
            if let Some(p) = s
                .server
                .handle_timeout(mono(now), local, &state, &mut self.rng)
            {
                out.push((p.to_vec(), s.listeners.clone(), s.multicast));
            }
        }
        for (bytes, listeners, multicast) in out {
            for to in listeners {
                if let Some(d) = self.links[node][to].sample(&mut self.rng) {
                    let bytes = bytes.clone();
                    let kind = EventKind::Broadcast {
                        to,
                        from: node,
                        multicast,
                        bytes,
                    };
                    self.push(now + d, kind);
                }
            }
        }
    }

    /// A mode 5 packet at a listener: to its association with the sender, or creating one.
    fn hear_broadcast(&mut self, to: usize, from: usize, multicast: bool, bytes: &[u8]) {
        let now = self.now;
        let n = &mut self.nodes[to];
        n.clock.advance(now, &mut self.rng);
        let rx = n.clock.read(now);
        let Ok(packet) = wire::parse(bytes) else {
            return;
        };
        match n.bclients.iter().find(|(_, f)| *f == from).map(|(s, _)| *s) {
            Some(id) => {
                if let Ok(adj) = n.system.handle_reply(id, mono(now), rx, &packet) {
                    self.apply(to, adj);
                }
            }
            None => {
                let refid = ReferenceId([198, 18, 0, from as u8 + 1]);
                let created = n.system.accept_broadcast(
                    &packet,
                    &KeyTable::new(),
                    false,
                    refid,
                    multicast,
                    mono(now),
                );
                if let Ok(id) = created {
                    n.bclients.push((id, from));
                    n.upstream.push((id, from));
                }
            }
        }
        self.schedule_timer(to);
    }
}

/// Statistics of a series of true offsets.
#[derive(Clone, Copy, Debug, Default)]
pub struct OffsetStats {
    pub rms: f64,
    pub max_abs: f64,
    pub count: usize,
}

impl OffsetStats {
    pub fn of(samples: &[f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let rms = (samples.iter().map(|x| x * x).sum::<f64>() / samples.len() as f64).sqrt();
        let max_abs = samples.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        Self {
            rms,
            max_abs,
            count: samples.len(),
        }
    }
}

/// A client configuration with the given poll range and iburst.
pub fn client_config(minpoll: i8, maxpoll: i8, iburst: bool) -> ClientConfig {
    ClientConfig {
        version: 4,
        minpoll: PollInterval::new(minpoll),
        maxpoll: PollInterval::new(maxpoll),
        iburst,
        key: None,
    }
}
