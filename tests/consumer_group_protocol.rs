//! The consumer group protocol of KIP-848 (`group.protocol=consumer`), through
//! the real `shardlog` binary: librdkafka 2.12 consumers (rdkafka crate) for
//! what a client does — share partitions, hand them over only after they were
//! revoked, leave, commit and resume, die — and raw frames (kafka-protocol
//! crate) for ConsumerGroupHeartbeat's error cases, ConsumerGroupDescribe,
//! OffsetCommit / OffsetFetch v9, ListGroups v5 and the group surviving a
//! broker restart. Every expectation is Apache Kafka's behaviour (its
//! GroupMetadataManager, ConsumerGroup and CurrentAssignmentBuilder).
//!
//! Brokers here heartbeat members every 500 ms (`group.consumer.heartbeat.interval.ms`)
//! so reconciliation takes seconds, not tens of seconds. Waits are bounded
//! and generous (a shared 2-core machine).
//!
//! `session_expiry_of_a_killed_consumer` runs this test binary again as a
//! child process (environment variable `KIP848_CHILD_CONSUMER`), so that a
//! member can be SIGKILLed: in that mode the same test function is the child.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as HbTopicPartitions;
use kafka_protocol::messages::consumer_group_heartbeat_response::Assignment as HbAssignment;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
use kafka_protocol::messages::{
    ApiVersionsRequest, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    CreatePartitionsRequest, DescribeGroupsRequest, GroupId, JoinGroupRequest, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, OffsetFetchResponse,
    TopicName,
};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use uuid::Uuid;

use common::*;

/// Broker settings for every test here.
const BROKER: &[(&str, &str)] = &[("offsets.topic.num.partitions", "4"), ("group.consumer.heartbeat.interval.ms", "500")];
/// How long a group may take to settle.
const SETTLE: Duration = Duration::from_secs(60);

/// Kafka error codes (org.apache.kafka.common.protocol.Errors).
mod code {
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const INVALID_REQUEST: i16 = 42;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
    pub const UNRELEASED_INSTANCE_ID: i16 = 111;
    pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
    pub const STALE_MEMBER_EPOCH: i16 = 113;
    pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
    pub const FENCED_INSTANCE_ID: i16 = 82;
}

fn broker(extra: &[(&str, &str)]) -> Broker {
    let mut all: Vec<(&str, &str)> = BROKER.to_vec();
    all.extend_from_slice(extra);
    Broker::start(&all)
}

// ---------------------------------------------------------------------------
// librdkafka consumers that record who owns what, when
// ---------------------------------------------------------------------------

/// Partition ownership across the consumers of one test, updated from the
/// rebalance callbacks: a consumer drops partitions before it acknowledges
/// their revocation and takes them after the broker gave them, so two owners
/// at once would be a broker bug.
#[derive(Default)]
struct Ownership {
    owner: Mutex<HashMap<(String, i32), String>>,
    violations: Mutex<Vec<String>>,
}

struct Ctx {
    name: String,
    ownership: Arc<Ownership>,
    assigned: Mutex<BTreeSet<(String, i32)>>,
    consumed: Mutex<Vec<(i32, i64)>>,
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = r {
            let mut owner = self.ownership.owner.lock().unwrap();
            for e in tpl.elements() {
                let tp = (e.topic().to_string(), e.partition());
                if owner.get(&tp) == Some(&self.name) {
                    owner.remove(&tp);
                }
                self.assigned.lock().unwrap().remove(&tp);
            }
        }
    }

    fn post_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = r {
            let mut owner = self.ownership.owner.lock().unwrap();
            for e in tpl.elements() {
                let tp = (e.topic().to_string(), e.partition());
                if let Some(other) = owner.get(&tp).filter(|o| **o != self.name) {
                    self.ownership.violations.lock().unwrap().push(format!("{}-{} given to {} while {other} owned it", tp.0, tp.1, self.name));
                }
                owner.insert(tp.clone(), self.name.clone());
                self.assigned.lock().unwrap().insert(tp);
            }
        }
    }
}

type Cg = BaseConsumer<Ctx>;

fn cg_config(bootstrap: &str, group: &str, name: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("group.id", group)
        .set("group.protocol", "consumer")
        .set("client.id", name)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100");
    c
}

fn cg(bootstrap: &str, group: &str, name: &str, ownership: &Arc<Ownership>, extra: &[(&str, &str)], topics: &[&str]) -> Cg {
    let mut c = cg_config(bootstrap, group, name);
    for (k, v) in extra {
        c.set(*k, *v);
    }
    let ctx = Ctx { name: name.to_string(), ownership: ownership.clone(), assigned: Mutex::default(), consumed: Mutex::default() };
    let consumer: Cg = c.create_with_context(ctx).expect("create consumer");
    consumer.subscribe(topics).expect("subscribe");
    consumer
}

