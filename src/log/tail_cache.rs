//! The tail cache: the bytes most recently written to a partition's active
//! segment, kept in memory so that tailing consumers and followers are served
//! without a disk read (segment writes are DMA, so the page cache does not
//! hold them).
//!
//! - Per partition, [`TailChunks`] holds contiguous ranges of the active
//!   segment, oldest first, as `Bytes` (refcounted: a fetch being sent holds
//!   its slices, on whichever shard the connection lives, while the cache may
//!   already have dropped them). A large write's DMA chunks are kept as they
//!   are (no copy); a small write is copied into a buffer of its own size, so
//!   a 1 KiB write does not pin a 128 KiB chunk.
//! - Per shard, one memory budget (`log.tail.cache.bytes`) over all its
//!   partitions: when a write takes the shard over budget, the oldest cached
//!   ranges of the shard are dropped first, whichever partition holds them.
//!   For a tail cache that is what LRU by partition amounts to: a partition
//!   whose consumers keep up reads what was written last.
//! - A roll, a truncation and a deletion drop the partition's ranges: the
//!   cache only ever describes the active segment as it is.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use bytes::Bytes;

/// Cached ranges of one partition's active segment.
#[derive(Debug, Default)]
pub struct TailChunks {
    /// The active segment's base offset the ranges belong to.
    segment: i64,
    /// (file position, bytes), contiguous, oldest first.
    ranges: VecDeque<(u64, Bytes)>,
    /// Sum of the ranges' lengths.
    bytes: usize,
}

/// The shard's account of every partition's cached ranges, oldest first.
#[derive(Default)]
struct ShardBudget {
    used: usize,
    /// (partition, position of a range) in the order the ranges were added.
    order: VecDeque<(Weak<RefCell<TailChunks>>, u64)>,
    /// Ranges alive in some partition (so stale records can be swept).
    live: usize,
}

thread_local! {
    static BUDGET: RefCell<ShardBudget> = RefCell::default();
}

/// Bytes this shard's tail cache holds.
pub fn used_bytes() -> usize {
    BUDGET.try_with(|b| b.borrow().used).unwrap_or(0)
}

/// A partition's handle to its cached ranges.
pub type SharedTail = Rc<RefCell<TailChunks>>;

impl TailChunks {
    /// The segment whose ranges are cached.
    pub fn segment(&self) -> i64 {
        self.segment
    }

    /// The cached range of positions `[start, end)`, if any.
    fn span(&self) -> Option<(u64, u64)> {
        let (start, _) = self.ranges.front()?;
        let (last, b) = self.ranges.back()?;
        Some((*start, last + b.len() as u64))
    }

    /// The bytes `[pos, pos + len)` of segment `segment` as slices of the
    /// cached ranges (no copy), when all of them are cached.
    pub fn slices(&self, segment: i64, pos: u64, len: u64) -> Option<Vec<Bytes>> {
        let (start, end) = self.span()?;
        if segment != self.segment || pos < start || pos + len > end {
            return None;
        }
        let mut i = self.ranges.partition_point(|(p, _)| *p <= pos).saturating_sub(1);
        let mut out = Vec::new();
        let (mut at, stop) = (pos, pos + len);
        while at < stop {
            // The ranges are contiguous from `start` to `end`, so this never runs out.
            let (p, b) = self.ranges.get(i)?;
            let from = (at - p) as usize;
            let to = ((stop - p) as usize).min(b.len());
            out.push(b.slice(from..to));
            at = p + to as u64;
            i += 1;
        }
        Some(out)
    }

    /// Copies `[pos, pos + buf.len())` of segment `segment` into `buf` when cached.
    pub fn read_into(&self, segment: i64, pos: u64, buf: &mut [u8]) -> bool {
        let Some(parts) = self.slices(segment, pos, buf.len() as u64) else { return false };
        let mut at = 0;
        for p in parts {
            buf[at..at + p.len()].copy_from_slice(&p);
            at += p.len();
        }
        true
    }

    /// Forgets every range (roll, truncation, deletion); the next ones belong to `segment`.
    pub fn reset(this: &SharedTail, segment: i64) {
        let mut t = this.borrow_mut();
        let (n, bytes) = (t.ranges.len(), t.bytes);
        t.ranges.clear();
        t.bytes = 0;
        t.segment = segment;
        drop(t);
        let _ = BUDGET.try_with(|b| {
            let mut b = b.borrow_mut();
            b.used -= bytes;
            b.live -= n;
        });
    }

