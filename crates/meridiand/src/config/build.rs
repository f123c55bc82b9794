//! Reads the TOML tables into the typed model, one function per table, recording where each
//! cross-reference was written so that [`super::validate`] can point at it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use super::model::*;
use super::reader::{Diag, Span, Tab};
use super::security::{read_access, read_acls, read_authentication, read_vpn_instances};

/// Where references to other parts of the configuration were written.
#[derive(Default)]
pub(crate) struct Sites {
    /// Key ids used by associations and broadcast/multicast servers, with the referring key.
    pub key_refs: Vec<(u32, Span)>,
    /// Entries of `authentication.trusted`.
    pub trusted: Vec<(u32, Span)>,
    /// VPN instance names used by associations and interfaces.
    pub vpn_refs: Vec<(String, Span)>,
    /// ACL numbers used by `[access]`.
    pub acl_refs: Vec<(u32, Span)>,
    /// Associations, for duplicate detection.
    pub associations: Vec<AssocSite>,
    /// Interfaces, for duplicate detection: (name, vpn instance, span).
    pub interfaces: Vec<(String, Option<String>, Span)>,
    /// Where `keys-file` was written.
    pub keys_file: Span,
    /// Where `[service] server-threads` was written (when nonzero).
    pub server_threads: Option<Span>,
}

/// One association as written, for duplicate detection.
pub(crate) struct AssocSite {
    /// "unicast-server" or "unicast-peer".
    pub kind: &'static str,
    /// Canonical address: the IP as printed by std, or the host name lowercased.
    pub canonical: String,
    pub vpn: Option<String>,
    pub span: Span,
    /// UDP port: the same address on another port is another server.
    pub port: u16,
}

/// Top-level tables in the order they are read.
pub(crate) fn read_config(d: &mut Diag<'_>, mut root: Tab<'_>) -> (Config, Sites) {
    let mut sites = Sites::default();
    let service = sub(&mut root, d, "service")
        .map_or_else(default_service, |t| read_service(d, t, &mut sites));
    let control = sub(&mut root, d, "control").map_or_else(default_control, |t| read_control(d, t));
    let metrics =
        sub(&mut root, d, "metrics").map_or_else(MetricsConfig::default, |t| read_metrics(d, t));
    let clock = sub(&mut root, d, "clock").map_or_else(default_clock, |t| read_clock(d, t));
    let local_reference = sub(&mut root, d, "local-reference").map(|t| read_local_reference(d, t));
    let unicast_servers = root
        .tables(d, "unicast-server")
        .into_iter()
        .map(|t| read_association(d, t, "unicast-server", &mut sites))
        .collect();
    let unicast_peers = root
        .tables(d, "unicast-peer")
        .into_iter()
        .map(|t| read_association(d, t, "unicast-peer", &mut sites))
        .collect();
    let interfaces = root
        .tables(d, "interface")
        .into_iter()
        .map(|t| read_interface(d, t, &mut sites))
        .collect();
    let vpn_instances =
        sub(&mut root, d, "vpn-instance").map_or_else(BTreeMap::new, |t| read_vpn_instances(d, t));
    let authentication = sub(&mut root, d, "authentication")
        .map_or_else(AuthenticationConfig::default, |t| {
            read_authentication(d, t, &mut sites)
        });
    let access = sub(&mut root, d, "access")
        .map_or_else(AccessConfig::default, |t| read_access(d, t, &mut sites));
    let acls = sub(&mut root, d, "acl").map_or_else(BTreeMap::new, |t| read_acls(d, t));
    let rate_limit = sub(&mut root, d, "rate-limit")
        .map_or_else(RateLimitSettings::default, |t| read_rate_limit(d, t));
    root.finish(d);
    let config = Config {
        service,
        control,
        metrics,
        clock,
        local_reference,
        unicast_servers,
        unicast_peers,
        interfaces,
        vpn_instances,
        authentication,
        access,
        acls,
        rate_limit,
    };
    (config, sites)
}

