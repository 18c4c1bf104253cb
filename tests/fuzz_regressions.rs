//! What the fuzz targets (fuzz/, see fuzz/README.md) found, kept as tests:
//! counts and lengths read from the wire that the decoders trusted for their
//! up-front allocation (fixed in the vendored kafka-protocol, see
//! vendor/kafka-protocol/PATCHES.md), and record deltas whose overflow
//! panicked where overflow checks are on (as in this test build).
//!
//! The library calls are the ones the router and the record decoders make;
//! a probe allocator records the largest single allocation each test thread
//! makes, so "refused before allocating" is measured, not assumed. The last
//! test sends the same frames to the real broker.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, CreateTopicsRequest, DescribeGroupsRequest, MetadataRequest, ProduceRequest};
use shardlog::protocol::compression::{decode_batch, CodecError};
use shardlog::protocol::{decode_body, decode_header, peek_header};

struct Probe;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
}

// SAFETY: forwards every call unchanged to `System`; only records sizes.
unsafe impl GlobalAlloc for Probe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static PROBE: Probe = Probe;

/// Runs `f` and returns its result with the largest single allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|c| c.set(0));
    let out = f();
    (out, LARGEST.with(|c| c.get()))
}

/// No decode of these few-byte inputs needs more than this in one piece.
const SMALL: usize = 64 * 1024;

/// Request frames (size prefix removed) whose first array claims far more
/// elements than bytes follow.
fn hostile_frames() -> Vec<(&'static str, Vec<u8>)> {
    let header = |key: i16, version: i16| {
        let mut f = Vec::new();
        f.extend_from_slice(&key.to_be_bytes());
        f.extend_from_slice(&version.to_be_bytes());
        f.extend_from_slice(&7i32.to_be_bytes());
        f.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
        f
    };
    let mut metadata = header(3, 0);
    metadata.extend_from_slice(&i32::MAX.to_be_bytes()); // topics
    let mut create_topics = header(19, 5);
    create_topics.push(0); // header tagged fields
    create_topics.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // topics: compact, 2^32-2
    let mut produce = header(0, 9);
    produce.push(0); // header tagged fields
    produce.push(0); // transactional id: null
    produce.extend_from_slice(&1i16.to_be_bytes()); // acks
    produce.extend_from_slice(&1000i32.to_be_bytes()); // timeout
    produce.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // topics
    vec![
        // The first crash request_decode found: DescribeGroups v1 claiming
        // 0xff020000 groups asked for 8 GB.
        ("DescribeGroups v1", vec![0, 15, 0, 1, 255, 2, 0, 0, 0, 0, 15, 0, 1, 0]),
        ("Metadata v0", metadata),
        ("CreateTopics v5", create_topics),
        ("Produce v9", produce),
    ]
}

/// The router's decode of one frame: header, then the body of its API.
fn route_decode(frame: &[u8]) -> Result<(), String> {
    let h = peek_header(frame).ok_or("short")?;
    let key = ApiKey::try_from(h.api_key).map_err(|_| "key")?;
    let mut frame = Bytes::copy_from_slice(frame);
    decode_header(&mut frame, key, h.api_version)?;
    let v = h.api_version;
    match key {
        ApiKey::DescribeGroups => decode_body::<DescribeGroupsRequest>(&mut frame, v).map(drop),
        ApiKey::Metadata => decode_body::<MetadataRequest>(&mut frame, v).map(drop),
        ApiKey::CreateTopics => decode_body::<CreateTopicsRequest>(&mut frame, v).map(drop),
        ApiKey::Produce => decode_body::<ProduceRequest>(&mut frame, v).map(drop),
        other => panic!("no decoder listed for {other:?}"),
    }
}

