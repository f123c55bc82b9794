//! Typed configuration model: what the daemon gets once a file has been read and validated.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Default UDP port of NTP.
pub const DEFAULT_PORT: u16 = 123;
/// Default path of the control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/meridian/control.sock";
/// Default IPv4 DSCP of outgoing NTP packets (Comware 7 `ntp-service dscp`).
pub const DEFAULT_DSCP: u8 = 48;
/// Default and maximum number of dynamic associations (`ntp-service max-dynamic-sessions`).
pub const DEFAULT_MAX_DYNAMIC_SESSIONS: u8 = 100;
/// Default NTP version sent by associations and broadcast/multicast servers.
pub const DEFAULT_VERSION: u8 = 4;
/// Default minimum poll exponent (log2 seconds).
pub const DEFAULT_MINPOLL: i8 = 6;
/// Default maximum poll exponent (log2 seconds).
pub const DEFAULT_MAXPOLL: i8 = 10;
/// Default broadcast/multicast send interval exponent (log2 seconds).
pub const DEFAULT_BCAST_POLL: i8 = 6;
/// Default multicast TTL (hop limit).
pub const DEFAULT_MULTICAST_TTL: u8 = 16;
/// Default NTP multicast group (IANA "NTP.MCAST.NET").
pub const DEFAULT_MULTICAST_GROUP: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 1, 1));
/// Default stratum of the local reference clock.
pub const DEFAULT_LOCAL_STRATUM: u8 = 8;
/// Default step threshold in seconds.
pub const DEFAULT_STEP_THRESHOLD: f64 = 0.128;
/// Default panic threshold in seconds.
pub const DEFAULT_PANIC_THRESHOLD: f64 = 1000.0;

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[service]`: global NTP service settings.
    pub service: ServiceConfig,
    /// `[control]`: the local control socket.
    pub control: ControlConfig,
    /// `[metrics]`: the Prometheus exporter.
    pub metrics: MetricsConfig,
    /// `[clock]`: which clock is disciplined and how.
    pub clock: ClockConfig,
    /// `[local-reference]`: the local clock as a reference source; `None` = not used.
    pub local_reference: Option<LocalReferenceConfig>,
    /// `[[unicast-server]]`, in file order.
    pub unicast_servers: Vec<AssociationConfig>,
    /// `[[unicast-peer]]`, in file order.
    pub unicast_peers: Vec<AssociationConfig>,
    /// `[[interface]]`, in file order.
    pub interfaces: Vec<InterfaceConfig>,
    /// `[vpn-instance.NAME]`, by name.
    pub vpn_instances: BTreeMap<String, VpnInstanceConfig>,
    /// `[authentication]`.
    pub authentication: AuthenticationConfig,
    /// `[access]`: ACL number per access right.
    pub access: AccessConfig,
    /// `[acl.N]`, by ACL number (2000..=2999).
    pub acls: BTreeMap<u32, AclConfig>,
    /// `[rate-limit]`: per-client rate limiting of the server path.
    pub rate_limit: RateLimitSettings,
}

/// Default `[rate-limit]` interval: one request per 8 s on average.
pub const DEFAULT_RATE_INTERVAL: f64 = 8.0;
/// Default `[rate-limit]` burst.
pub const DEFAULT_RATE_BURST: u32 = 8;
/// Default `[rate-limit]` leak: one limited request in 4 answered anyway.
pub const DEFAULT_RATE_LEAK: u32 = 4;
/// Default `[rate-limit]` kod: one in 4 of the other limited requests gets a RATE kiss.
pub const DEFAULT_RATE_KOD: u32 = 4;
/// Default `[rate-limit]` table size (client entries).
pub const DEFAULT_RATE_TABLE_SIZE: u32 = 16384;

/// `[rate-limit]` (meridian addition; chrony `ratelimit`, ntpd `discard`/`restrict limited`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitSettings {
    /// Rate limiting on. Off without a `[rate-limit]` table (as in chrony: a router often
    /// serves many clients behind one NAT address); writing the table turns it on.
    pub enable: bool,
    /// Average seconds between requests allowed per client (default 8).
    pub interval: f64,
    /// Requests a quiet client may send back to back, 1..=1024 (default 8).
    pub burst: u32,
    /// One limited request in `leak` is answered anyway; 0 = never, 2..=1024 (default 4).
    pub leak: u32,
    /// One of the other limited requests in `kod` gets a RATE kiss; 0 = never (default 4).
    pub kod: u32,
    /// Client table entries, 16..=4194304 (default 16384; rounded up to a power of two).
    pub table_size: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enable: false,
            interval: DEFAULT_RATE_INTERVAL,
            burst: DEFAULT_RATE_BURST,
            leak: DEFAULT_RATE_LEAK,
            kod: DEFAULT_RATE_KOD,
            table_size: DEFAULT_RATE_TABLE_SIZE,
        }
    }
}

impl RateLimitSettings {
    /// The core's limiter settings; `None` when rate limiting is off.
    pub fn to_core(&self) -> Option<meridian_proto::ratelimit::RateLimitConfig> {
        self.enable
            .then(|| meridian_proto::ratelimit::RateLimitConfig {
                interval: std::time::Duration::from_secs_f64(self.interval),
                burst: self.burst,
                leak: self.leak,
                kod: self.kod,
                table_size: self.table_size as usize,
            })
    }
}

impl Config {
    /// The access rights of the public network, as the core's policy. An ACL that is
    /// referenced but missing (refused by validation) would permit nobody.
    pub fn access_policy(&self) -> meridian_proto::access::AccessPolicy {
        let acl = |n: Option<u32>| n.map(|n| self.acls.get(&n).cloned().unwrap_or_default());
        meridian_proto::access::AccessPolicy {
            peer: acl(self.access.peer),
            server: acl(self.access.server),
            synchronization: acl(self.access.synchronization),
            query: acl(self.access.query),
        }
    }
}

/// `[service]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// UDP port the NTP sockets bind to (1..=65535, default 123).
    pub port: u16,
    /// Interface whose primary address is the source of NTP messages; `None` = by route.
    pub source_interface: Option<String>,
    /// Maximum number of dynamic associations, 0..=100 (default 100).
    pub max_dynamic_sessions: u8,
    /// DSCP of outgoing NTP packets, 0..=63 (default 48).
    pub dscp: u8,
    /// File where the frequency correction (ppm) is kept across restarts; `None` = none.
    pub drift_file: Option<PathBuf>,
    /// Threads answering client requests beside the main loop, 0..=64 (default 0: the main
    /// loop serves alone).
    pub server_threads: u8,
}

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// Unix socket path for `meridianctl` (default `/run/meridian/control.sock`).
    pub socket: PathBuf,
    /// Answer NTP mode 6 control queries (subject to the `query` right); default true.
    pub mode6: bool,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricsConfig {
    /// Address of the Prometheus text exporter; `None` = exporter off.
    pub listen: Option<SocketAddr>,
}

