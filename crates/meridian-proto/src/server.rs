//! The stateless server path: answer a mode 3 request with a mode 4 reply built from the
//! system's variables, or say why not. Access control, rate limiting and authentication will
//! sit in front of [`respond`] (cheapest first); every drop has a counted reason.
//!
//! Authentication ([`respond_with_keys`]): a request without MAC gets a plain reply whatever
//! our keys (the guide: an unauthenticated client synchronizes "no matter whether NTP
//! authentication is enabled or not on the server"). A request with a valid MAC of a key we
//! hold as trusted gets a reply signed with that same key. Any other MAC (unknown or
//! untrusted key, bad digest or length, key id 0) gets a crypto-NAK: the header followed by
//! four zero bytes, as RFC 5905 (section 9.2) and ntpd do; chrony drops such requests
//! instead. We follow RFC 5905 and ntpd so a misconfigured client learns why it gets no
//! time. Either reply is never longer than the request. A request that itself ends in a
//! crypto-NAK is dropped as malformed.

use crate::auth::{self, AuthResult};
use crate::entropy::Entropy;
use crate::keys::{Key, KeyTable};
use crate::time::{NtpDuration, NtpTimestamp};
use crate::wire::{self, Header, Leap, Mode, ReferenceId, HEADER_LEN};

/// What the server tells clients about itself (a snapshot of the system variables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerState {
    pub leap: Leap,
    /// 1..=15 when synchronized; 16 when not.
    pub stratum: u8,
    pub precision: i8,
    /// Poll exponent to advertise when the request's own is lower.
    pub poll: i8,
    pub root_delay: NtpDuration,
    /// Already grown by the frequency tolerance since the last update.
    pub root_dispersion: NtpDuration,
    pub reference_id: ReferenceId,
    pub reference_ts: NtpTimestamp,
}

impl ServerState {
    /// The state of a server that has never synchronized: LI 3, stratum 16.
    pub fn unsynchronized(precision: i8) -> Self {
        Self {
            leap: Leap::Unsynchronized,
            stratum: 16,
            precision,
            poll: 6,
            root_delay: NtpDuration::ZERO,
            root_dispersion: NtpDuration::ZERO,
            reference_id: ReferenceId::INIT,
            reference_ts: NtpTimestamp::ZERO,
        }
    }
}

/// Why a datagram got no answer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a well-formed NTP packet (length, version, extension or MAC framing).
    Malformed,
    /// A valid packet, but not a client request (we answer only mode 3 here; a reply to a
    /// reply could start a loop between two servers).
    NotRequest,
    /// The output buffer cannot hold the reply (a bug in the caller).
    NoBuffer,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NotRequest => "not-a-request",
            DropReason::NoBuffer => "no-buffer",
        }
    }
}

/// Longest reply [`respond_with_keys`] writes: the header and a 20-byte-digest MAC.
pub const MAX_REPLY_LEN: usize = HEADER_LEN + wire::MAX_V4_MAC_LEN;

/// [`respond_with_keys`] with no keys: requests with a MAC get a crypto-NAK.
pub fn respond(
    request: &[u8],
    receive_ts: NtpTimestamp,
    state: &ServerState,
    rng: &mut dyn Entropy,
    transmit_time: impl FnOnce() -> NtpTimestamp,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    respond_with_keys(
        request,
        receive_ts,
        state,
        &KeyTable::new(),
        rng,
        transmit_time,
        out,
    )
}

/// Builds the reply to `request`, received at local time `receive_ts` (best: the kernel's
/// receive timestamp), authenticated with `keys` as the module docs say. `transmit_time` is
/// called last, just before the bytes are complete, so the transmit timestamp is as late as
/// the caller can make it. Timestamps get random bits below the clock precision. Returns the
/// reply length: 48, 52 (crypto-NAK) or 48 plus the MAC, never more than the request; `out`
/// should hold [`MAX_REPLY_LEN`] bytes.
pub fn respond_with_keys(
    request: &[u8],
    receive_ts: NtpTimestamp,
    state: &ServerState,
    keys: &KeyTable,
    rng: &mut dyn Entropy,
    transmit_time: impl FnOnce() -> NtpTimestamp,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let packet = wire::parse(request).map_err(|_| DropReason::Malformed)?;
    let req = packet.header;
    if req.mode != Mode::Client {
        return Err(DropReason::NotRequest);
    }
    let trailer = match auth::verify(keys, packet.authenticated, packet.mac) {
        AuthResult::NoMac => Trailer::None,
        AuthResult::CryptoNak => return Err(DropReason::Malformed),
        AuthResult::Ok(id) => keys.get(id).map_or(Trailer::CryptoNak, Trailer::Mac),
        _ => Trailer::CryptoNak,
    };
    let reply_len = HEADER_LEN
        + match trailer {
            Trailer::None => 0,
            Trailer::Mac(key) => key.mac_len(),
            Trailer::CryptoNak => 4,
        };
    // A MAC of the request's own key, or four bytes against its MAC of at least 20.
    debug_assert!(reply_len <= request.len());
    let out = out.get_mut(..reply_len).ok_or(DropReason::NoBuffer)?;
    let mut reply = Header {
        leap: state.leap,
        version: req.version,
        mode: Mode::Server,
        stratum: state.stratum,
        poll: req.poll.clamp(state.poll, 17),
        precision: state.precision,
        root_delay: state.root_delay,
        root_dispersion: state.root_dispersion,
        reference_id: state.reference_id,
        reference_ts: state.reference_ts,
        origin_ts: req.transmit_ts,
        receive_ts: receive_ts.fuzz_below_precision(state.precision, rng.next_u64()),
        transmit_ts: NtpTimestamp::ZERO,
    };
    let fuzz = rng.next_u64();
    reply.transmit_ts = transmit_time().fuzz_below_precision(state.precision, fuzz);
    reply.emit((&mut out[..HEADER_LEN]).try_into().expect("48 bytes"));
    let len = match trailer {
        Trailer::None => Some(HEADER_LEN),
        Trailer::Mac(key) => auth::append_mac(key, out, HEADER_LEN),
        Trailer::CryptoNak => auth::append_crypto_nak(out, HEADER_LEN),
    };
    len.ok_or(DropReason::NoBuffer)
}

