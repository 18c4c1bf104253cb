//! Consumer groups (SPEC §3), through the real `shardlog` binary, driven by
//! librdkafka group consumers (rdkafka crate) and, for what librdkafka does
//! not expose, raw Kafka frames (kafka-protocol crate). Every expectation
//! here is Apache Kafka's documented behaviour: the group coordinator
//! protocol (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup),
//! committed offsets (OffsetCommit / OffsetFetch, kept in
//! `__consumer_offsets` across restarts) and the group admin APIs
//! (ListGroups, DescribeGroups, DeleteGroups, OffsetDelete).
//!
//! Each test starts its own broker with `group.initial.rebalance.delay.ms=0`
//! (so the first rebalance is not held back 3 s) and
//! `offsets.topic.num.partitions=4` (so creating `__consumer_offsets` is
//! cheap). Waits are bounded and generous (a slow, shared 2-core machine);
//! nothing asserts how *fast* something happened.
//!
//! `child_member_helper` is not a test of its own:
//! `dead_member_is_evicted_after_session_timeout` re-runs this test binary
//! with `SHARDLOG_CG_CHILD_MEMBER` set, so that a group member lives in a
//! process that can be SIGKILLed. Without the variable it returns at once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopicPartition;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiVersionsRequest, ConsumerProtocolAssignment, ConsumerProtocolSubscription, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, SyncGroupRequest,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use common::*;

/// Broker settings for every test in this file.
const GROUP_BROKER_SETTINGS: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0"), ("offsets.topic.num.partitions", "4")];

/// How long a group may take to reach a settled assignment.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A settled assignment must stay unchanged this long before it counts.
const STABLE_FOR: Duration = Duration::from_secs(2);
/// Upper bound for closing a consumer (LeaveGroup / final commit). Above
/// librdkafka's own request timeouts (`socket.timeout.ms`, 60 s): a close
/// that waits on one of those finishes within it, so only a close that never
/// finishes fails the test. (A static member's close was seen to take longer
/// than 30 s twice in CI, with no broker error logged; cause not found.)
const CLOSE_TIMEOUT: Duration = Duration::from_secs(90);
/// After reaching the expected record count, keep polling this long to catch
/// duplicates or records that should not have been delivered at all.
const GRACE: Duration = Duration::from_secs(2);

/// Kafka error codes used below (org.apache.kafka.common.protocol.Errors).
mod code {
    pub const NONE: i16 = 0;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

    /// The coordinator is still starting up / loading `__consumer_offsets`:
    /// clients retry these.
    pub fn retriable(c: i16) -> bool {
        matches!(c, COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR)
    }
}

fn start_broker() -> Broker {
    Broker::start(GROUP_BROKER_SETTINGS)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn st(s: &str) -> String {
    s.to_string()
}

fn group_id(g: &str) -> GroupId {
    GroupId(sb(g))
}

fn topic_name_of(t: &str) -> TopicName {
    TopicName(sb(t))
}

fn all_partitions(n: i32) -> BTreeSet<i32> {
    (0..n).collect()
}

/// Group consumer config: manual commits only, start from the beginning when
/// nothing is committed, 6 s session, 500 ms heartbeats, range assignor.
fn group_config(bootstrap: &str, group: &str, client_id: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("group.id", group)
        .set("client.id", client_id)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("partition.assignment.strategy", "range")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        // Kept in memory by `Member` and printed if its close hangs.
        .set("debug", "cgrp");
    c
}

fn partitions_of(tpl: &TopicPartitionList) -> BTreeSet<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

fn current_assignment<C: ConsumerContext>(c: &BaseConsumer<C>) -> BTreeSet<i32> {
    c.assignment().map(|t| partitions_of(&t)).unwrap_or_default()
}

/// Drop (= close: LeaveGroup for a dynamic member) a consumer on a helper
/// thread so that a broker that never answers cannot hang the test.
fn close_bounded<C: ConsumerContext + 'static>(c: BaseConsumer<C>, what: &str) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(c);
        let _ = tx.send(());
    });
    if rx.recv_timeout(CLOSE_TIMEOUT).is_err() {
        panic!("{what}: consumer close did not finish within {CLOSE_TIMEOUT:?}");
    }
}

/// Poll `cond` every 100 ms until it returns Ok, or panic after `timeout`
/// with the last reason it gave.
fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match cond() {
            Ok(()) => return,
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            panic!("{what}: not reached within {timeout:?}; last state: {last}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True if `sets` are all non-empty, pairwise disjoint and together exactly `full`.
fn is_split_of(sets: &[BTreeSet<i32>], full: &BTreeSet<i32>) -> bool {
    if sets.iter().any(|s| s.is_empty()) {
        return false;
    }
    let total: usize = sets.iter().map(|s| s.len()).sum();
    let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
    total == full.len() && union == *full
}

/// Wait until the assignments returned by `snapshot` are a disjoint,
/// complete, non-empty split of partitions `0..partitions` and have stayed
/// exactly so for `STABLE_FOR`. Returns that split.
fn wait_settled(what: &str, partitions: i32, timeout: Duration, mut snapshot: impl FnMut() -> Vec<BTreeSet<i32>>) -> Vec<BTreeSet<i32>> {
    let full = all_partitions(partitions);
    let deadline = Instant::now() + timeout;
    let mut stable: Option<(Instant, Vec<BTreeSet<i32>>)> = None;
    loop {
        let snap = snapshot();
        if is_split_of(&snap, &full) {
            match &stable {
                Some((since, s)) if *s == snap => {
                    if since.elapsed() >= STABLE_FOR {
                        return snap;
                    }
                }
                _ => stable = Some((Instant::now(), snap.clone())),
            }
        } else {
            stable = None;
        }
        if Instant::now() >= deadline {
            panic!(
                "{what}: assignments did not settle into a disjoint, complete split of \
                 partitions 0..{partitions} (every member non-empty) within {timeout:?}; \
                 last seen: {snap:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_members_settled(what: &str, members: &[&Member], partitions: i32) -> Vec<BTreeSet<i32>> {
    wait_settled(what, partitions, SETTLE_TIMEOUT, || members.iter().map(|m| m.assignment_checked()).collect())
}

// ---------------------------------------------------------------------------
// A group member on its own thread, with a context recording rebalances
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum RebalanceEvent {
    /// Partitions handed to the application, and the assignment after it.
    Assign {
        partitions: BTreeSet<i32>,
        after: BTreeSet<i32>,
    },
    /// Partitions taken away, and the assignment after it.
    Revoke {
        partitions: BTreeSet<i32>,
        after: BTreeSet<i32>,
    },
    Error(String),
}

#[derive(Default)]
struct MemberState {
    assignment: Mutex<BTreeSet<i32>>,
    events: Mutex<Vec<RebalanceEvent>>,
    protocol: Mutex<String>,
    records: Mutex<Vec<(i32, i64)>>,
    errors: Mutex<Vec<String>>,
    /// librdkafka's last log lines (debug=cgrp), printed when a close hangs.
    client_log: Mutex<std::collections::VecDeque<String>>,
    stop: AtomicBool,
}

/// Lines of librdkafka's log kept per member.
const CLIENT_LOG_LINES: usize = 300;

/// Records every rebalance callback (after librdkafka applied it).
struct TrackingContext {
    state: Arc<MemberState>,
}

impl ClientContext for TrackingContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        let mut lines = lock(&self.state.client_log);
        if lines.len() == CLIENT_LOG_LINES {
            lines.pop_front();
        }
        lines.push_back(format!("{:?} {:?} {fac} {log_message}", Instant::now(), level));
    }
}

impl ConsumerContext for TrackingContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let after = current_assignment(consumer);
        let ev = match rebalance {
            Rebalance::Assign(tpl) => RebalanceEvent::Assign { partitions: partitions_of(tpl), after: after.clone() },
            Rebalance::Revoke(tpl) => RebalanceEvent::Revoke { partitions: partitions_of(tpl), after: after.clone() },
            Rebalance::Error(e) => RebalanceEvent::Error(e.to_string()),
        };
        *lock(&self.state.protocol) = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => "cooperative",
            RebalanceProtocol::Eager => "eager",
            RebalanceProtocol::None => "none",
        }
        .to_string();
        lock(&self.state.events).push(ev);
        *lock(&self.state.assignment) = after;
    }
}

