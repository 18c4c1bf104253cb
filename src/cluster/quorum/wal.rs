//! [`Wal`]: the durable form of a quorum member's [`MemoryLog`], in one directory
//! (the caller passes `<log.dirs>/__cluster_metadata-0/`).
//!
//! Files, `<seq>` being 20 decimal digits that grow by one at each new file:
//! - `raft-<seq>.log`: frames appended by [`Wal::sync`]; a new one starts when the
//!   current one passes [`SEGMENT_BYTES`] and at every checkpoint.
//! - `raft-<seq>.checkpoint`: the whole log state when `raft-<seq>.log` was
//!   started (hard state, snapshot with the state machine image, configuration,
//!   the entries after the snapshot), written whole or not at all
//!   ([`crate::io::durable::replace_file`]). Files with a lower `<seq>` are no
//!   longer needed and are deleted.
//!
//! A frame is `[len: u32][crc32c: u32][kind: u8][protobuf bytes]`, big-endian,
//! `len` counting the protobuf bytes and the crc covering the kind byte and them.
//! Kinds: 1 `Entry` (appended; it replaces any entry from its index on), 2
//! `HardState`, 3 `ConfState`, 4 `Snapshot` (replaces the log).
//!
//! At start ([`Wal::open`], blocking std I/O: nothing is served yet) the newest
//! readable checkpoint is loaded and the log files from its `<seq>` on are
//! replayed. Every sync is fdatasynced before the quorum acts on it, so a frame
//! torn by a crash can only be at the end of the last file: it is cut off. A bad
//! frame anywhere else is corruption, and the member refuses to start rather than
//! vote or acknowledge with a log it no longer has.
//!
//! Writing never waits on the device on the shard thread: [`Wal::stage`] encodes
//! into memory, [`Wal::sync`] writes and fdatasyncs through the shard's io_uring
//! ring, and [`Wal::checkpoint`] replaces files through it. After a failed sync
//! or checkpoint the `Wal` refuses further work: what is on disk is unknown, and
//! the member must restart from [`Wal::open`].

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Buf, BufMut, Bytes};
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};

use super::store::MemoryLog;
use super::{Persist, MAX_MESSAGE_BYTES};
use crate::io::durable::replace_file;
use crate::io::ring::Ring;

/// Size past which the next sync starts a new log file.
pub const SEGMENT_BYTES: u64 = 8 << 20;
/// Bytes of a frame before its protobuf bytes.
const FRAME_HEADER: usize = 9;
/// The largest frame body read back (a snapshot frame carries the whole image).
const MAX_FRAME: usize = MAX_MESSAGE_BYTES;

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_CONF_STATE: u8 = 3;
const KIND_SNAPSHOT: u8 = 4;

/// The durable Raft log of one quorum member (see the module doc).
pub struct Wal {
    dir: PathBuf,
    /// Sequence number of the log file being appended to.
    seq: u64,
    file: File,
    file_len: u64,
    segment_bytes: u64,
    staged: Vec<Persist>,
    /// What the files hold (as of the last successful sync): the checkpoint's source.
    durable: MemoryLog,
    failed: bool,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn log_name(seq: u64) -> String {
    format!("raft-{seq:020}.log")
}

fn checkpoint_name(seq: u64) -> String {
    format!("raft-{seq:020}.checkpoint")
}

/// Files `raft-<20 digits>.<ext>` in `dir`, by sequence number.
fn list(dir: &Path, ext: &str) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("raft-"))
            .and_then(|n| n.strip_suffix(ext))
            .and_then(|n| n.strip_suffix('.'))
            .filter(|s| s.len() == 20)
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(seq) = seq {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

fn put_frame(buf: &mut Vec<u8>, kind: u8, msg: &dyn protobuf::Message) -> io::Result<()> {
    let body = msg.write_to_bytes().map_err(io::Error::other)?;
    if body.len() > MAX_FRAME {
        return Err(io::Error::other(format!("raft log frame of {} bytes, over {MAX_FRAME}", body.len())));
    }
    let mut crc = crc32c::crc32c(&[kind]);
    crc = crc32c::crc32c_append(crc, &body);
    buf.put_u32(body.len() as u32);
    buf.put_u32(crc);
    buf.put_u8(kind);
    buf.put_slice(&body);
    Ok(())
}

/// Frames for what one persist changes, in its order (the snapshot is written
/// as a checkpoint instead, see [`Wal::sync`]).
fn put_persist(buf: &mut Vec<u8>, p: &Persist) -> io::Result<()> {
    if let Some(cs) = &p.conf_state {
        put_frame(buf, KIND_CONF_STATE, cs)?;
    }
    for e in &p.entries {
        put_frame(buf, KIND_ENTRY, e)?;
    }
    if let Some(hs) = &p.hard_state {
        put_frame(buf, KIND_HARD_STATE, hs)?;
    }
    Ok(())
}

/// The whole state of `log` as frames: replayed into an empty log they give it back.
fn encode_state(log: &MemoryLog) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    put_frame(&mut buf, KIND_HARD_STATE, log.hard_state())?;
    if log.snapshot_index() > 0 {
        put_frame(&mut buf, KIND_SNAPSHOT, log.snapshot_ref())?;
    }
    put_frame(&mut buf, KIND_CONF_STATE, log.conf_state())?;
    for e in log.entries_ref() {
        put_frame(&mut buf, KIND_ENTRY, e)?;
    }
    Ok(buf)
}

