//! The metadata image: topics, partitions, their owner shard and the replica
//! fields a cluster will need (leader, leader epoch, replicas, ISR).
//!
//! The controller (shard 0) is the only writer: it persists the image to
//! `<log.dirs>/shardlog-metadata.json` (write + rename) and pushes the new
//! immutable snapshot to every shard, which swaps its `Arc`. Readers never lock.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// File holding the persisted image, under `log.dirs`.
pub const METADATA_FILE: &str = "shardlog-metadata.json";

/// One partition's placement and replication state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// The shard (core slot) that owns this partition's log; fixed at creation.
    pub owner_shard: usize,
    /// Broker id of the leader (this broker on a single node).
    pub leader: i32,
    /// Leader epoch, bumped on each leader change.
    pub leader_epoch: i32,
    /// Broker ids holding a replica.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
}

/// A topic: id, partitions and its config overrides.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    /// Topic id (KIP-516), returned by Metadata v10+.
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<PartitionMeta>,
    /// Topic-level config overrides (Kafka key names).
    pub configs: BTreeMap<String, String>,
}

/// The whole image; cloned on change, shared read-only between shards.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataImage {
    pub cluster_id: String,
    /// Bumped on every change so shards can ignore a stale push.
    pub version: u64,
    pub topics: BTreeMap<String, TopicMeta>,
    /// The first producer id not yet handed out. The controller moves it past
    /// every block it gives a shard *before* the shard uses the block, so ids
    /// stay unique across restarts and kill -9 (a crash only skips ids).
    /// Defaulted so images written before transactions load unchanged.
    #[serde(default)]
    pub next_producer_id: i64,
}

impl MetadataImage {
    /// Loads the image, or starts a new cluster with a fresh cluster id.
    pub fn load_or_new(log_dir: &Path) -> io::Result<MetadataImage> {
        let path = log_dir.join(METADATA_FILE);
        match std::fs::read(&path) {
            Ok(raw) => serde_json::from_slice(&raw)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(MetadataImage {
                cluster_id: new_cluster_id(),
                version: 0,
                topics: BTreeMap::new(),
                next_producer_id: 0,
            }),
            Err(e) => Err(e),
        }
    }

    /// Persists atomically: a crash leaves either the old or the new file.
    pub fn persist(&self, log_dir: &Path) -> io::Result<()> {
        let tmp = log_dir.join(format!("{METADATA_FILE}.tmp"));
        let raw = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        std::fs::write(&tmp, raw)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, log_dir.join(METADATA_FILE))?;
        std::fs::File::open(log_dir)?.sync_all()
    }

    /// Partitions owned by each shard (for balancing new partitions by count).
    pub fn partitions_per_shard(&self, nr_shards: usize) -> Vec<usize> {
        let mut n = vec![0; nr_shards];
        for t in self.topics.values() {
            for p in &t.partitions {
                if p.owner_shard < nr_shards {
                    n[p.owner_shard] += 1;
                }
            }
        }
        n
    }

    /// The owner shard of a partition, if it exists.
    pub fn shard_for(&self, topic: &str, partition: i32) -> Option<usize> {
        let t = self.topics.get(topic)?;
        let p = t.partitions.get(usize::try_from(partition).ok()?)?;
        Some(p.owner_shard)
    }
}

/// Kafka cluster ids are 16 random bytes in URL-safe base64 without padding (22 chars).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = uuid::Uuid::new_v4().as_u128();
    (0..22).map(|i| ALPHABET[((bits >> (i * 6)) & 63) as usize] as char).collect()
}

/// Kafka's topic name rule (kept with the other name rules in `protocol::topic`).
pub use crate::protocol::topic::validate_topic_name;
