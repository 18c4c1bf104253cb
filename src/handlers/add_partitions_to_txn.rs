//! AddPartitionsToTxn (key 24), versions 0-3 (the client form; v4+ is the
//! broker-to-broker batch form of KIP-890 and is not offered). Partitions must
//! exist: an unknown one answers UNKNOWN_TOPIC_OR_PARTITION and the others
//! OPERATION_NOT_ATTEMPTED, as Kafka does; otherwise the coordinator's answer
//! applies to every partition. v2+ clients understand PRODUCER_FENCED.

use kafka_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey};
use kafka_protocol::ResponseError as E;

use super::Ctx;
use crate::coordinator::txn::{TxnRequest, TxnResponse};

/// Serves AddPartitionsToTxn `version`: checks that every partition exists, then has
/// the transaction coordinator add them to the producer's open transaction.
pub async fn handle(ctx: &Ctx, req: AddPartitionsToTxnRequest, version: i16) -> AddPartitionsToTxnResponse {
    let image = ctx.shard().image();
    let unknown: Vec<bool> =
        req.v3_and_below_topics.iter().flat_map(|t| t.partitions.iter().map(|&p| image.partition(t.name.0.as_str(), p).is_none())).collect();
    let txn_id = req.v3_and_below_transactional_id.0.to_string();
    let code = if unknown.iter().any(|&u| u) {
        None
    } else if txn_id.is_empty() {
        Some(E::InvalidRequest.code())
    } else {
        let partitions = req.v3_and_below_topics.iter().flat_map(|t| t.partitions.iter().map(|&p| (t.name.0.to_string(), p))).collect();
        let r = TxnRequest::AddPartitions {
            transactional_id: txn_id.clone(),
            producer_id: req.v3_and_below_producer_id.0,
            producer_epoch: req.v3_and_below_producer_epoch,
            partitions,
        };
        Some(match super::txn_coordinator::call(ctx, &txn_id, r).await {
            Ok(TxnResponse::AddPartitions(r)) => r.map(|_| 0).unwrap_or_else(|e| e.code_for(ApiKey::AddPartitionsToTxn, version)),
            Ok(_) => E::CoordinatorNotAvailable.code(),
            Err(e) => e.code_for(ApiKey::AddPartitionsToTxn, version),
        })
    };
    let mut i = 0;
    let results = req
        .v3_and_below_topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|&p| {
                    let c = code.unwrap_or(if unknown[i] { E::UnknownTopicOrPartition.code() } else { E::OperationNotAttempted.code() });
                    i += 1;
                    AddPartitionsToTxnPartitionResult::default().with_partition_index(p).with_partition_error_code(c)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default().with_name(t.name.clone()).with_results_by_partition(parts)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}