/// The frames at the start of `data` whose crc checks, and the length of that prefix.
fn decode_frames(data: &[u8]) -> (Vec<(u8, &[u8])>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while data.len() - pos >= FRAME_HEADER {
        let mut header = &data[pos..pos + FRAME_HEADER];
        let (len, crc, kind) = (header.get_u32() as usize, header.get_u32(), header.get_u8());
        if len > MAX_FRAME || data.len() - pos - FRAME_HEADER < len {
            break;
        }
        let body = &data[pos + FRAME_HEADER..pos + FRAME_HEADER + len];
        if crc32c::crc32c_append(crc32c::crc32c(&[kind]), body) != crc {
            break;
        }
        out.push((kind, body));
        pos += FRAME_HEADER + len;
    }
    (out, pos)
}

/// Applies one frame to `log`.
fn apply_frame(log: &mut MemoryLog, kind: u8, body: &[u8]) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    match kind {
        KIND_ENTRY => log.append(&[Entry::parse_from_bytes(body).map_err(|x| e(&x))?]).map_err(|x| e(&x)),
        KIND_HARD_STATE => {
            log.set_hard_state(HardState::parse_from_bytes(body).map_err(|x| e(&x))?);
            Ok(())
        }
        KIND_CONF_STATE => {
            log.set_conf_state(ConfState::parse_from_bytes(body).map_err(|x| e(&x))?);
            Ok(())
        }
        KIND_SNAPSHOT => log.apply_snapshot(Snapshot::parse_from_bytes(body).map_err(|x| e(&x))?).map_err(|x| e(&x)),
        k => Err(format!("unknown frame kind {k}")),
    }
}

/// Replays a whole checkpoint; None if it does not read back entirely.
fn read_checkpoint(path: &Path) -> io::Result<Option<MemoryLog>> {
    let data = std::fs::read(path)?;
    let (frames, valid) = decode_frames(&data);
    if valid != data.len() {
        return Ok(None);
    }
    let mut log = MemoryLog::new();
    for (kind, body) in frames {
        if apply_frame(&mut log, kind, body).is_err() {
            return Ok(None);
        }
    }
    Ok(Some(log))
}

impl Wal {
    /// Opens (or creates) the log in `dir` at start-up and returns it with the
    /// log state it holds (see the module doc for what is repaired or refused).
    pub fn open(dir: &Path) -> io::Result<(Wal, MemoryLog)> {
        std::fs::create_dir_all(dir)?;
        let mut start = None;
        for (seq, path) in list(dir, "checkpoint")?.into_iter().rev() {
            match read_checkpoint(&path)? {
                Some(log) => {
                    start = Some((seq, log));
                    break;
                }
                None => tracing::warn!(file = %path.display(), "unreadable raft checkpoint; trying an older one"),
            }
        }
        let (first_seq, mut log) = start.unwrap_or((0, MemoryLog::new()));
        let logs: Vec<_> = list(dir, "log")?.into_iter().filter(|(s, _)| *s >= first_seq).collect();
        for (i, (seq, path)) in logs.iter().enumerate() {
            if *seq != first_seq + i as u64 {
                return Err(invalid(format!("{}: raft log file {} is missing", dir.display(), log_name(first_seq + i as u64))));
            }
            let data = std::fs::read(path)?;
            let (frames, valid) = decode_frames(&data);
            if valid < data.len() {
                if i + 1 < logs.len() {
                    return Err(invalid(format!("{}: corrupt raft log frame at byte {valid} (not the log's tail)", path.display())));
                }
                tracing::warn!(file = %path.display(), kept = valid, dropped = data.len() - valid, "cutting off a torn raft log frame (an unsynced write)");
                let f = OpenOptions::new().write(true).open(path)?;
                f.set_len(valid as u64)?;
                f.sync_all()?;
            }
            for (kind, body) in frames {
                apply_frame(&mut log, kind, body).map_err(|e| invalid(format!("{}: raft log frame: {e}", path.display())))?;
            }
        }
        // Files before the start belong to older checkpoints (a crash stopped their deletion).
        for (seq, path) in list(dir, "log")?.into_iter().chain(list(dir, "checkpoint")?) {
            if seq < first_seq {
                std::fs::remove_file(path)?;
            }
        }
        let (seq, file, file_len) = match logs.last() {
            Some((seq, path)) => {
                let f = OpenOptions::new().write(true).open(path)?;
                let len = f.metadata()?.len();
                (*seq, f, len)
            }
            None => {
                let f = OpenOptions::new().write(true).create(true).truncate(true).open(dir.join(log_name(first_seq)))?;
                File::open(dir)?.sync_all()?;
                (first_seq, f, 0)
            }
        };
        let wal = Wal { dir: dir.to_path_buf(), seq, file, file_len, segment_bytes: SEGMENT_BYTES, staged: Vec::new(), durable: log.clone(), failed: false };
        Ok((wal, log))
    }

