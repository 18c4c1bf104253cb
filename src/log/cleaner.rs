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
//! The functions reading segments are `async` only to yield: the cleaner runs on
//! a low-priority glommio task queue of a shard, and reading, decompressing and
//! re-encoding a segment must not hold the core against produce and fetch. They
//! must therefore be polled inside a glommio executor. File reads are plain
//! `pread`s of closed (immutable) segments, which are normally in the page cache.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::records::Record;

use super::segment::file_stem;
use crate::protocol::compression::{codec_of, decode_batch, encode_batch, CodecError};
use crate::protocol::record_batch::{
    crc_of, BatchHeader, ATTR_TIMESTAMP_TYPE, BATCH_HEADER_LEN, CRC_OFFSET, MAGIC_V2, MIN_BATCH_LENGTH,
};

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
/// [`READ_WINDOW_BYTES`] so small batches do not cost one `pread` each.
struct BatchReader<'a> {
    file: &'a File,
    size: u64,
    pos: u64,
    window: Vec<u8>,
    window_start: u64,
}

impl<'a> BatchReader<'a> {
    fn new(file: &'a File, size: u64) -> Self {
        BatchReader { file, size, pos: 0, window: Vec::new(), window_start: 0 }
    }

    /// Makes the window hold `[pos, pos + len)` (which must be within `size`).
    fn fill(&mut self, pos: u64, len: usize) -> io::Result<()> {
        let end = pos + len as u64;
        if pos >= self.window_start && end <= self.window_start + self.window.len() as u64 {
            return Ok(());
        }
        let n = (self.size - pos).min(len.max(READ_WINDOW_BYTES) as u64) as usize;
        self.window.resize(n, 0);
        self.file.read_exact_at(&mut self.window, pos)?;
        self.window_start = pos;
        Ok(())
    }

    fn slice(&self, pos: u64, len: usize) -> &[u8] {
        let at = (pos - self.window_start) as usize;
        &self.window[at..at + len]
    }

    /// The next batch: its file position, header and whole bytes; None at the end.
    /// A torn or malformed batch is an error: closed segments were recovered at open.
    fn next_batch(&mut self) -> io::Result<Option<(u64, BatchHeader, Bytes)>> {
        let pos = self.pos;
        if pos >= self.size {
            return Ok(None);
        }
        if self.size - pos < BATCH_HEADER_LEN as u64 {
            return Err(invalid(format!("truncated batch header at position {pos}")));
        }
        self.fill(pos, BATCH_HEADER_LEN)?;
        let h = BatchHeader::parse(self.slice(pos, BATCH_HEADER_LEN)).map_err(|e| invalid(format!("position {pos}: {e}")))?;
        if h.magic != MAGIC_V2 || h.batch_length < MIN_BATCH_LENGTH {
            return Err(invalid(format!("malformed batch at position {pos} (magic {}, length {})", h.magic, h.batch_length)));
        }
        let total = h.total_len();
        if total as u64 > self.size - pos {
            return Err(invalid(format!("batch at position {pos} runs past the segment end ({total} bytes)")));
        }
        self.fill(pos, total)?;
        let bytes = Bytes::copy_from_slice(self.slice(pos, total));
        self.pos = pos + total as u64;
        Ok(Some((pos, h, bytes)))
    }
}

