//! Data-path integration tests: the real `shardlog` binary, driven by
//! librdkafka (rdkafka crate) and, where byte-level control is needed, by raw
//! Kafka frames (kafka-protocol crate). Each test starts its own broker; the
//! harness runs them one at a time (2-core machine).

mod common;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, RequestHeader};
use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, Encodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use common::*;

/// Wait for a delivery future, bounded so a broken broker can't hang the test.
async fn await_delivery(f: rdkafka::producer::DeliveryFuture, what: &str) -> rdkafka::producer::future_producer::OwnedDeliveryResult {
    match tokio::time::timeout(Duration::from_secs(120), f).await {
        Ok(Ok(r)) => r,
        Ok(Err(_canceled)) => panic!("{what}: delivery future canceled (producer dropped?)"),
        Err(_) => panic!("{what}: no delivery report within 120 s"),
    }
}

/// Enqueue a record, retrying on a full local queue.
async fn enqueue<'a>(producer: &FutureProducer, mut rec: FutureRecord<'a, str, [u8]>) -> rdkafka::producer::DeliveryFuture {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match producer.send_result(rec) {
            Ok(f) => return f,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) if Instant::now() < deadline => {
                rec = r;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err((e, _)) => panic!("enqueue failed: {e}"),
        }
    }
}

fn decode_batches(records: &Bytes) -> Vec<kafka_protocol::records::BatchDecodeInfo> {
    let mut b = records.clone();
    RecordBatchDecoder::decode_batch_info(&mut b).expect("decode record batch headers")
}

fn decode_records(records: &Bytes) -> Vec<kafka_protocol::records::Record> {
    let mut b = records.clone();
    RecordBatchDecoder::decode_all(&mut b).expect("decode record batches (CRC, framing)").into_iter().flat_map(|s| s.records).collect()
}

