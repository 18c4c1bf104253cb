//! The consumer group protocol of KIP-848 ("next generation", `group.protocol=consumer`
//! in the Java client and librdkafka), beside the classic protocol of
//! [`super::group`]. Members only heartbeat (ConsumerGroupHeartbeat); the
//! coordinator computes the assignment with a server-side assignor and moves
//! each member towards it one heartbeat at a time, incrementally: a partition
//! changes owner only after its old owner said it let go.
//!
//! A group lives on the same shard as a classic group of the same id would
//! (its `__consumer_offsets` partition); FindCoordinator is unchanged.
//!
//! ```text
//! member.rs      a member: subscription, epochs, owned / revoking / target partitions
//! group.rs       the group: epochs, members, partition owners, derived state
//! reconcile.rs   one member's next step towards its target (pure)
//! assignor/      uniform (default) and range server-side assignors (pure)
//! heartbeat.rs   ConsumerGroupHeartbeat: join, heartbeat, leave, timeouts
//! records.rs     the group's records in __consumer_offsets, and their replay
//! service.rs     the coordinator's entry points; offset API checks; classic interplay
//! ```
//!
//! Not built (Kafka has them): online migration between the classic and the
//! consumer protocol of a group with members; classic members inside a
//! consumer-protocol group; per-group configs (`consumer.session.timeout.ms`,
//! `consumer.heartbeat.interval.ms` through IncrementalAlterConfigs); rack-aware
//! assignment; client-side assignors (KIP-848's optional part, not in Kafka either).

pub mod assignor;
pub mod group;
pub mod heartbeat;
pub mod member;
pub mod reconcile;
pub mod records;
pub mod service;

pub use group::{ConsumerGroup, ConsumerGroupState};
pub use heartbeat::Answer;
pub use service::{ConsumerGroupDescription, DescribedMember};
