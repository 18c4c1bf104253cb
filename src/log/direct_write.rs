//! DMA appends to the active segment: batches are laid into pooled,
//! block-aligned chunks and written with O_DIRECT through the shard's ring.
//!
//! Why: a buffered write copies every byte into the page cache and, once the
//! page cache is full, reclaims a page per page written; on the project
//! machine that costs 2-8x the CPU of a DMA write and swings with memory state
//! (issue 20, BENCHMARKS.md). A DMA write moves the chunk to the device with
//! no kernel copy, and acks=1 is answered when the data is on the device.
//!
//! The one user-space copy of record bytes on the produce path happens here:
//! the rewritten batch header and the request's body are copied into the
//! chunk. The chunks are written [`WRITE_BYTES`] at a time with up to
//! [`WRITES_IN_FLIGHT`] writes in flight; a group's last chunk usually ends
//! inside a block.
//!
//! **The partial tail block is rewritten.** A write must cover whole blocks,
//! so the last block of a write is padded with zeros; the writer keeps that
//! block's data bytes ([`DirectWriter::tail`], < 4 KiB) and the next group's
//! write starts at the block's start with those bytes again, overwriting the
//! padding. Consequences on disk:
//! - while a segment is active its file is longer than its data, the excess
//!   being zeros (this padding, and the space allocated ahead: see `segment`).
//!   Readers never look past the segment's size; a roll or a clean close
//!   truncates the file to the data (closed segments are exact, as before);
//! - after a crash, recovery scans the active segment and stops at the first
//!   invalid batch; zeros are not a batch (magic 0), so the padding is cut
//!   like any torn tail;
//! - a block being rewritten holds, if the write is torn, either its old or
//!   its new contents per sector: the old data bytes are the same in both, so
//!   an acknowledged batch is never damaged by the rewrite of its block.
//!
//! **The rewritten block is a write of its own.** On ext4 the rewritten block
//! lies in a written extent and the rest of the write in the unwritten
//! extent that `fallocate` reserved. A write spanning both is not an
//! "overwrite" to ext4, which then refuses io_uring's non-blocking attempt
//! (EAGAIN) and io_uring hands the write to an `iou-wrk` thread, which
//! competes with the shard for its core. Two writes, each inside one extent,
//! are both done inline: measured, the worker's CPU went to zero and produce
//! p99 at 1 partition from 5.8-6.2 to 4.6-4.8 ms (BENCHMARKS.md; the rest of
//! that tail is not this). They are in flight together and complete in any order;
//! the group is acknowledged after both, and a crash between them leaves a
//! tail that recovery cuts (zeros, or a batch with a bad CRC).
//!
//! Where the file system refuses O_DIRECT (EINVAL: an old tmpfs, some FUSE
//! file systems) the same aligned writes go through the page cache instead,
//! with a warning at open; `log.direct.io=false` asks for that everywhere
//! (one write path either way: only the open flag differs).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::io::aligned::{align_down, align_up, AlignedBuf, BLOCK, CHUNK_BYTES};
use crate::io::ring::Ring;

/// Bytes of one write: up to this many contiguous chunks go out in one `pwritev`.
pub const WRITE_BYTES: usize = 1024 * 1024;
/// Writes one group keeps in flight at once (the device gains up to about
/// this many on this machine: ARCHITECTURE.md, 4-8 for DmaFile).
pub const WRITES_IN_FLIGHT: usize = 4;

/// The writer of one active segment: its O_DIRECT descriptor and the data
/// bytes of its partial last block.
#[derive(Debug)]
pub struct DirectWriter {
    fd: File,
    /// The segment's bytes from the last block boundary at or below its size
    /// up to its size (`size % BLOCK` bytes).
    tail: Vec<u8>,
}

