//! Unit tests of the mode 6 responder: requests as ntpq and check_ntp_peer send them, the
//! responses read back the way those tools read them.

use super::*;
use std::collections::BTreeMap;

fn request(version: u8, opcode: u8, seq: u16, assoc: u16, data: &str) -> Vec<u8> {
    let mut b = vec![version << 3 | 6, opcode];
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&assoc.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&(data.len() as u16).to_be_bytes());
    b.extend_from_slice(data.as_bytes());
    b.resize(b.len().next_multiple_of(4), 0);
    b
}

struct Frag {
    li: u8,
    version: u8,
    rem_op: u8,
    seq: u16,
    status: u16,
    assoc: u16,
    offset: u16,
    data: Vec<u8>,
}

fn decode(d: &[u8]) -> Frag {
    assert!(
        d.len() >= HEADER_LEN && d.len().is_multiple_of(4),
        "length {}",
        d.len()
    );
    assert_eq!(d[0] & 7, 6, "mode");
    let w = |i: usize| u16::from_be_bytes([d[i], d[i + 1]]);
    let count = w(10) as usize;
    assert!(count <= MAX_DATA);
    assert!(HEADER_LEN + count <= d.len());
    assert!(d.len() - (HEADER_LEN + count) < 4, "only padding follows");
    Frag {
        li: d[0] >> 6,
        version: (d[0] >> 3) & 7,
        rem_op: d[1],
        seq: w(2),
        status: w(4),
        assoc: w(6),
        offset: w(8),
        data: d[HEADER_LEN..HEADER_LEN + count].to_vec(),
    }
}

/// Reassembles fragments as ntpq does: in offset order, no holes, More on all but the last.
fn reassemble(frags: &[Vec<u8>]) -> (Frag, Vec<u8>) {
    let decoded: Vec<Frag> = frags.iter().map(|f| decode(f)).collect();
    let mut data = Vec::new();
    for (i, f) in decoded.iter().enumerate() {
        assert_eq!(f.offset as usize, data.len(), "no hole before fragment {i}");
        let more = f.rem_op & 0x20 != 0;
        assert_eq!(more, i + 1 < decoded.len(), "More bit of fragment {i}");
        data.extend_from_slice(&f.data);
    }
    (decoded.into_iter().last().unwrap(), data)
}

/// Splits `a=1, b="x y", c=...` like ntpq's varlist parser.
fn vars(text: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8(text.to_vec()).unwrap();
    let mut out = BTreeMap::new();
    let mut item = String::new();
    let mut quoted = false;
    for c in text.chars().chain([',']) {
        match c {
            '"' => {
                quoted = !quoted;
                item.push(c);
            }
            ',' if !quoted => {
                let (k, v) = item.split_once('=').expect("name=value");
                assert!(out.insert(k.trim().into(), v.trim().into()).is_none());
                item.clear();
            }
            _ => item.push(c),
        }
    }
    out
}

fn peer(id: u16, selection: Selection, addr: &str) -> Association {
    Association {
        id,
        status: PeerStatus {
            configured: true,
            reachable: true,
            selection,
            ..PeerStatus::default()
        },
        vars: PeerVariables {
            srcadr: addr.parse().unwrap(),
            dstadr: None,
            leap: Leap::None,
            stratum: 1,
            precision: -20,
            root_delay: 0.0,
            root_dispersion: 0.000_5,
            refid: "GPS".into(),
            reference_time: NtpTimestamp::from_bits(0xe9a1_0000_8000_0000),
            rec: NtpTimestamp::from_bits(0xe9a1_0010_4000_0000),
            reach: 0o377,
            hmode: 3,
            pmode: 4,
            hpoll: 6,
            ppoll: 6,
            flash: 0,
            keyid: 0,
            offset: 0.001_25,
            delay: 0.000_4,
            dispersion: 0.002,
            jitter: 0.000_1,
            filter: vec![
                FilterSample {
                    delay: 0.000_4,
                    offset: 0.001_25,
                    dispersion: 0.002,
                };
                3
            ],
        },
    }
}

