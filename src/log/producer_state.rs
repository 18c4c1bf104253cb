//! Per-partition producer state: what makes idempotent and transactional
//! produce work (Kafka's `ProducerStateManager`).
//!
//! For every producer id that wrote to the partition it keeps the epoch, the
//! last five batches (first/last sequence and offsets, so a retried batch is
//! answered with its original offsets instead of being appended twice), the
//! coordinator epoch of the last transaction marker and, while a transaction
//! is open, the offset of its first record. The open transactions give the
//! partition's first unstable offset, which bounds the last stable offset
//! (LSO) that read_committed consumers may read up to.
//!
//! The state is updated when offsets are assigned (before the write), so a
//! pipelined producer's next batch is checked against the previous one even
//! while that one is still in flight. It is saved as `<offset>.snapshot` (the
//! state of every batch below `offset`) at segment roll and clean shutdown, and
//! rebuilt at open from the newest snapshot not past the log end plus the batch
//! headers after it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::protocol::record_batch::BatchHeader;

/// How many batches per producer are remembered for duplicate detection
/// (Kafka's limit; clients keep at most 5 requests in flight with idempotence).
pub const BATCHES_KEPT: usize = 5;

/// One remembered batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    /// Sequence number of the batch's first record.
    pub first_seq: i32,
    /// Sequence number of its last record (wrapped past i32::MAX to 0, as Kafka).
    pub last_seq: i32,
    /// Offset the batch's first record was given.
    pub base_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
    /// The batch's largest record timestamp (ms since the epoch).
    pub max_timestamp: i64,
}

/// What a partition knows about one producer id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProducerEntry {
    /// Producer epoch of the newest batch or marker seen; older epochs are fenced.
    pub epoch: i16,
    /// Newest last; at most [`BATCHES_KEPT`].
    pub batches: VecDeque<BatchMeta>,
    /// Timestamp of the newest batch or marker (expiry and DescribeProducers).
    pub last_timestamp: i64,
    /// Coordinator epoch of the newest transaction marker (-1: none yet).
    pub coordinator_epoch: i32,
    /// First offset of the open transaction, if one is open.
    pub txn_first_offset: Option<i64>,
}

impl ProducerEntry {
    fn new(epoch: i16) -> ProducerEntry {
        ProducerEntry { epoch, batches: VecDeque::new(), last_timestamp: -1, coordinator_epoch: -1, txn_first_offset: None }
    }

    /// The last sequence written, if any batch is remembered.
    pub fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    fn push(&mut self, b: BatchMeta) {
        if self.batches.len() == BATCHES_KEPT {
            self.batches.pop_front();
        }
        self.batches.push_back(b);
    }
}

/// A transaction that ended in this partition (from its marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    /// The producer id that ran the transaction.
    pub producer_id: i64,
    /// Offset of the transaction's first record in this partition.
    pub first_offset: i64,
    /// Offset of the marker.
    pub last_offset: i64,
    /// True for an abort marker (it goes into the aborted-transaction index), false for a commit.
    pub aborted: bool,
}

/// What the check of a client batch decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Append it.
    Append,
    /// A retry of a batch already in the log: answer with these offsets.
    Duplicate(BatchMeta),
}

/// Where an append comes from: clients are checked for sequence order; the
/// coordinators (transactional offset commits) only for the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A produce request from a client: epoch and sequence numbers are checked.
    Client,
    /// A write by the group coordinator (TxnOffsetCommit into `__consumer_offsets`):
    /// only the producer epoch is checked.
    Coordinator,
}

/// Whether `next` follows `last` (sequences wrap from i32::MAX to 0).
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// The sequence of the batch's last record (wrapping, as Kafka).
pub fn last_seq_of(h: &BatchHeader) -> i32 {
    let last = i64::from(h.base_sequence) + i64::from(h.last_offset_delta);
    if last > i64::from(i32::MAX) {
        (last - i64::from(i32::MAX) - 1) as i32
    } else {
        last as i32
    }
}