impl DirectWriter {
    /// Opens `path` (the segment whose data ends at `size`) for DMA appends
    /// (buffered ones unless `direct`) and reads its partial last block from `file`.
    pub fn open(path: &Path, file: &File, size: u64, direct: bool) -> io::Result<DirectWriter> {
        let flags = if direct { libc::O_DIRECT } else { 0 };
        let fd = match OpenOptions::new().write(true).custom_flags(flags).open(path) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                crate::warn_limited!(path = %path.display(), "the file system refuses O_DIRECT; segment writes go through the page cache");
                OpenOptions::new().write(true).open(path)?
            }
            Err(e) => return Err(e),
        };
        let start = align_down(size);
        let mut tail = vec![0u8; (size - start) as usize];
        file.read_exact_at(&mut tail, start)?;
        tail.reserve_exact(BLOCK - tail.len());
        Ok(DirectWriter { fd, tail })
    }

    /// Writes `pieces` (a run of batches: headers and bodies, in order) at
    /// `pos`, the segment's size. On error nothing is remembered: the caller
    /// cuts the file back to `pos` and the next append rewrites the same block.
    /// With `keep`, returns the written data (from `pos` on, in order) for the
    /// tail cache: large chunks as they are, small ones copied to their size.
    pub async fn append<'a>(&mut self, ring: &Ring, pos: u64, pieces: impl Iterator<Item = &'a [u8]>, keep: bool) -> io::Result<Vec<Bytes>> {
        let start = align_down(pos);
        debug_assert_eq!(pos - start, self.tail.len() as u64);
        // (file position, chunk, bytes of data in it); the first chunk's data
        // starts with the tail block's bytes, already on disk.
        let mut chunks: Vec<(u64, Rc<AlignedBuf>, usize)> = Vec::new();
        // Lay the tail block's bytes and the pieces into chunks (the one copy).
        let mut cur = AlignedBuf::take();
        let mut filled = self.tail.len();
        cur.as_mut_slice()[..filled].copy_from_slice(&self.tail);
        let mut at = start;
        for mut piece in pieces {
            while !piece.is_empty() {
                let n = piece.len().min(CHUNK_BYTES - filled);
                cur.as_mut_slice()[filled..filled + n].copy_from_slice(&piece[..n]);
                filled += n;
                piece = &piece[n..];
                if filled == CHUNK_BYTES {
                    chunks.push((at, Rc::new(std::mem::replace(&mut cur, AlignedBuf::take())), CHUNK_BYTES));
                    at += CHUNK_BYTES as u64;
                    filled = 0;
                }
            }
        }
        // The new partial tail block: the data bytes after the last block
        // boundary (none when the run ended on one). `at` is block-aligned.
        let tail_from = align_down(filled as u64) as usize;
        let mut new_tail = Vec::with_capacity(BLOCK);
        if filled > 0 {
            new_tail.extend_from_slice(&cur.as_slice()[tail_from..filled]);
            let padded = align_up(filled as u64) as usize;
            cur.as_mut_slice()[filled..padded].fill(0);
            chunks.push((at, Rc::new(cur), filled));
        }
        // Contiguous chunks go out together, one `pwritev` per WRITE_BYTES: the
        // device (a virtio queue here) is kicked and interrupts once per write.
        // A rewritten partial block goes alone (see the module doc).
        let fd = self.fd.as_raw_fd();
        let rewrite = if self.tail.is_empty() { 0 } else { BLOCK };
        stream::iter(plan_writes(&chunks, rewrite))
            .map(|w| ring.writev_all(fd, w.iov, Rc::new(w.keep), w.at))
            .buffer_unordered(WRITES_IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        self.tail = new_tail;
        if !keep {
            return Ok(Vec::new());
        }
        // Every write completed, so each chunk has one owner again.
        let mut out = Vec::with_capacity(chunks.len());
        let mut skip = (pos - start) as usize;
        for (_, buf, len) in chunks {
            let data = match Rc::try_unwrap(buf) {
                Ok(buf) if len - skip >= CHUNK_BYTES / 2 => Bytes::from_owner(buf).slice(skip..len),
                Ok(buf) => Bytes::copy_from_slice(&buf.as_slice()[skip..len]),
                Err(_) => return Ok(Vec::new()),
            };
            out.push(data);
            skip = 0;
        }
        Ok(out)
    }
}

/// One `pwritev`: where it starts, its pieces, and the chunks they lie in
/// (kept alive until the kernel is done with them).
struct PlannedWrite {
    at: u64,
    len: usize,
    iov: Vec<libc::iovec>,
    keep: Vec<Rc<AlignedBuf>>,
}

