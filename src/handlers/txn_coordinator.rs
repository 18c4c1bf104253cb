//! Routing shared by the transactional APIs: find (creating on first use) the
//! `__transaction_state` partition of a transactional id and send the request
//! to its owner shard, where the transaction coordinator for that id runs.

use super::Ctx;
use crate::coordinator::txn::{TxnRequest, TxnResponse};
use crate::coordinator::txn_store::TXN_STATE_TOPIC;
use crate::coordinator::{internal_partition_count, partition_for};
use crate::error::Error;
use crate::shard::request::NewTopic;

/// Creates `__transaction_state` if it does not exist yet.
pub async fn ensure_txn_topic(ctx: &Ctx) -> bool {
    if ctx.shard().image().topics.contains_key(TXN_STATE_TOPIC) {
        return true;
    }
    let n = ctx.shard().cfg.transaction_state_log_num_partitions;
    // As Kafka creates it: compacted (only the latest state per id matters on
    // replay) with 100 MiB segments (transaction.state.log.segment.bytes).
    let configs = [("cleanup.policy", "compact"), ("segment.bytes", "104857600")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let topic = NewTopic { name: TXN_STATE_TOPIC.into(), num_partitions: n, replication_factor: 1, configs };
    let _ = super::create_topics::create_internal(ctx, topic).await;
    ctx.shard().image().topics.contains_key(TXN_STATE_TOPIC)
}

/// The `__transaction_state` partition of `transactional_id`, by the topic's actual partition count.
pub fn txn_partition(ctx: &Ctx, transactional_id: &str) -> i32 {
    let n = internal_partition_count(&ctx.shard().image(), TXN_STATE_TOPIC, ctx.shard().cfg.transaction_state_log_num_partitions);
    partition_for(transactional_id, n)
}

/// The shard coordinating `transactional_id`, or why there is none.
pub async fn shard_for_txn(ctx: &Ctx, transactional_id: &str) -> Result<usize, Error> {
    if !ensure_txn_topic(ctx).await {
        return Err(Error::CoordinatorNotAvailable);
    }
    let p = txn_partition(ctx, transactional_id);
    super::group_coordinator::coordinator_shard(ctx, TXN_STATE_TOPIC, p)
}

/// Sends a transactional request to the id's coordinator shard.
pub async fn call(ctx: &Ctx, transactional_id: &str, req: TxnRequest) -> Result<TxnResponse, Error> {
    let shard = shard_for_txn(ctx, transactional_id).await?;
    call_shard(ctx, shard, req).await
}

/// Sends a transactional request to one shard.
pub async fn call_shard(ctx: &Ctx, shard: usize, req: TxnRequest) -> Result<TxnResponse, Error> {
    ctx.x.call_txn(shard, req).await.map_err(|_| Error::CoordinatorNotAvailable)
}
