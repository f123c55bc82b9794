//! Deterministic simulations of one client and one server through the real protocol core:
//! time to synchronize and accuracy after convergence, with pass limits.

use meridian_sim::{client_config, Link, NodeSpec, OffsetStats, Simulation};

struct Outcome {
    /// First true time after which the client's error stayed below 1 ms.
    sync_time: Option<f64>,
    after: OffsetStats,
    steps: u32,
    synchronized: bool,
}

struct Scenario {
    epoch_unix: i64,
    seed: u64,
    offset: f64,
    ppm: f64,
    link: Link,
    minpoll: i8,
    maxpoll: i8,
    duration: f64,
    settle: f64,
}

fn run(s: Scenario) -> Outcome {
    let mut sim = Simulation::new(s.seed);
    let server = sim.add_node(NodeSpec {
        local_reference_stratum: Some(1),
        epoch_unix: s.epoch_unix,
        ..Default::default()
    });
    let client = sim.add_node(NodeSpec {
        initial_offset: s.offset,
        frequency_ppm: s.ppm,
        epoch_unix: s.epoch_unix,
        ..Default::default()
    });
    sim.set_link(client, server, s.link);
    sim.add_server(client, server, client_config(s.minpoll, s.maxpoll, true));
    let mut series = Vec::new();
    sim.run(s.duration, 1.0, |sim| {
        let e = sim.error(client);
        series.push((sim.now, e));
    });
    let sync_time = match series.iter().rposition(|(_, e)| e.abs() >= 1e-3) {
        None => Some(0.0),
        Some(i) => series.get(i + 1).map(|(t, _)| *t),
    };
    let after: Vec<f64> = series
        .iter()
        .filter(|(t, _)| *t >= s.settle)
        .map(|(_, e)| *e)
        .collect();
    Outcome {
        sync_time,
        after: OffsetStats::of(&after),
        steps: sim.nodes[client].steps,
        synchronized: sim.nodes[client].system.synchronized(),
    }
}

#[test]
fn two_seconds_off_fifty_ppm_hundred_microseconds_jitter() {
    for seed in 1..=3 {
        let o = run(Scenario {
            epoch_unix: meridian_sim::clock::EPOCH_UNIX,
            seed,
            offset: 2.0,
            ppm: 50.0,
            link: Link::lan(0.0005, 0.0001),
            minpoll: 4,
            maxpoll: 6,
            duration: 4.0 * 3600.0,
            settle: 3600.0,
        });
        eprintln!(
            "seed {seed}: synchronized after {:?} s, then RMS {:.1} us, max {:.1} us, {} step(s)",
            o.sync_time,
            o.after.rms * 1e6,
            o.after.max_abs * 1e6,
            o.steps
        );
        assert!(o.synchronized);
        assert_eq!(o.steps, 1, "one initial step of 2 s");
        let t = o.sync_time.expect("converges");
        assert!(t < 900.0, "within 1 ms after {t} s");
        assert!(
            o.after.max_abs < 100e-6,
            "max offset {} after the first hour",
            o.after.max_abs
        );
        assert!(
            o.after.rms < 30e-6,
            "RMS {} after the first hour",
            o.after.rms
        );
    }
}

#[test]
fn small_offset_is_slewed_not_stepped() {
    let o = run(Scenario {
        epoch_unix: meridian_sim::clock::EPOCH_UNIX,
        seed: 9,
        offset: 0.05,
        ppm: -20.0,
        link: Link::lan(0.0005, 0.0001),
        minpoll: 4,
        maxpoll: 6,
        duration: 2.0 * 3600.0,
        settle: 3600.0,
    });
    eprintln!(
        "slew: sync {:?}, RMS {:.1} us, max {:.1} us",
        o.sync_time,
        o.after.rms * 1e6,
        o.after.max_abs * 1e6
    );
    assert_eq!(o.steps, 0, "50 ms is below the step threshold");
    assert!(o.after.max_abs < 100e-6, "max {}", o.after.max_abs);
}

