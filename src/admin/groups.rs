//! Consumer groups in the admin API: the list, one group with its members and
//! their assignment, its lag ([`super::lag`]), and resetting an inactive group's
//! offsets. All through the Kafka handlers (ListGroups, DescribeGroups — or
//! ConsumerGroupDescribe for KIP-848 consumer-protocol groups, which
//! DescribeGroups shows as Dead —, OffsetFetch, FindCoordinator, ListOffsets,
//! OffsetCommit), so a broker sees the groups it coordinates, as Kafka's
//! ListGroups does.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::{Buf, Bytes};
use http_body_util::Full;
use hyper::{Response, StatusCode};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::{
    BrokerId, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerProtocolAssignment, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, GroupId, ListGroupsRequest, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde::{Deserialize, Serialize};

use super::api::{self, Admin};
use super::lag::{GroupLag, ObservedGroup, Verdict};
use crate::handlers;

/// A group as ListGroups shows it.
struct Listed {
    state: String,
    protocol_type: String,
    /// A KIP-848 consumer-protocol group (group type `consumer`).
    modern: bool,
}

async fn list_groups(admin: &Admin) -> BTreeMap<String, Listed> {
    let resp = handlers::list_groups::handle(&admin.ctx, ListGroupsRequest::default(), 5).await;
    resp.groups
        .into_iter()
        .map(|g| {
            let listed = Listed { state: g.group_state.to_string(), protocol_type: g.protocol_type.to_string(), modern: g.group_type.as_str() == "consumer" };
            (g.group_id.0.to_string(), listed)
        })
        .collect()
}

/// ConsumerGroupDescribe of consumer-protocol groups.
async fn describe_modern(admin: &Admin, groups: impl IntoIterator<Item = String>) -> ConsumerGroupDescribeResponse {
    let ids: Vec<GroupId> = groups.into_iter().map(|g| GroupId(StrBytes::from_string(g))).collect();
    handlers::consumer_group_describe::handle(&admin.ctx, ConsumerGroupDescribeRequest::default().with_group_ids(ids)).await
}

/// Members per group, from DescribeGroups (classic groups) and ConsumerGroupDescribe
/// (consumer-protocol groups).
async fn member_counts(admin: &Admin, listed: &BTreeMap<String, Listed>) -> HashMap<String, usize> {
    let classic = listed.iter().filter(|(_, g)| !g.modern).map(|(id, _)| id.clone());
    let modern = listed.iter().filter(|(_, g)| g.modern).map(|(id, _)| id.clone()).collect::<Vec<_>>();
    let mut out: HashMap<String, usize> =
        describe_groups(admin, classic).await.groups.iter().filter(|g| g.error_code == 0).map(|g| (g.group_id.0.to_string(), g.members.len())).collect();
    if !modern.is_empty() {
        out.extend(describe_modern(admin, modern).await.groups.iter().filter(|g| g.error_code == 0).map(|g| (g.group_id.0.to_string(), g.members.len())));
    }
    out
}

async fn describe_groups(admin: &Admin, groups: impl IntoIterator<Item = String>) -> DescribeGroupsResponse {
    let ids: Vec<GroupId> = groups.into_iter().map(|g| GroupId(StrBytes::from_string(g))).collect();
    handlers::describe_groups::handle(&admin.ctx, DescribeGroupsRequest::default().with_groups(ids), 5).await
}

/// (topic, partition) -> committed offset, for one group (an error code on failure).
async fn committed(admin: &Admin, group: &str) -> Result<BTreeMap<(String, i32), i64>, i16> {
    let req = OffsetFetchRequest::default().with_group_id(GroupId(StrBytes::from_string(group.to_string()))).with_topics(None);
    let resp = handlers::offset_fetch::handle(&admin.ctx, req, 7).await;
    if resp.error_code != 0 {
        return Err(resp.error_code);
    }
    Ok(resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.error_code == 0 && p.committed_offset >= 0)
                .map(move |p| ((t.name.0.to_string(), p.partition_index), p.committed_offset))
        })
        .collect())
}

