//! `shardlog topic describe`: each partition's leader, replicas, ISR, ELR and
//! offline replicas, and kafka-topics.sh's report filters
//! (`--under-replicated-partitions`, `--under-min-isr-partitions`,
//! `--at-min-isr-partitions`, `--unavailable-partitions`).
//!
//! The partition states come from DescribeTopicPartitions (key 75) when the
//! broker advertises it — it is the only response with the eligible leader
//! replicas (KIP-966) — and from a raw Metadata request otherwise (librdkafka's
//! metadata has no offline replicas, topic ids or racks). [`fetch`] is shared
//! with the reassignment and election tools, which need the same view.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, DescribeTopicPartitionsRequest, TopicRequest};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::{ApiKey, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::ResourceSpecifier;
use serde_json::{json, Value};

use super::client::{admin_opts, block_on, CliError, Conn, ConnectArgs};
use super::output::{eprint_line, print_json, print_str, Format};

/// One partition as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// Partition index.
    pub partition: i32,
    /// Leader broker id; -1 when the partition has no leader.
    pub leader: i32,
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Eligible leader replicas (KIP-966); None when the broker did not say.
    pub elr: Option<Vec<i32>>,
    /// Last known ELR (KIP-966); None when the broker did not say.
    pub last_known_elr: Option<Vec<i32>>,
    /// Replicas whose log directory is offline.
    pub offline: Vec<i32>,
}

/// One topic's partitions, sorted by index.
#[derive(Debug, Clone)]
pub struct TopicState {
    /// Topic name.
    pub name: String,
    /// Topic id (Metadata v10+), None when the broker sent none.
    pub topic_id: Option<String>,
    /// An internal topic (`__consumer_offsets`, ...).
    pub internal: bool,
    /// Partitions by index.
    pub partitions: Vec<PartitionState>,
}

/// A broker as Metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Broker id.
    pub id: i32,
    /// Client address, HOST:PORT.
    pub addr: String,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
}

/// The cluster's brokers and the requested topics' partitions.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// Live brokers, sorted by id.
    pub brokers: Vec<BrokerInfo>,
    /// Topics, sorted by name.
    pub topics: Vec<TopicState>,
}

impl ClusterView {
    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Option<&TopicState> {
        self.topics.iter().find(|t| t.name == name)
    }
}

fn ids(v: &[BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}

/// Metadata for `topics` (all topics when empty), without auto-creation.
pub fn raw_metadata(conn: &mut Conn, topics: &[String]) -> Result<MetadataResponse, CliError> {
    let v = conn.version_for::<MetadataRequest>(12)?;
    let req_topics = if topics.is_empty() {
        // v0 reads an empty list as "all topics"; from v1 on, null is all.
        if v == 0 {
            Some(Vec::new())
        } else {
            None
        }
    } else {
        Some(topics.iter().map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.clone()))))).collect())
    };
    conn.roundtrip(v, &MetadataRequest::default().with_topics(req_topics).with_allow_auto_topic_creation(false))
}

