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
    /// Topic name.
    pub topic: String,
    /// Partition index within the topic (0-based).
    pub partition: i32,
}

/// One partition of a fetch: where to read and how much.
#[derive(Debug, Clone)]
pub struct FetchRead {
    /// The partition to read.
    pub tp: TopicPartition,
    /// First offset the client wants (the fetch position).
    pub offset: i64,
    /// The partition's limit, in bytes (`partition_max_bytes`); the fetch's total `max_bytes` is applied to the results.
    pub max_bytes: usize,
    /// Isolation level 1: stop at the last stable offset, report aborted transactions.
    pub read_committed: bool,
    /// The fetching follower's broker id, or -1 for a consumer.
    pub replica_id: i32,
    /// The client's leader epoch (KIP-320), -1 when it sends none.
    pub current_leader_epoch: i32,
    /// A follower's epoch of its last fetched batch, -1 when none (KIP-595 divergence check).
    pub last_fetched_epoch: i32,
}

/// CreatePartitions of one topic: its name, new total partition count and,
/// optionally, the replicas of each new partition (broker ids, preferred leader first).
pub type PartitionsIncrease = (String, i32, Option<Vec<Vec<i32>>>);

/// A topic to create (already validated for shape by the handler).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewTopic {
    /// Topic name (checked against Kafka's name rules by the controller).
    pub name: String,
    /// Partition count (at least 1).
    pub num_partitions: i32,
    /// Replicas per partition: 1 on a single broker, up to the live brokers in a cluster.
    pub replication_factor: i16,
    /// Topic config overrides (`retention.ms`, `cleanup.policy`, ...), validated by the controller.
    pub configs: std::collections::BTreeMap<String, String>,
    /// A manual replica assignment: the replicas of partitions 0, 1, ... (broker
    /// ids, preferred leader first); None for Kafka's assignment.
    #[serde(default)]
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// An IncrementalAlterConfigs operation (Kafka's codes 0-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AlterOp {
    /// 0: set the key to the value.
    Set,
    /// 1: remove the override (back to the broker default).
    Delete,
    /// 2: add items to a list config.
    Append,
    /// 3: remove items from a list config.
    Subtract,
}

/// How a topic's config overrides change.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    /// The partition the transaction wrote to.
    pub tp: TopicPartition,
    /// The transactional producer's id.
    pub producer_id: i64,
    /// Its epoch when the transaction ended (a fenced-and-aborted one carries the bumped epoch).
    pub producer_epoch: i16,
    /// COMMIT marker when true, ABORT when false.
    pub commit: bool,
    /// Epoch of the coordinator writing it (its `__transaction_state` partition's
    /// leader epoch), so a partition can reject markers from a deposed coordinator.
    pub coordinator_epoch: i32,
}

/// Requests a shard serves for partitions it owns (or, for the controller, for metadata).
/// Requests for the coordinators on a core travel beside these (`xshard::Request`).
pub enum ShardRequest {
    /// Append validated batches.
    Produce {
        /// One entry per partition, its batches in the order the client sent them.
        partitions: Vec<(TopicPartition, Vec<ValidatedBatch>)>,
        /// The request's acks: -1 waits until the ISR has the records.
        acks: i16,
        /// The request's timeout (ms), for acks=-1.
        timeout_ms: u64,
    },
    /// Locate the bytes to send for each partition.
    Fetch {
        /// One read per partition, in the order of the response.
        reads: Vec<FetchRead>,
    },
    /// Resolve when any partition's high watermark (last stable offset when
    /// `read_committed`) passes its offset, or after `max_wait_ms`.
    WaitForAppend {
        /// Each partition with the offset the fetch waits to see passed.
        partitions: Vec<(TopicPartition, i64)>,
        /// The fetch's `max_wait_ms`, in ms.
        max_wait_ms: u64,
        /// Wait on the last stable offset instead of the high watermark.
        read_committed: bool,
        /// A follower's fetch: wait on the log end instead.
        replica: bool,
    },
    /// Offsets by timestamp (-1 latest, -2 earliest, else first offset with ts >= it).
    ListOffsets {
        /// Each partition with the timestamp asked for (ms, or -1 / -2).
        partitions: Vec<(TopicPartition, i64)>,
        /// "Latest" is the last stable offset instead of the high watermark.
        read_committed: bool,
    },
    /// Controller only: a metadata change (in a cluster, forwarded to the active
    /// controller when this node is not it).
    Controller(ControllerOp),
    /// The end offset of a leader epoch per partition (OffsetForLeaderEpoch, KIP-320).
    OffsetForLeaderEpoch {
        /// Each partition with the client's current leader epoch (-1: unchecked) and the epoch asked.
        partitions: Vec<(TopicPartition, i32, i32)>,
    },
    /// Move each partition's log start offset up.
    DeleteRecords {
        /// Each partition with the new log start offset (-1 = the high watermark).
        partitions: Vec<(TopicPartition, i64)>,
    },
    /// Size on disk of every partition this shard owns.
    LogDirSizes,
    /// This shard's counters, and its partitions' gauges when `partitions` (a `/metrics` scrape).
    Metrics {
        /// Include every owned partition's gauges (the rate sampler does without).
        partitions: bool,
    },
    /// The producer state of each partition (DescribeProducers).
    DescribeProducers {
        /// The partitions, answered in this order.
        partitions: Vec<TopicPartition>,
    },
    /// Install a new metadata image and open logs for newly owned partitions.
    ApplyMetadata {
        /// The image the controller committed.
        image: Arc<MetadataImage>,
        /// This broker's placement of partitions on shards, fitted to the image.
        placement: Arc<ShardPlacement>,
    },
    /// Controller only: the metadata quorum's state (DescribeQuorum).
    DescribeQuorum,
    /// Controller only: remove a broker's registration (UnregisterBroker).
    UnregisterBroker {
        /// The broker's id.
        broker_id: i32,
    },
    /// Append transaction markers to partitions this shard owns; one result per marker.
    WriteTxnMarkers {
        /// The markers, answered in this order.
        markers: Vec<TxnMarker>,
    },
}

