//! The group coordinator's consumer-protocol entry points: ConsumerGroupHeartbeat
//! and ConsumerGroupDescribe, the checks the offset APIs make for
//! consumer-protocol groups, the classic JoinGroup's view of them, and their
//! timeouts. A group id names either a classic group or a consumer-protocol
//! one; both live in the coordinator's one map of [`Group`]s (which also holds
//! the group's offsets), the consumer part in [`Group::consumer`].
//!
//! No online migration between the protocols (Kafka's
//! `group.consumer.migration.policy`): a consumer-protocol heartbeat for a
//! classic group that has members is GROUP_ID_NOT_FOUND, and a classic
//! JoinGroup for a consumer-protocol group with members is
//! INCONSISTENT_GROUP_PROTOCOL. An empty group of either kind is converted,
//! as Kafka does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::messages::ConsumerGroupHeartbeatRequest;
use uuid::Uuid;

use super::heartbeat::{validate, Answer, Changes, Heartbeat, Settings, LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH};
use super::member::Assignment;
use super::records::{self, KeyedRecord};
use super::ConsumerGroup;
use crate::coordinator::group::state::{Group, GroupState};
use crate::coordinator::store::StoreKey;
use crate::coordinator::GroupCoordinator;
use crate::error::Error;
use crate::metadata::MetadataImage;

/// A consumer-protocol group as ConsumerGroupDescribe reports it.
#[derive(Debug)]
pub struct ConsumerGroupDescription {
    /// The group id.
    pub group_id: String,
    /// Why the group cannot be described (GROUP_ID_NOT_FOUND for an unknown or classic group).
    pub error: Option<Error>,
    /// The state's name, e.g. `Stable` (`Dead` for a group that cannot be described).
    pub state: &'static str,
    /// Group epoch: bumped by every change of the members or their subscriptions.
    pub group_epoch: i32,
    /// The group epoch the current target assignment was computed at.
    pub assignment_epoch: i32,
    /// The server-side assignor the group uses, e.g. `uniform`; empty in an error answer.
    pub assignor_name: String,
    /// The members, in member id order.
    pub members: Vec<DescribedMember>,
}

/// Partitions with their topic's name: (topic id, topic name, partitions).
pub type NamedPartitions = Vec<(Uuid, String, Vec<i32>)>;

/// One member in a [`ConsumerGroupDescription`].
#[derive(Debug)]
pub struct DescribedMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// Rack of the client (`client.rack`).
    pub rack_id: Option<String>,
    /// The member epoch: the epoch of the assignment the member has reached.
    pub member_epoch: i32,
    /// Client id of the member's connection.
    pub client_id: String,
    /// Client host (peer address) of the member's connection.
    pub client_host: String,
    /// Topic names subscribed to by name.
    pub subscribed_topic_names: Vec<String>,
    /// Subscription regular expression (RE2), if any.
    pub subscribed_topic_regex: Option<String>,
    /// Partitions the member owns now.
    pub assignment: NamedPartitions,
    /// Partitions the target assignment gives it (reached once it has reconciled).
    pub target_assignment: NamedPartitions,
}

/// A heartbeat request in the group logic's terms.
pub fn heartbeat_from(req: &ConsumerGroupHeartbeatRequest, client_id: String, client_host: String) -> Heartbeat {
    Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req.subscribed_topic_names.as_ref().map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.as_ref().map(|s| s.to_string()),
        server_assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned: req.topic_partitions.as_ref().map(|tps| {
            let mut a = Assignment::new();
            for tp in tps {
                a.entry(tp.topic_id).or_default().extend(tp.partitions.iter().copied());
            }
            a.retain(|_, ps| !ps.is_empty());
            a
        }),
        client_id,
        client_host,
    }
}

/// Whether a classic group has nothing but (maybe) offsets: it may become a
/// consumer-protocol group.
fn classic_is_empty(g: &Group) -> bool {
    g.members.is_empty() && g.pending_members.is_empty() && g.state == GroupState::Empty
}

/// Runs one heartbeat against `g`'s consumer part, making one from an empty
/// classic group first (kept only if the heartbeat succeeds: an error leaves
/// the group as it was). Returns the answer and the records to write.
fn heartbeat_group(
    g: &mut Group,
    hb: Heartbeat,
    leaving: bool,
    image: &MetadataImage,
    s: &Settings<'_>,
    now: Instant,
    now_ms: i64,
) -> (Result<Answer, Error>, Vec<KeyedRecord>) {
    let gid = g.id.clone();
    let converting = g.consumer.is_none();
    let mut c = g.consumer.take().unwrap_or_default();
    let mut changes = Changes::default();
    let result = if leaving {
        c.leave(&gid, &hb.member_id, hb.instance_id.as_deref(), hb.member_epoch, &mut changes)
    } else {
        c.heartbeat(&gid, hb, image, s, now, &mut changes)
    };
    let mut out = Vec::new();
    if converting {
        if result.is_err() {
            return (result, out);
        }
        // Offsets stay; the classic group's own record goes.
        tracing::info!(group = %gid, "the empty classic group becomes a consumer group");
        g.protocol_type = None;
        g.protocol_name = None;
        g.leader = None;
        out.push((StoreKey::Group { group: gid.clone() }, None));
    }
    if c.members.is_empty() && !changes.removed.is_empty() {
        g.empty_since_ms = Some(now_ms);
    }
    out.extend(records::records(&gid, &c, &changes));
    g.consumer = Some(c);
    (result, out)
}

