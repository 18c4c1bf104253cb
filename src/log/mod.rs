//! Partition logs on disk, in Kafka's layout:
//!
//! ```text
//! <log.dirs>/
//!   .kafka_cleanshutdown          present only after a clean stop (skips CRC recovery)
//!   shardlog-metadata.json        topics, partition owners, topic configs (controller-written)
//!   <topic>-<partition>/
//!     00000000000000000000.log        record batches, base offset in the name (20 digits)
//!     00000000000000000000.index      sparse offset -> position
//!     00000000000000000000.timeindex  sparse timestamp -> offset
//!     log-start-offset                the log start offset when it is above the first segment
//! ```
//!
//! This layer knows batches, offsets and files, never Kafka requests.

pub mod cleaner;
pub mod partition_log;
pub mod segment;

pub use partition_log::{AppendInfo, PartitionLog, ReadSlice};

/// Name of the marker written after a clean shutdown (Kafka's name for it).
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

/// The log settings of one partition: broker defaults overridden by topic configs.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`: roll before a segment would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a non-empty segment older than this.
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
}

impl LogConfig {
    /// Broker defaults, then the topic's own configs (already validated at creation).
    pub fn from(cfg: &crate::config::Config, topic: &std::collections::BTreeMap<String, String>) -> LogConfig {
        let num = |k: &str| topic.get(k).and_then(|v| v.parse::<i64>().ok());
        let opt = |v: Option<i64>| v.filter(|&n| n > 0 && n != i64::MAX).map(|n| n as u64);
        LogConfig {
            segment_bytes: num("segment.bytes").map(|v| v as u64).unwrap_or(cfg.log_segment_bytes),
            roll_ms: num("segment.ms").map(|v| v as u64).unwrap_or(cfg.log_roll_ms),
            index_interval_bytes: num("index.interval.bytes").map(|v| v as u64).unwrap_or(cfg.log_index_interval_bytes),
            flush_messages: if topic.contains_key("flush.messages") { opt(num("flush.messages")) } else { cfg.log_flush_interval_messages },
            flush_ms: if topic.contains_key("flush.ms") { opt(num("flush.ms")) } else { cfg.log_flush_interval_ms },
            log_append_time: match topic.get("message.timestamp.type") {
                Some(v) => v == "LogAppendTime",
                None => cfg.log_message_timestamp_type == crate::config::TimestampType::LogAppendTime,
            },
            max_message_bytes: num("max.message.bytes").map(|v| v as usize).unwrap_or(cfg.message_max_bytes),
        }
    }
}
