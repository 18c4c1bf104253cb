//! Start-up of a cluster node, before any shard runs (blocking I/O is fine):
//! the Raft log is opened from `<log.dirs>/__cluster_metadata-0/` and the image
//! rebuilt from its snapshot and the committed entries after it, so the shards
//! open the partitions this node holds before anything is served — as a single
//! broker does from its own metadata log, which a cluster node does not use.
//!
//! A broker-only node (`process.roles=broker`) has no Raft log: it starts from
//! an empty image at offset 0 and fetches the whole committed log (or the
//! controller's snapshot) from the active controller ([`super::observer`]).
//! Nothing of the metadata is kept on its disk; its partitions' logs open when
//! the image that holds them arrives (`Shard::handle_apply`), with the same
//! recovery as at start-up.

use std::io;
use std::path::Path;

use super::node::{apply_entry, image_from_snapshot};
use super::quorum::store::MemoryLog;
use super::quorum::wal::Wal;
use crate::config::Config;
use crate::metadata::log::METADATA_DIR;
use crate::metadata::MetadataImage;

/// What start-up hands the controller shard.
pub struct ClusterBoot {
    /// The cluster id from `meta.properties`.
    pub cluster_id: String,
    /// A controller's Raft log; None on a broker-only node.
    pub raft: Option<RaftLog>,
    /// The image at `applied`.
    pub image: MetadataImage,
    /// The Raft index the image holds (the commit index found on disk).
    pub applied: u64,
}

/// A controller's Raft log, opened.
pub struct RaftLog {
    /// The WAL, open for appends.
    pub wal: Wal,
    /// The log the WAL holds.
    pub log: MemoryLog,
}

/// Opens the metadata quorum's log and rebuilds the image (a controller), or
/// starts from an empty image (a broker-only node).
pub fn open(cfg: &Config, cluster_id: String) -> io::Result<ClusterBoot> {
    if !cfg.process_roles.controller {
        let image = MetadataImage::empty(cluster_id.clone());
        tracing::info!("broker-only node: the metadata comes from the controller quorum");
        return Ok(ClusterBoot { cluster_id, raft: None, image, applied: 0 });
    }
    let dir = cfg.log_dir.join(METADATA_DIR);
    refuse_single_broker_log(&dir)?;
    std::fs::create_dir_all(&dir)?;
    let (wal, log) = Wal::open(&dir)?;
    let (image, applied) = image_at_start(&log, &cluster_id).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", dir.display())))?;
    tracing::info!(applied, topics = image.topics.len(), brokers = image.brokers.len(), "metadata rebuilt from the quorum's log");
    Ok(ClusterBoot { cluster_id, raft: Some(RaftLog { wal, log }), image, applied })
}

/// A single broker's metadata log (`<offset>.log` frames of JSON) in the same
/// directory would be read as Raft frames: refuse it, with what to do.
fn refuse_single_broker_log(dir: &Path) -> io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let single = name.len() == 24 && name.ends_with(".log") && name[..20].bytes().all(|b| b.is_ascii_digit());
        if single {
            return Err(io::Error::other(format!(
                "{} holds a single broker's metadata log ({name}); a cluster node needs a data directory of its own \
                 (format a new one with `shardlog storage format`)",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// The image the log's snapshot and committed entries add up to, and its index.
/// An entry the image refuses is skipped, as the applier skips it on every node.
pub fn image_at_start(log: &MemoryLog, cluster_id: &str) -> Result<(MetadataImage, u64), String> {
    let snap = log.snapshot_ref();
    let snap_index = snap.get_metadata().index;
    let mut image = if snap_index > 0 { image_from_snapshot(cluster_id, snap_index, &snap.data)? } else { MetadataImage::empty(cluster_id.to_string()) };
    let commit = log.hard_state().commit;
    let mut applied = snap_index;
    for e in log.entries_ref() {
        if e.index > commit {
            break;
        }
        if e.index <= snap_index {
            continue;
        }
        applied = e.index;
        if e.get_entry_type() != raft::prelude::EntryType::EntryNormal || e.data.is_empty() {
            continue;
        }
        match apply_entry(&image, e.index, &e.data) {
            Ok(next) => image = next,
            Err(why) => tracing::error!(index = e.index, "metadata entry refused at start-up: {why}"),
        }
    }
    image.version = applied;
    Ok((image, applied))
}
