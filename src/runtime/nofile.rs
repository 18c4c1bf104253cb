//! RLIMIT_NOFILE: raised at start, and checked against what the data dir needs.
//!
//! Every segment of every partition keeps its `.log` file open (fetches send
//! straight from it), the active segment of a written partition has a second
//! one (its O_DIRECT writer, see `log::direct_write`), every client connection
//! is a socket, and each shard holds a few descriptors of its own. The soft
//! limit is raised to the hard one (as `fit_io_memory` does for
//! RLIMIT_MEMLOCK), and the need is estimated from the
//! partitions and segment files in the log dir: below it, start-up warns, and
//! the partitions that do not fit stay offline (KAFKA_STORAGE_ERROR; see
//! `shard::offline`) while the rest are served. `shardlog tune` runs the same
//! estimate.
//!
//! Which partitions fit is decided here, before the shards start, in one
//! order ([`startup_partitions`]): shards open their logs concurrently, and
//! left to race, the first shard to start would take every descriptor and its
//! neighbours' partitions, internal ones included, would all be offline.

use std::path::Path;

use crate::log::partition_log::segment_file_count;
use crate::metadata::MetadataImage;
use crate::shard::offline::descriptors_reserved;
use crate::shard::request::TopicPartition;

/// Descriptors each shard holds for its life, measured with glommio 0.9 on
/// Linux 6.18: four io_uring rings (glommio's three and the shard's own), three
/// eventfds (ring completions, glommio wake-ups, the stop signal) and the listener.
pub const DESCRIPTORS_PER_SHARD: u64 = 8;

/// Descriptors of the process outside the shards: stdin, stdout, stderr, the
/// log dir lock, the port claim and a few for start-up itself.
pub const DESCRIPTORS_PER_PROCESS: u64 = 8;

/// Descriptors each partition holds besides its segment files: the active
/// segment's writer (O_DIRECT), opened at its first write. Counted for every
/// partition, written or not, so a partition that opened is never one whose
/// first write fails for want of a descriptor.
pub const WRITE_DESCRIPTORS_PER_PARTITION: u64 = 1;

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

/// One partition of the image with the descriptors its log will hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFiles {
    /// The partition (topic name and index).
    pub tp: TopicPartition,
    /// Id of its topic (KIP-516), kept with the partition when start-up marks it
    /// offline, so a later topic of the same name is not mistaken for it.
    pub topic_id: uuid::Uuid,
    /// Its segment files under the log dir, at least 1 (the one a new log creates).
    pub segments: u64,
}

impl PartitionFiles {
    /// Descriptors its log holds open: the segment files and the writer.
    pub fn descriptors(&self) -> u64 {
        self.segments + WRITE_DESCRIPTORS_PER_PARTITION
    }
}

/// Every partition of `image` in start-up order: internal topics (`__*`:
/// groups and transactions depend on them) first, then the image's order
/// (topic name, partition index), with their segment files under `log_dir`.
pub fn startup_partitions(image: &MetadataImage, log_dir: &Path) -> Vec<PartitionFiles> {
    let (internal, other): (Vec<_>, Vec<_>) = image.topics.values().partition(|t| t.name.starts_with("__"));
    internal
        .into_iter()
        .chain(other)
        .flat_map(|t| {
            (0..t.partitions.len() as i32).map(move |p| PartitionFiles {
                tp: TopicPartition { topic: t.name.clone(), partition: p },
                topic_id: t.topic_id,
                segments: segment_file_count(log_dir, &t.name, p).max(1),
            })
        })
        .collect()
}

/// Files a shard has open for a moment while it opens a log (a directory
/// listing, an index or snapshot being read): the shards open in parallel at
/// start-up, so the budget leaves these free too.
pub const DESCRIPTORS_OPENING_PER_SHARD: u64 = 4;

/// Descriptors the shards' logs may hold at start-up within `soft`: what is left
/// after the process's and the shards' own descriptors, those the shards use
/// for a moment while opening, and the [`descriptors_reserved`] for
/// connections. All of the planned opens succeed whichever shard is first.
pub fn startup_budget(soft: u64, shards: usize) -> u64 {
    let shards = shards as u64;
    soft.saturating_sub(DESCRIPTORS_PER_PROCESS + shards * (DESCRIPTORS_PER_SHARD + DESCRIPTORS_OPENING_PER_SHARD) + descriptors_reserved(soft))
}

