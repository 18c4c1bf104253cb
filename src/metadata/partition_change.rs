//! Leader elections and ISR changes, as the controller decides them: pure
//! functions from the image to `PartitionChange` records (Kafka's
//! `PartitionChangeBuilder` rules, reduced to what shardlog keeps).
//!
//! - A fenced, restarting or unregistering broker leaves every ISR it is in —
//!   unless it is the last member: then the ISR keeps it and, when it led,
//!   the partition has no leader (-1) until an eligible replica returns.
//! - Eligible leader replicas (KIP-966 part 1): a replica that leaves the ISR
//!   while the ISR is below `min.insync.replicas` joins the ELR — the high
//!   watermark was frozen, so it holds everything committed. The ELR empties
//!   when the ISR is back at `min.insync.replicas`; a replica leaves it when it
//!   rejoins the ISR or restarts after an unclean shutdown (its unflushed tail
//!   may be gone). Such a restart also takes the broker out of an ISR it was
//!   the last member of, when the ELR has another replica to lead instead
//!   (with no ELR it stays: Kafka before KIP-966 — available, possibly lossy).
//! - A partition without a leader gets the first in-sync replica on a live
//!   broker, else the first live ELR member (which becomes the ISR), else —
//!   only when `unclean.leader.election.enable` allows it (topic override,
//!   else the broker's value) — a live out-of-sync replica (the whole ISR).
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

/// The broker's defaults the rules need (a topic override wins over each).
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// `unclean.leader.election.enable`.
    pub unclean: bool,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
}

impl Defaults {
    /// The broker's values from its configuration.
    pub fn of(cfg: &crate::config::Config) -> Defaults {
        Defaults { unclean: cfg.unclean_leader_election_enable, min_insync_replicas: cfg.min_insync_replicas }
    }
}

/// Whether `t` allows unclean leader election.
fn unclean_allowed(t: &TopicMeta, d: &Defaults) -> bool {
    match t.configs.get("unclean.leader.election.enable") {
        Some(v) => v == "true",
        None => d.unclean,
    }
}

/// `t`'s `min.insync.replicas`.
fn min_isr(t: &TopicMeta, d: &Defaults) -> usize {
    t.configs.get("min.insync.replicas").and_then(|v| v.parse::<i32>().ok()).unwrap_or(d.min_insync_replicas).max(1) as usize
}

/// The ELR after the ISR goes from `p.isr` to `new_isr`: members back in the
/// ISR leave it, replicas removed while the ISR is below the minimum join it,
/// and it empties once the ISR is at the minimum again.
fn next_elr(t: &TopicMeta, p: &PartitionMeta, new_isr: &[i32], d: &Defaults) -> Vec<i32> {
    if new_isr.len() >= min_isr(t, d) {
        return Vec::new();
    }
    let mut elr: Vec<i32> = p.elr.iter().copied().filter(|r| !new_isr.contains(r)).collect();
    for r in p.isr.iter().filter(|r| !new_isr.contains(r)) {
        if !elr.contains(r) {
            elr.push(*r);
        }
    }
    elr
}

/// The changes for `broker` leaving service (fenced, re-registering after a
/// restart, or unregistered): out of every ISR where it is not the last member,
/// and a new leader for every partition it led.
pub fn without_broker(image: &MetadataImage, broker: i32, d: &Defaults) -> Vec<MetadataRecord> {
    let live = |id: i32| id != broker && image.eligible_broker(id);
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
            let elr = next_elr(t, p, &isr, d);
            let leader = if p.leader == broker || p.leader == -1 { elect(t, p, &isr, &elr, &live, d) } else { Some((p.leader, None)) };
            push_change(&mut out, t.topic_id, i as i32, p, leader, isr, elr);
        }
    }
    out
}

/// The changes for `broker` registering after an unclean shutdown (no
/// clean-shutdown marker): it may have lost its unflushed tail, so it leaves
/// every ELR, and every ISR it is the last member of when the ELR has another
/// replica (KIP-966: a replica that may lack committed records never leads
/// while one that has them may return).
pub fn after_unclean_restart(image: &MetadataImage, broker: i32) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            let elr: Vec<i32> = p.elr.iter().copied().filter(|&r| r != broker).collect();
            let isr = if p.isr == [broker] && !elr.is_empty() { Vec::new() } else { p.isr.clone() };
            if elr != p.elr || isr != p.isr {
                tracing::info!(topic = %t.name, partition = i, broker, "unclean restart: out of the eligible leaders");
                out.push(MetadataRecord::PartitionChange {
                    topic_id: t.topic_id,
                    partition: i as i32,
                    leader: None,
                    isr: (isr != p.isr).then_some(isr),
                    elr: (elr != p.elr).then_some(elr),
                    replicas: None,
                    adding: None,
                    removing: None,
                });
            }
        }
    }
    out
}

