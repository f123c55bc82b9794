//! NTP control messages (mode 6, RFC 9327): parse a request and build the response datagrams
//! for READSTAT and READVAR from a [`ControlSnapshot`], the way NTPsec's `ntpq` and the
//! monitoring plugin `check_ntp_peer` read them.
//!
//! Only reading is supported. A request is a 12-byte header (LI/VN/mode, R/E/M bits and
//! opcode, sequence, status, association id, offset, count) followed by `count` bytes of data
//! padded to 32 bits; a trailing MAC is ignored (nothing here changes state). Responses echo
//! the version, sequence, opcode and association id, carry the system leap indicator in LI,
//! a status word in `status`, and split their text into fragments of at most [`MAX_DATA`]
//! bytes with the More bit on all but the last.
//!
//! What gets no answer at all: anything shorter than the header, not mode 6, versions other
//! than 1..=4, a response (R bit set: answering it could start a loop), a `count` beyond the
//! datagram or beyond [`MAX_DATA`]. Unknown opcodes, unknown associations, unknown variable
//! names and fragmented requests get a 12-byte error response (E bit, error code in the high
//! byte of `status`), as ntpd does; such a response is never longer than the request.
//!
//! Variable text follows ntpd's conventions, which ntpq parses: `name=value` items separated
//! by `, `; milliseconds for offsets, delays, dispersions and jitters; `0xSSSSSSSS.FFFFFFFF`
//! for timestamps; the reach register in hexadecimal; strings in double quotes.

use crate::time::NtpTimestamp;
use crate::wire::Leap;
use std::fmt::Write as _;
use std::net::SocketAddr;

/// Length of the control message header.
pub const HEADER_LEN: usize = 12;
/// Most data bytes in one fragment (RFC 9327; ntpq and check_ntp_peer use the same bound).
pub const MAX_DATA: usize = 468;
/// Most fragments one response may take; longer text is cut (never reached in practice).
pub const MAX_FRAGMENTS: usize = 24;
/// Opcode: read status (association list for association 0).
pub const OP_READSTAT: u8 = 1;
/// Opcode: read variables (system variables for association 0).
pub const OP_READVAR: u8 = 2;

const MODE_CONTROL: u8 = 6;
const BIT_RESPONSE: u8 = 0x80;
const BIT_ERROR: u8 = 0x40;
const BIT_MORE: u8 = 0x20;
const OPCODE_MASK: u8 = 0x1f;

/// A parsed control request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlRequest<'a> {
    /// NTP version of the request (1..=4); the response uses the same.
    pub version: u8,
    pub opcode: u8,
    /// The More bit: the request itself is fragmented (not supported).
    pub more: bool,
    pub sequence: u16,
    pub association: u16,
    pub offset: u16,
    /// `count` bytes of request data (a variable list for READVAR).
    pub data: &'a [u8],
}

/// Why a datagram gets no answer at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlDrop {
    /// Too short, wrong mode or version, or a count that does not fit.
    Malformed,
    /// The R bit is set: a response, never answered.
    Response,
}

impl ControlDrop {
    /// Counter name of this drop reason.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlDrop::Malformed => "malformed",
            ControlDrop::Response => "not-a-request",
        }
    }
}

/// Error codes of an error response (RFC 9327), sent in the high byte of `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlError {
    Unspecified = 0,
    AuthenticationFailure = 1,
    BadFormat = 2,
    BadOpcode = 3,
    UnknownAssociation = 4,
    UnknownVariable = 5,
    BadValue = 6,
    Prohibited = 7,
}

/// Parses the header of a control request.
pub fn parse_request(bytes: &[u8]) -> Result<ControlRequest<'_>, ControlDrop> {
    let header = bytes.get(..HEADER_LEN).ok_or(ControlDrop::Malformed)?;
    let version = (header[0] >> 3) & 7;
    if header[0] & 7 != MODE_CONTROL || !(1..=4).contains(&version) {
        return Err(ControlDrop::Malformed);
    }
    if header[1] & BIT_RESPONSE != 0 {
        return Err(ControlDrop::Response);
    }
    let word = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let count = usize::from(word(10));
    if count > MAX_DATA {
        return Err(ControlDrop::Malformed);
    }
    let data = bytes
        .get(HEADER_LEN..HEADER_LEN + count)
        .ok_or(ControlDrop::Malformed)?;
    Ok(ControlRequest {
        version,
        opcode: header[1] & OPCODE_MASK,
        more: header[1] & BIT_MORE != 0,
        sequence: word(2),
        association: word(6),
        offset: word(8),
        data,
    })
}

