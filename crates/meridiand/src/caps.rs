//! Dropping privileges once the daemon is set up: of the Linux capabilities it was started
//! with, it keeps only those its configuration still needs while running (the clock for the
//! `system` driver, a low port to rebind on reload, entering VPN namespaces and binding to VRF
//! devices), and removes every other one from its effective, permitted and inheritable sets.

use std::io;

pub const CAP_NET_BIND_SERVICE: u32 = 10;
pub const CAP_NET_RAW: u32 = 13;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_SYS_TIME: u32 = 25;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// What the running daemon needs, given its configuration.
pub fn needed(system_clock: bool, port: u16, netns: bool, vrf: bool) -> Vec<u32> {
    let mut keep = Vec::new();
    if system_clock {
        keep.push(CAP_SYS_TIME);
    }
    if port < 1024 {
        keep.push(CAP_NET_BIND_SERVICE);
    }
    if netns {
        keep.push(CAP_SYS_ADMIN);
    }
    if vrf {
        keep.push(CAP_NET_RAW);
    }
    keep
}

/// The two 32-bit words of a capability set holding exactly `caps`.
fn mask(caps: &[u32]) -> [u32; 2] {
    let mut words = [0u32; 2];
    for &c in caps.iter().filter(|&&c| c < 64) {
        words[(c / 32) as usize] |= 1 << (c % 32);
    }
    words
}

fn capget() -> io::Result<[Data; 2]> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget(2) with a version-3 header and room for two data words.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(data)
}

/// Keeps only `keep` (where the process has them at all) and drops every other capability.
/// Returns the capabilities kept.
pub fn drop_all_but(keep: &[u32]) -> io::Result<Vec<u32>> {
    let current = capget()?;
    let wanted = mask(keep);
    let mut data = [Data::default(); 2];
    for i in 0..2 {
        let permitted = current[i].permitted & wanted[i];
        data[i] = Data {
            effective: permitted,
            permitted,
            inheritable: 0,
        };
    }
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    // SAFETY: capset(2) on the calling thread with a version-3 header and two data words; it
    // can only lower what we hold.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(keep
        .iter()
        .copied()
        .filter(|&c| c < 64 && data[(c / 32) as usize].permitted & (1 << (c % 32)) != 0)
        .collect())
}

/// Names for logs.
pub fn name(cap: u32) -> &'static str {
    match cap {
        CAP_NET_BIND_SERVICE => "CAP_NET_BIND_SERVICE",
        CAP_NET_RAW => "CAP_NET_RAW",
        CAP_SYS_ADMIN => "CAP_SYS_ADMIN",
        CAP_SYS_TIME => "CAP_SYS_TIME",
        _ => "CAP_?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_configuration_needs() {
        assert_eq!(needed(false, 11123, false, false), Vec::<u32>::new());
        assert_eq!(
            needed(true, 123, false, false),
            vec![CAP_SYS_TIME, CAP_NET_BIND_SERVICE]
        );
        assert_eq!(
            needed(false, 123, true, true),
            vec![CAP_NET_BIND_SERVICE, CAP_SYS_ADMIN, CAP_NET_RAW]
        );
    }

    #[test]
    fn masks() {
        assert_eq!(mask(&[CAP_SYS_TIME]), [1 << 25, 0]);
        assert_eq!(
            mask(&[CAP_NET_BIND_SERVICE, CAP_SYS_ADMIN]),
            [(1 << 10) | (1 << 21), 0]
        );
        assert_eq!(mask(&[40]), [0, 1 << 8]);
    }

    #[test]
    fn capget_reads_this_process() {
        // Reading is always allowed; the result is consistent (effective within permitted).
        let d = capget().expect("capget");
        for w in d {
            assert_eq!(w.effective & !w.permitted, 0);
        }
    }
}
