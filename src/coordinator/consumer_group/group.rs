//! A consumer-protocol group (Kafka's `ConsumerGroup`): its members, the group
//! epoch (bumped on every membership, subscription or metadata change), the
//! epoch of the target assignment, the subscribed topics' metadata the target
//! was computed from, and which member epoch holds each partition (a partition
//! is handed out only when nobody holds it). State is derived, as in Kafka:
//! Empty, Assigning (a newer group epoch than the target), Reconciling (some
//! member not yet at the target), Stable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::member::ConsumerGroupMember;

/// A subscribed topic as the target assignment saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    /// Topic id (KIP-516): a topic recreated under the same name is a change.
    pub topic_id: Uuid,
    /// Partition count of the topic then.
    pub partitions: i32,
}

/// Kafka's consumer group states, named as ListGroups and ConsumerGroupDescribe print them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    /// No members.
    Empty,
    /// The group epoch moved past the target assignment's: a new target is due.
    Assigning,
    /// Some members are not yet at the target assignment (revoking or waiting for partitions).
    Reconciling,
    /// Every member has reached the target assignment.
    Stable,
}

impl ConsumerGroupState {
    /// The state's name as ListGroups and ConsumerGroupDescribe report it.
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// Per-member deadlines, kept beside the member (not persisted: a restarted
/// coordinator gives every member a fresh session, as Kafka does on load).
#[derive(Debug, Clone, Copy)]
pub struct MemberTimers {
    /// The member is removed if no heartbeat comes before this.
    pub session_deadline: Instant,
    /// (deadline, epoch): the member is removed if it is still at `epoch`,
    /// revoking, at the deadline (its rebalance timeout).
    pub revocation_deadline: Option<(Instant, i32)>,
}

/// The group.
#[derive(Debug, Default)]
pub struct ConsumerGroup {
    /// Group epoch: bumped whenever the members or their subscriptions change, which
    /// calls for a new target assignment.
    pub group_epoch: i32,
    /// The group epoch the current target assignment was computed at.
    pub assignment_epoch: i32,
    /// The members by member id.
    pub members: BTreeMap<String, ConsumerGroupMember>,
    /// group.instance.id -> member id.
    pub static_members: HashMap<String, String>,
    /// Subscribed topics (by name) that existed when the group epoch was last bumped.
    pub subscription_metadata: BTreeMap<String, TopicMetadata>,
    /// Partition -> epoch of the member that holds it (assigned or revoking).
    owners: HashMap<(Uuid, i32), i32>,
    /// Session and revocation deadlines by member id.
    pub timers: HashMap<String, MemberTimers>,
    /// The metadata image version the subscription metadata was last checked against.
    pub checked_image_version: Option<u64>,
    /// Compiled subscription regexes, by source text.
    pub regexes: HashMap<String, regex::Regex>,
}

impl ConsumerGroup {
    /// The state, derived from the members and the two epochs.
    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self.members.values().all(|m| m.is_reconciled_to(self.assignment_epoch)) {
            ConsumerGroupState::Stable
        } else {
            ConsumerGroupState::Reconciling
        }
    }

    /// Whether a member (other than the one asking, or its own revocation) holds the partition.
    pub fn is_held(&self, topic: Uuid, partition: i32) -> bool {
        self.owners.contains_key(&(topic, partition))
    }

    /// Adds or replaces a member, keeping the partition owners index right.
    pub fn put_member(&mut self, m: ConsumerGroupMember) {
        if let Some(old) = self.members.remove(&m.member_id) {
            self.forget_partitions(&old);
        }
        for a in [&m.assigned, &m.pending_revocation] {
            for (t, ps) in a {
                for p in ps {
                    if let Some(prev) = self.owners.insert((*t, *p), m.member_epoch) {
                        // Reconciliation never hands out a held partition; say so if it did.
                        tracing::error!(member = %m.member_id, topic_id = %t, partition = p, previous_epoch = prev, "partition held twice in a consumer group");
                    }
                }
            }
        }
        if let Some(i) = &m.instance_id {
            self.static_members.insert(i.clone(), m.member_id.clone());
        }
        self.members.insert(m.member_id.clone(), m);
    }

