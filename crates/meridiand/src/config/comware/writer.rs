//! Writes a [`Config`] as TOML that [`crate::config::parse_str`] reads back to the same value:
//! every table of the model, defaults included where they help the reader, secrets as text
//! or `HEX:` when they are not plain printable text.

use std::fmt::Write;

use crate::config::model::*;

/// The configuration as TOML (the format of the interface contract).
pub fn to_toml(c: &Config) -> String {
    let mut o = String::new();
    let s = &c.service;
    o.push_str("[service]\n");
    kv(&mut o, "port", s.port);
    if let Some(i) = &s.source_interface {
        kv(&mut o, "source-interface", quote(i));
    }
    kv(&mut o, "max-dynamic-sessions", s.max_dynamic_sessions);
    kv(&mut o, "dscp", s.dscp);
    if let Some(p) = &s.drift_file {
        kv(&mut o, "drift-file", quote(&p.to_string_lossy()));
    }
    o.push_str("\n[control]\n");
    kv(&mut o, "socket", quote(&c.control.socket.to_string_lossy()));
    kv(&mut o, "mode6", c.control.mode6);
    if let Some(l) = c.metrics.listen {
        o.push_str("\n[metrics]\n");
        kv(&mut o, "listen", quote(&l.to_string()));
    }
    clock(&mut o, &c.clock);
    if let Some(l) = &c.local_reference {
        o.push_str("\n[local-reference]\n");
        kv(&mut o, "address", quote(&l.address.to_string()));
        kv(&mut o, "stratum", l.stratum);
    }
    for a in &c.unicast_servers {
        association(&mut o, "unicast-server", a);
    }
    for a in &c.unicast_peers {
        association(&mut o, "unicast-peer", a);
    }
    for i in &c.interfaces {
        interface(&mut o, i);
    }
    for (name, v) in &c.vpn_instances {
        let _ = writeln!(o, "\n[vpn-instance.{}]", quote(name));
        match &v.binding {
            VpnBinding::Netns(n) => kv(&mut o, "netns", quote(n)),
            VpnBinding::Vrf(n) => kv(&mut o, "vrf", quote(n)),
        }
        kv(&mut o, "serve", v.serve);
    }
    authentication(&mut o, &c.authentication);
    let a = &c.access;
    let rights = [
        ("peer", a.peer),
        ("server", a.server),
        ("synchronization", a.synchronization),
        ("query", a.query),
    ];
    if rights.iter().any(|(_, n)| n.is_some()) {
        o.push_str("\n[access]\n");
        for (right, n) in rights {
            if let Some(n) = n {
                kv(&mut o, right, quote(&n.to_string()));
            }
        }
    }
    let r = &c.rate_limit;
    if *r != RateLimitSettings::default() {
        o.push_str("\n[rate-limit]\n");
        kv(&mut o, "enable", r.enable);
        kv(&mut o, "interval", seconds(r.interval));
        kv(&mut o, "burst", r.burst);
        kv(&mut o, "leak", r.leak);
        kv(&mut o, "kod", r.kod);
        kv(&mut o, "table-size", r.table_size);
    }
    for (n, acl) in &c.acls {
        let _ = writeln!(o, "\n[acl.{n}]");
        let rules: Vec<String> = acl
            .rules
            .iter()
            .map(|r| {
                let action = match r.action {
                    AclAction::Permit => "permit",
                    AclAction::Deny => "deny",
                };
                let source = match r.source {
                    AclSource::Any => "any".to_string(),
                    AclSource::Prefix(p) => format!("{}/{}", p.addr, p.len),
                };
                format!(
                    "  {{ action = \"{action}\", source = {} }},\n",
                    quote(&source)
                )
            })
            .collect();
        let _ = write!(o, "rules = [\n{}]\n", rules.concat());
    }
    o
}

