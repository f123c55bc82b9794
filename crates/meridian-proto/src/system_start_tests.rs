//! System-level tests of the first clock update: it combines the samples of the first burst
//! (`ClockFilter::start_estimate`) instead of trusting the newest one alone.

use crate::client::ClientConfig;
use crate::discipline::{ClockAdjustment, DisciplineConfig};
use crate::entropy::SplitMix64;
use crate::system::{System, SystemConfig};
use crate::time::{Mono, NtpDuration, NtpTimestamp, PollInterval};
use crate::wire::{parse, Header, Leap, Mode, ReferenceId};

fn local(secs: f64) -> NtpTimestamp {
    NtpTimestamp::from_unix(1_800_000_000, 0) + NtpDuration::from_seconds(secs)
}

/// One client of a server `ahead` s ahead of the local clock whose replies carry the
/// asymmetry errors `errors` (one exchange each, 16 s apart). As on a real path, an error e
/// comes with queueing: the round trip is 10 ms plus 2|e|, one way 5 ms + |e| + e. Returns
/// the adjustments the replies caused, in order.
pub(crate) fn first_burst(ahead: f64, errors: &[f64]) -> (System, Vec<ClockAdjustment>) {
    first_burst_with(DisciplineConfig::default(), ahead, errors)
}

fn first_burst_with(
    discipline: DisciplineConfig,
    ahead: f64,
    errors: &[f64],
) -> (System, Vec<ClockAdjustment>) {
    let mut s = System::new(SystemConfig {
        discipline,
        ..SystemConfig::for_tests()
    });
    let mut rng = SplitMix64::new(5);
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
    let mut out = Vec::new();
    let mut t = 0.0;
    for e in errors {
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
        let (rtt, one_way) = (0.01 + 2.0 * e.abs(), 0.005 + e.abs() + e);
        h.receive_ts = local(t + ahead + one_way);
        h.transmit_ts = local(t + ahead + one_way);
        let adj = s
            .handle_reply(id, Mono::from_seconds(t + rtt), local(t + rtt), &h)
            .expect("a genuine reply");
        out.push(adj);
    }
    (s, out)
}

#[test]
fn the_first_update_uses_the_whole_burst_not_its_last_sample() {
    // Three samples of a noisy path; the last one is the worst.
    let (s, adjustments) = first_burst(0.05, &[0.002, -0.003, 0.008]);
    let updates: Vec<_> = adjustments
        .iter()
        .map(|a| !matches!(a, ClockAdjustment::None))
        .collect();
    assert_eq!(
        updates,
        [false, false, true],
        "the first update comes with the third sample: {adjustments:?}"
    );
    // Weighted by their excess delays the three errors combine to about 1 ms; the newest
    // alone is 8 ms off.
    let offset = s.vars().offset;
    assert!(
        (offset - 0.05).abs() < 2e-3,
        "first offset {offset} is the burst's combination (~0.051), not the newest (0.058)"
    );
    let (estimate, _) = s.discipline().offset_estimate();
    assert!(
        (estimate - offset).abs() < 1e-9,
        "discipline starts from {estimate}"
    );
}

#[test]
fn after_the_first_update_each_sample_counts_on_its_own() {
    let (s, _) = first_burst(0.05, &[0.0, 0.0, 0.0, 0.0, 0.004]);
    // The fifth sample is an ordinary update (the test applies no adjustment to its clock):
    // the system offset is that sample's own, not a mean with the burst (0.0508).
    let offset = s.vars().offset;
    assert!(
        (offset - 0.054).abs() < 0.2e-3,
        "second update's offset {offset}: the newest sample"
    );
}

/// attacks.md D2, RFC 8633 s.5.2: sources that agree on a time before the floor (years
/// back) are refused even when the panic threshold would let the offset through; a time
/// after the floor is used as usual.
#[test]
fn no_update_sets_the_clock_before_the_time_floor() {
    let floor = local(0.0) - NtpDuration::from_seconds(86_400.0);
    let config = DisciplineConfig {
        panic_threshold: 1e9,
        time_floor: Some(floor),
        ..DisciplineConfig::default()
    };
    // A server three years behind: past the floor by far.
    let (s, adjustments) = first_burst_with(config, -1e8, &[0.0; 4]);
    assert!(
        matches!(adjustments.last(), Some(ClockAdjustment::BeforeFloor { offset }) if (offset + 1e8).abs() < 1.0),
        "{adjustments:?}"
    );
    assert!(!s.synchronized(), "refused, so not synchronized");
    // A server one hour behind stays after the floor: stepped as usual.
    let (s, adjustments) = first_burst_with(config, -3600.0, &[0.0; 4]);
    assert!(
        adjustments
            .iter()
            .any(|a| matches!(a, ClockAdjustment::Step { .. })),
        "{adjustments:?}"
    );
    assert!(s.synchronized());
}
