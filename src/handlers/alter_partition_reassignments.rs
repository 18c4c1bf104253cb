//! AlterPartitionReassignments (key 45), versions 0-1
//! (`kafka-reassign-partitions.sh --execute/--cancel`): per partition, target
//! replicas start a reassignment (added replicas copy the log, then the
//! leaving ones go) and null cancels one. Run by the active controller
//! (`shard::leadership`, rules in `metadata::reassignment`). v1's
//! `allow_replication_factor_change` false refuses a target of another size
//! (INVALID_REPLICATION_FACTOR, KIP-860).

use kafka_protocol::messages::alter_partition_reassignments_response::{ReassignablePartitionResponse, ReassignableTopicResponse};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::error::Error;
use crate::shard::request::{ControllerOp, ShardRequest, ShardResponse};
use crate::shard::CONTROLLER_SHARD;

/// Serves AlterPartitionReassignments.
pub async fn handle(ctx: &Ctx, req: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse {
    let image = ctx.shard().image();
    // Per partition: refused here already (Some), or asked of the controller (None).
    let mut early: Vec<Option<Error>> = Vec::new();
    let mut asks = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let target: Option<Vec<i32>> = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
            let current = image.partition(&t.name.0, p.partition_index).map(|m| m.replicas.len() - m.adding.len());
            match (&target, current) {
                (Some(tg), Some(n)) if !req.allow_replication_factor_change && tg.len() != n => {
                    early.push(Some(Error::InvalidReplicationFactor(format!("the target has {} replicas, the partition {n}", tg.len()))));
                }
                _ => {
                    early.push(None);
                    asks.push((t.name.0.to_string(), p.partition_index, target));
                }
            }
        }
    }
    let n = asks.len();
    let answers = if n == 0 {
        Vec::new()
    } else {
        match ctx.x.call(CONTROLLER_SHARD, ShardRequest::Controller(ControllerOp::AlterReassignments { partitions: asks })).await {
            Ok(ShardResponse::AlterReassignments(r)) if r.len() == n => r,
            _ => (0..n).map(|_| Err(Error::ShardUnavailable)).collect(),
        }
    };
    let mut answers = answers.into_iter();
    let mut early = early.into_iter();
    let responses = req
        .topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    let r = match early.next().flatten() {
                        Some(e) => Err(e),
                        None => answers.next().unwrap_or(Err(Error::ShardUnavailable)),
                    };
                    let mut pr = ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
                    if let Err(e) = r {
                        pr.error_code = e.code();
                        pr.error_message = Some(StrBytes::from_string(e.to_string()));
                    }
                    pr
                })
                .collect();
            ReassignableTopicResponse::default().with_name(t.name.clone()).with_partitions(parts)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default().with_allow_replication_factor_change(req.allow_replication_factor_change).with_responses(responses)
}
