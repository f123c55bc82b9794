//! Symmetric association tests: the exchange in both directions, the timestamps on the wire,
//! crossing and lost packets, and every spoofing case of the attack guide (1.C, 1.D, 1.E):
//! a rejected packet changes nothing but the rejection counter, and the peer's next genuine
//! packet still counts.

use super::*;
use crate::entropy::SplitMix64;
use crate::keys::{Algorithm, Key, KeyId};
use crate::wire::{self, Leap, ReferenceId};

const DELAY: f64 = 0.01;

fn base() -> NtpTimestamp {
    NtpTimestamp::from_unix(1_800_000_000, 0)
}

fn state(stratum: u8) -> ServerState {
    ServerState {
        leap: if stratum < 16 {
            Leap::None
        } else {
            Leap::Unsynchronized
        },
        stratum,
        precision: -20,
        poll: 4,
        root_delay: NtpDuration::from_seconds(0.001),
        root_dispersion: NtpDuration::from_seconds(0.001),
        reference_id: ReferenceId([198, 18, 0, 99]),
        reference_ts: base(),
    }
}

fn key(id: u32) -> Key {
    Key::new(KeyId(id), Algorithm::Sha1, b"peer secret", true).unwrap()
}

fn config(key: Option<Key>) -> ClientConfig {
    ClientConfig {
        minpoll: PollInterval::new(4),
        maxpoll: PollInterval::new(4),
        key,
        ..Default::default()
    }
}

/// Two nodes on one true time axis, A 0 s and B `b_offset` s off, packets take `DELAY`.
struct Net {
    t: f64,
    b_offset: f64,
    rng: SplitMix64,
}

impl Net {
    fn new(b_offset: f64) -> Self {
        Self {
            t: 10.0,
            b_offset,
            rng: SplitMix64::new(5),
        }
    }
    fn a_local(&self) -> NtpTimestamp {
        base() + NtpDuration::from_seconds(self.t)
    }
    fn b_local(&self) -> NtpTimestamp {
        base() + NtpDuration::from_seconds(self.t + self.b_offset)
    }
    fn mono(&self) -> Mono {
        Mono::from_seconds(self.t)
    }
    /// A's poll: advances to its deadline and returns the packet (arrives DELAY later).
    fn a_poll(&mut self, a: &mut PeerAssociation, st: &ServerState) -> Vec<u8> {
        self.t = self.t.max(a.poll_timeout().unwrap().as_seconds());
        let (now, local) = (self.mono(), self.a_local());
        let req = a.handle_timeout(now, local, st, &mut self.rng).unwrap();
        self.t += DELAY;
        req.to_vec()
    }
    /// B (passive or active) receives `bytes`; a passive B answers.
    fn b_receive(
        &mut self,
        b: &mut PeerAssociation,
        bytes: &[u8],
        st: &ServerState,
    ) -> (Result<Reply, PacketChecks>, Option<Vec<u8>>) {
        let p = wire::parse(bytes).unwrap();
        let (now, rx) = (self.mono(), self.b_local());
        let r = b.handle_packet(now, rx, &p, -20);
        let answer = (r.is_ok() && b.role() == PeerRole::Passive).then(|| {
            let tx = self.b_local() + NtpDuration::from_seconds(0.0001);
            b.respond(&p.header, rx, st, &mut self.rng, || tx).to_vec()
        });
        if answer.is_some() {
            self.t += DELAY;
        }
        (r, answer)
    }
    fn a_receive(&mut self, a: &mut PeerAssociation, bytes: &[u8]) -> Result<Reply, PacketChecks> {
        let p = wire::parse(bytes).unwrap();
        a.handle_packet(self.mono(), self.a_local(), &p, -20)
    }
}

/// Runs `x`'s mode 3/4 calibration: its client request answered by the server path of the
/// other node (clock `server`, stratum 3, `key` trusted). Afterwards `x` sends mode 1.
fn calibrate(
    net: &mut Net,
    x: &mut PeerAssociation,
    key: Option<Key>,
    own: fn(&Net) -> NtpTimestamp,
    server: fn(&Net) -> NtpTimestamp,
) {
    net.t = net.t.max(x.poll_timeout().unwrap().as_seconds());
    let req = x
        .handle_timeout(net.mono(), own(net), &state(16), &mut net.rng)
        .unwrap();
    assert_eq!(wire::parse(&req).unwrap().header.mode, Mode::Client);
    net.t += DELAY;
    let rx = server(net);
    let tx = rx + NtpDuration::from_seconds(0.0001);
    let mut keys = crate::keys::KeyTable::new();
    if let Some(k) = key {
        keys.insert(k).unwrap();
    }
    let mut out = [0u8; crate::server::MAX_REPLY_LEN];
    let len =
        crate::server::respond_with_keys(&req, rx, &state(3), &keys, &mut net.rng, || tx, &mut out)
            .unwrap();
    net.t += DELAY;
    let p = wire::parse(&out[..len]).unwrap();
    let r = x.handle_packet(net.mono(), own(net), &p, -20);
    assert!(matches!(r, Ok(Reply::Sample(_))), "{r:?}");
    assert_eq!(x.calibration(), Some(Calibration::Done));
}

