//! [`MemoryLog`]: the quorum member's Raft log in memory, as raft-rs reads it
//! through its [`Storage`] trait.
//!
//! The metadata log is small (thousands of records between snapshots), so all of
//! it after the last snapshot stays in memory; [`super::wal::Wal`] keeps the same
//! state on disk and rebuilds a `MemoryLog` at start. raft-rs's `RawNode` owns the
//! log: the quorum changes it through `raw_node.mut_store()` between readies, so
//! plain fields suffice (no lock, no `RefCell`).
//!
//! What it holds: the hard state (term, vote, commit), the configuration (voters),
//! the last snapshot (its metadata and the state machine image as opaque bytes),
//! and the entries after the snapshot's index, contiguous.

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use super::Persist;

/// The Raft log of one quorum member, in memory (see the module doc).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemoryLog {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

/// An error for a log change raft-rs never asks for (a gap, a compaction past
/// the log's end): the log is left as it was.
fn refused(msg: String) -> raft::Error {
    raft::Error::Store(StorageError::Other(msg.into()))
}

impl MemoryLog {
    /// An empty log: no entries, no snapshot, term 0, no voters.
    pub fn new() -> MemoryLog {
        MemoryLog::default()
    }

    /// The persistent Raft state: current term, the vote in it, the commit index.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The configuration: the voters (and learners).
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// The last snapshot (index 0 and no data when there is none).
    pub fn snapshot_ref(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The entries after the snapshot's index, in order.
    pub fn entries_ref(&self) -> &[Entry] {
        &self.entries
    }

    /// Index of the snapshot (0 when there is none): entries up to it are compacted.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    /// Index of the first entry held (the snapshot's index + 1 when none is).
    pub fn first(&self) -> u64 {
        self.snapshot_index() + 1
    }

    /// Index of the last entry (the snapshot's index when none is held).
    pub fn last(&self) -> u64 {
        self.entries.last().map_or(self.snapshot_index(), |e| e.index)
    }

    /// Whether nothing was ever written: no entry, no snapshot, no term, no voters.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.snapshot_index() == 0 && self.hard_state == HardState::default() && self.conf_state == ConfState::default()
    }

    /// Appends `ents` (contiguous, ascending), replacing any entries from the first
    /// of them on: a conflicting suffix from an older leader is truncated, as Raft
    /// requires. Entries at or below the snapshot's index are already covered by it
    /// and skipped. A gap after the last entry is refused.
    pub fn append(&mut self, ents: &[Entry]) -> raft::Result<()> {
        let snap = self.snapshot_index();
        let ents: &[Entry] = match ents.iter().position(|e| e.index > snap) {
            Some(i) => &ents[i..],
            None => return Ok(()),
        };
        if let Some(w) = ents.windows(2).find(|w| w[1].index != w[0].index + 1) {
            return Err(refused(format!("raft entries not contiguous: {} then {}", w[0].index, w[1].index)));
        }
        let first = ents[0].index;
        if first > self.last() + 1 {
            return Err(refused(format!("raft log gap: entry {first} after last index {}", self.last())));
        }
        self.entries.truncate((first - self.first()) as usize);
        self.entries.extend_from_slice(ents);
        Ok(())
    }