    /// Removes a member and everything it held.
    pub fn remove_member(&mut self, member_id: &str) -> Option<ConsumerGroupMember> {
        let m = self.members.remove(member_id)?;
        self.forget_partitions(&m);
        self.timers.remove(member_id);
        if let Some(i) = &m.instance_id {
            if self.static_members.get(i).is_some_and(|id| id == member_id) {
                self.static_members.remove(i);
            }
        }
        Some(m)
    }

    fn forget_partitions(&mut self, m: &ConsumerGroupMember) {
        for a in [&m.assigned, &m.pending_revocation] {
            for (t, ps) in a {
                for p in ps {
                    self.owners.remove(&(*t, *p));
                }
            }
        }
    }

    /// The member holding `instance_id`, if any.
    pub fn static_member(&self, instance_id: &str) -> Option<&ConsumerGroupMember> {
        self.static_members.get(instance_id).and_then(|id| self.members.get(id))
    }

    /// The assignor the members ask for most (ties by name), else `default`;
    /// one this broker does not offer (any more) also gives `default`.
    pub fn preferred_assignor<'a>(&'a self, default: &'a str, offered: &[String]) -> &'a str {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let best = votes.iter().max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0))).map(|(n, _)| *n);
        match best {
            Some(n) if offered.iter().any(|o| o == n) => n,
            _ => default,
        }
    }

    /// Every topic name some member subscribes to, by name or by regex
    /// (resolved against every topic in `topics`, internal ones included, as
    /// Kafka's broker resolves them; clients exclude internal topics themselves).
    pub fn subscribed_topic_names<'a>(&mut self, topics: impl Iterator<Item = &'a str> + Clone) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        let mut patterns: BTreeSet<String> = BTreeSet::new();
        for m in self.members.values() {
            out.extend(m.subscribed_topic_names.iter().cloned());
            if let Some(r) = &m.subscribed_topic_regex {
                patterns.insert(r.clone());
            }
        }
        self.regexes.retain(|k, _| patterns.contains(k));
        for p in patterns {
            if !self.regexes.contains_key(&p) {
                match compile_regex(&p) {
                    Ok(r) => {
                        self.regexes.insert(p.clone(), r);
                    }
                    // Checked when the member sent it; a stored one that no longer compiles matches nothing.
                    Err(_) => continue,
                }
            }
            if let Some(r) = self.regexes.get(&p) {
                out.extend(topics.clone().filter(|t| r.is_match(t)).map(str::to_string));
            }
        }
        out
    }

    /// The topics one member subscribes to, as names (regex resolved with the cache).
    pub fn member_topic_names<'a>(&self, m: &ConsumerGroupMember, topics: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
        let mut out = m.subscribed_topic_names.clone();
        if let Some(r) = m.subscribed_topic_regex.as_ref().and_then(|p| self.regexes.get(p)) {
            out.extend(topics.filter(|t| r.is_match(t)).map(str::to_string));
        }
        out
    }

    /// Rebuilds the partition owners index (after replay).
    pub fn rebuild_owners(&mut self) {
        let members: Vec<ConsumerGroupMember> = std::mem::take(&mut self.members).into_values().collect();
        self.owners.clear();
        self.static_members.clear();
        for m in members {
            self.put_member(m);
        }
    }
}

/// Most bytes a subscription regex may compile to: a pattern is client input,
/// and a compiled automaton's size is bounded here (the `regex` crate's own
/// default is 10 MiB per pattern).
pub const REGEX_SIZE_LIMIT_BYTES: usize = 1 << 20;

/// Compiles a subscription regex (RE2 syntax, as Kafka's RE2/J) to match whole topic names.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(REGEX_SIZE_LIMIT_BYTES).build().map_err(|e| e.to_string())
}
