//! `shardlog group` against the real broker: LAG equals produced minus
//! committed, members of a live consumer show up, offsets reset (and a
//! consume after --to-earliest reads everything again), offsets and groups
//! are deleted.

mod cli_common;
mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cli_common::{parse_table, run, run_with_stdin, table_from};
use common::{broker_bin, consumer_config, Broker};
use rdkafka::consumer::{BaseConsumer, Consumer};

type Row = BTreeMap<String, String>;

fn describe(bs: &str, group: &str) -> (String, Vec<Row>) {
    let out = run(bs, &["group", "describe", group]).ok().to_string();
    let rows = parse_table(table_from(&out, "GROUP"));
    (out, rows)
}

fn current_offsets(rows: &[Row]) -> BTreeMap<i32, String> {
    rows.iter().map(|r| (r["PARTITION"].parse().unwrap(), r["CURRENT-OFFSET"].clone())).collect()
}

#[test]
fn group_lag_members_reset_and_delete() {
    let b = Broker::start(&[("group.initial.rebalance.delay.ms", "0")]);
    let bs = b.bootstrap();
    run(&bs, &["topic", "create", "gt", "--partitions", "2"]).ok();
    let lines: String = (0..30).map(|i| format!("k{}\tv{i}\n", i % 5)).collect();
    run_with_stdin(&bs, &["produce", "gt", "--parse-key"], lines.as_bytes()).ok();
    let c: BaseConsumer = consumer_config(&bs).create().unwrap();
    let end: BTreeMap<i32, i64> = (0..2).map(|p| (p, c.fetch_watermarks("gt", p, Duration::from_secs(30)).unwrap().1)).collect();
    assert_eq!(end.values().sum::<i64>(), 30);

    // Consume 12 in group cg; it commits on exit.
    let out = run(
        &bs,
        &["consume", "gt", "--group", "cg", "--from-beginning", "--max-messages", "12", "--print-partition", "--print-offset", "--timeout-ms", "30000"],
    );
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for l in out.ok().lines() {
        let f: Vec<&str> = l.split('\t').collect();
        let p: i32 = f[0].strip_prefix("Partition:").unwrap().parse().unwrap();
        let o: i64 = f[1].strip_prefix("Offset:").unwrap().parse().unwrap();
        let n = next.entry(p).or_insert(0);
        *n = (*n).max(o + 1);
    }
    assert_eq!(next.values().sum::<i64>(), 12, "read from the beginning, in order");

    // list, with and without a state filter
    let rows = parse_table(run(&bs, &["group", "list"]).ok());
    let cg = rows.iter().find(|r| r["GROUP"] == "cg").expect("cg listed");
    assert_eq!(cg["STATE"], "Empty");
    assert_eq!(cg["PROTOCOL-TYPE"], "consumer");
    assert!(parse_table(run(&bs, &["group", "list", "--state", "Stable"]).ok()).iter().all(|r| r["GROUP"] != "cg"));
    let json = run(&bs, &["group", "list", "--state", "empty", "--output", "json"]).json();
    assert!(json.as_array().unwrap().iter().any(|g| g["group"] == "cg" && g["state"] == "Empty"));

    // describe: LAG = log end - committed, and it adds up to produced - committed
    let (text, rows) = describe(&bs, "cg");
    assert!(text.contains("Consumer group 'cg' has no active members."), "{text}");
    let header = text.lines().find(|l| l.starts_with("GROUP")).unwrap();
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(cols, ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]);
    assert_eq!(rows.len(), next.len(), "{text}");
    let mut lag_sum = 0;
    for r in &rows {
        let p: i32 = r["PARTITION"].parse().unwrap();
        assert_eq!(r["TOPIC"], "gt");
        assert_eq!(r["CURRENT-OFFSET"], next[&p].to_string());
        assert_eq!(r["LOG-END-OFFSET"], end[&p].to_string());
        let lag: i64 = r["LAG"].parse().unwrap();
        assert_eq!(lag, end[&p] - next[&p]);
        assert_eq!(r["CONSUMER-ID"], "-");
        lag_sum += lag;
    }
    let uncommitted: i64 = end.iter().filter(|(p, _)| !next.contains_key(p)).map(|(_, e)| e).sum();
    assert_eq!(lag_sum + uncommitted, 30 - 12);
    let json = run(&bs, &["group", "describe", "cg", "--output", "json"]).json();
    for r in json.as_array().unwrap() {
        let p = r["partition"].as_i64().unwrap() as i32;
        assert_eq!(r["lag"].as_i64().unwrap(), end[&p] - next[&p]);
    }
    let state = parse_table(table_from(run(&bs, &["group", "describe", "cg", "--state"]).ok(), "GROUP"));
    assert_eq!(state[0]["STATE"], "Empty");
    assert_eq!(state[0]["#MEMBERS"], "0");
    assert_eq!(state[0]["COORDINATOR (ID)"], format!("{bs} (0)"));
    run(&bs, &["group", "describe", "nobody"]).fails_with("GROUP_ID_NOT_FOUND");

    // A live member: shown with its partitions; resets are refused while it runs.
    let live = Command::new(broker_bin())
        .args(["consume", "gt", "--group", "cg", "--bootstrap-server", &bs])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let members = loop {
        let m = parse_table(table_from(run(&bs, &["group", "describe", "cg", "--members"]).ok(), "GROUP"));
        if m.len() == 1 && m[0]["#PARTITIONS"] == "2" {
            break m;
        }
        assert!(Instant::now() < deadline, "member never showed up: {m:?}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(members[0]["CLIENT-ID"], "shardlog-cli");
    let (_, rows) = describe(&bs, "cg");
    assert!(rows.iter().all(|r| r["CONSUMER-ID"] == members[0]["CONSUMER-ID"] && r["CLIENT-ID"] == "shardlog-cli"), "{rows:?}");
    run(&bs, &["group", "reset-offsets", "cg", "--topic", "gt", "--to-earliest", "--execute"]).fails_with("inactive");
    // Ctrl-C: the consumer commits, leaves and exits 0.
    assert_eq!(unsafe { libc::kill(live.id() as libc::pid_t, libc::SIGINT) }, 0);
    let out = live.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Processed a total of"), "{out:?}");

    // reset-offsets: dry run changes nothing; --execute does.
    let deadline = Instant::now() + Duration::from_secs(60);
    while parse_table(table_from(run(&bs, &["group", "describe", "cg", "--state"]).ok(), "GROUP"))[0]["#MEMBERS"] != "0" {
        assert!(Instant::now() < deadline, "member never left");
        std::thread::sleep(Duration::from_millis(300));
    }
    let before = current_offsets(&describe(&bs, "cg").1);
    let plan = parse_table(table_from(run(&bs, &["group", "reset-offsets", "cg", "--topic", "gt", "--to-earliest", "--dry-run"]).ok(), "TOPIC"));
    assert_eq!(plan.len(), 2);
    assert!(plan.iter().all(|r| r["TOPIC"] == "gt" && r["NEW-OFFSET"] == "0"), "{plan:?}");
    assert_eq!(current_offsets(&describe(&bs, "cg").1), before);
    run(&bs, &["group", "reset-offsets", "cg", "--topic", "gt", "--to-earliest", "--execute"]).ok();
    let (_, rows) = describe(&bs, "cg");
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r["CURRENT-OFFSET"], "0");
        assert_eq!(r["LAG"], r["LOG-END-OFFSET"]);
    }
    // ...and the group reads everything again.
    let out = run(&bs, &["consume", "gt", "--group", "cg", "--max-messages", "30", "--print-key", "--timeout-ms", "30000"]);
    let mut got: Vec<&str> = out.ok().lines().collect();
    got.sort();
    let mut want: Vec<&str> = lines.lines().collect();
    want.sort();
    assert_eq!(got, want);
    let (_, rows) = describe(&bs, "cg");
    assert!(rows.iter().all(|r| r["LAG"] == "0"), "{rows:?}");

    // The other scenarios, on partition 0.
    let reset = |extra: &[&str]| -> String {
        let mut args = vec!["group", "reset-offsets", "cg", "--topic", "gt", "--partition", "0", "--execute", "--output", "json"];
        args.extend_from_slice(extra);
        let j = run(&bs, &args).json();
        assert_eq!(j.as_array().unwrap().len(), 1, "{j}");
        j[0]["new_offset"].to_string()
    };
    assert_eq!(reset(&["--to-offset", "2"]), "2");
    assert_eq!(reset(&["--shift-by", "-1"]), "1");
    assert_eq!(reset(&["--to-latest"]), end[&0].to_string());
    assert_eq!(reset(&["--to-offset", "100000"]), end[&0].to_string(), "kept within the log");
    assert_eq!(reset(&["--to-datetime", "2000-01-01T00:00:00Z"]), "0");
    assert_eq!(reset(&["--to-datetime", "2999-01-01T00:00:00.000"]), end[&0].to_string());
    assert_eq!(current_offsets(&describe(&bs, "cg").1)[&0], end[&0].to_string());
    run(&bs, &["group", "reset-offsets", "cg", "--topic", "gt", "--to-datetime", "yesterday"]).fails_with("ISO 8601");
    run(&bs, &["group", "reset-offsets", "cg", "--topic", "gt"]).fails_with("--to-earliest");

    // delete-offsets, then delete the group.
    let rows = parse_table(run(&bs, &["group", "delete-offsets", "cg", "--topic", "gt", "--partition", "0"]).ok());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["STATUS"], "Successful");
    let parts: Vec<i32> = current_offsets(&describe(&bs, "cg").1).into_keys().collect();
    assert_eq!(parts, [1]);
    assert_eq!(run(&bs, &["group", "delete", "cg"]).ok(), "Deletion of requested consumer groups ('cg') was successful.\n");
    assert!(parse_table(run(&bs, &["group", "list"]).ok()).iter().all(|r| r["GROUP"] != "cg"));
    run(&bs, &["group", "describe", "cg"]).fails_with("GROUP_ID_NOT_FOUND");
    run(&bs, &["group", "delete", "cg"]).fails_with("GROUP_ID_NOT_FOUND");
}
