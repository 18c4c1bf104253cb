//! `shardlog topic`: kafka-topics.sh's --create/--list/--describe/--alter/--delete.
//!
//! Creation, partition increases and deletion are librdkafka admin calls
//! (CreateTopics, CreatePartitions, DeleteTopics); listings come from
//! Metadata; the configs a topic overrides come from DescribeConfigs.

use rdkafka::admin::{NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::metadata::Metadata;
use serde_json::{json, Value};

use super::client::{admin_opts, block_on, parse_key_value, CliError, ConnectArgs, OP_TIMEOUT};
use super::output::eprint_line;
use super::output::{print_json, print_rows, print_str, Format, OutputArgs};

/// Topic administration.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example: shardlog topic create orders --partitions 6 --config retention.ms=86400000")]
pub struct TopicArgs {
    /// How to reach the cluster (--bootstrap-server, or SHARDLOG_BOOTSTRAP).
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Output format of listings (--output table or json).
    #[command(flatten)]
    pub out: OutputArgs,
    /// The topic subcommand to run.
    #[command(subcommand)]
    pub cmd: TopicCmd,
}

/// Subcommands of `shardlog topic`.
#[derive(clap::Subcommand, Debug)]
pub enum TopicCmd {
    /// Create a topic (kafka-topics.sh --create).
    ///
    /// Example: shardlog topic create orders --partitions 6 --replication-factor 1 --config segment.bytes=104857600
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions; -1 = the broker's num.partitions.
        #[arg(long, short = 'p', default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor; -1 = the broker's default.replication.factor.
        #[arg(long, short = 'r', default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i32,
        /// Topic config override KEY=VALUE (repeatable).
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics with their partition count and replication factor (kafka-topics.sh --list).
    ///
    /// Example: shardlog topic list --output json
    List {
        /// Leave out internal topics such as __consumer_offsets.
        #[arg(long)]
        exclude_internal: bool,
    },
    /// Partitions (leader, replicas, ISR) and overridden configs (kafka-topics.sh --describe).
    ///
    /// Example: shardlog topic describe orders
    Describe {
        /// Topic name; all topics when left out.
        name: Option<String>,
    },
    /// Increase the partition count (kafka-topics.sh --alter --partitions).
    ///
    /// Example: shardlog topic alter orders --partitions 12
    Alter {
        /// Topic name.
        name: String,
        /// New total number of partitions (only increases are possible).
        #[arg(long, short = 'p')]
        partitions: usize,
    },
    /// Delete a topic and its data (kafka-topics.sh --delete).
    ///
    /// Example: shardlog topic delete orders
    Delete {
        /// Topic name.
        name: String,
    },
}

/// Runs a `shardlog topic` subcommand.
pub fn run(args: TopicArgs) -> Result<(), CliError> {
    let TopicArgs { conn, out, cmd } = args;
    match cmd {
        TopicCmd::Create { name, partitions, replication_factor, configs } => {
            let pairs = configs.iter().map(|c| parse_key_value(c)).collect::<Result<Vec<_>, _>>()?;
            let mut topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(replication_factor));
            for (k, v) in &pairs {
                topic = topic.set(k, v);
            }
            let res = block_on(conn.admin()?.create_topics([&topic], &admin_opts())).map_err(|e| CliError::rdkafka(format!("create topic '{name}'"), e))?;
            for r in res {
                r.map_err(|(t, code)| CliError::rd_code(format!("create topic '{t}'"), code))?;
            }
            print_str(&format!("Created topic {name}.\n"));
            Ok(())
        }
        TopicCmd::List { exclude_internal } => {
            let md = metadata(&conn, None)?;
            let mut rows: Vec<Value> = md
                .topics()
                .iter()
                .filter(|t| !(exclude_internal && t.name().starts_with("__")))
                .map(|t| {
                    let rf = t.partitions().iter().map(|p| p.replicas().len()).max().unwrap_or(0);
                    json!({"name": t.name(), "partitions": t.partitions().len(), "replication_factor": rf})
                })
                .collect();
            rows.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
            print_rows(out.output, &[("NAME", "name"), ("PARTITIONS", "partitions"), ("REPLICAS", "replication_factor")], &rows);
            Ok(())
        }
        TopicCmd::Describe { name } => describe(&conn, out.output, name.as_deref()),
        TopicCmd::Alter { name, partitions } => {
            let np = NewPartitions::new(&name, partitions);
            let res = block_on(conn.admin()?.create_partitions([&np], &admin_opts())).map_err(|e| CliError::rdkafka(format!("alter topic '{name}'"), e))?;
            for r in res {
                r.map_err(|(t, code)| CliError::rd_code(format!("add partitions to '{t}'"), code))?;
            }
            print_str(&format!("Topic {name} now has {partitions} partitions.\n"));
            Ok(())
        }
        TopicCmd::Delete { name } => {
            let res = block_on(conn.admin()?.delete_topics(&[&name], &admin_opts())).map_err(|e| CliError::rdkafka(format!("delete topic '{name}'"), e))?;
            for r in res {
                r.map_err(|(t, code)| CliError::rd_code(format!("delete topic '{t}'"), code))?;
            }
            print_str(&format!("Deleted topic {name}.\n"));
            Ok(())
        }
    }
}

