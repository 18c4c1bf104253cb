//! Harness for cluster-mode tests: a KRaft-style cluster of real `shardlog`
//! processes on 127.0.0.1, every node combined (`process.roles=broker,controller`,
//! [`Cluster::start`]) or controller-only voters beside broker-only nodes
//! ([`Cluster::start_roles`]), one shard each, spread over cores 0 and 1.
//!
//! - [`Cluster::start`] picks free ports, formats every node's data directory
//!   (`shardlog storage format`), starts all nodes at once, waits for each one's
//!   `shardlog listening on ADDR` line and then until every node's Metadata
//!   lists every broker;
//! - a node can be stopped (SIGTERM, must exit 0), killed (SIGKILL) and started
//!   again on its directory and ports;
//! - raw requests ([`raw_call`]) never panic, so tests can poll a node that is
//!   down or not yet ready with [`wait_until`].
//!
//! Every step is printed with the seconds since the cluster started; when a test
//! panics, the tail of every node's output is printed.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreateTopicsRequest, DescribeQuorumRequest, FindCoordinatorRequest, IncrementalAlterConfigsRequest, MetadataRequest, MetadataResponse, RequestHeader,
    TopicName,
};
use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, HeaderVersion, Request};

use crate::common::{broker_bin, by_partition, consume_all, parse_response_header, producer_config, sb, Rec};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// How long a node may take to print its listening line.
pub const NODE_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after all nodes listen every Metadata must list every broker.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd node may take to exit.
pub const NODE_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Read timeout of one raw request.
pub const RAW_TIMEOUT: Duration = Duration::from_secs(10);

/// The test timings every node starts with (Kafka's defaults are 9 s / 2 s).
pub const SESSION_TIMEOUT_MS: u64 = 3000;
pub const HEARTBEAT_INTERVAL_MS: u64 = 500;
pub const ELECTION_TIMEOUT_MS: u64 = 1000;

/// How long one cluster operation (a topic's leaders, a restart) may take.
pub const OP: Duration = Duration::from_secs(30);
/// How often [`wait_until`] loops poll.
pub const POLL: Duration = Duration::from_millis(100);

/// Kafka's error codes the tests look for.
pub const NONE: i16 = 0;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;

const LISTENING_PREFIX: &str = "shardlog listening on ";
/// A controller-only node's line (it has no client listener).
const CONTROLLER_LISTENING_PREFIX: &str = "shardlog controller listening on ";
/// The admin listener's line (every node runs one on an ephemeral port).
const ADMIN_LISTENING_PREFIX: &str = "shardlog admin listening on ";

/// What a node runs (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `broker,controller`: a voter that serves clients.
    Combined,
    /// `controller`: a voter without a client listener.
    Controller,
    /// `broker`: serves clients, not a voter.
    Broker,
}

impl Role {
    fn roles(self) -> &'static str {
        match self {
            Role::Combined => "broker,controller",
            Role::Controller => "controller",
            Role::Broker => "broker",
        }
    }

    pub fn is_broker(self) -> bool {
        self != Role::Controller
    }

    pub fn is_voter(self) -> bool {
        self != Role::Broker
    }
}
/// Lines of each node's output printed when a test fails.
const TAIL_LINES: usize = 300;

/// One cluster per test binary at a time: the machine has 2 cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// Lowest port [`free_ports`] and [`free_port_run`] hand out.
const RESERVED_PORTS_FROM: u16 = 10_000;

/// The kernel's lowest ephemeral port (`ip_local_port_range`).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32_768)
}

/// The next port to probe, walking `RESERVED_PORTS_FROM..ephemeral_low()`
/// from a per-process starting point, so concurrent test processes rarely
/// probe the same ports.
fn next_candidate() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(ephemeral_low().saturating_sub(RESERVED_PORTS_FROM)).max(1);
    let _ = NEXT.compare_exchange(u32::MAX, std::process::id().wrapping_mul(7_919) % span, Ordering::SeqCst, Ordering::SeqCst);
    RESERVED_PORTS_FROM + (NEXT.fetch_add(1, Ordering::SeqCst) % span) as u16
}

/// Free TCP ports on 127.0.0.1 (all bound at once, so they differ), taken
/// **below the kernel's ephemeral range**.
///
/// A port from the ephemeral range is free only until the node binds it: any
/// socket bound to port 0 meanwhile (another node's admin listener, the source
/// port of a peer or client connection) may be given it, and the node exits at
/// start with "address in use" (CI saw a broker do so). Below the range, the
/// kernel never hands a port out by itself. A probe that fails to bind is
/// skipped.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut ls: Vec<TcpListener> = Vec::with_capacity(n);
    for _ in 0..ephemeral_low() {
        if ls.len() == n {
            break;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", next_candidate())) {
            ls.push(l);
        }
    }
    assert_eq!(ls.len(), n, "{n} free ports below the ephemeral range");
    ls.iter().map(|l| l.local_addr().expect("local addr").port()).collect()
}

