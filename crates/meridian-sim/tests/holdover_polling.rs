//! A server that goes away for most of a day and comes back: the client must use the time it
//! is back (poll again at minpoll, then lengthen) rather than keep its backed-off interval.

use meridian_proto::discipline::DisciplineState;
use meridian_sim::{client_config, Link, NodeSpec, Simulation};

const DAY: f64 = 86_400.0;

/// A stratum-1 server that answers only in the first 30 minutes (offline until the next
/// day), and a client 10 ppm off with the given initial offset (s) and wander polling it
/// (minpoll 6, maxpoll 10) over a LAN link with `jitter` (s). Returns the simulation and
/// the client's node.
fn up_half_an_hour_a_day(
    seed: u64,
    initial_offset: f64,
    wander_ppm: f64,
    jitter: f64,
    iburst: bool,
) -> (Simulation, usize) {
    let mut sim = Simulation::new(seed);
    let server = sim.add_node(NodeSpec {
        local_reference_stratum: Some(1),
        ..Default::default()
    });
    let client = sim.add_node(NodeSpec {
        initial_offset,
        frequency_ppm: 10.0,
        wander_ppm,
        ..Default::default()
    });
    sim.set_link(client, server, Link::lan(0.0001, jitter));
    sim.add_server(client, server, client_config(6, 10, iburst));
    sim.set_offline(server, 1800.0, DAY);
    (sim, client)
}

/// Requests the client has sent and replies it has received, over all its sources.
fn counters(sim: &Simulation, client: usize) -> (u64, u64) {
    sim.nodes[client]
        .system
        .sources()
        .map(|(_, s)| s.association.stats())
        .fold((0, 0), |(a, b), st| (a + st.sent, b + st.received))
}

/// Up for 30 minutes, down until the next day, up for 30 minutes again: in the second window
/// the client polls at minpoll (2^6 s) right after the first reply, and lengthens the poll
/// from there as the discipline allows, instead of keeping the 1,024 s interval it backed
/// off to; and it sends no storm.
#[test]
fn a_returning_server_is_polled_at_minpoll_again() {
    for iburst in [false, true] {
        let (mut sim, client) = up_half_an_hour_a_day(3, 0.01, 1e-3, 100e-6, iburst);
        sim.run(DAY, 10.0, |_| {});
        let (sent_before, received_before) = counters(&sim, client);
        assert!(
            sim.nodes[client].system.vars().poll.log2() > 6,
            "iburst {iburst}: the poll had grown before the outage"
        );
        // Times (1 s resolution) at which replies arrived in the window.
        let mut replies = Vec::new();
        let mut last = received_before;
        sim.run(DAY + 1800.0, 1.0, |s| {
            let (_, r) = counters(s, client);
            if r > last {
                replies.push(s.now - DAY);
                last = r;
            }
        });
        let (sent, received) = counters(&sim, client);
        let (sent, received) = (sent - sent_before, received - received_before);
        // The first reply comes within the backed-off interval; the next ones at most
        // minpoll (2^6 s) later (2 s with iburst: the burst), not a backed-off interval.
        assert!(
            replies.len() >= 3,
            "iburst {iburst}: replies at {replies:?}"
        );
        let second = replies[1] - replies[0];
        let want = if iburst { 3.0 } else { 65.0 };
        assert!(
            second <= want,
            "iburst {iburst}: second reply {second} s after the first: {replies:?}"
        );
        assert!(
            received >= if iburst { 8 } else { 5 },
            "iburst {iburst}: {received} replies in the window: {replies:?}"
        );
        // No storm: polls at minpoll from the first one in the window, plus one burst.
        assert!(
            sent <= 1800 / 60 + 4,
            "iburst {iburst}: {sent} requests in the 30 min window"
        );
    }
}

/// A noisy path (10 ms jitter) up for the first 30 minutes only: while the discipline is
/// still learning the frequency (`Training`), the poll stays at minpoll, so the window brings
/// a sample a minute rather than a lengthening poll's handful, and the day of holdover that
/// follows starts from a better frequency (before: a dozen replies and up to 1.2 s off by
/// the end of the day on these seeds).
#[test]
fn a_noisy_first_window_is_sampled_at_minpoll_while_training() {
    let mut runs = Vec::new();
    for seed in 1..=6 {
        let (mut sim, client) = up_half_an_hour_a_day(seed, 0.05, 1e-4, 10e-3, true);
        let mut training_polls = Vec::new();
        sim.run(1800.0, 1.0, |s| {
            let system = &s.nodes[client].system;
            if system.discipline().state() == DisciplineState::Training {
                training_polls.push(system.vars().poll.log2());
            }
        });
        let (_, received) = counters(&sim, client);
        let longest = training_polls.iter().copied().max().unwrap_or(6);
        let sd_ppm = sim.nodes[client].system.discipline().frequency_sd_ppm();
        let mut error = 0.0f64;
        sim.run(DAY - 1.0, 60.0, |s| {
            error = error.max(s.error(client).abs())
        });
        runs.push((seed, longest, received, sd_ppm, error));
    }
    eprintln!(
        "(seed, longest poll while training, replies in the window, frequency sd (ppm) at \
         its end, worst offset): {runs:?}"
    );
    for &(seed, longest, received, sd_ppm, _) in &runs {
        assert_eq!(
            longest, 6,
            "seed {seed}: the poll grew while training: {runs:?}"
        );
        assert!(
            received >= 25,
            "seed {seed}: replies in the window: {runs:?}"
        );
        // A dozen replies left 1.9-5.0 ppm on these seeds; ~30 leave 1.1-1.5 ppm.
        assert!(sd_ppm < 2.0, "seed {seed}: frequency uncertainty: {runs:?}");
    }
    // The day's worst offsets (RMS over the seeds): 0.54 s with a dozen replies, ~0.1 s now.
    let rms = (runs.iter().map(|r| r.4 * r.4).sum::<f64>() / runs.len() as f64).sqrt();
    assert!(
        rms < 0.25,
        "worst offsets over the day of holdover, RMS {rms} s: {runs:?}"
    );
}