fn owned(c: &Cg) -> BTreeSet<(String, i32)> {
    c.context().assigned.lock().unwrap().clone()
}

fn partitions_of(c: &Cg) -> BTreeSet<i32> {
    owned(c).into_iter().map(|(_, p)| p).collect()
}

/// Polls every consumer (their callbacks and records run in poll) until
/// `done` holds or `timeout` passes; returns whether it held.
fn poll_until(consumers: &[&Cg], timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        for c in consumers {
            while let Some(r) = c.poll(Duration::from_millis(20)) {
                match r {
                    Ok(m) => c.context().consumed.lock().unwrap().push((m.partition(), m.offset())),
                    Err(e) => eprintln!("{}: consumer error (polling on): {e}", c.context().name),
                }
            }
        }
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// No partition had two owners: not as the consumers saw it, and not in the
/// broker's own index (it logs an error if reconciliation ever hands out a
/// partition another member holds).
fn no_violations(o: &Ownership, b: &Broker) {
    let v = o.violations.lock().unwrap();
    assert!(v.is_empty(), "a partition had two owners: {v:?}");
    assert!(!b.output().contains("partition held twice"), "the broker saw a partition held twice");
}

async fn produce(bootstrap: &str, topic: &str, partitions: i32, n: usize) -> Vec<(i32, i64)> {
    let producer: FutureProducer = producer_config(bootstrap).create().expect("producer");
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let v = format!("v{i}");
        let rec = FutureRecord::to(topic).partition(i as i32 % partitions).key(&v).payload(&v);
        match producer.send(rec, Duration::from_secs(60)).await {
            Ok(d) => out.push((d.partition, d.offset)),
            Err((e, _)) => panic!("record {i} not acknowledged: {e}"),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Raw frames
// ---------------------------------------------------------------------------

fn tname(s: &str) -> TopicName {
    TopicName(sb(s))
}

fn join_req(group: &str, member: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_member_id(sb(member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(topics.iter().map(|t| tname(t)).collect()))
        .with_topic_partitions(Some(Vec::new()))
}

fn beat_req(group: &str, member: &str, epoch: i32, owned: &BTreeMap<Uuid, Vec<i32>>) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_member_id(sb(member))
        .with_member_epoch(epoch)
        .with_topic_partitions(Some(owned.iter().map(|(t, ps)| HbTopicPartitions::default().with_topic_id(*t).with_partitions(ps.clone())).collect()))
}

fn hb(conn: &mut RawConn, version: i16, req: &ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
    conn.roundtrip(version, req)
}

fn assignment_map(a: &Option<HbAssignment>) -> BTreeMap<Uuid, Vec<i32>> {
    let mut out = BTreeMap::new();
    for tp in a.iter().flat_map(|a| a.topic_partitions.iter()) {
        let mut ps = tp.partitions.clone();
        ps.sort();
        out.insert(tp.topic_id, ps);
    }
    out
}

fn count(a: &BTreeMap<Uuid, Vec<i32>>) -> usize {
    a.values().map(Vec::len).sum()
}

fn describe(conn: &mut RawConn, version: i16, groups: &[&str]) -> ConsumerGroupDescribeResponse {
    conn.roundtrip(version, &ConsumerGroupDescribeRequest::default().with_group_ids(groups.iter().map(|g| GroupId(sb(g))).collect()))
}

fn topic_id(conn: &mut RawConn, topic: &str) -> Uuid {
    let md = metadata_raw(conn, 12, Some(&[topic][..]), false);
    let t = md.topics.iter().find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic)).expect("topic in metadata");
    assert_eq!(t.error_code, 0, "metadata for {topic}");
    t.topic_id
}

fn commit_v(conn: &mut RawConn, version: i16, group: &str, member: &str, epoch: i32, topic: &str, offsets: &[(i32, i64)]) -> Vec<i16> {
    let req =
        OffsetCommitRequest::default().with_group_id(GroupId(sb(group))).with_generation_id_or_member_epoch(epoch).with_member_id(sb(member)).with_topics(
            vec![OffsetCommitRequestTopic::default().with_name(tname(topic)).with_partitions(
                offsets.iter().map(|(p, o)| OffsetCommitRequestPartition::default().with_partition_index(*p).with_committed_offset(*o)).collect(),
            )],
        );
    let resp = conn.roundtrip(version, &req);
    resp.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect()
}

/// OffsetFetch v9: (group error, offsets by partition).
fn fetch_v9(conn: &mut RawConn, group: &str, member: Option<&str>, epoch: i32, topic: &str, partitions: &[i32]) -> (i16, BTreeMap<i32, i64>) {
    let req = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(sb(group)))
        .with_member_id(member.map(sb))
        .with_member_epoch(epoch)
        .with_topics(Some(vec![OffsetFetchRequestTopics::default().with_name(tname(topic)).with_partition_indexes(partitions.to_vec())]))]);
    let resp: OffsetFetchResponse = conn.roundtrip(9, &req);
    let g = &resp.groups[0];
    (g.error_code, g.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.committed_offset))).collect())
}