/// The clock source field of the system status word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClockSource {
    #[default]
    Unspecified = 0,
    /// The local clock (a local reference).
    Local = 5,
    /// An NTP server.
    Ntp = 6,
}

/// The system status word: LI (2 bits), clock source (6), event counter (4), last event (4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SystemStatus {
    pub leap: Leap,
    pub source: ClockSource,
    pub event_count: u8,
    pub event: u8,
}

impl SystemStatus {
    pub fn word(self) -> u16 {
        (self.leap as u16) << 14
            | (self.source as u16 & 0x3f) << 8
            | u16::from(self.event_count & 0xf) << 4
            | u16::from(self.event & 0xf)
    }
}

/// Selection code of a peer status word (ntpq's tally characters `" x.-+#*o"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Selection {
    /// Not usable (unreachable, unsynchronized, too far).
    #[default]
    Reject = 0,
    /// Discarded by the intersection algorithm.
    Falsetick = 1,
    /// Discarded as beyond the number of sources kept.
    Excess = 2,
    /// Discarded by the cluster algorithm.
    Outlier = 3,
    /// Survived selection and clustering.
    Candidate = 4,
    /// A backup source.
    Backup = 5,
    /// The system peer.
    SysPeer = 6,
    /// The system peer via PPS.
    PpsPeer = 7,
}

/// The peer status word: status bits (configured, auth enabled, authentic, reachable,
/// broadcast), selection code, event counter and last event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PeerStatus {
    pub configured: bool,
    pub auth_enabled: bool,
    pub authentic: bool,
    pub reachable: bool,
    pub broadcast: bool,
    pub selection: Selection,
    pub event_count: u8,
    pub event: u8,
}

impl PeerStatus {
    pub fn word(self) -> u16 {
        let bits = u16::from(self.configured) << 7
            | u16::from(self.auth_enabled) << 6
            | u16::from(self.authentic) << 5
            | u16::from(self.reachable) << 4
            | u16::from(self.broadcast) << 3
            | self.selection as u16;
        bits << 8 | u16::from(self.event_count & 0xf) << 4 | u16::from(self.event & 0xf)
    }
}

/// The system variables. Times in seconds, frequencies in ppm; the text is in ms.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SystemVariables {
    /// Software name and version, e.g. "meridiand 0.1.0".
    pub version: String,
    pub processor: String,
    pub system: String,
    pub leap: Leap,
    pub stratum: u8,
    pub precision: i8,
    pub root_delay: f64,
    pub root_dispersion: f64,
    /// Reference ID as text: an address, a code such as "LOCL", or "INIT".
    pub refid: String,
    pub reference_time: NtpTimestamp,
    /// The local clock now.
    pub clock: NtpTimestamp,
    /// Association id of the system peer, 0 for none.
    pub peer: u16,
    /// Poll exponent of the clock discipline.
    pub tc: i8,
    pub mintc: i8,
    pub offset: f64,
    pub frequency_ppm: f64,
    pub sys_jitter: f64,
    pub clk_jitter: f64,
    pub clk_wander_ppm: f64,
}

/// One filter stage: delay, offset and dispersion of a sample, seconds.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct FilterSample {
    pub delay: f64,
    pub offset: f64,
    pub dispersion: f64,
}

/// The variables of one association. Times in seconds; the text is in ms.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerVariables {
    pub srcadr: SocketAddr,
    /// Our local address for it, when known.
    pub dstadr: Option<SocketAddr>,
    pub leap: Leap,
    pub stratum: u8,
    pub precision: i8,
    pub root_delay: f64,
    pub root_dispersion: f64,
    pub refid: String,
    pub reference_time: NtpTimestamp,
    /// Local time of the last packet received from it (zero: never).
    pub rec: NtpTimestamp,
    pub reach: u8,
    /// Host (our) mode and the peer's mode, RFC 5905 numbers.
    pub hmode: u8,
    pub pmode: u8,
    pub hpoll: i8,
    pub ppoll: i8,
    /// Flash bits (ntpd's test flags) of the association.
    pub flash: u16,
    pub keyid: u32,
    pub offset: f64,
    pub delay: f64,
    pub dispersion: f64,
    pub jitter: f64,
    /// Up to 8 filter stages, newest first; missing stages are shown empty.
    pub filter: Vec<FilterSample>,
}

/// One association as listed by READSTAT.
#[derive(Clone, Debug, PartialEq)]
pub struct Association {
    /// Non-zero association id.
    pub id: u16,
    pub status: PeerStatus,
    pub vars: PeerVariables,
}

/// Everything the responder needs, taken from the daemon at the time of the request.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ControlSnapshot {
    pub status: SystemStatus,
    pub system: SystemVariables,
    pub associations: Vec<Association>,
}

