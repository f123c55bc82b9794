//! The system process of one NTP instance: its client associations with their filters, the
//! selection of the system peer, the clock discipline, and the system variables that the
//! server path advertises (RFC 5905 sections 11-12).
//!
//! A packet's way through it: [`System::handle_reply`] gets a reply for one source ->
//! the association's packet tests -> a measurement -> that source's [`ClockFilter`] ->
//! selection over all sources -> the [`Discipline`] -> a [`ClockAdjustment`] that the owner
//! executes on its clock. Steps are also applied here to every stored timestamp, so the
//! owner only has to execute them once.

use crate::association::Association;
use crate::auth::Received;
use crate::client::{ClientAssociation, ClientConfig, Measurement, Reply, Request, PHI};
use crate::discipline::{ClockAdjustment, Discipline, DisciplineConfig, DisciplineState};
use crate::entropy::Entropy;
use crate::filter::{ClockFilter, PeerEstimate, Sample, NSTAGE};
use crate::select::{select_with_precedence, Candidate};
use crate::server::ServerState;
use crate::time::{Mono, NtpDuration, NtpTimestamp, PollInterval};
use crate::wire::{Leap, ReferenceId};
use core::time::Duration;

/// Sources whose root distance exceeds this are not selectable (RFC 5905 MAXDIST), seconds.
pub const MAX_DISTANCE: f64 = 1.5;
/// Interval at which a local reference advances its reference time, seconds.
const LOCAL_UPDATE: f64 = 16.0;
/// Requests a configured source gets before the first update may go ahead without it.
const START_POLLS: u64 = 4;
/// Samples a source needs before the first clock update (afterwards the RFC 5905 distance
/// with its empty stages decides, which takes four).
const START_SAMPLES: usize = 3;
/// Clustering keeps at least this many survivors (RFC 5905 NMIN).
const CLUSTER_MIN: usize = 3;
/// Poll intervals without a clock update after which the next update ends a holdover.
const HOLDOVER_POLLS: f64 = 4.0;

/// The local clock as a reference (Comware `refclock-master`): when nothing better is
/// available, the system claims `stratum` and serves its own clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalReference {
    /// 1..=15.
    pub stratum: u8,
    /// The 127.127.1.u pseudo address, shown as the reference ID when stratum > 1.
    pub address: std::net::Ipv4Addr,
}

impl LocalReference {
    /// Reference ID per the guide: "LOCL" at stratum 1, else the local clock's address.
    pub fn reference_id(&self) -> ReferenceId {
        if self.stratum <= 1 {
            ReferenceId::LOCL
        } else {
            ReferenceId::from_ipv4(self.address)
        }
    }
}

#[derive(Clone, Debug)]
pub struct SystemConfig {
    /// log2 seconds of the local clock's precision.
    pub precision: i8,
    pub local_reference: Option<LocalReference>,
    pub discipline: DisciplineConfig,
    /// Initial frequency from the drift file, ppm.
    pub initial_frequency_ppm: f64,
    /// Fewest survivors of selection needed to synchronize.
    pub min_survivors: usize,
}

#[cfg(test)]
impl SystemConfig {
    /// What most unit tests run with: 1 µs precision, no local reference, the default
    /// discipline, no drift file, one survivor.
    pub(crate) fn for_tests() -> Self {
        Self {
            precision: -20,
            local_reference: None,
            discipline: DisciplineConfig::default(),
            initial_frequency_ppm: 0.0,
            min_survivors: 1,
        }
    }
}

/// Identifies a source within one [`System`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub usize);

/// The role a source played in the last selection, for the `[12345]` flags.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceFlags {
    /// The system peer (flag 1, "master").
    pub system_peer: bool,
    /// Survived intersection and clustering (flag 3).
    pub selected: bool,
    /// Was offered to selection (flag 4).
    pub candidate: bool,
}

