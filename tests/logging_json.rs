//! Structured logs: `log.format=json` writes one JSON object per stderr line,
//! each line from a shard carries its `shard` span, partition lines carry
//! `topic` and `partition`, a connection's lines its `peer` and `client_id`;
//! `log.level` filters, and `SHARDLOG_LOG` / `RUST_LOG` win over it.
//!
//! The brokers here are spawned by the test, not the harness: the harness sets
//! `RUST_LOG` for every broker, and these tests need the environment exactly so.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

use common::*;

/// One broker at a time in this file (each pins shards on cores 0 and 1): a
/// flag, not a MutexGuard, since it is held across awaits; released on panic too.
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

/// A broker run to its end: what it wrote on stderr, line by line.
struct Run {
    bootstrap: String,
    child: std::process::Child,
    stderr: std::thread::JoinHandle<Vec<String>>,
    _dir: tempfile::TempDir,
}

impl Run {
    /// Starts `shardlog start` with `sets` and exactly the log variables in `env`.
    fn start(sets: &[&str], env: &[(&str, &str)]) -> Run {
        let dir = tempfile::Builder::new().prefix("shardlog-logs-").tempdir().expect("temp dir");
        let mut cmd = Command::new(broker_bin());
        cmd.args(["start", "--set", "listeners=PLAINTEXT://127.0.0.1:0", "--set", "admin.listener=http://127.0.0.1:0", "--set", "shard.cores=0,1", "--set"])
            .arg(format!("log.dirs={}", dir.path().display()));
        for s in sets {
            cmd.arg("--set").arg(s);
        }
        cmd.env_remove("RUST_LOG").env_remove("SHARDLOG_LOG").envs(env.iter().copied());
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn shardlog");
        let stderr = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>());
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("shardlog listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let addr = rx.recv_timeout(START_TIMEOUT).expect("the broker's listening line");
        Run { bootstrap: addr, child, stderr, _dir: dir }
    }

    /// SIGTERM, a clean exit, and every stderr line.
    fn stop(mut self) -> Vec<String> {
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                assert!(st.success(), "broker exit status {st:?}");
                break;
            }
            assert!(Instant::now() < deadline, "the broker did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stderr.join().expect("stderr reader")
    }
}

/// Parses every line as a JSON object with the fixed fields; panics naming the line that is not.
fn parse_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('T')), "timestamp: {l}");
            assert!(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&v["level"].as_str().unwrap_or("")), "level: {l}");
            assert!(v["target"].is_string(), "target: {l}");
            let fields = v.as_object().expect("an object").keys().filter(|k| !["timestamp", "level", "target", "span", "spans"].contains(&k.as_str())).count();
            assert!(v["message"].is_string() || fields > 0, "neither a message nor fields: {l}");
            v
        })
        .collect()
}

/// The value of `field` in any span the line was logged in.
fn span_field<'a>(line: &'a Value, field: &str) -> Option<&'a Value> {
    line["spans"].as_array()?.iter().find_map(|s| s.get(field))
}

async fn produce(bootstrap: &str, topic: &str, n: usize) {
    let p: FutureProducer = producer_config(bootstrap).create().expect("producer");
    for i in 0..n {
        let v = format!("value-{i}");
        p.send(FutureRecord::<str, str>::to(topic).key("k").payload(&v), OP_TIMEOUT).await.expect("produce");
    }
}

