//! The leader epoch cache of a partition (Kafka's `LeaderEpochFileCache`,
//! KIP-101/279): for each leader epoch that wrote to this log, the offset of
//! its first batch. A follower asks the leader where the epoch of its last
//! batch ended (OffsetForLeaderEpoch) and truncates its log there, so a log
//! that diverged under an old leader is cut back before replication resumes
//! instead of keeping records the new leader never had.
//!
//! Entries `(epoch, start_offset)` rise in both fields. They are kept in the
//! partition's `leader-epoch-checkpoint` file in Kafka's text format, so a
//! Kafka tool reading the directory understands it:
//!
//! ```text
//! 0            version
//! 2            number of entries
//! 0 0          epoch start_offset
//! 3 1200
//! ```

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Name of the checkpoint file in the partition directory (Kafka's name).
pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// The checkpoint format version this broker reads and writes (Kafka's only one).
const CHECKPOINT_VERSION: i32 = 0;

/// Kafka's UNDEFINED_EPOCH: no epoch known.
pub const UNDEFINED_EPOCH: i32 = -1;

/// Kafka's UNDEFINED_EPOCH_OFFSET: no end offset known.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// The leader epochs of one partition's log and where each started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    /// `(epoch, start_offset)`, both strictly rising.
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    /// Reads `dir/leader-epoch-checkpoint`. A missing file is an empty cache (a
    /// new partition, or one written before epochs were kept); a file that does
    /// not parse, or whose entries do not rise, is an `InvalidData` error
    /// naming the file, since truncating by a wrong cache could drop acknowledged
    /// records.
    pub fn load(dir: &Path) -> io::Result<LeaderEpochCache> {
        let path = dir.join(CHECKPOINT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LeaderEpochCache::default()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Err(corrupt(&path, "not UTF-8 text")),
            Err(e) => return Err(e),
        };
        let entries = parse_checkpoint(&text).map_err(|why| corrupt(&path, why))?;
        Ok(LeaderEpochCache { entries })
    }

    /// Writes the checkpoint atomically: a temp file, fdatasync'd, renamed over
    /// the old one, then the directory fsync'd so the rename survives a crash.
    /// Plain blocking I/O on the shard's thread, on purpose: it happens only
    /// when this replica becomes leader, a leader's first append in a new
    /// epoch (on a single broker: a partition's first append ever), a follower
    /// first sees a new epoch, or the log start or end moves past an entry —
    /// rare events, each a few small syscalls.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let path = dir.join(CHECKPOINT_FILE);
        let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
        let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_data()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// Records that `epoch` starts at `start_offset`, as Kafka's
    /// `LeaderEpochFileCache.assign`: nothing changes (false) when `epoch` is
    /// already the latest and `start_offset` is not below its start (the common
    /// case: every batch of the current epoch), nor for a negative epoch or
    /// offset (Kafka refuses those). Otherwise the entries from the end that
    /// would break the order — epoch >= `epoch` or start >= `start_offset` —
    /// are removed and the new entry appended (true). So an older epoch than
    /// the latest does replace the newer entries: the log now says so.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if !self.assign_changes(epoch, start_offset) {
            return false;
        }
        let removed_from = self.entries.iter().rposition(|&(e, s)| !(e >= epoch || s >= start_offset)).map_or(0, |i| i + 1);
        let removed: Vec<(i32, i64)> = self.entries.drain(removed_from..).collect();
        if removed.len() > 1 || removed.first().is_some_and(|&(_, s)| s != start_offset) {
            // Removing one entry at the same start is a new epoch with no data yet; more is a divergence.
            tracing::warn!(epoch, start_offset, ?removed, "new leader epoch entry removed conflicting entries");
        }
        self.entries.push((epoch, start_offset));
        true
    }

    /// Whether [`LeaderEpochCache::assign`] would change the entries.
    fn assign_changes(&self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        self.entries.last().is_none_or(|&(last_epoch, last_start)| epoch != last_epoch || start_offset < last_start)
    }

    /// [`LeaderEpochCache::assign`], then [`LeaderEpochCache::save`] when the
    /// entries changed; if the save fails the cache is left as it was, so the
    /// memory never holds an entry the checkpoint lacks (the next assign of the
    /// same entry tries the save again). True when the entries changed.
    pub fn assign_and_save(&mut self, dir: &Path, epoch: i32, start_offset: i64) -> io::Result<bool> {
        if !self.assign_changes(epoch, start_offset) {
            return Ok(false);
        }
        let before = self.entries.clone();
        self.assign(epoch, start_offset);
        if let Err(e) = self.save(dir) {
            self.entries = before;
            return Err(e);
        }
        Ok(true)
    }

    /// The newest epoch that wrote to the log (or became leader of it).
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|&(e, _)| e)
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// OffsetForLeaderEpoch: the largest epoch <= `requested_epoch` and the
    /// offset where it ended (the start of the next epoch, or `log_end_offset`
    /// for the latest), as Kafka's `endOffsetFor`. `(-1, -1)` when the epoch is
    /// undefined, newer than any known, or the cache is empty. A requested
    /// epoch older than every entry answers itself with the first entry's
    /// start: its data is gone, and the follower truncates to where this log's
    /// history begins.
    pub fn end_offset_for(&self, requested_epoch: i32, log_end_offset: i64) -> (i32, i64) {
        if requested_epoch == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return (requested_epoch, log_end_offset);
        }
        let Some(&(_, higher_start)) = self.entries.iter().find(|&&(e, _)| e > requested_epoch) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|&&(e, _)| e <= requested_epoch) {
            None => (requested_epoch, higher_start),
            Some(&(floor_epoch, _)) => (floor_epoch, higher_start),
        }
    }

    /// The log was truncated to `end_offset`: removes the entries starting at or
    /// after it (their epochs no longer wrote anything here). True when any was
    /// removed (the caller saves the checkpoint).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        if end_offset < 0 {
            return false;
        }
        let keep = self.entries.partition_point(|&(_, s)| s < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log start moved up to `start_offset` (retention, DeleteRecords):
    /// drops the entries starting at or below it and puts back the last of them
    /// starting at `start_offset`, as Kafka does, so the epoch of the first
    /// remaining record is still known. True when the entries changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let below = self.entries.partition_point(|&(_, s)| s <= start_offset);
        if below == 0 {
            return false;
        }
        let (epoch, old_start) = self.entries[below - 1];
        if below == 1 && old_start == start_offset {
            return false;
        }
        self.entries.drain(..below - 1);
        self.entries[0] = (epoch, start_offset);
        true
    }
}

