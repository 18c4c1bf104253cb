//! What running Kafka Connect against the broker found (tests/compat/run.sh,
//! connect-*), reproduced with our own clients.
//!
//! A source connector may create its topic itself (`topic.creation.default.*`
//! in its config, KIP-158), passing any topic config through CreateTopics; and
//! a worker passes `config.storage.*` / `offset.storage.*` / `status.storage.*`
//! topic configs to its compacted internal topics (KIP-605). The broker refused
//! `min.compaction.lag.ms` (and `max.compaction.lag.ms`) as unknown topic
//! configs, so such a connector's task failed ("Unable to create topic(s)")
//! where Apache Kafka accepts them. Both are now implemented by the cleaner, as
//! Kafka's `LogCleanerManager` does: the cleaner stops at the first dirty
//! segment holding a record younger than `min.compaction.lag.ms`, and cleans a
//! log whose dirty section starts with a batch older than
//! `max.compaction.lag.ms` whatever its dirty ratio. The tests set record
//! timestamps explicitly (one hour old, or now), so what is "old" does not
//! depend on how fast the machine runs them.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::admin::{AlterConfig, ConfigSource, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord};

use common::*;

const WAIT: Duration = Duration::from_secs(60);
const HOUR_MS: i64 = 3_600_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_millis() as i64
}

async fn create(bootstrap: &str, name: &str, configs: &[(&str, &str)]) -> Result<(), String> {
    let admin = admin_client(bootstrap);
    let mut t = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = admin.create_topics(&[t], &admin_opts()).await.expect("CreateTopics answered");
    res.into_iter().next().expect("one result").map(|_| ()).map_err(|(_, e)| format!("{e:?}"))
}

/// (value, source) of each described config of `topic`.
async fn describe(bootstrap: &str, topic: &str) -> BTreeMap<String, (Option<String>, ConfigSource)> {
    let admin = admin_client(bootstrap);
    let res = admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &admin_opts()).await.expect("DescribeConfigs");
    let r = res.into_iter().next().expect("one resource").expect("no error");
    r.entries.into_iter().map(|e| (e.name, (e.value, e.source))).collect()
}

/// Sends `(key, timestamp)` records one at a time, each with a 600-byte value:
/// with `segment.bytes=1024` every record gets a segment of its own, so the
/// cleaner's segment-wise decisions apply to single records.
async fn send(p: &FutureProducer, topic: &str, records: &[(String, i64)]) {
    let value = vec![b'v'; 600];
    for (key, ts) in records {
        let rec = FutureRecord::to(topic).partition(0).key(key).payload(&value).timestamp(*ts);
        tokio::time::timeout(WAIT, p.send(rec, WAIT)).await.expect("in time").expect("delivered");
    }
}

/// How many records each key has, reading the whole partition (expecting at most `expect` records).
fn key_counts(bootstrap: &str, topic: &str, expect: usize) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for r in consume_all(bootstrap, topic, 1, expect, Duration::from_secs(3)) {
        *n.entry(String::from_utf8(r.key.expect("keyed")).expect("utf-8 key")).or_insert(0) += 1;
    }
    n
}

