//! `shardlog group`: kafka-consumer-groups.sh --list/--describe/--reset-offsets/
//! --delete/--delete-offsets.
//!
//! Group state and members (with their assignments) come from librdkafka's
//! group list (ListGroups + DescribeGroups); committed offsets of every topic
//! from a raw OffsetFetch to the coordinator (librdkafka only fetches offsets
//! for partitions you name); log-end offsets from librdkafka's watermarks.
//! Resets are commits through librdkafka by a consumer that never joins.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::consumer_protocol_assignment::ConsumerProtocolAssignment;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequest, OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequest;
use kafka_protocol::protocol::{Decodable, StrBytes};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::groups::GroupInfo;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

use super::client::{admin_opts, block_on, CliError, Conn, ConnectArgs, OP_TIMEOUT};
use super::output::{eprint_line, eprint_str};
use super::output::{print_rows, print_str, Format, OutputArgs};
use super::topic::metadata;

/// Consumer group administration.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example: shardlog group describe billing --members")]
pub struct GroupArgs {
    /// How to reach the cluster (--bootstrap-server, or SHARDLOG_BOOTSTRAP).
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Output format of listings (--output table or json).
    #[command(flatten)]
    pub out: OutputArgs,
    /// The group subcommand to run.
    #[command(subcommand)]
    pub cmd: GroupCmd,
}

/// Subcommands of `shardlog group`.
#[derive(clap::Subcommand, Debug)]
pub enum GroupCmd {
    /// List groups and their states (kafka-consumer-groups.sh --list).
    ///
    /// Example: shardlog group list --state Stable
    List {
        /// Only groups in this state (Stable, Empty, PreparingRebalance, CompletingRebalance, Dead).
        #[arg(long)]
        state: Option<String>,
    },
    /// Offsets and lag per partition, or members, or state (kafka-consumer-groups.sh --describe).
    ///
    /// Example: shardlog group describe billing
    Describe {
        /// Group id.
        group: String,
        /// One line per member: GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS.
        #[arg(long, conflicts_with = "state")]
        members: bool,
        /// The group's coordinator, assignment strategy, state and member count.
        #[arg(long)]
        state: bool,
    },
    /// Move a group's committed offsets (kafka-consumer-groups.sh --reset-offsets).
    ///
    /// Example: shardlog group reset-offsets billing --topic orders --to-earliest --execute
    ResetOffsets(ResetArgs),
    /// Delete groups with no members, and their offsets (kafka-consumer-groups.sh --delete).
    ///
    /// Example: shardlog group delete billing
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Lag per partition with its verdict (OK, WARNING, STALLED, STOPPED, REWIND), from the
    /// admin listener of the broker coordinating the group (Burrow-style evaluation).
    ///
    /// Example: shardlog group lag billing --watch
    Lag(super::lag::LagArgs),
    /// Delete a group's committed offsets of one topic (kafka-consumer-groups.sh --delete-offsets).
    ///
    /// Example: shardlog group delete-offsets billing --topic orders --partition 0
    DeleteOffsets {
        /// Group id.
        group: String,
        /// Topic whose offsets are deleted.
        #[arg(long)]
        topic: String,
        /// Only these partitions (repeatable); all the group has offsets for when left out.
        #[arg(long)]
        partition: Vec<i32>,
    },
}

/// Where `reset-offsets` moves the offsets to (exactly one).
#[derive(clap::Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct ResetTo {
    /// The log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// The log end offset.
    #[arg(long)]
    pub to_latest: bool,
    /// This offset (kept within [earliest, latest]).
    #[arg(long, value_name = "N")]
    pub to_offset: Option<i64>,
    /// The first offset with a timestamp at or after this time, e.g. 2024-05-01T12:00:00Z
    /// (no zone = local time).
    #[arg(long, value_name = "ISO8601")]
    pub to_datetime: Option<String>,
    /// The committed offset plus N (N may be negative).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
}

/// What `shardlog group reset-offsets` resets, to where, and whether to commit.
#[derive(clap::Args, Debug)]
pub struct ResetArgs {
    /// Group id.
    pub group: String,
    /// Topic whose offsets are reset.
    #[arg(long)]
    pub topic: String,
    /// Only these partitions (repeatable); all of the topic's when left out.
    #[arg(long)]
    pub partition: Vec<i32>,
    /// Where the offsets move to (exactly one of the --to-* / --shift-by options).
    #[command(flatten)]
    pub to: ResetTo,
    /// Only show the new offsets (the default).
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
    /// Commit the new offsets (the group must have no members).
    #[arg(long)]
    pub execute: bool,
}