/// The `InvalidData` error for a checkpoint that does not parse.
fn corrupt(path: &Path, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("corrupt leader epoch checkpoint {}: {why}", path.display()))
}

/// Parses a checkpoint's text into rising entries, or says what is wrong.
fn parse_checkpoint(text: &str) -> Result<Vec<(i32, i64)>, &'static str> {
    let mut lines = text.lines();
    let version: i32 = lines.next().ok_or("empty file")?.trim().parse().map_err(|_| "bad version line")?;
    if version != CHECKPOINT_VERSION {
        return Err("unknown version");
    }
    let count: usize = lines.next().ok_or("no entry count")?.trim().parse().map_err(|_| "bad entry count")?;
    let mut entries: Vec<(i32, i64)> = Vec::with_capacity(count.min(1024));
    for line in lines.by_ref().take(count) {
        let mut fields = line.split_whitespace();
        let epoch: i32 = fields.next().and_then(|f| f.parse().ok()).ok_or("bad entry line")?;
        let start: i64 = fields.next().and_then(|f| f.parse().ok()).ok_or("bad entry line")?;
        if fields.next().is_some() || epoch < 0 || start < 0 {
            return Err("bad entry line");
        }
        if entries.last().is_some_and(|&(e, s)| epoch <= e || start < s) {
            return Err("entries do not rise");
        }
        entries.push((epoch, start));
    }
    if entries.len() != count {
        return Err("fewer entries than its count");
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err("more entries than its count");
    }
    Ok(entries)
}

