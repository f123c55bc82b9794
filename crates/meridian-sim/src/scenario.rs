//! Scenario files: a TOML description of nodes, links, faults, duration, seed and pass
//! limits (see `docs/simulator.md`), parsed, checked, and turned into a [`Simulation`].

use crate::faults::{LinkFaults, Schedule};
use crate::{client_config, Jitter, Link, NodeSpec, Simulation};
use meridian_proto::discipline::DisciplineConfig;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// A number of seconds: a TOML number, or a string with a unit (`"500us"`, `"30m"`, `"2d"`).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "Quantity")]
pub struct Seconds(pub f64);

#[derive(Deserialize)]
#[serde(untagged)]
enum Quantity {
    Number(f64),
    Text(String),
}

impl TryFrom<Quantity> for Seconds {
    type Error = String;
    fn try_from(q: Quantity) -> Result<Self, String> {
        let value = match q {
            Quantity::Number(x) => x,
            Quantity::Text(t) => parse_seconds(&t)?,
        };
        if value.is_finite() {
            Ok(Seconds(value))
        } else {
            Err(format!("{value} is not a finite number of seconds"))
        }
    }
}

/// Parses `"1.5s"`, `"-120ms"`, `"1h40m"`, `"1d"`, `"5e-4"` (seconds when no unit).
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    let bad = || format!("`{text}` is not a duration (numbers with ns, us, ms, s, m, h or d)");
    let t = text.trim();
    let (sign, mut rest) = match t.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, t.strip_prefix('+').unwrap_or(t)),
    };
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0.0;
    let mut first = true;
    while !rest.is_empty() {
        // A number (with an optional exponent), then an optional unit.
        let mut end = 0;
        let b = rest.as_bytes();
        while end < b.len()
            && (b[end].is_ascii_digit()
                || b[end] == b'.'
                || ((b[end] == b'e' || b[end] == b'E') && end > 0)
                || ((b[end] == b'-' || b[end] == b'+')
                    && end > 0
                    && (b[end - 1] == b'e' || b[end - 1] == b'E')))
        {
            end += 1;
        }
        let number: f64 = rest[..end].parse().map_err(|_| bad())?;
        rest = &rest[end..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let scale = match rest[..unit_len].trim() {
            "" if first && rest.is_empty() => 1.0,
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
        first = false;
    }
    Ok(sign * total)
}

/// Whether the scenario is expected to meet its limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    #[default]
    Pass,
    /// A known gap of the core: the test checks that it still fails, so a fix is noticed.
    Fail,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScenarioFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub duration: Seconds,
    #[serde(default = "one")]
    pub seed: u64,
    /// UTC start, `YYYY-MM-DDTHH:MM:SSZ` (default 2026-01-01T00:00:00Z).
    #[serde(default)]
    pub start: Option<String>,
    /// Interval between offset samples (default 1 s).
    #[serde(default)]
    pub sample: Option<Seconds>,
    /// Statistics and the offset limits cover samples from this time on (default 0).
    #[serde(default)]
    pub settle: Option<Seconds>,
    #[serde(default)]
    pub expect: Expect,
    #[serde(default, rename = "node")]
    pub nodes: Vec<NodeFile>,
    #[serde(default, rename = "link")]
    pub links: Vec<LinkFile>,
    #[serde(default, rename = "fault")]
    pub faults: Vec<FaultFile>,
    #[serde(default)]
    pub limits: Limits,
}

