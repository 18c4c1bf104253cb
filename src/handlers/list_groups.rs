//! ListGroups (key 16), versions 0-4 (v4 filters by state). Every shard
//! coordinates some groups, so the request goes to all shards and is merged.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::{GroupRequest, GroupResponse};

pub async fn handle(ctx: &Ctx, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_string()).collect();
    let mut groups = Vec::new();
    for shard in 0..ctx.x.nr_shards() {
        if let Ok(GroupResponse::List(gs)) = super::group_coordinator::call_shard(ctx, shard, GroupRequest::List { states: states.clone() }).await {
            groups.extend(gs);
        }
    }
    groups.sort();
    ListGroupsResponse::default().with_groups(
        groups
            .into_iter()
            .map(|(g, pt, st)| {
                let mut l = ListedGroup::default().with_group_id(GroupId(StrBytes::from_string(g))).with_protocol_type(StrBytes::from_string(pt));
                if version >= 4 {
                    l.group_state = StrBytes::from_static_str(st);
                }
                l
            })
            .collect(),
    )
}