/// A subscribed BaseConsumer polled (every 100 ms) by its own thread until
/// `close`. Dropping a `Member` without `close` only tells the thread to stop.
struct Member {
    name: String,
    state: Arc<MemberState>,
    done: mpsc::Receiver<()>,
    handle: Option<JoinHandle<()>>,
}

impl Member {
    fn start(name: &str, config: ClientConfig, topic: &str) -> Member {
        let state = Arc::new(MemberState::default());
        let (tx, rx) = mpsc::channel();
        let st = state.clone();
        let topic = topic.to_string();
        let n = name.to_string();
        let handle = std::thread::Builder::new()
            .name(format!("member-{name}"))
            .spawn(move || {
                let consumer: BaseConsumer<TrackingContext> =
                    config.create_with_context(TrackingContext { state: st.clone() }).unwrap_or_else(|e| panic!("{n}: create consumer: {e}"));
                consumer.subscribe(&[topic.as_str()]).unwrap_or_else(|e| panic!("{n}: subscribe: {e}"));
                while !st.stop.load(Ordering::SeqCst) {
                    match consumer.poll(Duration::from_millis(100)) {
                        Some(Ok(m)) => lock(&st.records).push((m.partition(), m.offset())),
                        Some(Err(e)) => {
                            let mut errs = lock(&st.errors);
                            if errs.len() < 200 {
                                errs.push(e.to_string());
                            }
                        }
                        None => {}
                    }
                    *lock(&st.assignment) = current_assignment(&consumer);
                }
                // Close: a dynamic member sends LeaveGroup; a static one
                // (group.instance.id) does not (KIP-345).
                drop(consumer);
                let _ = tx.send(());
            })
            .expect("spawn member thread");
        Member { name: name.to_string(), state, done: rx, handle: Some(handle) }
    }

    fn assignment(&self) -> BTreeSet<i32> {
        lock(&self.state.assignment).clone()
    }

    /// The assignment; panics if the member thread died (e.g. create failed).
    fn assignment_checked(&self) -> BTreeSet<i32> {
        if let Some(h) = &self.handle {
            if h.is_finished() && !self.state.stop.load(Ordering::SeqCst) {
                panic!("member {}: its thread ended on its own (panicked?); consumer errors: {:?}", self.name, self.errors());
            }
        }
        self.assignment()
    }

    fn events(&self) -> Vec<RebalanceEvent> {
        lock(&self.state.events).clone()
    }

    fn protocol(&self) -> String {
        lock(&self.state.protocol).clone()
    }

    fn errors(&self) -> Vec<String> {
        lock(&self.state.errors).clone()
    }

