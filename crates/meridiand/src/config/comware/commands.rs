//! System-view `ntp-service` commands: unicast servers and peers, the local reference clock,
//! source interface, limits, access rights, keys; dispatches interface-view commands to
//! [`super::iface`]. Argument helpers shared by the other readers live here too.

use std::net::IpAddr;

use super::lexer::Line;
use super::{iface, Draft, Pos, View};
use crate::config::build::is_host_name;
use crate::config::model::*;

/// One `unicast-server` or `unicast-peer` with where it was written.
pub(crate) struct Assoc {
    pub config: AssociationConfig,
    /// Canonical address (IP as printed, or host name lowercased) for duplicate detection.
    pub canonical: String,
    pub addr_pos: Pos,
    pub key_pos: Option<Pos>,
}

/// The four access rights, in the order of `Draft::access`.
pub(crate) const RIGHTS: [&str; 4] = ["peer", "server", "synchronization", "query"];

/// Word `i` as a number in `lo..=hi`; errors name `what` in the guide's terms.
pub(crate) fn number(
    d: &mut Draft<'_>,
    line: &Line,
    i: usize,
    what: &str,
    lo: u64,
    hi: u64,
) -> Option<u64> {
    let pos = (line.no, line.col(i));
    let Some(tok) = line.tokens.get(i) else {
        d.err(
            pos,
            format!(
                "expected {what} ({lo} to {hi}) after `{}`",
                line.word(i - 1)
            ),
        );
        return None;
    };
    match tok.text.parse::<u64>() {
        Ok(v) if (lo..=hi).contains(&v) => Some(v),
        _ => {
            d.err(
                pos,
                format!("{what} must be {lo} to {hi}, got \"{}\"", tok.text),
            );
            None
        }
    }
}

/// An interface argument at word `i`, written `TYPE NUMBER` or `TYPENUMBER`; returns the
/// Linux name (if it has one) and the index of the next word.
pub(crate) fn interface_arg(d: &mut Draft<'_>, line: &Line, i: usize) -> (Option<String>, usize) {
    let pos = (line.no, line.col(i));
    let Some(tok) = line.tokens.get(i) else {
        d.err(
            pos,
            format!("expected an interface after `{}`", line.word(i - 1)),
        );
        return (None, i);
    };
    let mut name = tok.text.clone();
    let mut next = i + 1;
    let split_number = line
        .tokens
        .get(next)
        .is_some_and(|t| t.text.starts_with(|c: char| c.is_ascii_digit()));
    if !name.contains(|c: char| c.is_ascii_digit()) && split_number {
        name.push_str(line.word(next));
        next += 1;
    }
    (d.linux_ifname(&name, pos), next)
}

/// A VPN instance name at word `i` (1 to 31 characters).
pub(crate) fn vpn_name(d: &mut Draft<'_>, line: &Line, i: usize) -> Option<String> {
    let pos = (line.no, line.col(i));
    match line.tokens.get(i) {
        None => {
            d.err(pos, "expected a VPN instance name after `vpn-instance`");
            None
        }
        Some(t) if t.text.is_empty() || t.text.chars().count() > 31 => {
            d.err(pos, "a VPN instance name must be 1 to 31 characters");
            None
        }
        Some(t) => Some(t.text.clone()),
    }
}

