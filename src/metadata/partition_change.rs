//! Leader elections and ISR changes, as the controller decides them: pure
//! functions from the image to `PartitionChange` records (Kafka's
//! `PartitionChangeBuilder` rules, reduced to what shardlog keeps).
//!
//! - A fenced, restarting or unregistering broker leaves every ISR it is in —
//!   unless it is the last member: then the ISR keeps it (so only a replica
//!   that holds every acknowledged record can lead again) and, when it led,
//!   the partition has no leader (-1) until it or an unclean election returns.
//! - A partition without a leader gets the first in-sync replica on a live
//!   broker; with none, an out-of-sync live replica only when
//!   `unclean.leader.election.enable` allows it (topic override, else the
//!   broker's value), which then becomes the whole ISR.
//! - The leader asks for ISR changes (AlterPartition); one is accepted only
//!   from the current leader at the current leader epoch, based on the ISR the
//!   image holds (a stale view is refused), and only adds replicas on live
//!   brokers (KIP-903: a fenced or restarted broker's stale fetches cannot
//!   bring it back).
//!
//! Every leader change bumps the leader epoch (in [`MetadataImage::apply`]).

use uuid::Uuid;

use super::image::{MetadataImage, PartitionMeta, TopicMeta};
use super::records::MetadataRecord;
use crate::error::{Error, Result};

/// Whether `t` allows unclean leader election (its override, else `broker_default`).
fn unclean_allowed(t: &TopicMeta, broker_default: bool) -> bool {
    match t.configs.get("unclean.leader.election.enable") {
        Some(v) => v == "true",
        None => broker_default,
    }
}

/// The changes for `broker` leaving service (fenced, re-registering after a
/// restart, or unregistered): out of every ISR where it is not the last member,
/// and a new leader for every partition it led.
pub fn without_broker(image: &MetadataImage, broker: i32, unclean_default: bool) -> Vec<MetadataRecord> {
    let live = |id: i32| id != broker && image.live_broker(id).is_some();
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            if p.leader != broker && !p.isr.contains(&broker) && p.leader != -1 {
                continue;
            }
            let mut isr: Vec<i32> = p.isr.iter().copied().filter(|&r| r != broker).collect();
            if isr.is_empty() {
                isr = p.isr.clone();
            }
            let leader = if p.leader == broker || p.leader == -1 { elect(t, p, &isr, &live, unclean_default) } else { Some((p.leader, None)) };
            push_change(&mut out, t.topic_id, i as i32, p, leader, isr);
        }
    }
    out
}

/// Leaders for partitions that have none, now that `newly_live` (when given)
/// counts as live too (a broker just unfenced).
pub fn elect_leaderless(image: &MetadataImage, newly_live: Option<i32>, unclean_default: bool) -> Vec<MetadataRecord> {
    let live = |id: i32| Some(id) == newly_live || image.live_broker(id).is_some();
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            if p.leader != -1 {
                continue;
            }
            let leader = elect(t, p, &p.isr, &live, unclean_default);
            push_change(&mut out, t.topic_id, i as i32, p, leader, p.isr.clone());
        }
    }
    out
}

/// The new leader from `isr` (first live member), else an unclean choice (a live
/// replica, which becomes the ISR), else None.
fn elect(t: &TopicMeta, p: &PartitionMeta, isr: &[i32], live: &impl Fn(i32) -> bool, unclean_default: bool) -> Option<(i32, Option<Vec<i32>>)> {
    if let Some(&l) = isr.iter().find(|&&r| live(r)) {
        return Some((l, None));
    }
    if unclean_allowed(t, unclean_default) {
        if let Some(&l) = p.replicas.iter().find(|&&r| live(r)) {
            return Some((l, Some(vec![l])));
        }
    }
    None
}

fn push_change(out: &mut Vec<MetadataRecord>, topic_id: Uuid, partition: i32, p: &PartitionMeta, leader: Option<(i32, Option<Vec<i32>>)>, isr: Vec<i32>) {
    let (leader, isr) = match leader {
        Some((l, Some(unclean_isr))) => {
            tracing::warn!(%topic_id, partition, leader = l, "unclean leader election: an out-of-sync replica leads; records only the old ISR held are lost");
            (l, unclean_isr)
        }
        Some((l, None)) => (l, isr),
        None => (-1, isr),
    };
    let leader_changed = leader != p.leader;
    let isr_changed = isr != p.isr;
    if leader_changed || isr_changed {
        out.push(MetadataRecord::PartitionChange { topic_id, partition, leader: leader_changed.then_some(leader), isr: isr_changed.then_some(isr) });
    }
}

