//! `shardlog verifiable-producer` / `verifiable-consumer`: the JSON-lines
//! event streams of Kafka's VerifiableProducer and VerifiableConsumer, so
//! test harnesses written for those tools can drive this one.
//!
//! Every event is one line `{"timestamp":MS,"name":"...",...}` on stdout with
//! Kafka's field names: `startup_complete`, `producer_send_success` (key,
//! value, topic, partition, offset), `producer_send_error` (exception,
//! message, topic, key, value), `shutdown_complete`, `tool_data` (sent,
//! acked, target_throughput, avg_throughput); `partitions_assigned` /
//! `partitions_revoked` (partitions), `records_consumed` (count, partitions
//! with count/minOffset/maxOffset), `record_data` (--verbose),
//! `offsets_committed` (offsets, success, error).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::{json, Value};

use super::client::{error_name, CliError, ConnectArgs};
use super::consume::stop_flag;
use super::output::eprint_line;
use super::output::print_str;

/// Print one event line: timestamp and name first, as Kafka's tools do.
fn event(name: &str, fields: Value) {
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let mut line = format!("{{\"timestamp\":{ts},\"name\":{}", Value::from(name));
    if let Value::Object(m) = fields {
        for (k, v) in m {
            line.push_str(&format!(",{}:{v}", Value::from(k)));
        }
    }
    line.push_str("}\n");
    print_str(&line);
}

/// Produce sequential values and report each acknowledgement.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example: shardlog verifiable-producer --topic test --max-messages 1000 --throughput 500 --acks -1")]
pub struct VerifiableProducerArgs {
    /// How to reach the cluster (--bootstrap-server, or SHARDLOG_BOOTSTRAP).
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Topic to produce to.
    #[arg(long)]
    pub topic: String,
    /// Stop after this many records (-1: until Ctrl-C).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub max_messages: i64,
    /// Records per second at most (-1: as fast as possible).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub throughput: i64,
    /// Acknowledgements to wait for: -1 (all), 0 or 1.
    #[arg(long, default_value = "-1", value_parser = ["all", "-1", "0", "1"], allow_hyphen_values = true)]
    pub acks: String,
    /// Values become PREFIX.N instead of N.
    #[arg(long)]
    pub value_prefix: Option<String>,
}

/// Prints a send event per delivery report.
#[derive(Default)]
struct SendReporter {
    acked: AtomicU64,
}

impl ClientContext for SendReporter {}

impl ProducerContext for SendReporter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        match result {
            Ok(m) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                event(
                    "producer_send_success",
                    json!({"key": text(m.key()), "value": text(m.payload()), "topic": m.topic(), "partition": m.partition(), "offset": m.offset()}),
                );
            }
            Err((e, m)) => {
                // Kafka prints the exception class; we print the error's name.
                let exception = match e.rdkafka_error_code() {
                    Some(code) if code as i32 > 0 => error_name(code as i32 as i16),
                    Some(code) => format!("{code:?}"),
                    None => "KafkaError".to_string(),
                };
                event(
                    "producer_send_error",
                    json!({"exception": exception, "message": e.to_string(), "topic": m.topic(), "key": text(m.key()), "value": text(m.payload())}),
                );
            }
        }
    }
}

/// Runs `shardlog verifiable-producer`: produces sequential values and prints
/// one JSON event per acknowledgement (Kafka's VerifiableProducer format).
pub fn run_producer(args: VerifiableProducerArgs) -> Result<(), CliError> {
    let stop = stop_flag()?;
    let mut cfg = args.conn.client_config();
    cfg.set("acks", &args.acks).set("linger.ms", "0").set("message.timeout.ms", "60000");
    let producer: BaseProducer<SendReporter> = cfg.create_with_context(SendReporter::default()).map_err(|e| CliError::rdkafka("create producer", e))?;
    event("startup_complete", json!({}));
    let start = Instant::now();
    let mut sent: i64 = 0;
    while !stop.load(Ordering::Relaxed) && (args.max_messages < 0 || sent < args.max_messages) {
        if args.throughput > 0 {
            let due = Duration::from_secs_f64(sent as f64 / args.throughput as f64);
            let elapsed = start.elapsed();
            if elapsed < due {
                producer.poll((due - elapsed).min(Duration::from_millis(10)));
                continue;
            }
        }
        let value = match &args.value_prefix {
            Some(p) => format!("{p}.{sent}"),
            None => sent.to_string(),
        };
        let record = BaseRecord::<(), str>::to(&args.topic).payload(&value);
        super::client::send_waiting(&producer, record)?;
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    let _ = producer.flush(Duration::from_secs(60));
    let acked = producer.context().acked.load(Ordering::Relaxed);
    event("shutdown_complete", json!({}));
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    event("tool_data", json!({"sent": sent, "acked": acked, "target_throughput": args.throughput, "avg_throughput": acked as f64 / secs}));
    Ok(())
}

/// Consume in a group and report batches, commits and rebalances.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example: shardlog verifiable-consumer --topic test --group-id vc --max-messages 1000")]
pub struct VerifiableConsumerArgs {
    /// How to reach the cluster (--bootstrap-server, or SHARDLOG_BOOTSTRAP).
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Topic to consume.
    #[arg(long)]
    pub topic: String,
    /// Consumer group to join.
    #[arg(long)]
    pub group_id: String,
    /// Stop after this many records (-1: until Ctrl-C).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub max_messages: i64,
    /// Session timeout in milliseconds.
    #[arg(long, default_value_t = 30000)]
    pub session_timeout: u64,
    /// Let the client auto-commit instead of committing after every batch.
    #[arg(long)]
    pub enable_autocommit: bool,
    /// Where to start without a committed offset: earliest, latest or none.
    #[arg(long, default_value = "earliest", value_parser = ["earliest", "latest", "none"])]
    pub reset_policy: String,
    /// Partition assignor: range, roundrobin or cooperative-sticky.
    #[arg(long, default_value = "range", value_parser = ["range", "roundrobin", "cooperative-sticky"])]
    pub assignment_strategy: String,
    /// Also print a record_data event per record.
    #[arg(long)]
    pub verbose: bool,
}

/// Prints partitions_assigned / partitions_revoked.
#[derive(Default)]
struct RebalanceReporter {
    revoked: AtomicBool,
}

fn partition_list(tpl: &TopicPartitionList) -> Value {
    Value::Array(tpl.elements().iter().map(|e| json!({"topic": e.topic(), "partition": e.partition()})).collect())
}

impl ClientContext for RebalanceReporter {}

impl ConsumerContext for RebalanceReporter {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.revoked.store(true, Ordering::Relaxed);
            event("partitions_revoked", json!({"partitions": partition_list(tpl)}));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            event("partitions_assigned", json!({"partitions": partition_list(tpl)}));
        }
    }
}

