//! Server-side assignors of the consumer group protocol (KIP-848): the
//! coordinator, not a group leader, decides which member gets which partition.
//! Two, as in Kafka: `uniform` (balanced and sticky, the default) and `range`
//! (co-partitioned ranges per topic). Pure functions of the group's members,
//! their subscriptions and current targets, and the subscribed topics' sizes.

pub mod range;
pub mod uniform;

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::member::Assignment;

/// What an assignor knows of one member.
#[derive(Debug, Clone)]
pub struct MemberSpec<'a> {
    /// The member's id; the assignment is keyed by it.
    pub member_id: &'a str,
    /// Static members sort first in the range assignor, by instance id, so a
    /// rolling restart (new member ids) keeps their ranges.
    pub instance_id: Option<&'a str>,
    /// Ids of the subscribed topics that exist.
    pub topics: BTreeSet<Uuid>,
    /// The member's current target assignment (stickiness starts from it).
    pub current: &'a Assignment,
}

/// Computes a target assignment for every member with the assignor `name`
/// (an unknown name uses `uniform`). `partitions`: partition count per topic id.
pub fn assign(name: &str, members: &[MemberSpec<'_>], partitions: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    match name {
        "range" => range::assign(members, partitions),
        _ => uniform::assign(members, partitions),
    }
}

/// Whether every member subscribes to the same topics (Kafka's HOMOGENEOUS
/// subscription type, which both assignors solve the simple way).
pub fn homogeneous(members: &[MemberSpec<'_>]) -> bool {
    members.windows(2).all(|w| w[0].topics == w[1].topics)
}

/// The partitions of `topic` (none when it has no known count).
fn partitions_of(partitions: &BTreeMap<Uuid, i32>, topic: Uuid) -> std::ops::Range<i32> {
    0..partitions.get(&topic).copied().unwrap_or(0).max(0)
}
