//! Entering a VPN instance's network namespace (`/run/netns/NAME`) before a socket is made.
//!
//! `setns(2)` with CLONE_NEWNET needs CAP_SYS_ADMIN (run as root or grant the capability).
//! It moves only the calling thread; `meridianctl` is single-threaded, and every socket it
//! creates afterwards lives in that namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use crate::error::CtlError;

/// Where `ip netns add NAME` leaves the namespace handle.
pub fn netns_path(name: &str) -> Result<PathBuf, CtlError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(CtlError::usage(format!(
            "`{name}` is not a VPN instance (network namespace) name"
        )));
    }
    Ok(PathBuf::from("/run/netns").join(name))
}

/// Moves this thread into network namespace `name`.
pub fn enter(name: &str) -> Result<(), CtlError> {
    let path = netns_path(name)?;
    let file = File::open(&path).map_err(|e| {
        CtlError::failed(format!(
            "VPN instance {name}: cannot open {}: {e}",
            path.display()
        ))
    })?;
    // SAFETY: setns only reads the descriptor, which `file` keeps open for the call.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        let hint = if e.raw_os_error() == Some(libc::EPERM) {
            " (entering a network namespace needs CAP_SYS_ADMIN)"
        } else {
            ""
        };
        return Err(CtlError::failed(format!(
            "VPN instance {name}: setns failed: {e}{hint}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_run_netns() {
        assert_eq!(
            netns_path("vpn1").unwrap(),
            PathBuf::from("/run/netns/vpn1")
        );
        for bad in ["", ".", "..", "../etc", "a/b"] {
            assert_eq!(netns_path(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn missing_namespace_fails() {
        let err = enter("meridian-test-no-such-namespace").unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(err
            .to_string()
            .contains("/run/netns/meridian-test-no-such-namespace"));
    }
}
