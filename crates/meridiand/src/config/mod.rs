//! Strict configuration reader: TOML file → validated [`Config`], or every problem with its
//! line and column.
//!
//! Reading walks a span-preserving `toml_edit` document table by table ([`build`],
//! [`security`]), collecting all type, range and unknown-key errors; [`validate`] then checks
//! references between tables. Only a TOML syntax error stops early.

mod build;
pub mod comware;
mod duration;
mod keys;
mod model;
mod reader;
mod security;
mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_access;
#[cfg(test)]
mod tests_cross;

use std::fmt;
use std::path::{Path, PathBuf};

// Part of the public API even where the daemon does not use them yet.
pub use comware::{parse_comware, to_toml};
#[allow(unused_imports)]
pub use duration::parse_duration;
#[allow(unused_imports)]
pub use keys::{decode_secret, parse_keys_file, MAX_SECRET_LEN};
pub use model::*;
#[allow(unused_imports)]
pub use security::{ACL_MAX, ACL_MIN};

use reader::{Diag, Tab};

/// One problem in a configuration (or keys) file. Line and column are 1-based; 0:0 means the
/// problem has no position (e.g. the file could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line, 0 if unknown.
    pub line: usize,
    /// 1-based column in characters, 0 if unknown.
    pub column: usize,
    /// What is wrong, for a human.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Parse and validate configuration text. No file is read: when `keys-file` is set, key-id
/// references are not checked against it (use [`load`] for that).
pub fn parse_str(text: &str) -> Result<Config, Vec<ConfigError>> {
    parse_with(text, None)
}

/// Read, parse and validate a configuration file, including its keys file (a relative
/// `keys-file` is resolved against the directory of `path`). An I/O error on the
/// configuration file is one error at 0:0.
///
/// A file of Comware NTP commands (see [`comware::is_comware`]) is read by [`comware`], with
/// its side file; its warning (the count of skipped lines) is logged.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let (config, warnings) = load_any(path)?;
    for w in warnings {
        crate::warn!("{}: {w}", path.display());
    }
    Ok(config)
}

/// [`load`] for either format, returning the warnings instead of logging them.
pub fn load_any(path: &Path) -> Result<(Config, Vec<String>), Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            line: 0,
            column: 0,
            message: format!("cannot read {}: {e}", path.display()),
        }]
    })?;
    if comware::is_comware(path, &text) {
        return comware::load_comware(path, &text);
    }
    let base = path.parent().unwrap_or(Path::new("."));
    parse_with(&text, Some(base)).map(|c| (c, Vec::new()))
}

/// For `meridiand --check-config FILE`: the configuration, or a report with one
/// `FILE:LINE:COL: message` line per problem.
pub fn check_file(path: &Path) -> Result<Config, String> {
    load(path).map_err(|errors| {
        errors
            .iter()
            .map(|e| format!("{}:{e}\n", path.display()))
            .collect()
    })
}

/// `base`: directory for relative keys-file paths; `None` = do not read the keys file.
fn parse_with(text: &str, base: Option<&Path>) -> Result<Config, Vec<ConfigError>> {
    let mut d = Diag::new(text);
    let doc = match toml_edit::ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            // One line per problem: the parser's message may span several lines.
            let message = e.message().trim_end().replace('\n', "; ");
            d.err(&e.span(), format!("TOML syntax: {message}"));
            return Err(d.errors);
        }
    };
    let root = Tab::new(doc.as_table(), Some(0..0), "the top level");
    let (mut config, sites) = build::read_config(&mut d, root);
    let mut keys_complete = config.authentication.keys_file.is_none();
    if let (Some(base), Some(file)) = (base, config.authentication.keys_file.clone()) {
        let resolved: PathBuf = base.join(&file);
        config.authentication.keys_file = Some(resolved.clone());
        keys_complete = merge_keys_file(&mut d, &mut config, &sites, &resolved);
    }
    validate::cross_check(&mut d, &config, &sites, keys_complete);
    if d.errors.is_empty() {
        Ok(config)
    } else {
        d.errors.sort_by_key(|e| (e.line, e.column));
        Err(d.errors)
    }
}

/// RFC 8633 section 4.1: a keys file "MUST only be readable by the NTP process". One that
/// group or others may read or write is refused (ntpd and chrony only warn).
fn check_keys_file_mode(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    // Not readable at all: the read below reports it.
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "keys file {} has mode {mode:04o}: group and others must have no access to \
             secrets; run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// Read the keys file and add its keys; problems are reported at the `keys-file` value.
/// Returns whether the key set is now complete (file read without errors).
fn merge_keys_file(
    d: &mut Diag<'_>,
    config: &mut Config,
    sites: &build::Sites,
    path: &Path,
) -> bool {
    let span = &sites.keys_file;
    if let Err(message) = check_keys_file_mode(path) {
        d.err(span, message);
        return false;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            d.err(
                span,
                format!("cannot read keys file {}: {e}", path.display()),
            );
            return false;
        }
    };
    match parse_keys_file(&text) {
        Ok(keys) => {
            for key in keys {
                if config.authentication.key(key.id).is_some() {
                    d.err(
                        span,
                        format!("key {} is defined both inline and in the keys file", key.id),
                    );
                } else {
                    config.authentication.keys.push(key);
                }
            }
            true
        }
        Err(errors) => {
            for e in errors {
                d.err(span, format!("{}:{e}", path.display()));
            }
            false
        }
    }
}
