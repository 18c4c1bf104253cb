//! Partition reassignment, Kafka's way (KIP-455, KRaft's
//! `PartitionReassignmentReplicas`): pure functions from the image to
//! `PartitionChange` records, run by the active controller.
//!
//! - **Start** (AlterPartitionReassignments with target replicas): the replica
//!   list becomes the target followed by the replicas leaving; `adding` and
//!   `removing` say which are which. The added replicas open empty logs and
//!   fetch from the leader like any follower; nothing else changes yet.
//! - **Complete**: once every target replica is in the ISR (the leader adds a
//!   caught-up follower through AlterPartition), the leaving replicas go —
//!   out of the replica list and the ISR; if the leader was one of them, the
//!   first in-sync target replica leads. Their brokers delete their copies.
//!   A target that is a subset of the current replicas completes at once.
//! - **Cancel** (target None): the added replicas go and the original ones
//!   stay; an added replica that was leading hands over to an original one.
//!   Refused while no original replica is in sync (reverting would lose records).
//! - A new target for a partition already moving replaces the old target,
//!   computed from the original replicas (the ones not being added).

use uuid::Uuid;

use super::image::{MetadataImage, TopicMeta};
use super::records::MetadataRecord;
use crate::error::{Error, Result};

/// The changes that start, replace or (`target` None) cancel the reassignment
/// of `topic`-`partition`. `known` says whether a broker id is registered.
pub fn alter(image: &MetadataImage, topic: &str, partition: i32, target: Option<&[i32]>, known: &impl Fn(i32) -> bool) -> Result<Vec<MetadataRecord>> {
    let t = image.topics.get(topic).ok_or(Error::UnknownTopicOrPartition)?;
    let i = usize::try_from(partition).ok().filter(|&i| i < t.partitions.len()).ok_or(Error::UnknownTopicOrPartition)?;
    let p = &t.partitions[i];
    let original: Vec<i32> = p.replicas.iter().copied().filter(|r| !p.adding.contains(r)).collect();
    let Some(target) = target else {
        if !p.reassigning() {
            return Err(Error::NoReassignmentInProgress(format!("{topic}-{partition} is not being reassigned")));
        }
        // With no original replica in sync, reverting would leave the partition
        // without an in-sync replica (Kafka would then elect uncleanly): refuse.
        return finish(image, t, i, original, &p.adding)
            .map(|rec| vec![rec])
            .ok_or_else(|| Error::InvalidReplicaAssignment(format!("{topic}-{partition}: no original replica is in sync; cancelling would lose records")));
    };
    check_target(target, known)?;
    let adding: Vec<i32> = target.iter().copied().filter(|r| !original.contains(r)).collect();
    let removing: Vec<i32> = original.iter().copied().filter(|r| !target.contains(r)).collect();
    if adding.is_empty() {
        // Nothing to copy: the target's replicas hold the data already (or the
        // leaving ones still do, when no target replica is in sync: wait for that).
        let leaving: Vec<i32> = p.replicas.iter().copied().filter(|r| !target.contains(r)).collect();
        if let Some(rec) = finish(image, t, i, target.to_vec(), &leaving) {
            return Ok(vec![rec]);
        }
    }
    let mut replicas = target.to_vec();
    replicas.extend(removing.iter().copied());
    if replicas == p.replicas && adding == p.adding && removing == p.removing {
        return Ok(Vec::new());
    }
    // Replicas a replaced target no longer adds leave the ISR with it.
    let isr: Vec<i32> = p.isr.iter().copied().filter(|r| replicas.contains(r)).collect();
    let mut rec = change(t.topic_id, i as i32);
    if let MetadataRecord::PartitionChange { replicas: r, adding: a, removing: rm, isr: is, .. } = &mut rec {
        *r = Some(replicas);
        *a = Some(adding);
        *rm = Some(removing);
        *is = (isr != p.isr && !isr.is_empty()).then_some(isr);
    }
    Ok(vec![rec])
}

/// The change that completes `topic_id`-`partition`'s reassignment when every
/// target replica is in sync (run after each ISR change), else None.
pub fn complete_if_ready(image: &MetadataImage, topic_id: Uuid, partition: i32) -> Option<MetadataRecord> {
    let t = image.topics.get(image.topic_name(&topic_id)?)?;
    let i = usize::try_from(partition).ok()?;
    let p = t.partitions.get(i)?;
    if !p.reassigning() {
        return None;
    }
    let target: Vec<i32> = p.replicas.iter().copied().filter(|r| !p.removing.contains(r)).collect();
    if !target.iter().all(|r| p.isr.contains(r)) {
        return None;
    }
    finish(image, t, i, target, &p.removing)
}

