//! Issue 13, defects 3, 6 and 7, through the real binary:
//! - internal topics (`__consumer_offsets`, `__transaction_state`, ...) are the
//!   broker's: clients cannot create, delete, grow, produce to or delete records
//!   of them, and a `__consumer_offsets` made with another partition count (by an
//!   older config, or a client before this fix) leaves groups working;
//! - topic names follow Kafka's rules, `.` and `_` collide;
//! - a failing log sink (closed pipe, full disk, stalled reader) never stops the
//!   broker, and a storage-error burst logs a bounded number of lines.
//!
//! Every test checks the Kafka error the client gets, that the broker stays up,
//! its peak RSS (VmHWM) against [`RSS_MAX_KIB`], and that acknowledged records
//! are intact at the offsets they were acknowledged at.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::MetadataResponse;
use kafka_protocol::records::{Compression, Record};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use common::*;

/// Peak RSS (VmHWM) every broker here must stay under. A 2-shard debug broker
/// peaked at about 49 MiB in every test below; the bound leaves room for a
/// slower or busier machine and catches anything unbounded (the log queue
/// holds at most 4096 lines).
const RSS_MAX_KIB: u64 = 128 * 1024;

const WAIT: Duration = Duration::from_secs(60);

// Kafka error codes the tests expect.
const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_REQUEST: i16 = 42;
const KAFKA_STORAGE_ERROR: i16 = 56;

/// The tests below start brokers outside the harness too: one test at a time
/// (a flag, not a MutexGuard, since it is held across awaits; released on panic too).
static BUSY: AtomicBool = AtomicBool::new(false);

struct Serial;

fn serial() -> Serial {
    while BUSY.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    Serial
}

impl Drop for Serial {
    fn drop(&mut self) {
        BUSY.store(false, Ordering::Release);
    }
}

// ---------------------------------------------------------------------------
// Raw requests
// ---------------------------------------------------------------------------

/// The error code and message CreateTopics (v7) gives one topic.
fn create_one(conn: &mut RawConn, name: &str, partitions: i32) -> (i16, String) {
    let r = create_topics_raw(conn, 7, 30_000, &[(name, partitions)], false);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, name);
    (r[0].1, r[0].2.clone())
}

/// (error code, partition count, is_internal) of one topic in a Metadata response.
fn topic_in(md: &MetadataResponse, name: &str) -> Option<(i16, usize, bool)> {
    md.topics.iter().find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(name)).map(|t| (t.error_code, t.partitions.len(), t.is_internal))
}

/// One acks=-1 Produce v9 of `values` to one partition: (error code, base offset).
fn produce_values(conn: &mut RawConn, topic: &str, partition: i32, values: &[String]) -> (i16, i64) {
    let recs: Vec<Record> = values.iter().enumerate().map(|(i, v)| plain_record(i as i64, 1_700_000_000_000, None, Some(Bytes::from(v.clone())))).collect();
    let p = produce_raw(conn, 9, -1, topic, partition, record_batch(&recs, Compression::None));
    (p.error_code, p.base_offset)
}

/// What a test acknowledged: (partition, offset, value), checked later.
type Acked = Vec<(i32, i64, String)>;

/// Produces `batches` batches of 2 records to each of `partitions` partitions
/// and returns every acknowledged record with its offset.
fn produce_acked(bs: &str, topic: &str, partitions: i32, batches: usize) -> Acked {
    let mut conn = RawConn::connect(bs);
    let mut acked = Vec::new();
    for p in 0..partitions {
        for b in 0..batches {
            let values = vec![format!("{topic}-{p}-{b}-a"), format!("{topic}-{p}-{b}-b")];
            let (code, base) = produce_values(&mut conn, topic, p, &values);
            assert_eq!(code, NONE, "produce to {topic}-{p}");
            assert_eq!(base, 2 * b as i64, "offsets are dense from 0");
            for (i, v) in values.into_iter().enumerate() {
                acked.push((p, base + i as i64, v));
            }
        }
    }
    acked
}

