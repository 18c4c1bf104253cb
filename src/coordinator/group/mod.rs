//! The group coordinator: Kafka's classic consumer-group protocol, and the
//! consumer group protocol of KIP-848 ([`consumer_group`]) beside it.
//!
//! A group lives on the shard that owns its `__consumer_offsets` partition
//! (`abs(javaHashCode(group.id)) % offsets.topic.num.partitions`, Kafka's
//! formula), so all of a group's state is touched by one core only. Offsets and
//! group metadata are appended to that partition and replayed when the shard
//! opens it, so they survive restarts and kill -9.

pub mod state;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetDeleteRequest, SyncGroupRequest,
    TxnOffsetCommitRequest,
};

use super::store::{self, GroupSnapshot, Replayed, StoreKey, StoreRecord};
use super::{consumer_group, txn_store};
use crate::config::Config;
use crate::log::PartitionLog;
use crate::metadata::MetadataImage;
use state::{fenced_instance, group_not_found, illegal_generation, inconsistent_protocol, non_empty_group, unknown_member};
use state::{CommittedOffset, Group, GroupState, JoinResult, Member};

/// The internal topic holding offsets and group metadata.
pub use crate::protocol::topic::OFFSETS_TOPIC;

/// Java's `String.hashCode` (UTF-16 code units, wrapping) — Kafka places groups with it.
pub fn java_hash_code(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The `__consumer_offsets` partition of a group (Kafka's `Utils.abs(hash) % n`).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = java_hash_code(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// The partition count that places keys in an internal topic: the existing
/// topic's own count, else `configured` (the count it will be created with).
/// Kafka's coordinators do the same: the config only applies at creation, so a
/// topic made with another count (an older config, or a client before clients
/// were refused) still gives every group and transactional id a partition.
pub fn internal_partition_count(image: &MetadataImage, topic: &str, configured: i32) -> i32 {
    match image.topics.get(topic) {
        Some(t) if !t.partitions.is_empty() => t.partitions.len().min(i32::MAX as usize) as i32,
        _ => configured,
    }
}

/// Start-up: says when an internal topic's partition count differs from the
/// config (it is kept: changing it would move every group and transactional id
/// away from its committed state).
pub fn warn_partition_count_mismatch(cfg: &Config, image: &MetadataImage) {
    let checks = [
        (OFFSETS_TOPIC, "offsets.topic.num.partitions", cfg.offsets_topic_num_partitions),
        (txn_store::TXN_STATE_TOPIC, "transaction.state.log.num.partitions", cfg.transaction_state_log_num_partitions),
    ];
    for (topic, key, configured) in checks {
        let actual = internal_partition_count(image, topic, configured);
        if actual != configured {
            tracing::warn!(topic, "{topic} has {actual} partition(s) but {key}={configured}: groups and transactional ids are placed by the topic's own count");
        }
    }
}

/// Group requests a shard serves for the groups it coordinates.
pub enum GroupRequest {
    /// JoinGroup: join or rejoin; answered when the rebalance completes.
    Join {
        /// The decoded request.
        req: JoinGroupRequest,
        /// The request's API version (v4+ asks a new member to rejoin with its id).
        version: i16,
        /// The client id of the connection, kept with the member.
        client_id: String,
        /// The client host (peer address) of the connection, kept with the member.
        client_host: String,
    },
    /// SyncGroup: the leader sends the assignment, followers wait for theirs.
    Sync {
        /// The decoded request.
        req: SyncGroupRequest,
    },
    /// Heartbeat: keeps the member's session alive.
    Heartbeat {
        /// The decoded request.
        req: HeartbeatRequest,
    },
    /// LeaveGroup: removes one member, or a batch of them (v3+).
    Leave {
        /// The decoded request.
        req: LeaveGroupRequest,
    },
    /// OffsetCommit: a member's (or a standalone consumer's) committed offsets.
    OffsetCommit {
        /// The decoded request.
        req: OffsetCommitRequest,
        /// The request's API version (v9 carries a consumer-protocol member epoch).
        version: i16,
    },
    /// `require_stable` (v7+): partitions with offsets pending in an open
    /// transaction answer UNSTABLE_OFFSET_COMMIT instead of the last committed offset.
    /// `member` (v9): the consumer-protocol member asking and its epoch, checked
    /// as Kafka does (None = not given: member id null, epoch -1).
    OffsetFetch {
        /// The group id.
        group: String,
        /// Topics with the partitions asked for; None = every partition with a committed offset.
        topics: Option<Vec<(String, Vec<i32>)>>,
        /// Partitions with offsets pending in an open transaction answer UNSTABLE_OFFSET_COMMIT.
        require_stable: bool,
        /// (member id, member epoch) of the asking member.
        member: Option<(Option<String>, i32)>,
    },
    /// Offsets written inside a transaction (visible after its commit marker).
    TxnOffsetCommit {
        /// The decoded request.
        req: TxnOffsetCommitRequest,
        /// The request's API version (v3 adds the member id and generation).
        version: i16,
    },
    /// `types` (ListGroups v5): `classic` / `consumer`, empty = all.
    List {
        /// State names to list (e.g. `Stable`); empty = all.
        states: Vec<String>,
        /// Group types to list; empty = all.
        types: Vec<String>,
    },
    /// DescribeGroups (classic protocol).
    Describe {
        /// Group ids to describe.
        groups: Vec<String>,
    },
    /// DeleteGroups: removes empty groups and their committed offsets.
    Delete {
        /// Group ids to delete.
        groups: Vec<String>,
    },
    /// OffsetDelete: removes committed offsets of partitions the group does not consume.
    OffsetDelete {
        /// The decoded request.
        req: OffsetDeleteRequest,
    },
    /// ConsumerGroupHeartbeat (KIP-848).
    ConsumerHeartbeat {
        /// The decoded request.
        req: ConsumerGroupHeartbeatRequest,
        /// The request's API version (v1 adds the subscription regex).
        version: i16,
        /// The client id of the connection, kept with the member.
        client_id: String,
        /// The client host (peer address) of the connection, kept with the member.
        client_host: String,
    },
    /// ConsumerGroupDescribe (KIP-848).
    ConsumerDescribe {
        /// Group ids to describe.
        groups: Vec<String>,
    },
}

/// A described group, ready for DescribeGroups.
pub struct GroupDescription {
    /// The group id.
    pub group: String,
    /// The group's error (e.g. COORDINATOR_LOAD_IN_PROGRESS); None when described.
    pub error: Option<Error>,
    /// The group state's name, e.g. `Stable` (see [`state::GroupState::name`]).
    pub state: &'static str,
    /// Protocol type, e.g. `consumer`; empty when none.
    pub protocol_type: String,
    /// Protocol (assignor) of the current generation; empty when none.
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// Offsets by topic: (partition, offset, leader epoch, metadata, error).
pub type OffsetsByTopic = Vec<(String, Vec<FetchedOffset>)>;
/// One partition's fetched offset: (partition, offset, leader epoch, metadata, error).
pub type FetchedOffset = (i32, i64, i32, Option<String>, Option<Error>);
/// A group's store records: key and value (None deletes).
pub type GroupRecords = Vec<(StoreKey, Option<Vec<u8>>)>;
/// Per-partition errors (None: done) by topic.
pub type ErrorsByTopic = Vec<(String, Vec<(i32, Option<Error>)>)>;

/// Answers to [`GroupRequest`]s.
pub enum GroupResponse {
    /// JoinGroup's answer.
    Join(JoinResult),
    /// SyncGroup's answer: (assignment or error, protocol type, protocol name).
    Sync(Result<Bytes, Error>, Option<String>, Option<String>),
    /// Heartbeat's answer (REBALANCE_IN_PROGRESS tells the member to rejoin).
    Heartbeat(Result<(), Error>),
    /// Per member: (member id, instance id, error). An unknown group answers
    /// UNKNOWN_MEMBER_ID for each member.
    Leave(Vec<(String, Option<String>, Option<Error>)>),
    /// OffsetCommit's per-partition errors; Err: the error of every partition.
    OffsetCommit(Result<ErrorsByTopic, Error>),
    /// OffsetFetch's offsets; Err: the group's error.
    OffsetFetch(Result<OffsetsByTopic, Error>),
    /// (group, protocol type, state, group type)
    List(Vec<(String, String, &'static str, &'static str)>),
    /// DescribeGroups' descriptions, one per group asked.
    Describe(Vec<GroupDescription>),
    /// DeleteGroups' (group id, error) per group.
    Delete(Vec<(String, Option<Error>)>),
    /// OffsetDelete's per-partition errors; Err: the group's error.
    OffsetDelete(Result<ErrorsByTopic, Error>),
    /// TxnOffsetCommit's per-partition errors; Err: the error of every partition
    /// (PRODUCER_FENCED for a fenced producer, which the handler maps by version).
    TxnOffsetCommit(Result<ErrorsByTopic, Error>),
    /// ConsumerGroupHeartbeat's answer, or the error for the whole request.
    ConsumerHeartbeat(Result<consumer_group::Answer, Error>),
    /// ConsumerGroupDescribe's descriptions, one per group asked.
    ConsumerDescribe(Vec<consumer_group::ConsumerGroupDescription>),
}

/// One shard's coordinator: the groups of the `__consumer_offsets` partitions it owns.
pub struct GroupCoordinator {
    pub(in crate::coordinator) cfg: Arc<Config>,
    pub(in crate::coordinator) groups: RefCell<HashMap<String, Group>>,
    pub(in crate::coordinator) logs: RefCell<HashMap<i32, Rc<PartitionLog>>>,
    /// Partitions of `__consumer_offsets` (see [`internal_partition_count`]).
    pub(in crate::coordinator) partition_count: Cell<i32>,
    /// Set by [`GroupCoordinator::shutdown`]: JoinGroup and SyncGroup no longer park.
    pub(in crate::coordinator) stopping: Cell<bool>,
}

fn snapshot_record(g: &Group) -> (StoreKey, Option<Vec<u8>>) {
    let key = StoreKey::Group { group: g.id.clone() };
    let snap = GroupSnapshot {
        protocol_type: g.protocol_type.clone(),
        protocol_name: g.protocol_name.clone(),
        generation: g.generation,
        leader: g.leader.clone(),
        members: Vec::new(),
    };
    // Members are serialized by reference to avoid cloning their waiters.
    let mut value = serde_json::to_value(&snap).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("members".into(), serde_json::to_value(g.members.values().collect::<Vec<&Member>>()).unwrap_or_default());
    }
    (key, serde_json::to_vec(&value).ok())
}

fn join_error(error: Error, member_id: String) -> JoinResult {
    JoinResult { error: Some(error), generation: -1, protocol_type: None, protocol_name: None, leader: String::new(), member_id, members: Vec::new() }
}

impl GroupCoordinator {
    /// A coordinator with no groups yet: the shard hands it its `__consumer_offsets`
    /// partitions ([`GroupCoordinator::add_partition`]), which it replays.
    pub fn new(cfg: Arc<Config>) -> GroupCoordinator {
        let partition_count = Cell::new(cfg.offsets_topic_num_partitions);
        GroupCoordinator { cfg, groups: RefCell::new(HashMap::new()), logs: RefCell::new(HashMap::new()), partition_count, stopping: Cell::new(false) }
    }

    /// The broker is stopping: answer every parked JoinGroup and SyncGroup with
    /// NOT_COORDINATOR, and park no new ones, as Kafka does when it unloads a
    /// group (the client then looks for the coordinator again). Without this a
    /// stopping broker waited for them, since it lets in-flight requests finish,
    /// and nothing would ever answer them: the ticker that ends rebalances on
    /// timeout stops with the shard. Group state stays as it is (and as it was
    /// persisted); the next start loads it.
    pub fn shutdown(&self) {
        self.stopping.set(true);
        for g in self.groups.borrow_mut().values_mut() {
            for m in g.members.values_mut() {
                if let Some(w) = m.join_waiter.take() {
                    let _ = w.send(join_error(Error::NotCoordinator, m.id.clone()));
                }
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(Err(Error::NotCoordinator));
                }
            }
        }
    }

    /// The shard tells the coordinator how many partitions `__consumer_offsets`
    /// has, before it hands over any of them.
    pub fn set_partition_count(&self, n: i32) {
        self.partition_count.set(n.max(1));
    }

    /// Takes over a `__consumer_offsets` partition: replays it into group state.
    pub fn add_partition(&self, partition: i32, log: Rc<PartitionLog>) -> crate::error::Result<()> {
        // A leader again after a failover: what was loaded before is stale.
        self.remove_partition(partition);
        let records = store::replay(&log)?;
        let wall = self.cfg.clock.now_ms();
        let mut groups = self.groups.borrow_mut();
        for r in records {
            let r = match r {
                Replayed::Record(r, None) => r,
                Replayed::Record(StoreRecord::Offset { group, topic, partition, value: Some(v) }, Some(pid)) => {
                    let g = groups.entry(group.clone()).or_insert_with(|| Group::new(group, wall));
                    g.pending_txn_offsets.entry(pid).or_default().insert((topic, partition), v);
                    continue;
                }
                // Only offsets are ever written transactionally; anything else is ignored.
                Replayed::Record(_, Some(_)) => continue,
                Replayed::Marker { producer_id, commit } => {
                    // Only this partition's groups: the map also holds groups of
                    // partitions replayed before, whose pending offsets this marker
                    // does not settle (the same producer id may have open offsets there).
                    let n = self.partition_count.get();
                    for g in groups.values_mut().filter(|g| partition_for(&g.id, n) == partition) {
                        g.complete_txn(producer_id, commit);
                    }
                    continue;
                }
            };
            match r {
                StoreRecord::Offset { group, topic, partition, value } => {
                    let g = groups.entry(group.clone()).or_insert_with(|| Group::new(group, wall));
                    match value {
                        Some(v) => {
                            g.offsets.insert((topic, partition), v);
                        }
                        None => {
                            g.offsets.remove(&(topic, partition));
                        }
                    }
                }
                StoreRecord::Group { group, value } => match value {
                    Some(s) => {
                        let g = groups.entry(group.clone()).or_insert_with(|| Group::new(group, wall));
                        g.protocol_type = s.protocol_type;
                        g.protocol_name = s.protocol_name;
                        g.generation = s.generation;
                        g.leader = s.leader;
                        g.members.clear();
                        g.static_members.clear();
                        for mut m in s.members {
                            m.last_heartbeat = self.cfg.clock.instant();
                            if let Some(i) = &m.instance_id {
                                g.static_members.insert(i.clone(), m.id.clone());
                            }
                            g.members.insert(m.id.clone(), m);
                        }
                        g.state = if g.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
                    }
                    None => {
                        if let Some(g) = groups.get_mut(&group) {
                            if g.offsets.is_empty() && g.consumer.is_none() {
                                groups.remove(&group);
                            } else {
                                g.members.clear();
                                g.state = GroupState::Empty;
                            }
                        }
                    }
                },
                StoreRecord::ConsumerGroup { group, value } => match value {
                    Some(v) => {
                        let g = groups.entry(group.clone()).or_insert_with(|| Group::new(group, wall));
                        consumer_group::records::apply_group(g.consumer.get_or_insert_with(Box::default), v);
                    }
                    None => {
                        if let Some(g) = groups.get_mut(&group) {
                            g.consumer = None;
                            if g.offsets.is_empty() && g.members.is_empty() && g.protocol_type.is_none() {
                                groups.remove(&group);
                            }
                        }
                    }
                },
                StoreRecord::ConsumerGroupMember { group, member, value } => {
                    if value.is_none() && groups.get(&group).is_none_or(|g| g.consumer.is_none()) {
                        continue;
                    }
                    let g = groups.entry(group.clone()).or_insert_with(|| Group::new(group, wall));
                    consumer_group::records::apply_member(g.consumer.get_or_insert_with(Box::default), &member, value);
                }
            }
        }
        drop(groups);
        self.logs.borrow_mut().insert(partition, log);
        self.consumer_on_loaded(partition);
        Ok(())
    }

    /// Drops the groups of `partition` of `__consumer_offsets` and its log (this
    /// broker no longer leads it: their requests get NOT_COORDINATOR).
    pub fn remove_partition(&self, partition: i32) {
        if self.logs.borrow_mut().remove(&partition).is_some() {
            let n = self.partition_count.get();
            self.groups.borrow_mut().retain(|id, _| partition_for(id, n) != partition);
            tracing::info!(topic = OFFSETS_TOPIC, partition, "group coordinator: partition unloaded");
        }
    }

    pub(in crate::coordinator) fn partition_of(&self, group: &str) -> i32 {
        partition_for(group, self.partition_count.get())
    }

    pub(in crate::coordinator) fn log_for(&self, group: &str) -> Option<Rc<PartitionLog>> {
        self.logs.borrow().get(&self.partition_of(group)).cloned()
    }

    /// Appends in the background; group state already reflects the change.
    pub(in crate::coordinator) fn persist(&self, group: &str, records: Vec<(StoreKey, Option<Vec<u8>>)>) {
        if let Some(log) = self.log_for(group) {
            glommio::spawn_local(async move {
                if let Err(e) = store::append(&log, records).await.map(|_| ()) {
                    crate::error_limited!("persisting group state failed: {e}");
                }
            })
            .detach();
        }
    }

    pub(in crate::coordinator) fn persist_snapshot(&self, group: &str) {
        let rec = self.groups.borrow().get(group).map(snapshot_record);
        if let Some(r) = rec {
            self.persist(group, vec![r]);
        }
    }

    /// Serves one group request.
    pub async fn handle(&self, req: GroupRequest, image: &MetadataImage) -> GroupResponse {
        match req {
            GroupRequest::Join { req, version, client_id, client_host } => GroupResponse::Join(self.join(req, version, client_id, client_host).await),
            GroupRequest::Sync { req } => self.sync(req).await,
            GroupRequest::Heartbeat { req } => GroupResponse::Heartbeat(self.heartbeat(req)),
            GroupRequest::Leave { req } => self.leave(req),
            GroupRequest::OffsetCommit { req, version } => {
                let group = req.group_id.to_string();
                let res = self.commit(req, version, image).await;
                if res.is_ok() {
                    crate::metrics::with(|m| m.offset_commit(&group));
                }
                GroupResponse::OffsetCommit(res)
            }
            GroupRequest::OffsetFetch { group, topics, require_stable, member } => {
                if let Some(e) = self.check_offset_fetch(&group, member) {
                    return GroupResponse::OffsetFetch(Err(e));
                }
                self.fetch_offsets(&group, topics, require_stable)
            }
            GroupRequest::TxnOffsetCommit { req, version } => GroupResponse::TxnOffsetCommit(self.txn_commit(req, version, image).await),
            GroupRequest::List { states, types } => GroupResponse::List(
                self.groups
                    .borrow()
                    .values()
                    .map(|g| match g.consumer.as_deref() {
                        Some(c) => (g.id.clone(), "consumer".to_string(), c.state().name(), "consumer"),
                        None => (g.id.clone(), g.protocol_type.clone().unwrap_or_default(), g.state.name(), "classic"),
                    })
                    .filter(|(_, _, state, _)| states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(state)))
                    .filter(|(_, _, _, kind)| types.is_empty() || types.iter().any(|t| t.eq_ignore_ascii_case(kind)))
                    .collect(),
            ),
            GroupRequest::Describe { groups } => GroupResponse::Describe(groups.into_iter().map(|g| self.describe(g)).collect()),
            GroupRequest::Delete { groups } => GroupResponse::Delete(groups.into_iter().map(|g| self.delete(g)).collect()),
            GroupRequest::OffsetDelete { req } => self.offset_delete(req, image),
            GroupRequest::ConsumerHeartbeat { req, version, client_id, client_host } => {
                GroupResponse::ConsumerHeartbeat(self.consumer_heartbeat(req, version, client_id, client_host, image).await)
            }
            GroupRequest::ConsumerDescribe { groups } => GroupResponse::ConsumerDescribe(self.consumer_describe(groups, image)),
        }
    }

    pub(in crate::coordinator) async fn join(&self, req: JoinGroupRequest, version: i16, client_id: String, client_host: String) -> JoinResult {
        let gid = req.group_id.0.to_string();
        let member_id = req.member_id.to_string();
        if gid.is_empty() {
            return join_error(Error::InvalidGroupId, member_id);
        }
        if self.log_for(&gid).is_none() || self.stopping.get() {
            return join_error(Error::NotCoordinator, member_id);
        }
        if let Err(e) = self.classic_join_check(&gid) {
            return join_error(e, member_id);
        }
        let session = req.session_timeout_ms.max(0) as u64;
        if session < self.cfg.group_min_session_timeout_ms || session > self.cfg.group_max_session_timeout_ms {
            return join_error(Error::InvalidSessionTimeout, member_id);
        }
        let rebalance = if version == 0 { session } else { req.rebalance_timeout_ms.max(0) as u64 };
        let protocols: Vec<(String, Bytes)> = req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect();
        let protocol_type = req.protocol_type.to_string();
        let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
        let delay = self.cfg.group_initial_rebalance_delay_ms;
        let now = self.cfg.clock.instant();
        let (rx, changed) = {
            let mut groups = self.groups.borrow_mut();
            if member_id.is_empty() {
                groups.entry(gid.clone()).or_insert_with(|| Group::new(gid.clone(), self.cfg.clock.now_ms()));
            }
            let Some(g) = groups.get_mut(&gid) else {
                return join_error(unknown_member(), member_id);
            };
            let except = if member_id.is_empty() { instance.as_ref().and_then(|i| g.static_members.get(i).cloned()) } else { Some(member_id.clone()) };
            if !g.supports_protocols(&protocol_type, &protocols, except.as_deref()) {
                return join_error(inconsistent_protocol(), member_id);
            }
            let new_member = |id: String| Member {
                id,
                instance_id: instance.clone(),
                client_id: client_id.clone(),
                client_host: client_host.clone(),
                session_timeout_ms: session,
                rebalance_timeout_ms: rebalance,
                protocols: protocols.clone(),
                assignment: Bytes::new(),
                last_heartbeat: now,
                join_waiter: None,
                sync_waiter: None,
            };
            let id: String;
            if member_id.is_empty() {
                let fresh = format!("{}-{}", if client_id.is_empty() { "member" } else { &client_id }, uuid::Uuid::new_v4());
                if let Some(inst) = &instance {
                    if let Some(old) = g.static_members.get(inst).cloned() {
                        // A static member rejoining: take over its old identity without a rebalance.
                        if let Some(mut m) = g.members.remove(&old) {
                            if let Some(w) = m.join_waiter.take() {
                                let _ = w.send(join_error(fenced_instance(), old.clone()));
                            }
                            if let Some(w) = m.sync_waiter.take() {
                                let _ = w.send(Err(fenced_instance()));
                            }
                            let unchanged = m.protocols == protocols;
                            m.id = fresh.clone();
                            m.protocols = protocols.clone();
                            m.session_timeout_ms = session;
                            m.rebalance_timeout_ms = rebalance;
                            m.last_heartbeat = now;
                            g.members.insert(fresh.clone(), m);
                            g.static_members.insert(inst.clone(), fresh.clone());
                            if g.leader.as_deref() == Some(old.as_str()) {
                                g.leader = Some(fresh.clone());
                            }
                            if unchanged && matches!(g.state, GroupState::Stable | GroupState::CompletingRebalance) {
                                let mut r = g.current_join(&fresh);
                                r.members.clear();
                                drop(groups);
                                self.persist_snapshot(&gid);
                                return r;
                            }
                        } else {
                            g.members.insert(fresh.clone(), new_member(fresh.clone()));
                            g.static_members.insert(inst.clone(), fresh.clone());
                        }
                    } else {
                        g.members.insert(fresh.clone(), new_member(fresh.clone()));
                        g.static_members.insert(inst.clone(), fresh.clone());
                    }
                } else if version >= 4 {
                    g.pending_members.insert(fresh.clone(), now);
                    return join_error(Error::MemberIdRequired, fresh);
                } else {
                    g.members.insert(fresh.clone(), new_member(fresh.clone()));
                }
                id = fresh;
            } else if g.pending_members.remove(&member_id).is_some() {
                g.members.insert(member_id.clone(), new_member(member_id.clone()));
                id = member_id.clone();
            } else if let Some(m) = g.members.get_mut(&member_id) {
                if let Some(inst) = &instance {
                    if g.static_members.get(inst) != Some(&member_id) {
                        return join_error(fenced_instance(), member_id);
                    }
                }
                let unchanged = m.protocols == protocols;
                m.protocols = protocols.clone();
                m.session_timeout_ms = session;
                m.rebalance_timeout_ms = rebalance;
                m.last_heartbeat = now;
                let is_leader = g.leader.as_deref() == Some(member_id.as_str());
                match g.state {
                    GroupState::CompletingRebalance if unchanged => return g.current_join(&member_id),
                    GroupState::Stable if unchanged && !is_leader => return g.current_join(&member_id),
                    GroupState::Empty | GroupState::Dead => return join_error(unknown_member(), member_id),
                    _ => {}
                }
                id = member_id.clone();
            } else {
                return join_error(unknown_member(), member_id);
            }
            if g.protocol_type.is_none() {
                g.protocol_type = Some(protocol_type.clone());
            }
            let (tx, rx) = oneshot::channel();
            if let Some(m) = g.members.get_mut(&id) {
                m.join_waiter = Some(tx);
            }
            if g.state != GroupState::PreparingRebalance {
                g.prepare_rebalance(delay, now);
            }
            (rx, g.maybe_complete_join(now, self.cfg.clock.now_ms()))
        };
        if changed {
            self.persist_snapshot(&gid);
        }
        rx.await.unwrap_or_else(|_| join_error(unknown_member(), String::new()))
    }

    pub(in crate::coordinator) async fn sync(&self, req: SyncGroupRequest) -> GroupResponse {
        let gid = req.group_id.0.to_string();
        let member_id = req.member_id.to_string();
        let fail = |e: Error| GroupResponse::Sync(Err(e), None, None);
        if self.stopping.get() {
            return fail(Error::NotCoordinator);
        }
        let (rx, done) = {
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(&gid) else { return fail(unknown_member()) };
            if !g.members.contains_key(&member_id) {
                return fail(unknown_member());
            }
            if let Some(inst) = &req.group_instance_id {
                if g.static_members.get(inst.as_str()) != Some(&member_id) {
                    return fail(fenced_instance());
                }
            }
            if req.generation_id != g.generation {
                return fail(illegal_generation());
            }
            let (pt, pn) = (g.protocol_type.clone(), g.protocol_name.clone());
            match g.state {
                GroupState::PreparingRebalance => return fail(Error::RebalanceInProgress),
                GroupState::Empty | GroupState::Dead => return fail(unknown_member()),
                GroupState::Stable => {
                    let a = g.members.get(&member_id).map(|m| m.assignment.clone()).unwrap_or_default();
                    return GroupResponse::Sync(Ok(a), pt, pn);
                }
                GroupState::CompletingRebalance => {}
            }
            let (tx, rx) = oneshot::channel();
            if let Some(m) = g.members.get_mut(&member_id) {
                m.sync_waiter = Some(tx);
                m.last_heartbeat = self.cfg.clock.instant();
            }
            let mut done = false;
            if g.leader.as_deref() == Some(member_id.as_str()) {
                g.complete_sync(req.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect());
                done = true;
            }
            (rx, done)
        };
        if done {
            self.persist_snapshot(&gid);
        }
        let assignment = rx.await.unwrap_or_else(|_| Err(unknown_member()));
        let groups = self.groups.borrow();
        let (pt, pn) = groups.get(&gid).map(|g| (g.protocol_type.clone(), g.protocol_name.clone())).unwrap_or((None, None));
        GroupResponse::Sync(assignment, pt, pn)
    }

    pub(in crate::coordinator) fn heartbeat(&self, req: HeartbeatRequest) -> Result<(), Error> {
        let mut groups = self.groups.borrow_mut();
        let Some(g) = groups.get_mut(req.group_id.0.as_str()) else { return Err(unknown_member()) };
        let member_id = req.member_id.to_string();
        if let Some(inst) = &req.group_instance_id {
            if g.static_members.get(inst.as_str()).is_some_and(|m| *m != member_id) {
                return Err(fenced_instance());
            }
        }
        let state = g.state;
        let generation = g.generation;
        let Some(m) = g.members.get_mut(&member_id) else { return Err(unknown_member()) };
        m.last_heartbeat = self.cfg.clock.instant();
        if req.generation_id != generation {
            return Err(illegal_generation());
        }
        match state {
            GroupState::PreparingRebalance => Err(Error::RebalanceInProgress),
            GroupState::Empty | GroupState::Dead => Err(unknown_member()),
            _ => Ok(()),
        }
    }

    pub(in crate::coordinator) fn leave(&self, req: LeaveGroupRequest) -> GroupResponse {
        let gid = req.group_id.0.to_string();
        let leaving: Vec<(String, Option<String>)> = if req.members.is_empty() {
            vec![(req.member_id.to_string(), None)]
        } else {
            req.members.iter().map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|s| s.to_string()))).collect()
        };
        let changed = {
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(&gid) else {
                return GroupResponse::Leave(leaving.into_iter().map(|(m, i)| (m, i, Some(unknown_member()))).collect());
            };
            let mut results = Vec::new();
            let mut removed = false;
            for (mid, inst) in leaving {
                let target = match &inst {
                    Some(i) => match g.static_members.get(i) {
                        Some(cur) if mid.is_empty() || *cur == mid => Some(cur.clone()),
                        Some(_) => {
                            results.push((mid, inst, Some(fenced_instance())));
                            continue;
                        }
                        None => None,
                    },
                    None => g.members.contains_key(&mid).then(|| mid.clone()),
                };
                match target {
                    Some(t) => {
                        g.remove_member(&t);
                        removed = true;
                        results.push((mid, inst, None));
                    }
                    None => results.push((mid, inst, Some(unknown_member()))),
                }
            }
            let mut changed = false;
            if removed {
                let now = self.cfg.clock.instant();
                if matches!(g.state, GroupState::Stable | GroupState::CompletingRebalance) {
                    g.prepare_rebalance(0, now);
                }
                changed = g.maybe_complete_join(now, self.cfg.clock.now_ms());
            }
            (changed, GroupResponse::Leave(results))
        };
        if changed.0 {
            self.persist_snapshot(&gid);
        }
        changed.1
    }

    /// OffsetCommit: Err is the error of every partition.
    pub(in crate::coordinator) async fn commit(&self, req: OffsetCommitRequest, version: i16, image: &MetadataImage) -> Result<ErrorsByTopic, Error> {
        let gid = req.group_id.0.to_string();
        let member_id = req.member_id.to_string();
        let generation = req.generation_id_or_member_epoch;
        if self.log_for(&gid).is_none() {
            return Err(Error::NotCoordinator);
        }
        {
            let mut groups = self.groups.borrow_mut();
            if let Some(c) = groups.get(&gid).and_then(|g| g.consumer.as_deref()) {
                consumer_group::service::validate_offset_commit(c, &member_id, generation, Some(version))?;
            } else if generation < 0 && member_id.is_empty() {
                let g = groups.entry(gid.clone()).or_insert_with(|| Group::new(gid.clone(), self.cfg.clock.now_ms()));
                if !g.members.is_empty() {
                    return Err(illegal_generation());
                }
            } else {
                // From v9 an unknown group is GROUP_ID_NOT_FOUND (both protocols understand it).
                let unknown = || if version >= 9 { group_not_found() } else { illegal_generation() };
                let Some(g) = groups.get_mut(&gid) else { return Err(unknown()) };
                let state = g.state;
                let gen = g.generation;
                let Some(m) = g.members.get_mut(&member_id) else { return Err(unknown_member()) };
                m.last_heartbeat = self.cfg.clock.instant();
                if generation != gen {
                    return Err(illegal_generation());
                }
                if state == GroupState::CompletingRebalance {
                    return Err(Error::RebalanceInProgress);
                }
            }
        }
        let offered = req.topics.iter().map(|t| {
            (
                t.name.0.to_string(),
                t.partitions
                    .iter()
                    .map(|p| (p.partition_index, p.committed_offset, p.committed_leader_epoch, p.committed_metadata.as_ref().map(|s| s.to_string())))
                    .collect(),
            )
        });
        let (out, records, accepted) = self.offset_records(image, &gid, offered);
        let Some(log) = self.log_for(&gid) else { return Err(Error::NotCoordinator) };
        let base = match store::append_raw(&log, records, None).await {
            Ok(b) => b,
            Err(e) => {
                crate::error_limited!("offset commit append failed: {e}");
                return Err(Error::CoordinatorNotAvailable);
            }
        };
        if let Some(g) = self.groups.borrow_mut().get_mut(&gid) {
            for (i, (k, mut v)) in accepted.into_iter().enumerate() {
                v.record_offset = base + i as i64;
                g.offsets.insert(k, v);
            }
        }
        Ok(out)
    }

    /// OffsetFetch v9's member check for a consumer-protocol group (classic and
    /// unknown groups answer anyone, as in Kafka).
    pub(in crate::coordinator) fn check_offset_fetch(&self, gid: &str, member: Option<(Option<String>, i32)>) -> Option<crate::error::Error> {
        let (id, epoch) = member?;
        let groups = self.groups.borrow();
        let c = groups.get(gid)?.consumer.as_deref()?;
        consumer_group::service::validate_offset_fetch(c, id.as_deref(), epoch).err()
    }

    pub(in crate::coordinator) fn fetch_offsets(&self, gid: &str, topics: Option<Vec<(String, Vec<i32>)>>, require_stable: bool) -> GroupResponse {
        if self.log_for(gid).is_none() {
            return GroupResponse::OffsetFetch(Err(Error::NotCoordinator));
        }
        let groups = self.groups.borrow();
        let g = groups.get(gid);
        let lookup = |t: &str, p: i32| -> FetchedOffset {
            if require_stable && g.is_some_and(|g| g.has_pending_txn_offset(t, p)) {
                return (p, -1, -1, None, Some(Error::UnstableOffsetCommit));
            }
            match g.and_then(|g| g.offsets.get(&(t.to_string(), p))) {
                Some(o) => (p, o.offset, o.leader_epoch, o.metadata.clone(), None),
                None => (p, -1, -1, None, None),
            }
        };
        let out = match topics {
            Some(ts) => ts
                .into_iter()
                .map(|(t, ps)| {
                    let v = ps.iter().map(|&p| lookup(&t, p)).collect();
                    (t, v)
                })
                .collect(),
            None => {
                let mut by: std::collections::BTreeMap<String, Vec<FetchedOffset>> = Default::default();
                if let Some(g) = g {
                    for ((t, p), o) in &g.offsets {
                        by.entry(t.clone()).or_default().push(if require_stable && g.has_pending_txn_offset(t, *p) {
                            (*p, -1, -1, None, Some(Error::UnstableOffsetCommit))
                        } else {
                            (*p, o.offset, o.leader_epoch, o.metadata.clone(), None)
                        });
                    }
                }
                by.into_iter().collect()
            }
        };
        GroupResponse::OffsetFetch(Ok(out))
    }

    /// Validates the offsets of an OffsetCommit or TxnOffsetCommit —
    /// (partition, offset, leader epoch, metadata) per topic — and builds their
    /// `__consumer_offsets` records. Returns the per-partition codes, the records
    /// to append, and the accepted offsets in record order.
    #[allow(clippy::type_complexity)]
    pub(in crate::coordinator) fn offset_records(
        &self,
        image: &MetadataImage,
        gid: &str,
        topics: impl Iterator<Item = (String, Vec<(i32, i64, i32, Option<String>)>)>,
    ) -> (ErrorsByTopic, Vec<store::RawRecord>, Vec<((String, i32), CommittedOffset)>) {
        let now = self.cfg.clock.now_ms();
        let (mut out, mut records, mut accepted) = (Vec::new(), Vec::new(), Vec::new());
        for (topic, partitions) in topics {
            let mut codes = Vec::with_capacity(partitions.len());
            for (partition, offset, leader_epoch, metadata) in partitions {
                let code = if image.partition(&topic, partition).is_none() {
                    Some(Error::UnknownTopicOrPartition)
                } else if metadata.as_ref().is_some_and(|m| m.len() > self.cfg.offset_metadata_max_bytes) {
                    Some(Error::OffsetMetadataTooLarge)
                } else {
                    let v = CommittedOffset { offset, leader_epoch, metadata, commit_timestamp_ms: now, record_offset: -1 };
                    let key = StoreKey::Offset { group: gid.to_string(), topic: topic.clone(), partition };
                    records.push((serde_json::to_vec(&key).unwrap_or_default(), serde_json::to_vec(&v).ok()));
                    accepted.push(((topic.clone(), partition), v));
                    None
                };
                codes.push((partition, code));
            }
            out.push((topic, codes));
        }
        (out, records, accepted)
    }

    /// TxnOffsetCommit: the offsets are appended to the group's partition as a
    /// transactional batch of the producer (the partition checks its epoch) and
    /// kept pending for that producer until the transaction coordinator's
    /// marker reaches this partition ([`GroupCoordinator::complete_txn`]).
    /// With a member id (v3) the generation is checked as for OffsetCommit.
    /// Err is the error of every partition.
    pub(in crate::coordinator) async fn txn_commit(&self, req: TxnOffsetCommitRequest, version: i16, image: &MetadataImage) -> Result<ErrorsByTopic, Error> {
        let gid = req.group_id.0.to_string();
        if self.log_for(&gid).is_none() {
            return Err(Error::NotCoordinator);
        }
        let member_id = req.member_id.to_string();
        if version >= 3 && (!member_id.is_empty() || req.generation_id >= 0) {
            let groups = self.groups.borrow();
            let Some(g) = groups.get(&gid) else { return Err(illegal_generation()) };
            if let Some(c) = g.consumer.as_deref() {
                // TxnOffsetCommit has no STALE_MEMBER_EPOCH: a wrong epoch is ILLEGAL_GENERATION.
                match consumer_group::service::validate_offset_commit(c, &member_id, req.generation_id, None) {
                    Err(Error::StaleMemberEpoch(_)) => return Err(illegal_generation()),
                    Err(e) => return Err(e),
                    Ok(()) => {}
                }
            } else {
                if let Some(inst) = &req.group_instance_id {
                    if g.static_members.get(inst.as_str()).is_some_and(|m| *m != member_id) {
                        return Err(fenced_instance());
                    }
                }
                if !member_id.is_empty() && !g.members.contains_key(&member_id) {
                    return Err(unknown_member());
                }
                if req.generation_id >= 0 && req.generation_id != g.generation {
                    return Err(illegal_generation());
                }
            }
        }
        let offered = req.topics.iter().map(|t| {
            (
                t.name.0.to_string(),
                t.partitions
                    .iter()
                    .map(|p| (p.partition_index, p.committed_offset, p.committed_leader_epoch, p.committed_metadata.as_ref().map(|s| s.to_string())))
                    .collect(),
            )
        });
        let (out, records, accepted) = self.offset_records(image, &gid, offered);
        let Some(log) = self.log_for(&gid) else { return Err(Error::NotCoordinator) };
        let pid = req.producer_id.0;
        let base = match store::append_raw(&log, records, Some((pid, req.producer_epoch))).await {
            Ok(b) => b,
            Err(e) => {
                crate::warn_limited!(group = %gid, producer_id = pid, "transactional offset commit rejected: {e}");
                // A stale epoch at the partition means a newer instance fenced this
                // producer; a failed write is the coordinator's, and retriable.
                return Err(match e {
                    Error::InvalidProducerEpoch(why) => Error::ProducerFenced(why),
                    Error::Io(_) => Error::CoordinatorNotAvailable,
                    other => other,
                });
            }
        };
        let mut groups = self.groups.borrow_mut();
        let g = groups.entry(gid.clone()).or_insert_with(|| Group::new(gid.clone(), self.cfg.clock.now_ms()));
        let pending = g.pending_txn_offsets.entry(pid).or_default();
        for (i, (k, mut v)) in accepted.into_iter().enumerate() {
            v.record_offset = base + i as i64;
            pending.insert(k, v);
        }
        Ok(out)
    }

    /// A transaction marker for `producer_id` was appended to `__consumer_offsets`
    /// partition `partition`: that producer's pending offsets in the partition's
    /// groups become committed, or are dropped on abort.
    pub fn complete_txn(&self, partition: i32, producer_id: i64, commit: bool) {
        let n = self.partition_count.get();
        for g in self.groups.borrow_mut().values_mut() {
            if partition_for(&g.id, n) == partition {
                g.complete_txn(producer_id, commit);
            }
        }
    }

    pub(in crate::coordinator) fn describe(&self, gid: String) -> GroupDescription {
        let mut d =
            GroupDescription { group: gid.clone(), error: None, state: "Dead", protocol_type: String::new(), protocol: String::new(), members: Vec::new() };
        if self.log_for(&gid).is_none() {
            d.error = Some(Error::NotCoordinator);
            return d;
        }
        let groups = self.groups.borrow();
        let Some(g) = groups.get(&gid) else { return d };
        if g.consumer.is_some() {
            // DescribeGroups (v0-5) shows a consumer-protocol group as Dead, no
            // error, as Kafka does; ConsumerGroupDescribe describes it.
            return d;
        }
        d.state = g.state.name();
        d.protocol_type = g.protocol_type.clone().unwrap_or_default();
        let stable = g.state == GroupState::Stable;
        if stable {
            d.protocol = g.protocol_name.clone().unwrap_or_default();
        }
        d.members = g
            .members
            .values()
            .map(|m| {
                let (meta, asg) = if stable { (m.metadata_for(&d.protocol), m.assignment.clone()) } else { (Bytes::new(), Bytes::new()) };
                (m.id.clone(), m.instance_id.clone(), m.client_id.clone(), m.client_host.clone(), meta, asg)
            })
            .collect();
        d
    }

    pub(in crate::coordinator) fn delete(&self, gid: String) -> (String, Option<Error>) {
        if self.log_for(&gid).is_none() {
            return (gid, Some(Error::NotCoordinator));
        }
        let records = {
            let mut groups = self.groups.borrow_mut();
            match groups.get(&gid) {
                None => return (gid, Some(group_not_found())),
                Some(g) if !g.members.is_empty() || g.state != GroupState::Empty => return (gid, Some(non_empty_group())),
                Some(g) if g.consumer.as_ref().is_some_and(|c| !c.members.is_empty()) => return (gid, Some(non_empty_group())),
                Some(_) => {}
            }
            let Some(g) = groups.remove(&gid) else { return (gid, Some(group_not_found())) };
            let mut recs: Vec<(StoreKey, Option<Vec<u8>>)> =
                g.offsets.keys().map(|(t, p)| (StoreKey::Offset { group: gid.clone(), topic: t.clone(), partition: *p }, None)).collect();
            if let Some(c) = g.consumer.as_deref() {
                recs.extend(consumer_group::records::tombstones(&gid, c));
            }
            recs.push((StoreKey::Group { group: gid.clone() }, None));
            recs
        };
        self.persist(&gid, records);
        (gid, None)
    }

    pub(in crate::coordinator) fn offset_delete(&self, req: OffsetDeleteRequest, image: &MetadataImage) -> GroupResponse {
        let gid = req.group_id.0.to_string();
        if self.log_for(&gid).is_none() {
            return GroupResponse::OffsetDelete(Err(Error::NotCoordinator));
        }
        let mut records = Vec::new();
        let out = {
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(&gid) else { return GroupResponse::OffsetDelete(Err(group_not_found())) };
            let subscribed = match g.consumer.as_deref_mut() {
                Some(c) if !c.members.is_empty() => Some(GroupCoordinator::consumer_subscribed(c, image)),
                Some(_) => None,
                None if g.members.is_empty() => None,
                None => g.subscribed_topics(),
            };
            let mut out = Vec::new();
            for t in &req.topics {
                let topic = t.name.0.to_string();
                let mut codes = Vec::new();
                for p in &t.partitions {
                    let code = if subscribed.as_ref().is_some_and(|s| s.contains(&topic)) {
                        Some(Error::GroupSubscribedToTopic)
                    } else if image.partition(&topic, p.partition_index).is_none() {
                        Some(Error::UnknownTopicOrPartition)
                    } else {
                        if g.offsets.remove(&(topic.clone(), p.partition_index)).is_some() {
                            records.push((StoreKey::Offset { group: gid.clone(), topic: topic.clone(), partition: p.partition_index }, None));
                        }
                        None
                    };
                    codes.push((p.partition_index, code));
                }
                out.push((topic, codes));
            }
            out
        };
        self.persist(&gid, records);
        GroupResponse::OffsetDelete(Ok(out))
    }

    /// Periodic work: expire members past their session timeout, finish rebalances
    /// whose timeout passed, and drop offsets of empty groups past retention.
    pub fn tick(&self) {
        let now = self.cfg.clock.instant();
        let wall = self.cfg.clock.now_ms();
        self.consumer_tick(now, wall);
        let retention_ms = self.cfg.offsets_retention_minutes as i64 * 60_000;
        let mut snapshots = Vec::new();
        let mut tombstones: Vec<(String, GroupRecords)> = Vec::new();
        {
            let mut groups = self.groups.borrow_mut();
            for g in groups.values_mut() {
                g.pending_members.retain(|_, t| now.duration_since(*t) < Duration::from_millis(self.cfg.group_max_session_timeout_ms.min(300_000)));
                let expired: Vec<String> = g.members.values().filter(|m| m.expired(now)).map(|m| m.id.clone()).collect();
                let mut changed = false;
                if !expired.is_empty() {
                    for id in &expired {
                        tracing::info!(group = %g.id, member = %id, "member session expired");
                        g.remove_member(id);
                    }
                    if matches!(g.state, GroupState::Stable | GroupState::CompletingRebalance) {
                        g.prepare_rebalance(0, now);
                    }
                    changed = true;
                }
                if g.maybe_complete_join(now, wall) || changed {
                    snapshots.push(g.id.clone());
                }
                let consumer_members = g.consumer.as_ref().is_some_and(|c| !c.members.is_empty());
                if g.state == GroupState::Empty && !consumer_members && g.empty_since_ms.is_some_and(|t| wall - t > retention_ms) {
                    let old: Vec<(String, i32)> =
                        g.offsets.iter().filter(|(_, o)| wall - o.commit_timestamp_ms > retention_ms).map(|(k, _)| k.clone()).collect();
                    if !old.is_empty() {
                        let recs = old.iter().map(|(t, p)| (StoreKey::Offset { group: g.id.clone(), topic: t.clone(), partition: *p }, None)).collect();
                        for k in old {
                            g.offsets.remove(&k);
                        }
                        tombstones.push((g.id.clone(), recs));
                    }
                }
            }
        }
        for g in snapshots {
            self.persist_snapshot(&g);
        }
        for (g, recs) in tombstones {
            self.persist(&g, recs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_kafka() {
        // Values from java.lang.String#hashCode.
        assert_eq!(java_hash_code(""), 0);
        assert_eq!(java_hash_code("a"), 97);
        assert_eq!(java_hash_code("hello"), 99162322);
        assert_eq!(
            java_hash_code("my-group-with-a-long-name"),
            "my-group-with-a-long-name".encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
        );
        assert!((0..50).contains(&partition_for("console-consumer-12345", 50)));
    }
}

/// Replay through a real partition log: transactional offsets and transaction
/// state written the way the coordinators write them, read back at "restart".
#[cfg(test)]
mod replay_tests {
    use super::*;
    use crate::coordinator::txn::{TxnCoordinator, TxnMetadata, TxnState};
    use crate::io::ring::Ring;
    use crate::log::LogConfig;

    use crate::io::run_on_executor as run;

    fn open(dir: &std::path::Path, topic: &str, partition: i32) -> Rc<PartitionLog> {
        let cfg = Config::default();
        PartitionLog::open(dir, topic, partition, LogConfig::from(&cfg, &Default::default()), Ring::start().unwrap(), false).unwrap()
    }

    fn offset_record(group: &str, topic: &str, partition: i32, offset: i64) -> store::RawRecord {
        let key = StoreKey::Offset { group: group.into(), topic: topic.into(), partition };
        let v = CommittedOffset { offset, leader_epoch: -1, metadata: None, commit_timestamp_ms: 0, record_offset: -1 };
        (serde_json::to_vec(&key).unwrap(), serde_json::to_vec(&v).ok())
    }

    #[test]
    fn a_member_past_its_session_timeout_is_removed_and_the_group_rebalances() {
        use futures::FutureExt;
        use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
        use kafka_protocol::messages::GroupId;
        use kafka_protocol::protocol::StrBytes;

        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(move || async move {
            let clock = crate::clock::Clock::manual(1_700_000_000_000);
            let cfg = Arc::new(Config { clock: clock.clock(), ..Config::default() });
            let g = "session-group";
            let p = partition_for(g, cfg.offsets_topic_num_partitions);
            let log = PartitionLog::open(&dir, OFFSETS_TOPIC, p, LogConfig::from(&cfg, &Default::default()), Ring::start().unwrap(), false).unwrap();
            let gc = Rc::new(GroupCoordinator::new(cfg.clone()));
            gc.add_partition(p, log).unwrap();
            let join = |member: &str| {
                let req = JoinGroupRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str(g)))
                    .with_member_id(StrBytes::from_string(member.to_string()))
                    .with_session_timeout_ms(10_000)
                    .with_rebalance_timeout_ms(30_000)
                    .with_protocol_type(StrBytes::from_static_str("consumer"))
                    .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range"))]);
                let gc = gc.clone();
                glommio::spawn_local(async move { gc.join(req, 3, "client".into(), "host".into()).await })
            };
            let heartbeat = |member: &str, generation: i32| {
                gc.heartbeat(
                    HeartbeatRequest::default()
                        .with_group_id(GroupId(StrBytes::from_static_str(g)))
                        .with_member_id(StrBytes::from_string(member.to_string()))
                        .with_generation_id(generation),
                )
            };
            let state = |gc: &GroupCoordinator| {
                let groups = gc.groups.borrow();
                let grp = &groups[g];
                (grp.state, grp.generation, grp.members.keys().cloned().collect::<Vec<String>>())
            };
            // Two members join; the first rebalance waits out the initial delay by the clock.
            let (a, b) = (join(""), join(""));
            glommio::executor().yield_now().await;
            gc.tick();
            assert_eq!(state(&gc).0, GroupState::PreparingRebalance, "still in the initial delay");
            clock.advance(Duration::from_millis(cfg.group_initial_rebalance_delay_ms));
            gc.tick();
            glommio::executor().yield_now().await;
            let (a, b) = (a.now_or_never().expect("a joined"), b.now_or_never().expect("b joined"));
            assert!(a.error.is_none() && b.error.is_none(), "both joined");
            assert_eq!((a.generation, b.generation), (1, 1));
            // Only a heartbeats, every 4 s; b's 10 s session runs out between 8 and 12 s.
            for _ in 0..2 {
                clock.advance(Duration::from_millis(4_000));
                assert!(heartbeat(&a.member_id, 1).is_ok());
                gc.tick();
                assert_eq!(state(&gc).2.len(), 2, "b is within its session");
            }
            clock.advance(Duration::from_millis(4_000));
            assert!(heartbeat(&a.member_id, 1).is_ok());
            gc.tick();
            assert_eq!(state(&gc), (GroupState::PreparingRebalance, 1, vec![a.member_id.clone()]), "b expired; the group rebalances");
            assert!(matches!(heartbeat(&a.member_id, 1), Err(Error::RebalanceInProgress)));
            // a rejoins: the rebalance completes with a alone.
            let again = join(&a.member_id);
            glommio::executor().yield_now().await;
            let again = again.now_or_never().expect("a rejoined");
            assert!(again.error.is_none(), "a rejoined");
            assert_eq!((again.generation, again.leader.as_str()), (2, a.member_id.as_str()));
            assert_eq!(state(&gc).2, vec![a.member_id.clone()]);
        });
    }

    #[test]
    fn transactional_offsets_replay_pending_until_their_marker() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(move || async move {
            let cfg = Arc::new(Config::default());
            let g = "txn-group";
            let p = partition_for(g, cfg.offsets_topic_num_partitions);
            let log = open(&dir, OFFSETS_TOPIC, p);
            store::append_raw(&log, vec![offset_record(g, "t", 0, 5)], None).await.unwrap();
            store::append_raw(&log, vec![offset_record(g, "t", 0, 10), offset_record(g, "t", 1, 11)], Some((7, 0))).await.unwrap();
            store::append_raw(&log, vec![offset_record(g, "t", 2, 12)], Some((8, 0))).await.unwrap();
            store::append_raw(&log, vec![offset_record(g, "t", 3, 13)], Some((9, 0))).await.unwrap();
            // A plain commit after producer 7's transactional one, before its marker: it stays.
            store::append_raw(&log, vec![offset_record(g, "t", 1, 99)], None).await.unwrap();
            log.append_marker(7, 0, true, 0).await.unwrap();
            log.append_marker(8, 0, false, 0).await.unwrap();
            // Producer 9's transaction is still open at the "crash".
            let gc = GroupCoordinator::new(cfg.clone());
            gc.add_partition(p, log.clone()).unwrap();
            let GroupResponse::OffsetFetch(Ok(got)) = gc.fetch_offsets(g, Some(vec![("t".into(), vec![0, 1, 2, 3])]), false) else { panic!() };
            let offs: Vec<i64> = got[0].1.iter().map(|x| x.1).collect();
            assert_eq!(offs, vec![10, 99, -1, -1]);
            let GroupResponse::OffsetFetch(Ok(got)) = gc.fetch_offsets(g, Some(vec![("t".into(), vec![3])]), true) else { panic!() };
            assert_eq!(got[0].1[0].4.as_ref().map(Error::code), Some(kafka_protocol::ResponseError::UnstableOffsetCommit.code()));
            // The live path: a commit marker reaching the partition makes 13 visible.
            gc.complete_txn(p, 9, true);
            let GroupResponse::OffsetFetch(Ok(got)) = gc.fetch_offsets(g, Some(vec![("t".into(), vec![3])]), true) else { panic!() };
            assert_eq!((got[0].1[0].1, got[0].1[0].4.as_ref().map_or(0, Error::code)), (13, 0));
        });
    }

    #[test]
    fn transaction_state_replays_prepared_transactions() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(move || async move {
            let cfg = Arc::new(Config::default());
            let id = "txn-a";
            let p = partition_for(id, cfg.transaction_state_log_num_partitions);
            let log = open(&dir, txn_store::TXN_STATE_TOPIC, p);
            let m = TxnMetadata::new(id.into(), 3, 60_000, 0);
            let o = m.plan_add_partitions(3, 0, &[("t".into(), 0)], 1).unwrap().unwrap();
            let crate::coordinator::txn::EndStep::Prepare(prep) = o.plan_end(3, 0, true, 2).unwrap() else { panic!() };
            for s in [&m, &o, &prep] {
                txn_store::append(&log, vec![txn_store::record(s)]).await.unwrap();
            }
            let gone = TxnMetadata::new("txn-gone".into(), 4, 60_000, 0);
            txn_store::append(&log, vec![txn_store::record(&gone), txn_store::tombstone("txn-gone")]).await.unwrap();
            let tc = TxnCoordinator::new(cfg.clone());
            tc.add_partition(p, log.clone()).unwrap();
            let listed = tc.list(&[], &[], -1, 10);
            assert_eq!(listed, vec![(id.to_string(), 3, TxnState::PrepareCommit.name())]);
            assert_eq!(tc.list(&[TxnState::Ongoing], &[], -1, 10), vec![]);
        });
    }
}
