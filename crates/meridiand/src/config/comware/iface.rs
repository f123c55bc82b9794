//! Interface-view `ntp-service` commands: broadcast and multicast servers and clients, and
//! refusing NTP on an interface (`in-interface disable`, C7 `inbound disable`).

use std::net::IpAddr;

use super::commands::number;
use super::lexer::Line;
use super::{Draft, Pos};
use crate::config::model::*;

/// One `interface NAME` view as read so far.
pub(crate) struct IfaceDraft {
    /// The name as written (type and number joined).
    pub comware: String,
    /// Where the name was written.
    pub pos: Pos,
    /// The `interface` line, counted as skipped if the view has no NTP command.
    pub header: Line,
    /// `ip binding vpn-instance NAME`.
    pub vpn: Option<String>,
    /// Linux name, resolved at the first NTP command of the view.
    pub linux: Option<String>,
    /// Whether an NTP command was given in this view.
    pub has_ntp: bool,
    pub receive: bool,
    pub broadcast_server: Option<(BroadcastServerConfig, Option<Pos>)>,
    pub broadcast_client: bool,
    pub multicast_server: Option<(MulticastServerConfig, Option<Pos>)>,
    pub multicast_client: Option<MulticastClientConfig>,
}

impl IfaceDraft {
    pub(crate) fn new(comware: String, pos: Pos, header: Line) -> Self {
        IfaceDraft {
            comware,
            pos,
            header,
            vpn: None,
            linux: None,
            has_ntp: false,
            receive: true,
            broadcast_server: None,
            broadcast_client: false,
            multicast_server: None,
            multicast_client: None,
        }
    }

    /// Key ids named by the servers of this interface, with their positions.
    pub(crate) fn key_refs(&self) -> Vec<(u32, Pos)> {
        let b = self
            .broadcast_server
            .and_then(|(c, p)| Some((c.key_id?, p?)));
        let m = self
            .multicast_server
            .and_then(|(c, p)| Some((c.key_id?, p?)));
        b.into_iter().chain(m).collect()
    }
}

/// Options shared by broadcast and multicast servers.
struct ServerOpts {
    key_id: Option<u32>,
    key_pos: Option<Pos>,
    version: u8,
    ttl: u8,
    group: Option<IpAddr>,
}

/// An interface-view command; word `i` is the command after `ntp-service [ipv6]`.
pub(crate) fn command(
    d: &mut Draft<'_>,
    idx: usize,
    line: &Line,
    i: usize,
    undo: bool,
    ipv6: bool,
) {
    if d.interfaces[idx].linux.is_none() {
        let (name, pos) = (d.interfaces[idx].comware.clone(), d.interfaces[idx].pos);
        let Some(linux) = d.linux_ifname(&name, pos) else {
            // Reported once; mark the name as resolved to avoid repeating the error.
            d.interfaces[idx].linux = Some(String::new());
            return;
        };
        d.interfaces[idx].linux = Some(linux);
    }
    d.interfaces[idx].has_ntp = true;
    let sub = line.word(i);
    let end = line.tokens.len();
    match sub {
        "broadcast-client" => {
            if i + 1 < end {
                unexpected(d, line, i + 1);
            }
            d.interfaces[idx].broadcast_client = !undo;
        }
        "broadcast-server" if undo => d.interfaces[idx].broadcast_server = None,
        "broadcast-server" => {
            if let Some(o) = server_opts(d, line, i + 1, false, false) {
                let c = BroadcastServerConfig {
                    key_id: o.key_id,
                    version: o.version,
                    poll: DEFAULT_BCAST_POLL,
                };
                d.interfaces[idx].broadcast_server = Some((c, o.key_pos));
            }
        }
        "multicast-server" if undo => d.interfaces[idx].multicast_server = None,
        "multicast-server" => {
            if let Some(o) = server_opts(d, line, i + 1, true, ipv6) {
                let c = MulticastServerConfig {
                    group: o.group.unwrap_or(DEFAULT_MULTICAST_GROUP),
                    ttl: o.ttl,
                    key_id: o.key_id,
                    version: o.version,
                    poll: DEFAULT_BCAST_POLL,
                };
                d.interfaces[idx].multicast_server = Some((c, o.key_pos));
            }
        }
        "multicast-client" => {
            let group = match line.tokens.get(i + 1) {
                Some(_) => match group(d, line, i + 1, ipv6) {
                    Some(g) => g,
                    None => return,
                },
                None if ipv6 => {
                    d.err(
                        (line.no, line.end_col),
                        "expected an IPv6 multicast address",
                    );
                    return;
                }
                None => DEFAULT_MULTICAST_GROUP,
            };
            if i + 2 < end {
                unexpected(d, line, i + 2);
                return;
            }
            d.interfaces[idx].multicast_client = (!undo).then_some(MulticastClientConfig { group });
        }
        "in-interface" | "inbound" => match line.word(i + 1) {
            "disable" => d.interfaces[idx].receive = undo,
            "enable" if sub == "inbound" => d.interfaces[idx].receive = !undo,
            _ => {
                let expected = if sub == "inbound" {
                    "`enable` or `disable`"
                } else {
                    "`disable`"
                };
                d.err(
                    (line.no, line.col(i + 1)),
                    format!("expected {expected} after `ntp-service {sub}`"),
                );
            }
        },
        _ => unknown_command(d, line, i),
    }
}