/// Leaders for partitions that have none, now that `newly_live` (when given)
/// counts as live too (a broker just unfenced).
pub fn elect_leaderless(image: &MetadataImage, newly_live: Option<i32>, d: &Defaults) -> Vec<MetadataRecord> {
    let live = |id: i32| Some(id) == newly_live || image.eligible_broker(id);
    let mut out = Vec::new();
    for t in image.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            if p.leader != -1 {
                continue;
            }
            let leader = elect(t, p, &p.isr, &p.elr, &live, d);
            push_change(&mut out, t.topic_id, i as i32, p, leader, p.isr.clone(), p.elr.clone());
        }
    }
    out
}

/// The new leader: the first live ISR member; else the first live ELR member
/// (which becomes the ISR); else an unclean choice (a live replica, which
/// becomes the ISR); else None.
fn elect(t: &TopicMeta, p: &PartitionMeta, isr: &[i32], elr: &[i32], live: &impl Fn(i32) -> bool, d: &Defaults) -> Option<(i32, Option<Vec<i32>>)> {
    if let Some(&l) = isr.iter().find(|&&r| live(r)) {
        return Some((l, None));
    }
    if let Some(&l) = elr.iter().find(|&&r| live(r)) {
        tracing::info!(topic = %t.name, leader = l, "electing an eligible leader replica (KIP-966): no in-sync replica is alive");
        return Some((l, Some(vec![l])));
    }
    if unclean_allowed(t, d) {
        if let Some(&l) = p.replicas.iter().find(|&&r| live(r)) {
            tracing::warn!(topic = %t.name, leader = l, "unclean leader election: an out-of-sync replica leads; records only the old ISR held are lost");
            return Some((l, Some(vec![l])));
        }
    }
    None
}

fn push_change(
    out: &mut Vec<MetadataRecord>,
    topic_id: Uuid,
    partition: i32,
    p: &PartitionMeta,
    leader: Option<(i32, Option<Vec<i32>>)>,
    isr: Vec<i32>,
    elr: Vec<i32>,
) {
    let (leader, isr, elr) = match leader {
        // Elected from the ELR or uncleanly: it alone is in sync now.
        Some((l, Some(new_isr))) => (l, new_isr, elr.into_iter().filter(|&r| r != l).collect()),
        Some((l, None)) => (l, isr, elr),
        None => (-1, isr, elr),
    };
    let leader_changed = leader != p.leader;
    let isr_changed = isr != p.isr;
    let elr_changed = elr != p.elr;
    if leader_changed || isr_changed || elr_changed {
        out.push(MetadataRecord::PartitionChange {
            topic_id,
            partition,
            leader: leader_changed.then_some(leader),
            isr: isr_changed.then_some(isr),
            elr: elr_changed.then_some(elr),
            replicas: None,
            adding: None,
            removing: None,
        });
    }
}

/// Kafka's ElectLeaders election types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ElectionType {
    /// Move leadership to the first replica (the preferred leader) when it is
    /// live and in sync.
    Preferred,
    /// Elect a leader for a partition that has none, out-of-sync replicas
    /// included (records only the old ISR held are lost).
    Unclean,
}

/// One partition's ElectLeaders outcome: topic, partition, and the error when
/// nothing was elected.
pub type ElectionResult = (String, i32, Result<()>);

/// ElectLeaders: the changes, and one result per partition asked for (every
/// partition when `partitions` is None; then, as in Kafka, partitions that
/// needed no election are left out of the results).
pub fn elect_leaders(
    image: &MetadataImage,
    kind: ElectionType,
    partitions: Option<&[(String, i32)]>,
    d: &Defaults,
) -> (Vec<MetadataRecord>, Vec<ElectionResult>) {
    let all: Vec<(String, i32)>;
    let asked = match partitions {
        Some(p) => p,
        None => {
            all = image.topics.values().flat_map(|t| (0..t.partitions.len() as i32).map(|i| (t.name.clone(), i))).collect();
            &all
        }
    };
    let mut out = Vec::new();
    let mut results = Vec::new();
    for (topic, partition) in asked {
        let res = match (image.topics.get(topic), usize::try_from(*partition).ok()) {
            (Some(t), Some(i)) if i < t.partitions.len() => elect_one(image, t, i, kind, d).map(|rec| out.extend(rec)),
            _ => Err(Error::UnknownTopicOrPartition),
        };
        if partitions.is_none() && matches!(res, Err(Error::ElectionNotNeeded(_))) {
            continue;
        }
        results.push((topic.clone(), *partition, res));
    }
    (out, results)
}

