//! Where a partition's files are (the layout `log/mod.rs` draws): one place for
//! the names, so the segment, transaction-index and producer-state modules do
//! not reach into each other for them.

use std::path::{Path, PathBuf};

/// File name stem of a segment (or of a snapshot at an offset): the offset,
/// zero-padded to 20 digits, as Kafka names them.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// `<stem>.<ext>` of the segment starting at `base_offset` (`log`, `index`, `timeindex`).
pub fn segment_file(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{}.{ext}", file_stem(base_offset)))
}

/// The transaction index of the segment starting at `base_offset`.
pub fn txn_index_file(dir: &Path, base_offset: i64) -> PathBuf {
    segment_file(dir, base_offset, "txnindex")
}

/// The producer-state snapshot taken at `offset`.
pub fn snapshot_file(dir: &Path, offset: i64) -> PathBuf {
    segment_file(dir, offset, "snapshot")
}
