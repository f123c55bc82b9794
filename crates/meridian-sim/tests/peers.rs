//! Deterministic simulations of two symmetric peers through the real protocol core: the peer
//! with the lower stratum (a local reference at stratum 3) synchronizes the other, whichever
//! side is active, and its own clock never moves; two unsynchronized peers stay so. The active
//! side first calibrates with mode 3/4 (the other node's server path answers it).

use meridian_proto::peer::{Calibration, PeerRole};
use meridian_sim::{client_config, Link, NodeSpec, OffsetStats, Simulation};

struct Outcome {
    reference_error: OffsetStats,
    follower_after: OffsetStats,
    reference_steps: u32,
    follower_synchronized: bool,
    /// Where the active association stands at the end, and the passive one's calibration.
    active_calibration: Option<Calibration>,
    passive_calibration: Option<Calibration>,
}

/// The calibration of `node`'s symmetric association with role `role`.
fn calibration(sim: &Simulation, node: usize, role: PeerRole) -> Option<Calibration> {
    let system = &sim.nodes[node].system;
    let peer = sim.nodes[node].peers.iter().find_map(|&(id, _)| {
        let p = system.source(id)?.association.as_peer()?;
        (p.role() == role).then_some(p)
    });
    peer.expect("the association exists").calibration()
}

/// Node 0 has the local reference; node 1 starts 0.8 s off at 20 ppm. `follower_active`:
/// node 1 has the `[[unicast-peer]]` toward node 0 (else node 0 toward node 1).
fn run(seed: u64, follower_active: bool) -> Outcome {
    let mut sim = Simulation::new(seed);
    let reference = sim.add_node(NodeSpec {
        local_reference_stratum: Some(3),
        ..Default::default()
    });
    let follower = sim.add_node(NodeSpec {
        initial_offset: 0.8,
        frequency_ppm: 20.0,
        ..Default::default()
    });
    sim.set_link(reference, follower, Link::lan(0.0005, 0.00005));
    let config = client_config(2, 4, true);
    let (active, passive) = if follower_active {
        (follower, reference)
    } else {
        (reference, follower)
    };
    sim.add_peer(active, passive, config);
    let (mut reference_series, mut follower_series) = (Vec::new(), Vec::new());
    sim.run(3.0 * 3600.0, 1.0, |sim| {
        reference_series.push(sim.error(reference));
        if sim.now >= 2.0 * 3600.0 {
            follower_series.push(sim.error(follower));
        }
    });
    Outcome {
        reference_error: OffsetStats::of(&reference_series),
        follower_after: OffsetStats::of(&follower_series),
        reference_steps: sim.nodes[reference].steps,
        follower_synchronized: sim.nodes[follower].system.synchronized(),
        active_calibration: calibration(&sim, active, PeerRole::Active),
        passive_calibration: calibration(&sim, passive, PeerRole::Passive),
    }
}

fn check(follower_active: bool) {
    for seed in 1..=2 {
        let o = run(seed, follower_active);
        eprintln!(
            "seed {seed}, follower active {follower_active}: follower RMS {:.1} us max {:.1} us; \
             reference max {:.1} us",
            o.follower_after.rms * 1e6,
            o.follower_after.max_abs * 1e6,
            o.reference_error.max_abs * 1e6
        );
        assert_eq!(
            o.active_calibration,
            Some(Calibration::Done),
            "the passive node's server path answered the mode 3 requests"
        );
        assert_eq!(
            o.passive_calibration, None,
            "the passive side never calibrates"
        );
        assert!(o.follower_synchronized);
        assert!(o.follower_after.max_abs < 1e-3, "follower within 1 ms");
        assert_eq!(o.reference_steps, 0, "the reference is never stepped");
        assert!(
            o.reference_error.max_abs < 1e-9,
            "the reference clock never moves"
        );
    }
}

#[test]
/// attacks.md S5: symmetric peers converge (the active side follows).
fn active_peer_at_higher_stratum_follows_its_passive_peer() {
    check(true);
}

#[test]
/// attacks.md S5: symmetric peers converge (the passive side follows).
fn passive_peer_at_higher_stratum_follows_its_active_peer() {
    check(false);
}

#[test]
fn two_unsynchronized_peers_do_not_synchronize_each_other() {
    let mut sim = Simulation::new(3);
    let a = sim.add_node(NodeSpec {
        initial_offset: 0.3,
        ..Default::default()
    });
    let b = sim.add_node(NodeSpec {
        initial_offset: -0.3,
        ..Default::default()
    });
    sim.add_peer(a, b, client_config(2, 4, true));
    sim.run(1800.0, 60.0, |_| {});
    assert!(!sim.nodes[a].system.synchronized());
    assert!(!sim.nodes[b].system.synchronized());
    assert_eq!(sim.nodes[b].peers.len(), 1, "b has its passive association");
    assert_eq!(sim.nodes[a].steps + sim.nodes[b].steps, 0);
}
