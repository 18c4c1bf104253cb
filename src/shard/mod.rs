//! The partition owner. One `Shard` per core: it holds the logs of the
//! partitions assigned to it, and serves [`ShardRequest`]s for them. All state
//! is `Rc`/`RefCell`, reached only from this core; other cores ask through
//! `xshard`, which calls [`Shard::handle`] directly when the owner is local.
//! Shard 0 is also the metadata controller (the only writer of the image).
//! A shard names no layer above it: it reaches the coordinators on its core and
//! the other shards only through the interfaces in [`links`].
//!
//! The partition owner's jobs, one file each: [`partition`] (log + high
//! watermark), [`controller`] (metadata changes, shard 0), [`fetch_wait`]
//! (long-polls), [`markers`] (transaction markers), [`housekeeping`] (retention,
//! compaction, flushes, close), [`offline`] (logs that could not open).

pub mod controller;
pub mod fetch_wait;
pub mod housekeeping;
pub mod leadership;
pub mod links;
pub mod markers;
pub mod offline;
pub mod partition;
pub mod request;
pub mod throttle;

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::io::ring::Ring;
use crate::log::{LogConfig, PartitionLog};
use crate::metadata::log::MetadataLog;
use crate::metadata::{MetadataImage, Route, ShardPlacement};
use crate::sync::Notify;
use links::{MetadataQuorum, PartitionEvents, Peers};
use offline::{OfflinePartitions, SpareDescriptors};
use partition::Partition;
use request::{ShardRequest, ShardResponse, TopicPartition};

/// The shard that writes the metadata image.
pub const CONTROLLER_SHARD: usize = 0;

static INCARNATION: std::sync::OnceLock<uuid::Uuid> = std::sync::OnceLock::new();

/// This process's incarnation (Kafka's incarnation id): random per start, sent
/// with the broker's registration, so the image tells this start's
/// registration from an earlier one's.
pub fn incarnation_id() -> uuid::Uuid {
    *INCARNATION.get_or_init(uuid::Uuid::new_v4)
}

/// One partition of a produce: this broker must lead it; acks=all needs
/// `min.insync.replicas` in the ISR before the append and waits for the ISR
/// to have the records after it.
async fn produce(p: Rc<Partition>, batches: Vec<crate::protocol::record_batch::ValidatedBatch>, acks: i16, timeout_ms: u64) -> Result<crate::log::AppendInfo> {
    let epoch = p.check_leader(-1)?;
    if acks == -1 {
        p.check_enough_replicas()?;
    }
    let records: i64 = batches.iter().map(|b| i64::from(b.header.last_offset_delta) + 1).sum();
    let bytes: usize = batches.iter().map(|b| b.bytes.len()).sum();
    crate::metrics::with(|m| batches.iter().for_each(|b| m.produced_batch(b.bytes.len())));
    let info = p.log.append(batches).await?;
    crate::metrics::with(|m| {
        m.topic(&p.log.topic, |t| {
            t.bytes_in += bytes as u64;
            t.records_in += records as u64
        })
    });
    if acks == -1 {
        p.wait_committed(info.base_offset + records, epoch, std::time::Duration::from_millis(timeout_ms)).await?;
    }
    Ok(info)
}

