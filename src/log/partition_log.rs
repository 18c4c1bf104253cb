//! A partition's log: its segments, offsets, group-committed appends and reads.
//!
//! Appends assign offsets synchronously (so offsets follow arrival order) and
//! queue the batches; one writer task per partition takes everything queued and
//! writes it with a single `writev` through the shard's io_uring ring, then
//! advances the high watermark and wakes the appenders and waiting fetches.
//! While one write is in flight new appends pile up and go out together in the
//! next one (group commit), so the number of syscalls falls as load rises.
//!
//! Writes are buffered (page cache), not O_DIRECT: an acknowledged batch is in
//! the page cache and is read back by `splice` without a disk read, and Kafka's
//! flush policy (`flush.messages`, `flush.ms`) decides when to `fdatasync`.
//! Measured on the project machine (ARCHITECTURE.md): O_DIRECT writes are faster
//! to the device but leave fresh data cold for tailing consumers.

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

use super::producer_state::{Check, CompletedTxn, Origin, ProducerEntry, ProducerState, SnapshotFile};
use super::segment::{Segment, SegmentScan};
use super::txn_index::{self, AbortedTxn};
use super::LogConfig;
use crate::error::{Error, Result};
use crate::io::ring::Ring;
use crate::protocol::record_batch::{rewrite_header, validate_batches, BatchHeader, ValidatedBatch, BATCH_HEADER_LEN};
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
        ReadSlice { data: Some((self.scan.file().clone(), pos, len as u32)), ..out }
    }
}