fn snapshot(n_peers: u16) -> ControlSnapshot {
    ControlSnapshot {
        status: SystemStatus {
            leap: Leap::None,
            source: ClockSource::Ntp,
            ..SystemStatus::default()
        },
        system: SystemVariables {
            version: "meridiand 0.1.0".into(),
            processor: "x86_64".into(),
            system: "Linux".into(),
            leap: Leap::None,
            stratum: 2,
            precision: -24,
            root_delay: 0.000_4,
            root_dispersion: 0.003,
            refid: "198.18.0.1".into(),
            reference_time: NtpTimestamp::from_bits(0xe9a1_0010_4000_0000),
            clock: NtpTimestamp::from_bits(0xe9a1_0020_0000_0000),
            peer: 1,
            tc: 6,
            mintc: 3,
            offset: -0.000_25,
            frequency_ppm: 12.5,
            sys_jitter: 0.000_1,
            clk_jitter: 0.000_2,
            clk_wander_ppm: 0.01,
        },
        associations: (1..=n_peers)
            .map(|i| {
                let sel = if i == 1 {
                    Selection::SysPeer
                } else {
                    Selection::Candidate
                };
                peer(i, sel, &format!("198.18.{}.{}:123", i / 256, i % 256))
            })
            .collect(),
    }
}

#[test]
fn status_words() {
    let sys = SystemStatus {
        leap: Leap::None,
        source: ClockSource::Ntp,
        ..Default::default()
    };
    assert_eq!(sys.word(), 0x0600);
    let unsync = SystemStatus {
        leap: Leap::Unsynchronized,
        ..Default::default()
    };
    assert_eq!(unsync.word(), 0xc000);
    let p = peer(1, Selection::SysPeer, "198.18.0.1:123").status;
    // configured (0x80) | reachable (0x10) | sys.peer (6), as ntpd shows "9614"-like words.
    assert_eq!(p.word() >> 8, 0x96);
    // check_ntp_peer's PEER_SEL: bits 8..10 of the word.
    assert_eq!((p.word() >> 8) & 7, 6);
}

#[test]
fn readstat_lists_associations_like_check_ntp_peer_reads_them() {
    let snap = snapshot(3);
    let frags = respond(&request(2, OP_READSTAT, 1, 0, ""), &snap).unwrap();
    assert_eq!(frags.len(), 1);
    let (f, data) = reassemble(&frags);
    assert_eq!(f.rem_op, 0x80 | OP_READSTAT, "response, no error, no more");
    assert_eq!((f.version, f.seq, f.assoc, f.li), (2, 1, 0, 0));
    assert_eq!(f.status, snap.status.word());
    assert_eq!(data.len(), 12);
    let pairs: Vec<(u16, u16)> = data
        .chunks(4)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u16::from_be_bytes([c[2], c[3]]),
            )
        })
        .collect();
    let ids: Vec<u16> = pairs.iter().map(|p| p.0).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    let sel: Vec<u16> = pairs.iter().map(|p| (p.1 >> 8) & 7).collect();
    assert_eq!(sel, vec![6, 4, 4]);
}

#[test]
fn readstat_unsynchronized_sets_li_alarm_and_lists_nothing() {
    let snap = ControlSnapshot {
        status: SystemStatus {
            leap: Leap::Unsynchronized,
            ..Default::default()
        },
        ..Default::default()
    };
    let frags = respond(&request(4, OP_READSTAT, 9, 0, ""), &snap).unwrap();
    let (f, data) = reassemble(&frags);
    assert_eq!(f.li, 3);
    assert!(data.is_empty());
    assert_eq!(frags[0].len(), HEADER_LEN);
}

#[test]
fn readvar_system_variables() {
    let snap = snapshot(1);
    let frags = respond(&request(4, OP_READVAR, 7, 0, ""), &snap).unwrap();
    let (f, data) = reassemble(&frags);
    assert_eq!((f.seq, f.assoc, f.status), (7, 0, 0x0600));
    let v = vars(&data);
    assert_eq!(v["version"], "\"meridiand 0.1.0\"");
    assert_eq!(v["leap"], "0");
    assert_eq!(v["stratum"], "2");
    assert_eq!(v["precision"], "-24");
    assert_eq!(v["refid"], "198.18.0.1");
    assert_eq!(v["reftime"], "0xe9a10010.40000000");
    assert_eq!(v["clock"], "0xe9a10020.00000000");
    assert_eq!(v["peer"], "1");
    assert_eq!(v["offset"].parse::<f64>().unwrap(), -0.25, "milliseconds");
    assert_eq!(v["rootdisp"].parse::<f64>().unwrap(), 3.0);
    assert_eq!(v["frequency"].parse::<f64>().unwrap(), 12.5);
    for name in [
        "tc",
        "mintc",
        "sys_jitter",
        "clk_jitter",
        "clk_wander",
        "rootdelay",
    ] {
        assert!(v.contains_key(name), "{name} missing");
    }
}

