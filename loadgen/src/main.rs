//! loadgen: a Kafka load generator that works against any Kafka-compatible
//! broker, speaking the wire protocol directly (kafka-protocol crate).
//!
//! Layout, in the order a run uses it:
//! - `main.rs`: options (clap), workload merge, partition assignment, the run.
//! - `workload.rs`: named workloads (`workloads/*.toml`) and `--scale`.
//! - `wire.rs`: framing, API-version negotiation, Metadata/CreateTopics/ListOffsets.
//! - `batch.rs`: RecordBatch v2 encoded once, patched per send; header scanning.
//! - `producer.rs`: pre-built Produce requests, pipelined per connection.
//! - `consumer.rs`: Fetch with assigned partitions, header-only counting.
//! - `group.rs`: `--group-mode group`: consumer-group members (join, sync,
//!   heartbeat, commit, leave) running the consumer's fetch loop.
//! - `fetch.rs`: Fetch response decoding (tolerant of any tagged field).
//! - `rate.rs`: open-loop pacing for `--rate`.
//! - `report.rs`: histograms, progress line, summary, JSON.
//!
//! A run: connect to the bootstrap broker, read Metadata (creating the topic
//! if missing), split partitions over producer and consumer connections,
//! connect everything to the partitions' leaders (and resolve consumer start
//! offsets; in group mode, join the groups and wait until they settle)
//! *before* the clock starts, then run for warmup + duration. The deadline
//! bounds every wait; every socket operation has a timeout.

mod batch;
mod consumer;
mod fetch;
mod group;
mod producer;
mod rate;
mod report;
mod wire;
mod workload;

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, ValueEnum};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::records::Compression;
use serde_json::json;

use batch::{encode_batch, parse_compression, Keys, XorShift};
use consumer::{Consumer, FetchCfg, EARLIEST, LATEST};
use group::{Group, Member};
use producer::{now_ms, ProduceTemplate, Producer, RunCtx};
use rate::Rate;
use report::{Recorder, RunInfo};
use wire::{Client, PartitionLeader};
use workload::Workload;

/// What the run does (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Only produce
    Produce,
    /// Only consume (records already in the topic, or produced by another run)
    Consume,
    /// Produce and consume at once
    Both,
}

/// Where consumers start (`--from`); in group mode only without a committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StartFrom {
    /// Each partition's earliest offset (its log start offset)
    Earliest,
    /// Each partition's latest offset (its log end offset): only records produced from then on
    Latest,
}

/// How each consumer group gets its partitions (`--group-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GroupMode {
    /// Partitions split over the consumers up front; plain Fetch, no group coordinator
    Assigned,
    /// A real Kafka consumer group: JoinGroup/SyncGroup (range assignor), heartbeats, offset commits
    Group,
}

