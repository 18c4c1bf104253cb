//! Consumer-group mode (`--group-mode group`): each of the
//! `--consumer-groups` consumer sets is a real Kafka consumer group (the
//! classic group protocol), each of its `--consumers` a member.
//!
//! Why: reading through a consumer group is how applications consume, and
//! it puts the broker's group coordinator on the measured path alongside
//! the fetches: FindCoordinator, JoinGroup/SyncGroup at the start and on
//! every rebalance, a Heartbeat and an OffsetCommit per member per second,
//! OffsetFetch for where to start, LeaveGroup at the end. The fetch loop
//! itself is the assigned mode's (`consumer::Consumer`), so the consume
//! figures of the two modes compare.
//!
//! A member's life: FindCoordinator (key type 0, group) -> JoinGroup
//! (protocol type "consumer", one protocol "range" whose metadata is a
//! ConsumerProtocolSubscription v0 naming the topic; MEMBER_ID_REQUIRED is
//! the broker handing out a member id: join again with it) -> SyncGroup (the
//! leader sends every member's ConsumerProtocolAssignment v0, computed by
//! the range assignor; followers send none) -> OffsetFetch (partitions
//! without a committed offset start at `--from`) -> fetch, heartbeat every
//! second, commit every second -> on REBALANCE_IN_PROGRESS (or
//! ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID) from a Heartbeat or an
//! OffsetCommit: stop fetching, commit, join again, go on -> at the end:
//! commit, LeaveGroup.
//!
//! Why the member talks to the coordinator on a connection of its own: a
//! broker answers the requests of one connection in order, and a Fetch
//! long-polls up to `--fetch-max-wait-ms`, so a heartbeat queued behind a
//! fetch would be late by that much. The member task owns the coordinator
//! connection and heartbeats and commits on it; its fetchers (one task per
//! partition leader, each on its own connection) publish their positions
//! after every response for the commits to pick up.
//!
//! Why the groups join before the clock starts: with several members the
//! first generations are transitional (a member that joined alone learns of
//! the others only at its next heartbeat). Setup waits until every member
//! of a group holds the same generation, so the measured window starts with
//! settled groups, as the assigned mode starts with connected consumers.
//! Rebalances and group errors during the run are counted in the report by
//! Kafka error name (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, ...);
//! MEMBER_ID_REQUIRED is the normal first step of a join and is not counted.
//!
//! Group ids are `loadgen-<topic>-<run id>-<g>` (see [`group_id`]): every
//! run has fresh groups, so a rerun never starts from the committed offsets
//! of an earlier one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, Bytes};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::task::JoinSet;

use crate::consumer::{Consumer, FetchCfg, Positions, EARLIEST, LATEST};
use crate::producer::RunCtx;
use crate::report::Recorder;
use crate::wire::{self, error_name, Client, PartitionLeader};
use crate::{Settings, StartFrom};

/// JoinGroup protocol type of Kafka consumers.
pub const PROTOCOL_TYPE: &str = "consumer";
/// The one assignor loadgen offers (Kafka's RangeAssignor).
pub const ASSIGNOR: &str = "range";
/// A member missing heartbeats this long is removed by the coordinator.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the coordinator waits for every member to rejoin, plus
/// `--fetch-max-wait-ms`: a member rejoins only after its fetch in flight
/// has returned (see [`Group::rebalance_timeout`]).
pub const REBALANCE_TIMEOUT: Duration = Duration::from_secs(10);
/// Heartbeat period during the run (a tenth of the session timeout: a
/// rebalance is noticed within a second).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// Offset commit period during the run (only when positions moved).
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// How often a member looks at its stop conditions between heartbeats.
const POLL: Duration = Duration::from_millis(100);
/// Heartbeat period while setup waits for a group to settle.
const SETUP_HEARTBEAT: Duration = Duration::from_millis(200);

// Kafka error codes a member reacts to.
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