/// Every acknowledged record is there, at the offset it was acknowledged at.
fn assert_intact(bs: &str, topic: &str, partitions: i32, acked: &Acked) {
    let got = consume_all(bs, topic, partitions, acked.len(), WAIT);
    let mut got: Vec<(i32, i64, String)> =
        got.iter().map(|r| (r.partition, r.offset, String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())).collect();
    got.sort();
    let mut want = acked.clone();
    want.sort();
    assert_eq!(got, want, "acknowledged records of {topic} at their offsets");
}

fn assert_rss_bounded(b: &Broker) {
    let hwm = b.proc_status_kib("VmHWM").expect("VmHWM");
    eprintln!("broker peak RSS (VmHWM): {hwm} KiB");
    assert!(hwm < RSS_MAX_KIB, "peak RSS {hwm} KiB is over the bound {RSS_MAX_KIB} KiB");
}

// ---------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------

fn group_consumer(bs: &str, group: &str) -> BaseConsumer {
    consumer_config(bs).set("group.id", group).create().expect("consumer")
}

/// OffsetCommit through librdkafka (FindCoordinator first).
fn commit(bs: &str, group: &str, topic: &str, partition: i32, offset: i64) {
    let c = group_consumer(bs, group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset)).expect("tpl");
    let deadline = Instant::now() + WAIT;
    loop {
        match c.commit(&tpl, CommitMode::Sync) {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("commit for {group} failed, retrying: {e}");
                std::thread::sleep(Duration::from_millis(300));
            }
            Err(e) => panic!("commit for group {group}: {e}"),
        }
    }
}

