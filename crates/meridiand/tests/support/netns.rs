//! The test network: a bridge namespace and one namespace per host, built with `ip` and torn down by a drop guard.
//!
//! Layout for `TestNet::new("t", 2)` (names shortened):
//!
//! ```text
//!   mrd-<id>-br:  br0 (bridge, no address) -- p0, p1 (veth ends)
//!   mrd-<id>-h0:  lo, eth0 = peer of p0: 198.18.0.1/24, 2001:2::1/64
//!   mrd-<id>-h1:  lo, eth0 = peer of p1: 198.18.0.2/24, 2001:2::2/64
//! ```
//!
//! Rules kept here: addresses only from 198.18.0.0/15 and 2001:2::/48; no
//! default route in any namespace; nothing created in the root namespace
//! (both ends of each veth pair are created directly inside test namespaces,
//! so interface names never collide with the machine's own); namespace names
//! carry `<pid>-<counter>-<hash of the test name>` so parallel tests and
//! parallel test binaries never collide.

use std::collections::hash_map::DefaultHasher;
use std::ffi::OsStr;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::procs::{Proc, Registry};

/// Prefix of every namespace this harness creates.
pub const NS_PREFIX: &str = "mrd-";

/// `<pid>-<counter>-<hash>`: unique per call within this test binary and
/// across concurrently running test binaries.
pub fn unique_id(test: &str) -> String {
    // The only process-wide state of the harness: a counter for unique names.
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = DefaultHasher::new();
    test.hash(&mut h);
    format!("{}-{n}-{:06x}", std::process::id(), h.finish() & 0xff_ffff)
}