/// Kafka load generator: pre-encoded, pipelined produce and header-only
/// fetch, straight on the Kafka wire protocol. Works against any
/// Kafka-compatible broker.
///
/// Options left out take the workload's value (--workload), else the default
/// shown. Figures: records/s, MB/s (MB = 10^6 bytes of record payload,
/// record-size x records), produce-ack and end-to-end latency percentiles,
/// errors by Kafka error code (consumer-group rebalances show as
/// REBALANCE_IN_PROGRESS).
///
/// Consumers read as --consumer-groups groups of --consumers each; every
/// group reads every partition. --group-mode assigned (the default) splits
/// the partitions over a group's consumers up front and only fetches;
/// --group-mode group makes each group a real Kafka consumer group
/// (loadgen-<topic>-<run>-<g>): members join and sync with the range
/// assignor, heartbeat and commit offsets every second, start from committed
/// offsets (else --from), rejoin on a rebalance and leave at the end.
#[derive(Debug, Default, Parser)]
#[command(name = "loadgen", version, max_term_width = 100)]
pub struct Cli {
    /// Broker to bootstrap from [default: 127.0.0.1:9092]
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_server: Option<String>,
    /// Named workload (see --list-workloads) or path to a workload TOML file
    #[arg(long, value_name = "NAME|PATH")]
    pub workload: Option<String>,
    /// Print the bundled workloads and exit
    #[arg(long)]
    pub list_workloads: bool,
    /// Multiply the workload's partitions, connections, consumers and rate [default: 1]
    #[arg(long, value_name = "F")]
    pub scale: Option<f64>,
    /// produce, consume or both [default: produce]
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Topic; created with --partitions if missing [default: loadgen]
    #[arg(long)]
    pub topic: Option<String>,
    /// Partitions when the topic is created [default: 1]
    #[arg(long, value_name = "N")]
    pub partitions: Option<u32>,
    /// Replication factor when the topic is created [default: 1]
    #[arg(long, value_name = "N")]
    pub replication_factor: Option<i16>,
    /// Producer connections (partitions are split over them) [default: 1]
    #[arg(long, value_name = "N")]
    pub connections: Option<u32>,
    /// Consumers (fetch connections; group members) per consumer group [default: 1]
    #[arg(long, value_name = "N")]
    pub consumers: Option<u32>,
    /// Consumer groups, each reading every partition (read fan-out) [default: 1]
    #[arg(long, value_name = "N")]
    pub consumer_groups: Option<u32>,
    /// How a consumer group gets its partitions [default: assigned]
    #[arg(long, value_enum, value_name = "MODE")]
    pub group_mode: Option<GroupMode>,
    /// Record value size in bytes [default: 1024]
    #[arg(long, value_name = "BYTES")]
    pub record_size: Option<usize>,
    /// Batch size; records per batch = batch-bytes / record-size [default: 65536]
    #[arg(long, value_name = "BYTES")]
    pub batch_bytes: Option<usize>,
    /// Produce requests outstanding per connection [default: 5]
    #[arg(long, value_name = "N")]
    pub inflight: Option<usize>,
    /// 0, 1 or all [default: 1]
    #[arg(long, value_name = "0|1|all")]
    pub acks: Option<String>,
    /// none, gzip, snappy, lz4 or zstd [default: none]
    #[arg(long)]
    pub compression: Option<String>,
    /// none, random or round-robin:N [default: none]
    #[arg(long, value_name = "none|random|round-robin:N")]
    pub keys: Option<String>,
    /// Open-loop target: records/s, or bytes with a unit (e.g. 50MB/s); closed loop when absent
    #[arg(long, value_name = "R")]
    pub rate: Option<String>,
    /// Measured seconds, after the warmup [default: 10, or until --records]
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Stop after this many records (produced; per consumer group when consuming)
    #[arg(long, value_name = "N")]
    pub records: Option<u64>,
    /// Seconds run before measuring; excluded from the figures [default: 0]
    #[arg(long, value_name = "SECS")]
    pub warmup: Option<f64>,
    /// Where consumers start [default: earliest for consume, latest for both]
    #[arg(long, value_enum)]
    pub from: Option<StartFrom>,
    /// Client threads (tokio workers) [default: 1]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Seconds before a connect, write or response counts as failed [default: 30]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Fetch long-poll wait [default: 500]
    #[arg(long, value_name = "MS")]
    pub fetch_max_wait_ms: Option<i32>,
    /// Fetch response size limit [default: 52428800]
    #[arg(long, value_name = "BYTES")]
    pub fetch_max_bytes: Option<i32>,
    /// Fetch limit per partition [default: 1048576]
    #[arg(long, value_name = "BYTES")]
    pub partition_fetch_bytes: Option<i32>,
    /// Print one JSON object instead of the text summary
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr
    #[arg(long)]
    pub quiet: bool,
}

