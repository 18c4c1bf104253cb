//! DescribeTransactions (key 65), version 0: the state of each named
//! transactional id, asked of the shard coordinating it. An id the broker does
//! not know answers TRANSACTIONAL_ID_NOT_FOUND (also before
//! `__transaction_state` exists, which this API never creates).

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::coordinator::txn::{TxnDescription, TxnRequest, TxnResponse};
use crate::coordinator::txn_store::TXN_STATE_TOPIC;
use crate::error::Error;
use crate::services::coordinator_lookup as lookup;

async fn describe_one(ctx: &Ctx, id: String) -> TxnDescription {
    let p = lookup::txn_partition(&ctx.x, &id);
    let shard = match lookup::coordinator_shard(&ctx.x, TXN_STATE_TOPIC, p) {
        Ok(s) => s,
        Err(Error::CoordinatorNotAvailable) => return TxnDescription::error(id, Error::TransactionalIdNotFound),
        Err(e) => return TxnDescription::error(id, e),
    };
    match lookup::call_txn_on(&ctx.x, shard, TxnRequest::Describe { transactional_ids: vec![id.clone()] }).await {
        Ok(TxnResponse::Describe(mut d)) if d.len() == 1 => d.remove(0),
        Ok(_) => TxnDescription::error(id, Error::CoordinatorNotAvailable),
        Err(e) => TxnDescription::error(id, e),
    }
}

/// Serves DescribeTransactions: each transactional id's state, from the shard
/// coordinating it.
pub async fn handle(ctx: &Ctx, req: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let descs = futures::future::join_all(req.transactional_ids.iter().map(|id| describe_one(ctx, id.0.to_string()))).await;
    DescribeTransactionsResponse::default().with_transaction_states(
        descs
            .into_iter()
            .map(|d| {
                TransactionState::default()
                    .with_error_code(d.error.map_or(0, |e| e.code()))
                    .with_transactional_id(TransactionalId(StrBytes::from_string(d.transactional_id)))
                    .with_transaction_state(StrBytes::from_static_str(d.state))
                    .with_transaction_timeout_ms(d.timeout_ms)
                    .with_transaction_start_time_ms(d.start_ms)
                    .with_producer_id(ProducerId(d.producer_id))
                    .with_producer_epoch(d.producer_epoch)
                    .with_topics(
                        d.partitions
                            .into_iter()
                            .map(|(t, ps)| TopicData::default().with_topic(TopicName(StrBytes::from_string(t))).with_partitions(ps))
                            .collect(),
                    )
            })
            .collect(),
    )
}
