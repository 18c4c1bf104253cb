//! Every topic-level config this broker implements: its name, the broker key
//! that sets its default (Kafka's `log.*` synonym), its type and valid range.
//!
//! One table serves CreateTopics/AlterConfigs validation (INVALID_CONFIG with a
//! message), DescribeConfigs (value, source, synonyms) and [`crate::log::LogConfig`]
//! (the typed values a partition log applies). A key missing here is refused:
//! advertising a config we do not enforce would be a silent lie.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::error::{Error, Result};

/// The value type and range of a topic config.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A 64-bit integer at or above `min`.
    Long {
        /// The smallest value allowed.
        min: i64,
    },
    /// A 32-bit integer in `[min, max]`.
    Int {
        /// The smallest value allowed.
        min: i64,
        /// The largest value allowed.
        max: i64,
    },
    /// A fraction in `[0, 1]`.
    Ratio,
    /// One of these words.
    Enum(&'static [&'static str]),
    /// A comma-separated, non-empty list of these words.
    List(&'static [&'static str]),
}

impl Kind {
    /// Kafka's DescribeConfigs config type code (v3+): 3 INT, 5 LONG, 6 DOUBLE, 2 STRING, 7 LIST.
    pub fn type_code(self) -> i8 {
        match self {
            Kind::Long { .. } => 5,
            Kind::Int { .. } => 3,
            Kind::Ratio => 6,
            Kind::Enum(_) => 2,
            Kind::List(_) => 7,
        }
    }
}

/// One topic config.
#[derive(Debug)]
pub struct TopicConfigDef {
    /// The topic config's Kafka key, e.g. `retention.ms`.
    pub name: &'static str,
    /// The broker key holding the default (`log.retention.ms` for `retention.ms`).
    pub broker_key: &'static str,
    /// The value's type and range, checked on every set.
    pub kind: Kind,
    /// One-line description, returned by DescribeConfigs (v3+) when documentation is asked for.
    pub doc: &'static str,
}

const COMPRESSION_TYPES: &[&str] = &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];