/// Which clock the daemon drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockDriverKind {
    /// Discipline the kernel clock (needs CAP_SYS_TIME).
    System,
    /// Measure and serve, never adjust the host clock.
    ReadOnly,
    /// A software clock on top of the host clock (tests, simulations).
    Simulated,
}

impl ClockDriverKind {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ClockDriverKind::System => "system",
            ClockDriverKind::ReadOnly => "read-only",
            ClockDriverKind::Simulated => "simulated",
        }
    }
}

/// `[clock]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockConfig {
    /// The clock driver (default system).
    pub driver: ClockDriverKind,
    /// Offsets larger than this (seconds, >= 0) are stepped instead of slewed; default 0.128 s.
    pub step_threshold: f64,
    /// Offsets larger than this (seconds) are refused; 0 = no limit; default 1000 s.
    pub panic_threshold: f64,
    /// Simulated driver only: initial error of the simulated clock, seconds (signed); default 0.
    pub initial_offset: f64,
    /// Simulated driver only: free-running frequency error, ppm (-500..=500); default 0.
    pub frequency_ppm: f64,
}

/// `[local-reference]` (`ntp-service refclock-master`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalReferenceConfig {
    /// The pseudo address 127.127.1.u (default 127.127.1.0).
    pub address: Ipv4Addr,
    /// u of 127.127.1.u, 0..=3 (the "NTP process ID").
    pub unit: u8,
    /// Stratum advertised when synchronised to the local clock, 1..=15 (default 8).
    pub stratum: u8,
}