/// A (active, stratum `sa`) starts; B is created passive from A's first packet. Returns
/// both and B's answer to that first packet (already delivered to A: a sample for A).
fn establish(
    net: &mut Net,
    key: Option<Key>,
    sa: u8,
    sb: u8,
) -> (PeerAssociation, PeerAssociation) {
    let mut rng = SplitMix64::new(1);
    let mut a = PeerAssociation::active(config(key), net.mono(), Duration::ZERO, &mut rng);
    calibrate(net, &mut a, key, Net::a_local, Net::b_local);
    let first = net.a_poll(&mut a, &state(sa));
    let p = wire::parse(&first).unwrap();
    assert_eq!(p.header.mode, Mode::SymmetricActive);
    let (now, rx) = (net.mono(), net.b_local());
    let mut b = PeerAssociation::passive(config(key), &p.header, now, rx);
    let tx = net.b_local();
    let answer = b.respond(&p.header, rx, &state(sb), &mut net.rng, || tx);
    net.t += DELAY;
    let r = net.a_receive(&mut a, &answer).unwrap();
    assert!(
        matches!(r, Reply::Sample(_) | Reply::Unusable(_)),
        "A accepts B's first answer: {r:?}"
    );
    (a, b)
}

fn sample(r: Result<Reply, PacketChecks>) -> Measurement {
    match r {
        Ok(Reply::Sample(m)) => m,
        other => panic!("expected a sample, got {other:?}"),
    }
}

/// Asserts that `after` equals `before` except for one more rejection.
fn unchanged(before: &PeerAssociation, after: &PeerAssociation, what: &str) {
    let mut after = after.clone();
    assert_eq!(
        after.stats.rejected,
        before.stats.rejected + 1,
        "{what}: counted as rejected"
    );
    after.stats.rejected = before.stats.rejected;
    after.stats.last_rejection = before.stats.last_rejection;
    assert_eq!(
        format!("{before:?}"),
        format!("{after:?}"),
        "{what} changed the association"
    );
}

#[test]
fn active_and_passive_measure_each_other() {
    let mut net = Net::new(0.5);
    let (mut a, mut b) = establish(&mut net, None, 3, 4);
    assert_eq!(a.local_mode(), Mode::SymmetricActive);
    assert_eq!(b.local_mode(), Mode::SymmetricPassive);
    for _ in 0..3 {
        let pkt = net.a_poll(&mut a, &state(3));
        let (r, answer) = net.b_receive(&mut b, &pkt, &state(4));
        let m = sample(r);
        // B is 0.5 s ahead: A's time is 0.5 s behind B's.
        assert!((m.offset + 0.5).abs() < 1e-3, "B's offset {}", m.offset);
        let m = sample(net.a_receive(&mut a, &answer.unwrap()));
        assert!((m.offset - 0.5).abs() < 1e-3, "A's offset {}", m.offset);
        assert!((m.delay - 2.0 * DELAY).abs() < 1e-3, "delay {}", m.delay);
        net.t += 3.0;
    }
    assert_eq!(a.reach() & 1, 1);
    assert_eq!(b.reach() & 1, 1);
    assert_eq!(b.peer().unwrap().stratum, 3);
    assert_eq!(a.peer().unwrap().mode, Mode::SymmetricPassive);
}

#[test]
fn packets_carry_real_time_and_our_system_state() {
    let mut net = Net::new(0.0);
    let mut rng = SplitMix64::new(2);
    let mut a = PeerAssociation::active(config(None), net.mono(), Duration::ZERO, &mut rng);
    calibrate(&mut net, &mut a, None, Net::a_local, Net::b_local);
    net.t = a.poll_timeout().unwrap().as_seconds();
    let local = net.a_local();
    let pkt = net.a_poll(&mut a, &state(3));
    let h = wire::parse(&pkt).unwrap().header;
    let err = (h.transmit_ts - local).to_seconds().abs();
    assert!(err < 2e-6, "transmit timestamp is local time, {err} s off");
    assert_ne!(h.transmit_ts, local, "bits below the precision are random");
    assert_eq!((h.stratum, h.leap), (3, Leap::None));
    assert_eq!(h.reference_id, ReferenceId([198, 18, 0, 99]));
    assert!(h.origin_ts.is_zero() && h.receive_ts.is_zero());
}