/// One lag sample of every group coordinated here (the lag sampler's job).
pub async fn sample_lag(admin: &Admin) {
    let listed = list_groups(admin).await;
    let members = member_counts(admin, &listed).await;
    let hw: HashMap<(String, i32), i64> =
        super::gather(admin, true).await.into_iter().flat_map(|s| s.partitions).map(|p| ((p.topic, p.partition), p.high_watermark)).collect();
    let mut seen = BTreeMap::new();
    for (id, g) in listed {
        let Ok(offsets) = committed(admin, &id).await else { continue };
        let offsets = offsets.into_iter().map(|(tp, c)| (tp.clone(), (c, hw.get(&tp).copied()))).collect();
        let members = members.get(&id).copied().unwrap_or(0);
        seen.insert(id, ObservedGroup { state: g.state, protocol_type: g.protocol_type, members, offsets });
    }
    let now = admin.ctx.shard().cfg.clock.now_ms();
    admin.lag.borrow_mut().record(now, seen);
}

/// A group's lag, sampling at once if it was not sampled yet (a group that just
/// appeared).
async fn lag_of(admin: &Admin, group: &str) -> Option<GroupLag> {
    let now = || admin.ctx.shard().cfg.clock.now_ms();
    if let Some(l) = admin.lag.borrow().group(group, now()) {
        return Some(l);
    }
    sample_lag(admin).await;
    admin.lag.borrow().group(group, now())
}

#[derive(Serialize)]
struct GroupSummary {
    group_id: String,
    state: String,
    protocol_type: String,
    members: usize,
    total_lag: Option<i64>,
    verdict: Option<Verdict>,
}

/// `GET /api/v1/groups`.
pub async fn list(admin: &Admin) -> Response<Full<Bytes>> {
    let listed = list_groups(admin).await;
    let members = member_counts(admin, &listed).await;
    let now = admin.ctx.shard().cfg.clock.now_ms();
    let lag = admin.lag.borrow();
    let out: Vec<GroupSummary> = listed
        .into_iter()
        .map(|(id, g)| {
            let l = lag.group(&id, now);
            GroupSummary {
                members: members.get(&id).copied().unwrap_or(0),
                total_lag: l.as_ref().map(|l| l.total_lag),
                verdict: l.map(|l| l.verdict),
                group_id: id,
                state: g.state,
                protocol_type: g.protocol_type,
            }
        })
        .collect();
    api::json(StatusCode::OK, &out)
}

#[derive(Serialize)]
struct Assigned {
    topic: String,
    partitions: Vec<i32>,
}

#[derive(Serialize)]
struct MemberView {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    assignment: Vec<Assigned>,
}

#[derive(Serialize)]
struct GroupView {
    group_id: String,
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<MemberView>,
    lag: Option<GroupLag>,
}

/// A consumer-protocol assignment (version prefix, then the v0-3 body).
fn assignment(mut bytes: Bytes) -> Vec<Assigned> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let version = bytes.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut bytes, version) {
        Ok(a) => a.assigned_partitions.into_iter().map(|tp| Assigned { topic: tp.topic.0.to_string(), partitions: tp.partitions }).collect(),
        Err(_) => Vec::new(),
    }
}

/// The 404 of a group not coordinated here: FindCoordinator names the broker that does.
async fn not_here(admin: &Admin, group: &str) -> Response<Full<Bytes>> {
    let req = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string()));
    let found = handlers::find_coordinator::handle(&admin.ctx, req, 3).await;
    let coordinator = (found.error_code == 0 && found.node_id != BrokerId(admin.ctx.shard().cfg.broker_id)).then_some(found.node_id.0);
    let message = match coordinator {
        Some(c) => format!("group `{group}` is coordinated by broker {c}: ask its admin listener"),
        None => format!("no group `{group}`"),
    };
    api::json_error(StatusCode::NOT_FOUND, serde_json::json!({"error": "GROUP_ID_NOT_FOUND", "message": message, "coordinator": coordinator}))
}

