//! FindCoordinator (key 10), versions 0-4 (v4 batches keys). Every group's
//! coordinator is this broker (the shard behind it is chosen per request);
//! `__consumer_offsets` is created on first use. Transaction coordinators are
//! not built, so key type 1 gets COORDINATOR_NOT_AVAILABLE.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;

use super::Ctx;

pub async fn handle(ctx: &Ctx, req: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let (host, port) = ctx.shard().advertised.clone();
    let id = ctx.shard().cfg.broker_id;
    let error = if req.key_type != 0 {
        E::CoordinatorNotAvailable.code()
    } else if super::group_coordinator::ensure_offsets_topic(ctx).await {
        0
    } else {
        E::CoordinatorNotAvailable.code()
    };
    let message = (error != 0).then(|| StrBytes::from_static_str(if req.key_type != 0 { "only group coordinators (key type 0) are supported" } else { "__consumer_offsets is not available" }));
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
