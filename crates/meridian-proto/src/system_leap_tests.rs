//! System-level tests of attacks.md C7: a leap announcement needs a majority of the voting
//! sources, and packets that fail the packet tests (origin, authentication) change no peer
//! variable, so they cannot announce anything.

use crate::auth;
use crate::client::ClientConfig;
use crate::entropy::SplitMix64;
use crate::keys::{Algorithm, Key, KeyId};
use crate::system::{SourceId, System, SystemConfig};
use crate::time::{Mono, NtpDuration, NtpTimestamp, PollInterval};
use crate::wire::{self, Header, Leap, Mode, ReferenceId, HEADER_LEN};

/// 2026-12-31 00:00 UTC: the last day of a month, so a majority may arm a leap.
const DEC_31: i64 = 1_798_675_200;

fn local(secs: f64) -> NtpTimestamp {
    NtpTimestamp::from_unix(DEC_31, 0) + NtpDuration::from_seconds(secs)
}

fn mono(secs: f64) -> Mono {
    Mono::from_seconds(100.0 + secs)
}

fn key() -> Key {
    Key::new(KeyId(5), Algorithm::Aes128Cmac, &[9; 16], true).unwrap()
}

struct Net {
    system: System,
    ids: Vec<SourceId>,
    rng: SplitMix64,
    /// The last request of each source (its transmit nonce), in the order of `ids`.
    outstanding: Vec<Option<NtpTimestamp>>,
    keyed: bool,
}

impl Net {
    fn new(sources: usize, keyed: bool) -> Self {
        let mut rng = SplitMix64::new(42);
        let mut system = System::new(SystemConfig::for_tests());
        let config = ClientConfig {
            iburst: true,
            minpoll: PollInterval::new(4),
            maxpoll: PollInterval::new(6),
            key: keyed.then(key),
            ..Default::default()
        };
        let ids = (0..sources)
            .map(|i| {
                let refid = ReferenceId([198, 18, 0, i as u8 + 1]);
                system.add_client(config, refid, false, mono(0.0), &mut rng)
            })
            .collect();
        Self {
            system,
            ids,
            rng,
            outstanding: vec![None; sources],
            keyed,
        }
    }

    /// A server reply to the request with nonce `origin`, 1 ms each way, server on time.
    fn reply(&self, origin: NtpTimestamp, t: f64, leap: Leap) -> Vec<u8> {
        let mut h = Header::new(Mode::Server);
        h.leap = leap;
        h.stratum = 1;
        h.precision = -20;
        h.reference_id = ReferenceId(*b"GPS\0");
        h.reference_ts = local(t - 8.0);
        h.origin_ts = origin;
        h.receive_ts = local(t + 0.001);
        h.transmit_ts = local(t + 0.001_01);
        let mut buf = [0u8; 96];
        buf[..HEADER_LEN].copy_from_slice(&h.to_bytes());
        let len = if self.keyed {
            auth::append_mac(&key(), &mut buf, HEADER_LEN).unwrap()
        } else {
            HEADER_LEN
        };
        buf[..len].to_vec()
    }

    fn deliver(&mut self, k: usize, t: f64, bytes: &[u8]) -> bool {
        let packet = wire::parse(bytes).unwrap();
        self.system
            .handle_reply(self.ids[k], mono(t), local(t + 0.002_01), &packet)
            .is_ok()
    }

    /// Runs `secs` seconds: every due request is answered by its server with leap bits
    /// `leaps[k]`; before each real reply, `spoof` may deliver forged packets.
    fn run(
        &mut self,
        from: f64,
        secs: f64,
        leaps: &[Leap],
        mut spoof: impl FnMut(&mut Self, usize, f64),
    ) {
        let mut t = from;
        while t < from + secs {
            let due = self.system.handle_timeout(mono(t), local(t), &mut self.rng);
            for (id, request) in due {
                let k = self.ids.iter().position(|i| *i == id).unwrap();
                let nonce = wire::parse(&request).unwrap().header.transmit_ts;
                self.outstanding[k] = Some(nonce);
                spoof(self, k, t);
                let reply = self.reply(nonce, t, leaps[k]);
                assert!(
                    self.deliver(k, t, &reply),
                    "real reply of source {k} refused"
                );
            }
            t += 1.0;
        }
    }

    fn leap(&self) -> Leap {
        self.system.vars().leap
    }
}