/// Splits contiguous `chunks` (file position, chunk, data bytes in it) into
/// writes of at most [`WRITE_BYTES`], each chunk padded to whole blocks; the
/// first `rewrite` bytes (0, or the block being rewritten) form a write of
/// their own.
fn plan_writes(chunks: &[(u64, Rc<AlignedBuf>, usize)], rewrite: usize) -> Vec<PlannedWrite> {
    let mut writes: Vec<PlannedWrite> = Vec::new();
    for (i, (at, buf, len)) in chunks.iter().enumerate() {
        let padded = align_up(*len as u64) as usize;
        let cut = if i == 0 { rewrite.min(padded) } else { 0 };
        for (from, to) in [(0, cut), (cut, padded)] {
            if from == to {
                continue;
            }
            let piece = libc::iovec { iov_base: buf.as_slice()[from..].as_ptr() as *mut libc::c_void, iov_len: to - from };
            // The rewritten block, when there is one, is the first write and takes nothing after it.
            let rewrite_alone = rewrite > 0 && writes.len() == 1;
            match writes.last_mut() {
                Some(w) if !rewrite_alone && w.len + (to - from) <= WRITE_BYTES => {
                    w.iov.push(piece);
                    w.len += to - from;
                    w.keep.push(buf.clone());
                }
                _ => writes.push(PlannedWrite { at: at + from as u64, len: to - from, iov: vec![piece], keep: vec![buf.clone()] }),
            }
        }
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_rewrite_the_partial_block_and_pad_with_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        crate::io::run_on_executor(move || async move {
            let ring = Ring::start().unwrap();
            let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();
            let mut w = DirectWriter::open(&path, &file, 0, true).unwrap();
            let mut expect = Vec::new();
            let mut pos = 0u64;
            // Sizes that end inside a block, on a block, across chunks, and on a chunk boundary.
            let sizes = [100usize, 3996, 5000, CHUNK_BYTES * 2 + 17, CHUNK_BYTES - ((CHUNK_BYTES * 3 + 9113) % CHUNK_BYTES), 1];
            for (i, &n) in sizes.iter().enumerate() {
                let piece: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8 | 1).collect();
                let cached = w.append(&ring, pos, [&piece[..2.min(n)], &piece[2.min(n)..]].into_iter(), true).await.unwrap();
                assert_eq!(cached.concat(), piece, "what the tail cache gets is what was written");
                expect.extend_from_slice(&piece);
                pos += n as u64;
                let len = file.metadata().unwrap().len();
                assert_eq!(len, align_up(pos), "the file ends at the padded block");
                let mut got = vec![0u8; len as usize];
                file.read_exact_at(&mut got, 0).unwrap();
                assert_eq!(&got[..pos as usize], &expect[..], "after append {i}");
                assert!(got[pos as usize..].iter().all(|&b| b == 0), "padding is zeros");
            }
            // A reopened writer continues the same partial block.
            drop(w);
            let mut w = DirectWriter::open(&path, &file, pos, false).unwrap();
            w.append(&ring, pos, std::iter::once(&b"abc"[..]), false).await.unwrap();
            let mut got = vec![0u8; pos as usize + 3];
            file.read_exact_at(&mut got, 0).unwrap();
            assert_eq!(&got[..pos as usize], &expect[..]);
            assert_eq!(&got[pos as usize..], b"abc");
        });
    }

    #[test]
    fn the_rewritten_block_is_a_write_of_its_own() {
        let n = WRITE_BYTES / CHUNK_BYTES;
        let mut chunks: Vec<(u64, Rc<AlignedBuf>, usize)> = (0..=n).map(|i| ((i * CHUNK_BYTES) as u64, Rc::new(AlignedBuf::take()), CHUNK_BYTES)).collect();
        chunks.push((((n + 1) * CHUNK_BYTES) as u64, Rc::new(AlignedBuf::take()), 100));
        let shape = |ws: Vec<PlannedWrite>| -> Vec<(u64, usize)> {
            for w in &ws {
                assert_eq!(w.iov.iter().map(|v| v.iov_len).sum::<usize>(), w.len);
                assert!(w.len <= WRITE_BYTES && w.len.is_multiple_of(BLOCK) && w.at.is_multiple_of(BLOCK as u64));
                assert!(w.iov.iter().all(|v| (v.iov_base as usize).is_multiple_of(BLOCK)), "O_DIRECT needs aligned memory");
            }
            ws.iter().map(|w| (w.at, w.len)).collect()
        };
        let end = (n + 1) * CHUNK_BYTES;
        assert_eq!(shape(plan_writes(&chunks, 0)), vec![(0, WRITE_BYTES), (WRITE_BYTES as u64, end - WRITE_BYTES + BLOCK)]);
        assert_eq!(
            shape(plan_writes(&chunks, BLOCK)),
            vec![(0, BLOCK), (BLOCK as u64, WRITE_BYTES - BLOCK), (WRITE_BYTES as u64, end - WRITE_BYTES + BLOCK)],
            "the block alone, then the rest from the next block on"
        );
        let small = vec![(0u64, Rc::new(AlignedBuf::take()), 100usize)];
        assert_eq!(shape(plan_writes(&small, BLOCK)), vec![(0, BLOCK)], "a write within the rewritten block");
        let two_blocks = vec![(0u64, Rc::new(AlignedBuf::take()), BLOCK + 1)];
        assert_eq!(shape(plan_writes(&two_blocks, BLOCK)), vec![(0, BLOCK), (BLOCK as u64, BLOCK)]);
    }
}