/// Cluster metadata for one topic or all; a topic-level error becomes the
/// command's error (e.g. UNKNOWN_TOPIC_OR_PARTITION).
pub fn metadata(conn: &ConnectArgs, topic: Option<&str>) -> Result<Metadata, CliError> {
    let md = conn.consumer(None)?.fetch_metadata(topic, OP_TIMEOUT).map_err(|e| CliError::rdkafka("fetch metadata", e))?;
    if let Some(name) = topic {
        for t in md.topics() {
            if let Some(err) = t.error() {
                return Err(CliError::rd_code(format!("topic '{name}'"), err.into()));
            }
        }
    }
    Ok(md)
}

/// The configs a topic sets itself (not defaults), or None (with a warning)
/// when the broker cannot describe configs.
fn overridden_configs(conn: &ConnectArgs, topic: &str) -> Option<Vec<(String, String)>> {
    let spec = ResourceSpecifier::Topic(topic);
    let res = conn.admin().and_then(|a| block_on(a.describe_configs([&spec], &admin_opts())).map_err(|e| CliError::rdkafka("describe configs", e)));
    let first = res.and_then(|mut v| match v.pop() {
        Some(Ok(r)) => Ok(r),
        Some(Err(code)) => Err(CliError::rd_code(format!("describe configs of '{topic}'"), code)),
        None => Err(CliError::Input("empty DescribeConfigs answer".into())),
    });
    match first {
        Ok(r) => Some(
            r.entries
                .into_iter()
                .filter(|e| !e.is_default && e.source == rdkafka::admin::ConfigSource::DynamicTopic)
                .map(|e| (e.name, if e.is_sensitive { "<sensitive>".into() } else { e.value.unwrap_or_default() }))
                .collect(),
        ),
        Err(e) => {
            eprint_line(&format!("warning: configs of '{topic}' not shown: {e}"));
            None
        }
    }
}

fn describe(conn: &ConnectArgs, format: Format, name: Option<&str>) -> Result<(), CliError> {
    let md = metadata(conn, name)?;
    let mut topics: Vec<_> = md.topics().iter().collect();
    topics.sort_by_key(|t| t.name());
    let mut docs = Vec::new();
    for t in topics {
        let mut parts: Vec<_> = t.partitions().iter().collect();
        parts.sort_by_key(|p| p.id());
        let rf = parts.iter().map(|p| p.replicas().len()).max().unwrap_or(0);
        let configs = overridden_configs(conn, t.name());
        let partitions: Vec<Value> =
            parts.iter().map(|p| json!({"partition": p.id(), "leader": p.leader(), "replicas": p.replicas(), "isr": p.isr()})).collect();
        docs.push(json!({
            "name": t.name(),
            "partition_count": parts.len(),
            "replication_factor": rf,
            "configs": configs.map(|c| Value::Object(c.into_iter().map(|(k, v)| (k, Value::String(v))).collect())),
            "partitions": partitions,
        }));
    }
    match format {
        Format::Json => print_json(&Value::Array(docs)),
        Format::Table => print_str(&kafka_describe_text(&docs)),
    }
    Ok(())
}

/// kafka-topics.sh --describe's layout: a summary line per topic, then one
/// tab-separated line per partition.
fn kafka_describe_text(docs: &[Value]) -> String {
    let ids = |v: &Value| v.as_array().map(|a| a.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")).unwrap_or_default();
    let mut out = String::new();
    for d in docs {
        let configs = match d["configs"].as_object() {
            Some(m) => m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(","),
            None => "(not available)".into(),
        };
        let name = d["name"].as_str().unwrap_or("");
        out.push_str(&format!("Topic: {name}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {configs}\n", d["partition_count"], d["replication_factor"]));
        for p in d["partitions"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "\tTopic: {name}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\n",
                p["partition"],
                p["leader"],
                ids(&p["replicas"]),
                ids(&p["isr"])
            ));
        }
    }
    out
}
