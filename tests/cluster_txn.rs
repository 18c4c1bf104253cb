//! Transactions across brokers: the coordinator of a transactional id (the
//! leader of its `__transaction_state` partition) writes COMMIT and ABORT
//! markers to partitions other brokers lead, with the inter-broker
//! WriteTxnMarkers. Three combined nodes (one shard each); a 6-partition topic
//! spread over them; a transactional producer commits one transaction over all
//! six partitions and aborts a second; a read_committed consumer sees exactly
//! the committed records, and every partition's last stable offset reaches its
//! high watermark (no marker left unwritten).
//!
//! Run with `cargo test --test cluster_txn -- --nocapture`.

#[path = "common/cluster.rs"]
mod cluster_harness;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cluster_harness::*;
use common::{consumer_config, producer_config, sb};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{ListOffsetsRequest, ProducerId, TopicName, WriteTxnMarkersRequest};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

const TOPIC: &str = "txn-spread";
const PARTITIONS: i32 = 6;
const PER_PARTITION: usize = 5;
const OP: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// Sends `PER_PARTITION` records with values `{tag}-{partition}-{i}` to every partition.
fn send_all(p: &ThreadedProducer<DefaultProducerContext>, tag: &str) -> BTreeSet<String> {
    let mut sent = BTreeSet::new();
    for part in 0..PARTITIONS {
        for i in 0..PER_PARTITION {
            let v = format!("{tag}-{part}-{i}");
            p.send(BaseRecord::<str, str>::to(TOPIC).partition(part).key("k").payload(&v)).map_err(|(e, _)| e).expect("queue a record");
            sent.insert(v);
        }
    }
    sent
}

/// ListOffsets v5 of every partition at its leader: (latest offset read
/// uncommitted = high watermark, read committed = last stable offset).
fn end_offsets(c: &Cluster, leaders: &BTreeMap<i32, i32>) -> Result<BTreeMap<i32, (i64, i64)>, String> {
    let mut out = BTreeMap::new();
    for (&part, &leader) in leaders {
        let mut ends = [0i64; 2];
        for (isolation, end) in ends.iter_mut().enumerate() {
            let req =
                ListOffsetsRequest::default().with_replica_id(kafka_protocol::messages::BrokerId(-1)).with_isolation_level(isolation as i8).with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(TopicName(sb(TOPIC)))
                        .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(part).with_timestamp(-1)]),
                ]);
            let resp = raw_call(&c.bootstrap(leader), 5, &req, RAW_TIMEOUT)?;
            let p = resp.topics.first().and_then(|t| t.partitions.first()).ok_or("ListOffsets answered no partition")?;
            if p.error_code != NONE {
                return Err(format!("partition {part} at broker {leader}: error code {}", p.error_code));
            }
            *end = p.offset;
        }
        out.insert(part, (ends[0], ends[1]));
    }
    Ok(out)
}