/// One `[[unicast-server]]` or `[[unicast-peer]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationConfig {
    /// IP address or host name, as written.
    pub address: String,
    /// VPN instance the association lives in; `None` = public network.
    pub vpn_instance: Option<String>,
    /// Key used to authenticate packets to/from this server (1..=4294967295); `None` = no auth.
    pub key_id: Option<u32>,
    /// Prefer this source when otherwise equal.
    pub priority: bool,
    /// Interface whose primary address is the source of packets to this server.
    pub source_interface: Option<String>,
    /// NTP version sent, 1..=4 (default 4).
    pub version: u8,
    /// Minimum poll exponent, log2 seconds, -6..=17 (default 6).
    pub minpoll: i8,
    /// Maximum poll exponent, log2 seconds, -6..=17, >= minpoll (default 10).
    pub maxpoll: i8,
    /// Send a burst of packets at start for quick first synchronisation.
    pub iburst: bool,
    /// UDP port of the server or peer (default 123; tests and unprivileged setups use others).
    pub port: u16,
}

/// One `[[interface]]` (the Comware interface view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// Interface name (1..=15 bytes, as Linux names it).
    pub name: String,
    /// VPN instance the interface belongs to (meridian addition); `None` = public network.
    pub vpn_instance: Option<String>,
    /// Accept NTP messages on this interface (false = `ntp-service in-interface disable`).
    pub receive: bool,
    /// `ntp-service broadcast-server`; `None` = off.
    pub broadcast_server: Option<BroadcastServerConfig>,
    /// `ntp-service broadcast-client`.
    pub broadcast_client: bool,
    /// `ntp-service multicast-server`; `None` = off.
    pub multicast_server: Option<MulticastServerConfig>,
    /// `ntp-service multicast-client`; `None` = off.
    pub multicast_client: Option<MulticastClientConfig>,
}

/// `broadcast-server = { key-id, version, poll }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BroadcastServerConfig {
    /// Key that signs the broadcasts; `None` = unauthenticated.
    pub key_id: Option<u32>,
    /// NTP version sent, 1..=4 (default 4).
    pub version: u8,
    /// Send interval exponent, log2 seconds, 4..=17 (default 6).
    pub poll: i8,
}

/// `multicast-server = { group, ttl, key-id, version, poll }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MulticastServerConfig {
    /// Destination group (IPv4 or IPv6 multicast; default 224.0.1.1).
    pub group: IpAddr,
    /// TTL / hop limit, 1..=255 (default 16).
    pub ttl: u8,
    /// Key that signs the messages; `None` = unauthenticated.
    pub key_id: Option<u32>,
    /// NTP version sent, 1..=4 (default 4).
    pub version: u8,
    /// Send interval exponent, log2 seconds, 4..=17 (default 6).
    pub poll: i8,
}

/// `multicast-client = { group }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MulticastClientConfig {
    /// Group joined on this interface (default 224.0.1.1).
    pub group: IpAddr,
}

/// How a VPN instance is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VpnBinding {
    /// A network namespace, `/run/netns/NAME`.
    Netns(String),
    /// A VRF device sockets are bound to (SO_BINDTODEVICE).
    Vrf(String),
}