/// `ntp-service ...` (or `undo ntp-service ...`) in any view.
pub(crate) fn ntp_service(d: &mut Draft<'_>, line: &Line, undo: bool, view: &View) {
    let mut i = if undo { 2 } else { 1 };
    let ipv6 = line.word(i) == "ipv6";
    if ipv6 {
        i += 1;
    }
    let sub = line.word(i).to_string();
    let pos = (line.no, line.col(i));
    let ipv6_ok = matches!(
        sub.as_str(),
        "unicast-server"
            | "unicast-peer"
            | "source"
            | "dscp"
            | "peer"
            | "server"
            | "synchronization"
            | "query"
            | "multicast-server"
            | "multicast-client"
            | "inbound"
    );
    if ipv6 && !ipv6_ok && !sub.is_empty() {
        d.err(pos, format!("there is no `ntp-service ipv6 {sub}` command"));
        return;
    }
    match sub.as_str() {
        "unicast-server" => association(d, line, i + 1, undo, ipv6, false),
        "unicast-peer" => association(d, line, i + 1, undo, ipv6, true),
        "refclock-master" => refclock(d, line, i + 1, undo),
        "source-interface" | "source" => source(d, line, i + 1, undo),
        "max-dynamic-sessions" => {
            d.max_dynamic_sessions = if undo {
                None
            } else {
                number(d, line, i + 1, "the number of dynamic sessions", 0, 100).map(|v| v as u8)
            };
        }
        "dscp" if ipv6 => d.err(
            pos,
            "ntp-service ipv6 dscp is not supported: one `ntp-service dscp` value applies to \
             IPv4 and IPv6",
        ),
        "dscp" => {
            d.dscp = if undo {
                None
            } else {
                number(d, line, i + 1, "the DSCP value", 0, 63).map(|v| v as u8)
            };
        }
        "access" => access(d, line, i + 1, undo, ipv6, None),
        r if RIGHTS.contains(&r) => {
            let right = RIGHTS.iter().position(|x| *x == r);
            if line.word(i + 1) != "acl" {
                d.err(
                    (line.no, line.col(i + 1)),
                    format!("expected `acl` after `ntp-service {r}`"),
                );
                return;
            }
            access(d, line, i + 2, undo, ipv6, right);
        }
        "authentication" if line.word(i + 1) == "enable" => d.auth_enable = !undo,
        "authentication" => d.err(
            (line.no, line.col(i + 1)),
            "expected `enable` after `ntp-service authentication`",
        ),
        "authentication-keyid" => key(d, line, i + 1, undo),
        "reliable" => trusted(d, line, i + 1, undo),
        "enable" if undo => d.err(
            pos,
            "`undo ntp-service enable` turns NTP off: remove it, or do not run meridiand",
        ),
        "enable" => {}
        "broadcast-server" | "broadcast-client" | "multicast-server" | "multicast-client"
        | "in-interface" | "inbound" => match view {
            View::Interface(idx) => iface::command(d, *idx, line, i, undo, ipv6),
            _ => d.err(
                pos,
                format!(
                    "`ntp-service {sub}` is an interface view command: put it under \
                     `interface NAME`"
                ),
            ),
        },
        "" => d.err(pos, "expected an NTP command after `ntp-service`"),
        other => d.err(pos, format!("unknown command `ntp-service {other}`")),
    }
}