/// OffsetFetch through librdkafka.
fn committed(bs: &str, group: &str, topic: &str, partition: i32) -> Option<i64> {
    let c = group_consumer(bs, group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let got = c.committed_offsets(tpl, WAIT).unwrap_or_else(|e| panic!("committed offsets of {group}: {e}"));
    let e = got.find_partition(topic, partition).expect("partition in answer");
    match e.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// Kafka's group placement (`abs(javaHashCode) % n`), to check a test's groups really
/// land on partitions other than 0.
fn partition_for(group: &str, n: i32) -> i32 {
    let h = group.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    (if h == i32::MIN { 0 } else { h.abs() }) % n
}

// ---------------------------------------------------------------------------
// Defect 3: internal topics
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn clients_cannot_create_delete_grow_or_write_internal_topics() {
    let _one = serial();
    let mut b = Broker::start(&[("offsets.topic.num.partitions", "4"), ("transaction.state.log.num.partitions", "2")]);
    let bs = b.bootstrap();
    let topic = topic_name("keep");
    create_topic(&bs, &topic, 2).await;
    let acked = produce_acked(&bs, &topic, 2, 5);
    let mut conn = RawConn::connect(&bs);

    // CreateTopics: INVALID_REQUEST with Kafka's message, at the oldest and newest
    // advertised version, validate-only too; the other topic of the request is created.
    for (version, validate_only) in [(2, false), (7, false), (7, true)] {
        let other = format!("plain-{version}-{validate_only}");
        let names = ["__consumer_offsets", "__transaction_state", "__cluster_metadata", "__share_group_state", other.as_str()];
        let asks: Vec<(&str, i32)> = names.iter().map(|n| (*n, 1)).collect();
        let got = create_topics_raw(&mut conn, version, 30_000, &asks, validate_only);
        for (name, code, msg) in &got[..4] {
            assert_eq!(*code, INVALID_REQUEST, "CreateTopics v{version} {name}: {msg}");
            assert_eq!(msg, &format!("Creation of internal topic {name} is prohibited."));
        }
        assert_eq!((got[4].0.as_str(), got[4].1), (other.as_str(), NONE));
    }
    let md = metadata_raw(&mut conn, 12, None, false);
    for name in ["__consumer_offsets", "__transaction_state", "__cluster_metadata", "__share_group_state"] {
        assert_eq!(topic_in(&md, name), None, "{name} was not created");
    }
    // A topic whose name merely starts with "__" is a plain topic, as in Kafka.
    assert_eq!(create_one(&mut conn, "__mine", 1).0, NONE);
    assert_eq!(topic_in(&metadata_raw(&mut conn, 12, Some(&["__mine"]), false), "__mine"), Some((NONE, 1, false)));

    // Metadata auto-creation makes internal topics the broker's way (their own
    // partition count, internal), as Kafka's does; a reserved name it does not use stays absent.
    let md = metadata_raw(&mut conn, 12, Some(&["__transaction_state", "__cluster_metadata"]), true);
    assert_eq!(topic_in(&md, "__transaction_state"), Some((NONE, 2, true)));
    assert_eq!(topic_in(&md, "__cluster_metadata").map(|t| t.0), Some(UNKNOWN_TOPIC_OR_PARTITION));

    // Groups work: FindCoordinator creates __consumer_offsets with its 4 partitions.
    let groups: Vec<String> = (0..8).map(|i| format!("grp-{i}")).collect();
    assert!(groups.iter().any(|g| partition_for(g, 4) != 0), "some group lives outside partition 0");
    for (i, g) in groups.iter().enumerate() {
        commit(&bs, g, &topic, 0, i as i64 + 1);
    }
    assert_eq!(topic_in(&metadata_raw(&mut conn, 12, Some(&["__consumer_offsets"]), false), "__consumer_offsets"), Some((NONE, 4, true)));

    // Creating an existing internal topic is refused the same way (not TOPIC_ALREADY_EXISTS).
    assert_eq!(create_one(&mut conn, "__consumer_offsets", 1).0, INVALID_REQUEST);
    // DeleteTopics and CreatePartitions: INVALID_TOPIC_EXCEPTION, nothing changes.
    for name in ["__consumer_offsets", "__transaction_state"] {
        let (code, msg) = delete_topic_raw(&mut conn, 6, 30_000, name);
        assert_eq!(code, INVALID_TOPIC_EXCEPTION, "DeleteTopics {name}: {msg}");
        assert!(msg.contains(&format!("Cannot delete internal topic {name}")), "{msg}");
        let (code, msg) = create_partitions_raw(&mut conn, 3, 30_000, name, 10);
        assert_eq!(code, INVALID_TOPIC_EXCEPTION, "CreatePartitions {name}: {msg}");
        assert!(msg.contains(&format!("internal topic {name}")), "{msg}");
    }
    let md = metadata_raw(&mut conn, 12, Some(&["__consumer_offsets", "__transaction_state"]), false);
    assert_eq!(topic_in(&md, "__consumer_offsets"), Some((NONE, 4, true)));
    assert_eq!(topic_in(&md, "__transaction_state"), Some((NONE, 2, true)));

    // Produce into __consumer_offsets: INVALID_TOPIC_EXCEPTION (raw and through librdkafka).
    for p in 0..4 {
        let (code, _) = produce_values(&mut conn, "__consumer_offsets", p, &["forged".to_string()]);
        assert_eq!(code, INVALID_TOPIC_EXCEPTION, "produce to __consumer_offsets-{p}");
    }
    let producer: FutureProducer = producer_config(&bs).set("message.timeout.ms", "20000").create().expect("producer");
    let r = producer.send(FutureRecord::to("__consumer_offsets").partition(0).key("k").payload("forged"), Duration::from_secs(20)).await;
    match r {
        Err((e, _)) => assert_eq!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::InvalidTopic), "{e}"),
        Ok(d) => panic!("a client appended to __consumer_offsets: {d:?}"),
    }
    // DeleteRecords on it: INVALID_TOPIC_EXCEPTION per partition.
    let admin = admin_client(&bs);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("__consumer_offsets", 0, Offset::End).unwrap();
    match admin.delete_records(&tpl, &admin_opts()).await {
        Ok(res) => {
            let e = res.elements_for_topic("__consumer_offsets")[0].error();
            assert!(matches!(e, Err(ref k) if k.rdkafka_error_code() == Some(RDKafkaErrorCode::InvalidTopic)), "{e:?}");
        }
        Err(e) => assert_eq!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::InvalidTopic), "{e}"),
    }

    // Everything committed is still there, also after a restart; the data too.
    for (i, g) in groups.iter().enumerate() {
        assert_eq!(committed(&bs, g, &topic, 0), Some(i as i64 + 1), "group {g}");
    }
    assert_intact(&bs, &topic, 2, &acked);
    assert_rss_bounded(&b);
    b.stop();
    b.restart();
    let bs = b.bootstrap();
    for (i, g) in groups.iter().enumerate() {
        assert_eq!(committed(&bs, g, &topic, 0), Some(i as i64 + 1), "group {g} after restart");
    }
    assert_intact(&bs, &topic, 2, &acked);
    assert_rss_bounded(&b);
    b.stop();
}