/// Runs a `shardlog group` subcommand.
pub fn run(args: GroupArgs) -> Result<(), CliError> {
    let GroupArgs { conn, out, cmd } = args;
    match cmd {
        GroupCmd::List { state } => {
            let list = group_list(&conn, None)?;
            let rows: Vec<Value> = list
                .iter()
                .filter(|g| state.as_deref().is_none_or(|s| s.eq_ignore_ascii_case(&g.state)))
                .map(|g| json!({"group": g.name, "state": g.state, "protocol_type": g.protocol_type}))
                .collect();
            print_rows(out.output, &[("GROUP", "group"), ("STATE", "state"), ("PROTOCOL-TYPE", "protocol_type")], &rows);
            Ok(())
        }
        GroupCmd::Describe { group, members, state } => describe(&conn, out.output, &group, members, state),
        GroupCmd::ResetOffsets(r) => reset_offsets(&conn, out.output, r),
        GroupCmd::Lag(a) => super::lag::run(out.output, a),
        GroupCmd::Delete { groups } => {
            let names: Vec<&str> = groups.iter().map(String::as_str).collect();
            let res = block_on(conn.admin()?.delete_groups(&names, &admin_opts())).map_err(|e| CliError::rdkafka("delete groups", e))?;
            for r in res {
                r.map_err(|(g, code)| CliError::rd_code(format!("delete group '{g}'"), code))?;
            }
            let quoted: Vec<String> = groups.iter().map(|g| format!("'{g}'")).collect();
            print_str(&format!("Deletion of requested consumer groups ({}) was successful.\n", quoted.join(", ")));
            Ok(())
        }
        GroupCmd::DeleteOffsets { group, topic, partition } => delete_offsets(&conn, out.output, &group, &topic, partition),
    }
}

/// A group as DescribeGroups reports it, with decoded member assignments.
struct Group {
    name: String,
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<Member>,
}

struct Member {
    id: String,
    client_id: String,
    host: String,
    /// (topic, partition) pairs assigned to this member.
    assignment: Vec<(String, i32)>,
}

impl From<&GroupInfo> for Group {
    fn from(g: &GroupInfo) -> Group {
        Group {
            name: g.name().to_string(),
            state: g.state().to_string(),
            protocol_type: g.protocol_type().to_string(),
            protocol: g.protocol().to_string(),
            members: g
                .members()
                .iter()
                .map(|m| Member {
                    id: m.id().to_string(),
                    client_id: m.client_id().to_string(),
                    host: m.client_host().trim_start_matches('/').to_string(),
                    assignment: if g.protocol_type() == "consumer" { m.assignment().map(decode_assignment).unwrap_or_default() } else { Vec::new() },
                })
                .collect(),
        }
    }
}

/// A consumer-protocol assignment: an i16 version, then the body. Newer
/// versions than we know are read as the newest we know (Kafka's rule:
/// fields are only ever appended).
fn decode_assignment(bytes: &[u8]) -> Vec<(String, i32)> {
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut buf, version) {
        Ok(a) => a.assigned_partitions.iter().flat_map(|tp| tp.partitions.iter().map(move |p| (tp.topic.0.to_string(), *p))).collect(),
        Err(_) => Vec::new(),
    }
}

fn group_list(conn: &ConnectArgs, group: Option<&str>) -> Result<Vec<Group>, CliError> {
    let list = conn.consumer(None)?.fetch_group_list(group, OP_TIMEOUT).map_err(|e| CliError::rdkafka("list groups", e))?;
    let mut groups: Vec<Group> = list.groups().iter().map(Group::from).collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(groups)
}

/// The group's coordinator: (node id, host:port).
fn coordinator(conn: &ConnectArgs, group: &str) -> Result<(i32, String), CliError> {
    let mut c = conn.connect()?;
    let req = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string())).with_key_type(0);
    let resp = c.request(3, &req)?;
    if resp.error_code != 0 {
        return Err(CliError::kafka(format!("find coordinator of group '{group}'"), resp.error_code));
    }
    Ok((resp.node_id.0, format!("{}:{}", resp.host, resp.port)))
}