/// Per-core broker state.
pub struct Shard {
    /// This shard's index (0..nr_shards).
    pub id: usize,
    /// Shards in this broker (`shard.cores`).
    pub nr_shards: usize,
    /// The broker's configuration (read-only after start-up).
    pub cfg: Arc<Config>,
    /// This shard's private io_uring (segment writes, splice).
    pub ring: Ring,
    /// Host and port put in Metadata responses.
    pub advertised: (String, u16),
    image: RefCell<Arc<MetadataImage>>,
    /// Which shard of this broker holds each partition (published with the image).
    placement: RefCell<Arc<ShardPlacement>>,
    /// The metadata log (the controller shard only; taken out while appending).
    metadata_log: RefCell<Option<MetadataLog>>,
    partitions: RefCell<HashMap<TopicPartition, Rc<Partition>>>,
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
    /// Who hears of partitions opening and markers written here (the coordinators
    /// on this core). Set once before the logs open; weak because it owns this shard.
    events: OnceCell<Weak<dyn PartitionEvents>>,
    /// The way to every shard, for the controller's publish. Set once by
    /// `XShard::connect`; weak because the XShard owns this shard.
    peers: OnceCell<Weak<dyn Peers>>,
    /// The cluster's metadata quorum (controller shard of a cluster node only).
    quorum: OnceCell<Weak<dyn MetadataQuorum>>,
    /// Effective log config per topic, for the image version it was built from
    /// (produce validation reads it per request without re-parsing strings).
    topic_configs: RefCell<(u64, HashMap<String, Arc<LogConfig>>)>,
}

