//! Turning a validated configuration into running parts: the clock driver, the drift file's
//! frequency, the shared `System`, and one `Instance` per network (the public one first, then
//! every VPN instance, each opened inside its namespace or on its VRF device).

use crate::clock::{Clock, ReadOnlyClock, SimulatedClock, SystemClock};
use crate::config::{AssociationConfig, ClockDriverKind, Config, VpnBinding};
use crate::drift;
use crate::instance::{Binding, ClientSpec, Instance};
use meridian_proto::client::ClientConfig;
use meridian_proto::discipline::DisciplineConfig;
use meridian_proto::entropy::Entropy;
use meridian_proto::keys::KeyTable;
use meridian_proto::system::{LocalReference, System, SystemConfig};
use meridian_proto::time::{Mono, NtpTimestamp, PollInterval};
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves a configured server address (an IP address or a host name) with its port.
pub fn resolve(address: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = address.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (address, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address} has no address"))
}

pub fn open_clock(config: &Config) -> std::io::Result<Box<dyn Clock>> {
    Ok(match config.clock.driver {
        ClockDriverKind::System => Box::new(SystemClock::open()?),
        ClockDriverKind::ReadOnly => Box::new(ReadOnlyClock::new()),
        ClockDriverKind::Simulated => Box::new(SimulatedClock::new(
            config.clock.initial_offset,
            config.clock.frequency_ppm,
        )),
    })
}

/// The frequency to start from: the drift file's, else what the clock has now. A missing or
/// corrupt drift file is a warning, never a failure.
pub fn initial_frequency(config: &Config, clock: &dyn Clock) -> f64 {
    let Some(path) = &config.service.drift_file else {
        return clock.frequency_ppm();
    };
    match drift::read(path) {
        drift::DriftRead::Ok(ppm) => {
            crate::info!("frequency {ppm:.3} ppm from {}", path.display());
            ppm
        }
        drift::DriftRead::Missing => 0.0,
        drift::DriftRead::Corrupt(why) => {
            crate::warn!(
                "ignoring drift file {}: {why}; starting from 0 ppm",
                path.display()
            );
            0.0
        }
    }
}

/// The clock is never set before this time (RFC 8633 s.5.2 asks for a floor at the build
/// date): the start of the year before this release, so that a server claiming a time years
/// back is refused even with the panic threshold raised. Moved forward with each release.
pub const TIME_FLOOR_UNIX: i64 = 1_735_689_600;
/// [`TIME_FLOOR_UNIX`] for messages.
pub const TIME_FLOOR_TEXT: &str = "2025-01-01T00:00:00Z";

pub fn system_config(config: &Config, precision: i8, initial_frequency_ppm: f64) -> SystemConfig {
    SystemConfig {
        precision,
        local_reference: config.local_reference.as_ref().map(|l| LocalReference {
            stratum: l.stratum,
            address: l.address,
        }),
        discipline: DisciplineConfig {
            step_threshold: config.clock.step_threshold,
            panic_threshold: config.clock.panic_threshold,
            time_floor: Some(NtpTimestamp::from_unix(TIME_FLOOR_UNIX, 0)),
            ..DisciplineConfig::default()
        },
        initial_frequency_ppm,
        min_survivors: 1,
    }
}

pub fn client_spec(server: &AssociationConfig, keys: &KeyTable) -> Result<ClientSpec, String> {
    Ok(ClientSpec {
        label: server.address.clone(),
        remote: resolve(&server.address, server.port)?,
        config: ClientConfig {
            version: server.version,
            minpoll: PollInterval::new(server.minpoll),
            maxpoll: PollInterval::new(server.maxpoll),
            iburst: server.iburst,
            key: crate::auth::association_key(keys, server.key_id)?,
        },
        prefer: server.priority,
        source_interface: server.source_interface.clone(),
    })
}

/// Opens the public instance and every VPN instance, registering their associations
/// (servers and symmetric peers) with `system`, and sets `max-dynamic-sessions`.
pub fn open_instances(
    config: &Config,
    system: &mut System,
    now: Mono,
    rng: &mut dyn Entropy,
) -> Result<Vec<Instance>, String> {
    let keys = crate::auth::key_table(&config.authentication)?;
    system.set_max_dynamic(usize::from(config.service.max_dynamic_sessions));
    let mut names: Vec<Option<&String>> = vec![None];
    names.extend(config.vpn_instances.keys().map(Some));
    // VRF instances bind the NTP port in the daemon's own namespace, next to the public one.
    let with_vrf = config
        .vpn_instances
        .values()
        .any(|v| matches!(v.binding, VpnBinding::Vrf(_)));
    let mut instances = Vec::new();
    for name in names {
        let (binding, serve) = match name.and_then(|n| config.vpn_instances.get(n)) {
            None => (Binding::Public, true),
            Some(vpn) => {
                let binding = match &vpn.binding {
                    VpnBinding::Netns(ns) => Binding::Netns(crate::netns::netns_path(ns)),
                    VpnBinding::Vrf(dev) => Binding::Vrf(dev.clone()),
                };
                (binding, vpn.serve)
            }
        };
        let clients = config
            .unicast_servers
            .iter()
            .filter(|s| s.vpn_instance.as_ref() == name)
            .map(|s| client_spec(s, &keys))
            .collect::<Result<Vec<_>, _>>()?;
        // `[[unicast-peer]]`: the same options, a symmetric-active association.
        let peers = config
            .unicast_peers
            .iter()
            .filter(|s| s.vpn_instance.as_ref() == name)
            .map(|s| client_spec(s, &keys))
            .collect::<Result<Vec<_>, _>>()?;
        let share_port = with_vrf && !matches!(binding, Binding::Netns(_));
        let mut instance = Instance::open(
            name.cloned(),
            binding,
            serve,
            config.service.port,
            share_port,
            config.service.dscp,
            usize::from(config.service.server_threads),
            &clients,
            &peers,
            system,
            now,
            rng,
        )
        .map_err(|e| e.to_string())?;
        instance.server_keys = keys.clone();
        instance.source_interface = config.service.source_interface.clone();
        instance.refresh_sources(config.service.dscp);
        instance.auth_enabled = config.authentication.enable;
        let interfaces: Vec<_> = config
            .interfaces
            .iter()
            .filter(|i| i.vpn_instance.as_ref() == name)
            .collect();
        instance.configure_broadcast(&interfaces, &keys, config.authentication.enable, now, rng);
        instances.push(instance);
    }
    Ok(instances)
}
