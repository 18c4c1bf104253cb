//! Start-up hardening through the real binary (issue 13, defects 4 and 5):
//!
//! - a second broker on the same log dir, the same port, or both, exits
//!   non-zero with a one-line message naming the lock file (and the holder's
//!   pid) or the port, and the first broker keeps serving with its data intact;
//! - with RLIMIT_NOFILE too low for a CreateTopics, the partitions that cannot
//!   be opened are reported (KAFKA_STORAGE_ERROR in CreateTopics, offline in
//!   Metadata, on Produce, Fetch and ListOffsets), never listed as healthy; the
//!   broker keeps serving the rest, keeps accepting connections, does not flood
//!   its log with accept errors, and restarts with the same low limit serving
//!   the partitions that open; `shardlog tune` flags the limit.
//!
//! Raw frames (kafka-protocol) throughout: they show the exact error codes and
//! leaders, which librdkafka would turn into retries.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::*;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};

use common::*;

/// KAFKA_STORAGE_ERROR.
const STORAGE_ERROR: i16 = 56;
/// The harness broker's id (`node.id` default).
const BROKER_ID: i32 = 0;
/// Peak RSS the broker must stay under in these tests.
const RSS_BOUND_KIB: u64 = 256 * 1024;

/// A batch of `n` records with values `{tag}-{i}`.
fn batch(tag: &str, n: usize) -> Bytes {
    let recs: Vec<Record> = (0..n).map(|i| plain_record(i as i64, 1_700_000_000_000, None, Some(Bytes::from(format!("{tag}-{i}"))))).collect();
    record_batch(&recs, Compression::None)
}

/// Produce v9, acks=all, one batch to one partition: (error code, base offset).
fn produce(conn: &mut RawConn, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let p = produce_raw(conn, 9, -1, topic, partition, records);
    (p.error_code, p.base_offset)
}

/// Fetch v11 of one partition from `offset`: (error code, (offset, value) of every record).
fn fetch(conn: &mut RawConn, topic: &str, partition: i32, offset: i64) -> (i16, Vec<(i64, String)>) {
    let resp = conn.roundtrip(11, &fetch_request(topic, partition, offset, 0, 0));
    let p = &resp.responses[0].partitions[0];
    let mut out = Vec::new();
    if let Some(mut records) = p.records.clone() {
        if !records.is_empty() {
            for set in RecordBatchDecoder::decode_all(&mut records).expect("decode fetched batches") {
                for r in set.records {
                    let v = r.value.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default();
                    out.push((r.offset, v));
                }
            }
        }
    }
    (p.error_code, out)
}

/// ListOffsets v5 (latest) of one partition: (error code, offset).
fn list_latest(conn: &mut RawConn, topic: &str, partition: i32) -> (i16, i64) {
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
        .with_name(TopicName(sb(topic)))
        .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(-1).with_current_leader_epoch(-1)])]);
    let resp = conn.roundtrip(5, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset)
}

/// CreateTopics v5 of one topic: (error code, error message).
fn create_topic_raw(conn: &mut RawConn, topic: &str, partitions: i32) -> (i16, String) {
    let t = create_topics_raw(conn, 5, 60_000, &[(topic, partitions)], false).remove(0);
    (t.1, t.2)
}

/// Metadata v9 of the given topics (no auto-creation).
fn metadata(conn: &mut RawConn, topics: &[&str]) -> Vec<MetadataResponseTopic> {
    metadata_raw(conn, 9, Some(topics), false).topics
}

/// Acknowledged records of `topic`: (partition, offset, value), produced in
/// batches of 10 alternating over `partitions`.
fn produce_acknowledged(conn: &mut RawConn, topic: &str, partitions: i32, batches: usize, tag: &str) -> Vec<(i32, i64, String)> {
    let mut acked = Vec::new();
    for b in 0..batches {
        let p = b as i32 % partitions;
        let t = format!("{tag}{b}");
        let (err, base) = produce(conn, topic, p, batch(&t, 10));
        assert_eq!(err, 0, "produce {topic}-{p} batch {b}");
        for i in 0..10 {
            acked.push((p, base + i as i64, format!("{t}-{i}")));
        }
    }
    acked
}

/// Every acknowledged record is where it was acknowledged, and nothing else is there.
fn assert_intact(conn: &mut RawConn, topic: &str, partitions: i32, acked: &[(i32, i64, String)], when: &str) {
    for p in 0..partitions {
        let want: Vec<(i64, String)> = acked.iter().filter(|a| a.0 == p).map(|a| (a.1, a.2.clone())).collect();
        let (err, got) = fetch(conn, topic, p, 0);
        assert_eq!(err, 0, "{when}: fetch {topic}-{p}");
        assert_eq!(got, want, "{when}: {topic}-{p} holds exactly the acknowledged records at their offsets");
    }
}

