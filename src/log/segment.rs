//! One log segment: `<20-digit base offset>.log` plus its sparse `.index` and
//! `.timeindex`, Kafka's on-disk layout.
//!
//! - `.log`: record batches (RecordBatch v2) back to back, exactly as Kafka
//!   stores them, so a fetch can send file ranges unchanged.
//! - `.index`: 8-byte entries, big-endian `relative offset: u32, position: u32`,
//!   one every `log.index.interval.bytes` of log (sparse, as Kafka). Relative
//!   offsets and 32-bit positions are why `log.segment.bytes` is capped at 4 GiB.
//! - `.timeindex`: 12-byte entries, `max timestamp so far: i64, relative offset: u32`,
//!   added with each offset-index entry when the timestamp grew.
//!
//! Indexes are kept in memory while a segment is active and written whole when
//! it is rolled or the broker stops cleanly (a compacted segment's are built
//! while the cleaner writes it and written after its swap); after a crash the active segment's
//! indexes are rebuilt by scanning it (see `recovery`), which is also how a
//! missing or corrupt index of an older segment is replaced.
//! The active `.log` file is allocated ahead of the writes with `fallocate`,
//! growing geometrically: the reservation ahead equals the data written so far,
//! between [`PREALLOC_MIN_BYTES`] and [`PREALLOC_MAX_BYTES`]. Reserving a whole
//! `segment.bytes` up front would pin 1 GiB of disk per partition even when a
//! partition holds a few bytes (thousands of partitions would fill any disk).
//!
//! The active segment is written by DMA ([`super::direct_write`]), and the
//! reservation grows the file's size (no `FALLOC_FL_KEEP_SIZE`): a DMA write
//! inside the file's size is not an "extending" write, which ext4 serialises
//! under the inode lock and io_uring must then hand to a worker thread. So
//! while a segment is active its file ends with zeros past the data (the
//! reservation, and the DMA padding of the last block). The zeros are cut when
//! the segment is rolled or closed, and by recovery after a crash: zeros are
//! not a batch (magic 0), and a tail of only zeros is not reported as torn.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::direct_write::DirectWriter;
use super::tail_cache::SharedTail;
use crate::io::ring::Ring;
use crate::protocol::record_batch::{BatchHeader, BATCH_HEADER_LEN};

/// Bytes of one `.index` entry (relative offset u32 + position u32).
pub const INDEX_ENTRY_BYTES: usize = 8;
/// Bytes of one `.timeindex` entry (timestamp i64 + relative offset u32).
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

/// Smallest step of disk reserved ahead of the writes.
pub const PREALLOC_MIN_BYTES: u64 = 64 * 1024;
/// Largest step of disk reserved ahead of the writes.
pub const PREALLOC_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Bytes read at once while scanning batch headers from an index entry
/// (twice the default `index.interval.bytes`, so one read usually covers the gap).
pub const SCAN_WINDOW_BYTES: usize = 8192;

/// A segment of a partition's log. Lives on the partition's owner shard only.
#[derive(Debug)]
pub struct Segment {
    /// Offset of the first batch in this segment (its file name).
    pub base_offset: i64,
    /// The `.log` file, shared with in-flight zero-copy sends.
    pub file: Arc<File>,
    /// Bytes of complete, written batches; reads never go past this.
    pub size: u64,
    /// Offset after the last batch written here.
    pub next_offset: i64,
    /// Largest batch max-timestamp in this segment (-1 when empty).
    pub max_timestamp: i64,
    /// Sparse offset index: (offset - base_offset, file position).
    pub index: Vec<(u32, u32)>,
    /// Sparse time index: (max timestamp so far, offset - base_offset).
    pub time_index: Vec<(i64, u32)>,
    /// Log bytes appended since the last index entry.
    pub bytes_since_index: u64,
    /// When this segment was created or loaded (for `log.roll.ms`).
    pub created: Instant,
    /// File bytes reserved so far (a write past this first reserves more).
    preallocated: u64,
    /// The DMA writer while this segment is active and being appended to.
    writer: Option<DirectWriter>,
    /// Recovery cut bytes past the last valid batch that were not only zeros
    /// (the reservation or the DMA padding).
    pub torn: bool,
    dir: PathBuf,
}