/// Brokers and partition states of `topics` (all when empty). A named topic
/// the cluster does not know is an error (UNKNOWN_TOPIC_OR_PARTITION).
pub fn fetch(conn: &ConnectArgs, topics: &[String]) -> Result<ClusterView, CliError> {
    let mut c = conn.connect()?;
    let md = raw_metadata(&mut c, topics)?;
    let mut brokers: Vec<BrokerInfo> = md
        .brokers
        .iter()
        .map(|b| BrokerInfo { id: b.node_id.0, addr: format!("{}:{}", b.host, b.port), rack: b.rack.as_ref().map(|r| r.to_string()) })
        .collect();
    brokers.sort_by_key(|b| b.id);
    let mut out = Vec::new();
    for t in &md.topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        if t.error_code != 0 {
            if topics.is_empty() {
                continue;
            }
            return Err(CliError::kafka(format!("topic '{name}'"), t.error_code));
        }
        let topic_id = (!t.topic_id.is_nil()).then(|| t.topic_id.to_string());
        let mut partitions: Vec<PartitionState> = t
            .partitions
            .iter()
            .map(|p| PartitionState {
                partition: p.partition_index,
                leader: p.leader_id.0,
                replicas: ids(&p.replica_nodes),
                isr: ids(&p.isr_nodes),
                elr: None,
                last_known_elr: None,
                offline: ids(&p.offline_replicas),
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        out.push(TopicState { name, topic_id, internal: t.is_internal, partitions });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if c.api_versions().iter().any(|(k, _, _)| *k == ApiKey::DescribeTopicPartitions as i16) && !out.is_empty() {
        let names: Vec<String> = out.iter().map(|t| t.name.clone()).collect();
        let detailed = describe_topic_partitions(&mut c, &names)?;
        for t in &mut out {
            if let Some(ps) = detailed.get(&t.name) {
                t.partitions = ps.clone();
            }
        }
    }
    Ok(ClusterView { brokers, topics: out })
}

/// DescribeTopicPartitions (KIP-966) of `names`, following the cursor until
/// the broker has sent every partition: topic -> partitions sorted by index.
fn describe_topic_partitions(c: &mut Conn, names: &[String]) -> Result<BTreeMap<String, Vec<PartitionState>>, CliError> {
    let mut out: BTreeMap<String, Vec<PartitionState>> = BTreeMap::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let req = DescribeTopicPartitionsRequest::default()
            .with_topics(names.iter().map(|n| TopicRequest::default().with_name(TopicName(StrBytes::from_string(n.clone())))).collect())
            .with_response_partition_limit(2000)
            .with_cursor(cursor.take());
        let resp = c.request(0, &req)?;
        for t in &resp.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            if t.error_code != 0 {
                return Err(CliError::kafka(format!("describe partitions of '{name}'"), t.error_code));
            }
            let parts = out.entry(name).or_default();
            parts.extend(t.partitions.iter().map(|p| PartitionState {
                partition: p.partition_index,
                leader: p.leader_id.0,
                replicas: ids(&p.replica_nodes),
                isr: ids(&p.isr_nodes),
                elr: p.eligible_leader_replicas.as_deref().map(ids),
                last_known_elr: p.last_known_elr.as_deref().map(ids),
                offline: ids(&p.offline_replicas),
            }));
        }
        match resp.next_cursor {
            Some(next) => {
                cursor = Some(Cursor::default().with_topic_name(next.topic_name).with_partition_index(next.partition_index));
            }
            None => break,
        }
    }
    for ps in out.values_mut() {
        ps.sort_by_key(|p| p.partition);
        ps.dedup_by_key(|p| p.partition);
    }
    Ok(out)
}

/// kafka-topics.sh's report options: which partitions to list. None set
/// lists every partition with each topic's summary line; any set lists only
/// the partitions that match one of them, without summary lines (as Kafka).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ReportFilter {
    /// Only partitions whose ISR is smaller than their replica set.
    #[arg(long)]
    pub under_replicated_partitions: bool,
    /// Only partitions whose ISR is smaller than the topic's min.insync.replicas (or without a leader).
    #[arg(long)]
    pub under_min_isr_partitions: bool,
    /// Only partitions whose ISR size equals the topic's min.insync.replicas.
    #[arg(long)]
    pub at_min_isr_partitions: bool,
    /// Only partitions without a leader, or whose leader is not a live broker.
    #[arg(long)]
    pub unavailable_partitions: bool,
}

impl ReportFilter {
    /// Whether any report option is set.
    pub fn any(&self) -> bool {
        self.under_replicated_partitions || self.under_min_isr_partitions || self.at_min_isr_partitions || self.unavailable_partitions
    }

