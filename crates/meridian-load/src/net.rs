//! The sockets of the load: non-blocking UDP, connected to the target when each has its own
//! source address, or wildcard-bound with a per-request source address (IP_PKTINFO /
//! IPV6_PKTINFO); requests leave in batches (one UDP_SEGMENT send when they are all the same
//! length: the kernel builds one buffer and cuts it into datagrams; else sendmmsg), answers
//! are read in batches (recvmmsg) with the kernel's receive timestamp (SO_TIMESTAMPNS), and
//! an epoll set says which sockets have answers waiting.

use std::cell::Cell;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Most datagrams one sendmmsg or recvmmsg moves.
pub const BATCH: usize = 64;
/// Receive buffer per answer (longer ones are cut; NTP answers are far shorter).
const RECV_LEN: usize = 2048;
/// UDP generic segmentation offload (linux/udp.h; not in the libc crate for glibc).
const UDP_SEGMENT: libc::c_int = 103;

fn setsockopt_int(socket: &UdpSocket, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    // SAFETY: passes a pointer to a live c_int and its size. A failure only leaves the
    // option unset, which each caller tolerates.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// CLOCK_REALTIME in nanoseconds: the clock of the kernel's receive timestamps.
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One sending socket.
#[derive(Debug)]
pub struct Source {
    pub socket: UdpSocket,
    /// Connected to the target: requests carry no address, and the kernel's early demux
    /// finds the socket of an answer without a route lookup.
    connected: bool,
    /// Same-length requests may leave as one segmented send (cleared when the kernel
    /// refuses one: sendmmsg from then on).
    segment: Cell<bool>,
}

impl Source {
    /// A non-blocking socket bound to `local` (port 0: an ephemeral port) and connected to
    /// `target` when given. With `freebind`, requests may later name any source address that
    /// routes back here (IP_FREEBIND).
    pub fn open(local: SocketAddr, freebind: bool, target: Option<SocketAddr>) -> io::Result<Self> {
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
        setsockopt_int(&socket, libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20);
        // Receive timestamps: latency is measured to the answer's arrival, not to when the
        // generator got round to reading it.
        setsockopt_int(&socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1);
        if let Some(target) = target {
            socket.connect(target)?;
        }
        Ok(Self {
            socket,
            connected: target.is_some(),
            segment: Cell::new(true),
        })
    }
}

/// Requests waiting to leave through one socket in one sendmmsg.
pub struct SendBatch {
    data: Vec<[u8; SLOT]>,
    lens: Vec<usize>,
    sources: Vec<Option<IpAddr>>,
}

/// Longest request: the mix's longest datagram.
const SLOT: usize = crate::mix::MAX_DATAGRAM;

impl Default for SendBatch {
    fn default() -> Self {
        Self {
            data: vec![[0; SLOT]; BATCH],
            lens: Vec::with_capacity(BATCH),
            sources: Vec::with_capacity(BATCH),
        }
    }
}

impl SendBatch {
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// The buffer of the next request, to be written and then committed with `push`
    /// (None: the batch is full).
    pub fn next_slot(&mut self) -> Option<&mut [u8; SLOT]> {
        self.data.get_mut(self.lens.len())
    }

    /// Commits the slot written last: `len` bytes, from `source` when given.
    pub fn push(&mut self, len: usize, source: Option<IpAddr>) {
        if self.lens.len() < BATCH {
            self.lens.push(len.min(SLOT));
            self.sources.push(source);
        }
    }

    /// Sends the batch through `src` to `dest` (ignored on a connected socket) and empties
    /// it. Returns (sent, blocked): a request the kernel refused for want of buffer space or
    /// because of an earlier ICMP error counts as blocked (`on_blocked` hears its index in
    /// the batch), and the ones behind it are still tried.
    pub fn send(
        &mut self,
        src: &Source,
        dest: SocketAddr,
        mut on_blocked: impl FnMut(usize),
    ) -> io::Result<(u64, u64)> {
        let n = self.lens.len();
        if src.segment.get() && self.segment_size().is_some() {
            match self.send_segmented(src, dest) {
                Ok(()) => {
                    self.lens.clear();
                    self.sources.clear();
                    return Ok((n as u64, 0));
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock) => {
                    (0..n).for_each(&mut on_blocked);
                    self.lens.clear();
                    self.sources.clear();
                    return Ok((0, n as u64));
                }
                // Not supported here (or an earlier ICMP error): one datagram at a time.
                Err(_) => src.segment.set(false),
            }
        }
        // SAFETY: iovec, mmsghdr and sockaddr_storage are plain data; all-zero is valid.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        let (mut name, name_len) = sockaddr(dest);
        let mut controls = [[0u64; 8]; BATCH];
        for i in 0..n {
            iovs[i].iov_base = self.data[i].as_mut_ptr() as *mut libc::c_void;
            iovs[i].iov_len = self.lens[i];
            let msg = &mut hdrs[i].msg_hdr;
            if !src.connected {
                msg.msg_name = &mut name as *mut libc::sockaddr_storage as *mut libc::c_void;
                msg.msg_namelen = name_len;
            }
            msg.msg_iov = &mut iovs[i];
            msg.msg_iovlen = 1;
            if let Some(ip) = self.sources[i] {
                let len = source_control(&mut controls[i], ip);
                msg.msg_control = controls[i].as_mut_ptr() as *mut libc::c_void;
                msg.msg_controllen = len as _;
            }
        }
        let (mut sent, mut blocked, mut next) = (0, 0, 0);
        while next < n {
            // SAFETY: headers next..n point to live locals and slots of this batch with
            // their lengths; the kernel reads them and writes msg_len only.
            let r = unsafe {
                libc::sendmmsg(
                    src.socket.as_raw_fd(),
                    hdrs[next..n].as_mut_ptr(),
                    (n - next) as libc::c_uint,
                    0,
                )
            };
            if r > 0 {
                sent += r as u64;
                next += r as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted if r < 0 => {}
                io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionRefused => {
                    on_blocked(next);
                    blocked += 1;
                    next += 1;
                }
                _ if r == 0 => next = n,
                _ => return Err(e),
            }
        }
        self.lens.clear();
        self.sources.clear();
        Ok((sent, blocked))
    }
}

impl SendBatch {
    /// The segment size when the batch can leave as one segmented send: two or more
    /// requests, none with its own source address, all of one length but the last (which
    /// may be shorter).
    fn segment_size(&self) -> Option<usize> {
        let (&first, rest) = self.lens.split_first()?;
        let (&last, middle) = rest.split_last()?;
        let fits = first > 0
            && middle.iter().all(|&l| l == first)
            && last <= first
            && self.lens.iter().sum::<usize>() <= 60_000
            && self.sources.iter().all(Option::is_none);
        fits.then_some(first)
    }

    /// One sendmsg of every request of the batch, cut by the kernel into datagrams of
    /// `segment_size` bytes (UDP_SEGMENT).
    fn send_segmented(&mut self, src: &Source, dest: SocketAddr) -> io::Result<()> {
        let size = self.segment_size().unwrap_or(0) as u16;
        // SAFETY: iovec, msghdr and sockaddr_storage are plain data; all-zero is valid.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        for ((iov, slot), &len) in iovs.iter_mut().zip(&mut self.data).zip(&self.lens) {
            iov.iov_base = slot.as_mut_ptr() as *mut libc::c_void;
            iov.iov_len = len;
        }
        let (mut name, name_len) = sockaddr(dest);
        let mut control = [0u64; 4];
        // SAFETY: the msghdr points to live locals (iovs, name, control) with their lengths;
        // CMSG_FIRSTHDR/CMSG_DATA compute positions inside `control` (32 bytes, 8-byte
        // aligned, room for one cmsghdr and a u16); the kernel only reads what we pass.
        let r = unsafe {
            let mut msg: libc::msghdr = zeroed();
            if !src.connected {
                msg.msg_name = &mut name as *mut libc::sockaddr_storage as *mut libc::c_void;
                msg.msg_namelen = name_len;
            }
            msg.msg_iov = iovs.as_mut_ptr();
            msg.msg_iovlen = self.lens.len();
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = libc::CMSG_SPACE(size_of::<u16>() as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_UDP;
            (*cmsg).cmsg_type = UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, size);
            libc::sendmsg(src.socket.as_raw_fd(), &msg, 0)
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// The kernel's form of `addr`.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is valid, and it is large and aligned
    // enough for either address structure written into it below.
    unsafe {
        let mut storage: libc::sockaddr_storage = zeroed();
        let len = match addr {
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
        (storage, len as libc::socklen_t)
    }
}

/// Writes a PKTINFO control message naming the source address `src` into `control`;
/// returns its length.
fn source_control(control: &mut [u64; 8], src: IpAddr) -> usize {
    // SAFETY: a msghdr pointing at `control` (64 bytes, 8-byte aligned) only serves
    // CMSG_FIRSTHDR and CMSG_DATA to compute positions inside it; one cmsghdr and an
    // in6_pktinfo (CMSG_SPACE = 40 bytes) fit; the payload is written unaligned.
    unsafe {
        let mut msg: libc::msghdr = zeroed();
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        let len = match src {
            IpAddr::V4(_) => size_of::<libc::in_pktinfo>(),
            IpAddr::V6(_) => size_of::<libc::in6_pktinfo>(),
        };
        msg.msg_controllen = libc::CMSG_SPACE(len as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_len = libc::CMSG_LEN(len as u32) as _;
        match src {
            IpAddr::V4(s) => {
                (*cmsg).cmsg_level = libc::IPPROTO_IP;
                (*cmsg).cmsg_type = libc::IP_PKTINFO;
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
                (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
                (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: s.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::in6_pktinfo, info);
            }
        }
        msg.msg_controllen as usize
    }
}

/// Answers read from one socket in one recvmmsg.
pub struct RecvBatch {
    bufs: Vec<[u8; RECV_LEN]>,
    controls: Vec<[u64; 16]>,
    /// Per answer of the last call: its length and kernel receive time (CLOCK_REALTIME, ns).
    got: Vec<(usize, Option<u64>)>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self {
            bufs: vec![[0; RECV_LEN]; BATCH],
            controls: vec![[0; 16]; BATCH],
            got: Vec::with_capacity(BATCH),
        }
    }
}

impl RecvBatch {
    /// Reads up to [`BATCH`] answers waiting on `src`; returns how many (0: none).
    pub fn recv(&mut self, src: &Source) -> io::Result<usize> {
        self.got.clear();
        // SAFETY: iovec and mmsghdr are plain data; all-zero is valid.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (i, (buf, control)) in self.bufs.iter_mut().zip(&mut self.controls).enumerate() {
            iovs[i].iov_base = buf.as_mut_ptr() as *mut libc::c_void;
            iovs[i].iov_len = RECV_LEN;
            let msg = &mut hdrs[i].msg_hdr;
            msg.msg_iov = &mut iovs[i];
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = size_of::<[u64; 16]>() as _;
        }
        // SAFETY: BATCH headers pointing to live buffers of this batch with their lengths;
        // the kernel writes within them. No timeout.
        let r = unsafe {
            libc::recvmmsg(
                src.socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        for hdr in &hdrs[..r as usize] {
            // SAFETY: the kernel just filled this header; its control pointer and length
            // describe this slot's control buffer.
            let stamp = unsafe { receive_time(&hdr.msg_hdr) };
            self.got.push(((hdr.msg_len as usize).min(RECV_LEN), stamp));
        }
        Ok(r as usize)
    }

    /// The answers of the last call: bytes and kernel receive time.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Option<u64>)> + '_ {
        self.got
            .iter()
            .zip(&self.bufs)
            .map(|((len, stamp), buf)| (&buf[..*len], *stamp))
    }
}

/// The SO_TIMESTAMPNS time of a received datagram, in ns.
///
/// # Safety
/// `msg` was just filled by recvmsg or recvmmsg; its control fields describe a live buffer.
unsafe fn receive_time(msg: &libc::msghdr) -> Option<u64> {
    // SAFETY: per the caller; CMSG_FIRSTHDR and CMSG_NXTHDR stay within msg_controllen and
    // the timespec is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SO_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::timespec);
                return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
        None
    }
}

/// An epoll set over the sources: which have answers (or errors) waiting.
pub struct Poller {
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Poller {
    pub fn new(sources: &[Source]) -> io::Result<Self> {
        // SAFETY: plain epoll_create1 call; the result is checked and wrapped at once.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        for (i, s) in sources.iter().enumerate() {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: i as u64,
            };
            // SAFETY: registers a live socket descriptor with an event we pass by pointer.
            let r = unsafe {
                libc::epoll_ctl(
                    epoll.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    s.socket.as_raw_fd(),
                    &mut ev,
                )
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let events = vec![libc::epoll_event { events: 0, u64: 0 }; sources.len().max(1)];
        Ok(Self { epoll, events })
    }

    /// Waits up to `timeout` (zero: just looks) for sockets with input; fills `ready` with
    /// their indexes.
    pub fn wait(&mut self, timeout: Duration, ready: &mut Vec<usize>) -> io::Result<()> {
        ready.clear();
        let ms = if timeout.is_zero() {
            0
        } else {
            timeout.as_micros().div_ceil(1000).min(1000) as libc::c_int
        };
        // SAFETY: events is a live array of events.len() entries the kernel fills.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        ready.extend(self.events[..n as usize].iter().map(|e| e.u64 as usize));
        Ok(())
    }
}

/// This process's CPU time so far (user + system), seconds.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed rusage we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The wildcard address of `target`'s family.
pub fn wildcard(target: SocketAddr) -> IpAddr {
    match target {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch through a connected and an unconnected socket reaches a receiver, which reads
    /// it in one batch with kernel timestamps.
    #[test]
    fn batches_there_and_back() {
        let rx = Source::open("127.0.0.1:0".parse().unwrap(), false, None).unwrap();
        let to = rx.socket.local_addr().unwrap();
        let connected = Source::open("127.0.0.1:0".parse().unwrap(), false, Some(to)).unwrap();
        let plain = Source::open("127.0.0.1:0".parse().unwrap(), false, None).unwrap();
        let before = realtime_ns();
        let mut out = SendBatch::default();
        for (k, src) in [&connected, &plain].into_iter().enumerate() {
            for i in 0..3u8 {
                let slot = out.next_slot().unwrap();
                slot[..2].copy_from_slice(&[k as u8, i]);
                out.push(2, None);
            }
            assert_eq!(out.len(), 3);
            assert_eq!(out.send(src, to, |_| panic!()).unwrap(), (3, 0));
            assert!(out.is_empty());
        }
        std::thread::sleep(Duration::from_millis(20));
        let mut poller = Poller::new(std::slice::from_ref(&rx)).unwrap();
        let mut ready = Vec::new();
        poller.wait(Duration::ZERO, &mut ready).unwrap();
        assert_eq!(ready, vec![0]);
        let mut batch = RecvBatch::default();
        assert_eq!(batch.recv(&rx).unwrap(), 6);
        let got: Vec<Vec<u8>> = batch.iter().map(|(d, _)| d.to_vec()).collect();
        assert_eq!(
            got,
            [[0u8, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]].map(|a| a.to_vec())
        );
        let after = realtime_ns();
        for (_, t) in batch.iter() {
            let t = t.expect("kernel timestamp");
            assert!(t >= before - 1_000_000 && t <= after + 1_000_000);
        }
        assert_eq!(batch.recv(&rx).unwrap(), 0);
        poller.wait(Duration::ZERO, &mut ready).unwrap();
        assert!(ready.is_empty());
    }

    /// Same-length requests leave as one segmented send and arrive as separate datagrams;
    /// a shorter last one too; mixed lengths go through sendmmsg.
    #[test]
    fn segmented_send_arrives_as_datagrams() {
        let rx = Source::open("127.0.0.1:0".parse().unwrap(), false, None).unwrap();
        let to = rx.socket.local_addr().unwrap();
        let tx = Source::open("127.0.0.1:0".parse().unwrap(), false, Some(to)).unwrap();
        let mut out = SendBatch::default();
        let lens = [48, 48, 48, 20];
        for (i, &len) in lens.iter().enumerate() {
            out.next_slot().unwrap()[..len].fill(i as u8);
            out.push(len, None);
        }
        assert_eq!(out.segment_size(), Some(48));
        assert_eq!(out.send(&tx, to, |_| panic!()).unwrap(), (4, 0));
        assert!(tx.segment.get(), "the kernel took the segmented send");
        for (i, &len) in [10usize, 48].iter().enumerate() {
            out.next_slot().unwrap()[..len].fill(9 + i as u8);
            out.push(len, None);
        }
        assert_eq!(out.segment_size(), None, "a longer last datagram");
        assert_eq!(out.send(&tx, to, |_| panic!()).unwrap(), (2, 0));
        std::thread::sleep(Duration::from_millis(20));
        let mut batch = RecvBatch::default();
        assert_eq!(batch.recv(&rx).unwrap(), 6);
        let got: Vec<Vec<u8>> = batch.iter().map(|(d, _)| d.to_vec()).collect();
        let want: Vec<Vec<u8>> = [(0u8, 48usize), (1, 48), (2, 48), (3, 20), (9, 10), (10, 48)]
            .iter()
            .map(|&(b, len)| vec![b; len])
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn full_batch_and_cpu_time() {
        let mut out = SendBatch::default();
        for _ in 0..BATCH {
            assert!(out.next_slot().is_some());
            out.push(48, None);
        }
        assert!(out.next_slot().is_none());
        assert!(cpu_seconds() >= 0.0);
    }
}