/// Where a dynamic association came from: the VPN instance whose packet created it (`None`:
/// the public network) and the sender's address. Dynamic associations are limited per VPN
/// instance, and an address holds at most one passive association per instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicOrigin {
    pub vpn: Option<String>,
    pub address: std::net::IpAddr,
}

/// One source of time: a configured server or peer, or a dynamic (passive) peer.
#[derive(Clone, Debug)]
pub struct Source {
    pub association: Association,
    pub filter: ClockFilter,
    /// Reference ID that identifies this server to our own clients (its address).
    pub refid: ReferenceId,
    /// Whether this source is preferred (Comware `priority`).
    pub prefer: bool,
    pub estimate: Option<PeerEstimate>,
    pub flags: SourceFlags,
    pub(crate) last_measurement: Option<Measurement>,
    /// For a dynamic association created through a `*_in` method: where it came from.
    pub origin: Option<DynamicOrigin>,
}

impl Source {
    pub(crate) fn new(association: Association, refid: ReferenceId, prefer: bool) -> Self {
        Self {
            association,
            filter: ClockFilter::new(),
            refid,
            prefer,
            estimate: None,
            flags: SourceFlags::default(),
            last_measurement: None,
            origin: None,
        }
    }

    pub fn last_measurement(&self) -> Option<&Measurement> {
        self.last_measurement.as_ref()
    }

    /// Root distance of this source as we see it: its root distance plus our path to it.
    pub fn root_distance(&self, now: Mono) -> Option<f64> {
        let est = self.filter.estimate(now)?;
        let peer = self.association.peer()?;
        Some(
            (est.delay + peer.root_delay.to_seconds()) / 2.0
                + peer.root_dispersion.to_seconds()
                + est.dispersion
                + est.jitter,
        )
    }
}

/// What the system is synchronized to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SyncSource {
    None,
    Local,
    Peer(SourceId),
}

/// The system variables (RFC 5905 section 11.1 "System Process Variables").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SystemVars {
    pub leap: Leap,
    pub stratum: u8,
    pub reference_id: ReferenceId,
    /// Local time of the last update.
    pub reference_ts: NtpTimestamp,
    pub root_delay: f64,
    pub root_dispersion: f64,
    /// Offset of the last update, seconds (server - local).
    pub offset: f64,
    pub jitter: f64,
    /// Dispersion of the system peer (Comware "Peer dispersion").
    pub peer_dispersion: f64,
    pub sync: SyncSource,
    /// Monotonic time of the last update.
    pub last_update: Option<Mono>,
    pub poll: PollInterval,
}

#[derive(Clone, Debug)]
pub struct System {
    pub(crate) config: SystemConfig,
    /// Slots: a removed (expired dynamic) source leaves `None`, so ids stay stable; a slot
    /// is reused only after the owner was told of the removal.
    pub(crate) sources: Vec<Option<Source>>,
    pub(crate) discipline: Discipline,
    pub(crate) vars: SystemVars,
    pub(crate) poll_counter: i32,
    /// Time of the last clock update from a source; unlike `vars.last_update`, kept when the
    /// system peer is lost, to tell the end of a holdover.
    last_clock_update: Option<Mono>,
    /// Reference ids of our own addresses: a source advertising one is synchronized to us.
    pub(crate) own_refids: Vec<ReferenceId>,
    /// Most dynamic associations (`max-dynamic-sessions`).
    pub(crate) max_dynamic: usize,
}

impl System {
    pub fn new(config: SystemConfig) -> Self {
        let discipline = Discipline::new(config.discipline, config.initial_frequency_ppm);
        let vars = SystemVars {
            leap: Leap::Unsynchronized,
            stratum: 16,
            reference_id: ReferenceId::INIT,
            reference_ts: NtpTimestamp::ZERO,
            root_delay: 0.0,
            root_dispersion: 0.0,
            offset: 0.0,
            jitter: 0.0,
            peer_dispersion: 0.0,
            sync: SyncSource::None,
            last_update: None,
            poll: PollInterval::DEFAULT_MIN,
        };
        Self {
            config,
            sources: Vec::new(),
            discipline,
            vars,
            poll_counter: 0,
            last_clock_update: None,
            own_refids: Vec::new(),
            max_dynamic: crate::system_peer::DEFAULT_MAX_DYNAMIC,
        }
    }