fn sub<'d>(root: &mut Tab<'d>, d: &mut Diag<'_>, key: &'static str) -> Option<Tab<'d>> {
    root.table(d, key, format!("[{key}]"))
}

fn default_service() -> ServiceConfig {
    ServiceConfig {
        port: DEFAULT_PORT,
        source_interface: None,
        max_dynamic_sessions: DEFAULT_MAX_DYNAMIC_SESSIONS,
        dscp: DEFAULT_DSCP,
        drift_file: None,
        server_threads: 0,
    }
}

fn default_control() -> ControlConfig {
    ControlConfig {
        socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
        mode6: true,
    }
}

fn default_clock() -> ClockConfig {
    ClockConfig {
        driver: ClockDriverKind::System,
        step_threshold: DEFAULT_STEP_THRESHOLD,
        panic_threshold: DEFAULT_PANIC_THRESHOLD,
        initial_offset: 0.0,
        frequency_ppm: 0.0,
    }
}

/// Narrowing after a range check already done by the reader.
fn narrow<T: TryFrom<i64>>(v: i64, fallback: T) -> T {
    T::try_from(v).unwrap_or(fallback)
}

fn read_service(d: &mut Diag<'_>, mut t: Tab<'_>, sites: &mut Sites) -> ServiceConfig {
    let mut s = default_service();
    if let Some((v, _)) = t.int(d, "port", 1, 65535) {
        s.port = narrow(v, DEFAULT_PORT);
    }
    s.source_interface = interface_name(&mut t, d, "source-interface");
    if let Some((v, _)) = t.int(d, "max-dynamic-sessions", 0, 100) {
        s.max_dynamic_sessions = narrow(v, DEFAULT_MAX_DYNAMIC_SESSIONS);
    }
    if let Some((v, _)) = t.int(d, "dscp", 0, 63) {
        s.dscp = narrow(v, DEFAULT_DSCP);
    }
    s.drift_file = t
        .nonempty_str(d, "drift-file")
        .map(|(p, _)| PathBuf::from(p));
    if let Some((v, span)) = t.int(d, "server-threads", 0, 64) {
        s.server_threads = narrow(v, 0);
        sites.server_threads = (v > 0).then_some(span);
    }
    t.finish(d);
    s
}

fn read_rate_limit(d: &mut Diag<'_>, mut t: Tab<'_>) -> RateLimitSettings {
    // Writing the table turns rate limiting on, unless it says `enable = false`.
    let mut r = RateLimitSettings {
        enable: true,
        ..RateLimitSettings::default()
    };
    if let Some(b) = t.bool(d, "enable") {
        r.enable = b;
    }
    if let Some((x, span)) = t.duration(d, "interval", false) {
        if (0.001..=3600.0).contains(&x) {
            r.interval = x;
        } else {
            d.err(&span, "`interval` must be between 1ms and 1h");
        }
    }
    if let Some((v, _)) = t.int(d, "burst", 1, 1024) {
        r.burst = narrow(v, DEFAULT_RATE_BURST);
    }
    if let Some((v, span)) = t.int(d, "leak", 0, 1024) {
        if v == 1 {
            d.err(
                &span,
                "`leak` = 1 would answer every limited request; use 0 (never) or 2..=1024",
            );
        } else {
            r.leak = narrow(v, DEFAULT_RATE_LEAK);
        }
    }
    if let Some((v, _)) = t.int(d, "kod", 0, 1024) {
        r.kod = narrow(v, DEFAULT_RATE_KOD);
    }
    if let Some((v, _)) = t.int(d, "table-size", 16, 4_194_304) {
        r.table_size = narrow(v, DEFAULT_RATE_TABLE_SIZE);
    }
    t.finish(d);
    r
}

fn read_control(d: &mut Diag<'_>, mut t: Tab<'_>) -> ControlConfig {
    let mut c = default_control();
    if let Some((p, _)) = t.nonempty_str(d, "socket") {
        c.socket = PathBuf::from(p);
    }
    if let Some(b) = t.bool(d, "mode6") {
        c.mode6 = b;
    }
    t.finish(d);
    c
}

