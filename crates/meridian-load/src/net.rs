//! The sending sockets: non-blocking UDP, bound to a source address or to the wildcard with
//! a per-request source address (IP_PKTINFO / IPV6_PKTINFO), and ppoll(2) over all of them.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// One sending socket.
#[derive(Debug)]
pub struct Source {
    pub socket: UdpSocket,
}

impl Source {
    /// A non-blocking socket bound to `local` (port 0: an ephemeral port). With `freebind`,
    /// requests may later name any source address that routes back here (IP_FREEBIND).
    pub fn open(local: SocketAddr, freebind: bool) -> io::Result<Self> {
        let socket = UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        if freebind {
            let one: libc::c_int = 1;
            // SAFETY: passes a pointer to a live c_int and its size.
            let ret = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_IP,
                    libc::IP_FREEBIND,
                    &one as *const libc::c_int as *const libc::c_void,
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if ret < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // A deep receive buffer, so that answers wait for us rather than drop while we send.
        let size: libc::c_int = 4 << 20;
        // SAFETY: as above. Failure only leaves the default size.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &size as *const libc::c_int as *const libc::c_void,
                size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        Ok(Self { socket })
    }

    /// Sends `data` to `dest`, from `source` when given (else the bound address).
    /// `Ok(false)`: the socket's send buffer is full (nothing sent).
    pub fn send(&self, data: &[u8], dest: SocketAddr, source: Option<IpAddr>) -> io::Result<bool> {
        let result = match source {
            None => self.socket.send_to(data, dest),
            Some(src) => send_from(&self.socket, data, dest, src),
        };
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            // ICMP errors of earlier packets (port unreachable before the server is up).
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Receives one datagram; `Ok(None)` when none is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.socket.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// sendmsg(2) with a PKTINFO control message naming the source address.
fn send_from(socket: &UdpSocket, data: &[u8], dest: SocketAddr, src: IpAddr) -> io::Result<usize> {
    // SAFETY: every structure is zero-initialised plain data; the pointers in msg point to
    // live locals (storage, iov, control) whose sizes are given; the control buffer is
    // 8-byte aligned and large enough for one in6_pktinfo message.
    unsafe {
        let mut storage: libc::sockaddr_storage = zeroed();
        let name_len = match dest {
            SocketAddr::V4(a) => {
                let sin = &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in);
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6);
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                size_of::<libc::sockaddr_in6>()
            }
        };
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let mut control = [0u64; 8];
        let mut msg: libc::msghdr = zeroed();
        msg.msg_name = &mut storage as *mut _ as *mut libc::c_void;
        msg.msg_namelen = name_len as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        match src {
            IpAddr::V4(s) => {
                msg.msg_controllen = libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as _;
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::IPPROTO_IP;
                (*cmsg).cmsg_type = libc::IP_PKTINFO;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as _;
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from_ne_bytes(s.octets()),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::in_pktinfo, info);
            }
            IpAddr::V6(s) => {
                msg.msg_controllen = libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) as _;
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
                (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as _;
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: s.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::in6_pktinfo, info);
            }
        }
        let n = libc::sendmsg(socket.as_raw_fd(), &msg, 0);
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

/// The wildcard address of `target`'s family.
pub fn wildcard(target: SocketAddr) -> IpAddr {
    match target {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// Waits up to `timeout` for input on any of `sources`; fills `ready` with the indexes of
/// the readable ones.
pub fn poll_readable(
    sources: &[Source],
    fds: &mut Vec<libc::pollfd>,
    timeout: Duration,
    ready: &mut Vec<usize>,
) -> io::Result<()> {
    fds.clear();
    fds.extend(sources.iter().map(|s| libc::pollfd {
        fd: s.socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }));
    let timeout = timeout.min(Duration::from_secs(1));
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: fds is a live, initialised array of fds.len() pollfd entries; ts is a live
    // timespec; no signal mask is passed.
    let n = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    };
    ready.clear();
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(())
        } else {
            Err(e)
        };
    }
    ready.extend(
        fds.iter()
            .enumerate()
            .filter(|(_, p)| p.revents & (libc::POLLIN | libc::POLLERR) != 0)
            .map(|(i, _)| i),
    );
    Ok(())
}