/// Builds the offset map of the dirty section: for every keyed record of every
/// non-control batch from `start_offset` on (batches wholly below it are
/// skipped), key -> latest offset.
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
        let mut reader = BatchReader::new(file, *size);
        while let Some((pos, h, batch)) = reader.next_batch().map_err(|e| in_segment(dir, *base, e))? {
            batches += 1;
            if batches % YIELD_EVERY_BATCHES == 0 {
                glommio::yield_if_needed().await;
            }
            if h.last_offset() < start_offset {
                continue;
            }
            if h.is_control() {
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
#[allow(clippy::too_many_arguments)]
pub async fn clean_segment(
    dir: &Path,
    base_offset: i64,
    file: &File,
    size: u64,
    map: &OffsetMap,
    map_end: i64,
    tombstone_horizon_ms: i64,
    max_inflated: usize,
) -> io::Result<CleanResult> {
    let cleaned_path = dir.join(format!("{}{CLEANED_SUFFIX}", file_stem(base_offset)));
    let res = write_cleaned(&cleaned_path, file, size, map, map_end, tombstone_horizon_ms, max_inflated).await;
    match res {
        Ok(mut r) => {
            r.cleaned_path = cleaned_path;
            Ok(r)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&cleaned_path);
            Err(in_segment(dir, base_offset, e))
        }
    }
}

async fn write_cleaned(
    cleaned_path: &Path,
    file: &File,
    size: u64,
    map: &OffsetMap,
    map_end: i64,
    tombstone_horizon_ms: i64,
    max_inflated: usize,
) -> io::Result<CleanResult> {
    let out = OpenOptions::new().write(true).create(true).truncate(true).open(cleaned_path)?;
    let mut w = BufWriter::with_capacity(READ_WINDOW_BYTES, out);
    let mut res = CleanResult {
        bytes_read: 0,
        bytes_written: 0,
        records_kept: 0,
        records_removed: 0,
        tombstones_removed: 0,
        cleaned_path: PathBuf::new(),
    };
    let mut reader = BatchReader::new(file, size);
    let mut batches = 0usize;
    while let Some((pos, h, batch)) = reader.next_batch()? {
        batches += 1;
        if batches % YIELD_EVERY_BATCHES == 0 {
            glommio::yield_if_needed().await;
        }
        res.bytes_read += batch.len() as u64;
        // Control and transactional batches stay as they are; a batch wholly past
        // the map's end holds nothing the map knows about.
        if h.is_control() || h.is_transactional() || h.base_offset >= map_end {
            w.write_all(&batch)?;
            res.bytes_written += batch.len() as u64;
            res.records_kept += h.records_count.max(0) as u64;
            continue;
        }
        let set = decode_batch(&batch, max_inflated).map_err(|e| codec_err(pos, e))?;
        let total = set.records.len();
        let mut kept: Vec<Record> = Vec::with_capacity(total);
        for r in set.records {
            match fate(&r, map, map_end, h.max_timestamp, tombstone_horizon_ms) {
                Fate::Keep => kept.push(r),
                Fate::Superseded => res.records_removed += 1,
                Fate::Tombstone => {
                    res.records_removed += 1;
                    res.tombstones_removed += 1;
                }
            }
        }
        res.records_kept += kept.len() as u64;
        let written = if kept.len() == total {
            batch
        } else if kept.is_empty() {
            continue;
        } else {
            reencode(&h, &kept).map_err(|e| codec_err(pos, e))?
        };
        w.write_all(&written)?;
        res.bytes_written += written.len() as u64;
    }
    let out = w.into_inner().map_err(|e| e.into_error())?;
    out.sync_all()?;
    Ok(res)
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
fn finish_swap(dir: &Path, stem: &str) -> io::Result<()> {
    remove_if_present(&dir.join(format!("{stem}.index")))?;
    remove_if_present(&dir.join(format!("{stem}.timeindex")))?;
    fsync_dir(dir)?;
    std::fs::rename(dir.join(format!("{stem}{SWAP_SUFFIX}")), dir.join(format!("{stem}.log")))?;
    fsync_dir(dir)
}

/// Replaces segment `base_offset` with its cleaned copy (Kafka's swap order).
///
/// Crash safety: the cleaned file was fsynced by [`clean_segment`]. Renaming it
/// to `.log.swap` is the commit point: before it, a crash leaves the old `.log`
/// and a `.log.cleaned` that [`recover_dir`] deletes; after it, the `.log.swap`
/// is complete and [`recover_dir`] finishes the swap. The indexes are deleted
/// (and that made durable) before the final rename, so they are rebuilt from the
/// new log when the segment is reopened; the final rename atomically replaces
/// the old `.log`, so a reader of the directory sees one or the other, never none.
///
/// A cleaned file of size 0 (nothing kept) is swapped in like any other; whether
/// to delete the then empty segment is the caller's decision. The caller must
/// reopen the segment afterwards (`Segment::open`): open handles still read the
/// old, now unlinked, file.
pub fn swap_in(dir: &Path, base_offset: i64) -> io::Result<()> {
    let stem = file_stem(base_offset);
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("swapping in {}/{stem}{CLEANED_SUFFIX}: {e}", dir.display()));
    std::fs::rename(dir.join(format!("{stem}{CLEANED_SUFFIX}")), dir.join(format!("{stem}{SWAP_SUFFIX}"))).map_err(ctx)?;
    fsync_dir(dir).map_err(ctx)?;
    finish_swap(dir, &stem).map_err(ctx)
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