#[test]
fn unsynchronized_peer_gives_no_sample() {
    let mut net = Net::new(0.2);
    let (mut a, mut b) = establish(&mut net, None, 16, 16);
    let pkt = net.a_poll(&mut a, &state(16));
    let (r, answer) = net.b_receive(&mut b, &pkt, &state(16));
    assert!(matches!(r, Ok(Reply::Unusable(c)) if c.unsynchronized));
    assert!(matches!(
        net.a_receive(&mut a, &answer.unwrap()),
        Ok(Reply::Unusable(c)) if c.unsynchronized
    ));
}

/// Forged packets toward B (the passive side) from A's address.
fn forgeries(net: &Net, a_pkt: &[u8], b: &PeerAssociation, keyed: bool) -> Vec<(String, Vec<u8>)> {
    let good = wire::parse(a_pkt).unwrap().header;
    let mut out = Vec::new();
    let mut forge = |what: &str, f: &dyn Fn(&mut Header)| {
        let mut h = good;
        h.transmit_ts = net.a_local() + NtpDuration::from_seconds(0.25);
        f(&mut h);
        out.push((what.to_owned(), h.to_bytes().to_vec()));
    };
    let b_last = b.sent.last().unwrap().wire;
    forge("mode 2 to a passive association", &|h| {
        h.mode = Mode::SymmetricPassive;
        h.origin_ts = b_last;
    });
    forge("bogus origin", &|h| {
        h.origin_ts = NtpTimestamp::from_bits(0x1234_5678)
    });
    forge("zero transmit", &|h| h.transmit_ts = NtpTimestamp::ZERO);
    forge("mode 4", &|h| h.mode = Mode::Server);
    forge("mode 3", &|h| h.mode = Mode::Client);
    out.push(("replay".to_owned(), a_pkt.to_vec()));
    let nak = |bytes: &[u8]| {
        let mut v = bytes[..HEADER_LEN].to_vec();
        v.extend_from_slice(&[0; 4]);
        v
    };
    out.push(("crypto-NAK".to_owned(), nak(&fresh(a_pkt, net, None))));
    if keyed {
        let mut bad = fresh(a_pkt, net, Some(key(7)));
        let last = bad.len() - 1;
        bad[last] ^= 1;
        out.push(("bad MAC".to_owned(), bad));
        out.push(("no MAC".to_owned(), fresh(a_pkt, net, None)));
        out.push(("another key".to_owned(), fresh(a_pkt, net, Some(key(8)))));
    }
    out
}

/// `pkt` with a new transmit timestamp (so it is no replay), signed with `key` if given.
fn fresh(pkt: &[u8], net: &Net, key: Option<Key>) -> Vec<u8> {
    let mut h = wire::parse(pkt).unwrap().header;
    h.transmit_ts = net.a_local() + NtpDuration::from_seconds(0.5);
    let mut buf = [0u8; MAX_REQUEST_LEN];
    buf[..HEADER_LEN].copy_from_slice(&h.to_bytes());
    let len = match key {
        Some(k) => auth::append_mac(&k, &mut buf, HEADER_LEN).unwrap(),
        None => HEADER_LEN,
    };
    buf[..len].to_vec()
}

fn spoof_passive(keyed: bool) {
    let k = keyed.then(|| key(7));
    let mut net = Net::new(0.3);
    let (mut a, mut b) = establish(&mut net, k, 3, 4);
    // One genuine round so that B has a fresh transmission of its own outstanding.
    let pkt = net.a_poll(&mut a, &state(3));
    let (r, answer) = net.b_receive(&mut b, &pkt, &state(4));
    sample(r);
    sample(net.a_receive(&mut a, &answer.unwrap()));
    for (what, bytes) in forgeries(&net, &pkt, &b, keyed) {
        let before = b.clone();
        let (r, answer) = net.b_receive(&mut b, &bytes, &state(4));
        assert!(r.is_err(), "{what} accepted: {r:?}");
        assert!(answer.is_none(), "{what} answered");
        unchanged(&before, &b, &what);
    }
    // The genuine next packet still gives B a sample, and B's answer gives A one.
    net.t += 2.0;
    let pkt = net.a_poll(&mut a, &state(3));
    let (r, answer) = net.b_receive(&mut b, &pkt, &state(4));
    sample(r);
    sample(net.a_receive(&mut a, &answer.unwrap()));
    if keyed {
        assert_eq!(b.auth_status(), "ok");
    }
}