/// The topic configs, in Kafka's alphabetical order.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "cleanup.policy",
        broker_key: "log.cleanup.policy",
        kind: Kind::List(&["delete", "compact"]),
        doc: "delete old segments by retention, compact to the latest value per key, or both",
    },
    TopicConfigDef {
        name: "compression.type",
        broker_key: "compression.type",
        kind: Kind::Enum(COMPRESSION_TYPES),
        doc: "producer keeps batches as sent; a codec makes the broker re-compress them",
    },
    TopicConfigDef {
        name: "delete.retention.ms",
        broker_key: "log.cleaner.delete.retention.ms",
        kind: Kind::Long { min: 0 },
        doc: "how long tombstones survive compaction",
    },
    TopicConfigDef { name: "flush.messages", broker_key: "log.flush.interval.messages", kind: Kind::Long { min: 1 }, doc: "fdatasync after this many records" },
    TopicConfigDef { name: "flush.ms", broker_key: "log.flush.interval.ms", kind: Kind::Long { min: 0 }, doc: "fdatasync data older than this" },
    TopicConfigDef {
        name: "index.interval.bytes",
        broker_key: "log.index.interval.bytes",
        kind: Kind::Int { min: 1, max: i32::MAX as i64 },
        doc: "log bytes between offset index entries",
    },
    TopicConfigDef {
        name: "max.compaction.lag.ms",
        broker_key: "log.cleaner.max.compaction.lag.ms",
        kind: Kind::Long { min: 1 },
        doc: "a compacted log whose oldest uncleaned record is older than this is cleaned whatever its dirty ratio",
    },
    TopicConfigDef {
        name: "max.message.bytes",
        broker_key: "message.max.bytes",
        kind: Kind::Int { min: 61, max: i32::MAX as i64 },
        doc: "largest record batch accepted",
    },
    TopicConfigDef {
        name: "message.timestamp.after.max.ms",
        broker_key: "log.message.timestamp.after.max.ms",
        kind: Kind::Long { min: 0 },
        doc: "how far in the future a CreateTime timestamp may be",
    },
    TopicConfigDef {
        name: "message.timestamp.before.max.ms",
        broker_key: "log.message.timestamp.before.max.ms",
        kind: Kind::Long { min: 0 },
        doc: "how far in the past a CreateTime timestamp may be",
    },
    TopicConfigDef {
        name: "message.timestamp.type",
        broker_key: "log.message.timestamp.type",
        kind: Kind::Enum(&["CreateTime", "LogAppendTime"]),
        doc: "keep the producer's timestamps or stamp the append time",
    },
    TopicConfigDef {
        name: "min.cleanable.dirty.ratio",
        broker_key: "log.cleaner.min.cleanable.ratio",
        kind: Kind::Ratio,
        doc: "dirty share of the log that triggers compaction",
    },
    TopicConfigDef {
        name: "min.compaction.lag.ms",
        broker_key: "log.cleaner.min.compaction.lag.ms",
        kind: Kind::Long { min: 0 },
        doc: "records younger than this are left uncompacted",
    },
    TopicConfigDef {
        name: "min.insync.replicas",
        broker_key: "min.insync.replicas",
        kind: Kind::Int { min: 1, max: i32::MAX as i64 },
        doc: "in-sync replicas an acks=all produce needs",
    },
    TopicConfigDef {
        name: "retention.bytes",
        broker_key: "log.retention.bytes",
        kind: Kind::Long { min: -1 },
        doc: "delete old segments beyond this partition size (-1: no limit)",
    },
    TopicConfigDef {
        name: "retention.ms",
        broker_key: "log.retention.ms",
        kind: Kind::Long { min: -1 },
        doc: "delete segments whose newest record is older than this (-1: keep forever)",
    },
    TopicConfigDef {
        name: "segment.bytes",
        broker_key: "log.segment.bytes",
        kind: Kind::Int { min: 14, max: u32::MAX as i64 },
        doc: "roll the active segment at this size",
    },
    TopicConfigDef { name: "segment.ms", broker_key: "log.roll.ms", kind: Kind::Long { min: 1 }, doc: "roll the active segment at this age" },
    TopicConfigDef {
        name: "unclean.leader.election.enable",
        broker_key: "unclean.leader.election.enable",
        kind: Kind::Enum(&["true", "false"]),
        doc: "elect an out-of-sync replica when no in-sync one is alive (may lose records)",
    },
];

/// The definition of a topic config, if this broker implements it.
pub fn def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one value against its definition; returns it normalized (list items trimmed).
pub fn validate(name: &str, value: &str) -> Result<String> {
    let d = def(name).ok_or_else(|| Error::InvalidConfig(format!("unknown or unsupported topic config `{name}`")))?;
    check_kind(name, d.kind, value)
}

/// Validates a value of `kind` for the key `name` (topic or broker key).
pub fn check_kind(name: &str, kind: Kind, value: &str) -> Result<String> {
    let v = value.trim();
    let bad = |why: String| Error::InvalidConfig(format!("invalid value `{value}` for `{name}`: {why}"));
    match kind {
        Kind::Long { min } => {
            let n: i64 = v.parse().map_err(|_| bad("not a whole number".into()))?;
            if n < min {
                return Err(bad(format!("must be at least {min}")));
            }
            Ok(n.to_string())
        }
        Kind::Int { min, max } => {
            let n: i64 = v.parse().map_err(|_| bad("not a whole number".into()))?;
            if n < min || n > max {
                return Err(bad(format!("must be in [{min}, {max}]")));
            }
            Ok(n.to_string())
        }
        Kind::Ratio => {
            let n: f64 = v.parse().map_err(|_| bad("not a number".into()))?;
            if !(0.0..=1.0).contains(&n) {
                return Err(bad("must be in [0, 1]".into()));
            }
            Ok(v.to_string())
        }
        Kind::Enum(words) => {
            if words.contains(&v) {
                Ok(v.to_string())
            } else {
                Err(bad(format!("must be one of {}", words.join(", "))))
            }
        }
        Kind::List(words) => {
            let items: Vec<&str> = v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            if items.is_empty() {
                return Err(bad("must not be empty".into()));
            }
            if let Some(x) = items.iter().find(|x| !words.contains(x)) {
                return Err(bad(format!("`{x}` is not one of {}", words.join(", "))));
            }
            let mut uniq: Vec<&str> = Vec::new();
            for x in items {
                if !uniq.contains(&x) {
                    uniq.push(x);
                }
            }
            Ok(uniq.join(","))
        }
    }
}

