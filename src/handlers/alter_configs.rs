//! AlterConfigs (key 33, versions 0-2) and IncrementalAlterConfigs (key 44,
//! versions 0-1). Topic overrides are validated on the controller, persisted
//! with the metadata image and pushed to every shard, whose open logs apply
//! them at once. Broker configs are static (file, profile, --set) except the
//! replication throttle rates (`shard::throttle`), which are kept in the
//! metadata log per broker id ("" = every broker); altering any other is
//! refused with INVALID_REQUEST, as Kafka refuses non-dynamic keys.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::Ctx;
use crate::error::{Error, Result};
use crate::shard::request::{AlterOp, ConfigChange, ControllerOp, ShardRequest, ShardResponse};
use crate::shard::CONTROLLER_SHARD;

/// (resource type, resource name, error or ok) per resource, in request order.
type Outcome = Vec<(i8, StrBytes, Result<()>)>;

/// Serves AlterConfigs: each resource's topic overrides are replaced as a whole
/// by the ones sent (keys left out go back to the broker default).
pub async fn handle_alter(ctx: &Ctx, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let items = req
        .resources
        .iter()
        .map(|r| {
            let change =
                ConfigChange::Replace(r.configs.iter().filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string()))).collect::<BTreeMap<_, _>>());
            (r.resource_type, r.resource_name.clone(), Ok(change))
        })
        .collect();
    let out = apply(ctx, items, req.validate_only).await;
    AlterConfigsResponse::default().with_responses(out.into_iter().map(|(t, n, r)| response(t, n, r)).collect())
}

/// Serves IncrementalAlterConfigs: SET, DELETE, APPEND or SUBTRACT per key of a
/// topic's overrides; the other overrides stay as they are.
pub async fn handle_incremental(ctx: &Ctx, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    // A resource with a malformed operation is answered with its error and not applied.
    let items = req.resources.iter().map(|r| (r.resource_type, r.resource_name.clone(), incremental_ops(r))).collect();
    let all = apply(ctx, items, req.validate_only).await;
    let responses = all
        .into_iter()
        .map(|(t, n, r)| {
            let resp = response(t, n, r);
            kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(resp.error_code)
                .with_error_message(resp.error_message)
                .with_resource_type(resp.resource_type)
                .with_resource_name(resp.resource_name)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// The operations of one IncrementalAlterConfigs resource, or why they are malformed.
fn incremental_ops(r: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource) -> Result<ConfigChange> {
    let mut ops: Vec<(String, AlterOp, Option<String>)> = Vec::new();
    for c in &r.configs {
        let op = match c.config_operation {
            0 => AlterOp::Set,
            1 => AlterOp::Delete,
            2 => AlterOp::Append,
            3 => AlterOp::Subtract,
            other => return Err(Error::InvalidConfig(format!("unknown config operation {other} for `{}`", c.name))),
        };
        if ops.iter().any(|(k, _, _)| k == c.name.as_str()) {
            return Err(Error::InvalidConfig(format!("`{}` appears twice in one resource", c.name)));
        }
        ops.push((c.name.to_string(), op, c.value.as_ref().map(|v| v.to_string())));
    }
    Ok(ConfigChange::Incremental(ops))
}

/// Sends topic changes to the controller in one call and publishes the new image.
async fn apply(ctx: &Ctx, items: Vec<(i8, StrBytes, Result<ConfigChange>)>, validate_only: bool) -> Outcome {
    let mut out: Vec<(i8, StrBytes, Option<Result<()>>)> = Vec::new();
    let mut topic_changes = Vec::new();
    let mut topic_slots = Vec::new();
    let mut broker_changes = Vec::new();
    let mut broker_slots = Vec::new();
    for (t, name, change) in items {
        let r = match (t, change) {
            (_, Err(e)) => Some(Err(e)),
            (RESOURCE_TOPIC, Ok(change)) => {
                topic_slots.push(out.len());
                topic_changes.push((name.to_string(), change));
                None
            }
            (RESOURCE_BROKER, Ok(change)) => match if name.is_empty() { Ok(-1) } else { name.parse::<i32>() } {
                Ok(id) => {
                    broker_slots.push(out.len());
                    broker_changes.push((id, change));
                    None
                }
                Err(_) => Some(Err(Error::InvalidRequest(format!("broker resource name `{name}` is not a broker id")))),
            },
            (other, _) => Some(Err(Error::InvalidRequest(format!("resource type {other} is not supported (topics: 2, brokers: 4)")))),
        };
        out.push((t, name, r));
    }
    if !topic_changes.is_empty() {
        let n = topic_changes.len();
        let results =
            match ctx.x.call(CONTROLLER_SHARD, ShardRequest::Controller(ControllerOp::AlterTopicConfigs { changes: topic_changes, validate_only })).await {
                Ok(ShardResponse::AlterTopicConfigs(r)) if r.len() == n => r,
                _ => (0..n).map(|_| Err(Error::ShardUnavailable)).collect(),
            };
        for (slot, r) in topic_slots.into_iter().zip(results) {
            out[slot].2 = Some(r);
        }
    }
    if !broker_changes.is_empty() {
        let n = broker_changes.len();
        let results =
            match ctx.x.call(CONTROLLER_SHARD, ShardRequest::Controller(ControllerOp::AlterBrokerConfigs { changes: broker_changes, validate_only })).await {
                Ok(ShardResponse::AlterBrokerConfigs(r)) if r.len() == n => r,
                _ => (0..n).map(|_| Err(Error::ShardUnavailable)).collect(),
            };
        for (slot, r) in broker_slots.into_iter().zip(results) {
            out[slot].2 = Some(r);
        }
    }
    out.into_iter().map(|(t, n, r)| (t, n, r.unwrap_or(Err(Error::ShardUnavailable)))).collect()
}

fn response(resource_type: i8, name: StrBytes, r: Result<()>) -> AlterConfigsResourceResponse {
    let mut out = AlterConfigsResourceResponse::default().with_resource_type(resource_type).with_resource_name(name);
    if let Err(e) = r {
        out.error_code = e.code();
        out.error_message = Some(StrBytes::from_string(e.to_string()));
    }
    out
}
