//! Hostile record batches (issue 13, defects 1 and 2), through the real binary
//! with raw Produce frames (no client sends these): every one is refused with
//! INVALID_RECORD (and KIP-467 `record_errors` on v8+), the broker stays up,
//! its memory stays bounded, and the records acknowledged before and after
//! are intact at the same offsets.
//!
//! RSS bound: the broker's peak resident set (VmHWM) stays under
//! [`RSS_BOUND_KIB`] for the whole test. Before the record validator, one
//! ~100-byte record claiming 2^31-1 headers made a ListOffsets-by-timestamp,
//! or a produce to a compacted or `compression.type` topic, peak at 4.2 GB.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::records::{Compression, Record};
use rdkafka::admin::{NewTopic, TopicReplication};

const INVALID_RECORD: i16 = 87;
const RSS_BOUND_KIB: u64 = 256 * 1024;

fn good_batch(from: i64, n: i64, codec: Compression) -> Bytes {
    let recs: Vec<Record> = (0..n)
        .map(|i| {
            let (key, value) = (format!("k{}", from + i), format!("v{}", from + i));
            plain_record(i, 1_700_000_000_000 + from + i, Some(Bytes::from(key)), Some(Bytes::from(value)))
        })
        .collect();
    record_batch(&recs, codec)
}

fn zigzag(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// One record (length prefix included): key "k", value "v", and `headers` as
/// the header count with no header bytes after it.
fn raw_record(offset_delta: i64, key: Option<&[u8]>, headers: i64) -> Vec<u8> {
    let mut body = vec![0u8];
    zigzag(&mut body, 0);
    zigzag(&mut body, offset_delta);
    match key {
        Some(k) => {
            zigzag(&mut body, k.len() as i64);
            body.extend_from_slice(k);
        }
        None => zigzag(&mut body, -1),
    }
    zigzag(&mut body, 1);
    body.push(b'v');
    zigzag(&mut body, headers);
    let mut out = Vec::new();
    zigzag(&mut out, body.len() as i64);
    out.extend(body);
    out
}

/// A v2 batch around `records` with a hand-set record count and codec (the
/// header's lastOffsetDelta agrees with the count, the CRC is correct).
fn raw_batch(count: i32, codec: i16, records: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(61 + records.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&codec.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// Produce (acks=all) of `records` to partition 0 of `topic` at `version`.
fn produce(conn: &mut RawConn, version: i16, topic: &str, records: Bytes) -> PartitionProduceResponse {
    produce_raw(conn, version, -1, topic, 0, records)
}

/// ListOffsets by timestamp (v6): the offset of the first record at or after `ts`.
fn offset_for_time(conn: &mut RawConn, topic: &str, ts: i64) -> (i16, i64) {
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
        .with_name(TopicName(sb(topic)))
        .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(ts)])]);
    let resp = conn.roundtrip(6, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset)
}