/// Every option resolved: command line, else workload, else default.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Broker to bootstrap from (HOST:PORT).
    pub bootstrap: String,
    /// The workload's name or path, when one was given (for the report).
    pub workload: Option<String>,
    /// Produce, consume or both.
    pub mode: Mode,
    /// Topic produced to and consumed from; created if missing.
    pub topic: String,
    /// Partitions the topic is created with.
    pub partitions: i32,
    /// Replication factor the topic is created with.
    pub replication_factor: i16,
    /// Producer connections; the partitions are split over them.
    pub connections: usize,
    /// Consumers (fetch connections, or group members) per consumer group.
    pub consumers: usize,
    /// Consumer groups, each reading every partition.
    pub consumer_groups: usize,
    /// How a consumer group gets its partitions.
    pub group_mode: GroupMode,
    /// Distinguishes this run's consumer group ids from earlier runs'.
    pub run_id: String,
    /// Record value size in bytes.
    pub record_size: usize,
    /// Target record batch size in bytes.
    pub batch_bytes: usize,
    /// Records per batch: batch_bytes / record_size, at least 1.
    pub records_per_batch: usize,
    /// Produce requests outstanding per connection.
    pub inflight: usize,
    /// Produce `acks`: 0, 1 or -1 (all).
    pub acks: i16,
    /// Codec of the produced record batches.
    pub compression: Compression,
    /// How records are keyed.
    pub keys: Keys,
    /// Open-loop target rate; None runs closed loop, as fast as acks come.
    pub rate: Option<Rate>,
    /// Measured seconds after the warmup; None runs until `records`.
    pub duration: Option<f64>,
    /// Stop after this many records (produced; per consumer group when consuming).
    pub records: Option<u64>,
    /// Seconds run before measuring, excluded from the figures.
    pub warmup: f64,
    /// Where consumers start; in group mode only without a committed offset.
    pub from: StartFrom,
    /// Client threads (tokio workers).
    pub threads: usize,
    /// How long a connect, write or response may take before it counts as failed.
    pub timeout: Duration,
    /// Fetch `max_wait_ms`: the broker's long-poll wait (ms).
    pub fetch_max_wait_ms: i32,
    /// Fetch `max_bytes`: response size limit (bytes).
    pub fetch_max_bytes: i32,
    /// Fetch per-partition `partition_max_bytes` (bytes).
    pub partition_fetch_bytes: i32,
    /// No progress line on stderr.
    pub quiet: bool,
}

fn parse_acks(s: &str) -> Result<i16> {
    match s {
        "0" => Ok(0),
        "1" => Ok(1),
        "all" | "-1" => Ok(-1),
        _ => bail!("--acks `{s}`: expected 0, 1 or all"),
    }
}

fn parse_mode(s: &str) -> Result<Mode> {
    Mode::from_str(s, true).map_err(|_| anyhow!("mode `{s}`: expected produce, consume or both"))
}

fn parse_from(s: &str) -> Result<StartFrom> {
    StartFrom::from_str(s, true).map_err(|_| anyhow!("from `{s}`: expected earliest or latest"))
}

fn parse_group_mode(s: &str) -> Result<GroupMode> {
    GroupMode::from_str(s, true).map_err(|_| anyhow!("group-mode `{s}`: expected assigned or group"))
}

