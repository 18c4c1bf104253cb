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
    let p: ThreadedProducer<DefaultProducerContext> = common::producer_config(bootstrap).set("transactional.id", id).set("transaction.timeout.ms", "60000").create().expect("producer");
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
    let mut b = common::Broker::start(&[("transaction.state.log.num.partitions", "4"), ("offsets.topic.num.partitions", "4"), ("group.initial.rebalance.delay.ms", "0")]);
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
