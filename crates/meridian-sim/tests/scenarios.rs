//! Runs every scenario file in `scenarios/` at the repository root with five seeds (the
//! file's and the four after it) and checks that every seed meets the pass limits, or, for
//! a file marked `expect = "fail"` (a known gap of the core), that some seed still fails;
//! plus determinism of the runner.

use meridian_sim::runner::{self, Report};
use meridian_sim::scenario::{Expect, Scenario};
use std::path::{Path, PathBuf};

fn scenario_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

fn scenario_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .expect("scenarios/ exists")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// Seeds per scenario.
const SEEDS: u64 = 5;

/// Runs a scenario with each seed; returns its name, its expectation and the reports of
/// the seeds that broke a limit.
fn run_file(path: &Path) -> (String, bool, Vec<Report>) {
    let scenario = Scenario::load(path).unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    let mut failed = Vec::new();
    for seed in scenario.file.seed..scenario.file.seed + SEEDS {
        let report = runner::run(&scenario, Some(seed));
        eprint!("{}", report.to_text());
        if !report.passed {
            failed.push(report);
        }
    }
    eprintln!("({:.1} s real)\n", started.elapsed().as_secs_f64());
    let expect_pass = scenario.file.expect == Expect::Pass;
    (scenario.name, expect_pass, failed)
}

#[test]
/// attacks.md D1, D2, D5, N1, N2, N3, N4, N6, N7: the shipped scenarios (see docs/security.md).
fn every_shipped_scenario_meets_its_expectation() {
    let files = scenario_files();
    assert!(files.len() >= 15, "the shipped scenarios are there");
    // Two threads: the runs are independent.
    let (a, b): (Vec<_>, Vec<_>) = files.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let run_all = |list: Vec<(usize, &PathBuf)>| -> Vec<String> {
        list.into_iter()
            .map(|(_, p)| run_file(p))
            .filter(|(_, expect_pass, failed)| *expect_pass != failed.is_empty())
            .map(|(name, expect_pass, failed)| {
                if expect_pass {
                    let why: Vec<String> = failed
                        .iter()
                        .map(|r| {
                            let f: Vec<String> =
                                r.nodes.iter().flat_map(|n| n.failures.clone()).collect();
                            format!("seed {}: {}", r.seed, f.join("; "))
                        })
                        .collect();
                    format!("{name}: limits broken: {}", why.join(" | "))
                } else {
                    format!(
                        "{name}: marked expect = \"fail\" but every seed passes: the gap is \
                         fixed, remove the mark"
                    )
                }
            })
            .collect()
    };
    let mut wrong = std::thread::scope(|s| {
        let h = s.spawn(|| run_all(b));
        let mut w = run_all(a);
        w.extend(h.join().expect("thread"));
        w
    });
    wrong.sort();
    assert!(
        wrong.is_empty(),
        "scenarios off expectation:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn same_seed_same_result_other_seed_other_result() {
    let path = scenario_dir().join("client-server.toml");
    let scenario = Scenario::load(&path).expect("loads");
    let a = runner::run(&scenario, Some(7));
    let b = runner::run(&scenario, Some(7));
    let c = runner::run(&scenario, Some(8));
    assert_eq!(a, b, "same seed, same series and summary");
    assert!(!a.series[0].points.is_empty());
    assert_ne!(a.series, c.series, "another seed gives other jitter");
    assert_eq!(a.seed, 7);
}

#[test]
fn asymmetric_path_biases_the_offset_by_half_the_difference() {
    // 1.5 ms out, 0.5 ms back, no jitter: NTP sees +0.5 ms and moves the client's clock
    // 0.5 ms ahead of the truth.
    let text = r#"
        duration = "2h"
        settle = "1h"
        [[node]]
        name = "server"
        role = "server"
        [[node]]
        name = "client"
        role = "client"
        servers = [{ node = "server", minpoll = 4, maxpoll = 6, iburst = true }]
        [[link]]
        between = ["client", "server"]
        delay = "1ms"
        asymmetry = 0.5
    "#;
    let scenario = Scenario::parse(text, "asym").expect("parses");
    let report = runner::run(&scenario, None);
    let after: Vec<f64> = report.series[0]
        .points
        .iter()
        .filter(|(t, _)| *t >= 3600.0)
        .map(|(_, e)| *e)
        .collect();
    let mean = after.iter().sum::<f64>() / after.len() as f64;
    assert!((mean - 0.5e-3).abs() < 20e-6, "mean offset {mean}");
}
