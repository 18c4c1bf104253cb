//! LeaveGroup (key 13), versions 0-5 (v3+ removes a batch of members, by
//! member id or group instance id).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::{GroupRequest, GroupResponse};

/// Serves LeaveGroup `version` (one member before v3, a batch from v3) on the
/// shard coordinating the group.
pub async fn handle(ctx: &Ctx, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group = req.group_id.0.to_string();
    let mut resp = LeaveGroupResponse::default();
    match super::group_coordinator::call(ctx, &group, GroupRequest::Leave { req }).await {
        Ok(GroupResponse::Leave(top, members)) => {
            if version >= 3 {
                resp.members = members
                    .into_iter()
                    .map(|(m, i, c)| {
                        MemberResponse::default()
                            .with_member_id(StrBytes::from_string(m))
                            .with_group_instance_id(i.map(StrBytes::from_string))
                            .with_error_code(c)
                    })
                    .collect();
            } else {
                resp.error_code = top;
            }
        }
        Ok(_) => resp.error_code = kafka_protocol::ResponseError::CoordinatorNotAvailable.code(),
        Err(c) => resp.error_code = c,
    }
    resp
}