fn kv(o: &mut String, key: &str, value: impl std::fmt::Display) {
    let _ = writeln!(o, "{key} = {value}");
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for ch in s.chars() {
        match ch {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04X}", u32::from(c));
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Seconds as a duration string the reader parses back to the same f64.
fn seconds(v: f64) -> String {
    quote(&format!("{v}s"))
}

fn clock(o: &mut String, c: &ClockConfig) {
    o.push_str("\n[clock]\n");
    kv(o, "driver", quote(c.driver.as_str()));
    kv(o, "step-threshold", seconds(c.step_threshold));
    kv(o, "panic-threshold", seconds(c.panic_threshold));
    if c.driver == ClockDriverKind::Simulated {
        let sign = if c.initial_offset.is_sign_negative() {
            ""
        } else {
            "+"
        };
        kv(
            o,
            "initial-offset",
            quote(&format!("{sign}{}s", c.initial_offset)),
        );
        kv(o, "frequency-ppm", toml_edit::Value::from(c.frequency_ppm));
    }
}

fn association(o: &mut String, table: &str, a: &AssociationConfig) {
    let _ = writeln!(o, "\n[[{table}]]");
    kv(o, "address", quote(&a.address));
    if let Some(v) = &a.vpn_instance {
        kv(o, "vpn-instance", quote(v));
    }
    if let Some(k) = a.key_id {
        kv(o, "key-id", k);
    }
    if a.priority {
        kv(o, "priority", true);
    }
    if let Some(i) = &a.source_interface {
        kv(o, "source-interface", quote(i));
    }
    kv(o, "version", a.version);
    kv(o, "minpoll", a.minpoll);
    kv(o, "maxpoll", a.maxpoll);
    if a.iburst {
        kv(o, "iburst", true);
    }
    if a.port != DEFAULT_PORT {
        kv(o, "port", a.port);
    }
}

fn interface(o: &mut String, i: &InterfaceConfig) {
    o.push_str("\n[[interface]]\n");
    kv(o, "name", quote(&i.name));
    if let Some(v) = &i.vpn_instance {
        kv(o, "vpn-instance", quote(v));
    }
    kv(o, "receive", i.receive);
    if let Some(b) = &i.broadcast_server {
        let key = b
            .key_id
            .map_or(String::new(), |k| format!("key-id = {k}, "));
        let _ = writeln!(
            o,
            "broadcast-server = {{ {key}version = {}, poll = {} }}",
            b.version, b.poll
        );
    }
    if i.broadcast_client {
        kv(o, "broadcast-client", true);
    }
    if let Some(m) = &i.multicast_server {
        let key = m
            .key_id
            .map_or(String::new(), |k| format!(", key-id = {k}"));
        let _ = writeln!(
            o,
            "multicast-server = {{ group = {}, ttl = {}{key}, version = {}, poll = {} }}",
            quote(&m.group.to_string()),
            m.ttl,
            m.version,
            m.poll
        );
    }
    if let Some(m) = &i.multicast_client {
        let _ = writeln!(
            o,
            "multicast-client = {{ group = {} }}",
            quote(&m.group.to_string())
        );
    }
}

fn authentication(o: &mut String, a: &AuthenticationConfig) {
    if *a == AuthenticationConfig::default() {
        return;
    }
    o.push_str("\n[authentication]\n");
    kv(o, "enable", a.enable);
    if let Some(f) = &a.keys_file {
        kv(o, "keys-file", quote(&f.to_string_lossy()));
    }
    if !a.keys.is_empty() {
        o.push_str("keys = [\n");
        for k in &a.keys {
            let _ = writeln!(
                o,
                "  {{ id = {}, algorithm = \"{}\", secret = {} }},",
                k.id,
                k.algorithm.as_str(),
                quote(&secret(&k.secret))
            );
        }
        o.push_str("]\n");
    }
    if !a.trusted.is_empty() {
        let ids: Vec<String> = a.trusted.iter().map(u32::to_string).collect();
        let _ = writeln!(o, "trusted = [{}]", ids.join(", "));
    }
}

/// A secret as the reader takes it: the text itself, or `HEX:` and hex digits.
fn secret(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(t)
            if !t.starts_with("HEX:")
                && !t.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            t.to_string()
        }
        _ => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("HEX:{hex}")
        }
    }
}
