//! Reads the tables about who may talk to us and how: `[vpn-instance.NAME]`,
//! `[authentication]`, `[access]` and `[acl.N]`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use toml_edit::Value;

use super::build::{check_ifname, Sites};
use super::keys::decode_secret;
use super::model::*;
use super::reader::{inline_tables, int_value, Diag, Tab};

/// Lowest basic ACL number.
pub const ACL_MIN: u32 = 2000;
/// Highest basic ACL number.
pub const ACL_MAX: u32 = 2999;

pub(crate) fn read_vpn_instances(
    d: &mut Diag<'_>,
    mut t: Tab<'_>,
) -> BTreeMap<String, VpnInstanceConfig> {
    let mut out = BTreeMap::new();
    for (key, item) in t.entries() {
        let name = key.get();
        if name.is_empty() || name.len() > 31 {
            d.err(&key.span(), "a VPN instance name must be 1..=31 characters");
        }
        let Some(mut v) = Tab::from_item(d, key.span(), item, format!("[vpn-instance.{name}]"))
        else {
            continue;
        };
        let netns = v.nonempty_str(d, "netns");
        let vrf = v.nonempty_str(d, "vrf");
        let binding = match (netns, vrf) {
            (Some((ns, span)), None) => {
                if ns == "." || ns == ".." || ns.contains('/') {
                    d.err(&span, format!("`netns` \"{ns}\" is not a namespace name (a file name under /run/netns)"));
                }
                Some(VpnBinding::Netns(ns.to_string()))
            }
            (None, Some((dev, span))) => {
                if let Err(e) = check_ifname(dev) {
                    d.err(&span, format!("`vrf` {e}"));
                }
                Some(VpnBinding::Vrf(dev.to_string()))
            }
            (Some(_), Some((_, span))) => {
                d.err(
                    &span,
                    format!(
                        "[vpn-instance.{name}] must have exactly one of `netns` or `vrf`, not both"
                    ),
                );
                None
            }
            (None, None) => {
                if v.entry("netns").is_none() && v.entry("vrf").is_none() {
                    d.err(
                        &v.span,
                        format!("[vpn-instance.{name}] needs `netns` or `vrf`"),
                    );
                }
                None
            }
        };
        let serve = v.bool(d, "serve").unwrap_or(true);
        v.finish(d);
        if let Some(binding) = binding {
            out.insert(name.to_string(), VpnInstanceConfig { binding, serve });
        }
    }
    t.finish(d);
    out
}

pub(crate) fn read_authentication(
    d: &mut Diag<'_>,
    mut t: Tab<'_>,
    sites: &mut Sites,
) -> AuthenticationConfig {
    let mut a = AuthenticationConfig {
        enable: t.bool(d, "enable").unwrap_or(false),
        ..AuthenticationConfig::default()
    };
    if let Some((path, span)) = t.nonempty_str(d, "keys-file") {
        a.keys_file = Some(PathBuf::from(path));
        sites.keys_file = span;
    }
    if let Some((array, _)) = t.array(d, "keys") {
        for mut k in inline_tables(d, array, "`keys`") {
            if let Some(key) = read_key(d, &mut k) {
                if a.keys.iter().any(|o| o.id == key.id) {
                    let span = k
                        .entry("id")
                        .and_then(|(_, i)| i.as_value().and_then(Value::span));
                    d.err(&span, format!("key {} is defined twice", key.id));
                } else {
                    a.keys.push(key);
                }
            }
            k.finish(d);
        }
    }
    if let Some((array, _)) = t.array(d, "trusted") {
        for v in array.iter() {
            let span = v.span();
            if let Some(id) = int_value(d, "trusted", v, &span, 1, i64::from(u32::MAX)) {
                let id = u32::try_from(id).unwrap_or(1);
                if a.trusted.contains(&id) {
                    d.err(&span, format!("key {id} is listed twice in `trusted`"));
                } else {
                    a.trusted.push(id);
                    sites.trusted.push((id, span));
                }
            }
        }
    }
    t.finish(d);
    a
}

