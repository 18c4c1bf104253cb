//! Transactions (issue 7, Kafka KIP-98 / KIP-447), through the real
//! `shardlog` binary: librdkafka transactional producers and read_committed /
//! read_uncommitted consumers, plus raw Kafka frames (kafka-protocol crate)
//! where a test needs a producer that librdkafka would not leave idle, or
//! needs to see last_stable_offset / aborted_transactions on the wire.
//!
//! What it proves, each as Apache Kafka documents it:
//! - committed transactions are visible to read_committed consumers, aborted
//!   ones are not (but are in the log, so read_uncommitted sees them); every
//!   transaction leaves one control record (marker) per partition, which
//!   takes an offset and is never delivered as a message; read_committed
//!   Fetch answers last_stable_offset and the aborted transactions;
//! - the last stable offset (LSO) stops read_committed consumers (Fetch and
//!   ListOffsets) at the first offset of a still-open transaction;
//! - consume-transform-produce with send_offsets_to_transaction is
//!   exactly-once, also when the broker is killed (-9) with a transaction in
//!   flight and the application restarts with the same transactional.id;
//! - a second producer with the same transactional.id fences the first, whose
//!   records and commit are refused;
//! - transaction.timeout.ms above transaction.max.timeout.ms is refused with
//!   INVALID_TRANSACTION_TIMEOUT;
//! - the coordinator aborts a transaction that outlives its timeout, so an
//!   abandoned producer cannot hold the LSO (and read_committed consumers)
//!   back for ever.
//!
//! Why: exactly-once stream processing (Kafka Streams, Flink, any
//! consume-transform-produce loop) is built on exactly these guarantees.
//!
//! Every wait is a generous upper bound (a slow, shared 2-core machine);
//! nothing asserts how fast anything happened.

mod common;
mod txn_common;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::FetchRequest;
use kafka_protocol::records::RecordBatchDecoder;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use common::*;
use txn_common::*;

/// Broker settings for every test here: small `__transaction_state` and
/// `__consumer_offsets` (cheap to create), no initial rebalance delay.
const SETTINGS: &[(&str, &str)] =
    &[("transaction.state.log.num.partitions", "4"), ("offsets.topic.num.partitions", "4"), ("group.initial.rebalance.delay.ms", "0")];

/// Transactional API calls (init, commit, abort, send offsets).
const TXN_TIMEOUT: Duration = Duration::from_secs(60);

fn start(extra: &[(&str, &str)]) -> Broker {
    let mut s: Vec<(&str, &str)> = SETTINGS.to_vec();
    s.extend_from_slice(extra);
    Broker::start(&s)
}

/// A transactional producer after a successful init_transactions.
fn txn_producer(bootstrap: &str, txn_id: &str) -> FutureProducer {
    let p: FutureProducer = txn_producer_config(bootstrap, txn_id).create().expect("transactional producer");
    p.init_transactions(TXN_TIMEOUT).unwrap_or_else(|e| panic!("init_transactions({txn_id}): {e}"));
    p
}

/// Enqueue `(partition, value)` records.
fn send_all(p: &FutureProducer, topic: &str, recs: &[(i32, String)]) -> Vec<DeliveryFuture> {
    recs.iter()
        .map(|(part, v)| p.send_result(FutureRecord::<str, str>::to(topic).partition(*part).payload(v)).unwrap_or_else(|(e, _)| panic!("enqueue {v}: {e}")))
        .collect()
}

/// Wait for delivery reports; panic on any failure. Returns (partition, offset)s.
async fn delivered(futs: Vec<DeliveryFuture>, what: &str) -> Vec<(i32, i64)> {
    let mut out = Vec::new();
    for (i, f) in futs.into_iter().enumerate() {
        match tokio::time::timeout(Duration::from_secs(120), f).await {
            Ok(Ok(Ok(d))) => out.push((d.partition, d.offset)),
            Ok(Ok(Err((e, _)))) => panic!("{what}: record {i} not delivered: {e}"),
            Ok(Err(_)) => panic!("{what}: record {i}: delivery future canceled"),
            Err(_) => panic!("{what}: record {i}: no delivery report within 120 s"),
        }
    }
    out
}

/// `n` records `{tag}-{i}`, record i to partition i % partitions.
fn spread(tag: &str, n: usize, partitions: i32) -> Vec<(i32, String)> {
    (0..n).map(|i| (i as i32 % partitions, format!("{tag}-{i}"))).collect()
}

