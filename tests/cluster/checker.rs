//! The load driver and the checker for lost acknowledged writes.
//!
//! - [`Load`]: an idempotent, acks=all librdkafka `FutureProducer` on its own
//!   thread, producing unique values `"{prefix}-{partition}-{seq}"` to every
//!   partition of a topic until stopped, recording every delivery report (the
//!   offset, or the error) with its time;
//! - [`read_all`]: a fresh assign-only consumer that reads every partition from
//!   the beginning up to the high watermark it read first;
//! - [`check`]: the pure comparison of what was acknowledged, refused and read:
//!   lost acknowledged records, duplicates, an acknowledged offset read with
//!   another value, gaps in a partition's offsets, refused records readable;
//! - [`replica_bytes`] and [`compare_replicas`]: a partition's `.log` files
//!   concatenated in name order, equal on every replica.
//!
//! The unit tests at the end feed [`check`] and [`compare_replicas`] hand-made
//! inputs, so each finding is known to be reported.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

pub use crate::common::whole_batches_len;

// ---------------------------------------------------------------------------
// What the producer and the consumer saw
// ---------------------------------------------------------------------------

/// A record the producer got an acknowledgement for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

/// A record the producer got an error for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub partition: i32,
    pub value: String,
    /// The error as text (its code's name).
    pub error: String,
    /// The broker certainly did not append it (e.g. NOT_ENOUGH_REPLICAS): it
    /// must never be readable. A timeout or NOT_ENOUGH_REPLICAS_AFTER_APPEND
    /// is not definite: the record may or may not be in the log.
    pub definite: bool,
}

/// A record the checker's consumer read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

/// Partition -> (log start offset, high watermark).
pub type Bounds = BTreeMap<i32, (i64, i64)>;

/// Whether a final produce error means the broker did not append the record.
pub fn refusal_is_definite(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        NotEnoughReplicas
            | InvalidRecord
            | MessageSizeTooLarge
            | MessageBatchTooLarge
            | InvalidMessage
            | InvalidRequiredAcks
            | TopicAuthorizationFailed
            | UnknownTopicOrPartition
            | InvalidTimestamp
    )
}

/// A Kafka error code (from a raw Produce answer) as [`Refused::definite`] sees it.
pub fn kafka_code_is_definite_refusal(code: i16) -> bool {
    // NOT_ENOUGH_REPLICAS, CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE,
    // INVALID_REQUIRED_ACKS, INVALID_TIMESTAMP, INVALID_RECORD.
    matches!(code, 19 | 2 | 10 | 18 | 21 | 32 | 87)
}

// ---------------------------------------------------------------------------
// The check
// ---------------------------------------------------------------------------

/// What [`check`] found; clean when every list is empty.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Acknowledged records whose value was not read anywhere.
    pub lost: Vec<Acked>,
    /// Values read at more than one (partition, offset).
    pub duplicates: Vec<(String, Vec<(i32, i64)>)>,
    /// An acknowledged (partition, offset) read with another value: (acked, value read).
    pub mismatched: Vec<(Acked, String)>,
    /// An acknowledged value read at another (partition, offset) than acknowledged
    /// (besides [`Report::mismatched`] for the offset itself): (acked, where read).
    pub moved: Vec<(Acked, (i32, i64))>,
    /// One (partition, offset) read twice with different values: (partition, offset, values).
    pub conflicting_reads: Vec<(i32, i64, Vec<String>)>,
    /// Offsets missing between a partition's log start and its high
    /// watermark: (partition, first missing, last missing).
    pub gaps: Vec<(i32, i64, i64)>,
    /// Definitely refused records that were read: (refused, partition, offset).
    pub refused_readable: Vec<(Refused, i32, i64)>,
    /// Counts, for the summary.
    pub acked: usize,
    pub refused: usize,
    pub refused_definite: usize,
    pub read: usize,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicates.is_empty()
            && self.mismatched.is_empty()
            && self.moved.is_empty()
            && self.conflicting_reads.is_empty()
            && self.gaps.is_empty()
            && self.refused_readable.is_empty()
    }

    /// One line of counts, then up to 10 examples of each finding.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "acked {}, refused {} ({} definite), read {}: lost {}, duplicates {}, mismatched {}, moved {}, conflicting reads {}, gaps {}, refused but readable {}",
            self.acked,
            self.refused,
            self.refused_definite,
            self.read,
            self.lost.len(),
            self.duplicates.len(),
            self.mismatched.len(),
            self.moved.len(),
            self.conflicting_reads.len(),
            self.gaps.len(),
            self.refused_readable.len()
        );
        fn some<T: std::fmt::Debug>(s: &mut String, what: &str, v: &[T]) {
            if !v.is_empty() {
                s.push_str(&format!("\n  {what} (first {} of {}): {:?}", v.len().min(10), v.len(), &v[..v.len().min(10)]));
            }
        }
        some(&mut s, "lost", &self.lost);
        some(&mut s, "duplicates", &self.duplicates);
        some(&mut s, "mismatched", &self.mismatched);
        some(&mut s, "moved", &self.moved);
        some(&mut s, "conflicting reads", &self.conflicting_reads);
        some(&mut s, "gaps", &self.gaps);
        some(&mut s, "refused but readable", &self.refused_readable);
        s
    }
}

