//! Log compaction (Kafka's log cleaner) for `cleanup.policy=compact` partitions.
//!
//! A compacted log keeps at least the latest record of every key. One cleaning
//! round, as Kafka does it:
//!
//! 1. [`build_offset_map`] reads the *dirty* section (from the cleaner checkpoint
//!    on) of the closed segments and remembers the latest offset of each key, up
//!    to a memory budget;
//! 2. [`clean_segment`] rewrites each closed segment below the map's end into
//!    `<base>.log.cleaned`, dropping records superseded by a later one of the same
//!    key and tombstones (null values) older than `delete.retention.ms`;
//! 3. [`swap_in`] replaces the segment with its cleaned copy through a crash-safe
//!    rename sequence, and [`recover_dir`] finishes or discards a swap that a
//!    crash interrupted.
//!
//! Offsets are never changed: compaction only leaves gaps, which readers handle
//! (`Segment::find_batch` returns the first batch whose last offset is at or past
//! the one asked for).
//!
//! The cleaner runs on a low-priority glommio task queue of a shard, and reading,
//! decompressing and re-encoding a segment must not hold the core against produce
//! and fetch: it yields every few batches, and every read, write and fsync goes
//! through the shard's io_uring ring ([`Ring`]), so a slow disk parks the cleaner,
//! never the shard: the segment data, the directory fsyncs of [`swap_in`] and
//! the index files it writes. [`clean_segment`] builds the cleaned segment's
//! offset and time indexes while it writes it, so the swapped-in segment is not
//! rescanned. Only the metadata calls (open, rename, unlink, create) are plain
//! syscalls, and [`recover_dir`], which runs while a partition opens (not a
//! serving path), is blocking throughout. The async functions must be polled
//! inside a glommio executor.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::records::Record;

use super::layout::file_stem;
use super::segment::{encode_offset_index, encode_time_index, Segment};
use crate::io::ring::Ring;
use crate::io::sys::Dir;
use crate::protocol::compression::{codec_of, decode_batch, encode_batch, CodecError};
use crate::protocol::record_batch::{crc_of, BatchHeader, ATTR_TIMESTAMP_TYPE, BATCH_HEADER_LEN, CRC_OFFSET, MAGIC_V2, MIN_BATCH_LENGTH};

/// Bytes counted per offset-map entry on top of its key: the `Bytes` handle
/// (32), the offset (8) and the hash table's own slot overhead, roughly.
pub const ENTRY_OVERHEAD_BYTES: usize = 48;

/// Batches processed between two `yield_if_needed` calls.
const YIELD_EVERY_BATCHES: usize = 4;

/// Bytes read from a segment at once (more when a single batch is larger).
const READ_WINDOW_BYTES: usize = 1 << 20;

/// Suffix of a cleaned segment being written (deleted by [`recover_dir`]).
pub const CLEANED_SUFFIX: &str = ".log.cleaned";
/// Suffix of a cleaned segment committed for swap-in (completed by [`recover_dir`]).
pub const SWAP_SUFFIX: &str = ".log.swap";

/// The latest offset of each key in the mapped (dirty) part of the log.
///
/// Keys are stored whole rather than as hashes (Kafka keeps a 16-byte MD5 per
/// key): with hashes, two keys that collide make the older one's records look
/// superseded and the cleaner would delete a key's only live value. Full keys
/// cost more memory, which the byte budget bounds instead: when the budget is
/// reached the map simply covers fewer segments and the rest is cleaned in a
/// later round.
#[derive(Debug, Default)]
pub struct OffsetMap {
    map: HashMap<Bytes, i64>,
    bytes: usize,
    budget: usize,
}

impl OffsetMap {
    /// An empty map that holds at most `budget_bytes` (see [`OffsetMap::entry_cost`]).
    pub fn new(budget_bytes: usize) -> OffsetMap {
        OffsetMap { map: HashMap::new(), bytes: 0, budget: budget_bytes }
    }

    /// Budget bytes one key of `key_len` bytes takes.
    pub fn entry_cost(key_len: usize) -> usize {
        key_len + ENTRY_OVERHEAD_BYTES
    }

    /// Sets `key`'s latest offset to `offset` when it is later than the one held.
    /// Returns false (and changes nothing) when a new key would exceed the budget.
    pub fn insert(&mut self, key: Bytes, offset: i64) -> bool {
        if let Some(held) = self.map.get_mut(&key) {
            *held = (*held).max(offset);
            return true;
        }
        let cost = Self::entry_cost(key.len());
        if self.bytes + cost > self.budget {
            return false;
        }
        self.bytes += cost;
        self.map.insert(key, offset);
        true
    }

    /// The latest mapped offset of `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(key).copied()
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Budget bytes in use.
    pub fn bytes_used(&self) -> usize {
        self.bytes
    }

    /// The byte budget given at creation.
    pub fn budget(&self) -> usize {
        self.budget
    }
}

/// What [`clean_segment`] did to one segment.
#[derive(Debug)]
pub struct CleanResult {
    /// Bytes of the source segment read.
    pub bytes_read: u64,
    /// Bytes written to the cleaned file (0 when nothing was kept).
    pub bytes_written: u64,
    /// Records written to the cleaned file.
    pub records_kept: u64,
    /// Records dropped (superseded records and tombstones).
    pub records_removed: u64,
    /// Of `records_removed`, the tombstones dropped past the retention horizon.
    pub tombstones_removed: u64,
    /// `<base>.log.cleaned`, fsynced, ready for [`swap_in`].
    pub cleaned_path: PathBuf,
    /// The cleaned file as a segment, with the offset and time indexes built
    /// while it was written (as `Segment::note_batch` builds them on append), so
    /// it replaces the original after [`swap_in`] without a scan: its open file
    /// is the one `swap_in` renames to `<base>.log`.
    pub segment: Segment,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Adds where an error happened (directory and segment) to its message, keeping its kind.
fn in_segment(dir: &Path, base: i64, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}/{}.log: {e}", dir.display(), file_stem(base)))
}

fn codec_err(pos: u64, e: CodecError) -> io::Error {
    invalid(format!("batch at position {pos}: {e}"))
}

/// Reads the batches of a closed segment in order, through a window of
/// [`READ_WINDOW_BYTES`] so small batches do not cost one read each.
struct BatchReader<'a> {
    ring: &'a Ring,
    file: &'a File,
    size: u64,
    pos: u64,
    window: Vec<u8>,
    window_start: u64,
}

