//! The partition owner. One `Shard` per core: it holds the logs of the
//! partitions assigned to it, and serves [`ShardRequest`]s for them. All state
//! is `Rc`/`RefCell`, reached only from this core; other cores ask through
//! `xshard`, which calls [`Shard::handle`] directly when the owner is local.
//! Shard 0 is also the metadata controller (the only writer of the image).

pub mod metadata;
pub mod notify;
pub mod offline;
pub mod request;

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::io::ring::Ring;
use crate::log::{LogConfig, PartitionLog};
use crate::protocol::now_ms;
use crate::protocol::topic::{is_internal_topic, unify_collision_chars, validate_topic_name};
use metadata::{MetadataImage, PartitionMeta, TopicMeta};
use notify::Notify;
use offline::{OfflinePartitions, SpareDescriptors};
use request::{AlterOp, ConfigChange, NewTopic, ShardRequest, ShardResponse, TopicPartition, TxnMarker};

/// The shard that writes the metadata image.
pub const CONTROLLER_SHARD: usize = 0;

/// Per-core broker state.
pub struct Shard {
    /// This shard's index (0..nr_shards).
    pub id: usize,
    pub nr_shards: usize,
    pub cfg: Arc<Config>,
    /// This shard's private io_uring (segment writes, splice).
    pub ring: Ring,
    /// Host and port put in Metadata responses.
    pub advertised: (String, u16),
    image: RefCell<Arc<MetadataImage>>,
    logs: RefCell<HashMap<TopicPartition, Rc<PartitionLog>>>,
    /// Topic id of each partition this shard owns and has opened or tried to
    /// open (a re-created topic gets a new id); offline ones included, so a
    /// deleted topic's offline partitions are cleaned up like open ones.
    log_topic_ids: RefCell<HashMap<TopicPartition, uuid::Uuid>>,
    /// Partitions of the whole broker whose log could not be opened (shared by all shards).
    pub offline: Arc<OfflinePartitions>,
    /// Serializes controller operations (shard 0 only).
    controller_busy: Cell<bool>,
    controller_idle: Notify,
    recover: bool,
    /// Set when the broker is stopping; connections stop reading.
    pub stopping: Cell<bool>,
    /// Woken when `stopping` is set.
    pub stop_signal: Notify,
    /// Groups whose `__consumer_offsets` partition this shard owns.
    pub coordinator: crate::coordinator::GroupCoordinator,
    /// Transactional ids whose `__transaction_state` partition this shard owns.
    pub txn: crate::coordinator::txn::TxnCoordinator,
    /// This shard's block of producer ids (InitProducerId).
    producer_ids: crate::coordinator::producer_ids::ProducerIdBlock,
    /// The way to other shards, for work that starts inside [`Shard::handle`]
    /// (transaction markers, producer id blocks). Set once by
    /// `XShard::connect`; weak because the XShard owns this shard.
    xshard: OnceCell<Weak<crate::xshard::XShard>>,
    /// Effective log config per topic, for the image version it was built from
    /// (produce validation reads it per request without re-parsing strings).
    topic_configs: RefCell<(u64, HashMap<String, Arc<LogConfig>>)>,
}

