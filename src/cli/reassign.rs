//! `shardlog partitions reassign` (kafka-reassign-partitions.sh): its
//! `--generate`, `--execute`, `--verify`, `--cancel` and `--list` modes with
//! Kafka's JSON files and messages, over AlterPartitionReassignments (key 45),
//! ListPartitionReassignments (key 46), Metadata and, for throttles,
//! IncrementalAlterConfigs ([`super::throttle`]). Placement and file formats
//! are in [`super::assignment`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_partition_reassignments_request::{AlterPartitionReassignmentsRequest, ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::list_partition_reassignments_request::{ListPartitionReassignmentsRequest, ListPartitionReassignmentsTopics};
use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};

use super::assignment::{self, PartitionMove, PlacementBroker};
use super::client::{error_name, CliError, Conn, ConnectArgs, OP_TIMEOUT};
use super::output::{eprint_line, print_json, print_line, Format, OutputArgs};
use super::throttle;
use super::topic_describe::{fetch, ClusterView};

/// `shardlog partitions`.
#[derive(clap::Args, Debug)]
pub struct PartitionsArgs {
    /// How to reach the cluster (--bootstrap-server, or SHARDLOG_BOOTSTRAP).
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Output format (--output table or json).
    #[command(flatten)]
    pub out: OutputArgs,
    /// The partitions subcommand to run.
    #[command(subcommand)]
    pub cmd: PartitionsCmd,
}

/// Subcommands of `shardlog partitions`.
#[derive(clap::Subcommand, Debug)]
pub enum PartitionsCmd {
    /// Move partition replicas between brokers (kafka-reassign-partitions.sh).
    Reassign(ReassignArgs),
}

/// kafka-reassign-partitions.sh's modes and options.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["generate", "execute", "verify", "cancel", "list"]))]
#[command(after_help = "Example:\n  shardlog partitions reassign --generate --topics-to-move-json-file topics.json --broker-list 1,2,4\n  \
shardlog partitions reassign --execute --reassignment-json-file plan.json --throttle 10000000\n  \
shardlog partitions reassign --verify --reassignment-json-file plan.json --wait")]
pub struct ReassignArgs {
    /// Propose an assignment of the topics in --topics-to-move-json-file over --broker-list.
    #[arg(long, requires_all = ["topics_to_move_json_file", "broker_list"])]
    pub generate: bool,
    /// Start the reassignment in --reassignment-json-file.
    #[arg(long, requires = "reassignment_json_file")]
    pub execute: bool,
    /// Report whether the reassignment in --reassignment-json-file is complete; clears throttles when it is.
    #[arg(long, requires = "reassignment_json_file")]
    pub verify: bool,
    /// Cancel the reassignments of the partitions in --reassignment-json-file.
    #[arg(long, requires = "reassignment_json_file")]
    pub cancel: bool,
    /// List every ongoing reassignment.
    #[arg(long)]
    pub list: bool,
    /// Topics to move: {"version":1,"topics":[{"topic":"t"}]}.
    #[arg(long, value_name = "FILE")]
    pub topics_to_move_json_file: Option<PathBuf>,
    /// Brokers to place replicas on, e.g. 1,2,4.
    #[arg(long, value_name = "IDS")]
    pub broker_list: Option<String>,
    /// Ignore brokers' racks when generating.
    #[arg(long)]
    pub disable_rack_aware: bool,
    /// The reassignment: {"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2],"log_dirs":["any","any"]}]}.
    #[arg(long, value_name = "FILE")]
    pub reassignment_json_file: Option<PathBuf>,
    /// Replication throttle in bytes/s for the brokers involved (with --execute).
    #[arg(long, value_name = "BYTES_PER_SEC", requires = "execute")]
    pub throttle: Option<u64>,
    /// Start even though other reassignments are in progress (with --execute).
    #[arg(long, requires = "execute")]
    pub additional: bool,
    /// Leave the throttles in place (with --verify or --cancel).
    #[arg(long)]
    pub preserve_throttles: bool,
    /// Poll every second until the reassignment completes, printing progress (with --verify).
    #[arg(long, requires = "verify")]
    pub wait: bool,
    /// How long --wait waits before failing.
    #[arg(long, value_name = "MS", default_value_t = 600_000, requires = "wait")]
    pub timeout_ms: u64,
}

