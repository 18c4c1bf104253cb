//! The `shardlog` binary: a thin clap front over the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use shardlog::cli::{cluster, config, consume, election, finish, group, produce, quorum, reassign, records, topic, verifiable};
use shardlog::logging;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "shardlog", version, about = "A Kafka-compatible message broker, thread-per-core")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a broker. With no options: 127.0.0.1:9092, data in ./data, one shard per core.
    ///
    /// Example: shardlog start --profile tuning/profiles/dev-2core.toml --set log.dirs=/var/lib/shardlog
    Start {
        /// Tuning profile (TOML with shard.* keys), applied before --config.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Config file (TOML, Kafka key names).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override one key, e.g. --set log.dirs=/tmp/data (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Check the host for settings a thread-per-core broker depends on (read-only),
    /// and with --apply fix what can be fixed. Exit code 0: findings are advice.
    ///
    /// Example: shardlog tune --profile tuning/profiles/dedicated.toml --output json
    Tune(shardlog::cli::tune::TuneArgs),
    /// Make a cluster id and format a cluster node's data directory (kafka-storage.sh).
    ///
    /// Example: shardlog storage format --cluster-id "$(shardlog storage random-uuid)" --config node1.toml
    Storage(shardlog::cli::storage::StorageArgs),
    /// Create, list, describe, alter and delete topics (kafka-topics.sh).
    Topic(shardlog::cli::topic::TopicArgs),
    /// Describe and alter topic and broker configs (kafka-configs.sh).
    Config(shardlog::cli::config::ConfigArgs),
    /// Produce lines from stdin or a file as records (kafka-console-producer.sh).
    Produce(shardlog::cli::produce::ProduceArgs),
    /// Consume records and print them (kafka-console-consumer.sh).
    Consume(shardlog::cli::consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups (kafka-consumer-groups.sh).
    Group(shardlog::cli::group::GroupArgs),
    /// Delete records before an offset (kafka-delete-records.sh).
    Records(shardlog::cli::records::RecordsArgs),
    /// Cluster id, controller, quorum leader and brokers (rack, fenced).
    Cluster(shardlog::cli::cluster::ClusterArgs),
    /// Describe the KRaft metadata quorum (kafka-metadata-quorum.sh).
    MetadataQuorum(shardlog::cli::quorum::QuorumArgs),
    /// Elect preferred or unclean partition leaders (kafka-leader-election.sh).
    LeaderElection(shardlog::cli::election::ElectionArgs),
    /// Reassign partition replicas between brokers (kafka-reassign-partitions.sh).
    Partitions(shardlog::cli::reassign::PartitionsArgs),
    /// Development helpers: `dev cluster` runs a local N-node cluster until Ctrl-C.
    Dev(shardlog::cli::dev_cluster::DevArgs),
    /// Every API each broker supports, with its version range (kafka-broker-api-versions.sh).
    ApiVersions(shardlog::cli::cluster::ApiVersionsArgs),
    /// Produce sequential values, one JSON event per acknowledgement (kafka-verifiable-producer.sh).
    VerifiableProducer(shardlog::cli::verifiable::VerifiableProducerArgs),
    /// Consume in a group, one JSON event per batch, commit and rebalance (kafka-verifiable-consumer.sh).
    VerifiableConsumer(shardlog::cli::verifiable::VerifiableConsumerArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    set_panic_policy();
    // The broker's log format and level are config keys, so its logging starts
    // once the config is loaded; a config error is one plain line on stderr
    // (below) in either format. Client tools log at once, as text, warnings
    // only: their output is the answer. The broker's lines go through a queue
    // so a stalled or failing stderr never blocks or stops a shard (see
    // shardlog::logging); client tools write in place.
    if !matches!(cli.cmd, Cmd::Start { .. }) {
        logging::init(logging::LogFormat::Text, "warn", logging::StderrSink::direct());
    }
    match cli.cmd {
        Cmd::Topic(args) => finish(topic::run(args)),
        Cmd::Config(args) => finish(config::run(args)),
        Cmd::Produce(args) => finish(produce::run(args)),
        Cmd::Consume(args) => finish(consume::run(args)),
        Cmd::Group(args) => finish(group::run(args)),
        Cmd::Records(args) => finish(records::run(args)),
        Cmd::Cluster(args) => finish(cluster::run(args)),
        Cmd::ApiVersions(args) => finish(cluster::run_api_versions(args)),
        Cmd::MetadataQuorum(args) => finish(quorum::run(args)),
        Cmd::LeaderElection(args) => finish(election::run(args)),
        Cmd::Partitions(args) => finish(reassign::run(args)),
        Cmd::Dev(args) => shardlog::cli::dev_cluster::run(args),
        Cmd::VerifiableProducer(args) => finish(verifiable::run_producer(args)),
        Cmd::VerifiableConsumer(args) => finish(verifiable::run_consumer(args)),
        Cmd::Tune(args) => shardlog::cli::tune::run(args),
        Cmd::Storage(args) => shardlog::cli::storage::run(args),
        Cmd::Start { profile, config, sets } => {
            let cfg = match shardlog::config::Config::load(profile.as_deref(), config.as_deref(), &sets) {
                Ok(c) => c,
                Err(e) => {
                    logging::stderr_line(&format!("shardlog: {e}"));
                    return std::process::ExitCode::from(2);
                }
            };
            let format = cfg.log_format;
            logging::init(format, &cfg.log_level, logging::StderrSink::queued());
            let code = match shardlog::runtime::run(cfg) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                // In JSON, every line after logging started is an object, this one too.
                Err(e) if format == logging::LogFormat::Json => {
                    tracing::error!("shardlog: {e}");
                    std::process::ExitCode::FAILURE
                }
                Err(e) => {
                    logging::stderr_line(&format!("shardlog: {e}"));
                    std::process::ExitCode::FAILURE
                }
            };
            logging::flush(LOG_FLUSH_AT_EXIT);
            code
        }
    }
}

/// How long an exiting broker waits for its queued log lines to be written.
const LOG_FLUSH_AT_EXIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The panic policy: every panic aborts the process.
///
/// - What may panic: only a broken invariant of our own code (a programmer
///   error; an `expect` on something that cannot fail by construction). Bad
///   input from a client or the disk is an `Error` with a Kafka code (see
///   `error.rs`), a failed log sink is a dropped line (`shardlog::logging`),
///   and a closed pipe is EPIPE (SIGPIPE is ignored): none of them panic.
/// - Why abort, not unwind: a panic on a shard leaves its partitions without
///   an owner mid-operation (an append queue, producer state, a group's
///   generation possibly half-updated). Serving on from that state could
///   acknowledge data that is not stored or hand out wrong offsets; a restart
///   recovers every partition from disk (CRC-checked when the clean-shutdown
///   marker is missing, which an abort guarantees).
/// - Order: queued log lines first (so the lines before the panic are not
///   lost), then the default hook's message and backtrace, then abort.
///   Client tools abort too; a panic there is a bug as well.
fn set_panic_policy() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        logging::flush(std::time::Duration::from_millis(500));
        // std's default hook ignores write errors on stderr.
        default_hook(info);
        std::process::abort();
    }));
}
