//! The bytes of requests a shard holds in flight (`queued.max.request.bytes`, split between
//! shards): a frame's bytes are reserved before the reader allocates room for it (or, for frames
//! that came whole within one read, before it is started), and given back when its response is
//! ready. A shard at its share stops reading from every connection it serves, so a client
//! pipelining large requests meets TCP backpressure instead of growing the broker's memory.
//!
//! A frame larger than the whole share reserves the whole share: it waits until nothing else is
//! in flight and then runs alone, so no request size can wait forever. The semaphore is FIFO, so
//! a large frame is not starved by a stream of small ones.

use std::rc::Rc;

use glommio::sync::{Semaphore, StaticPermit};

/// One shard's budget of request bytes (shared by the connections it serves).
pub struct RequestMemory {
    /// None: unbounded (`queued.max.request.bytes=-1`).
    budget: Option<(Rc<Semaphore>, u64)>,
}

/// Bytes reserved for one request frame; given back when dropped.
pub struct Reservation {
    _permit: Option<StaticPermit>,
    /// Counted in `shardlog_request_bytes_in_flight` until dropped.
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        crate::metrics::with(|m| m.request_bytes_in_flight(-(self.bytes as i64)));
    }
}

impl RequestMemory {
    /// A shard's share of `broker_bytes` (None = unbounded) among `shards` shards.
    pub fn new(broker_bytes: Option<usize>, shards: usize) -> RequestMemory {
        let budget = broker_bytes.map(|b| {
            let share = (b / shards.max(1)).max(1) as u64;
            (Rc::new(Semaphore::new(share)), share)
        });
        RequestMemory { budget }
    }

    /// Waits until `bytes` (at most the whole share) are free, and reserves them.
    pub async fn reserve(&self, bytes: usize) -> Reservation {
        let permit = match &self.budget {
            None => None,
            // The semaphore is never closed, so acquiring only ever waits.
            Some((sem, share)) => sem.acquire_static_permit((bytes as u64).clamp(1, *share)).await.ok(),
        };
        crate::metrics::with(|m| m.request_bytes_in_flight(bytes as i64));
        Reservation { _permit: permit, bytes: bytes as u64 }
    }

    /// Bytes free now (tests and diagnostics); None when unbounded.
    pub fn available(&self) -> Option<u64> {
        self.budget.as_ref().map(|(s, _)| s.available())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::LocalExecutor;

    #[test]
    fn reservations_wait_for_room_and_oversized_ones_take_the_whole_share() {
        LocalExecutor::default().run(async {
            let mem = Rc::new(RequestMemory::new(Some(200), 2)); // share = 100
            let a = mem.reserve(60).await;
            assert_eq!(mem.available(), Some(40));
            // 50 does not fit beside 60: it waits until `a` is given back.
            let m = mem.clone();
            let waiter = glommio::spawn_local(async move { m.reserve(50).await });
            glommio::yield_if_needed().await;
            glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
            assert_eq!(mem.available(), Some(40), "the second reservation must still wait");
            drop(a);
            let b = waiter.await;
            assert_eq!(mem.available(), Some(50));
            drop(b);
            // Larger than the share: takes all of it, so it never waits forever.
            let big = mem.reserve(10_000).await;
            assert_eq!(mem.available(), Some(0));
            drop(big);
            assert_eq!(mem.available(), Some(100));
        });
    }

    #[test]
    fn unbounded_never_waits() {
        LocalExecutor::default().run(async {
            let mem = RequestMemory::new(None, 4);
            let _r = mem.reserve(usize::MAX).await;
            assert_eq!(mem.available(), None);
        });
    }
}