impl<'a> BatchReader<'a> {
    fn new(ring: &'a Ring, file: &'a File, size: u64) -> Self {
        BatchReader { ring, file, size, pos: 0, window: Vec::new(), window_start: 0 }
    }

    /// Makes the window hold `[pos, pos + len)` (which must be within `size`).
    async fn fill(&mut self, pos: u64, len: usize) -> io::Result<()> {
        let end = pos + len as u64;
        if pos >= self.window_start && end <= self.window_start + self.window.len() as u64 {
            return Ok(());
        }
        let n = (self.size - pos).min(len.max(READ_WINDOW_BYTES) as u64) as usize;
        let mut window = std::mem::take(&mut self.window);
        window.resize(n, 0);
        self.window = self.ring.read_exact_at(self.file.as_raw_fd(), window, pos).await?;
        self.window_start = pos;
        Ok(())
    }

    fn slice(&self, pos: u64, len: usize) -> &[u8] {
        let at = (pos - self.window_start) as usize;
        &self.window[at..at + len]
    }

    /// The next batch: its file position, header and whole bytes; None at the end.
    /// A torn or malformed batch is an error: closed segments were recovered at open.
    async fn next_batch(&mut self) -> io::Result<Option<(u64, BatchHeader, Bytes)>> {
        let pos = self.pos;
        if pos >= self.size {
            return Ok(None);
        }
        if self.size - pos < BATCH_HEADER_LEN as u64 {
            return Err(invalid(format!("truncated batch header at position {pos}")));
        }
        self.fill(pos, BATCH_HEADER_LEN).await?;
        let h = BatchHeader::parse(self.slice(pos, BATCH_HEADER_LEN)).map_err(|e| invalid(format!("position {pos}: {e}")))?;
        if h.magic != MAGIC_V2 || h.batch_length < MIN_BATCH_LENGTH {
            return Err(invalid(format!("malformed batch at position {pos} (magic {}, length {})", h.magic, h.batch_length)));
        }
        let total = h.total_len();
        if total as u64 > self.size - pos {
            return Err(invalid(format!("batch at position {pos} runs past the segment end ({total} bytes)")));
        }
        self.fill(pos, total).await?;
        let bytes = Bytes::copy_from_slice(self.slice(pos, total));
        self.pos = pos + total as u64;
        Ok(Some((pos, h, bytes)))
    }
}

/// The max timestamp of a closed segment's first batch (None when the segment
/// is empty): Kafka's `getFirstBatchTimestampForSegments`, which
/// `max.compaction.lag.ms` is measured from.
pub async fn first_batch_max_timestamp(ring: &Ring, file: &File, size: u64) -> io::Result<Option<i64>> {
    if size < BATCH_HEADER_LEN as u64 {
        return Ok(None);
    }
    let header = ring.read_exact_at(file.as_raw_fd(), vec![0u8; BATCH_HEADER_LEN], 0).await?;
    let h = BatchHeader::parse(&header).map_err(|e| invalid(format!("first batch: {e}")))?;
    Ok(Some(h.max_timestamp))
}

/// Builds the offset map of the dirty section: for every keyed record of every
/// non-control, non-transactional batch from `start_offset` on (batches wholly
/// below it are skipped), key -> latest offset.
///
/// `segments` are closed segments in offset order: (base offset, file, size).
/// The map is filled segment by segment and stops at a segment boundary when the
/// next segment's new keys would exceed `budget_bytes`, so every mapped segment
/// is mapped whole. Only when the first segment does not fit at all is it mapped
/// partially, up to the last whole batch that fits, so a round always makes
/// progress when one batch fits.
///
/// Returns the map and its end: the offset after the last batch mapped
/// (`start_offset` when nothing was). Records at or past the end are unknown to
/// the map, and [`clean_segment`] keeps them.
pub async fn build_offset_map(
    ring: &Ring,
    dir: &Path,
    segments: &[(i64, Arc<File>, u64)],
    start_offset: i64,
    budget_bytes: usize,
    max_inflated: usize,
) -> io::Result<(OffsetMap, i64)> {
    let mut map = OffsetMap::new(budget_bytes);
    let mut end = start_offset;
    let mut mapped_segments = 0usize;
    let mut batches = 0usize;
    for (i, (base, file, size)) in segments.iter().enumerate() {
        // A segment followed by one starting at or below the checkpoint is all clean.
        if segments.get(i + 1).is_some_and(|next| next.0 <= start_offset) {
            continue;
        }
        // This segment's keys are staged apart so a segment that does not fit
        // leaves the map as it was after the previous one.
        let mut staged: HashMap<Bytes, i64> = HashMap::new();
        let mut staged_bytes = 0usize;
        let mut seg_end = end;
        let mut full = false;
        let mut reader = BatchReader::new(ring, file, *size);
        while let Some((pos, h, batch)) = reader.next_batch().await.map_err(|e| in_segment(dir, *base, e))? {
            batches += 1;
            if batches.is_multiple_of(YIELD_EVERY_BATCHES) {
                glommio::yield_if_needed().await;
            }
            if h.last_offset() < start_offset {
                continue;
            }
            // Transactional records may belong to an aborted transaction (not
            // tracked here): letting them supersede anything could replace a
            // committed value by an aborted one, so they are not mapped (and
            // clean_segment copies them unchanged).
            if h.is_control() || h.is_transactional() {
                seg_end = seg_end.max(h.last_offset() + 1);
                continue;
            }
            let set = decode_batch(&batch, max_inflated).map_err(|e| in_segment(dir, *base, codec_err(pos, e)))?;
            // Budget bytes of the keys this batch adds (each new key once).
            let mut new_keys: HashSet<&[u8]> = HashSet::new();
            let mut add = 0usize;
            for key in set.records.iter().filter_map(|r| r.key.as_deref()) {
                if map.get(key).is_none() && !staged.contains_key(key) && new_keys.insert(key) {
                    add += OffsetMap::entry_cost(key.len());
                }
            }
            if map.bytes_used() + staged_bytes + add > budget_bytes {
                full = true;
                break;
            }
            for r in &set.records {
                if let Some(key) = &r.key {
                    let held = staged.entry(key.clone()).or_insert(r.offset);
                    *held = (*held).max(r.offset);
                }
            }
            staged_bytes += add;
            seg_end = seg_end.max(h.last_offset() + 1);
        }
        if full && mapped_segments > 0 {
            break;
        }
        for (key, offset) in staged {
            // Staged offsets are all later than the map's, and the budget was checked above.
            map.map.insert(key, offset);
        }
        map.bytes += staged_bytes;
        end = seg_end;
        mapped_segments += 1;
        if full {
            break;
        }
    }
    Ok((map, end))
}