/// The group id of consumer group `g` of run `run_id`.
pub fn group_id(topic: &str, run_id: &str, g: usize) -> String {
    format!("loadgen-{topic}-{run_id}-{g}")
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn ms(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

// ---------------------------------------------------------------- consumer protocol

/// An embedded consumer-protocol message: its version as an i16, then the
/// message in that version (JoinGroup metadata, SyncGroup assignments).
fn versioned<T: Encodable>(msg: &T, version: i16) -> Result<Bytes> {
    let mut buf: Vec<u8> = Vec::with_capacity(32);
    buf.extend_from_slice(&version.to_be_bytes());
    msg.encode(&mut buf, version).map_err(|e| anyhow!("encoding consumer protocol v{version}: {e}"))?;
    Ok(Bytes::from(buf))
}

/// Reads an embedded consumer-protocol message. Later versions only append
/// fields, so a version newer than `max` is read as `max` (as Kafka does).
fn unversioned<T: Decodable>(mut b: Bytes, max: i16, what: &str) -> Result<T> {
    if b.remaining() < 2 {
        bail!("{what}: {} bytes, too short for a version", b.len());
    }
    let v = b.get_i16();
    if v < 0 {
        bail!("{what}: bad version {v}");
    }
    T::decode(&mut b, v.min(max)).map_err(|e| anyhow!("decoding {what} v{v}: {e}"))
}

/// JoinGroup metadata: a ConsumerProtocolSubscription v0 naming `topic`.
pub fn encode_subscription(topic: &str) -> Result<Bytes> {
    versioned(&ConsumerProtocolSubscription::default().with_topics(vec![sb(topic)]), 0)
}

/// The topics of a member's subscription (any version).
pub fn decode_subscription(b: Bytes) -> Result<Vec<String>> {
    let s: ConsumerProtocolSubscription = unversioned(b, 3, "consumer subscription")?;
    Ok(s.topics.iter().map(|t| t.as_str().to_string()).collect())
}

/// A SyncGroup assignment: ConsumerProtocolAssignment v0 with `partitions`
/// of `topic` (no topic entry at all when there are none).
pub fn encode_assignment(topic: &str, partitions: &[i32]) -> Result<Bytes> {
    let tps =
        if partitions.is_empty() { Vec::new() } else { vec![TopicPartition::default().with_topic(TopicName(sb(topic))).with_partitions(partitions.to_vec())] };
    versioned(&ConsumerProtocolAssignment::default().with_assigned_partitions(tps), 0)
}

/// The partitions of `topic` in an assignment, sorted. Empty bytes (a
/// member the leader gave nothing, as some brokers send it) mean none.
pub fn decode_assignment(b: Bytes, topic: &str) -> Result<Vec<i32>> {
    if b.is_empty() {
        return Ok(Vec::new());
    }
    let a: ConsumerProtocolAssignment = unversioned(b, 3, "consumer assignment")?;
    let mut out: Vec<i32> = a.assigned_partitions.iter().filter(|tp| tp.topic.0.as_str() == topic).flat_map(|tp| tp.partitions.iter().copied()).collect();
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Kafka's RangeAssignor for one topic: members sorted by member id,
/// partitions by number; member i gets a contiguous range of P/M
/// partitions, the first P mod M members one more. Every member named
/// gets an entry, possibly empty.
pub fn range_assign(members: &[String], partitions: &[i32]) -> BTreeMap<String, Vec<i32>> {
    let mut ids: Vec<&String> = members.iter().collect();
    ids.sort();
    ids.dedup();
    let mut parts = partitions.to_vec();
    parts.sort_unstable();
    parts.dedup();
    let mut out = BTreeMap::new();
    if ids.is_empty() {
        return out;
    }
    let (each, extra) = (parts.len() / ids.len(), parts.len() % ids.len());
    let mut at = 0;
    for (i, id) in ids.into_iter().enumerate() {
        let n = each + usize::from(i < extra);
        out.insert(id.clone(), parts[at..at + n].to_vec());
        at += n;
    }
    out
}

// ---------------------------------------------------------------- requests

fn find_coordinator_req(group: &str, v: i16) -> FindCoordinatorRequest {
    // key_type 0 (group) is the default; v4+ batch the keys.
    if v >= 4 {
        FindCoordinatorRequest::default().with_coordinator_keys(vec![sb(group)])
    } else {
        FindCoordinatorRequest::default().with_key(sb(group))
    }
}

fn join_req(group: &str, member_id: &str, topic: &str, rebalance_timeout: Duration, v: i16) -> Result<JoinGroupRequest> {
    Ok(JoinGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_session_timeout_ms(ms(SESSION_TIMEOUT))
        // v0 has no rebalance timeout (wire::JOIN_GROUP starts at v1).
        .with_rebalance_timeout_ms(if v >= 1 { ms(rebalance_timeout) } else { -1 })
        .with_member_id(sb(member_id))
        .with_protocol_type(sb(PROTOCOL_TYPE))
        .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(sb(ASSIGNOR)).with_metadata(encode_subscription(topic)?)]))
}

fn sync_req(group: &str, generation: i32, member_id: &str, assignments: Vec<SyncGroupRequestAssignment>, v: i16) -> SyncGroupRequest {
    let r = SyncGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id(generation)
        .with_member_id(sb(member_id))
        .with_assignments(assignments);
    if v >= 5 {
        r.with_protocol_type(Some(sb(PROTOCOL_TYPE))).with_protocol_name(Some(sb(ASSIGNOR)))
    } else {
        r
    }
}

fn heartbeat_req(group: &str, generation: i32, member_id: &str) -> HeartbeatRequest {
    HeartbeatRequest::default().with_group_id(GroupId(sb(group))).with_generation_id(generation).with_member_id(sb(member_id))
}

fn commit_req(group: &str, generation: i32, member_id: &str, topic: &str, positions: &BTreeMap<i32, i64>) -> OffsetCommitRequest {
    OffsetCommitRequest::default().with_group_id(GroupId(sb(group))).with_generation_id_or_member_epoch(generation).with_member_id(sb(member_id)).with_topics(
        vec![OffsetCommitRequestTopic::default().with_name(TopicName(sb(topic))).with_partitions(
            positions.iter().map(|(p, o)| OffsetCommitRequestPartition::default().with_partition_index(*p).with_committed_offset(*o)).collect(),
        )],
    )
}

fn offset_fetch_req(group: &str, topic: &str, partitions: &[i32], v: i16) -> OffsetFetchRequest {
    if v >= 8 {
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(sb(group)))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default().with_name(TopicName(sb(topic))).with_partition_indexes(partitions.to_vec())]))])
    } else {
        OffsetFetchRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default().with_name(TopicName(sb(topic))).with_partition_indexes(partitions.to_vec())]))
    }
}

