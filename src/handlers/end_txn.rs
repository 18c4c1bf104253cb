//! EndTxn (key 26), versions 0-3: commit or abort the open transaction. The
//! answer comes after the markers are in every partition of the transaction
//! (stricter than Kafka, which answers once the decision is logged). v2+
//! clients understand PRODUCER_FENCED.

use kafka_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse};

use super::Ctx;
use crate::coordinator::txn::{TxnRequest, TxnResponse};
use crate::error::{Error, Result};
use crate::services::coordinator_lookup as lookup;

/// Serves EndTxn `version`: the transaction coordinator commits or aborts the
/// producer's transaction; answers after the markers are written.
pub async fn handle(ctx: &Ctx, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let txn_id = req.transactional_id.0.to_string();
    let result: Result<()> = async {
        if txn_id.is_empty() {
            return Err(Error::InvalidField("the transactional id must not be empty".into()));
        }
        let r =
            TxnRequest::EndTxn { transactional_id: txn_id.clone(), producer_id: req.producer_id.0, producer_epoch: req.producer_epoch, commit: req.committed };
        match lookup::call_txn(&ctx.x, &txn_id, r).await? {
            TxnResponse::EndTxn(r) => r,
            _ => Err(Error::CoordinatorNotAvailable),
        }
    }
    .await;
    EndTxnResponse::default().with_error_code(result.err().map_or(0, |e| e.code_for(ApiKey::EndTxn, version)))
}