/// attacks.md S1: forged packets (bogus origin, zero transmit, replays, wrong modes,
/// crypto-NAKs) change nothing on the passive side.
#[test]
fn forged_packets_change_nothing_on_the_passive_side() {
    spoof_passive(false);
}

/// attacks.md S1, K1: the same forgeries against a keyed passive side change nothing.
#[test]
fn forged_packets_change_nothing_on_a_keyed_passive_side() {
    spoof_passive(true);
}

/// attacks.md S1: forged answers change nothing on the active side, keyed or not.
#[test]
fn forged_answers_change_nothing_on_the_active_side() {
    for keyed in [false, true] {
        let k = keyed.then(|| key(7));
        let mut net = Net::new(-0.3);
        let (mut a, mut b) = establish(&mut net, k, 4, 3);
        let pkt = net.a_poll(&mut a, &state(4));
        let (r, answer) = net.b_receive(&mut b, &pkt, &state(3));
        sample(r);
        let answer = answer.unwrap();
        let good = wire::parse(&answer).unwrap().header;
        let a_last = a.sent.last().unwrap().wire;
        let mut forged: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut h = good;
        h.origin_ts = NtpTimestamp::from_bits(0x0bad_0bad);
        forged.push(("bogus origin", h.to_bytes().to_vec()));
        let mut h = good;
        h.mode = Mode::Server;
        forged.push(("mode 4 with the right origin", h.to_bytes().to_vec()));
        let mut h = good;
        h.mode = Mode::Broadcast;
        forged.push(("mode 5", h.to_bytes().to_vec()));
        let mut nak = answer[..HEADER_LEN].to_vec();
        nak.extend_from_slice(&[0; 4]);
        forged.push(("crypto-NAK with the right origin", nak));
        if keyed {
            forged.push(("no MAC", answer[..HEADER_LEN].to_vec()));
            let mut bad = answer.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x80;
            forged.push(("bad MAC", bad));
        }
        assert_eq!(good.origin_ts, a_last);
        for (what, bytes) in forged {
            let before = a.clone();
            assert!(net.a_receive(&mut a, &bytes).is_err(), "{what} accepted");
            unchanged(&before, &a, what);
        }
        let m = sample(net.a_receive(&mut a, &answer));
        assert!((m.offset + 0.3).abs() < 1e-3);
        // Duplicate of the accepted answer.
        assert!(matches!(net.a_receive(&mut a, &answer), Err(c) if c.duplicate));
    }
}

#[test]
fn at_most_one_sample_per_transmission_and_no_replay_of_older_packets() {
    let mut net = Net::new(0.1);
    let (mut a, mut b) = establish(&mut net, None, 3, 4);
    let p1 = net.a_poll(&mut a, &state(3));
    let (r, answer) = net.b_receive(&mut b, &p1, &state(4));
    sample(r);
    // The same packet again, as sent: a duplicate.
    assert!(matches!(net.b_receive(&mut b, &p1, &state(4)).0, Err(c) if c.duplicate));
    sample(net.a_receive(&mut a, &answer.unwrap()));
    net.t += 1.0;
    let p2 = net.a_poll(&mut a, &state(3));
    let (r, _) = net.b_receive(&mut b, &p2, &state(4));
    sample(r);
    // The older genuine packet again: refused.
    let before = b.clone();
    let (r, answer) = net.b_receive(&mut b, &p1, &state(4));
    assert!(matches!(r, Err(c) if c.duplicate), "{r:?}");
    assert!(answer.is_none());
    unchanged(&before, &b, "replay of an older packet");
}

