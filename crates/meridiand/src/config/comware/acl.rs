//! Basic ACLs (`acl number N` / `acl basic N`, `acl ipv6 ...`) with their `rule` lines. They
//! are stored as read and translated at the end, and only those named by `ntp-service access`
//! (or C7 `ntp-service RIGHT acl N`) become `[acl.N]`; the others belong to other features.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use super::commands::{number, RIGHTS};
use super::lexer::Line;
use super::{Draft, View};
use crate::config::model::*;

/// One basic ACL as written.
pub(crate) struct AclDraft {
    /// `match-order auto`: most specific rule first instead of by rule ID.
    pub auto_order: bool,
    /// Lines of the ACL view with their `undo` flag, in file order.
    pub lines: Vec<(Line, bool)>,
    /// The `acl ...` line, counted as skipped if the ACL is not used by NTP.
    pub header: Line,
}

/// `acl [ipv6] {number|basic} N [name X] [match-order auto|config]`: the view of a basic ACL,
/// or [`View::Other`] for any other kind of ACL.
pub(crate) fn enter(d: &mut Draft<'_>, line: &Line) -> View {
    let mut i = 1;
    let ipv6 = line.word(i) == "ipv6";
    if ipv6 {
        i += 1;
    }
    if !matches!(line.word(i), "number" | "basic") {
        return View::Other;
    }
    let Ok(n) = line.word(i + 1).parse::<u32>() else {
        return View::Other;
    };
    if !(2000..=2999).contains(&n) {
        return View::Other;
    }
    let auto = line
        .tokens
        .windows(2)
        .any(|w| w[0].text == "match-order" && w[1].text == "auto");
    let key = (n, ipv6);
    let entry = d.acls.entry(key).or_insert_with(|| AclDraft {
        auto_order: false,
        lines: Vec::new(),
        header: line.clone(),
    });
    entry.auto_order |= auto;
    View::Acl(key)
}

/// A `rule`, `step` or `description` line inside the ACL view `key`.
pub(crate) fn record(d: &mut Draft<'_>, key: (u32, bool), line: &Line, undo: bool) {
    if let Some(a) = d.acls.get_mut(&key) {
        a.lines.push((line.clone(), undo));
    }
}

/// The `[acl.N]` tables for the ACLs the access rights name; unused ACLs count as skipped.
pub(crate) fn translate(d: &mut Draft<'_>) -> BTreeMap<u32, AclConfig> {
    let mut out: BTreeMap<u32, AclConfig> = BTreeMap::new();
    let mut used: Vec<(u32, bool)> = Vec::new();
    for r in 0..RIGHTS.len() {
        let Some((n, pos)) = d.access[r] else {
            continue;
        };
        let ipv6 = d.access_family[r];
        let key = (n, ipv6);
        if used.contains(&key) {
            continue;
        }
        if used.iter().any(|(m, _)| *m == n) {
            d.err(
                pos,
                format!("ACL {n} is used for IPv4 and for IPv6: give the IPv6 rights another ACL number"),
            );
            continue;
        }
        used.push(key);
        let Some(acl) = d.acls.remove(&key) else {
            let cmd = if ipv6 { "acl ipv6 basic" } else { "acl number" };
            d.err(
                pos,
                format!("ACL {n} is not defined: add `{cmd} {n}` with its rules"),
            );
            continue;
        };
        let rules = rules(d, &acl, ipv6);
        out.insert(n, AclConfig { rules });
    }
    let unused = std::mem::take(&mut d.acls);
    for acl in unused.into_values() {
        d.skip(&acl.header);
        for (line, _) in &acl.lines {
            d.skip(line);
        }
    }
    out
}

/// The ordered rules of one ACL.
fn rules(d: &mut Draft<'_>, acl: &AclDraft, ipv6: bool) -> Vec<AclRule> {
    let mut step: u32 = 5;
    let mut list: Vec<(u32, AclRule)> = Vec::new();
    for (line, undo) in &acl.lines {
        let base = usize::from(*undo);
        match line.word(base) {
            "step" if *undo => step = 5,
            "step" => {
                if let Some(s) = number(d, line, base + 1, "the rule numbering step", 1, 20) {
                    step = s as u32;
                }
            }
            "rule" => {
                let mut j = base + 1;
                let id = line.word(j).parse::<u32>().ok();
                if id.is_some() {
                    if number(d, line, j, "the rule ID", 0, 65534).is_none() {
                        continue;
                    }
                    j += 1;
                }
                if *undo {
                    if let Some(id) = id {
                        list.retain(|(i, _)| *i != id);
                    }
                    continue;
                }
                let Some(rule) = rule(d, line, j, ipv6) else {
                    continue;
                };
                let id = id.unwrap_or_else(|| {
                    list.iter()
                        .map(|(i, _)| *i)
                        .max()
                        .map_or(0, |m| (m / step + 1) * step)
                });
                match list.iter_mut().find(|(i, _)| *i == id) {
                    Some(existing) => existing.1 = rule,
                    None => list.push((id, rule)),
                }
            }
            _ => {}
        }
    }
    if acl.auto_order {
        list.sort_by_key(|(id, r)| (std::cmp::Reverse(prefix_len(r)), *id));
    } else {
        list.sort_by_key(|(id, _)| *id);
    }
    list.into_iter().map(|(_, r)| r).collect()
}