/// Runs `shardlog partitions`.
pub fn run(args: PartitionsArgs) -> Result<(), CliError> {
    let PartitionsArgs { conn, out, cmd: PartitionsCmd::Reassign(r) } = args;
    if r.generate {
        generate(&conn, out.output, &r)
    } else if r.execute {
        execute(&conn, out.output, &r)
    } else if r.verify {
        verify(&conn, out.output, &r)
    } else if r.cancel {
        cancel(&conn, out.output, &r)
    } else {
        list(&conn, out.output)
    }
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::io(format!("read {}", path.display()), e))
}

fn reassignment_file(r: &ReassignArgs) -> Result<Vec<PartitionMove>, CliError> {
    let path = r.reassignment_json_file.as_deref().ok_or_else(|| CliError::Input("--reassignment-json-file is required".into()))?;
    assignment::parse_reassignment_json(&read(path)?)
}

fn tp(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// The current replicas of `moves`' partitions; a topic or partition the
/// cluster does not have is an error.
fn current_of(view: &ClusterView, moves: &[PartitionMove]) -> Result<Vec<PartitionMove>, CliError> {
    moves
        .iter()
        .map(|m| {
            let t = view.topic(&m.topic).ok_or_else(|| CliError::kafka(format!("topic '{}'", m.topic), 3))?;
            let p = t
                .partitions
                .iter()
                .find(|p| p.partition == m.partition)
                .ok_or_else(|| CliError::kafka(format!("partition {}", tp(&m.topic, m.partition)), 3))?;
            Ok(PartitionMove { topic: m.topic.clone(), partition: m.partition, replicas: p.replicas.clone() })
        })
        .collect()
}

fn topics_of(moves: &[PartitionMove]) -> Vec<String> {
    moves.iter().map(|m| m.topic.clone()).collect::<BTreeSet<_>>().into_iter().collect()
}

/// A random index below `n` (Kafka's placement starts at a random broker).
fn random_below(n: usize) -> usize {
    let b = uuid::Uuid::new_v4().as_u128();
    (b % n.max(1) as u128) as usize
}

fn generate(conn: &ConnectArgs, format: Format, r: &ReassignArgs) -> Result<(), CliError> {
    let topics = assignment::parse_topics_json(&read(r.topics_to_move_json_file.as_deref().unwrap_or(Path::new("")))?)?;
    let wanted = assignment::parse_broker_list(r.broker_list.as_deref().unwrap_or(""))?;
    let view = fetch(conn, &topics)?;
    let unknown: Vec<String> = wanted.iter().filter(|id| !view.brokers.iter().any(|b| b.id == **id)).map(|id| id.to_string()).collect();
    if !unknown.is_empty() {
        return Err(CliError::Input(format!("--broker-list names brokers the cluster does not list: {}", unknown.join(","))));
    }
    let brokers: Vec<PlacementBroker> = view
        .brokers
        .iter()
        .filter(|b| wanted.contains(&b.id))
        .map(|b| PlacementBroker { id: b.id, rack: if r.disable_rack_aware { None } else { b.rack.clone() } })
        .collect();
    let mut current = Vec::new();
    let mut proposed = Vec::new();
    for t in &view.topics {
        let rf = t.partitions.first().map(|p| p.replicas.len()).unwrap_or(0);
        let n = brokers.len();
        let placed = assignment::assign_replicas(&brokers, t.partitions.len(), rf, random_below(n), random_below(n))
            .map_err(|e| CliError::Input(format!("topic '{}': {e}", t.name)))?;
        for (p, replicas) in t.partitions.iter().zip(placed) {
            current.push(PartitionMove { topic: t.name.clone(), partition: p.partition, replicas: p.replicas.clone() });
            proposed.push(PartitionMove { topic: t.name.clone(), partition: p.partition, replicas });
        }
    }
    let (cur, prop) = (assignment::reassignment_json(&current), assignment::reassignment_json(&proposed));
    match format {
        Format::Json => print_json(&json!({"current": parse(&cur), "proposed": parse(&prop)})),
        Format::Table => {
            print_line(&format!("Current partition replica assignment\n{cur}\n"));
            print_line(&format!("Proposed partition reassignment configuration\n{prop}"));
        }
    }
    Ok(())
}

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}

/// Topic -> partition -> replicas (None: cancel) as the request wants them.
fn alter_request(moves: &[(String, i32, Option<Vec<i32>>)]) -> AlterPartitionReassignmentsRequest {
    let mut topics: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for (t, p, replicas) in moves {
        topics
            .entry(t)
            .or_default()
            .push(ReassignablePartition::default().with_partition_index(*p).with_replicas(replicas.as_ref().map(|r| r.iter().map(|b| BrokerId(*b)).collect())));
    }
    AlterPartitionReassignmentsRequest::default().with_timeout_ms(OP_TIMEOUT.as_millis() as i32).with_topics(
        topics.into_iter().map(|(t, ps)| ReassignableTopic::default().with_name(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps)).collect(),
    )
}