fn read_metrics(d: &mut Diag<'_>, mut t: Tab<'_>) -> MetricsConfig {
    let mut m = MetricsConfig::default();
    if let Some((s, span)) = t.str(d, "listen") {
        match s.parse::<SocketAddr>() {
            Ok(a) => m.listen = Some(a),
            Err(_) => d.err(
                &span,
                format!("`listen` must be ADDRESS:PORT, like \"127.0.0.1:9975\" or \"[::1]:9975\", got \"{s}\""),
            ),
        }
    }
    t.finish(d);
    m
}

fn read_clock(d: &mut Diag<'_>, mut t: Tab<'_>) -> ClockConfig {
    let mut c = default_clock();
    if let Some((s, span)) = t.str(d, "driver") {
        c.driver = match s {
            "system" => ClockDriverKind::System,
            "read-only" => ClockDriverKind::ReadOnly,
            "simulated" => ClockDriverKind::Simulated,
            other => {
                d.err(
                    &span,
                    format!("`driver` must be \"system\", \"read-only\" or \"simulated\", got \"{other}\""),
                );
                c.driver
            }
        };
    }
    let step = t.duration(d, "step-threshold", false);
    if let Some((v, _)) = step {
        c.step_threshold = v;
    }
    if let Some((v, _)) = t.duration(d, "panic-threshold", false) {
        c.panic_threshold = v;
    }
    if let Some((_, span)) = &step {
        if c.panic_threshold > 0.0 && c.step_threshold > c.panic_threshold {
            d.err(span, "`step-threshold` must not exceed `panic-threshold`");
        }
    }
    let simulated = c.driver == ClockDriverKind::Simulated;
    if let Some((v, span)) = t.duration(d, "initial-offset", true) {
        c.initial_offset = v;
        if !simulated {
            d.err(&span, simulated_only("initial-offset", c.driver));
        }
    }
    if let Some((v, span)) = t.float(d, "frequency-ppm", -500.0, 500.0) {
        c.frequency_ppm = v;
        if !simulated {
            d.err(&span, simulated_only("frequency-ppm", c.driver));
        }
    }
    t.finish(d);
    c
}

fn simulated_only(key: &str, driver: ClockDriverKind) -> String {
    format!(
        "`{key}` only applies to driver \"simulated\" (driver is \"{}\")",
        driver.as_str()
    )
}

fn read_local_reference(d: &mut Diag<'_>, mut t: Tab<'_>) -> LocalReferenceConfig {
    let mut l = LocalReferenceConfig {
        address: Ipv4Addr::new(127, 127, 1, 0),
        unit: 0,
        stratum: DEFAULT_LOCAL_STRATUM,
    };
    if let Some((s, span)) = t.str(d, "address") {
        match s.parse::<Ipv4Addr>() {
            Ok(a) if a.octets()[..3] == [127, 127, 1] && a.octets()[3] <= 3 => {
                l.address = a;
                l.unit = a.octets()[3];
            }
            _ => d.err(
                &span,
                format!("`address` must be 127.127.1.u with u in 0..=3, got \"{s}\""),
            ),
        }
    }
    if let Some((v, _)) = t.int(d, "stratum", 1, 15) {
        l.stratum = narrow(v, DEFAULT_LOCAL_STRATUM);
    }
    t.finish(d);
    l
}

/// A key id (1..=4294967295) recorded as a reference to check later.
pub(crate) fn key_id(t: &mut Tab<'_>, d: &mut Diag<'_>, sites: &mut Sites) -> Option<u32> {
    let (v, span) = t.int(d, "key-id", 1, i64::from(u32::MAX))?;
    let id = narrow(v, 1u32);
    sites.key_refs.push((id, span));
    Some(id)
}

fn version(t: &mut Tab<'_>, d: &mut Diag<'_>) -> u8 {
    t.int(d, "version", 1, 4)
        .map_or(DEFAULT_VERSION, |(v, _)| narrow(v, DEFAULT_VERSION))
}

