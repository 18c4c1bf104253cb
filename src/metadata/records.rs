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
    /// A broker registered (or re-registered after a restart, with a new incarnation
    /// and epoch): KRaft's `RegisterBrokerRecord`. A registered broker starts fenced.
    RegisterBroker {
        /// The broker's `node.id`.
        broker_id: i32,
        /// Broker epoch, unique and increasing per registration (KIP-903 uses it
        /// to reject a replica from before a restart).
        epoch: i64,
        /// Random per process start: tells a restart from a retried registration.
        incarnation_id: Uuid,
        /// Advertised host of its client listener.
        host: String,
        /// Advertised port of its client listener.
        port: u16,
        /// `broker.rack`, if set.
        rack: Option<String>,
        /// Its shard count (cores serving partitions).
        shards: u32,
        /// Registered fenced (true) or carried over unfenced by a checkpoint.
        fenced: bool,
    },
    /// A broker's session expired or it registered anew: it leads nothing until unfenced.
    FenceBroker {
        /// The broker's id.
        broker_id: i32,
        /// The registration this applies to.
        epoch: i64,
    },
    /// A fenced broker caught up with the metadata log: it may lead again.
    UnfenceBroker {
        /// The broker's id.
        broker_id: i32,
        /// The registration this applies to.
        epoch: i64,
    },
    /// A dynamic broker config set (`value` Some) or removed: Kafka's
    /// `ConfigRecord` for a BROKER resource. Only the replication throttle
    /// rates are dynamic in shardlog (`shard::throttle`).
    BrokerConfig {
        /// The broker's id; -1 for the cluster-wide default (resource name "").
        broker_id: i32,
        /// The key, e.g. `follower.replication.throttled.rate`.
        key: String,
        /// The value; None removes it.
        value: Option<String>,
    },
    /// A broker asked to stop (controlled shutdown, a BrokerHeartbeat with
    /// `want_shutdown`): Kafka's `BrokerRegistrationChangeRecord` with
    /// `InControlledShutdown`. It leads nothing and joins no ISR from here on;
    /// its next registration (the restart) clears it.
    ControlledShutdown {
        /// The broker's id.
        broker_id: i32,
        /// The registration this applies to.
        epoch: i64,
    },
    /// A broker left the cluster for good (UnregisterBroker).
    UnregisterBroker {
        /// The broker's id.
        broker_id: i32,
    },
    /// A partition's leader or ISR changed (fields left None are unchanged); a new
    /// leader bumps the leader epoch. Written by the cluster's controller on failover.
    PartitionChange {
        /// Id of the topic of the partition.
        topic_id: Uuid,
        /// Partition index.
        partition: i32,
        /// New leader broker id, if it changed; -1 is no leader (Kafka's NO_LEADER:
        /// clients get LEADER_NOT_AVAILABLE until one is elected).
        leader: Option<i32>,
        /// New ISR (broker ids), if it changed.
        isr: Option<Vec<i32>>,
        /// New eligible leader replicas (KIP-966), if they changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        elr: Option<Vec<i32>>,
        /// New replica list, if it changed (a reassignment starts, completes or is cancelled).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replicas: Option<Vec<i32>>,
        /// Replicas a reassignment is adding, if that changed (empty: none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adding: Option<Vec<i32>>,
        /// Replicas a reassignment will remove once the added ones are in sync, if that changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        removing: Option<Vec<i32>>,
    },
}