/// Parses `request` and builds its response datagrams (see the module docs).
pub fn respond(request: &[u8], snapshot: &ControlSnapshot) -> Result<Vec<Vec<u8>>, ControlDrop> {
    let req = parse_request(request)?;
    Ok(respond_to(&req, snapshot))
}

/// Builds the response datagrams of a parsed request.
pub fn respond_to(req: &ControlRequest<'_>, snapshot: &ControlSnapshot) -> Vec<Vec<u8>> {
    let leap = snapshot.status.leap;
    let error = |code: ControlError| vec![error_response(req, leap, code)];
    if req.more || req.offset != 0 {
        return error(ControlError::BadFormat);
    }
    let peer = |id: u16| snapshot.associations.iter().find(|a| a.id == id);
    match (req.opcode, req.association) {
        (OP_READSTAT, 0) => {
            let mut data = Vec::with_capacity(4 * snapshot.associations.len());
            for a in &snapshot.associations {
                data.extend_from_slice(&a.id.to_be_bytes());
                data.extend_from_slice(&a.status.word().to_be_bytes());
            }
            fragments(req, leap, snapshot.status.word(), &data)
        }
        (OP_READSTAT, id) => match peer(id) {
            Some(a) => fragments(req, leap, a.status.word(), &[]),
            None => error(ControlError::UnknownAssociation),
        },
        (OP_READVAR, 0) => match select(&system_items(&snapshot.system), req.data) {
            Ok(text) => fragments(req, leap, snapshot.status.word(), text.as_bytes()),
            Err(code) => error(code),
        },
        (OP_READVAR, id) => {
            let Some(a) = peer(id) else {
                return error(ControlError::UnknownAssociation);
            };
            match select(&peer_items(&a.vars), req.data) {
                Ok(text) => fragments(req, leap, a.status.word(), text.as_bytes()),
                Err(code) => error(code),
            }
        }
        _ => error(ControlError::BadOpcode),
    }
}

fn header(req: &ControlRequest<'_>, leap: Leap, flags: u8, status: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + MAX_DATA);
    out.push((leap as u8) << 6 | req.version << 3 | MODE_CONTROL);
    out.push(BIT_RESPONSE | flags | req.opcode);
    out.extend_from_slice(&req.sequence.to_be_bytes());
    out.extend_from_slice(&status.to_be_bytes());
    out.extend_from_slice(&req.association.to_be_bytes());
    out
}

fn error_response(req: &ControlRequest<'_>, leap: Leap, code: ControlError) -> Vec<u8> {
    let mut out = header(req, leap, BIT_ERROR, (code as u16) << 8);
    out.extend_from_slice(&[0; 4]); // offset and count
    out
}

/// Splits `data` into fragments of at most MAX_DATA bytes, each padded to 32 bits.
fn fragments(req: &ControlRequest<'_>, leap: Leap, status: u16, data: &[u8]) -> Vec<Vec<u8>> {
    let data = &data[..data.len().min(MAX_DATA * MAX_FRAGMENTS)];
    let mut chunks: Vec<&[u8]> = data.chunks(MAX_DATA).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let last = chunks.len() - 1;
    let mut out = Vec::with_capacity(chunks.len());
    for (i, chunk) in chunks.into_iter().enumerate() {
        let more = if i < last { BIT_MORE } else { 0 };
        let mut d = header(req, leap, more, status);
        d.extend_from_slice(&((i * MAX_DATA) as u16).to_be_bytes());
        d.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        d.extend_from_slice(chunk);
        d.resize(d.len().next_multiple_of(4), 0);
        out.push(d);
    }
    out
}

