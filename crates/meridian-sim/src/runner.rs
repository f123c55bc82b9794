//! Runs a [`Scenario`]: drives the simulation through its timed faults, samples the offset
//! of every measured node against UTC, and sums each node up against its pass limits.

use crate::scenario::{Action, Expect, FaultKind, Limits, Scenario};
use crate::{OffsetStats, Simulation};
use meridian_proto::wire::Leap;
use serde::Serialize;

/// Offsets of one node over time: (true time s, local minus UTC s).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A fault time, for the plot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mark {
    pub time: f64,
    pub label: String,
}

/// Summary of one measured node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeReport {
    pub name: String,
    /// RMS of the offset after `settle`, seconds.
    pub rms: f64,
    /// Largest |offset| after `settle`, seconds.
    pub max_offset: f64,
    /// Samples after `settle`.
    pub samples: usize,
    /// Time from which the offset stayed within the sync threshold to the end.
    pub sync_time: Option<f64>,
    /// Clock steps the core commanded.
    pub steps: u32,
    /// Synchronized at the end.
    pub synchronized: bool,
    pub ever_synchronized: bool,
    /// Its own leap bits announced a leap second at some sample.
    pub leap_announced: bool,
    pub final_offset: f64,
    /// Limits that do not hold, each with the measured value and the limit.
    pub failures: Vec<String>,
    pub passed: bool,
}

/// Outcome of a scenario run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub scenario: String,
    pub description: Option<String>,
    pub seed: u64,
    pub start_unix: i64,
    pub duration: f64,
    pub settle: f64,
    /// "pass" or "fail": what the file expects.
    pub expect: &'static str,
    /// Every measured node met its limits.
    pub passed: bool,
    /// `passed` is what the file expects.
    pub as_expected: bool,
    pub nodes: Vec<NodeReport>,
    pub marks: Vec<Mark>,
    #[serde(skip)]
    pub series: Vec<Series>,
}

/// Samples the measured nodes.
struct Recorder {
    measured: Vec<usize>,
    series: Vec<Vec<(f64, f64)>>,
    synced: Vec<Vec<bool>>,
    leap_seen: Vec<bool>,
    last: f64,
    /// UTC minus the simulation's continuous time scale (leap seconds executed so far).
    utc_shift: f64,
}

impl Recorder {
    fn observe(&mut self, sim: &mut Simulation) {
        if sim.now <= self.last {
            return;
        }
        self.last = sim.now;
        for (k, &i) in self.measured.iter().enumerate() {
            let e = sim.error(i) - self.utc_shift;
            self.series[k].push((sim.now, e));
            let system = &sim.nodes[i].system;
            self.synced[k].push(system.synchronized());
            if matches!(system.vars().leap, Leap::AddSecond | Leap::DeleteSecond) {
                self.leap_seen[k] = true;
            }
        }
    }
}