/// Runs `shardlog verifiable-consumer`: consumes in a group and prints JSON
/// events for records, commits and rebalances (Kafka's VerifiableConsumer format).
pub fn run_consumer(args: VerifiableConsumerArgs) -> Result<(), CliError> {
    let stop = stop_flag()?;
    let mut cfg = args.conn.client_config();
    cfg.set("group.id", &args.group_id)
        .set("enable.auto.commit", args.enable_autocommit.to_string())
        // Stored by hand per delivered record: auto-commit then covers only
        // records this tool has reported.
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", if args.reset_policy == "none" { "error" } else { &args.reset_policy })
        .set("session.timeout.ms", args.session_timeout.to_string())
        .set("partition.assignment.strategy", &args.assignment_strategy)
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100");
    let consumer: BaseConsumer<RebalanceReporter> =
        cfg.create_with_context(RebalanceReporter::default()).map_err(|e| CliError::rdkafka("create consumer", e))?;
    event("startup_complete", json!({}));
    consumer.subscribe(&[&args.topic]).map_err(|e| CliError::rdkafka(format!("subscribe to '{}'", args.topic), e))?;
    let mut total: i64 = 0;
    let room = |total: i64, batch: usize| args.max_messages < 0 || total + (batch as i64) < args.max_messages;
    while !stop.load(Ordering::Relaxed) && room(total, 0) {
        // A batch: everything already fetched, as one poll() of Kafka's consumer returns.
        let mut batch = Vec::new();
        let mut next = consumer.poll(Duration::from_millis(100));
        while let Some(r) = next {
            match r {
                Ok(m) => {
                    if args.verbose {
                        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
                        event(
                            "record_data",
                            json!({"key": text(m.key()), "value": text(m.payload()), "topic": m.topic(), "partition": m.partition(), "offset": m.offset()}),
                        );
                    }
                    if args.enable_autocommit {
                        consumer.store_offset_from_message(&m).map_err(|e| CliError::rdkafka("store offset", e))?;
                    }
                    batch.push((m.topic().to_string(), m.partition(), m.offset()));
                }
                Err(e) => eprint_line(&format!("warning: {e}")),
            }
            if batch.len() >= 500 || !room(total, batch.len()) {
                break;
            }
            next = consumer.poll(Duration::ZERO);
        }
        if batch.is_empty() {
            continue;
        }
        total += batch.len() as i64;
        let mut summary: BTreeMap<(String, i32), (u64, i64, i64)> = BTreeMap::new();
        for (t, p, o) in &batch {
            let s = summary.entry((t.clone(), *p)).or_insert((0, *o, *o));
            s.0 += 1;
            s.1 = s.1.min(*o);
            s.2 = s.2.max(*o);
        }
        let parts: Vec<Value> =
            summary.iter().map(|((t, p), (n, lo, hi))| json!({"topic": t, "partition": p, "count": n, "minOffset": lo, "maxOffset": hi})).collect();
        event("records_consumed", json!({"count": batch.len(), "partitions": parts}));
        if !args.enable_autocommit {
            let mut tpl = TopicPartitionList::new();
            let mut offsets = Vec::new();
            for ((t, p), (_, _, hi)) in &summary {
                let _ = tpl.add_partition_offset(t, *p, Offset::Offset(hi + 1));
                offsets.push(json!({"topic": t, "partition": p, "offset": hi + 1}));
            }
            match consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => event("offsets_committed", json!({"offsets": offsets, "success": true})),
                Err(e) => event("offsets_committed", json!({"offsets": offsets, "error": e.to_string(), "success": false})),
            }
        }
    }
    // Leave the group the way Kafka's close() does: revoke, then go.
    consumer.unsubscribe();
    for _ in 0..20 {
        if consumer.context().revoked.load(Ordering::Relaxed) {
            break;
        }
        consumer.poll(Duration::from_millis(50));
    }
    drop(consumer);
    event("shutdown_complete", json!({}));
    Ok(())
}
