//! Access control of the NTP service: basic ACLs (ordered permit/deny rules on host, prefix or
//! any address) and the four access rights (peer, server, synchronization, query), matched from
//! the highest to the lowest; the first right whose ACL permits the source applies.

use crate::wire::Mode;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP prefix (a bare host is a /32 or /128). Host bits past `len` are ignored by
/// [`IpPrefix::contains`]; the configuration refuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length in bits (0..=32 or 0..=128; larger values act as the full width).
    pub len: u8,
}

impl IpPrefix {
    /// Whether `addr` lies inside this prefix. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
    /// is treated as the IPv4 address it carries, so it matches IPv4 prefixes only.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, canonical(addr)) {
            (IpAddr::V4(net), IpAddr::V4(a)) => same_prefix(
                u128::from(u32::from(net)),
                u128::from(u32::from(a)),
                32,
                self.len,
            ),
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                same_prefix(u128::from(net), u128::from(a), 128, self.len)
            }
            _ => false,
        }
    }
}

/// Whether the top `len` bits of two `width`-bit values agree.
fn same_prefix(a: u128, b: u128, width: u32, len: u8) -> bool {
    let len = u32::from(len).min(width);
    if len == 0 {
        return true;
    }
    let shift = width - len;
    (a >> shift) == (b >> shift)
}

/// The address with an IPv4-mapped IPv6 address turned into IPv4.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `addr` is a loopback address (127.0.0.0/8, ::1, or 127.x mapped into IPv6).
pub fn is_loopback(addr: IpAddr) -> bool {
    canonical(addr).is_loopback()
}

/// What an ACL rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclAction {
    /// The match grants the right.
    Permit,
    /// The match refuses the right.
    Deny,
}

/// Which source addresses an ACL rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclSource {
    /// Every address.
    Any,
    /// An address prefix (a bare address is a /32 or /128).
    Prefix(IpPrefix),
}

impl AclSource {
    /// Whether `addr` matches. IPv4-mapped IPv6 addresses match IPv4 prefixes.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match self {
            AclSource::Any => true,
            AclSource::Prefix(p) => p.contains(addr),
        }
    }
}

/// One ACL rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclRule {
    /// What to do on a match.
    pub action: AclAction,
    /// Which source addresses match.
    pub source: AclSource,
}

/// A basic ACL: ordered rules, first match wins; no match is no permission.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    /// Rules in order.
    pub rules: Vec<AclRule>,
}

impl Acl {
    /// The action of the first rule matching `addr`, `None` if no rule matches.
    pub fn evaluate(&self, addr: IpAddr) -> Option<AclAction> {
        self.rules
            .iter()
            .find(|r| r.source.contains(addr))
            .map(|r| r.action)
    }

    /// Whether the first matching rule permits `addr`.
    pub fn permits(&self, addr: IpAddr) -> bool {
        self.evaluate(addr) == Some(AclAction::Permit)
    }
}

/// The access-control rights, from the highest to the lowest (the derived order follows it:
/// `Peer < Server < ...` means "matched earlier").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Right {
    /// Full access: time, control queries, and we may synchronize to it (passive peering).
    Peer,
    /// Time and control queries.
    Server,
    /// Time requests only.
    Synchronization,
    /// Control queries only.
    Query,
}

impl Right {
    /// All rights, highest first.
    pub const ALL: [Right; 4] = [
        Right::Peer,
        Right::Server,
        Right::Synchronization,
        Right::Query,
    ];

    /// Whether this right allows `service`.
    pub fn allows(self, service: Service) -> bool {
        match service {
            Service::Time => matches!(self, Right::Peer | Right::Server | Right::Synchronization),
            Service::Control => matches!(self, Right::Peer | Right::Server | Right::Query),
            Service::Peering => self == Right::Peer,
        }
    }

    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Right::Peer => "peer",
            Right::Server => "server",
            Right::Synchronization => "synchronization",
            Right::Query => "query",
        }
    }
}

/// What a request asks of us, by its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Mode 3: a client wants our time.
    Time,
    /// Mode 6: a control query.
    Control,
    /// Mode 1: a symmetric active peer; answering means a passive association, and it may
    /// become a source of time for us.
    Peering,
}

impl Service {
    /// The service a packet of `mode` asks for; `None` for modes that are never requests
    /// (0, 2, 4, 5, 7): the server path must not answer them at all.
    pub fn of_mode(mode: Mode) -> Option<Service> {
        match mode {
            Mode::Client => Some(Service::Time),
            Mode::Control => Some(Service::Control),
            Mode::SymmetricActive => Some(Service::Peering),
            _ => None,
        }
    }
}

/// Why access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessDenied {
    /// No mode that we ever answer.
    NotRequest,
    /// No right's ACL permits the source.
    NoRight,
    /// The source's right does not cover what it asked for (e.g. mode 6 with `synchronization`).
    NotAllowed(Right),
}

impl AccessDenied {
    /// Counter name of this drop reason.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessDenied::NotRequest => "not-a-request",
            AccessDenied::NoRight => "access-denied",
            AccessDenied::NotAllowed(_) => "access-restricted",
        }
    }
}

/// The access rights of one NTP instance: an ACL per right, or none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessPolicy {
    pub peer: Option<Acl>,
    pub server: Option<Acl>,
    pub synchronization: Option<Acl>,
    pub query: Option<Acl>,
}

impl AccessPolicy {
    /// Nothing configured: everybody has the `peer` right.
    pub fn open() -> Self {
        Self::default()
    }

    /// The ACL of `right`, if configured.
    pub fn acl(&self, right: Right) -> Option<&Acl> {
        match right {
            Right::Peer => self.peer.as_ref(),
            Right::Server => self.server.as_ref(),
            Right::Synchronization => self.synchronization.as_ref(),
            Right::Query => self.query.as_ref(),
        }
    }

    /// Whether no right is configured (then everybody has `peer`).
    pub fn is_open(&self) -> bool {
        Right::ALL.iter().all(|r| self.acl(*r).is_none())
    }

    /// The right of `source`: the first configured right, from peer down to query, whose ACL
    /// permits it. `None` means the source may do nothing.
    pub fn right(&self, source: IpAddr) -> Option<Right> {
        if self.is_open() {
            return Some(Right::Peer);
        }
        Right::ALL
            .into_iter()
            .find(|r| self.acl(*r).is_some_and(|acl| acl.permits(source)))
    }

    /// Whether a packet of `mode` from `source` may be processed by the server path.
    pub fn check(&self, source: IpAddr, mode: Mode) -> Result<Right, AccessDenied> {
        let service = Service::of_mode(mode).ok_or(AccessDenied::NotRequest)?;
        let right = self.right(source).ok_or(AccessDenied::NoRight)?;
        if right.allows(service) {
            Ok(right)
        } else {
            Err(AccessDenied::NotAllowed(right))
        }
    }
}

/// Shorthand for tests and examples: a rule.
pub fn rule(action: AclAction, source: AclSource) -> AclRule {
    AclRule { action, source }
}

/// Shorthand: a prefix source.
pub fn prefix(addr: IpAddr, len: u8) -> AclSource {
    AclSource::Prefix(IpPrefix { addr, len })
}

/// Shorthand: an IPv4 host source.
pub fn host_v4(a: Ipv4Addr) -> AclSource {
    prefix(IpAddr::V4(a), 32)
}

/// Shorthand: an IPv6 host source.
pub fn host_v6(a: Ipv6Addr) -> AclSource {
    prefix(IpAddr::V6(a), 128)
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