/// What follows the header of a reply.
enum Trailer<'k> {
    None,
    Mac(&'k Key),
    CryptoNak,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SplitMix64;

    fn synced() -> ServerState {
        ServerState {
            leap: Leap::None,
            stratum: 3,
            precision: -20,
            poll: 6,
            root_delay: NtpDuration::from_seconds(0.01),
            root_dispersion: NtpDuration::from_seconds(0.02),
            reference_id: ReferenceId([198, 18, 0, 1]),
            reference_ts: NtpTimestamp::from_unix(1_800_000_000, 0),
        }
    }

    fn request(version: u8, mode: u8) -> Vec<u8> {
        let mut h = Header::new(Mode::Client);
        h.version = version;
        h.transmit_ts = NtpTimestamp::from_bits(0xdead_beef_0123_4567);
        let mut b = h.to_bytes().to_vec();
        b[0] = (b[0] & !7) | mode;
        b
    }

    /// attacks.md P2, R3: every version x mode: only mode 3 of versions 1-4 is answered, with the
    /// request's version (no reply loops).
    #[test]
    fn answers_only_client_requests_with_their_version() {
        let mut rng = SplitMix64::new(1);
        let rx = NtpTimestamp::from_unix(1_800_000_100, 0);
        for version in 0..8u8 {
            for mode in 0..8u8 {
                let mut out = [0u8; 128];
                let req = request(version, mode);
                let r = respond(&req, rx, &synced(), &mut rng, || rx, &mut out);
                if (1..=4).contains(&version) && mode == 3 {
                    assert_eq!(r, Ok(48));
                    let h = wire::parse(&out[..48]).unwrap().header;
                    assert_eq!((h.version, h.mode, h.stratum), (version, Mode::Server, 3));
                    assert_eq!(h.origin_ts, NtpTimestamp::from_bits(0xdead_beef_0123_4567));
                } else {
                    assert!(r.is_err(), "version {version} mode {mode} must be dropped");
                }
            }
        }
    }

    /// attacks.md R4, C4: a reply is never longer than its request; served timestamps carry random
    /// bits below the precision.
    #[test]
    fn reply_never_longer_than_request_and_fuzzed() {
        let mut rng = SplitMix64::new(2);
        let rx = NtpTimestamp::from_unix(1_800_000_100, 0);
        let mut req = request(4, 3);
        req.extend([0, 0, 0, 1]);
        req.extend([0; 16]);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut out = [0u8; 128];
            let n = respond(&req, rx, &synced(), &mut rng, || rx, &mut out).unwrap();
            assert!(n <= req.len());
            let h = wire::parse(&out[..n]).unwrap().header;
            assert_eq!(
                h.receive_ts.to_bits() >> 12,
                rx.to_bits() >> 12,
                "only bits below precision change"
            );
            seen.insert(h.transmit_ts.to_bits() & 0xfff);
        }
        assert!(seen.len() > 40, "low bits are random");
    }

    #[test]
    fn unsynchronized_server_says_so() {
        let mut rng = SplitMix64::new(3);
        let rx = NtpTimestamp::from_unix(1_800_000_100, 0);
        let mut out = [0u8; 48];
        respond(
            &request(4, 3),
            rx,
            &ServerState::unsynchronized(-20),
            &mut rng,
            || rx,
            &mut out,
        )
        .unwrap();
        let h = wire::parse(&out).unwrap().header;
        assert_eq!((h.leap, h.stratum), (Leap::Unsynchronized, 16));
    }

    /// attacks.md R1, P1: a mode 7 monlist probe and other garbage get no answer at all.
    #[test]
    fn garbage_is_dropped() {
        let mut rng = SplitMix64::new(4);
        let mut out = [0u8; 48];
        for len in [0, 1, 47, 49, 56] {
            let r = respond(
                &vec![0x23; len],
                NtpTimestamp::ZERO,
                &synced(),
                &mut rng,
                || NtpTimestamp::ZERO,
                &mut out,
            );
            assert_eq!(r, Err(DropReason::Malformed), "len {len}");
        }
        // Mode 7 monlist probe: no answer.
        let mut monlist = vec![0u8; 48];
        monlist[..4].copy_from_slice(&[0x17, 0x00, 0x03, 0x2a]);
        assert!(respond(
            &monlist,
            NtpTimestamp::ZERO,
            &synced(),
            &mut rng,
            || NtpTimestamp::ZERO,
            &mut out
        )
        .is_err());
    }
}
