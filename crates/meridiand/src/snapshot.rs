//! Read-only snapshots of an instance for the control socket: the system variables as a
//! `StatusReport` and every association as a `SessionReport` (field names per interface.md).

use crate::clock::Clock;
use crate::instance::Instance;
use meridian_proto::report::{ServerCountersReport, SessionDetail, SessionReport, StatusReport};
use meridian_proto::system::{LocalReference, Source, SourceId, SyncSource, System};
use meridian_proto::time::{civil_from_days, Mono, NtpTimestamp};
use meridian_proto::wire::ReferenceId;
use std::net::SocketAddr;

/// Formats an NTP timestamp as RFC 3339 UTC, resolving the era near the local clock.
pub fn rfc3339(ts: NtpTimestamp, clock_now: NtpTimestamp) -> String {
    if ts.is_zero() {
        return "1900-01-01T00:00:00Z".to_owned();
    }
    let pivot = clock_now.to_unix_near(crate::clock::host_realtime().0).0;
    let (secs, nanos) = ts.to_unix_near(pivot);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        t / 3600,
        t / 60 % 60,
        t % 60,
        nanos / 1000
    )
}

fn refid_text(refid: ReferenceId, stratum: u8) -> String {
    if refid == ReferenceId::INIT || refid == ReferenceId::NONE {
        return "INIT".to_owned();
    }
    refid.display(stratum)
}

/// The instance and remote address of source `id` (a server or a peer).
fn locate(instances: &[Instance], id: SourceId) -> Option<(&Instance, SocketAddr)> {
    instances.iter().find_map(|inst| {
        let client = inst.clients().iter().find(|c| c.id == id).map(|c| c.remote);
        let peer = || inst.peers().iter().find(|p| p.id == id).map(|p| p.remote);
        let bclient = || {
            let routes = &inst.broadcast().routes;
            routes.iter().find(|r| r.id == id).map(|r| r.remote)
        };
        client
            .or_else(peer)
            .or_else(bclient)
            .map(|remote| (inst, remote))
    })
}

pub fn status(
    system: &System,
    instances: &[Instance],
    clock: &dyn Clock,
    now: Mono,
) -> StatusReport {
    let vars = system.vars();
    let synchronized = system.synchronized();
    let server = system.server_state(now);
    let peer = match vars.sync {
        SyncSource::Peer(id) => locate(instances, id),
        _ => None,
    };
    let system_peer = match vars.sync {
        SyncSource::Peer(_) => peer.map(|(_, remote)| remote.ip().to_string()),
        SyncSource::Local => system
            .config()
            .local_reference
            .map(|l| l.address.to_string()),
        SyncSource::None => None,
    };
    let reference_id = match vars.sync {
        SyncSource::None => "none".to_owned(),
        SyncSource::Peer(_) => system_peer
            .clone()
            .unwrap_or_else(|| vars.reference_id.display(2)),
        SyncSource::Local => vars.reference_id.display(vars.stratum),
    };
    StatusReport {
        synchronized,
        stratum: vars.stratum,
        reference_id,
        system_peer,
        vpn_instance: peer.and_then(|(inst, _)| inst.name.clone()),
        offset_ms: vars.offset * 1e3,
        root_delay_ms: vars.root_delay * 1e3,
        root_dispersion_ms: server.root_dispersion.to_seconds() * 1e3,
        peer_dispersion_ms: vars.peer_dispersion * 1e3,
        frequency_ppm: clock.frequency_ppm(),
        precision_log2: system.config().precision,
        leap: vars.leap.as_str().to_owned(),
        reference_time: rfc3339(server.reference_ts, clock.now()),
        reference_time_ntp: server.reference_ts.to_string(),
        poll_log2: vars.poll.log2(),
        clock_driver: clock.name().to_owned(),
        server_counters: Some(server_totals(instances)),
    }
}

/// The server-path counters summed over every instance (metrics show them per instance).
fn server_totals(instances: &[Instance]) -> ServerCountersReport {
    let mut total = ServerCountersReport::default();
    for c in instances.iter().map(Instance::server_counters) {
        total.received += c.received;
        total.answered += c.answered;
        for (reason, n) in &c.dropped {
            *total.dropped.entry((*reason).to_owned()).or_default() += n;
        }
    }
    total.rate_limit_entries = instances
        .iter()
        .filter_map(Instance::rate_limit_entries)
        .map(|n| n as u64)
        .reduce(|a, b| a + b);
    total
}

