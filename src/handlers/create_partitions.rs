//! CreatePartitions (key 37), versions 0-3: grows topics (only increases),
//! with Kafka's replica assignment or one given per new partition (checked by
//! the controller); per-topic results.
//! New partitions whose logs could not be opened make the topic's answer
//! KAFKA_STORAGE_ERROR (they exist, offline, as in CreateTopics).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::error::Error;
use crate::shard::request::{ControllerOp, ShardRequest, ShardResponse};
use crate::shard::CONTROLLER_SHARD;

/// Serves CreatePartitions: new partition counts go to the controller (shard 0);
/// per-topic error codes come back.
pub async fn handle(ctx: &Ctx, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut results: Vec<Option<Result<i32, Error>>> = Vec::new();
    let mut asks = Vec::new();
    for t in &req.topics {
        // Manual assignments are checked by the controller (brokers, replication factor).
        // An empty list (what some clients send for "none") is Kafka's assignment too.
        let assignments = t.assignments.as_ref().filter(|a| !a.is_empty()).map(|a| a.iter().map(|x| x.broker_ids.iter().map(|b| b.0).collect()).collect());
        results.push(None);
        asks.push((t.name.0.to_string(), t.count, assignments));
    }
    let n = asks.len();
    let answers = if n == 0 {
        Vec::new()
    } else {
        match ctx.x.call(CONTROLLER_SHARD, ShardRequest::Controller(ControllerOp::CreatePartitions { topics: asks, validate_only: req.validate_only })).await {
            Ok(ShardResponse::CreatePartitions(r)) if r.len() == n => r,
            _ => (0..n).map(|_| Err(Error::ShardUnavailable)).collect(),
        }
    };
    let published = !req.validate_only && answers.iter().any(|r| r.is_ok());
    let image = ctx.shard().image();
    let mut answers = answers.into_iter();
    let out = req
        .topics
        .iter()
        .zip(results)
        .map(|(t, r)| {
            let r = r.unwrap_or_else(|| answers.next().unwrap_or(Err(Error::ShardUnavailable)));
            let r = match r {
                Ok(first_new) if published => crate::services::topics::offline_partitions(&ctx.x, &image, &t.name.0, first_new),
                other => other.map(drop),
            };
            let mut res = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if let Err(e) = r {
                res.error_code = e.code();
                res.error_message = Some(StrBytes::from_string(e.to_string()));
            }
            res
        })
        .collect();
    CreatePartitionsResponse::default().with_results(out)
}
