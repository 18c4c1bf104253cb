//! Produce (key 0), versions 3-9 (RecordBatch v2 only). Batches are validated
//! here, on the connection's shard (spreading the CRC work), then sent as one
//! message per owner shard; offsets are assigned and bytes written there.
//! acks=0 gets no response (Kafka's behaviour); acks=1 answers once the
//! batches are in the leader's segment file, acks=-1 once the ISR has them too
//! (the high watermark passed them; see `shard::partition`).

use kafka_protocol::messages::produce_response::{BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::error::Error;
use crate::metadata::Route;
use crate::protocol::record_batch::validate_batches;
use crate::protocol::topic::is_internal_topic;
use crate::shard::request::{ShardRequest, ShardResponse, TopicPartition};
use crate::xshard::fan_out::fan_out;

/// Returns None for acks=0 (no response is sent).
pub async fn handle(ctx: &Ctx, req: ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks = req.acks;
    let timeout_ms = req.timeout_ms.max(0);
    // Flatten (topic, partition) in request order; validation errors are per partition.
    let mut slots: Vec<(String, i32, Result<(), Error>)> = Vec::new();
    let mut items = Vec::new();
    for t in &req.topic_data {
        let topic = t.name.0.to_string();
        let topic_cfg = ctx.shard().topic_config(&topic);
        let max = topic_cfg.as_ref().map(|c| c.max_message_bytes).unwrap_or(ctx.shard().cfg.message_max_bytes);
        for p in &t.partition_data {
            let idx = slots.len();
            let owner = ctx.shard().route(&topic, p.index);
            let checked = if !matches!(acks, -1..=1) {
                Err(Error::InvalidRequiredAcks(acks))
            } else if is_internal_topic(&topic) {
                // The coordinators' state: only they write it (Kafka's answer).
                Err(Error::InvalidTopic(format!("Cannot append to internal topic {topic}")))
            } else if owner == Route::Unknown {
                Err(Error::UnknownTopicOrPartition)
            } else if let Route::Remote(_) = owner {
                Err(Error::NotLeaderOrFollower)
            } else {
                match (&p.records, &topic_cfg) {
                    (Some(r), Some(tc)) => validate_batches(r, max)
                        .map_err(Error::from)
                        .and_then(|b| crate::log::produce_policy::apply(tc, b, ctx.shard().cfg.socket_request_max_bytes)),
                    (Some(_), None) => Err(Error::UnknownTopicOrPartition),
                    (None, _) => Err(Error::CorruptMessage("produce without records")),
                }
            };
            match checked {
                Ok(batches) => {
                    items.push((owner, (idx, TopicPartition { topic: topic.clone(), partition: p.index }, batches)));
                    slots.push((topic.clone(), p.index, Ok(())));
                }
                Err(e) => slots.push((topic.clone(), p.index, Err(e))),
            }
        }
    }
    let indices: Vec<usize> = items.iter().map(|(_, (i, _, _))| *i).collect();
    let work: Vec<(Route, (TopicPartition, Vec<_>))> = items.into_iter().map(|(o, (_, tp, b))| (o, (tp, b))).collect();
    let run = fan_out(
        &ctx.x,
        work,
        |parts| ShardRequest::Produce { partitions: parts, acks, timeout_ms: timeout_ms as u64 },
        |r| match r {
            ShardResponse::Produce(v) => Some(v),
            _ => None,
        },
    );
    if acks == 0 {
        // Still append, but nobody waits for the outcome.
        let results = run.await;
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            tracing::debug!("acks=0 produce failed: {r}");
        }
        return None;
    }
    let results = run.await;
    let mut answers: Vec<Option<Result<crate::log::AppendInfo, Error>>> = slots
        .iter_mut()
        .map(|(_, _, r)| match std::mem::replace(r, Ok(())) {
            Ok(()) => None,
            Err(e) => Some(Err(e)),
        })
        .collect();
    for (i, r) in indices.into_iter().zip(results) {
        answers[i] = Some(r);
    }
    let mut topics: Vec<TopicProduceResponse> = Vec::new();
    for ((topic, partition, _), ans) in slots.into_iter().zip(answers) {
        let mut pr = PartitionProduceResponse::default().with_index(partition).with_base_offset(-1).with_log_append_time_ms(-1);
        match ans.unwrap_or(Err(Error::ShardUnavailable)) {
            Ok(info) => {
                pr.base_offset = info.base_offset;
                pr.log_append_time_ms = info.log_append_time_ms;
                if version >= 5 {
                    pr.log_start_offset = info.log_start_offset;
                }
            }
            Err(e) => {
                pr.error_code = e.code();
                if version >= 8 {
                    pr.error_message = Some(StrBytes::from_string(e.to_string()));
                    pr.record_errors = e
                        .record_errors()
                        .iter()
                        .map(|r| {
                            BatchIndexAndErrorMessage::default()
                                .with_batch_index(r.batch_index)
                                .with_batch_index_error_message(Some(StrBytes::from_string(r.message.clone())))
                        })
                        .collect();
                }
            }
        }
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == topic => t.partition_responses.push(pr),
            _ => topics.push(TopicProduceResponse::default().with_name(StrBytes::from_string(topic).into()).with_partition_responses(vec![pr])),
        }
    }
    Some(ProduceResponse::default().with_responses(topics))
}