fn leave_req(group: &str, member_id: &str, v: i16) -> LeaveGroupRequest {
    let r = LeaveGroupRequest::default().with_group_id(GroupId(sb(group)));
    if v >= 3 {
        let reason = (v >= 5).then(|| sb("loadgen run finished"));
        r.with_members(vec![MemberIdentity::default().with_member_id(sb(member_id)).with_reason(reason)])
    } else {
        r.with_member_id(sb(member_id))
    }
}

/// Versions of the group APIs agreed with the coordinator.
#[derive(Debug, Clone, Copy)]
struct Apis {
    join: i16,
    sync: i16,
    heartbeat: i16,
    commit: i16,
    offsets: i16,
    leave: i16,
}

impl Apis {
    fn pick(c: &Client) -> Result<Apis> {
        let p = |k: ApiKey, r: (i16, i16)| c.versions.pick(k, r.0, r.1);
        Ok(Apis {
            join: p(ApiKey::JoinGroup, wire::JOIN_GROUP)?,
            sync: p(ApiKey::SyncGroup, wire::SYNC_GROUP)?,
            heartbeat: p(ApiKey::Heartbeat, wire::HEARTBEAT)?,
            commit: p(ApiKey::OffsetCommit, wire::OFFSET_COMMIT)?,
            offsets: p(ApiKey::OffsetFetch, wire::OFFSET_FETCH)?,
            leave: p(ApiKey::LeaveGroup, wire::LEAVE_GROUP)?,
        })
    }
}

// ---------------------------------------------------------------- group and member

/// One consumer group of the run, shared by its members.
pub struct Group {
    pub id: String,
    topic: String,
    /// Every partition of the topic: what the leader assigns.
    partitions: Vec<i32>,
    leaders: HashMap<i32, String>,
    bootstrap: String,
    /// Where partitions without a committed offset start (EARLIEST / LATEST).
    from: i64,
    timeout: Duration,
    /// JoinGroup's rebalance timeout: REBALANCE_TIMEOUT + `--fetch-max-wait-ms`.
    rebalance_timeout: Duration,
    /// Records the group still has to read (`--records`).
    budget: Option<Arc<AtomicI64>>,
    /// The generation each member last synced (-1: none yet).
    synced: Mutex<Vec<i32>>,
}

impl Group {
    /// Group `id` of `s.consumers` members reading `s.topic`, laid out as `layout`.
    pub fn new(id: String, s: &Settings, layout: &[PartitionLeader], budget: Option<Arc<AtomicI64>>) -> Group {
        Group {
            id,
            topic: s.topic.clone(),
            partitions: layout.iter().map(|p| p.partition).collect(),
            leaders: layout.iter().map(|p| (p.partition, p.leader.clone())).collect(),
            bootstrap: s.bootstrap.clone(),
            from: match s.from {
                StartFrom::Earliest => EARLIEST,
                StartFrom::Latest => LATEST,
            },
            timeout: s.timeout,
            rebalance_timeout: REBALANCE_TIMEOUT + Duration::from_millis(s.fetch_max_wait_ms.max(0) as u64),
            budget,
            synced: Mutex::new(vec![-1; s.consumers]),
        }
    }

