//! The operator tools against a real 3-node cluster (tests/common/cluster.rs):
//! `topic describe` and its report filters before and after a node is
//! SIGKILLed, `metadata-quorum describe`, `cluster info` with racks, fencing
//! and the quorum leader, and `partitions reassign --generate` (its JSON
//! parses back as a valid assignment of the topic).

mod cli_common;
#[path = "common/cluster.rs"]
mod cluster_harness;
mod common;

use std::collections::{BTreeMap, BTreeSet};

use cli_common::{parse_table, run, Out};
use cluster_harness::{wait_until, Cluster, OP, POLL};
use serde_json::Value;

/// (topic, partition) -> partition object of `topic describe --output json`
/// with the given extra arguments.
fn described(bs: &str, extra: &[&str]) -> BTreeMap<(String, i64), Value> {
    let mut args = vec!["topic", "describe", "--output", "json"];
    args.extend_from_slice(extra);
    let d = run(bs, &args).json();
    let mut out = BTreeMap::new();
    for t in d.as_array().expect("array of topics") {
        for p in t["partitions"].as_array().expect("partitions") {
            out.insert((t["name"].as_str().unwrap().to_string(), p["partition"].as_i64().unwrap()), p.clone());
        }
    }
    out
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default()
}

/// The `Key: value` lines of `metadata-quorum describe --status`.
fn status_fields(out: &Out) -> BTreeMap<String, String> {
    out.ok().lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
}

