//! Helpers shared by `tests/idempotence.rs` and `tests/transactions.rs`:
//! raw Kafka requests for the producer-id / transaction APIs (InitProducerId,
//! FindCoordinator key type 1, AddPartitionsToTxn, EndTxn), hand-built
//! idempotent / transactional record batches, Produce and ListOffsets with an
//! isolation level, and librdkafka configs for transactional producers and
//! isolation-level consumers. Error codes are Apache Kafka's
//! (org.apache.kafka.common.protocol.Errors).
#![allow(dead_code)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ApiVersionsRequest, BrokerId, EndTxnRequest, FindCoordinatorRequest, InitProducerIdRequest, ListOffsetsRequest, ProduceRequest,
    ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::{Compression, Record};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::common::*;

/// Kafka error codes used by these tests.
pub mod code {
    pub const NONE: i16 = 0;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const INVALID_TXN_STATE: i16 = 48;
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub const PRODUCER_FENCED: i16 = 90;

    /// Codes a Kafka client retries on the coordinator APIs: the
    /// coordinator is loading / not there yet, or a previous transaction of
    /// the same transactional id is still being completed.
    pub fn retriable(c: i16) -> bool {
        matches!(c, COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR | CONCURRENT_TRANSACTIONS)
    }

    /// What an old epoch gets: INVALID_PRODUCER_EPOCH (older brokers, and
    /// Produce) or PRODUCER_FENCED (coordinator APIs since Kafka 2.7).
    pub fn fenced(c: i16) -> bool {
        matches!(c, INVALID_PRODUCER_EPOCH | PRODUCER_FENCED)
    }
}

/// How long a coordinator may answer "retry later" before a test gives up.
pub const COORD_TIMEOUT: Duration = Duration::from_secs(60);

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Call `f` every 200 ms until it returns Ok, or panic after `timeout` with
/// the last reason it gave.
pub fn retry<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match f() {
            Ok(v) => return v,
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            panic!("{what}: not done within {timeout:?}; last answer: {last}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// min(the broker's highest advertised version of `R`, `preferred`); panics
/// (with a readable message) if the broker does not advertise `R` at all or
/// only below `required`.
pub fn version<R: Request>(conn: &mut RawConn, preferred: i16, required: i16) -> i16 {
    let resp = conn.roundtrip(
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("shardlog-it"))
            .with_client_software_version(StrBytes::from_static_str("0.1")),
    );
    assert_eq!(resp.error_code, 0, "ApiVersions: {resp:?}");
    let k = resp.api_keys.iter().find(|k| k.api_key == R::KEY).unwrap_or_else(|| panic!("api key {} is not advertised in ApiVersions", R::KEY));
    assert!(k.max_version >= required, "api key {}: broker advertises up to v{}, v{required}+ is needed", R::KEY, k.max_version);
    k.max_version.min(preferred)
}

/// A producer id and epoch as InitProducerId hands them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pid {
    pub id: i64,
    pub epoch: i16,
}

/// One InitProducerId (v0..=4) answer: (error code, producer id, epoch).
pub fn init_producer_id_raw(conn: &mut RawConn, txn_id: Option<&str>, txn_timeout_ms: i32) -> (i16, Pid) {
    let v = version::<InitProducerIdRequest>(conn, 4, 0);
    let req = InitProducerIdRequest::default().with_transactional_id(txn_id.map(|t| TransactionalId(sb(t)))).with_transaction_timeout_ms(txn_timeout_ms);
    let resp = conn.roundtrip(v, &req);
    (resp.error_code, Pid { id: resp.producer_id.0, epoch: resp.producer_epoch })
}

/// InitProducerId, retried while the coordinator answers a retriable code;
/// asserts error 0.
pub fn init_producer_id(conn: &mut RawConn, txn_id: Option<&str>, txn_timeout_ms: i32) -> Pid {
    retry(&format!("InitProducerId({txn_id:?})"), COORD_TIMEOUT, || {
        let (err, pid) = init_producer_id_raw(conn, txn_id, txn_timeout_ms);
        if code::retriable(err) {
            return Err(format!("error {err}"));
        }
        assert_eq!(err, code::NONE, "InitProducerId({txn_id:?}, timeout {txn_timeout_ms}) error");
        Ok(pid)
    })
}

