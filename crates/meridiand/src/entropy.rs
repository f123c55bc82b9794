//! Random values for the protocol core from the kernel (getrandom(2), which clknetsim
//! intercepts too): request nonces and timestamp fuzz must not be predictable.

use meridian_proto::entropy::Entropy;

/// Reads the kernel's random pool in blocks of 32 values.
#[derive(Debug, Default)]
pub struct OsEntropy {
    buf: [u64; 32],
    used: usize,
}

impl OsEntropy {
    pub fn new() -> Self {
        Self {
            buf: [0; 32],
            used: 32,
        }
    }

    fn refill(&mut self) {
        let bytes = std::mem::size_of_val(&self.buf);
        let mut filled = 0;
        while filled < bytes {
            // SAFETY: writes at most `bytes - filled` bytes into our own buffer.
            let n = unsafe {
                libc::getrandom(
                    (self.buf.as_mut_ptr() as *mut u8).add(filled) as *mut libc::c_void,
                    bytes - filled,
                    0,
                )
            };
            if n > 0 {
                filled += n as usize;
            } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                // No kernel randomness at all is not survivable for a network daemon.
                panic!("getrandom failed: {}", std::io::Error::last_os_error());
            }
        }
        self.used = 0;
    }
}

impl Entropy for OsEntropy {
    fn next_u64(&mut self) -> u64 {
        if self.used == self.buf.len() {
            self.refill();
        }
        self.used += 1;
        self.buf[self.used - 1]
    }
}
