//! Interface names, indexes and IPv4 broadcast addresses of the current network namespace
//! (if_nametoindex(3), getifaddrs(3)), for the broadcast and multicast modes.

use std::ffi::{CStr, CString};
use std::net::Ipv4Addr;

/// Kernel index of the interface `name`, if it exists now.
pub fn index_of(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

/// One IPv4 address of an interface with its broadcast address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Broadcast {
    pub interface: String,
    pub address: Ipv4Addr,
    pub broadcast: Ipv4Addr,
}

/// The subnet broadcast address of `address` with `mask`.
pub fn subnet_broadcast(address: Ipv4Addr, mask: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(address) | !u32::from(mask))
}

/// Every IPv4 address of a broadcast-capable interface that is up, with its broadcast address.
pub fn ipv4_broadcasts() -> Vec<Ipv4Broadcast> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned; it lives until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        let flags = ifa.ifa_flags as libc::c_int;
        let wanted = libc::IFF_UP | libc::IFF_BROADCAST;
        if ifa.ifa_addr.is_null() || ifa.ifa_netmask.is_null() || flags & wanted != wanted {
            continue;
        }
        // SAFETY: ifa_addr is non-null; reading the family of a sockaddr is always valid.
        if i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != libc::AF_INET {
            continue;
        }
        // SAFETY: an AF_INET entry's address and netmask are sockaddr_in. (The broadcast
        // field is not used: without `brd` on the address, glibc reports the address there.)
        let (addr, mask) = unsafe {
            (
                &*(ifa.ifa_addr as *const libc::sockaddr_in),
                &*(ifa.ifa_netmask as *const libc::sockaddr_in),
            )
        };
        let address = Ipv4Addr::from(addr.sin_addr.s_addr.to_ne_bytes());
        let mask = Ipv4Addr::from(mask.sin_addr.s_addr.to_ne_bytes());
        if mask.is_broadcast() {
            continue; // a /32 has no subnet broadcast
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
        out.push(Ipv4Broadcast {
            interface: name.to_string_lossy().into_owned(),
            address,
            broadcast: subnet_broadcast(address, mask),
        });
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_broadcast_from_mask() {
        let b = subnet_broadcast(
            "198.18.0.1".parse().unwrap(),
            "255.255.255.0".parse().unwrap(),
        );
        assert_eq!(b, Ipv4Addr::new(198, 18, 0, 255));
        let b = subnet_broadcast(
            "198.19.3.9".parse().unwrap(),
            "255.254.0.0".parse().unwrap(),
        );
        assert_eq!(b, Ipv4Addr::new(198, 19, 255, 255));
    }

    #[test]
    fn loopback_index_and_no_broadcast_on_lo() {
        assert!(index_of("lo").is_some());
        assert_eq!(index_of("no-such-if0"), None);
        assert_eq!(index_of("bad\0name"), None);
        assert!(
            ipv4_broadcasts().iter().all(|b| b.interface != "lo"),
            "lo has no broadcast address"
        );
    }
}
