//! UnregisterBroker (key 64), version 0: removes a broker's registration from
//! the cluster (`kafka-cluster.sh unregister`), through the active controller.
//! Its partitions lose it as a leader at once; a broker still running registers
//! again, as in Kafka, so this is for brokers that are gone for good.
//! BROKER_ID_NOT_REGISTERED for an unknown id, or on a single broker.

use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::error::Error;
use crate::shard::request::{ShardRequest, ShardResponse};
use crate::shard::CONTROLLER_SHARD;

/// Serves UnregisterBroker.
pub async fn handle(ctx: &Ctx, req: UnregisterBrokerRequest) -> UnregisterBrokerResponse {
    let res = match ctx.x.call(CONTROLLER_SHARD, ShardRequest::UnregisterBroker { broker_id: req.broker_id.0 }).await {
        Ok(ShardResponse::Unregistered(r)) => r,
        Ok(_) => Err(Error::NotController),
        Err(e) => Err(e),
    };
    match res {
        Ok(()) => UnregisterBrokerResponse::default(),
        Err(e) => UnregisterBrokerResponse::default().with_error_code(e.code()).with_error_message(Some(StrBytes::from_string(e.to_string()))),
    }
}