fn list_groups(conn: &mut RawConn, types: &[&str]) -> Vec<ListedGroup> {
    let resp = conn.roundtrip(5, &ListGroupsRequest::default().with_types_filter(types.iter().map(|t| sb(t)).collect()));
    assert_eq!(resp.error_code, 0);
    resp.groups
}

/// Heartbeats a raw member until it owns `want` partitions, acknowledging
/// each answer; returns (epoch, owned).
fn raw_settle(
    conn: &mut RawConn,
    group: &str,
    member: &str,
    mut epoch: i32,
    mut owned: BTreeMap<Uuid, Vec<i32>>,
    want: usize,
) -> (i32, BTreeMap<Uuid, Vec<i32>>) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let r = hb(conn, 1, &beat_req(group, member, epoch, &owned));
        assert_eq!(r.error_code, 0, "heartbeat of {member}: {:?}", r.error_message);
        epoch = r.member_epoch;
        if r.assignment.is_some() {
            owned = assignment_map(&r.assignment);
        }
        if count(&owned) == want {
            return (epoch, owned);
        }
        assert!(Instant::now() < deadline, "{member} never reached {want} partitions (has {owned:?})");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// The broker advertises the consumer protocol's APIs and the versions it needs.
#[test]
fn api_versions_advertise_the_consumer_protocol() {
    let b = broker(&[]);
    let mut conn = RawConn::connect(&b.bootstrap());
    let resp = conn.roundtrip(3, &ApiVersionsRequest::default().with_client_software_name(sb("it")).with_client_software_version(sb("1")));
    let range = |k: i16| resp.api_keys.iter().find(|a| a.api_key == k).map(|a| (a.min_version, a.max_version));
    assert_eq!(range(68), Some((0, 1)), "ConsumerGroupHeartbeat");
    assert_eq!(range(69), Some((0, 1)), "ConsumerGroupDescribe");
    assert_eq!(range(8).map(|r| r.1), Some(9), "OffsetCommit v9");
    assert_eq!(range(9).map(|r| r.1), Some(9), "OffsetFetch v9");
    assert_eq!(range(16).map(|r| r.1), Some(5), "ListGroups v5");
}

