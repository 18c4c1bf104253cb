//! What a shard can be asked: the closed set of requests and responses that
//! `xshard` carries between cores (one message per owner shard per client
//! request, never one per record). Everything here is `Send` by design.

use std::sync::Arc;

use crate::error::Error;
use crate::log::{AppendInfo, ReadSlice};
use crate::metadata::{MetadataImage, ShardPlacement};
use crate::protocol::record_batch::ValidatedBatch;

/// A partition named by topic and index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// One partition of a fetch: where to read and how much.
#[derive(Debug, Clone)]
pub struct FetchRead {
    pub tp: TopicPartition,
    pub offset: i64,
    pub max_bytes: usize,
    /// Isolation level 1: stop at the last stable offset, report aborted transactions.
    pub read_committed: bool,
}

/// A topic to create (already validated for shape by the handler).
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i16,
    pub configs: std::collections::BTreeMap<String, String>,
}

/// An IncrementalAlterConfigs operation (Kafka's codes 0-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterOp {
    Set,
    Delete,
    Append,
    Subtract,
}

/// How a topic's config overrides change.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    /// AlterConfigs: the given overrides replace all existing ones.
    Replace(std::collections::BTreeMap<String, String>),
    /// IncrementalAlterConfigs: operations on single keys.
    Incremental(Vec<(String, AlterOp, Option<String>)>),
}

/// A transaction marker for one partition: the coordinator's decision
/// (commit or abort) for a producer's transaction, written as a control batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMarker {
    pub tp: TopicPartition,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    /// Epoch of the coordinator writing it (its `__transaction_state` partition's
    /// leader epoch), so a partition can reject markers from a deposed coordinator.
    pub coordinator_epoch: i32,
}

/// Requests a shard serves for partitions it owns (or, for the controller, for metadata).
/// Requests for the coordinators on a core travel beside these (`xshard::Request`).
pub enum ShardRequest {
    /// Append validated batches; one entry per partition.
    Produce { partitions: Vec<(TopicPartition, Vec<ValidatedBatch>)> },
    /// Locate the bytes to send for each partition.
    Fetch { reads: Vec<FetchRead> },
    /// Resolve when any partition's high watermark (last stable offset when
    /// `read_committed`) passes its offset, or after `max_wait_ms`.
    WaitForAppend { partitions: Vec<(TopicPartition, i64)>, max_wait_ms: u64, read_committed: bool },
    /// Offsets by timestamp (-1 latest, -2 earliest, else first offset with ts >= it);
    /// latest is the last stable offset when `read_committed`.
    ListOffsets { partitions: Vec<(TopicPartition, i64)>, read_committed: bool },
    /// Controller only: create topics and push the new image to every shard.
    /// `internal`: the broker creating one of its own topics (clients never may).
    CreateTopics { topics: Vec<NewTopic>, validate_only: bool, internal: bool },
    /// Controller only: delete topics by name or id; answers (name, id) per topic.
    DeleteTopics { topics: Vec<(Option<String>, uuid::Uuid)> },
    /// Controller only: grow topics to `count` partitions each.
    CreatePartitions { topics: Vec<(String, i32)>, validate_only: bool },
    /// Controller only: change topic config overrides (validated whole, then persisted).
    AlterTopicConfigs { changes: Vec<(String, ConfigChange)>, validate_only: bool },
    /// Move each partition's log start offset up to the offset (-1 = high watermark).
    DeleteRecords { partitions: Vec<(TopicPartition, i64)> },
    /// Size on disk of every partition this shard owns.
    LogDirSizes,
    /// The producer state of each partition (DescribeProducers).
    DescribeProducers { partitions: Vec<TopicPartition> },
    /// Install a new metadata image and open logs for newly owned partitions.
    ApplyMetadata { image: Arc<MetadataImage>, placement: Arc<ShardPlacement> },
    /// Controller only: reserve a block of producer ids (persisted before the answer).
    AllocateProducerIds,
    /// Append transaction markers to partitions this shard owns; one result per marker.
    WriteTxnMarkers { markers: Vec<TxnMarker> },
}

/// The answer to each [`ShardRequest`], same variant order.
pub enum ShardResponse {
    Produce(Vec<Result<AppendInfo, Error>>),
    Fetch(Vec<Result<ReadSlice, Error>>),
    Waited,
    /// (timestamp, offset) per partition.
    ListOffsets(Vec<Result<(i64, i64), Error>>),
    CreateTopics(Vec<Result<(), Error>>),
    MetadataApplied,
    DeleteTopics(Vec<Result<(String, uuid::Uuid), Error>>),
    /// Per topic: the index of its first new partition (its count before).
    CreatePartitions(Vec<Result<i32, Error>>),
    AlterTopicConfigs(Vec<Result<(), Error>>),
    /// The new low watermark per partition.
    DeleteRecords(Vec<Result<i64, Error>>),
    LogDirSizes(Vec<(TopicPartition, u64)>),
    DescribeProducers(Vec<Result<Vec<(i64, crate::log::producer_state::ProducerEntry)>, Error>>),
    /// A block of producer ids: (first id, count).
    ProducerIds(Result<(i64, i64), Error>),
    WriteTxnMarkers(Vec<Result<(), Error>>),
}