    /// Stop polling and close the consumer (bounded).
    fn close(mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        match self.done.recv_timeout(CLOSE_TIMEOUT) {
            Ok(()) => {
                if let Some(h) = self.handle.take() {
                    let _ = h.join();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let log: Vec<String> = lock(&self.state.client_log).iter().cloned().collect();
                panic!("member {}: close did not finish within {CLOSE_TIMEOUT:?}; librdkafka's last log lines:\n{}", self.name, log.join("\n"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let joined_ok = self.handle.take().map(|h| h.join().is_ok());
                panic!("member {}: thread ended abnormally (joined ok: {joined_ok:?})", self.name);
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------
// Produce / consume helpers
// ---------------------------------------------------------------------------

/// Produce `n` records `{tag}-k{i}` / `{tag}-v{i}` to partition `i % partitions`;
/// returns (partition, offset) per record, in order.
async fn produce(bootstrap: &str, topic: &str, partitions: i32, n: usize, tag: &str) -> Vec<(i32, i64)> {
    let producer: FutureProducer = producer_config(bootstrap).create().expect("producer");
    let mut futs = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("{tag}-k{i}");
        let value = format!("{tag}-v{i}");
        let rec = FutureRecord::to(topic).partition(i as i32 % partitions).key(&key).payload(&value);
        futs.push(producer.send_result(rec).unwrap_or_else(|(e, _)| panic!("enqueue record {i}: {e}")));
    }
    let mut out = Vec::with_capacity(n);
    for (i, f) in futs.into_iter().enumerate() {
        match tokio::time::timeout(Duration::from_secs(60), f).await {
            Ok(Ok(Ok(d))) => out.push((d.partition, d.offset)),
            Ok(Ok(Err((e, _)))) => panic!("record {i} not acknowledged: {e}"),
            Ok(Err(_)) => panic!("record {i}: delivery future canceled"),
            Err(_) => panic!("record {i}: no delivery report within 60 s"),
        }
    }
    out
}

/// Poll `c` until `target` records arrived (then keep polling for `grace`
/// to catch extra ones) or `timeout` passed. Returns (partition, offset)s.
fn poll_records<C: ConsumerContext>(c: &BaseConsumer<C>, target: usize, timeout: Duration, grace: Duration) -> Vec<(i32, i64)> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut grace_end: Option<Instant> = None;
    let mut errors = 0;
    loop {
        let now = Instant::now();
        if now >= deadline || grace_end.is_some_and(|g| now >= g) {
            return out;
        }
        if grace_end.is_none() && out.len() >= target {
            if grace.is_zero() {
                return out;
            }
            grace_end = Some(now + grace);
        }
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push((m.partition(), m.offset())),
            Some(Err(e)) => {
                errors += 1;
                if errors <= 20 {
                    eprintln!("consumer error (ignored, keeps polling): {e}");
                }
            }
            None => {}
        }
    }
}

/// Poll a subscribed consumer until its assignment is exactly `want`.
fn poll_until_assigned<C: ConsumerContext>(c: &BaseConsumer<C>, want: &BTreeSet<i32>, what: &str) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let _ = c.poll(Duration::from_millis(100));
        let got = current_assignment(c);
        if got == *want {
            return;
        }
        if Instant::now() >= deadline {
            panic!("{what}: assignment {got:?}, expected {want:?} within {SETTLE_TIMEOUT:?}");
        }
    }
}

fn offset_value(o: Offset) -> i64 {
    match o {
        Offset::Offset(x) => x,
        Offset::Invalid => -1,
        other => panic!("unexpected committed offset {other:?}"),
    }
}

/// A TopicPartitionList with the given (partition -> (offset, metadata)).
fn commit_list(topic: &str, offsets: &BTreeMap<i32, (i64, String)>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (p, (o, meta)) in offsets {
        let mut e = tpl.add_partition(topic, *p);
        e.set_offset(Offset::Offset(*o)).expect("set offset");
        e.set_metadata(meta);
    }
    tpl
}

/// (partition -> (committed offset or -1, metadata)) out of a committed() answer.
fn committed_map(tpl: &TopicPartitionList) -> BTreeMap<i32, (i64, String)> {
    tpl.elements().iter().map(|e| (e.partition(), (offset_value(e.offset()), e.metadata().to_string()))).collect()
}

fn offsets_only(m: BTreeMap<i32, (i64, String)>) -> BTreeMap<i32, i64> {
    m.into_iter().map(|(p, (o, _))| (p, o)).collect()
}

/// OffsetFetch through librdkafka (`committed_offsets`) for partitions
/// `0..partitions`, from a consumer that does not join the group. Retries
/// (bounded) while the coordinator is loading, e.g. right after a restart.
fn read_committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, (i64, String)> {
    let c: BaseConsumer = group_config(bootstrap, group, "offset-reader").create().expect("offset reader");
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = loop {
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let last = match c.committed_offsets(tpl, Duration::from_secs(10)) {
            Ok(t) => {
                let errs: Vec<String> = t.elements().iter().filter_map(|e| e.error().err().map(|x| format!("p{}: {x}", e.partition()))).collect();
                if errs.is_empty() {
                    break committed_map(&t);
                }
                format!("per-partition errors {errs:?}")
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            panic!("committed offsets of group {group} not readable within 60 s: {last}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    close_bounded(c, "offset reader");
    result
}

// ---------------------------------------------------------------------------
// Raw protocol helpers
// ---------------------------------------------------------------------------

/// Highest version of `api_key` the broker advertises in ApiVersions.
fn api_max_version(bootstrap: &str, api_key: i16) -> i16 {
    let mut conn = RawConn::connect(bootstrap);
    let resp = conn.roundtrip(
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("shardlog-it"))
            .with_client_software_version(StrBytes::from_static_str("0.1")),
    );
    assert_eq!(resp.error_code, 0, "ApiVersions: {resp:?}");
    resp.api_keys.iter().find(|k| k.api_key == api_key).map(|k| k.max_version).unwrap_or_else(|| panic!("api key {api_key} is not advertised in ApiVersions"))
}

/// min(broker's max version, `preferred`), asserting the broker has at least `required`.
fn version_for(bootstrap: &str, api_key: i16, preferred: i16, required: i16) -> i16 {
    let max = api_max_version(bootstrap, api_key);
    assert!(max >= required, "api key {api_key}: broker advertises up to v{max}, v{required}+ is needed");
    max.min(preferred)
}

/// ConsumerProtocol subscription bytes (version 0 prefix + body).
fn encode_subscription(topics: &[&str]) -> Bytes {
    let sub = ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| sb(t)).collect());
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    sub.encode(&mut buf, 0).expect("encode subscription");
    buf.freeze()
}

/// ConsumerProtocol assignment bytes (version 0 prefix + body).
fn encode_assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let a = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(vec![AssignedTopicPartition::default().with_topic(topic_name_of(topic)).with_partitions(partitions.to_vec())]);
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    a.encode(&mut buf, 0).expect("encode assignment");
    buf.freeze()
}

/// topic -> partitions out of ConsumerProtocol assignment bytes. Versions
/// above the highest known one are read as that one, as Kafka's
/// ConsumerProtocol does (newer versions only add fields).
fn decode_assignment(bytes: &[u8]) -> BTreeMap<String, BTreeSet<i32>> {
    let mut out: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    if bytes.is_empty() {
        return out;
    }
    let mut b = Bytes::copy_from_slice(bytes);
    assert!(b.remaining() >= 2, "assignment too short: {bytes:?}");
    let v = b.get_i16();
    assert!(v >= 0, "negative ConsumerProtocol assignment version {v}");
    let a = ConsumerProtocolAssignment::decode(&mut b, v.min(3)).unwrap_or_else(|e| panic!("decode ConsumerProtocolAssignment v{v}: {e:?} ({bytes:?})"));
    for tp in a.assigned_partitions {
        let t: &str = &tp.topic;
        out.entry(st(t)).or_default().extend(tp.partitions.iter().copied());
    }
    out
}

/// Subscribed topics out of ConsumerProtocol subscription bytes.
fn decode_subscription_topics(bytes: &[u8]) -> Vec<String> {
    let mut b = Bytes::copy_from_slice(bytes);
    assert!(b.remaining() >= 2, "subscription too short: {bytes:?}");
    let v = b.get_i16();
    assert!(v >= 0, "negative ConsumerProtocol subscription version {v}");
    let s = ConsumerProtocolSubscription::decode(&mut b, v.min(3)).unwrap_or_else(|e| panic!("decode ConsumerProtocolSubscription v{v}: {e:?} ({bytes:?})"));
    s.topics.iter().map(|t| st(t)).collect()
}

fn describe_group(bootstrap: &str, group: &str) -> DescribedGroup {
    let v = version_for(bootstrap, DescribeGroupsRequest::KEY, 5, 0);
    let mut conn = RawConn::connect(bootstrap);
    let resp = conn.roundtrip(v, &DescribeGroupsRequest::default().with_groups(vec![group_id(group)]));
    assert_eq!(resp.groups.len(), 1, "DescribeGroups v{v}: one group expected: {resp:?}");
    resp.groups.into_iter().next().unwrap()
}

/// DescribeGroups until `ok` accepts the answer (bounded; retriable
/// coordinator errors are waited out).
fn describe_group_until(bootstrap: &str, group: &str, what: &str, mut ok: impl FnMut(&DescribedGroup) -> Result<(), String>) -> DescribedGroup {
    let mut result = None;
    wait_for(what, SETTLE_TIMEOUT, || {
        let g = describe_group(bootstrap, group);
        if code::retriable(g.error_code) {
            return Err(format!("retriable error {}", g.error_code));
        }
        ok(&g).map_err(|e| format!("{e}: {g:?}"))?;
        result = Some(g);
        Ok(())
    });
    result.unwrap()
}

#[derive(Debug, Clone, PartialEq)]
struct Listed {
    group: String,
    protocol_type: String,
    /// Empty below ListGroups v4.
    state: String,
}

/// ListGroups (v4 if the broker has it) with an optional states filter
/// (needs v4). Ok((version used, groups)) or Err(top-level error code).
fn list_groups(bootstrap: &str, states: &[&str]) -> Result<(i16, Vec<Listed>), i16> {
    let v = version_for(bootstrap, ListGroupsRequest::KEY, 4, if states.is_empty() { 0 } else { 4 });
    let mut req = ListGroupsRequest::default();
    if !states.is_empty() {
        req = req.with_states_filter(states.iter().map(|s| sb(s)).collect());
    }
    let mut conn = RawConn::connect(bootstrap);
    let resp = conn.roundtrip(v, &req);
    if resp.error_code != code::NONE {
        return Err(resp.error_code);
    }
    Ok((
        v,
        resp.groups
            .iter()
            .map(|g| {
                let name: &str = &g.group_id;
                Listed { group: st(name), protocol_type: st(&g.protocol_type), state: st(&g.group_state) }
            })
            .collect(),
    ))
}

/// ListGroups, retried (bounded) while the coordinator is loading.
fn list_groups_ok(bootstrap: &str, states: &[&str]) -> (i16, Vec<Listed>) {
    let mut result = None;
    wait_for("ListGroups without a retriable error", SETTLE_TIMEOUT, || match list_groups(bootstrap, states) {
        Ok(r) => {
            result = Some(r);
            Ok(())
        }
        Err(c) if code::retriable(c) => Err(format!("error {c}")),
        Err(c) => panic!("ListGroups {states:?}: error code {c}"),
    });
    result.unwrap()
}

fn delete_groups_raw(bootstrap: &str, groups: &[&str]) -> Vec<(String, i16)> {
    let v = version_for(bootstrap, DeleteGroupsRequest::KEY, 2, 0);
    let mut conn = RawConn::connect(bootstrap);
    let resp = conn.roundtrip(v, &DeleteGroupsRequest::default().with_groups_names(groups.iter().map(|g| group_id(g)).collect()));
    resp.results
        .iter()
        .map(|r| {
            let g: &str = &r.group_id;
            (st(g), r.error_code)
        })
        .collect()
}

/// OffsetDelete v0. Returns (top-level error, [(topic, partition, error)]).
fn offset_delete(bootstrap: &str, group: &str, what: &[(&str, &[i32])]) -> (i16, Vec<(String, i32, i16)>) {
    let v = version_for(bootstrap, OffsetDeleteRequest::KEY, 0, 0);
    let req = OffsetDeleteRequest::default().with_group_id(group_id(group)).with_topics(
        what.iter()
            .map(|(t, ps)| {
                OffsetDeleteRequestTopic::default()
                    .with_name(topic_name_of(t))
                    .with_partitions(ps.iter().map(|p| OffsetDeleteRequestPartition::default().with_partition_index(*p)).collect())
            })
            .collect(),
    );
    let mut conn = RawConn::connect(bootstrap);
    let resp = conn.roundtrip(v, &req);
    let mut parts = Vec::new();
    for t in &resp.topics {
        let name: &str = &t.name;
        for p in &t.partitions {
            parts.push((st(name), p.partition_index, p.error_code));
        }
    }
    (resp.error_code, parts)
}

/// {(topic, partition) -> (committed offset, metadata, error)}
type FetchedOffsets = BTreeMap<(String, i32), (i64, Option<String>, i16)>;

/// Raw OffsetFetch (v1..=7 shape). Returns (top-level error, offsets).
fn offset_fetch(bootstrap: &str, group: &str, what: &[(&str, &[i32])]) -> (i16, FetchedOffsets) {
    let v = version_for(bootstrap, OffsetFetchRequest::KEY, 7, 1);
    let req = OffsetFetchRequest::default().with_group_id(group_id(group)).with_topics(Some(
        what.iter().map(|(t, ps)| OffsetFetchRequestTopic::default().with_name(topic_name_of(t)).with_partition_indexes(ps.to_vec())).collect(),
    ));
    let mut conn = RawConn::connect(bootstrap);
    let resp = conn.roundtrip(v, &req);
    let mut out = BTreeMap::new();
    for t in &resp.topics {
        let name: &str = &t.name;
        for p in &t.partitions {
            out.insert((st(name), p.partition_index), (p.committed_offset, p.metadata.as_ref().map(|m| st(m)), p.error_code));
        }
    }
    (resp.error_code, out)
}

/// The committed offset of `t`-`p` in an OffsetFetch answer (asserting no
/// per-partition error).
fn fetched(offs: &FetchedOffsets, t: &str, p: i32) -> i64 {
    let (o, _, e) = offs.get(&(t.to_string(), p)).unwrap_or_else(|| panic!("{t}-{p} missing from OffsetFetch: {offs:?}"));
    assert_eq!(*e, code::NONE, "{t}-{p} OffsetFetch error: {offs:?}");
    *o
}

// ---------------------------------------------------------------------------
// 1. three members split a 6-partition topic; one leaves, two take over
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_split_partitions_and_rebalance_on_leave() {
    let mut broker = start_broker();
    let bs = broker.bootstrap();
    let topic = "cg-three";
    let group = "g-three";
    create_topic(&bs, topic, 6).await;

    let a = Member::start("a", group_config(&bs, group, "member-a"), topic);
    let b = Member::start("b", group_config(&bs, group, "member-b"), topic);
    let c = Member::start("c", group_config(&bs, group, "member-c"), topic);

    let split = wait_members_settled("three members", &[&a, &b, &c], 6);
    for (name, s) in ["a", "b", "c"].iter().zip(&split) {
        assert_eq!(s.len(), 2, "member {name}: the range assignor gives each of 3 members 2 of 6 partitions: {split:?}");
    }

    // c closes (LeaveGroup): the remaining two rebalance and cover all 6.
    c.close();
    let split = wait_members_settled("two members after c left", &[&a, &b], 6);
    assert_eq!(split.iter().map(|s| s.len()).collect::<Vec<_>>(), vec![3, 3], "range assignor over 6 partitions and 2 members: {split:?}");

    a.close();
    b.close();
    broker.stop();
}

// ---------------------------------------------------------------------------
// 2. a member whose process dies (no LeaveGroup) is evicted after its session
// ---------------------------------------------------------------------------

const CHILD_ENV: &str = "SHARDLOG_CG_CHILD_MEMBER";
const CHILD_LINE: &str = "CHILD ASSIGNMENT ";

/// Helper mode for `dead_member_is_evicted_after_session_timeout`: a no-op
/// unless `SHARDLOG_CG_CHILD_MEMBER=bootstrap|group|topic` is set. Then it
/// joins the group and prints `CHILD ASSIGNMENT p,p,...` on every change
/// until it is killed (or gives up after 5 minutes).
#[test]
fn child_member_helper() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    assert_eq!(parts.len(), 3, "{CHILD_ENV} must be bootstrap|group|topic, got {spec:?}");
    let (bs, group, topic) = (parts[0], parts[1], parts[2]);
    let consumer: BaseConsumer = group_config(bs, group, "child-member").create().expect("child: create consumer");
    consumer.subscribe(&[topic]).expect("child: subscribe");
    let mut last: Option<BTreeSet<i32>> = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let _ = consumer.poll(Duration::from_millis(100));
        let now = current_assignment(&consumer);
        if last.as_ref() != Some(&now) {
            let list: Vec<String> = now.iter().map(|p| p.to_string()).collect();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "\n{CHILD_LINE}{}", list.join(","));
            let _ = out.flush();
            last = Some(now);
        }
    }
    // Orphaned (the parent never killed us): go without LeaveGroup either.
    std::mem::forget(consumer);
}

