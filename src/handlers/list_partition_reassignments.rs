//! ListPartitionReassignments (key 46), version 0
//! (`kafka-reassign-partitions.sh --list/--verify`): the ongoing reassignments
//! from this broker's metadata image — replicas, and which of them are being
//! added and removed. Every broker answers from its image (as Kafka's
//! controller answers from its own).

use std::collections::BTreeMap;

use kafka_protocol::messages::list_partition_reassignments_response::{OngoingPartitionReassignment, OngoingTopicReassignment};
use kafka_protocol::messages::{BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::metadata::reassignment;

/// Serves ListPartitionReassignments.
pub fn handle(ctx: &Ctx, req: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    let image = ctx.shard().image();
    let asked: Option<Vec<(String, i32)>> =
        req.topics.as_ref().map(|ts| ts.iter().flat_map(|t| t.partition_indexes.iter().map(|&p| (t.name.0.to_string(), p))).collect());
    let ids = |v: Vec<i32>| v.into_iter().map(BrokerId).collect::<Vec<_>>();
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for (topic, partition, replicas, adding, removing) in reassignment::list(&image, asked.as_deref()) {
        by_topic.entry(topic).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(partition)
                .with_replicas(ids(replicas))
                .with_adding_replicas(ids(adding))
                .with_removing_replicas(ids(removing)),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(t, parts)| OngoingTopicReassignment::default().with_name(TopicName(StrBytes::from_string(t))).with_partitions(parts))
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