impl Shard {
    /// Builds the shard; its logs open with [`Shard::open_at_start`], once whoever
    /// listens to its [`PartitionEvents`] is in place.
    // Distinct start-up inputs, called from one place (runtime::run).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        nr_shards: usize,
        cfg: Arc<Config>,
        ring: Ring,
        advertised: (String, u16),
        image: Arc<MetadataImage>,
        placement: Arc<ShardPlacement>,
        metadata_log: Option<MetadataLog>,
        recover: bool,
        offline: Arc<OfflinePartitions>,
    ) -> Rc<Shard> {
        Rc::new(Shard {
            id,
            nr_shards,
            cfg,
            ring,
            advertised,
            image: RefCell::new(image),
            placement: RefCell::new(placement),
            metadata_log: RefCell::new(metadata_log),
            partitions: RefCell::new(HashMap::new()),
            log_topic_ids: RefCell::new(HashMap::new()),
            offline,
            controller_busy: Cell::new(false),
            controller_idle: Notify::default(),
            recover,
            stopping: Cell::new(false),
            stop_signal: Notify::default(),
            events: OnceCell::new(),
            peers: OnceCell::new(),
            quorum: OnceCell::new(),
            topic_configs: RefCell::new((u64::MAX, HashMap::new())),
        })
    }

    /// Opens the logs this shard owns in its image (start-up). A partition that
    /// cannot be opened is offline (see [`offline`]), not a start-up failure.
    pub fn open_at_start(&self) {
        let image = self.image();
        self.open_owned(&image, false);
    }

    /// Whether this broker may lead partitions under `image`: always on a single
    /// broker; in a cluster only once this start's registration is unfenced (it
    /// has caught up with the metadata log). Until then an image applied while
    /// catching up may be stale — it may still name this broker leader of
    /// partitions that moved while it was down — and leading on it would take
    /// writes that the real leader never sees.
    pub fn may_lead(&self, image: &MetadataImage) -> bool {
        !self.cfg.is_cluster() || image.brokers.get(&self.cfg.broker_id).is_some_and(|b| !b.fenced && b.incarnation_id == incarnation_id())
    }

    /// Whether the broker started after a clean shutdown (its marker was there):
    /// logs were not checked for a torn tail.
    pub fn started_clean(&self) -> bool {
        !self.recover
    }

    /// Called once, before [`Shard::open_at_start`], by the coordinators of this core.
    pub fn set_partition_events(&self, events: Weak<dyn PartitionEvents>) {
        let _ = self.events.set(events);
    }

    /// Called once by `XShard::connect`.
    pub fn set_peers(&self, peers: Weak<dyn Peers>) {
        let _ = self.peers.set(peers);
    }

    fn events(&self) -> Option<Rc<dyn PartitionEvents>> {
        self.events.get().and_then(Weak::upgrade)
    }

    /// Connects the controller to the cluster's metadata quorum (cluster mode only).
    pub fn set_quorum(&self, quorum: Weak<dyn MetadataQuorum>) {
        let _ = self.quorum.set(quorum);
    }

    /// The metadata quorum, on a cluster node's controller shard.
    pub(crate) fn quorum(&self) -> Option<Rc<dyn MetadataQuorum>> {
        self.quorum.get().and_then(Weak::upgrade)
    }

    pub(crate) fn peers(&self) -> Option<Rc<dyn Peers>> {
        self.peers.get().and_then(Weak::upgrade)
    }

    /// The current metadata snapshot (cheap `Arc` clone; never hold a borrow).
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// This broker's placement of partitions on shards, as published with the image.
    pub fn placement(&self) -> Arc<ShardPlacement> {
        self.placement.borrow().clone()
    }

    /// Where a partition is served from: a shard here, another broker, or nowhere.
    pub fn route(&self, topic: &str, partition: i32) -> Route {
        crate::metadata::route(&self.image.borrow(), &self.placement.borrow(), self.cfg.broker_id, topic, partition)
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

    /// The log of a partition this shard owns; KAFKA_STORAGE_ERROR for one
    /// that is offline (its log could not be opened).
    pub fn log(&self, tp: &TopicPartition) -> Result<Rc<PartitionLog>> {
        self.partition(tp).map(|p| p.log.clone())
    }

    /// A partition this shard owns (log and high watermark); errors as [`Shard::log`].
    pub fn partition(&self, tp: &TopicPartition) -> Result<Rc<Partition>> {
        if let Some(p) = self.partitions.borrow().get(tp) {
            return Ok(p.clone());
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
        let placement = self.placement();
        let mut todo = Vec::new();
        let mut retries = Vec::new();
        // Before any partition is handed over: partition counts place keys in them.
        if let Some(events) = self.events() {
            events.image_installed(image);
        }
        {
            let logs = self.partitions.borrow();
            for t in image.topics.values() {
                for i in 0..t.partitions.len() {
                    let tp = TopicPartition { topic: t.name.clone(), partition: i as i32 };
                    if placement.shard_of(&t.topic_id, i as i32) != Some(self.id) || logs.contains_key(&tp) {
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
            match self.open_partition(&tp, lc, t.partitions.get(tp.partition as usize)) {
                Ok(p) => {
                    self.partitions.borrow_mut().insert(tp.clone(), p);
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

    /// Opens one partition's log as a replica of `meta`; when this broker leads
    /// it, the coordinators load what they keep in it (an error keeps it offline).
    fn open_partition(&self, tp: &TopicPartition, lc: LogConfig, meta: Option<&crate::metadata::PartitionMeta>) -> Result<Rc<Partition>> {
        let log = PartitionLog::open(&self.cfg.log_dir, &tp.topic, tp.partition, lc, self.ring.clone(), self.recover)?;
        // One broker commits what it writes: its high watermark is its log end. A
        // cluster replica starts from its checkpoint (its tail may never have committed).
        let hw = if self.cfg.is_cluster() { log.checkpointed_high_watermark().unwrap_or(0) } else { i64::MAX };
        let p = Partition::new(log, self.cfg.broker_id, hw);
        let may_lead = self.may_lead(&self.image());
        if meta.and_then(|m| p.apply_image(m, may_lead)) == Some(true) {
            if let Some(events) = self.events() {
                events.partition_opened(tp, &p.log)?;
            }
        }
        Ok(p)
    }

    /// Drops logs of partitions that left the image (deleted topics) and removes
    /// their directories. In-flight fetches keep their open files until they finish.
    fn drop_removed(&self, image: &MetadataImage) {
        let gone: Vec<TopicPartition> = self
            .log_topic_ids
            .borrow()
            .iter()
            .filter(|(tp, id)| match image.topics.get(&tp.topic) {
                // Gone: the topic was deleted (or recreated), or a reassignment
                // took this broker's replica away (Kafka's StopReplica with delete).
                Some(t) => {
                    t.topic_id != **id
                        || t.partitions.get(tp.partition as usize).is_none_or(|p| !image.brokers.is_empty() && !p.replicas.contains(&self.cfg.broker_id))
                }
                None => true,
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in gone {
            self.log_topic_ids.borrow_mut().remove(&tp);
            self.offline.clear(&tp);
            if let Some(p) = self.partitions.borrow_mut().remove(&tp) {
                p.mark_deleted();
            }
            let dir = crate::log::partition_log::partition_dir(&self.cfg.log_dir, &tp.topic, tp.partition);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                crate::warn_limited!(dir = %dir.display(), "removing a deleted partition failed: {e}");
            }
            tracing::info!(topic = %tp.topic, partition = tp.partition, "partition replica deleted");
        }
    }

    /// Serves one request for partitions this shard owns.
    pub async fn handle(self: &Rc<Self>, req: ShardRequest) -> ShardResponse {
        match req {
            ShardRequest::Produce { partitions, acks, timeout_ms } => {
                let futs = partitions.into_iter().map(|(tp, batches)| {
                    let p = self.partition(&tp);
                    async move { produce(p?, batches, acks, timeout_ms).await }
                });
                ShardResponse::Produce(futures::future::join_all(futs).await)
            }
            ShardRequest::Fetch { reads } => {
                let futs = reads.iter().map(|r| {
                    let p = self.partition(&r.tp);
                    async move {
                        let p = p?;
                        if r.replica_id >= 0 {
                            return p.read_for_follower(r.replica_id, r.offset, r.max_bytes, r.current_leader_epoch, r.last_fetched_epoch).await;
                        }
                        p.check_leader(r.current_leader_epoch)?;
                        p.read(r.offset, r.max_bytes, r.read_committed).await
                    }
                });
                ShardResponse::Fetch(futures::future::join_all(futs).await)
            }
            ShardRequest::WaitForAppend { partitions, max_wait_ms, read_committed, replica } => {
                self.wait_for_append(partitions, max_wait_ms, read_committed, replica).await;
                ShardResponse::Waited
            }
            ShardRequest::ListOffsets { partitions, read_committed } => {
                ShardResponse::ListOffsets(futures::future::join_all(partitions.iter().map(|(tp, ts)| self.list_offset(tp, *ts, read_committed))).await)
            }
            // In a cluster, metadata changes go to the active controller when this node is not it.
            ShardRequest::Controller(op) if self.quorum().is_some_and(|q| !q.is_active()) => self.forward_to_controller(op).await,
            ShardRequest::Controller(op) => self.run_controller_op(op).await,
            ShardRequest::OffsetForLeaderEpoch { partitions } => ShardResponse::EpochEndOffsets(
                partitions
                    .iter()
                    .map(|(tp, current, asked)| {
                        let p = self.partition(tp)?;
                        p.check_leader(*current)?;
                        Ok(p.log.end_offset_for_epoch(*asked))
                    })
                    .collect(),
            ),
            ShardRequest::DeleteRecords { partitions } => {
                let futs = partitions.iter().map(|(tp, off)| {
                    let p = self.partition(tp);
                    async move { p?.delete_records_before(*off).await }
                });
                ShardResponse::DeleteRecords(futures::future::join_all(futs).await)
            }
            ShardRequest::DescribeProducers { partitions } => {
                ShardResponse::DescribeProducers(partitions.iter().map(|tp| self.log(tp).map(|l| l.producers())).collect())
            }
            ShardRequest::LogDirSizes => ShardResponse::LogDirSizes(self.partitions.borrow().iter().map(|(tp, p)| (tp.clone(), p.log.size_bytes())).collect()),
            ShardRequest::Metrics { partitions } => ShardResponse::Metrics(Box::new(self.metrics_snapshot(partitions))),
            ShardRequest::DescribeQuorum => ShardResponse::Quorum(self.describe_quorum().await),
            ShardRequest::UnregisterBroker { broker_id } => ShardResponse::Unregistered(match self.quorum() {
                Some(q) => q.unregister_broker(broker_id).await,
                None => Err(Error::BrokerIdNotRegistered("a single broker is not a cluster: no broker registrations".into())),
            }),
            ShardRequest::WriteTxnMarkers { markers } => ShardResponse::WriteTxnMarkers(self.write_txn_markers(markers).await),
            ShardRequest::ApplyMetadata { image, placement } => {
                self.handle_apply(image, placement);
                ShardResponse::MetadataApplied
            }
        }
    }

    /// This shard's counters, its partitions' gauges, its ring's depth and its busy time.
    fn metrics_snapshot(&self, partitions: bool) -> crate::metrics::ShardSnapshot {
        let mut s = crate::metrics::with(|m| m.snapshot());
        s.shard = self.id;
        if partitions {
            s.partitions = self.partitions.borrow().values().map(|p| p.gauges()).collect();
        }
        s.ring_in_flight = self.ring.in_flight() as i64;
        s.tail_cache_bytes = crate::log::tail_cache::used_bytes() as u64;
        s.busy_seconds = glommio::executor().executor_stats().total_runtime().as_secs_f64();
        s
    }

    /// Installs a published image and placement (unless older than the one held),
    /// drops the logs of removed partitions and opens those of new ones here.
    fn handle_apply(&self, image: Arc<MetadataImage>, placement: Arc<ShardPlacement>) {
        if image.version > self.image.borrow().version {
            *self.image.borrow_mut() = image;
            *self.placement.borrow_mut() = placement;
        }
        let current = self.image();
        self.drop_removed(&current);
        self.open_owned(&current, true);
        self.apply_config_changes();
        self.apply_roles(&current);
    }

    /// Tells every open partition its leader, epoch and ISR from `image`.
    fn apply_roles(&self, image: &MetadataImage) {
        let may_lead = self.may_lead(image);
        for (tp, p) in self.partitions() {
            let Some(meta) = image.partition(&tp.topic, tp.partition) else { continue };
            match (p.apply_image(meta, may_lead), self.events()) {
                (Some(true), Some(events)) => {
                    if let Err(e) = events.partition_opened(&tp, &p.log) {
                        crate::error_limited!(topic = %tp.topic, partition = tp.partition, "loading coordinator state as the new leader failed: {e}");
                    }
                }
                (Some(false), Some(events)) => events.partition_closed(&tp),
                _ => {}
            }
        }
    }

    /// Every partition replica this shard holds (for the replica fetchers and the ISR checks).
    pub fn partitions(&self) -> Vec<(TopicPartition, Rc<Partition>)> {
        self.partitions.borrow().iter().map(|(tp, p)| (tp.clone(), p.clone())).collect()
    }

    /// Pushes topic configs into the open logs (live, no restart). Every log is
    /// refreshed: the controller installs its image before the push, so "changed
    /// since the previous image" cannot be told on shard 0. One parse per topic.
    fn apply_config_changes(&self) {
        let logs: Vec<(TopicPartition, Rc<PartitionLog>)> = self.partitions.borrow().iter().map(|(tp, p)| (tp.clone(), p.log.clone())).collect();
        for (tp, log) in logs {
            if let Some(c) = self.topic_config(&tp.topic) {
                log.set_config((*c).clone());
            }
        }
    }

    async fn list_offset(&self, tp: &TopicPartition, ts: i64, read_committed: bool) -> Result<(i64, i64)> {
        let p = self.partition(tp)?;
        p.check_leader(-1)?;
        match ts {
            -1 if read_committed => Ok((-1, p.last_stable_offset())),
            -1 => Ok((-1, p.high_watermark())),
            -2 => Ok((-1, p.log.log_start_offset())),
            ts if ts >= 0 => Ok(p.log.offset_for_timestamp(ts).await?.map(|(o, t)| (t, o)).unwrap_or((-1, -1))),
            _ => Err(Error::InvalidRequest(format!("unsupported ListOffsets timestamp {ts}"))),
        }
    }
}