#[test]
fn transactions_commit_and_abort_across_brokers() {
    let c = Cluster::start(3, &[]);
    let all = c.bootstrap_all();

    c.step("creating the topic");
    let (code, msg) = create_topic_raw(&c.bootstrap(1), TOPIC, PARTITIONS, &[], OP).expect("CreateTopics");
    assert_eq!(code, NONE, "CreateTopics: {msg}");
    let leaders: BTreeMap<i32, i32> = wait_until("every partition led, on every node", OP, POLL, || {
        let mut agreed = None;
        for id in c.ids() {
            let md = metadata(&c.bootstrap(id), Some(&[TOPIC]))?;
            let ps = partition_leaders(&md, TOPIC)?;
            if ps.len() != PARTITIONS as usize || ps.values().any(|(e, l)| *e != NONE || *l < 0) {
                return Err(format!("node {id}: {ps:?}"));
            }
            let ls: BTreeMap<i32, i32> = ps.into_iter().map(|(p, (_, l))| (p, l)).collect();
            match &agreed {
                Some(a) if *a != ls => return Err(format!("node {id} sees {ls:?}, another {a:?}")),
                _ => agreed = Some(ls),
            }
        }
        agreed.ok_or_else(|| "no node".to_string())
    });
    let brokers: BTreeSet<i32> = leaders.values().copied().collect();
    c.step(&format!("leaders {leaders:?}"));
    assert_eq!(brokers.len(), 3, "the partitions should spread over all three brokers: {leaders:?}");

    c.step("transaction 1: commit over every partition");
    let producer: ThreadedProducer<DefaultProducerContext> =
        producer_config(&all).set("transactional.id", "cluster-txn-it").set("transaction.timeout.ms", "60000").create().expect("transactional producer");
    producer.init_transactions(OP).expect("init_transactions");
    producer.begin_transaction().expect("begin 1");
    let committed = send_all(&producer, "commit");
    producer.commit_transaction(OP).expect("commit_transaction: markers to every partition's broker");

    c.step("transaction 2: abort over every partition");
    producer.begin_transaction().expect("begin 2");
    let aborted = send_all(&producer, "abort");
    producer.flush(OP).expect("flush the aborted records");
    producer.abort_transaction(OP).expect("abort_transaction: markers to every partition's broker");

    c.step("every partition's last stable offset reaches its high watermark");
    let ends = wait_until("LSO == high watermark everywhere", OP, POLL, || {
        let ends = end_offsets(&c, &leaders)?;
        match ends.iter().find(|(_, (hw, lso))| hw != lso) {
            Some((p, (hw, lso))) => Err(format!("partition {p}: high watermark {hw}, last stable offset {lso}")),
            None => Ok(ends),
        }
    });
    for (p, (hw, _)) in &ends {
        // Both transactions' records and markers.
        assert_eq!(*hw, 2 * PER_PARTITION as i64 + 2, "partition {p}'s log end");
    }

    c.step("a read_committed consumer sees exactly the committed records");
    let consumer: BaseConsumer = consumer_config(&all).set("isolation.level", "read_committed").set("enable.partition.eof", "true").create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning).expect("assign");
    }
    consumer.assign(&tpl).expect("assign");
    let mut seen = BTreeSet::new();
    let mut eof = BTreeSet::new();
    let start = Instant::now();
    while eof.len() < PARTITIONS as usize {
        assert!(start.elapsed() < OP, "consuming: reached the end of only {eof:?}; seen {} records", seen.len());
        match consumer.poll(POLL) {
            Some(Ok(m)) => {
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                assert!(seen.insert(v.clone()), "record {v} delivered twice");
                eof.remove(&m.partition());
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    assert!(seen.is_disjoint(&aborted), "aborted records delivered: {:?}", seen.intersection(&aborted).collect::<Vec<_>>());
    assert_eq!(seen, committed, "the committed records, all and only");

    c.step("WriteTxnMarkers answers per partition: led here, led elsewhere, unknown");
    let (&here, &leader) = leaders.iter().next().expect("a partition");
    let elsewhere = *leaders.iter().find(|(_, &l)| l != leader).expect("a partition led elsewhere").0;
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(999_999))
        .with_producer_epoch(0)
        .with_transaction_result(false)
        .with_coordinator_epoch(0)
        .with_topics(vec![
            WritableTxnMarkerTopic::default().with_name(TopicName(sb(TOPIC))).with_partition_indexes(vec![here, elsewhere]),
            WritableTxnMarkerTopic::default().with_name(TopicName(sb("no-such-topic"))).with_partition_indexes(vec![0]),
        ]);
    let resp = raw_call(&c.bootstrap(leader), 1, &WriteTxnMarkersRequest::default().with_markers(vec![marker]), RAW_TIMEOUT).expect("WriteTxnMarkers");
    let codes: Vec<(String, i32, i16)> = resp
        .markers
        .iter()
        .flat_map(|m| m.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))))
        .collect();
    assert_eq!(resp.markers.first().map(|m| m.producer_id.0), Some(999_999));
    assert_eq!(codes, vec![(TOPIC.to_string(), here, NONE), (TOPIC.to_string(), elsewhere, NOT_LEADER_OR_FOLLOWER), ("no-such-topic".to_string(), 0, 3)]);
    c.step("done");
}