/// The defect's aftermath: a data dir whose `__consumer_offsets` has 1 partition
/// while the config says 50 (as a client-made topic left it). Groups placed by
/// the config's count found no partition (COORDINATOR_NOT_AVAILABLE forever);
/// placed by the topic's own count, as Kafka does, they work and keep their offsets.
#[tokio::test(flavor = "multi_thread")]
async fn groups_work_when_offsets_topic_has_another_partition_count() {
    let _one = serial();
    let dir = tempfile::Builder::new().prefix("shardlog-it-offsets1-").tempdir().expect("tempdir");
    let dirs = dir.path().display().to_string();
    let topic = topic_name("grp-data");
    let groups: Vec<String> = (0..8).map(|i| format!("legacy-{i}")).collect();
    assert!(groups.iter().filter(|g| partition_for(g, 50) != 0).count() >= 4, "groups that config placement would miss");
    let acked;
    {
        let mut b = Broker::start(&[("log.dirs", &dirs), ("offsets.topic.num.partitions", "1")]);
        let bs = b.bootstrap();
        create_topic(&bs, &topic, 1).await;
        acked = produce_acked(&bs, &topic, 1, 5);
        for (i, g) in groups.iter().enumerate() {
            commit(&bs, g, &topic, 0, 10 + i as i64);
        }
        b.stop();
    }
    let mut b = Broker::start(&[("log.dirs", &dirs)]);
    let bs = b.bootstrap();
    let mut conn = RawConn::connect(&bs);
    assert_eq!(topic_in(&metadata_raw(&mut conn, 12, Some(&["__consumer_offsets"]), false), "__consumer_offsets"), Some((NONE, 1, true)));
    for (i, g) in groups.iter().enumerate() {
        assert_eq!(committed(&bs, g, &topic, 0), Some(10 + i as i64), "group {g} keeps its offset");
        commit(&bs, g, &topic, 0, 20 + i as i64);
        assert_eq!(committed(&bs, g, &topic, 0), Some(20 + i as i64), "group {g} commits");
    }
    assert!(b.output().contains("__consumer_offsets has 1 partition(s) but offsets.topic.num.partitions=50"), "the mismatch is logged at start-up");
    assert_intact(&bs, &topic, 1, &acked);
    assert_rss_bounded(&b);
    b.stop();
}