/// `ntp-service [ipv6] unicast-server|unicast-peer`, C5 (`[vpn-instance N] ADDR ...`) and C7
/// (`ADDR [vpn-instance N] ...`) orders, options in any order.
fn association(d: &mut Draft<'_>, line: &Line, mut i: usize, undo: bool, ipv6: bool, peer: bool) {
    let kind = if peer {
        "unicast-peer"
    } else {
        "unicast-server"
    };
    let mut a = AssociationConfig {
        address: String::new(),
        vpn_instance: None,
        key_id: None,
        priority: false,
        source_interface: None,
        version: DEFAULT_VERSION,
        minpoll: DEFAULT_MINPOLL,
        maxpoll: DEFAULT_MAXPOLL,
        iburst: false,
        port: DEFAULT_PORT,
    };
    let mut addr_pos = None;
    let mut key_pos = None;
    let mut poll_pos = None;
    let errors_before = d.errors.len();
    while i < line.tokens.len() {
        let word = line.word(i);
        match word {
            "vpn-instance" => {
                a.vpn_instance = vpn_name(d, line, i + 1);
                i += 2;
            }
            "authentication-keyid" => {
                key_pos = Some((line.no, line.col(i + 1)));
                a.key_id =
                    number(d, line, i + 1, "the key ID", 1, u64::from(u32::MAX)).map(|v| v as u32);
                i += 2;
            }
            "priority" => {
                a.priority = true;
                i += 1;
            }
            "source-interface" | "source" => {
                let (name, next) = interface_arg(d, line, i + 1);
                a.source_interface = name;
                i = next;
            }
            "version" => {
                a.version = number(d, line, i + 1, "the NTP version", 1, 4)
                    .map_or(DEFAULT_VERSION, |v| v as u8);
                i += 2;
            }
            "minpoll" | "maxpoll" => {
                poll_pos = Some((line.no, line.col(i + 1)));
                let v = number(d, line, i + 1, word, 4, 17).map(|v| v as i8);
                if word == "minpoll" {
                    a.minpoll = v.unwrap_or(DEFAULT_MINPOLL);
                } else {
                    a.maxpoll = v.unwrap_or(DEFAULT_MAXPOLL);
                }
                i += 2;
            }
            w if addr_pos.is_none() => {
                a.address = w.to_string();
                addr_pos = Some((line.no, line.col(i)));
                i += 1;
            }
            w => {
                d.err(
                    (line.no, line.col(i)),
                    format!(
                        "`{w}` is not an option of ntp-service {kind} (expected \
                         authentication-keyid, priority, source-interface, version, minpoll, \
                         maxpoll or vpn-instance)"
                    ),
                );
                return;
            }
        }
    }
    let Some(addr_pos) = addr_pos else {
        d.err(
            (line.no, line.end_col),
            format!(
                "expected the IP address or host name of the {}",
                if peer { "peer" } else { "server" }
            ),
        );
        return;
    };
    let Some(canonical) = check_address(d, &a.address, addr_pos, ipv6, peer) else {
        return;
    };
    if let Some(vpn) = &a.vpn_instance {
        d.vpn_ref(&vpn.clone());
    }
    if undo {
        let same = |x: &Assoc| x.canonical == canonical && x.config.vpn_instance == a.vpn_instance;
        let list = if peer { &mut d.peers } else { &mut d.servers };
        list.retain(|x| !same(x));
        return;
    }
    if a.minpoll > a.maxpoll {
        let at = poll_pos.unwrap_or(addr_pos);
        d.err(
            at,
            format!(
                "minpoll ({}) must not exceed maxpoll ({})",
                a.minpoll, a.maxpoll
            ),
        );
    }
    if d.errors.len() > errors_before {
        return;
    }
    let other = if peer { &d.servers } else { &d.peers };
    if let Some(o) = other
        .iter()
        .find(|x| x.canonical == canonical && x.config.vpn_instance == a.vpn_instance)
    {
        let (l, c) = o.addr_pos;
        let other_kind = if peer {
            "unicast-server"
        } else {
            "unicast-peer"
        };
        d.err(
            addr_pos,
            format!(
                "{} is already configured as ntp-service {other_kind} at {l}:{c}",
                a.address
            ),
        );
        return;
    }
    let entry = Assoc {
        config: a,
        canonical,
        addr_pos,
        key_pos,
    };
    let list = if peer { &mut d.peers } else { &mut d.servers };
    // Entering the command again for the same server changes its options.
    match list.iter_mut().find(|x| {
        x.canonical == entry.canonical && x.config.vpn_instance == entry.config.vpn_instance
    }) {
        Some(existing) => *existing = entry,
        None => list.push(entry),
    }
}

