//! The metadata controller: shard 0's second job. It is the only writer of
//! cluster metadata. Every operation validates against the current image,
//! turns the change into metadata records, appends them to the metadata log
//! (durable before anything else happens), applies them to a copy of the image,
//! fits this broker's shard placement to it, and publishes both to every shard
//! before answering — so a client that produces right after CreateTopics finds
//! its topic on whichever shard it lands.
//!
//! Operations run one at a time (the controller lock): each one's records are
//! validated against the image the previous one committed.
//!
//! In a cluster the metadata log is the Raft quorum's (`cluster/`, reached
//! through [`MetadataQuorum`]): only the active controller validates and
//! proposes; a change is answered once the quorum committed it and this node
//! applied it. Any other node forwards the whole operation to the active
//! controller and answers with its reply once it has applied the change too,
//! so a client that creates a topic through one broker finds it there next.

use std::rc::Rc;
use std::sync::Arc;

use super::request::{AlterOp, ConfigChange, ControllerOp, ControllerReply, NewTopic, ShardResponse};
use super::{Shard, CONTROLLER_SHARD};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::metadata::{MetadataImage, MetadataRecord, ShardPlacement};
use crate::protocol::topic::{is_internal_topic, unify_collision_chars, validate_topic_name};

/// Held while a controller operation runs; the next one waits.
pub(super) struct ControllerTurn<'a>(&'a Shard);

impl Drop for ControllerTurn<'_> {
    fn drop(&mut self) {
        self.0.controller_busy.set(false);
        self.0.controller_idle.notify_all();
    }
}

