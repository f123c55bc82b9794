//! The optional TOML side file of a Comware command file: what a router configuration does
//! not say. It is `FILE.toml` next to `FILE` (e.g. `router.cfg` → `router.cfg.toml`) and may
//! contain:
//!
//! * `[vpn-instance.NAME]` tables (`netns`, `vrf`, `serve`, as in the TOML format) — a VPN
//!   instance named by the Comware file and absent here is the network namespace `NAME`;
//! * `[interface-names]`: Comware interface name → Linux interface name, e.g.
//!   `"GigabitEthernet2/0/1" = "eth1"` (case-insensitive on the Comware side); an interface
//!   not listed keeps its Comware name, which must then be a valid Linux name;
//! * any other table or key of the TOML format that no Comware command sets: `[control]`,
//!   `[metrics]`, `[clock]`, and in `[service]` e.g. `port` and `drift-file`.
//!
//! Keys that Comware commands set (unicast servers, interfaces, keys, access rights, ACLs,
//! `source-interface`, `max-dynamic-sessions`, `dscp`, the local reference) are refused here.

use std::path::{Path, PathBuf};

use crate::config::build::check_ifname;
use crate::config::model::Config;
use crate::config::{parse_str, ConfigError};

/// Tables of the TOML format that Comware commands configure.
const COMWARE_TABLES: &[&str] = &[
    "local-reference",
    "unicast-server",
    "unicast-peer",
    "interface",
    "authentication",
    "access",
    "acl",
];

/// `[service]` keys that Comware commands configure.
const COMWARE_SERVICE_KEYS: &[&str] = &["source-interface", "max-dynamic-sessions", "dscp"];

/// What the side file says.
pub(crate) struct Side {
    /// Everything the Comware file does not set (defaults when there is no side file).
    pub base: Config,
    /// `[interface-names]`: (Comware name, Linux name).
    names: Vec<(String, String)>,
}

impl Default for Side {
    fn default() -> Self {
        Side {
            base: parse_str("")
                .unwrap_or_else(|_| unreachable!("the empty configuration is valid")),
            names: Vec::new(),
        }
    }
}

impl Side {
    /// The Linux name given to a Comware interface, if any.
    pub(crate) fn interface_name(&self, comware: &str) -> Option<&str> {
        self.names
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(comware))
            .map(|(_, l)| l.as_str())
    }
}

/// The side file of a Comware command file: the same path with `.toml` appended.
pub fn side_file_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".toml");
    PathBuf::from(name)
}

/// Parse a side file; errors are prefixed with `label` (its path) and its line and column.
pub(crate) fn parse_side(label: &str, text: &str) -> Result<Side, Vec<ConfigError>> {
    let err = |line: usize, column: usize, message: String| ConfigError {
        line: 0,
        column: 0,
        message: if line == 0 {
            format!("{label}: {message}")
        } else {
            format!("{label}:{line}:{column}: {message}")
        },
    };
    let mut table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let (l, c) = e.span().map_or((0, 0), |s| position(text, s.start));
            return Err(vec![err(l, c, e.message().to_string())]);
        }
    };
    let mut errors = Vec::new();
    for key in COMWARE_TABLES {
        if table.contains_key(*key) {
            errors.push(err(
                0,
                0,
                format!("`{key}` is set by the Comware commands, not in the side file"),
            ));
        }
    }
    if let Some(service) = table.get("service").and_then(toml::Value::as_table) {
        for key in COMWARE_SERVICE_KEYS {
            if service.contains_key(*key) {
                errors.push(err(
                    0,
                    0,
                    format!("`service.{key}` is set by the Comware commands, not in the side file"),
                ));
            }
        }
    }
    let mut names = Vec::new();
    let had_names = table.contains_key("interface-names");
    match table.remove("interface-names") {
        None => {}
        Some(toml::Value::Table(t)) => {
            for (comware, linux) in t {
                match linux.as_str() {
                    Some(l) => match check_ifname(l) {
                        Ok(()) => names.push((comware, l.to_string())),
                        Err(e) => errors.push(err(0, 0, format!("interface-names.\"{comware}\" {e}"))),
                    },
                    None => errors.push(err(
                        0,
                        0,
                        format!("interface-names.\"{comware}\" must be a Linux interface name (a string)"),
                    )),
                }
            }
        }
        Some(_) => errors.push(err(0, 0, "`interface-names` must be a table".to_string())),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Without `interface-names` the text is read as it is, keeping line and column in errors.
    let rest = if had_names {
        toml::to_string(&table).unwrap_or_default()
    } else {
        text.to_string()
    };
    match parse_str(&rest) {
        Ok(base) => Ok(Side { base, names }),
        Err(es) => Err(es
            .into_iter()
            .map(|e| {
                if had_names {
                    err(0, 0, e.message)
                } else {
                    err(e.line, e.column, e.message)
                }
            })
            .collect()),
    }
}

/// 1-based line and column of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