fn values_of(recs: &[Rec]) -> Vec<String> {
    recs.iter().map(value_str).collect()
}

/// partition -> values in offset order.
fn values_by_partition(recs: &[Rec]) -> BTreeMap<i32, Vec<String>> {
    by_partition(recs).into_iter().map(|(p, l)| (p, values_of(&l))).collect()
}

/// partition -> offsets in order.
fn offsets_by_partition(recs: &[Rec]) -> BTreeMap<i32, Vec<i64>> {
    by_partition(recs).into_iter().map(|(p, l)| (p, l.iter().map(|r| r.offset).collect())).collect()
}

/// The error code of a librdkafka error, and whether it is fatal (only
/// transactional API errors carry that flag).
fn txn_error(e: &KafkaError) -> (Option<RDKafkaErrorCode>, bool, bool) {
    match e {
        KafkaError::Transaction(t) => (Some(t.code()), t.is_fatal(), t.txn_requires_abort()),
        other => (other.rdkafka_error_code(), false, false),
    }
}

/// librdkafka's fenced error: it reports INVALID_PRODUCER_EPOCH and
/// PRODUCER_FENCED as its own `_FENCED` (-144); accept all three.
fn is_fenced_code(c: Option<RDKafkaErrorCode>) -> bool {
    matches!(c, Some(RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch))
}

/// Drop a client on a helper thread, bounded (close talks to the broker).
fn drop_bounded<T: Send + 'static>(x: T, what: &str) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(x);
        let _ = tx.send(());
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        panic!("{what}: close did not finish within 60 s");
    }
}

/// The crashed application's consumer: leave the group while still polling
/// (so the revoke is served), then drop it on a thread nobody waits for.
/// Closing an rdkafka BaseConsumer that is reconnecting to a restarted broker
/// can block inside librdkafka's close (seen here: the revoke is routed to the
/// main queue, which the crate's drop does not serve, and after an unsubscribe
/// the close itself never returns). A crashed application would not close it
/// at all, and the client's close is not what this test is about; the member
/// is gone from the group either way (left, or expired after its 6 s session).
fn abandon_consumer(c: BaseConsumer) {
    c.unsubscribe();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let _ = c.poll(Duration::from_millis(100));
    }
    std::thread::spawn(move || drop(c));
}

