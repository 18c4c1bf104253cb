//! Hot path guarded: per-request protocol work on a connection's shard —
//! decoding the two requests that carry the data (ProduceRequest v9,
//! FetchRequest v12, via kafka-protocol's `Decodable`), encoding Fetch
//! responses around zero-copy record holes
//! (`protocol::fetch_response::encode_fetch_response`, 1 and 100 partitions),
//! and cutting frames off the read buffer (`net::frame::next_frame`).
//!
//! Decode benches start from the request body (after the request header), as
//! the router hands it to kafka-protocol; `Bytes` input keeps record data
//! zero-copy, so Produce decode cost is per partition, not per byte.
//!
//! Run: `cargo bench --bench protocol -- --warm-up-time 1 --measurement-time 2`

// Generated code: `criterion_group!` expands to an undocumented `pub fn` (the
// benchmark group), which the workspace's `missing_docs` lint would report.
#![allow(missing_docs)]

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use shardlog::net::frame::{next_frame, Framed};
use shardlog::protocol::fetch_response::{encode_fetch_response, FetchPartitionOut, FetchResponseOut, FetchTopicOut};

/// Partitions in the produce request, one ~64 KiB batch each (a 1 MiB request).
const PRODUCE_PARTITIONS: i32 = 16;
/// Partitions in the fetch request (a consumer assigned 100 partitions of one topic).
const FETCH_PARTITIONS: i32 = 100;
/// Frames in the read buffer for `next_frame`, 1 KiB each.
const FRAMES: usize = 1000;
const FRAME_BYTES: usize = 1024;

fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

/// One ~64 KiB RecordBatch v2 of 64 records of 1 KiB.
fn batch() -> Bytes {
    let value = Bytes::from(vec![b'x'; 1000]);
    let recs: Vec<Record> = (0..64)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 4242,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression: Compression::None }).expect("encode batch");
    buf.freeze()
}

fn encode_body<M: Encodable>(m: &M, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    m.encode(&mut buf, version).expect("encode request");
    buf.freeze()
}

fn produce_v9_body() -> Bytes {
    let records = batch();
    let parts = (0..PRODUCE_PARTITIONS).map(|p| PartitionProduceData::default().with_index(p).with_records(Some(records.clone()))).collect();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default().with_name(topic("bench-topic")).with_partition_data(parts)]);
    encode_body(&req, 9)
}

fn fetch_v12_body() -> Bytes {
    let parts = (0..FETCH_PARTITIONS)
        .map(|p| {
            FetchPartition::default()
                .with_partition(p)
                .with_current_leader_epoch(0)
                .with_fetch_offset(1_000_000 + i64::from(p))
                .with_last_fetched_epoch(0)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    let req = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(52_428_800)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(topic("bench-topic")).with_partitions(parts)]);
    encode_body(&req, 12)
}

fn fetch_response(partitions: i32) -> FetchResponseOut {
    FetchResponseOut {
        throttle_time_ms: 0,
        error_code: 0,
        session_id: 0,
        topics: vec![FetchTopicOut {
            name: "bench-topic".to_string(),
            partitions: (0..partitions)
                .map(|p| FetchPartitionOut {
                    partition_index: p,
                    high_watermark: 2_000_000,
                    last_stable_offset: 2_000_000,
                    log_start_offset: 0,
                    // READ_UNCOMMITTED: Kafka sends a null aborted-transactions array.
                    aborted_transactions: None,
                    records_len: 64 * 1024,
                    ..FetchPartitionOut::default()
                })
                .collect(),
        }],
    }
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    let produce = produce_v9_body();
    g.throughput(Throughput::Elements(PRODUCE_PARTITIONS as u64));
    g.bench_function("produce_v9/16_partitions_64KiB", |b| {
        b.iter(|| {
            let mut buf = black_box(&produce).clone();
            ProduceRequest::decode(&mut buf, 9).expect("decode produce")
        })
    });
    let fetch = fetch_v12_body();
    g.throughput(Throughput::Elements(FETCH_PARTITIONS as u64));
    g.bench_function("fetch_v12/100_partitions", |b| {
        b.iter(|| {
            let mut buf = black_box(&fetch).clone();
            FetchRequest::decode(&mut buf, 12).expect("decode fetch")
        })
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_fetch_response_v12");
    for n in [1, FETCH_PARTITIONS] {
        let resp = fetch_response(n);
        let mut buf = BytesMut::with_capacity(64 * 1024);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}_partitions"), |b| b.iter(|| encode_fetch_response(12, black_box(7), black_box(&resp), &mut buf).expect("encode")));
    }
    g.finish();
}

fn frame(c: &mut Criterion) {
    let mut template = BytesMut::with_capacity(FRAMES * (4 + FRAME_BYTES));
    for i in 0..FRAMES {
        template.extend_from_slice(&(FRAME_BYTES as i32).to_be_bytes());
        template.extend_from_slice(&[i as u8; FRAME_BYTES]);
    }
    let mut g = c.benchmark_group("next_frame");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function("1000_frames_1KiB", |b| {
        b.iter_batched_ref(
            || template.clone(),
            |buf| {
                let mut n = 0;
                while let Framed::Frame(f) = next_frame(buf, 100 << 20) {
                    n += f.len();
                }
                assert_eq!(n, FRAMES * FRAME_BYTES);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(protocol, decode, encode, frame);
criterion_main!(protocol);
