//! ConsumerGroupHeartbeat's group logic (Kafka's
//! `GroupMetadataManager.consumerGroupHeartbeat` and its leave and fence paths):
//! 1. the member is found, created or (static membership) takes over its
//!    instance id; the group epoch is bumped if its subscription changed or the
//!    subscribed topics' metadata did (a topic created, deleted or grown);
//! 2. a group epoch newer than the target assignment's gets a new target from
//!    the server-side assignor, for every member at once;
//! 3. the member is reconciled one step towards its target ([`super::reconcile`]).
//!
//! Everything that can fail is checked before the group changes, so an error
//! leaves it as it was. What changed is collected in [`Changes`] for the
//! coordinator to persist.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::assignor::{self, MemberSpec};
use super::group::{compile_regex, ConsumerGroup, MemberTimers, TopicMetadata};
use super::member::{is_subset, Assignment, ConsumerGroupMember, MemberState};
use super::reconcile::reconcile;
use crate::error::Error;
use crate::metadata::MetadataImage;

/// ConsumerGroupHeartbeat epochs with a meaning of their own (Kafka's constants).
pub const JOIN_GROUP_MEMBER_EPOCH: i32 = 0;
/// The member epoch a dynamic member leaves the group with.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// The member epoch a static member leaves with for a while: it keeps its
/// partitions until its session ends, and its instance id can come back.
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;
/// From this version on the client generates its member id (KIP-1082);
/// version 0 clients join with an empty id and get one from the coordinator.
pub const CONSUMER_GENERATED_MEMBER_ID_REQUIRED_VERSION: i16 = 1;

/// The broker settings a heartbeat needs.
pub struct Settings<'a> {
    /// Session timeout (`group.consumer.session.timeout.ms`): a member without a
    /// heartbeat for this long is removed.
    pub session_timeout: Duration,
    /// Offered server assignors; the first is the default.
    pub assignors: &'a [String],
    /// Most members a group may have (`group.consumer.max.size`).
    pub max_size: usize,
}

/// One heartbeat, as the client sent it (None = "unchanged since the last one").
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    /// Member id; empty on a version 0 client's first join (the coordinator gives one).
    pub member_id: String,
    /// Member epoch: 0 joins, -1 leaves, -2 leaves for a while (static member),
    /// else the epoch the member is at.
    pub member_epoch: i32,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// Rack of the client (`client.rack`).
    pub rack_id: Option<String>,
    /// Rebalance timeout (ms), -1 = unchanged; required on a join.
    pub rebalance_timeout_ms: i32,
    /// Topic names subscribed to.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Subscription regular expression (RE2), v1+.
    pub subscribed_topic_regex: Option<String>,
    /// Server-side assignor asked for by name (e.g. `uniform`); must be one of [`Settings::assignors`].
    pub server_assignor: Option<String>,
    /// The partitions the member owns.
    pub owned: Option<Assignment>,
    /// Client id of the connection, kept with the member.
    pub client_id: String,
    /// Client host (peer address) of the connection, kept with the member.
    pub client_host: String,
}

/// The answer to a heartbeat that succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The member's id (the one given to a new member by version 0 of the API).
    pub member_id: String,
    /// The member's epoch after this heartbeat.
    pub member_epoch: i32,
    /// The member's partitions, when it sent a full request or they changed.
    pub assignment: Option<Assignment>,
}

/// What changed in a group, for the coordinator to write.
#[derive(Debug, Default)]
pub struct Changes {
    /// Group epoch, assignment epoch or subscription metadata.
    pub group: bool,
    /// Members whose record must be (re)written.
    pub members: BTreeSet<String>,
    /// Members whose record must be deleted.
    pub removed: BTreeSet<String>,
}

