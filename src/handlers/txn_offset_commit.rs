//! TxnOffsetCommit (key 28), versions 0-3: offsets committed inside a
//! transaction. The group coordinator appends them as the producer's
//! transactional records and keeps them invisible to OffsetFetch until the
//! commit marker (dropped on abort). v3 carries the member id and generation
//! (checked as OffsetCommit) and understands PRODUCER_FENCED.

use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::{TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;

use super::Ctx;
use crate::coordinator::{GroupRequest, GroupResponse};

/// Serves TxnOffsetCommit `version` on the shard coordinating the group: the
/// offsets are written as transactional records of the producer.
pub async fn handle(ctx: &Ctx, req: TxnOffsetCommitRequest, version: i16) -> TxnOffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let fallback: Vec<(String, Vec<i32>)> =
        req.topics.iter().map(|t| (t.name.0.to_string(), t.partitions.iter().map(|p| p.partition_index).collect())).collect();
    let all = |code: i16| fallback.iter().map(|(t, ps)| (t.clone(), ps.iter().map(|&p| (p, code)).collect())).collect();
    let topics = if group.is_empty() || req.transactional_id.0.is_empty() {
        all(E::InvalidRequest.code())
    } else {
        match super::group_coordinator::call(ctx, &group, GroupRequest::TxnOffsetCommit { req, version }).await {
            Ok(GroupResponse::TxnOffsetCommit(t)) => t,
            Ok(_) => all(E::CoordinatorNotAvailable.code()),
            Err(c) => all(c),
        }
    };
    TxnOffsetCommitResponse::default().with_topics(
        topics
            .into_iter()
            .map(|(t, ps): (String, Vec<(i32, i16)>)| {
                TxnOffsetCommitResponseTopic::default().with_name(TopicName(StrBytes::from_string(t))).with_partitions(
                    ps.into_iter().map(|(p, c)| TxnOffsetCommitResponsePartition::default().with_partition_index(p).with_error_code(c)).collect(),
                )
            })
            .collect(),
    )
}
