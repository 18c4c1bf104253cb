//! One consumer group's state machine (Kafka's classic protocol):
//! Empty -> PreparingRebalance -> CompletingRebalance -> Stable, and Dead once
//! deleted. Pure state: no I/O, no awaits — the coordinator drives it and
//! persists what changes.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::oneshot;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Kafka's group states, named as DescribeGroups/ListGroups print them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupState {
    /// No members; committed offsets may remain (and expire after `offsets.retention.minutes`).
    Empty,
    /// A rebalance has begun: members must (re)join before the rebalance timeout.
    PreparingRebalance,
    /// Every member has joined; waiting for the leader's assignment in SyncGroup.
    CompletingRebalance,
    /// Members have their assignment and heartbeat.
    Stable,
    /// Kafka's state of a deleted group; here it is only reported (DescribeGroups
    /// answers an unknown group as Dead), never entered.
    Dead,
}

impl GroupState {
    /// The state's name as DescribeGroups and ListGroups report it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup waiter is answered with.
#[derive(Debug)]
pub struct JoinResult {
    /// The join's error (None: joined).
    pub error: Option<Error>,
    /// Generation the join completed with (bumped by every rebalance).
    pub generation: i32,
    /// The group's protocol type, e.g. `consumer` (None in error answers).
    pub protocol_type: Option<String>,
    /// The protocol (assignor) chosen for the generation, e.g. `range`.
    pub protocol_name: Option<String>,
    /// Member id of the generation's leader, which computes the assignment.
    pub leader: String,
    /// The member id of the member answered (the one given to a new member).
    pub member_id: String,
    /// (member id, group instance id, metadata) — only for the leader.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

/// What a SyncGroup waiter is answered with: its assignment, or why not.
pub type SyncResult = Result<Bytes, Error>;

// The classic protocol's errors, with Kafka's messages (clients of the classic
// APIs only see the codes).

pub(in crate::coordinator) fn unknown_member() -> Error {
    Error::UnknownMemberId("The coordinator is not aware of this member.".into())
}

pub(in crate::coordinator) fn fenced_instance() -> Error {
    Error::FencedInstanceId("Another consumer with the same group.instance.id has registered with a different member.id.".into())
}

pub(in crate::coordinator) fn illegal_generation() -> Error {
    Error::IllegalGeneration("Specified group generation id is not valid.".into())
}

pub(in crate::coordinator) fn inconsistent_protocol() -> Error {
    Error::InconsistentGroupProtocol("The group member's supported protocols are incompatible with those of existing members.".into())
}

pub(in crate::coordinator) fn group_not_found() -> Error {
    Error::GroupIdNotFound("The group id does not exist.".into())
}

pub(in crate::coordinator) fn non_empty_group() -> Error {
    Error::NonEmptyGroup("The group is not empty.".into())
}

/// A group member.
#[derive(Debug, Serialize, Deserialize)]
pub struct Member {
    /// Member id the coordinator gave it (`<client id>-<uuid>`).
    pub id: String,
    /// `group.instance.id` of a static member; None for a dynamic one.
    pub instance_id: Option<String>,
    /// The client id of the member's connection.
    pub client_id: String,
    /// The client host (peer address) of the member's connection.
    pub client_host: String,
    /// Session timeout (ms): without a heartbeat for this long the member is removed.
    pub session_timeout_ms: u64,
    /// Rebalance timeout (ms): how long a rebalance waits for the member to rejoin.
    pub rebalance_timeout_ms: u64,
    /// (protocol name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// The member's assignment from the leader's last SyncGroup (opaque to the broker).
    pub assignment: Bytes,
    /// When the member last heartbeated (or joined); not persisted.
    #[serde(skip, default = "Instant::now")]
    pub last_heartbeat: Instant,
    /// The member's JoinGroup, parked until the rebalance completes; not persisted.
    #[serde(skip)]
    pub join_waiter: Option<oneshot::Sender<JoinResult>>,
    /// The member's SyncGroup, parked until the leader's assignment arrives; not persisted.
    #[serde(skip)]
    pub sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    /// Metadata this member sent for `protocol`.
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    /// Alive = heartbeat within the session timeout, or parked in a JoinGroup.
    pub fn expired(&self, now: Instant) -> bool {
        self.join_waiter.is_none() && now.duration_since(self.last_heartbeat) > Duration::from_millis(self.session_timeout_ms)
    }
}

/// A committed offset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommittedOffset {
    /// The committed offset: the next offset the group will consume in the partition.
    pub offset: i64,
    /// Leader epoch of the record before that offset, as the client sent it (-1: unknown; KIP-320).
    pub leader_epoch: i32,
    /// Free-form metadata the client committed with the offset.
    pub metadata: Option<String>,
    /// When the commit was made (ms since the epoch); offset retention counts from it.
    pub commit_timestamp_ms: i64,
    /// Where this commit sits in `__consumer_offsets` (not stored: it is the
    /// record's own offset). When a transaction commits, its offsets replace
    /// only older commits, as Kafka's `completePendingTxnOffsetCommit` does.
    #[serde(skip, default = "no_record_offset")]
    pub record_offset: i64,
}

fn no_record_offset() -> i64 {
    -1
}

/// A consumer group: membership, generation, assignments and committed offsets.
#[derive(Debug)]
pub struct Group {
    /// The group id.
    pub id: String,
    /// Where the group is in the classic protocol's state machine.
    pub state: GroupState,
    /// Protocol type its members join with, e.g. `consumer` or `connect`; None before
    /// the first join (kept while the group is Empty and committed offsets remain).
    pub protocol_type: Option<String>,
    /// The protocol (assignor) chosen for the current generation, e.g. `range`; None before the first.
    pub protocol_name: Option<String>,
    /// Generation id, bumped by every completed rebalance; commits must carry the current one.
    pub generation: i32,
    /// Member id of the current leader, which computes the assignment.
    pub leader: Option<String>,
    /// The members by member id.
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pub pending_members: HashMap<String, Instant>,
    /// group.instance.id -> member id (static membership).
    pub static_members: HashMap<String, String>,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// When PreparingRebalance must complete even if members are missing.
    pub rebalance_deadline: Option<Instant>,
    /// A new group waits this long for more members (group.initial.rebalance.delay.ms).
    pub initial_delay_until: Option<Instant>,
    /// When the group last became Empty (for offsets.retention.minutes).
    pub empty_since_ms: Option<i64>,
    /// Offsets committed inside a transaction (TxnOffsetCommit), per producer
    /// id: invisible to OffsetFetch until the coordinator's commit marker,
    /// dropped at an abort marker. Bounded by what open transactions wrote.
    pub pending_txn_offsets: HashMap<i64, BTreeMap<(String, i32), CommittedOffset>>,
    /// Set when the group speaks the consumer group protocol (KIP-848): then
    /// the classic fields above stay empty and only the offsets are shared.
    pub consumer: Option<Box<crate::coordinator::consumer_group::ConsumerGroup>>,
}

impl Group {
    /// Ends producer `producer_id`'s transaction for this group: its pending
    /// offsets become committed (commit) or vanish (abort).
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool) {
        if let Some(pending) = self.pending_txn_offsets.remove(&producer_id) {
            if commit {
                for (k, v) in pending {
                    if self.offsets.get(&k).is_none_or(|cur| cur.record_offset < v.record_offset) {
                        self.offsets.insert(k, v);
                    }
                }
            }
        }
    }

