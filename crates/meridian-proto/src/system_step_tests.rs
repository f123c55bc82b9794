//! System-level tests of `System::handle_external_step`: a step of the clock made outside
//! the core moves the stored samples with it, a leap second executed by the kernel does not.

use crate::client::ClientConfig;
use crate::discipline::DisciplineConfig;
use crate::entropy::SplitMix64;
use crate::system::{System, SystemConfig};
use crate::time::{Mono, NtpDuration, NtpTimestamp, PollInterval};
use crate::wire::{parse, Header, Leap, Mode, ReferenceId};

fn local(secs: f64) -> NtpTimestamp {
    NtpTimestamp::from_unix(1_800_000_000, 0) + NtpDuration::from_seconds(secs)
}

/// A system with one server that is `ahead` seconds ahead of the local clock, after `n`
/// exchanges 16 s apart (a 1 ms round trip each).
fn system_with_samples(n: usize, ahead: f64) -> System {
    let mut s = System::new(SystemConfig {
        precision: -20,
        local_reference: None,
        discipline: DisciplineConfig::default(),
        initial_frequency_ppm: 0.0,
        min_survivors: 1,
    });
    let mut rng = SplitMix64::new(3);
    let config = ClientConfig {
        minpoll: PollInterval::new(4),
        maxpoll: PollInterval::new(4),
        ..Default::default()
    };
    let id = s.add_client(
        config,
        ReferenceId([198, 18, 0, 1]),
        false,
        Mono::from_seconds(0.0),
        &mut rng,
    );
    let mut t = 0.0;
    for _ in 0..n {
        t += 16.0;
        let sent = s.handle_timeout(Mono::from_seconds(t), local(t), &mut rng);
        let (_, request) = sent.into_iter().next().expect("a request is due");
        let req = parse(&request).unwrap().header;
        let mut h = Header::new(Mode::Server);
        h.leap = Leap::None;
        h.stratum = 1;
        h.precision = -20;
        h.reference_id = ReferenceId(*b"GPS\0");
        h.reference_ts = local(t + ahead - 1.0);
        h.origin_ts = req.transmit_ts;
        h.receive_ts = local(t + ahead + 0.0005);
        h.transmit_ts = local(t + ahead + 0.0005);
        s.handle_reply(id, Mono::from_seconds(t + 0.001), local(t + 0.001), &h)
            .expect("a genuine reply");
    }
    s
}

fn stored_offsets(s: &System) -> Vec<f64> {
    let (_, source) = s.sources().next().expect("one source");
    source.filter.samples().map(|x| x.offset).collect()
}

#[test]
fn an_external_step_moves_the_stored_samples_with_the_clock() {
    let mut s = system_with_samples(5, 0.0);
    let before = stored_offsets(&s);
    assert_eq!(before.len(), 5);
    assert!(before.iter().all(|o| o.abs() < 1e-3), "{before:?}");
    // Someone sets the clock forward 100 s: the server now reads 100 s behind us.
    assert!(s.handle_external_step(100.0));
    let after = stored_offsets(&s);
    for (b, a) in before.iter().zip(&after) {
        assert!((a - (b - 100.0)).abs() < 1e-9, "{b} -> {a}");
    }
    // Nothing to do for no step or nonsense.
    assert!(!s.handle_external_step(0.0));
    assert!(!s.handle_external_step(f64::NAN));
    assert_eq!(stored_offsets(&s), after);
}

#[test]
fn a_leap_second_executed_by_the_kernel_is_not_an_external_step() {
    let mut s = system_with_samples(5, 0.0);
    let before = stored_offsets(&s);
    s.vars.leap = Leap::AddSecond;
    assert!(!s.handle_external_step(-1.0), "the inserted second");
    assert_eq!(stored_offsets(&s), before);
    // Anything else while a leap is announced is still an external step.
    assert!(s.handle_external_step(-5.0));
    assert!((stored_offsets(&s)[0] - (before[0] + 5.0)).abs() < 1e-9);
}
