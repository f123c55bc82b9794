//! `simulate SCENARIO.toml`: runs a scenario through the simulator, prints the per-node
//! summary (text or JSON), optionally writes the SVG plot; a broken limit fails the verb.

use meridian_sim::{plot, runner, scenario::Scenario};

use crate::args::SimulateArgs;
use crate::error::CtlError;

pub fn run(args: &SimulateArgs) -> Result<(), CtlError> {
    let scenario = Scenario::load(&args.scenario).map_err(CtlError::failed)?;
    let report = runner::run(&scenario, args.seed);
    if let Some(path) = &args.svg {
        std::fs::write(path, plot::svg(&report))
            .map_err(|e| CtlError::failed(format!("{}: {e}", path.display())))?;
    }
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| CtlError::failed(format!("cannot encode JSON: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", report.to_text());
    }
    if report.passed {
        Ok(())
    } else {
        let failed: Vec<&str> = report
            .nodes
            .iter()
            .filter(|n| !n.passed)
            .map(|n| n.name.as_str())
            .collect();
        Err(CtlError::failed(format!(
            "{}: limits not met by {}",
            report.scenario,
            failed.join(", ")
        )))
    }
}