/// The single partition's data out of a one-topic, one-partition Fetch.
fn only_partition(resp: &FetchResponse) -> &kafka_protocol::messages::fetch_response::PartitionData {
    assert_eq!(resp.error_code, 0, "top-level fetch error: {resp:?}");
    assert_eq!(resp.responses.len(), 1, "one topic expected: {resp:?}");
    assert_eq!(resp.responses[0].partitions.len(), 1, "one partition expected: {resp:?}");
    &resp.responses[0].partitions[0]
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

// ---------------------------------------------------------------------------
// 1. produce 10k keyed records with headers, consume, SIGTERM, restart, consume
// ---------------------------------------------------------------------------

const PCR_N: usize = 10_000;

fn pcr_value(i: usize) -> Vec<u8> {
    let mut v = format!("v{i}").into_bytes();
    let pad = if i % 250 == 7 {
        50_000 // some large records
    } else if i % 10 == 3 {
        2_000 // some medium ones
    } else {
        0
    };
    if pad > 0 {
        v.push(b'-');
        v.extend((0..pad).map(|j| ((i + j) % 251) as u8));
    }
    v
}

fn pcr_headers(i: usize) -> Vec<(String, Option<Vec<u8>>)> {
    vec![("trace".to_string(), Some(format!("t{i}").into_bytes())), ("idx".to_string(), Some((i as u32).to_be_bytes().to_vec()))]
}

fn check_pcr(recs: &[Rec], delivered: &[(i32, i64)], phase: &str) {
    assert_eq!(recs.len(), PCR_N, "{phase}: consumed record count");
    let mut seen = vec![false; PCR_N];
    for r in recs {
        let key = String::from_utf8(r.key.clone().expect("key present")).expect("utf8 key");
        let i: usize = key.strip_prefix('k').and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{phase}: unexpected key {key:?}"));
        assert!(i < PCR_N, "{phase}: key out of range {key}");
        assert!(!seen[i], "{phase}: record {key} consumed twice");
        seen[i] = true;
        assert_eq!((r.partition, r.offset), delivered[i], "{phase}: {key} is not at the partition/offset its delivery report gave");
        assert!(r.value.as_deref() == Some(&pcr_value(i)[..]), "{phase}: value of {key} differs");
        assert_eq!(r.headers, pcr_headers(i), "{phase}: headers of {key}");
    }
    let per = by_partition(recs);
    let mut delivered_per: BTreeMap<i32, usize> = BTreeMap::new();
    for (p, _) in delivered {
        *delivered_per.entry(*p).or_default() += 1;
    }
    for (p, list) in &per {
        for (n, r) in list.iter().enumerate() {
            assert_eq!(r.offset, n as i64, "{phase}: partition {p} offsets not contiguous from 0");
        }
        let idx: Vec<usize> = list.iter().map(|r| String::from_utf8_lossy(r.key.as_ref().unwrap())[1..].parse().unwrap()).collect();
        assert!(idx.windows(2).all(|w| w[0] < w[1]), "{phase}: partition {p} is not in produce order");
        assert_eq!(Some(&list.len()), delivered_per.get(p), "{phase}: partition {p} count");
    }
}

fn check_watermarks(bootstrap: &str, topic: &str, expected: &BTreeMap<i32, i64>) {
    let c: BaseConsumer = consumer_config(bootstrap).create().unwrap();
    for (p, hw) in expected {
        let wm = c.fetch_watermarks(topic, *p, OP_TIMEOUT).expect("fetch_watermarks");
        assert_eq!(wm, (0, *hw), "watermarks of partition {p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_restart() {
    let mut broker = Broker::start(&[]);
    let bs = broker.bootstrap();
    let topic = "pcr";
    create_topic(&bs, topic, 6).await;

    let producer: FutureProducer = producer_config(&bs).create().expect("producer");
    let mut futures = Vec::with_capacity(PCR_N);
    for i in 0..PCR_N {
        let key = format!("k{i}");
        let value = pcr_value(i);
        let t = format!("t{i}");
        let idx = (i as u32).to_be_bytes();
        let headers = OwnedHeaders::new().insert(Header { key: "trace", value: Some(t.as_str()) }).insert(Header { key: "idx", value: Some(&idx[..]) });
        let rec = FutureRecord::to(topic).key(key.as_str()).payload(&value[..]).headers(headers);
        futures.push(enqueue(&producer, rec).await);
    }
    let mut delivered = Vec::with_capacity(PCR_N);
    for (i, f) in futures.into_iter().enumerate() {
        match await_delivery(f, "produce").await {
            Ok(d) => delivered.push((d.partition, d.offset)),
            Err((e, _)) => panic!("record {i} not acknowledged: {e}"),
        }
    }
    drop(producer);
    let partitions_used: std::collections::BTreeSet<i32> = delivered.iter().map(|d| d.0).collect();
    assert!(partitions_used.len() > 1, "keys should spread over several partitions");
    let mut hw: BTreeMap<i32, i64> = (0..6).map(|p| (p, 0)).collect();
    for (p, _) in &delivered {
        *hw.get_mut(p).unwrap() += 1;
    }

    let recs = consume_all(&bs, topic, 6, PCR_N, Duration::from_secs(180));
    check_pcr(&recs, &delivered, "before restart");
    check_watermarks(&bs, topic, &hw);

    broker.stop(); // SIGTERM, exit status 0
    broker.restart();
    assert_eq!(broker.bootstrap(), bs, "restart keeps the port");

    let recs = consume_all(&bs, topic, 6, PCR_N, Duration::from_secs(180));
    check_pcr(&recs, &delivered, "after SIGTERM + restart");
    check_watermarks(&bs, topic, &hw);
    broker.stop();
}

// ---------------------------------------------------------------------------
// 2. kill -9 while producing: every acknowledged record survives
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_produce_keeps_acked() {
    let mut broker = Broker::start(&[]);
    let bs = broker.bootstrap();
    let topic = "k9";
    const PARTS: i32 = 3;
    create_topic(&bs, topic, PARTS).await;

    let mut cfg = producer_config(&bs);
    // Outstanding messages fail soon after the broker is gone.
    cfg.set("message.timeout.ms", "8000").set("request.timeout.ms", "5000");
    let producer: FutureProducer = cfg.create().expect("producer");

    const KILL_AFTER: usize = 2000;
    const IN_FLIGHT: usize = 300;
    let value_of = |i: usize| format!("v{i}-{}", "x".repeat(100 + i % 200));
    let mut pending: VecDeque<(usize, rdkafka::producer::DeliveryFuture)> = VecDeque::new();
    let mut acked: Vec<(i32, i64, usize)> = Vec::new();
    let mut next = 0usize;
    let mut failed_after_kill = 0usize;
    let started = Instant::now();
    let mut killed = false;
    while !killed {
        assert!(started.elapsed() < Duration::from_secs(180), "only {} acks in 180 s before the kill", acked.len());
        while pending.len() < IN_FLIGHT {
            let key = format!("k{next}");
            let value = value_of(next).into_bytes();
            let rec = FutureRecord::to(topic).key(key.as_str()).payload(&value[..]);
            pending.push_back((next, enqueue(&producer, rec).await));
            next += 1;
        }
        let (i, f) = pending.pop_front().unwrap();
        match await_delivery(f, "produce").await {
            Ok(d) => acked.push((d.partition, d.offset, i)),
            Err((e, _)) => panic!("record {i} failed while the broker was up: {e}"),
        }
        if acked.len() >= KILL_AFTER {
            broker.kill9();
            killed = true;
        }
    }
    let acked_before_kill = acked.len();
    // Whatever was in flight now resolves: a late ack (already in our socket
    // buffer) is a real ack; the rest time out.
    while let Some((i, f)) = pending.pop_front() {
        match await_delivery(f, "in-flight at kill").await {
            Ok(d) => acked.push((d.partition, d.offset, i)),
            Err(_) => failed_after_kill += 1,
        }
    }
    drop(producer);
    eprintln!("kill9: {acked_before_kill} acked before kill, {} acked in total, {failed_after_kill} failed after kill", acked.len());

    broker.restart();

    let mut need: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o, _) in &acked {
        let e = need.entry(*p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    let c: BaseConsumer = consumer_config(&bs).create().unwrap();
    let mut hw: BTreeMap<i32, i64> = BTreeMap::new();
    for p in 0..PARTS {
        let (lo, hi) = c.fetch_watermarks(topic, p, OP_TIMEOUT).expect("watermarks after restart");
        assert_eq!(lo, 0, "log start offset of partition {p}");
        let n = need.get(&p).copied().unwrap_or(0);
        assert!(hi >= n, "partition {p}: high watermark {hi} after restart, but offset {} was acked", n - 1);
        hw.insert(p, hi);
    }
    drop(c);
    let total: i64 = hw.values().sum();
    let recs = consume_all(&bs, topic, PARTS, total as usize, Duration::from_secs(180));
    assert_eq!(recs.len() as i64, total, "every record below the high watermark is readable");
    let mut at: HashMap<(i32, i64), Vec<u8>> = HashMap::new();
    for (p, list) in by_partition(&recs) {
        for (n, r) in list.iter().enumerate() {
            assert_eq!(r.offset, n as i64, "partition {p}: offsets contiguous from 0 after recovery");
        }
        for r in list {
            at.insert((p, r.offset), r.value.clone().unwrap_or_default());
        }
    }
    for (p, o, i) in &acked {
        let got = at.get(&(*p, *o)).unwrap_or_else(|| panic!("acknowledged record {i} at {p}/{o} is missing after kill -9"));
        assert_eq!(got, &value_of(*i).into_bytes(), "acknowledged record {i} at {p}/{o} has the wrong value");
    }
    broker.stop();
}

// ---------------------------------------------------------------------------
// 3. fetch from the middle of a batch
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_from_middle_of_batch() {
    let mut broker = Broker::start(&[]);
    let bs = broker.bootstrap();
    let topic = "mid";
    create_topic(&bs, topic, 1).await;

    let mut cfg = producer_config(&bs);
    cfg.set("linger.ms", "10000").set("batch.num.messages", "10000").set("batch.size", "4000000").set("compression.type", "none");
    let producer: FutureProducer = cfg.create().expect("producer");
    let mut futures = Vec::new();
    for i in 0..100 {
        let key = format!("k{i}");
        let value = format!("v{i}").into_bytes();
        let rec = FutureRecord::to(topic).partition(0).key(key.as_str()).payload(&value[..]);
        futures.push(enqueue(&producer, rec).await);
    }
    producer.flush(OP_TIMEOUT).expect("flush"); // sends the lingering batch now
    for (i, f) in futures.into_iter().enumerate() {
        let d = await_delivery(f, "produce").await.unwrap_or_else(|(e, _)| panic!("record {i}: {e}"));
        assert_eq!((d.partition, d.offset), (0, i as i64));
    }

    // Raw Fetch v11 at offset 50: Kafka returns whole batches, so the
    // records start at the batch's base offset 0.
    let mut conn = RawConn::connect(&bs);
    let resp = conn.roundtrip(11, &fetch_request(topic, 0, 50, 1000, 1));
    let pd = only_partition(&resp);
    assert_eq!(pd.error_code, 0, "partition error: {pd:?}");
    assert_eq!(pd.high_watermark, 100);
    let records = pd.records.clone().expect("records present");
    let batches = decode_batches(&records);
    assert!(!batches.is_empty(), "no batch returned for offset 50");
    assert_eq!((batches[0].min_offset, batches[0].record_count), (0, 100), "the 100 records should be one batch (base 0) and be returned whole: {batches:?}");
    let recs = decode_records(&records);
    let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..100).collect::<Vec<_>>());
    for r in &recs {
        assert_eq!(r.value.as_deref(), Some(format!("v{}", r.offset).as_bytes()));
    }

    // librdkafka drops the records before 50 of that batch.
    let got = consume_from(&bs, topic, &[(0, Offset::Offset(50))], 50, Duration::from_secs(60));
    let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (50..100).collect::<Vec<_>>(), "consumer assigned at 50");
    for r in &got {
        assert_eq!(r.value.as_deref(), Some(format!("v{}", r.offset).as_bytes()));
        assert_eq!(r.key.as_deref(), Some(format!("k{}", r.offset).as_bytes()));
    }
    broker.stop();
}

// ---------------------------------------------------------------------------
// 4. Fetch long-poll is woken by an append; an idle one returns after max_wait
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_woken_by_append() {
    let mut broker = Broker::start(&[]);
    let bs = broker.bootstrap();
    let topic = "lp";
    create_topic(&bs, topic, 1).await;

    let mut cfg = producer_config(&bs);
    cfg.set("linger.ms", "0");
    let producer: FutureProducer = cfg.create().expect("producer");
    let d =
        producer.send(FutureRecord::to(topic).partition(0).key("k0").payload("first"), OP_TIMEOUT).await.unwrap_or_else(|(e, _)| panic!("first record: {e}"));
    assert_eq!(d.offset, 0);

    // Fetch at the log end offset (1), waiting up to 10 s for 1 byte.
    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let bs2 = bs.clone();
    let fetcher = std::thread::spawn(move || {
        let mut conn = RawConn::connect(&bs2);
        let corr = conn.send(11, &fetch_request("lp", 0, 1, 10_000, 1));
        let t0 = Instant::now();
        sent_tx.send(()).unwrap();
        let resp = conn.recv::<FetchRequest>(11, corr);
        (t0.elapsed(), resp)
    });
    sent_rx.recv_timeout(Duration::from_secs(30)).expect("fetch was not sent");
    tokio::time::sleep(Duration::from_millis(300)).await; // the scenario's delay
    let d = producer
        .send(FutureRecord::to(topic).partition(0).key("k1").payload("wake-up"), OP_TIMEOUT)
        .await
        .unwrap_or_else(|(e, _)| panic!("wake-up record: {e}"));
    assert_eq!(d.offset, 1);
    let (elapsed, resp) = tokio::task::spawn_blocking(move || fetcher.join().expect("fetch thread")).await.unwrap();
    let pd = only_partition(&resp);
    assert_eq!(pd.error_code, 0, "partition error: {pd:?}");
    let records = pd.records.clone().unwrap_or_default();
    assert!(!records.is_empty(), "long-poll returned after {elapsed:?} without the appended record: {pd:?}");
    assert!(elapsed < Duration::from_secs(5), "long-poll was not woken by the append: answered after {elapsed:?} (max_wait 10 s)");
    let recs = decode_records(&records);
    assert_eq!(recs.first().map(|r| r.offset), Some(1), "records start at the fetch offset's batch");
    assert_eq!(recs[0].value.as_deref(), Some(&b"wake-up"[..]));
    assert_eq!(pd.high_watermark, 2);

    // Idle long-poll: nothing is appended, so it answers empty after ~max_wait.
    let mut conn = RawConn::connect(&bs);
    let t0 = Instant::now();
    let resp = conn.roundtrip(11, &fetch_request(topic, 0, 2, 500, 1));
    let elapsed = t0.elapsed();
    let pd = only_partition(&resp);
    assert_eq!(pd.error_code, 0, "partition error: {pd:?}");
    assert!(pd.records.as_ref().is_none_or(|r| r.is_empty()), "no records expected at the log end: {pd:?}");
    assert_eq!(pd.high_watermark, 2);
    assert!(elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(5), "empty fetch with max_wait_ms=500 answered after {elapsed:?}");
    drop(producer);
    broker.stop();
}

// ---------------------------------------------------------------------------
// 5. message.max.bytes is enforced by the broker
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_record_rejected() {
    let mut broker = Broker::start(&[("message.max.bytes", "100000")]);
    let bs = broker.bootstrap();
    let topic = "big";
    create_topic(&bs, topic, 1).await;

    let mut cfg = producer_config(&bs);
    cfg.set("message.max.bytes", "1000000").set("linger.ms", "0").set("compression.type", "none");
    let producer: FutureProducer = cfg.create().expect("producer");

    let big = vec![b'x'; 200_000];
    // send_result succeeding means librdkafka accepted it locally; the
    // rejection must come from the broker.
    let f = producer
        .send_result(FutureRecord::<str, [u8]>::to(topic).partition(0).payload(&big[..]))
        .unwrap_or_else(|(e, _)| panic!("librdkafka refused the record locally: {e}"));
    match await_delivery(f, "oversized").await {
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {}
        Err((e, _)) => panic!("expected MessageSizeTooLarge, got {e}"),
        Ok(d) => panic!("200 KB record accepted at {}/{} with message.max.bytes=100000", d.partition, d.offset),
    }

    let d = producer
        .send(FutureRecord::to(topic).partition(0).key("k").payload("small"), OP_TIMEOUT)
        .await
        .unwrap_or_else(|(e, _)| panic!("small record after the rejection: {e}"));
    assert_eq!(d.offset, 0, "the rejected batch must not use up offsets");
    let under = vec![b'y'; 90_000];
    let d = producer
        .send(FutureRecord::<str, [u8]>::to(topic).partition(0).payload(&under[..]), OP_TIMEOUT)
        .await
        .unwrap_or_else(|(e, _)| panic!("90 KB record (under the limit): {e}"));
    assert_eq!(d.offset, 1);
    drop(producer);

    let recs = consume_all(&bs, topic, 1, 2, Duration::from_secs(60));
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].value.as_deref(), Some(&b"small"[..]));
    assert_eq!(recs[1].value.as_ref().map(|v| v.len()), Some(90_000));
    broker.stop();
}

