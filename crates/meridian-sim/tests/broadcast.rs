//! Deterministic simulations of broadcast and multicast mode through the real protocol core:
//! a server with a local reference sends mode 5 packets every 16 s; listeners with different
//! clock errors create their dynamic association from the first packet, measure the delay
//! with a short client/server volley, then follow the mode 5 packets alone. A node that does
//! not hear the server (another segment, or not in the group) stays unsynchronized.

use meridian_sim::{Link, NodeSpec, OffsetStats, Simulation};

/// (initial offset s, frequency ppm) of the listeners.
const ERRORS: [(f64, f64); 3] = [(0.5, 20.0), (-0.3, -30.0), (0.04, 10.0)];

struct Outcome {
    /// Per listener: the error statistics after the first 30 minutes.
    after: Vec<OffsetStats>,
    synchronized: Vec<bool>,
    /// Per listener: requests sent (the volley) and mode 5/4 packets received.
    sent: Vec<u64>,
    received: Vec<u64>,
    local_modes: Vec<String>,
    deaf_synchronized: bool,
}

fn run(seed: u64, multicast: bool, loss: f64) -> Outcome {
    let mut sim = Simulation::new(seed);
    let server = sim.add_node(NodeSpec {
        local_reference_stratum: Some(2),
        ..Default::default()
    });
    let listeners: Vec<usize> = ERRORS
        .iter()
        .map(|&(initial_offset, frequency_ppm)| {
            sim.add_node(NodeSpec {
                initial_offset,
                frequency_ppm,
                ..Default::default()
            })
        })
        .collect();
    // Configured as a client too, but on another segment: never hears the server.
    let deaf = sim.add_node(NodeSpec {
        initial_offset: 0.2,
        ..Default::default()
    });
    for &l in &listeners {
        let mut link = Link::lan(0.0005, 0.00005);
        link.loss = loss;
        sim.set_link(server, l, link);
    }
    sim.add_broadcast_server(server, 4, &listeners, multicast);
    let mut series = vec![Vec::new(); listeners.len()];
    sim.run(2.0 * 3600.0, 1.0, |sim| {
        if sim.now >= 1800.0 {
            for (i, &l) in listeners.iter().enumerate() {
                series[i].push(sim.error(l));
            }
        }
    });
    let assoc = |n: usize| {
        let (id, _) = sim.nodes[n].bclients[0];
        sim.nodes[n].system.source(id).unwrap().association.clone()
    };
    Outcome {
        after: series.iter().map(|s| OffsetStats::of(s)).collect(),
        synchronized: listeners
            .iter()
            .map(|&l| sim.nodes[l].system.synchronized())
            .collect(),
        sent: listeners.iter().map(|&l| assoc(l).stats().sent).collect(),
        received: listeners
            .iter()
            .map(|&l| assoc(l).stats().received)
            .collect(),
        local_modes: listeners
            .iter()
            .map(|&l| assoc(l).local_mode_name().to_owned())
            .collect(),
        deaf_synchronized: sim.nodes[deaf].system.synchronized()
            || !sim.nodes[deaf].bclients.is_empty(),
    }
}

/// Every listener within 1 ms at every second after the first 30 minutes, RMS within
/// `rms_limit` (the link's one-way jitter is exponential, mean 50 us).
fn check(multicast: bool, loss: f64, rms_limit: f64) {
    let max_limit = 1e-3;
    for seed in 1..=2 {
        let o = run(seed, multicast, loss);
        for (i, stats) in o.after.iter().enumerate() {
            eprintln!(
                "seed {seed} multicast {multicast} loss {loss}: listener {i} RMS {:.1} us, \
                 max {:.1} us, sent {}, received {}",
                stats.rms * 1e6,
                stats.max_abs * 1e6,
                o.sent[i],
                o.received[i]
            );
            assert!(o.synchronized[i], "listener {i} synchronized");
            assert!(
                stats.max_abs < max_limit,
                "listener {i} max error {} s",
                stats.max_abs
            );
            assert!(stats.rms < rms_limit, "listener {i} RMS {}", stats.rms);
            // Only the volley was sent; 2 h of 16 s broadcasts were heard (minus losses).
            assert!(o.sent[i] <= 8, "listener {i} sent {}", o.sent[i]);
            let expected = (7200.0 / 16.0 * (1.0 - loss)) as u64;
            assert!(
                o.received[i] + 30 >= expected,
                "listener {i} received {}",
                o.received[i]
            );
            let mode = if multicast { "mclient" } else { "bclient" };
            assert_eq!(o.local_modes[i], mode);
        }
        assert!(!o.deaf_synchronized, "a node that hears nothing stays so");
    }
}

#[test]
fn broadcast_clients_follow_the_server() {
    check(false, 0.0, 120e-6);
}

#[test]
fn multicast_clients_follow_the_server() {
    check(true, 0.0, 120e-6);
}

#[test]
fn multicast_clients_follow_the_server_with_loss() {
    check(true, 0.2, 120e-6);
}
