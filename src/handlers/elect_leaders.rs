//! ElectLeaders (key 43), versions 0-2 (`kafka-leader-election.sh`): preferred
//! elections move leadership back to each partition's first replica when it is
//! live and in sync; unclean elections give a leaderless partition a live
//! replica, out-of-sync ones included. Run by the active controller
//! (`shard::leadership`). v0 has no election type: preferred. A null partition
//! list means every partition, and then partitions that needed no election are
//! left out of the answer (Kafka's behaviour).

use std::collections::BTreeMap;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::error::Error;
use crate::metadata::partition_change::ElectionType;
use crate::shard::request::{ControllerOp, ShardRequest, ShardResponse};
use crate::shard::CONTROLLER_SHARD;

/// Serves ElectLeaders.
pub async fn handle(ctx: &Ctx, req: ElectLeadersRequest, version: i16) -> ElectLeadersResponse {
    let kind = match (version, req.election_type) {
        (0, _) | (_, 0) => ElectionType::Preferred,
        (_, 1) => ElectionType::Unclean,
        (_, t) => {
            let e = Error::InvalidRequest(format!("unknown election type {t}"));
            return ElectLeadersResponse::default().with_error_code(e.code());
        }
    };
    let partitions: Option<Vec<(String, i32)>> =
        req.topic_partitions.as_ref().map(|ts| ts.iter().flat_map(|t| t.partitions.iter().map(|&p| (t.topic.0.to_string(), p))).collect());
    let asked = partitions.clone();
    let results = match ctx.x.call(CONTROLLER_SHARD, ShardRequest::Controller(ControllerOp::ElectLeaders { kind, partitions })).await {
        Ok(ShardResponse::ElectLeaders(r)) => r,
        Ok(_) => Err(Error::ShardUnavailable),
        Err(e) => Err(e),
    };
    let results = match results {
        Ok(r) => r,
        // Nothing ran: every partition asked gets the error (a whole-cluster ask, the top-level code).
        Err(e) => match asked {
            Some(a) => a.into_iter().map(|(t, p)| (t, p, Err(Error::from_remote(e.code(), e.to_string())))).collect(),
            None => return ElectLeadersResponse::default().with_error_code(e.code()),
        },
    };
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for (topic, partition, r) in results {
        let mut pr = PartitionResult::default().with_partition_id(partition);
        if let Err(e) = r {
            pr.error_code = e.code();
            pr.error_message = Some(StrBytes::from_string(e.to_string()));
        }
        by_topic.entry(topic).or_default().push(pr);
    }
    let out = by_topic
        .into_iter()
        .map(|(t, parts)| ReplicaElectionResult::default().with_topic(TopicName(StrBytes::from_string(t))).with_partition_result(parts))
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(out)
}
