//! Cross-checks between tables: references to keys, VPN instances and ACLs, and duplicates.

use super::build::Sites;
use super::model::Config;
use super::reader::Diag;

/// Check every reference recorded in `sites` against `config`.
///
/// `keys_complete` is false when a keys file exists but was not read (plain [`super::parse_str`]):
/// key references are then not checked, since the key may be in that file.
pub(crate) fn cross_check(d: &mut Diag<'_>, config: &Config, sites: &Sites, keys_complete: bool) {
    if keys_complete {
        let known = |id: u32| config.authentication.key(id).is_some();
        for (id, span) in &sites.key_refs {
            if !known(*id) {
                d.err(span, format!("`key-id` {id} is not a configured key"));
            }
        }
        for (id, span) in &sites.trusted {
            if !known(*id) {
                d.err(span, format!("trusted key {id} is not a configured key"));
            }
        }
    }
    for (name, span) in &sites.vpn_refs {
        if !config.vpn_instances.contains_key(name) {
            d.err(
                span,
                format!(
                    "`vpn-instance` \"{name}\" is not declared (add a [vpn-instance.{name}] table)"
                ),
            );
        }
    }
    for (n, span) in &sites.acl_refs {
        if !config.acls.contains_key(n) {
            d.err(
                span,
                format!("ACL {n} is not defined (add an [acl.{n}] table)"),
            );
        }
    }
    for (i, a) in sites.associations.iter().enumerate() {
        let earlier = sites.associations[..i]
            .iter()
            .find(|b| b.canonical == a.canonical && b.port == a.port && b.vpn == a.vpn);
        if let Some(b) = earlier {
            let (line, column) = d.position(&b.span);
            let scope = a.vpn.as_ref().map_or_else(
                || "the public network".to_string(),
                |v| format!("VPN instance \"{v}\""),
            );
            d.err(
                &a.span,
                format!(
                    "{} \"{}\" duplicates the {} at {line}:{column} in {scope}",
                    a.kind, a.canonical, b.kind
                ),
            );
        }
    }
    for (i, (name, vpn, span)) in sites.interfaces.iter().enumerate() {
        if let Some((_, _, first)) = sites.interfaces[..i]
            .iter()
            .find(|(n, v, _)| n == name && v == vpn)
        {
            let (line, column) = d.position(first);
            d.err(
                span,
                format!("interface \"{name}\" is already configured at {line}:{column}"),
            );
        }
    }
    if let Some(span) = &sites.server_threads {
        if config.clock.driver == super::model::ClockDriverKind::Simulated {
            d.err(
                span,
                "`server-threads` needs a clock every thread can read: driver \"system\" or \"read-only\" (the \"simulated\" clock lives in the main loop); set it to 0",
            );
        }
    }
}