/// A consumer-protocol group's view (ConsumerGroupDescribe), None when it is not one here.
async fn describe_modern_view(admin: &Admin, group: &str) -> Option<GroupView> {
    let g = describe_modern(admin, [group.to_string()]).await.groups.into_iter().next().filter(|g| g.error_code == 0)?;
    let members = g
        .members
        .into_iter()
        .map(|m| MemberView {
            member_id: m.member_id.to_string(),
            group_instance_id: m.instance_id.map(|s| s.to_string()),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            assignment: m
                .assignment
                .topic_partitions
                .into_iter()
                .map(|tp| Assigned { topic: tp.topic_name.0.to_string(), partitions: tp.partitions })
                .collect(),
        })
        .collect();
    Some(GroupView {
        group_id: group.to_string(),
        state: g.group_state.to_string(),
        protocol_type: "consumer".to_string(),
        protocol: g.assignor_name.to_string(),
        members,
        lag: lag_of(admin, group).await,
    })
}

/// `GET /api/v1/groups/{group}`.
pub async fn describe(admin: &Admin, group: &str) -> Response<Full<Bytes>> {
    let described = describe_groups(admin, [group.to_string()]).await;
    let Some(g) = described.groups.into_iter().next() else { return not_here(admin, group).await };
    if g.error_code != 0 || g.group_state.as_str() == "Dead" {
        return match describe_modern_view(admin, group).await {
            Some(view) => api::json(StatusCode::OK, &view),
            None => not_here(admin, group).await,
        };
    }
    let consumer = g.protocol_type.as_str() == "consumer";
    let members = g
        .members
        .into_iter()
        .map(|m| MemberView {
            member_id: m.member_id.to_string(),
            group_instance_id: m.group_instance_id.map(|s| s.to_string()),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            assignment: if consumer { assignment(m.member_assignment) } else { Vec::new() },
        })
        .collect();
    let view = GroupView {
        group_id: group.to_string(),
        state: g.group_state.to_string(),
        protocol_type: g.protocol_type.to_string(),
        protocol: g.protocol_data.to_string(),
        members,
        lag: lag_of(admin, group).await,
    };
    api::json(StatusCode::OK, &view)
}

/// `GET /api/v1/groups/{group}/lag`.
pub async fn lag(admin: &Admin, group: &str) -> Response<Full<Bytes>> {
    match lag_of(admin, group).await {
        Some(l) => api::json(StatusCode::OK, &l),
        None => not_here(admin, group).await,
    }
}

/// The body of a reset.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    to: String,
    offset: Option<i64>,
    topic: Option<String>,
}

#[derive(Serialize)]
struct ResetDone {
    topic: String,
    partition: i32,
    offset: i64,
}

/// (earliest, latest) per partition, through ListOffsets (an error code on failure).
async fn bounds(admin: &Admin, parts: &BTreeSet<(String, i32)>) -> Result<HashMap<(String, i32), (i64, i64)>, (i16, String)> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        topics.entry(t).or_default().push(*p);
    }
    let ask = |ts: i64| {
        ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(
            topics
                .iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(ps.iter().map(|p| ListOffsetsPartition::default().with_partition_index(*p).with_timestamp(ts)).collect())
                })
                .collect(),
        )
    };
    let mut out: HashMap<(String, i32), (i64, i64)> = HashMap::new();
    for (i, ts) in [-2i64, -1].into_iter().enumerate() {
        let resp = handlers::list_offsets::handle(&admin.ctx, ask(ts), 7).await;
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    return Err((p.error_code, format!("ListOffsets of {}-{}", t.name.0, p.partition_index)));
                }
                let e = out.entry((t.name.0.to_string(), p.partition_index)).or_insert((0, 0));
                if i == 0 {
                    e.0 = p.offset
                } else {
                    e.1 = p.offset
                }
            }
        }
    }
    Ok(out)
}