/// The producer state of one partition.
#[derive(Debug, Default, Clone)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions by first offset -> producer id (the first is the first unstable offset).
    ongoing: BTreeMap<i64, i64>,
}

impl ProducerState {
    /// The state of `producer_id` in this partition, if it wrote here and has not expired.
    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer id with state in this partition, with it (DescribeProducers).
    pub fn producers(&self) -> impl Iterator<Item = (&i64, &ProducerEntry)> {
        self.producers.iter()
    }

    /// The first offset of the oldest open transaction.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Checks a batch (with a producer id, not a control batch) before offsets
    /// are assigned, against the state as updated by the batches before it.
    pub fn check(&self, h: &BatchHeader, origin: Origin) -> Result<Check> {
        let Some(e) = self.producers.get(&h.producer_id) else {
            // Unknown producer (new, or its state expired or was deleted with
            // the log): Kafka accepts any sequence.
            return Ok(Check::Append);
        };
        if h.producer_epoch < e.epoch {
            return Err(Error::InvalidProducerEpoch(format!(
                "epoch {} is older than the current epoch {} of producer {}",
                h.producer_epoch, e.epoch, h.producer_id
            )));
        }
        if !h.is_transactional() && e.txn_first_offset.is_some() {
            return Err(Error::InvalidTxnState(format!("producer {} has an open transaction; a non-transactional write is not allowed", h.producer_id)));
        }
        if origin == Origin::Coordinator || h.base_sequence < 0 {
            return Ok(Check::Append);
        }
        let last = last_seq_of(h);
        if h.producer_epoch == e.epoch {
            if let Some(d) = e.batches.iter().find(|b| b.first_seq == h.base_sequence && b.last_seq == last) {
                return Ok(Check::Duplicate(*d));
            }
        }
        if h.producer_epoch > e.epoch {
            // A new epoch restarts sequences at 0.
            if h.base_sequence != 0 {
                return Err(Error::OutOfOrderSequence(format!("first sequence of epoch {} must be 0, got {}", h.producer_epoch, h.base_sequence)));
            }
            return Ok(Check::Append);
        }
        match e.last_seq() {
            Some(prev) if !in_sequence(prev, h.base_sequence) => Err(Error::OutOfOrderSequence(format!(
                "producer {} expected sequence {}, got {}",
                h.producer_id,
                if prev == i32::MAX { 0 } else { prev + 1 },
                h.base_sequence
            ))),
            // A marker set this epoch (and forgot the batches): sequences restart at 0.
            None if e.coordinator_epoch >= 0 && h.base_sequence != 0 => Err(Error::OutOfOrderSequence(format!(
                "first sequence of producer {} after its epoch was bumped must be 0, got {}",
                h.producer_id, h.base_sequence
            ))),
            _ => Ok(Check::Append),
        }
    }

