//! The control socket: a Unix stream socket on which `meridianctl` writes one JSON request
//! line and reads one JSON answer. Connections are non-blocking and served from the event
//! loop; a client that says nothing within a second is dropped, and a request longer than
//! 4 KiB is refused, so a misbehaving local client cannot stall the daemon.

use crate::requests::RequestServer;
use meridian_proto::report::{ControlAnswer, ControlRequest};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MAX_REQUEST: usize = 4096;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);
const WRITE_TIMEOUT: Duration = Duration::from_millis(200);

pub struct ControlServer {
    server: RequestServer<UnixListener>,
    path: PathBuf,
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
        let server = RequestServer::new(listener, MAX_REQUEST, CLIENT_TIMEOUT, WRITE_TIMEOUT);
        Ok(Self {
            server,
            path: path.to_owned(),
        })
    }

    /// Descriptors to watch for readability.
    pub fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.server.fds()
    }

    /// Answers every complete request line (one JSON `ControlRequest`) with one JSON line.
    pub fn service(&mut self, mut answer: impl FnMut(ControlRequest) -> ControlAnswer) {
        let line = |buf: &[u8]| buf.iter().position(|&b| b == b'\n');
        self.server.service(line, |request| {
            let reply = match serde_json::from_slice::<ControlRequest>(request) {
                Ok(request) => answer(request),
                Err(e) => ControlAnswer::Error {
                    message: format!("bad request: {e}"),
                },
            };
            let mut text = serde_json::to_vec(&reply).unwrap_or_default();
            text.push(b'\n');
            text
        });
    }

    /// True while some connection waits for more input (the loop must come back soon).
    pub fn busy(&self) -> bool {
        self.server.busy()
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