impl Segment {
    fn path(dir: &Path, base: i64, ext: &str) -> PathBuf {
        super::layout::segment_file(dir, base, ext)
    }

    /// Creates an empty segment; `created` (from the log's clock) starts its age.
    pub fn create(dir: &Path, base_offset: i64, created: Instant) -> io::Result<Segment> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(Self::path(dir, base_offset, "log"))?;
        Ok(Segment::empty(dir, base_offset, file, created))
    }

    /// An empty segment over `file`.
    fn empty(dir: &Path, base_offset: i64, file: File, created: Instant) -> Segment {
        Segment {
            base_offset,
            file: Arc::new(file),
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index: 0,
            created,
            preallocated: 0,
            writer: None,
            torn: false,
            dir: dir.to_path_buf(),
        }
    }

    /// An empty segment over `file`, a log file that is being written whole
    /// before it takes the segment's place (the cleaner's `.log.cleaned`): the
    /// writer notes each batch ([`Segment::note_batch`]) and sets `size`, so the
    /// segment has its indexes when it is swapped in, without a scan. `dir` is
    /// the partition's directory, where the file will be `<base>.log`.
    pub fn being_written(dir: &Path, base_offset: i64, file: File) -> Segment {
        // Only the active segment rolls by age (segment.ms); a cleaned one is never active.
        Segment::empty(dir, base_offset, file, Instant::now())
    }

    /// Reserves disk so a write ending at `end` lands in preallocated space, at most
    /// up to `limit` (the segment size cap). Failure only loses the optimisation:
    /// a full disk then shows up as the write's own error.
    pub fn reserve(&mut self, end: u64, limit: u64) {
        if end <= self.preallocated {
            return;
        }
        let ahead = end.clamp(PREALLOC_MIN_BYTES, PREALLOC_MAX_BYTES);
        let target = (end + ahead).min(limit.max(end));
        match crate::io::sys::fallocate(self.file.as_raw_fd(), self.preallocated, target - self.preallocated) {
            Ok(()) => self.preallocated = target,
            Err(e) => {
                tracing::debug!("fallocate failed: {e}");
                self.preallocated = end;
            }
        }
    }

    /// Gives back disk reserved past the written data and cuts the DMA
    /// padding (at roll and close): the file then ends at its last batch.
    pub fn release_reservation(&mut self) -> io::Result<()> {
        self.writer = None;
        self.file.set_len(self.size)?;
        self.preallocated = self.size;
        Ok(())
    }

    /// The DMA writer that appends at `size`, opened on first use (through the
    /// page cache unless `direct`: `log.direct.io`). The caller
    /// hands it back with [`Segment::put_writer`] after a successful write.
    pub fn take_writer(&mut self, direct: bool) -> io::Result<DirectWriter> {
        match self.writer.take() {
            Some(w) => Ok(w),
            None => DirectWriter::open(&Self::path(&self.dir, self.base_offset, "log"), &self.file, self.size, direct),
        }
    }

    /// Keeps the writer for the next append.
    pub fn put_writer(&mut self, w: DirectWriter) {
        self.writer = Some(w);
    }

    /// Opens an existing segment. When `recover` is set (unclean shutdown, or the
    /// active segment), every batch is checked (CRC included) and the file is
    /// truncated after the last valid batch; otherwise the stored indexes are used
    /// when they are consistent and rebuilt by a header scan when they are not.
    pub fn open(dir: &Path, base_offset: i64, recover: bool, index_interval: u64, created: Instant) -> io::Result<Segment> {
        let file = OpenOptions::new().read(true).write(true).open(Self::path(dir, base_offset, "log"))?;
        let file_len = file.metadata()?.len();
        let mut seg = Segment {
            base_offset,
            file: Arc::new(file),
            size: file_len,
            next_offset: base_offset,
            max_timestamp: -1,
            index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index: 0,
            created,
            preallocated: file_len,
            writer: None,
            torn: false,
            dir: dir.to_path_buf(),
        };
        if !recover && seg.load_indexes().is_ok() {
            return Ok(seg);
        }
        seg.rebuild(recover, index_interval)?;
        Ok(seg)
    }

    /// Scans the whole file: rebuilds both indexes, finds next offset and max timestamp,
    /// and truncates a torn or corrupt tail.
    fn rebuild(&mut self, check_crc: bool, index_interval: u64) -> io::Result<()> {
        let file_len = self.file.metadata()?.len();
        self.index.clear();
        self.time_index.clear();
        self.bytes_since_index = 0;
        self.max_timestamp = -1;
        self.next_offset = self.base_offset;
        let file = Arc::clone(&self.file);
        let pos = scan_batches(&*file, file_len, self.base_offset, check_crc, |h, pos, total| self.note_batch(h, pos as u32, total, index_interval));
        if pos != file_len {
            self.torn = !is_padding(&self.file, pos, file_len);
            if !self.torn {
                tracing::debug!(dir = %self.dir.display(), segment = self.base_offset, valid = pos, file_len, "cutting the zeros after the last batch");
            } else {
                tracing::warn!(dir = %self.dir.display(), segment = self.base_offset, valid = pos, file_len, "truncating torn tail");
            }
            self.file.set_len(pos)?;
            self.preallocated = pos;
        }
        self.size = pos;
        Ok(())
    }

    /// Records a batch appended at `pos` in the in-memory indexes.
    /// An index entry goes only to an offset above the last indexed one (the
    /// index is searched by offset, and loading refuses one that does not
    /// rise): a batch with no records shares its base offset with the next.
    pub fn note_batch(&mut self, h: &BatchHeader, pos: u32, total: u64, index_interval: u64) {
        let rel = (h.base_offset - self.base_offset) as u32;
        let due = self.bytes_since_index >= index_interval || self.index.is_empty() && pos > 0;
        if due && self.index.last().is_none_or(|&(r, _)| rel > r) {
            self.index.push((rel, pos));
            let ts = self.max_timestamp.max(h.max_timestamp);
            if self.time_index.last().is_none_or(|&(t, _)| ts > t) {
                self.time_index.push((ts, rel));
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += total;
        self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
        self.next_offset = h.last_offset() + 1;
    }

    /// Loads `.index`/`.timeindex` and the tail after the last entry; errors when inconsistent.
    fn load_indexes(&mut self) -> io::Result<()> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "index inconsistent");
        let mut raw = Vec::new();
        File::open(Self::path(&self.dir, self.base_offset, "index"))?.read_to_end(&mut raw)?;
        self.index = parse_offset_index(&raw, self.size).ok_or_else(bad)?;
        raw.clear();
        File::open(Self::path(&self.dir, self.base_offset, "timeindex"))?.read_to_end(&mut raw)?;
        self.time_index = parse_time_index(&raw).ok_or_else(bad)?;
        // Walk batch headers from the last indexed position to find the segment's end state.
        let from = self.index.last().map(|&(_, p)| p as u64).unwrap_or(0);
        let tail = walk_batches(&*self.file, from, self.size).ok_or_else(bad)?;
        self.max_timestamp = self.time_index.last().map(|&(t, _)| t).unwrap_or(-1).max(tail.max_timestamp);
        self.next_offset = tail.next_offset.unwrap_or(self.next_offset);
        self.bytes_since_index += tail.bytes;
        Ok(())
    }

    /// Cuts the segment at `pos`, the position of a batch (or its written
    /// size): the file is shortened, the index entries of the batches from
    /// `pos` on are dropped, and the end state (next offset, max timestamp,
    /// bytes since the last index entry) is recomputed from the headers after
    /// the last kept index entry, as a clean open does, so no whole-segment
    /// scan is needed. The unused reservation goes with the cut. Used when a
    /// follower truncates its log; a batch that does not parse there makes it
    /// rebuild the indexes by a full scan. Readers holding the file past `pos`
    /// read short (their error), never stale bytes beyond the new size.
    pub fn truncate_to(&mut self, pos: u64, index_interval: u64) -> io::Result<()> {
        let pos = pos.min(self.size);
        // The in-memory segment is cut even if the file could not be: nothing
        // past `pos` is served again, and the error says the disk disagrees.
        let cut = self.file.set_len(pos);
        self.writer = None;
        self.size = pos;
        self.preallocated = pos;
        self.index.retain(|&(_, p)| (p as u64) < pos);
        let last = self.index.last().copied();
        match last {
            Some((rel, _)) => self.time_index.retain(|&(_, r)| r <= rel),
            None => self.time_index.clear(),
        }
        let from = last.map_or(0, |(_, p)| p as u64);
        match walk_batches(&*self.file, from, pos) {
            Some(tail) => {
                self.max_timestamp = self.time_index.last().map_or(-1, |&(t, _)| t).max(tail.max_timestamp);
                self.next_offset = tail.next_offset.unwrap_or(self.base_offset);
                self.bytes_since_index = tail.bytes;
            }
            // (the rebuild scans the file: only once it is cut)
            None if cut.is_ok() => self.rebuild(false, index_interval)?,
            None => {}
        }
        cut
    }

    /// Writes both index files whole (at roll and at clean shutdown).
    pub fn write_indexes(&self) -> io::Result<()> {
        std::fs::write(Self::path(&self.dir, self.base_offset, "index"), encode_offset_index(&self.index))?;
        std::fs::write(Self::path(&self.dir, self.base_offset, "timeindex"), encode_time_index(&self.time_index))?;
        Ok(())
    }

    /// Removes the segment's files (retention, delete-records). Readers that
    /// already hold the `.log` file keep reading it until they drop it.
    pub fn delete_files(self) -> io::Result<()> {
        Self::delete_files_at(&self.dir, self.base_offset)
    }

    /// Deletes the files of the segment at `base_offset` in `dir` without opening it.
    pub fn delete_files_at(dir: &Path, base_offset: i64) -> io::Result<()> {
        std::fs::remove_file(Self::path(dir, base_offset, "log"))?;
        let _ = std::fs::remove_file(Self::path(dir, base_offset, "index"));
        let _ = std::fs::remove_file(Self::path(dir, base_offset, "timeindex"));
        let _ = std::fs::remove_file(super::layout::txn_index_file(dir, base_offset));
        Ok(())
    }

    /// Drops index files so a crash before the next clean write forces a rebuild.
    pub fn remove_index_files(&self) {
        let _ = std::fs::remove_file(Self::path(&self.dir, self.base_offset, "index"));
        let _ = std::fs::remove_file(Self::path(&self.dir, self.base_offset, "timeindex"));
    }

    /// File position of the last indexed batch at or before `offset` (0 if none).
    pub fn index_floor(&self, offset: i64) -> u64 {
        let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        match self.index.partition_point(|&(r, _)| r <= rel) {
            0 => 0,
            i => self.index[i - 1].1 as u64,
        }
    }

    /// Offset of the last time-index entry whose timestamp is below `ts` (a safe scan start).
    pub fn time_index_floor(&self, ts: i64) -> i64 {
        match self.time_index.partition_point(|&(t, _)| t < ts) {
            0 => self.base_offset,
            i => self.base_offset + self.time_index[i - 1].1 as i64,
        }
    }

    /// Reads the batch header at `pos` (within the written size).
    pub fn header_at(&self, pos: u64) -> io::Result<BatchHeader> {
        let mut hdr = [0u8; BATCH_HEADER_LEN];
        self.file.read_exact_at(&mut hdr, pos)?;
        BatchHeader::parse(&hdr).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }

    /// Finds the batch containing `offset`: its position and header, or None past the end.
    /// Headers between the index entry and the batch are read through one
    /// [`SCAN_WINDOW_BYTES`] window at a time instead of one `pread` per batch.
    /// Blocking reads: for opening a log (recovery); serving paths use [`SegmentScan`].
    pub fn find_batch(&self, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        self.scan().find_batch_blocking(self.index_floor(offset), offset)
    }

    /// A scan of this segment for serving: owned (the file shared), so no borrow
    /// of the log is held while it reads.
    pub fn scan(&self) -> SegmentScan {
        SegmentScan { file: self.file.clone(), size: self.size, base_offset: self.base_offset, tail: None }
    }
}

