//! attacks.md S2(c), simulated through the real protocol core: three configured honest
//! servers and ten dynamic (symmetric passive) liars that agree with each other. The liars
//! outnumber the configured sources, yet the clock follows the configured ones.

use meridian_sim::{client_config, Link, NodeSpec, OffsetStats, Simulation};

const LIARS: usize = 10;
/// Where the liars agree to put the victim's clock, seconds.
const LIE: f64 = 0.5;

struct Outcome {
    after: OffsetStats,
    steps: u32,
    synchronized: bool,
    /// Dynamic associations the victim mobilized.
    dynamic: usize,
    /// A liar was ever offered to selection / ever selected.
    liar_candidate: bool,
    liar_selected: bool,
}

fn run(seed: u64) -> Outcome {
    let mut sim = Simulation::new(seed);
    let victim = sim.add_node(NodeSpec {
        initial_offset: 0.05,
        frequency_ppm: 15.0,
        ..Default::default()
    });
    for i in 0..3 {
        let s = sim.add_node(NodeSpec {
            local_reference_stratum: Some(1),
            ..Default::default()
        });
        sim.set_link(victim, s, Link::lan(0.0005 + 0.0002 * i as f64, 0.00005));
        sim.add_server(victim, s, client_config(4, 6, true));
    }
    let mut liars = Vec::new();
    for i in 0..LIARS {
        let l = sim.add_node(NodeSpec {
            initial_offset: LIE,
            local_reference_stratum: Some(1),
            ..Default::default()
        });
        sim.set_link(victim, l, Link::lan(0.0003 + 0.0001 * i as f64, 0.00005));
        // The liar is the active side: the victim mobilizes a passive association for it.
        sim.add_peer(l, victim, client_config(4, 6, true));
        liars.push(l);
    }
    let (mut series, mut liar_candidate, mut liar_selected) = (Vec::new(), false, false);
    sim.run(3.0 * 3600.0, 10.0, |sim| {
        if sim.now >= 3600.0 {
            series.push(sim.error(victim));
        }
        let system = &sim.nodes[victim].system;
        for (_, s) in system.sources() {
            if !s.association.configured() {
                liar_candidate |= s.flags.candidate;
                liar_selected |= s.flags.selected || s.flags.system_peer;
            }
        }
    });
    let system = &sim.nodes[victim].system;
    Outcome {
        after: OffsetStats::of(&series),
        steps: sim.nodes[victim].steps,
        synchronized: system.synchronized(),
        dynamic: system
            .sources()
            .filter(|(_, s)| !s.association.configured())
            .count(),
        liar_candidate,
        liar_selected,
    }
}

#[test]
fn s2c_dynamic_liars_cannot_outvote_configured_sources() {
    for seed in 1..=2 {
        let o = run(seed);
        eprintln!(
            "seed {seed}: RMS {:.1} us, max {:.1} us, steps {}, dynamic {}",
            o.after.rms * 1e6,
            o.after.max_abs * 1e6,
            o.steps,
            o.dynamic
        );
        assert_eq!(o.dynamic, LIARS, "every liar got its passive association");
        assert!(o.liar_candidate, "the liars were offered to selection");
        assert!(!o.liar_selected, "no liar ever survived selection");
        assert!(o.synchronized);
        assert!(
            o.after.max_abs < 1e-3,
            "the clock follows the configured sources (max {} s)",
            o.after.max_abs
        );
        assert_eq!(o.steps, 0, "never stepped toward the liars");
    }
}