/// A file range to send for a fetch, plus the partition offsets to report.
#[derive(Debug, Clone)]
pub struct ReadSlice {
    /// The segment file and the range of whole batches (the last may be cut by max bytes).
    pub data: Option<(Arc<std::fs::File>, u64, u32)>,
    /// The partition's high watermark (capped at the log end): the first offset
    /// not yet committed by the ISR, which plain reads stop at.
    pub high_watermark: i64,
    /// The log start offset (low watermark): the first offset still readable.
    pub log_start_offset: i64,
    /// First offset a read_committed consumer may not read yet (= high watermark without open transactions).
    pub last_stable_offset: i64,
    /// read_committed reads only: aborted transactions overlapping the returned range.
    pub aborted: Option<Vec<AbortedTxn>>,
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
            let len_before = if check { Segment::file_len_at(&dir, base)? } else { 0 };
            let seg = Segment::open(&dir, base, check, cfg.index_interval_bytes, cfg.clock.instant())?;
            let torn = check && seg.size < len_before;
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
            }),
            ring,
            appended: Notify::default(),
            on_written: RefCell::new(None),
            closed: Cell::new(false),
            roll_syncing: Cell::new(false),
            roll_synced: Notify::default(),
            deleted: Cell::new(false),
            swapping: Cell::new(None),
            swap_done: Notify::default(),
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
            seg.delete_files()?;
            n += 1;
        }
        if n > 0 {
            let start = st.log_start_offset;
            st.aborted.retain(|t| t.last_offset >= start);
            write_offset_file(&self.dir, LOG_START_FILE, st.log_start_offset)?;
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
            let still_there = self.closed_segment_at(*base, file).is_some();
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
        write_offset_file(&self.dir, CLEANER_CHECKPOINT_FILE, map_end)?;
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
    /// coordinator epoch) when the single batch is a transaction marker.
    async fn enqueue(self: &Rc<Self>, batches: Vec<ValidatedBatch>, marker: Option<(bool, i32)>) -> Result<AppendInfo> {
        let cfg = self.cfg.borrow().clone();
        let append_time = cfg.log_append_time.then(|| cfg.clock.now_ms());
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        let info;
        let start_writer;
        {
            let mut st = self.state.borrow_mut();
            let base = st.next_offset;
            let n = batches.len();
            for (i, b) in batches.into_iter().enumerate() {
                let base_offset = st.next_offset;
                let header = rewrite_header(&b, base_offset, append_time);
                let mut fields = b.header;
                fields.base_offset = base_offset;
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
                st.queue.push_back(Pending { header, fields, body: b.bytes.slice(BATCH_HEADER_LEN..), completes, done: None });
                if i + 1 == n {
                    if let Some(p) = st.queue.back_mut() {
                        p.done = tx.take();
                    }
                }
            }
            info = AppendInfo { base_offset: base, log_append_time_ms: append_time.unwrap_or(-1), log_start_offset: st.log_start_offset };
            start_writer = !st.writer_active;
            st.writer_active = true;
        }
        if start_writer {
            // Spawned only after the borrow ends: glommio may poll a new task at once.
            let me = self.clone();
            glommio::spawn_local(async move { me.write_loop().await }).detach();
        }
        match rx.await {
            Ok(Ok(())) => Ok(info),
            Ok(Err(kind)) => Err(Error::Io(io::Error::new(kind, "segment write failed"))),
            Err(_) => Err(Error::ShuttingDown),
        }
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
                active.size > 0 && (active.size + first_len > cfg.segment_bytes || age_ms >= cfg.roll_ms)
            };
            if must_roll {
                self.wait_roll_synced().await;
                let rolled = roll(&mut self.state.borrow_mut(), &self.dir, group[start].fields.base_offset, cfg.clock.instant());
                match rolled {
                    Ok(sync) => self.sync_rolled(sync),
                    Err(e) => {
                        self.fail_group(&mut group[start..], e.kind());
                        return Err(e);
                    }
                }
            }
            // Decide the run of batches that go into the active segment.
            let (fd, pos, end) = {
                let mut st = self.state.borrow_mut();
                let mut end = start;
                let mut bytes = 0u64;
                let active = st.active_mut();
                while end < group.len() {
                    let len = (BATCH_HEADER_LEN + group[end].body.len()) as u64;
                    if end > start && active.size + bytes + len > cfg.segment_bytes {
                        break;
                    }
                    bytes += len;
                    end += 1;
                }
                active.reserve(active.size + bytes, cfg.segment_bytes);
                (active.file.clone(), active.size, end)
            };
            let run: Vec<Pending> = group.drain(start..end).collect();
            let mut iov = Vec::with_capacity(run.len() * 2);
            for p in &run {
                iov.push(libc::iovec { iov_base: p.header.as_ptr() as *mut libc::c_void, iov_len: BATCH_HEADER_LEN });
                if !p.body.is_empty() {
                    iov.push(libc::iovec { iov_base: p.body.as_ptr() as *mut libc::c_void, iov_len: p.body.len() });
                }
            }
            // The iovecs point into `run`'s heap memory, which `keep` owns until completion.
            let run = Rc::new(RefCell::new(run));
            let keep: Rc<dyn std::any::Any> = run.clone();
            let res = self.ring.writev_all(fd.as_raw_fd(), iov, keep, pos).await;
            let mut run = std::mem::take(&mut *run.borrow_mut());
            if let Err(e) = res {
                // Drop the partial write and everything assigned after it; offsets are reused.
                let _ = fd.set_len(pos);
                self.fail_group(&mut run, e.kind());
                self.fail_group(&mut group, e.kind());
                let mut st = self.state.borrow_mut();
                let mut rest: Vec<Pending> = st.queue.drain(..).collect();
                st.next_offset = st.log_end;
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
        let out = ReadSlice { data: None, high_watermark: hw, log_start_offset: st.log_start_offset, last_stable_offset: stable, aborted };
        // Past the log end is out of range; between the high watermark and the log
        // end (written, not yet committed by the replicas) there is nothing to read yet.
        if offset < st.log_start_offset || offset > st.log_end {
            return Err(Error::OffsetOutOfRange { offset, log_start: st.log_start_offset, log_end: st.log_end });
        }
        if offset >= limit {
            return Ok((out, None));
        }
        let first = st.segments.partition_point(|s| s.base_offset <= offset).saturating_sub(1);
        // The first segment that holds a batch at or after `offset`.
        let plan = st.segments[first..].iter().find(|seg| seg.size > 0 && (offset < seg.next_offset || seg.base_offset > offset)).map(|seg| ReadPlan {
            scan: seg.scan(),
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
    }

    /// Clean shutdown: stop appends, write the active segment's indexes, fdatasync.
    pub async fn close(&self) -> io::Result<()> {
        self.closed.set(true);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use kafka_protocol::records::{Compression, Record, TimestampType};

    use super::*;
    use crate::clock::Clock;
    use crate::config::Config;
    use crate::log::layout::file_stem;
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
}
