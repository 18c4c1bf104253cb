//! The active controller's side of the broker lifecycle (Kafka's
//! `BrokerHeartbeatManager` and `ClusterControlManager`, reduced to what this
//! cluster needs): registration, heartbeats, fencing and unfencing, and the
//! leader changes they imply. It runs only on the quorum leader; the session
//! times it keeps are soft state, restarted by a new leader as if every live
//! broker had just sent a heartbeat (Kafka does the same).
//!
//! - A broker registers fenced, with a new epoch; its partitions lose their
//!   leader while it is fenced (clients see LEADER_NOT_AVAILABLE).
//! - It is unfenced by the first heartbeat showing it has applied the metadata
//!   log up to its registration: only then does its image hold what it must
//!   serve. Its partitions get their leader back (a new leader epoch).
//! - No heartbeat for `broker.session.timeout.ms`: fenced again, and every
//!   partition it led is given to another in-sync replica on a live broker, or
//!   left without a leader.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::node::ClusterNode;
use super::rpc::{ControllerRequest, ControllerResponse};
use crate::error::Error;
use crate::metadata::{partition_change, MetadataImage, MetadataRecord};
use crate::shard::request::WireError;

/// How often the active controller looks for expired sessions.
const SESSION_CHECK: Duration = Duration::from_millis(100);

/// Soft state of the active controller.
#[derive(Default)]
pub struct BrokerSessions {
    /// Last heartbeat (or registration) per broker.
    last_seen: RefCell<HashMap<i32, Instant>>,
    /// The metadata offset holding each broker's registration.
    registered_at: RefCell<HashMap<i32, u64>>,
    /// The metadata offset holding each broker's controlled-shutdown change.
    shutdown_at: RefCell<HashMap<i32, u64>>,
    /// The offset applied when this node became the active controller: a broker
    /// registered before that is caught up once it has applied this much.
    active_since: Cell<Option<u64>>,
}

impl ClusterNode {
    /// Answers a call on the controller listener.
    pub(super) async fn handle_call(self: Rc<Self>, req: ControllerRequest) -> ControllerResponse {
        if !crate::shard::links::MetadataQuorum::is_active(&*self) {
            return ControllerResponse::NotController { leader: self.leader() };
        }
        self.become_active();
        let res = match req {
            ControllerRequest::BrokerRegistration { broker_id, incarnation_id, host, port, rack, shards, clean_shutdown } => {
                self.register(broker_id, incarnation_id, (host, port), rack, shards, clean_shutdown).await
            }
            ControllerRequest::BrokerHeartbeat { broker_id, epoch, metadata_offset, want_shutdown } => {
                if want_shutdown {
                    self.begin_controlled_shutdown(broker_id, epoch, metadata_offset).await
                } else {
                    self.heartbeat(broker_id, epoch, metadata_offset).await
                }
            }
            ControllerRequest::UnregisterBroker { broker_id } => self.unregister(broker_id).await,
            ControllerRequest::DescribeQuorum => self.local_description().map(ControllerResponse::Quorum).ok_or(Error::NotController),
            ControllerRequest::FetchMetadata { from } => Ok(self.answer_fetch(from).await),
            ControllerRequest::Forward(op) => {
                let reply = self.shard.run_forwarded(op).await;
                Ok(ControllerResponse::Forwarded { reply, metadata_offset: self.applied() })
            }
        };
        match res {
            Ok(r) => r,
            Err(Error::NotController) => ControllerResponse::NotController { leader: self.leader() },
            Err(e) => ControllerResponse::Error(WireError::from(e)),
        }
    }

    /// First call after winning leadership: every registered broker's session starts now.
    fn become_active(&self) {
        if self.sessions.active_since.get().is_some() {
            return;
        }
        self.sessions.active_since.set(Some(self.applied()));
        let now = Instant::now();
        let mut seen = self.sessions.last_seen.borrow_mut();
        seen.clear();
        for &id in self.shard.image().brokers.keys() {
            seen.insert(id, now);
        }
        self.sessions.registered_at.borrow_mut().clear();
        self.sessions.shutdown_at.borrow_mut().clear();
    }

