//! `shardlog produce` / `consume` / `verifiable-*` / `records delete` against
//! the real broker: what goes in comes back out, with keys, headers,
//! partitions and offsets as printed.

mod cli_common;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cli_common::{parse_table, run, run_with_stdin};
use common::{consumer_config, Broker};
use rdkafka::consumer::{BaseConsumer, Consumer};

fn watermarks(bootstrap: &str, topic: &str, p: i32) -> (i64, i64) {
    let c: BaseConsumer = consumer_config(bootstrap).create().expect("consumer");
    c.fetch_watermarks(topic, p, Duration::from_secs(30)).expect("watermarks")
}

#[test]
fn produce_from_file_and_consume_back() {
    let b = Broker::start(&[("group.initial.rebalance.delay.ms", "0")]);
    let bs = b.bootstrap();
    run(&bs, &["topic", "create", "lines", "--partitions", "2"]).ok();

    // Keyed lines from a file, with a header on every record.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.txt");
    let input: Vec<(String, String)> = (0..20).map(|i| (format!("key-{}", i % 7), format!("value-{i}"))).collect();
    let text: String = input.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect();
    std::fs::write(&file, &text).unwrap();
    let out = run(&bs, &["produce", "lines", "--file", file.to_str().unwrap(), "--parse-key", "--header", "src=test", "--acks", "all"]);
    out.ok();
    assert!(out.stderr.contains("Produced 20 of 20 records"), "{}", out.stderr);
    assert!(out.stderr.contains("0 failed"), "{}", out.stderr);

    let out = run(
        &bs,
        &[
            "consume",
            "lines",
            "--from-beginning",
            "--print-key",
            "--print-partition",
            "--print-offset",
            "--print-headers",
            "--max-messages",
            "20",
            "--timeout-ms",
            "30000",
        ],
    );
    let mut got = Vec::new();
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut partition_of_key: BTreeMap<String, i32> = BTreeMap::new();
    for line in out.ok().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 5, "Partition, Offset, headers, key, value: {line}");
        let p: i32 = f[0].strip_prefix("Partition:").expect(line).parse().unwrap();
        let o: i64 = f[1].strip_prefix("Offset:").expect(line).parse().unwrap();
        assert_eq!(f[2], "src:test");
        by_partition.entry(p).or_default().push(o);
        assert_eq!(*partition_of_key.entry(f[3].to_string()).or_insert(p), p, "one key, one partition");
        got.push((f[3].to_string(), f[4].to_string()));
    }
    assert!(out.stderr.contains("Processed a total of 20 messages"), "{}", out.stderr);
    let mut want = input.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    for (p, offsets) in &by_partition {
        assert_eq!(*offsets, (0..offsets.len() as i64).collect::<Vec<_>>(), "partition {p} in order from 0");
        assert_eq!(watermarks(&bs, "lines", *p).1, offsets.len() as i64);
    }

    // Unkeyed lines from stdin: null keys; JSON output parses.
    run(&bs, &["topic", "create", "plain", "--partitions", "1"]).ok();
    run_with_stdin(&bs, &["produce", "plain"], b"one\ntwo\r\nthree\n").ok();
    let out = run(&bs, &["consume", "plain", "--from-beginning", "--format", "json", "--max-messages", "3", "--timeout-ms", "30000"]);
    let recs = out.json_lines();
    let values: Vec<&str> = recs.iter().map(|r| r["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["one", "two", "three"]);
    for (i, r) in recs.iter().enumerate() {
        assert!(r["key"].is_null(), "{r}");
        assert_eq!(r["offset"], i);
        assert_eq!(r["partition"], 0);
        assert_eq!(r["topic"], "plain");
        assert_eq!(r["headers"], serde_json::json!([]));
        assert!(r["timestamp"].as_i64().unwrap() > 0);
    }
    // Text output: a null key prints as null, headers as NO_HEADERS.
    let out = run(
        &bs,
        &["consume", "plain", "--offset", "earliest", "--partition", "0", "--print-key", "--print-headers", "--max-messages", "1", "--timeout-ms", "30000"],
    );
    assert_eq!(out.ok(), "NO_HEADERS\tnull\tone\n");

    // Own separator, explicit partition, compression; read one partition from an offset.
    run_with_stdin(&bs, &["produce", "lines", "--partition", "1", "--parse-key", "--key-separator", "::", "--compression", "gzip"], b"a::1\nb::2\n").ok();
    run_with_stdin(&bs, &["produce", "lines", "--partition", "1", "--compression", "zstd", "--linger-ms", "0"], b"z\n").ok();
    let end1 = by_partition.get(&1).map_or(0, |o| o.len() as i64);
    let out =
        run(&bs, &["consume", "lines", "--partition", "1", "--offset", &end1.to_string(), "--format", "json", "--max-messages", "3", "--timeout-ms", "30000"]);
    let recs = out.json_lines();
    let kv: Vec<(Option<&str>, &str)> = recs.iter().map(|r| (r["key"].as_str(), r["value"].as_str().unwrap())).collect();
    assert_eq!(kv, [(Some("a"), "1"), (Some("b"), "2"), (None, "z")]);
    assert!(recs.iter().all(|r| r["partition"] == 1));

    // Nothing new: --timeout-ms ends the run cleanly.
    let out = run(&bs, &["consume", "plain", "--timeout-ms", "1000"]);
    assert_eq!(out.ok(), "");
    assert!(out.stderr.contains("Processed a total of 0 messages"), "{}", out.stderr);

    // Bad input: clear errors, non-zero exit.
    run_with_stdin(&bs, &["produce", "plain", "--parse-key"], b"no separator here\n").fails_with("no key separator");
    run(&bs, &["consume", "plain", "--offset", "5"]).fails_with("--offset N needs --partition");
    run(&bs, &["consume", "missing-topic", "--timeout-ms", "1000"]).fails_with("UNKNOWN_TOPIC_OR_PARTITION");
    run(&bs, &["consume", "plain", "--partition", "7", "--timeout-ms", "1000"]).fails_with("UNKNOWN_TOPIC_OR_PARTITION");

    // Verifiable producer: Kafka's event names and fields.
    run(&bs, &["topic", "create", "vt", "--partitions", "2"]).ok();
    let events = run(&bs, &["verifiable-producer", "--topic", "vt", "--max-messages", "10", "--acks", "-1"]).json_lines();
    let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    let mut want = vec!["startup_complete"];
    want.extend(["producer_send_success"; 10]);
    want.extend(["shutdown_complete", "tool_data"]);
    assert_eq!(names, want);
    let mut values = BTreeSet::new();
    for e in &events[1..11] {
        assert!(e["timestamp"].as_i64().unwrap() > 0);
        assert!(e["key"].is_null());
        assert_eq!(e["topic"], "vt");
        assert!(e["partition"].as_i64().unwrap() < 2 && e["offset"].as_i64().unwrap() >= 0, "{e}");
        values.insert(e["value"].as_str().unwrap().parse::<i64>().unwrap());
    }
    assert_eq!(values, (0..10).collect());
    assert_eq!(events[12]["sent"], 10);
    assert_eq!(events[12]["acked"], 10);
    assert_eq!(events[12]["target_throughput"], -1);
    assert!(events[12]["avg_throughput"].as_f64().unwrap() > 0.0);

    // Verifiable consumer: consumes all ten, commits after each batch.
    let events = run(&bs, &["verifiable-consumer", "--topic", "vt", "--group-id", "vg", "--max-messages", "10"]).json_lines();
    assert_eq!(events.first().unwrap()["name"], "startup_complete");
    assert_eq!(events.last().unwrap()["name"], "shutdown_complete");
    let assigned = events.iter().find(|e| e["name"] == "partitions_assigned").expect("partitions_assigned");
    assert_eq!(assigned["partitions"].as_array().unwrap().len(), 2);
    let consumed: i64 = events.iter().filter(|e| e["name"] == "records_consumed").map(|e| e["count"].as_i64().unwrap()).sum();
    assert_eq!(consumed, 10);
    let mut committed = BTreeMap::new();
    for e in events.iter().filter(|e| e["name"] == "offsets_committed") {
        assert_eq!(e["success"], true, "{e}");
        for o in e["offsets"].as_array().unwrap() {
            committed.insert(o["partition"].as_i64().unwrap() as i32, o["offset"].as_i64().unwrap());
        }
    }
    for (p, off) in &committed {
        assert_eq!(*off, watermarks(&bs, "vt", *p).1, "committed up to the end of partition {p}");
    }
    for e in events.iter().filter(|e| e["name"] == "records_consumed") {
        for p in e["partitions"].as_array().unwrap() {
            assert!(p["minOffset"].as_i64() <= p["maxOffset"].as_i64() && p["count"].as_i64().unwrap() > 0, "{p}");
        }
    }
    // The group's committed offsets as `group describe` sees them: no lag left.
    let rows = parse_table(cli_common::table_from(run(&bs, &["group", "describe", "vg"]).ok(), "GROUP"));
    assert_eq!(rows.len(), committed.len());
    assert!(rows.iter().all(|r| r["LAG"] == "0"), "{rows:?}");
}

/// Needs DeleteRecords on the broker.
#[test]
fn records_delete_moves_the_low_watermark() {
    let b = Broker::start(&[]);
    let bs = b.bootstrap();
    run(&bs, &["topic", "create", "rd", "--partitions", "1"]).ok();
    let lines: String = (0..10).map(|i| format!("r{i}\n")).collect();
    run_with_stdin(&bs, &["produce", "rd"], lines.as_bytes()).ok();

    let rows = parse_table(run(&bs, &["records", "delete", "rd", "--partition", "0", "--before-offset", "4"]).ok());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["TOPIC"], "rd");
    assert_eq!(rows[0]["PARTITION"], "0");
    assert_eq!(rows[0]["LOW-WATERMARK"], "4");
    assert_eq!(watermarks(&bs, "rd", 0), (4, 10));
    let recs = run(&bs, &["consume", "rd", "--from-beginning", "--format", "json", "--max-messages", "6", "--timeout-ms", "30000"]).json_lines();
    assert_eq!(recs[0]["offset"], 4);
    assert_eq!(recs[0]["value"], "r4");

    // Kafka's offset JSON file; -1 = up to the high watermark.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("offsets.json");
    std::fs::write(&f, r#"{"partitions":[{"topic":"rd","partition":0,"offset":-1}],"version":1}"#).unwrap();
    let json = run(&bs, &["records", "delete", "--offset-json-file", f.to_str().unwrap(), "--output", "json"]).json();
    assert_eq!(json[0]["low_watermark"], 10);
    assert_eq!(watermarks(&bs, "rd", 0), (10, 10));

    std::fs::write(&f, "not json").unwrap();
    run(&bs, &["records", "delete", "--offset-json-file", f.to_str().unwrap()]).fails_with("not Kafka's offset JSON");
    run(&bs, &["records", "delete", "rd", "--partition", "0", "--before-offset", "99"]).fails_with("OFFSET_OUT_OF_RANGE");
}