/// The helper above, running in a child process.
struct ChildMember {
    child: Option<Child>,
    assignment: Arc<Mutex<Option<BTreeSet<i32>>>>,
    output: Arc<Mutex<String>>,
}

impl ChildMember {
    fn spawn(bootstrap: &str, group: &str, topic: &str) -> ChildMember {
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new(exe)
            .args(["child_member_helper", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{bootstrap}|{group}|{topic}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child member (this test binary)");
        let assignment = Arc::new(Mutex::new(None));
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let (a, o) = (assignment.clone(), output.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lock(&o).push_str(&format!("[child stdout] {line}\n"));
                // libtest may have printed "test child_member_helper ... "
                // on the same line, so look for the marker anywhere.
                if let Some(pos) = line.find(CHILD_LINE) {
                    let rest = &line[pos + CHILD_LINE.len()..];
                    let set: BTreeSet<i32> =
                        rest.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().expect("child partition number")).collect();
                    *lock(&a) = Some(set);
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let o = output.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            lock(&o).push_str(&format!("[child stderr] {s}\n"));
        });
        ChildMember { child: Some(child), assignment, output }
    }

    /// Last assignment the child reported (empty before it said anything).
    /// Panics if the child exited on its own.
    fn assignment(&mut self) -> BTreeSet<i32> {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                std::thread::sleep(Duration::from_millis(200)); // let the readers finish
                panic!("child member exited on its own ({status:?}); its output:\n{}", lock(&self.output));
            }
        }
        lock(&self.assignment).clone().unwrap_or_default()
    }

    /// SIGKILL: the member vanishes without LeaveGroup.
    fn kill9(&mut self) {
        let mut c = self.child.take().expect("child running");
        c.kill().expect("SIGKILL child member");
        let _ = c.wait();
    }
}

impl Drop for ChildMember {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_member_is_evicted_after_session_timeout() {
    let mut broker = start_broker();
    let bs = broker.bootstrap();
    let topic = "cg-dead";
    let group = "g-dead";
    create_topic(&bs, topic, 4).await;

    let mut child = ChildMember::spawn(&bs, group, topic);
    // Alone in the group, the child gets everything.
    wait_settled("child member alone", 4, SETTLE_TIMEOUT, || vec![child.assignment()]);

    let survivor = Member::start("survivor", group_config(&bs, group, "survivor"), topic);
    let split = wait_settled("child + in-process member", 4, SETTLE_TIMEOUT, || vec![child.assignment(), survivor.assignment_checked()]);
    assert_eq!(split[1].len(), 2, "range over 4 partitions and 2 members: {split:?}");

    // kill -9 the child: no LeaveGroup. The coordinator must expire it once
    // session.timeout.ms (6 s) passes without heartbeats, and rebalance.
    child.kill9();
    wait_settled("survivor alone after the dead member's session expired", 4, Duration::from_secs(45), || vec![survivor.assignment_checked()]);

