//! Topic configs and the log lifecycle through real clients against the real
//! binary: DescribeConfigs / AlterConfigs / DeleteRecords through librdkafka's
//! AdminClient, IncrementalAlterConfigs, DescribeCluster, DescribeLogDirs and
//! OffsetForLeaderEpoch as raw kafka-protocol requests (rdkafka has no call for
//! them); retention by size and by time observed on disk; broker-side
//! re-compression, timestamp bounds, min.insync.replicas and keys on
//! compacted topics at produce.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::records::{Compression, Record};
use kafka_protocol::ResponseError;
use rdkafka::admin::{AlterConfig, ConfigSource, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use common::*;

const WAIT: Duration = Duration::from_secs(60);

async fn create_with(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin_client(bootstrap);
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = admin.create_topics(&[t], &admin_opts()).await.expect("CreateTopics");
    assert!(res[0].is_ok(), "create {name}: {res:?}");
}

async fn describe_topic(bootstrap: &str, topic: &str) -> Vec<(String, Option<String>, ConfigSource)> {
    let admin = admin_client(bootstrap);
    let res = admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &admin_opts()).await.expect("DescribeConfigs");
    let r = res.into_iter().next().expect("one resource").expect("no error");
    r.entries.into_iter().map(|e| (e.name, e.value, e.source)).collect()
}

/// (value, source as its Debug name, e.g. "DynamicTopic", "Default").
fn value_of(entries: &[(String, Option<String>, ConfigSource)], k: &str) -> (Option<String>, String) {
    let e = entries.iter().find(|e| e.0 == k).unwrap_or_else(|| panic!("{k} not described: {entries:?}"));
    (e.1.clone(), format!("{:?}", e.2))
}

/// Produces `n` records one by one (one batch each), `size` bytes of value, with timestamp `ts`.
async fn produce_n(bootstrap: &str, topic: &str, n: usize, size: usize, ts: Option<i64>) {
    let p: FutureProducer = producer_config(bootstrap).set("linger.ms", "0").create().expect("producer");
    let value = vec![b'v'; size];
    for i in 0..n {
        let key = format!("k{i}");
        let mut rec = FutureRecord::to(topic).partition(0).key(&key).payload(&value);
        if let Some(t) = ts {
            rec = rec.timestamp(t);
        }
        tokio::time::timeout(WAIT, p.send(rec, WAIT)).await.expect("in time").expect("delivered");
    }
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(".log")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn watermarks(bootstrap: &str, topic: &str) -> (i64, i64) {
    let c: BaseConsumer = consumer_config(bootstrap).create().expect("consumer");
    c.fetch_watermarks(topic, 0, WAIT).expect("watermarks")
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// The log start offset once it has not moved for 1 s (5 retention checks at
/// 200 ms), read every 100 ms.
fn settled_log_start(bs: &str, topic: &str) -> i64 {
    let end = Instant::now() + WAIT;
    let (mut last, mut since) = (watermarks(bs, topic).0, Instant::now());
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        let now = watermarks(bs, topic).0;
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= Duration::from_secs(1) {
            return now;
        }
    }
    panic!("the log start of {topic} kept moving for {WAIT:?}");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// `n` keyed (`key-{i}`) or unkeyed records of 500 bytes, timestamp `ts`,
/// sequences 0.. (no producer id).
fn records(n: usize, ts: i64, keyed: bool) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            sequence: i as i32,
            ..plain_record(i as i64, ts, keyed.then(|| Bytes::from(format!("key-{i}"))), Some(Bytes::from(vec![b'a'; 500])))
        })
        .collect()
}

