//! ListTransactions (key 66), versions 0-1: every shard lists the ids it
//! coordinates, filtered by state names, producer ids and (v1) a minimum
//! running time. Unknown state names are echoed back in
//! `unknown_state_filters` and match nothing, as in Kafka.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::txn::{TxnRequest, TxnResponse, TxnState};

/// Serves ListTransactions `version`: asks every shard and merges the
/// transactional ids that match the filters.
pub async fn handle(ctx: &Ctx, req: ListTransactionsRequest, version: i16) -> ListTransactionsResponse {
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for s in &req.state_filters {
        match TxnState::parse(s.as_str()) {
            Some(st) => states.push(st),
            None => unknown.push(s.clone()),
        }
    }
    let mut resp = ListTransactionsResponse::default().with_unknown_state_filters(unknown);
    if !req.state_filters.is_empty() && states.is_empty() {
        return resp;
    }
    let producer_ids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let duration_ms = if version >= 1 { req.duration_filter } else { -1 };
    let answers = ctx.x.broadcast_txn(|| TxnRequest::List { states: states.clone(), producer_ids: producer_ids.clone(), duration_ms }).await;
    for a in answers {
        match a {
            Ok(TxnResponse::List(list)) => {
                resp.transaction_states.extend(list.into_iter().map(|(id, pid, state)| {
                    TransactionState::default()
                        .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
                        .with_producer_id(ProducerId(pid))
                        .with_transaction_state(StrBytes::from_static_str(state))
                }));
            }
            _ => resp.error_code = crate::error::Error::CoordinatorNotAvailable.code(),
        }
    }
    resp
}