/// The partition ends with replicas `keep` (order kept); `leaving` go out of
/// the ISR; a leaving leader hands over to the first live in-sync kept replica.
/// None when no kept replica is in sync (it cannot finish yet).
fn finish(image: &MetadataImage, t: &TopicMeta, i: usize, keep: Vec<i32>, leaving: &[i32]) -> Option<MetadataRecord> {
    let p = &t.partitions[i];
    let isr: Vec<i32> = p.isr.iter().copied().filter(|r| keep.contains(r) && !leaving.contains(r)).collect();
    if isr.is_empty() {
        return None;
    }
    let leader =
        if keep.contains(&p.leader) && isr.contains(&p.leader) { p.leader } else { isr.iter().copied().find(|&r| image.eligible_broker(r)).unwrap_or(-1) };
    let elr: Vec<i32> = p.elr.iter().copied().filter(|r| keep.contains(r)).collect();
    let mut rec = change(t.topic_id, i as i32);
    if let MetadataRecord::PartitionChange { replicas, adding, removing, isr: is, leader: l, elr: e, .. } = &mut rec {
        *replicas = (keep != p.replicas).then_some(keep);
        *adding = Some(Vec::new());
        *removing = Some(Vec::new());
        *is = (isr != p.isr).then_some(isr);
        *l = (leader != p.leader).then_some(leader);
        *e = (elr != p.elr).then_some(elr);
    }
    Some(rec)
}

/// An empty change of `topic_id`-`partition`, to fill in.
fn change(topic_id: Uuid, partition: i32) -> MetadataRecord {
    MetadataRecord::PartitionChange { topic_id, partition, leader: None, isr: None, elr: None, replicas: None, adding: None, removing: None }
}