fn elect_one(image: &MetadataImage, t: &TopicMeta, i: usize, kind: ElectionType, d: &Defaults) -> Result<Option<MetadataRecord>> {
    let p = &t.partitions[i];
    let mut out = Vec::new();
    match kind {
        ElectionType::Preferred => {
            let Some(&preferred) = p.replicas.first() else { return Err(Error::PreferredLeaderNotAvailable("the partition has no replicas".into())) };
            if p.leader == preferred {
                return Err(Error::ElectionNotNeeded(format!("broker {preferred} already leads")));
            }
            if !image.eligible_broker(preferred) || !p.isr.contains(&preferred) {
                return Err(Error::PreferredLeaderNotAvailable(format!("broker {preferred} is not a live in-sync replica (ISR {:?})", p.isr)));
            }
            push_change(&mut out, t.topic_id, i as i32, p, Some((preferred, None)), p.isr.clone(), p.elr.clone());
        }
        ElectionType::Unclean => {
            if p.leader != -1 {
                return Err(Error::ElectionNotNeeded(format!("broker {} leads", p.leader)));
            }
            let live = |id: i32| image.eligible_broker(id);
            let unclean = Defaults { unclean: true, ..*d };
            let Some(leader) = elect(t, p, &p.isr, &p.elr, &live, &unclean) else {
                return Err(Error::EligibleLeadersNotAvailable(format!("no live replica among {:?}", p.replicas)));
            };
            push_change(&mut out, t.topic_id, i as i32, p, Some(leader), p.isr.clone(), p.elr.clone());
        }
    }
    Ok(out.pop())
}

/// Automatic leader rebalancing (`auto.leader.rebalance.enable`): for every
/// broker whose share of preferred-leader partitions led by someone else is
/// over `percentage` (`leader.imbalance.per.broker.percentage`), the preferred
/// elections that can happen now (its replica live and in sync).
pub fn rebalance_leaders(image: &MetadataImage, percentage: u32, d: &Defaults) -> Vec<MetadataRecord> {
    let mut preferred: std::collections::BTreeMap<i32, (usize, Vec<(String, i32)>)> = Default::default();
    for t in image.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            let Some(&first) = p.replicas.first() else { continue };
            let e = preferred.entry(first).or_default();
            e.0 += 1;
            if p.leader != first {
                e.1.push((t.name.clone(), i as i32));
            }
        }
    }
    let mut asked = Vec::new();
    for (broker, (total, misplaced)) in preferred {
        // Kafka's ratio: partitions not led by their preferred leader / partitions it is preferred for.
        if total > 0 && misplaced.len() * 100 > total * percentage as usize && image.eligible_broker(broker) {
            asked.extend(misplaced);
        }
    }
    if asked.is_empty() {
        return Vec::new();
    }
    elect_leaders(image, ElectionType::Preferred, Some(&asked), d).0
}