#[test]
fn request_arrays_longer_than_the_frame_are_refused_before_allocating() {
    for (name, frame) in hostile_frames() {
        let (result, largest) = largest_allocation(|| route_decode(&frame));
        let err = result.expect_err(name);
        assert!(err.contains("exceeds the"), "{name}: refused for another reason: {err}");
        assert!(largest < SMALL, "{name}: allocated {largest} bytes at once");
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut u = zigzag(v);
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// One uncompressed RecordBatch v2 claiming `records_count` records, holding
/// one record with `headers_count` claimed headers, at `base_timestamp` with
/// the record's timestamp delta `ts_delta`.
fn batch(records_count: i32, headers_count: i64, base_timestamp: i64, ts_delta: i64) -> Bytes {
    let mut body = vec![0u8]; // attributes
    varint(&mut body, ts_delta);
    varint(&mut body, 0); // offset delta
    varint(&mut body, -1); // null key
    varint(&mut body, 1);
    body.push(b'v');
    varint(&mut body, headers_count);
    let mut record = Vec::new();
    varint(&mut record, body.len() as i64);
    record.extend_from_slice(&body);

    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((49 + record.len()) as i32).to_be_bytes()); // batch length
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // crc, below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&(records_count - 1).to_be_bytes()); // last offset delta
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&base_timestamp.to_be_bytes()); // max timestamp
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&records_count.to_be_bytes());
    b.extend_from_slice(&record);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

#[test]
fn record_and_header_counts_beyond_the_batch_are_refused_before_allocating() {
    // The well-formed batch decodes: the builder is right.
    let (ok, _) = largest_allocation(|| decode_batch(&batch(1, 0, 1_000, 0), 1 << 20));
    assert_eq!(ok.expect("a well-formed batch decodes").records.len(), 1);

    // Issue 13 item 1: one record claiming 2^31-1 headers (about 4 GB touched before).
    let (headers, largest) = largest_allocation(|| decode_batch(&batch(1, i32::MAX as i64, 1_000, 0), 1 << 20));
    match headers {
        // The record walk (record_validator) refuses it before the codec crate's decoder runs.
        Err(CodecError::Corrupt(m)) => assert!(m.contains("record 0: its fields run past its length"), "{m}"),
        other => panic!("expected a corrupt batch, got {other:?}"),
    }
    assert!(largest < SMALL, "headers: allocated {largest} bytes at once");

    // A batch claiming 2^31-1 records (137 GB asked for before).
    let (records, largest) = largest_allocation(|| decode_batch(&batch(i32::MAX, 0, 1_000, 0), 1 << 20));
    match records {
        Err(CodecError::Corrupt(m)) => assert!(m.contains("records but holds only 1"), "{m}"),
        other => panic!("expected a corrupt batch, got {other:?}"),
    }
    assert!(largest < SMALL, "records: allocated {largest} bytes at once");
}

#[test]
fn record_timestamp_delta_overflow_wraps_instead_of_panicking() {
    // Found by record_batch: base timestamp + delta overflowed i64 (a panic
    // in debug builds). It wraps as in Kafka's Java decoder.
    let set = decode_batch(&batch(1, 0, i64::MAX, 1), 1 << 20).expect("decodes");
    assert_eq!(set.records[0].timestamp, i64::MIN);
}

#[test]
fn broker_closes_on_hostile_arrays_and_keeps_serving() {
    let broker = common::Broker::start(&[]);
    for (name, frame) in hostile_frames() {
        let mut conn = common::RawConn::connect(&broker.bootstrap());
        conn.write_frame(&frame);
        conn.expect_closed(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let mut conn = common::RawConn::connect(&broker.bootstrap());
    let resp = conn.roundtrip(3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0);
    // Closed-connection lines are rate-limited (one a second per call site),
    // so the log shows the first refusal, not necessarily every one.
    let log = broker.output();
    assert!(log.contains("exceeds the"), "the broker log does not show the refusals:\n{log}");
    let hwm = broker.proc_status_kib("VmHWM").expect("VmHWM");
    assert!(hwm < 512 * 1024, "peak RSS {hwm} KiB");
}