/// The answer to each [`ShardRequest`], one result per item asked, in order.
pub enum ShardResponse {
    /// Where each partition's batches landed (base offset, log append time, log start offset).
    Produce(Vec<Result<AppendInfo, Error>>),
    /// The bytes to send per partition (a file range for zero-copy, with the offsets around it).
    Fetch(Vec<Result<ReadSlice, Error>>),
    /// The wait ended (data arrived or the time ran out); the handler fetches again.
    Waited,
    /// (timestamp, offset) per partition.
    ListOffsets(Vec<Result<(i64, i64), Error>>),
    /// Per topic: created (or valid, for validate-only).
    CreateTopics(Vec<Result<(), Error>>),
    /// The image is installed on this shard.
    MetadataApplied,
    /// Per topic: its name and id, deleted.
    DeleteTopics(Vec<Result<(String, uuid::Uuid), Error>>),
    /// Per topic: the index of its first new partition (its count before).
    CreatePartitions(Vec<Result<i32, Error>>),
    /// Per topic: changed (or valid, for validate-only).
    AlterTopicConfigs(Vec<Result<(), Error>>),
    /// The new low watermark per partition.
    DeleteRecords(Vec<Result<i64, Error>>),
    /// (epoch, end offset) per partition: the largest epoch at or below the one
    /// asked and where it ends; (-1, -1) for an epoch past the latest.
    EpochEndOffsets(Vec<Result<(i32, i64), Error>>),
    /// Bytes on disk per owned partition.
    LogDirSizes(Vec<(TopicPartition, u64)>),
    /// Counters and gauges (boxed: it is large).
    Metrics(Box<crate::metrics::ShardSnapshot>),
    /// Per partition: (producer id, its state) for every producer the log remembers.
    DescribeProducers(Vec<Result<Vec<(i64, crate::log::producer_state::ProducerEntry)>, Error>>),
    /// The registration is gone.
    Unregistered(Result<(), Error>),
    /// The metadata quorum's state.
    Quorum(Result<crate::shard::links::QuorumDescription, Error>),
    /// A block of producer ids: (first id, count).
    ProducerIds(Result<(i64, i64), Error>),
    /// Per marker: appended.
    WriteTxnMarkers(Vec<Result<(), Error>>),
    /// The ISR change is committed.
    AlterPartition(Result<(), Error>),
    /// Per broker resource.
    AlterBrokerConfigs(Vec<Result<(), Error>>),
    /// ElectLeaders: per partition (topic, index, outcome), or why none ran.
    ElectLeaders(Result<Vec<Elected<Error>>, Error>),
    /// AlterPartitionReassignments: per partition, in request order.
    AlterReassignments(Vec<Result<(), Error>>),
}