impl Settings {
    /// Merges the command line over the (already scaled) workload.
    pub fn resolve(cli: &Cli, wl: Option<(String, Workload)>) -> Result<Settings> {
        let (name, w) = match wl {
            Some((n, w)) => (Some(n), w),
            None => (None, Workload::default()),
        };
        let mode = match (cli.mode, &w.mode) {
            (Some(m), _) => m,
            (None, Some(s)) => parse_mode(s)?,
            (None, None) => Mode::Produce,
        };
        let from = match (cli.from, &w.from) {
            (Some(f), _) => f,
            (None, Some(s)) => parse_from(s)?,
            (None, None) if mode == Mode::Both => StartFrom::Latest,
            (None, None) => StartFrom::Earliest,
        };
        let group_mode = match (cli.group_mode, &w.group_mode) {
            (Some(g), _) => g,
            (None, Some(s)) => parse_group_mode(s)?,
            (None, None) => GroupMode::Assigned,
        };
        let record_size = cli.record_size.or(w.record_size).unwrap_or(1024);
        let batch_bytes = cli.batch_bytes.or(w.batch_bytes).unwrap_or(65536);
        let acks = parse_acks(cli.acks.as_deref().or(w.acks.as_deref()).unwrap_or("1"))?;
        let compression =
            parse_compression(cli.compression.as_deref().or(w.compression.as_deref()).unwrap_or("none")).map_err(|e| anyhow!("--compression {e}"))?;
        let keys: Keys = cli.keys.as_deref().or(w.keys.as_deref()).unwrap_or("none").parse().map_err(|e| anyhow!("--keys {e}"))?;
        let rate = match cli.rate.clone().or(w.rate.as_ref().map(|r| r.as_text())) {
            Some(r) => Some(r.parse::<Rate>().map_err(|e| anyhow!("--rate {e}"))?),
            None => None,
        };
        let s = Settings {
            bootstrap: cli.bootstrap_server.clone().unwrap_or_else(|| "127.0.0.1:9092".to_string()),
            workload: name,
            mode,
            topic: cli.topic.clone().or(w.topic.clone()).unwrap_or_else(|| "loadgen".to_string()),
            partitions: cli.partitions.or(w.partitions).unwrap_or(1) as i32,
            replication_factor: cli.replication_factor.or(w.replication_factor).unwrap_or(1),
            connections: cli.connections.or(w.connections).unwrap_or(1) as usize,
            consumers: cli.consumers.or(w.consumers).unwrap_or(1) as usize,
            consumer_groups: cli.consumer_groups.or(w.consumer_groups).unwrap_or(1) as usize,
            group_mode,
            run_id: format!("{}-{}", now_ms(), std::process::id()),
            record_size,
            batch_bytes,
            records_per_batch: (batch_bytes / record_size.max(1)).max(1),
            inflight: cli.inflight.or(w.inflight).unwrap_or(5),
            acks,
            compression,
            keys,
            rate,
            duration: cli.duration.or(w.duration),
            records: cli.records.or(w.records),
            warmup: cli.warmup.or(w.warmup).unwrap_or(0.0),
            from,
            threads: cli.threads.or(w.threads).unwrap_or(1),
            timeout: Duration::from_secs_f64(cli.timeout.unwrap_or(30.0).max(0.1)),
            fetch_max_wait_ms: cli.fetch_max_wait_ms.or(w.fetch_max_wait_ms).unwrap_or(500),
            fetch_max_bytes: cli.fetch_max_bytes.or(w.fetch_max_bytes).unwrap_or(52_428_800),
            partition_fetch_bytes: cli.partition_fetch_bytes.or(w.partition_fetch_bytes).unwrap_or(1_048_576),
            quiet: cli.quiet,
        };
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<()> {
        if self.record_size == 0 {
            bail!("--record-size must be at least 1");
        }
        if self.partitions < 1 {
            bail!("--partitions must be at least 1");
        }
        if self.connections == 0 || self.consumers == 0 || self.consumer_groups == 0 || self.threads == 0 || self.inflight == 0 {
            bail!("--connections, --consumers, --consumer-groups, --threads and --inflight must be at least 1");
        }
        if let Some(d) = self.duration {
            if !(d.is_finite() && d > 0.0) {
                bail!("--duration must be positive");
            }
        }
        if !(self.warmup.is_finite() && self.warmup >= 0.0) {
            bail!("--warmup must be zero or positive");
        }
        Ok(())
    }

    fn produces(&self) -> bool {
        matches!(self.mode, Mode::Produce | Mode::Both)
    }

    fn consumes(&self) -> bool {
        matches!(self.mode, Mode::Consume | Mode::Both)
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "bootstrap_server": self.bootstrap,
            "topic": self.topic,
            "partitions": self.partitions,
            "connections": self.connections,
            "consumers": self.consumers,
            "consumer_groups": self.consumer_groups,
            "group_mode": format!("{:?}", self.group_mode).to_lowercase(),
            "group_ids": (self.consumes() && self.group_mode == GroupMode::Group)
                .then(|| (0..self.consumer_groups).map(|g| group::group_id(&self.topic, &self.run_id, g)).collect::<Vec<_>>()),
            "record_size": self.record_size,
            "batch_bytes": self.batch_bytes,
            "records_per_batch": self.records_per_batch,
            "inflight": self.inflight,
            "acks": self.acks,
            "compression": format!("{:?}", self.compression).to_lowercase(),
            "keys": format!("{:?}", self.keys),
            "rate_records_per_sec": self.rate.map(|r| r.records_per_sec(self.record_size)),
            "duration_s": self.duration,
            "records": self.records,
            "warmup_s": self.warmup,
            "from": format!("{:?}", self.from).to_lowercase(),
            "threads": self.threads,
        })
    }
}

/// Splits `partitions` over `actors` round-robin. With more actors than
/// partitions, producers share partitions (`share = true`: actor a gets
/// partition a mod n) while surplus consumers stay idle, as in a Kafka group.
pub fn assign(partitions: &[i32], actors: usize, share: bool) -> Vec<Vec<i32>> {
    let mut out = vec![Vec::new(); actors];
    if partitions.is_empty() {
        return out;
    }
    for (i, p) in partitions.iter().enumerate() {
        out[i % actors].push(*p);
    }
    if share {
        for (a, v) in out.iter_mut().enumerate() {
            if v.is_empty() {
                v.push(partitions[a % partitions.len()]);
            }
        }
    }
    out
}