/// The partitions, a suffix of `parts` in its order, whose logs do not fit in
/// `budget` descriptors ([`PartitionFiles::descriptors`]).
pub fn over_budget(parts: &[PartitionFiles], budget: u64) -> &[PartitionFiles] {
    let mut used = 0u64;
    for (i, p) in parts.iter().enumerate() {
        used += p.descriptors();
        if used > budget {
            return &parts[i..];
        }
    }
    &[]
}

impl NofileNeed {
    /// The need for `parts` (see [`startup_partitions`]).
    pub fn of_partitions(parts: &[PartitionFiles], shards: usize, limit: u64) -> NofileNeed {
        NofileNeed {
            partitions: parts.len() as u64,
            segments: parts.iter().map(|p| p.segments).sum(),
            shards: shards as u64,
            reserved: descriptors_reserved(limit),
        }
    }

    /// The need for `partitions` new partitions (one segment each).
    pub fn estimate(partitions: u64, shards: usize, limit: u64) -> NofileNeed {
        NofileNeed { partitions, segments: partitions, shards: shards as u64, reserved: descriptors_reserved(limit) }
    }

    /// Descriptors in all.
    pub fn total(&self) -> u64 {
        DESCRIPTORS_PER_PROCESS + self.shards * DESCRIPTORS_PER_SHARD + self.segments + self.writers() + self.reserved
    }

    /// The active segments' writers, one per partition.
    fn writers(&self) -> u64 {
        self.partitions * WRITE_DESCRIPTORS_PER_PARTITION
    }

    /// "1734 = 500 partitions with 600 segment files and 500 writers + 2 shards x 8 + 64 kept free for connections + 8".
    pub fn describe(&self) -> String {
        format!(
            "{} = {} partitions with {} segment files and {} writers + {} shards x {DESCRIPTORS_PER_SHARD} + {} kept free for connections + {DESCRIPTORS_PER_PROCESS}",
            self.total(),
            self.partitions,
            self.segments,
            self.writers(),
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
    use crate::metadata::MetadataRecord;

    fn part(topic: &str, partition: i32, segments: u64) -> PartitionFiles {
        PartitionFiles { tp: TopicPartition { topic: topic.into(), partition }, topic_id: uuid::Uuid::nil(), segments }
    }

    #[test]
    fn the_budget_keeps_a_prefix_in_start_up_order() {
        assert_eq!(startup_budget(256, 2), 256 - 8 - 2 * (8 + 4) - 64);
        assert_eq!(startup_budget(64, 4), 0);
        let parts = vec![part("__consumer_offsets", 0, 1), part("a", 0, 3), part("a", 1, 1), part("b", 0, 1)];
        // Descriptors: segments + a writer each, 2 + 4 + 2 + 2.
        assert!(over_budget(&parts, 10).is_empty());
        assert_eq!(over_budget(&parts, 9), &parts[3..]);
        assert_eq!(over_budget(&parts, 5), &parts[1..], "a prefix: nothing after the first that does not fit");
        assert_eq!(over_budget(&parts, 0), &parts[..]);
    }

    #[test]
    fn internal_topics_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut image = MetadataImage::empty("c".into());
        for name in ["Alpha", "__consumer_offsets", "zeta"] {
            let topic_id = uuid::Uuid::new_v4();
            image.apply(&MetadataRecord::Topic { name: name.into(), topic_id }).unwrap();
            for partition in 0..2 {
                image.apply(&MetadataRecord::Partition { topic_id, partition, replicas: vec![0], isr: vec![0], leader: 0, leader_epoch: 0 }).unwrap();
            }
        }
        let seg = dir.path().join("zeta-1");
        std::fs::create_dir_all(&seg).unwrap();
        for base in [0, 100] {
            std::fs::write(seg.join(format!("{base:020}.log")), b"").unwrap();
        }
        std::fs::write(seg.join("00000000000000000100.index"), b"").unwrap();
        let order: Vec<(String, i32, u64)> = startup_partitions(&image, dir.path()).into_iter().map(|p| (p.tp.topic, p.tp.partition, p.segments)).collect();
        let want = [("__consumer_offsets", 0, 1), ("__consumer_offsets", 1, 1), ("Alpha", 0, 1), ("Alpha", 1, 1), ("zeta", 0, 1), ("zeta", 1, 2)];
        assert_eq!(order, want.map(|(t, p, s)| (t.to_string(), p, s)).to_vec());
    }

    #[test]
    fn need_adds_up() {
        let n = NofileNeed::estimate(500, 2, 256);
        assert_eq!(n.total(), 8 + 16 + 500 + 500 + 64);
        assert_eq!(n.describe(), "1088 = 500 partitions with 500 segment files and 500 writers + 2 shards x 8 + 64 kept free for connections + 8");
    }
}
