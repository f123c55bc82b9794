//! The control socket: a Unix stream socket on which `meridianctl` writes one JSON request
//! line and reads one JSON answer. Connections are non-blocking and served from the event
//! loop; a client that says nothing within a second is dropped, and a request longer than
//! 4 KiB is refused, so a misbehaving local client cannot stall the daemon.

use meridian_proto::report::{ControlAnswer, ControlRequest};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MAX_REQUEST: usize = 4096;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);

struct Connection {
    stream: UnixStream,
    buf: Vec<u8>,
    opened: Instant,
}

pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    connections: Vec<Connection>,
}

impl ControlServer {
    /// Binds the socket at `path`, creating its directory and replacing a stale socket.
    pub fn bind(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        // Readable and writable by the owner and its group only.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        Ok(Self {
            listener,
            path: path.to_owned(),
            connections: Vec::new(),
        })
    }

    /// Descriptors to watch for readability.
    pub fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        std::iter::once(self.listener.as_raw_fd())
            .chain(self.connections.iter().map(|c| c.stream.as_raw_fd()))
    }

    /// Accepts new connections, reads what is there, answers complete requests through
    /// `answer`, and drops connections that timed out.
    pub fn service(&mut self, mut answer: impl FnMut(ControlRequest) -> ControlAnswer) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        self.connections.push(Connection {
                            stream,
                            buf: Vec::new(),
                            opened: Instant::now(),
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    crate::warn!("control socket accept: {e}");
                    break;
                }
            }
        }
        self.connections.retain_mut(|conn| {
            let mut chunk = [0u8; 1024];
            loop {
                match conn.stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        conn.buf.extend_from_slice(&chunk[..n]);
                        if conn.buf.len() > MAX_REQUEST {
                            return false;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
            }
            if let Some(end) = conn.buf.iter().position(|&b| b == b'\n') {
                let reply = match serde_json::from_slice::<ControlRequest>(&conn.buf[..end]) {
                    Ok(request) => answer(request),
                    Err(e) => ControlAnswer::Error {
                        message: format!("bad request: {e}"),
                    },
                };
                let mut text = serde_json::to_vec(&reply).unwrap_or_default();
                text.push(b'\n');
                let _ = conn.stream.set_nonblocking(false);
                let _ = conn
                    .stream
                    .set_write_timeout(Some(Duration::from_millis(200)));
                let _ = conn.stream.write_all(&text);
                return false;
            }
            conn.opened.elapsed() < CLIENT_TIMEOUT
        });
    }

    /// True while some connection waits for more input (the loop must come back soon).
    pub fn busy(&self) -> bool {
        !self.connections.is_empty()
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