/// A request of an unknown API key: the broker closes the connection and logs why.
fn unknown_api_from(bootstrap: &str, client_id: &str) {
    let mut conn = RawConn::connect(bootstrap);
    let mut f = BytesMut::new();
    f.put_i16(999);
    f.put_i16(0);
    f.put_i32(1);
    f.put_i16(client_id.len() as i16);
    f.put_slice(client_id.as_bytes());
    conn.write_frame(&f);
    conn.expect_closed(OP_TIMEOUT).expect("closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_lines_carry_shard_topic_partition_and_client_id() {
    let _one = serial();
    let run = Run::start(&["log.format=json", "log.level=debug"], &[]);
    let topic = topic_name("json-logs");
    create_topic(&run.bootstrap, &topic, 2).await;
    produce(&run.bootstrap, &topic, 20).await;
    unknown_api_from(&run.bootstrap, "logs-test-client");
    let lines = parse_lines(&run.stop());

    // The broker's own lines, main thread and shards.
    assert!(lines.iter().any(|l| l["message"] == "broker started" && l["level"] == "INFO"), "{lines:#?}");
    // Every line a shard's code logs carries the shard.
    let from_shards: Vec<&Value> = lines.iter().filter(|l| l["target"].as_str().is_some_and(|t| t.starts_with("shardlog::shard"))).collect();
    assert!(!from_shards.is_empty(), "{lines:#?}");
    for l in &from_shards {
        assert!(span_field(l, "shard").is_some_and(|s| s.as_u64().is_some_and(|s| s < 2)), "no shard: {l}");
    }
    // Each partition's "leading" line: its topic and partition, on the shard that owns it.
    let leading: Vec<&Value> = lines.iter().filter(|l| l["message"] == "leading" && l["topic"] == topic.as_str()).collect();
    let mut partitions: Vec<i64> = leading.iter().map(|l| l["partition"].as_i64().expect("partition")).collect();
    partitions.sort_unstable();
    assert_eq!(partitions, [0, 1], "{leading:#?}");
    assert!(leading.iter().all(|l| l["span"]["name"] == "shard"), "{leading:#?}");
    // The closed connection's line: its peer and client id.
    let closing = lines.iter().find(|l| l["message"].as_str().is_some_and(|m| m.starts_with("closing connection"))).expect("a closing connection line");
    assert_eq!(closing["client_id"], "logs-test-client", "{closing}");
    assert!(closing["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{closing}");
    assert!(span_field(closing, "shard").is_some(), "{closing}");
}

/// `log.level` filters; `RUST_LOG` wins over it and `SHARDLOG_LOG` over both.
#[tokio::test(flavor = "multi_thread")]
async fn log_level_and_env_precedence() {
    let _one = serial();
    let levels = |lines: &[Value]| lines.iter().map(|l| l["level"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>();
    for (sets, env, info_expected) in [
        (&["log.format=json", "log.level=warn"][..], &[][..], false),
        (&["log.format=json", "log.level=debug"][..], &[("RUST_LOG", "warn")][..], false),
        (&["log.format=json", "log.level=warn"][..], &[("RUST_LOG", "warn"), ("SHARDLOG_LOG", "info")][..], true),
    ] {
        let run = Run::start(sets, env);
        create_topic(&run.bootstrap, &topic_name("levels"), 1).await;
        let lines = parse_lines(&run.stop());
        let l = levels(&lines);
        if info_expected {
            assert!(l.iter().any(|l| l == "INFO"), "{sets:?} {env:?}: {lines:#?}");
        } else {
            assert!(l.iter().all(|l| l == "WARN" || l == "ERROR"), "{sets:?} {env:?}: {lines:#?}");
        }
    }
}

/// A bad `log.format` or `log.level` stops start-up with one plain line naming the key
/// (logging has not started); a later start-up failure is logged in the chosen format.
#[test]
fn bad_log_keys_stop_start_up() {
    for (set, why) in
        [("log.format=xml", "bad value for `log.format`: unknown log format `xml` (known: text, json)"), ("log.level=info,x=loud", "bad value for `log.level`")]
    {
        let out = Command::new(broker_bin()).args(["start", "--set", set]).env_remove("RUST_LOG").env_remove("SHARDLOG_LOG").output().expect("run shardlog");
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("shardlog: ") && err.contains(why) && err.lines().count() == 1, "{err}");
    }
    // A start-up failure once logging runs: in JSON, an ERROR object like the lines before it.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").expect("file");
    let out = Command::new(broker_bin())
        .args(["start", "--set", "log.format=json", "--set", "admin.listener=http://127.0.0.1:0", "--set"])
        .arg(format!("log.dirs={}", file.display()))
        .env_remove("RUST_LOG")
        .env_remove("SHARDLOG_LOG")
        .output()
        .expect("run shardlog");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines: Vec<String> = String::from_utf8_lossy(&out.stderr).lines().map(str::to_string).collect();
    let last = parse_lines(&lines).pop().expect("a line");
    assert!(last["level"] == "ERROR" && last["message"].as_str().is_some_and(|m| m.starts_with("shardlog: ")), "{lines:?}");
}
