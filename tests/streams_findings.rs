//! Broker defects found by running Kafka Streams (exactly_once_v2) against
//! shardlog (tests/compat/streams, run by tests/compat/run.sh as
//! `streams-*`), each reproduced here through the real binary with raw Kafka
//! frames, so that it stays fixed without a JVM.
//!
//! 1. SIGTERM hung while a JoinGroup or SyncGroup was parked in the group
//!    coordinator. The Streams broker-restart scenario SIGKILLs the
//!    application right after a broker restart, while its consumers are
//!    rejoining; the survivor's JoinGroup waits for the dead member (up to its
//!    session or rebalance timeout: minutes for Streams' 5-minute
//!    max.poll.interval.ms). A stopping broker waits for every open
//!    connection's in-flight requests, and the group ticker that would have
//!    timed the rebalance out stops with the shard, so the broker never exited.
//!    Apache Kafka answers such parked requests NOT_COORDINATOR when it unloads
//!    the group (GroupCoordinator.onGroupUnloaded), and so must we.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{FindCoordinatorRequest, GroupId, JoinGroupRequest, JoinGroupResponse, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::{Decodable, HeaderVersion, Request};

use common::*;

const NONE: i16 = 0;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const MEMBER_ID_REQUIRED: i16 = 79;

/// Long enough that nothing times out by itself while the test runs: a parked
/// request is answered only because the broker stops.
const SESSION_MS: i32 = 300_000;
const REBALANCE_MS: i32 = 300_000;
/// How long a stopping broker may take: it has nothing to flush worth
/// mentioning, and before the fix it did not exit at all.
const STOP_WITHIN: Duration = Duration::from_secs(10);

const JOIN_V: i16 = 5;
const SYNC_V: i16 = 3;