/// `POST /api/v1/groups/{group}/reset-offsets`: like `kafka-consumer-groups.sh
/// --reset-offsets --execute`, only for a group without members; the offsets are
/// the partitions' earliest, latest or a given offset kept within them.
pub async fn reset_offsets(admin: &Admin, group: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let reset: Reset = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return api::error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &format!("expected {{\"to\": \"earliest|latest|offset\", \"offset\", \"topic\"}}: {e}"))
        }
    };
    let target = match (reset.to.as_str(), reset.offset) {
        ("earliest", _) => -2,
        ("latest", _) => -1,
        ("offset", Some(o)) if o >= 0 => o,
        ("offset", _) => return api::error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "to=offset needs an offset >= 0"),
        (other, _) => return api::error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &format!("`to` must be earliest, latest or offset, not `{other}`")),
    };
    let described = describe_groups(admin, [group.to_string()]).await;
    if let Some(g) = described.groups.first() {
        if g.error_code == 16 {
            return not_here(admin, group).await;
        }
        if !g.members.is_empty() || !matches!(g.group_state.as_str(), "Empty" | "Dead" | "") {
            return api::error(
                StatusCode::CONFLICT,
                "NON_EMPTY_GROUP",
                &format!("group `{group}` is {} with {} member(s): offsets can only be reset while it has no members", g.group_state.as_str(), g.members.len()),
            );
        }
    }
    let modern = describe_modern(admin, [group.to_string()]).await;
    if let Some(g) = modern.groups.first().filter(|g| g.error_code == 0 && !g.members.is_empty()) {
        return api::error(
            StatusCode::CONFLICT,
            "NON_EMPTY_GROUP",
            &format!("group `{group}` has {} member(s): offsets can only be reset while it has no members", g.members.len()),
        );
    }
    let current = match committed(admin, group).await {
        Ok(c) => c,
        Err(code) => return api::kafka_error(code, None),
    };
    let mut parts: BTreeSet<(String, i32)> = current.into_keys().filter(|(t, _)| reset.topic.as_ref().is_none_or(|want| want == t)).collect();
    if parts.is_empty() {
        if let Some(t) = &reset.topic {
            let image = admin.ctx.shard().image();
            let Some(meta) = image.topics.get(t) else { return api::error(StatusCode::NOT_FOUND, "UNKNOWN_TOPIC_OR_PARTITION", &format!("no topic `{t}`")) };
            parts = (0..meta.partitions.len() as i32).map(|p| (t.clone(), p)).collect();
        }
    }
    if parts.is_empty() {
        return api::error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &format!("group `{group}` has no committed offsets: name a topic"));
    }
    let bounds = match bounds(admin, &parts).await {
        Ok(b) => b,
        Err((code, what)) => return api::kafka_error(code, Some(&what)),
    };
    let done: Vec<ResetDone> = parts
        .into_iter()
        .map(|(topic, partition)| {
            let (earliest, latest) = bounds.get(&(topic.clone(), partition)).copied().unwrap_or((0, 0));
            let offset = match target {
                -2 => earliest,
                -1 => latest,
                o => o.clamp(earliest, latest),
            };
            ResetDone { topic, partition, offset }
        })
        .collect();
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for d in &done {
        topics
            .entry(&d.topic)
            .or_default()
            .push(OffsetCommitRequestPartition::default().with_partition_index(d.partition).with_committed_offset(d.offset).with_committed_leader_epoch(-1));
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| OffsetCommitRequestTopic::default().with_name(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps))
                .collect(),
        );
    let resp = handlers::offset_commit::handle(&admin.ctx, req, 8).await;
    if let Some(code) = resp.topics.iter().flat_map(|t| &t.partitions).map(|p| p.error_code).find(|c| *c != 0) {
        return api::kafka_error(code, None);
    }
    api::json(StatusCode::OK, &serde_json::json!({ "partitions": done }))
}
