//! `message.timestamp.type=LogAppendTime`: the broker stamps each batch on
//! append, and consumers see the broker's time, not the producer's.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Timestamp;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn log_append_time_topic_stamps_batches() {
    let mut b = Broker::start(&[]);
    let topic = topic_name("lat");
    let admin = admin_client(&b.bootstrap());
    let nt = NewTopic::new(&topic, 1, TopicReplication::Fixed(1)).set("message.timestamp.type", "LogAppendTime");
    let res = admin.create_topics(&[nt], &admin_opts()).await.expect("CreateTopics");
    assert_eq!(res, vec![Ok(topic.clone())]);
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let p: FutureProducer = producer_config(&b.bootstrap()).create().expect("producer");
    let old = 1_000_000; // producer timestamp far in the past
    let f = p.send_result(FutureRecord::to(&topic).partition(0).key("k").payload("v").timestamp(old)).expect("enqueue");
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("in time").expect("not canceled").expect("delivered");
    let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let recs = consume_all(&b.bootstrap(), &topic, 1, 1, Duration::from_secs(60));
    assert_eq!(recs.len(), 1);
    let ts = recs[0].timestamp.expect("timestamp");
    assert!(ts >= before - 1000 && ts <= after + 1000, "broker time {ts} not in [{before}, {after}]");
    // The timestamp type reaches the client too.
    let c: rdkafka::consumer::BaseConsumer = consumer_config(&b.bootstrap()).create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Beginning).unwrap();
    rdkafka::consumer::Consumer::assign(&c, &tpl).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = None;
    while seen.is_none() && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            seen = Some(rdkafka::Message::timestamp(&m));
        }
    }
    assert!(matches!(seen, Some(Timestamp::LogAppendTime(_))), "got {seen:?}");
    b.stop();
}