    /// Sets the size past which a new log file starts (tests use small ones).
    pub fn with_segment_bytes(mut self, bytes: u64) -> Wal {
        self.segment_bytes = bytes;
        self
    }

    /// Queues what an output asks to persist; [`Wal::sync`] writes it.
    pub fn stage(&mut self, persist: &Persist) {
        if !persist.is_empty() {
            self.staged.push(persist.clone());
        }
    }

    /// Whether staged changes wait for [`Wal::sync`].
    pub fn has_staged(&self) -> bool {
        !self.staged.is_empty()
    }

    /// Writes everything staged at the end of the log and fdatasyncs it (a staged
    /// snapshot is written as a checkpoint first). When this returns Ok, the
    /// staged changes survive a crash.
    pub async fn sync(&mut self, ring: &Ring) -> io::Result<()> {
        self.check()?;
        let res = self.sync_inner(ring).await;
        self.failed = res.is_err();
        res
    }

    async fn sync_inner(&mut self, ring: &Ring) -> io::Result<()> {
        let staged = std::mem::take(&mut self.staged);
        let mut buf = Vec::new();
        for p in &staged {
            if let Some(s) = &p.snapshot {
                self.write(ring, std::mem::take(&mut buf)).await?;
                self.durable.apply_snapshot(s.clone()).map_err(|e| invalid(e.to_string()))?;
                self.write_checkpoint(ring).await?;
            }
            put_persist(&mut buf, p)?;
            self.durable.apply_persist(&Persist { snapshot: None, ..p.clone() }).map_err(|e| invalid(e.to_string()))?;
        }
        self.write(ring, buf).await
    }

