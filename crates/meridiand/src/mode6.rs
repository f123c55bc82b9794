//! The daemon's side of NTP mode 6 control queries (`ntpq`, `check_ntp_peer`): who gets an
//! answer, and the [`ControlSnapshot`] of one instance that the core's responder reads.
//!
//! Who gets an answer (docs/access-control.md, "Control queries (mode 6)"): the access gate
//! has already run (a right that allows control queries: `peer`, `server` or `query`; the
//! rate limit; spoofed loopback sources). On top of it, `[control] mode6 = false` drops every
//! control query, and while no `[access]` right is configured (everybody would have `peer`)
//! only loopback sources are answered: RFC 8633 asks public servers to refuse control queries
//! from outside, and a READVAR answer is several times larger than its request.
//!
//! Association ids: a client association with `SourceId(n)` is association `n + 1` (stable
//! for the life of the daemon); the local reference is [`LOCAL_ASSOCIATION`]. Only the
//! instance's own associations are listed, so a query in one VPN instance learns nothing
//! about the others.

use crate::clock::Clock;
use meridian_proto::access;
use meridian_proto::mode6::{
    self, Association, ClockSource, ControlSnapshot, FilterSample, PeerStatus, PeerVariables,
    Selection, SystemStatus, SystemVariables,
};
use meridian_proto::system::{SourceId, SyncSource, System, MAX_DISTANCE};
use meridian_proto::time::{Mono, NtpDuration, NtpTimestamp, PollInterval};
use meridian_proto::wire::{Leap, ReferenceId};
use std::net::{IpAddr, SocketAddr};

/// Association id of the local reference (`[local-reference]`), outside the range of ids
/// that client associations get.
pub const LOCAL_ASSOCIATION: u16 = 0x8000;

/// What the server path knows about the sender and the configuration.
#[derive(Clone, Copy, Debug)]
pub struct ControlPolicy {
    /// `[control] mode6`.
    pub enabled: bool,
    /// No `[access]` right configured: then only loopback sources are answered.
    pub open_access: bool,
}

/// The response datagrams for a control query from `source` (already admitted by the access
/// gate), or the counter name of the reason it gets none.
#[allow(clippy::too_many_arguments)]
pub fn answer(
    policy: ControlPolicy,
    source: IpAddr,
    request: &[u8],
    system: &System,
    routes: &[(SourceId, SocketAddr)],
    clock: &dyn Clock,
    now: Mono,
) -> Result<Vec<Vec<u8>>, &'static str> {
    if !policy.enabled {
        return Err("mode6-disabled");
    }
    if policy.open_access && !access::is_loopback(source) {
        return Err("mode6-not-loopback");
    }
    let req = mode6::parse_request(request).map_err(|d| d.as_str())?;
    let snap = snapshot(system, routes, clock, now);
    Ok(mode6::respond_to(&req, &snap))
}

fn association_id(id: SourceId) -> Option<u16> {
    u16::try_from(id.0 + 1)
        .ok()
        .filter(|&a| a < LOCAL_ASSOCIATION)
}

fn refid_text(refid: ReferenceId, stratum: u8) -> String {
    if refid == ReferenceId::INIT || refid == ReferenceId::NONE {
        return "INIT".to_owned();
    }
    refid.display(stratum)
}

/// The system and the instance's associations as the control protocol shows them.
/// `routes`: every association of the instance (client, symmetric, broadcast) with the
/// address it talks to.
pub fn snapshot(
    system: &System,
    routes: &[(SourceId, SocketAddr)],
    clock: &dyn Clock,
    now: Mono,
) -> ControlSnapshot {
    let vars = system.vars();
    let server = system.server_state(now);
    let clock_now = clock.now();
    let (source, peer) = match vars.sync {
        SyncSource::None => (ClockSource::Unspecified, 0),
        SyncSource::Local => (ClockSource::Local, LOCAL_ASSOCIATION),
        SyncSource::Peer(id) => (
            ClockSource::Ntp,
            routes
                .iter()
                .find(|(rid, _)| *rid == id)
                .and_then(|(rid, _)| association_id(*rid))
                .unwrap_or(0),
        ),
    };
    let leap = if system.synchronized() {
        vars.leap
    } else {
        Leap::Unsynchronized
    };
    let (_, clk_jitter) = system.discipline().offset_estimate();
    let system_vars = SystemVariables {
        version: format!("meridiand {}", env!("CARGO_PKG_VERSION")),
        processor: std::env::consts::ARCH.to_owned(),
        system: match std::env::consts::OS {
            "linux" => "Linux".to_owned(),
            os => os.to_owned(),
        },
        leap,
        stratum: server.stratum,
        precision: system.config().precision,
        root_delay: server.root_delay.to_seconds(),
        root_dispersion: server.root_dispersion.to_seconds(),
        refid: refid_text(server.reference_id, server.stratum),
        reference_time: server.reference_ts,
        clock: clock_now,
        peer,
        tc: vars.poll.log2(),
        mintc: PollInterval::MIN.log2(),
        offset: vars.offset,
        frequency_ppm: clock.frequency_ppm(),
        sys_jitter: vars.jitter,
        clk_jitter,
        clk_wander_ppm: system.discipline().frequency_sd_ppm(),
    };
    let mut associations: Vec<Association> = routes
        .iter()
        .filter_map(|&(id, remote)| source_association(system, id, remote, clock_now, now))
        .collect();
    if let Some(local) = system.config().local_reference {
        associations.push(local_association(
            local.address,
            local.stratum,
            vars.sync == SyncSource::Local,
            system.config().precision,
        ));
    }
    ControlSnapshot {
        status: SystemStatus {
            leap,
            source,
            event_count: 0,
            event: 0,
        },
        system: system_vars,
        associations,
    }
}