/// Runs `scenario` with its own seed or `seed`.
pub fn run(scenario: &Scenario, seed: Option<u64>) -> Report {
    let file = &scenario.file;
    let seed = seed.unwrap_or(file.seed);
    let (mut sim, actions) = scenario.build(seed);
    let measured: Vec<usize> = (0..file.nodes.len())
        .filter(|&i| scenario.measured(i))
        .collect();
    let m = measured.len();
    let mut rec = Recorder {
        measured,
        series: vec![Vec::new(); m],
        synced: vec![Vec::new(); m],
        leap_seen: vec![false; m],
        last: f64::NEG_INFINITY,
        utc_shift: 0.0,
    };
    let every = file.sample.map_or(1.0, |s| s.0);
    let duration = file.duration.0;
    for (t, action) in actions {
        if t > duration {
            break;
        }
        sim.run(t, every, |sim| rec.observe(sim));
        match action {
            Action::Step { node, seconds } => sim.external_step(node, seconds),
            Action::Leap { node, seconds } => {
                sim.step_clock(node, seconds);
                rec.utc_shift += seconds;
                // Every other node whose own leap bits announce this leap has it executed by
                // its kernel at the same midnight (the system clock driver hands the bits to
                // the kernel as STA_INS / STA_DEL).
                let announced = if seconds < 0.0 {
                    Leap::AddSecond
                } else {
                    Leap::DeleteSecond
                };
                for other in 0..sim.nodes.len() {
                    if other != node && sim.nodes[other].system.vars().leap == announced {
                        sim.step_clock(other, seconds);
                    }
                }
            }
        }
    }
    sim.run(duration, every, |sim| rec.observe(sim));
    rec.observe(&mut sim);

    let settle = file.settle.map_or(0.0, |s| s.0);
    let mut nodes = Vec::new();
    let mut series = Vec::new();
    for (k, &i) in rec.measured.iter().enumerate() {
        let points = std::mem::take(&mut rec.series[k]);
        let synced = &rec.synced[k];
        let limits = scenario.limits(i);
        let threshold = limits.sync_threshold.map_or(1e-3, |s| s.0);
        let after: Vec<f64> = points
            .iter()
            .filter(|(t, _)| *t >= settle)
            .map(|(_, e)| *e)
            .collect();
        let stats = OffsetStats::of(&after);
        let sync_time = match points.iter().rposition(|(_, e)| e.abs() >= threshold) {
            None => Some(0.0),
            Some(j) => points.get(j + 1).map(|(t, _)| *t),
        };
        let mut node = NodeReport {
            name: file.nodes[i].name.clone(),
            rms: stats.rms,
            max_offset: stats.max_abs,
            samples: stats.count,
            sync_time,
            steps: sim.nodes[i].steps,
            synchronized: synced.last().copied().unwrap_or(false),
            ever_synchronized: synced.iter().any(|&s| s),
            leap_announced: rec.leap_seen[k],
            final_offset: points.last().map_or(0.0, |p| p.1),
            failures: Vec::new(),
            passed: true,
        };
        node.failures = check(&node, limits);
        node.passed = node.failures.is_empty();
        nodes.push(node);
        series.push(Series {
            name: file.nodes[i].name.clone(),
            points,
        });
    }
    let passed = nodes.iter().all(|n| n.passed);
    let expect = match file.expect {
        Expect::Pass => "pass",
        Expect::Fail => "fail",
    };
    Report {
        scenario: scenario.name.clone(),
        description: file.description.clone(),
        seed,
        start_unix: scenario.start_unix,
        duration,
        settle,
        expect,
        passed,
        as_expected: passed == (file.expect == Expect::Pass),
        nodes,
        marks: marks(scenario),
        series,
    }
}

/// The limits `node` breaks, each as "what measured > limit".
fn check(node: &NodeReport, limits: &Limits) -> Vec<String> {
    let mut out = Vec::new();
    let after = node.samples > 0;
    if let Some(l) = limits.max_offset {
        if !after {
            out.push("max offset: no samples after settle".to_string());
        } else if node.max_offset > l.0 {
            out.push(format!(
                "max offset {} > limit {}",
                format_seconds(node.max_offset),
                format_seconds(l.0)
            ));
        }
    }
    if let Some(l) = limits.max_rms {
        if !after {
            out.push("RMS: no samples after settle".to_string());
        } else if node.rms > l.0 {
            out.push(format!(
                "RMS offset {} > limit {}",
                format_seconds(node.rms),
                format_seconds(l.0)
            ));
        }
    }
    if let Some(l) = limits.max_sync_time {
        match node.sync_time {
            Some(t) if t <= l.0 => {}
            Some(t) => out.push(format!(
                "time to synchronize {} > limit {}",
                format_seconds(t),
                format_seconds(l.0)
            )),
            None => out.push(format!(
                "never synchronized (limit {}; final offset {})",
                format_seconds(l.0),
                format_seconds(node.final_offset)
            )),
        }
    }
    if let Some(l) = limits.max_steps {
        if node.steps > l {
            out.push(format!("{} steps > limit {l}", node.steps));
        }
    }
    match limits.synchronized {
        Some(true) if !node.synchronized => {
            out.push("not synchronized at the end (limit: synchronized)".to_string())
        }
        Some(false) if node.ever_synchronized => {
            out.push("synchronized at some time (limit: never synchronized)".to_string())
        }
        _ => {}
    }
    match limits.leap_announced {
        Some(true) if !node.leap_announced => {
            out.push("never announced the leap second (limit: announced)".to_string())
        }
        Some(false) if node.leap_announced => {
            out.push("announced a leap second (limit: never)".to_string())
        }
        _ => {}
    }
    out
}

