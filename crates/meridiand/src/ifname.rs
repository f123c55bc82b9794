//! Interface index → name (if_indextoname(3)), for the per-interface receive switch and the
//! loopback-source check of the server path.

use std::ffi::CStr;

/// Name of the interface with kernel index `index` in this network namespace, if it exists.
pub fn name_of(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has IF_NAMESIZE bytes, as if_indextoname requires; on success it holds a
    // NUL-terminated name, on failure the call returns NULL and we do not read `buf`.
    let ptr = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: if_indextoname succeeded, so `buf` holds a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// Whether the interface with `index` is the loopback device.
pub fn is_loopback_interface(index: u32) -> bool {
    name_of(index).is_some_and(|n| n == "lo")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_a_name() {
        // SAFETY: if_nametoindex reads a NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        assert_ne!(index, 0, "every network namespace has lo");
        assert_eq!(name_of(index).as_deref(), Some("lo"));
        assert!(is_loopback_interface(index));
        assert_eq!(name_of(0), None);
    }
}