    /// Records a data batch whose offsets are assigned (`h.base_offset` set).
    pub fn update(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 || h.is_control() {
            return;
        }
        let e = self.producers.entry(h.producer_id).or_insert_with(|| ProducerEntry::new(h.producer_epoch));
        if h.producer_epoch > e.epoch {
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        if h.base_sequence >= 0 {
            e.push(BatchMeta {
                first_seq: h.base_sequence,
                last_seq: last_seq_of(h),
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                max_timestamp: h.max_timestamp,
            });
        }
        e.last_timestamp = e.last_timestamp.max(h.max_timestamp);
        if h.is_transactional() && e.txn_first_offset.is_none() {
            e.txn_first_offset = Some(h.base_offset);
            self.ongoing.insert(h.base_offset, h.producer_id);
        }
    }

    /// Checks a transaction marker before it is appended: the producer epoch
    /// may not go back, nor may the coordinator epoch.
    pub fn check_marker(&self, producer_id: i64, epoch: i16, coordinator_epoch: i32) -> Result<()> {
        if let Some(e) = self.producers.get(&producer_id) {
            if epoch < e.epoch {
                return Err(Error::InvalidProducerEpoch(format!("marker epoch {epoch} is older than the current epoch {} of producer {producer_id}", e.epoch)));
            }
            if coordinator_epoch < e.coordinator_epoch {
                return Err(Error::TransactionCoordinatorFenced(format!("coordinator epoch {coordinator_epoch} < {}", e.coordinator_epoch)));
            }
        }
        Ok(())
    }

    /// Applies a marker given offset `offset`: closes the producer's open
    /// transaction, if any. Returns it (a marker without an open transaction,
    /// such as a retried one, completes nothing). The transaction still bounds
    /// the first unstable offset until [`ProducerState::end_ongoing`] is called
    /// once the marker is written: read_committed readers must not pass an
    /// aborted transaction before its abort is on disk and indexed.
    pub fn apply_marker(&mut self, producer_id: i64, epoch: i16, coordinator_epoch: i32, commit: bool, offset: i64, timestamp: i64) -> Option<CompletedTxn> {
        let e = self.producers.entry(producer_id).or_insert_with(|| ProducerEntry::new(epoch));
        if epoch > e.epoch {
            e.epoch = epoch;
            e.batches.clear();
        }
        e.coordinator_epoch = coordinator_epoch;
        e.last_timestamp = e.last_timestamp.max(timestamp);
        let first = e.txn_first_offset.take()?;
        Some(CompletedTxn { producer_id, first_offset: first, last_offset: offset, aborted: !commit })
    }

    /// The marker of the transaction starting at `first_offset` is written:
    /// it no longer holds back the last stable offset.
    pub fn end_ongoing(&mut self, first_offset: i64) {
        self.ongoing.remove(&first_offset);
    }

    /// Drops producers idle since before `older_than` without an open transaction
    /// (`producer.id.expiration.ms`). Returns how many were dropped.
    pub fn expire(&mut self, older_than: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| e.txn_first_offset.is_some() || e.last_timestamp >= older_than);
        before - self.producers.len()
    }

    /// Writes `<offset>.snapshot` atomically (temp file, then rename) and
    /// keeps only the two newest snapshots. Blocking: the broker writes
    /// snapshots with [`SnapshotFile`] and syncs them through its ring.
    #[cfg(test)]
    pub fn write_snapshot(&self, dir: &Path, offset: i64) -> io::Result<()> {
        let tmp = SnapshotFile::write(dir, offset, &self.encode_snapshot()?)?;
        tmp.file.sync_data()?;
        tmp.install()
    }

    /// The state as snapshot bytes, taken now and written later (a segment
    /// roll hands the bytes to a background task that fsyncs through the ring).
    pub fn encode_snapshot(&self) -> io::Result<Vec<u8>> {
        let snap = Snapshot { producers: self.producers.iter().map(|(&id, e)| (id, e.clone())).collect() };
        serde_json::to_vec(&snap).map_err(io::Error::other)
    }

    /// Parses the bytes of a `.snapshot` file (as `encode_snapshot` wrote
    /// them); None when they do not parse.
    pub fn parse_snapshot(bytes: &[u8]) -> Option<ProducerState> {
        let s: Snapshot = serde_json::from_slice(bytes).ok()?;
        let mut st = ProducerState::default();
        for (id, e) in s.producers {
            if let Some(f) = e.txn_first_offset {
                st.ongoing.insert(f, id);
            }
            st.producers.insert(id, e);
        }
        Some(st)
    }

