//! DeleteTopics and CreatePartitions through librdkafka's AdminClient against
//! the real binary: data directories go away, a re-created topic starts empty,
//! partitions only grow, and `delete.topic.enable=false` is honoured.

mod common;

use std::time::Duration;

use rdkafka::admin::NewPartitions;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

use common::*;

const WAIT: Duration = Duration::from_secs(60);

async fn produce_one(bootstrap: &str, topic: &str, partition: i32) -> i64 {
    let p: FutureProducer = producer_config(bootstrap).create().expect("producer");
    let f = p.send_result(FutureRecord::to(topic).partition(partition).key("k").payload("v")).expect("enqueue");
    tokio::time::timeout(WAIT, f).await.expect("in time").expect("not canceled").expect("delivered").offset
}

fn partition_count(bootstrap: &str, topic: &str) -> Option<usize> {
    let c: BaseConsumer = consumer_config(bootstrap).create().expect("consumer");
    let md = c.fetch_metadata(None, WAIT).expect("metadata");
    md.topics().iter().find(|t| t.name() == topic).map(|t| t.partitions().len())
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_topic_removes_data_and_recreate_starts_empty() {
    let mut b = Broker::start(&[]);
    let topic = topic_name("del");
    create_topic(&b.bootstrap(), &topic, 2).await;
    assert_eq!(produce_one(&b.bootstrap(), &topic, 1).await, 0);
    assert_eq!(produce_one(&b.bootstrap(), &topic, 1).await, 1);
    let dir = b.log_dir().join(format!("{topic}-1"));
    assert!(dir.exists());
    let admin = admin_client(&b.bootstrap());
    let res = admin.delete_topics(&[&topic], &admin_opts()).await.expect("DeleteTopics");
    assert_eq!(res, vec![Ok(topic.clone())]);
    assert!(!dir.exists(), "the partition directory is removed");
    assert_eq!(partition_count(&b.bootstrap(), &topic), None, "metadata no longer lists it");
    let again = admin.delete_topics(&[&topic], &admin_opts()).await.expect("DeleteTopics");
    assert_eq!(again, vec![Err((topic.clone(), RDKafkaErrorCode::UnknownTopicOrPartition))]);
    // The same name again is a new, empty topic.
    create_topic(&b.bootstrap(), &topic, 2).await;
    assert_eq!(produce_one(&b.bootstrap(), &topic, 1).await, 0);
    // The deletion survives a restart.
    b.stop();
    b.restart();
    assert_eq!(partition_count(&b.bootstrap(), &topic), Some(2));
    assert_eq!(produce_one(&b.bootstrap(), &topic, 1).await, 1);
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn create_partitions_only_grows() {
    let mut b = Broker::start(&[]);
    let topic = topic_name("grow");
    create_topic(&b.bootstrap(), &topic, 2).await;
    let admin = admin_client(&b.bootstrap());
    let res = admin.create_partitions(&[NewPartitions::new(&topic, 5)], &admin_opts()).await.expect("CreatePartitions");
    assert_eq!(res, vec![Ok(topic.clone())]);
    assert_eq!(partition_count(&b.bootstrap(), &topic), Some(5));
    assert_eq!(produce_one(&b.bootstrap(), &topic, 4).await, 0);
    let shrink = admin.create_partitions(&[NewPartitions::new(&topic, 3)], &admin_opts()).await.expect("CreatePartitions");
    assert_eq!(shrink, vec![Err((topic.clone(), RDKafkaErrorCode::InvalidPartitions))]);
    let missing = admin.create_partitions(&[NewPartitions::new("no-such-topic", 3)], &admin_opts()).await.expect("CreatePartitions");
    assert_eq!(missing, vec![Err(("no-such-topic".to_string(), RDKafkaErrorCode::UnknownTopicOrPartition))]);
    // A manual assignment: one replica list per new partition, on brokers that exist (broker 0 here).
    let unknown = NewPartitions::new(&topic, 6).assign(&[&[7]]);
    let res = admin.create_partitions(&[unknown], &admin_opts()).await.expect("CreatePartitions");
    assert_eq!(res, vec![Err((topic.clone(), RDKafkaErrorCode::InvalidReplicaAssignment))]);
    let two_replicas = NewPartitions::new(&topic, 6).assign(&[&[0, 0]]);
    let res = admin.create_partitions(&[two_replicas], &admin_opts()).await.expect("CreatePartitions");
    assert_eq!(res, vec![Err((topic.clone(), RDKafkaErrorCode::InvalidReplicaAssignment))]);
    let res = admin.create_partitions(&[NewPartitions::new(&topic, 6).assign(&[&[0]])], &admin_opts()).await.expect("CreatePartitions");
    assert_eq!(res, vec![Ok(topic.clone())]);
    assert_eq!(partition_count(&b.bootstrap(), &topic), Some(6));
    // CreateTopics with a manual assignment: honoured when it names brokers that exist.
    let manual = topic_name("manual");
    let t = rdkafka::admin::NewTopic::new(&manual, 2, rdkafka::admin::TopicReplication::Variable(&[&[0], &[0]]));
    assert_eq!(admin.create_topics(&[t], &admin_opts()).await.expect("CreateTopics"), vec![Ok(manual.clone())]);
    assert_eq!(partition_count(&b.bootstrap(), &manual), Some(2));
    let bad = topic_name("manual-bad");
    let t = rdkafka::admin::NewTopic::new(&bad, 1, rdkafka::admin::TopicReplication::Variable(&[&[7]]));
    assert_eq!(admin.create_topics(&[t], &admin_opts()).await.expect("CreateTopics"), vec![Err((bad, RDKafkaErrorCode::InvalidReplicaAssignment))]);
    b.stop();
    b.restart();
    assert_eq!(partition_count(&b.bootstrap(), &topic), Some(6));
    assert_eq!(produce_one(&b.bootstrap(), &topic, 4).await, 1);
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_disabled_by_config() {
    let mut b = Broker::start(&[("delete.topic.enable", "false")]);
    let topic = topic_name("keep");
    create_topic(&b.bootstrap(), &topic, 1).await;
    let admin = admin_client(&b.bootstrap());
    let res = admin.delete_topics(&[&topic], &admin_opts()).await.expect("DeleteTopics");
    assert_eq!(res, vec![Err((topic.clone(), RDKafkaErrorCode::TopicDeletionDisabled))]);
    assert_eq!(partition_count(&b.bootstrap(), &topic), Some(1));
    b.stop();
}
