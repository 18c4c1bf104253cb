//! The aborted-transaction index: one `<base offset>.txnindex` per segment in
//! Kafka's format, so read_committed fetches can tell consumers which
//! producers' records to drop.
//!
//! Each entry is 34 bytes, big-endian: version i16 (0), producer id i64,
//! first offset i64, last offset i64 (the abort marker), last stable offset
//! i64 (after the abort). An entry goes into the segment holding its marker.
//! The partition keeps all entries in memory (aborts are rare and small) and
//! answers a fetch with those overlapping the fetched range.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Bytes of one entry.
pub const ENTRY_BYTES: usize = 34;

/// An aborted transaction as stored and as reported in Fetch responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer id whose transaction was aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first record in this partition.
    pub first_offset: i64,
    /// Offset of the abort marker, the transaction's last offset.
    pub last_offset: i64,
    /// The partition's last stable offset once the abort was written: read_committed
    /// reads stop there.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// The index entry of an aborted transaction, with the last stable offset
    /// after it (the oldest still-open transaction, at most just past the marker).
    pub fn of(c: &super::producer_state::CompletedTxn, first_unstable: Option<i64>) -> AbortedTxn {
        let after_marker = c.last_offset + 1;
        AbortedTxn {
            producer_id: c.producer_id,
            first_offset: c.first_offset,
            last_offset: c.last_offset,
            last_stable_offset: first_unstable.map_or(after_marker, |o| o.min(after_marker)),
        }
    }

    fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut b = [0u8; ENTRY_BYTES];
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> AbortedTxn {
        let i = |at: usize| i64::from_be_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
        AbortedTxn { producer_id: i(2), first_offset: i(10), last_offset: i(18), last_stable_offset: i(26) }
    }
}

/// Path of a segment's transaction index.
pub fn path(dir: &Path, base_offset: i64) -> PathBuf {
    super::layout::txn_index_file(dir, base_offset)
}

/// Appends one entry to the segment's index (created on first use).
pub fn append(dir: &Path, base_offset: i64, t: &AbortedTxn) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path(dir, base_offset))?;
    f.write_all(&t.encode())
}

/// Reads a segment's entries (none when the file does not exist).
pub fn read(dir: &Path, base_offset: i64) -> io::Result<Vec<AbortedTxn>> {
    match std::fs::read(path(dir, base_offset)) {
        Ok(b) => Ok(parse(&b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Parses the bytes of a `.txnindex` file; a torn last entry is ignored.
pub fn parse(raw: &[u8]) -> Vec<AbortedTxn> {
    raw.chunks_exact(ENTRY_BYTES).map(AbortedTxn::decode).collect()
}

/// Rewrites a segment's index with `entries` (recovery drops entries whose
/// markers were lost with a torn tail; they are re-added as the tail replays).
pub fn rewrite(dir: &Path, base_offset: i64, entries: &[AbortedTxn]) -> io::Result<()> {
    if entries.is_empty() {
        return match std::fs::remove_file(path(dir, base_offset)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let bytes: Vec<u8> = entries.iter().flat_map(|t| t.encode()).collect();
    std::fs::write(path(dir, base_offset), bytes)
}

/// The aborted transactions a fetch of `[from, to)` must report: those whose
/// range overlaps it. Entries are kept in marker order (rising `last_offset`),
/// so the ones ending before `from` are skipped by binary search.
pub fn overlapping(all: &[AbortedTxn], from: i64, to: i64) -> Vec<AbortedTxn> {
    let start = all.partition_point(|t| t.last_offset < from);
    all[start..].iter().filter(|t| t.first_offset < to).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_in_kafkas_34_byte_format() {
        let dir = tempfile::tempdir().unwrap();
        let a = AbortedTxn { producer_id: 3, first_offset: 10, last_offset: 20, last_stable_offset: 21 };
        let b = AbortedTxn { producer_id: 4, first_offset: 15, last_offset: 30, last_stable_offset: 31 };
        append(dir.path(), 0, &a).unwrap();
        append(dir.path(), 0, &b).unwrap();
        assert_eq!(std::fs::metadata(path(dir.path(), 0)).unwrap().len(), 2 * ENTRY_BYTES as u64);
        assert_eq!(read(dir.path(), 0).unwrap(), vec![a, b]);
        assert_eq!(overlapping(&[a, b], 21, 100), vec![b]);
        assert_eq!(overlapping(&[a, b], 0, 10), vec![]);
        assert_eq!(overlapping(&[a, b], 0, 11), vec![a]);
        rewrite(dir.path(), 0, &[b]).unwrap();
        assert_eq!(read(dir.path(), 0).unwrap(), vec![b]);
        rewrite(dir.path(), 0, &[]).unwrap();
        assert!(read(dir.path(), 0).unwrap().is_empty());
    }
}