/// A metadata change asked of the controller. In a cluster it travels to the
/// active controller (JSON on the controller listener) when this node is not it,
/// so every change reaches the one writer of metadata through one path.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum ControllerOp {
    /// Create topics and push the new image to every shard.
    CreateTopics {
        /// The topics, answered in this order.
        topics: Vec<NewTopic>,
        /// Validate only (CreateTopics' `validate_only`): nothing is committed.
        validate_only: bool,
        /// The broker creating one of its own topics (clients never may).
        internal: bool,
    },
    /// Delete topics; answers (name, id) per topic.
    DeleteTopics {
        /// Each topic by name (v0-v5) or, when the name is None, by topic id (v6+).
        topics: Vec<(Option<String>, uuid::Uuid)>,
    },
    /// Grow topics to a new partition count each.
    CreatePartitions {
        /// Each topic with its new total partition count and, optionally, the
        /// replicas of each new partition (broker ids, preferred leader first).
        topics: Vec<PartitionsIncrease>,
        /// Validate only: nothing is committed.
        validate_only: bool,
    },
    /// Change topic config overrides (validated whole, then persisted).
    AlterTopicConfigs {
        /// Each topic with its change.
        changes: Vec<(String, ConfigChange)>,
        /// Validate only: nothing is committed.
        validate_only: bool,
    },
    /// Reserve a block of producer ids (persisted before the answer).
    AllocateProducerIds,
    /// A partition leader's ISR change (Kafka's AlterPartition, key 56, which
    /// shardlog's brokers send over the controller listener like any forwarded op).
    AlterPartition {
        /// The partition's topic id.
        topic_id: uuid::Uuid,
        /// Partition index.
        partition: i32,
        /// The leader asking (must be the partition's leader).
        leader: i32,
        /// Its leader epoch (must be the current one).
        leader_epoch: i32,
        /// The ISR the leader's change is based on (must be the current one).
        current_isr: Vec<i32>,
        /// The ISR wanted.
        new_isr: Vec<i32>,
    },
    /// Change dynamic broker configs (the replication throttle rates).
    AlterBrokerConfigs {
        /// Each broker id (-1: every broker) with its change.
        changes: Vec<(i32, ConfigChange)>,
        /// Validate only: nothing is committed.
        validate_only: bool,
    },
    /// ElectLeaders (key 43): preferred or unclean elections.
    ElectLeaders {
        /// Preferred or unclean.
        kind: crate::metadata::partition_change::ElectionType,
        /// The partitions (topic, index); None: every partition.
        partitions: Option<Vec<(String, i32)>>,
    },
    /// AlterPartitionReassignments (key 45): per partition, the target
    /// replicas, or None to cancel its ongoing reassignment.
    AlterReassignments {
        /// (topic, partition, target replicas or None), answered in this order.
        partitions: Vec<(String, i32, Option<Vec<i32>>)>,
    },
}

/// An error as it crosses brokers: Kafka's code and the message (rebuilt as [`Error::Remote`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WireError {
    /// Kafka error code.
    pub code: i16,
    /// The message the handler would have sent.
    pub message: String,
}

impl From<Error> for WireError {
    fn from(e: Error) -> WireError {
        WireError { code: e.code(), message: e.to_string() }
    }
}

impl From<WireError> for Error {
    fn from(w: WireError) -> Error {
        Error::from_remote(w.code, w.message)
    }
}

/// One partition's ElectLeaders outcome: topic, partition, and why nothing was elected.
pub type Elected<E> = (String, i32, Result<(), E>);

/// The active controller's answer to a [`ControllerOp`], same variant.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum ControllerReply {
    /// Per topic.
    CreateTopics(Vec<Result<(), WireError>>),
    /// Per topic: name and id.
    DeleteTopics(Vec<Result<(String, uuid::Uuid), WireError>>),
    /// Per topic: the count before.
    CreatePartitions(Vec<Result<i32, WireError>>),
    /// Per topic.
    AlterTopicConfigs(Vec<Result<(), WireError>>),
    /// (first id, count).
    ProducerIds(Result<(i64, i64), WireError>),
    /// The ISR change is committed.
    AlterPartition(Result<(), WireError>),
    /// Per broker resource.
    AlterBrokerConfigs(Vec<Result<(), WireError>>),
    /// Per partition, or why none ran.
    ElectLeaders(Result<Vec<Elected<WireError>>, WireError>),
    /// Per partition.
    AlterReassignments(Vec<Result<(), WireError>>),
}

fn wire<T>(v: Vec<Result<T, Error>>) -> Vec<Result<T, WireError>> {
    v.into_iter().map(|r| r.map_err(WireError::from)).collect()
}