pub fn sessions(system: &System, instances: &[Instance], now: Mono) -> Vec<SessionReport> {
    let mut out = Vec::new();
    if let Some(local) = system.config().local_reference {
        out.push(local_session(
            local,
            system.vars().sync == SyncSource::Local,
            system.config().precision,
        ));
    }
    // Servers first, then symmetric peers (configured, then dynamic), then broadcast and
    // multicast clients, per instance.
    let routes = instances.iter().flat_map(|inst| {
        let clients = inst.clients().iter().map(|c| (c.id, c.remote));
        let peers = inst.peers().iter().map(|p| (p.id, p.remote));
        let bclients = inst.broadcast().routes.iter().map(|r| (r.id, r.remote));
        clients
            .chain(peers)
            .chain(bclients)
            .map(move |(id, remote)| (inst, id, remote))
    });
    for (instance, id, remote) in routes {
        let Some(source) = system.source(id) else {
            continue;
        };
        out.push(session(instance, remote, source, now));
    }
    // The broadcast/multicast servers: Comware counts them in the total but does not show
    // them; `meridianctl sessions` hides them by their local mode.
    for inst in instances {
        for sender in &inst.broadcast().senders {
            out.push(sender_session(inst, sender, system, now));
        }
    }
    out
}

/// A broadcast or multicast server as a session: our own state as what it advertises.
fn sender_session(
    instance: &Instance,
    sender: &crate::instance::Sender,
    system: &System,
    now: Mono,
) -> SessionReport {
    let config = sender.server.config();
    let state = system.server_state(now);
    let local_mode = match sender.kind {
        crate::instance::SenderKind::Broadcast => "broadcast",
        crate::instance::SenderKind::Multicast { .. } => "multicast",
    };
    SessionReport {
        source: sender.destination().to_string(),
        vpn_instance: instance.name.clone(),
        local_mode: local_mode.to_owned(),
        peer_mode: "unspec".to_owned(),
        configured: true,
        flags: vec!["configured".to_owned()],
        stratum: state.stratum,
        reference_id: refid_text(state.reference_id, state.stratum),
        reach: 0,
        poll_s: config.poll.as_seconds() as u64,
        last_receive_s: None,
        offset_ms: 0.0,
        delay_ms: 0.0,
        dispersion_ms: 0.0,
        auth: if config.key.is_some() { "ok" } else { "none" }.to_owned(),
        verbose: SessionDetail {
            local_poll_log2: config.poll.log2(),
            precision_log2: state.precision,
            version: config.version,
            source_interface: Some(sender.interface.clone()),
            status: vec!["configured".to_owned()],
            packets_sent: sender.server.sent(),
            ..Default::default()
        },
    }
}