/// The first of `n` consecutive free ports below the ephemeral range (bound
/// all at once, then released), for tools that number ports from a base.
pub fn free_port_run(n: usize) -> u16 {
    for _ in 0..200 {
        let first = next_candidate();
        if usize::from(first) + n > usize::from(ephemeral_low()) {
            continue;
        }
        let all: Result<Vec<TcpListener>, _> = (0..n as u16).map(|k| TcpListener::bind(("127.0.0.1", first + k))).collect();
        if all.is_ok() {
            (1..n).for_each(|_| {
                next_candidate();
            });
            return first;
        }
    }
    panic!("no run of {n} free ports below the ephemeral range");
}

/// Runs `shardlog ARGS` to completion.
pub fn shardlog(args: &[String]) -> Output {
    Command::new(broker_bin()).args(args).stdin(Stdio::null()).output().expect("run shardlog")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Polls `f` every `every` until it gives `Some` or `timeout` passes; then
/// panics with `what` and the last value `last` described.
pub fn wait_until<T>(what: &str, timeout: Duration, every: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    let mut last;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {:.1}s waiting for {what}; last: {last}", start.elapsed().as_secs_f64());
        }
        std::thread::sleep(every);
    }
}

/// Java's `String.hashCode` (UTF-16 code units), for Kafka's partition-for-key rules.
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The `__consumer_offsets` partition of `group`: Kafka's `Utils.abs(hashCode) % partitions`.
pub fn offsets_partition(group: &str, partitions: i32) -> i32 {
    let h = java_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions
}

// ---------------------------------------------------------------------------
// Raw requests that report failures instead of panicking
// ---------------------------------------------------------------------------

/// One request on a fresh connection to `addr`: the decoded response, or why not.
pub fn raw_call<R: Request>(addr: &str, version: i16, req: &R, timeout: Duration) -> Result<R::Response, String> {
    let sa: SocketAddr = addr.parse().map_err(|e| format!("bad address {addr}: {e}"))?;
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(2)).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_nodelay(true).ok();
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut header = RequestHeader::default();
    header.request_api_key = R::KEY;
    header.request_api_version = version;
    header.correlation_id = 7;
    header.client_id = Some(sb("shardlog-cluster-it"));
    let mut body = BytesMut::new();
    encode_request_header_into_buffer(&mut body, &header).map_err(|e| format!("encode header: {e}"))?;
    req.encode(&mut body, version).map_err(|e| format!("encode request: {e}"))?;
    let mut frame = BytesMut::with_capacity(4 + body.len());
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    s.write_all(&frame).map_err(|e| format!("write to {addr}: {e}"))?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).map_err(|e| format!("read from {addr} (api key {}): {e}", R::KEY))?;
    let len = i32::from_be_bytes(len);
    if !(4..=64 * 1024 * 1024).contains(&len) {
        return Err(format!("implausible response size {len} from {addr}"));
    }
    let mut buf = vec![0u8; len as usize];
    s.read_exact(&mut buf).map_err(|e| format!("read from {addr}: {e}"))?;
    let mut buf = Bytes::from(buf);
    let corr = parse_response_header(&mut buf, R::Response::header_version(version));
    if corr != 7 {
        return Err(format!("correlation id {corr} from {addr}"));
    }
    let resp = R::Response::decode(&mut buf, version).map_err(|e| format!("decode response from {addr}: {e}"))?;
    if buf.has_remaining() {
        return Err(format!("{} bytes left after the response from {addr}", buf.remaining()));
    }
    Ok(resp)
}

/// Metadata v12 from `addr`: all topics (None) or the named ones, no auto-creation.
pub fn metadata(addr: &str, topics: Option<&[&str]>) -> Result<MetadataResponse, String> {
    let topics = topics.map(|ts| ts.iter().map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(sb(t))))).collect());
    raw_call(addr, 12, &MetadataRequest::default().with_topics(topics).with_allow_auto_topic_creation(false), RAW_TIMEOUT)
}

/// Broker ids a Metadata response lists, sorted.
pub fn broker_ids(md: &MetadataResponse) -> Vec<i32> {
    let mut v: Vec<i32> = md.brokers.iter().map(|b| b.node_id.0).collect();
    v.sort();
    v
}

/// One topic's partitions from a Metadata response: partition -> (error code, leader id).
pub fn partition_leaders(md: &MetadataResponse, topic: &str) -> Result<BTreeMap<i32, (i16, i32)>, String> {
    let t = md.topics.iter().find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic)).ok_or_else(|| format!("topic {topic} not in Metadata"))?;
    if t.error_code != NONE {
        return Err(format!("topic {topic}: error code {}", t.error_code));
    }
    Ok(t.partitions.iter().map(|p| (p.partition_index, (p.error_code, p.leader_id.0))).collect())
}