/// Runs `shardlog start` as a second broker; it must exit by itself within
/// 30 s. Returns (exit code, stderr). A second broker that keeps running is
/// killed and fails the test.
fn second_broker(log_dir: &Path, port: u16) -> (Option<i32>, String) {
    let mut child = Command::new(broker_bin())
        .args(["start", "--set", &format!("listeners=PLAINTEXT://127.0.0.1:{port}")])
        .args(["--set", &format!("log.dirs={}", log_dir.display()), "--set", "shard.cores=0,1", "--set", "admin.listener=http://127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn second broker");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(_status) = child.try_wait().expect("try_wait") {
            let out = child.wait_with_output().expect("second broker output");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(!stdout.contains("shardlog listening on"), "the second broker must not listen: {stdout}");
            return (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("second broker output");
            panic!("the second broker on {} / port {port} kept running: {}", log_dir.display(), String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last non-empty stderr line: the one-line start-up error.
fn last_line(stderr: &str) -> &str {
    stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
}

/// The files of a log dir (relative path, length), for "untouched" checks.
fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("dir entry");
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path().strip_prefix(dir).unwrap().display().to_string(), m.len()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_second_broker_on_the_same_log_dir_or_port_is_refused() {
    let mut a = Broker::start(&[]);
    let (bs, port) = (a.bootstrap(), a.port());
    let dir = a.log_dir().to_path_buf();
    let mut conn = RawConn::connect(&bs);
    let topic = "guarded";
    assert_eq!(create_topic_raw(&mut conn, topic, 2).0, 0);
    let mut acked = produce_acknowledged(&mut conn, topic, 2, 30, "a");
    let before = files(&dir);
    let pid = a.pid().expect("broker A pid");
    let lock = dir.join(".lock");
    assert_eq!(std::fs::read_to_string(&lock).expect("lock file").trim(), pid.to_string(), "the lock file names its holder");

    // Same log dir, another port.
    let (code, err) = second_broker(&dir, 0);
    assert!(code.is_some_and(|c| c != 0), "same dir: non-zero exit, got {code:?}: {err}");
    let line = last_line(&err);
    assert!(line.contains(&lock.display().to_string()) && line.contains(&format!("pid {pid}")), "same dir: names the lock and its holder: {err}");

    // Same port, another log dir.
    let other = tempfile::tempdir().expect("tempdir");
    let (code, err) = second_broker(other.path(), port);
    assert!(code.is_some_and(|c| c != 0), "same port: non-zero exit, got {code:?}: {err}");
    assert!(last_line(&err).contains(&format!("port {port}")), "same port: names the port: {err}");

    // Same log dir and port.
    let (code, err) = second_broker(&dir, port);
    assert!(code.is_some_and(|c| c != 0), "same dir and port: non-zero exit, got {code:?}: {err}");
    assert!(last_line(&err).contains(&lock.display().to_string()), "same dir and port: names the lock: {err}");

    // Each refusal is one line (the message), nothing else.
    for l in err.lines().filter(|l| !l.trim().is_empty()) {
        assert!(l.starts_with("shardlog: "), "only the one-line error on stderr: {err}");
    }

    // A never noticed: still running, the refused brokers wrote nothing in its dir.
    assert!(a.is_running(), "broker A keeps running");
    assert_eq!(files(&dir), before, "the refused brokers left A's log dir untouched");
    acked.extend(produce_acknowledged(&mut conn, topic, 2, 10, "after"));
    assert_intact(&mut conn, topic, 2, &acked, "while A runs");
    drop(conn);

    // And after a clean restart of A, every acknowledged record is at its offset.
    a.restart();
    let mut conn = RawConn::connect(&a.bootstrap());
    assert_intact(&mut conn, topic, 2, &acked, "after A's restart");
    assert_eq!(acked.len(), 400);
}

/// Partitions of `t`: (healthy, offline), checking each is one or the other
/// exactly as Kafka shows a replica on a failed log dir.
fn split_partitions(t: &MetadataResponseTopic) -> (Vec<i32>, Vec<i32>) {
    let (mut healthy, mut offline) = (Vec::new(), Vec::new());
    for p in &t.partitions {
        match p.error_code {
            0 => {
                assert_eq!(p.leader_id.0, BROKER_ID, "a healthy partition has this broker as leader: {p:?}");
                assert_eq!(p.isr_nodes.iter().map(|b| b.0).collect::<Vec<_>>(), vec![BROKER_ID], "{p:?}");
                assert!(p.offline_replicas.is_empty(), "{p:?}");
                healthy.push(p.partition_index);
            }
            STORAGE_ERROR => {
                assert_eq!(p.leader_id.0, -1, "an offline partition has no leader: {p:?}");
                assert!(p.isr_nodes.is_empty(), "an offline partition has no ISR: {p:?}");
                assert_eq!(p.offline_replicas.iter().map(|b| b.0).collect::<Vec<_>>(), vec![BROKER_ID], "{p:?}");
                offline.push(p.partition_index);
            }
            other => panic!("partition {} has error {other}, expected 0 or KAFKA_STORAGE_ERROR: {p:?}", p.partition_index),
        }
    }
    (healthy, offline)
}

fn count_lines(output: &str, needle: &str) -> usize {
    output.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn running_out_of_file_descriptors_is_reported_and_survived() {
    const NOFILE: u64 = 256;
    const WIDE: i32 = 500;
    let mut b = Broker::start_with_nofile(&[], Some(NOFILE));
    let bs = b.bootstrap();
    let mut conn = RawConn::connect(&bs);

    // Acknowledged data first, on a topic that fits.
    assert_eq!(create_topic_raw(&mut conn, "keep", 2).0, 0);
    let keep = produce_acknowledged(&mut conn, "keep", 2, 20, "k");
    assert_eq!(create_topic_raw(&mut conn, "grow", 1).0, 0);

    // 500 partitions cannot all be open within 256 descriptors.
    let (code, msg) = create_topic_raw(&mut conn, "wide", WIDE);
    assert_eq!(code, STORAGE_ERROR, "CreateTopics past RLIMIT_NOFILE is a storage error, not success: {msg}");
    assert!(msg.contains("could not be opened") && msg.contains("Too many open files"), "{msg}");

    let md = metadata(&mut conn, &["keep", "wide"]);
    assert_eq!(md[0].error_code, 0);
    assert_eq!(split_partitions(&md[0]), (vec![0, 1], vec![]), "keep stays healthy");
    assert_eq!(md[1].partitions.len(), WIDE as usize);
    let (healthy, offline) = split_partitions(&md[1]);
    assert!(!healthy.is_empty() && !offline.is_empty(), "some open, the rest offline: {} healthy", healthy.len());
    assert!(msg.contains(&format!("{} partition(s) of topic wide", offline.len())), "the answer counts the offline ones: {msg}");

    // Offline: every data API says KAFKA_STORAGE_ERROR (not UNKNOWN_TOPIC_OR_PARTITION).
    let down = *offline.last().unwrap();
    assert_eq!(produce(&mut conn, "wide", down, batch("x", 1)).0, STORAGE_ERROR, "produce to offline wide-{down}");
    assert_eq!(fetch(&mut conn, "wide", down, 0).0, STORAGE_ERROR, "fetch from offline wide-{down}");
    assert_eq!(list_latest(&mut conn, "wide", down).0, STORAGE_ERROR, "list offsets of offline wide-{down}");

    // Growing a topic while descriptors are short: the new partitions that
    // cannot open make CreatePartitions a storage error too. (Its metadata
    // change also retries the offline partitions of wide: some may open.)
    let (code, msg) = create_partitions_raw(&mut conn, 1, 60_000, "grow", 40);
    assert_eq!(code, STORAGE_ERROR, "CreatePartitions past RLIMIT_NOFILE: {msg}");
    let md = metadata(&mut conn, &["grow"]);
    let (grow_up, grow_down) = split_partitions(&md[0]);
    assert!(grow_up.contains(&0) && !grow_down.is_empty(), "grow-0 stays healthy, new ones are offline: {grow_down:?}");
    assert!(msg.contains(&format!("{} partition(s) of topic grow", grow_down.len())), "{msg}");

    // The partitions that opened are served.
    let up = healthy[0];
    let (err, base) = produce(&mut conn, "wide", up, batch("w", 5));
    assert_eq!((err, base), (0, 0), "produce to healthy wide-{up}");
    let wide_acked: Vec<(i32, i64, String)> = (0..5).map(|i| (up, i as i64, format!("w-{i}"))).collect();
    assert_eq!(fetch(&mut conn, "wide", up, 0), (0, wide_acked.iter().map(|a| (a.1, a.2.clone())).collect()));
    assert_intact(&mut conn, "keep", 2, &keep, "after the failed CreateTopics");
    // One summary line per shard and pass, not one per partition.
    assert!(count_lines(&b.output(), "could not be opened and are offline") <= 4, "{}", b.output());

    // Connections past the limit: accept fails with EMFILE, backs off, and
    // logs a few lines (a fixed 10 ms retry logged ~300 per second).
    let flood_start = count_lines(&b.output(), "accept failed");
    let held: Vec<std::net::TcpStream> = (0..NOFILE + 50).map(|_| std::net::TcpStream::connect(&bs).expect("connect")).collect();
    std::thread::sleep(Duration::from_secs(6)); // the scenario: the window the log-line rate is measured over
    let accept_lines = count_lines(&b.output(), "accept failed") - flood_start;
    assert!(accept_lines > 0, "the descriptors ran out, so accepts must have failed");
    assert!(accept_lines <= 2 * 8, "accept errors are rate-limited: {accept_lines} lines in 6 s");
    assert!(b.is_running());
    drop(held);
    // Descriptors free again: new connections are served (within the 1 s backoff).
    let mut fresh = RawConn::connect(&bs);
    assert_eq!(split_partitions(&metadata(&mut fresh, &["keep"])[0]).0, vec![0, 1]);
    assert_intact(&mut fresh, "keep", 2, &keep, "after the accept flood");
    drop(fresh);

    let rss = b.proc_status_kib("VmHWM").expect("VmHWM");
    eprintln!("peak RSS after the failed CreateTopics and the accept flood: {rss} KiB");
    assert!(rss < RSS_BOUND_KIB, "peak RSS {rss} KiB over the bound {RSS_BOUND_KIB} KiB");
    drop(conn);

    // Restart with the same low limit: it starts, warns about the limit, and
    // serves what opens (keep and the first wide partitions of each shard).
    let gen1 = b.output().len();
    b.restart();
    let out = b.output()[gen1..].to_string();
    assert!(out.contains(&format!("RLIMIT_NOFILE {NOFILE} is below the estimated need")), "start-up warns: {out}");
    let mut conn = RawConn::connect(&b.bootstrap());
    let md = metadata(&mut conn, &["keep", "wide"]);
    assert_eq!(split_partitions(&md[0]), (vec![0, 1], vec![]), "keep healthy after restart");
    let (healthy, offline) = split_partitions(&md[1]);
    assert!(!healthy.is_empty() && !offline.is_empty(), "after restart some wide partitions open, the rest are offline");
    assert!(healthy.contains(&up), "wide-{up}, among the first of its shard, opens again");
    assert_intact(&mut conn, "keep", 2, &keep, "after restart with the low limit");
    assert_eq!(fetch(&mut conn, "wide", up, 0), (0, wide_acked.iter().map(|a| (a.1, a.2.clone())).collect()), "wide-{up} after restart");
    let down = *offline.last().unwrap();
    assert_eq!(produce(&mut conn, "wide", down, batch("x", 1)).0, STORAGE_ERROR, "produce to offline wide-{down} after restart");
    let rss = b.proc_status_kib("VmHWM").expect("VmHWM");
    eprintln!("peak RSS after the restart at RLIMIT_NOFILE {NOFILE}: {rss} KiB");
    assert!(rss < RSS_BOUND_KIB, "peak RSS {rss} KiB after restart over the bound {RSS_BOUND_KIB} KiB");
}

/// `shardlog tune --output json`, its RLIMIT_NOFILE set to `nofile` (soft and
/// hard) when given; returns the nofile finding.
fn tune_nofile(args: &[&str], nofile: Option<u64>) -> serde_json::Value {
    let mut cmd = Command::new(broker_bin());
    cmd.arg("tune").args(args).args(["--output", "json"]);
    if let Some(n) = nofile {
        limit_nofile(&mut cmd, n);
    }
    let out = cmd.output().expect("run shardlog tune");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("tune JSON");
    v["checks"].as_array().expect("checks").iter().find(|c| c["name"] == "nofile").expect("nofile check").clone()
}

#[test]
fn tune_checks_nofile_against_the_partitions_in_the_log_dir() {
    let mut b = Broker::start(&[]);
    let mut conn = RawConn::connect(&b.bootstrap());
    assert_eq!(create_topic_raw(&mut conn, "many", 120).0, 0);
    drop(conn);
    b.stop();
    let dir = b.log_dir().display().to_string();

    // 120 partitions + 2 shards + 64 reserved do not fit in 128.
    let f = tune_nofile(&["--log-dir", &dir], Some(128));
    assert_eq!(f["status"], "WARN", "{f}");
    let finding = f["finding"].as_str().unwrap();
    assert!(finding.contains(&format!("the 120 partitions in {dir} need")) && finding.contains("would be offline"), "{finding}");
    assert!(f["fix"].as_str().unwrap().contains("LimitNOFILE="), "{f}");

    // With this process's own limit (20,000 or more on a usual host) they fit.
    let f = tune_nofile(&["--log-dir", &dir], None);
    let finding = f["finding"].as_str().unwrap();
    assert!(finding.contains("the 120 partitions") && !finding.contains("would be offline"), "{f}");

    // A planned partition count instead of the dir's.
    let f = tune_nofile(&["--log-dir", &dir, "--partitions", "3000000"], None);
    assert_eq!(f["status"], "WARN", "{f}");
    let finding = f["finding"].as_str().unwrap();
    assert!(finding.contains("3000000 planned partitions") && finding.contains("would be offline"), "{f}");
}