    /// Makes `snapshot` (from [`super::Quorum::compact`]) the log's start: syncs
    /// what is staged, writes a checkpoint with it and the entries after it,
    /// starts a new log file, and deletes the older files. A snapshot no newer
    /// than the current one changes nothing.
    pub async fn checkpoint(&mut self, ring: &Ring, snapshot: &Snapshot) -> io::Result<()> {
        self.sync(ring).await?;
        let meta = snapshot.get_metadata();
        if meta.index <= self.durable.snapshot_index() {
            return Ok(());
        }
        if meta.index > self.durable.last() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("snapshot at {} past the durable log's end {}", meta.index, self.durable.last())));
        }
        let mut next = self.durable.clone();
        next.compact(meta.index, snapshot.data.to_vec()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        if next.snapshot_ref().get_metadata() != meta {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("snapshot {meta:?} does not match the log ({:?})", next.snapshot_ref().get_metadata()),
            ));
        }
        self.durable = next;
        let res = self.write_checkpoint(ring).await;
        self.failed = res.is_err();
        res
    }

    /// What the files hold as of the last successful sync.
    pub fn durable(&self) -> &MemoryLog {
        &self.durable
    }

    fn check(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("the raft log failed a write earlier; restart from its files"));
        }
        Ok(())
    }

    /// Appends `bytes` to the current log file (a new one past the segment size) and fdatasyncs.
    async fn write(&mut self, ring: &Ring, bytes: Vec<u8>) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.file_len >= self.segment_bytes {
            let seq = self.seq + 1;
            let f = OpenOptions::new().write(true).create(true).truncate(true).open(self.dir.join(log_name(seq)))?;
            let dir = File::open(&self.dir)?;
            ring.fsync(dir.as_raw_fd()).await?;
            (self.seq, self.file, self.file_len) = (seq, f, 0);
        }
        let keep = Rc::new(bytes);
        let iov = vec![libc::iovec { iov_base: keep.as_ptr() as *mut libc::c_void, iov_len: keep.len() }];
        let fd = self.file.as_raw_fd();
        let mut res = ring.writev_all(fd, iov, keep.clone(), self.file_len).await;
        if res.is_ok() {
            res = ring.fdatasync(fd).await;
        }
        res?;
        self.file_len += keep.len() as u64;
        Ok(())
    }

    /// Writes the durable state as the checkpoint of a new log file, starts that
    /// file, and deletes the files before it.
    async fn write_checkpoint(&mut self, ring: &Ring) -> io::Result<()> {
        let seq = self.seq + 1;
        replace_file(ring, &self.dir.join(checkpoint_name(seq)), Bytes::from(encode_state(&self.durable)?)).await?;
        // A crash before the new log file exists leaves the checkpoint, which is enough.
        let f = OpenOptions::new().write(true).create(true).truncate(true).open(self.dir.join(log_name(seq)))?;
        let dir = File::open(&self.dir)?;
        ring.fsync(dir.as_raw_fd()).await?;
        (self.seq, self.file, self.file_len) = (seq, f, 0);
        let meta = self.durable.snapshot_ref().get_metadata();
        tracing::info!(index = meta.index, term = meta.term, file = checkpoint_name(seq), "raft log checkpoint");
        for (s, path) in list(&self.dir, "log")?.into_iter().chain(list(&self.dir, "checkpoint")?) {
            if s < seq {
                std::fs::remove_file(path)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::io::run_on_executor as run;

    fn entry(index: u64, term: u64) -> Entry {
        Entry { index, term, data: vec![index as u8; 40].into(), ..Default::default() }
    }

    fn persist(from: u64, to: u64, term: u64, commit: u64) -> Persist {
        Persist {
            entries: (from..=to).map(|i| entry(i, term)).collect(),
            hard_state: Some(HardState { term, vote: 1, commit, ..Default::default() }),
            conf_state: (from == 1).then(|| ConfState { voters: vec![1, 2, 3], ..Default::default() }),
            snapshot: None,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn synced_changes_come_back_on_reopen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("__cluster_metadata-0");
        let q = p.clone();
        let expect = std::sync::Arc::new(std::sync::Mutex::new(MemoryLog::new()));
        let e2 = expect.clone();
        run(move || async move {
            let ring = Ring::start().unwrap();
            let (mut wal, log) = Wal::open(&q).unwrap();
            assert!(log.is_empty());
            let mut mem = MemoryLog::new();
            for p in [persist(1, 3, 1, 2), persist(4, 5, 1, 4), persist(5, 6, 2, 5)] {
                wal.stage(&p);
                mem.apply_persist(&p).unwrap();
            }
            assert!(wal.has_staged());
            wal.sync(&ring).await.unwrap();
            assert!(!wal.has_staged());
            assert_eq!(wal.durable(), &mem);
            *e2.lock().unwrap() = mem;
        });
        let (_, log) = Wal::open(&p).unwrap();
        assert_eq!(log, *expect.lock().unwrap());
        assert_eq!(log.last(), 6);
        assert_eq!(raft::Storage::term(&log, 5).unwrap(), 2, "the conflicting suffix was replaced");
        assert_eq!(log.hard_state().commit, 5);
    }

    #[test]
    fn a_torn_tail_is_cut_and_corruption_before_it_refuses_to_start() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_path_buf();
        let q = p.clone();
        run(move || async move {
            let ring = Ring::start().unwrap();
            let (wal, _) = Wal::open(&q).unwrap();
            // Small segments: each sync after the first lands in a new file.
            let mut wal = wal.with_segment_bytes(1);
            for (i, p) in [persist(1, 2, 1, 1), persist(3, 4, 1, 3), persist(5, 6, 1, 5)].iter().enumerate() {
                wal.stage(p);
                wal.sync(&ring).await.unwrap();
                assert_eq!(list(&q, "log").unwrap().len(), i + 1);
            }
        });
        let last = p.join(log_name(2));
        let whole = std::fs::read(&last).unwrap();
        // A crash in the middle of the last sync: its hard state frame is torn.
        std::fs::write(&last, &whole[..whole.len() - 3]).unwrap();
        let (_, log) = Wal::open(&p).unwrap();
        assert_eq!(log.last(), 6, "the entries before the torn frame stay");
        assert_eq!(log.hard_state().commit, 3, "the torn hard state is gone");
        assert!(std::fs::metadata(&last).unwrap().len() < whole.len() as u64 - 3, "the torn frame was cut off the file");
        assert_eq!(Wal::open(&p).unwrap().1, log, "a second open finds nothing to cut");
        // A flipped byte in a file that is not the last: corruption, refuse.
        let first = p.join(log_name(0));
        let mut bad = std::fs::read(&first).unwrap();
        bad[FRAME_HEADER + 2] ^= 0xff;
        std::fs::write(&first, &bad).unwrap();
        let err = Wal::open(&p).err().expect("corruption before the tail");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        // A missing file in the middle: refuse too.
        std::fs::write(&first, &whole[..0]).unwrap();
        std::fs::remove_file(p.join(log_name(1))).unwrap();
        let err = Wal::open(&p).err().expect("a missing log file");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    #[test]
    fn checkpoints_keep_the_entries_after_them_and_delete_older_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_path_buf();
        let q = p.clone();
        let expect = std::sync::Arc::new(std::sync::Mutex::new(MemoryLog::new()));
        let e2 = expect.clone();
        run(move || async move {
            let ring = Ring::start().unwrap();
            let (wal, _) = Wal::open(&q).unwrap();
            let mut wal = wal.with_segment_bytes(200);
            let mut mem = MemoryLog::new();
            for p in [persist(1, 4, 1, 4), persist(5, 8, 1, 6)] {
                wal.stage(&p);
                mem.apply_persist(&p).unwrap();
                wal.sync(&ring).await.unwrap();
            }
            mem.compact(5, b"image at 5".to_vec()).unwrap();
            let snap = mem.snapshot_ref().clone();
            wal.checkpoint(&ring, &snap).await.unwrap();
            assert_eq!(wal.durable(), &mem);
            assert_eq!(names(&q), [checkpoint_name(2), log_name(2)]);
            // An older snapshot changes nothing; one past the log's end is refused.
            wal.checkpoint(&ring, &snap).await.unwrap();
            let mut ahead = snap.clone();
            ahead.mut_metadata().index = 9;
            assert_eq!(wal.checkpoint(&ring, &ahead).await.unwrap_err().kind(), io::ErrorKind::InvalidInput);
            // More entries after the checkpoint, then a snapshot from a leader.
            let p = persist(9, 9, 2, 8);
            wal.stage(&p);
            mem.apply_persist(&p).unwrap();
            let mut from_leader = Snapshot { data: b"leader image at 20".to_vec().into(), ..Default::default() };
            from_leader.mut_metadata().index = 20;
            from_leader.mut_metadata().term = 3;
            from_leader.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
            let p = Persist {
                snapshot: Some(from_leader),
                entries: vec![entry(21, 3)],
                hard_state: Some(HardState { term: 3, vote: 0, commit: 20, ..Default::default() }),
                ..Default::default()
            };
            wal.stage(&p);
            mem.apply_persist(&p).unwrap();
            wal.sync(&ring).await.unwrap();
            assert_eq!(wal.durable(), &mem);
            assert_eq!(names(&q), [checkpoint_name(3), log_name(3)]);
            *e2.lock().unwrap() = mem;
        });
        let (_, log) = Wal::open(&p).unwrap();
        assert_eq!(log, *expect.lock().unwrap());
        assert_eq!((log.snapshot_index(), log.last()), (20, 21));
        assert_eq!(&log.snapshot_ref().data[..], b"leader image at 20");
        // An unreadable newest checkpoint falls back to an older one, whose log is gone: refuse.
        std::fs::write(p.join(checkpoint_name(2)), b"old").unwrap();
        std::fs::write(p.join(checkpoint_name(3)), b"garbage").unwrap();
        assert_eq!(Wal::open(&p).err().expect("no usable checkpoint").kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_crash_between_checkpoint_and_new_log_file_loses_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_path_buf();
        let mut mem = MemoryLog::new();
        mem.apply_persist(&persist(1, 4, 1, 3)).unwrap();
        mem.compact(2, b"img".to_vec()).unwrap();
        std::fs::write(p.join(log_name(0)), b"").unwrap();
        std::fs::write(p.join(checkpoint_name(1)), encode_state(&mem).unwrap()).unwrap();
        let (_, log) = Wal::open(&p).unwrap();
        assert_eq!(log, mem);
        assert_eq!(names(&p), [checkpoint_name(1), log_name(1)], "the older log went, the new one exists");
    }
}