// ---------------------------------------------------------------------------
// 1. commit, abort, commit: read_committed vs read_uncommitted
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_abort_commit_read_committed_sees_only_committed() {
    let mut broker = start(&[]);
    let bs = broker.bootstrap();
    let topic = topic_name("txn-cac");
    create_topic(&bs, &topic, 2).await;

    let p = txn_producer(&bs, "txn-cac");
    for (tag, commit) in [("t1", true), ("t2", false), ("t3", true)] {
        p.begin_transaction().unwrap_or_else(|e| panic!("begin_transaction {tag}: {e}"));
        let futs = send_all(&p, &topic, &spread(tag, 10, 2));
        // In the log before the commit / abort: an aborted transaction's
        // records are written and then skipped by read_committed readers.
        p.flush(OP_TIMEOUT).unwrap_or_else(|e| panic!("flush {tag}: {e}"));
        delivered(futs, tag).await;
        if commit {
            p.commit_transaction(TXN_TIMEOUT).unwrap_or_else(|e| panic!("commit {tag}: {e}"));
        } else {
            p.abort_transaction(TXN_TIMEOUT).unwrap_or_else(|e| panic!("abort {tag}: {e}"));
        }
    }
    drop(p);

    // Kafka writes the markers after answering EndTxn; the read_committed
    // reader below waits for t3's records, i.e. for the last markers.
    let want = |tags: &[&str], part: i32| -> Vec<String> {
        tags.iter().flat_map(|t| (0..10).filter(|i| i % 2 == part as usize).map(move |i| format!("{t}-{i}"))).collect()
    };
    let rc = read_topic(&bs, &topic, 2, Isolation::ReadCommitted, 20);
    assert_eq!(rc.len(), 20, "read_committed: the 20 committed records, nothing else: {:?}", values_of(&rc));
    let rc_vals = values_by_partition(&rc);
    for part in 0..2 {
        assert_eq!(rc_vals.get(&part), Some(&want(&["t1", "t3"], part)), "read_committed, partition {part}");
    }
    let rc_offs = offsets_by_partition(&rc);
    for part in 0..2 {
        let o: Vec<i64> = (0..5).chain(12..17).collect();
        assert_eq!(rc_offs.get(&part), Some(&o), "read_committed offsets, partition {part}");
    }

    // Per partition: 5 records + 1 marker per transaction = offsets 0..18;
    // with no transaction open, LSO = high watermark.
    for iso in [Isolation::ReadCommitted, Isolation::ReadUncommitted] {
        let c = isolation_consumer(&bs, iso);
        for part in 0..2 {
            let wm = c.fetch_watermarks(&topic, part, OP_TIMEOUT).expect("fetch_watermarks");
            assert_eq!(wm, (0, 18), "{iso:?} watermarks of partition {part} (3 x (5 records + 1 marker))");
        }
    }

    let ru = read_topic(&bs, &topic, 2, Isolation::ReadUncommitted, 30);
    assert_eq!(ru.len(), 30, "read_uncommitted: all 30 records, no control records: {:?}", values_of(&ru));
    let ru_vals = values_by_partition(&ru);
    let ru_offs = offsets_by_partition(&ru);
    for part in 0..2 {
        assert_eq!(ru_vals.get(&part), Some(&want(&["t1", "t2", "t3"], part)), "read_uncommitted, partition {part}");
        let o: Vec<i64> = (0..5).chain(6..11).chain(12..17).collect();
        assert_eq!(ru_offs.get(&part), Some(&o), "read_uncommitted offsets, partition {part} (markers at 5, 11, 17)");
    }

    // On the wire: a read_committed Fetch of partition 0 from offset 0 gives
    // LSO 18, exactly one aborted transaction (t2, first offset 6) and the
    // three markers as control batches of the same producer.
    let mut conn = RawConn::connect(&bs);
    let v = version::<FetchRequest>(&mut conn, 12, 4);
    let resp = conn.roundtrip(v, &fetch_request(&topic, 0, 0, 1000, 1).with_isolation_level(1));
    let pd = &resp.responses[0].partitions[0];
    assert_eq!(pd.error_code, 0, "Fetch: {pd:?}");
    assert_eq!((pd.high_watermark, pd.last_stable_offset), (18, 18), "Fetch high watermark / LSO");
    let mut rb = pd.records.clone().expect("records");
    let batches = RecordBatchDecoder::decode_batch_info(&mut rb).expect("decode batch headers");
    let data: Vec<_> = batches.iter().filter(|b| !b.control).collect();
    let markers: Vec<i64> = batches.iter().filter(|b| b.control).map(|b| b.min_offset).collect();
    assert_eq!(markers, vec![5, 11, 17], "control batches (markers) of partition 0: {batches:?}");
    assert!(batches.iter().all(|b| b.transactional), "every batch, markers included, is transactional: {batches:?}");
    let pid = data[0].producer_id;
    assert!(pid >= 0 && batches.iter().all(|b| b.producer_id == pid), "one producer id throughout: {batches:?}");
    let aborted: Vec<(i64, i64)> = pd
        .aborted_transactions
        .as_ref()
        .expect("read_committed Fetch must carry aborted_transactions")
        .iter()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    assert_eq!(aborted, vec![(pid, 6)], "aborted_transactions of partition 0");
    broker.stop();
}