/// One Produce v9 of `records` to partition 0; returns the partition's error code.
fn raw_produce(conn: &mut RawConn, topic: &str, acks: i16, records: Bytes) -> i16 {
    produce_raw(conn, 9, acks, topic, 0, records).error_code
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_and_alter_configs_apply_live_and_persist() {
    let mut b = Broker::start(&[("log.retention.hours", "48")]);
    let bs = b.bootstrap();
    let topic = topic_name("cfg");
    create_with(&bs, &topic, 1, &[("retention.ms", "1000000"), ("cleanup.policy", "delete")]).await;

    let d = describe_topic(&bs, &topic).await;
    assert_eq!(value_of(&d, "retention.ms"), (Some("1000000".into()), "DynamicTopic".to_string()));
    assert_eq!(value_of(&d, "segment.bytes"), (Some((1u64 << 30).to_string()), "Default".to_string()));
    assert_eq!(value_of(&d, "compression.type"), (Some("producer".into()), "Default".to_string()));
    assert!(d.len() >= 16, "every topic config is described: {d:?}");

    // The broker's own configs: a static value differs from the default.
    let admin = admin_client(&bs);
    let res = admin.describe_configs(&[ResourceSpecifier::Broker(0)], &admin_opts()).await.expect("DescribeConfigs broker");
    let broker = res.into_iter().next().unwrap().expect("broker resource");
    let ret = broker.get("log.retention.ms").expect("log.retention.ms");
    assert_eq!(ret.value.as_deref(), Some("172800000"));
    assert_eq!(format!("{:?}", ret.source), "StaticBroker");

    // AlterConfigs replaces the overrides: segment.bytes applies at once (segments roll).
    let res =
        admin.alter_configs(&[AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("segment.bytes", "1024")], &admin_opts()).await.expect("AlterConfigs");
    assert!(res[0].is_ok(), "{res:?}");
    let d = describe_topic(&bs, &topic).await;
    assert_eq!(value_of(&d, "segment.bytes").0.as_deref(), Some("1024"));
    assert_eq!(value_of(&d, "retention.ms"), (Some("172800000".into()), "StaticBroker".to_string()), "AlterConfigs dropped the other override");
    produce_n(&bs, &topic, 12, 300, None).await;
    let dir = b.log_dir().join(format!("{topic}-0"));
    assert!(segment_files(&dir).len() >= 4, "segment.bytes=1024 rolled segments: {:?}", segment_files(&dir));

    // Bad values and unknown keys are INVALID_CONFIG (the rdkafka crate drops
    // AlterConfigs' per-resource errors, so they are read from raw responses),
    // and change nothing.
    let mut conn = RawConn::connect(&bs);
    let mut raw_alter = |rtype: i8, name: &str, k: &str, v: &str, validate_only: bool| -> i16 {
        let req = AlterConfigsRequest::default().with_validate_only(validate_only).with_resources(vec![alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(rtype)
            .with_resource_name(sb(name))
            .with_configs(vec![alter_configs_request::AlterableConfig::default().with_name(sb(k)).with_value(Some(sb(v)))])]);
        conn.roundtrip(2, &req).responses[0].error_code
    };
    for (k, v) in [("segment.bytes", "ten"), ("cleanup.policy", "forever"), ("no.such.config", "1"), ("min.cleanable.dirty.ratio", "2")] {
        assert_eq!(raw_alter(2, &topic, k, v, false), ResponseError::InvalidConfig.code(), "{k}={v}");
    }
    assert_eq!(raw_alter(2, &topic, "segment.bytes", "2048", true), 0, "validate_only accepts a good value");
    assert_eq!(value_of(&describe_topic(&bs, &topic).await, "segment.bytes").0.as_deref(), Some("1024"), "and nothing changed");
    // Broker configs are static.
    assert_eq!(raw_alter(4, "0", "log.retention.ms", "1", false), ResponseError::InvalidRequest.code());
    // Unknown topic: UNKNOWN_TOPIC_OR_PARTITION; documentation and types with v4.
    let req = DescribeConfigsRequest::default().with_include_documentation(true).with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default().with_resource_type(2).with_resource_name(sb("no-such-topic")),
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(sb(&topic))
            .with_configuration_keys(Some(vec![sb("cleanup.policy")])),
    ]);
    let r = conn.roundtrip(4, &req);
    assert_eq!(r.results[0].error_code, ResponseError::UnknownTopicOrPartition.code());
    assert_eq!(r.results[1].configs.len(), 1, "configuration_keys filters");
    assert_eq!(r.results[1].configs[0].config_type, 7, "LIST");
    assert!(r.results[1].configs[0].documentation.is_some());

    b.stop();
    b.restart();
    assert_eq!(value_of(&describe_topic(&b.bootstrap(), &topic).await, "segment.bytes").0.as_deref(), Some("1024"), "overrides persist");
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_alter_configs_set_delete_append_subtract() {
    let mut b = Broker::start(&[]);
    let topic = topic_name("inc");
    create_topic(&b.bootstrap(), &topic, 1).await;
    let mut conn = RawConn::connect(&b.bootstrap());
    let mut alter = |ops: &[(&str, i8, Option<&str>)], validate_only: bool| -> (i16, Option<String>) {
        let configs = ops
            .iter()
            .map(|(k, op, v)| incremental_alter_configs_request::AlterableConfig::default().with_name(sb(k)).with_config_operation(*op).with_value(v.map(sb)))
            .collect();
        let req = IncrementalAlterConfigsRequest::default().with_validate_only(validate_only).with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default().with_resource_type(2).with_resource_name(sb(&topic)).with_configs(configs),
        ]);
        let r = conn.roundtrip(1, &req);
        (r.responses[0].error_code, r.responses[0].error_message.as_ref().map(|m| m.to_string()))
    };
    assert_eq!(alter(&[("retention.ms", 0, Some("5000")), ("cleanup.policy", 2, Some("compact"))], false).0, 0);
    let d = describe_topic(&b.bootstrap(), &topic).await;
    assert_eq!(value_of(&d, "retention.ms").0.as_deref(), Some("5000"));
    assert_eq!(value_of(&d, "cleanup.policy").0.as_deref(), Some("delete,compact"), "APPEND starts from the default");
    assert_eq!(alter(&[("cleanup.policy", 3, Some("delete"))], false).0, 0);
    assert_eq!(value_of(&describe_topic(&b.bootstrap(), &topic).await, "cleanup.policy").0.as_deref(), Some("compact"));
    assert_eq!(alter(&[("retention.ms", 1, None)], false).0, 0);
    assert_eq!(value_of(&describe_topic(&b.bootstrap(), &topic).await, "retention.ms").1, "Default");
    // APPEND on a non-list config, an unknown operation, a bad value: INVALID_CONFIG with a message.
    for ops in [vec![("retention.ms", 2i8, Some("1"))], vec![("retention.ms", 9, Some("1"))], vec![("segment.bytes", 0, Some("-5"))]] {
        let (code, msg) = alter(&ops, false);
        assert_eq!(code, ResponseError::InvalidConfig.code(), "{ops:?}");
        assert!(msg.is_some_and(|m| !m.is_empty()));
    }
    // validate_only leaves the topic alone.
    assert_eq!(alter(&[("segment.ms", 0, Some("60000"))], true).0, 0);
    assert_eq!(value_of(&describe_topic(&b.bootstrap(), &topic).await, "segment.ms").1, "Default");
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_by_size_and_time_deletes_segments_and_moves_log_start() {
    let mut b = Broker::start(&[("log.retention.check.interval.ms", "200")]);
    let bs = b.bootstrap();

    // Size: ~12 KiB in 1 KiB segments, then retention.bytes=4096 keeps about 4 KiB.
    let topic = topic_name("bysize");
    create_with(&bs, &topic, 1, &[("segment.bytes", "1024")]).await;
    produce_n(&bs, &topic, 24, 400, None).await;
    let dir = b.log_dir().join(format!("{topic}-0"));
    let before = segment_files(&dir).len();
    assert!(before >= 10, "{before} segments");
    let admin = admin_client(&bs);
    admin
        .alter_configs(&[AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("segment.bytes", "1024").set("retention.bytes", "4096")], &admin_opts())
        .await
        .expect("AlterConfigs");
    wait_until("size retention", WAIT, || segment_files(&dir).len() <= 6);
    let (low, high) = watermarks(&bs, &topic);
    assert!(low > 0 && high == 24, "low {low} high {high}");
    let got = consume_from(&bs, &topic, &[(0, Offset::Beginning)], (high - low) as usize, WAIT);
    assert_eq!(got.first().map(|r| r.offset), Some(low), "a consumer from the beginning starts at the log start");
    assert_eq!(got.len() as i64, high - low);

    // Time: records stamped two days ago are deleted with retention.ms = 1 day,
    // newer ones (and the active segment) stay.
    let old = topic_name("bytime");
    create_with(&bs, &old, 1, &[("segment.bytes", "1024"), ("retention.ms", "86400000")]).await;
    produce_n(&bs, &old, 10, 400, Some(now_ms() - 2 * 86_400_000)).await;
    produce_n(&bs, &old, 10, 400, None).await;
    let old_dir = b.log_dir().join(format!("{old}-0"));
    wait_until("time retention", WAIT, || watermarks(&bs, &old).0 >= 8);
    let (low_t, high_t) = watermarks(&bs, &old);
    assert!(low_t <= 10 && high_t == 20, "low {low_t} high {high_t}");
    assert!(!segment_files(&old_dir).contains(&format!("{:020}.log", 0)), "the first segment file is gone");

    // The log start offsets survive a restart. Retention may still be removing
    // segments (every 200 ms, more so on a loaded machine): compare against the
    // offsets once they have stopped moving for 5 check intervals.
    let low = settled_log_start(&bs, &topic);
    let low_t = settled_log_start(&bs, &old);
    b.stop();
    b.restart();
    assert_eq!(watermarks(&b.bootstrap(), &topic).0, low);
    assert_eq!(watermarks(&b.bootstrap(), &old).0, low_t);
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_records_moves_the_low_watermark() {
    let mut b = Broker::start(&[]);
    let bs = b.bootstrap();
    let topic = topic_name("delrec");
    create_with(&bs, &topic, 1, &[("segment.bytes", "2048")]).await;
    produce_n(&bs, &topic, 60, 200, None).await;
    let dir = b.log_dir().join(format!("{topic}-0"));
    let segs_before = segment_files(&dir).len();
    let admin = admin_client(&bs);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(40)).unwrap();
    let res = admin.delete_records(&tpl, &admin_opts()).await.expect("DeleteRecords");
    let low = res.elements_for_topic(&topic)[0].offset();
    assert_eq!(low, Offset::Offset(40));
    assert_eq!(watermarks(&bs, &topic), (40, 60));
    assert!(segment_files(&dir).len() < segs_before, "segments wholly below 40 are deleted");
    let got = consume_from(&bs, &topic, &[(0, Offset::Beginning)], 20, WAIT);
    assert_eq!(got.first().map(|r| r.offset), Some(40));
    assert_eq!(got.len(), 20);
    // Past the high watermark: OFFSET_OUT_OF_RANGE for that partition.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(500)).unwrap();
    let res = admin.delete_records(&tpl, &admin_opts()).await;
    let bad = match res {
        Ok(tpl) => tpl.elements_for_topic(&topic)[0].error().is_err(),
        Err(_) => true,
    };
    assert!(bad, "deleting past the high watermark fails");
    b.stop();
    b.restart();
    assert_eq!(watermarks(&b.bootstrap(), &topic), (40, 60), "the log start offset persists");
    // -1 = up to the high watermark.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::End).unwrap();
    admin_client(&b.bootstrap()).delete_records(&tpl, &admin_opts()).await.expect("DeleteRecords to end");
    assert_eq!(watermarks(&b.bootstrap(), &topic), (60, 60));
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_cluster_log_dirs_and_offset_for_leader_epoch() {
    let mut b = Broker::start(&[]);
    let topic = topic_name("desc");
    create_topic(&b.bootstrap(), &topic, 2).await;
    produce_n(&b.bootstrap(), &topic, 5, 100, None).await;
    let mut conn = RawConn::connect(&b.bootstrap());

    let c = conn.roundtrip(1, &DescribeClusterRequest::default().with_endpoint_type(1));
    assert_eq!(c.error_code, 0);
    assert_eq!(c.brokers.len(), 1);
    assert_eq!(c.brokers[0].port as u16, b.port());
    assert_eq!(c.cluster_id.len(), 22, "a Kafka-style cluster id");
    let c = conn.roundtrip(1, &DescribeClusterRequest::default().with_endpoint_type(2));
    assert_eq!(c.error_code, ResponseError::UnsupportedEndpointType.code());

    let d = conn.roundtrip(4, &DescribeLogDirsRequest::default().with_topics(None));
    assert_eq!(d.results.len(), 1);
    let r = &d.results[0];
    assert!(r.total_bytes > 0 && r.usable_bytes > 0);
    let t = r.topics.iter().find(|t| t.name.0.as_str() == topic).expect("topic listed");
    assert_eq!(t.partitions.len(), 2);
    assert!(t.partitions.iter().find(|p| p.partition_index == 0).unwrap().partition_size > 500);

    let ask = |current: i32, epoch: i32| {
        OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
            .with_topic(TopicName(sb(&topic)))
            .with_partitions(vec![offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)])])
    };
    let e = &conn.roundtrip(4, &ask(0, 0)).topics[0].partitions[0];
    assert_eq!((e.error_code, e.leader_epoch, e.end_offset), (0, 0, 5));
    let e = &conn.roundtrip(4, &ask(0, 7)).topics[0].partitions[0];
    assert_eq!((e.error_code, e.leader_epoch, e.end_offset), (0, -1, -1), "an epoch we never had is undefined");
    let e = &conn.roundtrip(4, &ask(3, 0)).topics[0].partitions[0];
    assert_eq!(e.error_code, ResponseError::UnknownLeaderEpoch.code());
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_policies_recompress_timestamps_min_isr_and_keys() {
    let mut b = Broker::start(&[]);
    let bs = b.bootstrap();
    let zstd = topic_name("zstd");
    create_with(&bs, &zstd, 1, &[("compression.type", "zstd")]).await;
    let mut conn = RawConn::connect(&bs);
    assert_eq!(raw_produce(&mut conn, &zstd, -1, record_batch(&records(20, now_ms(), true), Compression::None)), 0);
    // On disk the batch is zstd (attributes codec 4) and smaller than the 10 KB sent.
    let log = b.log_dir().join(format!("{zstd}-0")).join(format!("{:020}.log", 0));
    let mut raw = std::fs::read(&log).expect("segment");
    // The active segment's file goes on with zeros (space allocated ahead of the writes): keep the batch.
    let batch_len = 12 + i32::from_be_bytes(raw[8..12].try_into().unwrap()) as usize;
    raw.truncate(batch_len);
    assert_eq!(raw[22] & 0x07, 4, "stored codec is zstd");
    assert!(raw.len() < 2000, "re-compressed: {} bytes", raw.len());
    // (The test client's librdkafka is built without zstd, so the stored batch is decoded here.)
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut Bytes::from(raw)).expect("stored batch decodes");
    assert_eq!(set.compression, Compression::Zstd);
    assert_eq!(set.records.len(), 20);
    assert_eq!(set.records[7].key.as_deref(), Some(&b"key-7"[..]));
    assert_eq!(set.records[7].value.as_ref().map(|v| v.len()), Some(500));
    // lz4 the same way, read back through librdkafka.
    let lz4 = topic_name("lz4");
    create_with(&bs, &lz4, 1, &[("compression.type", "lz4")]).await;
    assert_eq!(raw_produce(&mut conn, &lz4, -1, record_batch(&records(20, now_ms(), true), Compression::Gzip)), 0);
    let got = consume_all(&bs, &lz4, 1, 20, WAIT);
    assert_eq!(got.len(), 20);
    assert_eq!(got[7].key.as_deref(), Some(&b"key-7"[..]));
    let lz4_log = std::fs::read(b.log_dir().join(format!("{lz4}-0")).join(format!("{:020}.log", 0))).expect("segment");
    assert_eq!(lz4_log[22] & 0x07, 3, "stored codec is lz4");

    // Timestamps more than an hour old are refused on this topic.
    let strict = topic_name("ts");
    create_with(&bs, &strict, 1, &[("message.timestamp.before.max.ms", "3600000")]).await;
    assert_eq!(
        raw_produce(&mut conn, &strict, 1, record_batch(&records(1, now_ms() - 7_200_000, true), Compression::None)),
        ResponseError::InvalidTimestamp.code()
    );
    assert_eq!(raw_produce(&mut conn, &strict, 1, record_batch(&records(1, now_ms(), true), Compression::None)), 0);

    // min.insync.replicas=2 cannot be met by one broker: acks=all fails, acks=1 works.
    let isr = topic_name("isr");
    create_with(&bs, &isr, 1, &[("min.insync.replicas", "2")]).await;
    assert_eq!(raw_produce(&mut conn, &isr, -1, record_batch(&records(1, now_ms(), true), Compression::None)), ResponseError::NotEnoughReplicas.code());
    assert_eq!(raw_produce(&mut conn, &isr, 1, record_batch(&records(1, now_ms(), true), Compression::None)), 0);

    // A compacted topic needs keys.
    let compact = topic_name("compact");
    create_with(&bs, &compact, 1, &[("cleanup.policy", "compact")]).await;
    assert_eq!(raw_produce(&mut conn, &compact, 1, record_batch(&records(2, now_ms(), false), Compression::None)), ResponseError::InvalidRecord.code());
    assert_eq!(raw_produce(&mut conn, &compact, 1, record_batch(&records(2, now_ms(), true), Compression::Lz4)), 0);
    b.stop();
}