    /// Whether `p` is listed. `min_isr` is the topic's min.insync.replicas
    /// (None when unknown: the min-ISR reports then match only leaderless
    /// partitions, as Kafka's); `live` the live broker ids.
    pub fn matches(&self, p: &PartitionState, min_isr: Option<usize>, live: &[i32]) -> bool {
        if !self.any() {
            return true;
        }
        let has_leader = p.leader >= 0;
        let unavailable = !has_leader || !live.contains(&p.leader);
        (self.under_replicated_partitions && p.isr.len() < p.replicas.len())
            || (self.under_min_isr_partitions && (!has_leader || min_isr.is_some_and(|m| p.isr.len() < m)))
            || (self.at_min_isr_partitions && min_isr.is_some_and(|m| p.isr.len() == m))
            || (self.unavailable_partitions && unavailable)
    }
}

/// What DescribeConfigs says of a topic: the configs it overrides, and its
/// effective min.insync.replicas.
struct TopicConfigs {
    overrides: Vec<(String, String)>,
    min_isr: Option<usize>,
}

/// DescribeConfigs of one topic, or None (with a warning) when the broker
/// cannot describe configs.
fn topic_configs(conn: &ConnectArgs, topic: &str) -> Option<TopicConfigs> {
    let spec = ResourceSpecifier::Topic(topic);
    let res = conn.admin().and_then(|a| block_on(a.describe_configs([&spec], &admin_opts())).map_err(|e| CliError::rdkafka("describe configs", e)));
    let first = res.and_then(|mut v| match v.pop() {
        Some(Ok(r)) => Ok(r),
        Some(Err(code)) => Err(CliError::rd_code(format!("describe configs of '{topic}'"), code)),
        None => Err(CliError::Input("empty DescribeConfigs answer".into())),
    });
    match first {
        Ok(r) => {
            let min_isr = r.entries.iter().find(|e| e.name == "min.insync.replicas").and_then(|e| e.value.as_deref()).and_then(|v| v.trim().parse().ok());
            let overrides = r
                .entries
                .into_iter()
                .filter(|e| !e.is_default && e.source == rdkafka::admin::ConfigSource::DynamicTopic)
                .map(|e| (e.name, if e.is_sensitive { "<sensitive>".into() } else { e.value.unwrap_or_default() }))
                .collect();
            Some(TopicConfigs { overrides, min_isr })
        }
        Err(e) => {
            eprint_line(&format!("warning: configs of '{topic}' not shown: {e}"));
            None
        }
    }
}

/// One partition as a JSON row (the same keys in every listing).
pub fn partition_json(p: &PartitionState) -> Value {
    json!({"partition": p.partition, "leader": p.leader, "replicas": p.replicas, "isr": p.isr,
           "elr": p.elr, "last_known_elr": p.last_known_elr, "offline_replicas": p.offline})
}

/// Runs `shardlog topic describe`: all topics, or the named ones.
pub fn run(conn: &ConnectArgs, format: Format, names: &[String], filter: &ReportFilter) -> Result<(), CliError> {
    let view = fetch(conn, names)?;
    let live: Vec<i32> = view.brokers.iter().map(|b| b.id).collect();
    let mut docs = Vec::new();
    for t in &view.topics {
        let rf = t.partitions.iter().map(|p| p.replicas.len()).max().unwrap_or(0);
        let configs = topic_configs(conn, &t.name);
        let min_isr = configs.as_ref().and_then(|c| c.min_isr);
        let partitions: Vec<Value> = t.partitions.iter().filter(|p| filter.matches(p, min_isr, &live)).map(partition_json).collect();
        if filter.any() && partitions.is_empty() {
            continue;
        }
        docs.push(json!({
            "name": t.name,
            "topic_id": t.topic_id,
            "partition_count": t.partitions.len(),
            "replication_factor": rf,
            "min_insync_replicas": min_isr,
            "configs": configs.map(|c| Value::Object(c.overrides.into_iter().map(|(k, v)| (k, Value::String(v))).collect())),
            "partitions": partitions,
        }));
    }
    match format {
        Format::Json => print_json(&Value::Array(docs)),
        Format::Table => print_str(&kafka_describe_text(&docs, !filter.any())),
    }
    Ok(())
}

