//! ConsumerGroupDescribe (key 69), versions 0-1: a consumer-protocol group's
//! state, epochs, assignor and members with their subscriptions, current and
//! target assignments. A classic or unknown group is GROUP_ID_NOT_FOUND (the
//! Java Admin client then falls back to DescribeGroups), as Kafka answers.
//! v1 adds the member type (1: consumer protocol).

use kafka_protocol::messages::consumer_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::consumer_group::service::NamedPartitions;
use crate::coordinator::{GroupRequest, GroupResponse};
use crate::services::coordinator_lookup as lookup;

/// Kafka's AclOperation codes for what may be done to a group (READ 3, DELETE 6,
/// DESCRIBE 8): without authorization every operation is allowed.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn assignment(parts: NamedPartitions) -> Assignment {
    Assignment::default().with_topic_partitions(
        parts
            .into_iter()
            .map(|(id, name, ps)| TopicPartitions::default().with_topic_id(id).with_topic_name(TopicName(StrBytes::from_string(name))).with_partitions(ps))
            .collect(),
    )
}

/// Serves ConsumerGroupDescribe: each group is described by the shard coordinating it.
pub async fn handle(ctx: &Ctx, req: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
    let mut out = Vec::with_capacity(req.group_ids.len());
    for g in &req.group_ids {
        let name = g.0.to_string();
        let mut dg = DescribedGroup::default().with_group_id(GroupId(StrBytes::from_string(name.clone())));
        match lookup::call_group(&ctx.x, &name, GroupRequest::ConsumerDescribe { groups: vec![name.clone()] }).await {
            Ok(GroupResponse::ConsumerDescribe(mut ds)) if !ds.is_empty() => {
                let d = ds.remove(0);
                if let Some(e) = d.error {
                    dg.error_code = e.code();
                    dg.error_message = Some(StrBytes::from_string(e.to_string()));
                } else {
                    dg.group_state = StrBytes::from_static_str(d.state);
                    dg.group_epoch = d.group_epoch;
                    dg.assignment_epoch = d.assignment_epoch;
                    dg.assignor_name = StrBytes::from_string(d.assignor_name);
                    if req.include_authorized_operations {
                        dg.authorized_operations = GROUP_OPERATIONS;
                    }
                    dg.members = d
                        .members
                        .into_iter()
                        .map(|m| {
                            Member::default()
                                .with_member_id(StrBytes::from_string(m.member_id))
                                .with_instance_id(m.instance_id.map(StrBytes::from_string))
                                .with_rack_id(m.rack_id.map(StrBytes::from_string))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(StrBytes::from_string(m.client_id))
                                .with_client_host(StrBytes::from_string(m.client_host))
                                .with_subscribed_topic_names(m.subscribed_topic_names.into_iter().map(|t| TopicName(StrBytes::from_string(t))).collect())
                                .with_subscribed_topic_regex(m.subscribed_topic_regex.map(StrBytes::from_string))
                                .with_assignment(assignment(m.assignment))
                                .with_target_assignment(assignment(m.target_assignment))
                                .with_member_type(1)
                        })
                        .collect();
                }
            }
            Ok(_) => dg.error_code = crate::error::Error::CoordinatorNotAvailable.code(),
            Err(e) => dg.error_code = e.code(),
        }
        out.push(dg);
    }
    ConsumerGroupDescribeResponse::default().with_groups(out)
}
