//! OffsetForLeaderEpoch (key 23), versions 2-4: the end offset of a leader
//! epoch, which consumers ask after a leader change to detect log truncation
//! (KIP-320). The partition's leader answers from its leader-epoch cache
//! (Kafka's `LeaderEpochFileCache.endOffsetFor`): the largest epoch at or below
//! the one asked and the offset where it ended (the log end for the current
//! epoch); an epoch past the latest is UNDEFINED_EPOCH_OFFSET (-1, -1) without
//! an error. A client's current epoch is checked as Kafka does
//! (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH); a broker that does not lead the
//! partition answers NOT_LEADER_OR_FOLLOWER.

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::Ctx;
use crate::error::Error;
use crate::metadata::Route;
use crate::shard::request::{ShardRequest, ShardResponse, TopicPartition};
use crate::xshard::fan_out::fan_out;

/// Serves OffsetForLeaderEpoch: per partition, the end offset of the asked epoch.
pub async fn handle(ctx: &Ctx, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let mut asks = Vec::new();
    let mut items = Vec::new();
    for t in &req.topics {
        let topic = t.topic.0.to_string();
        for p in &t.partitions {
            let route = ctx.shard().route(&topic, p.partition);
            asks.push((topic.clone(), p.partition, route));
            items.push((route, (TopicPartition { topic: topic.clone(), partition: p.partition }, p.current_leader_epoch, p.leader_epoch)));
        }
    }
    let ends = fan_out(
        &ctx.x,
        items,
        |partitions| ShardRequest::OffsetForLeaderEpoch { partitions },
        |r| match r {
            ShardResponse::EpochEndOffsets(v) => Some(v),
            _ => None,
        },
    )
    .await;
    let mut topics: Vec<OffsetForLeaderTopicResult> = Vec::new();
    for ((topic, partition, route), end) in asks.into_iter().zip(ends) {
        let mut e = EpochEndOffset::default().with_partition(partition).with_leader_epoch(-1).with_end_offset(-1);
        match (route, end) {
            (Route::Unknown, _) => e.error_code = Error::UnknownTopicOrPartition.code(),
            (Route::Remote(_), _) => e.error_code = Error::NotLeaderOrFollower.code(),
            (_, Err(err)) => e.error_code = err.code(),
            (_, Ok((epoch, end_offset))) => {
                e.leader_epoch = epoch;
                e.end_offset = end_offset;
            }
        }
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == topic => t.partitions.push(e),
            _ => topics.push(OffsetForLeaderTopicResult::default().with_topic(kafka_protocol::messages::TopicName(topic.into())).with_partitions(vec![e])),
        }
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
