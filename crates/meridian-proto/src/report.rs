//! Read-only snapshots of the daemon's state, as served on the control socket and printed by
//! `meridianctl` (field names follow the `--json` contract in `interface.md`).

use serde::{Deserialize, Serialize};

/// `meridianctl status`: the system variables.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub synchronized: bool,
    pub stratum: u8,
    /// Dotted quad, "LOCL", or "none" when unsynchronized.
    pub reference_id: String,
    /// Address of the system peer, or null.
    pub system_peer: Option<String>,
    pub vpn_instance: Option<String>,
    pub offset_ms: f64,
    pub root_delay_ms: f64,
    pub root_dispersion_ms: f64,
    pub peer_dispersion_ms: f64,
    /// Frequency correction applied to the clock, ppm (positive: clock made faster).
    pub frequency_ppm: f64,
    pub precision_log2: i8,
    /// `none`, `add`, `delete` or `unsynchronized`.
    pub leap: String,
    /// RFC 3339, UTC; "1900-01-01T00:00:00Z" when never set.
    pub reference_time: String,
    /// The reference timestamp as NTP hex `XXXXXXXX.XXXXXXXX` (the guide prints it).
    pub reference_time_ntp: String,
    /// Local poll interval, log2 seconds.
    pub poll_log2: i8,
    /// Name of the clock driver in use (`system`, `read-only`, `simulated`).
    pub clock_driver: String,
    /// Counters of the server path; absent from older daemons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_counters: Option<ServerCountersReport>,
}

/// What the server path did with the datagrams it received.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCountersReport {
    pub received: u64,
    /// Requests answered with time (including leaked rate-limited ones).
    pub answered: u64,
    /// Datagrams not answered with time, by reason (`access-denied`, `rate-limited`,
    /// `rate-kod` = answered with a RATE kiss, `interface-disabled`, ...).
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// Clients held in the rate-limit tables, summed over the instances (and server
    /// threads); absent when rate limiting is off, and from older daemons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_entries: Option<u64>,
}

/// One entry of `meridianctl sessions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionReport {
    /// The configured address (or name) and, once resolved, the address as text.
    pub source: String,
    pub vpn_instance: Option<String>,
    /// `client`, `server`, `sym_active`, `sym_passive`, `broadcast`, `bclient`, `multicast`,
    /// `mclient`.
    pub local_mode: String,
    pub peer_mode: String,
    pub configured: bool,
    /// Subset of `master`, `peer`, `selected`, `candidate`, `configured`.
    pub flags: Vec<String>,
    pub stratum: u8,
    pub reference_id: String,
    pub reach: u8,
    pub poll_s: u64,
    /// Seconds since the last valid packet, null if never.
    pub last_receive_s: Option<u64>,
    pub offset_ms: f64,
    pub delay_ms: f64,
    pub dispersion_ms: f64,
    /// `none`, `ok`, `failed`.
    pub auth: String,
    /// Fields shown by `sessions --verbose`.
    pub verbose: SessionDetail,
}

/// The extra fields of `sessions --verbose` (Comware's verbose layout).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionDetail {
    pub local_poll_log2: i8,
    pub peer_poll_log2: i8,
    pub root_delay_ms: f64,
    pub root_dispersion_ms: f64,
    pub sync_distance_s: f64,
    pub precision_log2: i8,
    pub version: u8,
    pub source_interface: Option<String>,
    /// Status words: configured/dynamic, master, selected, candidate, sane/insane,
    /// valid/invalid, unsynced; for a symmetric-active association also
    /// calibrating/calibrated/uncalibrated (its mode 3/4 exchange before mode 1) and denied
    /// (stopped by a DENY or RSTR kiss).
    pub status: Vec<String>,
    /// NTP hex `XXXXXXXX.XXXXXXXX` of the peer's reference, origin, receive, transmit times.
    pub reftime: String,
    pub orgtime: String,
    pub rcvtime: String,
    pub xmttime: String,
    /// Clock-filter register, newest first (ms).
    pub filter_delay_ms: Vec<f64>,
    pub filter_offset_ms: Vec<f64>,
    pub filter_dispersion_ms: Vec<f64>,
    /// Packets sent, received, and rejected by the checks, with the name of the last failed check.
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_rejected: u64,
    pub last_rejection: Option<String>,
}

/// One hop of `meridianctl trace`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceHop {
    pub server: String,
    pub stratum: u8,
    pub offset_ms: f64,
    pub sync_distance_ms: f64,
    pub reference_id: String,
}

/// Result of `meridianctl query`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryReport {
    pub server: String,
    pub stratum: u8,
    pub reference_id: String,
    pub leap: String,
    pub offset_ms: f64,
    pub delay_ms: f64,
    pub root_delay_ms: f64,
    pub root_dispersion_ms: f64,
    pub version: u8,
    pub mode: String,
}

/// Control-socket request: one JSON line from `meridianctl`, one JSON answer, then close.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum ControlRequest {
    Status,
    Sessions,
    Reload,
}

/// Control-socket answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case")]
// One answer per control connection: its size in memory does not matter.
#[allow(clippy::large_enum_variant)]
pub enum ControlAnswer {
    Status(StatusReport),
    Sessions { sessions: Vec<SessionReport> },
    Reloaded { message: String },
    Error { message: String },
}
