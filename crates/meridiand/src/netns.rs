//! Entering a network namespace for a moment: the sockets of a VPN instance are created
//! inside its namespace and keep working there after the thread switches back. Needs
//! CAP_SYS_ADMIN. The daemon is single-threaded, so switching the thread's namespace is safe.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Where `ip netns add NAME` puts a namespace.
pub fn netns_path(name: &str) -> PathBuf {
    if name.starts_with('/') {
        PathBuf::from(name)
    } else {
        Path::new("/run/netns").join(name)
    }
}

/// While alive, the current thread is in another network namespace; dropping it returns.
pub struct NetnsGuard {
    original: File,
}

fn setns(file: &File) -> io::Result<()> {
    // SAFETY: setns(2) on a descriptor we own, for the network namespace type only.
    let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Moves the calling thread into the network namespace at `path`.
pub fn enter(path: &Path) -> io::Result<NetnsGuard> {
    let original = File::open("/proc/thread-self/ns/net")?;
    let target = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    setns(&target)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot enter {}: {e}", path.display())))?;
    Ok(NetnsGuard { original })
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.original) {
            // Staying in the wrong namespace would silently misroute every later socket.
            crate::error!("cannot return to the original network namespace: {e}");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(netns_path("vpn1"), PathBuf::from("/run/netns/vpn1"));
        assert_eq!(
            netns_path("/proc/1/ns/net"),
            PathBuf::from("/proc/1/ns/net")
        );
    }

    #[test]
    fn entering_a_missing_namespace_fails_cleanly() {
        let before = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        assert!(enter(Path::new("/run/netns/meridian-no-such-namespace")).is_err());
        assert_eq!(
            std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
            before
        );
    }
}
