//! ListOffsets (key 2), versions 1-6: earliest (-2), latest (-1) and by
//! timestamp through the time index. With isolation level 1 (read_committed,
//! v2+) latest is the last stable offset: a read_committed consumer starting at
//! "latest" must not land inside an open transaction.

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::Ctx;
use crate::shard::request::{ShardRequest, ShardResponse, TopicPartition};
use crate::xshard::fan_out::fan_out;

/// Serves ListOffsets `version`: each partition's offset (earliest, latest or by
/// timestamp) from its owner shard.
pub async fn handle(ctx: &Ctx, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let mut items = Vec::new();
    for t in &req.topics {
        let topic = t.name.0.to_string();
        for p in &t.partitions {
            items.push((ctx.shard().route(&topic, p.partition_index), (TopicPartition { topic: topic.clone(), partition: p.partition_index }, p.timestamp)));
        }
    }
    let read_committed = version >= 2 && req.isolation_level == 1;
    let keys: Vec<TopicPartition> = items.iter().map(|(_, (tp, _))| tp.clone()).collect();
    let results = fan_out(
        &ctx.x,
        items,
        |partitions| ShardRequest::ListOffsets { partitions, read_committed },
        |r| match r {
            ShardResponse::ListOffsets(v) => Some(v),
            _ => None,
        },
    )
    .await;
    let mut topics: Vec<ListOffsetsTopicResponse> = Vec::new();
    for (tp, r) in keys.into_iter().zip(results) {
        let mut pr = ListOffsetsPartitionResponse::default().with_partition_index(tp.partition).with_timestamp(-1).with_offset(-1);
        match r {
            Ok((ts, off)) => {
                pr.timestamp = ts;
                pr.offset = off;
                if version >= 4 {
                    pr.leader_epoch = 0;
                }
            }
            Err(e) => pr.error_code = e.code(),
        }
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == tp.topic => t.partitions.push(pr),
            _ => topics.push(
                ListOffsetsTopicResponse::default().with_name(kafka_protocol::protocol::StrBytes::from_string(tp.topic).into()).with_partitions(vec![pr]),
            ),
        }
    }
    ListOffsetsResponse::default().with_topics(topics)
}
