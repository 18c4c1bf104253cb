//! JoinGroup (key 11), versions 0-9. Parks until the rebalance completes (or
//! answers at once: MEMBER_ID_REQUIRED for a first join on v4+, errors, or the
//! current generation for a member that rejoins with nothing changed).

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::{GroupRequest, GroupResponse};
use crate::error::Error;
use crate::services::coordinator_lookup as lookup;

/// Serves JoinGroup `version` on the shard coordinating the group; parks until the
/// rebalance completes. `client_id` and `client_host` are kept with the member
/// for DescribeGroups.
pub async fn handle(ctx: &Ctx, req: JoinGroupRequest, version: i16, client_id: String, client_host: String) -> JoinGroupResponse {
    let group = req.group_id.0.to_string();
    let member_id = req.member_id.clone();
    let r = lookup::call_group(&ctx.x, &group, GroupRequest::Join { req, version, client_id, client_host }).await;
    let mut resp = JoinGroupResponse::default().with_generation_id(-1).with_member_id(member_id);
    match r {
        Ok(GroupResponse::Join(j)) => {
            resp.error_code = j.error.map_or(0, |e| e.code());
            resp.generation_id = j.generation;
            resp.member_id = StrBytes::from_string(j.member_id);
            resp.leader = StrBytes::from_string(j.leader);
            if version >= 7 {
                resp.protocol_type = j.protocol_type.map(StrBytes::from_string);
                resp.protocol_name = j.protocol_name.map(StrBytes::from_string);
            } else {
                resp.protocol_name = Some(StrBytes::from_string(j.protocol_name.unwrap_or_default()));
            }
            resp.members = j
                .members
                .into_iter()
                .map(|(id, inst, meta)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(id))
                        .with_group_instance_id(if version >= 5 { inst.map(StrBytes::from_string) } else { None })
                        .with_metadata(meta)
                })
                .collect();
        }
        Ok(_) => resp.error_code = Error::CoordinatorNotAvailable.code(),
        Err(e) => resp.error_code = e.code(),
    }
    resp
}