fn vpn_ref(t: &mut Tab<'_>, d: &mut Diag<'_>, sites: &mut Sites) -> Option<String> {
    let (name, span) = t.nonempty_str(d, "vpn-instance")?;
    sites.vpn_refs.push((name.to_string(), span));
    Some(name.to_string())
}

/// Check a Linux interface name: 1..=15 bytes, no '/', no whitespace, not "." or "..".
pub(crate) fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 15 {
        return Err(format!("\"{name}\" is longer than 15 bytes"));
    }
    if name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.chars().any(char::is_whitespace)
    {
        return Err(format!("\"{name}\" is not a valid interface name"));
    }
    Ok(())
}

fn interface_name(t: &mut Tab<'_>, d: &mut Diag<'_>, key: &'static str) -> Option<String> {
    let (s, span) = t.str(d, key)?;
    match check_ifname(s) {
        Ok(()) => Some(s.to_string()),
        Err(e) => {
            d.err(&span, format!("`{key}` {e}"));
            None
        }
    }
}

/// Whether `name` is a syntactically valid DNS host name (RFC 1123, trailing dot allowed,
/// last label not all digits so that mistyped IPv4 addresses are caught).
pub(crate) fn is_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    labels.iter().all(label_ok)
        && !labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// Check an association address; returns its canonical form for duplicate detection.
fn check_address(address: &str) -> Result<String, String> {
    if let Ok(ip) = address.parse::<IpAddr>() {
        let bad = match ip {
            IpAddr::V4(a) if a.octets()[..2] == [127, 127] => {
                Some("a local reference clock address")
            }
            IpAddr::V4(a) if a.is_broadcast() => Some("a broadcast address"),
            a if a.is_multicast() => Some("a multicast address"),
            a if a.is_unspecified() => Some("the unspecified address"),
            _ => None,
        };
        return match bad {
            Some(what) => Err(format!(
                "`address` must be a unicast address, \"{address}\" is {what}"
            )),
            None => Ok(ip.to_string()),
        };
    }
    if is_host_name(address) {
        Ok(address.trim_end_matches('.').to_ascii_lowercase())
    } else {
        Err(format!(
            "`address` \"{address}\" is neither an IP address nor a valid host name"
        ))
    }
}

fn read_association(
    d: &mut Diag<'_>,
    mut t: Tab<'_>,
    kind: &'static str,
    sites: &mut Sites,
) -> AssociationConfig {
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
        port: 123,
    };
    let address = t.str(d, "address");
    a.vpn_instance = vpn_ref(&mut t, d, sites);
    let address_span = address.as_ref().map(|(_, span)| span.clone());
    match address {
        Some((s, span)) => {
            a.address = s.to_string();
            match check_address(s) {
                Ok(canonical) => sites.associations.push(AssocSite {
                    kind,
                    canonical,
                    port: DEFAULT_PORT,
                    vpn: a.vpn_instance.clone(),
                    span,
                }),
                Err(e) => d.err(&span, e),
            }
        }
        None if t.entry("address").is_none() => {
            d.err(
                &t.span,
                format!("missing required key `address` in [[{kind}]]"),
            );
        }
        None => {}
    }
    a.key_id = key_id(&mut t, d, sites);
    a.priority = t.bool(d, "priority").unwrap_or(false);
    a.source_interface = interface_name(&mut t, d, "source-interface");
    a.version = version(&mut t, d);
    let minpoll = t.int(d, "minpoll", -6, 17);
    let maxpoll = t.int(d, "maxpoll", -6, 17);
    if let Some((v, _)) = minpoll {
        a.minpoll = narrow(v, DEFAULT_MINPOLL);
    }
    if let Some((v, _)) = maxpoll {
        a.maxpoll = narrow(v, DEFAULT_MAXPOLL);
    }
    if a.minpoll > a.maxpoll {
        let span = maxpoll
            .or(minpoll)
            .map(|(_, s)| s)
            .unwrap_or(t.span.clone());
        d.err(
            &span,
            format!(
                "`minpoll` ({}) must not exceed `maxpoll` ({})",
                a.minpoll, a.maxpoll
            ),
        );
    }
    a.iburst = t.bool(d, "iburst").unwrap_or(false);
    if let Some((v, _)) = t.int(d, "port", 1, 65535) {
        a.port = v as u16;
        // The same address on another port is another server (tests, unprivileged setups).
        if let Some(site) = sites
            .associations
            .last_mut()
            .filter(|s| Some(&s.span) == address_span.as_ref())
        {
            site.port = a.port;
        }
    }
    t.finish(d);
    a
}

