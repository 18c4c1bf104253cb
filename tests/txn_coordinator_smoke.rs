//! Smoke test of the transaction coordinator through the real binary and
//! librdkafka's transactional producer: commit, abort, offsets sent to a
//! transaction, fencing by a second instance, and state surviving kill -9.
//! (The full transactional end-to-end suite lives elsewhere.)

mod common;

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(30);

fn txn_producer(bootstrap: &str, id: &str) -> ThreadedProducer<DefaultProducerContext> {
    let p: ThreadedProducer<DefaultProducerContext> =
        common::producer_config(bootstrap).set("transactional.id", id).set("transaction.timeout.ms", "60000").create().expect("producer");
    p.init_transactions(T).expect("init_transactions");
    p
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, part: i32, v: &str) {
    p.send(BaseRecord::<(), str>::to(topic).partition(part).payload(v)).map_err(|(e, _)| e).expect("send");
}

fn read_committed(bootstrap: &str, topic: &str, parts: i32, want: usize) -> Vec<String> {
    let c: BaseConsumer = common::consumer_config(bootstrap).set("isolation.level", "read_committed").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..parts {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    // Up to 15 s for the expected records, then 1 s more to catch any extra.
    let mut deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut extended = false;
    while std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
        if out.len() >= want && !extended {
            extended = true;
            deadline = std::time::Instant::now() + Duration::from_secs(1);
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_abort_offsets_fence_and_survive_kill9() {
    let mut b = common::Broker::start(&[
        ("transaction.state.log.num.partitions", "4"),
        ("offsets.topic.num.partitions", "4"),
        ("group.initial.rebalance.delay.ms", "0"),
    ]);
    let bs = b.bootstrap();
    let topic = common::topic_name("txn-smoke");
    common::create_topic(&bs, &topic, 3).await;
    let bs2 = bs.clone();
    let topic2 = topic.clone();
    tokio::task::spawn_blocking(move || {
        let (bs, topic) = (bs2, topic2);
        let p = txn_producer(&bs, "smoke-1");
        p.begin_transaction().unwrap();
        for i in 0..3 {
            send(&p, &topic, i, &format!("c{i}"));
        }
        p.commit_transaction(T).expect("commit");
        p.begin_transaction().unwrap();
        send(&p, &topic, 0, "a0");
        send(&p, &topic, 1, "a1");
        p.flush(T).unwrap();
        p.abort_transaction(T).expect("abort");
        // Offsets inside a transaction.
        let group = "smoke-group";
        let cons: BaseConsumer = common::consumer_config(&bs).set("group.id", group).create().unwrap();
        p.begin_transaction().unwrap();
        send(&p, &topic, 2, "c3");
        let mut offs = TopicPartitionList::new();
        offs.add_partition_offset(&topic, 0, Offset::Offset(42)).unwrap();
        p.send_offsets_to_transaction(&offs, &cons.group_metadata().unwrap(), T).expect("send_offsets_to_transaction");
        p.commit_transaction(T).expect("commit with offsets");
        let mut q = TopicPartitionList::new();
        q.add_partition(&topic, 0);
        let committed = cons.committed_offsets(q, T).unwrap();
        assert_eq!(committed.elements()[0].offset(), Offset::Offset(42));
        assert_eq!(read_committed(&bs, &topic, 3, 4), vec!["c0", "c1", "c2", "c3"]);
        // A second instance fences the first.
        let p2 = txn_producer(&bs, "smoke-1");
        p.begin_transaction().unwrap();
        send(&p, &topic, 0, "zombie");
        let r = p.commit_transaction(T);
        assert!(r.is_err(), "the fenced producer must not commit: {r:?}");
        p2.begin_transaction().unwrap();
        send(&p2, &topic, 1, "c4");
        // Left open across kill -9.
        p2.flush(T).unwrap();
    })
    .await
    .unwrap();
    b.kill9();
    b.restart();
    let bs = b.bootstrap();
    let topic2 = topic.clone();
    tokio::task::spawn_blocking(move || {
        // The new instance aborts the transaction left open by the killed one.
        let p3 = txn_producer(&bs, "smoke-1");
        p3.begin_transaction().unwrap();
        send(&p3, &topic2, 1, "c5");
        p3.commit_transaction(T).expect("commit after restart");
        assert_eq!(read_committed(&bs, &topic2, 3, 5), vec!["c0", "c1", "c2", "c3", "c5"]);
    })
    .await
    .unwrap();
}

/// The coordinator's error answers and the admin APIs, in raw frames.
#[test]
fn coordinator_errors_timeout_abort_and_admin_apis() {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::ResponseError as E;

    let b = common::Broker::start(&[("transaction.state.log.num.partitions", "4"), ("transaction.abort.timed.out.transaction.cleanup.interval.ms", "200")]);
    let bs = b.bootstrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(common::create_topic(&bs, "rawtxn", 2));
    let mut c = common::RawConn::connect(&bs);
    let tid = |s: &'static str| TransactionalId(StrBytes::from_static_str(s));
    let init = |c: &mut common::RawConn, timeout: i32| {
        c.roundtrip(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(tid("raw-1")))
                .with_transaction_timeout_ms(timeout)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
    };
    assert_eq!(init(&mut c, 0).error_code, E::InvalidTransactionTimeout.code());
    assert_eq!(init(&mut c, 900_001).error_code, E::InvalidTransactionTimeout.code());
    let r = init(&mut c, 1000);
    assert_eq!((r.error_code, r.producer_epoch), (0, 0));
    let pid = r.producer_id;
    let idem = c.roundtrip(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(1000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(idem.error_code, 0);
    assert_ne!(idem.producer_id, pid);
    let add = |c: &mut common::RawConn, v: i16, pid: ProducerId, epoch: i16, topics: Vec<(&'static str, i32)>| {
        let r = c.roundtrip(
            v,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(tid("raw-1"))
                .with_v3_and_below_producer_id(pid)
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(
                    topics
                        .into_iter()
                        .map(|(t, p)| AddPartitionsToTxnTopic::default().with_name(TopicName(StrBytes::from_static_str(t))).with_partitions(vec![p]))
                        .collect(),
                ),
        );
        r.results_by_topic_v3_and_below.iter().map(|t| t.results_by_partition[0].partition_error_code).collect::<Vec<i16>>()
    };
    assert_eq!(add(&mut c, 3, pid, 0, vec![("nope", 0), ("rawtxn", 0)]), vec![E::UnknownTopicOrPartition.code(), E::OperationNotAttempted.code()]);
    assert_eq!(add(&mut c, 3, pid, 5, vec![("rawtxn", 0)]), vec![E::ProducerFenced.code()]);
    assert_eq!(add(&mut c, 1, pid, 5, vec![("rawtxn", 0)]), vec![E::InvalidProducerEpoch.code()]);
    assert_eq!(add(&mut c, 3, ProducerId(pid.0 + 12345), 0, vec![("rawtxn", 0)]), vec![E::InvalidProducerIdMapping.code()]);
    assert_eq!(add(&mut c, 3, pid, 0, vec![("rawtxn", 0), ("rawtxn", 1)]), vec![0, 0]);
    let describe = |c: &mut common::RawConn, id: &'static str| {
        c.roundtrip(0, &DescribeTransactionsRequest::default().with_transactional_ids(vec![tid(id)])).transaction_states.remove(0)
    };
    let d = describe(&mut c, "raw-1");
    assert_eq!((d.error_code, d.transaction_state.as_str(), d.producer_id, d.transaction_timeout_ms), (0, "Ongoing", pid, 1000));
    assert_eq!(d.topics[0].partitions, vec![0, 1]);
    assert_eq!(describe(&mut c, "never-seen").error_code, E::TransactionalIdNotFound.code());
    let l = c.roundtrip(
        1,
        &ListTransactionsRequest::default()
            .with_state_filters(vec![StrBytes::from_static_str("Ongoing"), StrBytes::from_static_str("Bogus")])
            .with_duration_filter(-1),
    );
    assert_eq!(l.unknown_state_filters, vec![StrBytes::from_static_str("Bogus")]);
    assert!(l.transaction_states.iter().any(|s| s.transactional_id == tid("raw-1")));
    // The ticker aborts the transaction after its 1 s timeout and bumps the epoch.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let d = loop {
        let d = describe(&mut c, "raw-1");
        if d.transaction_state.as_str() == "CompleteAbort" || std::time::Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!((d.transaction_state.as_str(), d.producer_epoch), ("CompleteAbort", 1));
    let end = c.roundtrip(3, &EndTxnRequest::default().with_transactional_id(tid("raw-1")).with_producer_id(pid).with_producer_epoch(0).with_committed(true));
    assert_eq!(end.error_code, E::ProducerFenced.code());
    let end = c.roundtrip(3, &EndTxnRequest::default().with_transactional_id(tid("raw-1")).with_producer_id(pid).with_producer_epoch(1).with_committed(true));
    assert_eq!(end.error_code, E::InvalidTxnState.code());
    let f = c.roundtrip(4, &FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![StrBytes::from_static_str("raw-1")]));
    assert_eq!(f.coordinators[0].error_code, 0);
}