// ---------------------------------------------------------------------------
// 2. the last stable offset holds read_committed back while a txn is open
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lso_holds_read_committed_back_until_commit() {
    let mut broker = start(&[]);
    let bs = broker.bootstrap();
    let topic = topic_name("txn-lso");
    create_topic(&bs, &topic, 1).await;

    // Offsets 0..3: plain records.
    let plain: FutureProducer = producer_config(&bs).create().expect("producer");
    let futs = send_all(&plain, &topic, &spread("pre", 3, 1));
    assert_eq!(delivered(futs, "pre").await, vec![(0, 0), (0, 1), (0, 2)]);
    drop(plain);

    // Offsets 3..8: an open transaction's records, flushed into the log.
    let p = txn_producer(&bs, "txn-lso");
    p.begin_transaction().expect("begin_transaction");
    let futs = send_all(&p, &topic, &spread("open", 5, 1));
    p.flush(OP_TIMEOUT).expect("flush");
    let offs = delivered(futs, "open").await;
    assert_eq!(offs, (3..8).map(|o| (0, o)).collect::<Vec<_>>(), "open transaction's records");

    let rc = isolation_consumer(&bs, Isolation::ReadCommitted);
    let ru = isolation_consumer(&bs, Isolation::ReadUncommitted);
    assert_eq!(rc.fetch_watermarks(&topic, 0, OP_TIMEOUT).expect("watermarks"), (0, 3), "read_committed latest = LSO");
    assert_eq!(ru.fetch_watermarks(&topic, 0, OP_TIMEOUT).expect("watermarks"), (0, 8), "read_uncommitted latest = HW");
    let mut conn = RawConn::connect(&bs);
    assert_eq!(latest_offset(&mut conn, &topic, 0, 1), 3, "ListOffsets read_committed");
    assert_eq!(latest_offset(&mut conn, &topic, 0, 0), 8, "ListOffsets read_uncommitted");
    let v = version::<FetchRequest>(&mut conn, 12, 4);
    let resp = conn.roundtrip(v, &fetch_request(&topic, 0, 0, 100, 1).with_isolation_level(1));
    let pd = &resp.responses[0].partitions[0];
    assert_eq!((pd.error_code, pd.high_watermark, pd.last_stable_offset), (0, 8, 3), "read_committed Fetch");

    // A read_committed consumer gets the 3 plain records and, for 5 s more,
    // nothing of the open transaction.
    assign_all(&rc, &topic, 1);
    let got = poll_recs(&rc, 3, Duration::from_secs(60), Duration::from_secs(5));
    assert_eq!(values_of(&got), vec!["pre-0", "pre-1", "pre-2"], "read_committed while the transaction is open");

    p.commit_transaction(TXN_TIMEOUT).expect("commit_transaction");
    let got = poll_recs(&rc, 5, Duration::from_secs(60), Duration::from_secs(2));
    let got: Vec<(i64, String)> = got.iter().map(|r| (r.offset, value_str(r))).collect();
    let want: Vec<(i64, String)> = (0..5).map(|i| (3 + i as i64, format!("open-{i}"))).collect();
    assert_eq!(got, want, "read_committed after the commit");
    assert_eq!(rc.fetch_watermarks(&topic, 0, OP_TIMEOUT).expect("watermarks"), (0, 9), "LSO after the commit marker");
    drop(p);
    broker.stop();
}

// ---------------------------------------------------------------------------
// 3. consume-transform-produce, exactly once across kill -9
// ---------------------------------------------------------------------------

const CTP_N: usize = 2000;
const CTP_PARTS: i32 = 3;
const CHUNK: usize = 100;
/// Committed transactions before the crash.
const CRASH_AFTER: usize = 5;

fn ctp_consumer(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let mut c: ClientConfig = client_config(bootstrap);
    c.set("group.id", group)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100");
    let c: BaseConsumer = c.create().expect("group consumer");
    c.subscribe(&[topic]).expect("subscribe");
    c
}