/// CreateTopics v7 of one topic (replication factor 1, the given configs): (error code, message).
pub fn create_topic_raw(addr: &str, name: &str, partitions: i32, configs: &[(&str, &str)], timeout: Duration) -> Result<(i16, String), String> {
    create_topic_rf(addr, name, partitions, 1, configs, timeout)
}

/// CreateTopics v7 of one topic with `replication_factor` replicas per partition
/// and the given configs: (error code, message).
pub fn create_topic_rf(
    addr: &str,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(&str, &str)],
    timeout: Duration,
) -> Result<(i16, String), String> {
    let topic = CreatableTopic::default()
        .with_name(TopicName(sb(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
        .with_configs(configs.iter().map(|(k, v)| CreatableTopicConfig::default().with_name(sb(k)).with_value(Some(sb(v)))).collect());
    let req = CreateTopicsRequest::default().with_timeout_ms(timeout.as_millis() as i32).with_topics(vec![topic]);
    let resp = raw_call(addr, 7, &req, timeout + Duration::from_secs(5))?;
    let t = resp.topics.first().ok_or("CreateTopics answered no topic")?;
    Ok((t.error_code, t.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default()))
}

/// IncrementalAlterConfigs v1 SET of one topic config (Kafka's legacy
/// AlterConfigs, rdkafka's `alter_configs`, would replace every override): (error code, message).
pub fn set_topic_config(addr: &str, topic: &str, key: &str, value: &str) -> Result<(i16, String), String> {
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(sb(topic))
        .with_configs(vec![AlterableConfig::default().with_name(sb(key)).with_config_operation(0).with_value(Some(sb(value)))])]);
    let resp = raw_call(addr, 1, &req, RAW_TIMEOUT)?;
    let r = resp.responses.first().ok_or("IncrementalAlterConfigs answered no resource")?;
    Ok((r.error_code, r.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default()))
}

/// FindCoordinator v3 of a group: (error code, coordinator node id).
pub fn find_group_coordinator(addr: &str, group: &str) -> Result<(i16, i32), String> {
    let resp = raw_call(addr, 3, &FindCoordinatorRequest::default().with_key(sb(group)).with_key_type(0), RAW_TIMEOUT)?;
    Ok((resp.error_code, resp.node_id.0))
}

/// DescribeQuorum (v1) of `__cluster_metadata` partition 0: (error code, leader id, leader epoch).
pub fn describe_quorum(addr: &str) -> Result<(i16, i32, i32), String> {
    let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(sb("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let resp = raw_call(addr, 1, &req, RAW_TIMEOUT)?;
    if resp.error_code != NONE {
        return Ok((resp.error_code, -1, -1));
    }
    let p = resp.topics.first().and_then(|t| t.partitions.first()).ok_or("DescribeQuorum answered no partition")?;
    Ok((p.error_code, p.leader_id.0, p.leader_epoch))
}

// ---------------------------------------------------------------------------
// Topics and records through the brokers
// ---------------------------------------------------------------------------

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime").block_on(f)
}

/// Waits until every node in `from` answers Metadata for `topic` with
/// `partitions` partitions, each without error and with a leader, all nodes
/// agreeing: partition -> leader.
pub fn wait_leaders(c: &Cluster, topic: &str, partitions: i32, from: &[i32], timeout: Duration) -> BTreeMap<i32, i32> {
    let t0 = Instant::now();
    let addrs: Vec<(i32, String)> = from.iter().map(|&id| (id, c.bootstrap(id))).collect();
    let leaders = wait_until(&format!("leaders of {topic} on nodes {from:?}"), timeout, POLL, || {
        let mut agreed: Option<BTreeMap<i32, i32>> = None;
        for (id, addr) in &addrs {
            let md = metadata(addr, Some(&[topic]))?;
            let ps = partition_leaders(&md, topic).map_err(|e| format!("node {id}: {e}"))?;
            if ps.len() != partitions as usize {
                return Err(format!("node {id}: {} partitions", ps.len()));
            }
            if let Some((p, e)) = ps.iter().find(|(_, (err, leader))| *err != NONE || *leader < 0) {
                return Err(format!("node {id}: partition {p} (error, leader) {e:?}"));
            }
            let m: BTreeMap<i32, i32> = ps.into_iter().map(|(p, (_, l))| (p, l)).collect();
            match &agreed {
                Some(a) if *a != m => return Err(format!("nodes disagree: {a:?} vs node {id} {m:?}")),
                _ => agreed = Some(m),
            }
        }
        Ok(agreed.unwrap_or_default())
    });
    c.step(&format!("{topic}: leaders {leaders:?} ({:.2}s)", t0.elapsed().as_secs_f64()));
    leaders
}

/// How many partitions each broker leads.
pub fn leader_counts(leaders: &BTreeMap<i32, i32>) -> BTreeMap<i32, usize> {
    let mut m = BTreeMap::new();
    for l in leaders.values() {
        *m.entry(*l).or_insert(0) += 1;
    }
    m
}

/// Creates `topic` through node `via` (raw CreateTopics v7), asserting success.
pub fn create(c: &Cluster, via: i32, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let t0 = Instant::now();
    let r = create_topic_raw(&c.bootstrap(via), topic, partitions, configs, OP).unwrap_or_else(|e| panic!("CreateTopics {topic} via node {via}: {e}"));
    assert_eq!(r.0, NONE, "CreateTopics {topic} via node {via}: {r:?}");
    // Answered once the receiving broker has applied it: its Metadata has the topic at once.
    let md = metadata(&c.bootstrap(via), Some(&[topic])).expect("Metadata right after CreateTopics");
    let parts = partition_leaders(&md, topic).unwrap_or_else(|e| panic!("node {via} right after creating {topic}: {e}"));
    assert_eq!(parts.len(), partitions as usize, "node {via} right after creating {topic}: {parts:?}");
    c.step(&format!("created {topic} ({partitions} partitions) through node {via} in {:.3}s", t0.elapsed().as_secs_f64()));
}

/// The value of record `i` of partition `p`.
pub fn value(p: i32, i: usize) -> String {
    format!("v-p{p}-{i:05}")
}

/// Produces `per` records to each partition `0..partitions` (acks=all)
/// through `bootstrap`; asserts every one is acknowledged at offsets 0..per.
pub fn produce(c: &Cluster, bootstrap: &str, topic: &str, partitions: i32, per: usize) {
    produce_range(c, bootstrap, topic, partitions, 0..per)
}

/// Produces records `range` (their values and offsets) to each partition
/// `0..partitions` through `bootstrap`; asserts each is acknowledged at its offset.
pub fn produce_range(c: &Cluster, bootstrap: &str, topic: &str, partitions: i32, range: std::ops::Range<usize>) {
    let t0 = Instant::now();
    let p: FutureProducer = producer_config(bootstrap).set("linger.ms", "5").set("max.in.flight.requests.per.connection", "1").create().expect("producer");
    let mut futs = Vec::new();
    for i in range.clone() {
        for part in 0..partitions {
            let (k, v) = (format!("k{i}"), value(part, i));
            futs.push(p.send_result(FutureRecord::to(topic).partition(part).key(&k).payload(&v)).map_err(|(e, _)| e).expect("enqueue a record"));
        }
    }
    let acks = block_on(async {
        let mut out = Vec::new();
        for f in futs {
            out.push(f.await.expect("delivery report"));
        }
        out
    });
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for (n, a) in acks.into_iter().enumerate() {
        let d = a.unwrap_or_else(|(e, _)| panic!("record {n} of {topic} not acknowledged: {e}"));
        let want = next.entry(d.partition).or_insert(range.start as i64);
        assert_eq!(d.offset, *want, "partition {} of {topic}: acknowledged offsets out of order", d.partition);
        *want += 1;
    }
    assert_eq!(next.len(), partitions as usize, "{next:?}");
    c.step(&format!("produced records {range:?} to each of {partitions} partitions of {topic} through {bootstrap} in {:.2}s", t0.elapsed().as_secs_f64()));
}

/// Consumes `topic` from the beginning through `bootstrap` and asserts that
/// every partition holds exactly the records `produce` wrote, in order.
pub fn assert_all_records(c: &Cluster, bootstrap: &str, topic: &str, partitions: i32, per: usize) {
    let t0 = Instant::now();
    let total = partitions as usize * per;
    let recs: Vec<Rec> = consume_all(bootstrap, topic, partitions, total, Duration::from_secs(60));
    let parts = by_partition(&recs);
    for p in 0..partitions {
        let got = parts.get(&p).map(|v| v.as_slice()).unwrap_or(&[]);
        let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
        let want_offsets: Vec<i64> = (0..per as i64).collect();
        assert_eq!(offsets, want_offsets, "partition {p} of {topic} through {bootstrap}: offsets");
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.value.as_deref(), Some(value(p, i).as_bytes()), "partition {p} offset {i} of {topic}");
        }
    }
    assert_eq!(recs.len(), total, "more records than produced");
    c.step(&format!("consumed all {total} records of {topic} through {bootstrap}, in order, in {:.2}s", t0.elapsed().as_secs_f64()));
}

