//! Mode 6 target: the control-message parser and responder (`meridian_proto::mode6`) on any
//! bytes, against one of four association sets picked by the first input byte (none and
//! unsynchronized; one peer; several peers; extreme values: NaN and huge numbers, long
//! strings, IPv6 addresses), checking the framing and the promises of the responder.

use meridian_proto::mode6::{
    self, Association, ClockSource, ControlDrop, ControlSnapshot, FilterSample, PeerStatus,
    PeerVariables, Selection, SystemStatus, SystemVariables, HEADER_LEN, MAX_DATA, MAX_FRAGMENTS,
    OP_READSTAT, OP_READVAR,
};
use meridian_proto::time::NtpTimestamp;
use meridian_proto::wire::Leap;

fn peer(id: u16, extreme: bool) -> Association {
    let v = |normal: f64| {
        if extreme {
            [f64::NAN, f64::INFINITY, -1e300, 1e-320][id as usize % 4]
        } else {
            normal
        }
    };
    Association {
        id,
        status: PeerStatus {
            configured: id % 2 == 1,
            reachable: true,
            selection: if id == 1 {
                Selection::SysPeer
            } else {
                Selection::Candidate
            },
            event_count: id as u8,
            event: 0xff,
            ..PeerStatus::default()
        },
        vars: PeerVariables {
            srcadr: if extreme {
                format!("[2001:2::{id:x}]:123").parse().expect("address")
            } else {
                format!("198.18.0.{}:123", id % 256)
                    .parse()
                    .expect("address")
            },
            dstadr: extreme.then(|| "[2001:2::ffff]:65535".parse().expect("address")),
            leap: if extreme {
                Leap::Unsynchronized
            } else {
                Leap::None
            },
            stratum: if extreme { 255 } else { 2 },
            precision: if extreme { i8::MIN } else { -20 },
            root_delay: v(0.001),
            root_dispersion: v(0.002),
            refid: if extreme {
                "R".repeat(700)
            } else {
                "GPS".into()
            },
            reference_time: NtpTimestamp::from_bits(if extreme {
                u64::MAX
            } else {
                0xe9a1_0000_8000_0000
            }),
            rec: NtpTimestamp::ZERO,
            reach: 0o377,
            hmode: 1,
            pmode: 2,
            hpoll: if extreme { i8::MAX } else { 6 },
            ppoll: if extreme { i8::MIN } else { 6 },
            flash: u16::MAX,
            keyid: if extreme { u32::MAX } else { 0 },
            offset: v(0.000_25),
            delay: v(0.000_4),
            dispersion: v(0.002),
            jitter: v(0.000_1),
            filter: vec![
                FilterSample {
                    delay: v(0.000_4),
                    offset: v(-0.000_1),
                    dispersion: v(0.001),
                };
                if extreme { 12 } else { 3 }
            ],
        },
    }
}

fn snapshot(which: u8) -> ControlSnapshot {
    let extreme = which == 3;
    let synced = which != 0;
    let count: u16 = match which {
        0 => 0,
        1 => 1,
        2 => 5,
        _ => 300,
    };
    let x = |normal: f64| if extreme { f64::NAN } else { normal };
    ControlSnapshot {
        status: SystemStatus {
            leap: if synced {
                Leap::None
            } else {
                Leap::Unsynchronized
            },
            source: if synced {
                ClockSource::Ntp
            } else {
                ClockSource::Unspecified
            },
            event_count: 3,
            event: 5,
        },
        system: SystemVariables {
            version: "meridiand 0.1.0".into(),
            processor: "x86_64".into(),
            system: if extreme {
                "L".repeat(2000)
            } else {
                "Linux".into()
            },
            leap: if synced {
                Leap::None
            } else {
                Leap::Unsynchronized
            },
            stratum: if synced { 2 } else { 16 },
            precision: -24,
            root_delay: x(0.000_4),
            root_dispersion: x(0.003),
            refid: if synced {
                "198.18.0.1".into()
            } else {
                "INIT".into()
            },
            reference_time: NtpTimestamp::from_bits(0xe9a1_0010_4000_0000),
            clock: NtpTimestamp::from_bits(0xe9a1_0020_0000_0000),
            peer: u16::from(synced),
            tc: 6,
            mintc: 3,
            offset: x(-0.000_25),
            frequency_ppm: if extreme { f64::INFINITY } else { 12.5 },
            sys_jitter: x(0.000_1),
            clk_jitter: x(0.000_2),
            clk_wander_ppm: x(0.01),
        },
        associations: (1..=count).map(|i| peer(i, extreme)).collect(),
    }
}

fn word(d: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([d[i], d[i + 1]])
}

