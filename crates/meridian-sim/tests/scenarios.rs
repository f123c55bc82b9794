//! Runs every scenario file in `scenarios/` at the repository root and checks that it meets
//! its pass limits, or, for a file marked `expect = "fail"` (a known gap of the core), that
//! it still fails; plus determinism of the runner.

use meridian_sim::runner::{self, Report};
use meridian_sim::scenario::Scenario;
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

fn run_file(path: &Path) -> Report {
    let scenario = Scenario::load(path).unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    let report = runner::run(&scenario, None);
    eprintln!(
        "{}({:.1} s real)\n",
        report.to_text(),
        started.elapsed().as_secs_f64()
    );
    report
}

#[test]
fn every_shipped_scenario_meets_its_expectation() {
    let files = scenario_files();
    assert!(files.len() >= 15, "the shipped scenarios are there");
    // Two threads: the runs are independent.
    let (a, b): (Vec<_>, Vec<_>) = files.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let run_all = |list: Vec<(usize, &PathBuf)>| -> Vec<String> {
        list.into_iter()
            .map(|(_, p)| run_file(p))
            .filter(|r| !r.as_expected)
            .map(|r| {
                let why: Vec<String> = r.nodes.iter().flat_map(|n| n.failures.clone()).collect();
                format!(
                    "{}: expected {}, got {} ({})",
                    r.scenario,
                    r.expect,
                    if r.passed { "pass" } else { "fail" },
                    why.join("; ")
                )
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
