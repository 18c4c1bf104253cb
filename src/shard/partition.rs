//! A partition replica on its owner shard: its log, and the high watermark above
//! it. The log knows what is written (its log end offset); what clients may read
//! is bounded by the high watermark, which the partition advances. On a single
//! broker every write is committed when it is written, so the high watermark
//! follows the log end as each write completes. With replication the leader will
//! advance it from the in-sync replicas' progress instead, and nothing below
//! (fetch, long-poll wake-ups, ListOffsets, read_committed) changes.

use std::cell::Cell;
use std::rc::Rc;

use crate::error::Result;
use crate::log::{PartitionLog, ReadSlice};
use crate::sync::Notify;

/// One partition replica and its high watermark.
pub struct Partition {
    /// The partition's log on this broker (segments, indexes, producer state).
    pub log: Rc<PartitionLog>,
    high_watermark: Cell<i64>,
    /// Woken whenever the high watermark moves (fetch long-polls wait on it).
    pub hw_moved: Notify,
}

impl Partition {
    /// Wraps an open log; the high watermark starts at its log end (on one
    /// broker everything in the log at open was committed when written).
    pub fn new(log: Rc<PartitionLog>) -> Rc<Partition> {
        let p = Rc::new(Partition { high_watermark: Cell::new(log.log_end_offset()), log, hw_moved: Notify::default() });
        let weak = Rc::downgrade(&p);
        p.log.set_on_written(Box::new(move |end| {
            if let Some(p) = weak.upgrade() {
                p.advance_high_watermark(end);
            }
        }));
        p
    }

    /// Everything below it is committed and readable by consumers.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.get()
    }

    /// Moves the high watermark up (never down) and wakes long-polls.
    pub fn advance_high_watermark(&self, to: i64) {
        if to > self.high_watermark.get() {
            self.high_watermark.set(to);
            self.hw_moved.notify_all();
        }
    }

    /// The last stable offset: below the first open transaction, at most the high watermark.
    pub fn last_stable_offset(&self) -> i64 {
        self.log.last_stable_offset(self.high_watermark())
    }

    /// A fetch read, bounded by the high watermark (or the LSO for read_committed).
    pub async fn read(&self, offset: i64, max_bytes: usize, read_committed: bool) -> Result<ReadSlice> {
        self.log.read(offset, max_bytes, read_committed, self.high_watermark()).await
    }

    /// DeleteRecords up to `offset` (-1: the high watermark); waits while the
    /// cleaner is swapping a segment of this log in.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64> {
        self.log.delete_records_before(offset, self.high_watermark()).await
    }

    /// The topic was deleted: refuse appends and wake long-polls so they answer.
    pub fn mark_deleted(&self) {
        self.log.mark_deleted();
        self.hw_moved.notify_all();
    }
}
