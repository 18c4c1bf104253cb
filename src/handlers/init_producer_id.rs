//! InitProducerId (key 22), versions 0-4. Without a transactional id: a fresh
//! producer id at epoch 0 (idempotent producer; Kafka always hands out a new
//! id here). With one: the id's transaction coordinator bumps the epoch
//! (fencing older instances), aborting an open transaction first. v3+ may name
//! the producer id and epoch the client had (KIP-360); v4 clients understand
//! PRODUCER_FENCED (KIP-588), older ones get INVALID_PRODUCER_EPOCH.

use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::Ctx;
use crate::coordinator::txn::{TxnRequest, TxnResponse};
use crate::error::{Error, Result};
use crate::services::coordinator_lookup as lookup;

/// Serves InitProducerId: a new producer id (idempotent producers), or the transactional
/// id's coordinator bumps its epoch.
pub async fn handle(ctx: &Ctx, req: InitProducerIdRequest, version: i16) -> InitProducerIdResponse {
    let r = init(ctx, &req, version).await;
    match r {
        Ok((pid, epoch)) => InitProducerIdResponse::default().with_producer_id(ProducerId(pid)).with_producer_epoch(epoch),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(e.code_for(ApiKey::InitProducerId, version))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

/// (producer id, epoch) for the request.
async fn init(ctx: &Ctx, req: &InitProducerIdRequest, version: i16) -> Result<(i64, i16)> {
    let Some(txn_id) = req.transactional_id.as_ref().map(|t| t.0.to_string()) else {
        return ctx.coordinators().next_producer_id().await.map(|p| (p, 0));
    };
    if txn_id.is_empty() {
        return Err(Error::InvalidField("the transactional id must not be empty".into()));
    }
    let max = ctx.shard().cfg.transaction_max_timeout_ms;
    if req.transaction_timeout_ms <= 0 || i64::from(req.transaction_timeout_ms) > max {
        return Err(Error::InvalidTransactionTimeout(format!("{} ms is not in 1..={max}", req.transaction_timeout_ms)));
    }
    let requested = (version >= 3 && req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    let r = TxnRequest::InitProducerId { transactional_id: txn_id.clone(), timeout_ms: req.transaction_timeout_ms, requested };
    match lookup::call_txn(&ctx.x, &txn_id, r).await? {
        TxnResponse::InitProducerId(r) => r,
        _ => Err(Error::CoordinatorNotAvailable),
    }
}
