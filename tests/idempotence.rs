//! Idempotent producers (issue 7, Kafka KIP-98), through the real `shardlog`
//! binary: librdkafka with `enable.idempotence=true`, and raw Kafka frames
//! (kafka-protocol crate) where the test must control producer id, epoch and
//! sequence numbers byte for byte.
//!
//! What it proves, each as Apache Kafka documents it:
//! - a librdkafka idempotent producer that keeps sending and retrying while
//!   the broker is stopped (SIGTERM) or killed (kill -9) and restarted ends
//!   with every record in the log exactly once, in produce order per
//!   partition (the broker de-duplicates the retried batches);
//! - InitProducerId without a transactional id hands out a fresh producer id
//!   at epoch 0; a batch re-sent with the same producer id / epoch / sequence
//!   is answered with error 0 and its ORIGINAL base offset and is not
//!   appended again; a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER (45);
//!   this producer state survives a SIGTERM restart and a kill -9;
//! - a Produce with an epoch older than the one InitProducerId last handed out
//!   for a transactional id is refused (INVALID_PRODUCER_EPOCH or
//!   PRODUCER_FENCED), so a zombie producer cannot write.
//!
//! Why: without broker-side de-duplication a producer retry after a lost
//! response (the normal case around a broker restart) duplicates records;
//! exactly-once pipelines and every modern client's default
//! (`enable.idempotence=true`) depend on it.
//!
//! Every wait is a generous upper bound (a slow, shared 2-core machine);
//! nothing asserts how fast anything happened.

mod common;
mod txn_common;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use common::*;
use txn_common::*;

/// Broker settings for every test here: a small `__transaction_state` (only
/// the fencing test uses it) so creating it is cheap.
const SETTINGS: &[(&str, &str)] = &[("transaction.state.log.num.partitions", "4")];

// ---------------------------------------------------------------------------
// 1. librdkafka idempotent producer across a broker restart
// ---------------------------------------------------------------------------

const N: usize = 20_000;
const PARTS: i32 = 3;
/// Records enqueued but not yet acknowledged, at most.
const WINDOW: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Crash {
    Sigterm,
    Kill9,
}

fn idem_value(i: usize) -> String {
    format!("idem-{i:06}")
}

/// Enqueue a record, retrying on a full local queue.
async fn enqueue(producer: &FutureProducer, topic: &str, partition: i32, value: &str) -> DeliveryFuture {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match producer.send_result(FutureRecord::<str, str>::to(topic).partition(partition).payload(value)) {
            Ok(f) => return f,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err((e, _)) => panic!("enqueue failed: {e}"),
        }
    }
}

/// Produce records 0..N (record i to partition i % PARTS) with an idempotent
/// producer, at most WINDOW unacknowledged at a time; `acked` counts the
/// acknowledgements as they come. Returns (partition, offset) per record.
async fn produce_idempotent(bootstrap: String, topic: String, acked: Arc<AtomicUsize>) -> Vec<(i32, i64)> {
    let mut cfg = producer_config(&bootstrap);
    cfg.set("enable.idempotence", "true")
        .set("acks", "all")
        // Generous: the records enqueued around the restart wait for it.
        .set("message.timeout.ms", "300000");
    let producer: FutureProducer = cfg.create().expect("idempotent producer");
    let mut pending: VecDeque<(usize, DeliveryFuture)> = VecDeque::new();
    let mut out = vec![(-1, -1); N];
    let mut settle = |i: usize, r: rdkafka::producer::future_producer::OwnedDeliveryResult| match r {
        Ok(d) => {
            out[i] = (d.partition, d.offset);
            acked.fetch_add(1, Ordering::SeqCst);
        }
        Err((e, _)) => panic!("record {i} was not delivered by the idempotent producer: {e}"),
    };
    for i in 0..N {
        while pending.len() >= WINDOW {
            let (j, f) = pending.pop_front().unwrap();
            settle(j, await_delivery(f, j).await);
        }
        let v = idem_value(i);
        pending.push_back((i, enqueue(&producer, &topic, i as i32 % PARTS, &v).await));
    }
    while let Some((j, f)) = pending.pop_front() {
        settle(j, await_delivery(f, j).await);
    }
    out
}

async fn await_delivery(f: DeliveryFuture, i: usize) -> rdkafka::producer::future_producer::OwnedDeliveryResult {
    match tokio::time::timeout(Duration::from_secs(360), f).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => panic!("record {i}: delivery future canceled"),
        Err(_) => panic!("record {i}: no delivery report within 360 s"),
    }
}

