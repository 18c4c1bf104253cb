//! Log compaction through the real binary and librdkafka: 100k updates over
//! 1k keys compact to the latest value per key; tombstones stay while younger
//! than delete.retention.ms and disappear after; the result survives a restart.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::{FutureProducer, FutureRecord};

use common::*;

const WAIT: Duration = Duration::from_secs(120);
const KEYS: usize = 1000;
const UPDATES: usize = 100_000;
const DELETED: usize = 100;

/// IncrementalAlterConfigs SET on one topic (rdkafka's AlterConfigs would replace all overrides).
fn set_config(bootstrap: &str, topic: &str, key: &str, value: &str) {
    let mut conn = RawConn::connect(bootstrap);
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_string(topic.to_string()))
        .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
            .with_name(StrBytes::from_string(key.to_string()))
            .with_config_operation(0)
            .with_value(Some(StrBytes::from_string(value.to_string())))])]);
    assert_eq!(conn.roundtrip(1, &req).responses[0].error_code, 0, "set {key}={value}");
}

/// Latest value per key as read from the beginning (None = tombstone), and the record count.
fn read_back(bootstrap: &str, topic: &str, expect_at_least: usize) -> (BTreeMap<String, Option<String>>, usize) {
    let recs = consume_all(bootstrap, topic, 1, usize::MAX, Duration::from_secs(4));
    assert!(recs.len() >= expect_at_least.min(1), "read {} records", recs.len());
    let mut latest = BTreeMap::new();
    for r in &recs {
        let k = String::from_utf8(r.key.clone().expect("every record has a key")).unwrap();
        latest.insert(k, r.value.as_ref().map(|v| String::from_utf8(v.clone()).unwrap()));
    }
    (latest, recs.len())
}

fn key_counts(bootstrap: &str, topic: &str) -> BTreeMap<String, usize> {
    let recs = consume_all(bootstrap, topic, 1, usize::MAX, Duration::from_secs(4));
    let mut n = BTreeMap::new();
    for r in recs {
        *n.entry(String::from_utf8(r.key.unwrap()).unwrap()).or_insert(0) += 1;
    }
    n
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_keeps_the_latest_value_per_key_and_expires_tombstones() {
    let mut b = Broker::start(&[("log.cleaner.backoff.ms", "200")]);
    let bs = b.bootstrap();
    let topic = topic_name("compacted");
    let admin = admin_client(&bs);
    let t = rdkafka::admin::NewTopic::new(&topic, 1, rdkafka::admin::TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "65536")
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("delete.retention.ms", "3600000");
    assert!(admin.create_topics(&[t], &admin_opts()).await.unwrap()[0].is_ok());

    let p: FutureProducer = producer_config(&bs).set("linger.ms", "20").set("batch.size", "65536").create().unwrap();
    let mut pending = Vec::with_capacity(UPDATES);
    for j in 0..UPDATES {
        let key = format!("key-{:04}", j % KEYS);
        let value = format!("update-{j}");
        loop {
            match p.send_result(FutureRecord::to(&topic).partition(0).key(&key).payload(&value)) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err((_, _)) => tokio::time::sleep(Duration::from_millis(5)).await, // queue full
            }
        }
    }
    for k in 0..DELETED {
        let key = format!("key-{k:04}");
        pending.push(p.send_result(FutureRecord::<String, String>::to(&topic).partition(0).key(&key)).expect("enqueue tombstone"));
    }
    for f in pending {
        tokio::time::timeout(WAIT, f).await.expect("in time").expect("not canceled").expect("delivered");
    }
    let dir = b.log_dir().join(format!("{topic}-0"));

    // Roll the active segment so every update and tombstone is in a closed one:
    // with segment.ms=1 (answered once every shard applied it) the sentinel's
    // append rolls, its segment being older than 1 ms.
    set_config(&bs, &topic, "segment.ms", "1");
    tokio::time::sleep(Duration::from_millis(2)).await; // past segment.ms
    let send = |v: &'static str| p.send(FutureRecord::to(&topic).partition(0).key("sentinel").payload(v), WAIT);
    send("1").await.expect("sentinel");

    // Compacted: each key once, with its last update; deleted keys as one tombstone each.
    let end = Instant::now() + WAIT;
    loop {
        let counts = key_counts(&bs, &topic);
        if counts.len() == KEYS + 1 && counts.iter().all(|(_, &n)| n == 1) {
            break;
        }
        assert!(Instant::now() < end, "not compacted in time: {} keys, {} records", counts.len(), counts.values().sum::<usize>());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (latest, n) = read_back(&bs, &topic, KEYS);
    assert_eq!(n, KEYS + 1);
    for k in 0..KEYS {
        let key = format!("key-{k:04}");
        let last_update = UPDATES - KEYS + k;
        let want = if k < DELETED { None } else { Some(format!("update-{last_update}")) };
        assert_eq!(latest.get(&key), Some(&want), "{key}");
    }
    // (The cleaner already runs while the updates arrive, so the bound is
    // against what was produced: every update is at least 20 bytes on disk.)
    let after = dir_bytes(&dir);
    let produced_min = (UPDATES * 20) as u64;
    assert!(after * 10 < produced_min, "compaction shrank the log to {after} bytes (produced >= {produced_min})");

    // Tombstones go once older than delete.retention.ms (and the log is dirty again).
    // (ratio 0: the few sentinel bytes below make the log dirty enough to clean again)
    // Each poll sends a sentinel, which rolls (segment.ms=1) and leaves the
    // previous one dirty in a closed segment, until the cleaner ran past the horizon.
    set_config(&bs, &topic, "delete.retention.ms", "500");
    set_config(&bs, &topic, "min.cleanable.dirty.ratio", "0");
    let end = Instant::now() + WAIT;
    loop {
        send("2").await.expect("sentinel 2");
        let counts = key_counts(&bs, &topic);
        let deleted_left = (0..DELETED).filter(|k| counts.contains_key(&format!("key-{k:04}"))).count();
        if deleted_left == 0 {
            assert_eq!(counts.keys().filter(|k| k.starts_with("key-")).count(), KEYS - DELETED);
            break;
        }
        assert!(Instant::now() < end, "{deleted_left} tombstones still there");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The compacted log survives a restart and still reads the same.
    b.stop();
    b.restart();
    let (latest2, _) = read_back(&b.bootstrap(), &topic, KEYS - DELETED);
    for k in DELETED..KEYS {
        let key = format!("key-{k:04}");
        assert_eq!(latest2.get(&key), Some(&Some(format!("update-{}", UPDATES - KEYS + k))), "{key} after restart");
    }
    assert!(b.output().contains("log cleaned"), "the cleaner reported its rounds");
    b.stop();
}
