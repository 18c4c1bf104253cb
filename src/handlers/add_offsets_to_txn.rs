//! AddOffsetsToTxn (key 25), versions 0-3: puts the group's
//! `__consumer_offsets` partition into the transaction, so the coordinator
//! writes a marker there and the offsets of a following TxnOffsetCommit become
//! visible (or vanish) with the transaction. v2+ clients understand PRODUCER_FENCED.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ApiKey};
use kafka_protocol::ResponseError as E;

use super::Ctx;
use crate::coordinator::txn::{TxnRequest, TxnResponse};
use crate::coordinator::OFFSETS_TOPIC;

/// Serves AddOffsetsToTxn `version`: asks the transaction coordinator's shard to add
/// the group's `__consumer_offsets` partition to the producer's open transaction.
pub async fn handle(ctx: &Ctx, req: AddOffsetsToTxnRequest, version: i16) -> AddOffsetsToTxnResponse {
    let txn_id = req.transactional_id.0.to_string();
    let group = req.group_id.0.to_string();
    let code = if txn_id.is_empty() || group.is_empty() {
        E::InvalidRequest.code()
    } else if !super::group_coordinator::ensure_offsets_topic(ctx).await {
        E::CoordinatorNotAvailable.code()
    } else {
        let p = super::group_coordinator::offsets_partition(ctx, &group);
        let r = TxnRequest::AddPartitions {
            transactional_id: txn_id.clone(),
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
            partitions: vec![(OFFSETS_TOPIC.to_string(), p)],
        };
        match super::txn_coordinator::call(ctx, &txn_id, r).await {
            Ok(TxnResponse::AddPartitions(r)) => r.map(|_| 0).unwrap_or_else(|e| e.code_for(ApiKey::AddOffsetsToTxn, version)),
            Ok(_) => E::CoordinatorNotAvailable.code(),
            Err(e) => e.code_for(ApiKey::AddOffsetsToTxn, version),
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}