    /// Loads the newest snapshot at or below `log_end` (deleting those past it,
    /// written for batches a crash lost). Returns the state and its offset.
    pub fn load_snapshot(dir: &Path, log_end: i64) -> (ProducerState, i64) {
        let mut all = list_snapshots(dir);
        all.sort_unstable();
        for &o in all.iter().rev() {
            if o > log_end {
                let _ = std::fs::remove_file(snapshot_path(dir, o));
                continue;
            }
            match std::fs::read(snapshot_path(dir, o)).ok().and_then(|b| ProducerState::parse_snapshot(&b)) {
                Some(st) => return (st, o),
                None => {
                    tracing::warn!(dir = %dir.display(), offset = o, "unreadable producer state snapshot; rebuilding from older state");
                    let _ = std::fs::remove_file(snapshot_path(dir, o));
                }
            }
        }
        (ProducerState::default(), i64::MIN)
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    producers: Vec<(i64, ProducerEntry)>,
}

/// A snapshot written to its temp file, not yet durable or visible: the
/// caller fsyncs `file` (blocking, or through the shard's ring), then
/// `install`s it under its real name.
pub struct SnapshotFile {
    /// The temp file, written but not yet fsynced.
    pub file: std::fs::File,
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
}

impl SnapshotFile {
    /// Writes `bytes` to `<offset>.snapshot.tmp` (page cache only).
    pub fn write(dir: &Path, offset: i64, bytes: &[u8]) -> io::Result<SnapshotFile> {
        use std::io::Write;
        let path = snapshot_path(dir, offset);
        let tmp = path.with_extension("snapshot.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        Ok(SnapshotFile { file, tmp, path, dir: dir.to_path_buf() })
    }

    /// Renames the (synced) temp file into place and keeps the two newest snapshots.
    pub fn install(self) -> io::Result<()> {
        std::fs::rename(&self.tmp, &self.path)?;
        let mut all = list_snapshots(&self.dir);
        all.sort_unstable();
        let n = all.len();
        for &old in all.iter().take(n.saturating_sub(2)) {
            let _ = std::fs::remove_file(snapshot_path(&self.dir, old));
        }
        Ok(())
    }
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    super::layout::snapshot_file(dir, offset)
}

fn list_snapshots(dir: &Path) -> Vec<i64> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".snapshot")?;
            (stem.len() == 20).then(|| stem.parse::<i64>().ok()).flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::record_batch::{ATTR_TRANSACTIONAL, MAGIC_V2};

