//! Batched datagram I/O for the server sockets: [`RecvBatch`] reads up to [`BATCH`] waiting
//! datagrams with one recvmmsg(2), each with its own source address, receive timestamp and
//! destination address (what [`UdpSocket::recv`] gives one datagram at a time); [`SendBatch`]
//! sends queued replies with one sendmmsg(2), each from its own source address.
//!
//! clknetsim (the simulator the main loop must keep running under) intercepts recvmmsg but
//! not sendmmsg: the main loop receives in batches and sends with sendmsg; only the server
//! threads, which never run under the simulator, send in batches too.

use super::{from_sockaddr, parse_control, source_control, to_sockaddr, RecvMeta, UdpSocket};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

/// Most datagrams moved by one system call.
pub const BATCH: usize = 32;
/// Control buffer per datagram, in u64 words (256 bytes): a timestamp and a PKTINFO message
/// take 72 bytes; the rest is room for what a simulator adds (clknetsim's SCM_TIMESTAMPING).
const CONTROL_WORDS: usize = 32;

/// Receive buffers for up to [`BATCH`] datagrams, reused from call to call.
pub struct RecvBatch {
    capacity: usize,
    buf_len: usize,
    /// `capacity` buffers of `buf_len` bytes, one after the other.
    bufs: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    controls: Vec<[u64; CONTROL_WORDS]>,
    iovs: Vec<libc::iovec>,
    /// One header per slot, pointing into `bufs` (through `iovs`), `names` and `controls`:
    /// set up once, as these heap buffers never grow or move after [`RecvBatch::new`].
    hdrs: Vec<libc::mmsghdr>,
    /// Headers the kernel filled in the last call (their lengths to be reset).
    used: usize,
    /// What the last [`RecvBatch::recv`] received, by slot (`None`: an address family we
    /// do not know, skipped).
    metas: Vec<Option<RecvMeta>>,
}

// SAFETY: the raw pointers in `iovs` and `hdrs` point only into heap buffers this batch owns
// and never reallocates; they move with it to another thread, and nothing else holds them.
unsafe impl Send for RecvBatch {}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("capacity", &self.capacity)
            .field("received", &self.metas.len())
            .finish()
    }
}

const NAME_LEN: libc::socklen_t = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
const CONTROL_LEN: usize = size_of::<[u64; CONTROL_WORDS]>();

impl RecvBatch {
    /// Room for `capacity` datagrams (1..=[`BATCH`]) of up to `buf_len` bytes each; a longer
    /// datagram is reported with `len` = `buf_len` + 1, as [`UdpSocket::recv`] does.
    pub fn new(capacity: usize, buf_len: usize) -> Self {
        let capacity = capacity.clamp(1, BATCH);
        let mut batch = Self {
            capacity,
            buf_len,
            bufs: vec![0; capacity * buf_len],
            // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
            names: vec![unsafe { zeroed() }; capacity],
            controls: vec![[0; CONTROL_WORDS]; capacity],
            // SAFETY: iovec and mmsghdr are plain data; all-zero is a valid value.
            iovs: vec![unsafe { zeroed() }; capacity],
            // SAFETY: as above.
            hdrs: vec![unsafe { zeroed() }; capacity],
            used: capacity,
            metas: Vec::with_capacity(capacity),
        };
        let bufs = batch.bufs.chunks_exact_mut(buf_len);
        let slots = bufs.zip(&mut batch.names).zip(&mut batch.controls);
        for (((buf, name), control), (iov, hdr)) in
            slots.zip(batch.iovs.iter_mut().zip(&mut batch.hdrs))
        {
            iov.iov_base = buf.as_mut_ptr() as *mut libc::c_void;
            iov.iov_len = buf.len();
            let msg = &mut hdr.msg_hdr;
            msg.msg_name = name as *mut libc::sockaddr_storage as *mut libc::c_void;
            msg.msg_iov = iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        }
        batch
    }

    /// How many datagrams one call may receive.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Receives what is waiting on `socket`, up to the capacity, without blocking; returns
    /// how many datagrams arrived (0: none waiting). Fewer than the capacity: the socket
    /// was empty at the time of the call.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.metas.clear();
        // The kernel rewrote the lengths of the headers it filled (one more, to be safe).
        let touched = (self.used + 1).min(self.capacity);
        for hdr in &mut self.hdrs[..touched] {
            hdr.msg_hdr.msg_namelen = NAME_LEN;
            hdr.msg_hdr.msg_controllen = CONTROL_LEN as _;
            hdr.msg_hdr.msg_flags = 0;
            hdr.msg_len = 0;
        }
        self.used = 0;
        // SAFETY: the headers point to live buffers of this batch with their lengths (see
        // `new`), `capacity` of them; the kernel writes within those lengths. No timeout.
        let r = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                self.capacity as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        let received = (r as usize).min(self.capacity);
        self.used = received;
        for (hdr, name) in self.hdrs[..received].iter().zip(&self.names) {
            let meta = from_sockaddr(name).map(|source| {
                let mut meta = RecvMeta {
                    len: hdr.msg_len as usize,
                    source,
                    destination: None,
                    ifindex: None,
                    timestamp: None,
                };
                if hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    meta.len = self.buf_len + 1;
                }
                // SAFETY: the kernel just filled this header by recvmmsg; its control
                // pointer and (updated) length describe this slot's live control buffer.
                unsafe { parse_control(&hdr.msg_hdr, &mut meta) };
                meta
            });
            self.metas.push(meta);
        }
        Ok(received)
    }

    /// The datagrams of the last [`RecvBatch::recv`], in arrival order: the bytes (at most
    /// the buffer length; `meta.len` tells a truncated one) and what the kernel said.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &RecvMeta)> + '_ {
        self.metas
            .iter()
            .zip(self.bufs.chunks_exact(self.buf_len))
            .filter_map(|(meta, buf)| {
                let meta = meta.as_ref()?;
                Some((&buf[..meta.len.min(buf.len())], meta))
            })
    }
}