#[test]
fn readvar_peer_variables_for_ntpq_peers() {
    let snap = snapshot(2);
    let frags = respond(&request(4, OP_READVAR, 3, 1, ""), &snap).unwrap();
    let (f, data) = reassemble(&frags);
    assert_eq!(f.assoc, 1);
    // ntpq -p takes the tally character from the status of the READVAR response.
    assert_eq!((f.status >> 8) & 7, Selection::SysPeer as u16);
    let v = vars(&data);
    assert_eq!(v["srcadr"], "198.18.0.1");
    assert_eq!(v["srcport"], "123");
    assert_eq!(v["stratum"], "1");
    assert_eq!(v["refid"], "GPS");
    assert_eq!(v["hmode"], "3");
    assert_eq!(v["reach"], "0xff");
    assert_eq!(v["rec"], "0xe9a10010.40000000");
    assert_eq!(v["offset"].parse::<f64>().unwrap(), 1.25);
    assert_eq!(v["delay"].parse::<f64>().unwrap(), 0.4);
    assert_eq!(v["jitter"].parse::<f64>().unwrap(), 0.1);
    let filt: Vec<f64> = v["filtdisp"]
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(
        filt,
        vec![2.0, 2.0, 2.0, 16000.0, 16000.0, 16000.0, 16000.0, 16000.0]
    );
    assert!(
        !v.contains_key("dstadr"),
        "unknown local address is left out"
    );
}

#[test]
fn readvar_variable_list_as_check_ntp_peer_asks() {
    let snap = snapshot(1);
    let req = request(2, OP_READVAR, 2, 1, "stratum,offset,jitter");
    let (_, data) = reassemble(&respond(&req, &snap).unwrap());
    assert_eq!(
        String::from_utf8(data).unwrap(),
        "stratum=1, offset=1.250000, jitter=0.100000"
    );
    // Blanks, NUL padding and `=value` parts are ignored.
    let req = request(4, OP_READVAR, 2, 0, " leap , stratum=9\0");
    let (_, data) = reassemble(&respond(&req, &snap).unwrap());
    assert_eq!(String::from_utf8(data).unwrap(), "leap=0, stratum=2");
}

fn error_code(frags: &[Vec<u8>]) -> u8 {
    assert_eq!(frags.len(), 1);
    let f = decode(&frags[0]);
    assert_eq!(f.rem_op & 0xc0, 0xc0, "response with the error bit");
    assert_eq!(frags[0].len(), HEADER_LEN);
    (f.status >> 8) as u8
}

#[test]
fn errors_are_answered_with_their_codes() {
    let snap = snapshot(1);
    let answer = |req: Vec<u8>| error_code(&respond(&req, &snap).unwrap());
    assert_eq!(answer(request(4, OP_READVAR, 1, 0, "stratum,bogus")), 5);
    assert_eq!(answer(request(4, OP_READVAR, 1, 9, "")), 4);
    assert_eq!(answer(request(4, OP_READSTAT, 1, 9, "")), 4);
    for opcode in [0, 3, 4, 5, 6, 8, 10, 12, 31] {
        assert_eq!(answer(request(4, opcode, 1, 0, "")), 3, "opcode {opcode}");
    }
    let mut fragmented = request(4, OP_READVAR, 1, 0, "");
    fragmented[1] |= 0x20;
    assert_eq!(answer(fragmented), 2);
    let mut offset = request(4, OP_READVAR, 1, 0, "");
    offset[9] = 4;
    assert_eq!(answer(offset), 2);
}

#[test]
fn readstat_of_one_association_gives_its_status() {
    let snap = snapshot(2);
    let frags = respond(&request(4, OP_READSTAT, 1, 2, ""), &snap).unwrap();
    let (f, data) = reassemble(&frags);
    assert_eq!(f.status, snap.associations[1].status.word());
    assert!(data.is_empty());
}

