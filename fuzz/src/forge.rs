//! Pieces the association drivers (client, peer, broadcast) share: the local time of the
//! simulated clock, and a header made into a datagram that is signed or forged as the input
//! picks.

use crate::input::Input;
use meridian_proto::auth;
use meridian_proto::keys::Key;
use meridian_proto::time::{Mono, NtpDuration, NtpTimestamp};
use meridian_proto::wire::{Header, HEADER_LEN};

/// The local clock at `now`: `base` plus the time since the driver started.
pub(crate) fn local_at(base: NtpTimestamp, now: Mono) -> NtpTimestamp {
    base + NtpDuration::from_nanos(now.as_nanos().min(i64::MAX as u64) as i64)
}

/// `h` as a datagram: signed with `key`, or with a corrupted digest, another key id, a
/// crypto-NAK or no MAC, whatever the input picks (without a key: no MAC, or a lone key id).
/// Returns it and whether it is signed correctly.
pub(crate) fn sign_or_forge(
    input: &mut Input<'_>,
    key: Option<&Key>,
    h: &Header,
) -> (Vec<u8>, bool) {
    let mut buf = [0u8; HEADER_LEN + 24];
    h.emit((&mut buf[..HEADER_LEN]).try_into().expect("48 bytes"));
    let choice = input.u8() % 8;
    let Some(key) = key else {
        let len = if choice == 7 {
            HEADER_LEN + 4
        } else {
            HEADER_LEN
        };
        return (buf[..len].to_vec(), false);
    };
    let len = match choice {
        0 => HEADER_LEN,
        1 => auth::append_crypto_nak(&mut buf, HEADER_LEN).expect("room"),
        _ => auth::append_mac(key, &mut buf, HEADER_LEN).expect("room"),
    };
    match choice {
        2 => buf[len - 1] ^= 1 | input.u8(),
        3 => buf[HEADER_LEN + 3] ^= 1 | input.u8(),
        _ => {}
    }
    (buf[..len].to_vec(), choice >= 4)
}