/// Validates a whole set of topic overrides (CreateTopics, AlterConfigs), normalizing values.
pub fn validate_all(configs: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in configs {
        out.insert(k.clone(), validate(k, v)?);
    }
    let max = |k: &str| out.get(k).and_then(|v| v.parse::<i64>().ok());
    if let (Some(seg), Some(msg)) = (max("segment.bytes"), max("max.message.bytes")) {
        if seg < msg {
            return Err(Error::InvalidConfig(format!("segment.bytes ({seg}) must be at least max.message.bytes ({msg})")));
        }
    }
    if let (Some(min), Some(max)) = (max("min.compaction.lag.ms"), max("max.compaction.lag.ms")) {
        if min > max {
            return Err(Error::InvalidConfig(format!("min.compaction.lag.ms ({min}) must not exceed max.compaction.lag.ms ({max})")));
        }
    }
    Ok(out)
}

/// Where an effective value comes from (Kafka's DescribeConfigs config source codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// 1: a topic override.
    Topic = 1,
    /// 4: set in the broker's static configuration (file, profile, --set).
    StaticBroker = 4,
    /// 5: the built-in default.
    Default = 5,
}

/// The broker's config as text next to the built-in defaults, read once
/// (`Config::describe` renders every key) and then looked up per key.
pub struct BrokerValues {
    current: BTreeMap<&'static str, String>,
    defaults: BTreeMap<&'static str, String>,
}

impl BrokerValues {
    /// The broker's current and default values, rendered once from `cfg`.
    pub fn of(cfg: &Config) -> BrokerValues {
        BrokerValues { current: cfg.describe().into_iter().collect(), defaults: Config::default().describe().into_iter().collect() }
    }

    /// The broker's value for `key` and whether it differs from the built-in default.
    pub fn get(&self, key: &str) -> (String, Source) {
        let v = self.current.get(key).cloned().unwrap_or_default();
        let source = if Some(&v) == self.defaults.get(key) { Source::Default } else { Source::StaticBroker };
        (v, source)
    }

    /// The built-in default of `key`.
    pub fn default_of(&self, key: &str) -> String {
        self.defaults.get(key).cloned().unwrap_or_default()
    }

    /// Every broker key with its value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &String)> {
        self.current.iter().map(|(k, v)| (*k, v))
    }
}

/// The effective value of topic config `d` for a topic with `overrides`, and its source.
pub fn effective(broker: &BrokerValues, overrides: &BTreeMap<String, String>, d: &TopicConfigDef) -> (String, Source) {
    match overrides.get(d.name) {
        Some(v) => (v.clone(), Source::Topic),
        None => broker.get(d.broker_key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_config_has_a_broker_default() {
        let cfg = Config::default();
        for d in TOPIC_CONFIGS {
            let v = cfg.get(d.broker_key).unwrap_or_else(|| panic!("no broker key {}", d.broker_key));
            validate(d.name, &v).unwrap_or_else(|e| panic!("default of {} ({v}) is invalid: {e}", d.name));
        }
    }

    #[test]
    fn values_are_checked_and_normalized() {
        assert_eq!(validate("cleanup.policy", " compact, delete ,compact").unwrap(), "compact,delete");
        assert!(validate("cleanup.policy", "forever").is_err());
        assert!(validate("retention.ms", "-2").is_err());
        assert_eq!(validate("retention.ms", "-1").unwrap(), "-1");
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("compression.type", "brotli").is_err());
        assert!(validate("no.such.config", "1").is_err());
        let mut m = BTreeMap::new();
        m.insert("segment.bytes".to_string(), "100".to_string());
        m.insert("max.message.bytes".to_string(), "1000".to_string());
        assert!(validate_all(&m).is_err());
        let mut m = BTreeMap::new();
        m.insert("min.compaction.lag.ms".to_string(), "60000".to_string());
        m.insert("max.compaction.lag.ms".to_string(), "1000".to_string());
        assert!(validate_all(&m).is_err(), "min.compaction.lag.ms above max.compaction.lag.ms");
        assert!(validate("max.compaction.lag.ms", "0").is_err());
    }
}