#[test]
/// attacks.md N7, P4: synchronization across the 2036 era rollover.
fn synchronization_across_the_2036_era_rollover() {
    // Start 10 minutes before 2036-02-07T06:28:16Z, when NTP timestamps wrap to era 1.
    let rollover_unix = 2_085_978_496;
    let o = run(Scenario {
        epoch_unix: rollover_unix - 600,
        seed: 4,
        offset: 0.5,
        ppm: 30.0,
        link: Link::lan(0.0005, 0.0001),
        minpoll: 4,
        maxpoll: 6,
        duration: 2.0 * 3600.0,
        settle: 1800.0,
    });
    eprintln!(
        "era: sync {:?}, RMS {:.1} us, max {:.1} us",
        o.sync_time,
        o.after.rms * 1e6,
        o.after.max_abs * 1e6
    );
    assert!(o.synchronized);
    assert_eq!(o.steps, 1, "one initial step, none at the rollover");
    assert!(
        o.after.max_abs < 100e-6,
        "max {} across the rollover",
        o.after.max_abs
    );
}

/// The poll interval follows the clock's own predicted wander against the measurement noise:
/// a quiet link lets the poll grow well past minpoll, a noisy one to maxpoll; the accuracy
/// stays at the noise's level.
#[test]
fn poll_interval_adapts_to_the_noise() {
    let mut polls = Vec::new();
    for jitter in [10e-6, 1e-3] {
        let mut sim = Simulation::new(5);
        let server = sim.add_node(NodeSpec {
            local_reference_stratum: Some(1),
            ..Default::default()
        });
        let client = sim.add_node(NodeSpec {
            initial_offset: 0.01,
            frequency_ppm: 20.0,
            wander_ppm: 1e-3,
            ..Default::default()
        });
        sim.set_link(client, server, Link::lan(0.0001, jitter));
        sim.add_server(client, server, client_config(4, 10, true));
        let mut late = Vec::new();
        sim.run(6.0 * 3600.0, 10.0, |s| {
            let e = s.error(client);
            if s.now > 3.0 * 3600.0 {
                late.push(e);
            }
        });
        let poll = sim.nodes[client].system.vars().poll.log2();
        let stats = OffsetStats::of(&late);
        eprintln!(
            "jitter {jitter}: poll 2^{poll}, RMS {:.1} us",
            stats.rms * 1e6
        );
        assert!(
            stats.rms < jitter.max(20e-6),
            "RMS {} at jitter {jitter}",
            stats.rms
        );
        polls.push(poll);
    }
    assert!(
        polls[0] >= 6,
        "a quiet link polls less often than minpoll 2^4: 2^{}",
        polls[0]
    );
    assert!(
        polls[1] >= polls[0],
        "noisier measurements allow a longer poll: {polls:?}"
    );
}

/// Five servers of which the two fastest to answer are falsetickers (1 s and 2 s ahead):
/// the client must wait for a majority and follow the three truechimers, never stepping.
/// With three falsetickers out of five there is no majority: no step, no synchronization.
///
/// attacks.md D1: two falsetickers of five never win, not even the first clock update;
/// three of five: no synchronization.
#[test]
fn falsetickers_never_win_the_first_update() {
    for (falsetickers, expect_sync) in [(vec![1.0, 2.0], true), (vec![1.0, 2.0, -1.5], false)] {
        let mut sim = Simulation::new(11);
        let client = sim.add_node(NodeSpec {
            initial_offset: 0.05,
            frequency_ppm: 5.0,
            ..Default::default()
        });
        for i in 0..5 {
            let offset = falsetickers.get(i).copied().unwrap_or(0.0);
            let server = sim.add_node(NodeSpec {
                local_reference_stratum: Some(1),
                initial_offset: offset,
                ..Default::default()
            });
            // The falsetickers are the nearest: their answers come first.
            let delay = if i < falsetickers.len() {
                0.0002
            } else {
                0.002
            };
            sim.set_link(client, server, Link::lan(delay, 0.00005));
            sim.add_server(client, server, client_config(4, 6, true));
        }
        let mut worst: f64 = 0.0;
        sim.run(2.0 * 3600.0, 1.0, |s| {
            worst = worst.max(s.error(client).abs())
        });
        let node = &sim.nodes[client];
        eprintln!(
            "{} falsetickers: steps {}, worst {:.3} s, sync {}",
            falsetickers.len(),
            node.steps,
            worst,
            node.system.synchronized()
        );
        assert_eq!(node.steps, 0, "never a step toward a falseticker");
        // Unsynchronized, the clock only drifts (50 ms + 5 ppm for 2 h = 86 ms); a falseticker
        // would have moved it by a second or more.
        assert!(
            worst < 0.09,
            "the clock moved toward a falseticker: {worst}"
        );
        assert_eq!(node.system.synchronized(), expect_sync);
    }
}