    async fn register(
        &self,
        broker_id: i32,
        incarnation_id: uuid::Uuid,
        (host, port): (String, u16),
        rack: Option<String>,
        shards: u32,
        clean_shutdown: bool,
    ) -> Result<ControllerResponse, Error> {
        if let Some(b) = self.shard.image().brokers.get(&broker_id) {
            if b.incarnation_id == incarnation_id {
                // A retried registration: same answer.
                self.sessions.last_seen.borrow_mut().insert(broker_id, Instant::now());
                return Ok(ControllerResponse::Registered { epoch: b.epoch });
            }
        }
        let epoch = Cell::new(0);
        let unclean = partition_change::Defaults::of(&self.shard.cfg);
        let offset = self
            .shard
            .propose_change(|img| {
                epoch.set(img.next_broker_epoch);
                let mut next = img.clone();
                let mut recs =
                    vec![MetadataRecord::RegisterBroker { broker_id, epoch: img.next_broker_epoch, incarnation_id, host, port, rack, shards, fenced: true }];
                if !clean_shutdown {
                    // It may have lost its unflushed tail: not an eligible leader any more (KIP-966).
                    recs.extend(partition_change::after_unclean_restart(img, broker_id));
                }
                crate::shard::controller::apply_all(&mut next, &recs)?;
                // A restarted broker leads nothing until it has caught up.
                recs.extend(reelect_without(&next, broker_id, &unclean));
                Ok(recs)
            })
            .await?;
        self.sessions.registered_at.borrow_mut().insert(broker_id, offset);
        self.sessions.last_seen.borrow_mut().insert(broker_id, Instant::now());
        tracing::info!(broker = broker_id, epoch = epoch.get(), "broker registered (fenced until it catches up)");
        Ok(ControllerResponse::Registered { epoch: epoch.get() })
    }

    /// The registration a heartbeat names (STALE_BROKER_EPOCH when it is not
    /// the current one); its session starts over.
    fn heard_from(&self, broker_id: i32, epoch: i64) -> Result<crate::metadata::image::BrokerMeta, Error> {
        let b = match self.shard.image().brokers.get(&broker_id) {
            Some(b) if b.epoch == epoch => b.clone(),
            Some(b) => return Err(Error::StaleBrokerEpoch(format!("broker {broker_id} heartbeat with epoch {epoch}, registered as {}", b.epoch))),
            None => return Err(Error::StaleBrokerEpoch(format!("broker {broker_id} is not registered"))),
        };
        self.sessions.last_seen.borrow_mut().insert(broker_id, Instant::now());
        Ok(b)
    }

    async fn heartbeat(&self, broker_id: i32, epoch: i64, metadata_offset: u64) -> Result<ControllerResponse, Error> {
        let b = self.heard_from(broker_id, epoch)?;
        if !b.fenced || b.in_controlled_shutdown {
            return Ok(ControllerResponse::Heartbeat { fenced: b.fenced, should_shutdown: false });
        }
        let needed = self.sessions.registered_at.borrow().get(&broker_id).copied().or(self.sessions.active_since.get()).unwrap_or(0);
        if metadata_offset < needed {
            return Ok(ControllerResponse::Heartbeat { fenced: true, should_shutdown: false });
        }
        let unclean = partition_change::Defaults::of(&self.shard.cfg);
        self.shard
            .propose_change(|img| {
                match img.brokers.get(&broker_id) {
                    Some(b) if b.epoch == epoch && b.fenced => {}
                    _ => return Ok(Vec::new()),
                }
                let mut recs = vec![MetadataRecord::UnfenceBroker { broker_id, epoch }];
                recs.extend(partition_change::elect_leaderless(img, Some(broker_id), &unclean));
                Ok(recs)
            })
            .await?;
        tracing::info!(broker = broker_id, epoch, "broker unfenced");
        Ok(ControllerResponse::Heartbeat { fenced: false, should_shutdown: false })
    }