/// Every committed offset of the group: (topic, partition) -> offset.
fn committed_offsets(coord: &str, group: &str) -> Result<BTreeMap<(String, i32), i64>, CliError> {
    let mut c = Conn::open(coord)?;
    let req = OffsetFetchRequest::default().with_group_id(StrBytes::from_string(group.to_string()).into()).with_topics(None);
    // v2+ takes a null topic list as "all topics"; v8 moves to a groups array.
    let resp = c.request(7, &req)?;
    if resp.error_code != 0 {
        return Err(CliError::kafka(format!("fetch offsets of group '{group}'"), resp.error_code));
    }
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                return Err(CliError::kafka(format!("offset of {}-{}", t.name.0, p.partition_index), p.error_code));
            }
            if p.committed_offset >= 0 {
                out.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// (low, high) watermarks of a partition.
fn watermarks(consumer: &rdkafka::consumer::BaseConsumer, topic: &str, p: i32) -> Result<(i64, i64), CliError> {
    consumer.fetch_watermarks(topic, p, OP_TIMEOUT).map_err(|e| CliError::rdkafka(format!("watermarks of {topic}-{p}"), e))
}

fn describe(conn: &ConnectArgs, format: Format, group: &str, members: bool, state: bool) -> Result<(), CliError> {
    let (coord_id, coord) = coordinator(conn, group)?;
    let g = group_list(conn, Some(group))?.into_iter().find(|g| g.name == group);
    let offsets = committed_offsets(&coord, group)?;
    let g = match g {
        Some(g) if !(g.state == "Dead" && offsets.is_empty()) => g,
        _ => return Err(CliError::kafka(format!("Consumer group '{group}' does not exist"), 69)),
    };
    if state {
        let row = json!({
            "group": g.name, "coordinator": format!("{coord} ({coord_id})"), "coordinator_id": coord_id,
            "assignment_strategy": g.protocol, "state": g.state, "members": g.members.len(),
        });
        let cols = [
            ("GROUP", "group"),
            ("COORDINATOR (ID)", "coordinator"),
            ("ASSIGNMENT-STRATEGY", "assignment_strategy"),
            ("STATE", "state"),
            ("#MEMBERS", "members"),
        ];
        print_rows(format, &cols, &[row]);
        return Ok(());
    }
    if g.members.is_empty() {
        let note = format!("\nConsumer group '{group}' has no active members.\n\n");
        match format {
            Format::Table => print_str(&note),
            Format::Json => eprint_str(&note),
        }
    }
    if members {
        let rows: Vec<Value> = g
            .members
            .iter()
            .map(|m| json!({"group": g.name, "consumer_id": m.id, "host": m.host, "client_id": m.client_id, "partitions": m.assignment.len()}))
            .collect();
        let cols = [("GROUP", "group"), ("CONSUMER-ID", "consumer_id"), ("HOST", "host"), ("CLIENT-ID", "client_id"), ("#PARTITIONS", "partitions")];
        print_rows(format, &cols, &rows);
        return Ok(());
    }
    // Partitions with a committed offset or an owner.
    let mut owner: BTreeMap<(String, i32), &Member> = BTreeMap::new();
    for m in &g.members {
        for tp in &m.assignment {
            owner.insert(tp.clone(), m);
        }
    }
    let mut tps: Vec<(String, i32)> = offsets.keys().chain(owner.keys()).cloned().collect();
    tps.sort();
    tps.dedup();
    let consumer = conn.consumer(None)?;
    let mut rows = Vec::new();
    for (topic, p) in tps {
        let (_, end) = watermarks(&consumer, &topic, p)?;
        let current = offsets.get(&(topic.clone(), p)).copied();
        let m = owner.get(&(topic.clone(), p));
        rows.push(json!({
            "group": g.name, "topic": topic, "partition": p,
            "current_offset": current, "log_end_offset": end, "lag": current.map(|c| (end - c).max(0)),
            "consumer_id": m.map(|m| &m.id), "host": m.map(|m| &m.host), "client_id": m.map(|m| &m.client_id),
        }));
    }
    let cols = [
        ("GROUP", "group"),
        ("TOPIC", "topic"),
        ("PARTITION", "partition"),
        ("CURRENT-OFFSET", "current_offset"),
        ("LOG-END-OFFSET", "log_end_offset"),
        ("LAG", "lag"),
        ("CONSUMER-ID", "consumer_id"),
        ("HOST", "host"),
        ("CLIENT-ID", "client_id"),
    ];
    print_rows(format, &cols, &rows);
    Ok(())
}

/// Milliseconds since the epoch of an ISO 8601 time; no zone = local time.
pub fn parse_datetime(s: &str) -> Result<i64, CliError> {
    use chrono::{DateTime, Local, NaiveDateTime, TimeZone};
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Ok(t.timestamp_millis());
        }
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            if let Some(t) = Local.from_local_datetime(&t).earliest() {
                return Ok(t.timestamp_millis());
            }
        }
    }
    Err(CliError::Input(format!("--to-datetime '{s}' is not ISO 8601, e.g. 2024-05-01T12:00:00Z or 2024-05-01T12:00:00.000")))
}