fn source_association(
    system: &System,
    source_id: SourceId,
    remote: SocketAddr,
    clock_now: NtpTimestamp,
    now: Mono,
) -> Option<Association> {
    let id = association_id(source_id)?;
    let source = system.source(source_id)?;
    let assoc = &source.association;
    let info = assoc.peer();
    let est = source.filter.estimate(now);
    let reach = assoc.reach();
    let selection = if source.flags.system_peer {
        Selection::SysPeer
    } else if source.flags.selected {
        Selection::Candidate
    } else if source.flags.candidate {
        // Offered to selection but discarded by intersection or clustering; which of the two
        // is not kept, and "outlier" is the milder reading.
        Selection::Outlier
    } else {
        Selection::Reject
    };
    let key = assoc.config().key;
    let auth = assoc.auth_status();
    let stratum = info.map_or(16, |p| p.stratum);
    let mut flash = 0;
    if reach == 0 {
        flash |= mode6::FLASH_PEER_UNREACH;
    }
    if stratum == 0 || stratum >= 16 {
        flash |= mode6::FLASH_PEER_STRATUM;
    }
    if source.root_distance(now).is_some_and(|d| d >= MAX_DISTANCE) {
        flash |= mode6::FLASH_PEER_DIST;
    }
    if auth == "failed" {
        flash |= mode6::FLASH_PKT_AUTH;
    }
    let rec = assoc.last_receive().map_or(NtpTimestamp::ZERO, |t| {
        clock_now - NtpDuration::from_seconds(now.saturating_since(t).as_secs_f64())
    });
    Some(Association {
        id,
        status: PeerStatus {
            configured: assoc.configured(),
            auth_enabled: key.is_some(),
            authentic: auth == "ok",
            reachable: reach != 0,
            broadcast: false,
            selection,
            event_count: 0,
            event: 0,
        },
        vars: PeerVariables {
            srcadr: remote,
            dstadr: None,
            leap: info.map_or(Leap::Unsynchronized, |p| p.leap),
            stratum,
            precision: info.map_or(0, |p| p.precision),
            root_delay: info.map_or(0.0, |p| p.root_delay.to_seconds()),
            root_dispersion: info.map_or(0.0, |p| p.root_dispersion.to_seconds()),
            refid: info.map_or_else(
                || "INIT".to_owned(),
                |p| refid_text(p.reference_id, p.stratum),
            ),
            reference_time: info.map_or(NtpTimestamp::ZERO, |p| p.reference_ts),
            rec,
            reach,
            hmode: assoc.local_mode() as u8,
            pmode: info.map_or(0, |p| p.mode as u8),
            hpoll: assoc.poll().log2(),
            ppoll: info.map_or(assoc.poll().log2(), |p| p.poll),
            flash,
            keyid: key.map_or(0, |k| k.id().0),
            offset: est.map_or(0.0, |e| e.offset),
            delay: est.map_or(0.0, |e| e.delay),
            dispersion: est.map_or(16.0, |e| e.dispersion),
            jitter: est.map_or(0.0, |e| e.jitter),
            filter: source
                .filter
                .samples()
                .take(8)
                .map(|s| FilterSample {
                    delay: s.delay,
                    offset: s.offset,
                    dispersion: s.dispersion,
                })
                .collect(),
        },
    })
}

/// The local clock as an association (ntpd lists its local clock driver the same way).
fn local_association(
    address: std::net::Ipv4Addr,
    stratum: u8,
    in_use: bool,
    precision: i8,
) -> Association {
    let refid = if stratum <= 1 {
        "LOCL".to_owned()
    } else {
        address.to_string()
    };
    Association {
        id: LOCAL_ASSOCIATION,
        status: PeerStatus {
            configured: true,
            reachable: true,
            selection: if in_use {
                Selection::SysPeer
            } else {
                Selection::Candidate
            },
            ..PeerStatus::default()
        },
        vars: PeerVariables {
            srcadr: SocketAddr::new(IpAddr::V4(address), 123),
            dstadr: None,
            leap: Leap::None,
            stratum: stratum.saturating_sub(1),
            precision,
            root_delay: 0.0,
            root_dispersion: 0.0,
            refid,
            reference_time: NtpTimestamp::ZERO,
            rec: NtpTimestamp::ZERO,
            reach: 0xff,
            hmode: 3,
            pmode: 4,
            hpoll: 6,
            ppoll: 6,
            flash: 0,
            keyid: 0,
            offset: 0.0,
            delay: 0.0,
            dispersion: 0.0,
            jitter: 0.0,
            filter: Vec::new(),
        },
    }
}