/// Kafka's `ConsumerGroup.validateOffsetCommit` for a consumer-protocol group:
/// a commit without a member (epoch < 0) only while the group is empty; a
/// member's commit must carry its current epoch (STALE_MEMBER_EPOCH if not)
/// and come as OffsetCommit v9+ (v9 is where the field is a member epoch).
pub fn validate_offset_commit(c: &ConsumerGroup, member_id: &str, epoch: i32, version: Option<i16>) -> Result<(), Error> {
    if epoch < 0 && c.members.is_empty() {
        return Ok(());
    }
    let Some(m) = c.members.get(member_id) else {
        return Err(Error::UnknownMemberId(format!("Member {member_id} is not a member of the group.")));
    };
    if let Some(v) = version.filter(|v| *v < 9) {
        return Err(Error::UnsupportedVersion { api_key: 8, version: v });
    }
    if epoch != m.member_epoch {
        return Err(Error::StaleMemberEpoch(format!("The received member epoch {epoch} does not match the current member epoch {}.", m.member_epoch)));
    }
    Ok(())
}

/// Kafka's `ConsumerGroup.validateOffsetFetch`: without a member id and with
/// a negative epoch anyone may read; a member must be known and at its epoch.
pub fn validate_offset_fetch(c: &ConsumerGroup, member_id: Option<&str>, epoch: i32) -> Result<(), Error> {
    if member_id.is_none() && epoch < 0 {
        return Ok(());
    }
    let id = member_id.unwrap_or_default();
    let Some(m) = c.members.get(id) else {
        return Err(Error::UnknownMemberId(format!("Member {id} is not a member of the group.")));
    };
    if epoch != m.member_epoch {
        return Err(Error::StaleMemberEpoch(format!("The received member epoch {epoch} does not match the current member epoch {}.", m.member_epoch)));
    }
    Ok(())
}

