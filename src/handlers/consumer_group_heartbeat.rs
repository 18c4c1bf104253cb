//! ConsumerGroupHeartbeat (key 68), versions 0-1: the one request of a member of
//! a consumer-protocol group (KIP-848) — join (epoch 0), heartbeat and
//! acknowledge revocations (its epoch and owned partitions), leave (epoch -1,
//! or -2 for a static member coming back). The coordinator shard answers with
//! the member's epoch and, when it changed or was asked for, its assignment.
//! v1 adds SubscribedTopicRegex and has the client generate its member id.

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::{GroupRequest, GroupResponse};
use crate::error::Error;
use crate::services::coordinator_lookup as lookup;

/// Serves ConsumerGroupHeartbeat `version` on the shard coordinating the group;
/// `client_id` and `client_host` (the connection's peer address) are kept
/// with the member for the describe APIs.
pub async fn handle(ctx: &Ctx, req: ConsumerGroupHeartbeatRequest, version: i16, client_id: String, client_host: String) -> ConsumerGroupHeartbeatResponse {
    let group = req.group_id.0.to_string();
    let interval = ctx.shard().cfg.group_consumer_heartbeat_interval_ms.min(i32::MAX as u64) as i32;
    let answer = match lookup::call_group(&ctx.x, &group, GroupRequest::ConsumerHeartbeat { req, version, client_id, client_host }).await {
        Ok(GroupResponse::ConsumerHeartbeat(r)) => r,
        Ok(_) => Err(Error::CoordinatorNotAvailable),
        Err(e) => {
            return ConsumerGroupHeartbeatResponse::default().with_error_code(e.code());
        }
    };
    match answer {
        Ok(a) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(StrBytes::from_string(a.member_id)))
            .with_member_epoch(a.member_epoch)
            .with_heartbeat_interval_ms(interval)
            .with_assignment(a.assignment.map(|asg| {
                Assignment::default().with_topic_partitions(
                    asg.into_iter().map(|(t, ps)| TopicPartitions::default().with_topic_id(t).with_partitions(ps.into_iter().collect())).collect(),
                )
            })),
        Err(e) => ConsumerGroupHeartbeatResponse::default().with_error_code(e.code()).with_error_message(Some(StrBytes::from_string(e.to_string()))),
    }
}
