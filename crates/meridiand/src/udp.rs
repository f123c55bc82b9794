//! UDP sockets as the daemon needs them: non-blocking, kernel receive timestamps
//! (SO_TIMESTAMPNS), the destination address of each datagram (IP_PKTINFO / IPV6_PKTINFO) so
//! replies leave from the address the request arrived on, DSCP marking, and what broadcast
//! and multicast modes need (SO_BROADCAST, group membership, multicast interface, TTL, loop).
//!
//! Only plain socket calls are used (socket, bind, connect, setsockopt, recvmsg, sendmsg), so
//! the daemon runs unchanged under the clknetsim LD_PRELOAD simulator. Batched receive and
//! send (recvmmsg, sendmmsg) for the server sockets are in `udp_batch.rs`.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// One received datagram and what the kernel told us about it.
#[derive(Debug, Clone, Copy)]
pub struct RecvMeta {
    pub len: usize,
    pub source: SocketAddr,
    /// The local address the datagram was sent to (from PKTINFO), if known.
    pub destination: Option<IpAddr>,
    /// Interface index it arrived on, if known.
    pub ifindex: Option<u32>,
    /// Kernel receive timestamp, CLOCK_REALTIME (seconds, nanoseconds), if provided.
    pub timestamp: Option<(i64, u32)>,
}

/// How a socket shares its port with others (see [`UdpSocket::bind_shared`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortShare {
    /// SO_REUSEADDR: next to sockets tied to other devices (VRF instances).
    pub reuse_address: bool,
    /// SO_REUSEPORT: spread over several sockets (server threads).
    pub reuse_port: bool,
}

/// A non-blocking UDP socket.
#[derive(Debug)]
pub struct UdpSocket {
    fd: OwnedFd,
    ipv6: bool,
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// setsockopt with a plain-data structure value.
fn setsockopt_raw<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: passes a pointer to a live, plain-data T and its exact size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value as *const T as *const libc::c_void,
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// Encodes a socket address for the kernel.
pub(crate) fn to_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            sin6.sin6_flowinfo = a.flowinfo();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

pub(crate) fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Reads what the kernel attached to a received datagram into `meta`: the receive timestamp
/// (SO_TIMESTAMPNS) and the destination address and interface (IP_PKTINFO / IPV6_PKTINFO).
///
/// # Safety
/// `msg` must be a header the kernel just filled by recvmsg(2) or recvmmsg(2): its control
/// pointer and length describe a live buffer holding the control messages written.
pub(crate) unsafe fn parse_control(msg: &libc::msghdr, meta: &mut RecvMeta) {
    // SAFETY (for the block): the caller guarantees the control buffer; CMSG_FIRSTHDR and
    // CMSG_NXTHDR stay within msg_controllen, and each payload is read unaligned with the
    // type its (level, type) pair announces.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let hdr = &*cmsg;
            let data = libc::CMSG_DATA(cmsg);
            match (hdr.cmsg_level, hdr.cmsg_type) {
                (libc::SOL_SOCKET, libc::SO_TIMESTAMPNS) => {
                    let ts = std::ptr::read_unaligned(data as *const libc::timespec);
                    meta.timestamp = Some((ts.tv_sec, ts.tv_nsec as u32));
                }
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let info = std::ptr::read_unaligned(data as *const libc::in_pktinfo);
                    meta.destination = Some(IpAddr::V4(Ipv4Addr::from(
                        info.ipi_addr.s_addr.to_ne_bytes(),
                    )));
                    meta.ifindex = Some(info.ipi_ifindex as u32);
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let info = std::ptr::read_unaligned(data as *const libc::in6_pktinfo);
                    meta.destination = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                    meta.ifindex = Some(info.ipi6_ifindex);
                }
                _ => {}
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
}

/// Writes into `control` the control message that makes a datagram leave from the local
/// address `source` (IP_PKTINFO / IPV6_PKTINFO; none when `source` is `None` or of the other
/// family than the socket's); returns the control length to put in the msghdr (0: none).
pub(crate) fn source_control(control: &mut [u64; 8], source: Option<IpAddr>, ipv6: bool) -> usize {
    // SAFETY: a msghdr pointing at `control` (64 bytes, 8-byte aligned) is used only to let
    // CMSG_FIRSTHDR and CMSG_DATA compute positions inside it; one cmsghdr plus an
    // in6_pktinfo (CMSG_SPACE = 40 bytes) fits, and the payload is written unaligned.
    unsafe {
        let mut msg: libc::msghdr = zeroed();
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        let (level, kind, len) = match source {
            Some(IpAddr::V4(_)) if !ipv6 => (
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                size_of::<libc::in_pktinfo>(),
            ),
            Some(IpAddr::V6(_)) if ipv6 => (
                libc::IPPROTO_IPV6,
                libc::IPV6_PKTINFO,
                size_of::<libc::in6_pktinfo>(),
            ),
            _ => return 0,
        };
        let space = libc::CMSG_SPACE(len as u32) as usize;
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = libc::CMSG_LEN(len as u32) as _;
        let data = libc::CMSG_DATA(cmsg);
        match source {
            Some(IpAddr::V4(src)) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from_ne_bytes(src.octets()),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                std::ptr::write_unaligned(data as *mut libc::in_pktinfo, info);
            }
            Some(IpAddr::V6(src)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: src.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                std::ptr::write_unaligned(data as *mut libc::in6_pktinfo, info);
            }
            None => {}
        }
        space
    }
}