impl Shard {
    pub(super) async fn controller_turn(&self) -> Result<ControllerTurn<'_>> {
        if self.id != CONTROLLER_SHARD {
            return Err(Error::NotController);
        }
        while self.controller_busy.get() {
            self.controller_idle.wait().await;
        }
        if self.quorum().is_some_and(|q| !q.is_active()) {
            return Err(Error::NotController);
        }
        self.controller_busy.set(true);
        Ok(ControllerTurn(self))
    }

    /// Commits `records` (already applied to `next`): appends them to the metadata
    /// log, fits the placement, installs and publishes both. If the log append
    /// fails, nothing changes and every result that succeeded becomes that error.
    pub(super) async fn commit<T>(self: &Rc<Self>, records: Vec<MetadataRecord>, next: MetadataImage, results: Vec<Result<T>>) -> Vec<Result<T>> {
        if records.is_empty() {
            return results;
        }
        if let Some(quorum) = self.quorum() {
            // The quorum's applier installs and publishes the committed image.
            return match quorum.propose(records).await {
                Ok(()) => results,
                Err(e) => {
                    crate::warn_limited!("a metadata change was not committed: {e}");
                    results.into_iter().map(|r| r.and(Err(Error::from_remote(e.code(), e.to_string())))).collect()
                }
            };
        }
        if let Err(e) = self.append_records(&records, &next).await {
            crate::error_limited!("persisting metadata failed: {e}");
            return results.into_iter().map(|r| r.and(Err(Error::Io(std::io::Error::new(e.kind(), e.to_string()))))).collect();
        }
        self.install_image(next).await;
        results
    }

    /// Fits this broker's placement to `next`, saves it, and installs and
    /// publishes both on every shard (the local log append already happened,
    /// or, in a cluster, the quorum committed the records).
    pub async fn install_image(self: &Rc<Self>, next: MetadataImage) {
        let mut placement = (*self.placement()).clone();
        placement.fit(&next, self.cfg.broker_id);
        if placement != *self.placement() {
            // The placement is local and re-derivable: a failed save is reported, not fatal.
            let path = self.cfg.log_dir.join(crate::metadata::placement::PLACEMENT_FILE);
            let saved = match placement.encode() {
                Ok(bytes) => crate::io::durable::replace_file(&self.ring, &path, bytes.into()).await,
                Err(e) => Err(e),
            };
            if let Err(e) = saved {
                crate::error_limited!("saving the shard placement failed: {e}");
            }
        }
        self.publish(Arc::new(next), Arc::new(placement)).await;
    }

    /// Cluster: runs `req` on the active controller; the reply comes once this
    /// node applied what it committed.
    pub(super) async fn forward_to_controller(self: &Rc<Self>, op: ControllerOp) -> ShardResponse {
        let Some(quorum) = self.quorum() else { return op.failed(&Error::NotController) };
        match quorum.forward(op.clone()).await {
            Ok(reply) => reply.into_response(),
            Err(e) => op.failed(&e),
        }
    }

    /// The metadata quorum's state: the cluster's, or this single broker as its
    /// own one-voter quorum (its metadata log's offset as the high watermark).
    pub(super) async fn describe_quorum(self: &Rc<Self>) -> Result<crate::shard::links::QuorumDescription> {
        if let Some(q) = self.quorum() {
            return q.describe().await;
        }
        let me = self.cfg.broker_id;
        let end = self.image().version as i64;
        Ok(crate::shard::links::QuorumDescription {
            leader_id: me,
            leader_epoch: 0,
            high_watermark: end,
            voters: vec![crate::shard::links::QuorumReplica { replica_id: me, log_end_offset: end, last_fetch_timestamp: self.cfg.clock.now_ms() }],
        })
    }

    /// Runs a metadata change here, as the controller (on a cluster, the
    /// active one: a node that is not refuses it with NOT_CONTROLLER).
    pub(super) async fn run_controller_op(self: &Rc<Self>, op: ControllerOp) -> ShardResponse {
        match op {
            ControllerOp::CreateTopics { topics, validate_only, internal } => {
                ShardResponse::CreateTopics(self.create_topics(topics, validate_only, internal).await)
            }
            ControllerOp::DeleteTopics { topics } => ShardResponse::DeleteTopics(self.delete_topics(topics).await),
            ControllerOp::CreatePartitions { topics, validate_only } => ShardResponse::CreatePartitions(self.create_partitions(topics, validate_only).await),
            ControllerOp::AlterTopicConfigs { changes, validate_only } => {
                ShardResponse::AlterTopicConfigs(self.alter_topic_configs(changes, validate_only).await)
            }
            ControllerOp::AllocateProducerIds => ShardResponse::ProducerIds(self.allocate_producer_ids().await),
            ControllerOp::AlterPartition { topic_id, partition, leader, leader_epoch, current_isr, new_isr } => {
                ShardResponse::AlterPartition(self.alter_partition(topic_id, partition, leader, leader_epoch, current_isr, new_isr).await)
            }
            ControllerOp::AlterBrokerConfigs { changes, validate_only } => {
                ShardResponse::AlterBrokerConfigs(self.alter_broker_configs(changes, validate_only).await)
            }
            ControllerOp::ElectLeaders { kind, partitions } => ShardResponse::ElectLeaders(self.elect_leaders(kind, partitions).await),
            ControllerOp::AlterReassignments { partitions } => ShardResponse::AlterReassignments(self.alter_reassignments(partitions).await),
        }
    }

    /// Active controller: runs an operation another node forwarded.
    pub async fn run_forwarded(self: &Rc<Self>, op: ControllerOp) -> ControllerReply {
        let resp = self.run_controller_op(op.clone()).await;
        ControllerReply::from_response(resp).unwrap_or_else(|| ControllerReply::failed(&op, &Error::NotController))
    }

    /// Active controller: commits the change `build` makes from the current image
    /// (broker registration and fencing, driven by `cluster/`). Answers the
    /// image version committed, or why not.
    pub async fn propose_change<F>(self: &Rc<Self>, build: F) -> Result<u64>
    where
        F: FnOnce(&MetadataImage) -> Result<Vec<MetadataRecord>>,
    {
        let _turn = self.controller_turn().await?;
        let records = build(&self.image())?;
        if records.is_empty() {
            return Ok(self.image().version);
        }
        let quorum = self.quorum().ok_or(Error::NotController)?;
        quorum.propose(records).await?;
        Ok(self.image().version)
    }

    /// Appends to the metadata log (taken out of its cell while the write is in
    /// flight; the controller lock keeps others away) and writes a checkpoint when due.
    async fn append_records(&self, records: &[MetadataRecord], next: &MetadataImage) -> std::io::Result<()> {
        let mut log = self.metadata_log.borrow_mut().take().ok_or_else(|| std::io::Error::other("the metadata log is not open on this shard"))?;
        let mut res = log.append(&self.ring, records).await;
        if res.is_ok() && log.checkpoint_due() {
            if let Err(e) = log.checkpoint(&self.ring, next).await {
                // The records are safe in the log; the next append tries again.
                crate::warn_limited!("writing a metadata checkpoint failed: {e}");
            }
        }
        if res.is_ok() && log.next_offset() != next.version {
            res = Err(std::io::Error::other(format!("metadata log at {} but image at {}", log.next_offset(), next.version)));
        }
        *self.metadata_log.borrow_mut() = Some(log);
        res
    }

    /// Installs the image and placement here and on every other shard, and waits
    /// until all have applied them (opened the logs of new partitions).
    async fn publish(self: &Rc<Self>, image: Arc<MetadataImage>, placement: Arc<ShardPlacement>) {
        let Some(peers) = self.peers() else {
            // Before the shards are connected (start-up): this shard only.
            self.handle_apply(image, placement);
            return;
        };
        let failed = peers.apply_everywhere(image, placement).await;
        if failed > 0 {
            crate::error_limited!(shards = failed, "shards did not apply the new metadata image");
        }
    }

    /// Controller: reserves the next block of producer ids, committing the
    /// counter before answering so no id is handed out twice.
    pub(super) async fn allocate_producer_ids(self: &Rc<Self>) -> Result<(i64, i64)> {
        let _turn = self.controller_turn().await?;
        let mut next = (*self.image()).clone();
        let (start, end) = crate::metadata::producer_ids::next_block(next.next_producer_id).ok_or(Error::CoordinatorNotAvailable)?;
        let rec = MetadataRecord::ProducerIds { next_producer_id: end };
        next.apply(&rec).map_err(|e| Error::Io(std::io::Error::other(e)))?;
        self.commit(vec![rec], next, vec![Ok((start, end - start))]).await.pop().unwrap_or(Err(Error::CoordinatorNotAvailable))
    }

    /// Controller: creates topics. Internal topics are created only by the broker
    /// (`internal`), never by a client: their partition count places every group
    /// and transactional id. A name that collides with an existing one (`.` = `_`)
    /// is refused, as Kafka does.
    pub(super) async fn create_topics(self: &Rc<Self>, topics: Vec<NewTopic>, validate_only: bool, internal: bool) -> Vec<Result<()>> {
        let turn = match self.controller_turn().await {
            Ok(t) => t,
            Err(e) => return topics.iter().map(|_| Err(Error::from_remote(e.code(), e.to_string()))).collect(),
        };
        let mut next = (*self.image()).clone();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(topics.len());
        for t in topics {
            let r = (|| {
                validate_topic_name(&t.name).map_err(Error::InvalidTopic)?;
                if is_internal_topic(&t.name) && !internal {
                    return Err(Error::InternalTopicCreation(t.name.clone()));
                }
                if next.topics.contains_key(&t.name) {
                    return Err(Error::TopicAlreadyExists);
                }
                let unified = unify_collision_chars(&t.name);
                if let Some(other) = next.topics.keys().find(|n| unify_collision_chars(n) == unified) {
                    return Err(Error::InvalidTopic(format!("Topic '{}' collides with existing topic: {other}", t.name)));
                }
                if t.num_partitions < 1 {
                    return Err(Error::InvalidPartitions(format!("number of partitions must be at least 1, got {}", t.num_partitions)));
                }
                let topic_id = uuid::Uuid::new_v4();
                let partitions = match &t.assignments {
                    Some(a) => {
                        self.check_assignments(&next, a, t.num_partitions, t.replication_factor)?;
                        partition_records(topic_id, 0, a.clone())
                    }
                    None => self.new_partitions(&next, topic_id, 0, t.num_partitions, t.replication_factor)?,
                };
                let configs = crate::config::topic::validate_all(&t.configs)?;
                if validate_only {
                    return Ok(());
                }
                let mut recs = vec![MetadataRecord::Topic { name: t.name.clone(), topic_id }];
                recs.extend(partitions);
                recs.extend(configs.into_iter().map(|(key, value)| MetadataRecord::Config { topic: t.name.clone(), key, value: Some(value) }));
                apply_all(&mut next, &recs)?;
                records.extend(recs);
                Ok(())
            })();
            results.push(r);
        }
        let out = self.commit(records, next, results).await;
        drop(turn);
        out
    }

    /// Controller: removes topics (their shards delete the data on apply).
    pub(super) async fn delete_topics(self: &Rc<Self>, topics: Vec<(Option<String>, uuid::Uuid)>) -> Vec<Result<(String, uuid::Uuid)>> {
        let turn = match self.controller_turn().await {
            Ok(t) => t,
            Err(e) => return topics.iter().map(|_| Err(Error::from_remote(e.code(), e.to_string()))).collect(),
        };
        let mut next = (*self.image()).clone();
        let mut records = Vec::new();
        let results: Vec<Result<(String, uuid::Uuid)>> = topics
            .into_iter()
            .map(|(name, id)| {
                if !self.cfg.delete_topic_enable {
                    return Err(Error::TopicDeletionDisabled);
                }
                let name = match name {
                    Some(n) => n,
                    None => next.topic_name(&id).map(str::to_string).ok_or(Error::UnknownTopicId)?,
                };
                if is_internal_topic(&name) {
                    return Err(Error::InvalidTopic(format!("Cannot delete internal topic {name}: it holds the broker's group or transaction state")));
                }
                let topic_id = next.topics.get(&name).ok_or(Error::UnknownTopicOrPartition)?.topic_id;
                let rec = MetadataRecord::RemoveTopic { topic_id };
                apply_all(&mut next, std::slice::from_ref(&rec))?;
                records.push(rec);
                Ok((name, topic_id))
            })
            .collect();
        let out = self.commit(records, next, results).await;
        drop(turn);
        out
    }

    /// Controller: adds partitions (only increases). Answers each topic's partition
    /// count before (the index of its first new partition).
    pub(super) async fn create_partitions(self: &Rc<Self>, topics: Vec<super::request::PartitionsIncrease>, validate_only: bool) -> Vec<Result<i32>> {
        let turn = match self.controller_turn().await {
            Ok(t) => t,
            Err(e) => return topics.iter().map(|_| Err(Error::from_remote(e.code(), e.to_string()))).collect(),
        };
        let mut next = (*self.image()).clone();
        let mut records = Vec::new();
        let results: Vec<Result<i32>> = topics
            .into_iter()
            .map(|(name, count, assignments)| {
                let t = next.topics.get(&name).ok_or(Error::UnknownTopicOrPartition)?;
                if is_internal_topic(&name) {
                    // Groups and transactional ids are placed by hash modulo this count.
                    return Err(Error::InvalidTopic(format!(
                        "Cannot add partitions to internal topic {name}: its partition count places groups and transactional ids"
                    )));
                }
                let cur = t.partitions.len() as i32;
                if count < cur {
                    return Err(Error::InvalidPartitions(format!("topic {name} has {cur} partitions; the count can only increase, got {count}")));
                }
                if count == cur {
                    return Err(Error::InvalidPartitions(format!("topic {name} already has {cur} partitions")));
                }
                let rf = t.partitions.first().map_or(1, |p| p.replicas.len()) as i16;
                if let Some(a) = &assignments {
                    self.check_assignments(&next, a, count - cur, rf)?;
                }
                if validate_only {
                    return Ok(cur);
                }
                let recs = match assignments {
                    Some(a) => partition_records(t.topic_id, cur, a),
                    None => self.new_partitions(&next, t.topic_id, cur, count - cur, rf)?,
                };
                apply_all(&mut next, &recs)?;
                records.extend(recs);
                Ok(cur)
            })
            .collect();
        let out = self.commit(records, next, results).await;
        drop(turn);
        out
    }

    /// Controller: validates and commits topic config changes; shards apply them
    /// to their open logs when the image is published.
    pub(super) async fn alter_topic_configs(self: &Rc<Self>, changes: Vec<(String, ConfigChange)>, validate_only: bool) -> Vec<Result<()>> {
        let turn = match self.controller_turn().await {
            Ok(t) => t,
            Err(e) => return changes.iter().map(|_| Err(Error::from_remote(e.code(), e.to_string()))).collect(),
        };
        let mut next = (*self.image()).clone();
        let mut records = Vec::new();
        let results: Vec<Result<()>> = changes
            .into_iter()
            .map(|(name, change)| {
                let t = next.topics.get(&name).ok_or(Error::UnknownTopicOrPartition)?.clone();
                let proposed = match change {
                    ConfigChange::Replace(all) => all,
                    ConfigChange::Incremental(ops) => {
                        let mut m = t.configs.clone();
                        for (key, op, value) in ops {
                            apply_op(&self.cfg, &mut m, &key, op, value)?;
                        }
                        m
                    }
                };
                let validated = crate::config::topic::validate_all(&proposed)?;
                if validate_only {
                    return Ok(());
                }
                let recs = next.config_records(&t, &validated);
                apply_all(&mut next, &recs)?;
                records.extend(recs);
                Ok(())
            })
            .collect();
        let out = self.commit(records, next, results).await;
        drop(turn);
        out
    }
}

