//! `meridianctl simulate`: summary, JSON, SVG plot and exit status against the limits.

use std::process::Command;

fn ctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_meridianctl"))
        .args(args)
        .output()
        .expect("runs")
}

const SCENARIO: &str = r#"
duration = "1h"
seed = 3
settle = "20m"

[[node]]
name = "server"
role = "server"

[[node]]
name = "laptop"
role = "client"
offset = "1s"
frequency-ppm = 30
servers = [{ node = "server", minpoll = 4, maxpoll = 6, iburst = true }]

[[link]]
between = ["laptop", "server"]
delay = "1ms"
jitter = "100us"
"#;

fn write(dir: &tempfile::TempDir, name: &str, limits: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("{SCENARIO}\n[limits]\n{limits}\n")).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn passing_scenario_prints_a_summary_and_writes_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "ok.toml", "max-offset = \"1ms\"\nmax-steps = 1");
    let svg = dir.path().join("out.svg");
    let out = ctl(&["simulate", &file, "--svg", svg.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("laptop") && text.contains("result: pass"),
        "{text}"
    );
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.trim_end().ends_with("</svg>"));
    assert_eq!(
        plot.matches("<polyline").count(),
        1,
        "one line per measured node"
    );
    assert!(plot.contains(">laptop<"), "legend names the node");
}

#[test]
fn broken_limit_exits_1_and_json_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "tight.toml", "max-offset = \"1ns\"");
    let out = ctl(&["simulate", &file, "--json", "--seed", "4"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["seed"], 4);
    assert_eq!(v["passed"], false);
    let failures = v["nodes"][0]["failures"].as_array().unwrap();
    assert!(
        failures[0].as_str().unwrap().starts_with("max offset"),
        "{failures:?}"
    );
}

#[test]
fn bad_scenario_file_is_reported_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "duration = \"soon\"\n").unwrap();
    let out = ctl(&["simulate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml"));
}