/// Datagrams queued for one [`SendBatch::flush`].
pub struct SendBatch {
    capacity: usize,
    slot_len: usize,
    /// `capacity` slots of `slot_len` bytes.
    data: Vec<u8>,
    queued: Vec<Queued>,
}

#[derive(Clone, Copy)]
struct Queued {
    len: usize,
    dest: SocketAddr,
    source: Option<IpAddr>,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("capacity", &self.capacity)
            .field("queued", &self.queued.len())
            .finish()
    }
}

impl SendBatch {
    /// Room for `capacity` datagrams (1..=[`BATCH`]) of up to `slot_len` bytes each.
    pub fn new(capacity: usize, slot_len: usize) -> Self {
        let capacity = capacity.clamp(1, BATCH);
        Self {
            capacity,
            slot_len,
            data: vec![0; capacity * slot_len],
            queued: Vec::with_capacity(capacity),
        }
    }

    pub fn is_full(&self) -> bool {
        self.queued.len() == self.capacity
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Queues `data` for `dest`, to leave from `source` when given. Returns false (nothing
    /// queued) when the batch is full or `data` is longer than a slot.
    pub fn push(&mut self, data: &[u8], dest: SocketAddr, source: Option<IpAddr>) -> bool {
        if self.is_full() || data.len() > self.slot_len {
            return false;
        }
        let at = self.queued.len() * self.slot_len;
        self.data[at..at + data.len()].copy_from_slice(data);
        self.queued.push(Queued {
            len: data.len(),
            dest,
            source,
        });
        true
    }

    /// Sends every queued datagram through `socket` (one sendmmsg while the kernel takes
    /// them all) and empties the batch. Returns how many were sent; `on_error` hears of each
    /// datagram that was not, with its destination.
    pub fn flush(
        &mut self,
        socket: &UdpSocket,
        mut on_error: impl FnMut(SocketAddr, io::Error),
    ) -> usize {
        let n = self.queued.len();
        if n == 0 {
            return 0;
        }
        // SAFETY: iovec, mmsghdr and sockaddr_storage are plain data; all-zero is valid.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut names: [(libc::sockaddr_storage, libc::socklen_t); BATCH] = unsafe { zeroed() };
        let mut controls = [[0u64; 8]; BATCH];
        let slots = self.data.chunks_exact_mut(self.slot_len).zip(&self.queued);
        let per_message = iovs
            .iter_mut()
            .zip(&mut hdrs)
            .zip(&mut names)
            .zip(&mut controls);
        for ((slot, q), (((iov, hdr), name), control)) in slots.zip(per_message) {
            iov.iov_base = slot.as_mut_ptr() as *mut libc::c_void;
            iov.iov_len = q.len;
            *name = to_sockaddr(&q.dest);
            let msg = &mut hdr.msg_hdr;
            msg.msg_name = &mut name.0 as *mut libc::sockaddr_storage as *mut libc::c_void;
            msg.msg_namelen = name.1;
            msg.msg_iov = iov;
            msg.msg_iovlen = 1;
            let controllen = source_control(control, q.source, socket.is_ipv6());
            if controllen > 0 {
                msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
                msg.msg_controllen = controllen as _;
            }
        }
        let mut sent = 0;
        let mut next = 0;
        while next < n {
            // SAFETY: headers next..n point to live locals and slots of this batch, with
            // their lengths; the kernel only reads them (and writes msg_len).
            let r = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    hdrs[next..n].as_mut_ptr(),
                    (n - next) as libc::c_uint,
                    0,
                )
            };
            if r > 0 {
                sent += r as usize;
                next += r as usize;
            } else {
                // The message at `next` failed (r < 0 carries its error): skip it.
                let err = if r < 0 {
                    io::Error::last_os_error()
                } else {
                    io::Error::other("sendmmsg sent nothing")
                };
                if err.kind() != io::ErrorKind::Interrupted {
                    on_error(self.queued[next].dest, err);
                    next += 1;
                }
            }
        }
        self.queued.clear();
        sent
    }
}

#[cfg(test)]
#[path = "udp_batch_tests.rs"]
mod tests;