/// The requested variable names (request data `a,b,c`; `=value` parts and blanks ignored).
fn requested(data: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(data)
        .split(',')
        .map(|item| {
            let name = item.split('=').next().unwrap_or("");
            name.trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .to_owned()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

type Items = Vec<(&'static str, Option<String>)>;

/// The `name=value, ...` text of every item, or of the requested ones.
fn select(items: &Items, data: &[u8]) -> Result<String, ControlError> {
    let names = requested(data);
    let mut parts = Vec::new();
    if names.is_empty() {
        for (name, value) in items {
            if let Some(v) = value {
                parts.push(format!("{name}={v}"));
            }
        }
    } else {
        for wanted in &names {
            let (name, value) = items
                .iter()
                .find(|(n, _)| n == wanted)
                .ok_or(ControlError::UnknownVariable)?;
            if let Some(v) = value {
                parts.push(format!("{name}={v}"));
            }
        }
    }
    Ok(parts.join(", "))
}

/// Milliseconds with microsecond resolution, from seconds.
fn ms(seconds: f64) -> Option<String> {
    let v = if seconds.is_finite() {
        seconds * 1e3
    } else {
        0.0
    };
    Some(format!("{v:.6}"))
}

fn ts(t: NtpTimestamp) -> Option<String> {
    Some(format!("0x{:08x}.{:08x}", t.seconds(), t.fraction()))
}

fn quoted(s: &str) -> Option<String> {
    let clean: String = s
        .chars()
        .filter(|c| *c != '"' && *c != ',' && !c.is_control())
        .collect();
    Some(format!("\"{clean}\""))
}

fn text(s: &str) -> Option<String> {
    let clean: String = s
        .chars()
        .filter(|c| *c != ',' && *c != '=' && !c.is_whitespace() && !c.is_control())
        .collect();
    Some(if clean.is_empty() {
        "-".to_owned()
    } else {
        clean
    })
}

fn num(v: impl std::fmt::Display) -> Option<String> {
    Some(v.to_string())
}

fn system_items(s: &SystemVariables) -> Items {
    vec![
        ("version", quoted(&s.version)),
        ("processor", quoted(&s.processor)),
        ("system", quoted(&s.system)),
        ("leap", num(s.leap as u8)),
        ("stratum", num(s.stratum)),
        ("precision", num(s.precision)),
        ("rootdelay", ms(s.root_delay)),
        ("rootdisp", ms(s.root_dispersion)),
        ("refid", text(&s.refid)),
        ("reftime", ts(s.reference_time)),
        ("clock", ts(s.clock)),
        ("peer", num(s.peer)),
        ("tc", num(s.tc)),
        ("mintc", num(s.mintc)),
        ("offset", ms(s.offset)),
        ("frequency", Some(format!("{:.3}", finite(s.frequency_ppm)))),
        ("sys_jitter", ms(s.sys_jitter)),
        ("clk_jitter", ms(s.clk_jitter)),
        (
            "clk_wander",
            Some(format!("{:.3}", finite(s.clk_wander_ppm))),
        ),
    ]
}

fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// Eight filter stages as `v v v ...` in ms; missing stages are 0 (16000 for dispersion, as
/// ntpd shows an empty stage).
fn stages(filter: &[FilterSample], pick: fn(&FilterSample) -> f64, empty: f64) -> Option<String> {
    let mut out = String::new();
    for i in 0..8 {
        let v = filter.get(i).map_or(empty, pick);
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{:.3}", finite(v) * 1e3);
    }
    Some(out)
}

fn peer_items(p: &PeerVariables) -> Items {
    vec![
        ("srcadr", text(&p.srcadr.ip().to_string())),
        ("srcport", num(p.srcadr.port())),
        ("dstadr", p.dstadr.and_then(|a| text(&a.ip().to_string()))),
        ("dstport", p.dstadr.and_then(|a| num(a.port()))),
        ("leap", num(p.leap as u8)),
        ("stratum", num(p.stratum)),
        ("precision", num(p.precision)),
        ("rootdelay", ms(p.root_delay)),
        ("rootdisp", ms(p.root_dispersion)),
        ("refid", text(&p.refid)),
        ("reftime", ts(p.reference_time)),
        ("rec", ts(p.rec)),
        ("reach", Some(format!("0x{:02x}", p.reach))),
        ("hmode", num(p.hmode)),
        ("pmode", num(p.pmode)),
        ("hpoll", num(p.hpoll)),
        ("ppoll", num(p.ppoll)),
        ("flash", Some(format!("0x{:x}", p.flash))),
        ("keyid", num(p.keyid)),
        ("offset", ms(p.offset)),
        ("delay", ms(p.delay)),
        ("dispersion", ms(p.dispersion)),
        ("jitter", ms(p.jitter)),
        ("filtdelay", stages(&p.filter, |s| s.delay, 0.0)),
        ("filtoffset", stages(&p.filter, |s| s.offset, 0.0)),
        ("filtdisp", stages(&p.filter, |s| s.dispersion, 16.0)),
    ]
}

/// Flash bits (ntpd's numbering, which ntpq names): the peer's stratum is unusable.
pub const FLASH_PEER_STRATUM: u16 = 0x0200;
/// Flash bit: the peer's root distance is beyond the maximum.
pub const FLASH_PEER_DIST: u16 = 0x0400;
/// Flash bit: the peer is unreachable.
pub const FLASH_PEER_UNREACH: u16 = 0x1000;
/// Flash bit: the last packet failed authentication.
pub const FLASH_PKT_AUTH: u16 = 0x0010;

#[cfg(test)]
#[path = "mode6_tests.rs"]
mod tests;
