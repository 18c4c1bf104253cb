//! FindCoordinator (key 10), versions 0-4 (v4 batches keys). Every group's
//! (key type 0) and transactional id's (key type 1) coordinator is this
//! broker; the shard behind it is chosen per request from the key's internal
//! partition. `__consumer_offsets` or `__transaction_state` is created on
//! first use. Any other key type is INVALID_REQUEST, as in Kafka.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::admin::coordinator_lookup as lookup;
use crate::error::Error;

/// Serves FindCoordinator `version`: this broker for every group or transactional id,
/// creating the internal topic behind the key type on first use.
pub async fn handle(ctx: &Ctx, req: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let (host, port) = ctx.shard().advertised.clone();
    let id = ctx.shard().cfg.broker_id;
    let (error, why) = match req.key_type {
        0 if lookup::ensure_offsets_topic(&ctx.x).await => (0, ""),
        0 => (Error::CoordinatorNotAvailable.code(), "__consumer_offsets is not available"),
        1 if lookup::ensure_txn_topic(&ctx.x).await => (0, ""),
        1 => (Error::CoordinatorNotAvailable.code(), "__transaction_state is not available"),
        _ => (Error::InvalidField(String::new()).code(), "unknown coordinator key type (0 group, 1 transaction)"),
    };
    let message = (error != 0).then(|| StrBytes::from_static_str(why));
    let mut resp = FindCoordinatorResponse::default();
    if version >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let mut c = Coordinator::default().with_key(k.clone()).with_error_code(error).with_error_message(message.clone());
                if error == 0 {
                    c = c.with_node_id(BrokerId(id)).with_host(StrBytes::from_string(host.clone())).with_port(port as i32);
                } else {
                    c = c.with_node_id(BrokerId(-1)).with_port(-1);
                }
                c
            })
            .collect();
    } else {
        resp.error_code = error;
        if version >= 1 {
            resp.error_message = message;
        }
        if error == 0 {
            resp.node_id = BrokerId(id);
            resp.host = StrBytes::from_string(host);
            resp.port = port as i32;
        } else {
            resp.node_id = BrokerId(-1);
            resp.port = -1;
        }
    }
    resp
}