/// An ISR change the leader asked for (AlterPartition), checked against the
/// image: the record to commit, or why not (Kafka's AlterPartition errors).
pub fn alter_isr(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
    leader: i32,
    leader_epoch: i32,
    current: &[i32],
    new_isr: Vec<i32>,
) -> Result<Vec<MetadataRecord>> {
    let name = image.topic_name(&topic_id).ok_or(Error::UnknownTopicOrPartition)?;
    let t = image.topics.get(name).ok_or(Error::UnknownTopicOrPartition)?;
    let p = usize::try_from(partition).ok().and_then(|i| t.partitions.get(i)).ok_or(Error::UnknownTopicOrPartition)?;
    if p.leader != leader || p.leader_epoch != leader_epoch {
        return Err(Error::FencedLeaderEpoch(leader_epoch));
    }
    if p.isr != current {
        return Err(Error::InvalidUpdateVersion(format!("the ISR is {:?}, not {:?}", p.isr, current)));
    }
    if !new_isr.contains(&leader) || new_isr.iter().any(|r| !p.replicas.contains(r)) {
        return Err(Error::InvalidRequest(format!("ISR {new_isr:?} must hold the leader and only replicas of {:?}", p.replicas)));
    }
    if let Some(r) = new_isr.iter().find(|r| !p.isr.contains(r) && image.live_broker(**r).is_none()) {
        return Err(Error::IneligibleReplica(format!("broker {r} is fenced or not registered")));
    }
    if new_isr == p.isr {
        return Ok(Vec::new());
    }
    Ok(vec![MetadataRecord::PartitionChange { topic_id, partition, leader: None, isr: Some(new_isr) }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::BrokerMeta;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn image(isr: Vec<i32>, leader: i32, fenced: &[i32]) -> (MetadataImage, Uuid) {
        let mut img = MetadataImage::empty("c".into());
        let id = Uuid::new_v4();
        for b in 1..=3 {
            img.brokers.insert(
                b,
                BrokerMeta { epoch: b as i64, incarnation_id: Uuid::nil(), host: "h".into(), port: 1, rack: None, shards: 1, fenced: fenced.contains(&b) },
            );
        }
        img.apply(&MetadataRecord::Topic { name: "t".into(), topic_id: id }).unwrap();
        img.apply(&MetadataRecord::Partition { topic_id: id, partition: 0, replicas: vec![1, 2, 3], isr, leader, leader_epoch: 0 }).unwrap();
        (img, id)
    }

    fn after(img: &MetadataImage, recs: &[MetadataRecord]) -> PartitionMeta {
        let mut img = img.clone();
        for r in recs {
            img.apply(r).unwrap();
        }
        img.topics["t"].partitions[0].clone()
    }

    #[test]
    fn a_fenced_leader_hands_over_to_an_in_sync_replica_and_leaves_the_isr() {
        let (img, _) = image(vec![1, 2, 3], 1, &[1]);
        let p = after(&img, &without_broker(&img, 1, false));
        assert_eq!((p.leader, p.leader_epoch, p.isr), (2, 1, vec![2, 3]));
    }

    #[test]
    fn a_fenced_follower_leaves_the_isr_without_an_epoch_bump() {
        let (img, _) = image(vec![1, 2, 3], 1, &[3]);
        let p = after(&img, &without_broker(&img, 3, false));
        assert_eq!((p.leader, p.leader_epoch, p.isr), (1, 0, vec![1, 2]));
    }

    #[test]
    fn the_last_in_sync_replica_stays_in_the_isr_and_the_partition_waits_for_it() {
        let (img, _) = image(vec![1], 1, &[1]);
        let p = after(&img, &without_broker(&img, 1, false));
        assert_eq!((p.leader, p.isr.clone()), (-1, vec![1]));
        // Its return (unfenced) brings it back as leader; another replica never leads.
        let mut img2 = img.clone();
        for r in without_broker(&img, 1, false) {
            img2.apply(&r).unwrap();
        }
        assert!(elect_leaderless(&img2, None, false).is_empty());
        let p = after(&img2, &elect_leaderless(&img2, Some(1), false));
        assert_eq!((p.leader, p.leader_epoch), (1, 2));
    }

    #[test]
    fn unclean_election_picks_a_live_out_of_sync_replica_only_when_allowed() {
        let (mut img, id) = image(vec![1], -1, &[1]);
        assert!(elect_leaderless(&img, None, false).is_empty());
        let p = after(&img, &elect_leaderless(&img, None, true));
        assert_eq!((p.leader, p.isr), (2, vec![2]));
        // A topic override wins over the broker's value.
        let name = img.topic_name(&id).unwrap().to_string();
        let t = img.topics.get_mut(&name).unwrap();
        Arc::make_mut(t).configs = BTreeMap::from([("unclean.leader.election.enable".to_string(), "false".to_string())]);
        assert!(elect_leaderless(&img, None, true).is_empty());
    }

    #[test]
    fn alter_isr_checks_leader_epoch_view_and_liveness() {
        let (img, id) = image(vec![1, 2], 1, &[3]);
        assert!(matches!(alter_isr(&img, id, 0, 1, 1, &[1, 2], vec![1]), Err(Error::FencedLeaderEpoch(_))));
        assert!(matches!(alter_isr(&img, id, 0, 2, 0, &[1, 2], vec![2]), Err(Error::FencedLeaderEpoch(_))));
        assert!(matches!(alter_isr(&img, id, 0, 1, 0, &[1], vec![1, 2]), Err(Error::InvalidUpdateVersion(_))));
        assert!(matches!(alter_isr(&img, id, 0, 1, 0, &[1, 2], vec![2]), Err(Error::InvalidRequest(_))));
        assert!(matches!(alter_isr(&img, id, 0, 1, 0, &[1, 2], vec![1, 2, 3]), Err(Error::IneligibleReplica(_))));
        let p = after(&img, &alter_isr(&img, id, 0, 1, 0, &[1, 2], vec![1]).unwrap());
        assert_eq!((p.leader, p.leader_epoch, p.isr), (1, 0, vec![1]));
    }
}