// ---------------------------------------------------------------------------
// 6. garbage / oversized frames close the connection; KIP-511 ApiVersions
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_close_connection() {
    let mut broker = Broker::start(&[]);
    let bs = broker.bootstrap();

    // (a) declared size 2_000_000_000 > socket.request.max.bytes: closed,
    // without waiting for (or allocating) the body. A 2 GB buffer, even a
    // lazily touched one, would raise the process's peak virtual size.
    let vm_peak_before = broker.proc_status_kib("VmPeak");
    let mut conn = RawConn::connect(&bs);
    {
        use std::io::Write;
        conn.stream.write_all(&2_000_000_000i32.to_be_bytes()).unwrap();
        conn.stream.write_all(&[0u8; 64]).unwrap();
    }
    conn.expect_closed(Duration::from_secs(5)).unwrap_or_else(|e| panic!("oversized frame: {e}"));
    assert!(broker.is_running(), "broker died on an oversized frame");
    if let (Some(before), Some(after)) = (vm_peak_before, broker.proc_status_kib("VmPeak")) {
        assert!(after.saturating_sub(before) < 1536 * 1024, "VmPeak grew from {before} KiB to {after} KiB: the 2 GB frame was allocated");
    }

    // (a') negative size: closed.
    let mut conn = RawConn::connect(&bs);
    {
        use std::io::Write;
        conn.stream.write_all(&(-1i32).to_be_bytes()).unwrap();
    }
    conn.expect_closed(Duration::from_secs(5)).unwrap_or_else(|e| panic!("negative frame size: {e}"));
    assert!(broker.is_running(), "broker died on a negative frame size");

    // (b) a sane size with random bytes (api key forced to an unknown one).
    let mut conn = RawConn::connect(&bs);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut garbage: Vec<u8> = (0..64)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    garbage[0] = 0x7f; // api key 0x7f3a = 32570: no such API
    garbage[1] = 0x3a;
    conn.write_frame(&garbage);
    conn.expect_closed(Duration::from_secs(5)).unwrap_or_else(|e| panic!("garbage frame: {e}"));
    assert!(broker.is_running(), "broker died on a garbage frame");

    // (c) ApiVersions v99 (header v2 as for any v3+ ApiVersions, body in the
    // v3 shape): KIP-511 says answer with a v0 response body (response header
    // v0), error UNSUPPORTED_VERSION (35) and the supported API list, and keep
    // the connection open.
    let mut conn = RawConn::connect(&bs);
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::ApiVersions as i16;
    header.request_api_version = 99;
    header.correlation_id = 4242;
    header.client_id = Some(StrBytes::from_static_str("shardlog-it-raw"));
    let mut buf = BytesMut::new();
    encode_request_header_into_buffer(&mut buf, &header).unwrap();
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("shardlog-it"))
        .with_client_software_version(StrBytes::from_static_str("0.1"))
        .encode(&mut buf, 3)
        .unwrap();
    conn.write_frame(&buf);
    let mut frame = conn.read_frame().expect("ApiVersions v99 must be answered, not dropped");
    assert_eq!(parse_response_header(&mut frame, 0), 4242, "correlation id");
    let resp = ApiVersionsResponse::decode(&mut frame, 0).expect("decode ApiVersions v0 response");
    assert_eq!(resp.error_code, 35, "UNSUPPORTED_VERSION expected: {resp:?}");
    let keys: Vec<i16> = resp.api_keys.iter().map(|k| k.api_key).collect();
    for k in [ApiKey::Produce, ApiKey::Fetch, ApiKey::ListOffsets, ApiKey::Metadata, ApiKey::ApiVersions, ApiKey::CreateTopics] {
        assert!(keys.contains(&(k as i16)), "{k:?} missing from the UNSUPPORTED_VERSION api list: {keys:?}");
    }
    // Same connection, a supported version now.
    let resp = conn.roundtrip(
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("shardlog-it"))
            .with_client_software_version(StrBytes::from_static_str("0.1")),
    );
    assert_eq!(resp.error_code, 0, "ApiVersions v3: {resp:?}");
    let fetch = resp.api_keys.iter().find(|k| k.api_key == ApiKey::Fetch as i16).expect("Fetch advertised");
    assert!(fetch.min_version <= 4 && fetch.max_version >= 12, "Fetch v4..=12 should be advertised: {fetch:?}");

    // The broker is still fine for real clients.
    let topic = "after-garbage";
    create_topic(&bs, topic, 1).await;
    let producer: FutureProducer = producer_config(&bs).create().expect("producer");
    for i in 0..10 {
        producer
            .send(FutureRecord::to(topic).key(&format!("k{i}")).payload(&format!("v{i}")), OP_TIMEOUT)
            .await
            .unwrap_or_else(|(e, _)| panic!("produce after garbage: {e}"));
    }
    drop(producer);
    let recs = consume_all(&bs, topic, 1, 10, Duration::from_secs(60));
    let values: Vec<Vec<u8>> = recs.iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(values, (0..10).map(|i| format!("v{i}").into_bytes()).collect::<Vec<_>>());
    broker.stop();
}

