//! How a consumer-protocol group is kept in `__consumer_offsets`, beside the
//! classic groups' records (see [`crate::coordinator::store`]): one record per
//! group (key `ConsumerGroup`: group epoch, assignment epoch, the subscribed
//! topics' metadata) and one per member (key `ConsumerGroupMember`: its
//! subscription, epochs, owned and revoking partitions, target). JSON, latest
//! value wins, null value = tombstone — compaction keeps one record per key.
//! Kafka splits a member over three records; one suffices here because the
//! coordinator always writes a member whole.
//!
//! Replay rebuilds the group; members get a fresh session (those that do not
//! come back expire), and the group epoch and committed offsets survive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::group::{ConsumerGroup, TopicMetadata};
use super::heartbeat::Changes;
use super::member::ConsumerGroupMember;
use crate::coordinator::store::StoreKey;

/// A record to write: key and value (None = tombstone).
pub type KeyedRecord = (StoreKey, Option<Vec<u8>>);

/// The value of a group's `ConsumerGroup` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupValue {
    /// Group epoch (see [`ConsumerGroup::group_epoch`](super::group::ConsumerGroup::group_epoch)).
    pub group_epoch: i32,
    /// The group epoch the target assignment was computed at.
    pub assignment_epoch: i32,
    /// Subscribed topics as they were at the last group epoch bump (name -> id, partitions).
    pub subscription_metadata: BTreeMap<String, TopicMetadata>,
}

/// The records that write `changes` of group `group_id` (after they were made).
pub fn records(group_id: &str, g: &ConsumerGroup, changes: &Changes) -> Vec<KeyedRecord> {
    let mut out = Vec::new();
    for id in &changes.removed {
        if !g.members.contains_key(id) {
            out.push((StoreKey::ConsumerGroupMember { group: group_id.to_string(), member: id.clone() }, None));
        }
    }
    for id in &changes.members {
        if let Some(m) = g.members.get(id) {
            out.push((StoreKey::ConsumerGroupMember { group: group_id.to_string(), member: id.clone() }, serde_json::to_vec(m).ok()));
        }
    }
    if changes.group {
        out.push((StoreKey::ConsumerGroup { group: group_id.to_string() }, serde_json::to_vec(&group_value(g)).ok()));
    }
    out
}

/// The group's own record value.
pub fn group_value(g: &ConsumerGroup) -> GroupValue {
    GroupValue { group_epoch: g.group_epoch, assignment_epoch: g.assignment_epoch, subscription_metadata: g.subscription_metadata.clone() }
}

/// Tombstones deleting the whole group (members first, then the group).
pub fn tombstones(group_id: &str, g: &ConsumerGroup) -> Vec<KeyedRecord> {
    let mut out: Vec<KeyedRecord> =
        g.members.keys().map(|id| (StoreKey::ConsumerGroupMember { group: group_id.to_string(), member: id.clone() }, None)).collect();
    out.push((StoreKey::ConsumerGroup { group: group_id.to_string() }, None));
    out
}

/// Replays a group record into `g`.
pub fn apply_group(g: &mut ConsumerGroup, v: GroupValue) {
    g.group_epoch = v.group_epoch;
    g.assignment_epoch = v.assignment_epoch;
    g.subscription_metadata = v.subscription_metadata;
}

/// Replays a member record (None = tombstone) into `g`. The partition owners
/// index is rebuilt once replay ends ([`ConsumerGroup::on_loaded`]).
pub fn apply_member(g: &mut ConsumerGroup, member_id: &str, v: Option<ConsumerGroupMember>) {
    match v {
        Some(m) => {
            g.members.insert(member_id.to_string(), m);
        }
        None => {
            g.members.remove(member_id);
        }
    }
}
