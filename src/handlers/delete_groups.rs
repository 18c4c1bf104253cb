//! DeleteGroups (key 42), versions 0-2: removes empty groups and their offsets
//! (NON_EMPTY_GROUP while members remain, GROUP_ID_NOT_FOUND if unknown).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::{GroupRequest, GroupResponse};
use crate::error::Error;
use crate::services::coordinator_lookup as lookup;

/// Serves DeleteGroups: each group is deleted by the shard coordinating it;
/// one error code per group.
pub async fn handle(ctx: &Ctx, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for g in &req.groups_names {
        let name = g.0.to_string();
        let code = match lookup::call_group(&ctx.x, &name, GroupRequest::Delete { groups: vec![name.clone()] }).await {
            Ok(GroupResponse::Delete(rs)) => rs.first().and_then(|r| r.1.as_ref()).map_or(0, Error::code),
            Ok(_) => Error::CoordinatorNotAvailable.code(),
            Err(e) => e.code(),
        };
        results.push(DeletableGroupResult::default().with_group_id(GroupId(StrBytes::from_string(name))).with_error_code(code));
    }
    DeleteGroupsResponse::default().with_results(results)
}