/// A segment as a serving path reads it, detached from the segment list: its
/// file and its written size at the time. Reads go through the ring, cached data
/// first ([`Ring::read_exact_at_cached_first`]), so a cold read never stalls the
/// shard; the file stays open even if retention deletes the segment meanwhile.
pub struct SegmentScan {
    file: Arc<File>,
    size: u64,
    base_offset: i64,
    /// The partition's tail cache, when this is the active segment: what it
    /// holds is read from memory, not from the file.
    tail: Option<SharedTail>,
}

impl SegmentScan {
    /// The same scan, reading the active segment's recent bytes from `tail`.
    pub fn with_tail(self, tail: SharedTail) -> SegmentScan {
        SegmentScan { tail: Some(tail), ..self }
    }

    /// Whether this scan reads through the tail cache (the active segment).
    pub fn has_tail(&self) -> bool {
        self.tail.is_some()
    }

    /// The range `[pos, pos + len)` from the tail cache, if it holds all of it.
    pub fn cached(&self, pos: u64, len: u64) -> Option<Vec<bytes::Bytes>> {
        self.tail.as_ref()?.borrow().slices(self.base_offset, pos, len)
    }

    /// Fills `buf` from `pos`: from the tail cache when it holds the range, else
    /// through the ring (page-cache hits first).
    async fn read_at(&self, ring: &Ring, buf: &mut [u8], pos: u64) -> io::Result<()> {
        if self.tail.as_ref().is_some_and(|t| t.borrow().read_into(self.base_offset, pos, buf)) {
            return Ok(());
        }
        ring.read_exact_at_cached_first(self.file.as_raw_fd(), buf, pos).await
    }