async fn idempotent_producer_survives(crash: Crash) {
    let mut broker = Broker::start(SETTINGS);
    let bs = broker.bootstrap();
    let topic = topic_name(match crash {
        Crash::Sigterm => "idem-sigterm",
        Crash::Kill9 => "idem-kill9",
    });
    create_topic(&bs, &topic, PARTS).await;

    let acked = Arc::new(AtomicUsize::new(0));
    let task = tokio::spawn(produce_idempotent(bs.clone(), topic.clone(), acked.clone()));

    // Restart midway while the producer keeps enqueueing (up to WINDOW
    // records beyond the last acknowledgement) and retrying.
    let deadline = Instant::now() + Duration::from_secs(300);
    while acked.load(Ordering::SeqCst) < N / 2 {
        assert!(!task.is_finished(), "producer task ended before half the records were acknowledged");
        assert!(Instant::now() < deadline, "only {} of {N} records acknowledged within 300 s", acked.load(Ordering::SeqCst));
        std::thread::sleep(Duration::from_millis(5));
    }
    let at_crash = acked.load(Ordering::SeqCst);
    match crash {
        Crash::Sigterm => broker.stop(),
        Crash::Kill9 => broker.kill9(),
    }
    broker.restart();
    assert_eq!(broker.bootstrap(), bs, "restart keeps the port");

    let delivered = match tokio::time::timeout(Duration::from_secs(600), task).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("producer task: {e}"),
        Err(_) => panic!("producer did not finish within 600 s"),
    };
    eprintln!("{crash:?}: {at_crash} of {N} acknowledged at the crash");
    assert!(at_crash < N, "every record was acknowledged before the {crash:?}: the restart tested nothing");

    // Every acknowledged record sits in the partition it was sent to; the
    // acknowledged offsets of a partition are exactly 0..count, in produce
    // order (one offset per record: nothing was appended twice).
    let mut per: BTreeMap<i32, Vec<(i64, usize)>> = BTreeMap::new();
    for (i, &(p, o)) in delivered.iter().enumerate() {
        assert_eq!(p, i as i32 % PARTS, "record {i} acknowledged on partition {p}");
        per.entry(p).or_default().push((o, i));
    }
    for (p, list) in &per {
        let offsets: Vec<i64> = list.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (0..list.len() as i64).collect::<Vec<_>>(), "partition {p}: acknowledged offsets are not 0..{} in produce order", list.len());
    }

    // The log holds exactly the N records: high watermarks add up to N.
    let c: BaseConsumer = consumer_config(&bs).create().unwrap();
    for p in 0..PARTS {
        let want = per.get(&p).map_or(0, |l| l.len()) as i64;
        let wm = c.fetch_watermarks(&topic, p, OP_TIMEOUT).expect("fetch_watermarks");
        assert_eq!(wm, (0, want), "partition {p}: watermarks (a duplicate or lost batch changes the high watermark)");
    }
    drop(c);

    // Read it all back: each record once, at its acknowledged offset, in order.
    let recs = consume_all(&bs, &topic, PARTS, N, Duration::from_secs(180));
    assert_eq!(recs.len(), N, "records consumed");
    let mut seen = vec![false; N];
    for r in &recs {
        let v = value_str(r);
        let i: usize = v.strip_prefix("idem-").and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("unexpected value {v:?}"));
        assert!(i < N && !seen[i], "record {v} consumed twice (or out of range)");
        seen[i] = true;
        assert_eq!((r.partition, r.offset), delivered[i], "record {v} is not where its acknowledgement put it");
    }
    for (p, list) in by_partition(&recs) {
        let idx: Vec<usize> = list.iter().map(|r| value_str(r)[5..].parse().unwrap()).collect();
        assert!(idx.windows(2).all(|w| w[0] < w[1]), "partition {p} is not in produce order");
    }
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_exactly_once_across_sigterm_restart() {
    idempotent_producer_survives(Crash::Sigterm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_exactly_once_across_kill9_restart() {
    idempotent_producer_survives(Crash::Kill9).await;
}

// ---------------------------------------------------------------------------
// 2. raw protocol: producer ids, duplicate batches, sequence gaps, restarts
// ---------------------------------------------------------------------------

/// Produce `batch`, assert error 0 and base offset `want`, and that the high
/// watermark is then `hw`.
fn produce_at(conn: &mut RawConn, topic: &str, batch: &bytes::Bytes, want: i64, hw: i64, what: &str) {
    let (err, base) = produce(conn, topic, 0, None, batch.clone());
    assert_eq!((err, base), (code::NONE, want), "{what}: (error, base offset)");
    assert_eq!(latest_offset(conn, topic, 0, 0), hw, "{what}: high watermark afterwards");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_duplicates_and_sequence_gaps_across_restarts() {
    let mut broker = Broker::start(SETTINGS);
    let bs = broker.bootstrap();
    let topic = topic_name("idem-raw");
    create_topic(&bs, &topic, 1).await;
    let mut conn = RawConn::connect(&bs);

    // InitProducerId without a transactional id: a new id each time, epoch 0.
    // (librdkafka sends transaction timeout -1, the Java client
    // Integer.MAX_VALUE; without a transactional id the broker ignores it.)
    let (err, pid) = init_producer_id_raw(&mut conn, None, -1);
    assert_eq!(err, code::NONE, "InitProducerId (idempotent)");
    assert!(pid.id >= 0, "producer id {pid:?}");
    assert_eq!(pid.epoch, 0, "a new idempotent producer starts at epoch 0");
    let (err, other) = init_producer_id_raw(&mut conn, None, i32::MAX);
    assert_eq!(err, code::NONE, "second InitProducerId (idempotent)");
    assert!(other.id >= 0 && other.id != pid.id, "two InitProducerId calls gave {pid:?} and {other:?}");
    assert_eq!(other.epoch, 0);

    // Batches of 5 records: sequences 0-4, 5-9, 10-14, ...
    let b = |k: i32| pid_batch(pid, 5 * k, false, &values("idem-raw", 5 * k as usize, 5));
    let (b0, b1, b2, b3) = (b(0), b(1), b(2), b(3));

    produce_at(&mut conn, &topic, &b0, 0, 5, "seq 0-4 (first batch)");
    produce_at(&mut conn, &topic, &b0, 0, 5, "seq 0-4 re-sent: duplicate, original offset, no append");
    produce_at(&mut conn, &topic, &b1, 5, 10, "seq 5-9");
    produce_at(&mut conn, &topic, &b1, 5, 10, "seq 5-9 re-sent (the last batch)");
    produce_at(&mut conn, &topic, &b0, 0, 10, "seq 0-4 re-sent after seq 5-9 (within the last 5 batches)");

    // A gap: the broker expects sequence 10 next.
    let gap = pid_batch(pid, 20, false, &values("idem-raw-gap", 0, 5));
    let (err, _) = produce(&mut conn, &topic, 0, None, gap.clone());
    assert_eq!(err, code::OUT_OF_ORDER_SEQUENCE_NUMBER, "base sequence 20 when 10 is expected");
    assert_eq!(latest_offset(&mut conn, &topic, 0, 0), 10, "a refused batch appends nothing");

    // The second producer has its own sequence space: its seq 0 is new.
    let o0 = pid_batch(other, 0, false, &values("idem-raw-other", 0, 2));
    produce_at(&mut conn, &topic, &o0, 10, 12, "other producer, seq 0-1");
    drop(conn);

    // ---- SIGTERM + restart: the producer state is kept.
    broker.stop();
    broker.restart();
    let mut conn = RawConn::connect(&bs);
    produce_at(&mut conn, &topic, &b1, 5, 12, "after SIGTERM restart: seq 5-9 (last batch) re-sent");
    produce_at(&mut conn, &topic, &o0, 10, 12, "after SIGTERM restart: other producer's seq 0-1 re-sent");
    // Stricter than Apache Kafka, whose producer snapshot keeps only the last
    // batch per producer (it may answer 45 here); shardlog keeps the last 5.
    produce_at(&mut conn, &topic, &b0, 0, 12, "after SIGTERM restart: seq 0-4 re-sent (earlier batch)");
    let (err, _) = produce(&mut conn, &topic, 0, None, gap.clone());
    assert_eq!(err, code::OUT_OF_ORDER_SEQUENCE_NUMBER, "after SIGTERM restart: a sequence gap is still refused (the state was not reset)");
    produce_at(&mut conn, &topic, &b2, 12, 17, "after SIGTERM restart: seq 10-14 continues");
    drop(conn);

    // ---- kill -9 + restart: the state is rebuilt from what was on disk.
    broker.kill9();
    broker.restart();
    let mut conn = RawConn::connect(&bs);
    produce_at(&mut conn, &topic, &b2, 12, 17, "after kill -9: seq 10-14 (last batch) re-sent");
    // Apache Kafka rebuilds the last 5 batches by replaying the log after an
    // unclean shutdown (only from its last snapshot on); shardlog must too.
    produce_at(&mut conn, &topic, &b1, 5, 17, "after kill -9: seq 5-9 re-sent (earlier batch)");
    let (err, _) = produce(&mut conn, &topic, 0, None, gap.clone());
    assert_eq!(err, code::OUT_OF_ORDER_SEQUENCE_NUMBER, "after kill -9: a sequence gap is still refused");
    assert_eq!(latest_offset(&mut conn, &topic, 0, 0), 17);
    produce_at(&mut conn, &topic, &b3, 17, 22, "after kill -9: seq 15-19 continues");
    drop(conn);

    // What a consumer reads: every batch once.
    let want: Vec<String> = values("idem-raw", 0, 10).into_iter().chain(values("idem-raw-other", 0, 2)).chain(values("idem-raw", 10, 10)).collect();
    let recs = read_topic(&bs, &topic, 1, Isolation::ReadUncommitted, want.len());
    let got: Vec<(i64, String)> = recs.iter().map(|r| (r.offset, value_str(r))).collect();
    let want: Vec<(i64, String)> = want.into_iter().enumerate().map(|(o, v)| (o as i64, v)).collect();
    assert_eq!(got, want, "the log holds each batch once");
    broker.stop();
}

// ---------------------------------------------------------------------------
// 3. an old epoch is fenced on Produce
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_with_old_epoch_is_fenced() {
    let mut broker = Broker::start(SETTINGS);
    let bs = broker.bootstrap();
    let topic = topic_name("idem-fence");
    create_topic(&bs, &topic, 1).await;
    let txn = "idem-fence-txn";

    let (host, port) = find_txn_coordinator(&bs, txn);
    assert_eq!((host.as_str(), port), ("127.0.0.1", broker.port() as i32), "the single broker is the transaction coordinator");

    let mut conn = RawConn::connect(&bs);
    let old = init_producer_id(&mut conn, Some(txn), 60_000);
    assert!(old.id >= 0 && old.epoch >= 0, "InitProducerId({txn}): {old:?}");
    assert_eq!(add_partitions_to_txn(&mut conn, txn, old, &topic, &[0]), vec![(0, code::NONE)], "AddPartitionsToTxn (old epoch)");
    let (err, base) = produce(&mut conn, &topic, 0, Some(txn), pid_batch(old, 0, true, &values("old", 0, 3)));
    assert_eq!((err, base), (code::NONE, 0), "transactional produce with the current epoch");

    // A second InitProducerId for the same transactional id: same producer
    // id, higher epoch (the open transaction of the old epoch is aborted).
    let new = init_producer_id(&mut conn, Some(txn), 60_000);
    assert_eq!(new.id, old.id, "InitProducerId keeps the producer id of a transactional id");
    assert!(new.epoch > old.epoch, "InitProducerId must bump the epoch: {old:?} -> {new:?}");

    let hw = latest_offset(&mut conn, &topic, 0, 0);
    let (err, _) = produce(&mut conn, &topic, 0, Some(txn), pid_batch(old, 3, true, &values("old", 3, 3)));
    assert!(
        code::fenced(err),
        "Produce with the old epoch {} (current {}): error {err}, expected INVALID_PRODUCER_EPOCH (47) or PRODUCER_FENCED (90)",
        old.epoch,
        new.epoch
    );
    assert_eq!(latest_offset(&mut conn, &topic, 0, 0), hw, "the fenced batch appended nothing");

    // The new epoch writes and commits normally.
    assert_eq!(add_partitions_to_txn(&mut conn, txn, new, &topic, &[0]), vec![(0, code::NONE)], "AddPartitionsToTxn (new epoch)");
    let (err, _) = produce(&mut conn, &topic, 0, Some(txn), pid_batch(new, 0, true, &values("new", 0, 3)));
    assert_eq!(err, code::NONE, "transactional produce with the new epoch");
    assert_eq!(end_txn(&mut conn, txn, new, true), code::NONE, "EndTxn(commit) with the new epoch");
    drop(conn);

    let recs = read_topic(&bs, &topic, 1, Isolation::ReadCommitted, 3);
    let got: Vec<String> = recs.iter().map(value_str).collect();
    assert_eq!(got, values("new", 0, 3), "read_committed sees only the new epoch's committed records");
    broker.stop();
}
