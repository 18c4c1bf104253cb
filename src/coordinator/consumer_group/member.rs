//! One member of a consumer-protocol group (Kafka's `ConsumerGroupMember`):
//! what it subscribes to, the epoch it is at, the partitions it owns now, the
//! ones it still has to give up, and the target the assignor chose for it.
//!
//! Pure data: serialized as-is into the member's `__consumer_offsets` record, so
//! a restarted coordinator knows every member's epoch and partitions (a member
//! that does not come back then expires by its session timeout).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Partitions by topic id — the form the consumer protocol speaks (a topic id
/// survives renames and tells a re-created topic from the old one).
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Where a member stands in its reconciliation (Kafka's `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// Owns what its epoch's target gives it (or is about to learn of a newer one).
    Stable,
    /// Was asked to give partitions up and has not yet said it did.
    UnrevokedPartitions,
    /// Waits for partitions other members still hold.
    UnreleasedPartitions,
}

/// A consumer-protocol member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerGroupMember {
    pub member_id: String,
    /// `group.instance.id` (static membership), if any.
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// The epoch of the assignment the member has reached; -2 once a static
    /// member left for a while (it keeps its partitions until its session ends).
    pub member_epoch: i32,
    /// The epoch before the last change: a heartbeat at this epoch is accepted
    /// (its response with the new epoch may have been lost).
    pub previous_member_epoch: i32,
    pub state: MemberState,
    /// How long the member may take to give partitions up (`max.poll.interval.ms`).
    pub rebalance_timeout_ms: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: BTreeSet<String>,
    /// A regular expression (RE2 syntax, matched against whole topic names).
    pub subscribed_topic_regex: Option<String>,
    /// The server-side assignor the member asked for, if any.
    pub server_assignor: Option<String>,
    /// Partitions the member owns (or is being given) at `member_epoch`.
    pub assigned: Assignment,
    /// Partitions the member must give up before moving to the next epoch.
    pub pending_revocation: Assignment,
    /// What the assignor gave the member at the group's assignment epoch.
    pub target: Assignment,
}

impl ConsumerGroupMember {
    /// A member that has just joined: epoch 0, nothing owned.
    pub fn new(member_id: &str) -> ConsumerGroupMember {
        ConsumerGroupMember {
            member_id: member_id.to_string(),
            instance_id: None,
            rack_id: None,
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            rebalance_timeout_ms: -1,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: BTreeSet::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            target: Assignment::new(),
        }
    }

    /// Moves to `epoch`, remembering the current one as the previous.
    pub fn update_epoch(&mut self, epoch: i32) {
        self.previous_member_epoch = self.member_epoch;
        self.member_epoch = epoch;
    }

    /// Reconciled: stable at the target's epoch, nothing left to do.
    pub fn is_reconciled_to(&self, target_epoch: i32) -> bool {
        self.state == MemberState::Stable && self.member_epoch == target_epoch
    }
}

/// Number of partitions in an assignment.
pub fn partition_count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// Whether every partition of `owned` is in `of`.
pub fn is_subset(owned: &Assignment, of: &Assignment) -> bool {
    owned.iter().all(|(t, ps)| ps.is_empty() || of.get(t).is_some_and(|have| ps.is_subset(have)))
}

/// Whether `a` and `b` share a partition.
pub fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter().any(|(t, ps)| b.get(t).is_some_and(|other| !ps.is_disjoint(other)))
}
