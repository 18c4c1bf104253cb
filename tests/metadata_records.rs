//! Metadata as records (issue 15): topics, partitions and configs live in the
//! metadata log and survive restarts, including restarts that checkpoint the
//! log; the shard placement is local and follows `shard.cores`: a restart with
//! fewer or more shards serves every partition and every record.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::admin::{AlterConfig, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord};

async fn produce_to_every_partition(bs: &str, topic: &str, partitions: i32, per_partition: usize, tag: &str) {
    let producer: FutureProducer = producer_config(bs).create().unwrap();
    for p in 0..partitions {
        for i in 0..per_partition {
            let v = format!("{tag}-{p}-{i}");
            producer.send(FutureRecord::to(topic).key(&v).payload(&v).partition(p), Duration::from_secs(30)).await.map_err(|(e, _)| e).expect("acknowledged");
        }
    }
}

fn values(recs: &[Rec]) -> Vec<String> {
    let mut v: Vec<String> = recs.iter().map(|r| String::from_utf8(r.value.clone().unwrap_or_default()).unwrap()).collect();
    v.sort();
    v
}

fn expected(partitions: i32, per_partition: usize, tags: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = tags.iter().flat_map(|t| (0..partitions).flat_map(move |p| (0..per_partition).map(move |i| format!("{t}-{p}-{i}")))).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn restarts_with_fewer_and_more_shards_serve_every_partition_and_record() {
    let mut b = Broker::start(&[("shard.cores", "0,1")]);
    let bs = b.bootstrap();
    let topic = topic_name("placement");
    create_topic(&bs, &topic, 6).await;
    produce_to_every_partition(&bs, &topic, 6, 20, "two").await;

    // One shard: every partition of the former shard 1 moves to shard 0.
    b.set("shard.cores", "0");
    b.restart();
    let recs = consume_all(&bs, &topic, 6, 120, Duration::from_secs(60));
    assert_eq!(values(&recs), expected(6, 20, &["two"]), "every record after the restart with fewer shards");
    produce_to_every_partition(&bs, &topic, 6, 5, "one").await;

    // Back to two shards: half of the partitions move back; data written meanwhile stays.
    b.set("shard.cores", "0,1");
    b.restart();
    let recs = consume_all(&bs, &topic, 6, 150, Duration::from_secs(60));
    assert_eq!(
        values(&recs),
        expected(6, 20, &["two"]).into_iter().chain(expected(6, 5, &["one"])).collect::<std::collections::BTreeSet<_>>().into_iter().collect::<Vec<_>>()
    );
    assert!(b.output().contains("partitions placed on shards"), "the re-placement is logged:\n{}", b.output());
    // Offsets continue where they were on every partition.
    produce_to_every_partition(&bs, &topic, 6, 1, "again").await;
    let recs = consume_all(&bs, &topic, 6, 156, Duration::from_secs(60));
    for (p, rs) in by_partition(&recs) {
        let offsets: Vec<i64> = rs.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (0..26).collect::<Vec<i64>>(), "partition {p}: contiguous offsets across the moves");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_configs_and_partitions_survive_restarts_through_checkpoints() {
    // A tiny checkpoint interval: nearly every change writes a checkpoint and drops
    // the records before it, so the restart reads checkpoint + tail.
    let mut b = Broker::start(&[("metadata.log.max.record.bytes.between.snapshots", "300")]);
    let bs = b.bootstrap();
    let admin = admin_client(&bs);
    let names: Vec<String> = (0..8).map(|i| topic_name(&format!("meta{i}"))).collect();
    let news: Vec<NewTopic> = names.iter().map(|n| NewTopic::new(n, 2, TopicReplication::Fixed(1))).collect();
    for r in admin.create_topics(&news, &admin_opts()).await.unwrap() {
        r.unwrap();
    }
    admin.create_partitions(&[NewPartitions::new(&names[0], 5)], &admin_opts()).await.unwrap()[0].as_ref().unwrap();
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&names[1])).set("retention.ms", "123456");
    admin.alter_configs(&[alter], &admin_opts()).await.unwrap()[0].as_ref().unwrap();
    admin.delete_topics(&[&names[2]], &admin_opts()).await.unwrap()[0].as_ref().unwrap();

    let meta_dir = b.log_dir().join("__cluster_metadata-0");
    let checkpoints = std::fs::read_dir(&meta_dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "checkpoint")).count();
    assert!(checkpoints >= 1, "a checkpoint was written");

    for _ in 0..2 {
        b.restart();
        let md = metadata_raw(&mut RawConn::connect(&bs), 12, None, false);
        let count = |n: &str| md.topics.iter().find(|t| t.name.as_ref().is_some_and(|x| x.0.as_str() == n)).map(|t| t.partitions.len());
        assert_eq!(count(&names[0]), Some(5));
        assert_eq!(count(&names[1]), Some(2));
        assert_eq!(count(&names[2]), None, "a deleted topic stays deleted");
        for n in &names[3..] {
            assert_eq!(count(n), Some(2), "{n}");
        }
        let described = admin.describe_configs(&[ResourceSpecifier::Topic(&names[1])], &admin_opts()).await.unwrap();
        let cfg = described[0].as_ref().unwrap();
        assert_eq!(cfg.get("retention.ms").and_then(|e| e.value.as_deref()), Some("123456"));
    }
    // New topics after the restarts get fresh ids and work.
    let extra = topic_name("meta-after");
    create_topic(&bs, &extra, 1).await;
    produce_to_every_partition(&bs, &extra, 1, 3, "x").await;
    assert_eq!(consume_all(&bs, &extra, 1, 3, Duration::from_secs(30)).len(), 3);
}