/// FindCoordinator with key type 1 (TRANSACTION), retried while the
/// coordinator is not available yet; returns (host, port).
pub fn find_txn_coordinator(bootstrap: &str, txn_id: &str) -> (String, i32) {
    let mut conn = RawConn::connect(bootstrap);
    let v = version::<FindCoordinatorRequest>(&mut conn, 4, 1);
    retry(&format!("FindCoordinator(TRANSACTION, {txn_id})"), COORD_TIMEOUT, || {
        let mut req = FindCoordinatorRequest::default().with_key_type(1);
        if v >= 4 {
            req = req.with_coordinator_keys(vec![sb(txn_id)]);
        } else {
            req = req.with_key(sb(txn_id));
        }
        let resp = conn.roundtrip(v, &req);
        let (err, host, port) = if v >= 4 {
            assert_eq!(resp.coordinators.len(), 1, "FindCoordinator v{v}: {resp:?}");
            let c = &resp.coordinators[0];
            assert_eq!(&*c.key, txn_id, "FindCoordinator v{v}: key echoed");
            (c.error_code, c.host.to_string(), c.port)
        } else {
            (resp.error_code, resp.host.to_string(), resp.port)
        };
        if code::retriable(err) {
            return Err(format!("error {err}"));
        }
        assert_eq!(err, code::NONE, "FindCoordinator(TRANSACTION) v{v}: {resp:?}");
        Ok((host, port))
    })
}

/// AddPartitionsToTxn (v0..=3 shape) for `partitions` of `topic`, retried on
/// retriable codes; returns the per-partition error codes.
pub fn add_partitions_to_txn(conn: &mut RawConn, txn_id: &str, pid: Pid, topic: &str, partitions: &[i32]) -> Vec<(i32, i16)> {
    let v = version::<AddPartitionsToTxnRequest>(conn, 3, 0);
    retry(&format!("AddPartitionsToTxn({txn_id})"), COORD_TIMEOUT, || {
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(sb(txn_id)))
            .with_v3_and_below_producer_id(ProducerId(pid.id))
            .with_v3_and_below_producer_epoch(pid.epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default().with_name(TopicName(sb(topic))).with_partitions(partitions.to_vec())]);
        let resp = conn.roundtrip(v, &req);
        let codes: Vec<(i32, i16)> = resp
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| t.results_by_partition.iter().map(|p| (p.partition_index, p.partition_error_code)))
            .collect();
        if !codes.is_empty() && codes.iter().all(|(_, c)| code::retriable(*c)) {
            return Err(format!("{codes:?}"));
        }
        Ok(codes)
    })
}

/// EndTxn (v0..=3); retried on retriable codes; returns the error code.
pub fn end_txn(conn: &mut RawConn, txn_id: &str, pid: Pid, commit: bool) -> i16 {
    let v = version::<EndTxnRequest>(conn, 3, 0);
    retry(&format!("EndTxn({txn_id}, commit={commit})"), COORD_TIMEOUT, || {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(sb(txn_id)))
            .with_producer_id(ProducerId(pid.id))
            .with_producer_epoch(pid.epoch)
            .with_committed(commit);
        let resp = conn.roundtrip(v, &req);
        if code::retriable(resp.error_code) {
            return Err(format!("error {}", resp.error_code));
        }
        Ok(resp.error_code)
    })
}

/// One v2 record batch of `values` from producer `pid`, base sequence
/// `base_seq`, uncompressed, with the transactional bit as given.
pub fn pid_batch(pid: Pid, base_seq: i32, transactional: bool, values: &[String]) -> Bytes {
    let ts = now_ms();
    let recs: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional,
            producer_id: pid.id,
            producer_epoch: pid.epoch,
            sequence: base_seq + i as i32,
            ..plain_record(i as i64, ts, None, Some(Bytes::from(v.clone())))
        })
        .collect();
    record_batch(&recs, Compression::None)
}

/// `n` values `{tag}-{i}` for i in `from..from + n`.
pub fn values(tag: &str, from: usize, n: usize) -> Vec<String> {
    (from..from + n).map(|i| format!("{tag}-{i}")).collect()
}