#[test]
fn crossing_packets_of_two_active_peers_recover() {
    let mut net = Net::new(0.2);
    let mut rng = SplitMix64::new(3);
    let mut a = PeerAssociation::active(config(None), net.mono(), Duration::ZERO, &mut rng);
    let mut b = PeerAssociation::active(config(None), net.mono(), Duration::ZERO, &mut rng);
    calibrate(&mut net, &mut a, None, Net::a_local, Net::b_local);
    calibrate(&mut net, &mut b, None, Net::b_local, Net::a_local);
    let mut samples = (0, 0);
    for round in 0..12 {
        // Both send before either receives: the packets cross.
        let (now, la, lb) = (net.mono(), net.a_local(), net.b_local());
        let pa = a.handle_timeout(now, la, &state(3), &mut net.rng);
        let pb = b.handle_timeout(now, lb, &state(4), &mut net.rng);
        net.t += DELAY;
        if let Some(pb) = pb {
            if matches!(net.a_receive(&mut a, &pb), Ok(Reply::Sample(_))) {
                samples.0 += 1;
            }
        }
        if let Some(pa) = pa {
            let (r, answer) = net.b_receive(&mut b, &pa, &state(4));
            assert!(answer.is_none(), "an active side does not answer");
            if matches!(r, Ok(Reply::Sample(_))) {
                samples.1 += 1;
            }
        }
        // Every third round only A polls, so the polls drift apart.
        net.t += if round % 3 == 0 { 8.0 } else { 16.0 };
    }
    assert!(samples.0 >= 6 && samples.1 >= 6, "samples {samples:?}");
}

#[test]
fn lost_answers_do_not_stall_the_passive_side() {
    let mut net = Net::new(0.2);
    let (mut a, mut b) = establish(&mut net, None, 3, 4);
    for _ in 0..4 {
        let pkt = net.a_poll(&mut a, &state(3));
        let (r, _lost) = net.b_receive(&mut b, &pkt, &state(4));
        assert!(r.is_ok(), "{r:?}");
        net.t += 16.0;
    }
    let pkt = net.a_poll(&mut a, &state(3));
    let (_, answer) = net.b_receive(&mut b, &pkt, &state(4));
    sample(net.a_receive(&mut a, &answer.unwrap()));
    net.t += 16.0;
    let pkt = net.a_poll(&mut a, &state(3));
    let (r, _) = net.b_receive(&mut b, &pkt, &state(4));
    sample(r);
}

#[test]
fn origin_zero_restart_is_accepted_without_a_sample() {
    let mut net = Net::new(0.2);
    let (_, mut b) = establish(&mut net, None, 3, 4);
    // A restarts: a new active association with nothing of B's.
    let mut rng = SplitMix64::new(9);
    let mut a = PeerAssociation::active(config(None), net.mono(), Duration::ZERO, &mut rng);
    net.t += 1.0;
    calibrate(&mut net, &mut a, None, Net::a_local, Net::b_local);
    let pkt = net.a_poll(&mut a, &state(3));
    let reach = b.reach();
    let (r, answer) = net.b_receive(&mut b, &pkt, &state(4));
    assert!(matches!(r, Ok(Reply::Handshake)), "{r:?}");
    assert_eq!(b.reach(), reach, "no reach from a handshake");
    sample(net.a_receive(&mut a, &answer.unwrap()));
    net.t += 16.0;
    let pkt = net.a_poll(&mut a, &state(3));
    sample(net.b_receive(&mut b, &pkt, &state(4)).0);
}

#[test]
fn passive_expires_after_twelve_idle_minutes_only() {
    let mut net = Net::new(0.0);
    let (mut a, mut b) = establish(&mut net, None, 3, 4);
    let start = net.mono();
    assert!(!b.expired(start + Duration::from_secs(700)));
    net.t += 600.0;
    let pkt = net.a_poll(&mut a, &state(3));
    net.b_receive(&mut b, &pkt, &state(4)).0.unwrap();
    assert!(!b.expired(start + Duration::from_secs(800)), "refreshed");
    // Forged packets do not keep it alive.
    let forged = forgeries(&net, &pkt, &b, false);
    net.t += 700.0;
    for (_, bytes) in forged {
        let _ = net.b_receive(&mut b, &bytes, &state(4));
    }
    assert!(b.expired(net.mono() + Duration::from_secs(30)));
    assert!(!a.expired(net.mono() + Duration::from_secs(3600)), "static");
}

#[test]
fn a_step_moves_the_remembered_send_times() {
    let mut net = Net::new(0.0);
    let (mut a, mut b) = establish(&mut net, None, 3, 4);
    let pkt = net.a_poll(&mut a, &state(3));
    let (_, answer) = net.b_receive(&mut b, &pkt, &state(4));
    // A's clock is stepped forward by 1 s before the answer arrives.
    a.apply_step(1.0);
    let answer = answer.unwrap();
    let p = wire::parse(&answer).unwrap();
    let rx = net.a_local() + NtpDuration::from_seconds(1.0);
    let m = sample(a.handle_packet(net.mono(), rx, &p, -20));
    assert!((m.offset + 1.0).abs() < 1e-3, "offset {}", m.offset);
    assert!(m.delay < 0.05, "delay {}", m.delay);
}