impl UdpSocket {
    /// A socket bound to `local` (port 0: an ephemeral port), with receive timestamps and
    /// packet info enabled. IPv6 sockets are IPv6-only.
    pub fn bind(local: SocketAddr) -> io::Result<Self> {
        Self::bind_on_device(local, None)
    }

    /// Like [`UdpSocket::bind`], first tying the socket to `device` when given (any network
    /// device; a VRF device in production), so that even the bind happens in that device's
    /// routing domain.
    pub fn bind_on_device(local: SocketAddr, device: Option<&str>) -> io::Result<Self> {
        Self::bind_shared(local, device, PortShare::default())
    }

    /// Like [`UdpSocket::bind_on_device`], with the port shared as `share` says:
    /// - `reuse_address` (SO_REUSEADDR): the address may be bound again by sockets tied to
    ///   other devices and by one tied to none: the kernel refuses a wildcard socket next to a
    ///   device-bound one on the same port unless both set it. It then delivers a datagram to
    ///   the socket tied to the device it arrived on, else to the untied one.
    /// - `reuse_port` (SO_REUSEPORT): several sockets (of this process's user) share the
    ///   address and the kernel spreads the datagrams over them by a hash of the sender's
    ///   address and port (the server threads).
    pub fn bind_shared(
        local: SocketAddr,
        device: Option<&str>,
        share: PortShare,
    ) -> io::Result<Self> {
        let domain = if local.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        // SAFETY: plain socket(2) call; the result is checked and wrapped at once.
        let raw = cvt(unsafe {
            libc::socket(
                domain,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        })?;
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = Self {
            fd,
            ipv6: local.is_ipv6(),
        };
        let fd = sock.fd.as_raw_fd();
        if sock.ipv6 {
            setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
            setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
        } else {
            setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
        }
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
        if share.reuse_address {
            setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        }
        if share.reuse_port {
            setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
        }
        if let Some(device) = device {
            sock.bind_device(device)?;
        }
        let (storage, len) = to_sockaddr(&local);
        // SAFETY: storage holds a valid address of length len.
        cvt(unsafe { libc::bind(fd, &storage as *const _ as *const libc::sockaddr, len) })?;
        Ok(sock)
    }

    /// Restricts the socket to one peer (the kernel then drops datagrams from others).
    pub fn connect(&self, peer: SocketAddr) -> io::Result<()> {
        let (storage, len) = to_sockaddr(&peer);
        // SAFETY: storage holds a valid address of length len.
        cvt(unsafe {
            libc::connect(
                self.fd.as_raw_fd(),
                &storage as *const _ as *const libc::sockaddr,
                len,
            )
        })
        .map(|_| ())
    }

    /// Binds the socket to a network device (SO_BINDTODEVICE); needs CAP_NET_RAW. Any device
    /// will do (VRF devices in production): the socket then receives only what arrives
    /// through that device (or, for a VRF, its enslaved devices), and its packets use only
    /// routes through it (for a VRF: its routing table).
    pub fn bind_device(&self, device: &str) -> io::Result<()> {
        let name = std::ffi::CString::new(device)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: passes a NUL-terminated string and its length (with the NUL).
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                name.as_ptr() as *const libc::c_void,
                name.as_bytes_with_nul().len() as libc::socklen_t,
            )
        })
        .map(|_| ())
    }

    /// Marks outgoing packets with a DSCP value (0..=63).
    pub fn set_dscp(&self, dscp: u8) -> io::Result<()> {
        let tos = (dscp as libc::c_int) << 2;
        if self.ipv6 {
            setsockopt_int(
                self.fd.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_TCLASS,
                tos,
            )
        } else {
            setsockopt_int(self.fd.as_raw_fd(), libc::IPPROTO_IP, libc::IP_TOS, tos)
        }
    }

    /// IPv4: sets the Don't Fragment bit on every datagram without path MTU discovery
    /// (IP_PMTUDISC_PROBE). NTP replies are far below any MTU; with DF the kernel writes IP
    /// ID 0 (RFC 6864) instead of drawing an ID from its shared generator for each reply.
    /// Nothing to do on IPv6 (no ID without fragmentation).
    pub fn set_dont_fragment(&self) -> io::Result<()> {
        if self.ipv6 {
            return Ok(());
        }
        setsockopt_int(
            self.fd.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        )
    }

    /// Allows sending to broadcast addresses (SO_BROADCAST).
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        setsockopt_int(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BROADCAST,
            on as libc::c_int,
        )
    }

    /// Joins multicast `group` on the interface `ifindex` (IP_ADD_MEMBERSHIP with ip_mreqn /
    /// IPV6_JOIN_GROUP). Joining a group already joined there is not an error.
    pub fn join_multicast(&self, group: IpAddr, ifindex: u32) -> io::Result<()> {
        let r = self.membership(group, ifindex, true);
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Ok(()),
            other => other,
        }
    }

    /// Leaves multicast `group` on the interface `ifindex`.
    pub fn leave_multicast(&self, group: IpAddr, ifindex: u32) -> io::Result<()> {
        self.membership(group, ifindex, false)
    }

    fn membership(&self, group: IpAddr, ifindex: u32, join: bool) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        match group {
            IpAddr::V4(g) if !self.ipv6 => {
                let mreq = libc::ip_mreqn {
                    imr_multiaddr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(g.octets()),
                    },
                    imr_address: libc::in_addr { s_addr: 0 },
                    imr_ifindex: ifindex as libc::c_int,
                };
                let name = if join {
                    libc::IP_ADD_MEMBERSHIP
                } else {
                    libc::IP_DROP_MEMBERSHIP
                };
                setsockopt_raw(fd, libc::IPPROTO_IP, name, &mreq)
            }
            IpAddr::V6(g) if self.ipv6 => {
                let mreq = libc::ipv6_mreq {
                    ipv6mr_multiaddr: libc::in6_addr {
                        s6_addr: g.octets(),
                    },
                    ipv6mr_interface: ifindex,
                };
                let name = if join {
                    libc::IPV6_ADD_MEMBERSHIP
                } else {
                    libc::IPV6_DROP_MEMBERSHIP
                };
                setsockopt_raw(fd, libc::IPPROTO_IPV6, name, &mreq)
            }
            _ => Err(io::Error::from(io::ErrorKind::InvalidInput)),
        }
    }

    /// Sends multicast through the interface `ifindex` (IP_MULTICAST_IF / IPV6_MULTICAST_IF).
    pub fn set_multicast_if(&self, ifindex: u32) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        if self.ipv6 {
            setsockopt_int(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_IF,
                ifindex as libc::c_int,
            )
        } else {
            let mreq = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr { s_addr: 0 },
                imr_address: libc::in_addr { s_addr: 0 },
                imr_ifindex: ifindex as libc::c_int,
            };
            setsockopt_raw(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreq)
        }
    }

    /// TTL (IPv4) or hop limit (IPv6) of outgoing multicast.
    pub fn set_multicast_ttl(&self, ttl: u8) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        if self.ipv6 {
            setsockopt_int(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_HOPS,
                ttl.into(),
            )
        } else {
            setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, ttl.into())
        }
    }

    /// Whether our own multicast comes back to local sockets.
    pub fn set_multicast_loop(&self, on: bool) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        if self.ipv6 {
            setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, on.into())
        } else {
            setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, on.into())
        }
    }

    /// Whether this is an IPv6 socket.
    pub fn is_ipv6(&self) -> bool {
        self.ipv6
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        // SAFETY: zeroed storage is valid; getsockname fills at most len bytes.
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        cvt(unsafe {
            libc::getsockname(
                self.fd.as_raw_fd(),
                &mut storage as *mut _ as *mut libc::sockaddr,
                &mut len,
            )
        })?;
        from_sockaddr(&storage).ok_or_else(|| io::Error::other("unknown address family"))
    }

    /// Receives one datagram; `Ok(None)` when none is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<RecvMeta>> {
        // SAFETY: all structures are zero-initialised plain data, the iovec points into buf,
        // the control buffer is a live local array, and the kernel writes within the lengths.
        unsafe {
            let mut storage: libc::sockaddr_storage = zeroed();
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            let mut control = [0u64; 64];
            let mut msg: libc::msghdr = zeroed();
            msg.msg_name = &mut storage as *mut _ as *mut libc::c_void;
            msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = size_of::<[u64; 64]>() as _;
            let n = libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT);
            if n < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    // A previous send got an ICMP error (connected socket): not fatal.
                    io::ErrorKind::ConnectionRefused => Ok(None),
                    io::ErrorKind::Interrupted => Ok(None),
                    _ => Err(err),
                };
            }
            let source = from_sockaddr(&storage)
                .ok_or_else(|| io::Error::other("unknown address family"))?;
            let mut meta = RecvMeta {
                len: n as usize,
                source,
                destination: None,
                ifindex: None,
                timestamp: None,
            };
            if msg.msg_flags & libc::MSG_TRUNC != 0 {
                // Longer than our buffer: not an NTP packet we want; report a length the
                // parser rejects.
                meta.len = buf.len() + 1;
            }
            parse_control(&msg, &mut meta);
            Ok(Some(meta))
        }
    }

    /// Sends `data` to `dest` (None on a connected socket), from the local address `source`
    /// when given (so a reply leaves from the address the request arrived on).
    pub fn send(
        &self,
        data: &[u8],
        dest: Option<SocketAddr>,
        source: Option<IpAddr>,
    ) -> io::Result<usize> {
        // SAFETY: as in recv: plain data structures, pointers to live locals, lengths given.
        unsafe {
            let mut iov = libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            };
            let mut msg: libc::msghdr = zeroed();
            let (mut storage, len) = match dest {
                Some(d) => to_sockaddr(&d),
                None => (zeroed(), 0),
            };
            if dest.is_some() {
                msg.msg_name = &mut storage as *mut _ as *mut libc::c_void;
                msg.msg_namelen = len;
            }
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            let mut control = [0u64; 8];
            let controllen = source_control(&mut control, source, self.ipv6);
            if controllen > 0 {
                msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
                msg.msg_controllen = controllen as _;
            }
            let n = libc::sendmsg(self.fd.as_raw_fd(), &msg, 0);
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[path = "udp_batch.rs"]
pub mod batch;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_exchange_with_timestamps_and_pktinfo() {
        let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b_addr = b.local_addr().unwrap();
        a.send(b"hello", Some(b_addr), Some("127.0.0.1".parse().unwrap()))
            .unwrap();
        let mut buf = [0u8; 64];
        let mut meta = None;
        for _ in 0..100 {
            meta = b.recv(&mut buf).unwrap();
            if meta.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let meta = meta.expect("datagram arrives");
        assert_eq!(&buf[..meta.len], b"hello");
        assert_eq!(meta.source, a.local_addr().unwrap());
        assert_eq!(meta.destination, Some("127.0.0.1".parse().unwrap()));
        let (secs, _) = meta.timestamp.expect("kernel timestamp");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((secs - now).abs() < 5);
        assert!(b.recv(&mut buf).unwrap().is_none(), "nothing more waiting");
    }

    fn recv_within(s: &UdpSocket, buf: &mut [u8]) -> Option<RecvMeta> {
        for _ in 0..100 {
            if let Some(m) = s.recv(buf).unwrap() {
                return Some(m);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        None
    }

    fn lo_index() -> u32 {
        // SAFETY: if_nametoindex reads a NUL-terminated string.
        unsafe { libc::if_nametoindex(c"lo".as_ptr()) }
    }

    #[test]
    fn multicast_on_loopback_reaches_a_member_only_while_joined() {
        let group: IpAddr = "239.255.77.1".parse().unwrap();
        let rx = UdpSocket::bind("0.0.0.0:0".parse().unwrap()).unwrap();
        let port = rx.local_addr().unwrap().port();
        let tx = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let lo = lo_index();
        tx.set_multicast_if(lo).unwrap();
        tx.set_multicast_ttl(1).unwrap();
        if let Err(e) = rx.join_multicast(group, lo) {
            eprintln!("SKIPPED multicast_on_loopback: cannot join on lo: {e}");
            return;
        }
        rx.join_multicast(group, lo).expect("joining twice is fine");
        let dest = SocketAddr::new(group, port);
        tx.send(b"m1", Some(dest), None).unwrap();
        let mut buf = [0u8; 16];
        let Some(meta) = recv_within(&rx, &mut buf) else {
            eprintln!("SKIPPED multicast_on_loopback: lo does not loop multicast here");
            return;
        };
        assert_eq!(&buf[..meta.len], b"m1");
        assert_eq!(meta.destination, Some(group), "PKTINFO names the group");
        assert_eq!(meta.ifindex, Some(lo));
        rx.leave_multicast(group, lo).unwrap();
        tx.send(b"m2", Some(dest), None).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            rx.recv(&mut buf).unwrap().is_none(),
            "not a member any more"
        );
    }

    #[test]
    fn broadcast_needs_so_broadcast() {
        let tx = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let dest: SocketAddr = "255.255.255.255:9".parse().unwrap();
        let err = tx.send(b"b", Some(dest), None).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES));
        tx.set_broadcast(true).unwrap();
        // Allowed now (it may still fail to route: no broadcast-capable interface here).
        let r = tx.send(b"b", Some(dest), None);
        assert!(r.map_or_else(|e| e.raw_os_error() != Some(libc::EACCES), |_| true));
        let v6 = UdpSocket::bind("[::1]:0".parse().unwrap());
        if let Ok(v6) = v6 {
            v6.set_multicast_ttl(16).unwrap();
            v6.set_multicast_loop(false).unwrap();
            v6.set_multicast_if(lo_index()).unwrap();
            assert!(
                v6.join_multicast("224.0.1.1".parse().unwrap(), 1).is_err(),
                "family"
            );
        }
    }

    /// A wildcard socket and one tied to a device share a port only when both reuse the
    /// address (as the public and the VRF instances do).
    #[test]
    fn device_bound_socket_shares_the_port_with_reuse_address() {
        const REUSE_ADDRESS: PortShare = PortShare {
            reuse_address: true,
            reuse_port: false,
        };
        let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let public = UdpSocket::bind_shared(any, None, REUSE_ADDRESS).unwrap();
        let port = public.local_addr().unwrap().port();
        let same = SocketAddr::new(any.ip(), port);
        match UdpSocket::bind_shared(same, Some("lo"), REUSE_ADDRESS) {
            Ok(s) => assert_eq!(s.local_addr().unwrap().port(), port),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                eprintln!("SKIPPED device_bound_socket_shares_the_port: no CAP_NET_RAW");
                return;
            }
            Err(e) => panic!("shared bind refused: {e}"),
        }
        let plain = UdpSocket::bind_on_device(any, None).unwrap();
        let port = plain.local_addr().unwrap().port();
        let err =
            UdpSocket::bind_shared(SocketAddr::new(any.ip(), port), Some("lo"), REUSE_ADDRESS)
                .expect_err("the first socket did not allow sharing");
        assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
    }

    #[test]
    fn dont_fragment_on_ipv4_server_sockets() {
        let s = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        s.set_dont_fragment().unwrap();
        let mut v: libc::c_int = -1;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most len bytes into the c_int we pass.
        let r = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                &mut v as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        };
        assert_eq!((r, v), (0, libc::IP_PMTUDISC_PROBE));
    }

    /// attacks.md C5: an association's connected socket receives only from its server's address and
    /// port.
    #[test]
    fn ipv6_loopback_and_connect_filter() {
        let Ok(a) = UdpSocket::bind("[::1]:0".parse().unwrap()) else {
            eprintln!("SKIPPED ipv6_loopback_and_connect_filter: no IPv6 loopback");
            return;
        };
        let b = UdpSocket::bind("[::1]:0".parse().unwrap()).unwrap();
        let c = UdpSocket::bind("[::1]:0".parse().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        // From c: filtered out by the connected socket. From a: delivered.
        c.send(b"x", Some(b.local_addr().unwrap()), None).unwrap();
        a.send(b"y", Some(b.local_addr().unwrap()), None).unwrap();
        let mut buf = [0u8; 8];
        let mut got = vec![];
        for _ in 0..50 {
            if let Some(m) = b.recv(&mut buf).unwrap() {
                got.push(buf[..m.len].to_vec());
                assert_eq!(m.destination, Some("::1".parse().unwrap()));
            } else if !got.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(got, vec![b"y".to_vec()]);
        a.set_dscp(48).unwrap();
    }
}