/// The JSON document printed after `header` (a line of its own).
fn json_after(text: &str, header: &str) -> Value {
    let at = text.find(header).unwrap_or_else(|| panic!("no {header:?} in:\n{text}"));
    let line = text[at + header.len()..].lines().map(str::trim).find(|l| !l.is_empty()).expect("a JSON line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn describe_filters_quorum_cluster_info_and_generate() {
    let mut c = Cluster::start(3, &[("broker.rack", "rack-a")]);
    let bs = c.bootstrap_all();

    run(&bs, &["topic", "create", "tools", "--partitions", "3", "--replication-factor", "3"]).ok();
    run(&bs, &["topic", "create", "strict", "--partitions", "2", "--replication-factor", "3", "--config", "min.insync.replicas=3"]).ok();
    // Every replica in sync first.
    wait_until("full ISRs", OP, POLL, || {
        let d = described(&bs, &[]);
        let mine: Vec<_> = d.iter().filter(|((t, _), _)| t == "tools" || t == "strict").collect();
        if mine.len() == 5 && mine.iter().all(|(_, p)| ids(&p["isr"]).len() == 3 && p["leader"].as_i64() >= Some(1)) {
            Ok(())
        } else {
            Err(format!("{mine:?}"))
        }
    });

    // The text layout and the report filters on a healthy cluster.
    let text = run(&bs, &["topic", "describe", "tools"]).ok().to_string();
    assert!(text.starts_with("Topic: tools\tPartitionCount: 3\tReplicationFactor: 3\tConfigs: "), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("\tTopic: tools\tPartition: ")).count(), 3, "{text}");
    let strict = run(&bs, &["topic", "describe", "strict", "--output", "json"]).json();
    assert_eq!(strict[0]["min_insync_replicas"], 3);
    assert_eq!(strict[0]["configs"]["min.insync.replicas"], "3");
    for flag in ["--under-replicated-partitions", "--under-min-isr-partitions", "--unavailable-partitions"] {
        assert_eq!(run(&bs, &["topic", "describe", flag]).ok(), "", "{flag} on a healthy cluster");
        assert!(described(&bs, &[flag]).is_empty(), "{flag} JSON on a healthy cluster");
    }
    let at_min = described(&bs, &["--at-min-isr-partitions"]);
    assert_eq!(at_min.keys().map(|(t, _)| t.as_str()).collect::<BTreeSet<_>>(), BTreeSet::from(["strict"]), "ISR 3 = min.insync.replicas 3");
    run(&bs, &["topic", "describe", "missing"]).fails_with("UNKNOWN_TOPIC_OR_PARTITION");

    // metadata-quorum describe
    let st = status_fields(&run(&bs, &["metadata-quorum", "describe", "--status"]));
    for k in ["ClusterId", "LeaderId", "LeaderEpoch", "HighWatermark", "MaxFollowerLag", "MaxFollowerLagTimeMs", "CurrentVoters", "CurrentObservers"] {
        assert!(st.contains_key(k), "--status lacks {k}: {st:?}");
    }
    assert_eq!(st["ClusterId"], c.cluster_id);
    assert_eq!(st["CurrentVoters"], "[1,2,3]");
    assert_eq!(st["CurrentObservers"], "[]");
    let (leader, epoch) = c.quorum_leader().expect("quorum leader");
    let stj = run(&bs, &["metadata-quorum", "describe", "--status", "--output", "json"]).json();
    assert_eq!(stj["leader_id"], leader);
    assert!(stj["leader_epoch"].as_i64().unwrap() >= epoch as i64);
    assert!(stj["high_watermark"].as_i64().unwrap() > 0);
    let repl = run(&bs, &["metadata-quorum", "describe", "--replication"]).ok().to_string();
    let rows = parse_table(&repl);
    assert_eq!(rows.len(), 3, "{repl}");
    assert_eq!(rows[0]["Status"], "Leader");
    assert_eq!(rows[0]["NodeId"], leader.to_string());
    assert!(rows[1..].iter().all(|r| r["Status"] == "Follower"), "{repl}");
    for k in ["LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp"] {
        assert!(rows.iter().all(|r| r[k].parse::<i64>().is_ok()), "{k} numeric:\n{repl}");
    }
    run(&bs, &["metadata-quorum", "describe"]).fails_with("--status");

    // cluster info: racks, fenced, controller, quorum leader
    let info = run(&bs, &["cluster", "info", "--output", "json"]).json();
    assert_eq!(info["cluster_id"], c.cluster_id.as_str());
    assert_eq!(info["quorum_leader_id"], leader);
    let brokers = info["brokers"].as_array().unwrap();
    assert_eq!(brokers.iter().map(|b| b["id"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1, 2, 3]);
    for b in brokers {
        assert_eq!(b["rack"], "rack-a");
        assert_eq!(b["fenced"], false);
        assert_eq!(b["quorum_leader"], b["id"] == leader);
    }
    let text = run(&bs, &["cluster", "info"]).ok().to_string();
    assert!(text.contains(&format!("Quorum leader: {leader}\n")), "{text}");
    let rows = parse_table(text.split("\n\n").nth(1).expect("broker table"));
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["RACK"] == "rack-a" && r["FENCED"] == "false"), "{text}");

    // partitions reassign --generate
    let dir = tempfile::tempdir().unwrap();
    let topics = dir.path().join("topics.json");
    std::fs::write(&topics, r#"{"version":1,"topics":[{"topic":"tools"}]}"#).unwrap();
    let tf = topics.to_str().unwrap();
    let out = run(&bs, &["partitions", "reassign", "--generate", "--topics-to-move-json-file", tf, "--broker-list", "1,2,3"]).ok().to_string();
    let current = json_after(&out, "Current partition replica assignment");
    let proposed = json_after(&out, "Proposed partition reassignment configuration");
    let now = described(&bs, &[]);
    for (doc, what) in [(&current, "current"), (&proposed, "proposed")] {
        assert_eq!(doc["version"], 1, "{what}");
        let parts = doc["partitions"].as_array().unwrap();
        assert_eq!(parts.iter().map(|p| p["partition"].as_i64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2], "{what}");
        let mut leaders = BTreeSet::new();
        for p in parts {
            assert_eq!(p["topic"], "tools");
            let r = ids(&p["replicas"]);
            assert_eq!(r.iter().collect::<BTreeSet<_>>(), BTreeSet::from([&1, &2, &3]), "{what}: {p}");
            assert_eq!(p["log_dirs"], serde_json::json!(["any", "any", "any"]));
            leaders.insert(r[0]);
            if what == "current" {
                assert_eq!(r, ids(&now[&("tools".to_string(), p["partition"].as_i64().unwrap())]["replicas"]));
            }
        }
        if what == "proposed" {
            assert_eq!(leaders.len(), 3, "one preferred leader per broker: {doc}");
        }
    }
    // The proposal is a valid --reassignment-json-file: Kafka's key order, one line.
    let line = out.lines().skip_while(|l| !l.starts_with("Proposed")).nth(1).unwrap();
    assert!(line.starts_with(r#"{"version":1,"partitions":[{"topic":"tools","partition":0,"replicas":["#), "{line}");
    let j = run(&bs, &["partitions", "reassign", "--generate", "--topics-to-move-json-file", tf, "--broker-list", "1,2,3", "--output", "json"]).json();
    assert_eq!(j["current"], current);
    assert_eq!(j["proposed"]["partitions"].as_array().unwrap().len(), 3);
    run(&bs, &["partitions", "reassign", "--generate", "--topics-to-move-json-file", tf, "--broker-list", "1,2"])
        .fails_with("larger than available brokers: 2");
    run(&bs, &["partitions", "reassign", "--generate", "--topics-to-move-json-file", tf, "--broker-list", "1,2,9"]).fails_with("9");
    std::fs::write(&topics, r#"{"version":1,"topics":[]}"#).unwrap();
    run(&bs, &["partitions", "reassign", "--generate", "--topics-to-move-json-file", tf, "--broker-list", "1,2,3"]).fails_with("empty");
    run(&bs, &["partitions", "reassign", "--execute"]).fails_with("--reassignment-json-file");

    // One node SIGKILLed: its replicas leave the ISRs.
    c.kill9(3);
    let bs12 = format!("{},{}", c.bootstrap(1), c.bootstrap(2));
    let under = wait_until("under-replicated partitions listed", OP, POLL, || {
        let d = described(&bs12, &["--under-replicated-partitions"]);
        let mine: BTreeSet<(String, i64)> = d.keys().filter(|(t, _)| t == "tools" || t == "strict").cloned().collect();
        if mine.len() == 5 {
            Ok(d)
        } else {
            Err(format!("{mine:?}"))
        }
    });
    for p in under.values() {
        assert!(ids(&p["isr"]).len() < ids(&p["replicas"]).len(), "{p}");
    }
    let text = run(&bs12, &["topic", "describe", "tools", "--under-replicated-partitions"]).ok().to_string();
    assert!(!text.contains("PartitionCount"), "no summary line with a report filter:\n{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("\tTopic: tools\tPartition: ")).count(), 3, "{text}");
    let under_min = described(&bs12, &["--under-min-isr-partitions"]);
    let topics_under_min: BTreeSet<&str> = under_min.keys().map(|(t, _)| t.as_str()).filter(|t| *t == "tools" || *t == "strict").collect();
    assert_eq!(topics_under_min, BTreeSet::from(["strict"]), "ISR 2 < min.insync.replicas 3 only for strict");
    let unavailable = described(&bs12, &["--unavailable-partitions"]);
    assert!(unavailable.keys().all(|(t, _)| t != "tools" && t != "strict"), "RF 3 partitions keep a leader: {unavailable:?}");
    // The killed broker is listed as fenced (DescribeCluster v2 with include_fenced_brokers).
    wait_until("broker 3 fenced in cluster info", OP, POLL, || {
        let info = run(&bs12, &["cluster", "info", "--output", "json"]).json();
        let b3 = info["brokers"].as_array().unwrap().iter().find(|b| b["id"] == 3).cloned();
        match b3 {
            None => Err("broker 3 not listed".to_string()),
            Some(b) if b["fenced"] == true => Ok(()),
            Some(b) => Err(format!("{b}")),
        }
    });
}