fn read_key(d: &mut Diag<'_>, k: &mut Tab<'_>) -> Option<AuthKey> {
    let id = k.int(d, "id", 1, i64::from(u32::MAX));
    let algorithm = match k.str(d, "algorithm") {
        Some((s, span)) => {
            let alg = KeyAlgorithm::from_name(s);
            if alg.is_none() {
                d.err(
                    &span,
                    format!("unknown `algorithm` \"{s}\" (use md5, sha1, sha256, aes128-cmac or aes256-cmac)"),
                );
            }
            alg
        }
        None => None,
    };
    let secret = k.str(d, "secret");
    for key in ["id", "algorithm", "secret"] {
        if k.entry(key).is_none() {
            d.err(&k.span, format!("a key needs `{key}`"));
        }
    }
    let ((id, _), algorithm, (secret, secret_span)) = (id?, algorithm?, secret?);
    match decode_secret(secret, algorithm) {
        Ok(secret) => Some(AuthKey {
            id: u32::try_from(id).unwrap_or(1),
            algorithm,
            secret,
        }),
        Err(e) => {
            d.err(&secret_span, e);
            None
        }
    }
}

pub(crate) fn read_access(d: &mut Diag<'_>, mut t: Tab<'_>, sites: &mut Sites) -> AccessConfig {
    let mut one = |t: &mut Tab<'_>, key: &'static str| -> Option<u32> {
        let (v, span) = t.value(d, key)?;
        let number = match v {
            Value::String(s) => s.value().parse::<u32>().ok(),
            Value::Integer(i) => u32::try_from(*i.value()).ok(),
            _ => None,
        };
        match number {
            Some(n) if (ACL_MIN..=ACL_MAX).contains(&n) => {
                sites.acl_refs.push((n, span));
                Some(n)
            }
            _ => {
                d.err(
                    &span,
                    format!("`{key}` must be a basic ACL number {ACL_MIN}..={ACL_MAX}"),
                );
                None
            }
        }
    };
    let access = AccessConfig {
        peer: one(&mut t, "peer"),
        server: one(&mut t, "server"),
        synchronization: one(&mut t, "synchronization"),
        query: one(&mut t, "query"),
    };
    t.finish(d);
    access
}

pub(crate) fn read_acls(d: &mut Diag<'_>, mut t: Tab<'_>) -> BTreeMap<u32, AclConfig> {
    let mut out = BTreeMap::new();
    for (key, item) in t.entries() {
        let name = key.get();
        let number = name
            .parse::<u32>()
            .ok()
            .filter(|n| (ACL_MIN..=ACL_MAX).contains(n));
        if number.is_none() {
            d.err(
                &key.span(),
                format!("ACL number \"{name}\" must be a basic ACL number {ACL_MIN}..={ACL_MAX}"),
            );
        }
        let Some(mut a) = Tab::from_item(d, key.span(), item, format!("[acl.{name}]")) else {
            continue;
        };
        let mut acl = AclConfig::default();
        for mut r in a.tables(d, "rules") {
            if let Some(rule) = read_rule(d, &mut r) {
                acl.rules.push(rule);
            }
            r.finish(d);
        }
        a.finish(d);
        if let Some(n) = number {
            out.insert(n, acl);
        }
    }
    t.finish(d);
    out
}

fn read_rule(d: &mut Diag<'_>, r: &mut Tab<'_>) -> Option<AclRule> {
    let action = match r.str(d, "action") {
        Some(("permit", _)) => Some(AclAction::Permit),
        Some(("deny", _)) => Some(AclAction::Deny),
        Some((other, span)) => {
            d.err(
                &span,
                format!("`action` must be \"permit\" or \"deny\", got \"{other}\""),
            );
            None
        }
        None => None,
    };
    let source = match r.str(d, "source") {
        Some((s, span)) => match parse_source(s) {
            Ok(src) => Some(src),
            Err(e) => {
                d.err(&span, e);
                None
            }
        },
        None => None,
    };
    for key in ["action", "source"] {
        if r.entry(key).is_none() {
            d.err(&r.span, format!("an ACL rule needs `{key}`"));
        }
    }
    Some(AclRule {
        action: action?,
        source: source?,
    })
}

/// `"any"`, an address, or ADDRESS/LEN with no host bits set.
pub(crate) fn parse_source(s: &str) -> Result<AclSource, String> {
    if s == "any" {
        return Ok(AclSource::Any);
    }
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let bad = || format!("`source` must be \"any\", an IP address or ADDRESS/LEN, got \"{s}\"");
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => width,
        Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => l
            .parse::<u8>()
            .ok()
            .filter(|&n| n <= width)
            .ok_or_else(|| format!("prefix length in \"{s}\" must be at most {width}"))?,
        Some(_) => return Err(bad()),
    };
    let prefix = IpPrefix { addr, len };
    let bits = match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    if mask_bits(bits, u32::from(width), len) != bits {
        return Err(format!("\"{s}\" has host bits set after the /{len} prefix"));
    }
    Ok(AclSource::Prefix(prefix))
}
