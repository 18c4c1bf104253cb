//! ListGroups (key 16), versions 0-5 (v4 filters by state, v5 by group type:
//! `classic` or `consumer`, the KIP-848 protocol). Every shard coordinates some
//! groups, so the request goes to all shards and is merged.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::{GroupRequest, GroupResponse};
use crate::services::coordinator_lookup as lookup;

/// Serves ListGroups `version`: asks every shard and merges their groups.
pub async fn handle(ctx: &Ctx, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_string()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_string()).collect();
    let mut groups = Vec::new();
    for shard in 0..ctx.x.nr_shards() {
        if let Ok(GroupResponse::List(gs)) = lookup::call_group_on(&ctx.x, shard, GroupRequest::List { states: states.clone(), types: types.clone() }).await {
            groups.extend(gs);
        }
    }
    groups.sort();
    ListGroupsResponse::default().with_groups(
        groups
            .into_iter()
            .map(|(g, pt, st, kind)| {
                let mut l = ListedGroup::default().with_group_id(GroupId(StrBytes::from_string(g))).with_protocol_type(StrBytes::from_string(pt));
                if version >= 4 {
                    l.group_state = StrBytes::from_static_str(st);
                }
                if version >= 5 {
                    l.group_type = StrBytes::from_static_str(kind);
                }
                l
            })
            .collect(),
    )
}