    pub fn config(&self) -> &SystemConfig {
        &self.config
    }

    /// Adds a client association to a server whose reference ID (to our clients) is `refid`.
    pub fn add_client(
        &mut self,
        config: ClientConfig,
        refid: ReferenceId,
        prefer: bool,
        now: Mono,
        rng: &mut dyn Entropy,
    ) -> SourceId {
        let association = ClientAssociation::new(config, now, Duration::from_secs(1), rng);
        self.insert(Source::new(Association::Client(association), refid, prefer))
    }

    /// Stores a source in the first free slot and returns its id.
    pub(crate) fn insert(&mut self, source: Source) -> SourceId {
        let minpoll = source.association.config().minpoll;
        let first = self.sources().next().is_none();
        if source.association.configured() && (self.vars.poll > minpoll || first) {
            self.vars.poll = minpoll;
        }
        match self.sources.iter().position(Option::is_none) {
            Some(i) => {
                self.sources[i] = Some(source);
                SourceId(i)
            }
            None => {
                self.sources.push(Some(source));
                SourceId(self.sources.len() - 1)
            }
        }
    }

    pub fn sources(&self) -> impl Iterator<Item = (SourceId, &Source)> {
        self.sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (SourceId(i), s)))
    }

    pub fn source(&self, id: SourceId) -> Option<&Source> {
        self.sources.get(id.0).and_then(Option::as_ref)
    }

    pub(crate) fn source_mut(&mut self, id: SourceId) -> Option<&mut Source> {
        self.sources.get_mut(id.0).and_then(Option::as_mut)
    }

    /// Stratum the source at slot `i` advertises (16 when unknown).
    fn stratum_at(&self, i: usize) -> u8 {
        self.sources[i]
            .as_ref()
            .and_then(|s| s.association.peer())
            .map_or(16, |p| p.stratum)
    }

    /// Source at a slot index that is known to be occupied (from a candidate list).
    fn at(&mut self, i: usize) -> &mut Source {
        self.sources[i].as_mut().expect("occupied slot")
    }

    pub fn vars(&self) -> &SystemVars {
        &self.vars
    }

    pub fn discipline(&self) -> &Discipline {
        &self.discipline
    }

    /// True when synchronized to a server or to the local reference.
    pub fn synchronized(&self) -> bool {
        self.vars.sync != SyncSource::None
    }

    /// Earliest time any association wants to send.
    pub fn poll_timeout(&self) -> Option<Mono> {
        self.sources()
            .filter_map(|(_, s)| s.association.poll_timeout())
            .min()
    }

    /// Removes a source (a configuration reload dropped it). Its slot stays empty, so other
    /// `SourceId`s keep their meaning; losing the system peer ends the synchronization.
    pub fn remove_source(&mut self, id: SourceId) -> bool {
        let Some(slot) = self.sources.get_mut(id.0) else {
            return false;
        };
        let removed = slot.take().is_some();
        if removed && self.vars.sync == SyncSource::Peer(id) {
            self.unsynchronize();
        }
        removed
    }

    /// Changes the local reference (a configuration reload). Dropping it while it is the sync
    /// source ends the synchronization; a new or changed one is taken up by `housekeeping`.
    pub fn set_local_reference(&mut self, local: Option<LocalReference>) {
        if self.config.local_reference == local {
            return;
        }
        self.config.local_reference = local;
        if self.vars.sync == SyncSource::Local {
            self.unsynchronize();
        }
    }

    /// When the clock discipline next needs [`System::handle_clock_timeout`]: the end of the
    /// current slew.
    pub fn clock_timeout(&self) -> Option<Mono> {
        self.discipline.poll_timeout()
    }

    /// At the end of a slew: the frequency the clock must hold from now on.
    pub fn handle_clock_timeout(&mut self, now: Mono) -> ClockAdjustment {
        self.discipline.handle_timeout(now)
    }

    /// Requests due at `now`, each for the source's own socket. Also refreshes the local
    /// reference when it is the sync source.
    pub fn handle_timeout(
        &mut self,
        now: Mono,
        local_now: NtpTimestamp,
        rng: &mut dyn Entropy,
    ) -> Vec<(SourceId, Request)> {
        let state = self.server_state(now);
        let mut out = Vec::new();
        for (i, slot) in self.sources.iter_mut().enumerate() {
            let Some(s) = slot else { continue };
            if let Some(bytes) = s.association.handle_timeout(now, local_now, &state, rng) {
                out.push((SourceId(i), bytes));
            }
        }
        out
    }

    /// Periodic upkeep, called on every timeout: the system peer going unreachable ends
    /// the synchronization, and the local reference takes over when nothing better is
    /// selectable. Returns true if the sync source changed.
    pub fn housekeeping(&mut self, now: Mono, local_now: NtpTimestamp) -> bool {
        let before = self.vars.sync;
        if let SyncSource::Peer(id) = self.vars.sync {
            let lost = match self.source_mut(id) {
                Some(s) if s.association.reach() != 0 => false,
                Some(s) => {
                    s.flags = SourceFlags::default();
                    true
                }
                None => true,
            };
            if lost {
                self.unsynchronize();
            }
        }
        self.use_local_reference_if_better(now, local_now);
        before != self.vars.sync
    }

    /// Forgets the system peer: unsynchronized until the next update.
    pub(crate) fn unsynchronize(&mut self) {
        self.vars.leap = Leap::Unsynchronized;
        self.vars.stratum = 16;
        self.vars.reference_id = ReferenceId::INIT;
        self.vars.sync = SyncSource::None;
        self.vars.last_update = None;
    }

    fn use_local_reference_if_better(&mut self, now: Mono, local_now: NtpTimestamp) {
        let Some(local) = self.config.local_reference else {
            return;
        };
        if self.vars.sync == SyncSource::Local {
            return;
        }
        let network_stratum = match self.vars.sync {
            SyncSource::Peer(_) => self.vars.stratum,
            _ => 16,
        };
        if local.stratum >= network_stratum {
            return;
        }
        self.vars = SystemVars {
            leap: Leap::None,
            stratum: local.stratum,
            reference_id: local.reference_id(),
            reference_ts: local_now,
            root_delay: 0.0,
            root_dispersion: NtpDuration::from_exponent(self.config.precision).to_seconds(),
            offset: 0.0,
            jitter: 0.0,
            peer_dispersion: 0.0,
            sync: SyncSource::Local,
            last_update: Some(now),
            poll: self.vars.poll,
        };
    }

    /// A reply arrived for source `id` at monotonic `now`, local receive time `local_rx`.
    /// Returns the clock adjustment to execute, if any; steps are already applied to the
    /// stored state.
    /// `reply` is a parsed packet (or a bare header, which carries no MAC).
    pub fn handle_reply<R: Received + ?Sized>(
        &mut self,
        id: SourceId,
        now: Mono,
        local_rx: NtpTimestamp,
        reply: &R,
    ) -> Result<ClockAdjustment, &'static str> {
        let precision = self.config.precision;
        let source = self.source_mut(id).ok_or("unknown source")?;
        let reply = source
            .association
            .handle_packet(now, local_rx, reply, precision)
            .map_err(|c| c.first_failure().unwrap_or("rejected"))?;
        Ok(self.use_reply(id, reply, now, local_rx))
    }

    /// Feeds what a genuine packet gave to the source's filter and, with a new estimate, to
    /// selection and the discipline.
    pub(crate) fn use_reply(
        &mut self,
        id: SourceId,
        reply: Reply,
        now: Mono,
        local_rx: NtpTimestamp,
    ) -> ClockAdjustment {
        let precision = self.config.precision;
        let Reply::Sample(m) = reply else {
            return ClockAdjustment::None;
        };
        let Some(source) = self.source_mut(id) else {
            return ClockAdjustment::None;
        };
        source.last_measurement = Some(m);
        let sample = Sample {
            offset: m.offset,
            delay: m.delay,
            dispersion: m.dispersion,
            time: m.time,
        };
        let precision_s = NtpDuration::from_exponent(precision).to_seconds();
        if let Some(est) = source.filter.add(sample, precision_s) {
            source.estimate = Some(est);
            return self.clock_update(now, local_rx);
        }
        ClockAdjustment::None
    }

    /// Before the first update (or after losing synchronization) the clock is not set from
    /// whoever answered first: a majority of the configured sources must be candidates, or
    /// every configured source must have had its chance (its initial burst or four polls).
    /// Otherwise two early falsetickers out of five could step the clock before the three
    /// truechimers are heard.
    fn start_quorum(&self, candidates: usize) -> bool {
        let configured: Vec<&Source> = self
            .sources()
            .map(|(_, s)| s)
            .filter(|s| s.association.configured())
            .collect();
        if candidates > configured.len() / 2 {
            return true;
        }
        configured
            .iter()
            .all(|s| s.flags.candidate || s.association.stats().sent >= START_POLLS)
    }

    /// Selection, clustering, combining and the discipline (RFC 5905 clock_select/update).
    fn clock_update(&mut self, now: Mono, local_now: NtpTimestamp) -> ClockAdjustment {
        let mut candidates = Vec::new();
        // Per candidate: configured (not a dynamic association).
        let mut configured = Vec::new();
        // Sources heard and synchronized but not measurable yet (a filter still filling, so
        // too distant): they count against every cluster. (configured, dynamic)
        let mut pending = (0, 0);
        let own_refids = &self.own_refids;
        // Before the discipline's first update the samples of a burst all measured the same
        // free-running clock: a source offers their combination (ClockFilter::start_estimate).
        let starting = self.discipline.state() == DisciplineState::Unset;
        for (i, slot) in self.sources.iter_mut().enumerate() {
            let Some(s) = slot else { continue };
            s.flags = SourceFlags::default();
            let (Some(est), Some(peer), Some(dist)) = (
                s.filter.estimate(now),
                s.association.peer().copied(),
                s.root_distance(now),
            ) else {
                continue;
            };
            if s.association.reach() == 0
                || peer.stratum == 0
                || peer.stratum >= 16
                // Synchronized to us (RFC 5905 TEST12, a timing loop).
                || (peer.stratum > 1 && own_refids.contains(&peer.reference_id))
            {
                continue;
            }
            // The first update may use a source after START_SAMPLES samples: their
            // combination (start_estimate) is measured, so the empty stages' 16 s each, which
            // otherwise make four samples the least a source needs, are left out.
            let dist = if starting && s.filter.samples().count() >= START_SAMPLES {
                dist - s.filter.empty_stage_dispersion()
            } else {
                dist
            };
            if dist >= MAX_DISTANCE {
                if s.filter.samples().count() < NSTAGE {
                    if s.association.configured() {
                        pending.0 += 1;
                    } else {
                        pending.1 += 1;
                    }
                }
                continue;
            }
            s.flags.candidate = true;
            configured.push(s.association.configured());
            // The correctness interval for intersection: the path's asymmetry bound (half
            // the delays), the server's own dispersion, and this source's measured spread.
            // Not the RFC register dispersion: in a young filter its empty stages make every
            // interval about a second wide, so a falseticker one second off would still
            // intersect the truechimers (that dispersion still decides eligibility above).
            let interval = (est.delay + peer.root_delay.to_seconds()) / 2.0
                + peer.root_dispersion.to_seconds()
                + est.jitter
                + 3.0 * est.offset_variance.max(0.0).sqrt();
            let (offset, offset_variance) = starting
                .then(|| s.filter.start_estimate(now))
                .flatten()
                .unwrap_or((est.offset, est.offset_variance));
            candidates.push(Candidate {
                id: i,
                offset,
                root_distance: interval,
                jitter: est.jitter,
                stratum: peer.stratum,
                prefer: s.prefer,
                offset_variance,
            });
        }
        if self.vars.last_update.is_none() && !self.start_quorum(candidates.len()) {
            return ClockAdjustment::None;
        }
        let Some(selection) =
            select_with_precedence(&candidates, &configured, pending, CLUSTER_MIN)
        else {
            return ClockAdjustment::None;
        };
        if selection.survivors.len() < self.config.min_survivors.max(1) {
            return ClockAdjustment::None;
        }
        for &i in &selection.survivors {
            self.at(i).flags.selected = true;
        }

        // Clock-hop stickiness: keep the current system peer while it survives and is as good
        // as the best in stratum, so that equal sources do not take turns.
        let mut peer_id = selection.system_peer;
        if let SyncSource::Peer(current) = self.vars.sync {
            if current.0 != peer_id
                && selection.survivors.contains(&current.0)
                && self.stratum_at(current.0) <= self.stratum_at(peer_id)
                && !self.at(peer_id).prefer
            {
                peer_id = current.0;
            }
        }
        self.at(peer_id).flags.system_peer = true;
        let peer_stratum = self.stratum_at(peer_id);
        // The local reference wins when it gives a lower stratum than the network.
        if let Some(local) = self.config.local_reference {
            if local.stratum <= peer_stratum {
                self.at(peer_id).flags.system_peer = false;
                self.vars.sync = SyncSource::None;
                self.use_local_reference_if_better(now, local_now);
                return ClockAdjustment::None;
            }
        }

        // Only a sample newer than the last update moves the clock.
        let peer_est = self
            .at(peer_id)
            .filter
            .estimate(now)
            .expect("candidate has an estimate");
        if self.vars.sync == SyncSource::Peer(SourceId(peer_id))
            && self.vars.last_update.is_some_and(|t| peer_est.time <= t)
        {
            return ClockAdjustment::None;
        }
        // The first update after a holdover (no update for more than HOLDOVER_POLLS poll
        // intervals: the sources were unreachable) restarts the poll adaptation from minpoll,
        // so that the time the network is back gives many samples.
        let after_holdover = self.last_clock_update.is_some_and(|last| {
            now.saturating_since(last).as_secs_f64() > HOLDOVER_POLLS * self.vars.poll.as_seconds()
        });
        // The discipline's time constant follows the real interval between updates (short
        // during an iburst), never longer than the poll interval.
        let interval = match self.vars.last_update {
            Some(last) => {
                let secs = now.saturating_since(last).as_secs_f64().max(1.0);
                PollInterval::new(secs.log2().ceil().min(17.0) as i8).min(self.vars.poll)
            }
            // The first update (after an iburst, or from a first sample) removes the initial
            // offset quickly, as the next samples follow soon to correct a wrong estimate.
            None => PollInterval::new(0).min(self.vars.poll),
        };
        // The sources agree on a time before the floor (years back, as no real server
        // could): refused like a panic, before the discipline sees it.
        if let Some(floor) = self.config.discipline.time_floor {
            let target = local_now + NtpDuration::from_seconds(selection.offset);
            if (target - floor).to_seconds() < 0.0 {
                return ClockAdjustment::BeforeFloor {
                    offset: selection.offset,
                };
            }
        }
        let adjustment =
            self.discipline
                .update(now, selection.offset, selection.offset_variance, interval);
        if let ClockAdjustment::Panic { .. } = adjustment {
            return adjustment;
        }
        let peer = *self
            .at(peer_id)
            .association
            .peer()
            .expect("candidate has a peer");
        // A leap second needs a majority of the truechimers, on a month's last day (leap.rs).
        let voters = selection.truechimers.iter().map(|&i| {
            self.sources[i]
                .as_ref()
                .and_then(|s| s.association.peer())
                .map_or(Leap::None, |p| p.leap)
        });
        let leap = crate::leap::vote(peer.leap, voters, local_now);
        self.vars = SystemVars {
            leap,
            stratum: peer.stratum.saturating_add(1).min(16),
            reference_id: self.at(peer_id).refid,
            reference_ts: local_now,
            root_delay: peer.root_delay.to_seconds() + peer_est.delay,
            root_dispersion: peer.root_dispersion.to_seconds()
                + peer_est.dispersion
                + selection.jitter.max(peer_est.jitter)
                + selection.offset.abs(),
            offset: selection.offset,
            jitter: selection.jitter,
            peer_dispersion: peer_est.dispersion,
            sync: SyncSource::Peer(SourceId(peer_id)),
            last_update: Some(now),
            poll: self.vars.poll,
        };
        self.last_clock_update = Some(now);
        if after_holdover {
            // adapt_poll clamps it up to the smallest configured minpoll.
            self.vars.poll = PollInterval::MIN;
            self.poll_counter = 0;
        }
        self.adapt_poll(selection.jitter.max(peer_est.jitter));
        if let ClockAdjustment::Step { offset, .. } = adjustment {
            self.apply_step(offset);
        }
        adjustment
    }

    /// The clock was stepped by `step` seconds (positive: forward) by someone else: an
    /// administrator's `date -s`, a VM resumed from a snapshot, another program. The owner
    /// detects it (the daemon compares CLOCK_REALTIME with CLOCK_MONOTONIC_RAW between loop
    /// iterations) and says so here. Every stored sample and local timestamp is moved with
    /// the clock, as for a step of our own, so the sources stay selectable and the next
    /// samples agree with the stored ones; the discipline then sees the new offset like any
    /// other (a big one is a spike until it persists over the spike interval, then it is
    /// stepped back). Without this the pre-step samples would make every source look
    /// jittery and keep it unselectable until they aged out of the register.
    ///
    /// A step of one second while a leap second is announced is the kernel executing it,
    /// not an external step: ignored. Returns whether the step was taken into account.
    pub fn handle_external_step(&mut self, step: f64) -> bool {
        if !step.is_finite() || step == 0.0 {
            return false;
        }
        let leap_pending = matches!(self.vars.leap, Leap::AddSecond | Leap::DeleteSecond);
        if leap_pending && (step.abs() - 1.0).abs() < 0.1 {
            return false;
        }
        self.apply_step(step);
        true
    }

    /// The clock was stepped by `step` seconds: move every stored local timestamp with it.
    fn apply_step(&mut self, step: f64) {
        for s in self.sources.iter_mut().flatten() {
            s.association.apply_step(step);
            s.filter.apply_step(step);
            s.estimate = None;
        }
        self.vars.offset -= step;
        self.vars.reference_ts += NtpDuration::from_seconds(step);
    }

    /// What the server path advertises at `now`: root dispersion grows at PHI since the last
    /// update; unsynchronized until the first update.
    pub fn server_state(&self, now: Mono) -> ServerState {
        let Some(last) = self.vars.last_update else {
            return ServerState::unsynchronized(self.config.precision);
        };
        let age = now.saturating_since(last).as_secs_f64();
        let reference_ts = if self.vars.sync == SyncSource::Local {
            // A local reference is "updated" every LOCAL_UPDATE seconds (like ntpd's local
            // clock driver polling it); the reference time must never pass the transmit time.
            let whole = (age / LOCAL_UPDATE).floor() * LOCAL_UPDATE;
            self.vars.reference_ts + NtpDuration::from_seconds(whole)
        } else {
            self.vars.reference_ts
        };
        let grown = if self.vars.sync == SyncSource::Local {
            0.0
        } else {
            PHI * age
        };
        ServerState {
            leap: self.vars.leap,
            stratum: self.vars.stratum,
            precision: self.config.precision,
            poll: self.vars.poll.log2(),
            root_delay: NtpDuration::from_seconds(self.vars.root_delay),
            root_dispersion: NtpDuration::from_seconds(self.vars.root_dispersion + grown),
            reference_id: self.vars.reference_id,
            reference_ts,
        }
    }
}