fn local<T>(v: Vec<Result<T, WireError>>) -> Vec<Result<T, Error>> {
    v.into_iter().map(|r| r.map_err(Error::from)).collect()
}

impl ControllerOp {
    /// Every item failing with `e` (the controller could not be reached).
    pub fn failed(&self, e: &Error) -> ShardResponse {
        ControllerReply::failed(self, e).into_response()
    }
}

impl ControllerReply {
    /// The reply to send back for a controller response; None for other responses.
    pub fn from_response(resp: ShardResponse) -> Option<ControllerReply> {
        Some(match resp {
            ShardResponse::CreateTopics(v) => ControllerReply::CreateTopics(wire(v)),
            ShardResponse::DeleteTopics(v) => ControllerReply::DeleteTopics(wire(v)),
            ShardResponse::CreatePartitions(v) => ControllerReply::CreatePartitions(wire(v)),
            ShardResponse::AlterTopicConfigs(v) => ControllerReply::AlterTopicConfigs(wire(v)),
            ShardResponse::ProducerIds(r) => ControllerReply::ProducerIds(r.map_err(WireError::from)),
            ShardResponse::AlterPartition(r) => ControllerReply::AlterPartition(r.map_err(WireError::from)),
            ShardResponse::ElectLeaders(r) => {
                ControllerReply::ElectLeaders(r.map(|v| v.into_iter().map(|(t, p, r)| (t, p, r.map_err(WireError::from))).collect()).map_err(WireError::from))
            }
            ShardResponse::AlterReassignments(v) => ControllerReply::AlterReassignments(wire(v)),
            ShardResponse::AlterBrokerConfigs(v) => ControllerReply::AlterBrokerConfigs(wire(v)),
            _ => return None,
        })
    }

    /// Every item of `op` failing with `e`.
    pub fn failed(op: &ControllerOp, e: &Error) -> ControllerReply {
        fn err<T>(e: &Error) -> Result<T, WireError> {
            Err(WireError { code: e.code(), message: e.to_string() })
        }
        match op {
            ControllerOp::CreateTopics { topics, .. } => ControllerReply::CreateTopics(topics.iter().map(|_| err(e)).collect()),
            ControllerOp::DeleteTopics { topics } => ControllerReply::DeleteTopics(topics.iter().map(|_| err(e)).collect()),
            ControllerOp::CreatePartitions { topics, .. } => ControllerReply::CreatePartitions(topics.iter().map(|_| err(e)).collect()),
            ControllerOp::AlterTopicConfigs { changes, .. } => ControllerReply::AlterTopicConfigs(changes.iter().map(|_| err(e)).collect()),
            ControllerOp::AllocateProducerIds => ControllerReply::ProducerIds(err(e)),
            ControllerOp::AlterPartition { .. } => ControllerReply::AlterPartition(err(e)),
            ControllerOp::ElectLeaders { .. } => ControllerReply::ElectLeaders(err(e)),
            ControllerOp::AlterBrokerConfigs { changes, .. } => ControllerReply::AlterBrokerConfigs(changes.iter().map(|_| err(e)).collect()),
            ControllerOp::AlterReassignments { partitions } => ControllerReply::AlterReassignments(partitions.iter().map(|_| err(e)).collect()),
        }
    }

    /// The shard response this reply stands for.
    pub fn into_response(self) -> ShardResponse {
        match self {
            ControllerReply::CreateTopics(v) => ShardResponse::CreateTopics(local(v)),
            ControllerReply::DeleteTopics(v) => ShardResponse::DeleteTopics(local(v)),
            ControllerReply::CreatePartitions(v) => ShardResponse::CreatePartitions(local(v)),
            ControllerReply::AlterTopicConfigs(v) => ShardResponse::AlterTopicConfigs(local(v)),
            ControllerReply::ProducerIds(r) => ShardResponse::ProducerIds(r.map_err(Error::from)),
            ControllerReply::AlterPartition(r) => ShardResponse::AlterPartition(r.map_err(Error::from)),
            ControllerReply::ElectLeaders(r) => {
                ShardResponse::ElectLeaders(r.map(|v| v.into_iter().map(|(t, p, r)| (t, p, r.map_err(Error::from))).collect()).map_err(Error::from))
            }
            ControllerReply::AlterReassignments(v) => ShardResponse::AlterReassignments(local(v)),
            ControllerReply::AlterBrokerConfigs(v) => ShardResponse::AlterBrokerConfigs(local(v)),
        }
    }
}