fn one() -> u64 {
    1
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Serves its own clock as a local reference at `stratum` (default 1).
    Server,
    /// Polls its `servers`.
    Client,
    /// Has symmetric `peers` (and maybe `servers`); with a `stratum`, also a local reference.
    Peer,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeFile {
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub stratum: Option<u8>,
    /// Initial error of the clock (local minus true time).
    #[serde(default)]
    pub offset: Option<Seconds>,
    #[serde(default)]
    pub frequency_ppm: f64,
    /// Frequency random walk, ppm per square root of a second.
    #[serde(default)]
    pub wander_ppm: f64,
    #[serde(default)]
    pub precision: Option<i8>,
    #[serde(default)]
    pub step_threshold: Option<Seconds>,
    #[serde(default)]
    pub panic_threshold: Option<Seconds>,
    /// Whether the node's offset is plotted and checked (default: every non-server).
    #[serde(default)]
    pub measure: Option<bool>,
    #[serde(default)]
    pub servers: Vec<AssociationFile>,
    #[serde(default)]
    pub peers: Vec<AssociationFile>,
    /// Limits of this node instead of the scenario's `[limits]`.
    #[serde(default)]
    pub limits: Option<Limits>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AssociationFile {
    pub node: String,
    #[serde(default = "six")]
    pub minpoll: i8,
    #[serde(default = "ten")]
    pub maxpoll: i8,
    #[serde(default)]
    pub iburst: bool,
}

fn six() -> i8 {
    6
}
fn ten() -> i8 {
    10
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distribution {
    #[default]
    Exponential,
    Normal,
    HalfNormal,
    Uniform,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UpSchedule {
    pub period: Seconds,
    pub up: Seconds,
    #[serde(default)]
    pub phase: Option<Seconds>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LinkFile {
    /// Both directions (`asymmetry` splits them) ...
    #[serde(default)]
    pub between: Option<[String; 2]>,
    /// ... or one direction only.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub delay: Option<Seconds>,
    #[serde(default)]
    pub jitter: Option<Seconds>,
    #[serde(default)]
    pub distribution: Distribution,
    /// -1..1: the first-named direction gets (1 + a) times the delay and jitter, the other
    /// (1 - a).
    #[serde(default)]
    pub asymmetry: f64,
    #[serde(default)]
    pub loss: f64,
    #[serde(default)]
    pub duplicate: u32,
    #[serde(default)]
    pub reorder: f64,
    #[serde(default)]
    pub reorder_delay: Option<Seconds>,
    #[serde(default)]
    pub up: Option<UpSchedule>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The node's clock is stepped by `offset` behind its discipline's back.
    Step,
    /// The node leaves the network at `at` and returns at `until`.
    Leave,
    /// The link `between` is down from `at` until `until`.
    LinkDown,
    /// The node announces a leap second from `at`; it happens at the next UTC midnight.
    Leap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeapKind {
    Insert,
    Delete,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FaultFile {
    pub kind: FaultKind,
    pub at: Seconds,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub offset: Option<Seconds>,
    #[serde(default)]
    pub until: Option<Seconds>,
    #[serde(default)]
    pub between: Option<[String; 2]>,
    /// Repeat a step every `every` seconds, `count` times in all.
    #[serde(default)]
    pub every: Option<Seconds>,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub leap: Option<LeapKind>,
}

/// Pass limits of a measured node; absent keys are not checked.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Largest |offset| after `settle`.
    pub max_offset: Option<Seconds>,
    /// Largest RMS offset after `settle`.
    pub max_rms: Option<Seconds>,
    /// Latest time from which the offset stays within `sync-threshold` to the end.
    pub max_sync_time: Option<Seconds>,
    /// Threshold of "synchronized" for `max-sync-time` (default 1 ms).
    pub sync_threshold: Option<Seconds>,
    /// Most clock steps the core may command.
    pub max_steps: Option<u32>,
    /// true: synchronized at the end; false: never synchronized.
    pub synchronized: Option<bool>,
    /// true: the node passed a leap announcement on (its leap bits); false: never did.
    pub leap_announced: Option<bool>,
}

impl serde::Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

/// A timed action of the runner.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Action {
    /// Step `node`'s clock by `seconds`.
    Step { node: usize, seconds: f64 },
    /// `node` executes a leap second: its clock and UTC move by `seconds` (-1 inserts).
    Leap { node: usize, seconds: f64 },
}

/// A parsed, checked scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub file: ScenarioFile,
    pub name: String,
    /// Unix time of simulated time 0.
    pub start_unix: i64,
    index: HashMap<String, usize>,
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        Self::parse(&text, stem.as_deref().unwrap_or("scenario"))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks a scenario; `default_name` names it when the file does not.
    pub fn parse(text: &str, default_name: &str) -> Result<Self, String> {
        let file: ScenarioFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let start_unix = match &file.start {
            Some(s) => parse_utc(s)?,
            None => crate::clock::EPOCH_UNIX,
        };
        let mut index = HashMap::new();
        for (i, n) in file.nodes.iter().enumerate() {
            if index.insert(n.name.clone(), i).is_some() {
                return Err(format!("node `{}` is declared twice", n.name));
            }
        }
        let s = Self {
            name: file
                .name
                .clone()
                .unwrap_or_else(|| default_name.to_string()),
            file,
            start_unix,
            index,
        };
        s.check()?;
        Ok(s)
    }

    fn node(&self, name: &str) -> Result<usize, String> {
        self.index
            .get(name)
            .copied()
            .ok_or_else(|| format!("no node named `{name}`"))
    }

    fn check(&self) -> Result<(), String> {
        let f = &self.file;
        if f.duration.0 <= 0.0 {
            return Err("duration must be positive".into());
        }
        if f.nodes.is_empty() || f.nodes.len() > 250 {
            return Err("a scenario needs 1 to 250 nodes".into());
        }
        if f.sample.is_some_and(|s| s.0 <= 0.0) {
            return Err("sample must be positive".into());
        }
        for n in &f.nodes {
            if n.stratum.is_some_and(|s| !(1..=15).contains(&s)) {
                return Err(format!("node `{}`: stratum must be 1..=15", n.name));
            }
            if n.stratum.is_some() && n.role == Role::Client {
                return Err(format!("node `{}`: a client has no stratum", n.name));
            }
            for a in n.servers.iter().chain(&n.peers) {
                if self.node(&a.node)? == self.node(&n.name)? {
                    return Err(format!("node `{}` cannot poll itself", n.name));
                }
                if !(-7..=17).contains(&a.minpoll) || a.maxpoll < a.minpoll || a.maxpoll > 17 {
                    return Err(format!("node `{}`: bad minpoll/maxpoll", n.name));
                }
            }
        }
        for l in &f.links {
            match (&l.between, &l.from, &l.to) {
                (Some([a, b]), None, None) => {
                    self.node(a)?;
                    self.node(b)?;
                }
                (None, Some(a), Some(b)) => {
                    self.node(a)?;
                    self.node(b)?;
                }
                _ => return Err("a link has either `between` or `from` and `to`".into()),
            }
            let p = |x: f64| (0.0..=1.0).contains(&x);
            if !p(l.loss) || !p(l.reorder) || !(-1.0..=1.0).contains(&l.asymmetry) {
                return Err("loss and reorder must be in 0..=1, asymmetry in -1..=1".into());
            }
            if l.duplicate > 100 {
                return Err("duplicate is at most 100".into());
            }
            if l.up.as_ref().is_some_and(|u| u.period.0 <= 0.0) {
                return Err("an up schedule needs a positive period".into());
            }
        }
        for fault in &f.faults {
            let needs_node = fault.kind != FaultKind::LinkDown;
            if needs_node {
                self.node(fault.node.as_deref().ok_or("this fault needs `node`")?)?;
            }
            match fault.kind {
                FaultKind::Step if fault.offset.is_none() => {
                    return Err("a step needs `offset`".into())
                }
                FaultKind::LinkDown => {
                    let [a, b] = fault.between.as_ref().ok_or("link-down needs `between`")?;
                    self.node(a)?;
                    self.node(b)?;
                }
                FaultKind::Leap if fault.leap.is_none() => {
                    return Err("a leap fault needs `leap = \"insert\"` or `\"delete\"`".into())
                }
                _ => {}
            }
            if fault.every.is_some_and(|e| e.0 <= 0.0) || fault.count == Some(0) {
                return Err("`every` must be positive and `count` at least 1".into());
            }
        }
        Ok(())
    }

    /// Whether node `i` is measured (plotted and checked against limits).
    pub fn measured(&self, i: usize) -> bool {
        let n = &self.file.nodes[i];
        n.measure.unwrap_or(n.role != Role::Server)
    }

    /// Limits that apply to node `i`.
    pub fn limits(&self, i: usize) -> &Limits {
        self.file.nodes[i]
            .limits
            .as_ref()
            .unwrap_or(&self.file.limits)
    }

    /// Builds the simulation (nodes, links, associations, standing faults) and the timed
    /// actions, sorted by time.
    pub(crate) fn build(&self, seed: u64) -> (Simulation, Vec<(f64, Action)>) {
        let mut sim = Simulation::new(seed);
        for n in &self.file.nodes {
            let mut discipline = DisciplineConfig::default();
            if let Some(t) = n.step_threshold {
                discipline.step_threshold = t.0;
            }
            if let Some(t) = n.panic_threshold {
                discipline.panic_threshold = t.0;
            }
            let stratum = match n.role {
                Role::Server => Some(n.stratum.unwrap_or(1)),
                Role::Peer => n.stratum,
                Role::Client => None,
            };
            sim.add_node(NodeSpec {
                initial_offset: n.offset.map_or(0.0, |o| o.0),
                frequency_ppm: n.frequency_ppm,
                wander_ppm: n.wander_ppm,
                local_reference_stratum: stratum,
                precision: n.precision.unwrap_or(-24),
                discipline,
                epoch_unix: self.start_unix,
            });
        }
        for l in &self.file.links {
            self.add_link(&mut sim, l);
        }
        for (i, n) in self.file.nodes.iter().enumerate() {
            for a in &n.servers {
                let config = client_config(a.minpoll, a.maxpoll, a.iburst);
                sim.add_server(i, self.index[&a.node], config);
            }
            for a in &n.peers {
                let config = client_config(a.minpoll, a.maxpoll, a.iburst);
                sim.add_peer(i, self.index[&a.node], config);
            }
        }
        let mut actions = Vec::new();
        for f in &self.file.faults {
            let node = f.node.as_ref().map(|n| self.index[n]);
            let until = f.until.map_or(f64::INFINITY, |u| u.0);
            match f.kind {
                FaultKind::Step => {
                    let every = f.every.map_or(0.0, |e| e.0);
                    for k in 0..f.count.unwrap_or(1) {
                        let seconds = f.offset.map_or(0.0, |o| o.0);
                        let node = node.expect("checked");
                        actions.push((f.at.0 + every * k as f64, Action::Step { node, seconds }));
                    }
                }
                FaultKind::Leave => sim.set_offline(node.expect("checked"), f.at.0, until),
                FaultKind::LinkDown => {
                    let [a, b] = f.between.as_ref().expect("checked");
                    let (a, b) = (self.index[a], self.index[b]);
                    for (x, y) in [(a, b), (b, a)] {
                        let mut lf = sim.faults.link_faults(x, y);
                        lf.down.push((f.at.0, until));
                        sim.set_link_faults(x, y, lf);
                    }
                }
                FaultKind::Leap => {
                    let node = node.expect("checked");
                    let day = 86_400;
                    let announced = self.start_unix + f.at.0.floor() as i64;
                    let midnight = (announced.div_euclid(day) + 1) * day;
                    let at = (midnight - self.start_unix) as f64;
                    let (leap, seconds) = match f.leap.expect("checked") {
                        LeapKind::Insert => (meridian_proto::wire::Leap::AddSecond, -1.0),
                        LeapKind::Delete => (meridian_proto::wire::Leap::DeleteSecond, 1.0),
                    };
                    sim.announce_leap(node, f.at.0, at, leap);
                    actions.push((at, Action::Leap { node, seconds }));
                }
            }
        }
        actions.sort_by(|a, b| a.0.total_cmp(&b.0));
        (sim, actions)
    }

    fn add_link(&self, sim: &mut Simulation, l: &LinkFile) {
        let (a, b, both) = match (&l.between, &l.from, &l.to) {
            (Some([a, b]), _, _) => (self.index[a], self.index[b], true),
            (_, Some(a), Some(b)) => (self.index[a], self.index[b], false),
            _ => unreachable!("checked"),
        };
        let jitter_kind = match l.distribution {
            Distribution::Exponential => Jitter::Exponential,
            Distribution::Normal => Jitter::Normal,
            Distribution::HalfNormal => Jitter::HalfNormal,
            Distribution::Uniform => Jitter::Uniform,
        };
        let delay = l.delay.map_or(0.0001, |d| d.0);
        let jitter = l.jitter.map_or(0.0, |j| j.0);
        let link = |k: f64| Link {
            delay: delay * k,
            jitter: jitter * k,
            jitter_kind,
            loss: l.loss,
        };
        let faults = LinkFaults {
            duplicate: l.duplicate,
            reorder: l.reorder,
            reorder_delay: l.reorder_delay.map_or(1.0, |d| d.0),
            schedule: l.up.as_ref().map(|u| Schedule {
                period: u.period.0,
                up: u.up.0,
                phase: u.phase.map_or(0.0, |p| p.0),
            }),
            down: Vec::new(),
        };
        sim.set_link_one_way(a, b, link(1.0 + l.asymmetry));
        sim.set_link_faults(a, b, faults.clone());
        if both {
            sim.set_link_one_way(b, a, link(1.0 - l.asymmetry));
            sim.set_link_faults(b, a, faults);
        }
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` into a Unix time.
pub fn parse_utc(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not a UTC time like 2036-02-07T06:18:16Z");
    let t = text.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = t.split_once('T').ok_or_else(bad)?;
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let d: Vec<&str> = date.split('-').collect();
    let h: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || h.len() != 3 {
        return Err(bad());
    }
    let (y, m, day) = (num(d[0])?, num(d[1])?, num(d[2])?);
    let (hh, mm, ss) = (num(h[0])?, num(h[1])?, num(h[2])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 59 {
        return Err(bad());
    }
    // Days from civil (proleptic Gregorian), after Howard Hinnant's well-known algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_seconds("30m").unwrap(), 1800.0);
        assert_eq!(parse_seconds("-120ms").unwrap(), -0.12);
        assert_eq!(parse_seconds("1d").unwrap(), 86_400.0);
        assert_eq!(parse_seconds("500us").unwrap(), 5e-4);
        assert_eq!(parse_seconds("2.5").unwrap(), 2.5);
        assert_eq!(parse_seconds("1h40m").unwrap(), 6000.0);
        assert_eq!(parse_seconds("+1000.5s").unwrap(), 1000.5);
        assert_eq!(parse_seconds("5e-4").unwrap(), 5e-4);
        assert_eq!(parse_seconds("1.5e-3s").unwrap(), 1.5e-3);
        assert!(parse_seconds("1h40").is_err());
        assert!(parse_seconds("3 parsecs").is_err());
        assert!(parse_seconds("fast").is_err());
    }

    #[test]
    fn utc_times() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_utc("2026-01-01T00:00:00Z").unwrap(), 1_767_225_600);
        assert_eq!(parse_utc("2036-02-07T06:28:16Z").unwrap(), 2_085_978_496);
        assert!(parse_utc("2036-02-07 06:28:16").is_err());
    }

    #[test]
    fn unknown_keys_and_names_are_errors() {
        let base = "duration = 10\n[[node]]\nname = \"a\"\nrole = \"server\"\n";
        assert!(Scenario::parse(base, "x").is_ok());
        assert!(Scenario::parse(&format!("{base}colour = 1\n"), "x").is_err());
        let bad_ref = format!(
            "{base}[[node]]\nname = \"c\"\nrole = \"client\"\nservers = [{{ node = \"b\" }}]\n"
        );
        let err = Scenario::parse(&bad_ref, "x").unwrap_err();
        assert!(err.contains("`b`"), "{err}");
    }
}
