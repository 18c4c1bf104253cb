//! OffsetForLeaderEpoch (key 23), versions 2-4: the end offset of a leader
//! epoch, which consumers ask after a leader change to detect log truncation
//! (KIP-320). On a single broker every partition has had one leader since it
//! was created, epoch `leader_epoch` of the metadata image (0), so the answer
//! for that epoch is the log end offset; a later epoch is unknown
//! (UNDEFINED_EPOCH_OFFSET), and a client's current epoch is checked against
//! ours (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH) as Kafka does.

use crate::error::Error;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::Ctx;
use crate::shard::request::{ShardRequest, ShardResponse, TopicPartition};
use crate::xshard::fan_out::fan_out;

/// Serves OffsetForLeaderEpoch: per partition, the end offset of the asked
/// leader epoch (the log end offset for the current one).
pub async fn handle(ctx: &Ctx, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let image = ctx.shard().image();
    // Ask the owners for the log end offsets (ListOffsets latest = -1).
    let mut items = Vec::new();
    let mut asks = Vec::new();
    for t in &req.topics {
        let topic = t.topic.0.to_string();
        for p in &t.partitions {
            let epoch = image.topics.get(&topic).and_then(|m| m.partitions.get(usize::try_from(p.partition).ok()?)).map(|m| m.leader_epoch);
            asks.push((topic.clone(), p.partition, p.current_leader_epoch, p.leader_epoch, epoch));
            items.push((ctx.shard().route(&topic, p.partition), (TopicPartition { topic: topic.clone(), partition: p.partition }, -1i64)));
        }
    }
    let ends = fan_out(
        &ctx.x,
        items,
        |partitions| ShardRequest::ListOffsets { partitions, read_committed: false },
        |r| match r {
            ShardResponse::ListOffsets(v) => Some(v),
            _ => None,
        },
    )
    .await;
    let mut topics: Vec<OffsetForLeaderTopicResult> = Vec::new();
    for ((topic, partition, current, asked, ours), end) in asks.into_iter().zip(ends) {
        let mut e = EpochEndOffset::default().with_partition(partition).with_leader_epoch(-1).with_end_offset(-1);
        match (ours, end) {
            (None, _) => e.error_code = Error::UnknownTopicOrPartition.code(),
            (_, Err(err)) => e.error_code = err.code(),
            (Some(ours), Ok((_, log_end))) => {
                if current >= 0 && current < ours {
                    e.error_code = Error::FencedLeaderEpoch(current).code();
                } else if current > ours {
                    e.error_code = Error::UnknownLeaderEpoch(current).code();
                } else if (0..=ours).contains(&asked) {
                    // Every epoch up to ours ends where the log ends: there was never another leader.
                    e.leader_epoch = ours;
                    e.end_offset = log_end;
                }
                // asked > ours: UNDEFINED_EPOCH_OFFSET (-1, -1) without an error, as Kafka answers.
            }
        }
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == topic => t.partitions.push(e),
            _ => topics.push(OffsetForLeaderTopicResult::default().with_topic(kafka_protocol::messages::TopicName(topic.into())).with_partitions(vec![e])),
        }
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
