//! AddOffsetsToTxn (key 25), versions 0-3: puts the group's
//! `__consumer_offsets` partition into the transaction, so the coordinator
//! writes a marker there and the offsets of a following TxnOffsetCommit become
//! visible (or vanish) with the transaction. v2+ clients understand PRODUCER_FENCED.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ApiKey};

use super::Ctx;
use crate::coordinator::txn::{TxnRequest, TxnResponse};
use crate::coordinator::OFFSETS_TOPIC;
use crate::error::{Error, Result};
use crate::services::coordinator_lookup as lookup;

/// Serves AddOffsetsToTxn `version`: asks the transaction coordinator's shard to add
/// the group's `__consumer_offsets` partition to the producer's open transaction.
pub async fn handle(ctx: &Ctx, req: AddOffsetsToTxnRequest, version: i16) -> AddOffsetsToTxnResponse {
    let txn_id = req.transactional_id.0.to_string();
    let group = req.group_id.0.to_string();
    let result: Result<()> = async {
        if txn_id.is_empty() || group.is_empty() {
            return Err(Error::InvalidField("the transactional id and the group id must not be empty".into()));
        }
        if !lookup::ensure_offsets_topic(&ctx.x).await {
            return Err(Error::CoordinatorNotAvailable);
        }
        let p = lookup::offsets_partition(&ctx.x, &group);
        let r = TxnRequest::AddPartitions {
            transactional_id: txn_id.clone(),
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
            partitions: vec![(OFFSETS_TOPIC.to_string(), p)],
        };
        match lookup::call_txn(&ctx.x, &txn_id, r).await? {
            TxnResponse::AddPartitions(r) => r,
            _ => Err(Error::CoordinatorNotAvailable),
        }
    }
    .await;
    AddOffsetsToTxnResponse::default().with_error_code(result.err().map_or(0, |e| e.code_for(ApiKey::AddOffsetsToTxn, version)))
}