// ---------------------------------------------------------------------------
// 7. Metadata auto-creates topics (and doesn't when disabled)
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_auto_creates_topic() {
    let mut broker = Broker::start(&[]);
    let bs = broker.bootstrap();
    let topic = "auto-created";
    let producer: FutureProducer = producer_config(&bs).create().expect("producer");
    let d = producer
        .send(FutureRecord::to(topic).key("k").payload("v"), OP_TIMEOUT)
        .await
        .unwrap_or_else(|(e, _)| panic!("produce to a new topic (auto-create): {e}"));
    assert_eq!((d.partition, d.offset), (0, 0));
    let md = producer.client().fetch_metadata(Some(topic), OP_TIMEOUT).expect("metadata");
    let t = md.topics().iter().find(|t| t.name() == topic).expect("topic in metadata");
    assert_eq!(t.error(), None, "topic error");
    assert_eq!(t.partitions().len(), 1, "num.partitions defaults to 1");
    let p = &t.partitions()[0];
    assert_eq!(p.id(), 0);
    assert_eq!(p.error(), None);
    assert_eq!(md.brokers().len(), 1, "one broker: {:?}", md.brokers().iter().map(|b| (b.id(), b.host().to_string(), b.port())).collect::<Vec<_>>());
    let b = &md.brokers()[0];
    assert_eq!(p.leader(), b.id(), "leader is the broker");
    assert_eq!((b.host(), b.port()), ("127.0.0.1", broker.port() as i32), "advertised address is the bound one");
    drop(producer);
    broker.stop();
    drop(broker);

    let mut broker = Broker::start(&[("auto.create.topics.enable", "false")]);
    let bs = broker.bootstrap();
    let mut cfg = consumer_config(&bs);
    cfg.set("allow.auto.create.topics", "true"); // ask for it; the broker must refuse
    let c: BaseConsumer = cfg.create().unwrap();
    let md = c.fetch_metadata(Some("no-such-topic"), OP_TIMEOUT).expect("metadata");
    let t = md.topics().iter().find(|t| t.name() == "no-such-topic").expect("the requested topic is answered");
    assert_eq!(t.error(), Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART));
    let all = c.fetch_metadata(None, OP_TIMEOUT).expect("metadata (all topics)");
    assert!(all.topics().iter().all(|t| t.name() != "no-such-topic"), "topic was created although auto.create.topics.enable=false");
    drop(c);
    broker.stop();
}

