//! `shardlog topic`, `config`, `cluster info` and `api-versions` against the
//! real broker: output parsed (tables and JSON) and compared with what the
//! broker reports through other clients.

mod cli_common;
mod common;

use cli_common::{parse_table, run};
use common::{Broker, RawConn};
use kafka_protocol::messages::ApiVersionsRequest;
use kafka_protocol::protocol::StrBytes;

fn topic_rows(bootstrap: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    parse_table(run(bootstrap, &["topic", "list"]).ok())
}

#[test]
fn topic_lifecycle_cluster_info_and_api_versions() {
    let b = Broker::start(&[]);
    let bs = b.bootstrap();

    // create
    assert_eq!(run(&bs, &["topic", "create", "orders", "--partitions", "3", "--replication-factor", "1"]).ok(), "Created topic orders.\n");
    run(&bs, &["topic", "create", "orders", "--partitions", "3"]).fails_with("TOPIC_ALREADY_EXISTS");
    run(&bs, &["topic", "create", "bad/name", "--partitions", "1"]).fails_with("INVALID_TOPIC_EXCEPTION");
    run(&bs, &["topic", "create", "x", "--config", "novalue"]).fails_with("KEY=VALUE");

    // list: table and JSON agree
    let rows = topic_rows(&bs);
    let orders = rows.iter().find(|r| r["NAME"] == "orders").expect("orders listed");
    assert_eq!(orders["PARTITIONS"], "3");
    assert_eq!(orders["REPLICAS"], "1");
    let json = run(&bs, &["topic", "list", "--output", "json"]).json();
    let o = json.as_array().unwrap().iter().find(|t| t["name"] == "orders").expect("orders in JSON");
    assert_eq!(o["partitions"], 3);
    assert_eq!(o["replication_factor"], 1);

    // describe: Kafka's text layout and JSON
    let text = run(&bs, &["topic", "describe", "orders"]).ok().to_string();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("Topic: orders\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: "), "{text}");
    for p in 0..3 {
        assert_eq!(lines.next().unwrap(), format!("\tTopic: orders\tPartition: {p}\tLeader: 0\tReplicas: 0\tIsr: 0"));
    }
    let d = run(&bs, &["topic", "describe", "orders", "--output", "json"]).json();
    let parts = d[0]["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p["partition"], i);
        assert_eq!(p["leader"], 0);
        assert_eq!(p["replicas"], serde_json::json!([0]));
        assert_eq!(p["isr"], serde_json::json!([0]));
    }
    run(&bs, &["topic", "describe", "missing"]).fails_with("UNKNOWN_TOPIC_OR_PARTITION");

    // alter: partitions only grow
    run(&bs, &["topic", "alter", "orders", "--partitions", "5"]).ok();
    let d = run(&bs, &["topic", "describe", "orders", "--output", "json"]).json();
    assert_eq!(d[0]["partition_count"], 5);
    run(&bs, &["topic", "alter", "orders", "--partitions", "2"]).fails_with("INVALID_PARTITIONS");

    // delete
    assert_eq!(run(&bs, &["topic", "delete", "orders"]).ok(), "Deleted topic orders.\n");
    assert!(topic_rows(&bs).iter().all(|r| r["NAME"] != "orders"));
    run(&bs, &["topic", "delete", "orders"]).fails_with("UNKNOWN_TOPIC_OR_PARTITION");

    // cluster info
    let info = run(&bs, &["cluster", "info", "--output", "json"]).json();
    assert!(!info["cluster_id"].as_str().expect("cluster id").is_empty());
    assert_eq!(info["controller_id"], 0);
    let brokers = info["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 1);
    assert_eq!(brokers[0]["id"], 0);
    assert_eq!(brokers[0]["host"], "127.0.0.1");
    assert_eq!(brokers[0]["port"], b.port());
    let text = run(&bs, &["cluster", "info"]).ok().to_string();
    assert!(text.starts_with(&format!("Cluster ID: {}\nController: 0\n", info["cluster_id"].as_str().unwrap())), "{text}");
    let rows = parse_table(text.split("\n\n").nth(1).expect("broker table"));
    assert_eq!(rows[0]["HOST:PORT"], bs);
    assert_eq!(rows[0]["RACK"], "-");
    run("127.0.0.1:1", &["cluster", "info"]).fails_with("Is a broker running");

    // api-versions: every range the broker advertises, as it advertises it
    let mut raw = RawConn::connect(&bs);
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("cli-test"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let advertised = raw.roundtrip(3, &req);
    let text = run(&bs, &["api-versions"]).ok().to_string();
    assert!(text.starts_with(&format!("{bs} (id: 0 rack: null) -> (\n")), "{text}");
    assert!(text.trim_end().ends_with(')'));
    let json = run(&bs, &["api-versions", "--output", "json"]).json();
    let apis = json[0]["apis"].as_array().unwrap();
    for k in &advertised.api_keys {
        let a = apis.iter().find(|a| a["api_key"] == k.api_key).unwrap_or_else(|| panic!("api {} missing", k.api_key));
        assert_eq!(a["min_version"], k.min_version, "{a}");
        assert_eq!(a["max_version"], k.max_version, "{a}");
        let line = format!("\t{}({}): {} to {} [", a["name"].as_str().unwrap(), k.api_key, k.min_version, k.max_version);
        assert!(text.contains(&line), "missing {line:?} in:\n{text}");
    }
    let unsupported = apis.iter().filter(|a| a["max_version"].is_null()).count();
    assert_eq!(apis.len() - unsupported, advertised.api_keys.len());
    assert!(text.contains("): UNSUPPORTED"));
}

/// Needs DescribeConfigs and IncrementalAlterConfigs on the broker.
#[test]
fn config_describe_and_alter() {
    let b = Broker::start(&[]);
    let bs = b.bootstrap();
    run(&bs, &["topic", "create", "conf", "--partitions", "1", "--config", "segment.bytes=1048576"]).ok();

    let rows = parse_table(run(&bs, &["config", "describe", "--entity-type", "topics", "--entity-name", "conf"]).ok());
    let seg = rows.iter().find(|r| r["NAME"] == "segment.bytes").expect("segment.bytes is set");
    assert_eq!(seg["VALUE"], "1048576");
    assert_eq!(seg["SOURCE"], "DYNAMIC_TOPIC_CONFIG");

    let out = run(
        &bs,
        &["config", "alter", "--entity-type", "topics", "--entity-name", "conf", "--add-config", "max.message.bytes=2000", "--delete-config", "segment.bytes"],
    );
    assert_eq!(out.ok(), "Completed updating config for topic conf.\n");
    let json = run(&bs, &["config", "describe", "--entity-type", "topics", "--entity-name", "conf", "--output", "json"]).json();
    let names: Vec<&str> = json.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["max.message.bytes"], "{json}");
    assert_eq!(json[0]["value"], "2000");
    let all = run(&bs, &["config", "describe", "--entity-type", "topics", "--entity-name", "conf", "--all", "--output", "json"]).json();
    let seg = all.as_array().unwrap().iter().find(|c| c["name"] == "segment.bytes").expect("--all lists defaults");
    assert_eq!(seg["is_default"], true);
    let text = run(&bs, &["topic", "describe", "conf"]).ok().to_string();
    assert!(text.lines().next().unwrap().ends_with("Configs: max.message.bytes=2000"), "{text}");

    run(&bs, &["config", "alter", "--entity-type", "topics", "--entity-name", "conf", "--add-config", "no.such.key=1"]).fails_with("INVALID_CONFIG");
    run(&bs, &["config", "alter", "--entity-type", "topics", "--entity-name", "conf"]).fails_with("nothing to alter");
    let broker = run(&bs, &["config", "describe", "--entity-type", "brokers", "--entity-name", "0", "--all", "--output", "json"]).json();
    assert!(broker.as_array().unwrap().iter().any(|c| c["name"] == "log.segment.bytes"), "{broker}");
}