fn cleaner_checkpoint(dir: &Path) -> Option<i64> {
    std::fs::read_to_string(dir.join("cleaner-offset-checkpoint")).ok()?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_lag_configs_are_accepted_described_and_checked() {
    let b = Broker::start(&[]);
    let bs = b.bootstrap();

    // What a Connect source with topic.creation.default.* sends (KIP-158).
    let topic = topic_name("connect-created");
    let configs = [("cleanup.policy", "compact"), ("compression.type", "lz4"), ("min.compaction.lag.ms", "60000"), ("max.compaction.lag.ms", "86400000")];
    create(&bs, &topic, &configs).await.expect("CreateTopics with compaction lag configs");
    let d = describe(&bs, &topic).await;
    for (k, v) in configs {
        let (value, source) = d.get(k).unwrap_or_else(|| panic!("{k} not described"));
        assert_eq!(value.as_deref(), Some(v), "{k}");
        assert!(matches!(source, ConfigSource::DynamicTopic), "{k} is a topic override: {source:?}");
    }

    // Defaults come from the broker's log.cleaner.* keys, as in Kafka.
    let other = topic_name("connect-defaults");
    create(&bs, &other, &[("cleanup.policy", "compact")]).await.expect("plain compacted topic");
    let d = describe(&bs, &other).await;
    assert_eq!(d["min.compaction.lag.ms"].0.as_deref(), Some("0"));
    assert_eq!(d["max.compaction.lag.ms"].0.as_deref(), Some(i64::MAX.to_string().as_str()));
    assert!(matches!(d["min.compaction.lag.ms"].1, ConfigSource::Default));

    // min above max, or a max of 0, is INVALID_CONFIG (as Kafka's LogConfig.validate).
    for bad in [&[("min.compaction.lag.ms", "60000"), ("max.compaction.lag.ms", "1000")][..], &[("max.compaction.lag.ms", "0")][..]] {
        let err = create(&bs, &topic_name("connect-bad"), bad).await.expect_err("refused");
        assert!(err.contains("InvalidConfig"), "{bad:?}: {err}");
    }

    // AlterConfigs sets it on a topic that exists.
    let admin = admin_client(&bs);
    let res = admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(&other)).set("cleanup.policy", "compact").set("min.compaction.lag.ms", "5000")],
            &admin_opts(),
        )
        .await
        .expect("AlterConfigs");
    assert!(res[0].is_ok(), "{res:?}");
    assert_eq!(describe(&bs, &other).await["min.compaction.lag.ms"].0.as_deref(), Some("5000"));
}