/// Compares what was acknowledged and refused with what was read.
/// `bounds` is partition -> (log start offset, high watermark) as read before
/// consuming: every offset in between must have been read exactly once (no
/// transactions or compaction in these topics: data offsets are contiguous).
pub fn check(acked: &[Acked], refused: &[Refused], read: &[Read], bounds: &Bounds) -> Report {
    let mut r = Report { acked: acked.len(), refused: refused.len(), refused_definite: refused.iter().filter(|x| x.definite).count(), ..Report::default() };
    // (partition, offset) -> the values read there (normally one).
    let mut at: BTreeMap<(i32, i64), Vec<String>> = BTreeMap::new();
    for x in read {
        let vs = at.entry((x.partition, x.offset)).or_default();
        if !vs.contains(&x.value) {
            vs.push(x.value.clone());
        }
    }
    r.read = at.len();
    for (&(p, o), vs) in &at {
        if vs.len() > 1 {
            r.conflicting_reads.push((p, o, vs.clone()));
        }
    }
    // value -> where it was read.
    let mut where_read: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (&po, vs) in &at {
        for v in vs {
            where_read.entry(v.as_str()).or_default().push(po);
        }
    }
    for (v, places) in &where_read {
        if places.len() > 1 {
            r.duplicates.push((v.to_string(), places.clone()));
        }
    }
    for a in acked {
        match at.get(&(a.partition, a.offset)) {
            Some(vs) if vs.contains(&a.value) => {}
            Some(vs) => r.mismatched.push((a.clone(), vs.join("|"))),
            None => {}
        }
        match where_read.get(a.value.as_str()) {
            None => r.lost.push(a.clone()),
            Some(places) => {
                for &po in places {
                    // An acknowledgement without an offset (librdkafka's
                    // implicit ack: a timed-out batch that a later one of the
                    // idempotent producer proved written, reported at offset
                    // -1001) only says which partition.
                    let elsewhere = if a.offset < 0 { po.0 != a.partition } else { po != (a.partition, a.offset) };
                    if elsewhere {
                        r.moved.push((a.clone(), po));
                    }
                }
            }
        }
    }
    for x in refused.iter().filter(|x| x.definite) {
        if let Some(places) = where_read.get(x.value.as_str()) {
            for &(p, o) in places {
                r.refused_readable.push((x.clone(), p, o));
            }
        }
    }
    // Gaps: every offset in [log start, high watermark) read.
    for (&p, &(start, hw)) in bounds {
        let mut next = start;
        for (&(_, o), _) in at.range((p, start)..(p, hw)) {
            if o > next {
                r.gaps.push((p, next, o - 1));
            }
            next = o + 1;
        }
        if next < hw {
            r.gaps.push((p, next, hw - 1));
        }
    }
    r
}