/// Two consumers share 4 partitions, 2 each, never one partition owned by
/// both; when one leaves the other gets all 4. The group is described as Kafka does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_share_four_partitions_then_one_leaves() {
    let b = broker(&[]);
    let bs = b.bootstrap();
    let topic = topic_name("kip848-share");
    let group = format!("{topic}-g");
    create_topic(&bs, &topic, 4).await;
    let own = Arc::new(Ownership::default());
    let all: BTreeSet<i32> = (0..4).collect();

    let a = cg(&bs, &group, "a", &own, &[], &[&topic]);
    assert!(poll_until(&[&a], SETTLE, || partitions_of(&a) == all), "a alone never got all 4: {:?}", owned(&a));
    let c = cg(&bs, &group, "b", &own, &[], &[&topic]);
    let split = poll_until(&[&a, &c], SETTLE, || {
        let (x, y) = (partitions_of(&a), partitions_of(&c));
        x.len() == 2 && y.len() == 2 && x.union(&y).copied().collect::<BTreeSet<_>>() == all
    });
    assert!(split, "never split 2/2: a {:?}, b {:?}", owned(&a), owned(&c));
    no_violations(&own, &b);

    // As Kafka: Stable, two members at the group epoch, the default uniform
    // assignor, each member's assignment with topic names.
    let mut conn = RawConn::connect(&bs);
    let stable = poll_until(&[&a, &c], SETTLE, || describe(&mut conn, 1, &[&group]).groups[0].group_state.as_str() == "Stable");
    assert!(stable, "group never Stable");
    let d = describe(&mut conn, 1, &[&group]);
    let g = &d.groups[0];
    assert_eq!((g.error_code, g.assignor_name.as_str()), (0, "uniform"));
    assert_eq!(g.members.len(), 2);
    assert_eq!(g.assignment_epoch, g.group_epoch);
    let mut clients: Vec<&str> = g.members.iter().map(|m| m.client_id.as_str()).collect();
    clients.sort();
    assert_eq!(clients, vec!["a", "b"]);
    for m in &g.members {
        assert_eq!(m.member_epoch, g.group_epoch, "member {} at the group epoch", m.member_id.as_str());
        assert_eq!(m.member_type, 1, "consumer-protocol member");
        assert_eq!(m.subscribed_topic_names.iter().map(|t| t.0.to_string()).collect::<Vec<_>>(), vec![topic.clone()]);
        let parts: Vec<i32> = m
            .assignment
            .topic_partitions
            .iter()
            .flat_map(|tp| {
                assert_eq!(tp.topic_name.0.as_str(), topic);
                tp.partitions.clone()
            })
            .collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(m.assignment, m.target_assignment);
    }
    // v0 answers the same without the member type.
    let d0 = describe(&mut conn, 0, &[&group]);
    assert_eq!((d0.groups[0].members.len(), d0.groups[0].members[0].member_type), (2, -1));

    // ListGroups v5: listed as a consumer group, not as a classic one;
    // DescribeGroups (the classic API) sees it as Dead, as Kafka answers.
    let listed = list_groups(&mut conn, &["consumer"]);
    let l = listed.iter().find(|l| l.group_id.0.as_str() == group).expect("listed as consumer group");
    assert_eq!((l.group_type.as_str(), l.protocol_type.as_str(), l.group_state.as_str()), ("consumer", "consumer", "Stable"));
    assert!(list_groups(&mut conn, &["classic"]).iter().all(|l| l.group_id.0.as_str() != group));
    let dg = conn.roundtrip(5, &DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(&group))]));
    assert_eq!((dg.groups[0].error_code, dg.groups[0].group_state.as_str()), (0, "Dead"));

    // b leaves (close sends the leaving heartbeat): a gets everything back.
    let leave_at = Instant::now();
    drop(c);
    assert!(poll_until(&[&a], SETTLE, || partitions_of(&a) == all), "a never got all 4 back: {:?}", owned(&a));
    // A leave is immediate, not a session timeout (45 s by default).
    assert!(leave_at.elapsed() < Duration::from_secs(30), "took {:?}", leave_at.elapsed());
    no_violations(&own, &b);
    let d = describe(&mut conn, 1, &[&group]);
    assert_eq!(d.groups[0].members.len(), 1);
}

/// Offsets committed by one consumer are where the next one resumes: every
/// record is consumed once across both, no gap, no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_resume_across_consumer_restart() {
    let b = broker(&[]);
    let bs = b.bootstrap();
    let topic = topic_name("kip848-resume");
    let group = format!("{topic}-g");
    create_topic(&bs, &topic, 4).await;
    let mut all: BTreeSet<(i32, i64)> = produce(&bs, &topic, 4, 40).await.into_iter().collect();
    let own = Arc::new(Ownership::default());

    let a = cg(&bs, &group, "a", &own, &[], &[&topic]);
    assert!(poll_until(&[&a], SETTLE, || a.context().consumed.lock().unwrap().len() >= 20), "a consumed too little");
    let first: Vec<(i32, i64)> = a.context().consumed.lock().unwrap().clone();
    a.commit_consumer_state(CommitMode::Sync).expect("commit (OffsetCommit v9 with the member epoch)");
    drop(a);

    all.extend(produce(&bs, &topic, 4, 20).await);
    let c = cg(&bs, &group, "b", &own, &[], &[&topic]);
    let want = all.len() - first.len();
    assert!(
        poll_until(&[&c], SETTLE, || c.context().consumed.lock().unwrap().len() >= want),
        "b consumed {} of {want}",
        c.context().consumed.lock().unwrap().len()
    );
    // A little longer: nothing more (duplicates) may come.
    poll_until(&[&c], Duration::from_secs(2), || false);
    let second: Vec<(i32, i64)> = c.context().consumed.lock().unwrap().clone();
    let mut seen = BTreeSet::new();
    for r in first.iter().chain(second.iter()) {
        assert!(seen.insert(*r), "record {r:?} consumed twice");
    }
    assert_eq!(seen, all, "every record once across both consumers");
}