/// The records of new partitions of `topic_id` from `first` with these
/// replicas, each led by its first replica, all in sync, at leader epoch 0.
fn partition_records(topic_id: uuid::Uuid, first: i32, assigned: Vec<Vec<i32>>) -> Vec<MetadataRecord> {
    assigned
        .into_iter()
        .zip(first..)
        .map(|(replicas, partition)| MetadataRecord::Partition {
            topic_id,
            partition,
            isr: replicas.clone(),
            leader: replicas.first().copied().unwrap_or(-1),
            replicas,
            leader_epoch: 0,
        })
        .collect()
}

impl Shard {
    /// The records of `count` new partitions of `topic_id` from `first`, placed by Kafka's assignment.
    fn new_partitions(&self, image: &MetadataImage, topic_id: uuid::Uuid, first: i32, count: i32, replication_factor: i16) -> Result<Vec<MetadataRecord>> {
        Ok(partition_records(topic_id, first, self.assign(image, first, count, replication_factor)?))
    }

    /// A manual assignment of `count` new partitions (Kafka's checks): one entry
    /// per new partition, each with `replication_factor` distinct brokers that
    /// are registered and live (this broker alone on a single broker).
    fn check_assignments(&self, image: &MetadataImage, assignments: &[Vec<i32>], count: i32, replication_factor: i16) -> Result<()> {
        if assignments.len() != count as usize {
            return Err(Error::InvalidReplicaAssignment(format!("{} assignments for {count} new partitions", assignments.len())));
        }
        for a in assignments {
            if a.is_empty() || a.len() != replication_factor as usize {
                return Err(Error::InvalidReplicaAssignment(format!("inconsistent replication factor: {a:?}, the topic has {replication_factor}")));
            }
            if a.iter().enumerate().any(|(i, b)| a[..i].contains(b)) {
                return Err(Error::InvalidReplicaAssignment(format!("duplicate broker in {a:?}")));
            }
            let known = |b: i32| if self.cfg.is_cluster() { image.live_broker(b).is_some() } else { b == self.cfg.broker_id };
            if let Some(b) = a.iter().find(|&&b| !known(b)) {
                return Err(Error::InvalidReplicaAssignment(format!("unknown or unavailable broker {b}")));
            }
        }
        Ok(())
    }

