//! Small request/answer servers served from the event loop (the control socket and the
//! metrics listener): non-blocking accept and reads, a bound on a request's size and on how
//! long a client may take to send it, one answer per connection, then close. A slow or
//! misbehaving local client can therefore never stall the daemon.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// A listening socket the server accepts from.
pub trait Listener: AsRawFd {
    type Stream: Read + Write + AsRawFd;
    fn accept_stream(&self) -> io::Result<Self::Stream>;
    fn set_stream_mode(
        stream: &Self::Stream,
        nonblocking: bool,
        write_timeout: Duration,
    ) -> io::Result<()>;
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    fn accept_stream(&self) -> io::Result<UnixStream> {
        self.accept().map(|(s, _)| s)
    }
    fn set_stream_mode(
        stream: &UnixStream,
        nonblocking: bool,
        write_timeout: Duration,
    ) -> io::Result<()> {
        stream.set_nonblocking(nonblocking)?;
        stream.set_write_timeout(Some(write_timeout))
    }
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    fn accept_stream(&self) -> io::Result<TcpStream> {
        self.accept().map(|(s, _)| s)
    }
    fn set_stream_mode(
        stream: &TcpStream,
        nonblocking: bool,
        write_timeout: Duration,
    ) -> io::Result<()> {
        stream.set_nonblocking(nonblocking)?;
        stream.set_write_timeout(Some(write_timeout))
    }
}

struct Connection<S> {
    stream: S,
    buf: Vec<u8>,
    opened: Instant,
}

/// The connections of one listener.
pub struct RequestServer<L: Listener> {
    pub listener: L,
    connections: Vec<Connection<L::Stream>>,
    max_request: usize,
    client_timeout: Duration,
    write_timeout: Duration,
}

impl<L: Listener> RequestServer<L> {
    /// `listener` must already be non-blocking.
    pub fn new(
        listener: L,
        max_request: usize,
        client_timeout: Duration,
        write_timeout: Duration,
    ) -> Self {
        Self {
            listener,
            connections: Vec::new(),
            max_request,
            client_timeout,
            write_timeout,
        }
    }

    /// Descriptors to watch for readability.
    pub fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        std::iter::once(self.listener.as_raw_fd())
            .chain(self.connections.iter().map(|c| c.stream.as_raw_fd()))
    }

    /// True while some connection waits for more input (the loop must come back soon).
    pub fn busy(&self) -> bool {
        !self.connections.is_empty()
    }

    /// Accepts new connections, reads what is there and, for every request that
    /// `complete` finds whole (it returns the request's length), writes `answer(request)` and
    /// closes. Connections over the size bound or the time bound are dropped.
    pub fn service(
        &mut self,
        complete: impl Fn(&[u8]) -> Option<usize>,
        mut answer: impl FnMut(&[u8]) -> Vec<u8>,
    ) {
        loop {
            match self.listener.accept_stream() {
                Ok(stream) => {
                    if L::set_stream_mode(&stream, true, self.write_timeout).is_ok() {
                        self.connections.push(Connection {
                            stream,
                            buf: Vec::new(),
                            opened: Instant::now(),
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    crate::debug!("accept: {e}");
                    break;
                }
            }
        }
        let (max, timeout, write_timeout) =
            (self.max_request, self.client_timeout, self.write_timeout);
        self.connections.retain_mut(|conn| {
            let mut chunk = [0u8; 2048];
            loop {
                match conn.stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        conn.buf.extend_from_slice(&chunk[..n]);
                        if conn.buf.len() > max {
                            return false;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
            }
            if let Some(end) = complete(&conn.buf) {
                let reply = answer(&conn.buf[..end]);
                let _ = L::set_stream_mode(&conn.stream, false, write_timeout);
                let _ = conn.stream.write_all(&reply);
                return false;
            }
            conn.opened.elapsed() < timeout
        });
    }
}