// ---------------------------------------------------------------------------
// Defect 6: names
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn colliding_and_illegal_names_are_refused() {
    let _one = serial();
    let mut b = Broker::start(&[]);
    let bs = b.bootstrap();
    let mut conn = RawConn::connect(&bs);
    assert_eq!(create_one(&mut conn, "col.x", 2).0, NONE);
    let acked = produce_acked(&bs, "col.x", 2, 5);

    // `.` and `_` collide: INVALID_TOPIC_EXCEPTION naming the existing topic.
    let (code, msg) = create_one(&mut conn, "col_x", 1);
    assert_eq!(code, INVALID_TOPIC_EXCEPTION, "{msg}");
    assert_eq!(msg, "Topic 'col_x' collides with existing topic: col.x");
    // The same name again is TOPIC_ALREADY_EXISTS, as in Kafka.
    assert_eq!(create_one(&mut conn, "col.x", 1).0, TOPIC_ALREADY_EXISTS);
    // Within one request the second of a colliding pair is refused.
    let got = create_topics_raw(&mut conn, 7, 30_000, &[("pair.a", 1), ("pair_a", 1)], false);
    assert_eq!((got[0].1, got[1].1), (NONE, INVALID_TOPIC_EXCEPTION), "{got:?}");
    assert!(got[1].2.contains("pair.a"), "{got:?}");
    // validate_only sees collisions too.
    assert_eq!(create_topics_raw(&mut conn, 7, 30_000, &[("col_x", 1)], true)[0].1, INVALID_TOPIC_EXCEPTION);

    // Auto-creation through Metadata: the colliding name gets INVALID_TOPIC_EXCEPTION
    // and is not created; a fresh name is created.
    let md = metadata_raw(&mut conn, 12, Some(&["col_x", "auto.y"]), true);
    assert_eq!(topic_in(&md, "col_x").map(|t| t.0), Some(INVALID_TOPIC_EXCEPTION));
    assert_eq!(topic_in(&md, "auto.y").map(|t| t.0), Some(NONE));
    let md = metadata_raw(&mut conn, 12, Some(&["auto_y"]), true);
    assert_eq!(topic_in(&md, "auto_y").map(|t| t.0), Some(INVALID_TOPIC_EXCEPTION));

    // Kafka's other name rules.
    let long_ok = "n".repeat(249);
    let long_bad = "n".repeat(250);
    for bad in ["", ".", "..", long_bad.as_str(), "bad/name", "sp ace", "ümlaut", "tab\t"] {
        let (code, msg) = create_one(&mut conn, bad, 1);
        assert_eq!(code, INVALID_TOPIC_EXCEPTION, "{bad:?}: {msg}");
        assert!(msg.starts_with("Topic name is invalid: "), "{msg}");
    }
    assert_eq!(create_one(&mut conn, &long_ok, 1).0, NONE);
    assert_eq!(create_one(&mut conn, "ok-Name_9.x", 1).0, NONE);

    let all = metadata_raw(&mut conn, 12, None, false);
    let mut names: Vec<String> = all.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).filter(|n| !n.starts_with("__")).collect();
    names.sort();
    let mut want = vec!["auto.y".to_string(), "col.x".into(), long_ok.clone(), "ok-Name_9.x".into(), "pair.a".into()];
    want.sort();
    assert_eq!(names, want);
    assert_intact(&bs, "col.x", 2, &acked);
    assert_rss_bounded(&b);

    // The rule holds against topics loaded from disk after a restart.
    b.stop();
    b.restart();
    let bs = b.bootstrap();
    let mut conn = RawConn::connect(&bs);
    assert_eq!(create_one(&mut conn, "col_x", 1).0, INVALID_TOPIC_EXCEPTION);
    assert_eq!(create_one(&mut conn, "auto_y", 1).0, INVALID_TOPIC_EXCEPTION);
    assert_intact(&bs, "col.x", 2, &acked);
    b.stop();
}

// ---------------------------------------------------------------------------
// Defect 7: the log sink
// ---------------------------------------------------------------------------

/// A broker process started outside the harness, with stderr wherever the test says.
struct RawBroker {
    child: Option<Child>,
    port: u16,
}