/// A consumer killed with SIGKILL sends no leave: its partitions move only
/// when its session (`group.consumer.session.timeout.ms`) is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_of_a_killed_consumer() {
    const CHILD: &str = "KIP848_CHILD_CONSUMER";
    if let Ok(spec) = std::env::var(CHILD) {
        // Child mode: join, report the assignment, consume until killed.
        let parts: Vec<&str> = spec.split('|').collect();
        let own = Arc::new(Ownership::default());
        let c = cg(parts[0], parts[1], "child", &own, &[], &[parts[2]]);
        let mut reported = 0;
        poll_until(&[&c], Duration::from_secs(120), || {
            let n = partitions_of(&c).len();
            if n != reported {
                reported = n;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "\nCHILD-OWNS {n}");
                let _ = out.flush();
            }
            false
        });
        std::mem::forget(c);
        return;
    }
    let b = broker(&[("group.consumer.session.timeout.ms", "6000")]);
    let bs = b.bootstrap();
    let topic = topic_name("kip848-expiry");
    let group = format!("{topic}-g");
    create_topic(&bs, &topic, 4).await;
    let own = Arc::new(Ownership::default());
    let all: BTreeSet<i32> = (0..4).collect();
    let a = cg(&bs, &group, "survivor", &own, &[], &[&topic]);
    assert!(poll_until(&[&a], SETTLE, || partitions_of(&a) == all));

    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["session_expiry_of_a_killed_consumer", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, format!("{bs}|{group}|{topic}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child consumer");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("child stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(pos) = line.find("CHILD-OWNS ") {
                let _ = tx.send(line[pos + 11..].trim().parse::<usize>().unwrap_or(0));
            }
        }
    });
    let mut child_owns = 0;
    let split = poll_until(&[&a], SETTLE, || {
        while let Ok(n) = rx.try_recv() {
            child_owns = n;
        }
        child_owns == 2 && partitions_of(&a).len() == 2
    });
    if !split {
        let _ = child.kill();
        panic!("never split 2/2 with the child (child owns {child_owns}, survivor {:?})", owned(&a));
    }
    child.kill().expect("SIGKILL the child");
    let _ = child.wait();
    let killed = Instant::now();
    assert!(poll_until(&[&a], Duration::from_secs(60), || partitions_of(&a) == all), "survivor never got the dead member's partitions");
    let took = killed.elapsed();
    // Not before the session could have ended (6 s, heartbeats every 0.5 s).
    assert!(took >= Duration::from_secs(4), "partitions moved after {took:?}, before the session timeout");
    no_violations(&own, &b);
    let mut conn = RawConn::connect(&bs);
    assert_eq!(describe(&mut conn, 1, &[&group]).groups[0].members.len(), 1);
}

/// The assignor: the broker's default (`group.consumer.assignors`, first
/// entry) unless the client asks for one (`group.remote.assignor`). Range
/// gives each member the same partition numbers of co-partitioned topics;
/// uniform, sticky, lets the first member keep a whole topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_or_uniform_assignor_chosen_by_config() {
    let b = broker(&[("group.consumer.assignors", "range,uniform")]);
    let bs = b.bootstrap();
    let (x, y) = (topic_name("kip848-x"), topic_name("kip848-y"));
    create_topic(&bs, &x, 2).await;
    create_topic(&bs, &y, 2).await;
    let mut conn = RawConn::connect(&bs);
    for (assignor, extra) in [("range", vec![]), ("uniform", vec![("group.remote.assignor", "uniform")])] {
        let group = format!("{x}-{assignor}");
        let own = Arc::new(Ownership::default());
        let m1 = cg(&bs, &group, "m1", &own, &extra, &[&x, &y]);
        assert!(poll_until(&[&m1], SETTLE, || owned(&m1).len() == 4), "{assignor}: m1 never got 4");
        let m2 = cg(&bs, &group, "m2", &own, &extra, &[&x, &y]);
        assert!(poll_until(&[&m1, &m2], SETTLE, || owned(&m1).len() == 2 && owned(&m2).len() == 2), "{assignor}: never 2/2");
        no_violations(&own, &b);
        let d = describe(&mut conn, 1, &[&group]);
        assert_eq!(d.groups[0].assignor_name.as_str(), assignor);
        for m in [&m1, &m2] {
            let o = owned(m);
            let topics: BTreeSet<&str> = o.iter().map(|(t, _)| t.as_str()).collect();
            let numbers: BTreeSet<i32> = o.iter().map(|(_, p)| *p).collect();
            if assignor == "range" {
                // Co-partitioned: one partition of each topic, the same number.
                assert_eq!((topics.len(), numbers.len()), (2, 1), "range: {o:?}");
            } else {
                // Sticky: m1 kept its first topic whole, m2 got the other.
                assert_eq!((topics.len(), numbers.len()), (1, 2), "uniform: {o:?}");
            }
        }
    }
}

