//! Admin visibility of producers and transactions (issue 7, KIP-664), through
//! the real `shardlog` binary with raw Kafka frames (no client library we test
//! with exposes these calls): DescribeProducers shows a partition's producer
//! state, ListTransactions and DescribeTransactions show the coordinator's.
//!
//! What it proves: while a transaction is open, DescribeProducers reports the
//! producer's id, epoch, last sequence and the transaction's first offset;
//! ListTransactions lists it as Ongoing (and honours state and producer id
//! filters); DescribeTransactions reports state, timeout, producer and the
//! partitions in it, and TRANSACTIONAL_ID_NOT_FOUND for an unknown id. After
//! EndTxn the same calls show the completed state and no open transaction.
//! Why: `kafka-transactions.sh` (describe-producers, list, describe) is how an
//! operator finds and understands a hanging transaction.

mod common;
mod txn_common;

use std::time::Duration;

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, ProducerId, TopicName, TransactionalId};

use common::*;
use txn_common::*;

const SETTINGS: &[(&str, &str)] = &[("transaction.state.log.num.partitions", "4")];
/// Kafka's TRANSACTIONAL_ID_NOT_FOUND.
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

fn describe_producers(conn: &mut RawConn, topic: &str) -> Vec<(i64, i32, i32, i64)> {
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default().with_name(TopicName(sb(topic))).with_partition_indexes(vec![0])]);
    let resp = conn.roundtrip(0, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "DescribeProducers: {resp:?}");
    p.active_producers.iter().map(|s| (s.producer_id.0, s.producer_epoch, s.last_sequence, s.current_txn_start_offset)).collect()
}

fn list_transactions(conn: &mut RawConn, states: &[&str], pids: &[i64]) -> Vec<(String, i64, String)> {
    let req = ListTransactionsRequest::default()
        .with_state_filters(states.iter().map(|s| sb(s)).collect())
        .with_producer_id_filters(pids.iter().map(|&p| ProducerId(p)).collect())
        .with_duration_filter(-1);
    let resp = conn.roundtrip(1, &req);
    assert_eq!(resp.error_code, 0, "ListTransactions: {resp:?}");
    resp.transaction_states.iter().map(|t| (t.transactional_id.0.to_string(), t.producer_id.0, t.transaction_state.to_string())).collect()
}

#[test]
fn producers_and_transactions_are_visible_to_admins() {
    let mut broker = Broker::start(SETTINGS);
    let bs = broker.bootstrap();
    let topic = topic_name("txn-admin");
    futures::executor::block_on(create_topic(&bs, &topic, 1));
    let txn_id = format!("{topic}-tid");
    let mut conn = RawConn::connect(&bs);

    let pid = init_producer_id(&mut conn, Some(&txn_id), 60_000);
    let added = add_partitions_to_txn(&mut conn, &txn_id, pid, &topic, &[0]);
    assert_eq!(added, vec![(0, 0)], "AddPartitionsToTxn");
    let (err, base) = produce(&mut conn, &topic, 0, Some(&txn_id), pid_batch(pid, 0, true, &values("a", 0, 4)));
    assert_eq!((err, base), (0, 0), "transactional produce");

    assert_eq!(describe_producers(&mut conn, &topic), vec![(pid.id, i32::from(pid.epoch), 3, 0)], "producer with an open transaction from offset 0");

    let all = list_transactions(&mut conn, &[], &[]);
    assert!(all.contains(&(txn_id.clone(), pid.id, "Ongoing".to_string())), "ListTransactions lists the open one: {all:?}");
    assert!(list_transactions(&mut conn, &["CompleteCommit"], &[]).iter().all(|t| t.0 != txn_id), "state filter");
    assert!(list_transactions(&mut conn, &[], &[pid.id + 1_000_000]).iter().all(|t| t.0 != txn_id), "producer id filter");

    let req =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(sb(&txn_id)), TransactionalId(sb("no-such-transactional-id"))]);
    let resp = conn.roundtrip(0, &req);
    assert_eq!(resp.transaction_states.len(), 2, "{resp:?}");
    let t = resp.transaction_states.iter().find(|t| t.transactional_id.0.as_str() == txn_id).expect("described");
    assert_eq!((t.error_code, t.transaction_state.as_str(), t.transaction_timeout_ms), (0, "Ongoing", 60_000));
    assert_eq!((t.producer_id.0, t.producer_epoch), (pid.id, pid.epoch));
    assert!(t.transaction_start_time_ms > 0, "start time set: {t:?}");
    let parts: Vec<(String, Vec<i32>)> = t.topics.iter().map(|d| (d.topic.0.to_string(), d.partitions.clone())).collect();
    assert_eq!(parts, vec![(topic.clone(), vec![0])], "partitions in the transaction");
    let unknown = resp.transaction_states.iter().find(|t| t.transactional_id.0.as_str() != txn_id).expect("unknown described");
    assert_eq!(unknown.error_code, TRANSACTIONAL_ID_NOT_FOUND);

    assert_eq!(end_txn(&mut conn, &txn_id, pid, true), 0, "EndTxn commit");
    retry("transaction completes", Duration::from_secs(30), || {
        let done = list_transactions(&mut conn, &["CompleteCommit"], &[pid.id]);
        if done.iter().any(|t| t.0 == txn_id) {
            Ok(())
        } else {
            Err(format!("{done:?}"))
        }
    });
    assert_eq!(describe_producers(&mut conn, &topic), vec![(pid.id, i32::from(pid.epoch), 3, -1)], "no open transaction after the commit marker");
    broker.stop();
}