    /// A heartbeat asking to stop (Kafka's controlled shutdown): the first one
    /// commits the broker's ControlledShutdown with its leaderships handed to
    /// other in-sync replicas and its ISR memberships dropped (the last member
    /// of an ISR stays: a partition with no other in-sync replica goes without
    /// a leader, as in Kafka). It may stop once it has applied that change: it
    /// then knows it leads nothing, and so do the new leaders.
    async fn begin_controlled_shutdown(&self, broker_id: i32, epoch: i64, metadata_offset: u64) -> Result<ControllerResponse, Error> {
        let b = self.heard_from(broker_id, epoch)?;
        if b.fenced {
            // A fenced broker leads nothing already.
            return Ok(ControllerResponse::Heartbeat { fenced: true, should_shutdown: true });
        }
        if !b.in_controlled_shutdown {
            let unclean = partition_change::Defaults::of(&self.shard.cfg);
            let offset = self
                .shard
                .propose_change(|img| {
                    match img.brokers.get(&broker_id) {
                        Some(b) if b.epoch == epoch && !b.fenced && !b.in_controlled_shutdown => {}
                        _ => return Ok(Vec::new()),
                    }
                    let mut recs = vec![MetadataRecord::ControlledShutdown { broker_id, epoch }];
                    recs.extend(reelect_without(img, broker_id, &unclean));
                    Ok(recs)
                })
                .await?;
            self.sessions.shutdown_at.borrow_mut().insert(broker_id, offset);
            tracing::info!(broker = broker_id, epoch, "broker in controlled shutdown: its leaderships moved to other in-sync replicas");
        }
        let needed = self.sessions.shutdown_at.borrow().get(&broker_id).copied().or(self.sessions.active_since.get()).unwrap_or(0);
        let image = self.shard.image();
        let leads_nothing = image.topics.values().all(|t| t.partitions.iter().all(|p| p.leader != broker_id));
        Ok(ControllerResponse::Heartbeat { fenced: false, should_shutdown: leads_nothing && metadata_offset >= needed })
    }

    async fn unregister(&self, broker_id: i32) -> Result<ControllerResponse, Error> {
        let unclean = partition_change::Defaults::of(&self.shard.cfg);
        self.shard
            .propose_change(|img| {
                if !img.brokers.contains_key(&broker_id) {
                    return Err(Error::BrokerIdNotRegistered(format!("broker {broker_id} is not registered")));
                }
                let mut recs = reelect_without(img, broker_id, &unclean);
                recs.push(MetadataRecord::UnregisterBroker { broker_id });
                Ok(recs)
            })
            .await?;
        self.sessions.last_seen.borrow_mut().remove(&broker_id);
        tracing::info!(broker = broker_id, "broker unregistered");
        Ok(ControllerResponse::Unregistered { metadata_offset: self.applied() })
    }

    /// Fences brokers whose session expired, while this node is the active controller.
    pub(super) async fn session_loop(self: Rc<Self>) {
        let timeout = Duration::from_millis(self.shard.cfg.broker_session_timeout_ms);
        let rebalance_every = Duration::from_secs(self.shard.cfg.leader_imbalance_check_interval_seconds.max(1));
        let mut last_rebalance = Instant::now();
        while !self.is_stopping() {
            glommio::timer::sleep(SESSION_CHECK).await;
            if !crate::shard::links::MetadataQuorum::is_active(&*self) {
                self.sessions.active_since.set(None);
                continue;
            }
            self.become_active();
            let now = Instant::now();
            let image = self.shard.image();
            let expired: Vec<(i32, i64)> = image
                .brokers
                .iter()
                .filter(|(_, b)| !b.fenced)
                .filter(|(id, _)| self.sessions.last_seen.borrow().get(id).is_none_or(|t| now.duration_since(*t) > timeout))
                .map(|(&id, b)| (id, b.epoch))
                .collect();
            let unclean = partition_change::Defaults::of(&self.shard.cfg);
            for (broker_id, epoch) in expired {
                let res = self
                    .shard
                    .propose_change(|img| {
                        match img.brokers.get(&broker_id) {
                            Some(b) if b.epoch == epoch && !b.fenced => {}
                            _ => return Ok(Vec::new()),
                        }
                        let mut recs = vec![MetadataRecord::FenceBroker { broker_id, epoch }];
                        recs.extend(reelect_without(img, broker_id, &unclean));
                        Ok(recs)
                    })
                    .await;
                match res {
                    Ok(_) => tracing::warn!(broker = broker_id, epoch, ?timeout, "broker fenced: no heartbeat within broker.session.timeout.ms"),
                    Err(e) => crate::warn_limited!(broker = broker_id, "fencing a broker failed: {e}"),
                }
            }
            if self.shard.cfg.auto_leader_rebalance_enable && last_rebalance.elapsed() >= rebalance_every {
                last_rebalance = Instant::now();
                self.rebalance_leaders().await;
            }
            // Leaderless partitions that can have a leader now: an in-sync replica's
            // broker is live, or `unclean.leader.election.enable` was just turned on.
            if image.topics.values().any(|t| t.partitions.iter().any(|p| p.leader == -1)) {
                if let Err(e) = self.shard.propose_change(|img| Ok(partition_change::elect_leaderless(img, None, &unclean))).await {
                    crate::warn_limited!("electing leaders for leaderless partitions failed: {e}");
                }
            }
        }
    }
}

