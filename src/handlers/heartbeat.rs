//! Heartbeat (key 12), versions 0-4: keeps a member's session alive and tells it
//! when a rebalance is under way (REBALANCE_IN_PROGRESS).

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::Ctx;
use crate::coordinator::{GroupRequest, GroupResponse};
use crate::error::Error;
use crate::services::coordinator_lookup as lookup;

/// Serves Heartbeat on the shard coordinating the group: an error code only.
pub async fn handle(ctx: &Ctx, req: HeartbeatRequest) -> HeartbeatResponse {
    let group = req.group_id.0.to_string();
    let code = match lookup::call_group(&ctx.x, &group, GroupRequest::Heartbeat { req }).await {
        Ok(GroupResponse::Heartbeat(r)) => r.err().map_or(0, |e| e.code()),
        Ok(_) => Error::CoordinatorNotAvailable.code(),
        Err(e) => e.code(),
    };
    HeartbeatResponse::default().with_error_code(code)
}