// ---------------------------------------------------------------------------
// 8. ListOffsets: earliest, latest, by timestamp
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_earliest_latest_by_timestamp() {
    let mut broker = Broker::start(&[]);
    let bs = broker.bootstrap();
    let topic = "ts";
    create_topic(&bs, topic, 1).await;

    // Timestamps base+1000, base+2000, ... (an hour ago, so no retention
    // policy can touch them), in batches of 4, 4 and 2.
    let base = (now_ms() - 3_600_000) / 1000 * 1000;
    let ts = |i: i64| base + (i + 1) * 1000;
    let mut cfg = producer_config(&bs);
    cfg.set("linger.ms", "10000");
    let producer: FutureProducer = cfg.create().expect("producer");
    let mut i = 0i64;
    for group in [4, 4, 2] {
        let mut futures = Vec::new();
        for _ in 0..group {
            let key = format!("k{i}");
            let value = format!("v{i}").into_bytes();
            let rec = FutureRecord::to(topic).partition(0).key(key.as_str()).payload(&value[..]).timestamp(ts(i));
            futures.push((i, enqueue(&producer, rec).await));
            i += 1;
        }
        producer.flush(OP_TIMEOUT).expect("flush");
        for (i, f) in futures {
            let d = await_delivery(f, "produce").await.unwrap_or_else(|(e, _)| panic!("record {i}: {e}"));
            assert_eq!(d.offset, i);
        }
    }
    drop(producer);

    let c: BaseConsumer = consumer_config(&bs).create().unwrap();
    assert_eq!(c.fetch_watermarks(topic, 0, OP_TIMEOUT).expect("watermarks"), (0, 10));
    let lookup = |t: i64| -> Offset {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(t)).unwrap();
        let res = c.offsets_for_times(tpl, OP_TIMEOUT).expect("offsets_for_times");
        let e = res.find_partition(topic, 0).expect("partition in result");
        assert!(e.error().is_ok(), "offsets_for_times({t}) error: {:?}", e.error());
        e.offset()
    };
    assert_eq!(lookup(base), Offset::Offset(0), "before the first record");
    assert_eq!(lookup(base + 1000), Offset::Offset(0), "exactly the first");
    assert_eq!(lookup(base + 2500), Offset::Offset(2), "inside the first batch");
    assert_eq!(lookup(base + 5000), Offset::Offset(4), "first of the second batch");
    assert_eq!(lookup(base + 6500), Offset::Offset(6), "inside the second batch");
    assert_eq!(lookup(base + 10_000), Offset::Offset(9), "the last record");
    assert_eq!(lookup(base + 10_001), Offset::End, "after the last record: offset -1");
    drop(c);

    let recs = consume_all(&bs, topic, 1, 10, Duration::from_secs(60));
    let got: Vec<(i64, Option<i64>)> = recs.iter().map(|r| (r.offset, r.timestamp)).collect();
    let want: Vec<(i64, Option<i64>)> = (0..10).map(|i| (i, Some(ts(i)))).collect();
    assert_eq!(got, want, "CreateTime timestamps are kept");
    broker.stop();
}

