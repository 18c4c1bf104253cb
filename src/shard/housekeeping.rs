//! The partition owner's housekeeping: retention, compaction passes and time-based
//! flushes (each run by its own task from `runtime/`), and closing every log on stop.

use std::rc::Rc;

use super::Shard;
use crate::error::Result;
use crate::log::PartitionLog;

impl Shard {
    /// Retention on every owned log (the shard's retention task calls this
    /// every `log.retention.check.interval.ms`).
    pub fn apply_retention(&self) {
        let now = self.cfg.clock.now_ms();
        let logs: Vec<Rc<PartitionLog>> = self.partitions.borrow().values().map(|p| p.log.clone()).collect();
        for l in logs {
            if let Err(e) = l.apply_retention(now) {
                crate::error_limited!(topic = %l.topic, partition = l.partition, "retention failed: {e}");
            }
            l.expire_producers(now, self.cfg.producer_id_expiration_ms);
        }
    }

    /// One cleaner pass over this shard's compacted partitions (the cleaner
    /// task runs it on a low-priority queue every `log.cleaner.backoff.ms`).
    pub async fn clean_logs(&self) {
        let logs: Vec<Rc<PartitionLog>> = self.partitions.borrow().values().filter(|p| p.log.config().compact).map(|p| p.log.clone()).collect();
        for l in logs {
            if self.stopping.get() {
                return;
            }
            match l.clean(self.cfg.log_cleaner_dedupe_buffer_size, self.cfg.socket_request_max_bytes, self.cfg.clock.now_ms()).await {
                Ok(Some(s)) => {
                    crate::metrics::with(|m| m.cleaned(s.bytes_read, s.bytes_written));
                    let secs = s.elapsed.as_secs_f64().max(1e-6);
                    tracing::info!(
                        topic = %l.topic, partition = l.partition, segments = s.segments_cleaned, read_bytes = s.bytes_read, written_bytes = s.bytes_written,
                        records_removed = s.records_removed, tombstones_removed = s.tombstones_removed,
                        mb_per_sec = format!("{:.1}", s.bytes_read as f64 / 1e6 / secs), "log cleaned"
                    );
                }
                Ok(None) => {}
                Err(e) => crate::error_limited!(topic = %l.topic, partition = l.partition, "log cleaning failed: {e}"),
            }
        }
    }

    /// Flushes partitions whose `flush.ms` is due (called from the shard's flusher task).
    pub async fn flush_due(&self) {
        let logs: Vec<Rc<PartitionLog>> = self.partitions.borrow().values().map(|p| p.log.clone()).collect();
        for l in logs {
            if l.flush_due_by_time() {
                if let Err(e) = l.flush().await {
                    crate::error_limited!(topic = %l.topic, partition = l.partition, "flush failed: {e}");
                }
            }
        }
    }

    /// Writes the high watermark of every partition whose one moved since the
    /// last checkpoint (cluster replicas; see `PartitionLog::checkpoint_high_watermark`).
    pub fn checkpoint_high_watermarks(&self) {
        let parts: Vec<Rc<super::partition::Partition>> = self.partitions.borrow().values().cloned().collect();
        for p in parts {
            if let Err(e) = p.checkpoint_high_watermark() {
                crate::error_limited!(topic = %p.log.topic, partition = p.log.partition, "writing the high watermark checkpoint failed: {e}");
            }
        }
    }

    /// Clean stop: every owned log finishes its writes, writes its indexes and syncs.
    /// One failing partition (say, its directory vanished) does not stop the others
    /// from closing; the first error is returned.
    pub async fn close_logs(&self) -> Result<()> {
        if self.cfg.is_cluster() {
            self.checkpoint_high_watermarks();
        }
        let logs: Vec<Rc<PartitionLog>> = self.partitions.borrow().values().map(|p| p.log.clone()).collect();
        let mut first = Ok(());
        for l in logs {
            if let Err(e) = l.close().await {
                tracing::error!(topic = %l.topic, partition = l.partition, "closing the log failed: {e}");
                if first.is_ok() {
                    first = Err(e.into());
                }
            }
        }
        first
    }
}