/// Groups one actor's partitions by leader: one connection per leader.
pub(crate) fn by_leader(parts: &[i32], leaders: &HashMap<i32, String>) -> BTreeMap<String, Vec<i32>> {
    let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for p in parts {
        if let Some(l) = leaders.get(p) {
            m.entry(l.clone()).or_default().push(*p);
        }
    }
    m
}

/// Batches to cycle through: one when records are identical in shape, a few
/// when keys vary (random keys, or round-robin sequences continuing across batches).
fn build_batches(s: &Settings) -> Result<Vec<(Vec<u8>, u64)>> {
    let n = match s.keys {
        Keys::None => 1,
        Keys::Random | Keys::RoundRobin(_) => 8,
    };
    let mut rng = XorShift::new(0x5EED_1234_ABCD_0001);
    (0..n)
        .map(|i| {
            let b = encode_batch(s.records_per_batch, s.record_size, s.keys, (i * s.records_per_batch) as u64, s.compression, &mut rng)?;
            Ok((b, s.records_per_batch as u64))
        })
        .collect()
}

/// Group mode: every member of every group joins, concurrently (a
/// JoinGroup returns only once the group's members have all joined);
/// returns when each group has settled on one generation.
async fn join_groups(s: &Settings, layout: &[PartitionLeader]) -> Result<Vec<Member>> {
    let mut joining = tokio::task::JoinSet::new();
    for g in 0..s.consumer_groups {
        let budget = s.records.map(|n| Arc::new(AtomicI64::new(n as i64)));
        let group = Arc::new(Group::new(group::group_id(&s.topic, &s.run_id, g), s, layout, budget));
        for m in 0..s.consumers {
            joining.spawn(Member::establish(group.clone(), m));
        }
    }
    let mut members = Vec::with_capacity(s.consumer_groups * s.consumers);
    while let Some(r) = joining.join_next().await {
        members.push(r.map_err(|e| anyhow!("joining a consumer group: {e}"))??);
    }
    if !s.quiet {
        let first = group::group_id(&s.topic, &s.run_id, 0);
        let generation = members.first().map(Member::generation).unwrap_or(-1);
        eprintln!("loadgen: {} consumer group(s) of {} joined ({first}..., generation {generation})", s.consumer_groups, s.consumers);
    }
    Ok(members)
}

struct Outcome {
    summary: report::Summary,
    failures: Vec<String>,
}