    /// Replicas for `count` new partitions from `first`: over the live brokers of
    /// a cluster (Kafka's assignment, rack-aware), or this broker alone. A factor
    /// above the live brokers is refused.
    fn assign(&self, image: &MetadataImage, first: i32, count: i32, replication_factor: i16) -> Result<Vec<Vec<i32>>> {
        let brokers: Vec<(i32, Option<String>)> = if self.cfg.is_cluster() {
            image.brokers.iter().filter(|(_, b)| !b.fenced && !b.in_controlled_shutdown).map(|(&id, b)| (id, b.rack.clone())).collect()
        } else {
            vec![(self.cfg.broker_id, None)]
        };
        if replication_factor < 1 {
            return Err(Error::InvalidReplicationFactor(format!("replication factor must be at least 1, got {replication_factor}")));
        }
        if replication_factor as usize > brokers.len() {
            let n = brokers.len();
            return Err(Error::InvalidReplicationFactor(format!(
                "replication factor {replication_factor} is larger than the {n} available broker{}",
                if n == 1 { "" } else { "s" }
            )));
        }
        // Kafka starts each topic's assignment at a random broker, spreading leaders across topics.
        let start = (uuid::Uuid::new_v4().as_u128() % brokers.len() as u128) as usize;
        Ok(crate::metadata::placement::assign_replicas(&brokers, first, count, replication_factor as usize, start))
    }
}