/// Kafka's request checks (`throwIfConsumerGroupHeartbeatRequestIsInvalid`),
/// made before the group is looked at.
pub fn validate(group_id: &str, hb: &Heartbeat, version: i16, assignors: &[String]) -> Result<(), Error> {
    let invalid = |m: &str| Err(Error::InvalidField(m.to_string()));
    if (version >= CONSUMER_GENERATED_MEMBER_ID_REQUIRED_VERSION || hb.member_epoch > 0 || hb.member_epoch == LEAVE_GROUP_MEMBER_EPOCH)
        && hb.member_id.is_empty()
    {
        return invalid("MemberId can't be empty.");
    }
    if group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if hb.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if hb.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    if hb.member_epoch == JOIN_GROUP_MEMBER_EPOCH {
        if hb.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if hb.owned.as_ref().is_none_or(|o| !o.is_empty()) {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        if hb.subscribed_topic_names.is_none() && hb.subscribed_topic_regex.is_none() {
            return invalid("Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.");
        }
    } else if hb.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        if hb.instance_id.is_none() {
            return invalid("InstanceId can't be null.");
        }
    } else if hb.member_epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        return invalid("MemberEpoch is invalid.");
    }
    if hb.rebalance_timeout_ms < -1 {
        return invalid("RebalanceTimeoutMs must be -1 (unchanged) or a duration in milliseconds.");
    }
    if let Some(a) = &hb.server_assignor {
        if !assignors.iter().any(|x| x == a) {
            return Err(Error::UnsupportedAssignor(format!("ServerAssignor {a} is not supported. Supported assignors: {}.", assignors.join(", "))));
        }
    }
    Ok(())
}

/// Kafka's epoch check: a member may be at its epoch, or at its previous one
/// if it owns no more than it is assigned (the answer moving it on was lost);
/// epoch 0 is a rejoin (KAFKA-19233) and always accepted.
fn check_epoch(m: &ConsumerGroupMember, received: i32, owned: Option<&Assignment>) -> Result<(), Error> {
    if received == JOIN_GROUP_MEMBER_EPOCH {
        return Ok(());
    }
    if received > m.member_epoch {
        return Err(Error::FencedMemberEpoch(format!(
            "The consumer group member has a greater member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
            m.member_epoch
        )));
    }
    if received < m.member_epoch && (received != m.previous_member_epoch || !owned.is_some_and(|o| is_subset(o, &m.assigned))) {
        return Err(Error::FencedMemberEpoch(format!(
            "The consumer group member has a smaller member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
            m.member_epoch
        )));
    }
    Ok(())
}

