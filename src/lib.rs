//! # shardlog — a Kafka-compatible broker, thread-per-core
//!
//! ## Layout, in data-path order
//! ```text
//! runtime/   pinned glommio executors, one shard each; start-up (log dir lock, port claim,
//!            RLIMIT_NOFILE) and clean stop
//! net/       SO_REUSEPORT listener per shard, framing (size checked first), in-order responses
//! router/    one flat match on the API key; the version gate; the decision to close
//! handlers/  one file per Kafka API
//! xshard/    the only code touching cross-core channels; fan-out/reassembly per owner shard
//! shard/     partition owner: partitions (log + high watermark, shard/partition.rs), fetch waiters
//!            (Rc/RefCell, no locks); shard 0 is also the
//!            metadata controller (shard/controller.rs: records -> metadata log -> publish)
//! coordinator/ consumer groups (classic, and KIP-848's consumer protocol) and transactions, each
//!            on the shard owning its __consumer_offsets
//!            or __transaction_state partition; producer id blocks from the controller
//! log/       segments, sparse indexes, recovery (Kafka's on-disk layout)
//! metadata/  metadata records, the metadata log and its checkpoints, the image they add up to,
//!            this broker's shard placement and routing (Local(shard) | Remote(broker) | Unknown)
//! ---- ground floor, usable by all ----
//! protocol/  kafka-protocol codecs (vendor/kafka-protocol: bounded decoding), RecordBatch-as-bytes,
//!            record validation (Kafka's LogValidator), topic name rules, zero-copy Fetch encoding
//! config     Kafka key names, every limit named with its unit
//! io/        per-shard io_uring ring (writev, splice), zero-copy send
//! error      thiserror errors and the one mapping to Kafka error codes
//! logging    the stderr sink that drops instead of failing; rate-limited error logs
//! ```

// `unsafe` is allowed in io/ and runtime/ only, each block with a `// SAFETY:` comment.
#![deny(unsafe_code)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod coordinator;
pub mod error;
pub mod handlers;
#[allow(unsafe_code)]
pub mod io;
pub mod log;
pub mod logging;
pub mod metadata;
pub mod net;
pub mod protocol;
pub mod router;
#[allow(unsafe_code)]
pub mod runtime;
pub mod shard;
pub mod sync;
pub mod xshard;