#[test]
fn long_answers_are_fragmented() {
    // 300 associations: 1200 bytes of status pairs, three fragments.
    let snap = snapshot(300);
    let frags = respond(&request(4, OP_READSTAT, 5, 0, ""), &snap).unwrap();
    assert_eq!(frags.len(), 3);
    let sizes: Vec<usize> = frags.iter().map(|f| decode(f).data.len()).collect();
    assert_eq!(sizes, vec![MAX_DATA, MAX_DATA, 1200 - 2 * MAX_DATA]);
    let (_, data) = reassemble(&frags);
    assert_eq!(data.len(), 1200);
    let last_id = u16::from_be_bytes([data[1196], data[1197]]);
    assert_eq!(last_id, 300);
    for f in &frags {
        assert_eq!(decode(f).seq, 5);
        assert!(f.len() <= HEADER_LEN + MAX_DATA);
    }
    // Peer variables with eight filter stages exceed one fragment's data only when long; the
    // text reassembles into the same variables either way.
    let mut long = snapshot(1);
    long.associations[0].vars.refid = "X".repeat(600);
    let frags = respond(&request(4, OP_READVAR, 6, 1, ""), &long).unwrap();
    assert!(frags.len() >= 2);
    let (_, data) = reassemble(&frags);
    assert_eq!(vars(&data)["refid"].len(), 600);
}

#[test]
fn malformed_requests_and_responses_get_nothing() {
    let snap = snapshot(1);
    let good = request(4, OP_READSTAT, 1, 0, "");
    assert!(respond(&good, &snap).is_ok());
    for len in [0, 1, 11] {
        assert_eq!(
            respond(&good[..len], &snap),
            Err(ControlDrop::Malformed),
            "{len} bytes"
        );
    }
    for version in [0, 5, 7] {
        let mut r = good.clone();
        r[0] = version << 3 | 6;
        assert_eq!(respond(&r, &snap), Err(ControlDrop::Malformed));
    }
    for mode in [0, 3, 4, 7] {
        let mut r = good.clone();
        r[0] = 4 << 3 | mode;
        assert_eq!(respond(&r, &snap), Err(ControlDrop::Malformed));
    }
    // A count past the end of the datagram or beyond one fragment.
    let mut r = request(4, OP_READVAR, 1, 0, "abcd");
    r[11] = 9;
    assert_eq!(respond(&r, &snap), Err(ControlDrop::Malformed));
    let mut r = vec![0u8; HEADER_LEN + 472];
    r[..HEADER_LEN].copy_from_slice(&good[..HEADER_LEN]);
    r[10..12].copy_from_slice(&469u16.to_be_bytes());
    assert_eq!(respond(&r, &snap), Err(ControlDrop::Malformed));
    // Responses, with or without the error bit, are never answered.
    for bits in [0x80, 0xc0, 0xa0] {
        let mut r = good.clone();
        r[1] |= bits;
        assert_eq!(respond(&r, &snap), Err(ControlDrop::Response));
    }
}

#[test]
fn a_trailing_mac_is_ignored() {
    let snap = snapshot(1);
    let mut req = request(4, OP_READVAR, 4, 0, "stratum");
    req.resize(req.len().next_multiple_of(8), 0);
    req.extend_from_slice(&[0, 0, 0, 1]);
    req.extend_from_slice(&[0xab; 16]);
    let (_, data) = reassemble(&respond(&req, &snap).unwrap());
    assert_eq!(data, b"stratum=2");
}

/// attacks.md R2: arbitrary mode 6 bytes never panic, and error answers are never longer than the
/// request.
#[test]
fn arbitrary_bytes_never_panic_and_errors_never_amplify() {
    let snap = snapshot(2);
    let mut x: u64 = 0x1234_5678_9abc_def0;
    for len in 0..64usize {
        for _ in 0..200 {
            let mut b = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.push(x as u8);
            }
            if len > 0 && x.is_multiple_of(2) {
                b[0] = (b[0] & !7) | 6;
            }
            if let Ok(frags) = respond(&b, &snap) {
                for f in &frags {
                    let d = decode(f);
                    if d.rem_op & 0x40 != 0 {
                        assert!(f.len() <= b.len(), "error response larger than request");
                    }
                }
            }
        }
    }
}
