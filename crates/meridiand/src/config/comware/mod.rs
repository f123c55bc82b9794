//! Second reader of the configuration: a Comware router's NTP commands (Comware 5 and 7
//! spellings, as in `display current-configuration` or a pasted CLI session) into the same
//! [`Config`] model as the TOML reader, plus [`to_toml`] which writes that model back as TOML.
//!
//! Layout: [`lexer`] splits lines into words, this module walks the views (system,
//! `interface`, `acl`, others), [`commands`] reads system-view `ntp-service` commands, [`iface`]
//! interface-view ones, [`acl`] the basic ACLs that `ntp-service access` names, [`side`] the
//! optional TOML side file (`FILE.toml`) and [`writer`] the TOML output.
//!
//! Lines that are not about NTP are counted and reported in ONE warning; an NTP command with
//! a wrong argument is an error with the line and column of the word at fault.

mod acl;
mod commands;
mod iface;
mod lexer;
mod side;
mod writer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fuzz;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::model::*;
use super::ConfigError;
use lexer::Line;

pub use side::side_file_path;
pub use writer::to_toml;

/// Parse a Comware command file with no side file: VPN instances are network namespaces of
/// the same name, interface names are used as written, everything else takes the TOML defaults.
/// Returns the configuration and the warnings (at most one: the count of skipped lines).
pub fn parse_comware(text: &str) -> Result<(Config, Vec<String>), Vec<ConfigError>> {
    parse_comware_with(text, None)
}

/// Parse a Comware command file completed by a side file: `side` is `(label, TOML text)`, the
/// label (usually the side file's path) prefixes errors found in it.
pub fn parse_comware_with(
    text: &str,
    side: Option<(&str, &str)>,
) -> Result<(Config, Vec<String>), Vec<ConfigError>> {
    let side = match side {
        Some((label, side_text)) => side::parse_side(label, side_text)?,
        None => side::Side::default(),
    };
    let mut draft = Draft::new(&side);
    draft.walk(&lexer::lines(text));
    draft.finish()
}

/// Whether a file should be read as Comware commands rather than TOML: not named `*.toml`,
/// not valid TOML, and its first command (or any line) is a Comware command.
pub fn is_comware(path: &Path, text: &str) -> bool {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
    {
        return false;
    }
    if toml_edit::ImDocument::parse(text).is_ok() {
        return false;
    }
    let lines = lexer::lines(text);
    let first = lines.iter().find(|l| !l.word(0).starts_with('#'));
    let starts_like_comware = first.is_some_and(|l| COMWARE_FIRST_WORDS.contains(&l.word(0)));
    starts_like_comware
        || lines.iter().any(|l| {
            l.word(0) == "ntp-service" || (l.word(0) == "undo" && l.word(1) == "ntp-service")
        })
}

/// Words a Comware configuration or command file typically starts with.
const COMWARE_FIRST_WORDS: &[&str] = &[
    "ntp-service",
    "undo",
    "version",
    "sysname",
    "system-view",
    "interface",
    "acl",
    "ip",
    "clock",
    "vlan",
    "return",
    "quit",
];

