//! Command-line tools besides `start`, kept out of `main.rs` so the binary
//! stays a thin clap front.
//!
//! - [`tune`]: `shardlog tune`, host checks (read-only) and their fixes
//!   (`--apply`), after Redpanda's `rpk redpanda tune`.
//! - [`storage`]: `shardlog storage random-uuid` and `format` (Kafka's
//!   `kafka-storage.sh`), a cluster node's data directory before its first start.
//! - The Kafka client tools (after Kafka's `kafka-*.sh` and `rpk`), one module
//!   each: [`topic`], [`config`], [`produce`], [`consume`], [`group`],
//!   [`records`], [`cluster`], [`verifiable`]. They share [`client`]
//!   (bootstrap option, librdkafka config, raw requests, Kafka error names)
//!   and [`output`] (table/JSON listings). They work against any Kafka broker.
//! - Operator tools for a replicated cluster, after kafka-topics.sh
//!   --describe's reports ([`topic_describe`]), kafka-leader-election.sh
//!   ([`election`]), kafka-reassign-partitions.sh ([`reassign`], with
//!   [`assignment`] and [`throttle`]) and kafka-metadata-quorum.sh ([`quorum`]).
//! - [`dev_cluster`]: `shardlog dev cluster`, a local N-node cluster in one command.

pub mod assignment;
pub mod client;
pub mod cluster;
pub mod config;
pub mod consume;
pub mod dev_cluster;
pub mod election;
pub mod group;
pub mod lag;
pub mod output;
pub mod produce;
pub mod quorum;
pub mod reassign;
pub mod records;
pub mod storage;
pub mod throttle;
pub mod topic;
pub mod topic_describe;
pub mod tune;
pub mod verifiable;

/// Turn a client tool's result into the process exit code, printing an error
/// as one line on stderr.
pub fn finish(result: Result<(), client::CliError>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            output::eprint_line(&format!("shardlog: error: {}", e.to_string().trim_end()));
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