    /// The segment's file (for zero-copy sends of what the scan found).
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Finds the batch holding `offset` as [`Segment::find_batch`] does, starting
    /// at `from` (the offset index's floor for `offset`, taken by the caller).
    pub async fn find_batch(&self, ring: &Ring, from: u64, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let mut scan = Scanner::new(from);
        let mut window = [0u8; SCAN_WINDOW_BYTES];
        loop {
            match scan.step(self.size, offset, &window)? {
                Step::Done(found) => return Ok(found),
                Step::Read(pos, n) => {
                    self.read_at(ring, &mut window[..n], pos).await?;
                    scan.filled(pos, n);
                }
            }
        }
    }

    /// [`SegmentScan::find_batch`] with blocking reads: only for a log that is opening
    /// (recovery, replay of a coordinator's partition), not for serving.
    pub fn find_batch_blocking(&self, from: u64, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let mut scan = Scanner::new(from);
        let mut window = [0u8; SCAN_WINDOW_BYTES];
        loop {
            match scan.step(self.size, offset, &window)? {
                Step::Done(found) => return Ok(found),
                Step::Read(pos, n) => {
                    self.file.read_exact_at(&mut window[..n], pos)?;
                    scan.filled(pos, n);
                }
            }
        }
    }

    /// The batch headers from `from` to the end of the written data, in order, with
    /// their positions, until `stop` says so.
    pub async fn find_header(&self, ring: &Ring, from: u64, mut stop: impl FnMut(&BatchHeader) -> bool) -> io::Result<Option<(u64, BatchHeader)>> {
        let mut pos = from;
        let mut hdr = [0u8; BATCH_HEADER_LEN];
        while pos + BATCH_HEADER_LEN as u64 <= self.size {
            self.read_at(ring, &mut hdr, pos).await?;
            let h = BatchHeader::parse(&hdr).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            if stop(&h) {
                return Ok(Some((pos, h)));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Reads `len` bytes at `pos` (a whole batch), without blocking the shard.
    pub async fn read(&self, ring: &Ring, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.read_at(ring, &mut buf, pos).await?;
        Ok(buf)
    }
}

/// The walk of [`Segment::find_batch`] and [`SegmentScan::find_batch`] over batch
/// headers, one window of the file at a time; the caller does the reads.
struct Scanner {
    /// Where the next header is.
    pos: u64,
    /// (start, length) in the file of what the window holds.
    win: (u64, usize),
}

/// What a scan needs next.
enum Step {
    /// Read `n` bytes at the position into the window.
    Read(u64, usize),
    /// The batch holding the offset (position, header), or None past the end.
    Done(Option<(u64, BatchHeader)>),
}

impl Scanner {
    fn new(from: u64) -> Scanner {
        Scanner { pos: from, win: (0, 0) }
    }

    /// Walks the headers the window holds; asks for a read when the next one is outside it.
    fn step(&mut self, size: u64, offset: i64, window: &[u8]) -> io::Result<Step> {
        let (win_start, win_len) = self.win;
        while self.pos + BATCH_HEADER_LEN as u64 <= size {
            let pos = self.pos;
            if pos < win_start || pos + BATCH_HEADER_LEN as u64 > win_start + win_len as u64 {
                return Ok(Step::Read(pos, (size - pos).min(SCAN_WINDOW_BYTES as u64) as usize));
            }
            let at = (pos - win_start) as usize;
            let h = BatchHeader::parse(&window[at..at + BATCH_HEADER_LEN]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            if h.last_offset() >= offset {
                return Ok(Step::Done(Some((pos, h))));
            }
            self.pos += h.total_len() as u64;
        }
        Ok(Step::Done(None))
    }

    /// The window now holds `n` bytes from `pos`.
    fn filled(&mut self, pos: u64, n: usize) {
        self.win = (pos, n);
    }
}

/// Reads a segment's bytes at a position: the `.log` file, or a byte slice
/// holding one. Recovery's parsing ([`scan_batches`], [`walk_batches`]) takes
/// either, so the recovery fuzz target runs the broker's own code on memory.
pub trait ReadAt {
    /// Fills `buf` from `pos`, or fails (past the end included).
    fn read_at_exact(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_at_exact(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.read_exact_at(buf, pos)
    }
}

impl ReadAt for [u8] {
    fn read_at_exact(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let src = usize::try_from(pos).ok().and_then(|p| self.get(p..)?.get(..buf.len()));
        let src = src.ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// The offset after a stored batch; None for a corrupt header whose offsets
/// overflow (counting on from it would wrap the log end offset) or end before
/// the batch starts (the log end offset would go back). A last offset delta of
/// -1 (a batch with no records, which older versions accepted from clients)
/// ends where it starts.
fn next_offset_after(h: &BatchHeader) -> Option<i64> {
    if h.last_offset_delta < -1 {
        return None;
    }
    h.base_offset.checked_add(i64::from(h.last_offset_delta))?.checked_add(1)
}

/// Bytes of a batch read at once while checking its CRC in recovery, so a
/// corrupt length costs a bounded buffer rather than one as long as it claims.
const CRC_CHUNK_BYTES: usize = 64 * 1024;

/// Recovery's scan of a segment of `len` bytes: walks the batches from position
/// 0 and returns the length of the valid prefix. It stops at the first batch
/// that is torn (runs past `len`), not magic v2, shorter than a header, starts
/// below the offset the batch before it ended at, or (with `check_crc`) fails
/// its CRC. `on_batch(header, position, total length)` sees each valid batch.
pub fn scan_batches<R: ReadAt + ?Sized>(src: &R, len: u64, base_offset: i64, check_crc: bool, mut on_batch: impl FnMut(&BatchHeader, u64, u64)) -> u64 {
    let mut pos = 0u64;
    let mut next_offset = base_offset;
    let mut hdr = [0u8; BATCH_HEADER_LEN];
    let mut chunk = Vec::new();
    while pos + BATCH_HEADER_LEN as u64 <= len {
        if src.read_at_exact(&mut hdr, pos).is_err() {
            break;
        }
        let Ok(h) = BatchHeader::parse(&hdr) else { break };
        let total = h.total_len() as u64;
        if h.magic != 2 || total < BATCH_HEADER_LEN as u64 || pos + total > len || h.base_offset < next_offset {
            break;
        }
        let Some(after) = next_offset_after(&h) else { break };
        if check_crc {
            let mut crc = crc32c::crc32c(&hdr[21..]);
            let (mut at, end) = (pos + BATCH_HEADER_LEN as u64, pos + total);
            while at < end {
                chunk.resize(((end - at) as usize).min(CRC_CHUNK_BYTES), 0);
                if src.read_at_exact(&mut chunk, at).is_err() {
                    break;
                }
                crc = crc32c::crc32c_append(crc, &chunk);
                at += chunk.len() as u64;
            }
            if at < end {
                break;
            }
            if crc != h.crc {
                tracing::warn!(segment = %base_offset, pos, "CRC mismatch; truncating the log here");
                break;
            }
        }
        on_batch(&h, pos, total);
        next_offset = after;
        pos += total;
    }
    pos
}

/// Whether the file bytes from `from` to `to` are all zeros: the reservation
/// ahead of the writes and the DMA padding, not a torn batch.
pub fn is_padding(file: &File, from: u64, to: u64) -> bool {
    let mut buf = vec![0u8; (to.saturating_sub(from)).min(1 << 20) as usize];
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(buf.len());
        if file.read_exact_at(&mut buf[..n], at).is_err() || buf[..n].iter().any(|&b| b != 0) {
            return false;
        }
        at += n as u64;
    }
    true
}

/// What the batches after a segment's last index entry say about its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    /// Largest batch max-timestamp among them (`i64::MIN` when there are none).
    pub max_timestamp: i64,
    /// Offset after the last of them (None when there are none).
    pub next_offset: Option<i64>,
    /// Their bytes.
    pub bytes: u64,
}

/// Walks the batch headers from `from` to `size` of a segment whose indexes
/// were loaded. None when a header cannot be read or a batch runs past `size`:
/// the indexes do not match the log, which is then rebuilt by [`scan_batches`].
pub fn walk_batches<R: ReadAt + ?Sized>(src: &R, from: u64, size: u64) -> Option<Tail> {
    let mut tail = Tail { max_timestamp: i64::MIN, next_offset: None, bytes: 0 };
    let mut pos = from;
    let mut hdr = [0u8; BATCH_HEADER_LEN];
    while pos < size {
        src.read_at_exact(&mut hdr, pos).ok()?;
        let h = BatchHeader::parse(&hdr).ok()?;
        let total = h.total_len() as u64;
        if pos + total > size {
            return None;
        }
        tail.max_timestamp = tail.max_timestamp.max(h.max_timestamp);
        tail.next_offset = Some(next_offset_after(&h)?);
        tail.bytes += total;
        pos += total;
    }
    Some(tail)
}

/// The bytes of a `.index` file.
pub fn encode_offset_index(index: &[(u32, u32)]) -> Vec<u8> {
    index.iter().flat_map(|&(rel, pos)| [rel.to_be_bytes(), pos.to_be_bytes()]).flatten().collect()
}

/// The bytes of a `.timeindex` file.
pub fn encode_time_index(time_index: &[(i64, u32)]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(time_index.len() * TIME_INDEX_ENTRY_BYTES);
    for &(ts, rel) in time_index {
        raw.extend_from_slice(&ts.to_be_bytes());
        raw.extend_from_slice(&rel.to_be_bytes());
    }
    raw
}

/// Parses a `.index` file for a `.log` of `log_size` bytes: (relative offset,
/// position) entries, both strictly rising and every position inside the log.
/// None when it is inconsistent (the segment is then rebuilt).
pub fn parse_offset_index(raw: &[u8], log_size: u64) -> Option<Vec<(u32, u32)>> {
    if !raw.len().is_multiple_of(INDEX_ENTRY_BYTES) {
        return None;
    }
    let mut index: Vec<(u32, u32)> = Vec::with_capacity(raw.len() / INDEX_ENTRY_BYTES);
    for e in raw.chunks_exact(INDEX_ENTRY_BYTES) {
        let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
        if pos as u64 >= log_size || index.last().is_some_and(|&(r, p)| rel <= r || pos <= p) {
            return None;
        }
        index.push((rel, pos));
    }
    Some(index)
}

/// Parses a `.timeindex` file: (max timestamp so far, relative offset) entries.
/// None when its length is not a whole number of entries.
pub fn parse_time_index(raw: &[u8]) -> Option<Vec<(i64, u32)>> {
    if !raw.len().is_multiple_of(TIME_INDEX_ENTRY_BYTES) {
        return None;
    }
    let entry = |e: &[u8]| -> Option<(i64, u32)> { Some((i64::from_be_bytes(e[0..8].try_into().ok()?), u32::from_be_bytes(e[8..12].try_into().ok()?))) };
    raw.chunks_exact(TIME_INDEX_ENTRY_BYTES).map(entry).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::record_batch::{BATCH_LENGTH_OFFSET, LAST_OFFSET_DELTA_OFFSET, MAGIC_OFFSET, MIN_BATCH_LENGTH};

    /// A bare 61-byte batch header (no records) at `base_offset`.
    fn header(base_offset: i64, last_offset_delta: i32) -> Vec<u8> {
        let mut b = vec![0u8; BATCH_HEADER_LEN];
        b[..8].copy_from_slice(&base_offset.to_be_bytes());
        b[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&MIN_BATCH_LENGTH.to_be_bytes());
        b[MAGIC_OFFSET] = 2;
        b[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4].copy_from_slice(&last_offset_delta.to_be_bytes());
        b
    }

    /// Found by fuzz/log_recovery: a stored header whose last offset is
    /// i64::MAX made the offset after it overflow (a panic in debug builds, a
    /// negative log end offset in release). Recovery now stops before it.
    #[test]
    fn a_batch_whose_offsets_overflow_ends_the_valid_log() {
        let mut log = header(0, 0);
        log.extend(header(i64::MAX, 0));
        let mut seen = Vec::new();
        let valid = scan_batches(&log[..], log.len() as u64, 0, false, |h, pos, _| seen.push((h.base_offset, pos)));
        assert_eq!(valid, BATCH_HEADER_LEN as u64);
        assert_eq!(seen, vec![(0, 0)]);
        let wrapped = header(i64::MAX - 1, 7);
        assert_eq!(scan_batches(&wrapped[..], BATCH_HEADER_LEN as u64, 0, false, |_, _, _| ()), 0);
        // The clean-start walk finds the indexes inconsistent (a rebuild follows).
        assert_eq!(walk_batches(&log[..], 0, log.len() as u64), None);
        let tail = walk_batches(&log[..], 0, BATCH_HEADER_LEN as u64);
        assert_eq!(tail, Some(Tail { max_timestamp: 0, next_offset: Some(1), bytes: BATCH_HEADER_LEN as u64 }));
    }

    /// Found by fuzz/log_recovery: a stored batch whose last offset delta is
    /// below -1 ends before it starts; recovery took the offset after it as
    /// the next one, so the offsets of the batches after it (and the log end
    /// offset) went back, and the indexes rebuilt from them did not load.
    #[test]
    fn a_batch_that_ends_before_it_starts_ends_the_valid_log() {
        let mut log = header(5, 0);
        log.extend(header(6, -1000));
        log.extend(header(7, 0));
        let valid = scan_batches(&log[..], log.len() as u64, 0, false, |_, _, _| ());
        assert_eq!(valid, BATCH_HEADER_LEN as u64);
        assert_eq!(walk_batches(&log[..], 0, log.len() as u64), None);
    }

    /// Batches with no records (delta -1) share their base offset with the
    /// next batch; the index rebuilt over them still rises, so it loads back.
    #[test]
    fn index_entries_rise_over_batches_without_records() {
        let mut log = Vec::new();
        for _ in 0..4 {
            log.extend(header(3, -1));
        }
        log.extend(header(3, 0));
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 0, Instant::now()).unwrap();
        let interval = BATCH_HEADER_LEN as u64;
        let valid = scan_batches(&log[..], log.len() as u64, 0, false, |h, pos, total| seg.note_batch(h, pos as u32, total, interval));
        assert_eq!(valid, log.len() as u64);
        assert_eq!(seg.index, vec![(3, BATCH_HEADER_LEN as u32)]);
        assert_eq!(seg.next_offset, 4);
        assert_eq!(parse_offset_index(&encode_offset_index(&seg.index), valid), Some(seg.index.clone()));
    }

    #[test]
    fn indexes_round_trip_and_inconsistent_ones_are_refused() {
        let index = vec![(3, 100), (9, 4200)];
        let time_index = vec![(1_000, 3), (2_000, 9)];
        assert_eq!(parse_offset_index(&encode_offset_index(&index), 5000), Some(index.clone()));
        assert_eq!(parse_time_index(&encode_time_index(&time_index)), Some(time_index));
        // A position past the log, falling offsets, a torn entry.
        assert_eq!(parse_offset_index(&encode_offset_index(&index), 4200), None);
        assert_eq!(parse_offset_index(&encode_offset_index(&[(9, 100), (3, 4200)]), 5000), None);
        assert_eq!(parse_offset_index(&encode_offset_index(&index)[..12], 5000), None);
        assert_eq!(parse_time_index(&[0; 13]), None);
    }
}