    /// Replaces the hard state.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// Sets the commit index of the hard state.
    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    /// Replaces the configuration.
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Installs a snapshot received from the leader: it replaces every entry, its
    /// configuration becomes the log's, and the term and commit index move up to
    /// it. A snapshot older than the one held is refused.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> raft::Result<()> {
        let meta = snapshot.get_metadata();
        if meta.index < self.snapshot_index() {
            return Err(raft::Error::Store(StorageError::SnapshotOutOfDate));
        }
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.conf_state = meta.get_conf_state().clone();
        self.entries.clear();
        self.snapshot = snapshot;
        Ok(())
    }

    /// Makes a snapshot at `index` (a committed index this member has applied)
    /// with `data` as the state machine's image there, and drops the entries up to
    /// it. The snapshot carries the current configuration (the voter set is fixed).
    /// An index at or below the current snapshot's changes nothing.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> raft::Result<()> {
        if index <= self.snapshot_index() {
            return Ok(());
        }
        if index > self.last() || index > self.hard_state.commit {
            return Err(refused(format!("snapshot at {index} past the last index {} or the commit index {}", self.last(), self.hard_state.commit)));
        }
        let term = self.entry_term(index)?;
        let mut snapshot = Snapshot { data: data.into(), ..Default::default() };
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state.clone());
        let keep_from = (index + 1 - self.first()) as usize;
        self.entries.drain(..keep_from);
        self.snapshot = snapshot;
        Ok(())
    }

    /// Applies what a ready asked to persist, in the order raft-rs requires:
    /// snapshot, configuration, entries, hard state. The quorum does this in
    /// memory; [`super::wal::Wal`] does the same to its durable mirror.
    pub fn apply_persist(&mut self, persist: &Persist) -> raft::Result<()> {
        if let Some(s) = &persist.snapshot {
            self.apply_snapshot(s.clone())?;
        }
        if let Some(cs) = &persist.conf_state {
            self.conf_state = cs.clone();
        }
        self.append(&persist.entries)?;
        if let Some(hs) = &persist.hard_state {
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    fn entry_term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        match self.entries.get((idx - self.first()) as usize) {
            Some(e) => Ok(e.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }
}

impl Storage for MemoryLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state.clone()))
    }

    fn entries(&self, low: u64, high: u64, max_size: impl Into<Option<u64>>, _context: GetEntriesContext) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let from = (low - self.first()) as usize;
        let to = (high - self.first()) as usize;
        let max = max_size.into().unwrap_or(u64::MAX);
        // At least one entry, then as many as fit in `max` bytes (raft-rs's rule).
        let mut size = 0u64;
        let mut out = Vec::with_capacity(to - from);
        for e in &self.entries[from..to] {
            size += u64::from(e.compute_size());
            if !out.is_empty() && size > max {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.entry_term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_index() < request_index {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry { index, term, data: format!("{index}@{term}").into_bytes().into(), ..Default::default() }
    }

    fn ctx() -> GetEntriesContext {
        GetEntriesContext::empty(false)
    }

    #[test]
    fn append_truncates_a_conflicting_suffix_and_refuses_gaps() {
        let mut log = MemoryLog::new();
        assert!(log.is_empty());
        log.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]).unwrap();
        assert_eq!((log.first_index().unwrap(), log.last_index().unwrap()), (1, 3));
        // A new leader overwrites from 2 on.
        log.append(&[entry(2, 2)]).unwrap();
        assert_eq!(log.last(), 2);
        assert_eq!(log.term(2).unwrap(), 2);
        assert_eq!(log.term(1).unwrap(), 1);
        assert_eq!(log.term(3), Err(raft::Error::Store(StorageError::Unavailable)));
        assert!(log.append(&[entry(4, 2)]).is_err(), "gap after 2");
        assert!(log.append(&[entry(3, 2), entry(5, 2)]).is_err(), "not contiguous");
        assert_eq!(log.last(), 2, "refused appends change nothing");
        let got = log.entries(1, 3, None, ctx()).unwrap();
        assert_eq!(got.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(), [(1, 1), (2, 2)]);
    }

    #[test]
    fn entries_respects_max_size_but_returns_at_least_one() {
        let mut log = MemoryLog::new();
        log.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>()).unwrap();
        assert_eq!(log.entries(1, 6, 0, ctx()).unwrap().len(), 1);
        let one = u64::from(entry(1, 1).compute_size());
        assert_eq!(log.entries(1, 6, one * 2, ctx()).unwrap().len(), 2);
        assert_eq!(log.entries(2, 6, None, ctx()).unwrap().len(), 4);
        assert!(log.entries(2, 7, None, ctx()).is_err());
    }

    #[test]
    fn compact_makes_a_snapshot_and_drops_the_entries_before_it() {
        let mut log = MemoryLog::new();
        log.set_conf_state(ConfState { voters: vec![1, 2, 3], ..Default::default() });
        log.append(&(1..=5).map(|i| entry(i, i.min(3))).collect::<Vec<_>>()).unwrap();
        assert!(log.compact(3, b"image".to_vec()).is_err(), "nothing committed yet");
        log.set_commit(4);
        log.compact(3, b"image".to_vec()).unwrap();
        assert_eq!(log.first_index().unwrap(), 4);
        assert_eq!(log.last_index().unwrap(), 5);
        assert_eq!(log.term(3).unwrap(), 3, "the snapshot keeps its term");
        assert_eq!(log.term(2), Err(raft::Error::Store(StorageError::Compacted)));
        assert_eq!(log.entries(3, 5, None, ctx()), Err(raft::Error::Store(StorageError::Compacted)));
        let snap = Storage::snapshot(&log, 0, 2).unwrap();
        assert_eq!((snap.get_metadata().index, snap.get_metadata().term), (3, 3));
        assert_eq!(&snap.data[..], b"image");
        assert_eq!(snap.get_metadata().get_conf_state().voters, [1, 2, 3]);
        assert!(Storage::snapshot(&log, 4, 2).is_err(), "no snapshot that recent");
        log.compact(2, Vec::new()).unwrap();
        assert_eq!(log.snapshot_index(), 3, "an older compaction changes nothing");
        assert!(log.compact(5, Vec::new()).is_err(), "5 is not committed");
        // Appending below the snapshot skips what it covers.
        log.append(&[entry(3, 3), entry(4, 3)]).unwrap();
        assert_eq!((log.first(), log.last()), (4, 4));
    }

    #[test]
    fn a_received_snapshot_replaces_the_log() {
        let mut log = MemoryLog::new();
        log.append(&[entry(1, 1), entry(2, 1)]).unwrap();
        log.set_hard_state(HardState { term: 1, vote: 2, commit: 1, ..Default::default() });
        let mut snap = Snapshot { data: b"img".to_vec().into(), ..Default::default() };
        snap.mut_metadata().index = 10;
        snap.mut_metadata().term = 3;
        snap.mut_metadata().mut_conf_state().voters = vec![1, 2];
        log.apply_snapshot(snap.clone()).unwrap();
        assert_eq!((log.first(), log.last()), (11, 10));
        assert_eq!(log.hard_state(), &HardState { term: 3, vote: 2, commit: 10, ..Default::default() });
        assert_eq!(log.conf_state().voters, [1, 2]);
        let initial = log.initial_state().unwrap();
        assert_eq!(initial.hard_state.commit, 10);
        snap.mut_metadata().index = 9;
        assert_eq!(log.apply_snapshot(snap), Err(raft::Error::Store(StorageError::SnapshotOutOfDate)));
        log.append(&[entry(11, 3)]).unwrap();
        assert_eq!(log.last(), 11);
    }
}