/// Writes `<base>.log.cleaned`: the segment's batches with only the records to keep.
///
/// A record is dropped when its key is mapped with a later offset (superseded),
/// or when it is a tombstone (null value) that is the latest of its key (or whose
/// key is not mapped: a clean segment below the dirty section) and its batch's
/// max timestamp is before `tombstone_horizon_ms` (the caller passes now -
/// `delete.retention.ms`, so consumers had that long to see the delete). Records
/// without a key and records at or past `map_end` are kept. Control and
/// transactional batches are copied unchanged (aborted-transaction removal is
/// not done here).
///
/// A batch keeping every record is copied byte for byte; one keeping some is
/// re-encoded with its own codec, offsets, timestamps, timestamp type, leader
/// epoch and producer fields; one keeping none is left out. The cleaned file is
/// fsynced before returning. On error the partial file is removed.
///
/// Each batch written is noted in [`CleanResult::segment`]'s indexes with the
/// rules of `Segment::note_batch` (an entry every `index_interval_bytes`,
/// offsets relative to `base_offset`): the same indexes `Segment::open` would
/// rebuild by scanning the cleaned file.
#[allow(clippy::too_many_arguments)]
pub async fn clean_segment(
    ring: &Ring,
    dir: &Path,
    base_offset: i64,
    file: &File,
    size: u64,
    map: &OffsetMap,
    map_end: i64,
    tombstone_horizon_ms: i64,
    max_inflated: usize,
    index_interval_bytes: u64,
) -> io::Result<CleanResult> {
    let cleaned_path = dir.join(format!("{}{CLEANED_SUFFIX}", file_stem(base_offset)));
    let cleaning = Cleaning { map, map_end, tombstone_horizon_ms, max_inflated, index_interval_bytes };
    let res = write_cleaned(ring, dir, base_offset, &cleaned_path, file, size, &cleaning).await;
    match res {
        Ok(r) => Ok(r),
        Err(e) => {
            let _ = std::fs::remove_file(&cleaned_path);
            Err(in_segment(dir, base_offset, e))
        }
    }
}

/// What decides the fate of records in one [`clean_segment`] call.
struct Cleaning<'a> {
    map: &'a OffsetMap,
    map_end: i64,
    tombstone_horizon_ms: i64,
    max_inflated: usize,
    index_interval_bytes: u64,
}

async fn write_cleaned(ring: &Ring, dir: &Path, base_offset: i64, cleaned_path: &Path, file: &File, size: u64, c: &Cleaning<'_>) -> io::Result<CleanResult> {
    let Cleaning { map, map_end, tombstone_horizon_ms, max_inflated, index_interval_bytes } = *c;
    // Read and write: the file becomes the segment's `.log` once swapped in.
    let out = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(cleaned_path)?;
    let mut seg = Segment::being_written(dir, base_offset, out);
    let out = seg.file.clone();
    let mut w = RingWriter { ring, file: &out, pos: 0, pending: Vec::new(), pending_len: 0 };
    let (mut bytes_read, mut records_kept, mut records_removed, mut tombstones_removed) = (0u64, 0u64, 0u64, 0u64);
    let mut reader = BatchReader::new(ring, file, size);
    let mut batches = 0usize;
    while let Some((pos, h, batch)) = reader.next_batch().await? {
        batches += 1;
        if batches.is_multiple_of(YIELD_EVERY_BATCHES) {
            glommio::yield_if_needed().await;
        }
        bytes_read += batch.len() as u64;
        // Control and transactional batches stay as they are; a batch wholly past
        // the map's end holds nothing the map knows about.
        if h.is_control() || h.is_transactional() || h.base_offset >= map_end {
            records_kept += h.records_count.max(0) as u64;
            seg.note_batch(&h, w.end() as u32, batch.len() as u64, index_interval_bytes);
            w.write(batch).await?;
            continue;
        }
        let set = decode_batch(&batch, max_inflated).map_err(|e| codec_err(pos, e))?;
        let total = set.records.len();
        let mut kept: Vec<Record> = Vec::with_capacity(total);
        for r in set.records {
            match fate(&r, map, map_end, h.max_timestamp, tombstone_horizon_ms) {
                Fate::Keep => kept.push(r),
                Fate::Superseded => records_removed += 1,
                Fate::Tombstone => {
                    records_removed += 1;
                    tombstones_removed += 1;
                }
            }
        }
        records_kept += kept.len() as u64;
        let (written, wh) = if kept.len() == total {
            (batch, h)
        } else if kept.is_empty() {
            continue;
        } else {
            let b = reencode(&h, &kept).map_err(|e| codec_err(pos, e))?;
            let wh = BatchHeader::parse(&b).map_err(|e| invalid(format!("re-encoded batch at position {pos}: {e}")))?;
            (b, wh)
        };
        seg.note_batch(&wh, w.end() as u32, written.len() as u64, index_interval_bytes);
        w.write(written).await?;
    }
    w.flush().await?;
    ring.fdatasync(out.as_raw_fd()).await?;
    seg.size = w.pos;
    Ok(CleanResult {
        bytes_read,
        bytes_written: w.pos,
        records_kept,
        records_removed,
        tombstones_removed,
        cleaned_path: cleaned_path.to_path_buf(),
        segment: seg,
    })
}

/// Appends batches to the cleaned file through the ring, gathering up to
/// [`READ_WINDOW_BYTES`] into one `writev` (the batches are not copied).
struct RingWriter<'a> {
    ring: &'a Ring,
    file: &'a File,
    pos: u64,
    pending: Vec<Bytes>,
    pending_len: usize,
}

impl RingWriter<'_> {
    /// Where the next batch written lands in the file.
    fn end(&self) -> u64 {
        self.pos + self.pending_len as u64
    }

    async fn write(&mut self, batch: Bytes) -> io::Result<()> {
        self.pending_len += batch.len();
        self.pending.push(batch);
        if self.pending_len >= READ_WINDOW_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let run = Rc::new(std::mem::take(&mut self.pending));
        let iov: Vec<libc::iovec> = run.iter().map(|b| libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() }).collect();
        self.ring.writev_all(self.file.as_raw_fd(), iov, run, self.pos).await?;
        self.pos += self.pending_len as u64;
        self.pending_len = 0;
        Ok(())
    }
}

enum Fate {
    Keep,
    Superseded,
    Tombstone,
}