/// The guide's rule for server and peer addresses; returns the canonical form.
fn check_address(
    d: &mut Draft<'_>,
    addr: &str,
    pos: Pos,
    ipv6: bool,
    peer: bool,
) -> Option<String> {
    let who = if peer { "peer" } else { "server" };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        if is_host_name(addr) {
            return Some(addr.trim_end_matches('.').to_ascii_lowercase());
        }
        d.err(
            pos,
            format!("\"{addr}\" is neither an IP address nor a host name"),
        );
        return None;
    };
    let bad = match ip {
        IpAddr::V4(_) if ipv6 => Some(format!(
            "`ntp-service ipv6 unicast-{who}` needs an IPv6 address, got {addr}"
        )),
        IpAddr::V6(_) if !ipv6 => Some(format!(
            "{addr} is an IPv6 address: use `ntp-service ipv6 unicast-{who}`"
        )),
        IpAddr::V4(a) if a.octets()[..2] == [127, 127] => Some(format!(
            "the {who} address must be a unicast address, not the IP address of the local clock"
        )),
        IpAddr::V4(a) if a.is_broadcast() => Some(format!(
            "the {who} address must be a unicast address, not a broadcast address"
        )),
        a if a.is_multicast() => Some(format!(
            "the {who} address must be a unicast address, not a multicast address"
        )),
        a if a.is_unspecified() => Some(format!(
            "the {who} address must be a unicast address, not the unspecified address"
        )),
        _ => None,
    };
    match bad {
        Some(message) => {
            d.err(pos, message);
            None
        }
        None => Some(ip.to_string()),
    }
}

/// `ntp-service refclock-master [127.127.1.u] [stratum]`.
fn refclock(d: &mut Draft<'_>, line: &Line, mut i: usize, undo: bool) {
    if undo {
        d.local_reference = None;
        return;
    }
    let mut r = LocalReferenceConfig {
        address: std::net::Ipv4Addr::new(127, 127, 1, 0),
        unit: 0,
        stratum: DEFAULT_LOCAL_STRATUM,
    };
    let mut ok = true;
    if line.word(i).contains('.') {
        match line.word(i).parse::<std::net::Ipv4Addr>() {
            Ok(a) if a.octets()[..3] == [127, 127, 1] && a.octets()[3] <= 3 => {
                r.address = a;
                r.unit = a.octets()[3];
            }
            _ => {
                d.err(
                    (line.no, line.col(i)),
                    format!(
                        "the local clock address must be 127.127.1.u with u 0 to 3, got \"{}\"",
                        line.word(i)
                    ),
                );
                ok = false;
            }
        }
        i += 1;
    }
    if i < line.tokens.len() {
        match number(d, line, i, "stratum", 1, 15) {
            Some(s) => r.stratum = s as u8,
            None => ok = false,
        }
        i += 1;
    }
    if i < line.tokens.len() {
        d.err(
            (line.no, line.col(i)),
            format!("unexpected `{}` after the stratum", line.word(i)),
        );
        ok = false;
    }
    if ok {
        d.local_reference = Some(r);
    }
}

/// `ntp-service source-interface IF` (C5), `ntp-service [ipv6] source IF` (C7).
fn source(d: &mut Draft<'_>, line: &Line, i: usize, undo: bool) {
    if undo {
        d.source_interface = None;
        return;
    }
    let pos = (line.no, line.col(i));
    let (name, next) = interface_arg(d, line, i);
    if next < line.tokens.len() {
        d.err(
            (line.no, line.col(next)),
            format!("unexpected `{}` after the interface", line.word(next)),
        );
        return;
    }
    let Some(name) = name else { return };
    if let Some((old, (l, c))) = &d.source_interface {
        if *old != name && line.word(i - 2) == "ipv6" {
            d.err(
                pos,
                format!(
                    "the IPv6 source interface differs from the one at {l}:{c}: meridian uses one \
                     source interface for IPv4 and IPv6"
                ),
            );
            return;
        }
    }
    d.source_interface = Some((name, pos));
}