// Nodes
// ---------------------------------------------------------------------------

/// One `shardlog` node of a [`Cluster`].
pub struct Node {
    pub id: i32,
    pub role: Role,
    /// PLAINTEXT (client) port.
    pub port: u16,
    /// CONTROLLER (quorum) port.
    pub ctrl_port: u16,
    pub dir: PathBuf,
    core: usize,
    child: Option<Child>,
    readers: Vec<JoinHandle<()>>,
    output: Arc<Mutex<String>>,
    /// The last generation that printed its listening line.
    listening: Arc<(Mutex<u32>, Condvar)>,
    generation: u32,
    /// SIGSTOPped by [`Cluster::pause`] and not yet resumed.
    paused: bool,
    /// The admin listener's URL, from the current generation's stdout.
    admin: Arc<Mutex<Option<String>>>,
}

impl Node {
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The admin listener's `http://127.0.0.1:PORT` of the current generation.
    pub fn admin_url(&self) -> String {
        self.admin.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_else(|| panic!("node {} printed no admin listener line", self.id))
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn note(&self, line: &str) {
        self.output.lock().unwrap_or_else(|e| e.into_inner()).push_str(&format!("[harness] {line}\n"));
    }

    fn join_readers(&mut self) {
        for h in self.readers.drain(..) {
            let _ = h.join();
        }
    }

    fn wait_child(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(st)) => {
                    self.child = None;
                    return Some(st);
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => return None,
            }
        }
    }

    fn kill_child(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.paused = false;
        self.join_readers();
    }

    fn tail(&self) -> String {
        let out = self.output();
        let lines: Vec<&str> = out.lines().collect();
        let from = lines.len().saturating_sub(TAIL_LINES);
        format!(
            "----- node {} (ports {}/{}, dir {}): last {} of {} lines -----\n{}\n----- end of node {} -----",
            self.id,
            self.port,
            self.ctrl_port,
            self.dir.display(),
            lines.len() - from,
            lines.len(),
            lines[from..].join("\n"),
            self.id
        )
    }
}

