//! FindCoordinator (key 10), versions 0-4 (v4 batches keys). A group's (key
//! type 0) or transactional id's (key type 1) coordinator is the broker leading
//! the key's partition of `__consumer_offsets` / `__transaction_state` (on a
//! single broker, always itself); the shard behind it is chosen per request on
//! that broker. The internal topic is created on first use. Any other key type
//! is INVALID_REQUEST, as in Kafka.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::txn_store::TXN_STATE_TOPIC;
use crate::coordinator::OFFSETS_TOPIC;
use crate::error::Error;
use crate::services::brokers::{live_broker, BrokerEndpoint};
use crate::services::coordinator_lookup as lookup;
use crate::shard::partition::served_leader;

/// Serves FindCoordinator `version`: per key, the broker leading the key's
/// partition of the internal topic, creating the topic on first use.
pub async fn handle(ctx: &Ctx, req: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let mut resp = FindCoordinatorResponse::default();
    if version >= 4 {
        let mut out = Vec::with_capacity(req.coordinator_keys.len());
        for k in &req.coordinator_keys {
            let c = Coordinator::default().with_key(k.clone());
            out.push(match coordinator(ctx, req.key_type, k).await {
                Ok(b) => c.with_node_id(BrokerId(b.id)).with_host(StrBytes::from_string(b.host)).with_port(b.port as i32),
                Err((code, why)) => c.with_error_code(code).with_error_message(Some(StrBytes::from_static_str(why))).with_node_id(BrokerId(-1)).with_port(-1),
            });
        }
        resp.coordinators = out;
    } else {
        match coordinator(ctx, req.key_type, &req.key).await {
            Ok(b) => {
                resp.node_id = BrokerId(b.id);
                resp.host = StrBytes::from_string(b.host);
                resp.port = b.port as i32;
            }
            Err((code, why)) => {
                resp.error_code = code;
                if version >= 1 {
                    resp.error_message = Some(StrBytes::from_static_str(why));
                }
                resp.node_id = BrokerId(-1);
                resp.port = -1;
            }
        }
    }
    resp
}

/// The broker coordinating `key` of `key_type` (0 group, 1 transactional id):
/// the live leader of its internal partition, as this broker serves it
/// ([`served_leader`]: not itself before it caught up since its start).
async fn coordinator(ctx: &Ctx, key_type: i8, key: &StrBytes) -> Result<BrokerEndpoint, (i16, &'static str)> {
    let (topic, partition) = match key_type {
        0 if lookup::ensure_offsets_topic(&ctx.x).await => (OFFSETS_TOPIC, lookup::offsets_partition(&ctx.x, key)),
        0 => return Err((Error::CoordinatorNotAvailable.code(), "__consumer_offsets is not available")),
        1 if lookup::ensure_txn_topic(&ctx.x).await => (TXN_STATE_TOPIC, lookup::txn_partition(&ctx.x, key)),
        1 => return Err((Error::CoordinatorNotAvailable.code(), "__transaction_state is not available")),
        _ => return Err((Error::InvalidField(String::new()).code(), "unknown coordinator key type (0 group, 1 transaction)")),
    };
    let shard = ctx.shard();
    let image = shard.image();
    let leader = image.partition(topic, partition).map_or(-1, |p| served_leader(p.leader, shard.cfg.broker_id, shard.may_lead(&image)));
    live_broker(shard, leader).ok_or((Error::CoordinatorNotAvailable.code(), "the coordinator's partition has no live leader"))
}