/// Applies records the controller built (so later items of the same request see
/// them). A refusal means the controller's own validation missed a case.
pub(crate) fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) -> Result<()> {
    for r in records {
        image.apply(r).map_err(|e| Error::Io(std::io::Error::other(format!("metadata record refused: {e}"))))?;
    }
    Ok(())
}

/// One IncrementalAlterConfigs operation on a topic's overrides. APPEND and
/// SUBTRACT work on list configs only, starting from the effective value (the
/// broker default when the topic has no override), as Kafka does.
fn apply_op(cfg: &Config, m: &mut std::collections::BTreeMap<String, String>, key: &str, op: AlterOp, value: Option<String>) -> Result<()> {
    use crate::config::topic::{def, effective, BrokerValues, Kind};
    let d = def(key).ok_or_else(|| Error::InvalidConfig(format!("unknown or unsupported topic config `{key}`")))?;
    match op {
        AlterOp::Set => {
            let v = value.ok_or_else(|| Error::InvalidConfig(format!("SET of `{key}` needs a value")))?;
            m.insert(key.to_string(), v);
        }
        AlterOp::Delete => {
            m.remove(key);
        }
        AlterOp::Append | AlterOp::Subtract => {
            if !matches!(d.kind, Kind::List(_)) {
                return Err(Error::InvalidConfig(format!("`{key}` is not a list; APPEND and SUBTRACT need a list config")));
            }
            let v = value.ok_or_else(|| Error::InvalidConfig(format!("APPEND/SUBTRACT of `{key}` needs a value")))?;
            let (current, _) = effective(&BrokerValues::of(cfg), m, d);
            let mut items: Vec<String> = current.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            for x in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if op == AlterOp::Append {
                    if !items.iter().any(|i| i == x) {
                        items.push(x.to_string());
                    }
                } else {
                    items.retain(|i| i != x);
                }
            }
            m.insert(key.to_string(), items.join(","));
        }
    }
    Ok(())
}