// ---------------------------------------------------------------------------
// The load driver
// ---------------------------------------------------------------------------

/// How a [`Load`] produces.
#[derive(Debug, Clone)]
pub struct LoadOpts {
    /// One record to every partition per round, a round every `interval`.
    pub interval: Duration,
    /// librdkafka's `message.timeout.ms`: a record not acknowledged within it
    /// is reported failed (timed out: not a definite refusal).
    pub message_timeout: Duration,
    /// Stop on its own after this long (None: until [`Load::stop`]).
    pub duration: Option<Duration>,
    /// Most records awaiting their report at once; the driver waits beyond it.
    pub max_in_flight: usize,
}

impl Default for LoadOpts {
    fn default() -> Self {
        LoadOpts { interval: Duration::from_millis(10), message_timeout: Duration::from_secs(30), duration: None, max_in_flight: 5000 }
    }
}

/// One delivery report.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub partition: i32,
    pub value: String,
    /// When the record was handed to the producer, and when its report came.
    pub sent: Instant,
    pub done: Instant,
    /// The offset, or (error code if any, error text).
    pub result: Result<i64, (Option<RDKafkaErrorCode>, String)>,
}

/// The producer thread and the reports it recorded so far.
pub struct Load {
    pub topic: String,
    pub prefix: String,
    pub partitions: i32,
    stop: Arc<AtomicBool>,
    reports: Arc<Mutex<Vec<Delivery>>>,
    thread: Option<JoinHandle<Result<(), String>>>,
    started: Instant,
}

/// The producer's config: idempotent, acks=all, small linger.
pub fn load_producer_config(bootstrap: &str, opts: &LoadOpts) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "shardlog-fault-load")
        .set("broker.address.family", "v4")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", opts.message_timeout.as_millis().to_string())
        .set("request.timeout.ms", "5000")
        .set("retry.backoff.ms", "100")
        .set("retry.backoff.max.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("socket.timeout.ms", "10000");
    c
}

