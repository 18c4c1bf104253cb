//! OffsetCommit (key 8), versions 2-9. Group members commit with their
//! generation — from v9 the field is the member epoch of a consumer-protocol
//! member (KIP-848: STALE_MEMBER_EPOCH when it is not the current one);
//! standalone consumers (generation -1, no member id) commit to an empty group.
//! Offsets are in `__consumer_offsets` before the answer goes out.

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::{GroupRequest, GroupResponse};
use crate::error::Error;
use crate::services::coordinator_lookup as lookup;

/// Serves OffsetCommit `version` on the shard coordinating the group; answers once
/// the offsets are written to `__consumer_offsets`.
pub async fn handle(ctx: &Ctx, req: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let fallback: Vec<(String, Vec<i32>)> =
        req.topics.iter().map(|t| (t.name.0.to_string(), t.partitions.iter().map(|p| p.partition_index).collect())).collect();
    let topics: Vec<(String, Vec<(i32, i16)>)> = match lookup::call_group(&ctx.x, &group, GroupRequest::OffsetCommit { req, version }).await {
        Ok(GroupResponse::OffsetCommit(Ok(t))) => {
            t.into_iter().map(|(t, ps)| (t, ps.into_iter().map(|(p, e)| (p, e.map_or(0, |e| e.code()))).collect())).collect()
        }
        other => {
            let code = match other {
                Ok(GroupResponse::OffsetCommit(Err(e))) | Err(e) => e.code(),
                _ => Error::CoordinatorNotAvailable.code(),
            };
            fallback.into_iter().map(|(t, ps)| (t, ps.into_iter().map(|p| (p, code)).collect())).collect()
        }
    };
    OffsetCommitResponse::default().with_topics(
        topics
            .into_iter()
            .map(|(t, ps)| {
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t)))
                    .with_partitions(ps.into_iter().map(|(p, c)| OffsetCommitResponsePartition::default().with_partition_index(p).with_error_code(c)).collect())
            })
            .collect(),
    )
}