    /// Whether an open transaction holds an offset for the partition (OffsetFetch
    /// with require_stable answers UNSTABLE_OFFSET_COMMIT for it).
    pub fn has_pending_txn_offset(&self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.pending_txn_offsets.values().any(|m| m.contains_key(&key))
    }

    /// A new, Empty group with no members and no offsets, empty since `now_ms`.
    pub fn new(id: String, now_ms: i64) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            offsets: BTreeMap::new(),
            pending_txn_offsets: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            empty_since_ms: Some(now_ms),
            consumer: None,
        }
    }

    /// Protocols every member supports, in the candidate order of the first member.
    fn common_protocols(&self) -> Vec<String> {
        let mut it = self.members.values();
        let Some(first) = it.next() else { return Vec::new() };
        let mut common: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in it {
            common.retain(|p| m.protocols.iter().any(|(n, _)| n == p));
        }
        common
    }

    /// Would a member with these protocols leave the group without a common protocol?
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)], except: Option<&str>) -> bool {
        let others: Vec<&Member> = self.members.values().filter(|m| Some(m.id.as_str()) != except).collect();
        if others.is_empty() {
            return !protocols.is_empty();
        }
        if self.protocol_type.as_deref().is_some_and(|t| t != protocol_type) {
            return false;
        }
        protocols.iter().any(|(p, _)| others.iter().all(|m| m.protocols.iter().any(|(n, _)| n == p)))
    }

    /// Kafka's vote: each member votes for its most preferred common protocol.
    fn select_protocol(&self) -> Option<String> {
        let common = self.common_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((p, _)) = m.protocols.iter().find(|(n, _)| common.contains(n)) {
                *votes.entry(p.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        common.into_iter().find(|p| votes.get(p.as_str()) == Some(&best))
    }

    /// Enters PreparingRebalance at `now`: running syncs are told REBALANCE_IN_PROGRESS.
    pub fn prepare_rebalance(&mut self, initial_delay_ms: u64, now: Instant) {
        if self.state == GroupState::Empty {
            self.initial_delay_until = Some(now + Duration::from_millis(initial_delay_ms));
        }
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(Err(Error::RebalanceInProgress));
            }
        }
        let timeout = self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0);
        self.rebalance_deadline = Some(now + Duration::from_millis(timeout));
        self.state = GroupState::PreparingRebalance;
    }

    /// Completes the join phase when every member has rejoined (after the initial
    /// delay) or the rebalance timeout passed (members that did not rejoin are
    /// removed). Returns true when the group changed (and must be persisted).
    /// `now_ms` is the wall time of `now`, kept if the group becomes empty.
    pub fn maybe_complete_join(&mut self, now: Instant, now_ms: i64) -> bool {
        if self.state != GroupState::PreparingRebalance {
            return false;
        }
        if self.initial_delay_until.is_some_and(|t| now < t) {
            return false;
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some());
        let timed_out = self.rebalance_deadline.is_some_and(|t| now >= t);
        if !all_joined && !timed_out {
            return false;
        }
        if !all_joined {
            let gone: Vec<String> = self.members.values().filter(|m| m.join_waiter.is_none()).map(|m| m.id.clone()).collect();
            for id in gone {
                self.remove_member(&id);
            }
        }
        self.initial_delay_until = None;
        self.rebalance_deadline = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader = None;
            self.empty_since_ms = Some(now_ms);
            return true;
        }
        self.protocol_name = self.select_protocol();
        if self.leader.as_ref().is_none_or(|l| !self.members.contains_key(l)) {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let all: Vec<(String, Option<String>, Bytes)> =
            self.members.values().map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata_for(&protocol))).collect();
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            m.last_heartbeat = now;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult {
                    error: None,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    members: if m.id == leader { all.clone() } else { Vec::new() },
                });
            }
        }
        true
    }

    /// The answer for a member that rejoins with nothing changed: the current generation.
    pub fn current_join(&self, member_id: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol_name.clone().unwrap_or_default();
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: leader.clone(),
            member_id: member_id.to_string(),
            members: if member_id == leader {
                self.members.values().map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata_for(&protocol))).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Removes a member, answering its parked requests with UNKNOWN_MEMBER_ID.
    pub fn remove_member(&mut self, id: &str) {
        if let Some(mut m) = self.members.remove(id) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult {
                    error: Some(unknown_member()),
                    generation: -1,
                    protocol_type: None,
                    protocol_name: None,
                    leader: String::new(),
                    member_id: id.to_string(),
                    members: Vec::new(),
                });
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(Err(unknown_member()));
            }
            if let Some(inst) = &m.instance_id {
                if self.static_members.get(inst).is_some_and(|mid| mid == id) {
                    self.static_members.remove(inst);
                }
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        if self.members.is_empty() && self.state != GroupState::PreparingRebalance {
            self.protocol_type = if self.offsets.is_empty() { None } else { self.protocol_type.clone() };
        }
    }

    /// Applies the leader's assignment and answers every parked SyncGroup.
    pub fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>) {
        let map: HashMap<String, Bytes> = assignments.into_iter().collect();
        for m in self.members.values_mut() {
            m.assignment = map.get(&m.id).cloned().unwrap_or_default();
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(Ok(m.assignment.clone()));
            }
        }
        self.state = GroupState::Stable;
    }

    /// Topics the members subscribe to (from consumer-protocol metadata).
    pub fn subscribed_topics(&self) -> Option<std::collections::BTreeSet<String>> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.clone()?;
        let mut out = std::collections::BTreeSet::new();
        for m in self.members.values() {
            let mut meta = m.metadata_for(&protocol);
            if meta.len() < 2 {
                continue;
            }
            let version = i16::from_be_bytes([meta[0], meta[1]]);
            let _ = bytes::Buf::get_i16(&mut meta);
            if let Ok(sub) = ConsumerProtocolSubscription::decode(&mut meta, version.clamp(0, 3)) {
                out.extend(sub.topics.iter().map(|t| t.to_string()));
            }
        }
        Some(out)
    }
}