impl Load {
    /// Starts producing to every partition `0..partitions` of `topic` through
    /// `bootstrap`, values `"{prefix}-{partition}-{seq}"`.
    pub fn start(bootstrap: &str, topic: &str, partitions: i32, prefix: &str, opts: LoadOpts) -> Load {
        let producer: FutureProducer = load_producer_config(bootstrap, &opts).create().expect("load producer");
        let stop = Arc::new(AtomicBool::new(false));
        let reports: Arc<Mutex<Vec<Delivery>>> = Arc::new(Mutex::new(Vec::new()));
        let (t, pre, st, rep) = (topic.to_string(), prefix.to_string(), stop.clone(), reports.clone());
        let thread = std::thread::Builder::new()
            .name("fault-load".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
                rt.block_on(drive(producer, t, partitions, pre, opts, st, rep))
            })
            .expect("spawn the load thread");
        Load { topic: topic.to_string(), prefix: prefix.to_string(), partitions, stop, reports, thread: Some(thread), started: Instant::now() }
    }

    /// A copy of every report so far.
    pub fn reports(&self) -> Vec<Delivery> {
        self.reports.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// (acknowledged, failed) reports so far.
    pub fn counts(&self) -> (usize, usize) {
        let r = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        let ok = r.iter().filter(|d| d.result.is_ok()).count();
        (ok, r.len() - ok)
    }

    /// The first acknowledgement on `partition` that came at or after `since`.
    pub fn first_ack_after(&self, partition: i32, since: Instant) -> Option<Instant> {
        let r = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        r.iter().filter(|d| d.partition == partition && d.result.is_ok() && d.done >= since).map(|d| d.done).min()
    }

    /// The reports on `partition` that came at or after `since`: (acknowledged, failed).
    pub fn reports_after(&self, partition: i32, since: Instant) -> (Vec<Delivery>, Vec<Delivery>) {
        let r = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        r.iter().filter(|d| d.partition == partition && d.done >= since).cloned().partition(|d| d.result.is_ok())
    }

    /// Waits until `partition` has an acknowledgement at or after `since`.
    pub fn wait_ack_after(&self, partition: i32, since: Instant, timeout: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(t) = self.first_ack_after(partition, since) {
                return Ok(t);
            }
            if Instant::now() >= deadline {
                let (ok, failed) = self.reports_after(partition, since);
                return Err(format!(
                    "no acknowledgement on partition {partition} within {timeout:?} ({} ok, {} failed since; last error {:?})",
                    ok.len(),
                    failed.len(),
                    failed.last().map(|d| d.result.clone())
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops producing, waits for every outstanding report (flush), and
    /// returns them all.
    pub fn stop(mut self) -> Vec<Delivery> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.thread.take() {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("load thread failed: {e}"),
                Err(_) => panic!("load thread panicked"),
            }
        }
        let r = self.reports();
        eprintln!(
            "[load] {} ran {:.1}s: {} reports, {} acknowledged",
            self.topic,
            self.started.elapsed().as_secs_f64(),
            r.len(),
            r.iter().filter(|d| d.result.is_ok()).count()
        );
        r
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // A test that panicked leaves the thread to finish on its own (its
        // flush is bounded by message.timeout.ms).
    }
}

async fn drive(
    producer: FutureProducer,
    topic: String,
    partitions: i32,
    prefix: String,
    opts: LoadOpts,
    stop: Arc<AtomicBool>,
    reports: Arc<Mutex<Vec<Delivery>>>,
) -> Result<(), String> {
    let started = Instant::now();
    let mut seq: u64 = 0;
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let mut tick = tokio::time::interval(opts.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) && opts.duration.is_none_or(|d| started.elapsed() < d) {
        tick.tick().await;
        if in_flight.load(Ordering::Relaxed) >= opts.max_in_flight {
            continue;
        }
        for p in 0..partitions {
            let value = format!("{prefix}-{p}-{seq}");
            let sent = Instant::now();
            let fut = loop {
                match producer.send_result(FutureRecord::<(), str>::to(&topic).partition(p).payload(&value)) {
                    Ok(f) => break Some(f),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => tokio::time::sleep(Duration::from_millis(10)).await,
                    Err((e, _)) => {
                        let code = e.rdkafka_error_code();
                        reports.lock().unwrap_or_else(|e| e.into_inner()).push(Delivery {
                            partition: p,
                            value: value.clone(),
                            sent,
                            done: Instant::now(),
                            result: Err((code, format!("enqueue: {e}"))),
                        });
                        break None;
                    }
                }
            };
            let Some(fut) = fut else { continue };
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (reports, in_flight) = (reports.clone(), in_flight.clone());
            tasks.push(tokio::spawn(async move {
                let result = match fut.await {
                    Ok(Ok(d)) => Ok(d.offset),
                    Ok(Err((e, _))) => Err((e.rdkafka_error_code(), e.to_string())),
                    Err(_) => Err((None, "delivery future cancelled".to_string())),
                };
                reports.lock().unwrap_or_else(|e| e.into_inner()).push(Delivery { partition: p, value, sent, done: Instant::now(), result });
                in_flight.fetch_sub(1, Ordering::Relaxed);
            }));
        }
        seq += 1;
        tasks.retain(|t| !t.is_finished());
    }
    // Every outstanding record gets its report within message.timeout.ms.
    let flush = opts.message_timeout + Duration::from_secs(10);
    let _ = producer.flush(flush);
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// The acknowledged and refused records among `reports`.
pub fn split_reports(reports: &[Delivery]) -> (Vec<Acked>, Vec<Refused>) {
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for d in reports {
        match &d.result {
            Ok(o) => acked.push(Acked { partition: d.partition, offset: *o, value: d.value.clone() }),
            Err((code, text)) => refused.push(Refused {
                partition: d.partition,
                value: d.value.clone(),
                error: format!("{code:?}: {text}"),
                definite: code.is_some_and(refusal_is_definite),
            }),
        }
    }
    (acked, refused)
}

/// Failed reports by error code, for printing.
pub fn error_histogram(reports: &[Delivery]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for d in reports {
        if let Err((code, text)) = &d.result {
            *m.entry(code.map(|c| format!("{c:?}")).unwrap_or_else(|| text.clone())).or_insert(0) += 1;
        }
    }
    m
}

// ---------------------------------------------------------------------------
// Reading everything back
// ---------------------------------------------------------------------------

/// Reads every partition `0..partitions` of `topic` through `bootstrap` with a
/// fresh consumer (assign, no commits, from the beginning) up to the high
/// watermark each had when the read began: the records and partition ->
/// (log start offset, high watermark). Panics when it cannot reach the
/// watermarks within `timeout`.
pub fn read_all(bootstrap: &str, topic: &str, partitions: i32, timeout: Duration) -> (Vec<Read>, Bounds) {
    let t0 = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "shardlog-fault-checker")
        .set("broker.address.family", "v4")
        .set("group.id", format!("shardlog-fault-checker-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_uncommitted")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("checker consumer");
    let mut bounds = BTreeMap::new();
    for p in 0..partitions {
        let wm = crate::cluster_harness::wait_until(&format!("watermarks of {topic}-{p}"), timeout, Duration::from_millis(200), || {
            consumer.fetch_watermarks(topic, p, Duration::from_secs(5)).map_err(|e| e.to_string())
        });
        bounds.insert(p, wm);
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut next: BTreeMap<i32, i64> = bounds.iter().map(|(&p, &(lo, _))| (p, lo)).collect();
    let done = |next: &BTreeMap<i32, i64>| bounds.iter().all(|(p, &(_, hw))| next[p] >= hw);
    let mut out = Vec::new();
    let mut errors = 0usize;
    while !done(&next) {
        assert!(
            t0.elapsed() < timeout,
            "reading {topic} back: not at the high watermarks after {timeout:?}: at {next:?}, watermarks {bounds:?} ({} records read)",
            out.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                let (p, o) = (m.partition(), m.offset());
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                if o < bounds[&p].1 {
                    out.push(Read { partition: p, offset: o, value });
                }
                let n = next.get_mut(&p).expect("assigned partition");
                *n = (*n).max(o + 1);
            }
            Some(Err(e)) => {
                errors += 1;
                if errors <= 20 {
                    eprintln!("[checker] consumer error (keeps polling): {e}");
                }
            }
        }
    }
    eprintln!("[checker] read {} records of {topic} up to {bounds:?} in {:.2}s", out.len(), t0.elapsed().as_secs_f64());
    (out, bounds)
}

// ---------------------------------------------------------------------------
// Replicas byte for byte
// ---------------------------------------------------------------------------

/// The `.log` files of `<dir>/<topic>-<partition>/`, concatenated in file-name order.
pub fn replica_bytes(dir: &Path, topic: &str, partition: i32) -> std::io::Result<Vec<u8>> {
    let pdir = dir.join(format!("{topic}-{partition}"));
    let mut names: Vec<_> =
        std::fs::read_dir(&pdir)?.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "log") && p.is_file()).collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let raw = std::fs::read(&n)?;
        out.extend_from_slice(&raw[..whole_batches_len(&raw)]);
    }
    Ok(out)
}