/// The requested variable names as the responder reads them.
fn requested(data: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(data)
        .split(',')
        .map(|item| {
            let name = item.split('=').next().unwrap_or("");
            name.trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .to_owned()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// Runs the responder on `data[1..]` against the association set `data[0]` picks.
pub fn mode6_request(data: &[u8]) {
    let Some((&which, request)) = data.split_first() else {
        return;
    };
    let snap = snapshot(which % 4);
    let result = mode6::respond(request, &snap);
    assert_eq!(result, mode6::respond(request, &snap), "not deterministic");

    // What the parser must decide, from the header alone.
    let well_formed_header = request.len() >= HEADER_LEN
        && request[0] & 7 == 6
        && (1..=4).contains(&(request[0] >> 3 & 7));
    let frags = match result {
        Err(ControlDrop::Malformed) => {
            assert!(
                !well_formed_header
                    || (request[1] & 0x80 == 0
                        && (usize::from(word(request, 10)) > MAX_DATA
                            || HEADER_LEN + usize::from(word(request, 10)) > request.len())),
                "well-formed request dropped as malformed"
            );
            return;
        }
        Err(ControlDrop::Response) => {
            assert!(well_formed_header && request[1] & 0x80 != 0);
            return;
        }
        Ok(frags) => frags,
    };
    assert!(
        well_formed_header && request[1] & 0x80 == 0,
        "answered a non-request"
    );
    let count = usize::from(word(request, 10));
    assert!(count <= MAX_DATA && HEADER_LEN + count <= request.len());
    let (version, opcode) = (request[0] >> 3 & 7, request[1] & 0x1f);
    let (more, offset) = (request[1] & 0x20 != 0, word(request, 8));
    let (sequence, association) = (word(request, 2), word(request, 6));

    assert!(
        !frags.is_empty() && frags.len() <= MAX_FRAGMENTS,
        "{} fragments",
        frags.len()
    );
    let mut text = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        assert!(
            f.len() >= HEADER_LEN && f.len() % 4 == 0,
            "fragment length {}",
            f.len()
        );
        assert_eq!(f[0] & 7, 6, "mode");
        assert_eq!(f[0] >> 3 & 7, version, "version not echoed");
        assert_eq!(f[0] >> 6, snap.status.leap as u8, "LI is not the system's");
        assert_eq!(f[1] & 0x80, 0x80, "R bit");
        assert_eq!(f[1] & 0x1f, opcode, "opcode not echoed");
        assert_eq!((word(f, 2), word(f, 6)), (sequence, association));
        let n = usize::from(word(f, 10));
        assert!(n <= MAX_DATA && HEADER_LEN + n <= f.len() && f.len() - HEADER_LEN - n < 4);
        assert_eq!(
            usize::from(word(f, 8)),
            text.len(),
            "hole before fragment {i}"
        );
        assert_eq!(
            f[1] & 0x20 != 0,
            i + 1 < frags.len(),
            "More bit of fragment {i}"
        );
        text.extend_from_slice(&f[HEADER_LEN..HEADER_LEN + n]);
    }

    let known = |id: u16| snap.associations.iter().any(|a| a.id == id);
    let expected_error = if more || offset != 0 {
        Some(2)
    } else if opcode != OP_READSTAT && opcode != OP_READVAR {
        Some(3)
    } else if association != 0 && !known(association) {
        Some(4)
    } else {
        None
    };
    let f = &frags[0];
    if f[1] & 0x40 != 0 {
        // Error: one bare header, never longer than the request.
        assert_eq!(frags.len(), 1);
        assert_eq!(f.len(), HEADER_LEN, "error response with data");
        assert!(
            f.len() <= request.len(),
            "error response larger than the request"
        );
        let code = f[4];
        match expected_error {
            Some(e) => assert_eq!(code, e, "wrong error code"),
            None => assert!(opcode == OP_READVAR && code == 5, "unexpected error {code}"),
        }
        return;
    }
    assert_eq!(
        expected_error, None,
        "answered a request that must be an error"
    );
    match (opcode, association) {
        (OP_READSTAT, 0) => {
            assert_eq!(text.len(), 4 * snap.associations.len());
            for (pair, a) in text.chunks(4).zip(&snap.associations) {
                assert_eq!(word(pair, 0), a.id);
                assert_eq!(word(pair, 2), a.status.word());
            }
        }
        (OP_READSTAT, _) => assert!(text.is_empty()),
        _ => {
            let text = std::str::from_utf8(&text).expect("variable text is UTF-8");
            let names = requested(&request[HEADER_LEN..HEADER_LEN + count]);
            if !names.is_empty() && frags.len() == 1 {
                for item in text.split(", ").filter(|s| !s.is_empty()) {
                    let name = item.split('=').next().unwrap_or("");
                    assert!(names.iter().any(|n| n == name), "{name} was not asked for");
                }
            }
        }
    }
}