    fn batch(pid: i64, epoch: i16, seq: i32, n: i32, base_offset: i64, txn: bool) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 0,
            partition_leader_epoch: -1,
            magic: MAGIC_V2,
            crc: 0,
            attributes: if txn { ATTR_TRANSACTIONAL } else { 0 },
            last_offset_delta: n - 1,
            base_timestamp: 1,
            max_timestamp: 1,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: n,
        }
    }

    #[test]
    fn duplicates_are_answered_with_the_original_offsets() {
        let mut st = ProducerState::default();
        let b = batch(7, 0, 0, 3, 10, false);
        assert_eq!(st.check(&b, Origin::Client).unwrap(), Check::Append);
        st.update(&b);
        let retry = batch(7, 0, 0, 3, -1, false);
        match st.check(&retry, Origin::Client).unwrap() {
            Check::Duplicate(d) => assert_eq!((d.base_offset, d.last_offset), (10, 12)),
            other => panic!("expected a duplicate, got {other:?}"),
        }
    }

    #[test]
    fn gaps_and_old_epochs_are_refused() {
        let mut st = ProducerState::default();
        st.update(&batch(7, 1, 0, 2, 0, false));
        assert!(matches!(st.check(&batch(7, 1, 5, 1, -1, false), Origin::Client), Err(Error::OutOfOrderSequence(_))));
        assert!(matches!(st.check(&batch(7, 0, 2, 1, -1, false), Origin::Client), Err(Error::InvalidProducerEpoch(_))));
        assert_eq!(st.check(&batch(7, 1, 2, 1, -1, false), Origin::Client).unwrap(), Check::Append);
        // A new epoch starts at sequence 0.
        assert!(matches!(st.check(&batch(7, 2, 3, 1, -1, false), Origin::Client), Err(Error::OutOfOrderSequence(_))));
        assert_eq!(st.check(&batch(7, 2, 0, 1, -1, false), Origin::Client).unwrap(), Check::Append);
    }

    #[test]
    fn only_five_batches_are_remembered_and_sequences_wrap() {
        let mut st = ProducerState::default();
        for i in 0..7 {
            st.update(&batch(1, 0, i, 1, i64::from(i), false));
        }
        assert_eq!(st.entry(1).unwrap().batches.len(), BATCHES_KEPT);
        assert!(matches!(st.check(&batch(1, 0, 0, 1, -1, false), Origin::Client), Err(Error::OutOfOrderSequence(_))));
        let mut st = ProducerState::default();
        st.update(&batch(2, 0, i32::MAX, 1, 0, false));
        assert_eq!(st.check(&batch(2, 0, 0, 1, -1, false), Origin::Client).unwrap(), Check::Append);
        assert_eq!(last_seq_of(&batch(2, 0, i32::MAX - 1, 3, 0, false)), 0);
    }

    #[test]
    fn transactions_bound_the_first_unstable_offset_until_their_marker() {
        let mut st = ProducerState::default();
        st.update(&batch(1, 0, 0, 2, 5, true));
        st.update(&batch(2, 0, 0, 1, 7, true));
        st.update(&batch(1, 0, 2, 1, 8, true));
        assert_eq!(st.first_unstable_offset(), Some(5));
        assert!(matches!(st.check(&batch(1, 0, 3, 1, -1, false), Origin::Client), Err(Error::InvalidTxnState(_))));
        let done = st.apply_marker(1, 0, 0, false, 9, 1).unwrap();
        assert_eq!(done, CompletedTxn { producer_id: 1, first_offset: 5, last_offset: 9, aborted: true });
        assert_eq!(st.first_unstable_offset(), Some(5), "held until the marker is written");
        st.end_ongoing(5);
        assert_eq!(st.first_unstable_offset(), Some(7));
        assert!(st.apply_marker(1, 0, 0, false, 10, 1).is_none());
        assert!(matches!(st.check_marker(2, 0, 0), Ok(())));
        let done = st.apply_marker(2, 1, 3, true, 11, 1).unwrap();
        st.end_ongoing(done.first_offset);
        assert!(matches!(st.check(&batch(2, 1, 4, 1, -1, true), Origin::Client), Err(Error::OutOfOrderSequence(_))), "a bumped epoch restarts at 0");
        assert_eq!(st.check(&batch(2, 1, 0, 1, -1, true), Origin::Client).unwrap(), Check::Append);
        assert_eq!(st.first_unstable_offset(), None);
        assert!(matches!(st.check_marker(2, 0, 3), Err(Error::InvalidProducerEpoch(_))));
        assert!(matches!(st.check_marker(2, 1, 2), Err(Error::TransactionCoordinatorFenced(_))));
    }

    #[test]
    fn snapshots_round_trip_and_ignore_those_past_the_log_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = ProducerState::default();
        st.update(&batch(1, 0, 0, 2, 0, true));
        st.write_snapshot(dir.path(), 2).unwrap();
        st.update(&batch(1, 0, 2, 2, 2, true));
        st.write_snapshot(dir.path(), 4).unwrap();
        st.write_snapshot(dir.path(), 6).unwrap();
        assert_eq!(list_snapshots(dir.path()).len(), 2, "only the two newest are kept");
        let (loaded, at) = ProducerState::load_snapshot(dir.path(), 5);
        assert_eq!(at, 4);
        assert_eq!(loaded.first_unstable_offset(), Some(0));
        assert_eq!(loaded.entry(1).unwrap().last_seq(), Some(3));
        assert!(!snapshot_path(dir.path(), 6).exists(), "a snapshot past the log end is removed");
    }
}