/// Produce (acks=all, v3..=9) of `records` to one partition; returns
/// (error code, base offset).
pub fn produce(conn: &mut RawConn, topic: &str, partition: i32, txn_id: Option<&str>, records: Bytes) -> (i16, i64) {
    let v = version::<ProduceRequest>(conn, 9, 3);
    let req =
        ProduceRequest::default().with_transactional_id(txn_id.map(|t| TransactionalId(sb(t)))).with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(sb(topic)))
                .with_partition_data(vec![PartitionProduceData::default().with_index(partition).with_records(Some(records))]),
        ]);
    let resp = conn.roundtrip(v, &req);
    assert_eq!(resp.responses.len(), 1, "Produce: one topic expected: {resp:?}");
    assert_eq!(resp.responses[0].partition_responses.len(), 1, "Produce: one partition expected: {resp:?}");
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// ListOffsets "latest" (timestamp -1) with `isolation` (0 = read_uncommitted:
/// the high watermark; 1 = read_committed: the last stable offset).
pub fn latest_offset(conn: &mut RawConn, topic: &str, partition: i32, isolation: i8) -> i64 {
    let v = version::<ListOffsetsRequest>(conn, 6, 2);
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_isolation_level(isolation).with_topics(vec![ListOffsetsTopic::default()
        .with_name(TopicName(sb(topic)))
        .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(-1)])]);
    let resp = conn.roundtrip(v, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "ListOffsets latest (isolation {isolation}) of {topic}/{partition}: {resp:?}");
    p.offset
}

// ---------------------------------------------------------------------------
// librdkafka
// ---------------------------------------------------------------------------

/// Transactional producer config: `producer_config` (acks=all,
/// message.timeout.ms=60000, socket.timeout.ms=30000) plus transactional.id
/// and transaction.timeout.ms=60000 (librdkafka requires
/// message.timeout.ms <= transaction.timeout.ms).
pub fn txn_producer_config(bootstrap: &str, txn_id: &str) -> ClientConfig {
    let mut c = producer_config(bootstrap);
    c.set("transactional.id", txn_id).set("transaction.timeout.ms", "60000");
    c
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadCommitted,
    ReadUncommitted,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

/// assign()-only consumer (see `consumer_config`) with the isolation level set
/// explicitly (librdkafka defaults to read_committed).
pub fn isolation_consumer(bootstrap: &str, isolation: Isolation) -> BaseConsumer {
    let mut c = consumer_config(bootstrap);
    c.set("isolation.level", isolation.as_str());
    c.create().expect("create BaseConsumer")
}

/// Assign partitions `0..partitions` of `topic` at the beginning.
pub fn assign_all(c: &BaseConsumer, topic: &str, partitions: i32) {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("tpl offset");
    }
    c.assign(&tpl).expect("assign");
}

/// Poll until `target` records arrived (then `grace` longer, to catch records
/// that must not be there) or `timeout` passed; returns what came.
pub fn poll_recs(c: &BaseConsumer, target: usize, timeout: Duration, grace: Duration) -> Vec<Rec> {
    let deadline = Instant::now() + timeout;
    let mut grace_end: Option<Instant> = None;
    let mut out = Vec::new();
    let mut errors = 0usize;
    loop {
        let now = Instant::now();
        if now >= deadline || grace_end.is_some_and(|g| now >= g) {
            return out;
        }
        if grace_end.is_none() && out.len() >= target {
            grace_end = Some(now + grace);
        }
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(to_rec(&m)),
            Some(Err(e)) => {
                errors += 1;
                if errors <= 20 {
                    eprintln!("consumer error (ignored, keeps polling): {e}");
                }
            }
            None => {}
        }
    }
}

/// Read `topic` (partitions `0..partitions`) from the beginning with the given
/// isolation level: until `target` records, then 2 s more.
pub fn read_topic(bootstrap: &str, topic: &str, partitions: i32, isolation: Isolation, target: usize) -> Vec<Rec> {
    let c = isolation_consumer(bootstrap, isolation);
    assign_all(&c, topic, partitions);
    poll_recs(&c, target, Duration::from_secs(60), Duration::from_secs(2))
}

/// A record's value as UTF-8.
pub fn value_str(r: &Rec) -> String {
    String::from_utf8(r.value.clone().unwrap_or_default()).expect("utf8 value")
}
