//! Metadata records: every change to the cluster's metadata is one of these,
//! appended to the metadata log by the controller and applied, in log order, to
//! the image every shard reads. The names are Kafka's (KRaft's `TopicRecord`,
//! `PartitionRecord`, `ConfigRecord`, `RemoveTopicRecord`, `ProducerIdsRecord`,
//! `PartitionChangeRecord`); the encoding is ours (JSON in a framed log, see
//! [`super::log`]), since nothing outside the broker reads it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One change to the metadata image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// A topic exists with this name and id (its partitions follow as `Partition` records).
    Topic {
        /// Topic name (validated by `protocol::topic` when the topic was created).
        name: String,
        /// Topic id (KIP-516), fixed for the topic's life.
        topic_id: Uuid,
    },
    /// One partition of a topic: where its replicas are and who leads.
    Partition {
        /// Id of the topic the partition belongs to.
        topic_id: Uuid,
        /// Partition index; records come in order 0, 1, 2, ... per topic.
        partition: i32,
        /// Broker ids holding a replica, preferred leader first.
        replicas: Vec<i32>,
        /// Broker ids of the in-sync replicas (ISR).
        isr: Vec<i32>,
        /// Broker id of the leader.
        leader: i32,
        /// Leader epoch, bumped on every leader change (fences stale leaders and fetches).
        leader_epoch: i32,
    },
    /// A topic config override set (`value` Some) or removed (None).
    Config {
        /// Name of the topic the override applies to.
        topic: String,
        /// Kafka config key, e.g. `retention.ms`.
        key: String,
        /// New value as text; None removes the override (back to the broker default).
        value: Option<String>,
    },
    /// A topic and all its partitions are gone.
    RemoveTopic {
        /// Id of the topic removed.
        topic_id: Uuid,
    },
    /// Producer ids below `next_producer_id` are handed out (a block was given to a shard).
    ProducerIds {
        /// The first producer id not yet handed out; never moves back.
        next_producer_id: i64,
    },
    /// A partition's leader or ISR changed (fields left None are unchanged); a new
    /// leader bumps the leader epoch. Written by the cluster's controller on failover.
    PartitionChange {
        /// Id of the topic of the partition.
        topic_id: Uuid,
        /// Partition index.
        partition: i32,
        /// New leader broker id, if it changed.
        leader: Option<i32>,
        /// New ISR (broker ids), if it changed.
        isr: Option<Vec<i32>>,
    },
}