/// Poll up to CHUNK records; stop early after 1 s without one.
fn poll_chunk(c: &BaseConsumer) -> Vec<(i32, i64, String)> {
    let mut out = Vec::new();
    let mut idle_since = Instant::now();
    while out.len() < CHUNK && idle_since.elapsed() < Duration::from_secs(1) {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let v = String::from_utf8(m.payload().unwrap_or_default().to_vec()).expect("utf8");
                out.push((m.partition(), m.offset(), v));
                idle_since = Instant::now();
            }
            Some(Err(e)) => eprintln!("consumer error (ignored, keeps polling): {e}"),
            None => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_exactly_once_across_kill9() {
    let mut broker = start(&[]);
    let bs = broker.bootstrap();
    let input = topic_name("ctp-in");
    let output = topic_name("ctp-out");
    create_topic(&bs, &input, CTP_PARTS).await;
    create_topic(&bs, &output, CTP_PARTS).await;
    let group = "ctp-group";
    let txn_id = "ctp-txn";

    // Input: record i on partition i % 3, value in-{i:05}.
    let plain: FutureProducer = producer_config(&bs).create().expect("producer");
    let recs: Vec<(i32, String)> = (0..CTP_N).map(|i| (i as i32 % CTP_PARTS, format!("in-{i:05}"))).collect();
    let offs = delivered(send_all(&plain, &input, &recs), "input").await;
    drop(plain);
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in offs {
        let e = ends.entry(p).or_insert(0);
        *e = (*e).max(o + 1);
    }

    let mut producer = txn_producer(&bs, txn_id);
    let mut consumer = ctp_consumer(&bs, group, &input);
    let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
    let mut txns = 0usize;
    let mut in_flight_at_crash: Option<usize> = None;
    let deadline = Instant::now() + Duration::from_secs(420);
    while committed != ends {
        assert!(Instant::now() < deadline, "not done within 420 s: committed {committed:?}, input ends {ends:?}, {txns} transactions");
        let chunk = poll_chunk(&consumer);
        if chunk.is_empty() {
            continue;
        }
        producer.begin_transaction().expect("begin_transaction");
        let out: Vec<(i32, String)> = chunk.iter().map(|(p, _, v)| (*p, format!("out-{v}"))).collect();
        let futs = send_all(&producer, &output, &out);
        let pos = consumer.position().expect("position");
        let cgm = consumer.group_metadata().expect("group metadata");
        producer.send_offsets_to_transaction(&pos, &cgm, TXN_TIMEOUT).expect("send_offsets_to_transaction");

        if in_flight_at_crash.is_none() && txns == CRASH_AFTER {
            // Crash with this transaction open: its output records are in
            // the log, its offsets are pending in the group coordinator.
            producer.flush(OP_TIMEOUT).expect("flush the in-flight transaction");
            delivered(futs, "in-flight transaction").await;
            in_flight_at_crash = Some(out.len());
            broker.kill9();
            broker.restart();
            // The application restarts too: same transactional.id, same group.
            drop_bounded(producer, "old producer");
            abandon_consumer(consumer);
            producer = txn_producer(&bs, txn_id);
            consumer = ctp_consumer(&bs, group, &input);
            continue;
        }

        producer.commit_transaction(TXN_TIMEOUT).expect("commit_transaction");
        delivered(futs, "committed transaction").await;
        txns += 1;
        for e in pos.elements() {
            if let Offset::Offset(o) = e.offset() {
                committed.insert(e.partition(), o);
            }
        }
    }
    let in_flight = in_flight_at_crash.expect("the crash happened");
    assert!(txns > CRASH_AFTER, "transactions committed after the restart: {txns}");
    drop_bounded(producer, "producer");

    // The group's committed offsets become the input's ends (once the last
    // transaction's markers are written, which Kafka does after EndTxn).
    retry(&format!("group {group}: committed offsets = input ends {ends:?}"), Duration::from_secs(30), || {
        let mut tpl = TopicPartitionList::new();
        for p in 0..CTP_PARTS {
            tpl.add_partition(&input, p);
        }
        let got = consumer.committed_offsets(tpl, OP_TIMEOUT).map_err(|e| e.to_string())?;
        let got: BTreeMap<i32, i64> = got.elements().iter().map(|e| (e.partition(), if let Offset::Offset(o) = e.offset() { o } else { -1 })).collect();
        if got == ends {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    drop_bounded(consumer, "consumer");

    // read_committed: every input record exactly once, on its input's
    // partition, in input order.
    let rc = read_topic(&bs, &output, CTP_PARTS, Isolation::ReadCommitted, CTP_N);
    let mut seen = vec![0u32; CTP_N];
    for r in &rc {
        let v = value_str(r);
        let i: usize = v.strip_prefix("out-in-").and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("unexpected output value {v:?}"));
        seen[i] += 1;
        assert_eq!(r.partition, i as i32 % CTP_PARTS, "{v} on output partition {}", r.partition);
    }
    let missing: Vec<usize> = (0..CTP_N).filter(|&i| seen[i] == 0).collect();
    let dups: Vec<usize> = (0..CTP_N).filter(|&i| seen[i] > 1).collect();
    assert!(
        missing.is_empty() && dups.is_empty() && rc.len() == CTP_N,
        "read_committed output: {} records, {} inputs missing (first {:?}), {} duplicated (first {:?})",
        rc.len(),
        missing.len(),
        &missing[..missing.len().min(5)],
        dups.len(),
        &dups[..dups.len().min(5)]
    );
    for (p, list) in by_partition(&rc) {
        let idx: Vec<usize> = list.iter().map(|r| value_str(r)[7..].parse().unwrap()).collect();
        assert!(idx.windows(2).all(|w| w[0] < w[1]), "output partition {p} is not in input order");
    }

    // read_uncommitted: the aborted in-flight transaction's records are in
    // the log too (so the crash really hit an open transaction).
    let ru = read_topic(&bs, &output, CTP_PARTS, Isolation::ReadUncommitted, CTP_N + in_flight);
    assert_eq!(ru.len(), CTP_N + in_flight, "read_uncommitted output: the committed records plus the {in_flight} of the aborted transaction");
    broker.stop();
}

// ---------------------------------------------------------------------------
// 4. a second producer with the same transactional.id fences the first
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_transactional_id_fences_the_older_producer() {
    let mut broker = start(&[]);
    let bs = broker.bootstrap();
    let topic = topic_name("txn-fence");
    create_topic(&bs, &topic, 1).await;
    let txn = "txn-fence";

    let a = txn_producer(&bs, txn);
    a.begin_transaction().expect("A begin_transaction");
    let futs = send_all(&a, &topic, &spread("a1", 5, 1));
    a.flush(OP_TIMEOUT).expect("A flush");
    delivered(futs, "A's first records").await;

    // B's init_transactions bumps the epoch and aborts A's open transaction.
    let b = txn_producer(&bs, txn);

    // A carries on as if nothing happened.
    let a2: Vec<DeliveryFuture> =
        spread("a2", 5, 1).iter().filter_map(|(part, v)| a.send_result(FutureRecord::<str, str>::to(&topic).partition(*part).payload(v)).ok()).collect();
    let err = a.commit_transaction(TXN_TIMEOUT).expect_err("the fenced producer's commit must fail");
    let (code, fatal, abortable) = txn_error(&err);
    assert!(is_fenced_code(code), "A's commit: {err} ({code:?}); expected a fenced error (_FENCED, PRODUCER_FENCED or INVALID_PRODUCER_EPOCH)");
    if !fatal {
        // librdkafka makes a PRODUCER_FENCED Produce answer abortable; the
        // abort then meets the coordinator, which fences it for good.
        assert!(abortable, "A's commit error is neither fatal nor abortable: {err}");
        let err = a.abort_transaction(TXN_TIMEOUT).expect_err("the fenced producer's abort must fail");
        let (code, fatal, _) = txn_error(&err);
        assert!(is_fenced_code(code) && fatal, "A's abort: {err} ({code:?}, fatal {fatal}); expected a fatal fenced error");
    }
    // Dropping A purges whatever it still holds, so every a2 future resolves.
    drop_bounded(a, "fenced producer A");
    for (i, f) in a2.into_iter().enumerate() {
        match tokio::time::timeout(Duration::from_secs(120), f).await {
            Ok(Ok(Ok(d))) => panic!("A's record a2-{i} was acknowledged at {}/{} after A was fenced", d.partition, d.offset),
            Ok(_) => {} // failed or canceled
            Err(_) => panic!("A's record a2-{i}: no delivery report within 120 s of dropping A"),
        }
    }

    b.begin_transaction().expect("B begin_transaction");
    let futs = send_all(&b, &topic, &spread("b", 5, 1));
    b.commit_transaction(TXN_TIMEOUT).expect("B commit_transaction");
    delivered(futs, "B's records").await;
    drop(b);

    let rc = read_topic(&bs, &topic, 1, Isolation::ReadCommitted, 5);
    assert_eq!(values_of(&rc), values("b", 0, 5), "read_committed: only B's committed records");
    let ru = read_topic(&bs, &topic, 1, Isolation::ReadUncommitted, 10);
    let want: Vec<String> = values("a1", 0, 5).into_iter().chain(values("b", 0, 5)).collect();
    assert_eq!(values_of(&ru), want, "read_uncommitted: A's aborted first records and B's; none written after the fence");
    broker.stop();
}

// ---------------------------------------------------------------------------
// 5. transaction.timeout.ms above transaction.max.timeout.ms
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_timeout_above_broker_max_is_rejected() {
    let mut broker = start(&[("transaction.max.timeout.ms", "60000")]);
    let bs = broker.bootstrap();

    // Raw: the limit is inclusive, and a timeout must be positive.
    let txn = "txn-timeout-raw";
    find_txn_coordinator(&bs, txn);
    let mut conn = RawConn::connect(&bs);
    for bad in [60_001, 120_000, 0] {
        let (err, _) = init_producer_id_raw(&mut conn, Some(txn), bad);
        assert_eq!(err, code::INVALID_TRANSACTION_TIMEOUT, "InitProducerId with transaction timeout {bad} ms (max 60000)");
    }
    let pid = init_producer_id(&mut conn, Some(txn), 60_000);
    assert!(pid.id >= 0, "InitProducerId at exactly the maximum: {pid:?}");
    drop(conn);

    // librdkafka: init_transactions fails with INVALID_TRANSACTION_TIMEOUT.
    let mut cfg = txn_producer_config(&bs, "txn-timeout-rd");
    cfg.set("transaction.timeout.ms", "120000");
    let p: FutureProducer = cfg.create().expect("producer");
    let err = p.init_transactions(TXN_TIMEOUT).expect_err("init_transactions with transaction.timeout.ms=120000 > transaction.max.timeout.ms=60000");
    let (code, _, _) = txn_error(&err);
    assert_eq!(code, Some(RDKafkaErrorCode::InvalidTransactionTimeout), "init_transactions error: {err}");
    drop(p);
    broker.stop();
}

// ---------------------------------------------------------------------------
// 6. the coordinator aborts a transaction that outlives its timeout
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_transaction_is_aborted_by_the_coordinator() {
    let mut broker = start(&[("transaction.abort.timed.out.transaction.cleanup.interval.ms", "500")]);
    let bs = broker.bootstrap();
    let topic = topic_name("txn-expire");
    create_topic(&bs, &topic, 1).await;

    // An abandoned producer (raw, so nothing keeps it alive): a 3 s
    // transaction with 3 records, then silence.
    let txn = "txn-abandoned";
    find_txn_coordinator(&bs, txn);
    let mut conn = RawConn::connect(&bs);
    let zombie = init_producer_id(&mut conn, Some(txn), 3000);
    let t0 = Instant::now(); // the transaction starts after this
    assert_eq!(add_partitions_to_txn(&mut conn, txn, zombie, &topic, &[0]), vec![(0, code::NONE)], "AddPartitionsToTxn");
    let (err, base) = produce(&mut conn, &topic, 0, Some(txn), pid_batch(zombie, 0, true, &values("abandoned", 0, 3)));
    assert_eq!((err, base), (code::NONE, 0), "abandoned transaction's produce");
    let lso = latest_offset(&mut conn, &topic, 0, 1);
    if t0.elapsed() < Duration::from_millis(2500) {
        // Answered well within the 3 s timeout: the transaction is open.
        assert_eq!(lso, 0, "LSO while the abandoned transaction is open");
    }
    drop(conn);

    // Another producer commits 4 records meanwhile.
    let p = txn_producer(&bs, "txn-survivor");
    p.begin_transaction().expect("begin_transaction");
    let futs = send_all(&p, &topic, &spread("committed", 4, 1));
    p.commit_transaction(TXN_TIMEOUT).expect("commit_transaction");
    delivered(futs, "survivor").await;
    drop(p);

    // Within the bound the coordinator aborts the abandoned transaction:
    // the LSO catches up with the high watermark.
    let mut conn = RawConn::connect(&bs);
    let hw = retry("timed-out transaction aborted (LSO = high watermark)", Duration::from_secs(60), || {
        let lso = latest_offset(&mut conn, &topic, 0, 1);
        let hw = latest_offset(&mut conn, &topic, 0, 0);
        if lso == hw {
            Ok(hw)
        } else {
            Err(format!("LSO {lso}, high watermark {hw}"))
        }
    });
    assert_eq!(hw, 3 + 1 + 4 + 1, "3 abandoned + their abort marker + 4 committed + their commit marker");

    let rc = read_topic(&bs, &topic, 1, Isolation::ReadCommitted, 4);
    assert_eq!(values_of(&rc), values("committed", 0, 4), "read_committed: the committed records, never the abandoned ones");

    // The zombie was fenced by the abort: it can neither commit nor write.
    let err = end_txn(&mut conn, txn, zombie, true);
    assert!(code::fenced(err), "EndTxn(commit) from the timed-out epoch: error {err}, expected 47 or 90");
    let (err, _) = produce(&mut conn, &topic, 0, Some(txn), pid_batch(zombie, 3, true, &values("abandoned", 3, 3)));
    assert!(code::fenced(err), "Produce from the timed-out epoch: error {err}, expected 47 or 90");
    assert_eq!(latest_offset(&mut conn, &topic, 0, 0), hw, "the zombie wrote nothing");
    let rc = read_topic(&bs, &topic, 1, Isolation::ReadCommitted, 4);
    assert_eq!(values_of(&rc), values("committed", 0, 4), "read_committed after the zombie's attempts");
    broker.stop();
}