fn reset_offsets(conn: &ConnectArgs, format: Format, r: ResetArgs) -> Result<(), CliError> {
    let md = metadata(conn, Some(&r.topic))?;
    let mut partitions: Vec<i32> = md.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    partitions.sort();
    for p in &r.partition {
        if !partitions.contains(p) {
            return Err(CliError::kafka(format!("partition {p} of '{}'", r.topic), 3));
        }
    }
    if !r.partition.is_empty() {
        partitions = r.partition.clone();
    }
    let (_, coord) = coordinator(conn, &r.group)?;
    if r.execute {
        if let Some(g) = group_list(conn, Some(&r.group))?.into_iter().find(|g| g.name == r.group) {
            if !g.members.is_empty() {
                return Err(CliError::Input(format!(
                    "Assignments can only be reset if the group '{}' is inactive, but the current state is {}. Stop its consumers first.",
                    r.group, g.state
                )));
            }
        }
    }
    let committed = committed_offsets(&coord, &r.group)?;
    let consumer = conn.consumer(Some(&r.group))?;
    let by_time = match &r.to.to_datetime {
        Some(s) => {
            let ts = parse_datetime(s)?;
            let mut tpl = TopicPartitionList::new();
            for p in &partitions {
                tpl.add_partition_offset(&r.topic, *p, Offset::Offset(ts)).map_err(|e| CliError::rdkafka("offsets for time", e))?;
            }
            Some(consumer.offsets_for_times(tpl, OP_TIMEOUT).map_err(|e| CliError::rdkafka("offsets for time", e))?)
        }
        None => None,
    };
    let mut rows = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = watermarks(&consumer, &r.topic, p)?;
        let target = if r.to.to_earliest {
            low
        } else if r.to.to_latest {
            high
        } else if let Some(n) = r.to.to_offset {
            n
        } else if let Some(n) = r.to.shift_by {
            match committed.get(&(r.topic.clone(), p)) {
                Some(c) => c + n,
                None => return Err(CliError::Input(format!("--shift-by: group '{}' has no committed offset for {}-{p}", r.group, r.topic))),
            }
        } else {
            match by_time.as_ref().and_then(|t| t.find_partition(&r.topic, p)).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                // No record at or after the time: the end of the log.
                _ => high,
            }
        };
        let target = target.clamp(low, high);
        tpl.add_partition_offset(&r.topic, p, Offset::Offset(target)).map_err(|e| CliError::rdkafka("reset offsets", e))?;
        rows.push(json!({"group": r.group, "topic": r.topic, "partition": p, "new_offset": target}));
    }
    if r.execute {
        consumer.commit(&tpl, CommitMode::Sync).map_err(|e| CliError::rdkafka(format!("commit offsets of group '{}'", r.group), e))?;
    } else if !r.dry_run {
        eprint_line("WARN: No action will be performed as the --execute option is missing. Add --execute to commit these offsets.");
    }
    print_rows(format, &[("TOPIC", "topic"), ("PARTITION", "partition"), ("NEW-OFFSET", "new_offset")], &rows);
    Ok(())
}

fn delete_offsets(conn: &ConnectArgs, format: Format, group: &str, topic: &str, partitions: Vec<i32>) -> Result<(), CliError> {
    let (_, coord) = coordinator(conn, group)?;
    let partitions =
        if partitions.is_empty() { committed_offsets(&coord, group)?.keys().filter(|(t, _)| t == topic).map(|(_, p)| *p).collect() } else { partitions };
    if partitions.is_empty() {
        return Err(CliError::Input(format!("group '{group}' has no committed offsets for topic '{topic}'")));
    }
    let req =
        OffsetDeleteRequest::default().with_group_id(StrBytes::from_string(group.to_string()).into()).with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(StrBytes::from_string(topic.to_string()).into())
            .with_partitions(partitions.iter().map(|p| OffsetDeleteRequestPartition::default().with_partition_index(*p)).collect())]);
    let resp = Conn::open(&coord)?.request(0, &req)?;
    if resp.error_code != 0 {
        return Err(CliError::kafka(format!("delete offsets of group '{group}'"), resp.error_code));
    }
    let mut rows = Vec::new();
    let mut first_error = None;
    for t in &resp.topics {
        for p in &t.partitions {
            let status = if p.error_code == 0 { "Successful".to_string() } else { super::client::error_name(p.error_code) };
            if p.error_code != 0 && first_error.is_none() {
                first_error = Some(CliError::kafka(format!("delete offset of {}-{}", t.name.0, p.partition_index), p.error_code));
            }
            rows.push(json!({"topic": t.name.0.to_string(), "partition": p.partition_index, "status": status}));
        }
    }
    print_rows(format, &[("TOPIC", "topic"), ("PARTITION", "partition"), ("STATUS", "status")], &rows);
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