/// New partitions of a subscribed topic, and new topics matching a
/// subscription regex, reach the consumer without anyone rejoining.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_partitions_and_regex_matches_are_assigned() {
    let b = broker(&[]);
    let bs = b.bootstrap();
    let topic = topic_name("kip848-grow");
    create_topic(&bs, &topic, 2).await;
    let own = Arc::new(Ownership::default());
    let a = cg(&bs, &format!("{topic}-g"), "a", &own, &[], &[&topic]);
    assert!(poll_until(&[&a], SETTLE, || owned(&a).len() == 2));
    let mut conn = RawConn::connect(&bs);
    let req =
        CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default().with_name(tname(&topic)).with_count(4)]).with_timeout_ms(30_000);
    let resp = conn.roundtrip(3, &req);
    assert_eq!(resp.results[0].error_code, 0);
    assert!(poll_until(&[&a], SETTLE, || owned(&a).len() == 4), "the 2 new partitions never came: {:?}", owned(&a));

    // librdkafka sends a "^..." subscription as SubscribedTopicRegex (v1).
    let prefix = topic_name("kip848-re");
    create_topic(&bs, &format!("{prefix}-a"), 1).await;
    let r = cg(&bs, &format!("{prefix}-g"), "r", &own, &[], &[&format!("^{prefix}-.*")]);
    assert!(poll_until(&[&r], SETTLE, || owned(&r).len() == 1), "regex: never got {prefix}-a");
    create_topic(&bs, &format!("{prefix}-b"), 2).await;
    assert!(poll_until(&[&r], SETTLE, || owned(&r).len() == 3), "regex: the new topic's partitions never came: {:?}", owned(&r));
    let d = describe(&mut conn, 1, &[&format!("{prefix}-g")]);
    let regex = d.groups[0].members[0].subscribed_topic_regex.as_ref().map(|s| s.to_string()).unwrap_or_default();
    assert!(regex.contains(&prefix), "described regex {regex:?}");
}