    survivor.close();
    broker.stop();
}

// ---------------------------------------------------------------------------
// 3. commit, then the next member resumes at the committed offsets
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_resume_in_next_member() {
    let mut broker = start_broker();
    let bs = broker.bootstrap();
    let topic = "cg-resume";
    let group = "g-resume";
    create_topic(&bs, topic, 4).await;
    let produced = produce(&bs, topic, 4, 100, "resume").await;
    let all: BTreeSet<(i32, i64)> = produced.iter().copied().collect();
    assert_eq!(all.len(), 100, "distinct (partition, offset) per record");

    // Consumer A: exactly 60 records, then a synchronous commit of the next
    // offset of every partition (0 where it read nothing), with metadata.
    let a: BaseConsumer = group_config(&bs, group, "resume-a").create().expect("consumer A");
    a.subscribe(&[topic]).expect("A subscribe");
    let got_a = poll_records(&a, 60, Duration::from_secs(60), Duration::ZERO);
    assert_eq!(got_a.len(), 60, "consumer A: records received");
    let set_a: BTreeSet<(i32, i64)> = got_a.iter().copied().collect();
    assert_eq!(set_a.len(), 60, "consumer A got duplicates: {got_a:?}");
    let mut next: BTreeMap<i32, i64> = (0..4).map(|p| (p, 0)).collect();
    for (p, o) in &got_a {
        let e = next.get_mut(p).expect("partition in range");
        *e = (*e).max(o + 1);
    }
    for (p, n) in &next {
        let count = got_a.iter().filter(|(q, _)| q == p).count() as i64;
        assert_eq!(count, *n, "A read partition {p} from offset 0 without gaps");
    }
    let to_commit: BTreeMap<i32, (i64, String)> = next.iter().map(|(p, o)| (*p, (*o, format!("resume-meta p{p} next={o} ✓")))).collect();
    a.commit(&commit_list(topic, &to_commit), CommitMode::Sync).expect("synchronous commit by A");
    // (TopicPartitionLists librdkafka returns hold references to its
    // partitions, and closing a consumer waits for them: keep none around.)
    let committed_a = offsets_only(committed_map(&a.committed(OP_TIMEOUT).expect("committed() by A")));
    assert_eq!(committed_a, next, "committed() right after the commit");
    close_bounded(a, "consumer A");

    // Consumer B, same group: starts at the committed offsets, so it gets
    // exactly the 40 records A did not read.
    let b: BaseConsumer = group_config(&bs, group, "resume-b").create().expect("consumer B");
    b.subscribe(&[topic]).expect("B subscribe");
    let got_b = poll_records(&b, 40, Duration::from_secs(60), GRACE);
    let set_b: BTreeSet<(i32, i64)> = got_b.iter().copied().collect();
    assert_eq!(set_b.len(), got_b.len(), "consumer B got duplicates");
    assert!(set_a.is_disjoint(&set_b), "B re-read records A had committed: {:?}", set_a.intersection(&set_b).collect::<Vec<_>>());
    let expected_b: BTreeSet<(i32, i64)> = all.difference(&set_a).copied().collect();
    assert_eq!(set_b, expected_b, "B must get exactly the 40 records after the committed offsets");

    // committed() as B sees it (its assignment: all 4): A's commit.
    poll_until_assigned(&b, &all_partitions(4), "consumer B");
    let committed_b = offsets_only(committed_map(&b.committed(OP_TIMEOUT).expect("committed() by B")));
    assert_eq!(committed_b, next, "committed() seen by B");
    // The commit metadata strings round-trip (OffsetFetch).
    let mut q = TopicPartitionList::new();
    for p in 0..4 {
        q.add_partition(topic, p);
    }
    let fetched_b = {
        let t = b.committed_offsets(q, OP_TIMEOUT).expect("committed_offsets by B");
        for e in t.elements() {
            assert!(e.error().is_ok(), "partition {}: {:?}", e.partition(), e.error());
        }
        committed_map(&t)
    };
    assert_eq!(fetched_b, to_commit, "committed offsets + metadata");
    close_bounded(b, "consumer B");
    broker.stop();
}

// ---------------------------------------------------------------------------
// 4. committed offsets and the group survive SIGTERM and kill -9 restarts
// ---------------------------------------------------------------------------

/// Join `group` alone, commit `offsets` (with metadata), leave.
fn member_commits(bootstrap: &str, group: &str, topic: &str, partitions: i32, offsets: &BTreeMap<i32, (i64, String)>) {
    let c: BaseConsumer = group_config(bootstrap, group, "durable-member").create().expect("member");
    c.subscribe(&[topic]).expect("subscribe");
    poll_until_assigned(&c, &all_partitions(partitions), "durable member");
    c.commit(&commit_list(topic, offsets), CommitMode::Sync).expect("synchronous commit");
    close_bounded(c, "durable member");
}

/// ListGroups lists `group` as an Empty (v4+) consumer group.
fn assert_group_listed(bootstrap: &str, group: &str, phase: &str) {
    wait_for(&format!("{phase}: ListGroups lists {group}"), SETTLE_TIMEOUT, || {
        let (v, groups) = match list_groups(bootstrap, &[]) {
            Ok(r) => r,
            Err(c) if code::retriable(c) => return Err(format!("error {c}")),
            Err(c) => panic!("{phase}: ListGroups error {c}"),
        };
        let g = groups.iter().find(|g| g.group == group).ok_or_else(|| format!("not in {groups:?}"))?;
        assert_eq!(g.protocol_type, "consumer", "{phase}: protocol type of {group}: {g:?}");
        if v >= 4 {
            assert_eq!(g.state, "Empty", "{phase}: {group} has no members: {g:?}");
        }
        Ok(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_and_group_survive_restarts() {
    let mut broker = start_broker();
    let bs = broker.bootstrap();
    let topic = "cg-durable";
    let group = "g-durable";
    create_topic(&bs, topic, 3).await;
    produce(&bs, topic, 3, 30, "durable").await; // 10 per partition

    let first: BTreeMap<i32, (i64, String)> = [(0, 4), (1, 7), (2, 10)].into_iter().map(|(p, o)| (p, (o, format!("first p{p}")))).collect();
    member_commits(&bs, group, topic, 3, &first);
    let before = read_committed(&bs, group, topic, 3);
    assert_eq!(before, first, "committed offsets before any restart");
    assert_group_listed(&bs, group, "before restart");

    // SIGTERM + restart.
    broker.stop();
    broker.restart();
    assert_eq!(read_committed(&bs, group, topic, 3), before, "committed offsets after a SIGTERM restart");
    assert_group_listed(&bs, group, "after SIGTERM restart");

    // A commit made after the restart, then kill -9 + restart.
    let second: BTreeMap<i32, (i64, String)> = [(0, 6), (1, 8), (2, 9)].into_iter().map(|(p, o)| (p, (o, format!("second p{p}")))).collect();
    member_commits(&bs, group, topic, 3, &second);
    let before = read_committed(&bs, group, topic, 3);
    assert_eq!(before, second, "committed offsets after the second commit");
    broker.kill9();
    broker.restart();
    assert_eq!(read_committed(&bs, group, topic, 3), before, "committed offsets after kill -9 + restart");
    assert_group_listed(&bs, group, "after kill -9 restart");

    // And a new member really starts there: p0 6..=9, p1 8..=9, p2 9.
    let c: BaseConsumer = group_config(&bs, group, "durable-resume").create().expect("member");
    c.subscribe(&[topic]).expect("subscribe");
    let got: BTreeSet<(i32, i64)> = poll_records(&c, 7, Duration::from_secs(60), GRACE).into_iter().collect();
    let want: BTreeSet<(i32, i64)> = [(0, 6), (0, 7), (0, 8), (0, 9), (1, 8), (1, 9), (2, 9)].into_iter().collect();
    assert_eq!(got, want, "records consumed after the restarts: exactly those after the committed offsets");
    close_bounded(c, "resuming member");
    broker.stop();
}

// ---------------------------------------------------------------------------
// 5. cooperative-sticky: a second member joins without the first one
//    giving up everything
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_rebalances_incrementally() {
    let mut broker = start_broker();
    let bs = broker.bootstrap();
    let topic = "cg-coop";
    let group = "g-coop";
    create_topic(&bs, topic, 6).await;
    let cfg = |id: &str| {
        let mut c = group_config(&bs, group, id);
        c.set("partition.assignment.strategy", "cooperative-sticky");
        c
    };

    let a = Member::start("a", cfg("coop-a"), topic);
    let alone = wait_members_settled("a alone", &[&a], 6);
    assert_eq!(a.protocol(), "cooperative", "the group must run the cooperative protocol");
    let seen = a.events().len();

    let b = Member::start("b", cfg("coop-b"), topic);
    let split = wait_members_settled("a + b", &[&a, &b], 6);
    assert_eq!(split.iter().map(|s| s.len()).collect::<Vec<_>>(), vec![3, 3], "cooperative-sticky balances 6 partitions over 2 members: {split:?}");
    assert!(split[0].is_subset(&alone[0]), "a keeps a subset of what it had");

    let events = a.events();
    let since_b = &events[seen..];
    let mut revoked = BTreeSet::new();
    for e in since_b {
        match e {
            RebalanceEvent::Revoke { partitions, after } => {
                assert!(!after.is_empty(), "a gave up ALL its partitions when b joined (eager-style), not incrementally: {since_b:?}");
                assert!(partitions.len() < 6, "a revoked everything: {since_b:?}");
                revoked.extend(partitions.iter().copied());
            }
            RebalanceEvent::Assign { .. } => {}
            RebalanceEvent::Error(err) => panic!("rebalance error on a: {err} ({since_b:?})"),
        }
    }
    assert_eq!(revoked, split[1], "a incrementally revoked exactly the partitions b now owns: {since_b:?}");
    for e in b.events() {
        if let RebalanceEvent::Revoke { partitions, .. } = &e {
            assert!(partitions.is_empty(), "b, the newcomer, had partitions revoked: {:?}", b.events());
        }
    }

    a.close();
    b.close();
    broker.stop();
}

// ---------------------------------------------------------------------------
// 6. static membership: a static member restarts within its session timeout
//    and gets its partitions back without a rebalance
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_member_rejoins_without_rebalance() {
    let mut broker = start_broker();
    let bs = broker.bootstrap();
    let topic = "cg-static";
    let group = "g-static";
    create_topic(&bs, topic, 4).await;
    let cfg = |client: &str, instance: &str| {
        let mut c = group_config(&bs, group, client);
        c.set("group.instance.id", instance).set("session.timeout.ms", "10000");
        c
    };

    let s1 = Member::start("s1", cfg("static-1", "instance-1"), topic);
    let s2 = Member::start("s2", cfg("static-2", "instance-2"), topic);
    let split = wait_members_settled("two static members", &[&s1, &s2], 4);
    let (s1_parts, s2_parts) = (split[0].clone(), split[1].clone());
    let s2_callbacks = s2.events().len();

    // librdkafka does not send LeaveGroup when a static member closes
    // (KIP-345): the coordinator keeps instance-1's slot for session.timeout.ms.
    let closed_at = Instant::now();
    s1.close();
    let s1b = Member::start("s1-restarted", cfg("static-1-restarted", "instance-1"), topic);
    wait_for("restarted instance-1 gets its old partitions", Duration::from_secs(30), || {
        let got = s1b.assignment_checked();
        if got == s1_parts {
            Ok(())
        } else {
            Err(format!("{got:?}, want {s1_parts:?}"))
        }
    });

    // Stay past the old member's session timeout (10 s from the close): the
    // replaced member id must not expire into a rebalance.
    let until = closed_at + Duration::from_secs(14);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(s1b.assignment_checked(), s1_parts, "instance-1 lost its partitions");
        assert_eq!(s2.assignment_checked(), s2_parts, "instance-2's assignment changed");
    }
    assert_eq!(s2.events().len(), s2_callbacks, "instance-2 saw rebalance callbacks: the static rejoin must not rebalance: {:?}", s2.events());
    for e in s1b.events() {
        match e {
            RebalanceEvent::Assign { partitions, .. } => {
                assert_eq!(partitions, s1_parts, "restarted instance-1 assignment: {:?}", s1b.events())
            }
            RebalanceEvent::Revoke { partitions, .. } => {
                assert!(partitions.is_empty(), "restarted instance-1 had partitions revoked (a rebalance): {:?}", s1b.events())
            }
            RebalanceEvent::Error(err) => panic!("rebalance error on restarted instance-1: {err}"),
        }
    }

    s1b.close();
    s2.close();
    broker.stop();
}

// ---------------------------------------------------------------------------
// 7. admin: DescribeGroups, ListGroups, DeleteGroups, OffsetDelete
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_describe_list_delete_groups() {
    let mut broker = start_broker();
    let bs = broker.bootstrap();
    let topic = "cg-admin";
    let other = "cg-admin-other";
    let group = "g-admin";
    create_topic(&bs, topic, 4).await;
    create_topic(&bs, other, 2).await;
    produce(&bs, topic, 4, 8, "admin").await;
    produce(&bs, other, 2, 4, "admin-other").await;

    // Offset 1 on every partition of both topics, committed while the group
    // has no members (a "simple" commit: generation -1, no member id), which
    // Kafka accepts for an empty group.
    {
        let c: BaseConsumer = group_config(&bs, group, "admin-simple-committer").create().expect("committer");
        let mut tpl = TopicPartitionList::new();
        for (t, n) in [(topic, 4), (other, 2)] {
            for p in 0..n {
                tpl.add_partition_offset(t, p, Offset::Offset(1)).unwrap();
            }
        }
        c.assign(&tpl).expect("assign");
        c.commit(&tpl, CommitMode::Sync).expect("simple commit");
        close_bounded(c, "simple committer");
    }

    let m1 = Member::start("m1", group_config(&bs, group, "admin-member-1"), topic);
    let m2 = Member::start("m2", group_config(&bs, group, "admin-member-2"), topic);
    let split = wait_members_settled("admin group", &[&m1, &m2], 4);
    let by_client: BTreeMap<String, BTreeSet<i32>> =
        [("admin-member-1".to_string(), split[0].clone()), ("admin-member-2".to_string(), split[1].clone())].into_iter().collect();

    // DescribeGroups (raw): Stable, "consumer", "range", both members with
    // their client ids, hosts and the assignments they actually have.
    let g = describe_group_until(&bs, group, "DescribeGroups shows the stable group", |g| {
        let state: &str = &g.group_state;
        if g.error_code != code::NONE || state != "Stable" || g.members.len() != 2 {
            return Err("not Stable with 2 members".into());
        }
        Ok(())
    });
    assert_eq!(st(&g.protocol_type), "consumer", "protocol type: {g:?}");
    assert_eq!(st(&g.protocol_data), "range", "selected assignor: {g:?}");
    let mut member_ids = BTreeSet::new();
    for m in &g.members {
        let client: &str = &m.client_id;
        assert!(!m.member_id.is_empty(), "member id: {m:?}");
        assert!(!m.client_host.is_empty(), "client host: {m:?}");
        member_ids.insert(st(&m.member_id));
        let want = by_client.get(client).unwrap_or_else(|| panic!("unexpected client id {client:?} in {g:?}"));
        assert_eq!(
            decode_assignment(&m.member_assignment),
            [(topic.to_string(), want.clone())].into_iter().collect(),
            "member {client}: assignment in DescribeGroups vs. what the consumer has"
        );
        assert_eq!(decode_subscription_topics(&m.member_metadata), vec![topic.to_string()], "member {client}: subscription in DescribeGroups");
    }
    assert_eq!(member_ids.len(), 2, "distinct member ids: {g:?}");

    // The same through librdkafka's list-groups call.
    {
        let lister: BaseConsumer = consumer_config(&bs).create().expect("lister");
        let gl = lister.fetch_group_list(Some(group), OP_TIMEOUT).expect("fetch_group_list");
        let info = gl.groups().iter().find(|i| i.name() == group).unwrap_or_else(|| panic!("{group} not in librdkafka's group list"));
        assert_eq!(info.state(), "Stable");
        assert_eq!(info.protocol_type(), "consumer");
        assert_eq!(info.protocol(), "range");
        assert_eq!(info.members().len(), 2);
        for m in info.members() {
            let want = by_client.get(m.client_id()).unwrap_or_else(|| panic!("unexpected client id {:?}", m.client_id()));
            let assigned = decode_assignment(m.assignment().unwrap_or_default());
            assert_eq!(assigned.get(topic), Some(want), "librdkafka's view of {}'s assignment", m.client_id());
        }
        close_bounded(lister, "group lister");
    }

    // ListGroups: listed as a consumer group; the state filter (v4+) works.
    let (_, groups) = list_groups_ok(&bs, &[]);
    let listed = groups.iter().find(|l| l.group == group).unwrap_or_else(|| panic!("{group} not in ListGroups: {groups:?}"));
    assert_eq!(listed.protocol_type, "consumer");
    let (_, stable) = list_groups_ok(&bs, &["Stable"]);
    assert!(stable.iter().any(|l| l.group == group && l.state == "Stable"), "ListGroups(states=[Stable]) must list {group}: {stable:?}");
    let (_, empty) = list_groups_ok(&bs, &["Empty"]);
    assert!(!empty.iter().any(|l| l.group == group), "ListGroups(states=[Empty]) must not list the live {group}: {empty:?}");

    // DeleteGroups on a live group: NON_EMPTY_GROUP.
    let admin = admin_client(&bs);
    let res = admin.delete_groups(&[group], &admin_opts()).await.expect("DeleteGroups request");
    assert_eq!(res, vec![Err((group.to_string(), RDKafkaErrorCode::NonEmptyGroup))], "DeleteGroups of a group with members");
    assert_eq!(delete_groups_raw(&bs, &[group]), vec![(group.to_string(), code::NON_EMPTY_GROUP)], "raw DeleteGroups of a group with members");

    // OffsetDelete: refused for a topic the group is subscribed to, done for
    // one it is not subscribed to.
    let (top, parts) = offset_delete(&bs, group, &[(topic, &[0]), (other, &[0])]);
    assert_eq!(top, code::NONE, "OffsetDelete top-level error: {parts:?}");
    let parts: BTreeMap<(String, i32), i16> = parts.into_iter().map(|(t, p, e)| ((t, p), e)).collect();
    assert_eq!(
        parts,
        [((topic.to_string(), 0), code::GROUP_SUBSCRIBED_TO_TOPIC), ((other.to_string(), 0), code::NONE)].into_iter().collect(),
        "OffsetDelete per-partition errors while the group is subscribed to {topic}"
    );
    let (top, offs) = offset_fetch(&bs, group, &[(topic, &[0, 1, 2, 3]), (other, &[0, 1])]);
    assert_eq!(top, code::NONE, "OffsetFetch: {offs:?}");
    for p in 0..4 {
        assert_eq!(fetched(&offs, topic, p), 1, "{topic}-{p} keeps its offset");
    }
    assert_eq!(fetched(&offs, other, 0), -1, "{other}-0 was deleted");
    assert_eq!(fetched(&offs, other, 1), 1, "{other}-1 was not touched");

    // Members leave: the group becomes Empty.
    m1.close();
    m2.close();
    describe_group_until(&bs, group, "group Empty after both members left", |g| {
        let state: &str = &g.group_state;
        if g.error_code == code::NONE && state == "Empty" && g.members.is_empty() {
            Ok(())
        } else {
            Err("not Empty".into())
        }
    });
    let (_, empty) = list_groups_ok(&bs, &["Empty"]);
    assert!(empty.iter().any(|l| l.group == group && l.state == "Empty"), "ListGroups(states=[Empty]) must list {group} now: {empty:?}");

    // OffsetDelete on the empty group succeeds for the formerly subscribed topic.
    let (top, parts) = offset_delete(&bs, group, &[(topic, &[0])]);
    assert_eq!((top, parts), (code::NONE, vec![(topic.to_string(), 0, code::NONE)]), "OffsetDelete on an empty group");
    let (_, offs) = offset_fetch(&bs, group, &[(topic, &[0, 1, 2, 3])]);
    assert_eq!(fetched(&offs, topic, 0), -1, "{topic}-0 was deleted");
    assert_eq!(fetched(&offs, topic, 1), 1, "{topic}-1 was not touched");

    // DeleteGroups on the empty group succeeds; its offsets are gone.
    let res = admin.delete_groups(&[group], &admin_opts()).await.expect("DeleteGroups request");
    assert_eq!(res, vec![Ok(group.to_string())], "DeleteGroups of an empty group");
    let (top, offs) = offset_fetch(&bs, group, &[(topic, &[0, 1, 2, 3]), (other, &[0, 1])]);
    // Kafka answers OffsetFetch for an unknown group with -1 everywhere (the
    // newer coordinator may say GROUP_ID_NOT_FOUND instead).
    if top != code::GROUP_ID_NOT_FOUND {
        assert_eq!(top, code::NONE, "OffsetFetch after DeleteGroups: {offs:?}");
        assert_eq!(offs.len(), 6, "every requested partition answered: {offs:?}");
        for ((t, p), (o, _, e)) in &offs {
            assert_eq!((*o, *e), (-1, code::NONE), "{t}-{p} after DeleteGroups: {offs:?}");
        }
    }
    let after = read_committed(&bs, group, topic, 4);
    assert!(after.values().all(|(o, _)| *o == -1), "librdkafka sees no committed offsets after DeleteGroups: {after:?}");
    let (_, groups) = list_groups_ok(&bs, &[]);
    assert!(!groups.iter().any(|l| l.group == group), "deleted group still listed: {groups:?}");
    let g = describe_group(&bs, group);
    let state: &str = &g.group_state;
    assert!(
        (g.error_code == code::NONE && state == "Dead") || g.error_code == code::GROUP_ID_NOT_FOUND,
        "DescribeGroups of a deleted group: Dead or GROUP_ID_NOT_FOUND: {g:?}"
    );
    assert_eq!(delete_groups_raw(&bs, &[group]), vec![(group.to_string(), code::GROUP_ID_NOT_FOUND)], "deleting a deleted group");
    broker.stop();
}

// ---------------------------------------------------------------------------
// 8. raw group protocol: FindCoordinator, MEMBER_ID_REQUIRED, the member
//    lifecycle and its error codes
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_group_requires_member_id() {
    let mut broker = start_broker();
    let bs = broker.bootstrap();
    let topic = "cg-raw";
    let group = "g-raw";
    create_topic(&bs, topic, 2).await;

    // FindCoordinator (key type 0 = group), every version up to v4: this
    // single broker is the coordinator. COORDINATOR_NOT_AVAILABLE is allowed
    // while `__consumer_offsets` is being created.
    let fc_max = api_max_version(&bs, FindCoordinatorRequest::KEY);
    assert!(fc_max >= 4, "FindCoordinator v4 (batched keys) expected, broker has v{fc_max}");
    for v in 0..=fc_max.min(4) {
        let mut req = FindCoordinatorRequest::default();
        if v >= 1 {
            req = req.with_key_type(0);
        }
        if v >= 4 {
            req = req.with_coordinator_keys(vec![sb(group)]);
        } else {
            req = req.with_key(sb(group));
        }
        wait_for(&format!("FindCoordinator v{v}"), SETTLE_TIMEOUT, || {
            let mut conn = RawConn::connect(&bs);
            let resp = conn.roundtrip(v, &req);
            let (err, host, port) = if v >= 4 {
                assert_eq!(resp.coordinators.len(), 1, "v{v}: {resp:?}");
                let c = &resp.coordinators[0];
                assert_eq!(st(&c.key), group, "v{v}: coordinator key");
                (c.error_code, st(&c.host), c.port)
            } else {
                (resp.error_code, st(&resp.host), resp.port)
            };
            if err == code::COORDINATOR_NOT_AVAILABLE {
                return Err(format!("v{v}: COORDINATOR_NOT_AVAILABLE"));
            }
            assert_eq!(err, code::NONE, "FindCoordinator v{v}: {resp:?}");
            assert_eq!((host.as_str(), port), ("127.0.0.1", broker.port() as i32), "FindCoordinator v{v}: coordinator address");
            Ok(())
        });
    }

    let jv = version_for(&bs, JoinGroupRequest::KEY, 5, 4);
    let sub = encode_subscription(&[topic]);
    let join = |member_id: &str, session_ms: i32| {
        JoinGroupRequest::default()
            .with_group_id(group_id(group))
            .with_session_timeout_ms(session_ms)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(sb(member_id))
            .with_protocol_type(sb("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(sb("range")).with_metadata(sub.clone())])
    };
    let mut conn = RawConn::connect(&bs);

    // Session timeout below group.min.session.timeout.ms (6000): refused.
    let r = conn.roundtrip(jv, &join("", 1000));
    assert_eq!(r.error_code, code::INVALID_SESSION_TIMEOUT, "JoinGroup v{jv} with a 1 s session: {r:?}");

    // v4+: an empty member id gets MEMBER_ID_REQUIRED and a member id to use.
    let r = conn.roundtrip(jv, &join("", 30_000));
    assert_eq!(r.error_code, code::MEMBER_ID_REQUIRED, "first JoinGroup v{jv}: {r:?}");
    let mid = st(&r.member_id);
    assert!(!mid.is_empty(), "MEMBER_ID_REQUIRED must come with a member id: {r:?}");

    // Rejoin with it: generation 1+, we are the leader and see ourselves.
    let r = conn.roundtrip(jv, &join(&mid, 30_000));
    assert_eq!(r.error_code, code::NONE, "JoinGroup with the given member id: {r:?}");
    assert_eq!(st(&r.member_id), mid, "member id kept: {r:?}");
    assert_eq!(st(&r.leader), mid, "the sole member is the leader: {r:?}");
    assert!(r.generation_id >= 1, "generation: {r:?}");
    assert_eq!(r.protocol_name.as_deref().map(st), Some("range".to_string()), "selected protocol: {r:?}");
    assert_eq!(r.members.len(), 1, "the leader gets the member list: {r:?}");
    assert_eq!(st(&r.members[0].member_id), mid);
    assert_eq!(r.members[0].metadata, sub, "member metadata is passed through as sent");
    let generation = r.generation_id;

    // SyncGroup as leader: we get back the assignment we sent.
    let assignment = encode_assignment(topic, &[0, 1]);
    let sv = version_for(&bs, SyncGroupRequest::KEY, 5, 0);
    let mut sync = SyncGroupRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(generation)
        .with_member_id(sb(&mid))
        .with_assignments(vec![SyncGroupRequestAssignment::default().with_member_id(sb(&mid)).with_assignment(assignment.clone())]);
    if sv >= 5 {
        sync = sync.with_protocol_type(Some(sb("consumer"))).with_protocol_name(Some(sb("range")));
    }
    let r = conn.roundtrip(sv, &sync);
    assert_eq!(r.error_code, code::NONE, "SyncGroup v{sv}: {r:?}");
    assert_eq!(r.assignment, assignment, "SyncGroup returns the leader's assignment for us");

    // Heartbeat: fine with the right generation; ILLEGAL_GENERATION with a
    // wrong one; UNKNOWN_MEMBER_ID for a member that is not in the group.
    let hv = version_for(&bs, HeartbeatRequest::KEY, 4, 0);
    let hb = |gen: i32, member: &str| HeartbeatRequest::default().with_group_id(group_id(group)).with_generation_id(gen).with_member_id(sb(member));
    assert_eq!(conn.roundtrip(hv, &hb(generation, &mid)).error_code, code::NONE, "Heartbeat");
    assert_eq!(conn.roundtrip(hv, &hb(generation + 7, &mid)).error_code, code::ILLEGAL_GENERATION, "Heartbeat with a wrong generation");
    assert_eq!(conn.roundtrip(hv, &hb(generation, "no-such-member")).error_code, code::UNKNOWN_MEMBER_ID, "Heartbeat from an unknown member");

    // DescribeGroups: Stable, our member, our client id and assignment.
    let g = describe_group(&bs, group);
    assert_eq!(g.error_code, code::NONE, "{g:?}");
    assert_eq!(st(&g.group_state), "Stable", "{g:?}");
    assert_eq!(st(&g.protocol_type), "consumer", "{g:?}");
    assert_eq!(st(&g.protocol_data), "range", "{g:?}");
    assert_eq!(g.members.len(), 1, "{g:?}");
    assert_eq!(st(&g.members[0].member_id), mid);
    assert_eq!(st(&g.members[0].client_id), "shardlog-it-raw");
    assert_eq!(g.members[0].member_assignment, assignment);

    // OffsetCommit as the member (and refused with a stale generation).
    let ov = version_for(&bs, OffsetCommitRequest::KEY, 8, 2);
    let commit = |gen: i32, offset: i64| {
        OffsetCommitRequest::default().with_group_id(group_id(group)).with_generation_id_or_member_epoch(gen).with_member_id(sb(&mid)).with_topics(vec![
            OffsetCommitRequestTopic::default().with_name(topic_name_of(topic)).with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_metadata(Some(sb("raw-meta")))]),
        ])
    };
    let r = conn.roundtrip(ov, &commit(generation, 5));
    assert_eq!(r.topics.len(), 1, "OffsetCommit v{ov}: {r:?}");
    assert_eq!(r.topics[0].partitions[0].error_code, code::NONE, "OffsetCommit v{ov}: {r:?}");
    let r = conn.roundtrip(ov, &commit(generation - 1, 9));
    assert_eq!(r.topics[0].partitions[0].error_code, code::ILLEGAL_GENERATION, "OffsetCommit with a stale generation: {r:?}");
    let (top, offs) = offset_fetch(&bs, group, &[(topic, &[0, 1])]);
    assert_eq!(top, code::NONE);
    assert_eq!(offs.get(&(topic.to_string(), 0)), Some(&(5, Some("raw-meta".to_string()), code::NONE)), "OffsetFetch p0: {offs:?}");
    assert_eq!(fetched(&offs, topic, 1), -1, "OffsetFetch p1 (never committed): {offs:?}");

    // LeaveGroup: the group is Empty afterwards.
    let lv = version_for(&bs, LeaveGroupRequest::KEY, 4, 0);
    let mut leave = LeaveGroupRequest::default().with_group_id(group_id(group));
    if lv >= 3 {
        leave = leave.with_members(vec![MemberIdentity::default().with_member_id(sb(&mid))]);
    } else {
        leave = leave.with_member_id(sb(&mid));
    }
    let r = conn.roundtrip(lv, &leave);
    assert_eq!(r.error_code, code::NONE, "LeaveGroup v{lv}: {r:?}");
    if lv >= 3 {
        assert_eq!(r.members.len(), 1, "LeaveGroup v{lv}: {r:?}");
        assert_eq!(r.members[0].error_code, code::NONE, "LeaveGroup v{lv}: {r:?}");
    }
    let g = describe_group(&bs, group);
    assert_eq!((g.error_code, st(&g.group_state), g.members.len()), (code::NONE, "Empty".to_string(), 0), "after LeaveGroup: {g:?}");
    // The committed offset outlives the membership.
    let (_, offs) = offset_fetch(&bs, group, &[(topic, &[0])]);
    assert_eq!(fetched(&offs, topic, 0), 5, "{offs:?}");
    broker.stop();
}