/// One association as a session report.
fn session(instance: &Instance, remote: SocketAddr, source: &Source, now: Mono) -> SessionReport {
    let assoc = &source.association;
    let configured = assoc.configured();
    let peer = assoc.peer();
    let stratum = peer.map_or(16, |p| p.stratum);
    let est = source.filter.estimate(now);
    let mut flags = Vec::new();
    if source.flags.system_peer {
        flags.push("master");
    }
    if stratum <= 15 && stratum > 0 {
        flags.push("peer");
    }
    if source.flags.selected {
        flags.push("selected");
    }
    if source.flags.candidate {
        flags.push("candidate");
    }
    if configured {
        flags.push("configured");
    }
    let mut status = vec![if configured { "configured" } else { "dynamic" }];
    status.extend(
        flags
            .iter()
            .filter(|f| matches!(**f, "master" | "selected" | "candidate")),
    );
    let stats = assoc.stats();
    status.push(
        if stats.last_rejection.is_some_and(|r| r == "authentication") {
            "insane"
        } else {
            "sane"
        },
    );
    status.push(if assoc.reach() != 0 {
        "valid"
    } else {
        "invalid"
    });
    if stratum >= 16 {
        status.push("unsynced");
    }
    if let Some(p) = assoc.as_peer() {
        // The active side's mode 3/4 exchange before mode 1, and a stop by a DENY/RSTR kiss.
        status.extend(p.calibration().map(|c| c.as_str()));
        if p.denied().is_some() {
            status.push("denied");
        }
    }
    let times = assoc.times();
    let samples: Vec<_> = source.filter.samples().take(8).collect();
    SessionReport {
        source: remote.ip().to_string(),
        vpn_instance: instance.name.clone(),
        local_mode: assoc.local_mode_name().to_owned(),
        peer_mode: peer.map_or("unspec", |p| p.mode.as_str()).to_owned(),
        configured,
        flags: flags.iter().map(|s| s.to_string()).collect(),
        stratum,
        reference_id: peer.map_or_else(
            || "INIT".to_owned(),
            |p| refid_text(p.reference_id, p.stratum),
        ),
        reach: assoc.reach(),
        poll_s: assoc.poll().as_seconds() as u64,
        last_receive_s: assoc
            .last_receive()
            .map(|t| now.saturating_since(t).as_secs()),
        offset_ms: est.map_or(0.0, |e| e.offset * 1e3),
        delay_ms: est.map_or(0.0, |e| e.delay * 1e3),
        dispersion_ms: est.map_or(16_000.0, |e| e.dispersion * 1e3),
        auth: assoc.auth_status().to_owned(),
        verbose: SessionDetail {
            local_poll_log2: assoc.poll().log2(),
            peer_poll_log2: peer.map_or(0, |p| p.poll),
            root_delay_ms: peer.map_or(0.0, |p| p.root_delay.to_seconds() * 1e3),
            root_dispersion_ms: peer.map_or(0.0, |p| p.root_dispersion.to_seconds() * 1e3),
            sync_distance_s: source.root_distance(now).unwrap_or(16.0),
            precision_log2: peer.map_or(0, |p| p.precision),
            version: assoc.config().version,
            source_interface: None,
            status: status.iter().map(|s| s.to_string()).collect(),
            reftime: peer
                .map_or(NtpTimestamp::ZERO, |p| p.reference_ts)
                .to_string(),
            orgtime: times.origin.to_string(),
            rcvtime: times.receive.to_string(),
            xmttime: times.transmit.to_string(),
            filter_delay_ms: samples.iter().map(|s| s.delay * 1e3).collect(),
            filter_offset_ms: samples.iter().map(|s| s.offset * 1e3).collect(),
            filter_dispersion_ms: samples.iter().map(|s| s.dispersion * 1e3).collect(),
            packets_sent: stats.sent,
            packets_received: stats.received,
            packets_rejected: stats.rejected,
            last_rejection: stats.last_rejection.map(str::to_owned),
        },
    }
}

/// The local clock as a session (Comware lists it as 127.127.1.u with reference LOCL).
fn local_session(local: LocalReference, in_use: bool, precision: i8) -> SessionReport {
    let mut flags = vec!["peer", "candidate", "configured"];
    if in_use {
        flags.splice(0..0, ["master"]);
        flags.insert(2, "selected");
    }
    let stratum = local.stratum.saturating_sub(1);
    SessionReport {
        source: local.address.to_string(),
        vpn_instance: None,
        local_mode: "client".to_owned(),
        peer_mode: "server".to_owned(),
        configured: true,
        flags: flags.iter().map(|s| s.to_string()).collect(),
        stratum,
        reference_id: "LOCL".to_owned(),
        reach: 255,
        poll_s: 64,
        last_receive_s: Some(0),
        offset_ms: 0.0,
        delay_ms: 0.0,
        dispersion_ms: 0.0,
        auth: "none".to_owned(),
        verbose: SessionDetail {
            local_poll_log2: 6,
            peer_poll_log2: 6,
            precision_log2: precision,
            version: 4,
            status: [
                "configured",
                if in_use { "master" } else { "candidate" },
                "sane",
                "valid",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            reftime: NtpTimestamp::ZERO.to_string(),
            orgtime: NtpTimestamp::ZERO.to_string(),
            rcvtime: NtpTimestamp::ZERO.to_string(),
            xmttime: NtpTimestamp::ZERO.to_string(),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        // 2036-02-07, the NTP era rollover.
        assert_eq!(civil_from_days(2_085_978_496 / 86_400), (2036, 2, 7));
    }
}
