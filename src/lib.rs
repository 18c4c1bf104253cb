//! # shardlog — a Kafka-compatible broker, thread-per-core
//!
//! ## Layout, top layer first (`layers.txt`; `../shared/tools/layers.py src` checks it)
//! ```text
//! cli/       the `shardlog` command: start, storage (format), topics, produce/consume, groups, tune
//! runtime/   pinned glommio executors, one shard each; start-up (log dir lock, port claim,
//!            RLIMIT_NOFILE, metadata replay and shard placement) and clean stop
//! net/       SO_REUSEPORT listener per shard, framing (size checked first), in-order responses;
//!            connection quotas and the request-bytes budget
//! router/    one flat match on the API key; the version gate; the decision to close
//! handlers/  one file per Kafka API
//! services/  what several APIs share: creating topics through the controller (internal ones on
//!            first use), finding the core that coordinates a group or transactional id, the
//!            brokers clients are told about
//! cluster/   (beside services/) KRaft mode: the Raft metadata quorum (raft-rs, its WAL, a
//!            deterministic simulation), the quorum member on shard 0 that applies committed
//!            metadata everywhere, broker registration/heartbeats/fencing, the controller
//!            listener, forwarding to the active controller, inter-broker WriteTxnMarkers
//! xshard/    the only code touching cross-core channels; fan-out/reassembly per owner shard;
//!            bounded in flight per shard pair
//! coordinator/ consumer groups (classic, and KIP-848's consumer protocol) and transactions, each
//!            on the core owning its __consumer_offsets or __transaction_state partition, above
//!            that core's shard (they read and append through its logs)
//! shard/     partition owner: partitions (log + high watermark, shard/partition.rs), fetch waiters
//!            (Rc/RefCell, no locks); shard 0 is also the metadata controller
//!            (shard/controller.rs: records -> metadata log, or the cluster's quorum -> publish)
//! log/       segments, sparse indexes, recovery, compaction (Kafka's on-disk layout); the topic
//!            rules a produced batch must pass (log/produce_policy.rs, Kafka's LogValidator)
//! admin/     the admin HTTP listener on shard 0 (runtime/ starts it): Prometheus /metrics,
//!            the JSON admin API, the web console, consumer lag with its verdict
//! metrics/   (ground floor) per-shard counters the data path bumps in plain cells, gathered
//!            across shards when scraped
//! metadata/  metadata records, the metadata log and its checkpoints, the image they add up to,
//!            this broker's shard placement and routing (Local(shard) | Remote(broker) | Unknown)
//! ---- ground floor, usable by all ----
//! config/    Kafka key names, every limit named with its unit; topic configs (config/topic.rs)
//! error      thiserror errors and the one mapping to Kafka error codes
//! protocol/  kafka-protocol codecs (vendor/kafka-protocol: bounded decoding), RecordBatch-as-bytes,
//!            record validation (Kafka's LogValidator), topic name rules, zero-copy Fetch encoding
//! io/        per-shard io_uring ring (reads, writev, fsync, splice), durable file replacement,
//!            safe wrappers of raw syscalls; with runtime/, the only `unsafe`
//! sync       the shard-local `Notify`
//! clock      the clock time-based logic reads: the system's, or a manual one tests move
//! logging    the stderr sink that drops instead of failing; rate-limited error logs
//! ```
//!
//! What may block a shard thread: nothing that waits for the device. Every fsync, every log
//! append, cleaner and metadata-log write, and every serving read that misses the page cache
//! (`Ring::read_exact_at_cached_first`) goes through the shard's io_uring ring, so the core keeps
//! serving while the device works; `statvfs` runs on the blocking pool. Plain syscalls remain for
//! metadata calls (open, rename, unlink) and small page-cache writes (index files and the
//! producer-state snapshot at a roll, transaction-index entries, offset checkpoints), and for
//! opening a log (recovery, a coordinator's replay): on one broker a partition holding data
//! opens only at start-up, before serving.
//!
//! Calls only point down. Where a lower layer must reach a higher one, it owns a
//! small interface that the higher one implements, held weakly:
//! - `shard::links::PartitionEvents` (implemented by `coordinator::Coordinators`): a
//!   `__consumer_offsets` / `__transaction_state` partition opened, a marker written.
//! - `shard::links::Peers` (implemented by `xshard::XShard`): the controller publishes a
//!   metadata image to every shard.
//! - `coordinator::Outbound` (implemented by `xshard::XShard`): transaction markers to the
//!   partitions' owners, producer-id blocks from the controller.
//! - `shard::links::MetadataQuorum` (implemented by `cluster::node::ClusterNode`, on a
//!   cluster node's shard 0): the controller proposes through the Raft quorum, or forwards
//!   the operation to the active controller when it is not it.
//! - `xshard::RemoteBrokers` (implemented by `cluster::inter_broker::InterBrokerClient`, one
//!   per core in a cluster): transaction markers for partitions other brokers lead, sent
//!   with Kafka's inter-broker WriteTxnMarkers.
//!
//! So a core is two objects: its partition owner (`Shard`) and its coordinators
//! (`Coordinators`, above it); `xshard` carries requests for either between cores.
//!
//! ## Where what comes next lives
//! - **Replication** (`cluster/`): replica fetchers and ISR tracking, which advance
//!   `shard::partition::Partition`'s high watermark instead of the log end, with
//!   AlterPartition through the same controller path as the other metadata changes.
//! - **Security** (in `net/` and `router/`): TLS and SASL at the connection (`net/`),
//!   authorization (ACLs, kept as metadata records) checked in `router/` before a
//!   handler runs.

// `unsafe` is allowed in io/ and runtime/ only, each block with a `// SAFETY:` comment.
#![deny(unsafe_code)]

pub mod admin;
#[cfg(feature = "cli")]
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod coordinator;
pub mod error;
pub mod handlers;
#[allow(unsafe_code)]
pub mod io;
pub mod log;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod net;
pub mod protocol;
pub mod router;
#[allow(unsafe_code)]
pub mod runtime;
pub mod services;
pub mod shard;
pub mod sync;
pub mod xshard;
