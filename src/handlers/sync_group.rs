//! SyncGroup (key 14), versions 0-5. The leader's assignment completes the
//! rebalance; followers park until it arrives.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::{GroupRequest, GroupResponse};
use crate::error::Error;
use crate::services::coordinator_lookup as lookup;

/// Serves SyncGroup `version` on the shard coordinating the group; a follower
/// parks until the leader's assignment arrives.
pub async fn handle(ctx: &Ctx, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let group = req.group_id.0.to_string();
    let mut resp = SyncGroupResponse::default();
    match lookup::call_group(&ctx.x, &group, GroupRequest::Sync { req }).await {
        Ok(GroupResponse::Sync(assignment, pt, pn)) => {
            match assignment {
                Ok(a) => resp.assignment = a,
                Err(e) => resp.error_code = e.code(),
            }
            if version >= 5 {
                resp.protocol_type = pt.map(StrBytes::from_string);
                resp.protocol_name = pn.map(StrBytes::from_string);
            }
        }
        Ok(_) => resp.error_code = Error::CoordinatorNotAvailable.code(),
        Err(e) => resp.error_code = e.code(),
    }
    resp
}
