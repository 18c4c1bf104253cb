//! LeaveGroup (key 13), versions 0-5 (v3+ removes a batch of members, by
//! member id or group instance id).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::{GroupRequest, GroupResponse};
use crate::error::Error;
use crate::services::coordinator_lookup as lookup;

/// Serves LeaveGroup `version` (one member before v3, a batch from v3) on the
/// shard coordinating the group.
pub async fn handle(ctx: &Ctx, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group = req.group_id.0.to_string();
    let mut resp = LeaveGroupResponse::default();
    match lookup::call_group(&ctx.x, &group, GroupRequest::Leave { req }).await {
        Ok(GroupResponse::Leave(members)) => {
            let code = |e: &Option<Error>| e.as_ref().map_or(0, Error::code);
            if version >= 3 {
                resp.members = members
                    .into_iter()
                    .map(|(m, i, c)| {
                        MemberResponse::default()
                            .with_member_id(StrBytes::from_string(m))
                            .with_group_instance_id(i.map(StrBytes::from_string))
                            .with_error_code(code(&c))
                    })
                    .collect();
            } else if let [(_, _, e)] = members.as_slice() {
                // Before v3 the request names one member: its error is the response's.
                resp.error_code = code(e);
            }
        }
        Ok(_) => resp.error_code = Error::CoordinatorNotAvailable.code(),
        Err(e) => resp.error_code = e.code(),
    }
    resp
}