impl GroupCoordinator {
    fn consumer_settings(&self) -> Settings<'_> {
        Settings {
            session_timeout: Duration::from_millis(self.cfg.group_consumer_session_timeout_ms),
            assignors: &self.cfg.group_consumer_assignors,
            max_size: self.cfg.group_consumer_max_size as usize,
        }
    }

    /// ConsumerGroupHeartbeat: join, heartbeat or leave. The group's changes
    /// are in `__consumer_offsets` before the answer goes out.
    pub(crate) async fn consumer_heartbeat(
        &self,
        req: ConsumerGroupHeartbeatRequest,
        version: i16,
        client_id: String,
        client_host: String,
        image: &MetadataImage,
    ) -> Result<Answer, Error> {
        let gid = req.group_id.0.to_string();
        let hb = heartbeat_from(&req, client_id, client_host);
        validate(&gid, &hb, version, &self.cfg.group_consumer_assignors)?;
        if self.log_for(&gid).is_none() {
            return Err(Error::NotCoordinator);
        }
        let (now, now_ms) = (self.cfg.clock.instant(), self.cfg.clock.now_ms());
        let settings = self.consumer_settings();
        let (answer, records) = {
            let mut groups = self.groups.borrow_mut();
            let leaving = hb.member_epoch == LEAVE_GROUP_MEMBER_EPOCH || hb.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH;
            let joining = hb.member_epoch == 0;
            let mut created = None;
            let g = match groups.get_mut(&gid) {
                Some(g) => g,
                None if joining => created.insert(Group::new(gid.clone(), now_ms)),
                None => return Err(Error::GroupIdNotFound(format!("Consumer group {gid} not found."))),
            };
            if g.consumer.is_none() && !(joining && classic_is_empty(g)) {
                return Err(if classic_is_empty(g) {
                    Error::GroupIdNotFound(format!("Consumer group {gid} not found."))
                } else {
                    Error::GroupIdNotFound(format!("Group {gid} is not a consumer group."))
                });
            }
            let out = heartbeat_group(g, hb, leaving, image, &settings, now, now_ms);
            if let Some(g) = created.filter(|_| out.0.is_ok()) {
                groups.insert(gid.clone(), g);
            }
            out
        };
        if !records.is_empty() {
            self.persist_now(&gid, records).await;
        }
        answer
    }

    /// Appends group records and waits for them (the answer follows the write).
    async fn persist_now(&self, gid: &str, records: Vec<KeyedRecord>) {
        if let Some(log) = self.log_for(gid) {
            if let Err(e) = crate::coordinator::store::append(&log, records).await {
                crate::error_limited!(group = %gid, "persisting consumer group state failed: {e}");
            }
        }
    }

    /// ConsumerGroupDescribe for the groups this shard coordinates.
    pub(crate) fn consumer_describe(&self, groups: Vec<String>, image: &MetadataImage) -> Vec<ConsumerGroupDescription> {
        let names: BTreeMap<Uuid, &str> = image.topics.values().map(|t| (t.topic_id, t.name.as_str())).collect();
        let named = |a: &Assignment| -> NamedPartitions {
            // Topics deleted since are left out, as Kafka does.
            a.iter().filter_map(|(t, ps)| names.get(t).map(|n| (*t, n.to_string(), ps.iter().copied().collect()))).collect()
        };
        let map = self.groups.borrow();
        groups
            .into_iter()
            .map(|gid| {
                let mut d = ConsumerGroupDescription {
                    group_id: gid.clone(),
                    error: None,
                    state: "Dead",
                    group_epoch: 0,
                    assignment_epoch: 0,
                    assignor_name: String::new(),
                    members: Vec::new(),
                };
                if self.log_for(&gid).is_none() {
                    d.error = Some(Error::NotCoordinator);
                    return d;
                }
                let Some(c) = map.get(&gid).and_then(|g| g.consumer.as_deref()) else {
                    d.error = Some(if map.contains_key(&gid) {
                        Error::GroupIdNotFound(format!("Group {gid} is not a consumer group."))
                    } else {
                        Error::GroupIdNotFound(format!("Group {gid} not found."))
                    });
                    return d;
                };
                let default = self.cfg.group_consumer_assignors.first().map(String::as_str).unwrap_or("uniform");
                d.state = c.state().name();
                d.group_epoch = c.group_epoch;
                d.assignment_epoch = c.assignment_epoch;
                d.assignor_name = c.preferred_assignor(default, &self.cfg.group_consumer_assignors).to_string();
                d.members = c
                    .members
                    .values()
                    .map(|m| DescribedMember {
                        member_id: m.member_id.clone(),
                        instance_id: m.instance_id.clone(),
                        rack_id: m.rack_id.clone(),
                        member_epoch: m.member_epoch,
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        subscribed_topic_names: m.subscribed_topic_names.iter().cloned().collect(),
                        subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                        assignment: named(&m.assigned),
                        target_assignment: named(&m.target),
                    })
                    .collect();
                d
            })
            .collect()
    }

    /// A classic JoinGroup for `gid`: refused while a consumer-protocol group of
    /// that id has members; an empty one is deleted so a classic group can take
    /// the id (as Kafka converts an empty consumer group).
    pub(crate) fn classic_join_check(&self, gid: &str) -> Result<(), Error> {
        let tombstones = {
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(gid) else { return Ok(()) };
            let Some(c) = g.consumer.as_deref() else { return Ok(()) };
            if !c.members.is_empty() {
                return Err(Error::InconsistentGroupProtocol(format!(
                    "Group {gid} uses the consumer group protocol (group.protocol=consumer); a classic member cannot join it."
                )));
            }
            tracing::info!(group = %gid, "converting an empty consumer group to a classic group");
            let t = records::tombstones(gid, c);
            g.consumer = None;
            t
        };
        self.persist(gid, tombstones);
        Ok(())
    }

    /// Session and rebalance timeouts of consumer-protocol members (from the
    /// tick at `now`, whose wall time is `now_ms`).
    pub(crate) fn consumer_tick(&self, now: Instant, now_ms: i64) {
        let mut writes: Vec<(String, Vec<KeyedRecord>)> = Vec::new();
        {
            let mut groups = self.groups.borrow_mut();
            for g in groups.values_mut() {
                let gid = g.id.clone();
                let Some(c) = g.consumer.as_deref_mut() else { continue };
                let mut changes = Changes::default();
                if c.expire(&gid, now, &mut changes).is_empty() {
                    continue;
                }
                if c.members.is_empty() {
                    g.empty_since_ms = Some(now_ms);
                }
                writes.push((gid.clone(), records::records(&gid, c, &changes)));
            }
        }
        for (gid, recs) in writes {
            self.persist(&gid, recs);
        }
    }

    /// After a partition was replayed: sessions start now for every member.
    pub(crate) fn consumer_on_loaded(&self, partition: i32) {
        let now = self.cfg.clock.instant();
        let session = Duration::from_millis(self.cfg.group_consumer_session_timeout_ms);
        let n = self.partition_count.get();
        for g in self.groups.borrow_mut().values_mut() {
            if crate::coordinator::partition_for(&g.id, n) != partition {
                continue;
            }
            if let Some(c) = g.consumer.as_deref_mut() {
                c.on_loaded(now, session);
            }
        }
    }

    /// The topics a consumer-protocol group's members subscribe to (OffsetDelete's check).
    pub(crate) fn consumer_subscribed(c: &mut ConsumerGroup, image: &MetadataImage) -> BTreeSet<String> {
        c.subscribed_topic_names(image.topics.keys().map(String::as_str))
    }
}

