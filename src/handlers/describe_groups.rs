//! DescribeGroups (key 15), versions 0-5: state, protocol, members with their
//! client id, host, subscription metadata and assignment. An unknown group is
//! reported as Dead with no error, as Kafka does.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::{GroupRequest, GroupResponse};
use crate::error::Error;
use crate::services::coordinator_lookup as lookup;

/// Serves DescribeGroups `version`: each group is described by the shard coordinating it.
pub async fn handle(ctx: &Ctx, req: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
    let mut out = Vec::new();
    for g in &req.groups {
        let name = g.0.to_string();
        let mut dg = DescribedGroup::default().with_group_id(GroupId(StrBytes::from_string(name.clone())));
        match lookup::call_group(&ctx.x, &name, GroupRequest::Describe { groups: vec![name.clone()] }).await {
            Ok(GroupResponse::Describe(mut ds)) if !ds.is_empty() => {
                let d = ds.remove(0);
                dg.error_code = d.error.map_or(0, |e| e.code());
                dg.group_state = StrBytes::from_static_str(d.state);
                dg.protocol_type = StrBytes::from_string(d.protocol_type);
                dg.protocol_data = StrBytes::from_string(d.protocol);
                dg.members = d
                    .members
                    .into_iter()
                    .map(|(id, inst, client, host, meta, asg)| {
                        DescribedGroupMember::default()
                            .with_member_id(StrBytes::from_string(id))
                            .with_group_instance_id(if version >= 4 { inst.map(StrBytes::from_string) } else { None })
                            .with_client_id(StrBytes::from_string(client))
                            .with_client_host(StrBytes::from_string(host))
                            .with_member_metadata(meta)
                            .with_member_assignment(asg)
                    })
                    .collect();
            }
            Ok(_) => dg.error_code = Error::CoordinatorNotAvailable.code(),
            Err(e) => dg.error_code = e.code(),
        }
        out.push(dg);
    }
    DescribeGroupsResponse::default().with_groups(out)
}