/// kafka-topics.sh --describe's layout: a summary line per topic (left out
/// when a report filter is set, as Kafka does), then one tab-separated line
/// per partition; `Elr`/`LastKnownElr` only when the broker reported them,
/// `Offline` only when a replica is offline.
pub fn kafka_describe_text(docs: &[Value], summaries: bool) -> String {
    let ids = |v: &Value| v.as_array().map(|a| a.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")).unwrap_or_default();
    let mut out = String::new();
    for d in docs {
        let name = d["name"].as_str().unwrap_or("");
        if summaries {
            let configs = match d["configs"].as_object() {
                Some(m) => m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(","),
                None => "(not available)".into(),
            };
            out.push_str(&format!(
                "Topic: {name}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {configs}\n",
                d["partition_count"], d["replication_factor"]
            ));
        }
        for p in d["partitions"].as_array().into_iter().flatten() {
            let leader = match p["leader"].as_i64() {
                Some(l) if l >= 0 => l.to_string(),
                _ => "none".into(),
            };
            out.push_str(&format!(
                "\tTopic: {name}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}",
                p["partition"],
                ids(&p["replicas"]),
                ids(&p["isr"])
            ));
            if !p["elr"].is_null() {
                out.push_str(&format!("\tElr: {}", ids(&p["elr"])));
            }
            if !p["last_known_elr"].is_null() {
                out.push_str(&format!("\tLastKnownElr: {}", ids(&p["last_known_elr"])));
            }
            if p["offline_replicas"].as_array().is_some_and(|a| !a.is_empty()) {
                out.push_str(&format!("\tOffline: {}", ids(&p["offline_replicas"])));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(leader: i32, replicas: &[i32], isr: &[i32]) -> PartitionState {
        PartitionState { partition: 0, leader, replicas: replicas.to_vec(), isr: isr.to_vec(), elr: None, last_known_elr: None, offline: vec![] }
    }

    #[test]
    fn filters_follow_kafka_topics() {
        let live = [1, 2, 3];
        let healthy = part(1, &[1, 2, 3], &[1, 2, 3]);
        let under = part(1, &[1, 2, 3], &[1, 2]);
        let at_one = part(1, &[1, 2, 3], &[1]);
        let leaderless = part(-1, &[1, 2, 3], &[]);
        let dead_leader = part(4, &[4, 2, 3], &[4]);
        let none = ReportFilter::default();
        assert!(none.matches(&healthy, Some(2), &live));
        let ur = ReportFilter { under_replicated_partitions: true, ..Default::default() };
        assert!(!ur.matches(&healthy, Some(2), &live));
        assert!(ur.matches(&under, Some(2), &live));
        let umi = ReportFilter { under_min_isr_partitions: true, ..Default::default() };
        assert!(!umi.matches(&under, Some(2), &live));
        assert!(umi.matches(&at_one, Some(2), &live));
        assert!(umi.matches(&leaderless, None, &live));
        assert!(!umi.matches(&at_one, None, &live));
        let ami = ReportFilter { at_min_isr_partitions: true, ..Default::default() };
        assert!(ami.matches(&under, Some(2), &live));
        assert!(!ami.matches(&healthy, Some(2), &live));
        let un = ReportFilter { unavailable_partitions: true, ..Default::default() };
        assert!(un.matches(&leaderless, Some(2), &live));
        assert!(un.matches(&dead_leader, Some(2), &live));
        assert!(!un.matches(&under, Some(2), &live));
    }

    #[test]
    fn text_layout_is_kafkas() {
        let mut p = part(-1, &[1, 2], &[2]);
        p.offline = vec![1];
        p.elr = Some(vec![]);
        let docs = vec![json!({"name": "t", "partition_count": 1, "replication_factor": 2, "configs": {}, "partitions": [partition_json(&p)]})];
        assert_eq!(
            kafka_describe_text(&docs, true),
            "Topic: t\tPartitionCount: 1\tReplicationFactor: 2\tConfigs: \n\tTopic: t\tPartition: 0\tLeader: none\tReplicas: 1,2\tIsr: 2\tElr: \tOffline: 1\n"
        );
        assert!(kafka_describe_text(&docs, false).starts_with("\tTopic: t\tPartition: 0"));
    }
}