fn no_spoof(_: &mut Net, _: usize, _: f64) {}

/// attacks.md C7: one of three sources announcing a leap second arms nothing.
#[test]
fn c7_one_of_three_announcing_arms_nothing() {
    let mut net = Net::new(3, false);
    let leaps = [Leap::AddSecond, Leap::None, Leap::None];
    net.run(0.0, 600.0, &leaps, no_spoof);
    assert!(net.system.synchronized());
    assert_eq!(net.leap(), Leap::None);
    // Whichever source is the system peer: the lone announcer alone never arms it.
    let leaps = [Leap::None, Leap::None, Leap::DeleteSecond];
    net.run(600.0, 600.0, &leaps, no_spoof);
    assert!(net.system.synchronized());
    assert_eq!(net.leap(), Leap::None);
}

/// attacks.md C7: two of three sources announcing arm the leap second; withdrawn, it goes.
#[test]
fn c7_two_of_three_announcing_arm_the_leap() {
    let mut net = Net::new(3, false);
    net.run(0.0, 600.0, &[Leap::None; 3], no_spoof);
    assert!(net.system.synchronized());
    assert_eq!(net.leap(), Leap::None);
    let leaps = [Leap::AddSecond, Leap::None, Leap::AddSecond];
    net.run(600.0, 600.0, &leaps, no_spoof);
    assert_eq!(net.leap(), Leap::AddSecond);
    // The served leap bits follow.
    assert_eq!(net.system.server_state(mono(1200.0)).leap, Leap::AddSecond);
    // The announcement withdrawn by one of the two: disarmed.
    let leaps = [Leap::AddSecond, Leap::None, Leap::None];
    net.run(1200.0, 600.0, &leaps, no_spoof);
    assert_eq!(net.leap(), Leap::None);
    let leaps = [Leap::DeleteSecond; 3];
    net.run(1800.0, 600.0, &leaps, no_spoof);
    assert_eq!(net.leap(), Leap::DeleteSecond);
}

/// attacks.md C7: forged replies with LI=1 and another stratum (wrong origin, zero origin)
/// before every real reply of every source change no peer variable and arm nothing.
#[test]
fn c7_invalid_packets_announcing_a_leap_have_no_effect() {
    let mut net = Net::new(3, false);
    let spoof = |net: &mut Net, k: usize, t: f64| {
        let nonce = net.outstanding[k].unwrap();
        let wrong = NtpTimestamp::from_bits(nonce.to_bits() ^ 0x1234_5678);
        for origin in [wrong, NtpTimestamp::ZERO] {
            let mut forged = net.reply(origin, t, Leap::AddSecond);
            forged[1] = 3; // also a different stratum
            assert!(!net.deliver(k, t, &forged));
        }
    };
    net.run(0.0, 1200.0, &[Leap::None; 3], spoof);
    assert!(net.system.synchronized());
    assert_eq!(net.leap(), Leap::None);
    for (_, s) in net.system.sources() {
        let peer = s.association.peer().expect("real replies arrived");
        assert_eq!((peer.leap, peer.stratum), (Leap::None, 1));
    }
}

/// attacks.md C7 (CVE-2016-4955): on keyed associations, replies with the right origin but
/// a bad MAC, no MAC or a crypto-NAK announcing a leap change nothing, from every source.
#[test]
fn c7_unauthenticated_leap_bits_on_keyed_associations_have_no_effect() {
    let mut net = Net::new(3, true);
    let spoof = |net: &mut Net, k: usize, t: f64| {
        let nonce = net.outstanding[k].unwrap();
        let genuine = net.reply(nonce, t, Leap::AddSecond);
        let mut bad_mac = genuine.clone();
        *bad_mac.last_mut().unwrap() ^= 0x40;
        let bare = genuine[..HEADER_LEN].to_vec();
        let mut nak = bare.clone();
        nak.extend_from_slice(&[0; 4]);
        for forged in [bad_mac, bare, nak] {
            assert!(!net.deliver(k, t, &forged));
        }
    };
    net.run(0.0, 1200.0, &[Leap::None; 3], spoof);
    assert!(net.system.synchronized());
    assert_eq!(net.leap(), Leap::None);
    for (_, s) in net.system.sources() {
        assert_eq!(s.association.peer().unwrap().leap, Leap::None);
    }
}
