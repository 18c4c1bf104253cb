//! The controller operations that move leaders and replicas: AlterPartition
//! (an ISR change, which may complete a reassignment), ElectLeaders, and
//! AlterPartitionReassignments. The rules are pure functions in
//! `metadata::partition_change` and `metadata::reassignment`; this module
//! runs them against the current image and commits what they return.

use std::cell::RefCell;
use std::rc::Rc;

use super::Shard;
use crate::error::{Error, Result};
use crate::metadata::partition_change::{self, Defaults, ElectionType};
use crate::metadata::{reassignment, MetadataImage, MetadataRecord};

/// One partition's ElectLeaders outcome (topic, partition, result).
type Elected = Vec<(String, i32, Result<()>)>;

impl Shard {
    /// AlterPartition: the leader's ISR change; when it brings every target
    /// replica of a reassignment into sync, the reassignment completes in the
    /// same commit.
    pub(super) async fn alter_partition(
        self: &Rc<Self>,
        topic_id: uuid::Uuid,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        current_isr: Vec<i32>,
        new_isr: Vec<i32>,
    ) -> Result<()> {
        let d = Defaults::of(&self.cfg);
        self.propose_change(|img| {
            let mut recs = partition_change::alter_isr(img, topic_id, partition, leader, leader_epoch, &current_isr, new_isr, &d)?;
            if !recs.is_empty() {
                let next = applied(img, &recs)?;
                recs.extend(reassignment::complete_if_ready(&next, topic_id, partition));
            }
            Ok(recs)
        })
        .await
        .map(drop)
    }

    /// ElectLeaders (key 43), on the active controller.
    pub(super) async fn elect_leaders(self: &Rc<Self>, kind: ElectionType, partitions: Option<Vec<(String, i32)>>) -> Result<Elected> {
        let d = Defaults::of(&self.cfg);
        let results = RefCell::new(Vec::new());
        self.propose_change(|img| {
            let (recs, res) = partition_change::elect_leaders(img, kind, partitions.as_deref(), &d);
            *results.borrow_mut() = res;
            Ok(recs)
        })
        .await?;
        let results = results.into_inner();
        for (t, p, r) in &results {
            if r.is_ok() {
                tracing::info!(topic = %t, partition = p, ?kind, "leader elected (ElectLeaders)");
            }
        }
        Ok(results)
    }

    /// AlterPartitionReassignments (key 45), on the active controller: every
    /// partition's change is validated against the image as changed by the
    /// ones before it, and all are committed together.
    pub(super) async fn alter_reassignments(self: &Rc<Self>, partitions: Vec<(String, i32, Option<Vec<i32>>)>) -> Vec<Result<()>> {
        let results = RefCell::new(Vec::new());
        let cluster = self.cfg.is_cluster();
        let me = self.cfg.broker_id;
        let committed = self
            .propose_change(|img| {
                let known = |b: i32| if cluster { img.brokers.contains_key(&b) } else { b == me };
                let mut next = img.clone();
                let mut recs = Vec::new();
                let mut res = Vec::new();
                for (topic, partition, target) in &partitions {
                    let r = reassignment::alter(&next, topic, *partition, target.as_deref(), &known).and_then(|more| {
                        next = applied(&next, &more)?;
                        recs.extend(more);
                        Ok(())
                    });
                    match &r {
                        Ok(()) if target.is_some() => tracing::info!(topic = %topic, partition, ?target, "reassignment started"),
                        Ok(()) => tracing::info!(topic = %topic, partition, "reassignment cancelled"),
                        Err(_) => {}
                    }
                    res.push(r);
                }
                *results.borrow_mut() = res;
                Ok(recs)
            })
            .await;
        match committed {
            Ok(_) => results.into_inner(),
            Err(e) => partitions.iter().map(|_| Err(Error::from_remote(e.code(), e.to_string()))).collect(),
        }
    }
}

/// `img` with `recs` applied (to validate what follows against it).
fn applied(img: &MetadataImage, recs: &[MetadataRecord]) -> Result<MetadataImage> {
    let mut next = img.clone();
    super::controller::apply_all(&mut next, recs)?;
    Ok(next)
}