fn check_target(target: &[i32], known: &impl Fn(i32) -> bool) -> Result<()> {
    if target.is_empty() {
        return Err(Error::InvalidReplicaAssignment("the target replica list is empty".into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for &r in target {
        if !seen.insert(r) {
            return Err(Error::InvalidReplicaAssignment(format!("broker {r} is listed twice")));
        }
        if !known(r) {
            return Err(Error::InvalidReplicaAssignment(format!("broker {r} is not registered")));
        }
    }
    Ok(())
}

/// One ongoing reassignment: (topic, partition, replicas, adding, removing).
pub type Ongoing = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// Ongoing reassignments for ListPartitionReassignments: (topic, partition,
/// replicas, adding, removing), for `asked` partitions or all.
pub fn list(image: &MetadataImage, asked: Option<&[(String, i32)]>) -> Vec<Ongoing> {
    let row = |t: &TopicMeta, i: usize| {
        let p = &t.partitions[i];
        p.reassigning().then(|| (t.name.clone(), i as i32, p.replicas.clone(), p.adding.clone(), p.removing.clone()))
    };
    match asked {
        None => image.topics.values().flat_map(|t| (0..t.partitions.len()).filter_map(move |i| row(t, i))).collect(),
        Some(asked) => asked
            .iter()
            .filter_map(|(topic, p)| {
                let t = image.topics.get(topic)?;
                let i = usize::try_from(*p).ok().filter(|&i| i < t.partitions.len())?;
                row(t, i)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::{BrokerMeta, PartitionMeta};

    fn image(replicas: Vec<i32>, isr: Vec<i32>, leader: i32) -> (MetadataImage, Uuid) {
        let mut img = MetadataImage::empty("c".into());
        for b in 1..=4 {
            img.brokers.insert(
                b,
                BrokerMeta {
                    epoch: b as i64,
                    incarnation_id: Uuid::nil(),
                    host: "h".into(),
                    port: 1,
                    rack: None,
                    shards: 1,
                    fenced: false,
                    in_controlled_shutdown: false,
                },
            );
        }
        let id = Uuid::new_v4();
        img.apply(&MetadataRecord::Topic { name: "t".into(), topic_id: id }).unwrap();
        img.apply(&MetadataRecord::Partition { topic_id: id, partition: 0, replicas, isr, leader, leader_epoch: 0 }).unwrap();
        (img, id)
    }

    fn apply(img: &mut MetadataImage, recs: Vec<MetadataRecord>) -> PartitionMeta {
        for r in &recs {
            img.apply(r).unwrap();
        }
        img.topics["t"].partitions[0].clone()
    }

    fn set_isr(img: &mut MetadataImage, id: Uuid, isr: Vec<i32>) -> PartitionMeta {
        let rec = MetadataRecord::PartitionChange {
            topic_id: id,
            partition: 0,
            leader: None,
            isr: Some(isr),
            elr: None,
            replicas: None,
            adding: None,
            removing: None,
        };
        apply(img, vec![rec])
    }

    const KNOWN: fn(i32) -> bool = |b| (1..=4).contains(&b);

    #[test]
    fn a_move_adds_first_and_removes_once_the_new_replica_is_in_sync() {
        let (mut img, id) = image(vec![1, 2, 3], vec![1, 2, 3], 1);
        let recs = alter(&img, "t", 0, Some(&[4, 2, 3]), &KNOWN).unwrap();
        let p = apply(&mut img, recs);
        assert_eq!((p.replicas.clone(), p.adding.clone(), p.removing.clone(), p.leader), (vec![4, 2, 3, 1], vec![4], vec![1], 1));
        assert!(complete_if_ready(&img, id, 0).is_none(), "4 is not in sync yet");
        set_isr(&mut img, id, vec![1, 2, 3, 4]);
        let rec = complete_if_ready(&img, id, 0).unwrap();
        let p = apply(&mut img, vec![rec]);
        assert_eq!((p.replicas, p.isr, p.leader, p.adding, p.removing), (vec![4, 2, 3], vec![2, 3, 4], 2, vec![], vec![]), "the leaving leader hands over");
        assert_eq!(p.leader_epoch, 1);
    }

    #[test]
    fn cancel_keeps_the_original_replicas_and_drops_the_added_ones() {
        let (mut img, id) = image(vec![1, 2, 3], vec![1, 2, 3], 1);
        let recs = alter(&img, "t", 0, Some(&[4, 2, 3]), &KNOWN).unwrap();
        apply(&mut img, recs);
        set_isr(&mut img, id, vec![1, 2, 3]);
        let recs = alter(&img, "t", 0, None, &KNOWN).unwrap();
        let p = apply(&mut img, recs);
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader, p.reassigning()), (vec![2, 3, 1], vec![1, 2, 3], 1, false));
        assert!(matches!(alter(&img, "t", 0, None, &KNOWN), Err(Error::NoReassignmentInProgress(_))));
        // Only an added replica in sync: reverting would lose records, so it is refused.
        let (mut img, id) = image(vec![1], vec![1], 1);
        let recs = alter(&img, "t", 0, Some(&[4, 1]), &KNOWN).unwrap();
        apply(&mut img, recs);
        set_isr(&mut img, id, vec![4]);
        assert!(matches!(alter(&img, "t", 0, None, &KNOWN), Err(Error::InvalidReplicaAssignment(_))));
    }

    #[test]
    fn a_subset_or_reorder_completes_at_once_and_bad_targets_are_refused() {
        let (mut img, _) = image(vec![1, 2, 3], vec![1, 2, 3], 1);
        let recs = alter(&img, "t", 0, Some(&[3, 2]), &KNOWN).unwrap();
        let p = apply(&mut img, recs);
        assert_eq!((p.replicas, p.isr, p.leader, p.adding, p.removing), (vec![3, 2], vec![2, 3], 2, vec![], vec![]));
        assert!(matches!(alter(&img, "t", 0, Some(&[]), &KNOWN), Err(Error::InvalidReplicaAssignment(_))));
        assert!(matches!(alter(&img, "t", 0, Some(&[2, 2]), &KNOWN), Err(Error::InvalidReplicaAssignment(_))));
        assert!(matches!(alter(&img, "t", 0, Some(&[2, 9]), &KNOWN), Err(Error::InvalidReplicaAssignment(_))));
        assert!(matches!(alter(&img, "t", 1, Some(&[2]), &KNOWN), Err(Error::UnknownTopicOrPartition)));
    }

    #[test]
    fn a_new_target_replaces_the_ongoing_one_from_the_original_replicas() {
        let (mut img, _) = image(vec![1, 2], vec![1, 2], 1);
        let recs = alter(&img, "t", 0, Some(&[3, 2]), &KNOWN).unwrap();
        apply(&mut img, recs);
        let recs = alter(&img, "t", 0, Some(&[4, 2]), &KNOWN).unwrap();
        let p = apply(&mut img, recs);
        assert_eq!((p.replicas.clone(), p.adding.clone(), p.removing.clone()), (vec![4, 2, 1], vec![4], vec![1]));
        assert_eq!(list(&img, None), vec![("t".to_string(), 0, vec![4, 2, 1], vec![4], vec![1])]);
    }
}
