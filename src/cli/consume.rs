//! `shardlog consume`: kafka-console-consumer.sh with librdkafka.
//!
//! Without `--group` it assigns the partitions itself (no group, nothing
//! committed); with `--group` it joins the group through librdkafka's
//! consumer, auto-commits, and commits synchronously before exiting. It stops
//! cleanly after `--max-messages`, after `--timeout-ms` without a record, or
//! on Ctrl-C / SIGTERM, then prints "Processed a total of N messages" on stderr.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message, Timestamp};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use super::client::{CliError, ConnectArgs};
use super::output::eprint_line;
use super::output::print_str;
use super::topic::metadata;

/// How a consumed record is printed.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// The value, preceded by the fields the --print-* flags ask for.
    Text,
    /// One JSON object per record, with every field.
    Json,
}

/// Which records a read_committed consumer sees.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum IsolationLevel {
    /// Every record up to the high watermark, those of open and aborted transactions included.
    ReadUncommitted,
    /// Only records of committed transactions (and non-transactional ones), up to the last stable offset.
    ReadCommitted,
}

/// Consume records and print them.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example: shardlog consume orders --from-beginning --print-key --print-offset --max-messages 10")]
pub struct ConsumeArgs {
    /// How to reach the cluster (--bootstrap-server, or SHARDLOG_BOOTSTRAP).
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Topic to consume.
    pub topic: String,
    /// Start at the earliest offset (when the group has no committed offset).
    #[arg(long)]
    pub from_beginning: bool,
    /// Start offset: a number (needs --partition), earliest or latest.
    #[arg(long)]
    pub offset: Option<String>,
    /// Consume only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Consumer group to join (offsets are committed); without it no group is used.
    #[arg(long)]
    pub group: Option<String>,
    /// Exit after this many records.
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Exit when no record arrived for this long.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Print the key (null when absent).
    #[arg(long)]
    pub print_key: bool,
    /// Separator after each printed field (default: TAB, as Kafka's).
    #[arg(long, default_value = "\t", hide_default_value = true)]
    pub key_separator: String,
    /// Print Partition:N.
    #[arg(long)]
    pub print_partition: bool,
    /// Print Offset:N.
    #[arg(long)]
    pub print_offset: bool,
    /// Print CreateTime:MS (or LogAppendTime:MS).
    #[arg(long)]
    pub print_timestamp: bool,
    /// Print headers as k:v,k:v (NO_HEADERS when none).
    #[arg(long)]
    pub print_headers: bool,
    /// Output format of records.
    #[arg(long, value_enum, default_value_t = RecordFormat::Text)]
    pub format: RecordFormat,
    /// read_committed hides records of aborted transactions.
    #[arg(long, value_enum, default_value_t = IsolationLevel::ReadUncommitted)]
    pub isolation_level: IsolationLevel,
}

/// A flag set by SIGINT or SIGTERM, so loops can stop and clean up (commit,
/// leave the group) instead of dying mid-way.
pub fn stop_flag() -> Result<Arc<AtomicBool>, CliError> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone()).map_err(|e| CliError::io("install signal handler", e))?;
    }
    Ok(flag)
}

/// Start position from --offset / --from-beginning.
fn start_offset(args: &ConsumeArgs) -> Result<Offset, CliError> {
    match args.offset.as_deref() {
        Some("earliest") => Ok(Offset::Beginning),
        Some("latest") => Ok(Offset::End),
        Some(n) => {
            let n: i64 = n.parse().map_err(|_| CliError::Input(format!("--offset takes a number, earliest or latest, got '{n}'")))?;
            if args.partition.is_none() {
                return Err(CliError::Input("--offset N needs --partition".into()));
            }
            if n < 0 {
                return Err(CliError::Input("--offset must not be negative".into()));
            }
            Ok(Offset::Offset(n))
        }
        None if args.from_beginning => Ok(Offset::Beginning),
        None if args.group.is_some() => Ok(Offset::Stored),
        None => Ok(Offset::End),
    }
}

