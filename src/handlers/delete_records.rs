//! DeleteRecords (key 21), versions 0-2: moves each partition's log start offset
//! (offset -1 = the high watermark) on its owner shard, which persists it and
//! deletes the segments wholly below it. Answers the new low watermarks.

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::Ctx;
use crate::error::Error;
use crate::protocol::topic::is_internal_topic;
use crate::shard::request::{ShardRequest, ShardResponse, TopicPartition};
use crate::xshard::fan_out::fan_out;

/// Serves DeleteRecords: each partition's owner shard moves its log start offset;
/// per-partition low watermarks or error codes come back.
pub async fn handle(ctx: &Ctx, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut items = Vec::new();
    // Internal topics hold the coordinators' state: refused, as Kafka does.
    let mut refused = Vec::new();
    for t in &req.topics {
        let topic = t.name.0.to_string();
        for p in &t.partitions {
            let tp = TopicPartition { topic: topic.clone(), partition: p.partition_index };
            if is_internal_topic(&topic) {
                refused.push(tp);
            } else {
                items.push((ctx.shard().route(&topic, p.partition_index), (tp, p.offset)));
            }
        }
    }
    let keys: Vec<TopicPartition> = items.iter().map(|(_, (tp, _))| tp.clone()).collect();
    let results = fan_out(
        &ctx.x,
        items,
        |partitions| ShardRequest::DeleteRecords { partitions },
        |r| match r {
            ShardResponse::DeleteRecords(v) => Some(v),
            _ => None,
        },
    )
    .await;
    let mut topics: Vec<DeleteRecordsTopicResult> = Vec::new();
    let refused = refused.into_iter().map(|tp| {
        let e = Error::InvalidTopic(format!("Cannot delete records of internal topic {}", tp.topic));
        (tp, Err(e))
    });
    for (tp, r) in keys.into_iter().zip(results).chain(refused) {
        let mut pr = DeleteRecordsPartitionResult::default().with_partition_index(tp.partition).with_low_watermark(-1);
        match r {
            Ok(lw) => pr.low_watermark = lw,
            Err(e) => pr.error_code = e.code(),
        }
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == tp.topic => t.partitions.push(pr),
            _ => topics.push(DeleteRecordsTopicResult::default().with_name(kafka_protocol::messages::TopicName(tp.topic.into())).with_partitions(vec![pr])),
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
