//! A partition's log: its segments, offsets, group-committed appends and reads.
//!
//! Appends assign offsets synchronously (so offsets follow arrival order) and
//! queue the batches; one writer task per partition takes everything queued,
//! copies it into aligned chunks and writes them with O_DIRECT through the
//! shard's io_uring ring (`direct_write`), then advances the high watermark and
//! wakes the appenders and waiting fetches. While one write is in flight new
//! appends pile up and go out together in the next one (group commit), so the
//! number of syscalls falls as load rises.
//!
//! An acknowledged batch is therefore on the device (not only in the page
//! cache); Kafka's flush policy (`flush.messages`, `flush.ms`) still decides
//! when to `fdatasync` (file metadata and the device's own cache).
//!
//! Replication (KIP-101/279): a leader stamps its leader epoch on every batch
//! it appends and records where each epoch started (`leader_epoch`); a
//! follower writes the leader's batches unchanged through the same writer
//! ([`PartitionLog::append_replicated`]) and cuts its log back where it
//! diverged from the leader's ([`PartitionLog::truncate_to`]).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::channel::oneshot;

use super::leader_epoch::LeaderEpochCache;
use super::producer_state::{Check, CompletedTxn, Origin, ProducerEntry, ProducerState, SnapshotFile};
use super::segment::{Segment, SegmentScan};
use super::tail_cache::{SharedTail, TailChunks};
use super::txn_index::{self, AbortedTxn};
use super::LogConfig;
use crate::error::{Error, Result};
use crate::io::ring::Ring;
use crate::protocol::record_batch::{rewrite_header, set_partition_leader_epoch, validate_batches, BatchHeader, ValidatedBatch, BATCH_HEADER_LEN};
use crate::sync::Notify;

/// What a produce gets back for one partition.
#[derive(Debug, Clone, Copy)]
pub struct AppendInfo {
    /// Offset given to the first record of the first batch.
    pub base_offset: i64,
    /// LogAppendTime stamped on the batches, or -1 for CreateTime topics.
    pub log_append_time_ms: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
}

/// Where a read looks, taken under the log's borrow ([`PartitionLog::plan_read`]).
struct ReadPlan {
    /// The segment holding the first batch to return.
    scan: SegmentScan,
    /// Where its scan for the read's offset starts (the offset index's floor).
    from: u64,
    /// When the read's limit (high watermark or LSO) falls inside the segment:
    /// where the scan for it starts, and the limit.
    limit: Option<(u64, i64)>,
    /// The segment's written size.
    size: u64,
}

impl ReadPlan {
    /// The slice from the batch at `pos` up to `end` (the limit's batch; the
    /// segment's end when None), cut to `max_bytes` but never below the first batch.
    fn slice(&self, out: ReadSlice, pos: u64, first: &BatchHeader, end: Option<u64>, max_bytes: usize) -> ReadSlice {
        let avail = end.unwrap_or(self.size).saturating_sub(pos);
        let len = (max_bytes as u64).min(avail).max(first.total_len() as u64).min(avail);
        let cached = self.scan.cached(pos, len);
        if self.scan.has_tail() {
            crate::metrics::with(|m| m.tail_cache_read(cached.is_some()));
        }
        ReadSlice { data: Some((self.scan.file().clone(), pos, len as u32)), cached, ..out }
    }
}

/// A file range to send for a fetch, plus the partition offsets to report.
#[derive(Debug, Clone)]
pub struct ReadSlice {
    /// The segment file and the range of whole batches (the last may be cut by max bytes).
    pub data: Option<(Arc<std::fs::File>, u64, u32)>,
    /// The same range from the tail cache, when it holds all of it: slices of
    /// the chunks just written (sent from memory instead of the file).
    pub cached: Option<Vec<Bytes>>,
    /// The partition's high watermark (capped at the log end): the first offset
    /// not yet committed by the ISR, which plain reads stop at.
    pub high_watermark: i64,
    /// The log start offset (low watermark): the first offset still readable.
    pub log_start_offset: i64,
    /// First offset a read_committed consumer may not read yet (= high watermark without open transactions).
    pub last_stable_offset: i64,
    /// read_committed reads only: aborted transactions overlapping the returned range.
    pub aborted: Option<Vec<AbortedTxn>>,
    /// A follower's fetch only: its log diverged from the leader's — the leader's
    /// (epoch, end offset) for the follower's last fetched epoch (KIP-595's
    /// DivergingEpoch); no data is sent and the follower truncates.
    pub diverging_epoch: Option<(i32, i64)>,
}

struct Pending {
    /// The header bytes written to disk (offset assigned, maybe LogAppendTime).
    header: [u8; BATCH_HEADER_LEN],
    /// The same header as fields, for the indexes (no re-parse after the write).
    fields: BatchHeader,
    body: Bytes,
    /// A transaction marker: the transaction it ends (indexed once written).
    completes: Option<CompletedTxn>,
    done: Option<oneshot::Sender<std::result::Result<(), io::ErrorKind>>>,
}

struct State {
    segments: Vec<Segment>,
    log_start_offset: i64,
    /// Next offset to assign (includes batches queued but not yet written).
    next_offset: i64,
    /// The log end offset: everything below it is written (in order). What
    /// clients may read is bounded by the high watermark, which the partition
    /// above the log advances (see [`PartitionLog::set_on_written`]).
    log_end: i64,
    queue: VecDeque<Pending>,
    writer_active: bool,
    unflushed_records: u64,
    first_unflushed: Option<Instant>,
    /// Idempotence and transaction state, as of `next_offset`.
    producers: ProducerState,
    /// Aborted transactions whose markers are written, in marker order (all `.txnindex` entries).
    aborted: Vec<AbortedTxn>,
    /// The leader epochs that wrote to this log and where each started
    /// (`leader-epoch-checkpoint`), for OffsetForLeaderEpoch and truncation.
    epochs: LeaderEpochCache,
    /// The partition leader epoch stamped on every batch appended through
    /// `enqueue` (clients, coordinators, markers): 0 on a single broker, where
    /// this broker is the only leader the partition ever has; the current
    /// epoch once [`PartitionLog::become_leader`] was called (at open: the
    /// cache's latest epoch, 0 when it is empty).
    stamp_epoch: i32,
}

impl State {
    /// The segment taking appends. A log always has one: `open` creates it when
    /// the directory is empty, and retention, delete-records and the cleaner
    /// only ever remove segments before it.
    fn active(&self) -> &Segment {
        self.segments.last().expect("a partition log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments.last_mut().expect("a partition log always has an active segment")
    }
}

/// What the log tells the partition above it after each write: the new log end.
pub type OnWritten = Box<dyn Fn(i64)>;

/// One partition's log, owned by its shard (`Rc`, never crosses threads).
pub struct PartitionLog {
    /// Name of the topic this partition belongs to.
    pub topic: String,
    /// Partition index within the topic.
    pub partition: i32,
    dir: PathBuf,
    cfg: RefCell<LogConfig>,
    state: RefCell<State>,
    ring: Ring,
    /// Woken whenever the log end moves (a retried batch waits for its original).
    pub appended: Notify,
    /// Told the new log end after each write (see [`PartitionLog::set_on_written`]).
    on_written: RefCell<Option<OnWritten>>,
    /// The high watermark as the partition above last published it (the
    /// coordinators' writes wait on it, [`PartitionLog::wait_high_watermark`]);
    /// None without a partition above (a bare log commits what it writes).
    published_hw: Cell<Option<i64>>,
    /// Woken when `published_hw` moves or the log closes.
    hw_published: Notify,
    closed: Cell<bool>,
    /// A rolled segment's fdatasync is in flight (at most one: unclean-start
    /// recovery checks only the active segment and the one before it).
    roll_syncing: Cell<bool>,
    /// Woken when that sync is done.
    roll_synced: Notify,
    /// The topic was deleted ([`PartitionLog::mark_deleted`]): its directory goes away.
    deleted: Cell<bool>,
    /// The base offset of the closed segment the cleaner is swapping for its
    /// cleaned copy, from before its files change until the in-memory segment
    /// is replaced ([`SwapGuard`]). Retention stops before that segment and
    /// DeleteRecords waits; no other path removes a closed segment.
    swapping: Cell<Option<i64>>,
    /// Woken when the swap guard is released.
    swap_done: Notify,
    /// How many times [`PartitionLog::truncate_to`] cut the log: a compaction
    /// round that began before a truncation does not move the cleaner
    /// checkpoint past data written after it.
    truncations: Cell<u64>,
    /// The active segment's most recently written bytes (`tail_cache`).
    tail: SharedTail,
}

/// Held by the cleaner while it swaps one segment (see `PartitionLog::swapping`);
/// released on drop, whatever way the swap ends (error, or its task dropped).
struct SwapGuard<'a> {
    log: &'a PartitionLog,
}

impl<'a> SwapGuard<'a> {
    /// Marks segment `base` as being swapped. At most one swap runs per log (one cleaner task).
    fn hold(log: &'a PartitionLog, base: i64) -> SwapGuard<'a> {
        debug_assert!(log.swapping.get().is_none(), "one segment swap at a time");
        log.swapping.set(Some(base));
        SwapGuard { log }
    }
}

impl Drop for SwapGuard<'_> {
    fn drop(&mut self) {
        self.log.swapping.set(None);
        self.log.swap_done.notify_all();
    }
}

/// Directory of a partition: `<log.dirs>/<topic>-<partition>` (Kafka's layout).
pub fn partition_dir(log_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    log_dir.join(format!("{topic}-{partition}"))
}

/// Segment files (`<20-digit base offset>.log`) in a partition's directory; 0
/// when it has none or does not exist. Each is an open descriptor while the
/// partition is served (the RLIMIT_NOFILE estimate counts them).
pub fn segment_file_count(log_dir: &Path, topic: &str, partition: i32) -> u64 {
    let Ok(rd) = std::fs::read_dir(partition_dir(log_dir, topic, partition)) else { return 0 };
    rd.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name().to_str().and_then(|n| n.strip_suffix(".log")).is_some_and(|stem| stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        })
        .count() as u64
}

