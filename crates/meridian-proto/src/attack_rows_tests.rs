//! Unit tests of attacks.md rows that had none of their own: numeric edge cases (P4),
//! packets of features we do not run (P5) and interleaved-mode pivots on a basic client (C9).

use crate::client::{ClientAssociation, ClientConfig, Reply};
use crate::entropy::SplitMix64;
use crate::keys::{Algorithm, Key, KeyId, KeyTable};
use crate::server::{respond_with_keys, ServerState};
use crate::time::{Mono, NtpDuration, NtpTimestamp, PollInterval};
use crate::wire::{self, Header, Leap, Mode, ReferenceId, HEADER_LEN};
use core::time::Duration;

/// 2036-02-07 06:28:16 UTC, the first second of NTP era 1.
const ERA_1: i64 = 2_085_978_496;

fn synced() -> ServerState {
    ServerState {
        leap: Leap::None,
        stratum: 2,
        precision: -20,
        poll: 6,
        root_delay: NtpDuration::from_seconds(0.01),
        root_dispersion: NtpDuration::from_seconds(0.01),
        reference_id: ReferenceId([198, 18, 0, 9]),
        reference_ts: NtpTimestamp::from_unix(ERA_1 - 30, 0),
    }
}

fn association(rng: &mut SplitMix64) -> ClientAssociation {
    let config = ClientConfig {
        minpoll: PollInterval::new(4),
        maxpoll: PollInterval::new(6),
        ..Default::default()
    };
    ClientAssociation::new(config, Mono::from_seconds(10.0), Duration::ZERO, rng)
}

/// A reply to `request` from a server `ahead` seconds ahead of our local time `t1`.
fn reply(request: &[u8], t1: NtpTimestamp, ahead: f64, delay: f64) -> (Header, NtpTimestamp) {
    let nonce = wire::parse(request).unwrap().header.transmit_ts;
    let mut h = Header::new(Mode::Server);
    h.leap = Leap::None;
    h.stratum = 2;
    h.precision = -20;
    h.reference_id = ReferenceId([198, 18, 0, 9]);
    h.reference_ts = t1 + NtpDuration::from_seconds(ahead - 8.0);
    h.origin_ts = nonce;
    h.receive_ts = t1 + NtpDuration::from_seconds(ahead + delay / 2.0);
    h.transmit_ts = t1 + NtpDuration::from_seconds(ahead + delay / 2.0 + 1e-5);
    (h, t1 + NtpDuration::from_seconds(delay + 1e-5))
}

/// attacks.md P4: a reply whose timestamps straddle the 2036 era rollover gives the right
/// offset and delay; extreme poll and precision bytes neither panic nor pass unclamped.
#[test]
fn p4_era_straddling_reply_and_extreme_poll_and_precision() {
    let mut rng = SplitMix64::new(4);
    for (t1_unix, ahead) in [(ERA_1 - 1, 1.5), (ERA_1 - 2, 0.25), (ERA_1, -1.5)] {
        let mut a = association(&mut rng);
        let t1 = NtpTimestamp::from_unix(t1_unix, 0);
        let now = Mono::from_seconds(10.0);
        let req = a
            .handle_timeout(now, t1, &mut rng)
            .expect("first request due");
        let (h, t4) = reply(&req, t1, ahead, 0.004);
        let r = a.handle_packet(now, t4, &h, -20);
        let Ok(Reply::Sample(m)) = r else {
            panic!("reply across the rollover refused: {r:?}");
        };
        assert!((m.offset - ahead).abs() < 1e-6, "offset {}", m.offset);
        assert!((m.delay - 0.004).abs() < 1e-6, "delay {}", m.delay);
    }

    // Server side: poll and precision bytes of a request at their extremes.
    let keys = KeyTable::new();
    let mut out = [0u8; 48];
    for poll in [i8::MIN, -7, 0, 17, 18, i8::MAX] {
        let mut h = Header::new(Mode::Client);
        h.poll = poll;
        h.precision = poll;
        h.transmit_ts = NtpTimestamp::from_bits(0x1234_5678_9abc_def0);
        let rx = NtpTimestamp::from_unix(ERA_1, 0);
        let len = respond_with_keys(
            &h.to_bytes(),
            rx,
            &synced(),
            &keys,
            &mut rng,
            || rx,
            &mut out,
        )
        .expect("answered");
        let r = wire::parse(&out[..len]).unwrap().header;
        assert!(
            (6..=17).contains(&r.poll),
            "request poll {poll}: reply poll {}",
            r.poll
        );
    }

    // Client side: a genuine reply with poll 127 / -128 and precision 127 / -128.
    for (poll, precision) in [(i8::MAX, i8::MAX), (i8::MIN, i8::MIN), (i8::MAX, i8::MIN)] {
        let mut a = association(&mut rng);
        let t1 = NtpTimestamp::from_unix(ERA_1 - 100, 0);
        let now = Mono::from_seconds(10.0);
        let req = a.handle_timeout(now, t1, &mut rng).unwrap();
        let (mut h, t4) = reply(&req, t1, 0.5, 0.002);
        h.poll = poll;
        h.precision = precision;
        if let Ok(Reply::Sample(m)) = a.handle_packet(now, t4, &h, -20) {
            assert!(m.offset.is_finite() && m.delay.is_finite() && m.dispersion.is_finite());
        }
        let next = a.poll_timeout().expect("still polling");
        let wait = next.saturating_since(now).as_secs_f64();
        assert!(wait <= 64.0 * 1.1, "poll {poll}: next request in {wait} s");
    }
}