// ---------------------------------------------------------------------------
// 9. CreateTopics error cases
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_errors() {
    let mut broker = Broker::start(&[("auto.create.topics.enable", "false")]);
    let bs = broker.bootstrap();
    let admin = admin_client(&bs);
    let create = |name: &'static str, parts: i32, rf: i32, validate: bool| {
        let admin = &admin;
        async move {
            let opts: AdminOptions = admin_opts().validate_only(validate);
            let res = admin.create_topics(&[NewTopic::new(name, parts, TopicReplication::Fixed(rf))], &opts).await.expect("CreateTopics request");
            assert_eq!(res.len(), 1);
            res.into_iter().next().unwrap()
        }
    };

    assert_eq!(create("ct-ok", 3, 1, false).await, Ok("ct-ok".to_string()));
    assert_eq!(create("ct-ok", 3, 1, false).await, Err(("ct-ok".to_string(), RDKafkaErrorCode::TopicAlreadyExists)));
    assert_eq!(create("bad/name", 1, 1, false).await, Err(("bad/name".to_string(), RDKafkaErrorCode::InvalidTopic)));
    assert_eq!(create("ct-rf3", 1, 3, false).await, Err(("ct-rf3".to_string(), RDKafkaErrorCode::InvalidReplicationFactor)));
    // validate_only: reports the outcome, creates nothing.
    assert_eq!(create("ct-validate", 2, 1, true).await, Ok("ct-validate".to_string()));
    assert_eq!(create("ct-ok", 3, 1, true).await, Err(("ct-ok".to_string(), RDKafkaErrorCode::TopicAlreadyExists)), "validate_only still reports errors");

    let c: BaseConsumer = consumer_config(&bs).create().unwrap();
    let md = c.fetch_metadata(None, OP_TIMEOUT).expect("metadata");
    let names: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
    assert!(names.contains(&"ct-ok"), "ct-ok listed: {names:?}");
    for absent in ["ct-validate", "bad/name", "ct-rf3"] {
        assert!(!names.contains(&absent), "{absent} must not exist: {names:?}");
    }
    let t = md.topics().iter().find(|t| t.name() == "ct-ok").unwrap();
    assert_eq!(t.partitions().len(), 3);

    // Really creating the validated topic now works (it did not exist).
    assert_eq!(create("ct-validate", 2, 1, false).await, Ok("ct-validate".to_string()));
    drop(c);
    drop(admin);
    broker.stop();
}