impl Shard {
    /// Builds the shard and opens the logs it owns in `image`.
    /// A partition that cannot be opened is offline (see [`offline`]), not a start-up failure.
    // Distinct start-up inputs, called from one place (runtime::run).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        nr_shards: usize,
        cfg: Arc<Config>,
        ring: Ring,
        advertised: (String, u16),
        image: Arc<MetadataImage>,
        recover: bool,
        offline: Arc<OfflinePartitions>,
    ) -> Rc<Shard> {
        let cfg_for_groups = cfg.clone();
        let shard = Rc::new(Shard {
            id,
            nr_shards,
            cfg,
            ring,
            advertised,
            image: RefCell::new(image.clone()),
            logs: RefCell::new(HashMap::new()),
            log_topic_ids: RefCell::new(HashMap::new()),
            offline,
            controller_busy: Cell::new(false),
            controller_idle: Notify::default(),
            recover,
            stopping: Cell::new(false),
            stop_signal: Notify::default(),
            coordinator: crate::coordinator::GroupCoordinator::new(cfg_for_groups.clone()),
            txn: crate::coordinator::txn::TxnCoordinator::new(cfg_for_groups),
            producer_ids: Default::default(),
            xshard: OnceCell::new(),
            topic_configs: RefCell::new((u64::MAX, HashMap::new())),
        });
        shard.open_owned(&image, false);
        shard
    }

    /// The current metadata snapshot (cheap `Arc` clone; never hold a borrow).
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// The effective log config of a topic (broker defaults + overrides), cached
    /// per image version. None for an unknown topic.
    pub fn topic_config(&self, topic: &str) -> Option<Arc<LogConfig>> {
        let image = self.image();
        let mut cache = self.topic_configs.borrow_mut();
        if cache.0 != image.version {
            *cache = (image.version, HashMap::new());
        }
        if let Some(c) = cache.1.get(topic) {
            return Some(c.clone());
        }
        let c = Arc::new(LogConfig::from(&self.cfg, &image.topics.get(topic)?.configs));
        cache.1.insert(topic.to_string(), c.clone());
        Some(c)
    }

    /// Called once by `XShard::connect`.
    pub fn set_xshard(&self, x: Weak<crate::xshard::XShard>) {
        let _ = self.xshard.set(x);
    }

    /// This shard's cross-shard handle (None before the shards are connected).
    pub fn xshard(&self) -> Option<Rc<crate::xshard::XShard>> {
        self.xshard.get().and_then(Weak::upgrade)
    }

    /// A producer id unique across the broker and its restarts: from this
    /// shard's block, asking the controller for a new block when it is used up.
    pub async fn next_producer_id(self: &Rc<Self>) -> Result<i64> {
        if let Some(id) = self.producer_ids.take() {
            return Ok(id);
        }
        let x = self.xshard().ok_or(Error::CoordinatorNotAvailable)?;
        // Boxed: this runs inside Shard::handle, and a call to the local shard re-enters it.
        match Box::pin(x.call(CONTROLLER_SHARD, ShardRequest::AllocateProducerIds)).await? {
            ShardResponse::ProducerIds(Ok((start, count))) => {
                self.producer_ids.install(start, count);
                self.producer_ids.take().ok_or(Error::CoordinatorNotAvailable)
            }
            ShardResponse::ProducerIds(Err(e)) => Err(e),
            _ => Err(Error::CoordinatorNotAvailable),
        }
    }

    /// Controller: reserves the next block of producer ids, persisting the
    /// counter before answering so no id is handed out twice.
    fn allocate_producer_ids(&self) -> Result<(i64, i64)> {
        if self.id != CONTROLLER_SHARD {
            return Err(Error::CoordinatorNotAvailable);
        }
        let mut image = (*self.image()).clone();
        let (start, end) = crate::coordinator::producer_ids::next_block(image.next_producer_id).ok_or(Error::CoordinatorNotAvailable)?;
        image.next_producer_id = end;
        self.commit_image(image)?;
        Ok((start, end - start))
    }

    /// Appends transaction markers to owned partitions; a marker in a
    /// `__consumer_offsets` partition also ends that producer's pending offsets.
    async fn write_txn_markers(&self, markers: Vec<TxnMarker>) -> Vec<Result<()>> {
        let futs = markers.into_iter().map(|m| {
            let log = self.log(&m.tp);
            async move {
                log?.append_marker(m.producer_id, m.producer_epoch, m.commit, m.coordinator_epoch).await?;
                if m.tp.topic == crate::coordinator::OFFSETS_TOPIC {
                    self.coordinator.complete_txn(m.tp.partition, m.producer_id, m.commit);
                }
                Ok(())
            }
        });
        futures::future::join_all(futs).await
    }

    /// The log of a partition this shard owns; KAFKA_STORAGE_ERROR for one
    /// that is offline (its log could not be opened).
    pub fn log(&self, tp: &TopicPartition) -> Result<Rc<PartitionLog>> {
        if let Some(log) = self.logs.borrow().get(tp) {
            return Ok(log.clone());
        }
        match self.offline.get(tp) {
            Some(o) => Err(Error::KafkaStorage(format!("partition {}-{} is offline: its log could not be opened: {}", tp.topic, tp.partition, o.reason))),
            None => Err(Error::UnknownTopicOrPartition),
        }
    }

    /// Opens the logs of the partitions this shard owns in `image` and has not
    /// opened yet. A log that cannot open is marked offline and the others
    /// still open: a broker serves what it can rather than refusing to start.
    ///
    /// Descriptors: at start-up (`after_start` false) the shards open in
    /// parallel only what `runtime::nofile` planned to fit, and skip the
    /// partitions it marked offline. Later passes (a metadata change) also
    /// retry offline partitions, after the new ones so a new topic is not
    /// starved by old offline ones; they run one shard at a time, each holding
    /// [`offline::descriptors_reserved`] spare descriptors while it opens, so
    /// the logs never take the last ones (run in parallel, one shard could
    /// take the spares another has just released).
    fn open_owned(&self, image: &MetadataImage, after_start: bool) {
        let mut todo = Vec::new();
        let mut retries = Vec::new();
        {
            let logs = self.logs.borrow();
            for t in image.topics.values() {
                // Before any partition is handed over: the count places keys in it.
                let count = t.partitions.len().min(i32::MAX as usize) as i32;
                if t.name == crate::coordinator::OFFSETS_TOPIC {
                    self.coordinator.set_partition_count(count);
                }
                if t.name == crate::coordinator::txn_store::TXN_STATE_TOPIC {
                    self.txn.set_partition_count(count);
                }
                for (i, p) in t.partitions.iter().enumerate() {
                    let tp = TopicPartition { topic: t.name.clone(), partition: i as i32 };
                    if p.owner_shard != self.id || logs.contains_key(&tp) {
                        continue;
                    }
                    if self.offline.get(&tp).is_some_and(|o| o.topic_id == t.topic_id) {
                        self.log_topic_ids.borrow_mut().insert(tp.clone(), t.topic_id);
                        if after_start {
                            retries.push((t, tp));
                        }
                    } else {
                        todo.push((t, tp));
                    }
                }
            }
        }
        todo.append(&mut retries);
        if todo.is_empty() {
            return;
        }
        let one_at_a_time = after_start.then(|| self.offline.lock_opens());
        let spares = after_start.then(|| SpareDescriptors::hold(&self.cfg.log_dir, self.offline.descriptors_reserved));
        let mut configs: HashMap<&str, LogConfig> = HashMap::new();
        let mut failed: Vec<(TopicPartition, String)> = Vec::new();
        for (t, tp) in todo {
            let lc = configs.entry(t.name.as_str()).or_insert_with(|| LogConfig::from(&self.cfg, &t.configs)).clone();
            self.log_topic_ids.borrow_mut().insert(tp.clone(), t.topic_id);
            match self.open_partition(&tp, lc) {
                Ok(log) => {
                    self.logs.borrow_mut().insert(tp.clone(), log);
                    if self.offline.clear(&tp) {
                        tracing::info!(topic = %tp.topic, partition = tp.partition, "partition log opened: back online");
                    }
                }
                Err(e) => {
                    let reason = match e {
                        Error::Io(io) => io.to_string(),
                        other => other.to_string(),
                    };
                    tracing::debug!(topic = %tp.topic, partition = tp.partition, "partition log could not be opened: {reason}");
                    if self.offline.mark(&tp, t.topic_id, reason.clone()) {
                        failed.push((tp, reason));
                    }
                }
            }
        }
        drop(spares);
        drop(one_at_a_time);
        // One line per pass, not one per partition: a CreateTopics of thousands of
        // partitions past RLIMIT_NOFILE would otherwise log thousands.
        if let Some((first, reason)) = failed.first() {
            let names: Vec<String> = failed.iter().take(8).map(|(tp, _)| format!("{}-{}", tp.topic, tp.partition)).collect();
            tracing::error!(
                shard = self.id,
                offline = failed.len(),
                partitions = %names.join(","),
                "partition logs could not be opened and are offline (KAFKA_STORAGE_ERROR) until they open; first error, {}-{}: {reason}",
                first.topic,
                first.partition
            );
        }
    }

    /// Opens one partition's log and hands the internal ones to their coordinator.
    fn open_partition(&self, tp: &TopicPartition, lc: LogConfig) -> Result<Rc<PartitionLog>> {
        let log = PartitionLog::open(&self.cfg.log_dir, &tp.topic, tp.partition, lc, self.ring.clone(), self.recover)?;
        if tp.topic == crate::coordinator::OFFSETS_TOPIC {
            self.coordinator.add_partition(tp.partition, log.clone())?;
        }
        if tp.topic == crate::coordinator::txn_store::TXN_STATE_TOPIC {
            self.txn.add_partition(tp.partition, log.clone())?;
        }
        Ok(log)
    }

    /// Drops logs of partitions that left the image (deleted topics) and removes
    /// their directories. In-flight fetches keep their open files until they finish.
    fn drop_removed(&self, image: &MetadataImage) {
        let gone: Vec<TopicPartition> = self
            .log_topic_ids
            .borrow()
            .iter()
            .filter(|(tp, id)| match image.topics.get(&tp.topic) {
                Some(t) => t.topic_id != **id || tp.partition as usize >= t.partitions.len(),
                None => true,
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in gone {
            self.log_topic_ids.borrow_mut().remove(&tp);
            self.offline.clear(&tp);
            if let Some(log) = self.logs.borrow_mut().remove(&tp) {
                log.mark_deleted();
            }
            let dir = crate::log::partition_log::partition_dir(&self.cfg.log_dir, &tp.topic, tp.partition);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                crate::warn_limited!(dir = %dir.display(), "removing a deleted partition failed: {e}");
            }
            tracing::info!(topic = %tp.topic, partition = tp.partition, "partition deleted");
        }
    }

    /// Serves one request for partitions this shard owns.
    pub async fn handle(self: &Rc<Self>, req: ShardRequest) -> ShardResponse {
        match req {
            ShardRequest::Produce { partitions } => {
                let futs = partitions.into_iter().map(|(tp, batches)| {
                    let log = self.log(&tp);
                    async move { log?.append(batches).await }
                });
                ShardResponse::Produce(futures::future::join_all(futs).await)
            }
            ShardRequest::Fetch { reads } => ShardResponse::Fetch(
                reads.iter().map(|r| self.log(&r.tp).and_then(|l| l.read(r.offset, r.max_bytes, r.read_committed))).collect(),
            ),
            ShardRequest::WaitForAppend { partitions, max_wait_ms, read_committed } => {
                self.wait_for_append(partitions, max_wait_ms, read_committed).await;
                ShardResponse::Waited
            }
            ShardRequest::ListOffsets { partitions, read_committed } => {
                ShardResponse::ListOffsets(partitions.iter().map(|(tp, ts)| self.list_offset(tp, *ts, read_committed)).collect())
            }
            ShardRequest::CreateTopics { topics, validate_only, internal } => {
                ShardResponse::CreateTopics(self.create_topics(topics, validate_only, internal).await)
            }
            ShardRequest::GetMetadata => ShardResponse::Metadata(self.image()),
            ShardRequest::DeleteTopics { topics } => ShardResponse::DeleteTopics(self.delete_topics(topics)),
            ShardRequest::CreatePartitions { topics, validate_only } => ShardResponse::CreatePartitions(self.create_partitions(topics, validate_only)),
            ShardRequest::Group(req) => {
                let image = self.image();
                ShardResponse::Group(self.coordinator.handle(req, &image).await)
            }
            ShardRequest::AlterTopicConfigs { changes, validate_only } => ShardResponse::AlterTopicConfigs(self.alter_topic_configs(changes, validate_only)),
            ShardRequest::DeleteRecords { partitions } => ShardResponse::DeleteRecords(
                partitions.iter().map(|(tp, off)| self.log(tp).and_then(|l| l.delete_records_before(*off))).collect(),
            ),
            ShardRequest::DescribeProducers { partitions } => {
                ShardResponse::DescribeProducers(partitions.iter().map(|tp| self.log(tp).map(|l| l.producers())).collect())
            }
            ShardRequest::LogDirSizes => {
                ShardResponse::LogDirSizes(self.logs.borrow().iter().map(|(tp, l)| (tp.clone(), l.size_bytes())).collect())
            }
            ShardRequest::AllocateProducerIds => ShardResponse::ProducerIds(self.allocate_producer_ids()),
            ShardRequest::Txn(req) => ShardResponse::Txn(self.txn.handle(req, self).await),
            ShardRequest::WriteTxnMarkers { markers } => ShardResponse::WriteTxnMarkers(self.write_txn_markers(markers).await),
            ShardRequest::ApplyMetadata { image } => {
                if image.version > self.image.borrow().version {
                    *self.image.borrow_mut() = image.clone();
                }
                let current = self.image();
                self.drop_removed(&current);
                self.open_owned(&current, true);
                self.apply_config_changes();
                ShardResponse::MetadataApplied
            }
        }
    }

    /// Pushes topic configs into the open logs (live, no restart). Every log is
    /// refreshed: the controller installs its image before the push, so "changed
    /// since the previous image" cannot be told on shard 0. One parse per topic.
    fn apply_config_changes(&self) {
        let logs: Vec<(TopicPartition, Rc<PartitionLog>)> = self.logs.borrow().iter().map(|(tp, l)| (tp.clone(), l.clone())).collect();
        for (tp, log) in logs {
            if let Some(c) = self.topic_config(&tp.topic) {
                log.set_config((*c).clone());
            }
        }
    }

    /// Retention on every owned log (the shard's retention task calls this
    /// every `log.retention.check.interval.ms`).
    pub fn apply_retention(&self) {
        let now = now_ms();
        let logs: Vec<Rc<PartitionLog>> = self.logs.borrow().values().cloned().collect();
        for l in logs {
            if let Err(e) = l.apply_retention(now) {
                crate::error_limited!(topic = %l.topic, partition = l.partition, "retention failed: {e}");
            }
            l.expire_producers(now, self.cfg.producer_id_expiration_ms);
        }
    }

    /// One cleaner pass over this shard's compacted partitions (the cleaner
    /// task runs it on a low-priority queue every `log.cleaner.backoff.ms`).
    pub async fn clean_logs(&self) {
        let logs: Vec<Rc<PartitionLog>> = self.logs.borrow().values().filter(|l| l.config().compact).cloned().collect();
        for l in logs {
            if self.stopping.get() {
                return;
            }
            match l.clean(self.cfg.log_cleaner_dedupe_buffer_size, self.cfg.socket_request_max_bytes, now_ms()).await {
                Ok(Some(s)) => {
                    let secs = s.elapsed.as_secs_f64().max(1e-6);
                    tracing::info!(
                        topic = %l.topic, partition = l.partition, segments = s.segments_cleaned, read_bytes = s.bytes_read, written_bytes = s.bytes_written,
                        records_removed = s.records_removed, tombstones_removed = s.tombstones_removed,
                        mb_per_sec = format!("{:.1}", s.bytes_read as f64 / 1e6 / secs), "log cleaned"
                    );
                }
                Ok(None) => {}
                Err(e) => crate::error_limited!(topic = %l.topic, partition = l.partition, "log cleaning failed: {e}"),
            }
        }
    }

    /// Controller: validates and persists topic config changes. The caller
    /// publishes the new image; shards then apply it to their open logs.
    fn alter_topic_configs(&self, changes: Vec<(String, ConfigChange)>, validate_only: bool) -> Vec<Result<()>> {
        let mut image = (*self.image()).clone();
        let mut changed = false;
        let results: Vec<Result<()>> = changes
            .into_iter()
            .map(|(name, change)| {
                let t = image.topics.get_mut(&name).ok_or(Error::UnknownTopicOrPartition)?;
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
                let validated = crate::log::topic_config::validate_all(&proposed)?;
                if validate_only || validated == t.configs {
                    return Ok(());
                }
                t.configs = validated;
                changed = true;
                Ok(())
            })
            .collect();
        self.commit_if_changed(changed, image, results)
    }

    async fn wait_for_append(&self, partitions: Vec<(TopicPartition, i64)>, max_wait_ms: u64, read_committed: bool) {
        let logs: Vec<(Rc<PartitionLog>, i64)> = partitions.iter().filter_map(|(tp, off)| Some((self.log(tp).ok()?, *off))).collect();
        let deadline = glommio::timer::sleep(Duration::from_millis(max_wait_ms)).fuse();
        futures::pin_mut!(deadline);
        loop {
            let end = |l: &PartitionLog| if read_committed { l.last_stable_offset() } else { l.high_watermark() };
            if logs.iter().any(|(l, off)| end(l) > *off) || self.stopping.get() {
                return;
            }
            let waits = futures::future::select_all(logs.iter().map(|(l, _)| l.appended.wait()).chain(std::iter::once(self.stop_signal.wait())));
            futures::select! {
                _ = waits.fuse() => {}
                _ = deadline => return,
            }
        }
    }

    fn list_offset(&self, tp: &TopicPartition, ts: i64, read_committed: bool) -> Result<(i64, i64)> {
        let log = self.log(tp)?;
        match ts {
            -1 if read_committed => Ok((-1, log.last_stable_offset())),
            -1 => Ok((-1, log.high_watermark())),
            -2 => Ok((-1, log.log_start_offset())),
            ts if ts >= 0 => Ok(log.offset_for_timestamp(ts)?.map(|(o, t)| (t, o)).unwrap_or((-1, -1))),
            _ => Err(Error::InvalidRequest(format!("unsupported ListOffsets timestamp {ts}"))),
        }
    }

    /// Controller: validate, place partitions on the least-loaded shards, persist.
    /// The caller pushes the returned image to every shard.
    async fn create_topics(&self, topics: Vec<NewTopic>, validate_only: bool, internal: bool) -> Vec<Result<()>> {
        while self.controller_busy.get() {
            self.controller_idle.wait().await;
        }
        self.controller_busy.set(true);
        let out = self.create_topics_locked(topics, validate_only, internal);
        self.controller_busy.set(false);
        self.controller_idle.notify_all();
        out
    }

    /// Internal topics are created only by the broker (`internal`), never by a
    /// client: their partition count places every group and transactional id.
    /// A name that collides with an existing one (`.` = `_`) is refused, as Kafka does.
    fn create_topics_locked(&self, topics: Vec<NewTopic>, validate_only: bool, internal: bool) -> Vec<Result<()>> {
        let mut image = (*self.image()).clone();
        let mut per_shard = image.partitions_per_shard(self.nr_shards);
        let mut results = Vec::with_capacity(topics.len());
        let mut changed = false;
        // Existing names by their collision form; topics created below join it.
        let mut unified: HashMap<String, String> = image.topics.keys().map(|n| (unify_collision_chars(n), n.clone())).collect();
        for t in topics {
            let r = (|| {
                validate_topic_name(&t.name).map_err(Error::InvalidTopic)?;
                if is_internal_topic(&t.name) && !internal {
                    return Err(Error::InternalTopicCreation(t.name.clone()));
                }
                if image.topics.contains_key(&t.name) {
                    return Err(Error::TopicAlreadyExists);
                }
                if let Some(other) = unified.get(&unify_collision_chars(&t.name)) {
                    return Err(Error::InvalidTopic(format!("Topic '{}' collides with existing topic: {other}", t.name)));
                }
                if t.num_partitions < 1 {
                    return Err(Error::InvalidPartitions(format!("number of partitions must be at least 1, got {}", t.num_partitions)));
                }
                if t.replication_factor != 1 {
                    return Err(Error::InvalidReplicationFactor(format!(
                        "replication factor {} is larger than the 1 available broker",
                        t.replication_factor
                    )));
                }
                let configs = crate::log::topic_config::validate_all(&t.configs)?;
                if validate_only {
                    return Ok(());
                }
                let partitions = (0..t.num_partitions)
                    .map(|_| {
                        let owner = (0..self.nr_shards).min_by_key(|&s| per_shard[s]).unwrap_or(0);
                        per_shard[owner] += 1;
                        PartitionMeta { owner_shard: owner, leader: self.cfg.broker_id, leader_epoch: 0, replicas: vec![self.cfg.broker_id], isr: vec![self.cfg.broker_id] }
                    })
                    .collect();
                unified.insert(unify_collision_chars(&t.name), t.name.clone());
                image.topics.insert(t.name.clone(), TopicMeta { name: t.name.clone(), topic_id: uuid::Uuid::new_v4(), partitions, configs });
                changed = true;
                Ok(())
            })();
            results.push(r);
        }
        self.commit_if_changed(changed, image, results)
    }

    /// Controller: commits `image` when an operation changed it; if persisting
    /// fails, every result that succeeded becomes that storage error.
    fn commit_if_changed<T>(&self, changed: bool, image: MetadataImage, results: Vec<Result<T>>) -> Vec<Result<T>> {
        if !changed {
            return results;
        }
        match self.commit_image(image) {
            Ok(()) => results,
            Err(e) => results.into_iter().map(|r| r.and(Err(Error::Io(std::io::Error::new(e.kind(), e.to_string()))))).collect(),
        }
    }

    /// Controller: bumps the version, persists and installs a changed image.
    /// Controller operations are synchronous, so on this single-threaded shard
    /// they never interleave.
    fn commit_image(&self, mut image: MetadataImage) -> std::io::Result<()> {
        image.version += 1;
        if let Err(e) = image.persist(&self.cfg.log_dir) {
            crate::error_limited!("persisting metadata failed: {e}");
            return Err(e);
        }
        *self.image.borrow_mut() = Arc::new(image);
        Ok(())
    }

    /// Controller: removes topics from the image (their shards delete the data on apply).
    fn delete_topics(&self, topics: Vec<(Option<String>, uuid::Uuid)>) -> Vec<Result<(String, uuid::Uuid)>> {
        let mut image = (*self.image()).clone();
        let mut changed = false;
        let results: Vec<Result<(String, uuid::Uuid)>> = topics
            .into_iter()
            .map(|(name, id)| {
                if !self.cfg.delete_topic_enable {
                    return Err(Error::TopicDeletionDisabled);
                }
                let name = match name {
                    Some(n) => n,
                    None => image.topics.values().find(|t| t.topic_id == id).map(|t| t.name.clone()).ok_or(Error::UnknownTopicId)?,
                };
                if is_internal_topic(&name) {
                    return Err(Error::InvalidTopic(format!("Cannot delete internal topic {name}: it holds the broker's group or transaction state")));
                }
                let t = image.topics.remove(&name).ok_or(Error::UnknownTopicOrPartition)?;
                changed = true;
                Ok((name, t.topic_id))
            })
            .collect();
        self.commit_if_changed(changed, image, results)
    }

    /// Controller: adds partitions (only increases), placed on the least-loaded shards.
    /// Answers each topic's partition count before (the index of its first new partition).
    fn create_partitions(&self, topics: Vec<(String, i32)>, validate_only: bool) -> Vec<Result<i32>> {
        let mut image = (*self.image()).clone();
        let mut per_shard = image.partitions_per_shard(self.nr_shards);
        let mut changed = false;
        let broker = self.cfg.broker_id;
        let results: Vec<Result<i32>> = topics
            .into_iter()
            .map(|(name, count)| {
                let t = image.topics.get_mut(&name).ok_or(Error::UnknownTopicOrPartition)?;
                if is_internal_topic(&name) {
                    // Groups and transactional ids are placed by hash modulo this count.
                    return Err(Error::InvalidTopic(format!("Cannot add partitions to internal topic {name}: its partition count places groups and transactional ids")));
                }
                let cur = t.partitions.len() as i32;
                if count < cur {
                    return Err(Error::InvalidPartitions(format!("topic {name} has {cur} partitions; the count can only increase, got {count}")));
                }
                if count == cur {
                    return Err(Error::InvalidPartitions(format!("topic {name} already has {cur} partitions")));
                }
                if validate_only {
                    return Ok(cur);
                }
                for _ in cur..count {
                    let owner = (0..self.nr_shards).min_by_key(|&s| per_shard[s]).unwrap_or(0);
                    per_shard[owner] += 1;
                    t.partitions.push(PartitionMeta { owner_shard: owner, leader: broker, leader_epoch: 0, replicas: vec![broker], isr: vec![broker] });
                }
                changed = true;
                Ok(cur)
            })
            .collect();
        self.commit_if_changed(changed, image, results)
    }

    /// Flushes partitions whose `flush.ms` is due (called from the shard's flusher task).
    pub async fn flush_due(&self) {
        let logs: Vec<Rc<PartitionLog>> = self.logs.borrow().values().cloned().collect();
        for l in logs {
            if l.flush_due_by_time() {
                if let Err(e) = l.flush().await {
                    crate::error_limited!(topic = %l.topic, partition = l.partition, "flush failed: {e}");
                }
            }
        }
    }

    /// Clean stop: every owned log finishes its writes, writes its indexes and syncs.
    /// One failing partition (say, its directory vanished) does not stop the others
    /// from closing; the first error is returned.
    pub async fn close_logs(&self) -> Result<()> {
        let logs: Vec<Rc<PartitionLog>> = self.logs.borrow().values().cloned().collect();
        let mut first = Ok(());
        for l in logs {
            if let Err(e) = l.close().await {
                tracing::error!(topic = %l.topic, partition = l.partition, "closing the log failed: {e}");
                if first.is_ok() {
                    first = Err(e.into());
                }
            }
        }
        first
    }
}

/// One IncrementalAlterConfigs operation on a topic's overrides. APPEND and
/// SUBTRACT work on list configs only, starting from the effective value (the
/// broker default when the topic has no override), as Kafka does.
fn apply_op(cfg: &Config, m: &mut std::collections::BTreeMap<String, String>, key: &str, op: AlterOp, value: Option<String>) -> Result<()> {
    use crate::log::topic_config::{def, effective, BrokerValues, Kind};
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
