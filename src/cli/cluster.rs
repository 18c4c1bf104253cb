//! `shardlog cluster info` (cluster id, controller, quorum leader, brokers
//! with rack and fenced state) from raw DescribeCluster (Metadata on brokers
//! without it) and DescribeQuorum requests — librdkafka's metadata has no
//! cluster id, controller, rack or fencing — and `shardlog api-versions`, kafka-broker-api-versions.sh: every
//! API this tool knows, per broker, with the broker's range and the version
//! both sides would use.

use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::ApiKey;
use serde_json::{json, Value};

use super::client::{client_versions, CliError, Conn, ConnectArgs};
use super::output::{eprint_line, print_json, print_rows, print_str, Format, OutputArgs};

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
    /// Cluster id, controller, quorum leader, and brokers with host:port, rack and fenced state.
    ///
    /// Example: shardlog cluster info
    Info,
    /// Remove a stopped broker's registration for good (kafka-cluster.sh unregister): scale-in,
    /// after its partitions were moved away with `partitions reassign`.
    ///
    /// Example: shardlog cluster unregister --id 4
    Unregister {
        /// The broker's node.id.
        #[arg(long)]
        id: i32,
    },
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

/// One broker of `cluster info`.
struct BrokerRow {
    id: i32,
    host: String,
    port: i32,
    rack: Option<String>,
    /// None when the broker cannot say (DescribeCluster below v2).
    fenced: Option<bool>,
}

/// Cluster id, controller id and brokers: from DescribeCluster where the
/// broker has it (v2 with include_fenced_brokers lists fenced brokers too),
/// else from Metadata (live brokers only).
fn brokers_and_controller(c: &mut Conn) -> Result<(Option<String>, i32, Vec<BrokerRow>), CliError> {
    if let Ok(v) = c.version_for::<DescribeClusterRequest>(2) {
        let req = DescribeClusterRequest::default().with_endpoint_type(1).with_include_fenced_brokers(v >= 2);
        let r = c.roundtrip(v, &req)?;
        if r.error_code != 0 {
            return Err(CliError::kafka("describe the cluster", r.error_code));
        }
        let brokers = r
            .brokers
            .iter()
            .map(|b| BrokerRow {
                id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
                fenced: (v >= 2).then_some(b.is_fenced),
            })
            .collect();
        return Ok((Some(r.cluster_id.to_string()), r.controller_id.0, brokers));
    }
    let v = c.version_for::<MetadataRequest>(12)?;
    let md = c.roundtrip(v, &MetadataRequest::default().with_topics(if v == 0 { None } else { Some(Vec::new()) }))?;
    let brokers = md
        .brokers
        .iter()
        .map(|b| BrokerRow { id: b.node_id.0, host: b.host.to_string(), port: b.port, rack: b.rack.as_ref().map(|r| r.to_string()), fenced: None })
        .collect();
    Ok((md.cluster_id.as_ref().map(|s| s.to_string()), md.controller_id.0, brokers))
}

/// Runs `shardlog cluster info`: cluster id, controller, quorum leader and
/// brokers (rack, fenced). The quorum leader comes from DescribeQuorum; a
/// broker without it gets a note instead.
pub fn run(args: ClusterArgs) -> Result<(), CliError> {
    let ClusterArgs { conn, out, cmd } = args;
    let mut c = conn.connect()?;
    if let ClusterCmd::Unregister { id } = cmd {
        return unregister(&mut c, id);
    }
    let (cluster_id, controller, mut rows) = brokers_and_controller(&mut c)?;
    rows.sort_by_key(|b| b.id);
    let (quorum_leader, quorum_note) = match super::quorum::describe(&mut c) {
        Ok(q) => (Some(q.leader_id), None),
        Err(e) => (None, Some(format!("quorum leader not shown: {}", e.to_string().trim_end()))),
    };
    let brokers: Vec<Value> = rows
        .iter()
        .map(|b| {
            json!({"id": b.id, "host": b.host, "port": b.port, "rack": b.rack, "fenced": b.fenced,
                   "controller": b.id == controller, "quorum_leader": Some(b.id) == quorum_leader})
        })
        .collect();
    if let Some(note) = &quorum_note {
        eprint_line(&format!("note: {note}"));
    }
    match out.output {
        Format::Json => print_json(&json!({"cluster_id": cluster_id, "controller_id": controller, "quorum_leader_id": quorum_leader, "brokers": brokers})),
        Format::Table => {
            let leader = quorum_leader.map(|l| l.to_string()).unwrap_or_else(|| "- (not available)".into());
            print_str(&format!("Cluster ID: {}\nController: {controller}\nQuorum leader: {leader}\n\n", cluster_id.as_deref().unwrap_or("-")));
            let rows: Vec<Value> = brokers
                .into_iter()
                .map(|mut b| {
                    b["address"] = json!(format!("{}:{}", b["host"].as_str().unwrap_or(""), b["port"]));
                    b
                })
                .collect();
            print_rows(
                Format::Table,
                &[
                    ("ID", "id"),
                    ("HOST:PORT", "address"),
                    ("RACK", "rack"),
                    ("FENCED", "fenced"),
                    ("CONTROLLER", "controller"),
                    ("QUORUM LEADER", "quorum_leader"),
                ],
                &rows,
            );
        }
    }
    Ok(())
}

/// UnregisterBroker (key 64): the broker's registration goes; a broker still
/// running would register again, so it is for brokers stopped for good.
fn unregister(c: &mut Conn, id: i32) -> Result<(), CliError> {
    use kafka_protocol::messages::{BrokerId, UnregisterBrokerRequest};
    let resp = c.request(0, &UnregisterBrokerRequest::default().with_broker_id(BrokerId(id)))?;
    if resp.error_code != 0 {
        return Err(CliError::kafka(format!("unregister broker {id}"), resp.error_code));
    }
    print_str(&format!("Broker {id} is no longer registered.\n"));
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
