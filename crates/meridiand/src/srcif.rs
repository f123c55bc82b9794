//! Source interfaces (`source-interface`): reading the addresses and state of one interface
//! of the current network namespace (getifaddrs(3)) and choosing the local address a client
//! association's socket binds to. The choice is a pure function of what was read, so it is
//! tested without touching the network.

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What getifaddrs(3) reports about one interface, addresses in the kernel's order (for IPv4
/// the primary address of a subnet comes before its secondaries).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceState {
    /// IFF_UP and IFF_RUNNING: administratively up with a carrier.
    pub up: bool,
    pub addresses: Vec<IpAddr>,
}

/// The address to bind a socket towards a server of family `ipv6` to, given the state of the
/// source interface (`None`: no such interface). `None` as the answer means: bind to the
/// unspecified address and let the routing table pick the outgoing interface's address.
///
/// The interface must be up; the first address of the family is its primary one. IPv6
/// link-local addresses are skipped (they need a scope and cannot reach a global server),
/// and so are unspecified, loopback-unusable or multicast entries.
pub fn choose_source(ipv6: bool, state: Option<&InterfaceState>) -> Option<IpAddr> {
    let state = state.filter(|s| s.up)?;
    state.addresses.iter().copied().find(|a| match a {
        IpAddr::V4(v4) => !ipv6 && !v4.is_unspecified() && !v4.is_multicast(),
        IpAddr::V6(v6) => ipv6 && !v6.is_unspecified() && !v6.is_multicast() && !link_local(v6),
    })
}

fn link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// One pass over getifaddrs(3): `visit(name, flags, address)` for every entry with an IPv4
/// or IPv6 address; entries without one report `None` (they still carry the flags).
fn each_entry(mut visit: impl FnMut(&str, libc::c_int, Option<IpAddr>)) {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned; it lives until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }.to_string_lossy();
        let address = if ifa.ifa_addr.is_null() {
            None
        } else {
            // SAFETY: ifa_addr is non-null; the family tells which sockaddr it is.
            unsafe {
                match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        Some(IpAddr::V4(Ipv4Addr::from(
                            sin.sin_addr.s_addr.to_ne_bytes(),
                        )))
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
                    }
                    _ => None,
                }
            }
        };
        visit(&name, ifa.ifa_flags as libc::c_int, address);
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
}

/// The state of interface `name` in the current network namespace; `None` if it does not
/// exist.
pub fn interface_state(name: &str) -> Option<InterfaceState> {
    let mut found: Option<InterfaceState> = None;
    each_entry(|n, flags, address| {
        if n != name {
            return;
        }
        let state = found.get_or_insert_with(InterfaceState::default);
        let wanted = libc::IFF_UP | libc::IFF_RUNNING;
        state.up = flags & wanted == wanted;
        state.addresses.extend(address);
    });
    found
}

/// Every address configured in the current network namespace (any interface, up or not).
pub fn all_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    each_entry(|_, _, address| out.extend(address));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(up: bool, addrs: &[&str]) -> InterfaceState {
        InterfaceState {
            up,
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn primary_address_of_the_server_family() {
        let s = state(
            true,
            &[
                "fe80::1",
                "198.18.5.1",
                "2001:2::5",
                "198.18.5.2",
                "2001:2::6",
            ],
        );
        assert_eq!(choose_source(false, Some(&s)), ip("198.18.5.1"));
        assert_eq!(choose_source(true, Some(&s)), ip("2001:2::5"));
    }

    #[test]
    fn down_missing_or_without_address_falls_back_to_the_routing_table() {
        assert_eq!(choose_source(false, None), None);
        let down = state(false, &["198.18.5.1", "2001:2::5"]);
        assert_eq!(choose_source(false, Some(&down)), None);
        assert_eq!(choose_source(true, Some(&down)), None);
        let v4_only = state(true, &["198.18.5.1"]);
        assert_eq!(choose_source(true, Some(&v4_only)), None);
        let link_local_only = state(true, &["fe80::1", "febf::2"]);
        assert_eq!(choose_source(true, Some(&link_local_only)), None);
        assert_eq!(choose_source(false, Some(&state(true, &[]))), None);
    }

    #[test]
    fn reads_the_loopback_interface() {
        let lo = interface_state("lo").expect("lo exists");
        assert!(lo.up);
        assert_eq!(choose_source(false, Some(&lo)), ip("127.0.0.1"));
        assert!(all_addresses().contains(&"127.0.0.1".parse().unwrap()));
        assert_eq!(interface_state("no-such-if0"), None);
    }
}