impl RawBroker {
    /// Starts `shardlog start` on `dir` with `stderr`, waits for the listening
    /// line on stdout and then closes stdout too (nothing more is read from it).
    fn start(dir: &Path, stderr: Stdio, level: &str) -> RawBroker {
        let mut child = Command::new(broker_bin())
            .args(["start", "--set", "listeners=PLAINTEXT://127.0.0.1:0", "--set", "admin.listener=http://127.0.0.1:0", "--set", "shard.cores=0,1"])
            .arg("--set")
            .arg(format!("log.dirs={}", dir.display()))
            .env("SHARDLOG_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn shardlog");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("shardlog listening on ") {
                    let _ = tx.send(addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()));
                    return; // drops stdout: the broker's stdout is a closed pipe from here on
                }
            }
        });
        let mut b = RawBroker { child: Some(child), port: 0 };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(port)) => b.port = port,
            other => panic!("broker did not print its listening line: {other:?}"),
        }
        b
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn status_field(&self, field: &str) -> String {
        let st = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        st.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string())).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        let st = self.child.as_mut().expect("child").try_wait().expect("try_wait");
        assert!(st.is_none(), "the broker exited: {st:?}");
    }

    /// SIGTERM; the broker must stop cleanly (exit 0) although its log sink fails.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                assert!(st.success(), "broker exit status {st:?}");
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("broker did not stop within {STOP_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RawBroker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A small tmpfs, unmounted (lazily, so even when busy) when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::Builder::new().prefix("shardlog-it-tmpfs-").tempdir().expect("tempdir");
        let st = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir.path()).status().expect("run mount");
        assert!(st.success(), "mounting a {size} tmpfs at {} failed (these tests need root): {st:?}", dir.path().display());
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// A pipe: (read end, write end).
fn pipe() -> (File, OwnedFd) {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two fresh fds that we own from here on.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just created and are owned once each.
    unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Work that makes the broker log while serving: acknowledged produce, topics
/// created and deleted (a line per partition), connections closed for bad
/// frames. Returns the acknowledged records of topic `sink`.
async fn log_heavy_workload(bs: &str) -> Acked {
    create_topic(bs, "sink", 2).await;
    let acked = produce_acked(bs, "sink", 2, 25);
    for round in 0..3 {
        let churn = format!("churn-{round}");
        create_topic(bs, &churn, 48).await;
        let admin = admin_client(bs);
        let res = admin.delete_topics(&[&churn], &admin_opts()).await.expect("DeleteTopics");
        assert_eq!(res, vec![Ok(churn.clone())]);
    }
    for _ in 0..30 {
        let mut c = RawConn::connect(bs);
        c.write_frame_size(-1);
        c.expect_closed(Duration::from_secs(10)).expect("closed for a bad frame size");
    }
    assert_intact(bs, "sink", 2, &acked);
    acked
}

trait BadFrame {
    fn write_frame_size(&mut self, size: i32);
}

impl BadFrame for RawConn {
    fn write_frame_size(&mut self, size: i32) {
        self.stream.write_all(&size.to_be_bytes()).expect("write size");
    }
}

/// The broker ignores SIGPIPE (bit 13 of the SigIgn mask), so a closed pipe is
/// an EPIPE error and never a signal that kills it.
fn assert_sigpipe_ignored(b: &RawBroker) {
    let mask = u64::from_str_radix(&b.status_field("SigIgn"), 16).expect("SigIgn mask");
    assert_ne!(mask & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE is not ignored: SigIgn={mask:x}");
}

fn assert_raw_rss_bounded(b: &RawBroker) {
    let hwm: u64 = b.status_field("VmHWM").split_whitespace().next().and_then(|v| v.parse().ok()).expect("VmHWM");
    eprintln!("broker peak RSS (VmHWM): {hwm} KiB");
    assert!(hwm < RSS_MAX_KIB, "peak RSS {hwm} KiB is over the bound {RSS_MAX_KIB} KiB");
}

/// Runs the workload against a broker whose stderr is `stderr` (already failing,
/// or failing during the run), checks it serves throughout and stops cleanly,
/// then restarts it with a working stderr and checks the data again.
async fn survives_failing_stderr(stderr: Stdio, while_running: impl FnOnce()) {
    let dir = tempfile::Builder::new().prefix("shardlog-it-sink-").tempdir().expect("tempdir");
    let mut b = RawBroker::start(dir.path(), stderr, "debug");
    while_running();
    let bs = b.bootstrap();
    let acked = log_heavy_workload(&bs).await;
    b.assert_running();
    assert_sigpipe_ignored(&b);
    assert_raw_rss_bounded(&b);
    b.stop();
    let b = RawBroker::start(dir.path(), Stdio::null(), "info");
    assert_intact(&b.bootstrap(), "sink", 2, &acked);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stderr_pipe_does_not_stop_the_broker() {
    let _one = serial();
    let (read_end, write_end) = pipe();
    let reader = std::thread::spawn(move || {
        // Read the start-up lines, then close the pipe while the broker runs.
        let mut first = [0u8; 256];
        let mut r = read_end;
        let _ = r.read(&mut first);
        drop(r);
    });
    survives_failing_stderr(Stdio::from(write_end), move || reader.join().expect("reader")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_stderr_reader_does_not_block_the_broker() {
    let _one = serial();
    let (read_end, write_end) = pipe();
    // One page of pipe buffer, never read: the broker's log writer blocks early.
    // SAFETY: fcntl on a pipe fd this test owns.
    let size = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&read_end), libc::F_SETPIPE_SZ, 4096) };
    assert!(size >= 4096, "F_SETPIPE_SZ: {}", std::io::Error::last_os_error());
    survives_failing_stderr(Stdio::from(write_end), || {}).await;
    drop(read_end);
}

#[tokio::test(flavor = "multi_thread")]
async fn stderr_on_a_full_filesystem_does_not_stop_the_broker() {
    let _one = serial();
    let fs = Tmpfs::mount("64k");
    let log_path: PathBuf = fs.path().join("broker.log");
    let log = File::options().create(true).append(true).open(&log_path).expect("log file");
    // Fill the filesystem, so every write to the log fails with ENOSPC.
    let mut filler = File::create(fs.path().join("filler")).expect("filler");
    let chunk = vec![0u8; 4096];
    while filler.write_all(&chunk).is_ok() {}
    let mut probe = File::options().append(true).open(&log_path).expect("probe");
    assert_eq!(probe.write_all(b"x").map_err(|e| e.raw_os_error()), Err(Some(libc::ENOSPC)), "the filesystem is full");
    survives_failing_stderr(Stdio::from(log), || {}).await;
}

/// A full data disk: every produce fails with KAFKA_STORAGE_ERROR; the log says
/// so at most about once a second per call site instead of once per failed write.
#[tokio::test(flavor = "multi_thread")]
async fn a_storage_error_burst_logs_a_bounded_number_of_lines() {
    let _one = serial();
    let fs = Tmpfs::mount("6m");
    // Room given back before the restart, so the broker can start and recover.
    let spare = fs.path().join("spare");
    std::fs::write(&spare, vec![1u8; 1024 * 1024]).expect("spare");
    let data = fs.path().join("data");
    let dirs = data.display().to_string();
    let mut b = Broker::start(&[("log.dirs", &dirs), ("log.segment.bytes", "1048576"), ("message.max.bytes", "131072")]);
    let bs = b.bootstrap();
    let mut conn = RawConn::connect(&bs);
    assert_eq!(create_one(&mut conn, "full", 1).0, NONE);
    assert_eq!(create_one(&mut conn, "kept", 1).0, NONE);
    let acked = produce_acked(&bs, "kept", 1, 5);

    // Fill the disk until the broker answers KAFKA_STORAGE_ERROR to 64 KiB batches,
    // then to 8 KiB ones (a failed write is cut off again, so the space it took is free).
    let big: Vec<String> = (0..8).map(|i| format!("{i}-{}", "x".repeat(8 * 1024))).collect();
    for batch in [&big[..], &big[..1]] {
        let mut filled = false;
        for _ in 0..200 {
            let (code, _) = produce_values(&mut conn, "full", 0, batch);
            if code == KAFKA_STORAGE_ERROR {
                filled = true;
                break;
            }
            assert_eq!(code, NONE);
        }
        assert!(filled, "6 MiB should fill within 200 batches");
    }
    // The burst: hundreds of failed writes over a few seconds.
    let start = Instant::now();
    let mut failed = 0;
    while failed < 400 || start.elapsed() < Duration::from_millis(2500) {
        let (code, _) = produce_values(&mut conn, "full", 0, &big[..1]);
        assert_eq!(code, KAFKA_STORAGE_ERROR, "a full disk answers KAFKA_STORAGE_ERROR");
        failed += 1;
    }
    let secs = start.elapsed().as_secs() + 1;
    // The log writer drains its queue; the rate limiter's next line carries the suppressed count.
    let end = Instant::now() + Duration::from_secs(30);
    while !(b.output().lines().filter(|l| l.contains("segment write failed")).count() >= 2 && b.output().contains("suppressed_since_last"))
        && Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = b.output();
    let lines = out.lines().filter(|l| l.contains("segment write failed")).count() as u64;
    eprintln!("{lines} 'segment write failed' lines for {failed} failed produce requests in {secs} s");
    assert!(lines >= 1, "the failure is logged");
    // One at the start of the burst, at most one per second after it, one after the sleep's tick.
    assert!(lines <= secs + 2, "{lines} 'segment write failed' lines for {failed} failures in {secs} s");
    assert!(lines >= 2 && out.contains("suppressed_since_last"), "a line a second, with the suppressed count");
    // Reads still work, acknowledged data is intact; the broker is up and bounded.
    assert_intact(&bs, "kept", 1, &acked);
    assert!(b.is_running());
    assert_rss_bounded(&b);
    // After room is made, a restart recovers both topics' acknowledged data.
    b.kill9();
    std::fs::remove_file(&spare).expect("free space");
    b.restart();
    assert_intact(&b.bootstrap(), "kept", 1, &acked);
    drop(b);
    drop(fs);
}

/// Client tools answer on stdout and warn on stderr; closed pipes end them
/// quietly (`shardlog topic list | head -1`), never with a panic or a signal.
#[test]
fn cli_tools_survive_closed_pipes() {
    let _one = serial();
    let b = Broker::start(&[]);
    let bs = b.bootstrap();
    for i in 0..50 {
        let out =
            Command::new(broker_bin()).args(["topic", "create", &format!("cli-{i}"), "--partitions", "1", "--bootstrap-server", &bs]).output().expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // stdout closed before the listing is written.
    let (read_end, write_end) = pipe();
    drop(read_end);
    let st = Command::new(broker_bin())
        .args(["topic", "list", "--bootstrap-server", &bs])
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .expect("run topic list");
    assert_eq!(st.status.code(), Some(0), "topic list into a closed pipe: {st:?}");
    assert!(!String::from_utf8_lossy(&st.stderr).contains("panicked"), "{st:?}");
    // stderr closed while the tool reports an error there: the error exit code, no abort.
    let (read_end, write_end) = pipe();
    drop(read_end);
    let st = Command::new(broker_bin())
        .args(["topic", "create", "bad/name", "--partitions", "1", "--bootstrap-server", &bs])
        .stdout(Stdio::null())
        .stderr(Stdio::from(write_end))
        .status()
        .expect("run topic create");
    assert!(st.code().is_some_and(|c| c != 0 && c < 128), "an error exit, not a signal or abort: {st:?}");
}
