//! AddPartitionsToTxn (key 24), versions 0-3 (the client form; v4+ is the
//! broker-to-broker batch form of KIP-890 and is not offered). Partitions must
//! exist: an unknown one answers UNKNOWN_TOPIC_OR_PARTITION and the others
//! OPERATION_NOT_ATTEMPTED, as Kafka does; otherwise the coordinator's answer
//! applies to every partition. v2+ clients understand PRODUCER_FENCED.

use kafka_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey};

use super::Ctx;
use crate::coordinator::txn::{TxnRequest, TxnResponse};
use crate::error::{Error, Result};
use crate::services::coordinator_lookup as lookup;

/// Serves AddPartitionsToTxn `version`: checks that every partition exists, then has
/// the transaction coordinator add them to the producer's open transaction.
pub async fn handle(ctx: &Ctx, req: AddPartitionsToTxnRequest, version: i16) -> AddPartitionsToTxnResponse {
    let image = ctx.shard().image();
    let unknown: Vec<bool> =
        req.v3_and_below_topics.iter().flat_map(|t| t.partitions.iter().map(|&p| image.partition(t.name.0.as_str(), p).is_none())).collect();
    let txn_id = req.v3_and_below_transactional_id.0.to_string();
    // None: not sent to the coordinator (a partition is unknown); else its answer for all.
    let result: Option<Result<()>> = if unknown.iter().any(|&u| u) {
        None
    } else if txn_id.is_empty() {
        Some(Err(Error::InvalidField("the transactional id must not be empty".into())))
    } else {
        let partitions = req.v3_and_below_topics.iter().flat_map(|t| t.partitions.iter().map(|&p| (t.name.0.to_string(), p))).collect();
        let r = TxnRequest::AddPartitions {
            transactional_id: txn_id.clone(),
            producer_id: req.v3_and_below_producer_id.0,
            producer_epoch: req.v3_and_below_producer_epoch,
            partitions,
        };
        Some(match lookup::call_txn(&ctx.x, &txn_id, r).await {
            Ok(TxnResponse::AddPartitions(r)) => r,
            Ok(_) => Err(Error::CoordinatorNotAvailable),
            Err(e) => Err(e),
        })
    };
    let code = |e: &Error| e.code_for(ApiKey::AddPartitionsToTxn, version);
    let mut i = 0;
    let results = req
        .v3_and_below_topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|&p| {
                    let c = match &result {
                        Some(r) => r.as_ref().err().map_or(0, code),
                        // Kafka's answer when some partitions are unknown: those say so, the others were not attempted.
                        None if unknown[i] => code(&Error::UnknownTopicOrPartition),
                        None => code(&Error::OperationNotAttempted),
                    };
                    i += 1;
                    AddPartitionsToTxnPartitionResult::default().with_partition_index(p).with_partition_error_code(c)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default().with_name(t.name.clone()).with_results_by_partition(parts)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}