fn read_interface(d: &mut Diag<'_>, mut t: Tab<'_>, sites: &mut Sites) -> InterfaceConfig {
    let mut i = InterfaceConfig {
        name: String::new(),
        vpn_instance: None,
        receive: true,
        broadcast_server: None,
        broadcast_client: false,
        multicast_server: None,
        multicast_client: None,
    };
    let name_span = t.entry("name").map(|(k, _)| k.span());
    match interface_name(&mut t, d, "name") {
        Some(n) => i.name = n,
        None if name_span.is_none() => {
            d.err(&t.span, "missing required key `name` in [[interface]]")
        }
        None => {}
    }
    i.vpn_instance = vpn_ref(&mut t, d, sites);
    if !i.name.is_empty() {
        let span = name_span.flatten().or(t.span.clone());
        sites
            .interfaces
            .push((i.name.clone(), i.vpn_instance.clone(), span));
    }
    i.receive = t.bool(d, "receive").unwrap_or(true);
    if let Some(mut s) = mode_table(&mut t, d, "broadcast-server") {
        i.broadcast_server = Some(BroadcastServerConfig {
            key_id: key_id(&mut s, d, sites),
            version: version(&mut s, d),
            poll: bcast_poll(&mut s, d),
        });
        s.finish(d);
    }
    i.broadcast_client = t.bool(d, "broadcast-client").unwrap_or(false);
    if let Some(mut s) = mode_table(&mut t, d, "multicast-server") {
        i.multicast_server = Some(MulticastServerConfig {
            group: group(&mut s, d),
            ttl: s
                .int(d, "ttl", 1, 255)
                .map_or(DEFAULT_MULTICAST_TTL, |(v, _)| {
                    narrow(v, DEFAULT_MULTICAST_TTL)
                }),
            key_id: key_id(&mut s, d, sites),
            version: version(&mut s, d),
            poll: bcast_poll(&mut s, d),
        });
        s.finish(d);
    }
    if let Some(mut s) = mode_table(&mut t, d, "multicast-client") {
        i.multicast_client = Some(MulticastClientConfig {
            group: group(&mut s, d),
        });
        s.finish(d);
    }
    t.finish(d);
    i
}

/// A mode switch: `true` (all defaults), `false` (off) or an inline table of options.
fn mode_table<'d>(t: &mut Tab<'d>, d: &mut Diag<'_>, key: &'static str) -> Option<Tab<'d>> {
    let (k, item) = t.entry(key)?;
    if let Some(b) = item.as_bool() {
        return b.then(|| Tab::empty(k.span(), format!("`{key}`")));
    }
    Tab::from_item(d, k.span(), item, format!("`{key}`"))
}

fn bcast_poll(t: &mut Tab<'_>, d: &mut Diag<'_>) -> i8 {
    t.int(d, "poll", 4, 17)
        .map_or(DEFAULT_BCAST_POLL, |(v, _)| narrow(v, DEFAULT_BCAST_POLL))
}

fn group(t: &mut Tab<'_>, d: &mut Diag<'_>) -> IpAddr {
    let Some((s, span)) = t.str(d, "group") else {
        return DEFAULT_MULTICAST_GROUP;
    };
    match s.parse::<IpAddr>() {
        Ok(a) if a.is_multicast() => a,
        _ => {
            d.err(
                &span,
                format!("`group` must be an IPv4 or IPv6 multicast address, got \"{s}\""),
            );
            DEFAULT_MULTICAST_GROUP
        }
    }
}