/// The hostile batches of issue 13, each with what it is.
fn hostile_batches() -> Vec<(&'static str, Bytes)> {
    let mut v = vec![
        ("a record claiming 2^31-1 headers", raw_batch(1, 0, &raw_record(0, Some(b"k"), i32::MAX as i64))),
        ("a count of 1 over 3 records", {
            let mut r = Vec::new();
            for i in 0..3 {
                r.extend(raw_record(i, Some(b"k"), 0));
            }
            raw_batch(1, 0, &r)
        }),
        ("a count of 2^31-1 over 1 record", raw_batch(i32::MAX, 0, &raw_record(0, Some(b"k"), 0))),
        ("a record length of 2^30", {
            let mut r = Vec::new();
            zigzag(&mut r, 1 << 30);
            r.extend_from_slice(&raw_record(0, Some(b"k"), 0)[1..]);
            raw_batch(1, 0, &r)
        }),
        ("non-contiguous offset deltas", {
            let mut r = raw_record(0, Some(b"k"), 0);
            r.extend(raw_record(7, Some(b"k"), 0));
            raw_batch(2, 0, &r)
        }),
    ];
    for codec in 5..=7 {
        v.push(("an unknown codec id", raw_batch(1, codec, &raw_record(0, Some(b"k"), 0))));
    }
    for codec in 1..=4 {
        v.push(("a garbage compressed payload", raw_batch(1, codec, &[0x5a; 80])));
    }
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_batches_are_refused_and_acknowledged_records_keep_their_offsets() {
    let mut b = Broker::start(&[]);
    let bs = b.bootstrap();
    let admin = admin_client(&bs);
    let plain = topic_name("hostile-plain");
    let compacted = topic_name("hostile-compact");
    let zstd = topic_name("hostile-zstd");
    let topics = [
        NewTopic::new(&plain, 1, TopicReplication::Fixed(1)),
        NewTopic::new(&compacted, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact"),
        NewTopic::new(&zstd, 1, TopicReplication::Fixed(1)).set("compression.type", "zstd"),
    ];
    for r in admin.create_topics(&topics, &admin_opts()).await.expect("CreateTopics") {
        r.expect("topic created");
    }
    let names = [plain.clone(), compacted.clone(), zstd.clone()];

    let mut conn = RawConn::connect(&bs);
    // Acknowledged before: offsets 0..5 on every topic.
    for t in &names {
        let p = produce(&mut conn, 9, t, good_batch(0, 5, Compression::None));
        assert_eq!((p.error_code, p.base_offset), (0, 0), "{t}: {p:?}");
    }
    for t in &names {
        for (what, batch) in hostile_batches() {
            for version in [7, 9] {
                let p = produce(&mut conn, version, t, batch.clone());
                assert_eq!(p.error_code, INVALID_RECORD, "{t}: {what} (v{version}): {p:?}");
                if version >= 8 {
                    assert!(p.error_message.is_some(), "{t}: {what}: an error message on v8+: {p:?}");
                }
            }
        }
        let p = produce(&mut conn, 9, t, raw_batch(1, 0, &raw_record(0, Some(b"k"), i32::MAX as i64)));
        assert_eq!(p.record_errors.len(), 1, "{t}: the record at fault is named: {p:?}");
        assert_eq!(p.record_errors[0].batch_index, 0);
    }
    // Four at once on the topics that used to decode on produce.
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (bs, t) = (bs.clone(), if i % 2 == 0 { compacted.clone() } else { zstd.clone() });
            std::thread::spawn(move || {
                let mut c = RawConn::connect(&bs);
                let p = produce(&mut c, 9, &t, raw_batch(1, 0, &raw_record(0, Some(b"k"), i32::MAX as i64)));
                p.error_code
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), INVALID_RECORD);
    }
    assert!(b.is_running(), "broker died:\n{}", b.output());

    // Acknowledged after: offsets continue at 5, untouched by the refused batches.
    for t in &names {
        let p = produce(&mut conn, 9, t, good_batch(5, 5, Compression::Lz4));
        assert_eq!((p.error_code, p.base_offset), (0, 5), "{t}: {p:?}");
        // ListOffsets by timestamp walks the stored records (it used to decode them).
        assert_eq!(offset_for_time(&mut conn, t, 1_700_000_000_000 + 7), (0, 7), "{t}");
    }
    for t in &names {
        let recs = consume_all(&bs, t, 1, 10, Duration::from_secs(30));
        let got: Vec<(i64, String)> = recs.iter().map(|r| (r.offset, String::from_utf8_lossy(r.value.as_deref().unwrap_or(&[])).into_owned())).collect();
        let want: Vec<(i64, String)> = (0..10).map(|i| (i, format!("v{i}"))).collect();
        assert_eq!(got, want, "{t}: every acknowledged record once, at its offset");
    }
    let hwm = b.proc_status_kib("VmHWM").expect("VmHWM");
    assert!(hwm < RSS_BOUND_KIB, "broker peak RSS {hwm} KiB over the {RSS_BOUND_KIB} KiB bound");
    assert!(b.is_running(), "broker died:\n{}", b.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn keyless_records_on_a_compacted_topic_are_named_in_record_errors() {
    let b = Broker::start(&[]);
    let bs = b.bootstrap();
    let topic = topic_name("keyless");
    let admin = admin_client(&bs);
    let nt = NewTopic::new(&topic, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    admin.create_topics(&[nt], &admin_opts()).await.expect("CreateTopics")[0].as_ref().expect("created");
    let mut r = Vec::new();
    for i in 0..5 {
        r.extend(raw_record(i, if i == 1 || i == 3 { None } else { Some(b"k") }, 0));
    }
    let mut conn = RawConn::connect(&bs);
    let p = produce(&mut conn, 9, &topic, raw_batch(5, 0, &r));
    assert_eq!(p.error_code, INVALID_RECORD, "{p:?}");
    let idx: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(idx, vec![1, 3], "{p:?}");
    assert!(p.record_errors.iter().all(|e| e.batch_index_error_message.is_some()));
    // Nothing of the refused batch was stored.
    let p = produce(&mut conn, 9, &topic, good_batch(0, 2, Compression::None));
    assert_eq!((p.error_code, p.base_offset), (0, 0), "{p:?}");
}

/// Request header v1 (non-flexible) or v2 (flexible: + empty tagged fields).
fn header(api_key: i16, version: i16, flexible: bool) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&api_key.to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&7i32.to_be_bytes());
    h.extend_from_slice(&(3i16).to_be_bytes());
    h.extend_from_slice(b"raw");
    if flexible {
        h.push(0);
    }
    h
}

/// Counts and lengths read from the wire by the request decoder: arrays and
/// strings claiming 2^31-1 (or 2^32-2 compact) elements in a frame of a few
/// bytes. The connection is closed (the request does not decode), the broker
/// stays up and its memory does not move: the decoder's capacity reservation
/// for such a count is never touched, and nothing is iterated past the bytes
/// that are there.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_counts_in_requests_close_the_connection_without_memory() {
    let mut b = Broker::start(&[]);
    let bs = b.bootstrap();
    let topic = topic_name("counts");
    create_topic(&bs, &topic, 1).await;
    let mut conn = RawConn::connect(&bs);
    let p = produce(&mut conn, 9, &topic, good_batch(0, 3, Compression::None));
    assert_eq!((p.error_code, p.base_offset), (0, 0));

    let mut frames: Vec<(&str, Vec<u8>)> = Vec::new();
    // Metadata v1: topics array (int32 count).
    let mut f = header(3, 1, false);
    f.extend_from_slice(&i32::MAX.to_be_bytes());
    frames.push(("Metadata v1 topics = 2^31-1", f));
    // Metadata v9: compact array (unsigned varint count 2^32-1 -> 2^32-2 elements).
    let mut f = header(3, 9, true);
    f.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    frames.push(("Metadata v9 topics = 2^32-2", f));
    // Produce v9: transactional id null, acks, timeout, compact topic array huge.
    let mut f = header(0, 9, true);
    f.push(0);
    f.extend_from_slice(&(-1i16).to_be_bytes());
    f.extend_from_slice(&30_000i32.to_be_bytes());
    f.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    frames.push(("Produce v9 topics = 2^32-2", f));
    // Produce v3: one topic whose records claim 2^31-1 bytes.
    let mut f = header(0, 3, false);
    f.extend_from_slice(&(-1i16).to_be_bytes());
    f.extend_from_slice(&(-1i16).to_be_bytes());
    f.extend_from_slice(&30_000i32.to_be_bytes());
    f.extend_from_slice(&1i32.to_be_bytes());
    f.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    f.extend_from_slice(topic.as_bytes());
    f.extend_from_slice(&1i32.to_be_bytes());
    f.extend_from_slice(&0i32.to_be_bytes());
    f.extend_from_slice(&i32::MAX.to_be_bytes());
    frames.push(("Produce v3 records = 2^31-1 bytes", f));
    // OffsetCommit v2: group id string of 32767 bytes claimed, none sent.
    let mut f = header(8, 2, false);
    f.extend_from_slice(&i16::MAX.to_be_bytes());
    frames.push(("OffsetCommit v2 group id = 32767 bytes", f));

    for round in 0..20 {
        for (what, frame) in &frames {
            let mut c = RawConn::connect(&bs);
            c.write_frame(frame);
            if round == 0 {
                c.expect_closed(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{what}: {e}"));
            }
        }
    }
    assert!(b.is_running(), "broker died:\n{}", b.output());
    let p = produce(&mut conn, 9, &topic, good_batch(3, 2, Compression::None));
    assert_eq!((p.error_code, p.base_offset), (0, 3), "the first connection still works: {p:?}");
    let recs = consume_all(&bs, &topic, 1, 5, Duration::from_secs(30));
    assert_eq!(recs.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    let hwm = b.proc_status_kib("VmHWM").expect("VmHWM");
    assert!(hwm < RSS_BOUND_KIB, "broker peak RSS {hwm} KiB over the {RSS_BOUND_KIB} KiB bound");
}
