//! Cluster metadata: changes as records in a log, the image they add up to, and
//! this broker's local placement of partitions on shards (with routing).
//!
//! The controller (shard 0 on a single broker; the Raft leader in a cluster) is
//! the only writer: it appends records to [`log::MetadataLog`], applies them to a
//! copy of the image and publishes the new [`image::MetadataImage`] and
//! [`placement::ShardPlacement`] to every shard. Everything here is plain data
//! and file I/O: it depends on nothing above `io/`. `meta_properties` is the
//! data directory's cluster and node id (`shardlog storage format`).

pub mod image;
pub mod log;
pub mod meta_properties;
pub mod partition_change;
pub mod placement;
pub mod producer_ids;
pub mod reassignment;
pub mod records;

pub use image::{MetadataImage, PartitionMeta, TopicMeta};
pub use placement::{route, Route, ShardPlacement};
pub use records::MetadataRecord;

/// Kafka's topic name rule (kept with the other name rules in `protocol::topic`).
pub use crate::protocol::topic::validate_topic_name;