/// Sends AlterPartitionReassignments; returns the partitions that failed, with their error.
fn alter(c: &mut Conn, moves: &[(String, i32, Option<Vec<i32>>)], what: &str) -> Result<Vec<(String, String)>, CliError> {
    let resp = c.request(1, &alter_request(moves))?;
    if resp.error_code != 0 {
        let msg = resp.error_message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default();
        return Err(CliError::kafka(format!("{what}{msg}"), resp.error_code));
    }
    let mut failed = Vec::new();
    for t in &resp.responses {
        for p in &t.partitions {
            if p.error_code != 0 {
                let msg = p.error_message.as_ref().map(|m| format!(": {m}")).unwrap_or_default();
                failed.push((tp(&t.name.0, p.partition_index), format!("{}{msg}", error_name(p.error_code))));
            }
        }
    }
    Ok(failed)
}

/// Ongoing reassignment of one partition: (replicas, adding, removing).
type Ongoing = BTreeMap<(String, i32), (Vec<i32>, Vec<i32>, Vec<i32>)>;

/// ListPartitionReassignments of `moves`' partitions, or of all (None).
fn ongoing(c: &mut Conn, moves: Option<&[PartitionMove]>) -> Result<Ongoing, CliError> {
    let topics = moves.map(|ms| {
        let mut by: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for m in ms {
            by.entry(&m.topic).or_default().push(m.partition);
        }
        by.into_iter()
            .map(|(t, ps)| ListPartitionReassignmentsTopics::default().with_name(TopicName(StrBytes::from_string(t.to_string()))).with_partition_indexes(ps))
            .collect()
    });
    let resp = c.request(0, &ListPartitionReassignmentsRequest::default().with_timeout_ms(OP_TIMEOUT.as_millis() as i32).with_topics(topics))?;
    if resp.error_code != 0 {
        let msg = resp.error_message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default();
        return Err(CliError::kafka(format!("list partition reassignments{msg}"), resp.error_code));
    }
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    let mut out = Ongoing::new();
    for t in &resp.topics {
        for p in &t.partitions {
            out.insert((t.name.0.to_string(), p.partition_index), (ids(&p.replicas), ids(&p.adding_replicas), ids(&p.removing_replicas)));
        }
    }
    Ok(out)
}

fn execute(conn: &ConnectArgs, format: Format, r: &ReassignArgs) -> Result<(), CliError> {
    let moves = reassignment_file(r)?;
    let mut c = conn.connect()?;
    // Fail before changing anything when the broker cannot reassign at all.
    c.version_for::<AlterPartitionReassignmentsRequest>(1)?;
    let view = fetch(conn, &topics_of(&moves))?;
    let current = current_of(&view, &moves)?;
    let unknown: BTreeSet<i32> = moves.iter().flat_map(|m| m.replicas.iter().copied()).filter(|id| !view.brokers.iter().any(|b| b.id == *id)).collect();
    if !unknown.is_empty() {
        return Err(CliError::Input(format!("unknown broker id(s) in the reassignment: {unknown:?}")));
    }
    let rollback = assignment::reassignment_json(&current);
    if format == Format::Table {
        print_line(&format!("Current partition replica assignment\n\n{rollback}\n\nSave this to use as the --reassignment-json-file option during rollback"));
    }
    if !r.additional && !ongoing(&mut c, None)?.is_empty() {
        return Err(CliError::Input(
            "Cannot execute because there is an existing partition assignment. Use --additional to override this and create a new partition assignment in addition to the existing one.".into(),
        ));
    }
    if let Some(rate) = r.throttle {
        apply_throttle(&mut c, &view, &current, &moves, rate)?;
        if format == Format::Table {
            print_line("Warning: You must run --verify periodically, until the reassignment completes, to ensure the throttle is removed.");
            print_line(&format!("The inter-broker throttle limit was set to {rate} B/s"));
        }
    }
    let req: Vec<(String, i32, Option<Vec<i32>>)> = moves.iter().map(|m| (m.topic.clone(), m.partition, Some(m.replicas.clone()))).collect();
    let failed = alter(&mut c, &req, "reassign partitions")?;
    let started: Vec<String> = moves.iter().map(|m| tp(&m.topic, m.partition)).filter(|n| !failed.iter().any(|(f, _)| f == n)).collect();
    match format {
        Format::Json => print_json(&json!({"current": parse(&rollback), "started": started, "throttle": r.throttle,
            "failed": failed.iter().map(|(p, e)| json!({"partition": p, "error": e})).collect::<Vec<_>>()})),
        Format::Table => {
            if !started.is_empty() {
                print_line(&format!("Successfully started partition reassignment{} for {}", if started.len() > 1 { "s" } else { "" }, started.join(",")));
            }
        }
    }
    if !failed.is_empty() {
        let lines: Vec<String> = failed.iter().map(|(p, e)| format!("{p}: {e}")).collect();
        return Err(CliError::Client {
            context: "reassign partitions".into(),
            detail: format!("Error reassigning partition(s):\n{}", lines.join("\n")),
            advice: String::new(),
        });
    }
    Ok(())
}