impl PartitionLog {
    /// Opens (or creates) the partition's log. `recover` = the broker did not stop cleanly.
    pub fn open(log_dir: &Path, topic: &str, partition: i32, cfg: LogConfig, ring: Ring, recover: bool) -> io::Result<Rc<PartitionLog>> {
        let dir = partition_dir(log_dir, topic, partition);
        std::fs::create_dir_all(&dir)?;
        // Finish or discard a compaction swap a crash interrupted, before listing segments.
        super::cleaner::recover_dir(&dir)?;
        let mut bases: Vec<i64> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".log")?;
                (stem.len() == 20).then(|| stem.parse::<i64>().ok()).flatten()
            })
            .collect();
        bases.sort_unstable();
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let n = bases.len();
        for (i, &base) in bases.iter().enumerate() {
            // After a crash the active segment, and the one rolled before it
            // (its fdatasync runs in the background after the roll), may hold
            // torn batches: both are checked by CRC.
            let check = recover && i + 2 >= n;
            let seg = Segment::open(&dir, base, check, cfg.index_interval_bytes, cfg.clock.instant())?;
            let torn = check && seg.torn;
            if check && i + 1 < n && !torn {
                // Its index files were written at the roll but never synced.
                seg.write_indexes()?;
            }
            segments.push(seg);
            if torn && i + 1 < n {
                // The later segment continues data that was lost: drop it, as
                // Kafka drops the segments after a truncated one.
                for &later in &bases[i + 1..] {
                    tracing::warn!(dir = %dir.display(), segment = later, "removing a segment that follows a truncated one");
                    Segment::delete_files_at(&dir, later)?;
                }
                break;
            }
        }
        // A new partition (or one whose files were all removed) starts with an empty segment at 0.
        if segments.is_empty() {
            segments.push(Segment::create(&dir, 0, cfg.clock.instant())?);
        }
        let active = segments.last_mut().ok_or_else(|| io::Error::other("partition log without a segment"))?;
        active.remove_index_files();
        let log_start_offset = read_offset_file(&dir, LOG_START_FILE).unwrap_or(segments[0].base_offset).max(segments[0].base_offset);
        let end = segments.last().map(|s| s.next_offset).unwrap_or(0);
        let (producers, aborted) = load_producer_state(&dir, &segments)?;
        let mut epochs = LeaderEpochCache::load(&dir)?;
        // Entries past a torn tail, or below a log start moved before a crash,
        // name offsets the log no longer has.
        let cut_end = epochs.truncate_from_end(end);
        let cut_start = epochs.truncate_from_start(log_start_offset);
        if cut_end || cut_start {
            epochs.save(&dir)?;
        }
        // 0 on a single broker; a cluster replica stamps its newest epoch until
        // `become_leader` says otherwise, never an older one.
        let stamp_epoch = epochs.latest_epoch().unwrap_or(0);
        Ok(Rc::new(PartitionLog {
            topic: topic.to_string(),
            partition,
            dir,
            cfg: RefCell::new(cfg),
            state: RefCell::new(State {
                segments,
                log_start_offset,
                next_offset: end,
                log_end: end,
                queue: VecDeque::new(),
                writer_active: false,
                unflushed_records: 0,
                first_unflushed: None,
                producers,
                aborted,
                epochs,
                stamp_epoch,
            }),
            ring,
            appended: Notify::default(),
            published_hw: Cell::new(None),
            hw_published: Notify::default(),
            on_written: RefCell::new(None),
            closed: Cell::new(false),
            roll_syncing: Cell::new(false),
            roll_synced: Notify::default(),
            deleted: Cell::new(false),
            swapping: Cell::new(None),
            swap_done: Notify::default(),
            truncations: Cell::new(0),
            tail: SharedTail::default(),
        }))
    }

    /// Current config (topic overrides on top of broker defaults).
    pub fn config(&self) -> LogConfig {
        self.cfg.borrow().clone()
    }

    /// Wall time (ms) by the log's clock (`LogConfig::clock`).
    pub fn now_ms(&self) -> i64 {
        self.cfg.borrow().clock.now_ms()
    }

    /// Applies a changed topic config at once (AlterConfigs): the next append,
    /// roll, flush and retention check use it; no restart.
    pub fn set_config(&self, cfg: LogConfig) {
        *self.cfg.borrow_mut() = cfg;
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1 = the high
    /// watermark `hw`), persists it, and deletes the segments wholly below it.
    /// Returns the new low watermark. Waits first while the cleaner is swapping
    /// a segment in (a few fsyncs through the ring), so it never deletes that
    /// segment in the middle of its swap. `hw` is read before the wait; it only
    /// grows, so the target stays valid.
    pub async fn delete_records_before(&self, offset: i64, hw: i64) -> Result<i64> {
        while self.swapping.get().is_some() {
            self.swap_done.wait().await;
        }
        let mut st = self.state.borrow_mut();
        let hw = hw.min(st.log_end);
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(Error::OffsetOutOfRange { offset, log_start: st.log_start_offset, log_end: hw });
        }
        if target > st.log_start_offset {
            st.log_start_offset = target;
            write_offset_file(&self.dir, LOG_START_FILE, target)?;
            self.drop_segments_below_start(&mut st)?;
            st.aborted.retain(|t| t.last_offset >= target);
            if st.epochs.truncate_from_start(target) {
                st.epochs.save(&self.dir)?;
            }
        }
        Ok(st.log_start_offset)
    }

    /// Retention (cleanup.policy contains `delete`): deletes closed segments whose
    /// newest record is older than `retention.ms`, then the oldest closed segments
    /// while the rest still holds `retention.bytes`. The active segment is never
    /// deleted, nor the segment the cleaner is swapping in: retention stops
    /// before it until a later round. Returns the number of segments deleted.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize> {
        let cfg = self.cfg.borrow().clone();
        if !cfg.delete || self.closed.get() {
            return Ok(0);
        }
        let mut st = self.state.borrow_mut();
        let mut n = 0;
        let mut total: i64 = st.segments.iter().map(|s| s.size as i64).sum();
        while st.segments.len() > 1 {
            let first = &st.segments[0];
            if self.swapping.get() == Some(first.base_offset) {
                break;
            }
            let expired = cfg.retention_ms.is_some_and(|ms| first.max_timestamp < now_ms.saturating_sub(ms));
            let oversize = cfg.retention_bytes.is_some_and(|max| total - first.size as i64 >= max);
            if !(expired || oversize) {
                break;
            }
            total -= first.size as i64;
            let next_base = st.segments[1].base_offset;
            st.log_start_offset = st.log_start_offset.max(next_base);
            let seg = st.segments.remove(0);
            let bytes = seg.size;
            seg.delete_files()?;
            crate::metrics::with(|m| m.retention_deleted(bytes));
            n += 1;
        }
        if n > 0 {
            let start = st.log_start_offset;
            st.aborted.retain(|t| t.last_offset >= start);
            write_offset_file(&self.dir, LOG_START_FILE, st.log_start_offset)?;
            if st.epochs.truncate_from_start(start) {
                st.epochs.save(&self.dir)?;
            }
            tracing::info!(topic = %self.topic, partition = self.partition, segments = n, log_start_offset = st.log_start_offset, "retention deleted segments");
        }
        Ok(n)
    }

    /// One compaction round (cleanup.policy contains `compact`), run by the
    /// shard's cleaner task on its low-priority queue. Cleans when the dirty
    /// share of the cleanable segments (bytes past the cleaner checkpoint)
    /// reaches `min.cleanable.dirty.ratio`, or whatever that share when a dirty
    /// segment's first batch is older than `max.compaction.lag.ms`. As Kafka's
    /// `LogCleanerManager.cleanableOffsets`, cleaning stops before the active
    /// segment and before the first dirty segment holding a record younger
    /// than `min.compaction.lag.ms`. Each cleaned segment replaces its original
    /// only if the original is still in the log (retention or delete-records
    /// may have removed it while it was being cleaned). Returns None when there
    /// was nothing to do.
    ///
    /// The swap (`cleaner::swap_in`: renames, directory fsyncs and index writes
    /// through the ring) runs under the log's swap guard, so retention and
    /// DeleteRecords leave that segment alone until the in-memory segment is
    /// replaced by the cleaned one, whose indexes the clean built (no rescan).
    /// A topic deleted meanwhile makes the swap fail with an error.
    pub async fn clean(&self, budget_bytes: usize, max_inflated: usize, now_ms: i64) -> io::Result<Option<CleanStats>> {
        use super::cleaner;
        let cfg = self.cfg.borrow().clone();
        if !cfg.compact || self.closed.get() {
            return Ok(None);
        }
        let (closed, log_start): (Vec<ClosedSegment>, i64) = {
            let st = self.state.borrow();
            let n = st.segments.len().saturating_sub(1);
            (st.segments[..n].iter().map(|s| (s.base_offset, s.file.clone(), s.size, s.next_offset, s.max_timestamp)).collect(), st.log_start_offset)
        };
        let first_dirty = read_offset_file(&self.dir, CLEANER_CHECKPOINT_FILE).unwrap_or(log_start).max(log_start);
        let young = now_ms.saturating_sub(cfg.min_compaction_lag_ms);
        let cleanable_end = match cfg.min_compaction_lag_ms {
            0 => closed.len(),
            _ => closed.iter().position(|c| c.3 > first_dirty && c.4 > young).unwrap_or(closed.len()),
        };
        // (one header read per dirty segment, and only when the lag is set)
        let mut overdue = false;
        if cfg.max_compaction_lag_ms != i64::MAX {
            let old = now_ms.saturating_sub(cfg.max_compaction_lag_ms);
            for c in closed.iter().filter(|c| c.3 > first_dirty) {
                if cleaner::first_batch_max_timestamp(&self.ring, &c.1, c.2).await?.is_some_and(|t| t > 0 && t < old) {
                    overdue = true;
                    break;
                }
            }
        }
        let closed = &closed[..cleanable_end];
        let total: u64 = closed.iter().map(|c| c.2).sum();
        let dirty: Vec<(i64, Arc<std::fs::File>, u64)> = closed.iter().filter(|c| c.3 > first_dirty).map(|c| (c.0, c.1.clone(), c.2)).collect();
        let dirty_bytes: u64 = dirty.iter().map(|c| c.2).sum();
        if dirty_bytes == 0 || (!overdue && (dirty_bytes as f64) < cfg.min_cleanable_dirty_ratio * total as f64) {
            return Ok(None);
        }
        let started = Instant::now();
        let truncations = self.truncations.get();
        let (map, map_end) = cleaner::build_offset_map(&self.ring, &self.dir, &dirty, first_dirty, budget_bytes, max_inflated).await?;
        if map_end <= first_dirty {
            return Ok(None);
        }
        let horizon = now_ms.saturating_sub(cfg.delete_retention_ms);
        let mut stats = CleanStats::default();
        for (base, file, size, _, _) in closed.iter().filter(|c| c.0 < map_end) {
            if self.closed.get() {
                break;
            }
            let r = cleaner::clean_segment(&self.ring, &self.dir, *base, file, *size, &map, map_end, horizon, max_inflated, cfg.index_interval_bytes).await?;
            stats.bytes_read += r.bytes_read;
            stats.bytes_written += r.bytes_written;
            stats.records_removed += r.records_removed;
            stats.tombstones_removed += r.tombstones_removed;
            self.check_not_deleted()?;
            // A truncation may have cut this segment's file since it was read.
            let still_there = self.truncations.get() == truncations && self.closed_segment_at(*base, file).is_some();
            if !still_there || r.records_removed + r.tombstones_removed == 0 {
                let _ = std::fs::remove_file(&r.cleaned_path);
                continue;
            }
            // From here until the in-memory segment is replaced, no other task
            // removes this segment (taken with no await since the check above).
            let guard = SwapGuard::hold(self, *base);
            let seg = r.segment;
            cleaner::swap_in(&self.ring, &self.dir, *base, Some(&seg)).await?;
            self.check_not_deleted()?;
            let at = self.closed_segment_at(*base, file).ok_or_else(|| io::Error::other(format!("segment {base} left the log during its swap")))?;
            let mut st = self.state.borrow_mut();
            if seg.size == 0 && at > 0 {
                // Nothing left: drop the segment; readers skip the offset gap.
                seg.delete_files()?;
                st.segments.remove(at);
            } else {
                st.segments[at] = seg;
            }
            drop(st);
            drop(guard);
            stats.segments_cleaned += 1;
        }
        self.check_not_deleted()?;
        // A truncation during the round may have removed offsets below `map_end`
        // that are written again since; it already lowered the checkpoint.
        if self.truncations.get() == truncations {
            write_offset_file(&self.dir, CLEANER_CHECKPOINT_FILE, map_end)?;
        }
        stats.elapsed = started.elapsed();
        Ok(Some(stats))
    }

    /// An error once the topic is deleted: its directory is being removed (and
    /// may be created again for a new topic), so the cleaner touches no file by
    /// path after that. Checked after each await that precedes such a call.
    fn check_not_deleted(&self) -> io::Result<()> {
        match self.deleted.get() {
            true => Err(io::Error::new(io::ErrorKind::NotFound, format!("{}: the partition was deleted during a clean", self.dir.display()))),
            false => Ok(()),
        }
    }

    /// Where the closed segment `base` whose file is `file` is in the segment
    /// list; None when it is no longer there (or is the active one).
    fn closed_segment_at(&self, base: i64, file: &Arc<std::fs::File>) -> Option<usize> {
        let st = self.state.borrow();
        let last = st.segments.len() - 1;
        st.segments[..last].iter().position(|s| s.base_offset == base && Arc::ptr_eq(&s.file, file))
    }

    /// Deletes closed segments that end at or below the log start offset.
    fn drop_segments_below_start(&self, st: &mut State) -> io::Result<()> {
        while st.segments.len() > 1 && st.segments[0].next_offset <= st.log_start_offset {
            let seg = st.segments.remove(0);
            seg.delete_files()?;
        }
        Ok(())
    }

    /// The log end offset: the offset after the last written batch.
    pub fn log_end_offset(&self) -> i64 {
        self.state.borrow().log_end
    }

    /// Installs what runs each time the log end moves (after the write, before
    /// the waiters wake): the partition above advances its high watermark from it.
    pub fn set_on_written(&self, f: OnWritten) {
        *self.on_written.borrow_mut() = Some(f);
    }

    /// The log start offset (low watermark): the first offset a fetch may read;
    /// raised by retention and DeleteRecords, persisted across restarts.
    pub fn log_start_offset(&self) -> i64 {
        self.state.borrow().log_start_offset
    }

    /// Appends a client's validated batches; resolves when they are written (acks=1/all).
    pub async fn append(self: &Rc<Self>, batches: Vec<ValidatedBatch>) -> Result<AppendInfo> {
        self.append_with(batches, Origin::Client).await
    }

    /// Appends validated batches from `origin`. Offsets are assigned here, before
    /// any await, so concurrent produces keep order; batches with a producer id
    /// are checked against the producer state first (sequence, epoch, open
    /// transaction). A retried batch that is already in the log is not appended
    /// again: the answer carries its original offsets (once they are written).
    pub async fn append_with(self: &Rc<Self>, batches: Vec<ValidatedBatch>, origin: Origin) -> Result<AppendInfo> {
        if self.closed.get() {
            return Err(Error::ShuttingDown);
        }
        if origin == Origin::Client && batches.iter().any(|b| b.header.is_control()) {
            return Err(Error::InvalidRecord("control batches are written by the transaction coordinator, not by clients"));
        }
        let duplicate = {
            let st = self.state.borrow();
            check_producers(&st.producers, &batches, origin)?
        };
        if let Some((producer_id, d)) = duplicate {
            return self.answer_duplicate(producer_id, d).await;
        }
        self.enqueue(batches, None).await
    }

    /// Writes a transaction marker (a control batch) for `producer_id`, ending
    /// its open transaction in this partition. Returns the marker's offset. A
    /// marker from an older producer epoch or coordinator epoch is refused.
    pub async fn append_marker(self: &Rc<Self>, producer_id: i64, producer_epoch: i16, commit: bool, coordinator_epoch: i32) -> Result<i64> {
        if self.closed.get() {
            return Err(Error::ShuttingDown);
        }
        self.state.borrow().producers.check_marker(producer_id, producer_epoch, coordinator_epoch)?;
        let bytes = crate::protocol::control::encode_marker(producer_id, producer_epoch, commit, coordinator_epoch, self.cfg.borrow().clock.now_ms());
        let batches = validate_batches(&bytes, usize::MAX)?;
        let info = self.enqueue(batches, Some((commit, coordinator_epoch))).await?;
        Ok(info.base_offset)
    }

    /// Waits until a duplicate's original batch is written, then answers with
    /// its offsets — if the original is still what the producer state holds: a
    /// failed write gives offsets back (and rebuilds the state), and the retry
    /// must then not be acknowledged at offsets other data took.
    async fn answer_duplicate(&self, producer_id: i64, d: super::producer_state::BatchMeta) -> Result<AppendInfo> {
        while self.log_end_offset() <= d.last_offset {
            if self.closed.get() {
                return Err(Error::ShuttingDown);
            }
            self.appended.wait().await;
        }
        let st = self.state.borrow();
        if !st.producers.entry(producer_id).is_some_and(|e| e.batches.contains(&d)) {
            return Err(Error::Io(io::Error::other("the original batch of this retry was not written; retry")));
        }
        Ok(AppendInfo { base_offset: d.base_offset, log_append_time_ms: -1, log_start_offset: st.log_start_offset })
    }

    /// Assigns offsets, updates the producer state and queues the batches for
    /// the writer; resolves when they are written. `marker` = (commit,
    /// coordinator epoch) when the single batch is a transaction marker. Every
    /// batch is stamped with the log's leader epoch (`State::stamp_epoch`),
    /// which is recorded in the epoch cache where it first writes.
    async fn enqueue(self: &Rc<Self>, batches: Vec<ValidatedBatch>, marker: Option<(bool, i32)>) -> Result<AppendInfo> {
        let cfg = self.cfg.borrow().clone();
        let append_time = cfg.log_append_time.then(|| cfg.clock.now_ms());
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        let info;
        {
            let mut st = self.state.borrow_mut();
            let base = st.next_offset;
            let epoch = st.stamp_epoch;
            // A no-op after the first batch of an epoch (Kafka assigns per batch the
            // same way); the first one saves the checkpoint (blocking: once per
            // epoch, see `LeaderEpochCache::save`). A stamp below the latest epoch
            // (a follower's latest, appended to before `become_leader`) is not
            // assigned: that would erase the newer epochs' history.
            if st.epochs.latest_epoch().is_none_or(|latest| epoch >= latest) {
                st.epochs.assign_and_save(&self.dir, epoch, base)?;
            }
            let n = batches.len();
            for (i, b) in batches.into_iter().enumerate() {
                let base_offset = st.next_offset;
                let mut header = rewrite_header(&b, base_offset, append_time);
                set_partition_leader_epoch(&mut header, epoch);
                let mut fields = b.header;
                fields.base_offset = base_offset;
                fields.partition_leader_epoch = epoch;
                if let Some(t) = append_time {
                    fields.max_timestamp = t;
                }
                st.next_offset = fields.last_offset() + 1;
                let completes = match marker {
                    Some((commit, coordinator_epoch)) => {
                        st.producers.apply_marker(fields.producer_id, fields.producer_epoch, coordinator_epoch, commit, base_offset, fields.max_timestamp)
                    }
                    None => {
                        st.producers.update(&fields);
                        None
                    }
                };
                let done = if i + 1 == n { tx.take() } else { None };
                st.queue.push_back(Pending { header, fields, body: b.bytes.slice(BATCH_HEADER_LEN..), completes, done });
            }
            info = AppendInfo { base_offset: base, log_append_time_ms: append_time.unwrap_or(-1), log_start_offset: st.log_start_offset };
            self.wake_writer(st);
        }
        written(rx).await?;
        Ok(info)
    }

    /// After batches were queued: marks the writer active and, when it was
    /// idle, spawns it. Takes the state's borrow and ends it before the spawn,
    /// since glommio may poll a new task at once.
    fn wake_writer(self: &Rc<Self>, mut st: std::cell::RefMut<'_, State>) {
        let start_writer = !st.writer_active;
        st.writer_active = true;
        drop(st);
        if start_writer {
            let me = self.clone();
            glommio::spawn_local(async move { me.write_loop().await }).detach();
        }
    }

    /// Makes this replica the partition's leader in `epoch` (a leader change
    /// in a cluster): from now on every batch appended through
    /// [`PartitionLog::append`], [`PartitionLog::append_with`] and
    /// [`PartitionLog::append_marker`] carries `epoch` in its
    /// partitionLeaderEpoch, and the epoch cache records that `epoch` starts at
    /// the log end (the next offset to assign), as Kafka does when a replica
    /// becomes leader, so OffsetForLeaderEpoch from followers answers right
    /// away. The checkpoint is saved (blocking, see
    /// [`LeaderEpochCache::save`]) when it changed. An epoch below the latest
    /// one in the cache is refused (`InvalidInput`): epochs only rise, and
    /// assigning an older one would erase newer history.
    pub fn become_leader(&self, epoch: i32) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        if epoch < 0 || st.epochs.latest_epoch().is_some_and(|latest| epoch < latest) {
            let latest = st.epochs.latest_epoch();
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("leader epoch {epoch} is below the log's latest epoch {latest:?}")));
        }
        let start = st.next_offset;
        st.epochs.assign_and_save(&self.dir, epoch, start)?;
        st.stamp_epoch = epoch;
        Ok(())
    }

    /// The newest leader epoch in this log's epoch cache (None: no batch was
    /// ever stamped through it and no leadership was taken). A follower sends
    /// it in OffsetForLeaderEpoch to find where to truncate.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.state.borrow().epochs.latest_epoch()
    }

    /// OffsetForLeaderEpoch on this log: the largest epoch <= `epoch` and where
    /// it ended (the current log end for the latest epoch); (-1, -1) when
    /// unknown. See [`LeaderEpochCache::end_offset_for`].
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let st = self.state.borrow();
        st.epochs.end_offset_for(epoch, st.log_end)
    }

    /// The follower's append: batches fetched from the leader, their offsets
    /// and partition leader epochs already set, are written byte for byte (no
    /// header rewrite, no copy of the records), through the same queue and
    /// group-committed writer as client appends. Resolves with the new log end
    /// offset once they are written (after the `on_written` callback ran).
    ///
    /// As Kafka's follower append, the first batch may not start below the
    /// next offset of this log and each batch must start after the previous
    /// one ends, else `OffsetOutOfRange` (nothing is appended). Gaps are
    /// accepted: a compacted leader's log has them. The producer state is not
    /// checked (the leader did) but is updated, and transaction markers end
    /// their transactions (aborts are indexed) as on the leader. A batch whose
    /// leader epoch is newer than the cache's latest is recorded in the cache
    /// at its base offset, and the checkpoint saved, before anything is queued.
    pub async fn append_replicated(self: &Rc<Self>, batches: Vec<ValidatedBatch>) -> Result<i64> {
        if self.closed.get() {
            return Err(Error::ShuttingDown);
        }
        if batches.is_empty() {
            return Ok(self.log_end_offset());
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.state.borrow_mut();
            let mut expected = st.next_offset;
            let mut epochs: Option<LeaderEpochCache> = None;
            for b in &batches {
                let h = &b.header;
                if b.bytes.len() != h.total_len() || b.bytes.len() < BATCH_HEADER_LEN {
                    return Err(Error::CorruptMessage("replicated batch length does not match its header"));
                }
                // The offset after the batch; a batch with no records (delta -1) ends where it starts.
                let next = h.base_offset.checked_add(i64::from(h.last_offset_delta)).and_then(|o| o.checked_add(1)).filter(|_| h.last_offset_delta >= -1);
                match next {
                    Some(next) if h.base_offset >= expected => expected = next,
                    _ => return Err(Error::OffsetOutOfRange { offset: h.base_offset, log_start: st.log_start_offset, log_end: expected }),
                }
                let latest = epochs.as_ref().unwrap_or(&st.epochs).latest_epoch();
                if h.partition_leader_epoch >= 0 && latest.is_none_or(|l| h.partition_leader_epoch > l) {
                    epochs.get_or_insert_with(|| st.epochs.clone()).assign(h.partition_leader_epoch, h.base_offset);
                }
            }
            if let Some(epochs) = epochs {
                epochs.save(&self.dir)?;
                st.epochs = epochs;
            }
            let mut tx = Some(tx);
            let n = batches.len();
            for (i, b) in batches.into_iter().enumerate() {
                let fields = b.header;
                // The header as the leader wrote it (61 bytes copied; the records are not).
                let mut header = [0u8; BATCH_HEADER_LEN];
                header.copy_from_slice(&b.bytes[..BATCH_HEADER_LEN]);
                let completes = if fields.producer_id < 0 {
                    None
                } else if fields.is_control() {
                    crate::protocol::control::decode_marker(&b.bytes).and_then(|(commit, coordinator_epoch)| {
                        st.producers.apply_marker(
                            fields.producer_id,
                            fields.producer_epoch,
                            coordinator_epoch,
                            commit,
                            fields.base_offset,
                            fields.max_timestamp,
                        )
                    })
                } else {
                    st.producers.update(&fields);
                    None
                };
                st.next_offset = fields.last_offset() + 1;
                let done = if i + 1 == n { tx.take() } else { None };
                st.queue.push_back(Pending { header, fields, body: b.bytes.slice(BATCH_HEADER_LEN..), completes, done });
            }
            self.wake_writer(st);
        }
        written(rx).await?;
        Ok(self.log_end_offset())
    }

    /// The follower's truncation (KIP-101/279), also an unclean leader's: cuts
    /// the log so that it ends before `offset` and returns the new log end.
    ///
    /// First waits until nothing is queued or being written, no rolled
    /// segment is still syncing (its producer snapshot would reappear) and the
    /// cleaner swaps no segment; appends that keep arriving keep it waiting,
    /// so the caller stops its appends (the fetcher) first. The rest runs
    /// without an await until the final fdatasync, with blocking file calls
    /// (a few header reads, removals, small rewrites) as recovery does: a
    /// truncation is rare (a leader change), and no append may interleave.
    ///
    /// The new log end is the base offset of the batch holding `offset` (or
    /// `offset` itself when it is a batch boundary, or falls in an offset gap
    /// of a compacted log); nothing is done when `offset` is at or past the log
    /// end. The log never goes below its start: when that end would be at or
    /// below the log start offset, the log is emptied and starts again at its
    /// log start offset (kept, so retention's and DeleteRecords' work stands).
    /// Segments above the cut are deleted; the segment holding it is cut at
    /// that batch's position, its indexes trimmed in memory and its index
    /// files removed, and becomes the active segment. The producer state and
    /// aborted-transaction list are rebuilt from the newest producer snapshot
    /// not past the new end (later ones are deleted) and the batches after
    /// it; the epoch cache drops the epochs that started at or past the new
    /// end (saved); a cleaner checkpoint past it is lowered to it. The cut
    /// segment is fdatasync'd through the ring and the directory fsync'd, so a
    /// crash cannot bring the removed data back.
    ///
    /// Fetches already planned hold the segment files (`Arc<File>`) and
    /// ranges that may now lie past the end of a cut or deleted file: they
    /// read short and fail their own send, nothing here panics. The high
    /// watermark is the partition's business: the `on_written` callback is
    /// not called (the log end went down); reads cap it at the log end.
    pub async fn truncate_to(self: &Rc<Self>, offset: i64) -> Result<i64> {
        if self.closed.get() {
            return Err(Error::ShuttingDown);
        }
        loop {
            let writing = {
                let st = self.state.borrow();
                st.writer_active || !st.queue.is_empty()
            };
            if writing {
                self.appended.wait().await;
            } else if self.roll_syncing.get() {
                self.roll_synced.wait().await;
            } else if self.swapping.get().is_some() {
                self.swap_done.wait().await;
            } else {
                break;
            }
            if self.closed.get() {
                return Err(Error::ShuttingDown);
            }
        }
        let cfg = self.cfg.borrow().clone();
        let (old_end, new_end, file) = {
            let mut st = self.state.borrow_mut();
            let old_end = st.log_end;
            if offset >= old_end {
                // Nothing to cut, but an epoch may start at the log end with no batch of it
                // (this replica led briefly and appended nothing): drop it, as Kafka does, or
                // the follower would keep presenting an epoch the leader never had.
                if st.epochs.truncate_from_end(old_end) {
                    st.epochs.save(&self.dir)?;
                }
                return Ok(old_end);
            }
            let log_start = st.log_start_offset;
            // Where to cut: (segment index, position in it, new log end); None = empty the log.
            let mut cut = None;
            if offset > log_start {
                let j = st.segments.partition_point(|s| s.base_offset <= offset).saturating_sub(1);
                cut = match st.segments[j].find_batch(offset)? {
                    Some((pos, h)) => Some((j, pos, h.base_offset.min(offset))),
                    // `offset` lies after this segment's batches (a gap before the next segment).
                    None => Some((j, st.segments[j].size, offset)),
                };
                cut = cut.filter(|&(_, _, end)| end > log_start);
            }
            // From here the in-memory log is cut whatever fails on disk; the
            // first failure is returned once the state is consistent again.
            let mut failed: Option<io::Error> = None;
            let mut note = |r: io::Result<()>| {
                if let Err(e) = r {
                    crate::error_limited!(topic = %self.topic, partition = self.partition, "truncating the log: {e}");
                    failed.get_or_insert(e);
                }
            };
            let (j, pos, new_end) = match cut {
                Some(c) => c,
                None => {
                    let k = match st.segments.iter().position(|s| s.base_offset == log_start) {
                        Some(k) => k,
                        None => {
                            // Created before anything is removed: a log always has a segment.
                            let seg = Segment::create(&self.dir, log_start, cfg.clock.instant())?;
                            st.segments.push(seg);
                            st.segments.len() - 1
                        }
                    };
                    for seg in st.segments.drain(..k) {
                        note(seg.delete_files());
                    }
                    (0, 0, log_start)
                }
            };
            for seg in st.segments.drain(j + 1..) {
                note(seg.delete_files());
            }
            let active = st.active_mut();
            note(active.truncate_to(pos, cfg.index_interval_bytes));
            active.next_offset = new_end;
            // The active segment keeps its indexes in memory only (see `open`).
            active.remove_index_files();
            let file = active.file.clone();
            st.next_offset = new_end;
            st.log_end = new_end;
            // The fdatasync below covers what was written before the cut.
            st.unflushed_records = 0;
            st.first_unflushed = None;
            match load_producer_state(&self.dir, &st.segments) {
                Ok((producers, aborted)) => {
                    st.producers = producers;
                    st.aborted = aborted;
                }
                Err(e) => {
                    // No state beats one naming batches that are gone: a retry of
                    // one must be appended again, not answered with lost offsets.
                    st.producers = ProducerState::default();
                    st.aborted.retain(|t| t.last_offset < new_end);
                    note(Err(e));
                }
            }
            if st.epochs.truncate_from_end(new_end) {
                note(st.epochs.save(&self.dir));
            }
            if read_offset_file(&self.dir, CLEANER_CHECKPOINT_FILE).is_some_and(|c| c > new_end) {
                note(write_offset_file(&self.dir, CLEANER_CHECKPOINT_FILE, new_end));
            }
            self.truncations.set(self.truncations.get() + 1);
            let active_base = st.active().base_offset;
            TailChunks::reset(&self.tail, active_base);
            if let Some(e) = failed {
                drop(st);
                self.appended.notify_all();
                return Err(e.into());
            }
            (old_end, new_end, file)
        };
        self.appended.notify_all();
        tracing::info!(topic = %self.topic, partition = self.partition, old_log_end = old_end, new_log_end = new_end, "truncated the log");
        self.ring.fdatasync(file.as_raw_fd()).await?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(new_end)
    }

    /// The last stable offset: below the first open transaction, at most the high watermark `hw`.
    pub fn last_stable_offset(&self, hw: i64) -> i64 {
        let st = self.state.borrow();
        lso(&st, hw)
    }

    /// Producer entries for DescribeProducers.
    pub fn producers(&self) -> Vec<(i64, ProducerEntry)> {
        self.state.borrow().producers.producers().map(|(&id, e)| (id, e.clone())).collect()
    }

    /// Forgets producers idle for `producer.id.expiration.ms` (no open transaction).
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.state.borrow_mut().producers.expire(now_ms.saturating_sub(expiration_ms))
    }

    /// The partition's writer: drains the queue in groups until it is empty.
    async fn write_loop(self: Rc<Self>) {
        loop {
            let group: Vec<Pending> = {
                let mut st = self.state.borrow_mut();
                if st.queue.is_empty() {
                    st.writer_active = false;
                    drop(st);
                    // A truncation waits for the writer to go idle (a failed write notifies nobody else).
                    self.appended.notify_all();
                    return;
                }
                st.queue.drain(..).collect()
            };
            if let Err(e) = self.write_group(group).await {
                crate::error_limited!(topic = %self.topic, partition = self.partition, "segment write failed: {e}");
            }
        }
    }

    /// Writes one group, rolling segments at batch boundaries as needed.
    async fn write_group(self: &Rc<Self>, group: Vec<Pending>) -> io::Result<()> {
        let cfg = self.cfg.borrow().clone();
        let mut group = group;
        let mut start = 0;
        while start < group.len() {
            let must_roll = {
                let st = self.state.borrow();
                let active = st.active();
                let age_ms = cfg.clock.instant().saturating_duration_since(active.created).as_millis() as u64;
                let first_len = (BATCH_HEADER_LEN + group[start].body.len()) as u64;
                let far = !fits_relative(active.base_offset, &group[start].fields);
                far || active.size > 0 && (active.size + first_len > cfg.segment_bytes || age_ms >= cfg.roll_ms)
            };
            if must_roll {
                self.wait_roll_synced().await;
                let rolled = roll(&mut self.state.borrow_mut(), &self.dir, group[start].fields.base_offset, cfg.clock.instant());
                // The cache describes the active segment only (a closed one may be compacted).
                TailChunks::reset(&self.tail, group[start].fields.base_offset);
                match rolled {
                    Ok(sync) => self.sync_rolled(sync),
                    Err(e) => {
                        self.fail_group(&mut group[start..], e.kind());
                        return Err(e);
                    }
                }
            }
            // Decide the run of batches that go into the active segment.
            let (fd, pos, end, writer) = {
                let mut st = self.state.borrow_mut();
                let mut end = start;
                let mut bytes = 0u64;
                let active = st.active_mut();
                while end < group.len() {
                    let len = (BATCH_HEADER_LEN + group[end].body.len()) as u64;
                    if end > start && (active.size + bytes + len > cfg.segment_bytes || !fits_relative(active.base_offset, &group[end].fields)) {
                        break;
                    }
                    bytes += len;
                    end += 1;
                }
                active.reserve(active.size + bytes, cfg.segment_bytes);
                (active.file.clone(), active.size, end, active.take_writer(cfg.direct_io))
            };
            let run: Vec<Pending> = group.drain(start..end).collect();
            // DMA write (the one copy of the batches); the writer returns to the
            // segment only after a success, so a failure reopens it from the file.
            let res = match writer {
                Ok(mut w) => {
                    let pieces = run.iter().flat_map(|p| [&p.header[..], &p.body[..]]);
                    let keep = cfg.tail_cache_bytes > 0;
                    match w.append(&self.ring, pos, pieces, keep).await {
                        Ok(written) => {
                            let mut st = self.state.borrow_mut();
                            let active = st.active_mut();
                            TailChunks::push(&self.tail, active.base_offset, pos, written, cfg.tail_cache_bytes);
                            active.put_writer(w);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let mut run = run;
            if let Err(e) = res {
                // Drop the partial write and everything assigned after it; offsets are reused.
                let _ = fd.set_len(pos);
                self.fail_group(&mut run, e.kind());
                self.fail_group(&mut group, e.kind());
                let mut st = self.state.borrow_mut();
                let mut rest: Vec<Pending> = st.queue.drain(..).collect();
                st.next_offset = st.log_end;
                // Epochs first recorded by the failed batches did not write here after all.
                let log_end = st.log_end;
                if st.epochs.truncate_from_end(log_end) {
                    if let Err(e2) = st.epochs.save(&self.dir) {
                        crate::error_limited!(topic = %self.topic, partition = self.partition, "saving the leader epoch checkpoint failed: {e2}");
                    }
                }
                // The producer state included the failed batches: rebuild it from disk.
                match load_producer_state(&self.dir, &st.segments) {
                    Ok((producers, aborted)) => {
                        st.producers = producers;
                        st.aborted = aborted;
                    }
                    Err(e2) => crate::error_limited!(topic = %self.topic, partition = self.partition, "rebuilding producer state failed: {e2}"),
                }
                drop(st);
                self.fail_group(&mut rest, e.kind());
                return Err(e);
            }
            let flush_due = {
                let mut st = self.state.borrow_mut();
                let active = st.active_mut();
                let mut p = pos;
                let mut records = 0;
                for b in &run {
                    let total = (BATCH_HEADER_LEN + b.body.len()) as u64;
                    active.note_batch(&b.fields, p as u32, total, cfg.index_interval_bytes);
                    p += total;
                    records += b.fields.records_count.max(0) as u64;
                }
                active.size = p;
                let active_base = active.base_offset;
                for c in run.iter().filter_map(|b| b.completes) {
                    // The marker is on disk: the transaction stops holding back the LSO,
                    // and an abort is indexed for read_committed fetches.
                    st.producers.end_ongoing(c.first_offset);
                    if c.aborted {
                        let t = AbortedTxn::of(&c, st.producers.first_unstable_offset());
                        if let Err(e) = txn_index::append(&self.dir, active_base, &t) {
                            crate::error_limited!(topic = %self.topic, partition = self.partition, "writing the transaction index failed: {e}");
                        }
                        st.aborted.push(t);
                    }
                }
                if let Some(last) = run.last() {
                    st.log_end = last.fields.last_offset() + 1;
                }
                st.unflushed_records += records;
                st.first_unflushed.get_or_insert_with(|| cfg.clock.instant());
                cfg.flush_messages.is_some_and(|n| st.unflushed_records >= n)
            };
            if flush_due {
                self.flush().await?;
            }
            let end = self.log_end_offset();
            if let Some(f) = self.on_written.borrow().as_ref() {
                f(end);
            }
            for p in &mut run {
                if let Some(tx) = p.done.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            self.appended.notify_all();
            start = 0;
        }
        Ok(())
    }

    /// Waits until no rolled segment is still being synced.
    async fn wait_roll_synced(&self) {
        while self.roll_syncing.get() {
            self.roll_synced.wait().await;
        }
    }

    /// Makes a rolled segment durable in the background: segment data, then
    /// its `.txnindex`, then the producer snapshot (fsynced, then renamed into
    /// place). A failure is logged: the data stays in the page cache, and an
    /// unclean start re-checks this segment by CRC.
    fn sync_rolled(self: &Rc<Self>, sync: RollSync) {
        self.roll_syncing.set(true);
        let me = self.clone();
        glommio::spawn_local(async move {
            let RollSync { old, txn_index, snapshot } = sync;
            let mut res = me.ring.fdatasync(old.as_raw_fd()).await;
            if let (Ok(()), Some(f)) = (&res, &txn_index) {
                res = me.ring.fdatasync(f.as_raw_fd()).await;
            }
            match (res, snapshot) {
                (Ok(()), Some(snap)) => {
                    if let Err(e) = me.ring.fdatasync(snap.file.as_raw_fd()).await.and_then(|()| snap.install()) {
                        crate::warn_limited!(topic = %me.topic, partition = me.partition, "writing a producer state snapshot failed: {e}");
                    }
                }
                (Ok(()), None) => {}
                (Err(e), _) => crate::error_limited!(topic = %me.topic, partition = me.partition, "syncing a rolled segment failed: {e}"),
            }
            me.roll_syncing.set(false);
            me.roll_synced.notify_all();
        })
        .detach();
    }

    fn fail_group(&self, group: &mut [Pending], kind: io::ErrorKind) {
        for p in group {
            if let Some(tx) = p.done.take() {
                let _ = tx.send(Err(kind));
            }
        }
    }

    /// fdatasync of the active segment (older ones were synced when rolled).
    pub async fn flush(&self) -> io::Result<()> {
        let file = {
            let mut st = self.state.borrow_mut();
            st.unflushed_records = 0;
            st.first_unflushed = None;
            st.active().file.clone()
        };
        self.ring.fdatasync(file.as_raw_fd()).await
    }

    /// True when `flush.ms` says the unflushed data is due.
    pub fn flush_due_by_time(&self) -> bool {
        let cfg = self.cfg.borrow();
        let st = self.state.borrow();
        match (cfg.flush_ms, st.first_unflushed) {
            (Some(ms), Some(t)) => cfg.clock.instant().saturating_duration_since(t).as_millis() as u64 >= ms,
            _ => false,
        }
    }

    /// Finds the bytes to return for a fetch at `offset`: whole batches from the one
    /// containing `offset` (Kafka returns the batch even when `offset` is inside it),
    /// up to `max_bytes`, but always the first batch whole (KIP-74).
    ///
    /// `read_committed` (isolation level 1) reads stop at the last stable offset
    /// and carry the aborted transactions overlapping what they return.
    ///
    /// The segment is picked under the log's borrow ([`PartitionLog::plan_read`]); the
    /// batch headers are then read without it, through the ring, page-cache hits first
    /// (see [`SegmentScan`]), so a fetch of cold data never blocks the shard.
    pub async fn read(&self, offset: i64, max_bytes: usize, read_committed: bool, hw: i64) -> Result<ReadSlice> {
        let (out, plan) = self.plan_read(offset, read_committed, hw)?;
        let Some(plan) = plan else { return Ok(out) };
        let Some((pos, h)) = plan.scan.find_batch(&self.ring, plan.from, offset).await? else { return Ok(out) };
        let end = match plan.limit {
            Some((from, limit)) => plan.scan.find_batch(&self.ring, from, limit).await?.map(|(p, _)| p),
            None => None,
        };
        Ok(plan.slice(out, pos, &h, end, max_bytes))
    }

    /// [`PartitionLog::read`] with blocking reads, for replaying a partition while it
    /// opens (a coordinator loading its state). On one broker a partition that holds
    /// data opens only at start-up, before the broker serves.
    pub fn read_blocking(&self, offset: i64, max_bytes: usize, hw: i64) -> Result<ReadSlice> {
        let (out, plan) = self.plan_read(offset, false, hw)?;
        let Some(plan) = plan else { return Ok(out) };
        let Some((pos, h)) = plan.scan.find_batch_blocking(plan.from, offset)? else { return Ok(out) };
        let end = match plan.limit {
            Some((from, limit)) => plan.scan.find_batch_blocking(from, limit)?.map(|(p, _)| p),
            None => None,
        };
        Ok(plan.slice(out, pos, &h, end, max_bytes))
    }

    /// The part of a read done under the log's borrow: the offsets to report, and
    /// the segment to scan unless there is nothing to read.
    fn plan_read(&self, offset: i64, read_committed: bool, hw: i64) -> Result<(ReadSlice, Option<ReadPlan>)> {
        let st = self.state.borrow();
        let hw = hw.min(st.log_end);
        let stable = lso(&st, hw);
        let limit = if read_committed { stable } else { hw };
        let aborted = read_committed.then(|| txn_index::overlapping(&st.aborted, offset, stable));
        let out = ReadSlice {
            data: None,
            cached: None,
            high_watermark: hw,
            log_start_offset: st.log_start_offset,
            last_stable_offset: stable,
            aborted,
            diverging_epoch: None,
        };
        // Past the log end is out of range; between the high watermark and the log
        // end (written, not yet committed by the replicas) there is nothing to read yet.
        if offset < st.log_start_offset || offset > st.log_end {
            return Err(Error::OffsetOutOfRange { offset, log_start: st.log_start_offset, log_end: st.log_end });
        }
        if offset >= limit {
            return Ok((out, None));
        }
        let first = st.segments.partition_point(|s| s.base_offset <= offset).saturating_sub(1);
        let active = st.active().base_offset;
        // The first segment that holds a batch at or after `offset`.
        let plan = st.segments[first..].iter().find(|seg| seg.size > 0 && (offset < seg.next_offset || seg.base_offset > offset)).map(|seg| ReadPlan {
            // The active segment's recent bytes are read from the tail cache.
            scan: if seg.base_offset == active { seg.scan().with_tail(self.tail.clone()) } else { seg.scan() },
            from: seg.index_floor(offset),
            // The LSO (or high watermark) inside this segment: a batch boundary the read stops at.
            limit: (limit < seg.next_offset).then(|| (seg.index_floor(limit), limit)),
            size: seg.size,
        });
        Ok((out, plan))
    }

    /// ListOffsets by timestamp: the first offset whose record timestamp is >= `ts`,
    /// with that record's timestamp; None when every record is older. Reads as
    /// [`PartitionLog::read`] does (no borrow held, never blocking the shard).
    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>> {
        // The candidate segments, oldest first, each with where its scan starts.
        let (candidates, log_start) = {
            let st = self.state.borrow();
            let c: Vec<_> = st
                .segments
                .iter()
                .filter(|seg| seg.max_timestamp >= ts && seg.size > 0)
                .map(|seg| (seg.scan(), seg.index_floor(seg.time_index_floor(ts).max(st.log_start_offset))))
                .collect();
            (c, st.log_start_offset)
        };
        for (scan, from) in candidates {
            let hit = scan.find_header(&self.ring, from, |h| h.max_timestamp >= ts && h.last_offset() >= log_start).await?;
            if let Some((pos, h)) = hit {
                let buf = scan.read(&self.ring, pos, h.total_len()).await?;
                return Ok(Some(first_record_at_or_after(Bytes::from(buf), ts, log_start)?.unwrap_or((h.base_offset.max(log_start), h.max_timestamp))));
            }
        }
        Ok(None)
    }

    /// The topic was deleted: refuse further appends (the directory goes away).
    pub fn mark_deleted(&self) {
        self.closed.set(true);
        self.deleted.set(true);
        self.appended.notify_all();
        self.hw_published.notify_all();
    }

    /// Clean shutdown: stop appends, write the active segment's indexes, fdatasync.
    pub async fn close(&self) -> io::Result<()> {
        self.closed.set(true);
        self.hw_published.notify_all();
        // Let the writer finish what it has queued.
        while self.state.borrow().writer_active {
            self.appended.wait().await;
        }
        self.wait_roll_synced().await;
        self.flush().await?;
        let (snapshot, log_start) = {
            let mut st = self.state.borrow_mut();
            let active = st.active_mut();
            active.release_reservation()?;
            active.write_indexes()?;
            (SnapshotFile::write(&self.dir, st.next_offset, &st.producers.encode_snapshot()?)?, st.log_start_offset)
        };
        // The producer snapshot is synced through the ring, like a roll's.
        self.ring.fdatasync(snapshot.file.as_raw_fd()).await?;
        snapshot.install()?;
        write_offset_file(&self.dir, LOG_START_FILE, log_start)
    }

    /// The partition above tells the log its high watermark whenever it moves.
    pub fn publish_high_watermark(&self, hw: i64) {
        self.published_hw.set(Some(hw));
        self.hw_published.notify_all();
    }

    /// Waits until the published high watermark reaches `end` — the records below
    /// it are on every in-sync replica — at most `timeout` (REQUEST_TIMED_OUT).
    /// The coordinators wait so before answering a write (Kafka's acks=-1 for
    /// its internal topics); on one broker the high watermark follows each
    /// write, so this returns at once.
    pub async fn wait_high_watermark(&self, end: i64, timeout: std::time::Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let moved = self.hw_published.wait();
            if self.published_hw.get().unwrap_or_else(|| self.log_end_offset()) >= end {
                return Ok(());
            }
            if self.closed.get() || self.deleted.get() {
                return Err(Error::NotLeaderOrFollower);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero()
                || glommio::timer::timeout(left, async {
                    moved.await;
                    Ok(())
                })
                .await
                .is_err()
            {
                return Err(Error::RequestTimedOut(format!("the write was not replicated to the in-sync replicas within {} ms", timeout.as_millis())));
            }
        }
    }

    /// The high watermark last written by [`PartitionLog::checkpoint_high_watermark`], if any.
    pub fn checkpointed_high_watermark(&self) -> Option<i64> {
        read_offset_file(&self.dir, HIGH_WATERMARK_FILE)
    }

    /// Writes the high watermark (Kafka's `replication-offset-checkpoint`, one
    /// small file per partition here): a replica that restarts starts from it
    /// rather than from its log end, which may hold records never committed.
    /// Blocking, a few bytes, every `replica.high.watermark.checkpoint.interval.ms`
    /// at most and only when it moved.
    pub fn checkpoint_high_watermark(&self, hw: i64) -> io::Result<()> {
        write_offset_file(&self.dir, HIGH_WATERMARK_FILE, hw)
    }

    /// Sizes for metrics and DescribeLogDirs-style reporting.
    pub fn size_bytes(&self) -> u64 {
        self.state.borrow().segments.iter().map(|s| s.size).sum()
    }
}

/// A closed segment as the cleaner sees it: base offset, file, size, next
/// offset, largest record timestamp.
type ClosedSegment = (i64, Arc<std::fs::File>, u64, i64, i64);

/// What one compaction round did (logged by the shard's cleaner task).
#[derive(Debug, Default, Clone)]
pub struct CleanStats {
    /// Closed segments rewritten by this round.
    pub segments_cleaned: u64,
    /// Bytes of those segments read.
    pub bytes_read: u64,
    /// Bytes written to their cleaned replacements.
    pub bytes_written: u64,
    /// Records dropped (superseded by a later record with the same key, or tombstones).
    pub records_removed: u64,
    /// Of `records_removed`, the tombstones dropped past `delete.retention.ms`.
    pub tombstones_removed: u64,
    /// Wall time of the round, offset map build included.
    pub elapsed: std::time::Duration,
}

/// The first offset not yet compacted (Kafka keeps this in `cleaner-offset-checkpoint`).
const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

fn read_offset_file(dir: &Path, name: &str) -> Option<i64> {
    std::fs::read_to_string(dir.join(name)).ok()?.trim().parse().ok()
}

fn write_offset_file(dir: &Path, name: &str, v: i64) -> io::Result<()> {
    std::fs::write(dir.join(name), format!("{v}\n"))
}

/// What a roll leaves to do in the background: make the old segment, its
/// transaction index and the producer snapshot durable, in that order
/// (recovery trusts the `.txnindex` below a snapshot).
struct RollSync {
    old: Arc<std::fs::File>,
    txn_index: Option<std::fs::File>,
    snapshot: Option<SnapshotFile>,
}

/// Rolls: writes the old segment's indexes and opens a new active segment.
/// The old segment's `fdatasync` (up to a whole segment of dirty pages, tens
/// of ms) is not done here, on the shard's thread, but by `sync_rolled`
/// through the ring, so produce and fetch keep going meanwhile.
fn roll(st: &mut State, dir: &Path, base_offset: i64, created: Instant) -> io::Result<RollSync> {
    let old = st.active_mut();
    old.release_reservation()?;
    old.write_indexes()?;
    let old_file = old.file.clone();
    let txn_index = std::fs::File::open(txn_index::path(dir, old.base_offset)).ok();
    let seg = Segment::create(dir, base_offset, created)?;
    st.segments.push(seg);
    // Recovery replays producer state from the newest snapshot, so it reads at most about a segment.
    let snapshot = match st.producers.encode_snapshot().and_then(|b| SnapshotFile::write(dir, st.next_offset, &b)) {
        Ok(f) => Some(f),
        Err(e) => {
            crate::warn_limited!(dir = %dir.display(), "writing a producer state snapshot failed: {e}");
            None
        }
    };
    Ok(RollSync { old: old_file, txn_index, snapshot })
}

/// Whether batch `h` can go into the segment starting at `base`: its offsets
/// must fit the indexes' relative offsets (Kafka rolls when they would not).
/// Only a follower's log, copying a compacted leader's offset gaps, gets near it.
fn fits_relative(base: i64, h: &BatchHeader) -> bool {
    h.last_offset().saturating_sub(base) <= i64::from(i32::MAX)
}

/// Waits for the writer's answer about the last batch of an append.
async fn written(rx: oneshot::Receiver<std::result::Result<(), io::ErrorKind>>) -> Result<()> {
    match rx.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(kind)) => Err(Error::Io(io::Error::new(kind, "segment write failed"))),
        Err(_) => Err(Error::ShuttingDown),
    }
}

/// The last stable offset: the first open transaction's first offset, at most the high watermark.
fn lso(st: &State, hw: i64) -> i64 {
    let hw = hw.min(st.log_end);
    st.producers.first_unstable_offset().map_or(hw, |o| o.min(hw))
}

/// Checks the batches of one append against the producer state (a scratch copy
/// when several batches must see each other's updates). Returns the producer
/// and original offsets of a duplicate when the append is one retried batch; a
/// duplicate behind new batches in the same append is refused (answering it
/// with the original offsets would drop the new ones).
fn check_producers(producers: &ProducerState, batches: &[ValidatedBatch], origin: Origin) -> Result<Option<(i64, super::producer_state::BatchMeta)>> {
    let with_pid = batches.iter().filter(|b| b.header.producer_id >= 0).count();
    if with_pid == 0 {
        return Ok(None);
    }
    let mut scratch = (with_pid > 1).then(|| producers.clone());
    for b in batches.iter().filter(|b| b.header.producer_id >= 0) {
        match scratch.as_ref().unwrap_or(producers).check(&b.header, origin)? {
            Check::Duplicate(d) if batches.len() == 1 => return Ok(Some((b.header.producer_id, d))),
            Check::Duplicate(_) => return Err(Error::InvalidRecord("a retried batch must be sent alone in its partition's records")),
            Check::Append => {
                if let Some(s) = scratch.as_mut() {
                    s.update(&b.header);
                }
            }
        }
    }
    Ok(None)
}

/// Rebuilds a partition's producer state and aborted-transaction list: the
/// newest snapshot not past the log end, then the batch headers after it
/// (markers are read to end transactions; aborts are re-indexed). Index
/// entries at or past the replay start are dropped first, so none is doubled.
fn load_producer_state(dir: &Path, segments: &[Segment]) -> io::Result<(ProducerState, Vec<AbortedTxn>)> {
    let end = segments.last().map_or(0, |s| s.next_offset);
    let (mut producers, snap_at) = ProducerState::load_snapshot(dir, end);
    let from = snap_at.max(segments.first().map_or(0, |s| s.base_offset));
    let mut aborted = Vec::new();
    for seg in segments {
        let entries = txn_index::read(dir, seg.base_offset)?;
        let kept: Vec<AbortedTxn> = entries.iter().copied().filter(|t| t.last_offset < from).collect();
        if kept.len() != entries.len() {
            txn_index::rewrite(dir, seg.base_offset, &kept)?;
        }
        aborted.extend(kept);
    }
    for seg in segments.iter().filter(|s| s.next_offset > from && s.size > 0) {
        let mut pos = match seg.find_batch(from)? {
            Some((p, _)) => p,
            None => continue,
        };
        while pos + BATCH_HEADER_LEN as u64 <= seg.size {
            let h = seg.header_at(pos)?;
            let total = h.total_len() as u64;
            if h.base_offset >= from && h.producer_id >= 0 {
                if h.is_control() {
                    let mut raw = vec![0u8; total as usize];
                    std::os::unix::fs::FileExt::read_exact_at(&*seg.file, &mut raw, pos)?;
                    if let Some((commit, coordinator_epoch)) = crate::protocol::control::decode_marker(&Bytes::from(raw)) {
                        if let Some(c) = producers.apply_marker(h.producer_id, h.producer_epoch, coordinator_epoch, commit, h.base_offset, h.max_timestamp) {
                            producers.end_ongoing(c.first_offset);
                            if c.aborted {
                                let t = AbortedTxn::of(&c, producers.first_unstable_offset());
                                txn_index::append(dir, seg.base_offset, &t)?;
                                aborted.push(t);
                            }
                        }
                    }
                } else {
                    producers.update(&h);
                }
            }
            pos += total;
        }
    }
    Ok((producers, aborted))
}

/// Finds, inside one batch (any compression), the first record with timestamp >= `ts`.
/// Walks the records without decoding them (no allocation for uncompressed
/// batches); decompression is bounded by the largest request the broker accepts.
fn first_record_at_or_after(batch: Bytes, ts: i64, min_offset: i64) -> Result<Option<(i64, i64)>> {
    const MAX_INFLATED: usize = 256 << 20;
    let mut found = None;
    use crate::protocol::record_validator::{walk_records, Deltas};
    walk_records(&batch, MAX_INFLATED, Deltas::Increasing, |r| {
        if r.timestamp >= ts && r.offset >= min_offset {
            found = Some((r.offset, r.timestamp));
            return false;
        }
        true
    })
    .map_err(|_| Error::CorruptMessage("stored batch does not decode"))?;
    Ok(found)
}

const LOG_START_FILE: &str = "log-start-offset";
/// The partition's checkpointed high watermark (cluster replicas).
const HIGH_WATERMARK_FILE: &str = "high-watermark-checkpoint";

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use kafka_protocol::records::{Compression, Record, TimestampType};

    use super::*;
    use crate::clock::Clock;
    use crate::config::Config;
    use crate::log::layout::{self, file_stem};
    use crate::protocol::compression::encode_batch;

    use crate::io::run_on_executor as run;

    /// One batch of `n` keyless records from offset `base`, all with CreateTime `ts`.
    fn batch(base: i64, n: i64, ts: i64) -> Bytes {
        let rs: Vec<Record> = (base..base + n)
            .map(|offset| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset,
                sequence: -1,
                timestamp: ts,
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: Default::default(),
            })
            .collect();
        encode_batch(&rs, Compression::None).unwrap()
    }

    /// One record stamped with the clock's time, ready to append.
    fn batch_at(ts: i64) -> Vec<ValidatedBatch> {
        validate_batches(&batch(0, 1, ts), usize::MAX).unwrap()
    }

    #[test]
    fn retention_by_time_follows_the_clock() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(move || async move {
            let clock = Clock::manual(1_700_000_000_000);
            let cfg = Config { clock: clock.clock(), ..Default::default() };
            let mut lc = LogConfig::from(&cfg, &Default::default());
            (lc.roll_ms, lc.retention_ms, lc.delete) = (1_000, Some(60_000), true);
            let log = PartitionLog::open(&dir, "t", 0, lc, Ring::start().unwrap(), false).unwrap();
            log.append(batch_at(clock.now_ms())).await.unwrap();
            // segment.ms by the clock: the next append rolls.
            clock.advance(Duration::from_millis(1_000));
            log.append(batch_at(clock.now_ms())).await.unwrap();
            assert_eq!(log.state.borrow().segments.len(), 2, "rolled by segment.ms");
            // The first segment's record is 60 s old: not past retention.ms yet.
            clock.advance(Duration::from_millis(59_000));
            assert_eq!(log.apply_retention(log.now_ms()).unwrap(), 0);
            assert_eq!(log.log_start_offset(), 0);
            clock.advance(Duration::from_millis(1));
            assert_eq!(log.apply_retention(log.now_ms()).unwrap(), 1);
            assert_eq!(log.log_start_offset(), 1);
            log.close().await.unwrap();
        });
    }

    /// Retention stops before the segment under the cleaner's swap guard, and
    /// DeleteRecords waits for the guard before it removes that segment.
    #[test]
    fn retention_and_delete_records_leave_a_segment_being_swapped_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let log_dir = tmp.path().to_path_buf();
        let dir = partition_dir(&log_dir, "t", 0);
        std::fs::create_dir_all(&dir).unwrap();
        // Segments 0, 10, 20 (closed) and 30 (active), ten records each.
        for base in [0, 10, 20, 30] {
            std::fs::write(dir.join(format!("{}.log", file_stem(base))), batch(base, 10, 1)).unwrap();
        }
        let seg_file = move |base: i64| dir.join(format!("{}.log", file_stem(base)));
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(64 * 1024)
            .spawn(move || async move {
                let topic = BTreeMap::from([("cleanup.policy".to_string(), "delete".to_string()), ("retention.ms".to_string(), "0".to_string())]);
                let cfg = LogConfig::from(&Config::default(), &topic);
                let log = PartitionLog::open(&log_dir, "t", 0, cfg, Ring::start().unwrap(), false).unwrap();
                let guard = SwapGuard::hold(&log, 10);
                // Every closed segment is expired; retention stops before segment 10.
                assert_eq!(log.apply_retention(crate::protocol::now_ms()).unwrap(), 1);
                assert_eq!(log.log_start_offset(), 10);
                assert!(!seg_file(0).exists() && seg_file(10).exists());
                // DeleteRecords up to 25 waits for the guard.
                let mut del = Box::pin(log.delete_records_before(25, 40));
                assert!(futures::poll!(&mut del).is_pending());
                assert!(futures::poll!(&mut del).is_pending());
                assert!(seg_file(10).exists());
                assert_eq!(log.log_start_offset(), 10);
                drop(guard);
                assert_eq!(del.await.unwrap(), 25);
                assert!(!seg_file(10).exists() && seg_file(20).exists());
                // With the guard gone, retention goes on where it stopped.
                assert_eq!(log.apply_retention(crate::protocol::now_ms()).unwrap(), 1);
                assert!(!seg_file(20).exists() && seg_file(30).exists());
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// One batch of `n` records from offset `base` by producer `pid` (sequence
    /// `seq` on), transactional or not.
    fn producer_batch(base: i64, n: i64, pid: i64, seq: i32, txn: bool) -> Bytes {
        let rs: Vec<Record> = (base..base + n)
            .map(|offset| Record {
                transactional: txn,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: pid,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset,
                sequence: seq,
                timestamp: 1_000,
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: Default::default(),
            })
            .collect();
        encode_batch(&rs, Compression::None).unwrap()
    }

    /// `b` with its partitionLeaderEpoch set to `epoch` (outside the CRC), as a leader stores it.
    fn with_epoch(b: &Bytes, epoch: i32) -> Bytes {
        let mut v = b.to_vec();
        v[12..16].copy_from_slice(&epoch.to_be_bytes());
        Bytes::from(v)
    }

    fn validated(b: &Bytes) -> Vec<ValidatedBatch> {
        validate_batches(b, usize::MAX).unwrap()
    }

    fn concat(parts: &[&Bytes]) -> Bytes {
        Bytes::from(parts.iter().flat_map(|b| b.iter().copied()).collect::<Vec<u8>>())
    }

    /// Every stored batch header, oldest first, read from the segment files.
    fn headers(log: &PartitionLog) -> Vec<BatchHeader> {
        let st = log.state.borrow();
        let mut out = Vec::new();
        for seg in &st.segments {
            let mut pos = 0;
            while pos < seg.size {
                let h = seg.header_at(pos).unwrap();
                pos += h.total_len() as u64;
                out.push(h);
            }
        }
        out
    }

    /// The data bytes of every segment file, in order (without the active one's DMA padding).
    fn log_bytes(log: &PartitionLog) -> Vec<u8> {
        let st = log.state.borrow();
        st.segments
            .iter()
            .flat_map(|seg| {
                let mut raw = std::fs::read(layout::segment_file(&log.dir, seg.base_offset, "log")).unwrap();
                raw.truncate(seg.size as usize);
                raw
            })
            .collect()
    }

    fn open_log(dir: &Path, segment_bytes: u64, recover: bool) -> Rc<PartitionLog> {
        let mut lc = LogConfig::from(&Config::default(), &Default::default());
        lc.segment_bytes = segment_bytes;
        PartitionLog::open(dir, "t", 0, lc, Ring::start().unwrap(), recover).unwrap()
    }

    #[test]
    fn an_epoch_started_at_the_log_end_without_batches_is_dropped_by_a_truncation_there() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(move || async move {
            let log = open_log(&dir, 1 << 20, false);
            log.append(validated(&batch(0, 2, 1))).await.unwrap();
            // Led briefly at epoch 4, appended nothing, then follows a leader that never had epoch 4.
            log.become_leader(4).unwrap();
            assert_eq!(log.latest_epoch(), Some(4));
            assert_eq!(log.truncate_to(2).await.unwrap(), 2);
            assert_eq!(log.latest_epoch(), Some(0), "epoch 4 has no batch and must not be presented to the leader");
            log.close().await.unwrap();
            assert_eq!(open_log(&dir, 1 << 20, false).latest_epoch(), Some(0));
        });
    }

    #[test]
    fn batches_are_stamped_with_the_leader_epoch() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(move || async move {
            let log = open_log(&dir, 1 << 20, false);
            assert_eq!(log.latest_epoch(), None);
            // A client's partitionLeaderEpoch is not kept: a single broker stamps 0.
            log.append(validated(&with_epoch(&batch(0, 2, 1), 9))).await.unwrap();
            log.become_leader(3).unwrap();
            log.append(validated(&with_epoch(&batch(0, 2, 1), 9))).await.unwrap();
            log.append_marker(5, 0, true, 0).await.unwrap();
            let epochs: Vec<i32> = headers(&log).iter().map(|h| h.partition_leader_epoch).collect();
            assert_eq!(epochs, vec![0, 3, 3]);
            // The stamp is outside the CRC: the stored batches still validate.
            validate_batches(&Bytes::from(log_bytes(&log)), usize::MAX).unwrap();
            assert_eq!(log.latest_epoch(), Some(3));
            assert_eq!(log.state.borrow().epochs.entries(), &[(0, 0), (3, 2)]);
            assert_eq!(log.end_offset_for_epoch(0), (0, 2));
            assert_eq!(log.end_offset_for_epoch(3), (3, 5));
            assert_eq!(log.end_offset_for_epoch(4), (-1, -1));
            assert_eq!(log.become_leader(2).unwrap_err().kind(), io::ErrorKind::InvalidInput);
            // Leading again in the same epoch changes nothing.
            log.become_leader(3).unwrap();
            assert_eq!(log.state.borrow().epochs.entries(), &[(0, 0), (3, 2)]);
            log.close().await.unwrap();
            let log = open_log(&dir, 1 << 20, false);
            assert_eq!(log.state.borrow().epochs.entries(), &[(0, 0), (3, 2)]);
            assert_eq!(log.end_offset_for_epoch(3), (3, 5));
            // Reopened, the log stamps its newest epoch until told another.
            log.append(validated(&batch(0, 1, 1))).await.unwrap();
            assert_eq!(headers(&log).last().map(|h| h.partition_leader_epoch), Some(3));
            assert_eq!(log.state.borrow().epochs.entries(), &[(0, 0), (3, 2)]);
        });
    }

    #[test]
    fn replicated_batches_are_written_unchanged_and_must_not_go_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(move || async move {
            let log = open_log(&dir, 1 << 20, false);
            let ends = Rc::new(Cell::new(-1));
            let seen = ends.clone();
            log.set_on_written(Box::new(move |end| seen.set(end)));
            let (a, b) = (with_epoch(&batch(0, 3, 1), 1), with_epoch(&batch(3, 2, 1), 2));
            assert_eq!(log.append_replicated(validated(&concat(&[&a, &b]))).await.unwrap(), 5);
            assert_eq!(ends.get(), 5);
            assert_eq!(log_bytes(&log), concat(&[&a, &b]).to_vec());
            assert_eq!(log.state.borrow().epochs.entries(), &[(1, 0), (2, 3)]);
            // Overlapping the log, or going back inside one fetch: refused, nothing written.
            let again = log.append_replicated(validated(&with_epoch(&batch(4, 1, 1), 2))).await;
            assert!(matches!(again, Err(Error::OffsetOutOfRange { offset: 4, log_end: 5, .. })), "{again:?}");
            let (c, d) = (with_epoch(&batch(5, 2, 1), 2), with_epoch(&batch(6, 1, 1), 2));
            assert!(matches!(log.append_replicated(validated(&concat(&[&c, &d]))).await, Err(Error::OffsetOutOfRange { offset: 6, .. })));
            assert_eq!(log.log_end_offset(), 5);
            // An offset gap (a compacted leader's log) is kept as it is.
            let e = with_epoch(&batch(8, 2, 1), 4);
            assert_eq!(log.append_replicated(validated(&e)).await.unwrap(), 10);
            assert_eq!(log_bytes(&log), concat(&[&a, &b, &e]).to_vec());
            assert_eq!(log.state.borrow().epochs.entries(), &[(1, 0), (2, 3), (4, 8)]);
            assert_eq!(log.end_offset_for_epoch(3), (2, 8));
            log.close().await.unwrap();
            let log = open_log(&dir, 1 << 20, false);
            assert_eq!(log.log_end_offset(), 10);
            assert_eq!(log_bytes(&log), concat(&[&a, &b, &e]).to_vec());
            assert_eq!(log.state.borrow().epochs.entries(), &[(1, 0), (2, 3), (4, 8)]);
        });
    }

    /// A replicated transaction and its abort marker: the producer state and
    /// the aborted index follow, and a truncation below the marker reopens it.
    #[test]
    fn replicated_markers_end_transactions_and_truncation_reopens_them() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(move || async move {
            let log = open_log(&dir, 1 << 20, false);
            let data = with_epoch(&producer_batch(0, 2, 9, 0, true), 1);
            let mut marker = crate::protocol::control::encode_marker(9, 0, false, 5, 2_000).to_vec();
            marker[..8].copy_from_slice(&2i64.to_be_bytes());
            let marker = with_epoch(&Bytes::from(marker), 1);
            assert_eq!(log.append_replicated(validated(&concat(&[&data, &marker]))).await.unwrap(), 3);
            let aborted = log.read(0, 1 << 20, true, 3).await.unwrap().aborted.unwrap();
            assert_eq!(aborted, vec![AbortedTxn { producer_id: 9, first_offset: 0, last_offset: 2, last_stable_offset: 3 }]);
            assert_eq!(log.last_stable_offset(3), 3);
            assert!(txn_index::path(&log.dir, 0).exists());
            assert_eq!(log.truncate_to(2).await.unwrap(), 2);
            assert!(log.read(0, 1 << 20, true, 2).await.unwrap().aborted.unwrap().is_empty());
            assert_eq!(log.last_stable_offset(2), 0, "the transaction is open again");
            assert!(!txn_index::path(&log.dir, 0).exists());
            log.close().await.unwrap();
            let log = open_log(&dir, 1 << 20, true);
            assert_eq!((log.log_end_offset(), log.last_stable_offset(2)), (2, 0));
        });
    }

    #[test]
    fn truncation_inside_the_active_segment() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(move || async move {
            let log = open_log(&dir, 1 << 20, false);
            for _ in 0..3 {
                log.append(validated(&batch(0, 2, 1))).await.unwrap();
            }
            log.become_leader(2).unwrap();
            for _ in 0..2 {
                log.append(validated(&batch(0, 2, 1))).await.unwrap();
            }
            let one = batch(0, 2, 1).len() as u64;
            assert_eq!(log.state.borrow().epochs.entries(), &[(0, 0), (2, 6)]);
            // Nothing past the end to cut.
            assert_eq!(log.truncate_to(10).await.unwrap(), 10);
            // Offset 7 is inside batch [6, 7]: the whole batch goes.
            assert_eq!(log.truncate_to(7).await.unwrap(), 6);
            assert_eq!((log.log_end_offset(), log.size_bytes()), (6, 3 * one));
            assert_eq!(std::fs::metadata(layout::segment_file(&dir.join("t-0"), 0, "log")).unwrap().len(), 3 * one);
            assert_eq!(log.state.borrow().epochs.entries(), &[(0, 0)]);
            // A batch boundary is kept as the end.
            assert_eq!(log.truncate_to(4).await.unwrap(), 4);
            assert_eq!(log.end_offset_for_epoch(0), (0, 4));
            // Appending continues at the new end, in the current epoch.
            assert_eq!(log.append(validated(&batch(0, 2, 1))).await.unwrap().base_offset, 4);
            assert_eq!(log.state.borrow().epochs.entries(), &[(0, 0), (2, 4)]);
            let bases: Vec<i64> = headers(&log).iter().map(|h| h.base_offset).collect();
            assert_eq!(bases, vec![0, 2, 4]);
            // A crash now: recovery finds the same log.
            drop(log);
            let log = open_log(&dir, 1 << 20, true);
            assert_eq!(log.log_end_offset(), 6);
            assert_eq!(headers(&log).iter().map(|h| h.base_offset).collect::<Vec<_>>(), vec![0, 2, 4]);
            assert_eq!(log.state.borrow().epochs.entries(), &[(0, 0), (2, 4)]);
            let slice = log.read(4, 1 << 20, false, 6).await.unwrap();
            assert_eq!(slice.data.map(|(_, pos, len)| (pos, len as u64)), Some((2 * one, one)));
        });
    }

    #[test]
    fn truncation_across_segments_and_below_the_log_start() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(move || async move {
            let one = batch(0, 2, 1).len() as u64;
            let pdir = dir.join("t-0");
            let log = open_log(&dir, 2 * one, false);
            for _ in 0..6 {
                log.append(validated(&batch(0, 2, 1))).await.unwrap();
            }
            let bases = |log: &PartitionLog| log.state.borrow().segments.iter().map(|s| s.base_offset).collect::<Vec<_>>();
            assert_eq!(bases(&log), vec![0, 4, 8]);
            // Offset 5 is in the first batch of segment 4: that segment is emptied, 8 removed.
            assert_eq!(log.truncate_to(5).await.unwrap(), 4);
            assert_eq!(bases(&log), vec![0, 4]);
            assert!(!layout::segment_file(&pdir, 8, "log").exists());
            assert!(!layout::snapshot_file(&pdir, 8).exists(), "a producer snapshot past the end is deleted");
            assert_eq!(log.append(validated(&batch(0, 2, 1))).await.unwrap().base_offset, 4);
            // Offset 3 is in closed segment 0: it becomes the active segment again.
            assert_eq!(log.truncate_to(3).await.unwrap(), 2);
            assert_eq!(bases(&log), vec![0]);
            assert!(!layout::segment_file(&pdir, 0, "index").exists(), "the active segment's indexes live in memory");
            assert_eq!(log.append(validated(&batch(0, 2, 1))).await.unwrap().base_offset, 2);
            assert_eq!(log.append(validated(&batch(0, 2, 1))).await.unwrap().base_offset, 4);
            assert_eq!(bases(&log), vec![0, 4], "rolls again at segment.bytes");
            log.close().await.unwrap();
            let log = open_log(&dir, 2 * one, false);
            assert_eq!(log.log_end_offset(), 6);
            assert_eq!(headers(&log).iter().map(|h| h.base_offset).collect::<Vec<_>>(), vec![0, 2, 4]);
            let slice = log.read(2, 1 << 20, false, 6).await.unwrap();
            assert_eq!(slice.data.map(|(_, pos, len)| (pos, len as u64)), Some((one, one)));
            // Below the log start: the log is emptied and starts again at its log start.
            assert_eq!(log.delete_records_before(3, 6).await.unwrap(), 3);
            assert_eq!(log.truncate_to(1).await.unwrap(), 3);
            assert_eq!((log.log_start_offset(), log.log_end_offset(), log.size_bytes()), (3, 3, 0));
            assert_eq!(bases(&log), vec![3]);
            assert_eq!(log.append(validated(&batch(0, 2, 1))).await.unwrap().base_offset, 3);
            drop(log);
            let log = open_log(&dir, 2 * one, true);
            assert_eq!((log.log_start_offset(), log.log_end_offset()), (3, 5));
            assert_eq!(bases(&log), vec![3]);
        });
    }

    /// An idempotent producer's retry of a batch the truncation removed is a new
    /// append, not a duplicate answered with offsets that are gone.
    #[test]
    fn a_retry_of_a_truncated_batch_is_appended_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(move || async move {
            let one = producer_batch(0, 2, 7, 0, false).len() as u64;
            let log = open_log(&dir, 2 * one, false);
            for seq in [0, 2, 4] {
                log.append(validated(&producer_batch(0, 2, 7, seq, false))).await.unwrap();
            }
            // Segments 0 (seq 0 and 2) and 4 (seq 4); a producer snapshot at 4.
            assert_eq!(log.truncate_to(3).await.unwrap(), 2);
            let retry = Box::pin(log.append(validated(&producer_batch(0, 2, 7, 2, false))));
            let info = match futures::future::select(retry, Box::pin(glommio::timer::sleep(Duration::from_secs(5)))).await {
                futures::future::Either::Left((r, _)) => r.unwrap(),
                futures::future::Either::Right(_) => panic!("the retry waited for an original that is gone"),
            };
            assert_eq!((info.base_offset, log.log_end_offset()), (2, 4));
            // The batch still in the log is a duplicate as before.
            assert_eq!(log.append(validated(&producer_batch(0, 2, 7, 0, false))).await.unwrap().base_offset, 0);
            assert_eq!(log.log_end_offset(), 4);
            let gap = log.append(validated(&producer_batch(0, 2, 7, 6, false))).await;
            assert!(matches!(gap, Err(Error::OutOfOrderSequence(_))), "{gap:?}");
            drop(log);
            let log = open_log(&dir, 2 * one, true);
            assert_eq!(log.append(validated(&producer_batch(0, 2, 7, 4, false))).await.unwrap().base_offset, 4);
            assert_eq!(log.append(validated(&producer_batch(0, 2, 7, 2, false))).await.unwrap().base_offset, 2, "a duplicate after reopening");
        });
    }

    /// A gap wider than the indexes' relative offsets (a follower of a
    /// compacted leader) starts a new segment.
    #[test]
    fn a_replicated_batch_too_far_ahead_rolls_the_segment() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(move || async move {
            let log = open_log(&dir, 1 << 20, false);
            let far = 3_000_000_000;
            let (a, b, c) = (batch(0, 2, 1), batch(far, 2, 1), batch(far + 2, 1, 1));
            assert_eq!(log.append_replicated(validated(&concat(&[&a, &b, &c]))).await.unwrap(), far + 3);
            let bases: Vec<i64> = log.state.borrow().segments.iter().map(|s| s.base_offset).collect();
            assert_eq!(bases, vec![0, far]);
            let slice = log.read(far + 2, 1 << 20, false, far + 3).await.unwrap();
            assert_eq!(slice.data.map(|(_, pos, _)| pos), Some(b.len() as u64));
            log.close().await.unwrap();
            assert_eq!(open_log(&dir, 1 << 20, false).log_end_offset(), far + 3);
        });
    }
}
