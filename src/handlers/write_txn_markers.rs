//! WriteTxnMarkers (key 27), version 1 (the only one kafka-protocol decodes;
//! Kafka 4.0 removed v0, KIP-896, and its brokers send v1): the inter-broker
//! call a transaction coordinator on another broker makes to write COMMIT or
//! ABORT markers into the partitions this broker leads. Each marker goes to its
//! partition's owner shard (one message per shard, `xshard::fan_out`), which
//! checks the coordinator epoch and appends the control batch.
//!
//! Per partition: NONE, NOT_LEADER_OR_FOLLOWER (led by another broker: the
//! coordinator refreshes its metadata), UNKNOWN_TOPIC_OR_PARTITION, or what the
//! owner shard answered (e.g. TRANSACTION_COORDINATOR_FENCED for a deposed
//! coordinator). Markers are never forwarded onward from here.

use kafka_protocol::messages::write_txn_markers_response::{WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult};
use kafka_protocol::messages::{TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::Ctx;
use crate::shard::request::{ShardRequest, ShardResponse, TopicPartition, TxnMarker};
use crate::xshard::fan_out::fan_out;

/// Serves WriteTxnMarkers: writes each marker to the partitions this broker
/// leads; answers an error code per partition, in the request's order.
pub async fn handle(ctx: &Ctx, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let mut items = Vec::new();
    for m in &req.markers {
        for t in &m.topics {
            for &p in &t.partition_indexes {
                let marker = TxnMarker {
                    tp: TopicPartition { topic: t.name.0.to_string(), partition: p },
                    producer_id: m.producer_id.0,
                    producer_epoch: m.producer_epoch,
                    commit: m.transaction_result,
                    coordinator_epoch: m.coordinator_epoch,
                };
                items.push((ctx.shard().route(&marker.tp.topic, p), marker));
            }
        }
    }
    let mut results = fan_out(
        &ctx.x,
        items,
        |markers| ShardRequest::WriteTxnMarkers { markers },
        |r| match r {
            ShardResponse::WriteTxnMarkers(v) => Some(v),
            _ => None,
        },
    )
    .await
    .into_iter();
    let markers = req
        .markers
        .iter()
        .map(|m| {
            let topics = m
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|&p| {
                            let error_code = match results.next() {
                                Some(Ok(())) => 0,
                                Some(Err(e)) => e.code(),
                                None => crate::error::Error::ShardUnavailable.code(),
                            };
                            WritableTxnMarkerPartitionResult::default().with_partition_index(p).with_error_code(error_code)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default().with_name(TopicName(t.name.0.clone())).with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics)
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}