/// Fault times of a scenario, for the plot.
fn marks(scenario: &Scenario) -> Vec<Mark> {
    let mut out = Vec::new();
    for f in &scenario.file.faults {
        let who = f
            .node
            .clone()
            .or_else(|| f.between.as_ref().map(|[a, b]| format!("{a}-{b}")))
            .unwrap_or_default();
        match f.kind {
            FaultKind::Step => {
                let every = f.every.map_or(0.0, |e| e.0);
                let offset = f.offset.map_or(0.0, |o| o.0);
                for k in 0..f.count.unwrap_or(1) {
                    out.push(Mark {
                        time: f.at.0 + every * k as f64,
                        label: format!("{who} step {}", format_seconds(offset)),
                    });
                }
            }
            FaultKind::Leave | FaultKind::LinkDown => {
                let what = if f.kind == FaultKind::Leave {
                    "leaves"
                } else {
                    "down"
                };
                out.push(Mark {
                    time: f.at.0,
                    label: format!("{who} {what}"),
                });
                if let Some(u) = f.until {
                    out.push(Mark {
                        time: u.0,
                        label: format!("{who} back"),
                    });
                }
            }
            FaultKind::Leap => out.push(Mark {
                time: f.at.0,
                label: format!("{who} announces leap"),
            }),
        }
    }
    out.retain(|m| m.time >= 0.0 && m.time <= scenario.file.duration.0);
    out
}

/// Seconds with a readable unit: `12.3 us`, `1.50 ms`, `2.000 s`, `3.0 h`.
pub fn format_seconds(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        "0 s".to_string()
    } else if a < 1e-6 {
        format!("{:.1} ns", x * 1e9)
    } else if a < 1e-3 {
        format!("{:.1} us", x * 1e6)
    } else if a < 1.0 {
        format!("{:.2} ms", x * 1e3)
    } else if a < 600.0 {
        format!("{x:.3} s")
    } else if a < 7200.0 {
        format!("{:.1} min", x / 60.0)
    } else {
        format!("{:.1} h", x / 3600.0)
    }
}

impl Report {
    /// The per-node summary as a text table.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "scenario {} (seed {}, {}, statistics after {})\n",
            self.scenario,
            self.seed,
            format_seconds(self.duration),
            format_seconds(self.settle)
        );
        s += &format!(
            "{:<12} {:>11} {:>11} {:>11} {:>5} {:>5}  result\n",
            "node", "RMS", "max", "sync at", "steps", "sync"
        );
        for n in &self.nodes {
            s += &format!(
                "{:<12} {:>11} {:>11} {:>11} {:>5} {:>5}  {}\n",
                n.name,
                format_seconds(n.rms),
                format_seconds(n.max_offset),
                n.sync_time.map_or("never".to_string(), format_seconds),
                n.steps,
                if n.synchronized { "yes" } else { "no" },
                if n.passed { "pass" } else { "FAIL" }
            );
            for f in &n.failures {
                s += &format!("    {}: {f}\n", n.name);
            }
        }
        s += &match (self.passed, self.as_expected) {
            (true, true) => "result: pass\n".to_string(),
            (false, false) => "result: FAIL\n".to_string(),
            (false, true) => "result: FAIL (expected: a known gap of the core)\n".to_string(),
            (true, false) => {
                "result: pass, but the file expects a failure: the gap is fixed, update it\n"
                    .to_string()
            }
        };
        s
    }
}