/// A running cluster of combined nodes, ids 1..=n.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub cluster_id: String,
    voters: String,
    extra: Vec<(String, String)>,
    started: Instant,
    // Dropped after the nodes are killed (field order does not matter: Drop kills them first).
    tmp: tempfile::TempDir,
    _serial: MutexGuard<'static, ()>,
}

impl Cluster {
    /// Formats and starts `n` nodes with the test timings plus `extra`
    /// (`--set` pairs for every node), and waits until the cluster formed.
    pub fn start(n: usize, extra: &[(&str, &str)]) -> Cluster {
        Cluster::start_with(&vec![Role::Combined; n], extra)
    }

    /// `controllers` controller-only voters (ids 1..) and `brokers` broker-only
    /// nodes (the next ids), started as [`Cluster::start`] does.
    pub fn start_roles(controllers: usize, brokers: usize, extra: &[(&str, &str)]) -> Cluster {
        let mut roles = vec![Role::Controller; controllers];
        roles.extend(vec![Role::Broker; brokers]);
        Cluster::start_with(&roles, extra)
    }

    /// Node `i + 1` runs `roles[i]`.
    pub fn start_with(roles: &[Role], extra: &[(&str, &str)]) -> Cluster {
        let n = roles.len();
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let tmp = tempfile::Builder::new().prefix("shardlog-cluster-it-").tempdir().expect("temp dir");
        let ports = free_ports(2 * n);
        let out = shardlog(&["storage".into(), "random-uuid".into()]);
        assert!(out.status.success(), "shardlog storage random-uuid failed: {}", text(&out.stderr));
        let cluster_id = text(&out.stdout).trim().to_string();
        let voters = (0..n).filter(|&i| roles[i].is_voter()).map(|i| format!("{}@127.0.0.1:{}", i + 1, ports[2 * i + 1])).collect::<Vec<_>>().join(",");
        let nodes = (0..n)
            .map(|i| Node {
                id: i as i32 + 1,
                role: roles[i],
                port: ports[2 * i],
                ctrl_port: ports[2 * i + 1],
                dir: tmp.path().join(format!("node{}", i + 1)),
                core: i % 2,
                child: None,
                readers: Vec::new(),
                output: Arc::new(Mutex::new(String::new())),
                listening: Arc::new((Mutex::new(0), Condvar::new())),
                admin: Arc::new(Mutex::new(None)),
                generation: 0,
                paused: false,
            })
            .collect();
        let mut c =
            Cluster { nodes, cluster_id, voters, extra: extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), started, tmp, _serial: serial };
        c.step(&format!(
            "cluster id {}, voters {}, roles {:?}, client ports {:?}",
            c.cluster_id,
            c.voters,
            c.nodes.iter().map(|n| (n.id, n.role)).collect::<Vec<_>>(),
            c.nodes.iter().map(|n| n.port).collect::<Vec<_>>()
        ));
        for i in 0..n {
            c.format(i);
        }
        c.start_all();
        c
    }

    /// Prints `msg` with the seconds since the cluster started.
    pub fn step(&self, msg: &str) {
        eprintln!("[cluster +{:7.3}s] {msg}", self.started.elapsed().as_secs_f64());
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Index of node `id` in `nodes`.
    pub fn idx(&self, id: i32) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn node(&self, id: i32) -> &Node {
        &self.nodes[self.idx(id)]
    }

    pub fn bootstrap(&self, id: i32) -> String {
        self.node(id).bootstrap()
    }

    /// Every broker's client address, comma-separated.
    pub fn bootstrap_all(&self) -> String {
        self.nodes.iter().filter(|n| n.role.is_broker()).map(|n| n.bootstrap()).collect::<Vec<_>>().join(",")
    }

    /// Ids of the nodes whose process runs.
    pub fn running(&mut self) -> Vec<i32> {
        self.nodes.iter_mut().filter_map(|n| n.is_running().then_some(n.id)).collect()
    }

    /// Ids of the brokers (combined or broker-only nodes).
    pub fn broker_ids(&self) -> Vec<i32> {
        self.nodes.iter().filter(|n| n.role.is_broker()).map(|n| n.id).collect()
    }

    /// Ids of the voters (combined or controller-only nodes).
    pub fn voter_ids(&self) -> Vec<i32> {
        self.nodes.iter().filter(|n| n.role.is_voter()).map(|n| n.id).collect()
    }

    /// Ids of the brokers whose process runs.
    pub fn running_brokers(&mut self) -> Vec<i32> {
        self.nodes.iter_mut().filter_map(|n| (n.role.is_broker() && n.is_running()).then_some(n.id)).collect()
    }

    /// The `--set` pairs that describe node `i` (format and start).
    fn node_sets(&self, i: usize) -> Vec<String> {
        let n = &self.nodes[i];
        let listeners = match n.role {
            Role::Combined => format!("listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}", n.port, n.ctrl_port),
            Role::Controller => format!("listeners=CONTROLLER://127.0.0.1:{}", n.ctrl_port),
            Role::Broker => format!("listeners=PLAINTEXT://127.0.0.1:{}", n.port),
        };
        vec![
            format!("log.dirs={}", n.dir.display()),
            format!("node.id={}", n.id),
            format!("process.roles={}", n.role.roles()),
            format!("controller.quorum.voters={}", self.voters),
            listeners,
        ]
    }

    fn format(&self, i: usize) {
        // `--cluster-id=ID`: an id may start with `-` (see the report on random-uuid).
        let mut args: Vec<String> = vec!["storage".into(), "format".into(), format!("--cluster-id={}", self.cluster_id)];
        for s in self.node_sets(i) {
            args.push("--set".into());
            args.push(s);
        }
        let out = shardlog(&args);
        assert!(out.status.success(), "storage format of node {} failed: {}{}", self.nodes[i].id, text(&out.stdout), text(&out.stderr));
    }

    /// Spawns node `i` (no wait).
    fn spawn(&mut self, i: usize) {
        let mut sets = self.node_sets(i);
        sets.push(format!("shard.cores={}", self.nodes[i].core));
        sets.push(format!("broker.session.timeout.ms={SESSION_TIMEOUT_MS}"));
        sets.push(format!("broker.heartbeat.interval.ms={HEARTBEAT_INTERVAL_MS}"));
        sets.push(format!("controller.quorum.election.timeout.ms={ELECTION_TIMEOUT_MS}"));
        sets.push("admin.listener=http://127.0.0.1:0".to_string());
        for (k, v) in &self.extra {
            sets.push(format!("{k}={v}"));
        }
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "node {} is already running", node.id);
        node.generation += 1;
        let generation = node.generation;
        let mut cmd = Command::new(broker_bin());
        cmd.arg("start");
        for s in &sets {
            cmd.arg("--set").arg(s);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        if std::env::var_os("SHARDLOG_LOG").is_none() {
            cmd.env("SHARDLOG_LOG", "info");
        }
        node.note(&format!("generation {generation}: spawning {:?}", cmd.get_args().collect::<Vec<_>>()));
        let mut child = cmd.spawn().expect("spawn shardlog start");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (out, listening, admin) = (node.output.clone(), node.listening.clone(), node.admin.clone());
        node.readers.push(std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = Vec::new();
            while let Ok(n) = r.read_until(b'\n', &mut line) {
                if n == 0 {
                    break;
                }
                let s = String::from_utf8_lossy(&line).into_owned();
                out.lock().unwrap_or_else(|e| e.into_inner()).push_str(&format!("[stdout] {s}"));
                if let Some(url) = s.strip_prefix(ADMIN_LISTENING_PREFIX) {
                    *admin.lock().unwrap_or_else(|e| e.into_inner()) = Some(url.trim().to_string());
                }
                if s.contains(LISTENING_PREFIX) || s.contains(CONTROLLER_LISTENING_PREFIX) {
                    let (m, cv) = &*listening;
                    *m.lock().unwrap_or_else(|e| e.into_inner()) = generation;
                    cv.notify_all();
                }
                line.clear();
            }
        }));
        let out = node.output.clone();
        node.readers.push(std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = Vec::new();
            while let Ok(n) = r.read_until(b'\n', &mut line) {
                if n == 0 {
                    break;
                }
                out.lock().unwrap_or_else(|e| e.into_inner()).push_str(&format!("[stderr] {}", String::from_utf8_lossy(&line)));
                line.clear();
            }
        }));
        node.child = Some(child);
    }

    /// Waits for node `i`'s listening line of its current generation.
    fn wait_listening(&mut self, i: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let node = &mut self.nodes[i];
        let generation = node.generation;
        loop {
            {
                let (m, cv) = &*node.listening;
                let g = m.lock().unwrap_or_else(|e| e.into_inner());
                if *g == generation {
                    return Ok(());
                }
                let _ = cv.wait_timeout(g, Duration::from_millis(100)).unwrap_or_else(|e| e.into_inner());
            }
            if let Some(c) = node.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    node.child = None;
                    node.join_readers();
                    return Err(format!("node {} exited before listening: {st}", node.id));
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("node {}: no `{LISTENING_PREFIX}` line within {timeout:?}", node.id));
            }
        }
    }

    /// Spawns node `id` and waits for its listening line.
    pub fn start_node(&mut self, id: i32) {
        let i = self.idx(id);
        self.spawn(i);
        self.await_listening_or_respawn(i);
    }

    /// Waits for node `i`'s listening line; a node that exits before it (a
    /// port still held after a kill) is spawned again, for 15 s.
    fn await_listening_or_respawn(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.wait_listening(i, NODE_START_TIMEOUT) {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline && self.nodes[i].child.is_none() => {
                    self.nodes[i].note(&format!("start failed: {e}; retrying"));
                    std::thread::sleep(Duration::from_millis(500));
                    self.spawn(i);
                }
                Err(e) => panic!("{e}"),
            }
        }
        self.step(&format!("node {} listening (generation {})", self.nodes[i].id, self.nodes[i].generation));
    }

    /// Starts every node that is not running at once, waits for their
    /// listening lines, then until the cluster formed.
    pub fn start_all(&mut self) {
        let down: Vec<i32> = self.nodes.iter_mut().filter_map(|n| (!n.is_running()).then_some(n.id)).collect();
        self.start_nodes(&down);
    }

    /// Starts the given nodes at once, waits for their listening lines, then
    /// until every running node lists exactly the running nodes.
    pub fn start_nodes(&mut self, ids: &[i32]) {
        let down: Vec<usize> = ids.iter().map(|&id| self.idx(id)).collect();
        for &i in &down {
            self.spawn(i);
        }
        for &i in &down {
            self.await_listening_or_respawn(i);
        }
        self.wait_formed();
    }

    /// Waits until every running broker's Metadata lists exactly the running
    /// brokers (all of them after [`Cluster::start_all`]).
    pub fn wait_formed(&mut self) {
        let t0 = Instant::now();
        let want = self.running_brokers();
        let addrs: Vec<(i32, String)> = self.nodes.iter().filter(|n| want.contains(&n.id)).map(|n| (n.id, n.bootstrap())).collect();
        wait_until("every node's Metadata to list every running broker", FORM_TIMEOUT, Duration::from_millis(100), || {
            for (id, addr) in &addrs {
                let md = metadata(addr, Some(&[]))?;
                let got = broker_ids(&md);
                if got != want {
                    return Err(format!("node {id} lists brokers {got:?}, want {want:?}"));
                }
            }
            Ok(())
        });
        self.step(&format!("cluster formed: brokers {want:?} in every node's Metadata ({:.2}s)", t0.elapsed().as_secs_f64()));
    }

    /// SIGKILLs node `id` and reaps it.
    pub fn kill9(&mut self, id: i32) {
        let i = self.idx(id);
        let node = &mut self.nodes[i];
        let mut c = node.child.take().unwrap_or_else(|| panic!("kill9: node {id} is not running"));
        node.note(&format!("generation {}: SIGKILL", node.generation));
        // SIGKILL ends a stopped (SIGSTOPped) process too.
        let _ = c.kill();
        let _ = c.wait();
        node.paused = false;
        node.join_readers();
        self.step(&format!("node {id} killed (SIGKILL)"));
    }

    /// The process id of node `id`'s running process.
    pub fn pid(&self, id: i32) -> Option<u32> {
        self.node(id).child.as_ref().map(|c| c.id())
    }

    /// Sends `sig` to node `id`'s process (which must be running).
    fn signal(&self, id: i32, sig: libc::c_int, name: &str) {
        let pid = self.pid(id).unwrap_or_else(|| panic!("{name}: node {id} is not running"));
        self.node(id).note(&format!("generation {}: {name}", self.node(id).generation));
        // SAFETY: plain kill(2) of a child we spawned and have not reaped.
        let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({name}) node {id}: {}", std::io::Error::last_os_error());
    }

    /// SIGSTOPs node `id`: the process keeps its sockets and memory but runs
    /// nothing (no heartbeats, no answers) until [`Cluster::resume`].
    pub fn pause(&mut self, id: i32) {
        assert!(!self.node(id).paused, "pause: node {id} is already paused");
        self.signal(id, libc::SIGSTOP, "SIGSTOP");
        let i = self.idx(id);
        self.nodes[i].paused = true;
        self.step(&format!("node {id} paused (SIGSTOP)"));
    }

    /// SIGCONTs node `id` after [`Cluster::pause`].
    pub fn resume(&mut self, id: i32) {
        assert!(self.node(id).paused, "resume: node {id} is not paused");
        self.signal(id, libc::SIGCONT, "SIGCONT");
        let i = self.idx(id);
        self.nodes[i].paused = false;
        self.step(&format!("node {id} resumed (SIGCONT)"));
    }

    /// Whether node `id` is SIGSTOPped by [`Cluster::pause`].
    pub fn is_paused(&self, id: i32) -> bool {
        self.node(id).paused
    }

    /// Node `id`'s data directory (`log.dirs`): partition `P` of topic `T`
    /// lives in `<dir>/T-P/`.
    pub fn data_dir(&self, id: i32) -> PathBuf {
        self.node(id).dir.clone()
    }

    /// SIGTERMs the given nodes at once and asserts each exits 0 within
    /// [`NODE_STOP_TIMEOUT`]; prints how long each took.
    pub fn stop_nodes(&mut self, ids: &[i32]) {
        let t0 = Instant::now();
        for &id in ids {
            if self.node(id).paused {
                // A stopped process would not act on SIGTERM.
                self.resume(id);
            }
            let i = self.idx(id);
            let node = &self.nodes[i];
            let pid = node.child.as_ref().unwrap_or_else(|| panic!("stop: node {id} is not running")).id();
            node.note(&format!("generation {}: SIGTERM", node.generation));
            // SAFETY: plain kill(2) of a child we spawned and have not reaped.
            let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            assert_eq!(rc, 0, "kill(SIGTERM) node {id}: {}", std::io::Error::last_os_error());
        }
        for &id in ids {
            let i = self.idx(id);
            let left = NODE_STOP_TIMEOUT.saturating_sub(t0.elapsed());
            match self.nodes[i].wait_child(left) {
                Some(st) => {
                    self.nodes[i].join_readers();
                    self.nodes[i].note(&format!("exited with {st}"));
                    self.step(&format!("node {id} exited after SIGTERM in {:.2}s: {st}", t0.elapsed().as_secs_f64()));
                    assert!(st.success(), "node {id} did not exit cleanly after SIGTERM: {st}");
                }
                None => panic!("node {id} did not exit within {NODE_STOP_TIMEOUT:?} of SIGTERM"),
            }
        }
    }

    /// Formats and starts one more broker-only node (the next id), as an
    /// operator adds a broker to a running cluster; answers its id.
    pub fn add_broker(&mut self) -> i32 {
        let id = self.nodes.len() as i32 + 1;
        let ports = free_ports(2);
        self.nodes.push(Node {
            id,
            role: Role::Broker,
            port: ports[0],
            ctrl_port: ports[1],
            dir: self.tmp.path().join(format!("node{id}")),
            core: (id as usize - 1) % 2,
            child: None,
            readers: Vec::new(),
            output: Arc::new(Mutex::new(String::new())),
            listening: Arc::new((Mutex::new(0), Condvar::new())),
            admin: Arc::new(Mutex::new(None)),
            generation: 0,
            paused: false,
        });
        self.format(self.nodes.len() - 1);
        self.start_node(id);
        self.step(&format!("broker {id} added on port {}", ports[0]));
        id
    }

    /// SIGTERM to every running node, then start them all again.
    pub fn restart_all(&mut self) {
        let ids = self.running();
        self.stop_nodes(&ids);
        self.start_all();
    }

    /// The quorum leader as running brokers see it through DescribeQuorum:
    /// the leader id all answering nodes agree on (not -1).
    pub fn quorum_leader(&mut self) -> Result<(i32, i32), String> {
        let ids = self.running_brokers();
        let mut seen = BTreeSet::new();
        let mut errs = Vec::new();
        for id in ids {
            match describe_quorum(&self.bootstrap(id)) {
                Ok((NONE, leader, epoch)) if leader >= 0 => {
                    seen.insert((leader, epoch));
                }
                Ok(other) => errs.push(format!("node {id}: (error, leader, epoch) {other:?}")),
                Err(e) => errs.push(format!("node {id}: {e}")),
            }
        }
        match (seen.len(), errs.is_empty()) {
            (1, true) => Ok(*seen.iter().next().expect("one")),
            _ => Err(format!("leaders seen {seen:?}; {}", errs.join("; "))),
        }
    }

    /// Prints every node's output tail.
    pub fn dump(&self) {
        for n in &self.nodes {
            eprintln!("{}", n.tail());
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill_child();
        }
        if std::thread::panicking() {
            self.step("test failed; node output follows");
            self.dump();
        }
    }
}
