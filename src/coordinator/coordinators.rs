//! The coordinators of one core: the group coordinator and the transaction
//! coordinator for the `__consumer_offsets` and `__transaction_state` partitions
//! this core's shard owns, and the core's block of producer ids.
//!
//! They sit above the partition owner: they read and append through the
//! shard's logs, hear of partitions opening and markers written through
//! [`PartitionEvents`], and reach other cores only through [`Outbound`], which
//! `xshard` implements. So no call from a shard ever comes back up into a
//! coordinator, and the layers run one way (`layers.txt`).

use std::cell::OnceCell;
use std::rc::{Rc, Weak};

use futures::future::LocalBoxFuture;

use super::group::{GroupCoordinator, GroupRequest, GroupResponse};
use super::producer_ids::ProducerIdBlock;
use super::txn::{TxnCoordinator, TxnRequest, TxnResponse};
use crate::error::{Error, Result};
use crate::log::PartitionLog;
use crate::metadata::MetadataImage;
use crate::protocol::topic::{OFFSETS_TOPIC, TXN_STATE_TOPIC};
use crate::shard::links::PartitionEvents;
use crate::shard::request::{TopicPartition, TxnMarker};
use crate::shard::Shard;

/// Calls the coordinators make to other cores. Futures are boxed: the call may
/// come back to this core, and the box keeps that recursion finite.
pub trait Outbound {
    /// Appends markers to their partitions' owners (one message per owner shard);
    /// one result per marker, in order.
    fn write_txn_markers(&self, markers: Vec<TxnMarker>) -> LocalBoxFuture<'_, Vec<Result<()>>>;
    /// Asks the controller for a block of producer ids: (first id, count).
    fn allocate_producer_ids(&self) -> LocalBoxFuture<'_, Result<(i64, i64)>>;
}

/// One core's coordinators.
pub struct Coordinators {
    /// The partition owner of this core (logs, metadata image, config).
    pub shard: Rc<Shard>,
    /// Groups whose `__consumer_offsets` partition this core owns.
    pub group: GroupCoordinator,
    /// Transactional ids whose `__transaction_state` partition this core owns.
    pub txn: TxnCoordinator,
    /// This core's block of producer ids (InitProducerId).
    producer_ids: ProducerIdBlock,
    /// The way to other cores. Set once by `XShard::connect`; weak because the XShard owns these.
    outbound: OnceCell<Weak<dyn Outbound>>,
}

impl Coordinators {
    /// Builds the coordinators of `shard`'s core and registers them for its
    /// partition events; call before the shard opens its logs.
    pub fn new(shard: Rc<Shard>) -> Rc<Coordinators> {
        let c = Rc::new(Coordinators {
            group: GroupCoordinator::new(shard.cfg.clone()),
            txn: TxnCoordinator::new(shard.cfg.clone()),
            shard,
            producer_ids: ProducerIdBlock::default(),
            outbound: OnceCell::new(),
        });
        let weak: Weak<Coordinators> = Rc::downgrade(&c);
        c.shard.set_partition_events(weak);
        c
    }

    /// Called once by `XShard::connect`.
    pub fn set_outbound(&self, outbound: Weak<dyn Outbound>) {
        let _ = self.outbound.set(outbound);
    }

    /// The way to other cores (COORDINATOR_NOT_AVAILABLE before the cores are connected).
    pub fn outbound(&self) -> Result<Rc<dyn Outbound>> {
        self.outbound.get().and_then(Weak::upgrade).ok_or(Error::CoordinatorNotAvailable)
    }

    /// Serves a consumer-group request for a group this core coordinates.
    pub async fn handle_group(&self, req: GroupRequest) -> GroupResponse {
        let image = self.shard.image();
        self.group.handle(req, &image).await
    }

    /// Serves a transactional request for an id this core coordinates.
    pub async fn handle_txn(&self, req: TxnRequest) -> TxnResponse {
        self.txn.handle(req, self).await
    }

    /// A producer id unique across the broker and its restarts: from this core's
    /// block, asking the controller for a new block when it is used up.
    pub async fn next_producer_id(&self) -> Result<i64> {
        if let Some(id) = self.producer_ids.take() {
            return Ok(id);
        }
        let (start, count) = self.outbound()?.allocate_producer_ids().await?;
        self.producer_ids.install(start, count);
        self.producer_ids.take().ok_or(Error::CoordinatorNotAvailable)
    }
}

impl PartitionEvents for Coordinators {
    fn image_installed(&self, image: &MetadataImage) {
        let count = |name: &str| image.topics.get(name).map(|t| t.partitions.len().min(i32::MAX as usize) as i32);
        if let Some(n) = count(OFFSETS_TOPIC) {
            self.group.set_partition_count(n);
        }
        if let Some(n) = count(TXN_STATE_TOPIC) {
            self.txn.set_partition_count(n);
        }
    }

    fn partition_opened(&self, tp: &TopicPartition, log: &Rc<PartitionLog>) -> Result<()> {
        match tp.topic.as_str() {
            OFFSETS_TOPIC => self.group.add_partition(tp.partition, log.clone()),
            TXN_STATE_TOPIC => self.txn.add_partition(tp.partition, log.clone()),
            _ => Ok(()),
        }
    }

    fn partition_closed(&self, tp: &TopicPartition) {
        match tp.topic.as_str() {
            OFFSETS_TOPIC => self.group.remove_partition(tp.partition),
            TXN_STATE_TOPIC => self.txn.remove_partition(tp.partition),
            _ => {}
        }
    }

    fn marker_written(&self, m: &TxnMarker) {
        if m.tp.topic == OFFSETS_TOPIC {
            self.group.complete_txn(m.tp.partition, m.producer_id, m.commit);
        }
    }
}