/// Kafka's throttle for `--execute --throttle`: the rates on every broker
/// that is a current or target replica, then each topic's throttled replicas.
fn apply_throttle(c: &mut Conn, view: &ClusterView, current: &[PartitionMove], moves: &[PartitionMove], rate: u64) -> Result<(), CliError> {
    let involved: BTreeSet<i32> = current.iter().chain(moves).flat_map(|m| m.replicas.iter().copied()).collect();
    for id in &involved {
        let b = view.brokers.iter().find(|b| b.id == *id).ok_or_else(|| CliError::Input(format!("broker {id} is not live: cannot throttle it")))?;
        throttle::set_broker_rate(&b.addr, *id, rate)?;
    }
    let mut per_topic: BTreeMap<&str, Vec<assignment::ReplicaMove>> = BTreeMap::new();
    for (cur, m) in current.iter().zip(moves) {
        per_topic.entry(&m.topic).or_default().push((m.partition, cur.replicas.clone(), m.replicas.clone()));
    }
    for (topic, parts) in per_topic {
        let (leader, follower) = assignment::throttled_replicas(&parts);
        match throttle::set_topic_replicas(c, topic, &leader, &follower) {
            // shardlog throttles a reassignment's added replicas without these
            // topic configs (it refuses them as unknown); Kafka needs them.
            Err(CliError::Kafka { name, .. }) if name == "INVALID_CONFIG" => {
                println!("Topic '{topic}': the broker has no throttled-replica topic configs; it throttles the replicas being added by itself");
            }
            other => other?,
        }
    }
    Ok(())
}

/// One partition's state against its target.
fn partition_status(view: &ClusterView, ongoing: &Ongoing, m: &PartitionMove) -> Value {
    let name = tp(&m.topic, m.partition);
    let cur = view.topic(&m.topic).and_then(|t| t.partitions.iter().find(|p| p.partition == m.partition));
    let (replicas, isr) = cur.map(|p| (p.replicas.clone(), p.isr.clone())).unwrap_or_default();
    let (status, message, adding, removing) = match ongoing.get(&(m.topic.clone(), m.partition)) {
        Some((_, adding, removing)) => ("in_progress", format!("Reassignment of partition {name} is still in progress."), adding.clone(), removing.clone()),
        None if replicas == m.replicas => ("completed", format!("Reassignment of partition {name} is completed."), vec![], vec![]),
        None => {
            let ids = |v: &[i32]| v.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
            let msg = format!("There is no active reassignment of partition {name}, but replica set is {} rather than {}.", ids(&replicas), ids(&m.replicas));
            ("mismatch", msg, vec![], vec![])
        }
    };
    json!({"topic": m.topic, "partition": m.partition, "status": status, "message": message, "target": m.replicas,
           "replicas": replicas, "adding": adding, "removing": removing, "isr": isr})
}

fn statuses(conn: &ConnectArgs, c: &mut Conn, moves: &[PartitionMove]) -> Result<Vec<Value>, CliError> {
    let on = ongoing(c, Some(moves))?;
    let view = fetch(conn, &topics_of(moves))?;
    Ok(moves.iter().map(|m| partition_status(&view, &on, m)).collect())
}