/// ConsumerGroupHeartbeat's refusals, as Kafka answers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_errors() {
    let b = broker(&[]);
    let bs = b.bootstrap();
    let topic = topic_name("kip848-err");
    create_topic(&bs, &topic, 2).await;
    let mut conn = RawConn::connect(&bs);
    let g = "kip848-errors";

    // Bad fields: INVALID_REQUEST with Kafka's message, connection kept.
    let r = hb(&mut conn, 1, &join_req(g, "", &[&topic]));
    assert_eq!((r.error_code, r.error_message.as_ref().map(|s| s.as_str())), (code::INVALID_REQUEST, Some("MemberId can't be empty.")));
    let r = hb(&mut conn, 1, &join_req(g, "m1", &[&topic]).with_rebalance_timeout_ms(-1));
    assert_eq!(r.error_code, code::INVALID_REQUEST);
    let r = hb(&mut conn, 1, &join_req(g, "m1", &[&topic]).with_topic_partitions(None));
    assert_eq!(r.error_code, code::INVALID_REQUEST);
    let r = hb(&mut conn, 1, &join_req(g, "m1", &[&topic]).with_subscribed_topic_names(None));
    assert_eq!(r.error_code, code::INVALID_REQUEST);
    let r = hb(&mut conn, 1, &join_req(g, "m1", &[&topic]).with_member_epoch(-3));
    assert_eq!(r.error_code, code::INVALID_REQUEST);
    let r = hb(&mut conn, 1, &join_req(g, "m1", &[&topic]).with_server_assignor(Some(sb("sticky"))));
    assert_eq!(r.error_code, code::UNSUPPORTED_ASSIGNOR);
    let r = hb(&mut conn, 1, &join_req(g, "m1", &[]).with_subscribed_topic_regex(Some(sb("(unclosed"))));
    assert_eq!(r.error_code, code::INVALID_REGULAR_EXPRESSION);
    // None of these created the group.
    assert_eq!(describe(&mut conn, 1, &[g]).groups[0].error_code, code::GROUP_ID_NOT_FOUND);
    let r = hb(&mut conn, 1, &beat_req(g, "m1", 3, &BTreeMap::new()));
    assert_eq!(r.error_code, code::GROUP_ID_NOT_FOUND);

    // v0: the coordinator makes up the member id.
    let r = hb(&mut conn, 0, &join_req(g, "", &[&topic]));
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    let v0_id = r.member_id.clone().expect("member id").to_string();
    assert!(!v0_id.is_empty());
    assert_eq!(r.heartbeat_interval_ms, 500);

    // v1: the client's id is kept.
    let r = hb(&mut conn, 1, &join_req(g, "m1", &[&topic]));
    assert_eq!((r.error_code, r.member_id.as_ref().map(|s| s.as_str())), (0, Some("m1")));
    let epoch = r.member_epoch;
    assert!(epoch >= 2, "second member: new group epoch, got {epoch}");
    let r = hb(&mut conn, 1, &beat_req(g, "m1", epoch + 5, &BTreeMap::new()));
    assert_eq!(r.error_code, code::FENCED_MEMBER_EPOCH);
    let r = hb(&mut conn, 1, &beat_req(g, "nobody", 1, &BTreeMap::new()));
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID);

    // Leave, then any heartbeat of that member is UNKNOWN_MEMBER_ID.
    let r = hb(&mut conn, 1, &beat_req(g, &v0_id, -1, &BTreeMap::new()));
    assert_eq!((r.error_code, r.member_epoch), (0, -1));
    let r = hb(&mut conn, 1, &beat_req(g, &v0_id, 1, &BTreeMap::new()));
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID);

    // Static membership: an instance id in use may not be taken; the owner may
    // leave for a while (-2) and come back under a new member id.
    let st = |id: &str| join_req(g, id, &[&topic]).with_instance_id(Some(sb("instance-1")));
    let r = hb(&mut conn, 1, &st("s1"));
    assert_eq!(r.error_code, 0);
    let s1_epoch = r.member_epoch;
    let r = hb(&mut conn, 1, &st("s2"));
    assert_eq!(r.error_code, code::UNRELEASED_INSTANCE_ID);
    let r = hb(&mut conn, 1, &beat_req(g, "s2", s1_epoch, &BTreeMap::new()).with_instance_id(Some(sb("instance-1"))));
    assert_eq!(r.error_code, code::FENCED_INSTANCE_ID);
    let r = hb(&mut conn, 1, &beat_req(g, "s1", -2, &BTreeMap::new()).with_instance_id(Some(sb("instance-1"))));
    assert_eq!((r.error_code, r.member_epoch), (0, -2));
    let r = hb(&mut conn, 1, &st("s2"));
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    let d = describe(&mut conn, 1, &[g]);
    let ids: BTreeSet<&str> = d.groups[0].members.iter().map(|m| m.member_id.as_str()).collect();
    assert!(ids.contains("s2") && !ids.contains("s1"), "s2 replaced s1: {ids:?}");

    // A classic group with members is not a consumer group, and the reverse.
    let classic = "kip848-classic";
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(sb(classic)))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_member_id(sb(""))
        .with_protocol_type(sb("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(sb("range"))
            .with_metadata(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0, 255, 255, 255, 255]))]);
    let mut jconn = RawConn::connect(&bs);
    let j = jconn.roundtrip(3, &join);
    assert_eq!(j.error_code, 0, "classic join (v3 joins at once)");
    let r = hb(&mut conn, 1, &join_req(classic, "c1", &[&topic]));
    assert_eq!(r.error_code, code::GROUP_ID_NOT_FOUND);
    assert!(r.error_message.as_ref().is_some_and(|m| m.contains("not a consumer group")));
    assert_eq!(describe(&mut conn, 1, &[classic]).groups[0].error_code, code::GROUP_ID_NOT_FOUND);
    let j = jconn.roundtrip(3, &join.clone().with_group_id(GroupId(sb(g))));
    assert_eq!(j.error_code, code::INCONSISTENT_GROUP_PROTOCOL);
}