/// An extension field of `kind` with `len` bytes in all (a multiple of 4, >= 16).
fn extension(kind: u16, len: usize) -> Vec<u8> {
    let mut ef = vec![0xa5; len];
    ef[..2].copy_from_slice(&kind.to_be_bytes());
    ef[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    ef
}

fn request(version: u8) -> Vec<u8> {
    let mut h = Header::new(Mode::Client);
    h.version = version;
    h.transmit_ts = NtpTimestamp::from_bits(0x0fed_cba9_8765_4321);
    h.to_bytes().to_vec()
}

/// attacks.md P5: NTS, Autokey and MS-SNTP packets reach a server that runs none of them,
/// with and without keys configured: never a panic, never a reply longer than the request,
/// and a request carrying a MAC we cannot verify never gets a normal (unsigned) answer.
#[test]
fn p5_packets_for_features_we_do_not_run_are_refused_cleanly() {
    let mut rng = SplitMix64::new(5);
    let mut with_key = KeyTable::new();
    with_key
        .insert(Key::new(KeyId(1), Algorithm::Aes128Cmac, &[3; 16], true).unwrap())
        .unwrap();
    let nts = {
        // Unique identifier, cookie, authenticator-and-encrypted EFs (RFC 8915 types).
        let mut p = request(4);
        p.extend(extension(0x0104, 36));
        p.extend(extension(0x0204, 104));
        p.extend(extension(0x0404, 40));
        p
    };
    let autokey = {
        // An Autokey EF (field type 0x0002, a response bit set) and a MAC with a session key
        // ID above 65535.
        let mut p = request(4);
        p.extend(extension(0x8002, 72));
        p.extend_from_slice(&0x0001_2345u32.to_be_bytes());
        p.extend_from_slice(&[0x5a; 16]);
        p
    };
    let ms_sntp = |tail: usize| {
        // Version 3, a relative ID as key ID and an all-zero signature.
        let mut p = request(3);
        p.extend_from_slice(&0x0000_0451u32.to_be_bytes());
        p.extend(std::iter::repeat_n(0, tail - 4));
        p
    };
    // What each gets: NTS (no MAC, unknown extension fields skipped) a plain answer with
    // none of them; a MAC we cannot verify at most a crypto-NAK; 72 bytes that are neither a
    // MAC nor extension fields nothing.
    #[derive(Debug, PartialEq)]
    enum Outcome {
        Plain,
        CryptoNak,
        Dropped,
    }
    let cases = [
        ("NTS", nts, Outcome::Plain),
        ("Autokey", autokey, Outcome::CryptoNak),
        ("MS-SNTP", ms_sntp(20), Outcome::CryptoNak),
        ("MS-SNTP extended", ms_sntp(72), Outcome::Dropped),
    ];
    for keys in [KeyTable::new(), with_key] {
        for (what, bytes, want) in &cases {
            let mut out = [0u8; 1024];
            let rx = NtpTimestamp::from_unix(1_800_000_000, 0);
            let result = respond_with_keys(bytes, rx, &synced(), &keys, &mut rng, || rx, &mut out);
            let got = match result {
                Err(_) => Outcome::Dropped,
                Ok(len) => {
                    assert!(len <= bytes.len(), "{what}: amplification");
                    let h = wire::parse(&out[..len]).unwrap().header;
                    assert_eq!(
                        h.origin_ts,
                        wire::parse(&bytes[..HEADER_LEN])
                            .unwrap()
                            .header
                            .transmit_ts
                    );
                    match len - HEADER_LEN {
                        0 => Outcome::Plain,
                        4 if out[HEADER_LEN..len] == [0; 4] => Outcome::CryptoNak,
                        n => panic!("{what}: {n} bytes after the header"),
                    }
                }
            };
            assert_eq!(&got, want, "{what} with {} keys", keys.len());
        }
    }
}

/// attacks.md C9: we have no interleaved mode. A spoofed reply whose origin is the receive
/// or transmit timestamp of the last genuine exchange (what an interleaved reply would carry)
/// is refused by the basic client, changes nothing, and the next real reply counts.
#[test]
fn c9_interleaved_style_origin_does_not_pivot_a_basic_client() {
    let mut rng = SplitMix64::new(9);
    let mut a = association(&mut rng);
    let t1 = NtpTimestamp::from_unix(1_800_000_000, 0);
    let now = Mono::from_seconds(10.0);
    let req = a.handle_timeout(now, t1, &mut rng).unwrap();
    let (h1, t4) = reply(&req, t1, 0.1, 0.002);
    assert!(matches!(
        a.handle_packet(now, t4, &h1, -20),
        Ok(Reply::Sample(_))
    ));

    let later = a.poll_timeout().unwrap();
    let t1b = t1 + NtpDuration::from_seconds(later.saturating_since(now).as_secs_f64());
    let req2 = a.handle_timeout(later, t1b, &mut rng).unwrap();
    let (h2, t4b) = reply(&req2, t1b, 0.1, 0.002);
    let reach = a.reach();
    for origin in [t4, h1.receive_ts, h1.transmit_ts] {
        let mut spoof = h2;
        spoof.origin_ts = origin;
        spoof.transmit_ts += NtpDuration::from_seconds(5.0);
        assert!(a.handle_packet(later, t4b, &spoof, -20).is_err());
        assert_eq!(a.reach(), reach);
    }
    let Ok(Reply::Sample(m)) = a.handle_packet(later, t4b, &h2, -20) else {
        panic!("the real reply after the spoofs was refused");
    };
    assert!((m.offset - 0.1).abs() < 1e-6);
}
