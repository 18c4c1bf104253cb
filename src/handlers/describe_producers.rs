//! DescribeProducers (key 61), version 0: the idempotent and transactional
//! producers a partition remembers (epoch, last sequence, last timestamp,
//! coordinator epoch, start of the open transaction), read from the owner
//! shard's producer state — what `kafka-transactions.sh describe-producers`
//! shows to find a hanging transaction.

use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::shard::request::{ShardRequest, ShardResponse, TopicPartition};
use crate::xshard::fan_out::fan_out;

/// Serves DescribeProducers: each partition's producer state, read on its owner shard.
pub async fn handle(ctx: &Ctx, req: DescribeProducersRequest) -> DescribeProducersResponse {
    let mut items = Vec::new();
    for t in &req.topics {
        let topic = t.name.0.to_string();
        for &p in &t.partition_indexes {
            items.push((ctx.shard().route(&topic, p), TopicPartition { topic: topic.clone(), partition: p }));
        }
    }
    let keys: Vec<TopicPartition> = items.iter().map(|(_, tp)| tp.clone()).collect();
    let results = fan_out(
        &ctx.x,
        items,
        |partitions| ShardRequest::DescribeProducers { partitions },
        |r| match r {
            ShardResponse::DescribeProducers(v) => Some(v),
            _ => None,
        },
    )
    .await;
    let mut topics: Vec<TopicResponse> = Vec::new();
    for (tp, r) in keys.into_iter().zip(results) {
        let mut pr = PartitionResponse::default().with_partition_index(tp.partition);
        match r {
            Ok(producers) => {
                pr.active_producers = producers
                    .into_iter()
                    .map(|(id, e)| {
                        ProducerState::default()
                            .with_producer_id(ProducerId(id))
                            .with_producer_epoch(i32::from(e.epoch))
                            .with_last_sequence(e.last_seq().unwrap_or(-1))
                            .with_last_timestamp(e.last_timestamp)
                            .with_coordinator_epoch(e.coordinator_epoch)
                            .with_current_txn_start_offset(e.txn_first_offset.unwrap_or(-1))
                    })
                    .collect();
            }
            Err(e) => {
                pr.error_code = e.code();
                pr.error_message = Some(StrBytes::from_string(e.to_string()));
            }
        }
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == tp.topic => t.partitions.push(pr),
            _ => topics.push(TopicResponse::default().with_name(StrBytes::from_string(tp.topic).into()).with_partitions(vec![pr])),
        }
    }
    DescribeProducersResponse::default().with_topics(topics)
}
