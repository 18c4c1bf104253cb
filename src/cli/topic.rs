//! `shardlog topic`: kafka-topics.sh's --create/--list/--describe/--alter/--delete.
//!
//! Creation, partition increases and deletion are librdkafka admin calls
//! (CreateTopics, CreatePartitions, DeleteTopics); listings come from
//! Metadata; `describe` is [`super::topic_describe`].

use rdkafka::admin::{NewPartitions, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::metadata::Metadata;
use serde_json::{json, Value};

use super::client::{admin_opts, block_on, parse_key_value, CliError, ConnectArgs, OP_TIMEOUT};
use super::output::{print_rows, print_str, OutputArgs};

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
    /// Partitions (leader, replicas, ISR, ELR, offline replicas) and overridden configs (kafka-topics.sh --describe).
    ///
    /// With a report option (--under-replicated-partitions, ...) only the
    /// matching partitions are listed, as kafka-topics.sh does.
    ///
    /// Example: shardlog topic describe orders --under-replicated-partitions
    Describe {
        /// Topic names; all topics when left out.
        names: Vec<String>,
        /// Which partitions to report.
        #[command(flatten)]
        filter: super::topic_describe::ReportFilter,
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
        TopicCmd::Describe { names, filter } => super::topic_describe::run(&conn, out.output, &names, &filter),
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
