//! Configuration reload (SIGHUP, `meridianctl reload`): the file is read and validated again,
//! and applied atomically. Either everything in it can be applied to the running daemon and
//! is, or nothing changes: an invalid file is refused with its errors, and a change that only
//! a restart can make (the clock driver, the port, the VPN instances...) is refused by name.
//! Associations that did not change keep all their state (filter, reach, poll); removed ones
//! are dropped, new ones start; the access rights, rate limits, keys and local reference are
//! replaced.

use super::Runtime;
use crate::config::{self, Config};
use crate::instance::ClientSpec;
use crate::startup;
use meridian_proto::gate::ServerGate;
use meridian_proto::system::LocalReference;

/// What of `new` differs from `old` in a way that needs a restart.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.clock != new.clock {
        out.push("[clock]");
    }
    if old.service.port != new.service.port {
        out.push("[service] port");
    }
    if old.service.dscp != new.service.dscp {
        out.push("[service] dscp");
    }
    if old.service.source_interface != new.service.source_interface {
        out.push("[service] source-interface");
    }
    if old.service.server_threads != new.service.server_threads {
        out.push("[service] server-threads");
    }
    if old.service.drift_file != new.service.drift_file {
        out.push("[service] drift-file");
    }
    if old.control.socket != new.control.socket {
        out.push("[control] socket");
    }
    if old.metrics != new.metrics {
        out.push("[metrics]");
    }
    if old.vpn_instances != new.vpn_instances {
        out.push("[vpn-instance]");
    }
    // Interfaces: only `receive` can change on the fly.
    let shape = |c: &Config| {
        c.interfaces
            .iter()
            .map(|i| {
                let mut i = i.clone();
                i.receive = true;
                i
            })
            .collect::<Vec<_>>()
    };
    if shape(old) != shape(new) {
        out.push("[[interface]] broadcast/multicast settings");
    }
    out
}

impl Runtime {
    /// Re-reads the configuration file and applies it; returns a summary, or why nothing
    /// changed.
    pub fn reload(&mut self) -> Result<String, String> {
        let new = config::check_file(&self.config_path)?;
        let blockers = restart_needed(&self.config, &new);
        if !blockers.is_empty() {
            return Err(format!(
                "not reloaded: {} changed, which needs a restart; the running configuration stays in force",
                blockers.join(", ")
            ));
        }
        let old_keys = crate::auth::key_table(&self.config.authentication)?;
        let new_keys = crate::auth::key_table(&new.authentication)?;
        // Work out every change before making any, so a failure leaves nothing half done.
        let mut plan = Vec::new();
        for (index, instance) in self.instances.iter().enumerate() {
            let name = instance.name.as_ref();
            for peer in [false, true] {
                let list = |c: &Config| {
                    if peer {
                        c.unicast_peers.clone()
                    } else {
                        c.unicast_servers.clone()
                    }
                };
                let specs = |c: &Config, keys| -> Result<Vec<_>, String> {
                    list(c)
                        .iter()
                        .filter(|a| a.vpn_instance.as_ref() == name)
                        .map(|a| startup::client_spec(a, keys))
                        .collect()
                };
                let (old, new_specs) = (specs(&self.config, &old_keys)?, specs(&new, &new_keys)?);
                let same = |a: &ClientSpec, b: &ClientSpec| {
                    a.remote == b.remote
                        && a.config == b.config
                        && a.prefer == b.prefer
                        && a.source_interface == b.source_interface
                };
                for o in old.iter().filter(|o| !new_specs.iter().any(|n| same(o, n))) {
                    if let Some(id) = instance.configured_source(o.remote, peer) {
                        plan.push(Change::Remove { index, id });
                    }
                }
                for n in new_specs.iter().filter(|n| !old.iter().any(|o| same(o, n))) {
                    if peer && !instance.has_server_sockets() {
                        return Err(format!(
                            "not reloaded: a first [[unicast-peer]] in {} needs the NTP port, which needs a restart",
                            name.map_or("the public network", |n| n.as_str())
                        ));
                    }
                    plan.push(Change::Add {
                        index,
                        peer,
                        spec: n.clone(),
                    });
                }
            }
        }

        let now = super::mono_now();
        let (mut added, mut removed) = (0, 0);
        for change in plan {
            match change {
                Change::Remove { index, id } => {
                    self.instances[index].remove_source(id);
                    self.system.remove_source(id);
                    removed += 1;
                }
                Change::Add {
                    index,
                    peer: false,
                    spec,
                } => {
                    let dscp = new.service.dscp;
                    self.instances[index]
                        .add_client(&spec, dscp, &mut self.system, now, &mut self.rng)
                        .map_err(|e| {
                            format!("reload: cannot open a socket to {}: {e}", spec.remote)
                        })?;
                    added += 1;
                }
                Change::Add {
                    index,
                    peer: true,
                    spec,
                } => {
                    self.instances[index].add_configured_peer(
                        &spec,
                        new.service.dscp,
                        &mut self.system,
                        now,
                        &mut self.rng,
                    );
                    added += 1;
                }
            }
        }
        self.system
            .set_local_reference(new.local_reference.as_ref().map(|l| LocalReference {
                stratum: l.stratum,
                address: l.address,
            }));
        self.system
            .set_max_dynamic(usize::from(new.service.max_dynamic_sessions));
        let policy_changed = new.access != self.config.access
            || new.acls != self.config.acls
            || new.rate_limit != self.config.rate_limit
            || new.interfaces != self.config.interfaces;
        for instance in &mut self.instances {
            if policy_changed {
                let receive_disabled = new
                    .interfaces
                    .iter()
                    .filter(|i| i.vpn_instance == instance.name && !i.receive)
                    .map(|i| i.name.clone())
                    .collect();
                let gate =
                    ServerGate::new(new.access_policy(), new.rate_limit.to_core(), &mut self.rng);
                instance.set_server_policy(gate, receive_disabled);
            }
            instance.server_keys = new_keys.clone();
            instance.auth_enabled = new.authentication.enable;
            instance.mode6 = new.control.mode6;
            instance.refresh_thread_policy(policy_changed);
        }
        self.publish_server_state(now);
        let kept = self
            .system
            .sources()
            .filter(|(_, s)| s.association.configured())
            .count()
            - added;
        self.config = new;
        Ok(format!(
            "configuration reloaded: {kept} association(s) kept, {added} added, {removed} removed{}",
            if policy_changed { ", access rules replaced" } else { "" }
        ))
    }
}

enum Change {
    Remove {
        index: usize,
        id: meridian_proto::system::SourceId,
    },
    Add {
        index: usize,
        peer: bool,
        spec: ClientSpec,
    },
}