impl ConsumerGroup {
    /// A regular heartbeat (epoch 0 or more). See the module docs.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        hb: Heartbeat,
        image: &MetadataImage,
        s: &Settings<'_>,
        now: Instant,
        changes: &mut Changes,
    ) -> Result<Answer, Error> {
        let joining = hb.member_epoch == JOIN_GROUP_MEMBER_EPOCH;
        if self.members.len() >= s.max_size && (hb.member_id.is_empty() || !self.members.contains_key(&hb.member_id)) {
            return Err(Error::GroupMaxSizeReached(format!("The consumer group has reached its maximum capacity of {} members.", s.max_size)));
        }
        let member_id = if hb.member_id.is_empty() { Uuid::new_v4().to_string() } else { hb.member_id.clone() };
        // The member as it is now (None: new) and, for a static take-over, the member it replaces.
        let (current, replaced): (Option<ConsumerGroupMember>, Option<String>) = match &hb.instance_id {
            None => match self.members.get(&member_id) {
                Some(m) => {
                    check_epoch(m, hb.member_epoch, hb.owned.as_ref())?;
                    (Some(m.clone()), None)
                }
                None if joining => (None, None),
                None => return Err(Error::UnknownMemberId(format!("Member {member_id} is not a member of group {group_id}."))),
            },
            Some(instance) => match self.static_member(instance).cloned() {
                None if joining => (self.members.get(&member_id).cloned(), None),
                None => return Err(Error::UnknownMemberId(format!("Instance id {instance} is unknown."))),
                Some(e) if e.member_id == member_id => {
                    check_epoch(&e, hb.member_epoch, hb.owned.as_ref())?;
                    (Some(e), None)
                }
                Some(e) if !joining => {
                    return Err(Error::FencedInstanceId(format!(
                        "Static member {member_id} with instance id {instance} was fenced by member {}.",
                        e.member_id
                    )));
                }
                Some(e) if e.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
                    return Err(Error::UnreleasedInstanceId(format!(
                        "Static member {member_id} with instance id {instance} cannot join the group because the instance id is owned by {} member.",
                        e.member_id
                    )));
                }
                Some(e) => {
                    // The instance left with epoch -2 and comes back with a new member id:
                    // the new member takes its place, partitions and target included.
                    let mut n = e.clone();
                    n.member_id = member_id.clone();
                    n.member_epoch = 0;
                    n.previous_member_epoch = 0;
                    (Some(n), Some(e.member_id))
                }
            },
        };
        let before = current.clone().unwrap_or_else(|| ConsumerGroupMember::new(&member_id));
        let mut m = before.clone();
        if let Some(i) = &hb.instance_id {
            m.instance_id = Some(i.clone());
        }
        if let Some(r) = &hb.rack_id {
            m.rack_id = Some(r.clone());
        }
        if hb.rebalance_timeout_ms != -1 {
            m.rebalance_timeout_ms = hb.rebalance_timeout_ms;
        }
        if let Some(a) = &hb.server_assignor {
            m.server_assignor = Some(a.clone());
        }
        if let Some(names) = &hb.subscribed_topic_names {
            m.subscribed_topic_names = names.iter().cloned().collect();
        }
        if let Some(r) = &hb.subscribed_topic_regex {
            // An empty regex clears it (a client switching to a list of names sends "").
            m.subscribed_topic_regex = (!r.is_empty()).then(|| r.clone());
        }
        m.client_id = hb.client_id.clone();
        m.client_host = hb.client_host.clone();
        let subscription_changed = m.subscribed_topic_names != before.subscribed_topic_names || m.subscribed_topic_regex != before.subscribed_topic_regex;
        if m.subscribed_topic_regex != before.subscribed_topic_regex {
            if let Some(r) = &m.subscribed_topic_regex {
                compile_regex(r).map_err(|e| Error::InvalidRegularExpression(format!("SubscribedTopicRegex `{r}` is not a valid regular expression: {e}.")))?;
            }
        }

        // 1. Membership (nothing fails from here on).
        if let Some(old) = replaced {
            tracing::info!(group = %group_id, member = %member_id, replaced = %old, "static member rejoins with a new member id");
            self.remove_member(&old);
            changes.removed.insert(old);
        }
        if current.as_ref() != Some(&m) {
            changes.members.insert(member_id.clone());
        }
        if current.is_none() {
            tracing::info!(group = %group_id, member = %member_id, "member joins the consumer group");
        }
        self.put_member(m);
        let mut bump = self.group_epoch == 0 || subscription_changed;
        if bump || self.checked_image_version != Some(image.version) || self.group_epoch > self.assignment_epoch {
            let names = self.subscribed_topic_names(image.topics.keys().map(String::as_str));
            let metadata: BTreeMap<String, TopicMetadata> = names
                .into_iter()
                .filter_map(|n| {
                    let t = image.topics.get(&n)?;
                    Some((n, TopicMetadata { topic_id: t.topic_id, partitions: t.partitions.len().min(i32::MAX as usize) as i32 }))
                })
                .collect();
            if metadata != self.subscription_metadata {
                self.subscription_metadata = metadata;
                bump = true;
            }
            self.checked_image_version = Some(image.version);
        }
        if bump {
            self.group_epoch += 1;
            changes.group = true;
            tracing::info!(group = %group_id, epoch = self.group_epoch, "bumped consumer group epoch");
        }

        // 2. A new target assignment for a new group epoch.
        if self.group_epoch > self.assignment_epoch {
            self.compute_target(group_id, image, s, changes);
        }

        // 3. Reconciliation of this member.
        let epoch = self.assignment_epoch;
        let cur = &self.members[&member_id];
        if !cur.is_reconciled_to(epoch) {
            let next = reconcile(cur, epoch, &cur.target, &|t, p| self.is_held(t, p), hb.owned.as_ref());
            if next != *cur {
                let revocation = (next.state == MemberState::UnrevokedPartitions)
                    .then(|| (now + Duration::from_millis(next.rebalance_timeout_ms.max(0) as u64), next.member_epoch));
                tracing::debug!(group = %group_id, member = %member_id, epoch = next.member_epoch, state = ?next.state, "member reconciled");
                self.put_member(next);
                changes.members.insert(member_id.clone());
                let t = self.timers.entry(member_id.clone()).or_insert(MemberTimers { session_deadline: now, revocation_deadline: None });
                t.revocation_deadline = revocation;
            }
        }
        let t = self.timers.entry(member_id.clone()).or_insert(MemberTimers { session_deadline: now, revocation_deadline: None });
        t.session_deadline = now + s.session_timeout;

        let m = &self.members[&member_id];
        let full =
            joining || (hb.rebalance_timeout_ms != -1 && (hb.subscribed_topic_names.is_some() || hb.subscribed_topic_regex.is_some()) && hb.owned.is_some());
        let assignment = (full || m.assigned != before.assigned).then(|| m.assigned.clone());
        Ok(Answer { member_id, member_epoch: m.member_epoch, assignment })
    }

    /// Runs the assignor for the current group epoch and stores each member's target.
    fn compute_target(&mut self, group_id: &str, image: &MetadataImage, s: &Settings<'_>, changes: &mut Changes) {
        let default = s.assignors.first().map(String::as_str).unwrap_or("uniform");
        let name = self.preferred_assignor(default, s.assignors).to_string();
        let partitions: BTreeMap<Uuid, i32> = self.subscription_metadata.values().map(|t| (t.topic_id, t.partitions)).collect();
        let topics: Vec<BTreeSet<Uuid>> = self
            .members
            .values()
            .map(|m| {
                self.member_topic_names(m, image.topics.keys().map(String::as_str))
                    .iter()
                    .filter_map(|n| self.subscription_metadata.get(n).map(|t| t.topic_id))
                    .collect()
            })
            .collect();
        let specs: Vec<MemberSpec<'_>> = self
            .members
            .values()
            .zip(topics)
            .map(|(m, topics)| MemberSpec { member_id: &m.member_id, instance_id: m.instance_id.as_deref(), topics, current: &m.target })
            .collect();
        let mut out = assignor::assign(&name, &specs, &partitions);
        drop(specs);
        for m in self.members.values_mut() {
            let target = out.remove(&m.member_id).unwrap_or_default();
            if target != m.target {
                m.target = target;
                changes.members.insert(m.member_id.clone());
            }
        }
        self.assignment_epoch = self.group_epoch;
        changes.group = true;
        tracing::info!(group = %group_id, epoch = self.group_epoch, assignor = %name, members = self.members.len(), "computed a new target assignment");
    }

    /// A leaving heartbeat: epoch -1 removes the member (static or not); -2
    /// marks a static member as temporarily gone, keeping its partitions until
    /// it comes back or its session times out.
    pub fn leave(&mut self, group_id: &str, member_id: &str, instance_id: Option<&str>, epoch: i32, changes: &mut Changes) -> Result<Answer, Error> {
        let id = match instance_id {
            None => {
                if !self.members.contains_key(member_id) {
                    return Err(Error::UnknownMemberId(format!("Member {member_id} is not a member of group {group_id}.")));
                }
                member_id.to_string()
            }
            Some(instance) => {
                let Some(e) = self.static_member(instance) else {
                    return Err(Error::UnknownMemberId(format!("Instance id {instance} is unknown.")));
                };
                if e.member_id != member_id {
                    return Err(Error::FencedInstanceId(format!(
                        "Static member {member_id} with instance id {instance} was fenced by member {}.",
                        e.member_id
                    )));
                }
                if epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                    let mut m = e.clone();
                    m.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
                    m.pending_revocation = Assignment::new();
                    tracing::info!(group = %group_id, member = %member_id, instance = %instance, "static member temporarily left the consumer group");
                    self.put_member(m);
                    changes.members.insert(member_id.to_string());
                    return Ok(Answer { member_id: member_id.to_string(), member_epoch: LEAVE_GROUP_STATIC_MEMBER_EPOCH, assignment: None });
                }
                member_id.to_string()
            }
        };
        tracing::info!(group = %group_id, member = %id, "member left the consumer group");
        self.fence(&id, changes);
        Ok(Answer { member_id: member_id.to_string(), member_epoch: epoch, assignment: None })
    }

    /// Removes a member and bumps the group epoch (its partitions get new owners).
    pub fn fence(&mut self, member_id: &str, changes: &mut Changes) {
        if self.remove_member(member_id).is_some() {
            self.group_epoch += 1;
            changes.group = true;
            changes.members.remove(member_id);
            changes.removed.insert(member_id.to_string());
        }
    }

    /// Removes members whose session ended, or that did not revoke within their
    /// rebalance timeout. Returns the members removed.
    pub fn expire(&mut self, group_id: &str, now: Instant, changes: &mut Changes) -> Vec<String> {
        let mut gone = Vec::new();
        for (id, t) in &self.timers {
            let session = now >= t.session_deadline;
            let stuck = t.revocation_deadline.is_some_and(|(d, epoch)| {
                now >= d && self.members.get(id).is_some_and(|m| m.member_epoch == epoch && m.state == MemberState::UnrevokedPartitions)
            });
            if session || stuck {
                gone.push((id.clone(), session));
            }
        }
        gone.sort();
        for (id, session) in &gone {
            let why = if *session { "its session expired" } else { "it did not revoke its partitions within its rebalance timeout" };
            tracing::info!(group = %group_id, member = %id, "member removed from the consumer group: {why}");
            self.fence(id, changes);
        }
        gone.into_iter().map(|(id, _)| id).collect()
    }

    /// After replay: every member gets a fresh session, and members that were
    /// revoking get their rebalance timeout again (Kafka's `onLoaded`).
    pub fn on_loaded(&mut self, now: Instant, session_timeout: Duration) {
        self.rebuild_owners();
        self.timers.clear();
        for m in self.members.values() {
            let revocation =
                (m.state == MemberState::UnrevokedPartitions).then(|| (now + Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64), m.member_epoch));
            self.timers.insert(m.member_id.clone(), MemberTimers { session_deadline: now + session_timeout, revocation_deadline: revocation });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(topics: &[(&str, u128, usize)], version: u64) -> MetadataImage {
        let topics: Vec<(&str, Uuid, usize)> = topics.iter().map(|(n, id, p)| (*n, Uuid::from_u128(*id), *p)).collect();
        MetadataImage::for_tests(&topics, version)
    }

    fn join(id: &str, topics: &[&str]) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(topics.iter().map(|s| s.to_string()).collect()),
            owned: Some(Assignment::new()),
            ..Default::default()
        }
    }

    fn beat(id: &str, epoch: i32, owned: &Assignment) -> Heartbeat {
        Heartbeat { member_id: id.into(), member_epoch: epoch, rebalance_timeout_ms: -1, owned: Some(owned.clone()), ..Default::default() }
    }

    fn settings(assignors: &[String]) -> Settings<'_> {
        Settings { session_timeout: Duration::from_secs(45), assignors, max_size: 100 }
    }

    fn count(a: &Assignment) -> usize {
        super::super::member::partition_count(a)
    }

    #[test]
    fn validation_follows_kafka() {
        let a = vec!["uniform".to_string()];
        let ok = join("m", &["t"]);
        assert!(validate("g", &ok, 1, &a).is_ok());
        let no_id = Heartbeat { member_id: String::new(), ..ok.clone() };
        assert!(matches!(validate("g", &no_id, 1, &a), Err(Error::InvalidField(_))));
        assert!(validate("g", &no_id, 0, &a).is_ok(), "v0 joins without a member id");
        assert!(matches!(validate("", &ok, 1, &a), Err(Error::InvalidField(_))));
        let owned = Heartbeat { owned: Some(BTreeMap::from([(Uuid::from_u128(1), BTreeSet::from([0]))])), ..ok.clone() };
        assert!(matches!(validate("g", &owned, 1, &a), Err(Error::InvalidField(_))));
        let no_sub = Heartbeat { subscribed_topic_names: None, ..ok.clone() };
        assert!(matches!(validate("g", &no_sub, 1, &a), Err(Error::InvalidField(_))));
        let no_timeout = Heartbeat { rebalance_timeout_ms: -1, ..ok.clone() };
        assert!(matches!(validate("g", &no_timeout, 1, &a), Err(Error::InvalidField(_))));
        let bad_epoch = Heartbeat { member_epoch: -3, ..ok.clone() };
        assert!(matches!(validate("g", &bad_epoch, 1, &a), Err(Error::InvalidField(_))));
        let static_leave = Heartbeat { member_epoch: -2, ..ok.clone() };
        assert!(matches!(validate("g", &static_leave, 1, &a), Err(Error::InvalidField(_))));
        let assignor = Heartbeat { server_assignor: Some("sticky".into()), ..ok.clone() };
        assert!(matches!(validate("g", &assignor, 1, &a), Err(Error::UnsupportedAssignor(_))));
    }

    /// Two members share 4 partitions: the second join bumps the epoch, the first
    /// must revoke 2 before the second gets them; no partition has two owners.
    #[test]
    fn join_revoke_then_hand_over() {
        let img = image(&[("t", 1, 4)], 1);
        let names = vec!["uniform".to_string()];
        let s = settings(&names);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let mut ch = Changes::default();
        let a = g.heartbeat("g", join("a", &["t"]), &img, &s, now, &mut ch).unwrap();
        assert_eq!((a.member_epoch, g.group_epoch, g.assignment_epoch), (1, 1, 1));
        let a_owned = a.assignment.unwrap();
        assert_eq!(count(&a_owned), 4);
        assert!(ch.group && ch.members.contains("a"));

        let b = g.heartbeat("g", join("b", &["t"]), &img, &s, now, &mut Changes::default()).unwrap();
        assert_eq!(g.group_epoch, 2);
        // b's two partitions are still a's: b waits at epoch 2 with nothing.
        assert_eq!((b.member_epoch, count(b.assignment.as_ref().unwrap())), (2, 0));
        assert_eq!(g.members["b"].state, MemberState::UnreleasedPartitions);
        // a is told to keep 2 (its epoch stays 1 until it revokes).
        let a1 = g.heartbeat("g", beat("a", 1, &a_owned), &img, &s, now, &mut Changes::default()).unwrap();
        assert_eq!(a1.member_epoch, 1);
        let a_keep = a1.assignment.unwrap();
        assert_eq!(count(&a_keep), 2);
        assert_eq!(g.members["a"].state, MemberState::UnrevokedPartitions);
        // b asks again: still held by a.
        let b1 = g.heartbeat("g", beat("b", 2, &Assignment::new()), &img, &s, now, &mut Changes::default()).unwrap();
        assert_eq!(b1.assignment, None);
        // a revokes: epoch 2, stable.
        let a2 = g.heartbeat("g", beat("a", 1, &a_keep), &img, &s, now, &mut Changes::default()).unwrap();
        assert_eq!(a2.member_epoch, 2);
        assert_eq!(g.members["a"].state, MemberState::Stable);
        // b now gets the other two.
        let b2 = g.heartbeat("g", beat("b", 2, &Assignment::new()), &img, &s, now, &mut Changes::default()).unwrap();
        let b_got = b2.assignment.unwrap();
        assert_eq!(count(&b_got), 2);
        assert!(!super::super::member::intersects(&b_got, &a_keep));
        assert_eq!(g.state().name(), "Stable");
    }

    #[test]
    fn epochs_are_checked() {
        let img = image(&[("t", 1, 2)], 1);
        let names = vec!["uniform".to_string()];
        let s = settings(&names);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let a = g.heartbeat("g", join("a", &["t"]), &img, &s, now, &mut Changes::default()).unwrap();
        let owned = a.assignment.unwrap();
        assert!(matches!(g.heartbeat("g", beat("a", 5, &owned), &img, &s, now, &mut Changes::default()), Err(Error::FencedMemberEpoch(_))));
        assert!(matches!(g.heartbeat("g", beat("zz", 1, &owned), &img, &s, now, &mut Changes::default()), Err(Error::UnknownMemberId(_))));
        // A rejoin (epoch 0) of a known member is accepted and answered in full.
        let again = g.heartbeat("g", join("a", &["t"]), &img, &s, now, &mut Changes::default()).unwrap();
        assert_eq!((again.member_epoch, again.assignment), (1, Some(owned)));
        // The group is unchanged by errors.
        assert_eq!(g.group_epoch, 1);
    }

    #[test]
    fn new_partitions_bump_the_epoch_and_are_assigned() {
        let names = vec!["uniform".to_string()];
        let s = settings(&names);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let a = g.heartbeat("g", join("a", &["t", "later"]), &image(&[("t", 1, 2)], 1), &s, now, &mut Changes::default()).unwrap();
        assert_eq!(count(a.assignment.as_ref().unwrap()), 2);
        let owned = a.assignment.unwrap();
        // Same image: nothing changes.
        let same = g.heartbeat("g", beat("a", 1, &owned), &image(&[("t", 1, 2)], 1), &s, now, &mut Changes::default()).unwrap();
        assert_eq!((same.member_epoch, same.assignment), (1, None));
        // t grows to 3 partitions and "later" is created: new epoch, 3 + 1 partitions.
        let img = image(&[("t", 1, 3), ("later", 2, 1)], 2);
        let b = g.heartbeat("g", beat("a", 1, &owned), &img, &s, now, &mut Changes::default()).unwrap();
        assert_eq!((b.member_epoch, count(b.assignment.as_ref().unwrap())), (2, 4));
    }

    #[test]
    fn regex_subscription_follows_topic_creation() {
        let names = vec!["uniform".to_string()];
        let s = settings(&names);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let hb = Heartbeat { subscribed_topic_names: None, subscribed_topic_regex: Some("orders-.*".into()), ..join("a", &[]) };
        let a = g.heartbeat("g", hb, &image(&[("orders-1", 1, 1), ("other", 2, 1)], 1), &s, now, &mut Changes::default()).unwrap();
        let owned = a.assignment.unwrap();
        assert_eq!(owned.keys().copied().collect::<Vec<_>>(), vec![Uuid::from_u128(1)]);
        let img = image(&[("orders-1", 1, 1), ("other", 2, 1), ("orders-2", 3, 2)], 2);
        let b = g.heartbeat("g", beat("a", 1, &owned), &img, &s, now, &mut Changes::default()).unwrap();
        assert_eq!(count(b.assignment.as_ref().unwrap()), 3);
        let bad = Heartbeat { subscribed_topic_regex: Some("(".into()), ..beat("a", 2, &b.assignment.unwrap()) };
        assert!(matches!(g.heartbeat("g", bad, &img, &s, now, &mut Changes::default()), Err(Error::InvalidRegularExpression(_))));
    }

    #[test]
    fn a_regex_matching_an_internal_topic_is_assigned_it_as_kafka_does() {
        // franz-go's Test848RegexBrokerResolves: Kafka's broker resolves a regex
        // against every topic, internal ones included (clients exclude them).
        let names = vec!["uniform".to_string()];
        let s = settings(&names);
        let mut g = ConsumerGroup::default();
        let hb = Heartbeat { subscribed_topic_names: None, subscribed_topic_regex: Some("__consumer_offsets|orders".into()), ..join("a", &[]) };
        let img = image(&[("__consumer_offsets", 1, 2), ("orders", 2, 1), ("other", 3, 1)], 1);
        let a = g.heartbeat("g", hb, &img, &s, Instant::now(), &mut Changes::default()).unwrap();
        let owned = a.assignment.unwrap();
        assert_eq!(owned.keys().copied().collect::<Vec<_>>(), vec![Uuid::from_u128(1), Uuid::from_u128(2)]);
        assert_eq!(count(&owned), 3);
    }

    #[test]
    fn leave_session_expiry_and_static_takeover() {
        let img = image(&[("t", 1, 4)], 1);
        let names = vec!["uniform".to_string()];
        let s = settings(&names);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let st = Heartbeat { instance_id: Some("i1".into()), ..join("s1", &["t"]) };
        let a = g.heartbeat("g", st, &img, &s, now, &mut Changes::default()).unwrap();
        let owned = a.assignment.unwrap();
        // Another member may not take a live instance id.
        let thief = Heartbeat { instance_id: Some("i1".into()), ..join("s2", &["t"]) };
        assert!(matches!(g.heartbeat("g", thief.clone(), &img, &s, now, &mut Changes::default()), Err(Error::UnreleasedInstanceId(_))));
        // Temporary leave (-2): partitions stay, epoch unchanged for the group.
        let left = g.leave("g", "s1", Some("i1"), -2, &mut Changes::default()).unwrap();
        assert_eq!(left.member_epoch, -2);
        assert_eq!(g.group_epoch, 1);
        // The instance comes back as s2: it takes over s1's partitions, no new epoch.
        let mut ch = Changes::default();
        let back = g.heartbeat("g", thief, &img, &s, now, &mut ch).unwrap();
        assert_eq!((back.member_epoch, back.assignment.unwrap()), (1, owned));
        assert!(ch.removed.contains("s1") && !g.members.contains_key("s1"));
        assert_eq!(g.group_epoch, 1);
        // A dynamic member leaves with -1: removed, epoch bumped.
        g.heartbeat("g", join("d", &["t"]), &img, &s, now, &mut Changes::default()).unwrap();
        let e = g.group_epoch;
        g.leave("g", "d", None, -1, &mut Changes::default()).unwrap();
        assert_eq!(g.group_epoch, e + 1);
        assert!(matches!(g.leave("g", "d", None, -1, &mut Changes::default()), Err(Error::UnknownMemberId(_))));
        // s2 stops heartbeating: removed once its session is over.
        let mut ch = Changes::default();
        assert!(g.expire("g", now + Duration::from_secs(44), &mut ch).is_empty());
        assert_eq!(g.expire("g", now + Duration::from_secs(46), &mut ch), vec!["s2".to_string()]);
        assert!(g.members.is_empty() && ch.removed.contains("s2"));
        assert_eq!(g.state().name(), "Empty");
    }

    #[test]
    fn a_member_that_does_not_revoke_in_time_is_removed() {
        let img = image(&[("t", 1, 2)], 1);
        let names = vec!["uniform".to_string()];
        let s = settings(&names);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let a = g.heartbeat("g", Heartbeat { rebalance_timeout_ms: 1000, ..join("a", &["t"]) }, &img, &s, now, &mut Changes::default()).unwrap();
        g.heartbeat("g", join("b", &["t"]), &img, &s, now, &mut Changes::default()).unwrap();
        // a hears it must give one up, and keeps heartbeating without doing so.
        let owned = a.assignment.unwrap();
        g.heartbeat("g", beat("a", 1, &owned), &img, &s, now, &mut Changes::default()).unwrap();
        assert_eq!(g.members["a"].state, MemberState::UnrevokedPartitions);
        let later = now + Duration::from_millis(1500);
        g.heartbeat("g", beat("a", 1, &owned), &img, &s, later, &mut Changes::default()).unwrap();
        assert_eq!(g.expire("g", later, &mut Changes::default()), vec!["a".to_string()]);
    }

    #[test]
    fn range_assignor_chosen_by_the_member() {
        let img = image(&[("t", 1, 4)], 1);
        let names = vec!["uniform".to_string(), "range".to_string()];
        let s = settings(&names);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let r = |id: &str| Heartbeat { server_assignor: Some("range".into()), ..join(id, &["t"]) };
        g.heartbeat("g", r("m1"), &img, &s, now, &mut Changes::default()).unwrap();
        g.heartbeat("g", r("m2"), &img, &s, now, &mut Changes::default()).unwrap();
        assert_eq!(g.preferred_assignor("uniform", &names), "range");
        let t = Uuid::from_u128(1);
        assert_eq!(g.members["m1"].target[&t], BTreeSet::from([0, 1]));
        assert_eq!(g.members["m2"].target[&t], BTreeSet::from([2, 3]));
    }
}