/// C5 `ntp-service access RIGHT ACL` (`right` None: read the right at word `i`) or C7
/// `ntp-service [ipv6] RIGHT acl ACL` (`right` given, `i` at the number).
fn access(
    d: &mut Draft<'_>,
    line: &Line,
    mut i: usize,
    undo: bool,
    ipv6: bool,
    right: Option<usize>,
) {
    let right = match right {
        Some(r) => r,
        None => match RIGHTS.iter().position(|r| *r == line.word(i)) {
            Some(r) => {
                i += 1;
                r
            }
            None => {
                d.err(
                    (line.no, line.col(i)),
                    format!(
                        "the access right must be peer, server, synchronization or query, got \"{}\"",
                        line.word(i)
                    ),
                );
                return;
            }
        },
    };
    if undo {
        d.access[right] = None;
        return;
    }
    let pos = (line.no, line.col(i));
    let Some(n) = number(d, line, i, "the ACL number", 2000, 2999) else {
        return;
    };
    if let Some((old, (l, c))) = d.access[right] {
        if u64::from(old) != n && d.access_family[right] != ipv6 {
            d.err(
                pos,
                format!(
                    "the {} right already uses ACL {old} (at {l}:{c}) for the other address \
                     family: meridian has one ACL per right for IPv4 and IPv6",
                    RIGHTS[right]
                ),
            );
            return;
        }
    }
    d.access[right] = Some((n as u32, pos));
    d.access_family[right] = ipv6;
}

/// `ntp-service authentication-keyid N authentication-mode md5 [cipher|simple] VALUE`.
fn key(d: &mut Draft<'_>, line: &Line, i: usize, undo: bool) {
    let Some(id) = number(d, line, i, "the key ID", 1, u64::from(u32::MAX)).map(|v| v as u32)
    else {
        return;
    };
    if undo {
        // Deleting a key also makes it untrusted.
        d.keys.retain(|k| k.id != id);
        d.trusted.retain(|(t, _)| *t != id);
        return;
    }
    if line.word(i + 1) != "authentication-mode" {
        d.err(
            (line.no, line.col(i + 1)),
            "expected `authentication-mode md5` after the key ID",
        );
        return;
    }
    let mode_pos = (line.no, line.col(i + 2));
    match line.word(i + 2) {
        "md5" => {}
        m @ ("hmac-sha-1" | "hmac-sha-256" | "hmac-sha-384" | "hmac-sha-512") => {
            d.err(
                mode_pos,
                format!("authentication mode {m} is not supported: use md5"),
            );
            return;
        }
        other => {
            d.err(
                mode_pos,
                format!("the authentication mode must be md5, got \"{other}\""),
            );
            return;
        }
    }
    let mut j = i + 3;
    match line.word(j) {
        "cipher" => {
            d.err(
                (line.no, line.col(j)),
                "a `cipher` key is encrypted with the router's own secret and cannot be read: \
                 write the key as `simple VALUE`",
            );
            return;
        }
        "simple" => j += 1,
        _ => {}
    }
    let Some(value) = line.tokens.get(j) else {
        d.err(
            (line.no, line.end_col),
            "expected the key value (1 to 32 characters)",
        );
        return;
    };
    let len = value.text.chars().count();
    if !(1..=32).contains(&len) {
        d.err(
            (line.no, value.col),
            format!("the key value must be 1 to 32 characters, got {len}"),
        );
        return;
    }
    if let Some(extra) = line.tokens.get(j + 1) {
        let message = if extra.text == "acl" || extra.text == "ipv6" {
            "limiting a key to the peers of an ACL is not supported".to_string()
        } else {
            format!("unexpected `{}` after the key value", extra.text)
        };
        d.err((line.no, extra.col), message);
        return;
    }
    let key = AuthKey {
        id,
        algorithm: KeyAlgorithm::Md5,
        secret: value.text.as_bytes().to_vec(),
    };
    match d.keys.iter_mut().find(|k| k.id == id) {
        Some(k) => *k = key,
        None => d.keys.push(key),
    }
}

/// `ntp-service reliable authentication-keyid N`.
fn trusted(d: &mut Draft<'_>, line: &Line, i: usize, undo: bool) {
    if line.word(i) != "authentication-keyid" {
        d.err(
            (line.no, line.col(i)),
            "expected `authentication-keyid` after `ntp-service reliable`",
        );
        return;
    }
    let pos = (line.no, line.col(i + 1));
    let Some(id) = number(d, line, i + 1, "the key ID", 1, u64::from(u32::MAX)).map(|v| v as u32)
    else {
        return;
    };
    d.trusted.retain(|(t, _)| *t != id);
    if !undo {
        d.trusted.push((id, pos));
    }
}
