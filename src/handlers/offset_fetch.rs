//! OffsetFetch (key 9), versions 1-9 (v8 asks for several groups at once; v9
//! adds the asking member's id and epoch, which a consumer-protocol group checks:
//! UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH).
//! A partition without a committed offset answers -1, as Kafka does. With
//! require_stable (v7+) a partition whose offset is pending in an open
//! transaction answers UNSTABLE_OFFSET_COMMIT (the client retries).

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::{GroupRequest, GroupResponse, OffsetsByTopic};
use crate::error::Error;
use crate::services::coordinator_lookup as lookup;

async fn fetch_one(
    ctx: &Ctx,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
    member: Option<(Option<String>, i32)>,
) -> (i16, OffsetsByTopic) {
    match lookup::call_group(&ctx.x, group, GroupRequest::OffsetFetch { group: group.to_string(), topics, require_stable, member }).await {
        Ok(GroupResponse::OffsetFetch(Ok(t))) => (0, t),
        Ok(GroupResponse::OffsetFetch(Err(e))) | Err(e) => (e.code(), Vec::new()),
        Ok(_) => (Error::CoordinatorNotAvailable.code(), Vec::new()),
    }
}

/// Serves OffsetFetch `version`: one group before v8, several from v8, each read
/// on the shard coordinating it.
pub async fn handle(ctx: &Ctx, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let epoch = |e: i32| if version >= 5 { e } else { -1 };
    if version >= 8 {
        let mut groups = Vec::new();
        for g in &req.groups {
            let topics = g.topics.as_ref().map(|ts| ts.iter().map(|t| (t.name.0.to_string(), t.partition_indexes.clone())).collect());
            let member = (version >= 9).then(|| (g.member_id.as_ref().map(|s| s.to_string()), g.member_epoch));
            let (code, offsets) = fetch_one(ctx, g.group_id.0.as_str(), topics, req.require_stable, member).await;
            groups.push(
                OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone()).with_error_code(code).with_topics(
                    offsets
                        .into_iter()
                        .map(|(t, ps)| {
                            OffsetFetchResponseTopics::default().with_name(TopicName(StrBytes::from_string(t))).with_partitions(
                                ps.into_iter()
                                    .map(|(p, o, e, m, c)| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(o)
                                            .with_committed_leader_epoch(e)
                                            .with_metadata(Some(StrBytes::from_string(m.unwrap_or_default())))
                                            .with_error_code(c.map_or(0, |e| e.code()))
                                    })
                                    .collect(),
                            )
                        })
                        .collect(),
                ),
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let group: &GroupId = &req.group_id;
    let topics = req.topics.as_ref().map(|ts| ts.iter().map(|t| (t.name.0.to_string(), t.partition_indexes.clone())).collect());
    let (code, offsets) = fetch_one(ctx, group.0.as_str(), topics, version >= 7 && req.require_stable, None).await;
    let mut resp = OffsetFetchResponse::default().with_topics(
        offsets
            .into_iter()
            .map(|(t, ps)| {
                OffsetFetchResponseTopic::default().with_name(TopicName(StrBytes::from_string(t))).with_partitions(
                    ps.into_iter()
                        .map(|(p, o, e, m, c)| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_committed_leader_epoch(epoch(e))
                                .with_metadata(Some(StrBytes::from_string(m.unwrap_or_default())))
                                .with_error_code(c.map_or(0, |e| e.code()))
                        })
                        .collect(),
                )
            })
            .collect(),
    );
    if version >= 2 {
        resp.error_code = code;
    }
    resp
}
