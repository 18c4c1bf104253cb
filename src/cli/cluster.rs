//! `shardlog cluster info` (cluster id, controller, brokers with rack) from a
//! raw Metadata request — librdkafka's metadata has no cluster id, controller
//! or rack — and `shardlog api-versions`, kafka-broker-api-versions.sh: every
//! API this tool knows, per broker, with the broker's range and the version
//! both sides would use.

use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::ApiKey;
use serde_json::{json, Value};

use super::client::{client_versions, CliError, Conn, ConnectArgs};
use super::output::{print_json, print_rows, print_str, Format, OutputArgs};

/// Cluster overview.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example: shardlog cluster info --output json")]
pub struct ClusterArgs {
    /// How to reach the cluster (--bootstrap-server, or SHARDLOG_BOOTSTRAP).
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Output format of listings (--output table or json).
    #[command(flatten)]
    pub out: OutputArgs,
    /// The cluster subcommand to run.
    #[command(subcommand)]
    pub cmd: ClusterCmd,
}

/// Subcommands of `shardlog cluster`.
#[derive(clap::Subcommand, Debug)]
pub enum ClusterCmd {
    /// Cluster id, controller, and brokers with host:port and rack.
    ///
    /// Example: shardlog cluster info
    Info,
}

/// The API versions every broker supports (kafka-broker-api-versions.sh).
#[derive(clap::Args, Debug)]
#[command(after_help = "Example: shardlog api-versions --bootstrap-server 127.0.0.1:9092")]
pub struct ApiVersionsArgs {
    /// How to reach the cluster (--bootstrap-server, or SHARDLOG_BOOTSTRAP).
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Output format of listings (--output table or json).
    #[command(flatten)]
    pub out: OutputArgs,
}

/// Cluster metadata without topics.
fn cluster_metadata(conn: &ConnectArgs) -> Result<MetadataResponse, CliError> {
    let mut c = conn.connect()?;
    let v = c.version_for::<MetadataRequest>(12)?;
    // v0 reads an empty topic list as "all topics"; from v1 on, null is all.
    let topics = if v == 0 { None } else { Some(Vec::new()) };
    c.roundtrip(v, &MetadataRequest::default().with_topics(topics))
}

/// Runs `shardlog cluster info`: cluster id, controller and brokers from a Metadata request.
pub fn run(args: ClusterArgs) -> Result<(), CliError> {
    let ClusterArgs { conn, out, cmd: ClusterCmd::Info } = args;
    let md = cluster_metadata(&conn)?;
    let controller = md.controller_id.0;
    let mut brokers: Vec<Value> = md
        .brokers
        .iter()
        .map(|b| {
            json!({"id": b.node_id.0, "host": b.host.to_string(), "port": b.port,
                   "rack": b.rack.as_ref().map(|r| r.to_string()), "controller": b.node_id.0 == controller})
        })
        .collect();
    brokers.sort_by_key(|b| b["id"].as_i64());
    let cluster_id = md.cluster_id.as_ref().map(|s| s.to_string());
    match out.output {
        Format::Json => print_json(&json!({"cluster_id": cluster_id, "controller_id": controller, "brokers": brokers})),
        Format::Table => {
            print_str(&format!("Cluster ID: {}\nController: {controller}\n\n", cluster_id.as_deref().unwrap_or("-")));
            let rows: Vec<Value> = brokers
                .into_iter()
                .map(|mut b| {
                    b["address"] = json!(format!("{}:{}", b["host"].as_str().unwrap_or(""), b["port"]));
                    b
                })
                .collect();
            print_rows(Format::Table, &[("ID", "id"), ("HOST:PORT", "address"), ("RACK", "rack"), ("CONTROLLER", "controller")], &rows);
        }
    }
    Ok(())
}

/// Runs `shardlog api-versions`: the API version ranges of every broker the
/// metadata lists, from an ApiVersions request to each.
pub fn run_api_versions(args: ApiVersionsArgs) -> Result<(), CliError> {
    let md = cluster_metadata(&args.conn)?;
    let mut docs = Vec::new();
    let mut text = String::new();
    let mut brokers: Vec<_> = md.brokers.iter().collect();
    brokers.sort_by_key(|b| b.node_id.0);
    for b in brokers {
        let addr = format!("{}:{}", b.host, b.port);
        let conn = Conn::open(&addr)?;
        let rack = b.rack.as_ref().map(|r| r.to_string());
        text.push_str(&format!("{addr} (id: {} rack: {}) -> (\n", b.node_id.0, rack.as_deref().unwrap_or("null")));
        let mut apis = Vec::new();
        let mut lines = Vec::new();
        for key in ApiKey::iter() {
            let (our_min, our_max) = client_versions(key);
            let theirs = conn.api_versions().iter().find(|(k, _, _)| *k == key as i16);
            let name = format!("{key:?}");
            let (line, doc) = match theirs {
                None => (
                    format!("\t{name}({}): UNSUPPORTED", key as i16),
                    json!({"api_key": key as i16, "name": name, "min_version": null, "max_version": null, "usable": null}),
                ),
                Some(&(_, min, max)) => {
                    let usable = if max < our_min {
                        "unusable: node too old".to_string()
                    } else if min > our_max {
                        "unusable: node too new".to_string()
                    } else {
                        format!("usable: {}", max.min(our_max))
                    };
                    let usable_v = (max >= our_min && min <= our_max).then(|| max.min(our_max));
                    (
                        format!("\t{name}({}): {min} to {max} [{usable}]", key as i16),
                        json!({"api_key": key as i16, "name": name, "min_version": min, "max_version": max, "usable": usable_v}),
                    )
                }
            };
            lines.push(line);
            apis.push(doc);
        }
        text.push_str(&lines.join(",\n"));
        text.push_str("\n)\n");
        docs.push(json!({"id": b.node_id.0, "host": b.host.to_string(), "port": b.port, "rack": rack, "apis": apis}));
    }
    match args.out.output {
        Format::Json => print_json(&Value::Array(docs)),
        Format::Table => print_str(&text),
    }
    Ok(())
}
