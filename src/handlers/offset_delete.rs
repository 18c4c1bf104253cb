//! OffsetDelete (key 47), version 0: removes committed offsets of partitions the
//! group no longer consumes (GROUP_SUBSCRIBED_TO_TOPIC while members subscribe).

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::{GroupRequest, GroupResponse};
use crate::error::Error;
use crate::services::coordinator_lookup as lookup;

/// Serves OffsetDelete on the shard coordinating the group.
pub async fn handle(ctx: &Ctx, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group = req.group_id.0.to_string();
    let (code, topics) = match lookup::call_group(&ctx.x, &group, GroupRequest::OffsetDelete { req }).await {
        Ok(GroupResponse::OffsetDelete(Ok(t))) => (0, t),
        Ok(GroupResponse::OffsetDelete(Err(e))) | Err(e) => (e.code(), Vec::new()),
        Ok(_) => (Error::CoordinatorNotAvailable.code(), Vec::new()),
    };
    OffsetDeleteResponse::default().with_error_code(code).with_topics(
        topics
            .into_iter()
            .map(|(t, ps)| {
                OffsetDeleteResponseTopic::default().with_name(TopicName(StrBytes::from_string(t))).with_partitions(
                    ps.into_iter()
                        .map(|(p, e)| OffsetDeleteResponsePartition::default().with_partition_index(p).with_error_code(e.map_or(0, |e| e.code())))
                        .collect(),
                )
            })
            .collect(),
    )
}