/// The checkpoint path in a partition directory (for callers that report it).
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache { entries: entries.to_vec() }
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(0, 0), (2, 10), (5, 20)]);
        assert_eq!(c.end_offset_for(1, 30), (0, 10));
        assert_eq!(c.end_offset_for(0, 30), (0, 10));
        assert_eq!(c.end_offset_for(2, 30), (2, 20));
        assert_eq!(c.end_offset_for(3, 30), (2, 20));
        assert_eq!(c.end_offset_for(5, 30), (5, 30));
        assert_eq!(c.end_offset_for(6, 30), (-1, -1));
        assert_eq!(c.end_offset_for(UNDEFINED_EPOCH, 30), (-1, -1));
        // Older than every entry: the epoch itself, ending where the log's history starts.
        let c = cache(&[(3, 100), (4, 150)]);
        assert_eq!(c.end_offset_for(1, 200), (1, 100));
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, 5), (-1, -1));
    }

    #[test]
    fn assign_appends_new_epochs_and_ignores_the_current_one() {
        let mut c = LeaderEpochCache::default();
        assert_eq!(c.latest_epoch(), None);
        assert!(c.assign(0, 0));
        assert!(!c.assign(0, 5), "the latest epoch writing on");
        assert!(c.assign(2, 10));
        assert!(!c.assign(-1, 12) && !c.assign(3, -1), "negative values are refused");
        assert_eq!(c.entries(), &[(0, 0), (2, 10)]);
        assert_eq!(c.latest_epoch(), Some(2));
        assert_eq!(c.entries().first(), Some(&(0, 0)));
    }

    #[test]
    fn assign_removes_entries_that_break_the_order() {
        // A new epoch at the same start replaces the one that wrote nothing.
        let mut c = cache(&[(0, 0), (2, 10)]);
        assert!(c.assign(3, 10));
        assert_eq!(c.entries(), &[(0, 0), (3, 10)]);
        // The latest epoch starting earlier moves its start back.
        assert!(c.assign(3, 8));
        assert_eq!(c.entries(), &[(0, 0), (3, 8)]);
        // A newer epoch starting below the latest start removes it.
        assert!(c.assign(4, 5));
        assert_eq!(c.entries(), &[(0, 0), (4, 5)]);
        // An older epoch than the latest replaces the newer entries (Kafka's assign).
        let mut c = cache(&[(0, 0), (2, 10), (5, 20)]);
        assert!(c.assign(1, 15));
        assert_eq!(c.entries(), &[(0, 0), (1, 15)]);
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(0, 0), (2, 10), (5, 20)]);
        assert!(!c.truncate_from_end(21));
        assert!(c.truncate_from_end(20));
        assert_eq!(c.entries(), &[(0, 0), (2, 10)]);
        assert!(!c.truncate_from_end(-1));
        let mut c = cache(&[(0, 0), (2, 10), (5, 20)]);
        assert!(!c.truncate_from_start(0));
        assert!(c.truncate_from_start(12));
        assert_eq!(c.entries(), &[(2, 12), (5, 20)]);
        assert!(c.truncate_from_start(20));
        assert_eq!(c.entries(), &[(5, 20)]);
        assert!(!c.truncate_from_start(20));
        assert!(c.truncate_from_start(25));
        assert_eq!(c.entries(), &[(5, 25)]);
        assert!(c.truncate_from_end(0));
        assert_eq!(c.entries(), &[]);
        assert!(!c.truncate_from_start(30));
    }

    #[test]
    fn checkpoint_round_trips_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap(), LeaderEpochCache::default(), "no file: empty");
        let c = cache(&[(0, 0), (2, 10), (5, 20)]);
        c.save(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(checkpoint_path(dir.path())).unwrap(), "0\n3\n0 0\n2 10\n5 20\n");
        assert!(!dir.path().join(format!("{CHECKPOINT_FILE}.tmp")).exists());
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap(), c);
        LeaderEpochCache::default().save(dir.path()).unwrap();
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap().entries(), &[]);
    }

    #[test]
    fn a_corrupt_checkpoint_is_invalid_data_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "1\n0\n", "0\nx\n", "0\n2\n0 0\n", "0\n1\n0 0\n1 5\n", "0\n1\n0\n", "0\n2\n3 0\n1 5\n", "0\n1\n0 0 7\n", "0\n1\n-2 0\n"] {
            std::fs::write(checkpoint_path(dir.path()), bad).unwrap();
            let e = LeaderEpochCache::load(dir.path()).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{bad:?}");
            assert!(e.to_string().contains(CHECKPOINT_FILE), "{e}");
        }
        std::fs::write(checkpoint_path(dir.path()), [0xff, 0xfe]).unwrap();
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
