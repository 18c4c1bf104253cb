//! `shardlog storage` (Kafka's `kafka-storage.sh`): make a cluster id and
//! format a data directory for a cluster node before its first start.
//!
//! - `random-uuid` prints a new cluster id.
//! - `format --cluster-id ID` loads the configuration exactly as `shardlog
//!   start` does (`--profile`, `--config`, `--set`), creates `log.dirs` and
//!   writes `meta.properties` there with the cluster id and `node.id`. A
//!   formatted directory is refused unless `--ignore-formatted`, and even then
//!   when it holds another cluster or node id.
//!
//! A single node (no `controller.quorum.voters`) needs no format step: it
//! writes its own `meta.properties` on first start.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::cli::output::{eprint_line, print_line};
use crate::config::Config;
use crate::metadata::log::new_cluster_id;
use crate::metadata::meta_properties::{self, Formatted, MetaProperties};

/// `shardlog storage`.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// What to do.
    #[command(subcommand)]
    pub cmd: StorageCmd,
}

/// The `shardlog storage` commands.
#[derive(Debug, Subcommand)]
pub enum StorageCmd {
    /// Print a new random cluster id (16 bytes, URL-safe base64).
    ///
    /// Example: shardlog storage random-uuid
    RandomUuid,
    /// Write meta.properties (cluster id and node.id) into log.dirs, creating it.
    ///
    /// Example: shardlog storage format --cluster-id "$(shardlog storage random-uuid)" --config node1.toml
    Format {
        /// The cluster id, the same on every node (`shardlog storage random-uuid`).
        #[arg(long, short = 't')]
        cluster_id: String,
        /// Tuning profile, applied before --config (as `shardlog start`).
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Config file (TOML, Kafka key names), as given to `shardlog start`.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// Override one key, e.g. --set node.id=2 (repeatable), as `shardlog start`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Leave a directory already formatted with the same cluster and node id as it is
        /// (one formatted otherwise is still refused).
        #[arg(long, short = 'g')]
        ignore_formatted: bool,
    },
}

/// Runs a `shardlog storage` command: exit 0 on success, 2 for a bad
/// configuration (as `shardlog start`), 1 when the directory is refused.
pub fn run(args: StorageArgs) -> ExitCode {
    match args.cmd {
        StorageCmd::RandomUuid => {
            print_line(&new_cluster_id());
            ExitCode::SUCCESS
        }
        StorageCmd::Format { cluster_id, profile, config, sets, ignore_formatted } => {
            let cfg = match Config::load(profile.as_deref(), config.as_deref(), &sets) {
                Ok(c) => c,
                Err(e) => {
                    eprint_line(&format!("shardlog: {e}"));
                    return ExitCode::from(2);
                }
            };
            let meta = MetaProperties { cluster_id, node_id: cfg.broker_id };
            let dir = cfg.log_dir.display();
            match meta_properties::format(&cfg.log_dir, &meta, ignore_formatted) {
                Ok(Formatted::Written) => {
                    print_line(&format!("Formatted {dir} for cluster {}, node {}", meta.cluster_id, meta.node_id));
                    ExitCode::SUCCESS
                }
                Ok(Formatted::AlreadyFormatted) => {
                    print_line(&format!("{dir} is already formatted for cluster {}, node {}: left as it is", meta.cluster_id, meta.node_id));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprint_line(&format!("shardlog: {e}"));
                    ExitCode::FAILURE
                }
            }
        }
    }
}