/// Runs `shardlog consume`: reads records with a librdkafka consumer and prints
/// them until --max-messages, --timeout-ms without a record, or Ctrl-C.
pub fn run(args: ConsumeArgs) -> Result<(), CliError> {
    let stop = stop_flag()?;
    let start = start_offset(&args)?;
    let md = metadata(&args.conn, Some(&args.topic))?;
    let mut partitions: Vec<i32> = md.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    partitions.sort();
    if let Some(p) = args.partition {
        if !partitions.contains(&p) {
            return Err(CliError::kafka(format!("partition {p} of '{}'", args.topic), 3));
        }
        partitions = vec![p];
    }

    let mut cfg = args.conn.client_config();
    let earliest = matches!(start, Offset::Beginning);
    cfg.set("enable.partition.eof", "false")
        .set("auto.offset.reset", if earliest { "earliest" } else { "latest" })
        .set(
            "isolation.level",
            match args.isolation_level {
                IsolationLevel::ReadUncommitted => "read_uncommitted",
                IsolationLevel::ReadCommitted => "read_committed",
            },
        )
        .set("fetch.wait.max.ms", "100");
    match &args.group {
        // Offsets are stored by hand once a record is printed, so a commit
        // never covers records fetched but not yet shown.
        Some(g) => cfg.set("group.id", g).set("enable.auto.commit", "true").set("enable.auto.offset.store", "false"),
        // librdkafka's consumer needs a group.id even to assign(); this one
        // never joins (no subscribe) and never commits.
        None => cfg.set("group.id", "shardlog-cli-assign-only").set("enable.auto.commit", "false"),
    };
    let consumer: BaseConsumer = cfg.create().map_err(|e| CliError::rdkafka("create consumer", e))?;
    if args.group.is_some() && args.partition.is_none() {
        consumer.subscribe(&[&args.topic]).map_err(|e| CliError::rdkafka(format!("subscribe to '{}'", args.topic), e))?;
    } else {
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(&args.topic, *p, start).map_err(|e| CliError::rdkafka("assign", e))?;
        }
        consumer.assign(&tpl).map_err(|e| CliError::rdkafka("assign", e))?;
    }

    let mut count = 0u64;
    let mut last_record = Instant::now();
    let mut result = Ok(());
    while !stop.load(Ordering::Relaxed) && args.max_messages.is_none_or(|m| count < m) {
        if args.timeout_ms.is_some_and(|t| last_record.elapsed() >= Duration::from_millis(t)) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                count += 1;
                last_record = Instant::now();
                print_str(&format_record(&args, &m));
                if args.group.is_some() {
                    consumer.store_offset_from_message(&m).map_err(|e| CliError::rdkafka("store offset", e))?;
                }
            }
            Some(Err(e)) => match e.rdkafka_error_code() {
                Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::TopicAuthorizationFailed) | None => {
                    result = Err(CliError::rdkafka(format!("consume '{}'", args.topic), e));
                    break;
                }
                Some(_) => eprint_line(&format!("warning: {e}")),
            },
        }
    }
    if args.group.is_some() {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => {}
            Err(e) => result = result.and(Err(CliError::rdkafka("commit offsets", e))),
        }
    }
    drop(consumer);
    eprint_line(&format!("Processed a total of {count} messages"));
    result
}

fn lossy(b: Option<&[u8]>) -> Option<String> {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
}

/// One record as a line, in the chosen format.
fn format_record(args: &ConsumeArgs, m: &BorrowedMessage<'_>) -> String {
    let headers: Vec<(String, Option<String>)> = m.headers().map(|hs| hs.iter().map(|h| (h.key.to_string(), lossy(h.value))).collect()).unwrap_or_default();
    if args.format == RecordFormat::Json {
        let ts = m.timestamp();
        let line = json!({
            "topic": m.topic(),
            "partition": m.partition(),
            "offset": m.offset(),
            "timestamp": ts.to_millis(),
            "timestamp_type": match ts { Timestamp::CreateTime(_) => "CreateTime", Timestamp::LogAppendTime(_) => "LogAppendTime", Timestamp::NotAvailable => "NoTimestampType" },
            "key": lossy(m.key()),
            "value": lossy(m.payload()),
            "headers": headers.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
        });
        return format!("{line}\n");
    }
    let sep = &args.key_separator;
    let mut out = String::new();
    if args.print_timestamp {
        let _ = match m.timestamp() {
            Timestamp::CreateTime(t) => write!(out, "CreateTime:{t}{sep}"),
            Timestamp::LogAppendTime(t) => write!(out, "LogAppendTime:{t}{sep}"),
            Timestamp::NotAvailable => write!(out, "NO_TIMESTAMP{sep}"),
        };
    }
    if args.print_partition {
        let _ = write!(out, "Partition:{}{sep}", m.partition());
    }
    if args.print_offset {
        let _ = write!(out, "Offset:{}{sep}", m.offset());
    }
    if args.print_headers {
        if headers.is_empty() {
            out.push_str("NO_HEADERS");
        } else {
            let hs: Vec<String> = headers.iter().map(|(k, v)| format!("{k}:{}", v.as_deref().unwrap_or("null"))).collect();
            out.push_str(&hs.join(","));
        }
        out.push_str(sep);
    }
    if args.print_key {
        out.push_str(lossy(m.key()).as_deref().unwrap_or("null"));
        out.push_str(sep);
    }
    out.push_str(lossy(m.payload()).as_deref().unwrap_or("null"));
    out.push('\n');
    out
}