impl ClusterNode {
    /// `auto.leader.rebalance.enable`: preferred elections for the brokers whose
    /// leader imbalance is over `leader.imbalance.per.broker.percentage`.
    async fn rebalance_leaders(&self) {
        let pct = self.shard.cfg.leader_imbalance_per_broker_percentage;
        let d = partition_change::Defaults::of(&self.shard.cfg);
        let moved = std::cell::Cell::new(0);
        let res = self
            .shard
            .propose_change(|img| {
                let recs = partition_change::rebalance_leaders(img, pct, &d);
                moved.set(recs.len());
                Ok(recs)
            })
            .await;
        match res {
            Ok(_) if moved.get() > 0 => tracing::info!(partitions = moved.get(), "leaders moved back to preferred replicas (auto.leader.rebalance.enable)"),
            Ok(_) => {}
            Err(e) => crate::warn_limited!("rebalancing leaders failed: {e}"),
        }
    }
}

/// The changes for `broker` leaving service (fenced, re-registered, unregistered):
/// out of the ISRs, its leaderships handed to in-sync replicas on live brokers.
pub fn reelect_without(image: &MetadataImage, broker: i32, defaults: &partition_change::Defaults) -> Vec<MetadataRecord> {
    partition_change::without_broker(image, broker, defaults)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: partition_change::Defaults = partition_change::Defaults { unclean: false, min_insync_replicas: 1 };

    fn broker(img: &mut MetadataImage, id: i32, fenced: bool) {
        let epoch = img.next_broker_epoch;
        let rec = MetadataRecord::RegisterBroker {
            broker_id: id,
            epoch,
            incarnation_id: uuid::Uuid::new_v4(),
            host: "h".into(),
            port: 1,
            rack: None,
            shards: 1,
            fenced,
        };
        img.apply(&rec).unwrap();
    }

    #[test]
    fn fencing_moves_or_drops_leadership_and_unfencing_restores_it() {
        let t = uuid::Uuid::new_v4();
        let mut img = MetadataImage::empty("c".into());
        img.apply(&MetadataRecord::Topic { name: "a".into(), topic_id: t }).unwrap();
        img.apply(&MetadataRecord::Partition { topic_id: t, partition: 0, replicas: vec![1], isr: vec![1], leader: 1, leader_epoch: 0 }).unwrap();
        img.apply(&MetadataRecord::Partition { topic_id: t, partition: 1, replicas: vec![2, 1], isr: vec![2, 1], leader: 2, leader_epoch: 0 }).unwrap();
        broker(&mut img, 1, false);
        broker(&mut img, 2, false);
        // Broker 2 goes: partition 1 moves to 1; partition 0 is untouched.
        let recs = reelect_without(&img, 2, &D);
        assert_eq!(
            recs,
            vec![MetadataRecord::PartitionChange {
                topic_id: t,
                partition: 1,
                leader: Some(1),
                isr: Some(vec![1]),
                elr: None,
                replicas: None,
                adding: None,
                removing: None
            }]
        );
        // Broker 1 goes too (after 2 was fenced): both partitions lose their leader.
        img.apply(&MetadataRecord::FenceBroker { broker_id: 2, epoch: 2 }).unwrap();
        for r in &recs {
            img.apply(r).unwrap();
        }
        let recs = reelect_without(&img, 1, &D);
        img.apply(&MetadataRecord::FenceBroker { broker_id: 1, epoch: 1 }).unwrap();
        assert_eq!(recs.len(), 2);
        for r in &recs {
            img.apply(r).unwrap();
        }
        assert_eq!(img.partition("a", 0).unwrap().leader, -1);
        assert_eq!(img.partition("a", 0).unwrap().leader_epoch, 1);
        assert_eq!(img.partition("a", 1).unwrap().isr, vec![1], "the last in-sync replica stays in the ISR");
        // Broker 2 comes back: it left the ISR, so it may lack records: no leader yet.
        assert!(partition_change::elect_leaderless(&img, Some(2), &D).is_empty());
        // Broker 1 comes back: it leads both again.
        let recs = partition_change::elect_leaderless(&img, Some(1), &D);
        for r in &recs {
            img.apply(r).unwrap();
        }
        assert_eq!(img.partition("a", 0).unwrap().leader, 1);
        assert_eq!(img.partition("a", 1).unwrap().leader, 1);
    }
}
