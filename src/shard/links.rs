//! The two interfaces a shard talks upward through, so that `shard/` names no
//! layer above it (`layers.txt`):
//! - [`PartitionEvents`]: what the partition owner tells the coordinators living
//!   on the same core (a `__consumer_offsets` or `__transaction_state` partition
//!   opened, a transaction marker written). `coordinator/` implements it.
//! - [`Peers`]: the one job that starts on a shard and needs every other shard,
//!   the controller publishing a new metadata image. `xshard/` implements it.
//!
//! - [`MetadataQuorum`]: in a cluster, the Raft quorum the controller commits
//!   metadata changes through, and the way to the active controller when this
//!   node is not it. `cluster/` implements it; a single broker has none.
//!
//! All are held weakly (the implementors own the shard), and their futures are
//! boxed: a publish re-enters this shard through `xshard`, and the box is what
//! keeps that recursion finite for the compiler.

use std::rc::Rc;
use std::sync::Arc;

use futures::future::LocalBoxFuture;

use super::request::{ControllerOp, ControllerReply, TopicPartition, TxnMarker};
use crate::error::Result;
use crate::log::PartitionLog;
use crate::metadata::{MetadataImage, MetadataRecord, ShardPlacement};

/// Events of the partitions a shard owns, for the layer above that keeps state in
/// some of them (the group and transaction coordinators).
pub trait PartitionEvents {
    /// A new image is installed, before any of its partitions open here (the
    /// coordinators read their internal topics' partition counts, which place
    /// every group and transactional id).
    fn image_installed(&self, image: &MetadataImage);
    /// This broker leads a partition on this shard: its log opened as leader, or
    /// it became leader (a failover). The coordinators (re)load the state they
    /// keep in it; an error at open (its state could not be replayed) keeps the
    /// partition offline.
    fn partition_opened(&self, tp: &TopicPartition, log: &Rc<PartitionLog>) -> Result<()>;
    /// This broker stopped leading a partition on this shard: the coordinators
    /// drop the state they loaded from it (the new leader loads it).
    fn partition_closed(&self, tp: &TopicPartition);
    /// A transaction marker was appended to a partition here.
    fn marker_written(&self, marker: &TxnMarker);
}

/// The way from the controller shard to every shard of the broker.
pub trait Peers {
    /// Installs `image` and `placement` on every shard (this one included) and
    /// resolves when all have applied them; answers how many shards failed to.
    fn apply_everywhere(&self, image: Arc<MetadataImage>, placement: Arc<ShardPlacement>) -> LocalBoxFuture<'_, usize>;
}

/// The cluster's metadata quorum as the controller shard sees it.
pub trait MetadataQuorum {
    /// True when this node is the active controller (the Raft leader, caught up
    /// with its own term): only then may it validate and propose changes.
    fn is_active(&self) -> bool;
    /// Proposes one change (applied all or none) and resolves once it is
    /// committed by the quorum and applied (published) on this node; an error
    /// when leadership was lost or the commit did not come in time.
    fn propose(&self, records: Vec<MetadataRecord>) -> LocalBoxFuture<'_, Result<()>>;
    /// Sends `op` to the active controller and resolves with its answer once
    /// this node has applied what it committed.
    fn forward(&self, op: ControllerOp) -> LocalBoxFuture<'_, Result<ControllerReply>>;
    /// Removes broker `broker_id`'s registration (Kafka's UnregisterBroker),
    /// through the active controller.
    fn unregister_broker(&self, broker_id: i32) -> LocalBoxFuture<'_, Result<()>>;
    /// Stopping: a broker's controlled shutdown (its leaderships moved first),
    /// and a quorum leader's handoff; resolves when this node may stop.
    fn controlled_shutdown(&self) -> LocalBoxFuture<'_, ()>;
    /// The quorum as its leader sees it (asked of the leader when this node is not it).
    fn describe(&self) -> LocalBoxFuture<'_, Result<QuorumDescription>>;
}

/// The metadata quorum for DescribeQuorum (Kafka's names).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct QuorumDescription {
    /// Node id of the leader (-1: none known).
    pub leader_id: i32,
    /// The leader's epoch (the Raft term).
    pub leader_epoch: i32,
    /// The metadata log's committed offset.
    pub high_watermark: i64,
    /// Every voter.
    pub voters: Vec<QuorumReplica>,
}

/// One voter as the leader sees it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct QuorumReplica {
    /// Its node id.
    pub replica_id: i32,
    /// The last offset known to be in its log (-1: unknown).
    pub log_end_offset: i64,
    /// When the leader last heard from it, ms since the epoch (-1: unknown).
    pub last_fetch_timestamp: i64,
}