/// OffsetCommit and OffsetFetch v9 check the member and its epoch for a
/// consumer-protocol group; the group (epoch, members, target) and its
/// offsets survive a broker restart; members that do not come back expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_v9_and_group_survive_restart() {
    let mut b = broker(&[("group.consumer.session.timeout.ms", "6000")]);
    let bs = b.bootstrap();
    let topic = topic_name("kip848-restart");
    create_topic(&bs, &topic, 2).await;
    let g = "kip848-restart-g";
    let mut conn = RawConn::connect(&bs);
    let r = hb(&mut conn, 1, &join_req(g, "m1", &[&topic]));
    assert_eq!(r.error_code, 0);
    let (epoch, owned) = raw_settle(&mut conn, g, "m1", r.member_epoch, assignment_map(&r.assignment), 2);
    assert_eq!(owned.keys().copied().collect::<Vec<_>>(), vec![topic_id(&mut conn, &topic)]);

    assert_eq!(commit_v(&mut conn, 9, g, "m1", epoch, &topic, &[(0, 11), (1, 22)]), vec![0, 0]);
    assert_eq!(commit_v(&mut conn, 9, g, "m1", epoch + 1, &topic, &[(0, 12)]), vec![code::STALE_MEMBER_EPOCH]);
    assert_eq!(commit_v(&mut conn, 9, g, "ghost", epoch, &topic, &[(0, 12)]), vec![code::UNKNOWN_MEMBER_ID]);
    assert_eq!(commit_v(&mut conn, 8, g, "m1", epoch, &topic, &[(0, 12)]), vec![code::UNSUPPORTED_VERSION]);
    assert_eq!(commit_v(&mut conn, 9, "kip848-no-such-group", "m1", 3, &topic, &[(0, 1)]), vec![code::GROUP_ID_NOT_FOUND]);
    assert_eq!(fetch_v9(&mut conn, g, Some("m1"), epoch, &topic, &[0, 1]), (0, BTreeMap::from([(0, 11), (1, 22)])));
    assert_eq!(fetch_v9(&mut conn, g, Some("m1"), epoch + 1, &topic, &[0]).0, code::STALE_MEMBER_EPOCH);
    assert_eq!(fetch_v9(&mut conn, g, Some("ghost"), epoch, &topic, &[0]).0, code::UNKNOWN_MEMBER_ID);
    assert_eq!(fetch_v9(&mut conn, g, None, -1, &topic, &[0, 1]), (0, BTreeMap::from([(0, 11), (1, 22)])));
    let group_epoch = describe(&mut conn, 1, &[g]).groups[0].group_epoch;

    b.restart();
    let mut conn = RawConn::connect(&bs);
    let d = describe(&mut conn, 1, &[g]);
    let dg = &d.groups[0];
    assert_eq!((dg.error_code, dg.group_epoch, dg.assignment_epoch), (0, group_epoch, group_epoch), "epochs survive the restart");
    assert_eq!(dg.members.len(), 1);
    assert_eq!((dg.members[0].member_id.as_str(), dg.members[0].member_epoch), ("m1", epoch));
    assert_eq!(dg.members[0].assignment.topic_partitions[0].partitions.len(), 2);
    assert_eq!(fetch_v9(&mut conn, g, None, -1, &topic, &[0, 1]), (0, BTreeMap::from([(0, 11), (1, 22)])));
    // The member is still known at its epoch right after the restart.
    let r = hb(&mut conn, 1, &beat_req(g, "m1", epoch, &owned));
    assert_eq!((r.error_code, r.member_epoch), (0, epoch));

    // It stops heartbeating: its session ends, the group is empty one epoch later.
    let deadline = Instant::now() + SETTLE;
    loop {
        let d = describe(&mut conn, 1, &[g]);
        if d.groups[0].members.is_empty() {
            assert_eq!((d.groups[0].group_state.as_str(), d.groups[0].group_epoch), ("Empty", group_epoch + 1));
            break;
        }
        assert!(Instant::now() < deadline, "the silent member never expired");
        std::thread::sleep(Duration::from_millis(250));
    }
    // The epoch is not reset by another restart: the next member joins past it.
    b.restart();
    let mut conn = RawConn::connect(&bs);
    let r = hb(&mut conn, 1, &join_req(g, "m2", &[&topic]));
    assert_eq!((r.error_code, r.member_epoch), (0, group_epoch + 2));
    assert_eq!(fetch_v9(&mut conn, g, Some("m2"), group_epoch + 2, &topic, &[0, 1]), (0, BTreeMap::from([(0, 11), (1, 22)])));
}

/// Metadata v12 by topic id (how librdkafka names the partitions it is given).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_by_topic_id() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::MetadataRequest;
    let b = broker(&[]);
    let bs = b.bootstrap();
    let topic = topic_name("kip848-ids");
    create_topic(&bs, &topic, 3).await;
    let mut conn = RawConn::connect(&bs);
    let id = topic_id(&mut conn, &topic);
    let unknown = Uuid::from_u128(42);
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_topic_id(id).with_name(None),
        MetadataRequestTopic::default().with_topic_id(unknown).with_name(None),
    ]));
    let resp = conn.roundtrip(12, &req);
    let found = resp.topics.iter().find(|t| t.topic_id == id).expect("known id answered");
    assert_eq!((found.error_code, found.name.as_ref().map(|n| n.0.to_string()), found.partitions.len()), (0, Some(topic.clone()), 3));
    let missing = resp.topics.iter().find(|t| t.topic_id == unknown).expect("unknown id answered");
    assert_eq!(missing.error_code, 100, "UNKNOWN_TOPIC_ID");
}
