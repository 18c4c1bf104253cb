//! Routing shared by the consumer-group APIs: find (creating on first use) the
//! `__consumer_offsets` partition of a group and send the request to its owner shard.

use super::Ctx;
use crate::coordinator::{internal_partition_count, partition_for, GroupRequest, GroupResponse, OFFSETS_TOPIC};
use crate::error::Error;
use crate::shard::request::NewTopic;

/// Creates `__consumer_offsets` if it does not exist yet.
pub async fn ensure_offsets_topic(ctx: &Ctx) -> bool {
    if ctx.shard().image().topics.contains_key(OFFSETS_TOPIC) {
        return true;
    }
    let n = ctx.shard().cfg.offsets_topic_num_partitions;
    // As Kafka creates it: compacted (the latest commit per key is all a
    // coordinator replays) with 100 MiB segments (offsets.topic.segment.bytes).
    let configs = [("cleanup.policy", "compact"), ("segment.bytes", "104857600")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let topic = NewTopic { name: OFFSETS_TOPIC.into(), num_partitions: n, replication_factor: 1, configs };
    let _ = super::create_topics::create_internal(ctx, topic).await;
    ctx.shard().image().topics.contains_key(OFFSETS_TOPIC)
}

/// The `__consumer_offsets` partition of `group`, by the topic's actual partition count.
pub fn offsets_partition(ctx: &Ctx, group: &str) -> i32 {
    let n = internal_partition_count(&ctx.shard().image(), OFFSETS_TOPIC, ctx.shard().cfg.offsets_topic_num_partitions);
    partition_for(group, n)
}

/// The shard coordinating `group`, or why there is none.
pub async fn shard_for_group(ctx: &Ctx, group: &str) -> Result<usize, Error> {
    if !ensure_offsets_topic(ctx).await {
        return Err(Error::CoordinatorNotAvailable);
    }
    let p = offsets_partition(ctx, group);
    coordinator_shard(ctx, OFFSETS_TOPIC, p)
}

/// The shard coordinating what `partition` of internal `topic` places, or why
/// there is none: NOT_COORDINATOR when another broker leads that partition.
pub fn coordinator_shard(ctx: &Ctx, topic: &str, partition: i32) -> Result<usize, Error> {
    match ctx.shard().route(topic, partition) {
        crate::metadata::Route::Local(s) => Ok(s),
        crate::metadata::Route::Remote(_) => Err(Error::NotCoordinator),
        crate::metadata::Route::Unknown => Err(Error::CoordinatorNotAvailable),
    }
}

/// Sends a group request to the group's coordinator shard.
pub async fn call(ctx: &Ctx, group: &str, req: GroupRequest) -> Result<GroupResponse, Error> {
    let shard = shard_for_group(ctx, group).await?;
    call_shard(ctx, shard, req).await
}

/// Sends a group request to one shard.
pub async fn call_shard(ctx: &Ctx, shard: usize, req: GroupRequest) -> Result<GroupResponse, Error> {
    ctx.x.call_group(shard, req).await.map_err(|_| Error::CoordinatorNotAvailable)
}