/// Records an hour old are compacted; the same updates stamped now are kept,
/// all of them, while they are younger than `min.compaction.lag.ms` (a minute).
#[tokio::test(flavor = "multi_thread")]
async fn min_compaction_lag_leaves_young_records_uncompacted() {
    let b = Broker::start(&[("log.cleaner.backoff.ms", "100")]);
    let bs = b.bootstrap();
    let topic = topic_name("min-lag");
    let configs = [("cleanup.policy", "compact"), ("segment.bytes", "1024"), ("min.cleanable.dirty.ratio", "0.01"), ("min.compaction.lag.ms", "60000")];
    create(&bs, &topic, &configs).await.expect("create");
    let p: FutureProducer = producer_config(&bs).set("linger.ms", "0").create().expect("producer");

    const KEYS: usize = 5;
    const UPDATES: usize = 6;
    let batch = |prefix: &str, ts: i64| -> Vec<(String, i64)> { (0..UPDATES).flat_map(|_| 0..KEYS).map(|k| (format!("{prefix}-{k}"), ts)).collect() };
    let old = now_ms() - HOUR_MS;
    send(&p, &topic, &batch("old", old)).await;
    send(&p, &topic, &batch("young", now_ms())).await;
    send(&p, &topic, &[("sentinel".into(), now_ms())]).await; // closes the last young segment
    let total = 2 * KEYS * UPDATES + 1;

    // The old updates compact to one per key ...
    let end = Instant::now() + WAIT;
    let counts = loop {
        let counts = key_counts(&bs, &topic, total);
        if (0..KEYS).all(|k| counts.get(&format!("old-{k}")) == Some(&1)) {
            break counts;
        }
        assert!(Instant::now() < end, "old records not compacted in time: {counts:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // ... and the young ones, after the same cleaner passes, are all still there.
    for k in 0..KEYS {
        assert_eq!(counts.get(&format!("young-{k}")), Some(&UPDATES), "young-{k} was compacted within min.compaction.lag.ms: {counts:?}");
    }
}

/// A log whose dirty part is far below `min.cleanable.dirty.ratio` is cleaned
/// anyway once that part starts with a record older than `max.compaction.lag.ms`.
#[tokio::test(flavor = "multi_thread")]
async fn max_compaction_lag_cleans_a_log_below_the_dirty_ratio() {
    let b = Broker::start(&[("log.cleaner.backoff.ms", "100")]);
    let bs = b.bootstrap();
    let topic = topic_name("max-lag");
    let configs = |ratio| [("cleanup.policy", "compact"), ("segment.bytes", "1024"), ("min.cleanable.dirty.ratio", ratio), ("max.compaction.lag.ms", "60000")];
    create(&bs, &topic, &configs("0.01")).await.expect("create");
    let dir = b.log_dir().join(format!("{topic}-0"));
    let p: FutureProducer = producer_config(&bs).set("linger.ms", "0").create().expect("producer");

    // 40 distinct keys, stamped now, cleaned (kept) by rounds at ratio 0.01
    // until the checkpoint is past them; then the ratio goes up to 0.9.
    const BASE: usize = 40;
    let base: Vec<(String, i64)> = (0..BASE).map(|i| (format!("base-{i}"), now_ms())).collect();
    send(&p, &topic, &base).await;
    let end = Instant::now() + WAIT;
    while cleaner_checkpoint(&dir).unwrap_or(0) < BASE as i64 - 1 {
        assert!(Instant::now() < end, "base records not cleaned: checkpoint {:?}", cleaner_checkpoint(&dir));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let admin = admin_client(&bs);
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(&topic));
    for (k, v) in configs("0.9") {
        alter = alter.set(k, v);
    }
    let res = admin.alter_configs(&[alter], &admin_opts()).await.expect("AlterConfigs");
    assert!(res[0].is_ok(), "{res:?}");

    // Two updates of one key, an hour old, and a sentinel that closes their
    // segments: 3 dirty segments of 42, a ratio near 0.07.
    let old = now_ms() - HOUR_MS;
    send(&p, &topic, &[("update".into(), old), ("update".into(), old + 1), ("sentinel".into(), now_ms())]).await;
    let total = BASE + 3;
    let end = Instant::now() + WAIT;
    loop {
        let counts = key_counts(&bs, &topic, total);
        if counts.get("update") == Some(&1) {
            assert_eq!(counts.len(), BASE + 2, "every other key kept: {counts:?}");
            break;
        }
        assert!(Instant::now() < end, "the overdue update was not compacted: {counts:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The cleaner never touches the active segment, so a compacted log rolls it
/// once it is `max.compaction.lag.ms` old (Kafka's `LogConfig.maxSegmentMs`),
/// here long before `segment.ms` (the 7-day default).
#[tokio::test(flavor = "multi_thread")]
async fn max_compaction_lag_rolls_the_active_segment_of_a_compacted_log() {
    let b = Broker::start(&[]);
    let bs = b.bootstrap();
    let dir_of = |t: &str| b.log_dir().join(format!("{t}-0"));
    let segments = |dir: &Path| {
        std::fs::read_dir(dir).expect("partition dir").filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".log")).count()
    };
    let p: FutureProducer = producer_config(&bs).set("linger.ms", "0").create().expect("producer");
    let compacted = topic_name("max-lag-roll");
    let deleted = topic_name("max-lag-no-roll");
    // The delete-policy log first: its segment is the older one when the compacted log rolls.
    create(&bs, &deleted, &[("cleanup.policy", "delete"), ("max.compaction.lag.ms", "1000")]).await.expect("create delete-policy");
    create(&bs, &compacted, &[("cleanup.policy", "compact"), ("max.compaction.lag.ms", "1000")]).await.expect("create compacted");
    for t in [&deleted, &compacted] {
        send(&p, t, &[("k".into(), now_ms())]).await;
    }
    // Appends roll the compacted log once its active segment is 1 s old.
    let end = Instant::now() + WAIT;
    while segments(&dir_of(&compacted)) < 2 {
        assert!(Instant::now() < end, "the compacted log did not roll");
        tokio::time::sleep(Duration::from_millis(100)).await;
        send(&p, &compacted, &[("k".into(), now_ms())]).await;
    }
    send(&p, &deleted, &[("k".into(), now_ms())]).await;
    assert_eq!(segments(&dir_of(&compacted)), 2, "the compacted log rolled at max.compaction.lag.ms");
    assert_eq!(segments(&dir_of(&deleted)), 1, "a delete-policy log ignores max.compaction.lag.ms");
}