/// The group written by real heartbeats to a real `__consumer_offsets` log,
/// replayed by a new coordinator (a restart): same epochs, members and
/// assignments; a member that left stays gone; offsets are shared.
#[cfg(test)]
mod replay_tests {
    use std::rc::Rc;
    use std::sync::Arc;

    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    use kafka_protocol::messages::{GroupId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::config::Config;
    use crate::coordinator::{partition_for, OFFSETS_TOPIC};
    use crate::io::ring::Ring;
    use crate::log::{LogConfig, PartitionLog};

    fn image() -> MetadataImage {
        MetadataImage::for_tests(&[("t", Uuid::from_u128(7), 4)], 1)
    }

    fn join(member: &str) -> ConsumerGroupHeartbeatRequest {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_member_id(StrBytes::from_string(member.to_string()))
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str("t"))]))
            .with_topic_partitions(Some(Vec::new()))
    }

    fn beat(member: &str, epoch: i32, owned: &Assignment) -> ConsumerGroupHeartbeatRequest {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_member_id(StrBytes::from_string(member.to_string()))
            .with_member_epoch(epoch)
            .with_topic_partitions(Some(
                owned.iter().map(|(t, ps)| TopicPartitions::default().with_topic_id(*t).with_partitions(ps.iter().copied().collect())).collect(),
            ))
    }

    fn snapshot(gc: &GroupCoordinator) -> (i32, i32, Vec<super::super::member::ConsumerGroupMember>) {
        let groups = gc.groups.borrow();
        let c = groups["g"].consumer.as_deref().expect("a consumer group");
        (c.group_epoch, c.assignment_epoch, c.members.values().cloned().collect())
    }

    #[test]
    fn heartbeats_replay_after_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(64 * 1024)
            .spawn(move || async move {
                let cfg = Arc::new(Config::default());
                let p = partition_for("g", cfg.offsets_topic_num_partitions);
                let open = || -> Rc<PartitionLog> {
                    PartitionLog::open(&dir, OFFSETS_TOPIC, p, LogConfig::from(&cfg, &Default::default()), Ring::start().unwrap(), false).unwrap()
                };
                let log = open();
                let gc = GroupCoordinator::new(cfg.clone());
                gc.add_partition(p, log.clone()).unwrap();
                let img = image();
                let h = |r| gc.consumer_heartbeat(r, 1, "client".into(), "/127.0.0.1".into(), &img);
                let a = h(join("a")).await.unwrap();
                let b = h(join("b")).await.unwrap();
                let mut owned_a = a.assignment.unwrap();
                let mut owned_b = b.assignment.unwrap();
                // Reconcile both until each owns 2 (a revokes 2, b then gets them).
                let (mut ea, mut eb) = (a.member_epoch, b.member_epoch);
                for _ in 0..4 {
                    let x = h(beat("a", ea, &owned_a)).await.unwrap();
                    ea = x.member_epoch;
                    owned_a = x.assignment.unwrap_or(owned_a);
                    let y = h(beat("b", eb, &owned_b)).await.unwrap();
                    eb = y.member_epoch;
                    owned_b = y.assignment.unwrap_or(owned_b);
                }
                assert_eq!((super::super::member::partition_count(&owned_a), super::super::member::partition_count(&owned_b)), (2, 2));
                let c = h(join("c")).await.unwrap();
                // c leaves again: its record must be deleted, and the epoch bump kept.
                h(beat("c", -1, &Assignment::new()).with_member_epoch(-1)).await.unwrap();
                assert!(c.member_epoch > 0);
                let before = snapshot(&gc);
                assert_eq!(before.2.iter().map(|m| m.member_id.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);

                let gc2 = GroupCoordinator::new(cfg.clone());
                gc2.add_partition(p, open()).unwrap();
                assert_eq!(snapshot(&gc2), before);
                // The replayed group goes on: b's next heartbeat at its epoch is
                // accepted and moves it to the group epoch c's leaving made (no
                // partition moves: a and b already split them).
                let img2 = image();
                let again = gc2.consumer_heartbeat(beat("b", eb, &owned_b), 1, "client".into(), "h".into(), &img2).await.unwrap();
                assert_eq!((again.member_epoch, again.assignment), (before.0, None));
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