fn fate(r: &Record, map: &OffsetMap, map_end: i64, batch_max_ts: i64, horizon_ms: i64) -> Fate {
    let Some(key) = r.key.as_deref() else { return Fate::Keep };
    if r.offset >= map_end {
        return Fate::Keep;
    }
    if map.get(key).is_some_and(|latest| latest > r.offset) {
        return Fate::Superseded;
    }
    if r.value.is_none() && batch_max_ts < horizon_ms {
        return Fate::Tombstone;
    }
    Fate::Keep
}

/// Encodes the kept records of a batch with the batch's own codec. The encoder
/// always writes CreateTime with the records' max timestamp; a LogAppendTime
/// batch gets its attribute bit and its append time (the header's max timestamp,
/// which is every record's timestamp for such a batch) back, and a new CRC.
fn reencode(h: &BatchHeader, kept: &[Record]) -> Result<Bytes, CodecError> {
    let codec = codec_of(h.compression()).ok_or_else(|| CodecError::Corrupt(format!("unknown codec {}", h.compression())))?;
    let encoded = encode_batch(kept, codec)?;
    if !h.is_log_append_time() {
        return Ok(encoded);
    }
    let mut nh = BatchHeader::parse(&encoded).map_err(|e| CodecError::Encode(e.to_string()))?;
    nh.attributes |= ATTR_TIMESTAMP_TYPE;
    nh.max_timestamp = h.max_timestamp;
    let mut header = nh.to_bytes();
    let body = &encoded[BATCH_HEADER_LEN..];
    let crc = crc_of(&header, body);
    header[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    let mut out = Vec::with_capacity(encoded.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    Ok(Bytes::from(out))
}

fn remove_indexes(dir: &Path, stem: &str) -> io::Result<()> {
    remove_if_present(&dir.join(format!("{stem}.index")))?;
    remove_if_present(&dir.join(format!("{stem}.timeindex")))
}

/// Blocking directory fsync: for [`recover_dir`] only (a partition that is
/// opening, not a serving path); [`swap_in`] fsyncs through the ring.
fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Deletes a stem's index files and renames `<stem>.log.swap` to `<stem>.log`.
/// The directory is fsynced between the two so the new log can never be seen
/// with the old segment's indexes (whose positions would be wrong for it).
/// Blocking: [`recover_dir`]'s version of [`swap_in`]'s last steps.
fn finish_swap(dir: &Path, stem: &str) -> io::Result<()> {
    remove_indexes(dir, stem)?;
    fsync_dir(dir)?;
    std::fs::rename(dir.join(format!("{stem}{SWAP_SUFFIX}")), dir.join(format!("{stem}.log")))?;
    fsync_dir(dir)
}

/// Replaces segment `base_offset` with its cleaned copy (Kafka's swap order),
/// then writes the cleaned segment's index files when `indexed` is given (the
/// [`CleanResult::segment`] of the clean).
///
/// Crash safety: the cleaned file was fsynced by [`clean_segment`]. Renaming it
/// to `.log.swap` is the commit point: before it, a crash leaves the old `.log`
/// and a `.log.cleaned` that [`recover_dir`] deletes; after it, the `.log.swap`
/// is complete and [`recover_dir`] finishes the swap. The old indexes are
/// deleted (and that made durable) before the final rename, so the new log is
/// never seen with them; the final rename atomically replaces the old `.log`,
/// so a reader of the directory sees one or the other, never none. The new
/// index files are written only after the final rename and its directory fsync,
/// and not synced (as a roll's): after a crash they are missing, short or
/// whole, never the old segment's, and `Segment::open` loads them only when
/// they are consistent with the log (else it rebuilds them by a scan).
///
/// Nothing here makes the shard wait on the device: the three directory fsyncs
/// and the index writes go through the ring; opening the directory, the renames,
/// the unlinks and the index files' creation are metadata calls, plain syscalls
/// made relative to the directory opened first ([`Dir`]), so a directory removed
/// meanwhile (a deleted topic) makes the swap fail with `NotFound` rather than
/// touch a new directory at the same path.
///
/// The caller must keep every other change to the partition's segment list off
/// this segment until it has replaced its in-memory segment: `PartitionLog`
/// holds its swap guard, which retention stops before and DeleteRecords waits
/// for (a segment deleted in the middle of the swap would come back as the
/// renamed file).
///
/// A cleaned file of size 0 (nothing kept) is swapped in like any other; whether
/// to delete the then empty segment is the caller's decision. Open handles of
/// the old segment still read the old, now unlinked, file; `indexed`'s file is
/// the new `.log`.
pub async fn swap_in(ring: &Ring, dir: &Path, base_offset: i64, indexed: Option<&Segment>) -> io::Result<()> {
    let stem = file_stem(base_offset);
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("swapping in {}/{stem}{CLEANED_SUFFIX}: {e}", dir.display()));
    let d = Dir::open(dir).map_err(ctx)?;
    let steps = async {
        d.rename(&format!("{stem}{CLEANED_SUFFIX}"), &format!("{stem}{SWAP_SUFFIX}"))?;
        ring.fsync(d.fd()).await?;
        d.remove_if_present(&format!("{stem}.index"))?;
        d.remove_if_present(&format!("{stem}.timeindex"))?;
        ring.fsync(d.fd()).await?;
        d.rename(&format!("{stem}{SWAP_SUFFIX}"), &format!("{stem}.log"))?;
        ring.fsync(d.fd()).await?;
        if let Some(seg) = indexed {
            write_file(ring, &d, &format!("{stem}.index"), encode_offset_index(&seg.index)).await?;
            write_file(ring, &d, &format!("{stem}.timeindex"), encode_time_index(&seg.time_index)).await?;
        }
        Ok(())
    };
    steps.await.map_err(ctx)
}

/// Creates (or truncates) `name` in `dir` and writes `content` through the ring (no sync).
async fn write_file(ring: &Ring, dir: &Dir, name: &str, content: Vec<u8>) -> io::Result<()> {
    let file = dir.create(name)?;
    if content.is_empty() {
        return Ok(());
    }
    let keep = Rc::new(content);
    let iov = vec![libc::iovec { iov_base: keep.as_ptr() as *mut libc::c_void, iov_len: keep.len() }];
    ring.writev_all(file.as_raw_fd(), iov, keep.clone(), 0).await
}

/// Repairs what an interrupted clean left in a partition directory; call it when
/// the partition is opened, before its segments are listed. Every `*.log.cleaned`
/// (a clean that never reached its commit point) is deleted; every `*.log.swap`
/// (committed) is finished: its indexes are deleted and it is renamed to `.log`,
/// replacing the old segment. An empty swap file is swapped in too (see [`swap_in`]).
pub fn recover_dir(dir: &Path) -> io::Result<()> {
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("recovering cleaner files in {}: {e}", dir.display()));
    let mut cleaned = Vec::new();
    let mut swaps = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(ctx)? {
        let name = entry.map_err(ctx)?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(CLEANED_SUFFIX) {
            cleaned.push(name.to_string());
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX) {
            swaps.push(stem.to_string());
        }
    }
    for name in &cleaned {
        tracing::info!(dir = %dir.display(), file = %name, "deleting an unfinished cleaned segment");
        remove_if_present(&dir.join(name)).map_err(ctx)?;
    }
    for stem in &swaps {
        tracing::info!(dir = %dir.display(), segment = %stem, "completing an interrupted segment swap");
        finish_swap(dir, stem).map_err(ctx)?;
    }
    if !cleaned.is_empty() && swaps.is_empty() {
        fsync_dir(dir).map_err(ctx)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kafka_protocol::records::{Compression, TimestampType};

    use super::*;
    use crate::log::segment::Segment;
    use crate::protocol::record_batch::ATTR_COMPRESSION_MASK;

    const MAX_INFLATED: usize = 8 << 20;
    const BIG_BUDGET: usize = 64 << 20;
    /// `index.interval.bytes` of the cleaned segments (small: several entries per segment).
    const INDEX_INTERVAL: u64 = 256;

    use crate::io::run_on_executor as run;

    /// A ring on the test's executor (the cleaner reads and writes through it).
    fn ring() -> Ring {
        Ring::start().unwrap()
    }

    fn rec(offset: i64, ts: i64, key: Option<&str>, value: Option<&str>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 3,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: ts,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        }
    }

    fn batch(records: &[Record]) -> Bytes {
        encode_batch(records, Compression::None).unwrap()
    }

    /// Writes one segment of `batches` back to back; returns its (base, file, size).
    fn write_segment(dir: &Path, base: i64, batches: &[Bytes]) -> (i64, Arc<File>, u64) {
        let path = dir.join(format!("{}.log", file_stem(base)));
        let data: Vec<u8> = batches.iter().flat_map(|b| b.iter().copied()).collect();
        std::fs::write(&path, &data).unwrap();
        (base, Arc::new(File::open(&path).unwrap()), data.len() as u64)
    }

    /// Decodes every record of a segment file, checking batch framing on the way.
    fn read_records(path: &Path) -> Vec<Record> {
        let data = Bytes::from(std::fs::read(path).unwrap());
        let mut pos = 0;
        let mut out = Vec::new();
        while pos < data.len() {
            let h = BatchHeader::parse(&data[pos..]).unwrap();
            let set = decode_batch(&data.slice(pos..pos + h.total_len()), MAX_INFLATED).unwrap();
            assert_eq!(set.records.last().unwrap().offset, h.last_offset());
            out.extend(set.records);
            pos += h.total_len();
        }
        out
    }

    fn s(b: &Option<Bytes>) -> Option<String> {
        b.as_ref().map(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    async fn clean_all(dir: &Path, segs: &[(i64, Arc<File>, u64)], map: &OffsetMap, end: i64, horizon: i64) -> Vec<CleanResult> {
        let mut out = Vec::new();
        for (base, file, size) in segs {
            out.push(clean_segment(&ring(), dir, *base, file, *size, map, end, horizon, MAX_INFLATED, INDEX_INTERVAL).await.unwrap());
        }
        out
    }

    #[test]
    fn compacts_to_the_latest_value_per_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        // 100 keys x 20 updates, in a scrambled (deterministic) order over 2000 offsets.
        let mut order: Vec<(usize, usize)> = (0..100).flat_map(|k| (0..20).map(move |u| (k, u))).collect();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        // Updates of one key must keep their order: renumber them by position.
        let mut seen = [0usize; 100];
        let mut latest: BTreeMap<i64, (String, String)> = BTreeMap::new();
        let mut last_of_key: HashMap<usize, i64> = HashMap::new();
        let records: Vec<Record> = order
            .iter()
            .enumerate()
            .map(|(off, &(k, _))| {
                let u = seen[k];
                seen[k] += 1;
                last_of_key.insert(k, off as i64);
                rec(off as i64, 1_000 + off as i64, Some(&format!("key-{k}")), Some(&format!("v{u}")))
            })
            .collect();
        for (&k, &off) in &last_of_key {
            latest.insert(off, (format!("key-{k}"), "v19".to_string()));
        }
        // 5 segments of 400 records, batches of 10.
        let segs: Vec<_> = records
            .chunks(400)
            .map(|seg| {
                let batches: Vec<Bytes> = seg.chunks(10).map(batch).collect();
                write_segment(&dir, seg[0].offset, &batches)
            })
            .collect();
        let d = dir.clone();
        let results = run(move || async move {
            let (map, end) = build_offset_map(&ring(), &d, &segs, 0, BIG_BUDGET, MAX_INFLATED).await.unwrap();
            assert_eq!((map.len(), end), (100, 2000));
            let r = clean_all(&d, &segs, &map, end, 0).await;
            for (base, _, _) in &segs {
                swap_in(&ring(), &d, *base, None).await.unwrap();
            }
            r
        });
        let removed: u64 = results.iter().map(|r| r.records_removed).sum();
        let kept: u64 = results.iter().map(|r| r.records_kept).sum();
        assert_eq!((kept, removed), (100, 1900));
        let mut all = Vec::new();
        for base in [0, 400, 800, 1200, 1600] {
            all.extend(read_records(&dir.join(format!("{}.log", file_stem(base)))));
            assert!(!dir.join(format!("{}{SWAP_SUFFIX}", file_stem(base))).exists());
        }
        assert!(all.windows(2).all(|w| w[0].offset < w[1].offset), "offsets must increase");
        let got: BTreeMap<i64, (String, String)> = all.iter().map(|r| (r.offset, (s(&r.key).unwrap(), s(&r.value).unwrap()))).collect();
        assert_eq!(got, latest);
        // The segments reopen (CRCs checked, indexes rebuilt) and reads skip the gaps.
        let seg = Segment::open(&dir, 1600, true, 64, std::time::Instant::now()).unwrap();
        let first_kept = *latest.range(1600..).next().unwrap().0;
        let (pos, h) = seg.find_batch(1600).unwrap().unwrap();
        assert_eq!((pos, h.base_offset), (0, first_kept));
        assert_eq!(seg.next_offset, *latest.keys().last().unwrap() + 1);
    }

    #[test]
    fn tombstones_go_only_past_the_horizon() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let segs = vec![write_segment(
            &dir,
            0,
            &[
                batch(&[rec(0, 1_000, Some("a"), Some("x")), rec(1, 1_000, Some("a"), None)]),
                batch(&[rec(2, 5_000, Some("b"), None), rec(3, 5_000, None, None)]),
            ],
        )];
        let d = dir.clone();
        let (early, late) = run(move || async move {
            let (map, end) = build_offset_map(&ring(), &d, &segs, 0, BIG_BUDGET, MAX_INFLATED).await.unwrap();
            let (_, f, size) = &segs[0];
            let early = clean_segment(&ring(), &d, 0, f, *size, &map, end, 2_000, MAX_INFLATED, INDEX_INTERVAL).await.unwrap();
            let kept_early: Vec<i64> = read_records(&early.cleaned_path).iter().map(|r| r.offset).collect();
            let late = clean_segment(&ring(), &d, 0, f, *size, &map, end, 10_000, MAX_INFLATED, INDEX_INTERVAL).await.unwrap();
            ((early, kept_early), late)
        });
        // a@0 superseded, a's tombstone (ts 1000) gone, b's (ts 5000) too young; the keyless record stays.
        assert_eq!(early.1, vec![2, 3]);
        assert_eq!((early.0.records_removed, early.0.tombstones_removed, early.0.records_kept), (2, 1, 2));
        assert_eq!((late.records_removed, late.tombstones_removed, late.records_kept), (3, 2, 1));
        assert_eq!(read_records(&late.cleaned_path).iter().map(|r| r.offset).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn records_past_the_map_end_are_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let seg0 =
            write_segment(&dir, 0, &[batch(&[rec(0, 1, Some("a"), Some("1")), rec(1, 1, Some("b"), Some("1"))]), batch(&[rec(2, 1, Some("a"), Some("2"))])]);
        let seg1_batches = [batch(&[rec(3, 1, Some("a"), Some("3")), rec(4, 1, Some("a"), Some("4"))]), batch(&[rec(5, 1, Some("b"), None)])];
        let seg1 = write_segment(&dir, 3, &seg1_batches);
        let original1 = std::fs::read(dir.join(format!("{}.log", file_stem(3)))).unwrap();
        let d = dir.clone();
        let (r0, r1, end) = run(move || async move {
            // Only the first segment is mapped: the second is past the map's end.
            let (map, end) = build_offset_map(&ring(), &d, std::slice::from_ref(&seg0), 0, BIG_BUDGET, MAX_INFLATED).await.unwrap();
            let r0 = clean_segment(&ring(), &d, 0, &seg0.1, seg0.2, &map, end, i64::MAX, MAX_INFLATED, INDEX_INTERVAL).await.unwrap();
            let r1 = clean_segment(&ring(), &d, 3, &seg1.1, seg1.2, &map, end, i64::MAX, MAX_INFLATED, INDEX_INTERVAL).await.unwrap();
            (r0, r1, end)
        });
        assert_eq!(end, 3);
        let kept0: Vec<(i64, Option<String>)> = read_records(&r0.cleaned_path).iter().map(|r| (r.offset, s(&r.key))).collect();
        assert_eq!(kept0, vec![(1, Some("b".into())), (2, Some("a".into()))]);
        assert_eq!(std::fs::read(&r1.cleaned_path).unwrap(), original1);
        assert_eq!((r1.records_removed, r1.records_kept), (0, 3));
    }

    #[test]
    fn a_partly_kept_zstd_batch_stays_zstd_and_keeps_its_fields() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let first: Vec<Record> = (0..10)
            .map(|i| Record { producer_id: 7, producer_epoch: 2, sequence: 100 + i as i32, ..rec(i, 500 + i, Some(&format!("k{i}")), Some("old")) })
            .collect();
        let zstd = encode_batch(&first, Compression::Zstd).unwrap();
        // Stamp it LogAppendTime as the broker does (attribute bit, max timestamp, CRC).
        let mut h = BatchHeader::parse(&zstd).unwrap();
        h.attributes |= ATTR_TIMESTAMP_TYPE;
        h.max_timestamp = 99_999;
        let mut hdr = h.to_bytes();
        let crc = crc_of(&hdr, &zstd[BATCH_HEADER_LEN..]);
        hdr[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        let zstd = Bytes::from([&hdr[..], &zstd[BATCH_HEADER_LEN..]].concat());
        let updates: Vec<Record> = (0..5).map(|i| rec(10 + i, 600, Some(&format!("k{}", i * 2)), Some("new"))).collect();
        let segs = vec![write_segment(&dir, 0, &[zstd, batch(&updates)])];
        let d = dir.clone();
        let r = run(move || async move {
            let (map, end) = build_offset_map(&ring(), &d, &segs, 0, BIG_BUDGET, MAX_INFLATED).await.unwrap();
            clean_all(&d, &segs, &map, end, 0).await.remove(0)
        });
        assert_eq!((r.records_kept, r.records_removed), (10, 5));
        let data = Bytes::from(std::fs::read(&r.cleaned_path).unwrap());
        let h = BatchHeader::parse(&data).unwrap();
        assert_eq!(h.attributes & ATTR_COMPRESSION_MASK, 4, "still zstd");
        assert!(h.is_log_append_time());
        assert_eq!((h.max_timestamp, h.producer_id, h.producer_epoch, h.partition_leader_epoch), (99_999, 7, 2, 3));
        assert_eq!((h.base_offset, h.last_offset(), h.records_count), (1, 9, 5));
        assert_eq!(h.base_sequence, 101);
        let set = decode_batch(&data.slice(..h.total_len()), MAX_INFLATED).unwrap();
        assert_eq!(set.compression, Compression::Zstd);
        let got: Vec<(i64, i32, Option<String>)> = set.records.iter().map(|r| (r.offset, r.sequence, s(&r.key))).collect();
        let want: Vec<(i64, i32, Option<String>)> = (0..5).map(|i| (2 * i + 1, 101 + 2 * i as i32, Some(format!("k{}", 2 * i + 1)))).collect();
        assert_eq!(got, want);
        assert!(set.records.iter().all(|r| r.timestamp == 501 + (r.offset - 1) && s(&r.value).as_deref() == Some("old")));
        // The updates batch follows, copied as it was.
        let rest = read_records(&r.cleaned_path);
        assert_eq!(rest.len(), 10);
        assert_eq!(rest[5..].iter().map(|r| r.offset).collect::<Vec<_>>(), vec![10, 11, 12, 13, 14]);
    }

    #[test]
    fn transactional_batches_are_neither_mapped_nor_cleaned() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let txn = |r: Record| Record { transactional: true, producer_id: 9, producer_epoch: 0, sequence: 0, ..r };
        let txn_batch = encode_batch(&[txn(rec(1, 1, Some("a"), Some("t1")))], Compression::None).unwrap();
        let txn_batch2 = encode_batch(&[txn(rec(3, 1, Some("b"), Some("t2")))], Compression::None).unwrap();
        let segs = vec![write_segment(
            &dir,
            0,
            &[batch(&[rec(0, 1, Some("a"), Some("1"))]), txn_batch.clone(), batch(&[rec(2, 1, Some("b"), Some("2"))]), txn_batch2],
        )];
        let d = dir.clone();
        let r = run(move || async move {
            let (map, end) = build_offset_map(&ring(), &d, &segs, 0, BIG_BUDGET, MAX_INFLATED).await.unwrap();
            assert_eq!((map.get(b"a"), map.get(b"b"), end), (Some(0), Some(2), 4));
            clean_all(&d, &segs, &map, end, i64::MAX).await.remove(0)
        });
        assert_eq!((r.records_kept, r.records_removed), (4, 0));
        let original = std::fs::read(dir.join(format!("{}.log", file_stem(0)))).unwrap();
        assert_eq!(std::fs::read(&r.cleaned_path).unwrap(), original);
    }

    #[test]
    fn nothing_removed_means_a_byte_identical_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let b1: Vec<Record> = (0..20).map(|i| rec(i, 1, Some(&format!("u{i}")), Some("v"))).collect();
        let b2: Vec<Record> = (20..30).map(|i| rec(i, 1, Some(&format!("u{i}")), Some("v"))).collect();
        let segs = vec![write_segment(&dir, 0, &[encode_batch(&b1, Compression::Lz4).unwrap(), batch(&b2)])];
        let original = std::fs::read(dir.join(format!("{}.log", file_stem(0)))).unwrap();
        let d = dir.clone();
        let r = run(move || async move {
            let (map, end) = build_offset_map(&ring(), &d, &segs, 0, BIG_BUDGET, MAX_INFLATED).await.unwrap();
            clean_all(&d, &segs, &map, end, i64::MAX).await.remove(0)
        });
        assert_eq!((r.records_kept, r.records_removed, r.bytes_read, r.bytes_written), (30, 0, original.len() as u64, original.len() as u64));
        assert_eq!(std::fs::read(&r.cleaned_path).unwrap(), original);
    }

    #[test]
    fn swap_in_and_recover_dir_finish_or_discard() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let p = |base: i64, ext: &str| dir.join(format!("{}{ext}", file_stem(base)));
        // Segment 0: a committed swap interrupted before its final rename.
        std::fs::write(p(0, ".log"), b"old").unwrap();
        std::fs::write(p(0, ".index"), b"12345678").unwrap();
        std::fs::write(p(0, ".timeindex"), b"").unwrap();
        std::fs::write(p(0, SWAP_SUFFIX), b"new").unwrap();
        // Segment 100: a clean that never committed.
        std::fs::write(p(100, ".log"), b"keep").unwrap();
        std::fs::write(p(100, ".index"), b"").unwrap();
        std::fs::write(p(100, CLEANED_SUFFIX), b"partial").unwrap();
        recover_dir(dir).unwrap();
        assert_eq!(std::fs::read(p(0, ".log")).unwrap(), b"new");
        assert!(!p(0, SWAP_SUFFIX).exists() && !p(0, ".index").exists() && !p(0, ".timeindex").exists());
        assert_eq!(std::fs::read(p(100, ".log")).unwrap(), b"keep");
        assert!(p(100, ".index").exists() && !p(100, CLEANED_SUFFIX).exists());

        // swap_in of an empty cleaned file replaces the log and drops its indexes.
        std::fs::write(p(100, CLEANED_SUFFIX), b"").unwrap();
        let d = dir.to_path_buf();
        run(move || async move { swap_in(&ring(), &d, 100, None).await.unwrap() });
        assert_eq!(std::fs::metadata(p(100, ".log")).unwrap().len(), 0);
        assert!(!p(100, ".index").exists() && !p(100, SWAP_SUFFIX).exists() && !p(100, CLEANED_SUFFIX).exists());
        // Nothing to swap is an error naming the file.
        let d = dir.to_path_buf();
        let e = run(move || async move { swap_in(&ring(), &d, 200, None).await.unwrap_err() });
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains(&format!("{}{CLEANED_SUFFIX}", file_stem(200))), "{e}");
    }

    #[test]
    fn a_batch_inflating_past_the_limit_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let big = "x".repeat(10 * 1024);
        let records: Vec<Record> = (0..1000).map(|i| rec(i, 1, Some(&format!("k{}", i % 3)), Some(&big))).collect();
        let segs = vec![write_segment(&dir, 0, &[encode_batch(&records, Compression::Zstd).unwrap()])];
        let d = dir.clone();
        let (e1, e2) = run(move || async move {
            let e1 = build_offset_map(&ring(), &d, &segs, 0, BIG_BUDGET, 1 << 20).await.unwrap_err();
            let mut map = OffsetMap::new(BIG_BUDGET);
            map.insert(Bytes::from_static(b"k0"), 999);
            let e2 = clean_segment(&ring(), &d, 0, &segs[0].1, segs[0].2, &map, 1000, 0, 1 << 20, INDEX_INTERVAL).await.unwrap_err();
            (e1, e2)
        });
        for e in [e1, e2] {
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(e.to_string().contains("inflates past"), "{e}");
        }
        assert!(!dir.join(format!("{}{CLEANED_SUFFIX}", file_stem(0))).exists(), "no partial cleaned file left");
    }

    #[test]
    fn the_budget_stops_the_map_at_a_segment_boundary() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        // Four segments of 10 records in two batches: keys a*, b*, a* again, c*.
        let seg = |base: i64, prefix: &str| {
            let rs: Vec<Record> = (0..10).map(|i| rec(base + i, 1, Some(&format!("{prefix}{i}")), Some("v"))).collect();
            write_segment(&dir, base, &[batch(&rs[..5]), batch(&rs[5..])])
        };
        let segs = vec![seg(0, "a"), seg(10, "b"), seg(20, "a"), seg(30, "c")];
        let cost = OffsetMap::entry_cost(2);
        let d = dir.clone();
        run(move || async move {
            // Room for 25 keys: a* and b* fit (a* again adds nothing), c* does not.
            let (map, end) = build_offset_map(&ring(), &d, &segs, 0, 25 * cost, MAX_INFLATED).await.unwrap();
            assert_eq!((map.len(), end, map.bytes_used()), (20, 30, 20 * cost));
            assert_eq!((map.get(b"a0"), map.get(b"b9"), map.get(b"c0")), (Some(20), Some(19), None));
            // From the checkpoint 10: b*, a*, then c* does not fit.
            let (map, end) = build_offset_map(&ring(), &d, &segs, 10, 25 * cost, MAX_INFLATED).await.unwrap();
            assert_eq!((map.len(), end, map.get(b"a0"), map.get(b"b0")), (20, 30, Some(20), Some(10)));
            // A first segment that does not fit whole is mapped up to the last batch that fits.
            let (map, end) = build_offset_map(&ring(), &d, &segs, 0, 7 * cost, MAX_INFLATED).await.unwrap();
            assert_eq!((map.len(), end), (5, 5));
            // Not even one batch: nothing mapped, the end stays at the checkpoint.
            let (map, end) = build_offset_map(&ring(), &d, &segs, 0, 4 * cost, MAX_INFLATED).await.unwrap();
            assert_eq!((map.len(), end), (0, 0));
        });
    }

    #[test]
    fn a_swapped_in_segment_has_indexes_that_find_every_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        // 60 batches of 5 from offset 100: all "hot" (dropped but the last), all
        // unique keys (copied whole), or alternating (re-encoded, new base offsets).
        let batches: Vec<Bytes> = (0..60i64)
            .map(|j| {
                let rs: Vec<Record> = (0..5i64)
                    .map(|i| {
                        let off = 100 + j * 5 + i;
                        let key = if j % 3 == 0 || (j % 3 == 2 && i % 2 == 1) { "hot".to_string() } else { format!("u{off}") };
                        rec(off, 1_000 + off, Some(&key), Some("v"))
                    })
                    .collect();
                batch(&rs)
            })
            .collect();
        let segs = vec![write_segment(&dir, 100, &batches)];
        let d = dir.clone();
        let seg = run(move || async move {
            let (map, end) = build_offset_map(&ring(), &d, &segs, 100, BIG_BUDGET, MAX_INFLATED).await.unwrap();
            let (base, f, size) = &segs[0];
            let r = clean_segment(&ring(), &d, *base, f, *size, &map, end, 0, MAX_INFLATED, INDEX_INTERVAL).await.unwrap();
            assert!(r.records_removed > 0 && r.segment.size == r.bytes_written);
            swap_in(&ring(), &d, 100, Some(&r.segment)).await.unwrap();
            r.segment
        });
        assert!(!dir.join(format!("{}{CLEANED_SUFFIX}", file_stem(100))).exists() && !dir.join(format!("{}{SWAP_SUFFIX}", file_stem(100))).exists());
        assert!(seg.index.len() > 3, "several index entries: {:?}", seg.index);
        // The batches of the new .log, as (position, base offset, last offset).
        let data = std::fs::read(dir.join(format!("{}.log", file_stem(100)))).unwrap();
        assert_eq!(data.len() as u64, seg.size);
        let mut on_disk = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let h = BatchHeader::parse(&data[pos..]).unwrap();
            on_disk.push((pos as u64, h.base_offset, h.last_offset()));
            pos += h.total_len();
        }
        // Every offset finds the first batch ending at or after it, through the built
        // indexes and the segment's file (the renamed cleaned file).
        for off in 100..seg.next_offset {
            let want = on_disk.iter().find(|b| b.2 >= off).map(|b| (b.0, b.1));
            let got = seg.find_batch(off).unwrap().map(|(p, h)| (p, h.base_offset));
            assert_eq!(got, want, "offset {off}");
        }
        let kept: Vec<i64> = read_records(&dir.join(format!("{}.log", file_stem(100)))).iter().map(|r| r.offset).collect();
        assert!(kept.iter().all(|&o| seg.find_batch(o).unwrap().is_some_and(|(_, h)| h.base_offset <= o && o <= h.last_offset())));
        assert_eq!(seg.find_batch(seg.next_offset).unwrap(), None);
        // The same state a scan rebuilds, and the index files written match it.
        let scanned = Segment::open(&dir, 100, true, INDEX_INTERVAL, std::time::Instant::now()).unwrap();
        assert_eq!((&seg.index, &seg.time_index), (&scanned.index, &scanned.time_index));
        assert_eq!(
            (seg.size, seg.next_offset, seg.max_timestamp, seg.bytes_since_index),
            (scanned.size, scanned.next_offset, scanned.max_timestamp, scanned.bytes_since_index)
        );
        assert_eq!(std::fs::read(dir.join(format!("{}.index", file_stem(100)))).unwrap(), encode_offset_index(&seg.index));
        assert_eq!(std::fs::read(dir.join(format!("{}.timeindex", file_stem(100)))).unwrap(), encode_time_index(&seg.time_index));
        let loaded = Segment::open(&dir, 100, false, INDEX_INTERVAL, std::time::Instant::now()).unwrap();
        assert_eq!((&loaded.index, loaded.next_offset, loaded.max_timestamp), (&seg.index, seg.next_offset, seg.max_timestamp));
    }

    #[test]
    fn a_swap_into_a_removed_directory_fails_and_creates_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(format!("{}{CLEANED_SUFFIX}", file_stem(0))), b"").unwrap();
        let d = dir.clone();
        let e = run(move || async move {
            let r = ring();
            let handle = Dir::open(&d).unwrap();
            // The topic is deleted and a new one made at the same path.
            std::fs::remove_dir_all(&d).unwrap();
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join(format!("{}{CLEANED_SUFFIX}", file_stem(0))), b"other").unwrap();
            // Through the handle taken before, nothing of the new directory is touched.
            assert_eq!(handle.rename(&format!("{}{CLEANED_SUFFIX}", file_stem(0)), "x").unwrap_err().kind(), io::ErrorKind::NotFound);
            assert_eq!(handle.create("y").unwrap_err().kind(), io::ErrorKind::NotFound);
            std::fs::remove_dir_all(&d).unwrap();
            swap_in(&r, &d, 0, None).await.unwrap_err()
        });
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(!dir.exists());
    }
}