/// Runs `ip ARGS` in the root mount namespace; panics with its stderr on failure.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip`: {e}"));
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Names of all network namespaces currently present (`ip netns list`).
pub fn list_namespaces() -> Vec<String> {
    ip_output(&["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// A test network; dropping it kills every process started through its hosts
/// and deletes its namespaces (also during a panic).
pub struct TestNet {
    id: String,
    bridge_ns: String,
    /// Namespaces created so far, bridge first; filled as they are made so
    /// that a failure halfway through setup is still cleaned up.
    created: Vec<String>,
    hosts: Vec<Host>,
    procs: Registry,
}

/// One host of a [`TestNet`]: a network namespace with `lo` and `eth0`.
#[derive(Debug)]
pub struct Host {
    index: usize,
    ns: String,
    ipv4: Ipv4Addr,
    ipv6: Ipv6Addr,
    procs: Registry,
}

impl TestNet {
    /// Builds a network of `n_hosts` hosts (1..=250) joined by one bridge.
    /// Host `i` gets 198.18.0.(i+1)/24 and 2001:2::(i+1)/64 (no DAD) on
    /// `eth0`, `lo` up, and no default route. Returns once every host's link
    /// is up, its IPv6 address usable and every bridge port forwarding.
    /// Panics (after cleaning up) when any step fails.
    pub fn new(test: &str, n_hosts: usize) -> TestNet {
        assert!(
            (1..=250).contains(&n_hosts),
            "TestNet supports 1..=250 hosts"
        );
        let id = unique_id(test);
        let bridge_ns = format!("{NS_PREFIX}{id}-br");
        let mut net = TestNet {
            id,
            bridge_ns: bridge_ns.clone(),
            created: Vec::new(),
            hosts: Vec::new(),
            procs: Registry::default(),
        };
        ip(&["netns", "add", &bridge_ns]);
        net.created.push(bridge_ns.clone());
        ip(&["-n", &bridge_ns, "link", "set", "lo", "up"]);
        #[rustfmt::skip]
        ip(&["-n", &bridge_ns, "link", "add", "br0", "type", "bridge",
             "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"]);
        ip(&["-n", &bridge_ns, "link", "set", "br0", "up"]);

        for i in 0..n_hosts {
            let ns = format!("{NS_PREFIX}{}-h{i}", net.id);
            ip(&["netns", "add", &ns]);
            net.created.push(ns.clone());
            let port = format!("p{i}");
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            #[rustfmt::skip]
            ip(&["-n", &bridge_ns, "link", "add", &port, "type", "veth",
                 "peer", "name", "eth0", "netns", &ns]);
            ip(&[
                "-n", &bridge_ns, "link", "set", &port, "master", "br0", "up",
            ]);
            let last = u8::try_from(i + 1).expect("host index fits");
            let ipv4 = Ipv4Addr::new(198, 18, 0, last);
            let ipv6 = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, u16::from(last));
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ipv4}/24"),
                "dev",
                "eth0",
            ]);
            #[rustfmt::skip]
            ip(&["-n", &ns, "addr", "add", &format!("{ipv6}/64"), "dev", "eth0", "nodad"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            net.hosts.push(Host {
                index: i,
                ns,
                ipv4,
                ipv6,
                procs: net.procs.clone(),
            });
        }
        let ready = super::wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
            net.is_ready()
        });
        assert!(ready, "test network {} did not come up within 10 s", net.id);
        net
    }

    fn is_ready(&self) -> bool {
        let ports = ip_output(&["-n", &self.bridge_ns, "-o", "link", "show", "master", "br0"]);
        let forwarding = Command::new("bridge")
            .args(["-n", &self.bridge_ns, "link", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let ports_ok = ports.lines().count() == self.hosts.len()
            && forwarding
                .lines()
                .filter(|l| l.contains("state forwarding"))
                .count()
                == self.hosts.len();
        ports_ok
            && self.hosts.iter().all(|h| {
                let link = ip_output(&["-n", &h.ns, "-o", "link", "show", "eth0"]);
                let v6 = ip_output(&["-n", &h.ns, "-o", "-6", "addr", "show", "dev", "eth0"]);
                let v6_line = v6.lines().find(|l| l.contains(&format!("{}/64", h.ipv6)));
                link.contains("state UP")
                    && v6_line.is_some_and(|l| !l.contains("tentative") && !l.contains("dadfailed"))
            })
    }

    /// Adds an extra namespace `mrd-<id>-<suffix>`, off the bridge (a VPN instance, or a
    /// host behind one), with `lo` up; removed with the network. Returns its name.
    pub fn add_namespace(&mut self, suffix: &str) -> String {
        let ns = format!("{NS_PREFIX}{}-{suffix}", self.id);
        ip(&["netns", "add", &ns]);
        self.created.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// Joins namespaces `a` and `b` with a veth pair (`a_if` in `a`, `b_if` in `b`), both
    /// ends up with the given /24 addresses (from 198.18.0.0/15 only).
    pub fn connect(
        &self,
        a: &str,
        a_if: &str,
        a_addr: Ipv4Addr,
        b: &str,
        b_if: &str,
        b_addr: Ipv4Addr,
    ) {
        for addr in [a_addr, b_addr] {
            assert!(
                matches!(addr.octets(), [198, 18 | 19, _, _]),
                "{addr} is outside 198.18.0.0/15"
            );
        }
        ip(&[
            "-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b,
        ]);
        for (ns, dev, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
    }

    /// A [`Host`] handle for any namespace of this network (e.g. one made with
    /// [`TestNet::add_namespace`]); what it spawns is stopped with the network.
    pub fn host_in(&self, ns: &str, ipv4: Ipv4Addr) -> Host {
        assert!(
            self.created.iter().any(|c| c == ns),
            "{ns} is not a namespace of this network"
        );
        Host {
            index: usize::MAX,
            ns: ns.to_owned(),
            ipv4,
            ipv6: Ipv6Addr::UNSPECIFIED,
            procs: self.procs.clone(),
        }
    }

    /// Host `i` (panics when out of range).
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Every namespace of this network, bridge namespace first.
    pub fn namespaces(&self) -> &[String] {
        &self.created
    }

    /// The unique `<pid>-<counter>-<hash>` part of the namespace names.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Processes first (by pid), so that no namespace outlives its deletion.
        self.procs.stop_all();
        for ns in self.created.iter().rev() {
            // Anything still inside a namespace only this test knows about was
            // started by this test (a child of a child): end it by pid.
            for pid in ip_output(&["netns", "pids", ns]).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    eprintln!("TestNet: killing leftover pid {pid} in {ns}");
                    // SAFETY: kill(2) with a pid read from our own namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            let out = Command::new("ip").args(["netns", "del", ns]).output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "TestNet: `ip netns del {ns}` failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => eprintln!("TestNet: cannot run `ip netns del {ns}`: {e}"),
            }
        }
    }
}

impl Host {
    /// The namespace name (usable with `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.ns
    }

    pub fn index(&self) -> usize {
        self.index
    }

    pub fn ipv4(&self) -> Ipv4Addr {
        self.ipv4
    }

    pub fn ipv6(&self) -> Ipv6Addr {
        self.ipv6
    }

    /// The IPv6 address when `v6`, else the IPv4 one.
    pub fn ip(&self, v6: bool) -> IpAddr {
        if v6 {
            self.ipv6.into()
        } else {
            self.ipv4.into()
        }
    }

    /// `ip netns exec NS setpriv --bounding-set=-sys_time --inh-caps=-sys_time
    /// PROGRAM ARGS`: the program runs in this host's namespace and can never
    /// gain CAP_SYS_TIME (it is dropped from the bounding and inheritable
    /// sets, so not even a setuid-root exec gets it back). Stdin is null.
    pub fn command<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .args([
                "setpriv",
                "--bounding-set=-sys_time",
                "--inh-caps=-sys_time",
                "--",
            ])
            .arg(program)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Starts a long-running program in this host (see [`Host::command`]),
    /// stdout and stderr appended to `log`. The process is registered with
    /// the network's guard, which stops it (SIGTERM, then SIGKILL) on drop.
    pub fn spawn<I, S>(&self, program: impl AsRef<OsStr>, args: I, log: &Path) -> Proc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let name = program.as_ref().to_string_lossy().into_owned();
        self.procs.spawn(self.command(program, args), &name, log)
    }

    /// Runs a short program in this host to completion and returns its output.
    pub fn run<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let name = program.as_ref().to_string_lossy().into_owned();
        self.command(program, args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {name} in {}: {e}", self.ns))
    }
}