/// All replicas' byte streams equal: Ok(their length), or where the first
/// one that differs from the first replica does.
pub fn compare_replicas(replicas: &[(i32, Vec<u8>)]) -> Result<usize, String> {
    let Some((first_id, first)) = replicas.first() else { return Err("no replicas".into()) };
    let mut diffs = Vec::new();
    for (id, bytes) in &replicas[1..] {
        if bytes == first {
            continue;
        }
        let at = first.iter().zip(bytes.iter()).position(|(a, b)| a != b).unwrap_or(first.len().min(bytes.len()));
        diffs.push(format!("node {id} ({} bytes) differs from node {first_id} ({} bytes) at byte {at}", bytes.len(), first.len()));
    }
    if diffs.is_empty() {
        Ok(first.len())
    } else {
        Err(diffs.join("; "))
    }
}

/// Distinct values in `values` (for small reports).
pub fn distinct(values: &[String]) -> BTreeSet<&str> {
    values.iter().map(|s| s.as_str()).collect()
}

/// The load driver, the reader and the checker end to end on what runs today:
/// three combined nodes, a topic of 3 single-replica partitions, 4 s of load
/// with no fault: clean, every partition's offsets dense, its leader's `.log`
/// bytes present; the ISR helpers see the one replica.
#[test]
fn load_and_checker_are_clean_on_single_replica_partitions() {
    use crate::cluster_harness::{create, Cluster, OP};
    use crate::faults::{isr_of, leader_of, wait_full_isr};
    let c = Cluster::start(3, &[]);
    create(&c, 1, "checked", 3, &[]);
    let states = wait_full_isr(&c, "checked", 3, OP);
    let load = Load::start(&c.bootstrap_all(), "checked", 3, "e2e", LoadOpts::default());
    std::thread::sleep(Duration::from_secs(4));
    let t = Instant::now();
    load.wait_ack_after(0, t, OP).expect("acknowledgements on partition 0");
    let reports = load.stop();
    let (acked, refused) = split_reports(&reports);
    assert!(refused.is_empty(), "failures without a fault: {:?}", error_histogram(&reports));
    let (read, bounds) = read_all(&c.bootstrap_all(), "checked", 3, Duration::from_secs(60));
    let report = check(&acked, &refused, &read, &bounds);
    c.step(&format!("checker: {}", report.summary()));
    assert!(report.is_clean(), "{}", report.summary());
    assert_eq!(report.read, acked.len(), "every record read once");
    for p in 0..3 {
        let leader = leader_of(&c, "checked", p).expect("leader");
        assert_eq!(isr_of(&c, "checked", p).expect("isr"), vec![leader]);
        assert_eq!(states[&p].replicas, vec![leader]);
        let bytes = replica_bytes(&c.data_dir(leader), "checked", p).expect("the leader's log");
        assert_eq!(compare_replicas(&[(leader, bytes.clone())]), Ok(bytes.len()));
        assert!(bytes.len() > 100, "partition {p}: {} bytes of log", bytes.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(p: i32, o: i64, v: &str) -> Acked {
        Acked { partition: p, offset: o, value: v.into() }
    }
    fn r(p: i32, o: i64, v: &str) -> Read {
        Read { partition: p, offset: o, value: v.into() }
    }
    fn no(p: i32, v: &str, definite: bool) -> Refused {
        Refused { partition: p, value: v.into(), error: "test".into(), definite }
    }
    fn bounds(v: &[(i32, i64, i64)]) -> Bounds {
        v.iter().map(|&(p, lo, hi)| (p, (lo, hi))).collect()
    }

    /// Two partitions, three records each, all acknowledged and read back.
    fn clean_inputs() -> (Vec<Acked>, Vec<Read>, Bounds) {
        let acked = vec![a(0, 0, "s-0-0"), a(0, 1, "s-0-1"), a(0, 2, "s-0-2"), a(1, 0, "s-1-0"), a(1, 1, "s-1-1"), a(1, 2, "s-1-2")];
        let read = acked.iter().map(|x| r(x.partition, x.offset, &x.value)).collect();
        (acked, read, bounds(&[(0, 0, 3), (1, 0, 3)]))
    }

    #[test]
    fn clean_when_everything_acked_is_read_once() {
        let (acked, read, b) = clean_inputs();
        let rep = check(&acked, &[], &read, &b);
        assert!(rep.is_clean(), "{}", rep.summary());
        assert_eq!((rep.acked, rep.read), (6, 6));
        // A record read twice at the same offset (a consumer refetch) is no finding.
        let mut twice = read.clone();
        twice.push(r(0, 1, "s-0-1"));
        assert!(check(&acked, &[], &twice, &b).is_clean());
        // Unacknowledged (timed out) records that were written are fine too.
        let mut more = read;
        more.push(r(0, 3, "s-0-3"));
        let rep = check(&acked, &[no(0, "s-0-3", false)], &more, &bounds(&[(0, 0, 4), (1, 0, 3)]));
        assert!(rep.is_clean(), "{}", rep.summary());
    }

    #[test]
    fn lost_acknowledged_record_is_reported() {
        let (acked, mut read, _) = clean_inputs();
        read.retain(|x| x.value != "s-1-2");
        // The log ends before it: high watermark 2.
        let rep = check(&acked, &[], &read, &bounds(&[(0, 0, 3), (1, 0, 2)]));
        assert_eq!(rep.lost, vec![a(1, 2, "s-1-2")]);
        assert!(rep.gaps.is_empty() && !rep.is_clean());
    }

    #[test]
    fn lost_record_replaced_by_another_value_is_lost_and_mismatched() {
        let (acked, mut read, b) = clean_inputs();
        read[1] = r(0, 1, "other");
        let rep = check(&acked, &[], &read, &b);
        assert_eq!(rep.lost, vec![a(0, 1, "s-0-1")]);
        assert_eq!(rep.mismatched, vec![(a(0, 1, "s-0-1"), "other".to_string())]);
    }

    #[test]
    fn duplicate_value_is_reported() {
        let (acked, mut read, _) = clean_inputs();
        read.push(r(0, 3, "s-0-1"));
        let rep = check(&acked, &[], &read, &bounds(&[(0, 0, 4), (1, 0, 3)]));
        assert_eq!(rep.duplicates, vec![("s-0-1".to_string(), vec![(0, 1), (0, 3)])]);
        assert_eq!(rep.moved, vec![(a(0, 1, "s-0-1"), (0, 3))]);
        assert!(rep.lost.is_empty() && rep.gaps.is_empty());
    }

    #[test]
    fn acknowledged_offset_holding_another_acknowledged_value_is_reported() {
        // Two acknowledgements for one offset (a stale leader acknowledged
        // one of them): one of the two values is lost or elsewhere.
        let (mut acked, read, b) = clean_inputs();
        acked.push(a(0, 2, "s-0-9"));
        let rep = check(&acked, &[], &read, &b);
        assert_eq!(rep.mismatched, vec![(a(0, 2, "s-0-9"), "s-0-2".to_string())]);
        assert_eq!(rep.lost, vec![a(0, 2, "s-0-9")]);
    }

    #[test]
    fn acknowledgement_without_an_offset_is_checked_by_partition_only() {
        let (mut acked, read, b) = clean_inputs();
        acked[2].offset = -1001;
        let rep = check(&acked, &[], &read, &b);
        assert!(rep.is_clean(), "{}", rep.summary());
        // Read on another partition, or not at all: still found.
        let mut elsewhere = read.clone();
        elsewhere[2] = r(1, 3, "s-0-2");
        let rep = check(&acked, &[], &elsewhere, &bounds(&[(0, 0, 2), (1, 0, 4)]));
        assert_eq!(rep.moved, vec![(a(0, -1001, "s-0-2"), (1, 3))]);
        let mut gone = read;
        gone.remove(2);
        let rep = check(&acked, &[], &gone, &bounds(&[(0, 0, 2), (1, 0, 3)]));
        assert_eq!(rep.lost, vec![a(0, -1001, "s-0-2")]);
    }

    #[test]
    fn one_offset_read_with_two_values_is_reported() {
        let (acked, mut read, b) = clean_inputs();
        read.push(r(1, 1, "s-1-x"));
        let rep = check(&acked, &[], &read, &b);
        assert_eq!(rep.conflicting_reads, vec![(1, 1, vec!["s-1-1".to_string(), "s-1-x".to_string()])]);
        assert!(!rep.is_clean());
    }

    #[test]
    fn gaps_inside_and_at_the_end_are_reported() {
        let (acked, mut read, _) = clean_inputs();
        read.retain(|x| (x.partition, x.offset) != (0, 1));
        let rep = check(&acked[3..], &[], &read, &bounds(&[(0, 0, 5), (1, 0, 3)]));
        assert_eq!(rep.gaps, vec![(0, 1, 1), (0, 3, 4)]);
        // A log that starts later (deleted records) has no gap before its start.
        let rep = check(&[], &[], &[r(2, 7, "x"), r(2, 8, "y")], &bounds(&[(2, 7, 9)]));
        assert!(rep.is_clean(), "{}", rep.summary());
        // A partition with no records read at all.
        let rep = check(&[], &[], &[], &bounds(&[(3, 0, 2)]));
        assert_eq!(rep.gaps, vec![(3, 0, 1)]);
    }

    #[test]
    fn definitely_refused_record_readable_is_reported() {
        let (acked, mut read, _) = clean_inputs();
        read.push(r(0, 3, "s-0-3"));
        let refused = [no(0, "s-0-3", true), no(0, "s-0-4", true)];
        let rep = check(&acked, &refused, &read, &bounds(&[(0, 0, 4), (1, 0, 3)]));
        assert_eq!(rep.refused_readable, vec![(no(0, "s-0-3", true), 0, 3)]);
        assert_eq!((rep.refused, rep.refused_definite), (2, 2));
        assert!(!rep.is_clean());
    }

    #[test]
    fn refusal_codes_are_classified() {
        assert!(refusal_is_definite(RDKafkaErrorCode::NotEnoughReplicas));
        assert!(!refusal_is_definite(RDKafkaErrorCode::NotEnoughReplicasAfterAppend));
        assert!(!refusal_is_definite(RDKafkaErrorCode::MessageTimedOut));
        assert!(!refusal_is_definite(RDKafkaErrorCode::RequestTimedOut));
        assert!(kafka_code_is_definite_refusal(19) && !kafka_code_is_definite_refusal(20) && !kafka_code_is_definite_refusal(7));
    }

    #[test]
    fn replicas_compare_their_concatenated_segments() {
        let tmp = tempfile::tempdir().unwrap();
        // Batch-shaped bytes: 30 "batches" of 100 bytes (length field 88, magic 2).
        let mut stream = Vec::new();
        for i in 0..30u8 {
            let mut b: Vec<u8> = (0..100u8).map(|j| j.wrapping_mul(7).wrapping_add(i) | 1).collect();
            b[8..12].copy_from_slice(&88i32.to_be_bytes());
            b[16] = 2;
            stream.extend(b);
        }
        // Node 1: one segment, with zeros after it as an active segment has
        // (space allocated ahead); node 2: three segments at other batch boundaries.
        let d1 = tmp.path().join("n1/t-0");
        let d2 = tmp.path().join("n2/t-0");
        std::fs::create_dir_all(&d1).unwrap();
        std::fs::create_dir_all(&d2).unwrap();
        let mut padded = stream.clone();
        padded.extend([0u8; 700]);
        std::fs::write(d1.join("00000000000000000000.log"), &padded).unwrap();
        std::fs::write(d2.join("00000000000000000000.log"), &stream[..1000]).unwrap();
        std::fs::write(d2.join("00000000000000000010.log"), &stream[1000..2500]).unwrap();
        std::fs::write(d2.join("00000000000000000031.log"), &stream[2500..]).unwrap();
        // Other files are not part of the stream.
        std::fs::write(d2.join("00000000000000000000.index"), b"junk").unwrap();
        let b1 = replica_bytes(&tmp.path().join("n1"), "t", 0).unwrap();
        let b2 = replica_bytes(&tmp.path().join("n2"), "t", 0).unwrap();
        assert_eq!(compare_replicas(&[(1, b1.clone()), (2, b2.clone())]), Ok(3000));
        // One byte flipped.
        let mut b3 = b2.clone();
        b3[2600] ^= 1;
        let e = compare_replicas(&[(1, b1.clone()), (2, b2), (3, b3)]).unwrap_err();
        assert!(e.contains("node 3") && e.contains("at byte 2600") && !e.contains("node 2"), "{e}");
        // A replica behind (a prefix) differs too.
        let e = compare_replicas(&[(1, b1.clone()), (2, b1[..2000].to_vec())]).unwrap_err();
        assert!(e.contains("at byte 2000"), "{e}");
        assert!(replica_bytes(&tmp.path().join("n1"), "t", 1).is_err(), "no such partition");
    }
}