    fn lock_synced(&self) -> std::sync::MutexGuard<'_, Vec<i32>> {
        self.synced.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation every member holds, once they all hold the same one.
    fn settled(&self) -> Option<i32> {
        let s = self.lock_synced();
        let first = *s.first()?;
        (first >= 0 && s.iter().all(|g| *g == first)).then_some(first)
    }

    /// Setup has waited long enough for a join or for the group to settle.
    fn setup_limit(&self) -> Duration {
        self.timeout + self.rebalance_timeout * 2
    }
}

/// What a member does after a group error.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Continue,
    Rejoin,
}

/// One member of a consumer group.
pub struct Member {
    group: Arc<Group>,
    /// This member's number within its group.
    idx: usize,
    /// The coordinator connection: joins, heartbeats, commits, leave.
    coord: Client,
    apis: Apis,
    member_id: String,
    generation: i32,
    /// Assigned partitions with the next offset of each.
    positions: BTreeMap<i32, i64>,
    /// Fetch connections by partition leader, kept across generations.
    conns: HashMap<String, Client>,
}

/// A connection to `group`'s coordinator, found through the bootstrap broker.
async fn find_coordinator(group: &Group) -> Result<Client> {
    let until = Instant::now() + group.timeout;
    let mut boot = Client::connect(&group.bootstrap, group.timeout).await?;
    let v = boot.versions.pick(ApiKey::FindCoordinator, wire::FIND_COORDINATOR.0, wire::FIND_COORDINATOR.1)?;
    loop {
        let resp = boot.call(&find_coordinator_req(&group.id, v), v).await.with_context(|| format!("FindCoordinator for group {}", group.id))?;
        let (code, addr) = if v >= 4 {
            let c = resp.coordinators.first().ok_or_else(|| anyhow!("FindCoordinator for group {}: empty answer", group.id))?;
            (c.error_code, format!("{}:{}", c.host.as_str(), c.port))
        } else {
            (resp.error_code, format!("{}:{}", resp.host.as_str(), resp.port))
        };
        match code {
            0 if addr == boot.addr => return Ok(boot),
            0 => return Client::connect(&addr, group.timeout).await.with_context(|| format!("group {} coordinator", group.id)),
            COORDINATOR_NOT_AVAILABLE | COORDINATOR_LOAD_IN_PROGRESS | NOT_COORDINATOR if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            c => bail!("FindCoordinator for group {}: {}", group.id, error_name(c)),
        }
    }
}

fn count(rec: Option<&Recorder>, code: i16) {
    if let Some(r) = rec {
        r.error(&error_name(code));
    }
}

impl Member {
    /// Setup, before the clock starts: finds the coordinator, joins, and
    /// returns once every member of the group holds the same generation,
    /// with this member's start offsets resolved.
    pub async fn establish(group: Arc<Group>, idx: usize) -> Result<Member> {
        let coord = find_coordinator(&group).await?;
        let apis = Apis::pick(&coord)?;
        let mut m = Member { group, idx, coord, apis, member_id: String::new(), generation: -1, positions: BTreeMap::new(), conns: HashMap::new() };
        m.join(None).await?;
        let until = Instant::now() + m.group.setup_limit();
        while m.group.settled() != Some(m.generation) {
            if Instant::now() >= until {
                bail!("group {}: members did not settle on one generation within {:?}", m.group.id, m.group.setup_limit());
            }
            tokio::time::sleep(SETUP_HEARTBEAT).await;
            let code = m.heartbeat().await?;
            if m.react(code, None).await? == Next::Rejoin {
                m.join(None).await?;
            }
        }
        Ok(m)
    }

    /// The generation this member holds.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The run: fetches generation after generation until the deadline, the
    /// group's record budget or an error; then commits and leaves the group.
    pub async fn run(mut self, ctx: Arc<RunCtx>, cfg: FetchCfg) -> Result<()> {
        let r = self.consume(&ctx, &cfg).await;
        if !self.member_id.is_empty() {
            match self.leave().await {
                Ok(0) => {}
                Ok(c) => ctx.rec.error(&error_name(c)),
                Err(_) => ctx.rec.error("NETWORK_EXCEPTION"),
            }
        }
        r.with_context(|| format!("group {} member {}", self.group.id, self.idx))
    }

    fn finished(&self, ctx: &RunCtx) -> bool {
        ctx.should_stop() || self.group.budget.as_ref().is_some_and(|b| b.load(Ordering::Relaxed) <= 0)
    }