/// `[vpn-instance.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnInstanceConfig {
    /// Namespace or VRF device (exactly one of `netns` / `vrf`).
    pub binding: VpnBinding,
    /// Answer NTP requests that arrive in this instance (default true).
    pub serve: bool,
}

/// MAC algorithm of a symmetric key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// MD5 digest (RFC 5905), 16-byte MAC.
    Md5,
    /// SHA-1 digest, 20-byte MAC.
    Sha1,
    /// SHA-256 digest truncated to 20 bytes in the MAC field.
    Sha256,
    /// AES-128-CMAC (RFC 8573), 16-byte key, 16-byte MAC.
    Aes128Cmac,
    /// AES-256-CMAC, 32-byte key, 16-byte MAC.
    Aes256Cmac,
}

impl KeyAlgorithm {
    /// Parse the configuration spelling (case-insensitive).
    pub fn from_name(name: &str) -> Option<KeyAlgorithm> {
        match name.to_ascii_lowercase().as_str() {
            "md5" => Some(KeyAlgorithm::Md5),
            "sha1" => Some(KeyAlgorithm::Sha1),
            "sha256" => Some(KeyAlgorithm::Sha256),
            "aes128-cmac" | "aes128cmac" | "aes128" => Some(KeyAlgorithm::Aes128Cmac),
            "aes256-cmac" | "aes256cmac" | "aes256" => Some(KeyAlgorithm::Aes256Cmac),
            _ => None,
        }
    }

    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Md5 => "md5",
            KeyAlgorithm::Sha1 => "sha1",
            KeyAlgorithm::Sha256 => "sha256",
            KeyAlgorithm::Aes128Cmac => "aes128-cmac",
            KeyAlgorithm::Aes256Cmac => "aes256-cmac",
        }
    }
}

/// A symmetric authentication key. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey {
    /// Key identifier, 1..=4294967295.
    pub id: u32,
    /// MAC algorithm.
    pub algorithm: KeyAlgorithm,
    /// Secret bytes (1..=64; exactly 16 for aes128-cmac, 32 for aes256-cmac).
    pub secret: Vec<u8>,
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthKey")
            .field("id", &self.id)
            .field("algorithm", &self.algorithm)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .finish()
    }
}

/// `[authentication]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthenticationConfig {
    /// `ntp-service authentication enable` (default false).
    pub enable: bool,
    /// Keys file (`ID TYPE SECRET` lines), resolved against the config file's directory.
    pub keys_file: Option<PathBuf>,
    /// All known keys: inline ones, plus the keys file's when read by [`super::load`].
    pub keys: Vec<AuthKey>,
    /// Trusted key ids (`ntp-service reliable authentication-keyid`).
    pub trusted: Vec<u32>,
}

impl AuthenticationConfig {
    /// The key with this id, if any.
    pub fn key(&self, id: u32) -> Option<&AuthKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}

/// `[access]`: ACL number for each right; `None` = right not configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccessConfig {
    /// Full access (synchronise to us, be synchronised by us, control query).
    pub peer: Option<u32>,
    /// Time service and control query.
    pub server: Option<u32>,
    /// Time service only.
    pub synchronization: Option<u32>,
    /// Control query only.
    pub query: Option<u32>,
}

/// `[acl.N]`: a basic ACL; ordered rules, first match wins. The types (and the matcher)
/// belong to the protocol core, which owns access decisions.
pub use meridian_proto::access::Acl as AclConfig;
pub use meridian_proto::access::{AclAction, AclRule, AclSource, IpPrefix};

/// Keep the top `len` bits of a `width`-bit value.
pub(crate) fn mask_bits(value: u128, width: u32, len: u8) -> u128 {
    let len = u32::from(len).min(width);
    if len == 0 {
        return 0;
    }
    let shift = width - len;
    (value >> shift) << shift
}