fn verify(conn: &ConnectArgs, format: Format, r: &ReassignArgs) -> Result<(), CliError> {
    let moves = reassignment_file(r)?;
    let mut c = conn.connect()?;
    let mut st = statuses(conn, &mut c, &moves)?;
    if r.wait {
        let deadline = Instant::now() + Duration::from_millis(r.timeout_ms);
        while st.iter().any(|s| s["status"] == "in_progress") {
            for s in st.iter().filter(|s| s["status"] == "in_progress") {
                let ids = |k: &str| super::output::cell(s.get(k));
                eprint_line(&format!(
                    "{}-{}: replicas {} adding {} removing {} isr {}",
                    s["topic"].as_str().unwrap_or(""),
                    s["partition"],
                    ids("replicas"),
                    ids("adding"),
                    ids("removing"),
                    ids("isr")
                ));
            }
            if Instant::now() >= deadline {
                return Err(CliError::Client {
                    context: "verify reassignment".into(),
                    detail: format!("still in progress after {} ms", r.timeout_ms),
                    advice: "Run --verify again later, or --cancel it.".into(),
                });
            }
            std::thread::sleep(Duration::from_secs(1));
            st = statuses(conn, &mut c, &moves)?;
        }
    }
    let complete = st.iter().all(|s| s["status"] == "completed");
    if format == Format::Table {
        print_line("Status of partition reassignment:");
        for s in &st {
            print_line(s["message"].as_str().unwrap_or(""));
        }
    }
    let cleared = if complete && !r.preserve_throttles { clear_throttles(conn, &mut c, &moves, format)? } else { json!(null) };
    if format == Format::Json {
        print_json(&json!({"complete": complete, "partitions": st, "throttles_cleared": cleared}));
    }
    Ok(())
}

/// Removes the throttles Kafka's tool sets: the rates of every live broker
/// and the replica lists of the file's topics (only what is set).
fn clear_throttles(conn: &ConnectArgs, c: &mut Conn, moves: &[PartitionMove], format: Format) -> Result<Value, CliError> {
    let view = fetch(conn, &[])?;
    let mut brokers = Vec::new();
    for b in &view.brokers {
        if throttle::clear_broker_rates(&b.addr, b.id)? {
            brokers.push(b.id);
        }
    }
    let mut topics = Vec::new();
    for t in topics_of(moves) {
        if throttle::clear_topic_replicas(c, &t)? {
            topics.push(t);
        }
    }
    if format == Format::Table {
        if !brokers.is_empty() {
            print_line(&format!("Clearing broker-level throttles on brokers {}", brokers.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",")));
        }
        for t in &topics {
            print_line(&format!("Clearing topic-level throttles on topic {t}"));
        }
    }
    Ok(json!({"brokers": brokers, "topics": topics}))
}

fn cancel(conn: &ConnectArgs, format: Format, r: &ReassignArgs) -> Result<(), CliError> {
    let moves = reassignment_file(r)?;
    let mut c = conn.connect()?;
    let req: Vec<(String, i32, Option<Vec<i32>>)> = moves.iter().map(|m| (m.topic.clone(), m.partition, None)).collect();
    let failed = alter(&mut c, &req, "cancel partition reassignments")?;
    let cancelled: Vec<String> = moves.iter().map(|m| tp(&m.topic, m.partition)).filter(|n| !failed.iter().any(|(f, _)| f == n)).collect();
    let cleared = if r.preserve_throttles { json!(null) } else { clear_throttles(conn, &mut c, &moves, format)? };
    match format {
        Format::Json => print_json(&json!({"cancelled": cancelled, "throttles_cleared": cleared,
            "failed": failed.iter().map(|(p, e)| json!({"partition": p, "error": e})).collect::<Vec<_>>()})),
        Format::Table => {
            if !cancelled.is_empty() {
                print_line(&format!("Successfully cancelled partition reassignments for: {}", cancelled.join(",")));
            }
        }
    }
    if !failed.is_empty() {
        let lines: Vec<String> = failed.iter().map(|(p, e)| format!("{p}: {e}")).collect();
        return Err(CliError::Client {
            context: "cancel partition reassignments".into(),
            detail: format!("Error cancelling partition reassignment(s):\n{}", lines.join("\n")),
            advice: String::new(),
        });
    }
    Ok(())
}

fn list(conn: &ConnectArgs, format: Format) -> Result<(), CliError> {
    let mut c = conn.connect()?;
    let on = ongoing(&mut c, None)?;
    let ids = |v: &[i32]| v.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    match format {
        Format::Json => print_json(&Value::Array(
            on.iter()
                .map(|((t, p), (replicas, adding, removing))| json!({"topic": t, "partition": p, "replicas": replicas, "adding": adding, "removing": removing}))
                .collect(),
        )),
        Format::Table if on.is_empty() => print_line("No partition reassignments found."),
        Format::Table => {
            print_line("Current partition reassignments:");
            for ((t, p), (replicas, adding, removing)) in &on {
                print_line(&format!("{}: replicas: {}. adding: {}. removing: {}.", tp(t, *p), ids(replicas), ids(adding), ids(removing)));
            }
        }
    }
    Ok(())
}