    /// Adds what was just written at `pos` of segment `segment` (contiguous with
    /// what is cached, else the cache starts over there), then drops the
    /// shard's oldest ranges while it is over `budget` bytes.
    pub fn push(this: &SharedTail, segment: i64, pos: u64, data: Vec<Bytes>, budget: usize) {
        let contiguous = {
            let t = this.borrow();
            t.segment == segment && t.span().is_none_or(|(_, end)| end == pos)
        };
        if !contiguous {
            Self::reset(this, segment);
        }
        let weak = Rc::downgrade(this);
        BUDGET.with(|b| {
            let mut b = b.borrow_mut();
            let mut t = this.borrow_mut();
            let mut at = pos;
            for d in data {
                if d.is_empty() {
                    continue;
                }
                let len = d.len();
                t.ranges.push_back((at, d));
                t.bytes += len;
                b.used += len;
                b.live += 1;
                b.order.push_back((weak.clone(), at));
                at += len as u64;
            }
            drop(t);
            b.evict(budget);
        });
    }
}

impl ShardBudget {
    /// Drops the oldest ranges until the shard is within `budget`, and sweeps
    /// records of ranges that a reset already dropped.
    fn evict(&mut self, budget: usize) {
        while self.used > budget {
            let Some((weak, pos)) = self.order.pop_front() else { break };
            let Some(tail) = weak.upgrade() else { continue };
            let mut t = tail.borrow_mut();
            if t.ranges.front().is_some_and(|(p, _)| *p == pos) {
                if let Some((_, b)) = t.ranges.pop_front() {
                    t.bytes -= b.len();
                    self.used -= b.len();
                    self.live -= 1;
                }
            }
        }
        if self.order.len() > 2 * self.live + 64 {
            // Records of reset or dropped partitions: keep those of live ranges.
            self.order.retain(|(w, pos)| w.upgrade().is_some_and(|t| t.borrow().ranges.iter().any(|(p, _)| p == pos)));
        }
    }
}

impl Drop for TailChunks {
    fn drop(&mut self) {
        let (n, bytes) = (self.ranges.len(), self.bytes);
        let _ = BUDGET.try_with(|b| {
            if let Ok(mut b) = b.try_borrow_mut() {
                b.used -= bytes;
                b.live -= n;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; n])
    }

    #[test]
    fn serves_contiguous_ranges_and_evicts_the_shards_oldest_first() {
        let a: SharedTail = Rc::default();
        let b: SharedTail = Rc::default();
        TailChunks::push(&a, 0, 0, vec![chunk(100, 1), chunk(100, 2)], 1000);
        TailChunks::push(&b, 0, 0, vec![chunk(300, 3)], 1000);
        TailChunks::push(&a, 0, 200, vec![chunk(50, 4)], 1000);
        let s = a.borrow().slices(0, 150, 100).unwrap();
        assert_eq!(s.iter().map(|x| (x.len(), x[0])).collect::<Vec<_>>(), vec![(50, 2), (50, 4)]);
        assert!(a.borrow().slices(0, 150, 101).is_none(), "past the end");
        assert!(a.borrow().slices(7, 0, 10).is_none(), "another segment");
        let mut buf = [0u8; 3];
        assert!(a.borrow().read_into(0, 99, &mut buf));
        assert_eq!(buf, [1, 2, 2]);
        // 550 cached; 600 more in b takes the shard to 1150: the oldest ranges of
        // the shard go (a's first two, 200 bytes), b's older one stays.
        TailChunks::push(&b, 0, 300, vec![chunk(600, 5)], 1000);
        assert!(a.borrow().slices(0, 100, 1).is_none());
        assert!(a.borrow().slices(0, 200, 50).is_some());
        assert!(b.borrow().slices(0, 0, 900).is_some());
        // A write that does not continue the cache (a truncation, a roll) starts it over.
        TailChunks::push(&a, 1, 0, vec![chunk(10, 6)], 1000);
        assert_eq!(a.borrow().slices(1, 0, 10).unwrap().len(), 1);
        assert!(a.borrow().slices(0, 100, 1).is_none());
        drop(a);
        drop(b);
        BUDGET.with(|b| assert_eq!((b.borrow().used, b.borrow().live), (0, 0)));
    }
}
