//! Named workloads: TOML files under `loadgen/workloads/`, one per published
//! benchmark shape, selected with `--workload NAME` (or a path to a file).
//!
//! Why files and not code: a workload is data someone should be able to read
//! next to its source (each file starts with a comment saying what it
//! reproduces and where that comes from), diff, and copy to make a variant.
//! Keys are the long option names (`record-size = 1024`), so a workload is
//! exactly a saved command line; options given on the command line win.
//!
//! `--scale F` multiplies the large counts of a workload (partitions,
//! producer connections, consumers, rate) so a shape meant for a cluster can
//! run on a laptop; each scaled count stays at least 1. Values given on the
//! command line are never scaled.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// A rate in a workload file: a number (records/s) or a string like "300MB/s".
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RateValue {
    Records(f64),
    Text(String),
}

impl RateValue {
    pub fn as_text(&self) -> String {
        match self {
            RateValue::Records(r) => format!("{r}"),
            RateValue::Text(s) => s.clone(),
        }
    }
}

/// Every key a workload file may set; all optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Workload {
    /// One line for `--list-workloads`.
    pub description: Option<String>,
    pub topic: Option<String>,
    pub partitions: Option<u32>,
    pub replication_factor: Option<i16>,
    /// Producer connections.
    pub connections: Option<u32>,
    /// Consumer connections per consumer group.
    pub consumers: Option<u32>,
    /// Consumer sets, each reading every partition.
    pub consumer_groups: Option<u32>,
    /// "assigned" (fixed split, plain Fetch) or "group" (real Kafka consumer groups).
    pub group_mode: Option<String>,
    pub record_size: Option<usize>,
    pub batch_bytes: Option<usize>,
    pub inflight: Option<usize>,
    /// "0", "1" or "all".
    pub acks: Option<String>,
    pub compression: Option<String>,
    pub keys: Option<String>,
    pub rate: Option<RateValue>,
    pub duration: Option<f64>,
    pub records: Option<u64>,
    pub warmup: Option<f64>,
    pub mode: Option<String>,
    pub from: Option<String>,
    pub threads: Option<usize>,
    pub fetch_max_wait_ms: Option<i32>,
    pub fetch_max_bytes: Option<i32>,
    pub partition_fetch_bytes: Option<i32>,
}

/// Where the named workloads live (the crate's own `workloads/` folder).
pub fn workloads_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workloads")
}

/// Names of the bundled workloads, sorted.
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workloads_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension().and_then(|x| x.to_str()) == Some("toml")).then(|| p.file_stem().and_then(|s| s.to_str()).map(str::to_string)).flatten()
        })
        .collect();
    names.sort();
    names
}

/// Parses workload text (`origin` names it in errors).
pub fn parse(text: &str, origin: &str) -> Result<Workload> {
    toml::from_str(text).with_context(|| format!("workload {origin}"))
}

/// Loads `name_or_path`: a bundled workload name, or a path to a TOML file.
/// Returns the workload's display name with it.
pub fn load(name_or_path: &str) -> Result<(String, Workload)> {
    let as_path = Path::new(name_or_path);
    let path = if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
        as_path.to_path_buf()
    } else {
        workloads_dir().join(format!("{name_or_path}.toml"))
    };
    if !path.is_file() {
        bail!("no workload `{name_or_path}` ({} not found); bundled: {}", path.display(), list().join(", "));
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or(name_or_path).to_string();
    Ok((name, parse(&text, &path.display().to_string())?))
}

fn scale_count(v: Option<u32>, f: f64) -> Option<u32> {
    v.map(|n| ((n as f64 * f).round() as u32).max(1))
}

impl Workload {
    /// The workload with its large counts multiplied by `f`.
    pub fn scaled(mut self, f: f64) -> Result<Workload> {
        if !(f.is_finite() && f > 0.0) {
            bail!("--scale must be a positive number");
        }
        self.partitions = scale_count(self.partitions, f);
        self.connections = scale_count(self.connections, f);
        self.consumers = scale_count(self.consumers, f);
        self.rate = match self.rate.take() {
            None => None,
            Some(r) => {
                let parsed: crate::rate::Rate = r.as_text().parse().map_err(anyhow::Error::msg).context("workload rate")?;
                Some(RateValue::Text(match parsed.scaled(f) {
                    crate::rate::Rate::Records(n) => format!("{n}"),
                    crate::rate::Rate::Bytes(b) => format!("{}MB/s", b / 1e6),
                }))
            }
        };
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_workload_parses_and_resolves() {
        let names = list();
        for expected in ["omb-1250k", "linkedin-2014", "fanout", "many-partitions"] {
            assert!(names.iter().any(|n| n == expected), "missing workload {expected}: {names:?}");
        }
        for n in &names {
            let (name, w) = load(n).unwrap_or_else(|e| panic!("{n}: {e:#}"));
            assert_eq!(&name, n);
            assert!(w.description.is_some(), "{n} has no description");
            let text = std::fs::read_to_string(workloads_dir().join(format!("{n}.toml"))).expect("read");
            assert!(text.trim_start().starts_with('#'), "{n} must start with a comment naming its source");
            // Every value must also survive the option parsers.
            let s = crate::Settings::resolve(&crate::Cli::default(), Some((name, w.clone()))).unwrap_or_else(|e| panic!("{n}: {e:#}"));
            assert!(s.partitions >= 1);
            let small = w.scaled(0.01).expect("scale");
            crate::Settings::resolve(&crate::Cli::default(), Some((n.clone(), small))).unwrap_or_else(|e| panic!("{n} scaled: {e:#}"));
        }
    }

    #[test]
    fn scale_shrinks_counts_but_keeps_one() {
        let w = parse("partitions = 10000\nconnections = 16\nconsumers = 8\nrate = 1250000\nrecord-size = 1024\n", "t").expect("parse");
        let s = w.scaled(0.02).expect("scale");
        assert_eq!(s.partitions, Some(200));
        assert_eq!(s.connections, Some(1)); // 0.32 rounds to 0, kept at 1
        assert_eq!(s.consumers, Some(1));
        assert_eq!(s.record_size, Some(1024)); // sizes are not counts
        assert_eq!(s.rate, Some(RateValue::Text("25000".into())));
        let w = parse("rate = \"300MB/s\"\n", "t").expect("parse");
        assert_eq!(w.scaled(0.1).expect("scale").rate, Some(RateValue::Text("30MB/s".into())));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(parse("partitons = 3\n", "t").is_err());
    }
}