fn prefix_len(r: &AclRule) -> u8 {
    match r.source {
        AclSource::Any => 0,
        AclSource::Prefix(p) => p.len,
    }
}

/// `permit|deny [source ...] [logging] [counting]` from word `j`.
fn rule(d: &mut Draft<'_>, line: &Line, mut j: usize, ipv6: bool) -> Option<AclRule> {
    let action = match line.word(j) {
        "permit" => AclAction::Permit,
        "deny" => AclAction::Deny,
        w => {
            d.err(
                (line.no, line.col(j)),
                format!("expected `permit` or `deny`, got \"{w}\""),
            );
            return None;
        }
    };
    j += 1;
    let mut source = AclSource::Any;
    while j < line.tokens.len() {
        match line.word(j) {
            "source" => {
                let (s, next) = if ipv6 {
                    source_v6(d, line, j + 1)?
                } else {
                    source_v4(d, line, j + 1)?
                };
                source = s;
                j = next;
            }
            "logging" | "counting" => j += 1,
            w => {
                d.err(
                    (line.no, line.col(j)),
                    format!(
                        "rule option `{w}` is not supported in an ACL used by NTP (only `source`)"
                    ),
                );
                return None;
            }
        }
    }
    Some(AclRule { action, source })
}

/// `any` or `ADDR WILDCARD` (wildcard 0 = one host).
fn source_v4(d: &mut Draft<'_>, line: &Line, j: usize) -> Option<(AclSource, usize)> {
    if line.word(j) == "any" {
        return Some((AclSource::Any, j + 1));
    }
    let Ok(addr) = line.word(j).parse::<Ipv4Addr>() else {
        d.err(
            (line.no, line.col(j)),
            format!(
                "expected `any` or an IPv4 address after `source`, got \"{}\"",
                line.word(j)
            ),
        );
        return None;
    };
    let wpos = (line.no, line.col(j + 1));
    let wild_text = line.word(j + 1);
    let wild = if wild_text == "0" {
        Some(0u32)
    } else {
        wild_text.parse::<Ipv4Addr>().ok().map(u32::from)
    };
    let Some(w) = wild else {
        d.err(
            wpos,
            format!("expected a wildcard mask (like 0.0.0.255, or 0 for one host) after the address, got \"{wild_text}\""),
        );
        return None;
    };
    if w & w.wrapping_add(1) != 0 {
        let inverse = !w;
        let hint = if inverse & inverse.wrapping_add(1) == 0 {
            format!(
                ": it looks like a netmask, the wildcard is its inverse {}",
                Ipv4Addr::from(!w)
            )
        } else {
            String::new()
        };
        d.err(
            wpos,
            format!(
                "wildcard {wild_text} is not contiguous and cannot be written as a prefix{hint}"
            ),
        );
        return None;
    }
    let len = 32 - w.count_ones() as u8;
    let net = Ipv4Addr::from(u32::from(addr) & !w);
    Some((
        AclSource::Prefix(IpPrefix {
            addr: IpAddr::V4(net),
            len,
        }),
        j + 2,
    ))
}

/// `any`, `ADDR/LEN` or `ADDR LEN`.
fn source_v6(d: &mut Draft<'_>, line: &Line, j: usize) -> Option<(AclSource, usize)> {
    let w = line.word(j);
    if w == "any" {
        return Some((AclSource::Any, j + 1));
    }
    let (addr, len, next) = match w.split_once('/') {
        Some((a, l)) => (a, l.to_string(), j + 1),
        None => (w, line.word(j + 1).to_string(), j + 2),
    };
    let parsed = addr
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .zip(len.parse::<u8>().ok().filter(|l| *l <= 128));
    let Some((a, len)) = parsed else {
        d.err(
            (line.no, line.col(j)),
            format!(
                "expected `any` or an IPv6 prefix like 2001:db8::/32 after `source`, got \"{w}\""
            ),
        );
        return None;
    };
    let net = mask_bits(u128::from(a), 128, len);
    let prefix = IpPrefix {
        addr: IpAddr::V6(net.into()),
        len,
    };
    Some((AclSource::Prefix(prefix), next))
}
