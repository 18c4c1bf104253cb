//! Which core coordinates a consumer group or a transactional id, and the calls
//! to it: the key's partition of `__consumer_offsets` / `__transaction_state`
//! (creating the topic on first use, as Kafka does) and that partition's owner.
//! NOT_COORDINATOR when another broker leads the partition.

use crate::coordinator::txn::{TxnRequest, TxnResponse};
use crate::coordinator::txn_store::TXN_STATE_TOPIC;
use crate::coordinator::{internal_partition_count, partition_for, GroupRequest, GroupResponse, OFFSETS_TOPIC};
use crate::error::Error;
use crate::shard::request::NewTopic;
use crate::xshard::XShard;

/// Creates internal `topic` with `partitions` if it does not exist yet, as Kafka
/// creates `__consumer_offsets` and `__transaction_state`: compacted (only the
/// latest value per key matters on replay) with 100 MiB segments
/// (`offsets.topic.segment.bytes`, `transaction.state.log.segment.bytes`).
/// Its replication factor is `offsets.topic.replication.factor` /
/// `transaction.state.log.replication.factor`, never lowered (and
/// `__transaction_state`'s `min.insync.replicas` is `transaction.state.log.min.isr`): a cluster that
/// cannot place it says why in the log, and the coordinator stays unavailable.
async fn ensure_internal_topic(x: &XShard, topic: &str, partitions: i32, replication_factor: i16, min_isr: Option<i32>) -> bool {
    if x.shard.image().topics.contains_key(topic) {
        return true;
    }
    let mut configs: std::collections::BTreeMap<String, String> =
        [("cleanup.policy", "compact"), ("segment.bytes", "104857600")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if let Some(m) = min_isr {
        configs.insert("min.insync.replicas".into(), m.to_string());
    }
    let new = NewTopic { name: topic.into(), num_partitions: partitions, replication_factor, configs, assignments: None };
    match super::topics::create_internal(x, new).await {
        Ok(()) | Err(Error::TopicAlreadyExists) => {}
        Err(e) => crate::warn_limited!("creating internal topic {topic} (replication factor {replication_factor}) failed: {e}"),
    }
    x.shard.image().topics.contains_key(topic)
}

/// Creates `__consumer_offsets` if it does not exist yet.
pub async fn ensure_offsets_topic(x: &XShard) -> bool {
    ensure_internal_topic(x, OFFSETS_TOPIC, x.shard.cfg.offsets_topic_num_partitions, x.shard.cfg.offsets_topic_replication_factor, None).await
}

/// The `__consumer_offsets` partition of `group`, by the topic's actual partition count.
pub fn offsets_partition(x: &XShard, group: &str) -> i32 {
    let n = internal_partition_count(&x.shard.image(), OFFSETS_TOPIC, x.shard.cfg.offsets_topic_num_partitions);
    partition_for(group, n)
}

/// The shard coordinating `group`, or why there is none.
pub async fn shard_for_group(x: &XShard, group: &str) -> Result<usize, Error> {
    if !ensure_offsets_topic(x).await {
        return Err(Error::CoordinatorNotAvailable);
    }
    let p = offsets_partition(x, group);
    coordinator_shard(x, OFFSETS_TOPIC, p)
}

/// The shard coordinating what `partition` of internal `topic` places, or why
/// there is none: NOT_COORDINATOR when another broker leads that partition.
pub fn coordinator_shard(x: &XShard, topic: &str, partition: i32) -> Result<usize, Error> {
    match x.shard.route(topic, partition) {
        crate::metadata::Route::Local(s) => Ok(s),
        crate::metadata::Route::Remote(_) => Err(Error::NotCoordinator),
        crate::metadata::Route::Unknown => Err(Error::CoordinatorNotAvailable),
    }
}

/// Sends a group request to the group's coordinator shard.
pub async fn call_group(x: &XShard, group: &str, req: GroupRequest) -> Result<GroupResponse, Error> {
    let shard = shard_for_group(x, group).await?;
    call_group_on(x, shard, req).await
}

/// Sends a group request to one shard.
pub async fn call_group_on(x: &XShard, shard: usize, req: GroupRequest) -> Result<GroupResponse, Error> {
    x.call_group(shard, req).await.map_err(|_| Error::CoordinatorNotAvailable)
}

/// Creates `__transaction_state` if it does not exist yet.
pub async fn ensure_txn_topic(x: &XShard) -> bool {
    let cfg = &x.shard.cfg;
    ensure_internal_topic(
        x,
        TXN_STATE_TOPIC,
        cfg.transaction_state_log_num_partitions,
        cfg.transaction_state_log_replication_factor,
        Some(cfg.transaction_state_log_min_isr),
    )
    .await
}

/// The `__transaction_state` partition of `transactional_id`, by the topic's actual partition count.
pub fn txn_partition(x: &XShard, transactional_id: &str) -> i32 {
    let n = internal_partition_count(&x.shard.image(), TXN_STATE_TOPIC, x.shard.cfg.transaction_state_log_num_partitions);
    partition_for(transactional_id, n)
}

/// The shard coordinating `transactional_id`, or why there is none.
pub async fn shard_for_txn(x: &XShard, transactional_id: &str) -> Result<usize, Error> {
    if !ensure_txn_topic(x).await {
        return Err(Error::CoordinatorNotAvailable);
    }
    let p = txn_partition(x, transactional_id);
    coordinator_shard(x, TXN_STATE_TOPIC, p)
}

/// Sends a transactional request to the id's coordinator shard.
pub async fn call_txn(x: &XShard, transactional_id: &str, req: TxnRequest) -> Result<TxnResponse, Error> {
    let shard = shard_for_txn(x, transactional_id).await?;
    call_txn_on(x, shard, req).await
}

/// Sends a transactional request to one shard.
pub async fn call_txn_on(x: &XShard, shard: usize, req: TxnRequest) -> Result<TxnResponse, Error> {
    x.call_txn(shard, req).await.map_err(|_| Error::CoordinatorNotAvailable)
}