/// An ISR change the leader asked for (AlterPartition), checked against the
/// image: the record to commit, or why not (Kafka's AlterPartition errors).
#[allow(clippy::too_many_arguments)]
pub fn alter_isr(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
    leader: i32,
    leader_epoch: i32,
    current: &[i32],
    new_isr: Vec<i32>,
    d: &Defaults,
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
    if let Some(r) = new_isr.iter().find(|r| !p.isr.contains(r) && !image.eligible_broker(**r)) {
        return Err(Error::IneligibleReplica(format!("broker {r} is fenced, shutting down or not registered")));
    }
    if new_isr == p.isr {
        return Ok(Vec::new());
    }
    let elr = next_elr(t, p, &new_isr, d);
    Ok(vec![MetadataRecord::PartitionChange {
        topic_id,
        partition,
        leader: None,
        elr: (elr != p.elr).then_some(elr),
        isr: Some(new_isr),
        replicas: None,
        adding: None,
        removing: None,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::BrokerMeta;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    /// Clean elections, min ISR 1 (no ELR).
    const D: Defaults = Defaults { unclean: false, min_insync_replicas: 1 };
    const UNCLEAN: Defaults = Defaults { unclean: true, min_insync_replicas: 1 };
    const MIN2: Defaults = Defaults { unclean: false, min_insync_replicas: 2 };

    fn image(isr: Vec<i32>, leader: i32, fenced: &[i32]) -> (MetadataImage, Uuid) {
        let mut img = MetadataImage::empty("c".into());
        let id = Uuid::new_v4();
        for b in 1..=3 {
            img.brokers.insert(
                b,
                BrokerMeta {
                    epoch: b as i64,
                    incarnation_id: Uuid::nil(),
                    host: "h".into(),
                    port: 1,
                    rack: None,
                    shards: 1,
                    fenced: fenced.contains(&b),
                    in_controlled_shutdown: false,
                },
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
        let p = after(&img, &without_broker(&img, 1, &D));
        assert_eq!((p.leader, p.leader_epoch, p.isr), (2, 1, vec![2, 3]));
    }

    #[test]
    fn a_fenced_follower_leaves_the_isr_without_an_epoch_bump() {
        let (img, _) = image(vec![1, 2, 3], 1, &[3]);
        let p = after(&img, &without_broker(&img, 3, &D));
        assert_eq!((p.leader, p.leader_epoch, p.isr), (1, 0, vec![1, 2]));
    }

    #[test]
    fn the_last_in_sync_replica_stays_in_the_isr_and_the_partition_waits_for_it() {
        let (img, _) = image(vec![1], 1, &[1]);
        let p = after(&img, &without_broker(&img, 1, &D));
        assert_eq!((p.leader, p.isr.clone()), (-1, vec![1]));
        // Its return (unfenced) brings it back as leader; another replica never leads.
        let mut img2 = img.clone();
        for r in without_broker(&img, 1, &D) {
            img2.apply(&r).unwrap();
        }
        assert!(elect_leaderless(&img2, None, &D).is_empty());
        let p = after(&img2, &elect_leaderless(&img2, Some(1), &D));
        assert_eq!((p.leader, p.leader_epoch), (1, 2));
    }

    #[test]
    fn unclean_election_picks_a_live_out_of_sync_replica_only_when_allowed() {
        let (mut img, id) = image(vec![1], -1, &[1]);
        assert!(elect_leaderless(&img, None, &D).is_empty());
        let p = after(&img, &elect_leaderless(&img, None, &UNCLEAN));
        assert_eq!((p.leader, p.isr), (2, vec![2]));
        // A topic override wins over the broker's value.
        let name = img.topic_name(&id).unwrap().to_string();
        let t = img.topics.get_mut(&name).unwrap();
        Arc::make_mut(t).configs = BTreeMap::from([("unclean.leader.election.enable".to_string(), "false".to_string())]);
        assert!(elect_leaderless(&img, None, &UNCLEAN).is_empty());
    }

    #[test]
    fn alter_isr_checks_leader_epoch_view_and_liveness() {
        let (img, id) = image(vec![1, 2], 1, &[3]);
        assert!(matches!(alter_isr(&img, id, 0, 1, 1, &[1, 2], vec![1], &D), Err(Error::FencedLeaderEpoch(_))));
        assert!(matches!(alter_isr(&img, id, 0, 2, 0, &[1, 2], vec![2], &D), Err(Error::FencedLeaderEpoch(_))));
        assert!(matches!(alter_isr(&img, id, 0, 1, 0, &[1], vec![1, 2], &D), Err(Error::InvalidUpdateVersion(_))));
        assert!(matches!(alter_isr(&img, id, 0, 1, 0, &[1, 2], vec![2], &D), Err(Error::InvalidRequest(_))));
        assert!(matches!(alter_isr(&img, id, 0, 1, 0, &[1, 2], vec![1, 2, 3], &D), Err(Error::IneligibleReplica(_))));
        let p = after(&img, &alter_isr(&img, id, 0, 1, 0, &[1, 2], vec![1], &D).unwrap());
        assert_eq!((p.leader, p.leader_epoch, p.isr), (1, 0, vec![1]));
    }

    fn apply(img: &mut MetadataImage, recs: Vec<MetadataRecord>) -> PartitionMeta {
        for r in &recs {
            img.apply(r).unwrap();
        }
        img.topics["t"].partitions[0].clone()
    }

    fn fence(img: &mut MetadataImage, b: i32) -> PartitionMeta {
        let recs = without_broker(img, b, &MIN2);
        img.brokers.get_mut(&b).unwrap().fenced = true;
        apply(img, recs)
    }

    #[test]
    fn last_replica_standing_the_eligible_replica_leads_not_the_one_that_lost_its_tail() {
        let (mut img, _) = image(vec![1, 2, 3], 1, &[]);
        let p = fence(&mut img, 3);
        assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1, 2], vec![]), "ISR at min.insync.replicas: no ELR");
        let p = fence(&mut img, 2);
        assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1], vec![2]), "left below the minimum: eligible");
        let p = fence(&mut img, 1);
        assert_eq!((p.leader, p.isr.clone(), p.elr.clone()), (-1, vec![1], vec![2]));
        // Broker 1 restarts uncleanly: it may have lost acknowledged records that 2 holds.
        let recs = after_unclean_restart(&img, 1);
        let p = apply(&mut img, recs);
        assert_eq!((p.leader, p.isr.clone(), p.elr.clone()), (-1, vec![], vec![2]));
        img.brokers.get_mut(&1).unwrap().fenced = false;
        assert!(elect_leaderless(&img, None, &MIN2).is_empty(), "1 is neither in sync nor eligible");
        let recs = elect_leaderless(&img, Some(2), &MIN2);
        let p = apply(&mut img, recs);
        assert_eq!((p.leader, p.isr.clone(), p.elr.clone()), (2, vec![2], vec![]), "the eligible replica leads");
    }

    #[test]
    fn a_clean_restart_of_the_last_in_sync_replica_leads_again_and_the_elr_empties_at_the_minimum() {
        let (mut img, id) = image(vec![1, 2, 3], 1, &[]);
        fence(&mut img, 3);
        fence(&mut img, 2);
        fence(&mut img, 1);
        img.brokers.get_mut(&1).unwrap().fenced = false;
        let recs = elect_leaderless(&img, Some(1), &MIN2);
        let p = apply(&mut img, recs);
        assert_eq!((p.leader, p.isr.clone(), p.elr.clone()), (1, vec![1], vec![2]));
        img.brokers.get_mut(&2).unwrap().fenced = false;
        let recs = alter_isr(&img, id, 0, 1, p.leader_epoch, &[1], vec![1, 2], &MIN2).unwrap();
        let p = apply(&mut img, recs);
        assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1, 2], vec![]), "back at min.insync.replicas");
        let recs = alter_isr(&img, id, 0, 1, p.leader_epoch, &[1, 2], vec![1], &MIN2).unwrap();
        let p = apply(&mut img, recs);
        assert_eq!((p.isr, p.elr), (vec![1], vec![2]), "a shrink below the minimum keeps the removed replica eligible");
    }

    #[test]
    fn preferred_election_moves_leadership_to_the_first_live_in_sync_replica() {
        let (img, _) = image(vec![1, 2, 3], 2, &[]);
        let asked = [("t".to_string(), 0), ("t".to_string(), 7)];
        let (recs, res) = elect_leaders(&img, ElectionType::Preferred, Some(&asked), &D);
        assert!(res[0].2.is_ok() && matches!(res[1].2, Err(Error::UnknownTopicOrPartition)));
        let mut img2 = img.clone();
        let p = apply(&mut img2, recs);
        assert_eq!((p.leader, p.leader_epoch), (1, 1));
        // Already there: not needed (and left out of an all-partitions answer).
        let (recs, res) = elect_leaders(&img2, ElectionType::Preferred, Some(&asked[..1]), &D);
        assert!(recs.is_empty() && matches!(res[0].2, Err(Error::ElectionNotNeeded(_))));
        assert!(elect_leaders(&img2, ElectionType::Preferred, None, &D).1.is_empty());
        // A fenced or out-of-sync preferred replica is not available.
        let (img3, _) = image(vec![2, 3], 2, &[1]);
        assert!(matches!(elect_leaders(&img3, ElectionType::Preferred, Some(&asked[..1]), &D).1[0].2, Err(Error::PreferredLeaderNotAvailable(_))));
    }

    #[test]
    fn unclean_election_only_for_leaderless_partitions_and_rebalance_by_imbalance() {
        let asked = [("t".to_string(), 0)];
        let (img, _) = image(vec![1], 1, &[]);
        assert!(matches!(elect_leaders(&img, ElectionType::Unclean, Some(&asked), &D).1[0].2, Err(Error::ElectionNotNeeded(_))));
        let (img, _) = image(vec![1], -1, &[1]);
        let (recs, res) = elect_leaders(&img, ElectionType::Unclean, Some(&asked), &D);
        assert!(res[0].2.is_ok());
        let mut img2 = img.clone();
        assert_eq!(apply(&mut img2, recs).leader, 2, "a live out-of-sync replica leads");
        // Broker 1 prefers one partition and leads none of it: 100% > 10%.
        let (img, _) = image(vec![1, 2, 3], 2, &[]);
        let mut img2 = img.clone();
        assert_eq!(apply(&mut img2, rebalance_leaders(&img, 10, &D)).leader, 1);
        let (img, _) = image(vec![1, 2, 3], 1, &[]);
        assert!(rebalance_leaders(&img, 10, &D).is_empty());
    }
}
