//! Partition logs on disk, in Kafka's layout:
//!
//! ```text
//! <log.dirs>/
//!   .kafka_cleanshutdown          present only after a clean stop (skips CRC recovery)
//!   meta.properties               cluster id and node id
//!   __cluster_metadata-0/         the metadata log: records and checkpoints (see `metadata/`)
//!   shard-placement.json          which shard of this broker holds each partition
//!   <topic>-<partition>/
//!     00000000000000000000.log        record batches, base offset in the name (20 digits)
//!     00000000000000000000.index      sparse offset -> position
//!     00000000000000000000.timeindex  sparse timestamp -> offset
//!     00000000000000000000.txnindex   aborted transactions whose markers are in this segment
//!     00000000000000001234.snapshot   producer state as of offset 1234 (the two newest kept)
//!     log-start-offset                the log start offset when it is above the first segment
//!     cleaner-offset-checkpoint       compacted topics: the first offset not yet cleaned
//!     leader-epoch-checkpoint         leader epochs and the offset each started at (see `leader_epoch`)
//! ```
//!
//! This layer knows batches, offsets and files, never Kafka requests.

pub mod cleaner;
pub mod direct_write;
pub mod layout;
pub mod leader_epoch;
pub mod partition_log;
pub mod produce_policy;
pub mod producer_state;
pub mod segment;
pub mod tail_cache;
pub mod txn_index;

pub use partition_log::{AppendInfo, CleanStats, PartitionLog, ReadSlice};

/// Name of the marker written after a clean shutdown (Kafka's name for it).
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

/// The log settings of one partition: broker defaults overridden by topic
/// configs (see [`crate::config::topic`] for the keys and their broker synonyms).
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`: roll before a segment would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms` (compacted logs: at most `max.compaction.lag.ms`): roll a
    /// non-empty segment older than this.
    pub roll_ms: u64,
    /// `index.interval.bytes`: log bytes between sparse index entries.
    pub index_interval_bytes: u64,
    /// `flush.messages`: fdatasync after this many records; None = the OS decides.
    pub flush_messages: Option<u64>,
    /// `flush.ms`: fdatasync data older than this; None = the OS decides.
    pub flush_ms: Option<u64>,
    /// `message.timestamp.type=LogAppendTime`: the broker stamps batches on append.
    pub log_append_time: bool,
    /// `max.message.bytes`: largest batch accepted for this topic.
    pub max_message_bytes: usize,
    /// `retention.ms`: delete closed segments whose newest record is older; None = forever.
    pub retention_ms: Option<i64>,
    /// `retention.bytes`: delete the oldest closed segments beyond this size; None = no limit.
    pub retention_bytes: Option<i64>,
    /// `cleanup.policy` contains `delete`: retention applies.
    pub delete: bool,
    /// `cleanup.policy` contains `compact`: the cleaner keeps the latest record per key.
    pub compact: bool,
    /// `delete.retention.ms`: tombstones older than this are removed by the cleaner.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: the cleaner stops at the first dirty segment
    /// holding a record younger than this.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty record older than this makes the log
    /// cleanable whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `compression.type`: None = `producer` (store as sent), else the codec to store.
    pub compression: Option<kafka_protocol::records::Compression>,
    /// `message.timestamp.before.max.ms` / `after.max.ms` (CreateTime topics).
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far (ms) a record's timestamp may be
    /// ahead of the broker's clock (KIP-937); i64::MAX disables the check.
    pub timestamp_after_max_ms: i64,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `log.tail.cache.bytes` (broker only): the shard's tail cache budget.
    pub tail_cache_bytes: usize,
    /// `log.direct.io` (broker only): segment writes bypass the page cache.
    pub direct_io: bool,
    /// The broker's clock (`Config::clock`): LogAppendTime, marker timestamps,
    /// segment age for `segment.ms`, `flush.ms`.
    pub clock: crate::clock::Clock,
}

impl LogConfig {
    /// Broker defaults, then the topic's own overrides (validated when they were set).
    pub fn from(cfg: &crate::config::Config, topic: &std::collections::BTreeMap<String, String>) -> LogConfig {
        let broker = crate::config::topic::BrokerValues::of(cfg);
        let text = |name: &str| match crate::config::topic::def(name) {
            Some(d) => crate::config::topic::effective(&broker, topic, d).0,
            None => String::new(),
        };
        let num = |name: &str| text(name).parse::<i64>().unwrap_or(0);
        // Kafka's "no limit" forms: flush.* at Long.MAX (or <= 0), retention at -1.
        let flush = |name: &str| Some(num(name)).filter(|&n| n > 0 && n != i64::MAX).map(|n| n as u64);
        let limit = |name: &str| Some(num(name)).filter(|&n| n >= 0);
        let policy = text("cleanup.policy");
        let compact = policy.split(',').any(|p| p == "compact");
        let max_compaction_lag_ms = num("max.compaction.lag.ms").max(1);
        // As Kafka's LogConfig.maxSegmentMs: a compacted log rolls its active
        // segment by max.compaction.lag.ms too, since the cleaner never touches
        // the active segment and the lag could not be kept otherwise.
        let roll_ms = if compact { num("segment.ms").min(max_compaction_lag_ms) } else { num("segment.ms") };
        LogConfig {
            segment_bytes: num("segment.bytes") as u64,
            roll_ms: roll_ms as u64,
            index_interval_bytes: num("index.interval.bytes").max(1) as u64,
            flush_messages: flush("flush.messages"),
            flush_ms: flush("flush.ms"),
            log_append_time: text("message.timestamp.type") == "LogAppendTime",
            max_message_bytes: num("max.message.bytes") as usize,
            retention_ms: limit("retention.ms"),
            retention_bytes: limit("retention.bytes"),
            delete: policy.split(',').any(|p| p == "delete"),
            compact,
            delete_retention_ms: num("delete.retention.ms"),
            min_cleanable_dirty_ratio: text("min.cleanable.dirty.ratio").parse().unwrap_or(0.5),
            min_compaction_lag_ms: num("min.compaction.lag.ms").max(0),
            max_compaction_lag_ms,
            compression: crate::protocol::compression::codec_for(&text("compression.type")),
            timestamp_before_max_ms: num("message.timestamp.before.max.ms"),
            timestamp_after_max_ms: num("message.timestamp.after.max.ms"),
            min_insync_replicas: num("min.insync.replicas") as i32,
            tail_cache_bytes: cfg.log_tail_cache_bytes,
            direct_io: cfg.log_direct_io,
            clock: cfg.clock.clone(),
        }
    }
}
