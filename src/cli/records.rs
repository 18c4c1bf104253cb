//! `shardlog records delete`: kafka-delete-records.sh. Moves partitions' low
//! watermarks (log start offsets) forward with librdkafka's DeleteRecords and
//! prints the new low watermarks.

use std::path::PathBuf;

use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use serde_json::{json, Value};

use super::client::{admin_opts, block_on, CliError, ConnectArgs};
use super::output::{print_rows, OutputArgs};

/// Record administration.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example: shardlog records delete orders --partition 0 --before-offset 1000")]
pub struct RecordsArgs {
    /// How to reach the cluster (--bootstrap-server, or SHARDLOG_BOOTSTRAP).
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Output format of listings (--output table or json).
    #[command(flatten)]
    pub out: OutputArgs,
    /// The records subcommand to run.
    #[command(subcommand)]
    pub cmd: RecordsCmd,
}

/// Subcommands of `shardlog records`.
#[derive(clap::Subcommand, Debug)]
pub enum RecordsCmd {
    /// Delete records before an offset (kafka-delete-records.sh).
    ///
    /// Example: shardlog records delete --offset-json-file offsets.json
    /// with offsets.json = {"partitions":[{"topic":"orders","partition":0,"offset":1000}],"version":1}
    /// (offset -1 = everything up to the high watermark).
    Delete {
        /// Topic (with --partition and --before-offset).
        #[arg(conflicts_with = "offset_json_file", required_unless_present = "offset_json_file", requires_all = ["partition", "before_offset"])]
        topic: Option<String>,
        /// Partition of TOPIC.
        #[arg(long)]
        partition: Option<i32>,
        /// Delete the records before this offset (-1 = all).
        #[arg(long, allow_negative_numbers = true)]
        before_offset: Option<i64>,
        /// Kafka's offset JSON file: {"partitions":[{"topic":..,"partition":..,"offset":..}],"version":1}.
        #[arg(long)]
        offset_json_file: Option<PathBuf>,
    },
}

/// kafka-delete-records.sh's input file.
#[derive(Deserialize)]
struct OffsetFile {
    partitions: Vec<OffsetEntry>,
    #[allow(dead_code)]
    version: Option<i32>,
}

#[derive(Deserialize)]
struct OffsetEntry {
    topic: String,
    partition: i32,
    offset: i64,
}

/// Runs a `shardlog records` subcommand (DeleteRecords).
pub fn run(args: RecordsArgs) -> Result<(), CliError> {
    let RecordsArgs { conn, out, cmd } = args;
    let RecordsCmd::Delete { topic, partition, before_offset, offset_json_file } = cmd;
    let entries = match (offset_json_file, topic, partition, before_offset) {
        (Some(path), ..) => {
            let text = std::fs::read_to_string(&path).map_err(|e| CliError::io(format!("read {}", path.display()), e))?;
            let f: OffsetFile = serde_json::from_str(&text).map_err(|e| CliError::Input(format!("{}: not Kafka's offset JSON ({e})", path.display())))?;
            f.partitions
        }
        (None, Some(topic), Some(partition), Some(offset)) => vec![OffsetEntry { topic, partition, offset }],
        _ => return Err(CliError::Input("give TOPIC --partition P --before-offset N, or --offset-json-file F".into())),
    };
    if entries.is_empty() {
        return Err(CliError::Input("no partitions to delete records from".into()));
    }
    let mut tpl = TopicPartitionList::new();
    for e in &entries {
        let offset = match e.offset {
            -1 => Offset::End,
            o if o >= 0 => Offset::Offset(o),
            o => return Err(CliError::Input(format!("offset {o} of {}-{}: use a non-negative offset or -1", e.topic, e.partition))),
        };
        tpl.add_partition_offset(&e.topic, e.partition, offset).map_err(|e| CliError::rdkafka("delete records", e))?;
    }
    let res = block_on(conn.admin()?.delete_records(&tpl, &admin_opts())).map_err(|e| CliError::rdkafka("delete records", e))?;
    let mut rows: Vec<Value> = Vec::new();
    let mut first_error = None;
    for e in res.elements() {
        match e.error() {
            Ok(()) => {
                let low = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                };
                rows.push(json!({"topic": e.topic(), "partition": e.partition(), "low_watermark": low, "error": null}));
            }
            Err(err) => {
                let ce = CliError::rdkafka(format!("delete records of {}-{}", e.topic(), e.partition()), err);
                rows.push(json!({"topic": e.topic(), "partition": e.partition(), "low_watermark": null, "error": ce.to_string()}));
                first_error.get_or_insert(ce);
            }
        }
    }
    if rows.iter().any(|r| r["error"].is_null()) {
        print_rows(out.output, &[("TOPIC", "topic"), ("PARTITION", "partition"), ("LOW-WATERMARK", "low_watermark")], &rows);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
