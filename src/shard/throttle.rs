//! Reassignment throttle: Kafka's `leader.replication.throttled.rate` and
//! `follower.replication.throttled.rate`, the only dynamic broker configs in
//! shardlog (set with IncrementalAlterConfigs/AlterConfigs on a BROKER
//! resource — a broker id, or "" for every broker — and kept in the metadata
//! log, so every broker sees every broker's rates).
//!
//! What is throttled: the fetches of replicas a reassignment is adding (the
//! copy of a partition onto its new broker), nothing else — Kafka's tool
//! names exactly those replicas in the `*.throttled.replicas` topic configs;
//! shardlog takes them from the reassignment itself. The follower enforces
//! both rates on its own fetches: its own `follower.replication.throttled.rate`
//! and the leader's `leader.replication.throttled.rate`, each per fetch
//! session (`num.replica.fetchers` per leader on each follower shard; a leader
//! serving several new replicas at once can send up to that many times its
//! rate). A token bucket per session, one second deep: while it is empty the
//! throttled partitions are left out of the session's fetch requests.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;

use super::request::{AlterOp, ConfigChange};
use super::Shard;
use crate::error::{Error, Result};
use crate::metadata::{MetadataImage, MetadataRecord};

/// The dynamic broker configs.
pub const DYNAMIC_BROKER_CONFIGS: [&str; 2] = ["leader.replication.throttled.rate", "follower.replication.throttled.rate"];

/// A token bucket of bytes per second (see the module doc).
#[derive(Debug)]
pub struct ReplicationThrottle {
    tokens: Cell<f64>,
    last: Cell<Instant>,
}

impl Default for ReplicationThrottle {
    fn default() -> Self {
        ReplicationThrottle { tokens: Cell::new(0.0), last: Cell::new(Instant::now()) }
    }
}

impl ReplicationThrottle {
    /// Refills at `rate` bytes/s (at most one second's worth) and answers
    /// whether throttled fetches may go out now.
    pub fn allow(&self, rate: u64) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last.get()).as_secs_f64() * rate as f64;
        self.last.set(now);
        self.tokens.set((self.tokens.get() + refill).min(rate as f64));
        self.tokens.get() > 0.0
    }

    /// Counts `bytes` received for throttled partitions.
    pub fn charge(&self, bytes: usize) {
        self.tokens.set(self.tokens.get() - bytes as f64);
    }
}

/// The rate (bytes/s) that throttles follower `me`'s reassignment fetches from
/// `leader`: the smaller of its follower rate and the leader's leader rate.
pub fn follower_rate(image: &MetadataImage, me: i32, leader: i32) -> Option<u64> {
    let parse = |b: i32, k: &str| image.broker_config(b, k).and_then(|v| v.parse::<u64>().ok());
    match (parse(me, DYNAMIC_BROKER_CONFIGS[1]), parse(leader, DYNAMIC_BROKER_CONFIGS[0])) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Shard {
    /// AlterConfigs/IncrementalAlterConfigs on BROKER resources (-1: every
    /// broker): only [`DYNAMIC_BROKER_CONFIGS`] may change; the rest are static.
    pub(super) async fn alter_broker_configs(self: &Rc<Self>, changes: Vec<(i32, ConfigChange)>, validate_only: bool) -> Vec<Result<()>> {
        let turn = match self.controller_turn().await {
            Ok(t) => t,
            Err(e) => return changes.iter().map(|_| Err(Error::from_remote(e.code(), e.to_string()))).collect(),
        };
        let image = self.image();
        let cluster = self.cfg.is_cluster();
        let me = self.cfg.broker_id;
        let mut next = (*image).clone();
        let mut records = Vec::new();
        let mut results = Vec::new();
        for (broker, change) in changes {
            let r = (|| {
                if broker != -1 && (if cluster { !next.brokers.contains_key(&broker) } else { broker != me }) {
                    return Err(Error::InvalidRequest(format!("broker {broker} is not registered")));
                }
                let current = next.broker_configs.get(&broker).cloned().unwrap_or_default();
                let proposed = proposed(&current, change)?;
                let mut recs = Vec::new();
                for k in current.keys().filter(|k| !proposed.contains_key(*k)) {
                    recs.push(MetadataRecord::BrokerConfig { broker_id: broker, key: k.clone(), value: None });
                }
                for (k, v) in proposed.iter().filter(|(k, v)| current.get(*k) != Some(*v)) {
                    recs.push(MetadataRecord::BrokerConfig { broker_id: broker, key: k.clone(), value: Some(v.clone()) });
                }
                if !validate_only {
                    super::controller::apply_all(&mut next, &recs)?;
                    records.extend(recs);
                }
                Ok(())
            })();
            results.push(r);
        }
        let out = self.commit(records, next, results).await;
        drop(turn);
        out
    }
}

/// The dynamic configs after `change`, validated.
fn proposed(current: &BTreeMap<String, String>, change: ConfigChange) -> Result<BTreeMap<String, String>> {
    let mut m = match change {
        ConfigChange::Replace(all) => all,
        ConfigChange::Incremental(ops) => {
            let mut m = current.clone();
            for (key, op, value) in ops {
                match (op, value) {
                    (AlterOp::Set, Some(v)) => {
                        m.insert(key, v);
                    }
                    (AlterOp::Delete, _) => {
                        m.remove(&key);
                    }
                    _ => return Err(Error::InvalidConfig(format!("`{key}`: only SET and DELETE apply to a broker config"))),
                }
            }
            m
        }
    };
    for (k, v) in m.iter_mut() {
        if !DYNAMIC_BROKER_CONFIGS.contains(&k.as_str()) {
            return Err(Error::StaticBrokerConfig(format!(
                "`{k}` is static in shardlog (set it in the config file or with --set and restart); dynamic: {}",
                DYNAMIC_BROKER_CONFIGS.join(", ")
            )));
        }
        *v = crate::config::topic::check_kind(k, crate::config::topic::Kind::Long { min: 0 }, v)?;
    }
    Ok(m)
}
