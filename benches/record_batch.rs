//! Hot path guarded: the produce path's batch checks, run on every Produce
//! request before anything reaches the log —
//! `protocol::record_batch::validate_batches` (header checks + CRC32C over
//! every byte) and `rewrite_header` (base-offset rewrite at append; with
//! log-append time it also recomputes the CRC over the whole batch).
//!
//! Input: a 1 MiB produce payload of 1 KiB records in 16 real RecordBatch v2
//! batches of ~64 KiB, encoded by kafka-protocol's `RecordBatchEncoder`
//! (uncompressed, idempotent producer fields set, as librdkafka sends them).
//!
//! Also `protocol::record_validator::validate_records` (Kafka's LogValidator:
//! every record walked; compressed batches decompressed through a fixed
//! buffer), uncompressed and lz4/zstd, to compare with the CRC pass.
//!
//! Run: `cargo bench --bench record_batch -- --warm-up-time 1 --measurement-time 2`

// Generated code: `criterion_group!` expands to an undocumented `pub fn` (the
// benchmark group), which the workspace's `missing_docs` lint would report.
#![allow(missing_docs)]

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use shardlog::protocol::record_batch::{rewrite_header, validate_batches};
use shardlog::protocol::record_validator::{validate_records, RecordRules};

/// Record value size: 1 KiB records.
const RECORD_VALUE_BYTES: usize = 1000;
/// Records per batch: 64 x ~1 KiB = ~64 KiB batches (librdkafka's default batch.size is 1 MB,
/// linger-limited batches of tens of KiB are typical).
const RECORDS_PER_BATCH: usize = 64;
/// Batches per payload: 16 x 64 KiB = ~1 MiB produce payload.
const BATCHES: usize = 16;

fn record(offset: i64, ts: i64, value: &Bytes) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: 4242,
        producer_epoch: 0,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: offset as i32,
        timestamp: ts,
        key: Some(Bytes::from(format!("key-{offset:08}"))),
        value: Some(value.clone()),
        headers: Default::default(),
    }
}

/// ~1 MiB of back-to-back v2 batches, as a Produce request's `records` field carries them.
fn produce_payload() -> Bytes {
    produce_payload_with(Compression::None)
}

/// The same records in batches compressed with `codec` (values are mixed
/// bytes so the codecs do real work).
fn produce_payload_with(codec: Compression) -> Bytes {
    let value = if codec == Compression::None {
        Bytes::from(vec![b'x'; RECORD_VALUE_BYTES])
    } else {
        Bytes::from((0..RECORD_VALUE_BYTES).map(|i| ((i * 7919) % 61) as u8 + b'A').collect::<Vec<u8>>())
    };
    let mut buf = BytesMut::with_capacity(BATCHES * RECORDS_PER_BATCH * (RECORD_VALUE_BYTES + 64));
    for b in 0..BATCHES {
        // Offsets restart at 0 per batch: producers send relative offsets; the broker assigns.
        let recs: Vec<Record> = (0..RECORDS_PER_BATCH).map(|i| record(i as i64, 1_700_000_000_000 + (b * RECORDS_PER_BATCH + i) as i64, &value)).collect();
        RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression: codec }).expect("encode batch");
    }
    buf.freeze()
}

fn benches(c: &mut Criterion) {
    let payload = produce_payload();
    let max_batch_bytes = 1 << 20;
    let batches = validate_batches(&payload, max_batch_bytes).expect("valid payload");
    assert_eq!(batches.len(), BATCHES);
    let batch_bytes = batches[0].bytes.len();
    eprintln!("payload: {} bytes in {} batches of ~{} bytes", payload.len(), batches.len(), batch_bytes);

    let mut g = c.benchmark_group("record_batch");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.bench_function("validate_batches/1MiB_16x64KiB", |b| b.iter(|| validate_batches(black_box(&payload), max_batch_bytes).expect("valid")));

    // Per batch (~64 KiB): without log-append time only the header is rewritten
    // (baseOffset is outside the CRC); with it the CRC covers the whole batch again.
    let one = &batches[0];
    g.throughput(Throughput::Elements(1));
    g.bench_function("rewrite_header/create_time", |b| b.iter(|| rewrite_header(black_box(one), black_box(1_000_000), None)));
    g.throughput(Throughput::Bytes(batch_bytes as u64));
    g.bench_function("rewrite_header/log_append_time", |b| b.iter(|| rewrite_header(black_box(one), black_box(1_000_000), Some(black_box(1_700_000_000_123)))));
    // Kafka's LogValidator over the same records: one walk per batch, and for
    // compressed batches the decompression it needs (throughput in inflated bytes).
    let rules = RecordRules { require_key: false, max_inflated: 100 << 20 };
    g.throughput(Throughput::Bytes(payload.len() as u64));
    for (name, codec) in [("none", Compression::None), ("lz4", Compression::Lz4), ("zstd", Compression::Zstd)] {
        let p = produce_payload_with(codec);
        let bs = validate_batches(&p, max_batch_bytes).expect("valid payload");
        g.bench_function(format!("validate_records/{name}/1MiB_16x64KiB"), |b| {
            b.iter(|| {
                for one in &bs {
                    validate_records(black_box(&one.bytes), &rules).expect("valid records");
                }
            })
        });
    }
    g.finish();
}

criterion_group!(record_batch, benches);
criterion_main!(record_batch);