/// Read a Comware command file and its side file `FILE.toml` when that exists.
pub fn load_comware(path: &Path, text: &str) -> Result<(Config, Vec<String>), Vec<ConfigError>> {
    let side_path: PathBuf = side_file_path(path);
    match std::fs::read_to_string(&side_path) {
        Ok(side_text) => {
            let label = side_path.display().to_string();
            parse_comware_with(text, Some((&label, &side_text)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => parse_comware(text),
        Err(e) => Err(vec![ConfigError {
            line: 0,
            column: 0,
            message: format!("cannot read side file {}: {e}", side_path.display()),
        }]),
    }
}

/// The view a line is read in.
#[derive(Debug, Clone, PartialEq)]
enum View {
    System,
    /// Index into `Draft::interfaces`.
    Interface(usize),
    /// (number, IPv6?) of a basic ACL being defined.
    Acl((u32, bool)),
    /// Any other sub-view (VPN instance, OSPF, VLAN, user interface, advanced ACL...).
    Other,
}

/// Words that enter a sub-view that is not about NTP.
const OTHER_VIEWS: &[&str] = &[
    "ospf",
    "ospfv3",
    "bgp",
    "rip",
    "ripng",
    "isis",
    "vlan",
    "user-interface",
    "line",
    "local-user",
    "domain",
    "radius",
    "hwtacacs",
    "mpls",
    "pim",
    "igmp",
    "qos",
    "traffic",
    "policy-based-route",
    "route-policy",
    "stp",
    "dhcp",
    "ike",
    "ipsec",
    "nat",
    "ssh",
    "user-group",
    "role",
    "zone",
    "time-range",
    "snmp-agent",
    "mpls-ldp",
    "l2vpn",
    "vsi",
];

/// A VPN instance name as referenced, for the `[vpn-instance]` tables.
pub(crate) type Pos = (usize, usize);

/// What is being built while walking the file.
pub(crate) struct Draft<'s> {
    pub(crate) errors: Vec<ConfigError>,
    side: &'s side::Side,
    skipped: usize,
    first_skipped: Option<(usize, String)>,
    pub(crate) local_reference: Option<LocalReferenceConfig>,
    pub(crate) servers: Vec<commands::Assoc>,
    pub(crate) peers: Vec<commands::Assoc>,
    /// (Linux name, where) of `ntp-service source-interface` / `source` / `ipv6 source`.
    pub(crate) source_interface: Option<(String, Pos)>,
    pub(crate) max_dynamic_sessions: Option<u8>,
    pub(crate) dscp: Option<u8>,
    pub(crate) auth_enable: bool,
    pub(crate) keys: Vec<AuthKey>,
    pub(crate) trusted: Vec<(u32, Pos)>,
    /// ACL per right (peer, server, synchronization, query) with the position of the number.
    pub(crate) access: [Option<(u32, Pos)>; 4],
    /// Whether each right was given for IPv6 (`ntp-service ipv6 RIGHT acl N`).
    pub(crate) access_family: [bool; 4],
    pub(crate) acls: BTreeMap<(u32, bool), acl::AclDraft>,
    pub(crate) interfaces: Vec<iface::IfaceDraft>,
    /// VPN instances named by NTP commands.
    pub(crate) vpn_refs: Vec<String>,
}

impl<'s> Draft<'s> {
    fn new(side: &'s side::Side) -> Self {
        Draft {
            errors: Vec::new(),
            side,
            skipped: 0,
            first_skipped: None,
            local_reference: None,
            servers: Vec::new(),
            peers: Vec::new(),
            source_interface: None,
            max_dynamic_sessions: None,
            dscp: None,
            auth_enable: false,
            keys: Vec::new(),
            trusted: Vec::new(),
            access: [None; 4],
            access_family: [false; 4],
            acls: BTreeMap::new(),
            interfaces: Vec::new(),
            vpn_refs: Vec::new(),
        }
    }

    /// Record an error at (line, column).
    pub(crate) fn err(&mut self, (line, column): Pos, message: impl Into<String>) {
        self.errors.push(ConfigError {
            line,
            column,
            message: message.into(),
        });
    }

    /// Count a line that is not about NTP.
    pub(crate) fn skip(&mut self, line: &Line) {
        self.skipped += 1;
        let earliest = match &self.first_skipped {
            None => true,
            Some((no, _)) => line.no < *no,
        };
        if earliest {
            self.first_skipped = Some((line.no, line.text()));
        }
    }

    /// The Linux interface name for a Comware interface name written at `pos`: the side
    /// file's `[interface-names]` entry, else the name itself when Linux accepts it.
    pub(crate) fn linux_ifname(&mut self, comware: &str, pos: Pos) -> Option<String> {
        if let Some(name) = self.side.interface_name(comware) {
            return Some(name.to_string());
        }
        match super::build::check_ifname(comware) {
            Ok(()) => Some(comware.to_string()),
            Err(_) => {
                self.err(
                    pos,
                    format!(
                        "interface \"{comware}\" has no Linux name: map it in the side file, \
                         e.g. [interface-names] \"{comware}\" = \"eth1\""
                    ),
                );
                None
            }
        }
    }

    /// Note a VPN instance named by an NTP command.
    pub(crate) fn vpn_ref(&mut self, name: &str) {
        if !self.vpn_refs.iter().any(|n| n == name) {
            self.vpn_refs.push(name.to_string());
        }
    }

    fn walk(&mut self, lines: &[Line]) {
        let mut view = View::System;
        for line in lines {
            let w0 = line.word(0);
            if w0.starts_with('#') || w0 == "quit" || w0 == "return" {
                view = View::System;
                continue;
            }
            if w0 == "!" {
                continue;
            }
            let undo = w0 == "undo";
            let cmd = if undo { line.word(1) } else { w0 };
            match cmd {
                "ntp-service" => commands::ntp_service(self, line, undo, &view),
                "interface" if !undo => view = self.enter_interface(line),
                "acl" if !undo => {
                    view = acl::enter(self, line);
                    if view == View::Other {
                        self.skip(line);
                    }
                }
                "rule" | "step" | "description" if matches!(view, View::Acl(_)) => {
                    if let View::Acl(n) = view {
                        acl::record(self, n, line, undo);
                    }
                }
                "ip" if !undo && line.word(1) == "binding" && line.word(2) == "vpn-instance" => {
                    match view {
                        View::Interface(i) if line.tokens.len() >= 4 => {
                            self.interfaces[i].vpn = Some(line.word(3).to_string());
                        }
                        _ => self.skip(line),
                    }
                }
                _ => {
                    let enters_view =
                        (w0 == "ip" && line.word(1) == "vpn-instance") || OTHER_VIEWS.contains(&w0);
                    if enters_view && !line.indented {
                        view = View::Other;
                    }
                    self.skip(line);
                }
            }
        }
    }

    /// `interface TYPE NUMBER` or `interface TYPENUMBER`: the view of that interface (blocks
    /// of the same interface, in any spelling case, are merged).
    fn enter_interface(&mut self, line: &Line) -> View {
        if line.tokens.len() < 2 {
            self.skip(line);
            return View::Other;
        }
        let name: String = line.tokens[1..].iter().map(|t| t.text.as_str()).collect();
        let pos = (line.no, line.col(1));
        if let Some(i) = self
            .interfaces
            .iter()
            .position(|f| f.comware.eq_ignore_ascii_case(&name))
        {
            return View::Interface(i);
        }
        self.interfaces
            .push(iface::IfaceDraft::new(name, pos, line.clone()));
        View::Interface(self.interfaces.len() - 1)
    }

    /// Turn the draft into a [`Config`] on top of the side file's settings.
    fn finish(mut self) -> Result<(Config, Vec<String>), Vec<ConfigError>> {
        let mut config = self.side.base.clone();
        let acls = acl::translate(&mut self);
        self.check_keys();
        let interfaces = iface::finish(&mut self);
        for name in self.vpn_refs.clone() {
            config
                .vpn_instances
                .entry(name.clone())
                .or_insert(VpnInstanceConfig {
                    binding: VpnBinding::Netns(name),
                    serve: true,
                });
        }
        config.service.source_interface = self.source_interface.take().map(|(n, _)| n);
        if let Some(m) = self.max_dynamic_sessions {
            config.service.max_dynamic_sessions = m;
        }
        if let Some(d) = self.dscp {
            config.service.dscp = d;
        }
        config.local_reference = self.local_reference;
        config.unicast_servers = self.servers.drain(..).map(|a| a.config).collect();
        config.unicast_peers = self.peers.drain(..).map(|a| a.config).collect();
        config.interfaces = interfaces;
        config.authentication = AuthenticationConfig {
            enable: self.auth_enable,
            keys_file: None,
            keys: std::mem::take(&mut self.keys),
            trusted: self.trusted.iter().map(|(id, _)| *id).collect(),
        };
        let right = |r: Option<(u32, Pos)>| r.map(|(n, _)| n);
        config.access = AccessConfig {
            peer: right(self.access[0]),
            server: right(self.access[1]),
            synchronization: right(self.access[2]),
            query: right(self.access[3]),
        };
        config.acls = acls;
        if !self.errors.is_empty() {
            self.errors.sort_by_key(|e| (e.line, e.column));
            return Err(self.errors);
        }
        // The result must be a configuration the TOML reader accepts as it is.
        if let Err(errors) = super::parse_str(&to_toml(&config)) {
            return Err(errors
                .into_iter()
                .map(|e| ConfigError {
                    line: 0,
                    column: 0,
                    message: format!("the converted configuration is not valid: {}", e.message),
                })
                .collect());
        }
        let mut warnings = Vec::new();
        if let Some((no, text)) = self.first_skipped {
            let what = if self.skipped == 1 {
                "line that is not an NTP command"
            } else {
                "lines that are not NTP commands"
            };
            warnings.push(format!(
                "skipped {} {what} (the first at line {no}: `{text}`)",
                self.skipped
            ));
        }
        Ok((config, warnings))
    }

    /// Every key named by `authentication-keyid` on a server or by `reliable` must exist.
    fn check_keys(&mut self) {
        let mut refs: Vec<(u32, Pos)> = Vec::new();
        for a in self.servers.iter().chain(&self.peers) {
            if let (Some(id), Some(pos)) = (a.config.key_id, a.key_pos) {
                refs.push((id, pos));
            }
        }
        for f in &self.interfaces {
            refs.extend(f.key_refs());
        }
        refs.sort_by_key(|&(_, pos)| pos);
        for (id, pos) in refs {
            if !self.keys.iter().any(|k| k.id == id) {
                self.err(
                    pos,
                    format!(
                        "authentication-keyid {id} is not configured: add `ntp-service \
                         authentication-keyid {id} authentication-mode md5 simple KEY`"
                    ),
                );
            }
        }
        let trusted = self.trusted.clone();
        for (id, pos) in trusted {
            if !self.keys.iter().any(|k| k.id == id) {
                self.err(
                    pos,
                    format!(
                        "reliable authentication-keyid {id} names a key that is not configured"
                    ),
                );
            }
        }
    }
}
