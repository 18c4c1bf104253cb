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
    Topic { name: String, topic_id: Uuid },
    /// One partition of a topic: where its replicas are and who leads.
    Partition { topic_id: Uuid, partition: i32, replicas: Vec<i32>, isr: Vec<i32>, leader: i32, leader_epoch: i32 },
    /// A topic config override set (`value` Some) or removed (None).
    Config { topic: String, key: String, value: Option<String> },
    /// A topic and all its partitions are gone.
    RemoveTopic { topic_id: Uuid },
    /// Producer ids below `next_producer_id` are handed out (a block was given to a shard).
    ProducerIds { next_producer_id: i64 },
    /// A partition's leader or ISR changed (fields left None are unchanged); a new
    /// leader bumps the leader epoch. Written by the cluster's controller on failover.
    PartitionChange { topic_id: Uuid, partition: i32, leader: Option<i32>, isr: Option<Vec<i32>> },
}
