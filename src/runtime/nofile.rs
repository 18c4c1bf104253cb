//! RLIMIT_NOFILE: raised at start, and checked against what the data dir needs.
//!
//! Every segment of every partition keeps its `.log` file open (fetches send
//! straight from it), every client connection is a socket, and each shard holds
//! a few descriptors of its own. The soft limit is raised to the hard one (as
//! `fit_io_memory` does for RLIMIT_MEMLOCK), and the need is estimated from the
//! partitions and segment files in the log dir: below it, start-up warns, and
//! the partitions that do not fit stay offline (KAFKA_STORAGE_ERROR; see
//! `shard::offline`) while the rest are served. `shardlog tune` runs the same
//! estimate.

use std::path::Path;

use crate::log::partition_log::segment_file_count;
use crate::shard::metadata::MetadataImage;
use crate::shard::offline::descriptors_reserved;

/// Descriptors each shard holds for its life, measured with glommio 0.9 on
/// Linux 6.18: four io_uring rings (glommio's three and the shard's own), three
/// eventfds (ring completions, glommio wake-ups, the stop signal) and the listener.
pub const DESCRIPTORS_PER_SHARD: u64 = 8;

/// Descriptors of the process outside the shards: stdin, stdout, stderr, the
/// log dir lock, the port claim and a few for start-up itself.
pub const DESCRIPTORS_PER_PROCESS: u64 = 8;

/// The soft and hard RLIMIT_NOFILE after [`raise_nofile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nofile {
    /// The soft limit before raising.
    pub before: u64,
    /// The soft limit now (what the process may open).
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (to `fs.nr_open` when the
/// hard limit is unlimited, since the kernel refuses more) and logs it.
pub fn raise_nofile() -> Nofile {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into our local struct only.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!("getrlimit(RLIMIT_NOFILE) failed: {}", std::io::Error::last_os_error());
        return Nofile { before: 1024, soft: 1024, hard: 1024 };
    }
    let before = lim.rlim_cur;
    let target = if lim.rlim_max == libc::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(1 << 20)
    } else {
        lim.rlim_max
    };
    if lim.rlim_cur < target {
        let raised = libc::rlimit { rlim_cur: target, rlim_max: lim.rlim_max };
        // SAFETY: plain setrlimit on our own process.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = target;
            tracing::info!(from = before, to = target, "raised RLIMIT_NOFILE soft limit to the hard limit");
        } else {
            tracing::warn!(soft = before, hard = target, "raising RLIMIT_NOFILE failed: {}", std::io::Error::last_os_error());
        }
    }
    Nofile { before, soft: lim.rlim_cur, hard: lim.rlim_max }
}

/// The descriptors a broker needs, by use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileNeed {
    /// Partitions in the metadata image (or an estimate).
    pub partitions: u64,
    /// Their segment files, each open for the partition's life; a partition
    /// without any counts one (the segment it creates).
    pub segments: u64,
    /// Shards, each holding [`DESCRIPTORS_PER_SHARD`].
    pub shards: u64,
    /// Kept free by partition opens for connections and short-lived files
    /// (`shard::offline::descriptors_reserved` of the limit).
    pub reserved: u64,
}

impl NofileNeed {
    /// The need for the partitions of `image`, counting their segment files under `log_dir`.
    pub fn of_image(image: &MetadataImage, log_dir: &Path, shards: usize, limit: u64) -> NofileNeed {
        let mut partitions = 0u64;
        let mut segments = 0u64;
        for t in image.topics.values() {
            for p in 0..t.partitions.len() {
                partitions += 1;
                segments += segment_file_count(log_dir, &t.name, p as i32).max(1);
            }
        }
        NofileNeed { partitions, segments, shards: shards as u64, reserved: descriptors_reserved(limit) }
    }

    /// The need for `partitions` new partitions (one segment each).
    pub fn estimate(partitions: u64, shards: usize, limit: u64) -> NofileNeed {
        NofileNeed { partitions, segments: partitions, shards: shards as u64, reserved: descriptors_reserved(limit) }
    }

    /// Descriptors in all.
    pub fn total(&self) -> u64 {
        DESCRIPTORS_PER_PROCESS + self.shards * DESCRIPTORS_PER_SHARD + self.segments + self.reserved
    }

    /// "1234 = 500 partitions with 600 segment files + 2 shards x 8 + 64 kept free for connections + 8".
    pub fn describe(&self) -> String {
        format!(
            "{} = {} partitions with {} segment files + {} shards x {DESCRIPTORS_PER_SHARD} + {} kept free for connections + {DESCRIPTORS_PER_PROCESS}",
            self.total(),
            self.partitions,
            self.segments,
            self.shards,
            self.reserved
        )
    }
}

/// Logs the estimate at start, as a warning when the soft limit is below it.
pub fn check_need(limit: &Nofile, need: &NofileNeed) {
    if limit.soft < need.total() {
        tracing::warn!(
            soft = limit.soft,
            hard = limit.hard,
            "RLIMIT_NOFILE {} is below the estimated need of {}: partition logs that do not fit stay offline \
             (KAFKA_STORAGE_ERROR) and connections may be refused; raise the hard limit (`ulimit -Hn`, \
             LimitNOFILE= in a systemd unit; `shardlog tune` checks it)",
            limit.soft,
            need.describe()
        );
    } else {
        tracing::info!(soft = limit.soft, "RLIMIT_NOFILE covers the estimated need of {}", need.describe());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn need_adds_up() {
        let n = NofileNeed::estimate(500, 2, 256);
        assert_eq!(n.total(), 8 + 16 + 500 + 64);
        assert_eq!(n.describe(), "588 = 500 partitions with 500 segment files + 2 shards x 8 + 64 kept free for connections + 8");
    }
}