fn unknown_command(d: &mut Draft<'_>, line: &Line, i: usize) {
    d.err(
        (line.no, line.col(i)),
        format!("unknown interface command `ntp-service {}`", line.word(i)),
    );
}

fn unexpected(d: &mut Draft<'_>, line: &Line, i: usize) {
    d.err(
        (line.no, line.col(i)),
        format!("unexpected `{}`", line.word(i)),
    );
}

/// A multicast group at word `i`.
fn group(d: &mut Draft<'_>, line: &Line, i: usize, ipv6: bool) -> Option<IpAddr> {
    let w = line.word(i);
    match w.parse::<IpAddr>() {
        Ok(a) if a.is_multicast() && a.is_ipv6() == ipv6 => Some(a),
        _ => {
            let family = if ipv6 { "an IPv6" } else { "an IPv4" };
            d.err(
                (line.no, line.col(i)),
                format!("expected {family} multicast address (like 224.0.1.1), got \"{w}\""),
            );
            None
        }
    }
}

/// `[ADDR] [authentication-keyid K | ttl T | version V]*` (ADDR and ttl: multicast only).
fn server_opts(
    d: &mut Draft<'_>,
    line: &Line,
    mut i: usize,
    multicast: bool,
    ipv6: bool,
) -> Option<ServerOpts> {
    let mut o = ServerOpts {
        key_id: None,
        key_pos: None,
        version: DEFAULT_VERSION,
        ttl: DEFAULT_MULTICAST_TTL,
        group: None,
    };
    let before = d.errors.len();
    if multicast && (ipv6 || line.word(i).contains(['.', ':'])) {
        o.group = group(d, line, i, ipv6);
        i += 1;
    }
    while i < line.tokens.len() {
        match line.word(i) {
            "authentication-keyid" => {
                o.key_pos = Some((line.no, line.col(i + 1)));
                o.key_id =
                    number(d, line, i + 1, "the key ID", 1, u64::from(u32::MAX)).map(|v| v as u32);
            }
            "version" => {
                o.version = number(d, line, i + 1, "the NTP version", 1, 4)
                    .map_or(DEFAULT_VERSION, |v| v as u8);
            }
            "ttl" if multicast => {
                o.ttl = number(d, line, i + 1, "the TTL", 1, 255)
                    .map_or(DEFAULT_MULTICAST_TTL, |v| v as u8);
            }
            w => {
                let options = if multicast {
                    "authentication-keyid, ttl or version"
                } else {
                    "authentication-keyid or version"
                };
                d.err(
                    (line.no, line.col(i)),
                    format!("`{w}` is not an option here (expected {options})"),
                );
                return None;
            }
        }
        i += 2;
    }
    (d.errors.len() == before).then_some(o)
}

/// The `[[interface]]` entries: interfaces where an NTP command was given.
pub(crate) fn finish(d: &mut Draft<'_>) -> Vec<InterfaceConfig> {
    let drafts = std::mem::take(&mut d.interfaces);
    let mut out = Vec::new();
    for f in drafts {
        if !f.has_ntp {
            d.skip(&f.header);
            continue;
        }
        let Some(name) = f.linux.filter(|n| !n.is_empty()) else {
            continue;
        };
        if let Some(v) = &f.vpn {
            d.vpn_ref(v);
        }
        let c = InterfaceConfig {
            name,
            vpn_instance: f.vpn.clone(),
            receive: f.receive,
            broadcast_server: f.broadcast_server.map(|(c, _)| c),
            broadcast_client: f.broadcast_client,
            multicast_server: f.multicast_server.map(|(c, _)| c),
            multicast_client: f.multicast_client,
        };
        if let Some(prev) = out
            .iter()
            .position(|x: &InterfaceConfig| x.name == c.name && x.vpn_instance == c.vpn_instance)
        {
            d.err(
                f.pos,
                format!(
                    "interface \"{}\" maps to the same Linux interface \"{}\" as an earlier one",
                    f.comware, c.name
                ),
            );
            let _ = prev;
            continue;
        }
        out.push(c);
    }
    out
}
