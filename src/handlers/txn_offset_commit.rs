//! TxnOffsetCommit (key 28), versions 0-3: offsets committed inside a
//! transaction. The group coordinator appends them as the producer's
//! transactional records and keeps them invisible to OffsetFetch until the
//! commit marker (dropped on abort). v3 carries the member id and generation
//! (checked as OffsetCommit) and understands PRODUCER_FENCED.

use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::{ApiKey, TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::{GroupRequest, GroupResponse};
use crate::error::Error;
use crate::services::coordinator_lookup as lookup;

/// Serves TxnOffsetCommit `version` on the shard coordinating the group: the
/// offsets are written as transactional records of the producer.
pub async fn handle(ctx: &Ctx, req: TxnOffsetCommitRequest, version: i16) -> TxnOffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let fallback: Vec<(String, Vec<i32>)> =
        req.topics.iter().map(|t| (t.name.0.to_string(), t.partitions.iter().map(|p| p.partition_index).collect())).collect();
    // PRODUCER_FENCED only for v3+ (KIP-588): Error::code_for decides.
    let code = |e: Error| e.code_for(ApiKey::TxnOffsetCommit, version);
    let all = |code: i16| fallback.iter().map(|(t, ps)| (t.clone(), ps.iter().map(|&p| (p, code)).collect())).collect();
    let topics: Vec<(String, Vec<(i32, i16)>)> = if group.is_empty() || req.transactional_id.0.is_empty() {
        all(code(Error::InvalidField("TxnOffsetCommit needs a group id and a transactional id".into())))
    } else {
        match lookup::call_group(&ctx.x, &group, GroupRequest::TxnOffsetCommit { req, version }).await {
            Ok(GroupResponse::TxnOffsetCommit(Ok(t))) => {
                t.into_iter().map(|(t, ps)| (t, ps.into_iter().map(|(p, e)| (p, e.map_or(0, code))).collect())).collect()
            }
            Ok(GroupResponse::TxnOffsetCommit(Err(e))) | Err(e) => all(code(e)),
            Ok(_) => all(code(Error::CoordinatorNotAvailable)),
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
