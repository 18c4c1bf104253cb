//! EndTxn (key 26), versions 0-3: commit or abort the open transaction. The
//! answer comes after the markers are in every partition of the transaction
//! (stricter than Kafka, which answers once the decision is logged). v2+
//! clients understand PRODUCER_FENCED.

use kafka_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse};
use kafka_protocol::ResponseError as E;

use super::Ctx;
use crate::coordinator::txn::{TxnRequest, TxnResponse};

/// Serves EndTxn `version`: the transaction coordinator commits or aborts the
/// producer's transaction; answers after the markers are written.
pub async fn handle(ctx: &Ctx, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let txn_id = req.transactional_id.0.to_string();
    let code = if txn_id.is_empty() {
        E::InvalidRequest.code()
    } else {
        let r =
            TxnRequest::EndTxn { transactional_id: txn_id.clone(), producer_id: req.producer_id.0, producer_epoch: req.producer_epoch, commit: req.committed };
        match super::txn_coordinator::call(ctx, &txn_id, r).await {
            Ok(TxnResponse::EndTxn(r)) => r.map(|_| 0).unwrap_or_else(|e| e.code_for(ApiKey::EndTxn, version)),
            Ok(_) => E::CoordinatorNotAvailable.code(),
            Err(e) => e.code_for(ApiKey::EndTxn, version),
        }
    };
    EndTxnResponse::default().with_error_code(code)
}
