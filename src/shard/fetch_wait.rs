//! Fetch long-polls: a Fetch with nothing to return yet waits here, on the owner
//! shard, until one of its partitions' high watermark (or last stable offset, for
//! read_committed) passes what the fetch saw, the wait times out, or the broker stops.

use std::rc::Rc;
use std::time::Duration;

use futures::FutureExt;

use super::partition::Partition;
use super::request::TopicPartition;
use super::Shard;

impl Shard {
    /// `replica`: a follower's fetch, which waits for the log end instead (it
    /// replicates what is not committed yet).
    pub(super) async fn wait_for_append(&self, partitions: Vec<(TopicPartition, i64)>, max_wait_ms: u64, read_committed: bool, replica: bool) {
        let parts: Vec<(Rc<Partition>, i64)> = partitions.iter().filter_map(|(tp, off)| Some((self.partition(tp).ok()?, *off))).collect();
        let deadline = glommio::timer::sleep(Duration::from_millis(max_wait_ms)).fuse();
        futures::pin_mut!(deadline);
        loop {
            let end = |p: &Partition| match (replica, read_committed) {
                (true, _) => p.log.log_end_offset(),
                (false, true) => p.last_stable_offset(),
                (false, false) => p.high_watermark(),
            };
            if parts.iter().any(|(p, off)| end(p) > *off) || self.stopping.get() {
                return;
            }
            let waits = futures::future::select_all(
                parts
                    .iter()
                    .map(|(p, _)| if replica { p.log_end_moved.wait() } else { p.hw_moved.wait() })
                    .chain(parts.iter().map(|(p, _)| p.changed.wait()))
                    .chain(std::iter::once(self.stop_signal.wait())),
            );
            futures::select! {
                _ = waits.fuse() => {}
                _ = deadline => return,
            }
        }
    }
}