fn join_req(group: &str, member_id: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_member_id(sb(member_id))
        .with_protocol_type(sb("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(sb("range")).with_metadata(Bytes::from_static(b"sub"))])
}

fn sync_req(group: &str, generation: i32, member_id: &str, assignments: &[&str]) -> SyncGroupRequest {
    SyncGroupRequest::default().with_group_id(GroupId(sb(group))).with_generation_id(generation).with_member_id(sb(member_id)).with_assignments(
        assignments
            .iter()
            .map(|m| SyncGroupRequestAssignment::default().with_member_id(sb(m)).with_assignment(Bytes::from(format!("assignment-of-{m}"))))
            .collect(),
    )
}

/// Waits until the group's coordinator is available (`__consumer_offsets` is
/// created on first use).
fn wait_for_coordinator(bootstrap: &str, group: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut conn = RawConn::connect(bootstrap);
        let r = conn.roundtrip(3, &FindCoordinatorRequest::default().with_key(sb(group)));
        if r.error_code == NONE {
            return;
        }
        assert_eq!(r.error_code, COORDINATOR_NOT_AVAILABLE, "FindCoordinator: {r:?}");
        assert!(Instant::now() < deadline, "no coordinator for {group} within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A member joins: MEMBER_ID_REQUIRED, then the real join (answered at once
/// when it is the only member). Returns the member id and the response.
fn join_alone(conn: &mut RawConn, group: &str) -> (String, JoinGroupResponse) {
    let r = conn.roundtrip(JOIN_V, &join_req(group, ""));
    assert_eq!(r.error_code, MEMBER_ID_REQUIRED, "first JoinGroup: {r:?}");
    let mid = r.member_id.to_string();
    let r = conn.roundtrip(JOIN_V, &join_req(group, &mid));
    assert_eq!(r.error_code, NONE, "JoinGroup with the member id: {r:?}");
    (mid, r)
}

/// No response arrives on `conn` for a while: the request is parked.
fn assert_parked(conn: &mut RawConn, what: &str) {
    conn.set_read_timeout(Duration::from_secs(2));
    match conn.read_frame() {
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
        other => panic!("{what} should be parked in the coordinator, got {other:?}"),
    }
    conn.set_read_timeout(Duration::from_secs(30));
}

/// SIGTERM; the broker must exit cleanly within STOP_WITHIN.
fn stop_promptly(broker: &mut Broker) {
    let t = Instant::now();
    broker.stop(); // asserts a clean exit within STOP_TIMEOUT (30 s)
    assert!(t.elapsed() <= STOP_WITHIN, "the broker took {:?} to stop with a parked group request", t.elapsed());
}

/// Reads the answer to request `corr` of type `R` after the broker is gone.
fn answer_after_stop<R: Request>(conn: &mut RawConn, version: i16, corr: i32) -> R::Response {
    let mut frame = conn.read_frame().unwrap_or_else(|e| panic!("the parked request got no answer before the broker closed: {e}"));
    let got = parse_response_header(&mut frame, R::Response::header_version(version));
    assert_eq!(got, corr, "correlation id");
    R::Response::decode(&mut frame, version).expect("decode")
}

#[test]
fn sigterm_answers_a_parked_join_group() {
    let mut broker = Broker::start(&[("group.initial.rebalance.delay.ms", "0"), ("offsets.topic.num.partitions", "4")]);
    let bs = broker.bootstrap();
    let group = topic_name("parked-join");
    wait_for_coordinator(&bs, &group);

    // A is a stable member of generation 1 that will never rejoin.
    let mut a = RawConn::connect(&bs);
    let (a_id, r) = join_alone(&mut a, &group);
    let r = a.roundtrip(SYNC_V, &sync_req(&group, r.generation_id, &a_id, &[&a_id]));
    assert_eq!(r.error_code, NONE, "leader SyncGroup: {r:?}");

    // B's join starts a rebalance that waits for A (for up to 5 minutes).
    let mut b = RawConn::connect(&bs);
    let r = b.roundtrip(JOIN_V, &join_req(&group, ""));
    assert_eq!(r.error_code, MEMBER_ID_REQUIRED, "B's first JoinGroup: {r:?}");
    let b_id = r.member_id.to_string();
    let corr = b.send(JOIN_V, &join_req(&group, &b_id));
    assert_parked(&mut b, "B's JoinGroup");

    stop_promptly(&mut broker);
    let r = answer_after_stop::<JoinGroupRequest>(&mut b, JOIN_V, corr);
    assert_eq!(r.error_code, NOT_COORDINATOR, "the parked JoinGroup's answer: {r:?}");
}

#[test]
fn sigterm_answers_a_parked_sync_group() {
    let mut broker = Broker::start(&[("group.initial.rebalance.delay.ms", "0"), ("offsets.topic.num.partitions", "4")]);
    let bs = broker.bootstrap();
    let group = topic_name("parked-sync");
    wait_for_coordinator(&bs, &group);

    let mut a = RawConn::connect(&bs);
    let (a_id, r) = join_alone(&mut a, &group);
    let r = a.roundtrip(SYNC_V, &sync_req(&group, r.generation_id, &a_id, &[&a_id]));
    assert_eq!(r.error_code, NONE, "leader SyncGroup: {r:?}");

    // B joins; A rejoins; both get generation 2, A leads.
    let mut b = RawConn::connect(&bs);
    let r = b.roundtrip(JOIN_V, &join_req(&group, ""));
    assert_eq!(r.error_code, MEMBER_ID_REQUIRED, "B's first JoinGroup: {r:?}");
    let b_id = r.member_id.to_string();
    let b_corr = b.send(JOIN_V, &join_req(&group, &b_id));
    assert_parked(&mut b, "B's JoinGroup (waiting for A to rejoin)");
    let r = a.roundtrip(JOIN_V, &join_req(&group, &a_id));
    assert_eq!(r.error_code, NONE, "A's rejoin: {r:?}");
    assert_eq!(r.leader.to_string(), a_id, "A leads generation 2: {r:?}");
    let generation = r.generation_id;
    let r = b.recv::<JoinGroupRequest>(JOIN_V, b_corr);
    assert_eq!((r.error_code, r.generation_id), (NONE, generation), "B's JoinGroup: {r:?}");

    // B (a follower) syncs: parked until the leader sends the assignment, which
    // A never does.
    let corr = b.send(SYNC_V, &sync_req(&group, generation, &b_id, &[]));
    assert_parked(&mut b, "B's SyncGroup");

    stop_promptly(&mut broker);
    let r: SyncGroupResponse = answer_after_stop::<SyncGroupRequest>(&mut b, SYNC_V, corr);
    assert_eq!(r.error_code, NOT_COORDINATOR, "the parked SyncGroup's answer: {r:?}");
}
