//! Packet targets: the wire parser (soundness and re-emit stability) and the server's whole
//! receive path on arbitrary datagrams.

use meridian_proto::entropy::SplitMix64;
use meridian_proto::server::{respond, DropReason, ServerState};
use meridian_proto::time::{NtpDuration, NtpTimestamp};
use meridian_proto::wire::{self, Header, Leap, Mode, ReferenceId, HEADER_LEN};

/// `wire::parse` on arbitrary bytes: never panics; what it accepts is well framed; the
/// header re-emitted is byte-identical, and parsing the re-emitted datagram agrees.
pub fn wire_parse(data: &[u8]) {
    let Ok(packet) = wire::parse(data) else {
        return;
    };
    assert!(
        data.len() >= HEADER_LEN && data.len().is_multiple_of(4),
        "bad length accepted"
    );
    assert!((1..=4).contains(&packet.header.version));
    assert_eq!(
        packet.len(),
        data.len(),
        "packet does not cover the datagram"
    );
    assert_eq!(packet.authenticated, &data[..packet.authenticated.len()]);
    assert_eq!(
        packet.extension_bytes,
        &data[HEADER_LEN..packet.authenticated.len()]
    );
    if packet.header.version < 4 {
        assert!(packet.extension_bytes.is_empty(), "extension field in v1-3");
    }
    if let Some(mac) = packet.mac {
        assert!(matches!(mac.digest.len(), 0 | 16 | 20), "{mac:?}");
    }
    // The extension iterator walks exactly the validated area, in fields of >= 16 bytes.
    let mut walked = 0;
    for field in packet.extensions() {
        let len = 4 + field.value.len();
        assert!(
            len >= wire::MIN_EXTENSION_LEN && len.is_multiple_of(4),
            "field of {len} bytes"
        );
        walked += len;
    }
    assert_eq!(walked, packet.extension_bytes.len());

    // Re-emit the header: identical bytes, and an identical parse.
    let header = packet.header;
    let emitted = header.to_bytes();
    assert_eq!(&emitted[..], &data[..HEADER_LEN], "header does not re-emit");
    assert_eq!(Header::parse(&emitted), Ok(header));
    let mut copy = data.to_vec();
    copy[..HEADER_LEN].copy_from_slice(&emitted);
    assert_eq!(wire::parse(&copy).as_ref(), Ok(&packet));
}

/// Server states the datagram is answered from; chosen by the datagram's length so that
/// one input exercises one state and the corpus stays plain packets.
fn server_state(selector: usize) -> ServerState {
    let synced = ServerState {
        leap: Leap::None,
        stratum: 2,
        precision: -20,
        poll: 6,
        root_delay: NtpDuration::from_seconds(0.012),
        root_dispersion: NtpDuration::from_seconds(0.034),
        reference_id: ReferenceId([198, 18, 0, 1]),
        reference_ts: NtpTimestamp::from_unix(2_085_978_490, 0),
    };
    match selector % 4 {
        0 => synced,
        1 => ServerState::unsynchronized(-25),
        2 => ServerState {
            precision: i8::MIN,
            poll: i8::MIN,
            root_delay: NtpDuration::MAX,
            ..synced
        },
        _ => ServerState {
            precision: i8::MAX,
            poll: 17,
            leap: Leap::AddSecond,
            ..synced
        },
    }
}

/// `server::respond` on an arbitrary datagram: never panics; answers exactly the well
/// formed mode 3 requests, with one header no longer than the request, echoing its transmit
/// timestamp as origin; everything else is dropped with the matching reason.
pub fn server_respond(data: &[u8]) {
    let state = server_state(data.len() / 4);
    let parsed = wire::parse(data);
    // Receive time: something derived from the input, so both eras and zero occur.
    let rx = NtpTimestamp::from_bits(
        data.iter()
            .take(8)
            .fold(0u64, |acc, &b| (acc << 8) | b as u64)
            .rotate_left(17),
    );
    let tx = rx + NtpDuration::from_nanos(25_000);
    let mut rng = SplitMix64::new(data.len() as u64);
    let mut out = [0u8; 2 * HEADER_LEN];
    let result = respond(data, rx, &state, &mut rng, || tx, &mut out);
    match (&parsed, result) {
        (Err(_), r) => assert_eq!(r, Err(DropReason::Malformed)),
        (Ok(p), r) if p.header.mode != Mode::Client => {
            assert_eq!(
                r,
                Err(DropReason::NotRequest),
                "answered mode {:?}",
                p.header.mode
            )
        }
        // A request that is itself a crypto-NAK is not a request.
        (Ok(p), r) if p.mac.is_some_and(|m| m.digest.is_empty() && m.key_id == 0) => {
            assert_eq!(r, Err(DropReason::Malformed), "answered a crypto-NAK")
        }
        (Ok(p), Ok(n)) => {
            // Without keys, a MAC can only be answered with a crypto-NAK (4 zero bytes).
            let expected = if p.mac.is_some() {
                HEADER_LEN + 4
            } else {
                HEADER_LEN
            };
            assert_eq!(n, expected);
            if p.mac.is_some() {
                assert_eq!(&out[HEADER_LEN..n], &[0, 0, 0, 0], "crypto-NAK");
            }
            assert!(n <= data.len(), "reply longer than request");
            let reply = wire::parse(&out[..n]).expect("reply parses").header;
            let req = p.header;
            assert_eq!(reply.mode, Mode::Server);
            assert_eq!(reply.version, req.version);
            assert_eq!(reply.origin_ts, req.transmit_ts);
            assert_eq!(
                (reply.leap, reply.stratum, reply.reference_id),
                (state.leap, state.stratum, state.reference_id)
            );
            assert!(
                reply.poll >= state.poll && reply.poll <= 17,
                "poll {}",
                reply.poll
            );
            // Only bits below the precision may differ from the true times.
            let keep = (32 + state.precision as i32).clamp(0, 63) as u32;
            assert_eq!(reply.receive_ts.to_bits() >> keep, rx.to_bits() >> keep);
            assert_eq!(reply.transmit_ts.to_bits() >> keep, tx.to_bits() >> keep);
        }
        (Ok(_), Err(r)) => panic!("well-formed request dropped: {r:?}"),
    }
    // A buffer too small for the reply is refused, never overrun.
    let mut small = [0u8; HEADER_LEN - 1];
    let r = respond(data, rx, &state, &mut rng, || tx, &mut small);
    if matches!(&parsed, Ok(p) if p.header.mode == Mode::Client && !p.mac.is_some_and(|m| m.digest.is_empty() && m.key_id == 0))
    {
        assert_eq!(r, Err(DropReason::NoBuffer));
    } else {
        assert!(r.is_err());
    }
}
