//! The admin listener against the real binary and real clients (librdkafka):
//! `/metrics` counts what the clients did, the lag verdict of a group is the
//! same in the metric, the CLI (`shardlog group lag`) and the admin API for each
//! of OK, STALLED, STOPPED and REWIND, and the listener refuses changes when
//! read-only and survives oversized and silent clients.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{broker_bin, consume_all, create_topic, producer_config, Broker, RawConn};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use serde_json::Value;

/// Helper mode of this test binary (see [`killed_consumer_helper`]).
const CHILD_ENV: &str = "SHARDLOG_ADMIN_TEST_CHILD";

fn http(method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let req = agent.request(method, url);
    let res = match body {
        Some(b) => req.set("content-type", "application/json").send_string(b),
        None => req.call(),
    };
    match res {
        Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn scrape(broker: &Broker) -> String {
    ureq::get(&format!("{}/metrics", broker.admin_url())).call().expect("scrape /metrics").into_string().expect("metrics text")
}

/// The value of the sample `name` whose labels include all of `labels`.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').map_or((series, ""), |(n, r)| (n, r));
        if n != name || !labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))) {
            return None;
        }
        value.parse().ok()
    })
}

/// Every sample line is `name{labels} value` with a metric name and a number.
fn assert_exposition_format(text: &str) {
    for l in text.lines() {
        if l.starts_with("# HELP ") || l.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {l:?}"));
        let name = series.split('{').next().unwrap();
        assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "bad metric name in {l:?}");
        assert!(name.starts_with("shardlog_"), "{l:?}");
        assert!(value.parse::<f64>().is_ok() || value == "+Inf" || value == "NaN", "bad value in {l:?}");
    }
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => panic!("{what}: not within {timeout:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

async fn produce(bootstrap: &str, topic: &str, partition: i32, n: usize) {
    let producer: FutureProducer = producer_config(bootstrap).create().expect("producer");
    for i in 0..n {
        let (k, v) = (format!("k{i}"), format!("value-{i}"));
        producer.send(FutureRecord::to(topic).partition(partition).key(&k).payload(&v), Duration::from_secs(30)).await.expect("delivery");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_produce_fetch_errors_and_connections() {
    let broker = Broker::start(&[]);
    let bs = broker.bootstrap();
    create_topic(&bs, "m-orders", 2).await;
    produce(&bs, "m-orders", 0, 30).await;
    produce(&bs, "m-orders", 1, 20).await;

    let text = scrape(&broker);
    assert_exposition_format(&text);
    assert_eq!(metric(&text, "shardlog_topic_records_in_total", &[("topic", "m-orders")]), Some(50.0), "{text}");
    assert!(metric(&text, "shardlog_topic_bytes_in_total", &[("topic", "m-orders")]).unwrap() > 50.0 * 7.0);
    assert!(metric(&text, "shardlog_requests_total", &[("api", "Produce")]).unwrap() >= 1.0);
    assert!(metric(&text, "shardlog_request_duration_seconds_count", &[("api", "Produce")]).unwrap() >= 1.0);
    assert!(metric(&text, "shardlog_produce_batch_size_bytes_count", &[]).unwrap() >= 2.0);
    assert_eq!(metric(&text, "shardlog_partition_high_watermark", &[("topic", "m-orders"), ("partition", "0")]), Some(30.0));
    assert_eq!(metric(&text, "shardlog_partition_log_end_offset", &[("topic", "m-orders"), ("partition", "1")]), Some(20.0));
    assert!(metric(&text, "shardlog_partition_log_size_bytes", &[("topic", "m-orders"), ("partition", "1")]).unwrap() > 0.0);
    assert!(metric(&text, "shardlog_leader_partitions", &[]).unwrap() >= 2.0);
    assert!(metric(&text, "shardlog_connections_accepted_total", &[]).unwrap() >= 1.0);
    assert_eq!(metric(&text, "shardlog_controller_active", &[]), Some(1.0));
    assert!(metric(&text, "shardlog_shard_busy_seconds_total", &[("shard", "0")]).unwrap() > 0.0);
    assert!(metric(&text, "shardlog_io_uring_submissions_total", &[("shard", "0")]).is_some());

    // Consumers' bytes and records out.
    let got = consume_all(&bs, "m-orders", 2, 50, Duration::from_secs(30));
    assert_eq!(got.len(), 50);
    wait_for("bytes out counted", Duration::from_secs(10), || {
        let t = scrape(&broker);
        match (metric(&t, "shardlog_topic_bytes_out_total", &[("topic", "m-orders")]), metric(&t, "shardlog_topic_records_out_total", &[("topic", "m-orders")]))
        {
            (Some(b), Some(r)) if b > 50.0 * 7.0 && r > 0.0 && r <= 50.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    // A produce to a partition that does not exist is counted as an error.
    let mut conn = RawConn::connect(&bs);
    let batch = common::record_batch(&[common::plain_record(0, 0, None, Some(bytes::Bytes::from_static(b"x")))], kafka_protocol::records::Compression::None);
    let r = common::produce_raw(&mut conn, 9, 1, "m-orders", 7, batch);
    assert_eq!(r.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let text = scrape(&broker);
    assert_eq!(
        metric(&text, "shardlog_request_errors_total", &[("api", "Produce"), ("version", "9"), ("error", "UNKNOWN_TOPIC_OR_PARTITION")]),
        Some(1.0),
        "{text}"
    );
    assert!(metric(&text, "shardlog_connections_open", &[]).unwrap() >= 1.0);
    drop(conn);
}

/// A consumer of `group` that commits once at `commit_at` records and then keeps
/// polling without committing (auto commit off).
fn committing_consumer(bootstrap: &str, group: &str, session_ms: &str) -> BaseConsumer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("client.id", format!("lag-{group}"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", session_ms)
        .set("heartbeat.interval.ms", "500")
        .set("broker.address.family", "v4");
    c.create().expect("consumer")
}

/// Polls until `n` records arrived, then commits their position synchronously.
fn consume_and_commit(c: &BaseConsumer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while seen < n {
        assert!(Instant::now() < deadline, "consumed only {seen} of {n}");
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            seen += 1;
            if seen == n {
                let mut tpl = rdkafka::TopicPartitionList::new();
                tpl.add_partition_offset(m.topic(), m.partition(), rdkafka::Offset::Offset(m.offset() + 1)).unwrap();
                c.commit(&tpl, CommitMode::Sync).expect("commit");
            }
        }
    }
}

/// Helper mode: a no-op unless `SHARDLOG_ADMIN_TEST_CHILD=bootstrap|group|topic|n`;
/// then it consumes `n` records, commits, prints `COMMITTED` and polls until killed.
#[test]
fn killed_consumer_helper() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let p: Vec<&str> = spec.split('|').collect();
    let c = committing_consumer(p[0], p[1], "6000");
    c.subscribe(&[p[2]]).expect("subscribe");
    consume_and_commit(&c, p[3].parse().unwrap());
    println!("\nCOMMITTED");
    std::io::stdout().flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let _ = c.poll(Duration::from_millis(100));
    }
    std::mem::forget(c);
}

fn spawn_killable_consumer(bootstrap: &str, group: &str, topic: &str, n: usize) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["killed_consumer_helper", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{bootstrap}|{group}|{topic}|{n}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn this test binary as a consumer");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.trim() == "COMMITTED" {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60)).expect("the child consumer committed");
    child
}

/// The verdict of `group` in the API, the CLI and the metric.
fn verdicts(broker: &Broker, group: &str) -> (String, String, String) {
    let admin = broker.admin_url();
    let (status, api) = http("GET", &format!("{admin}/api/v1/groups/{group}/lag"), None);
    let api = if status == 200 { api["verdict"].as_str().unwrap_or("?").to_string() } else { format!("HTTP {status}") };
    let out = Command::new(broker_bin()).args(["group", "lag", group, "--admin-url", &admin, "--output", "json"]).output().expect("shardlog group lag");
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let cli = cli["verdict"].as_str().map_or_else(|| format!("{:?}", String::from_utf8_lossy(&out.stderr)), str::to_string);
    let text = scrape(broker);
    let metric = ["OK", "WARNING", "STALLED", "STOPPED", "REWIND"]
        .into_iter()
        .find(|v| metric(&text, "shardlog_consumer_group_status", &[("group", group), ("status", v)]) == Some(1.0))
        .unwrap_or("none")
        .to_string();
    (api, cli, metric)
}

fn expect_verdict(broker: &Broker, group: &str, want: &str, timeout: Duration) {
    wait_for(&format!("group {group} judged {want} by the API, the CLI and the metric"), timeout, || {
        let v = verdicts(broker, group);
        if v.0 == want && v.1 == want && v.2 == want {
            Ok(())
        } else {
            Err(format!("(api, cli, metric) = {v:?}"))
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_verdicts_agree_in_metric_cli_and_api() {
    // 250 ms samples, a 20-sample (5 s) window.
    let broker = Broker::start(&[("consumer.lag.sample.interval.ms", "250"), ("consumer.lag.window.samples", "20"), ("group.initial.rebalance.delay.ms", "0")]);
    let bs = broker.bootstrap();
    create_topic(&bs, "lag-t", 1).await;
    produce(&bs, "lag-t", 0, 100).await;

    // OK: a consumer that read and committed everything (no lag).
    let ok = committing_consumer(&bs, "g-ok", "10000");
    ok.subscribe(&["lag-t"]).unwrap();
    consume_and_commit(&ok, 100);
    expect_verdict(&broker, "g-ok", "OK", Duration::from_secs(30));
    drop(ok);

    // STALLED: alive, committed 10 once, never again; 90 records behind.
    let stalled = committing_consumer(&bs, "g-stalled", "10000");
    stalled.subscribe(&["lag-t"]).unwrap();
    consume_and_commit(&stalled, 10);
    let keep_polling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let poller = {
        let go = keep_polling.clone();
        std::thread::spawn(move || {
            while go.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = stalled.poll(Duration::from_millis(100));
            }
            drop(stalled);
        })
    };
    expect_verdict(&broker, "g-stalled", "STALLED", Duration::from_secs(40));
    let (_, lag) = http("GET", &format!("{}/api/v1/groups/g-stalled/lag", broker.admin_url()), None);
    assert_eq!(lag["partitions"][0]["lag"], 90, "{lag}");
    assert_eq!(lag["partitions"][0]["committed_offset"], 10, "{lag}");
    assert_eq!(metric(&scrape(&broker), "shardlog_consumer_group_lag", &[("group", "g-stalled"), ("topic", "lag-t"), ("partition", "0")]), Some(90.0));
    keep_polling.store(false, std::sync::atomic::Ordering::SeqCst);
    poller.join().unwrap();

    // STOPPED: a consumer process killed after committing 20; once its session
    // (6 s) expires the group is empty and the offset still.
    let mut child = spawn_killable_consumer(&bs, "g-stopped", "lag-t", 20);
    child.kill().unwrap();
    child.wait().unwrap();
    expect_verdict(&broker, "g-stopped", "STOPPED", Duration::from_secs(60));

    // REWIND: g-ok (empty now) reset back to offset 40.
    wait_for("g-ok is empty", Duration::from_secs(30), || {
        let (_, g) = http("GET", &format!("{}/api/v1/groups/g-ok", broker.admin_url()), None);
        if g["state"] == "Empty" {
            Ok(())
        } else {
            Err(g.to_string())
        }
    });
    let out = Command::new(broker_bin())
        .args(["group", "reset-offsets", "g-ok", "--topic", "lag-t", "--to-offset", "40", "--execute", "--bootstrap-server", &bs])
        .output()
        .unwrap();
    assert!(out.status.success(), "reset: {}", String::from_utf8_lossy(&out.stderr));
    expect_verdict(&broker, "g-ok", "REWIND", Duration::from_secs(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_api_actions_and_hostile_clients() {
    let broker = Broker::start(&[("admin.request.timeout.ms", "1000"), ("admin.request.max.bytes", "4096")]);
    let admin = broker.admin_url();

    // The console and the OpenAPI document are served.
    let index = ureq::get(&format!("{admin}/")).call().unwrap().into_string().unwrap();
    assert!(index.contains("<html") || index.contains("<!doctype"), "{index}");
    let spec = ureq::get(&format!("{admin}/api/v1/openapi.yaml")).call().unwrap().into_string().unwrap();
    assert!(spec.starts_with("openapi: 3"));

    // Create, see, refuse twice, delete.
    let (s, t) = http("POST", &format!("{admin}/api/v1/topics"), Some(r#"{"name":"web-made","partitions":3}"#));
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["partitions"], 3);
    let (s, e) = http("POST", &format!("{admin}/api/v1/topics"), Some(r#"{"name":"web-made","partitions":3}"#));
    assert_eq!((s, e["error"].as_str()), (409, Some("TOPIC_ALREADY_EXISTS")));
    let (s, e) = http("POST", &format!("{admin}/api/v1/topics"), Some(r#"{"partitions":3}"#));
    assert_eq!((s, e["error"].as_str()), (400, Some("BAD_REQUEST")));
    let (s, topic) = http("GET", &format!("{admin}/api/v1/topics/web-made"), None);
    assert_eq!(s, 200);
    assert_eq!(topic["partition_list"].as_array().unwrap().len(), 3);
    produce(&broker.bootstrap(), "web-made", 2, 5).await;
    let (s, page) = http("GET", &format!("{admin}/api/v1/topics/web-made/partitions/2/records?offset=1&limit=2"), None);
    assert_eq!(s, 200, "{page}");
    let recs = page["records"].as_array().unwrap();
    assert_eq!(recs.iter().map(|r| r["offset"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(recs[0]["key"], "azE=", "base64 of k1");
    assert_eq!(page["high_watermark"], 5);
    let (s, _) = http("DELETE", &format!("{admin}/api/v1/topics/web-made"), None);
    assert_eq!(s, 200);
    wait_for("the deleted topic is gone", Duration::from_secs(10), || match http("GET", &format!("{admin}/api/v1/topics/web-made"), None).0 {
        404 => Ok(()),
        s => Err(format!("HTTP {s}")),
    });

    // An oversized body is refused; a silent client is closed; the listener still answers.
    let (s, e) = http("POST", &format!("{admin}/api/v1/topics"), Some(&"x".repeat(10_000)));
    assert_eq!((s, e["error"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")));
    let addr = admin.trim_start_matches("http://");
    let mut silent = TcpStream::connect(addr).unwrap();
    silent.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = silent.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "a client silent mid-request is closed without an answer");
    assert!(started.elapsed() < Duration::from_secs(10), "closed after admin.request.timeout.ms, not {:?}", started.elapsed());
    assert_eq!(http("GET", &format!("{admin}/api/v1/cluster"), None).0, 200);
    drop(broker);

    // Read-only: every change is refused, reads still work.
    let broker = Broker::start(&[("admin.console.read.only", "true")]);
    let admin = broker.admin_url();
    let (s, e) = http("POST", &format!("{admin}/api/v1/topics"), Some(r#"{"name":"nope"}"#));
    assert_eq!((s, e["error"].as_str()), (403, Some("READ_ONLY")));
    let (s, c) = http("GET", &format!("{admin}/api/v1/cluster"), None);
    assert_eq!((s, &c["read_only"]), (200, &Value::Bool(true)));
    let brokers: BTreeMap<i64, Value> = c["brokers"].as_array().unwrap().iter().map(|b| (b["id"].as_i64().unwrap(), b.clone())).collect();
    assert_eq!(brokers.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_protocol_groups_show_their_members_and_lag() {
    let broker = Broker::start(&[("consumer.lag.sample.interval.ms", "250"), ("consumer.lag.window.samples", "4")]);
    let bs = broker.bootstrap();
    create_topic(&bs, "kip848-t", 2).await;
    produce(&bs, "kip848-t", 0, 10).await;
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &bs)
        .set("group.id", "g-848")
        .set("group.protocol", "consumer")
        .set("client.id", "kip848-member")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("broker.address.family", "v4");
    let c: BaseConsumer = cfg.create().expect("consumer-protocol consumer");
    c.subscribe(&["kip848-t"]).unwrap();
    consume_and_commit(&c, 10);
    let admin = broker.admin_url();
    wait_for("the group's member and assignment in the API", Duration::from_secs(30), || {
        let _ = c.poll(Duration::from_millis(50));
        let (s, g) = http("GET", &format!("{admin}/api/v1/groups/g-848"), None);
        let members = g["members"].as_array().cloned().unwrap_or_default();
        let assigned: Vec<i64> = members
            .iter()
            .flat_map(|m| m["assignment"].as_array().cloned().unwrap_or_default())
            .flat_map(|a| a["partitions"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p.as_i64())
            .collect();
        if s == 200 && members.len() == 1 && members[0]["client_id"] == "kip848-member" && assigned.len() == 2 && g["lag"]["members"] == 1 {
            Ok(())
        } else {
            Err(format!("HTTP {s}: {g}"))
        }
    });
    let (_, lag) = http("GET", &format!("{admin}/api/v1/groups/g-848/lag"), None);
    assert_eq!(lag["total_lag"], 0, "{lag}");
    let (s, e) = http("POST", &format!("{admin}/api/v1/groups/g-848/reset-offsets"), Some(r#"{"to":"earliest"}"#));
    assert_eq!((s, e["error"].as_str()), (409, Some("NON_EMPTY_GROUP")), "{e}");
}
