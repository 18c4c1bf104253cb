//! Replication throttles of a reassignment, set and cleared as
//! kafka-reassign-partitions.sh does: the dynamic broker configs
//! `leader.replication.throttled.rate` and `follower.replication.throttled.rate`
//! on every broker involved, and the topic configs
//! `leader.replication.throttled.replicas` / `follower.replication.throttled.replicas`,
//! through IncrementalAlterConfigs (key 44).
//!
//! A broker's own dynamic config must be sent to that broker, so each broker
//! gets its own connection. Clearing first asks DescribeConfigs which of the
//! keys are set dynamically and deletes only those: a broker that has no
//! dynamic broker configs (shardlog's are static) is then left alone instead
//! of failing every `--verify`.

use kafka_protocol::messages::describe_configs_request::{DescribeConfigsRequest, DescribeConfigsResource};
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use super::client::{CliError, Conn};

/// Per-broker rate of leader-side replication traffic, bytes/s.
pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
/// Per-broker rate of follower-side replication traffic, bytes/s.
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
/// The log-dir move rate Kafka's tool also clears.
const LOG_DIR_RATE: &str = "replica.alter.log.dirs.io.max.bytes.per.second";
/// Topic config: replicas ("p:b,...") whose leader-side traffic is throttled.
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
/// Topic config: replicas ("p:b,...") whose follower-side traffic is throttled.
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Kafka's config resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// DescribeConfigs sources of a value set at run time.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Applies `ops` (name, operation, value) to one resource; a refusal is an
/// error naming the resource and the broker's message.
fn alter(conn: &mut Conn, resource_type: i8, name: &str, ops: &[(&str, i8, Option<String>)], what: &str) -> Result<(), CliError> {
    let configs =
        ops.iter().map(|(k, op, v)| AlterableConfig::default().with_name(sb(k)).with_config_operation(*op).with_value(v.as_deref().map(sb))).collect();
    let req = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default().with_resource_type(resource_type).with_resource_name(sb(name)).with_configs(configs)]);
    let resp = conn.request(1, &req)?;
    for r in &resp.responses {
        if r.error_code != 0 {
            let msg = r.error_message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default();
            return Err(CliError::kafka(format!("{what}{msg}"), r.error_code));
        }
    }
    Ok(())
}

/// Sets both replication rates to `rate` bytes/s on broker `id` (at `addr`).
pub fn set_broker_rate(addr: &str, id: i32, rate: u64) -> Result<(), CliError> {
    let mut c = Conn::open(addr)?;
    let v = Some(rate.to_string());
    alter(
        &mut c,
        RESOURCE_BROKER,
        &id.to_string(),
        &[(LEADER_RATE, OP_SET, v.clone()), (FOLLOWER_RATE, OP_SET, v)],
        &format!("set the replication throttle on broker {id}"),
    )
}

/// Sets a topic's throttled replica lists (an empty follower list is left unset).
pub fn set_topic_replicas(conn: &mut Conn, topic: &str, leader: &str, follower: &str) -> Result<(), CliError> {
    let mut ops = vec![(LEADER_REPLICAS, OP_SET, Some(leader.to_string()))];
    if !follower.is_empty() {
        ops.push((FOLLOWER_REPLICAS, OP_SET, Some(follower.to_string())));
    }
    alter(conn, RESOURCE_TOPIC, topic, &ops, &format!("set the throttled replicas of topic '{topic}'"))
}

/// The keys of `keys` that resource (type, name) has set at run time.
fn dynamic_keys(conn: &mut Conn, resource_type: i8, name: &str, keys: &[&str]) -> Result<Vec<String>, CliError> {
    let req = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(sb(name))
        .with_configuration_keys(Some(keys.iter().map(|k| sb(k)).collect()))]);
    let resp = conn.request(4, &req)?;
    let mut out = Vec::new();
    for r in &resp.results {
        if r.error_code != 0 {
            return Err(CliError::kafka(format!("describe the configs of {name}"), r.error_code));
        }
        for c in &r.configs {
            let dynamic = c.config_source == SOURCE_DYNAMIC_TOPIC || c.config_source == SOURCE_DYNAMIC_BROKER;
            if dynamic && keys.contains(&c.name.as_str()) && c.value.as_deref().is_some_and(|v| !v.is_empty()) {
                out.push(c.name.to_string());
            }
        }
    }
    Ok(out)
}

/// Deletes the replication rates broker `id` (at `addr`) has set; whether
/// there were any.
pub fn clear_broker_rates(addr: &str, id: i32) -> Result<bool, CliError> {
    let mut c = Conn::open(addr)?;
    let name = id.to_string();
    let set = dynamic_keys(&mut c, RESOURCE_BROKER, &name, &[LEADER_RATE, FOLLOWER_RATE, LOG_DIR_RATE])?;
    if set.is_empty() {
        return Ok(false);
    }
    let ops: Vec<(&str, i8, Option<String>)> = set.iter().map(|k| (k.as_str(), OP_DELETE, None)).collect();
    alter(&mut c, RESOURCE_BROKER, &name, &ops, &format!("clear the replication throttle of broker {id}"))?;
    Ok(true)
}

/// Deletes a topic's throttled replica lists; whether it had any.
pub fn clear_topic_replicas(conn: &mut Conn, topic: &str) -> Result<bool, CliError> {
    let set = dynamic_keys(conn, RESOURCE_TOPIC, topic, &[LEADER_REPLICAS, FOLLOWER_REPLICAS])?;
    if set.is_empty() {
        return Ok(false);
    }
    let ops: Vec<(&str, i8, Option<String>)> = set.iter().map(|k| (k.as_str(), OP_DELETE, None)).collect();
    alter(conn, RESOURCE_TOPIC, topic, &ops, &format!("clear the throttled replicas of topic '{topic}'"))?;
    Ok(true)
}