    async fn consume(&mut self, ctx: &Arc<RunCtx>, cfg: &FetchCfg) -> Result<()> {
        loop {
            let rejoin = self.fetch_generation(ctx, cfg).await?;
            if !rejoin || self.finished(ctx) {
                return Ok(());
            }
            self.join(Some(&ctx.rec)).await?;
        }
    }

    /// Fetches the current assignment, heartbeating and committing, until a
    /// rebalance (returns true: join again) or the end (false). Positions
    /// are committed either way.
    async fn fetch_generation(&mut self, ctx: &Arc<RunCtx>, cfg: &FetchCfg) -> Result<bool> {
        let revoke = Arc::new(AtomicBool::new(false));
        let published: Positions = Arc::new(Mutex::new(self.positions.clone()));
        let assigned: Vec<i32> = self.positions.keys().copied().collect();
        let mut fetchers = JoinSet::new();
        for (addr, parts) in crate::by_leader(&assigned, &self.group.leaders) {
            let client = match self.conns.remove(&addr) {
                Some(c) => c,
                None => Client::connect(&addr, self.group.timeout).await?,
            };
            let start = parts.iter().map(|p| (*p, self.positions.get(p).copied().unwrap_or(0))).collect();
            let mut c = Consumer::on(client, &self.group.topic, start)?;
            c.budget = self.group.budget.clone();
            c.revoke = Some(revoke.clone());
            c.publish = Some(published.clone());
            let (ctx, cfg) = (ctx.clone(), cfg.clone());
            fetchers.spawn(async move {
                let r = c.run(&ctx, &cfg).await;
                (c, r)
            });
        }
        let mut rejoin = false;
        let mut failure: Option<anyhow::Error> = None;
        let mut committed = self.positions.clone();
        let now = Instant::now();
        let (mut next_heartbeat, mut next_commit) = (now + HEARTBEAT_INTERVAL, now + COMMIT_INTERVAL);
        loop {
            if !revoke.load(Ordering::Relaxed) && self.finished(ctx) {
                revoke.store(true, Ordering::Relaxed);
            }
            let stopping = revoke.load(Ordering::Relaxed);
            if stopping && fetchers.is_empty() {
                break;
            }
            let poll = Instant::now() + POLL;
            let wake = if stopping { poll } else { next_heartbeat.min(next_commit).min(poll) };
            tokio::select! {
                Some(done) = fetchers.join_next(), if !fetchers.is_empty() => {
                    match done {
                        Ok((c, r)) => {
                            let (client, pos) = c.into_parts();
                            self.conns.insert(client.addr.clone(), client);
                            self.positions.extend(pos);
                            if let Err(e) = r {
                                failure.get_or_insert(e);
                                revoke.store(true, Ordering::Relaxed);
                            }
                        }
                        Err(e) => {
                            failure.get_or_insert(anyhow!("fetch task: {e}"));
                            revoke.store(true, Ordering::Relaxed);
                        }
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            if revoke.load(Ordering::Relaxed) {
                continue; // no group traffic while the fetchers wind down
            }
            let now = Instant::now();
            if now >= next_heartbeat {
                next_heartbeat = now + HEARTBEAT_INTERVAL;
                let code = self.heartbeat().await?;
                if self.react(code, Some(&ctx.rec)).await? == Next::Rejoin {
                    rejoin = true;
                    revoke.store(true, Ordering::Relaxed);
                    continue;
                }
            }
            if now >= next_commit {
                next_commit = now + COMMIT_INTERVAL;
                let snapshot = published.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if snapshot != committed {
                    let code = self.commit(&snapshot).await?;
                    if code == 0 {
                        committed = snapshot;
                    } else if self.react(code, Some(&ctx.rec)).await? == Next::Rejoin {
                        rejoin = true;
                        revoke.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        // Giving the partitions back (rebalance) or the end: commit where
        // every one stands, so that the next owner continues from there.
        if !self.positions.is_empty() {
            let all = self.positions.clone();
            let code = self.commit(&all).await?;
            if code != 0 {
                ctx.rec.error(&error_name(code));
            }
        }
        Ok(rejoin)
    }

    /// What to do about a Heartbeat / OffsetCommit error code; counts it.
    async fn react(&mut self, code: i16, rec: Option<&Recorder>) -> Result<Next> {
        if code != 0 {
            count(rec, code);
        }
        match code {
            0 => Ok(Next::Continue),
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => Ok(Next::Rejoin),
            UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                Ok(Next::Rejoin)
            }
            NOT_COORDINATOR | COORDINATOR_NOT_AVAILABLE | COORDINATOR_LOAD_IN_PROGRESS => {
                self.rediscover().await?;
                Ok(Next::Rejoin)
            }
            c => bail!("group {}: {}", self.group.id, error_name(c)),
        }
    }

    async fn rediscover(&mut self) -> Result<()> {
        self.coord = find_coordinator(&self.group).await?;
        self.apis = Apis::pick(&self.coord)?;
        Ok(())
    }

    /// Joins (or rejoins) and syncs: afterwards the member holds a
    /// generation, its assignment and a start offset for each assigned
    /// partition. Errors are counted in `rec` (None during setup).
    async fn join(&mut self, rec: Option<&Recorder>) -> Result<()> {
        let until = Instant::now() + self.group.setup_limit();
        loop {
            if Instant::now() >= until {
                bail!("group {}: no generation joined within {:?}", self.group.id, self.group.setup_limit());
            }
            let (gid, topic) = (self.group.id.clone(), self.group.topic.clone());
            let req = join_req(&gid, &self.member_id, &topic, self.group.rebalance_timeout, self.apis.join)?;
            // The coordinator answers once every member has (re)joined.
            let resp = self.coord.call_with(&req, self.apis.join, self.group.rebalance_timeout).await.with_context(|| format!("JoinGroup {gid}"))?;
            match resp.error_code {
                0 => {}
                MEMBER_ID_REQUIRED => {
                    // The normal first step since JoinGroup v4: join again with this id.
                    self.member_id = resp.member_id.as_str().to_string();
                    continue;
                }
                c => {
                    // Counted; a fatal code ends the member here.
                    self.react(c, rec).await?;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
            self.member_id = resp.member_id.as_str().to_string();
            let generation = resp.generation_id;
            let assignments = if resp.leader == resp.member_id && !resp.skip_assignment { self.assign(&resp.members)? } else { Vec::new() };
            let sreq = sync_req(&gid, generation, &self.member_id, assignments, self.apis.sync);
            let sresp = self.coord.call_with(&sreq, self.apis.sync, self.group.rebalance_timeout).await.with_context(|| format!("SyncGroup {gid}"))?;
            if sresp.error_code != 0 {
                self.react(sresp.error_code, rec).await?;
                continue;
            }
            let assigned = decode_assignment(sresp.assignment, &topic)?;
            self.generation = generation;
            if let Some(slot) = self.group.lock_synced().get_mut(self.idx) {
                *slot = generation;
            }
            return self.start_positions(&assigned).await;
        }
    }

    /// The leader's SyncGroup assignments: the range assignor over the
    /// members subscribed to the topic; every member gets an entry.
    fn assign(&self, members: &[JoinGroupResponseMember]) -> Result<Vec<SyncGroupRequestAssignment>> {
        let mut subscribed = Vec::with_capacity(members.len());
        for m in members {
            let topics = decode_subscription(m.metadata.clone()).with_context(|| format!("member {} of group {}", m.member_id.as_str(), self.group.id))?;
            if topics.iter().any(|t| *t == self.group.topic) {
                subscribed.push(m.member_id.as_str().to_string());
            }
        }
        let plan = range_assign(&subscribed, &self.group.partitions);
        members
            .iter()
            .map(|m| {
                let parts = plan.get(m.member_id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
                Ok(SyncGroupRequestAssignment::default().with_member_id(m.member_id.clone()).with_assignment(encode_assignment(&self.group.topic, parts)?))
            })
            .collect()
    }

    /// Start offsets of `assigned`: the committed offset, else `--from`.
    async fn start_positions(&mut self, assigned: &[i32]) -> Result<()> {
        let mut pos = BTreeMap::new();
        if !assigned.is_empty() {
            let committed = self.committed(assigned).await?;
            let mut missing = Vec::new();
            for p in assigned {
                if !self.group.leaders.contains_key(p) {
                    bail!("group {}: assigned partition {p} of {} has no known leader", self.group.id, self.group.topic);
                }
                match committed.get(p) {
                    Some(&o) if o >= 0 => {
                        pos.insert(*p, o);
                    }
                    _ => missing.push(*p),
                }
            }
            let group = self.group.clone();
            for (addr, parts) in crate::by_leader(&missing, &group.leaders) {
                let c = self.conn(&addr).await?;
                pos.extend(wire::list_offsets(c, &group.topic, &parts, group.from).await?);
            }
        }
        self.positions = pos;
        Ok(())
    }

    async fn conn(&mut self, addr: &str) -> Result<&mut Client> {
        if !self.conns.contains_key(addr) {
            let c = Client::connect(addr, self.group.timeout).await?;
            self.conns.insert(addr.to_string(), c);
        }
        self.conns.get_mut(addr).ok_or_else(|| anyhow!("no connection to {addr}"))
    }

    /// Committed offsets (OffsetFetch); -1 where there is none.
    async fn committed(&mut self, partitions: &[i32]) -> Result<HashMap<i32, i64>> {
        let v = self.apis.offsets;
        let (gid, topic) = (&self.group.id, &self.group.topic);
        let resp = self.coord.call(&offset_fetch_req(gid, topic, partitions, v), v).await.with_context(|| format!("OffsetFetch {gid}"))?;
        let (code, found): (i16, Vec<(i32, i64, i16)>) = if v >= 8 {
            let g = resp.groups.first().ok_or_else(|| anyhow!("OffsetFetch {gid}: no group in the answer"))?;
            let parts = g
                .topics
                .iter()
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.committed_offset, p.error_code)));
            (g.error_code, parts.collect())
        } else {
            let parts = resp
                .topics
                .iter()
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.committed_offset, p.error_code)));
            (resp.error_code, parts.collect())
        };
        if code != 0 {
            bail!("OffsetFetch {gid}: {}", error_name(code));
        }
        let mut out = HashMap::with_capacity(found.len());
        for (p, o, e) in found {
            if e != 0 {
                bail!("OffsetFetch {gid} {topic}-{p}: {}", error_name(e));
            }
            out.insert(p, o);
        }
        Ok(out)
    }

    async fn heartbeat(&mut self) -> Result<i16> {
        let req = heartbeat_req(&self.group.id, self.generation, &self.member_id);
        Ok(self.coord.call(&req, self.apis.heartbeat).await.with_context(|| format!("Heartbeat {}", self.group.id))?.error_code)
    }

    /// Commits `positions`; the first partition error code, 0 when all committed.
    async fn commit(&mut self, positions: &BTreeMap<i32, i64>) -> Result<i16> {
        if positions.is_empty() {
            return Ok(0);
        }
        let req = commit_req(&self.group.id, self.generation, &self.member_id, &self.group.topic, positions);
        let resp = self.coord.call(&req, self.apis.commit).await.with_context(|| format!("OffsetCommit {}", self.group.id))?;
        Ok(resp.topics.iter().flat_map(|t| t.partitions.iter()).map(|p| p.error_code).find(|c| *c != 0).unwrap_or(0))
    }

    async fn leave(&mut self) -> Result<i16> {
        let v = self.apis.leave;
        let resp = self.coord.call(&leave_req(&self.group.id, &self.member_id, v), v).await?;
        Ok(if resp.error_code != 0 { resp.error_code } else { resp.members.iter().map(|m| m.error_code).find(|c| *c != 0).unwrap_or(0) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("m-{i}")).collect()
    }

    #[test]
    fn range_assignment_matches_kafka() {
        let p: Vec<i32> = (0..7).collect();
        let a = range_assign(&ids(3), &p);
        assert_eq!(a["m-0"], vec![0, 1, 2]);
        assert_eq!(a["m-1"], vec![3, 4]);
        assert_eq!(a["m-2"], vec![5, 6]);
        // Members sort by id, not by the order they are listed in.
        let a = range_assign(&["b".to_string(), "a".to_string()], &[3, 1, 0, 2]);
        assert_eq!(a["a"], vec![0, 1]);
        assert_eq!(a["b"], vec![2, 3]);
        // More members than partitions: the last ones get nothing.
        let a = range_assign(&ids(4), &[0, 1]);
        assert_eq!(a.len(), 4);
        assert_eq!((a["m-0"].len(), a["m-1"].len(), a["m-2"].len(), a["m-3"].len()), (1, 1, 0, 0));
        assert!(range_assign(&[], &p).is_empty());
        // Every partition exactly once, whatever the counts.
        for members in 1..6 {
            for parts in 0..13 {
                let p: Vec<i32> = (0..parts).collect();
                let mut all: Vec<i32> = range_assign(&ids(members), &p).into_values().flatten().collect();
                all.sort_unstable();
                assert_eq!(all, p, "{members} members, {parts} partitions");
            }
        }
    }

    #[test]
    fn subscription_round_trips_with_its_version_prefix() {
        let b = encode_subscription("orders").expect("encode");
        assert_eq!(&b[..2], &[0, 0], "version 0 prefix");
        // v0: topics array (i32 count, i16-length strings), null user data.
        assert_eq!(&b[2..], &[0, 0, 0, 1, 0, 6, b'o', b'r', b'd', b'e', b'r', b's', 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decode_subscription(b).expect("decode"), vec!["orders".to_string()]);
        // A newer client's subscription (v3, owned partitions, rack) still reads.
        let v3 = ConsumerProtocolSubscription::default()
            .with_topics(vec![sb("a"), sb("b")])
            .with_owned_partitions(vec![kafka_protocol::messages::consumer_protocol_subscription::TopicPartition::default()
                .with_topic(TopicName(sb("a")))
                .with_partitions(vec![1])])
            .with_generation_id(4)
            .with_rack_id(Some(sb("r1")));
        assert_eq!(decode_subscription(versioned(&v3, 3).expect("encode v3")).expect("decode v3"), vec!["a".to_string(), "b".to_string()]);
        assert!(decode_subscription(Bytes::from_static(&[0])).is_err());
        assert!(decode_subscription(Bytes::from_static(&[0, 0, 0, 0, 0, 5])).is_err());
    }

    #[test]
    fn assignment_round_trips_with_its_version_prefix() {
        let b = encode_assignment("t", &[4, 1, 2]).expect("encode");
        assert_eq!(&b[..2], &[0, 0], "version 0 prefix");
        // v0: [topic "t": partitions 4, 1, 2], null user data.
        assert_eq!(&b[2..], &[0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decode_assignment(b, "t").expect("decode"), vec![1, 2, 4]);
        assert_eq!(decode_assignment(encode_assignment("t", &[]).expect("encode"), "t").expect("decode"), Vec::<i32>::new());
        assert_eq!(decode_assignment(Bytes::new(), "t").expect("empty"), Vec::<i32>::new());
        assert_eq!(decode_assignment(encode_assignment("other", &[1]).expect("encode"), "t").expect("decode"), Vec::<i32>::new());
        assert!(decode_assignment(Bytes::from_static(&[0, 0, 0, 0, 0, 9, 0]), "t").is_err());
    }

    /// Every request encodes at every version loadgen may pick (kafka-protocol
    /// refuses fields a version does not have).
    #[test]
    fn group_requests_encode_at_every_version() {
        let pos: BTreeMap<i32, i64> = [(0, 5), (3, 9)].into_iter().collect();
        let assignments = || vec![SyncGroupRequestAssignment::default().with_member_id(sb("m")).with_assignment(encode_assignment("t", &[0]).expect("encode"))];
        for v in wire::FIND_COORDINATOR.0..=wire::FIND_COORDINATOR.1 {
            wire::encode_request(&find_coordinator_req("g", v), v, 1).unwrap_or_else(|e| panic!("FindCoordinator v{v}: {e:#}"));
        }
        for v in wire::JOIN_GROUP.0..=wire::JOIN_GROUP.1 {
            wire::encode_request(&join_req("g", "m", "t", REBALANCE_TIMEOUT, v).expect("join"), v, 1).unwrap_or_else(|e| panic!("JoinGroup v{v}: {e:#}"));
        }
        for v in wire::SYNC_GROUP.0..=wire::SYNC_GROUP.1 {
            wire::encode_request(&sync_req("g", 1, "m", assignments(), v), v, 1).unwrap_or_else(|e| panic!("SyncGroup v{v}: {e:#}"));
        }
        for v in wire::HEARTBEAT.0..=wire::HEARTBEAT.1 {
            wire::encode_request(&heartbeat_req("g", 1, "m"), v, 1).unwrap_or_else(|e| panic!("Heartbeat v{v}: {e:#}"));
        }
        for v in wire::OFFSET_COMMIT.0..=wire::OFFSET_COMMIT.1 {
            wire::encode_request(&commit_req("g", 1, "m", "t", &pos), v, 1).unwrap_or_else(|e| panic!("OffsetCommit v{v}: {e:#}"));
        }
        for v in wire::OFFSET_FETCH.0..=wire::OFFSET_FETCH.1 {
            wire::encode_request(&offset_fetch_req("g", "t", &[0, 3], v), v, 1).unwrap_or_else(|e| panic!("OffsetFetch v{v}: {e:#}"));
        }
        for v in wire::LEAVE_GROUP.0..=wire::LEAVE_GROUP.1 {
            wire::encode_request(&leave_req("g", "m", v), v, 1).unwrap_or_else(|e| panic!("LeaveGroup v{v}: {e:#}"));
        }
    }

    #[test]
    fn settled_needs_every_member_on_one_generation() {
        let cli = crate::Cli::parse_from(["loadgen", "--consumers", "3"]);
        let g = Group::new("g".into(), &Settings::resolve(&cli, None).expect("settings"), &[], None);
        assert_eq!(g.settled(), None);
        *g.lock_synced() = vec![2, 2, 1];
        assert_eq!(g.settled(), None);
        *g.lock_synced() = vec![3, 3, 3];
        assert_eq!(g.settled(), Some(3));
        assert_eq!(group_id("t", "r1", 2), "loadgen-t-r1-2");
    }
}