async fn run(s: Settings) -> Result<Outcome> {
    let timeout = s.timeout;
    let mut boot =
        Client::connect(&s.bootstrap, timeout.min(Duration::from_secs(10))).await.with_context(|| format!("cannot reach the broker at {}", s.bootstrap))?;
    // Creating many partitions can take a while; give it time in proportion.
    let create_wait = timeout + Duration::from_millis(10 * s.partitions as u64);
    let layout: Vec<PartitionLeader> = wire::ensure_topic(&mut boot, &s.topic, s.partitions, s.replication_factor, create_wait).await?;
    let partitions: Vec<i32> = layout.iter().map(|p| p.partition).collect();
    let leaders: HashMap<i32, String> = layout.iter().map(|p| (p.partition, p.leader.clone())).collect();
    drop(boot);

    // Producers: connect to leaders, negotiate, build request templates once per version.
    let mut producers = Vec::new();
    let budget = s.records.map(|n| Arc::new(AtomicI64::new(n as i64)));
    if s.produces() {
        let batches = build_batches(&s)?;
        let mut templates: HashMap<i16, Vec<ProduceTemplate>> = HashMap::new();
        let per_conn_rate = s.rate.map(|r| r.records_per_sec(s.record_size) / s.connections as f64);
        for parts in assign(&partitions, s.connections, true) {
            for (addr, parts) in by_leader(&parts, &leaders) {
                let client = Client::connect(&addr, timeout).await?;
                let version = client.versions.pick(ApiKey::Produce, wire::PRODUCE.0, wire::PRODUCE.1)?;
                let templates = match templates.entry(version) {
                    std::collections::hash_map::Entry::Occupied(e) => e.get().clone(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let timeout_ms = timeout.as_millis().min(i32::MAX as u128) as i32;
                        let t =
                            batches.iter().map(|(b, n)| ProduceTemplate::build(&s.topic, s.acks, timeout_ms, version, b, *n)).collect::<Result<Vec<_>>>()?;
                        e.insert(t).clone()
                    }
                };
                producers.push(Producer {
                    client,
                    version,
                    partitions: parts,
                    templates,
                    inflight: s.inflight,
                    acks: s.acks,
                    rate: per_conn_rate,
                    budget: budget.clone(),
                });
            }
        }
    }

    // Consumers: connect and resolve start offsets before the clock starts,
    // so "latest" means "what the producers will write".
    let mut consumers = Vec::new();
    let mut members = Vec::new();
    if s.consumes() {
        let from = match s.from {
            StartFrom::Earliest => EARLIEST,
            StartFrom::Latest => LATEST,
        };
        if s.consumers > partitions.len() {
            eprintln!("loadgen: {} consumers for {} partitions: {} per group stay idle", s.consumers, partitions.len(), s.consumers - partitions.len());
        }
        match s.group_mode {
            // The coordinator assigns; the members resolve their own start offsets.
            GroupMode::Group => members = join_groups(&s, &layout).await?,
            GroupMode::Assigned => {
                for _group in 0..s.consumer_groups {
                    let group_budget = s.records.map(|n| Arc::new(AtomicI64::new(n as i64)));
                    for parts in assign(&partitions, s.consumers, false) {
                        for (addr, parts) in by_leader(&parts, &leaders) {
                            let mut c = Consumer::connect(&addr, &s.topic, &parts, from, timeout).await?;
                            c.budget = group_budget.clone();
                            consumers.push(c);
                        }
                    }
                }
            }
        }
    }

    let start = Instant::now();
    let warmup = Duration::from_secs_f64(s.warmup);
    let measured = match (s.duration, s.records) {
        (Some(d), _) => Duration::from_secs_f64(d),
        // --records alone: still bounded, by 10 minutes.
        (None, Some(_)) => Duration::from_secs(600),
        (None, None) => Duration::from_secs(10),
    };
    let rec = Arc::new(Recorder::new(start, warmup, s.record_size));
    let stop = Arc::new(AtomicBool::new(false));
    let ctx = Arc::new(RunCtx { rec: rec.clone(), deadline: start + warmup + measured, stop: stop.clone(), timeout });
    let fetch = FetchCfg {
        max_wait_ms: s.fetch_max_wait_ms,
        max_bytes: s.fetch_max_bytes,
        partition_max_bytes: s.partition_fetch_bytes,
        e2e_since_ms: (s.mode == Mode::Both).then(|| now_ms() - 1),
    };

    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("loadgen: interrupted, finishing");
                stop.store(true, Ordering::Relaxed);
            }
        });
    }

    let mut tasks = tokio::task::JoinSet::new();
    for m in members {
        let ctx = ctx.clone();
        let fetch = fetch.clone();
        tasks.spawn(async move { m.run(ctx, fetch).await.map_err(|e| format!("{e:#}")) });
    }
    for (i, c) in consumers.into_iter().enumerate() {
        let ctx = ctx.clone();
        let fetch = fetch.clone();
        tasks.spawn(async move {
            let mut c = c;
            c.run(&ctx, &fetch).await.map_err(|e| format!("consumer {i}: {e:#}"))
        });
    }
    for (i, p) in producers.into_iter().enumerate() {
        let ctx = ctx.clone();
        tasks.spawn(async move { p.run(ctx).await.map_err(|e| format!("producer {i}: {e:#}")) });
    }

    let progress = (!s.quiet).then(|| {
        let rec = rec.clone();
        let (prod, cons) = (s.produces(), s.consumes());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at((start + Duration::from_secs(1)).into(), Duration::from_secs(1));
            let mut last = start;
            loop {
                tick.tick().await;
                let now = Instant::now();
                eprintln!("{}", rec.progress_line(now, now - last, prod, cons));
                last = now;
            }
        })
    });

    let mut failures = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(format!("task failed: {e}")),
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    let end = Instant::now().min(ctx.deadline.max(start));
    Ok(Outcome { summary: rec.summary(end), failures })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list_workloads {
        for name in workload::list() {
            let desc = workload::load(&name).ok().and_then(|(_, w)| w.description).unwrap_or_default();
            println!("{name:18} {desc}");
        }
        return ExitCode::SUCCESS;
    }
    let settings = match (|| -> Result<Settings> {
        let wl = match &cli.workload {
            Some(w) => {
                let (name, wl) = workload::load(w)?;
                Some((name, wl.scaled(cli.scale.unwrap_or(1.0))?))
            }
            None => None,
        };
        Settings::resolve(&cli, wl)
    })() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = if settings.threads <= 1 {
        // One thread: no cross-thread wakeups or work stealing on the hot path.
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(settings.threads).enable_all().build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(run(settings.clone()));
    // Do not wait for tasks stuck in the kernel; everything we need is in hand.
    rt.shutdown_timeout(Duration::from_secs(1));
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mode = format!("{:?}", settings.mode).to_lowercase();
    let info = RunInfo {
        workload: settings.workload.as_deref(),
        mode: &mode,
        produces: settings.produces(),
        consumes: settings.consumes(),
        settings: settings.to_json(),
    };
    if cli.json {
        println!("{}", outcome.summary.to_json(&info));
    } else {
        print!("{}", outcome.summary.to_text(&info));
    }
    for f in &outcome.failures {
        eprintln!("loadgen: {f}");
    }
    if outcome.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_splits_and_shares() {
        let p: Vec<i32> = (0..5).collect();
        assert_eq!(assign(&p, 2, false), vec![vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(assign(&p[..2], 3, true), vec![vec![0], vec![1], vec![0]]);
        assert_eq!(assign(&p[..2], 3, false), vec![vec![0], vec![1], vec![]]);
    }

    #[test]
    fn cli_overrides_workload() {
        let w = workload::parse("partitions = 100\nconnections = 16\nacks = \"all\"\nmode = \"both\"\nrecord-size = 100\n", "t").expect("parse");
        let cli = Cli::parse_from(["loadgen", "--partitions", "3", "--acks", "0"]);
        let s = Settings::resolve(&cli, Some(("t".into(), w))).expect("resolve");
        assert_eq!(s.partitions, 3);
        assert_eq!(s.connections, 16);
        assert_eq!(s.acks, 0);
        assert_eq!(s.mode, Mode::Both);
        assert_eq!(s.from, StartFrom::Latest);
        assert_eq!(s.records_per_batch, 655);
    }

    #[test]
    fn bad_options_are_rejected() {
        for args in [&["loadgen", "--acks", "2"][..], &["loadgen", "--keys", "hash"], &["loadgen", "--rate", "fast"], &["loadgen", "--compression", "brotli"]] {
            let cli = Cli::parse_from(args.iter().copied());
            assert!(Settings::resolve(&cli, None).is_err(), "{args:?}");
        }
        assert!(Cli::try_parse_from(["loadgen", "--group-mode", "static"]).is_err());
        let w = workload::parse("group-mode = \"dynamic\"\n", "t").expect("parse");
        assert!(Settings::resolve(&Cli::default(), Some(("t".into(), w))).is_err());
    }

    #[test]
    fn group_mode_defaults_to_assigned_and_comes_from_workload_or_cli() {
        assert_eq!(Settings::resolve(&Cli::default(), None).expect("resolve").group_mode, GroupMode::Assigned);
        let w = workload::parse("group-mode = \"group\"\nconsumer-groups = 2\nmode = \"consume\"\n", "t").expect("parse");
        let s = Settings::resolve(&Cli::default(), Some(("t".into(), w.clone()))).expect("resolve");
        assert_eq!(s.group_mode, GroupMode::Group);
        let ids = s.to_json()["group_ids"].clone();
        assert_eq!(ids.as_array().map(Vec::len), Some(2), "{ids}");
        assert!(ids[1].as_str().is_some_and(|g| g.starts_with("loadgen-loadgen-") && g.ends_with("-1")), "{ids}");
        let cli = Cli::parse_from(["loadgen", "--group-mode", "assigned"]);
        let s = Settings::resolve(&cli, Some(("t".into(), w))).expect("resolve");
        assert_eq!(s.group_mode, GroupMode::Assigned);
        assert!(s.to_json()["group_ids"].is_null());
    }
}
