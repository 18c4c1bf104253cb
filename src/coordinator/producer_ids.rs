//! Producer id allocation. The controller (shard 0) owns the counter in the
//! metadata image and hands out blocks of [`PRODUCER_ID_BLOCK_SIZE`] ids; each
//! shard serves InitProducerId from its current block and asks for a new one
//! only when it runs out, so the controller is asked once per thousand
//! producers, not once per producer (Kafka's `ProducerIdManager` does the same
//! with blocks from the controller quorum).

use std::cell::Cell;

/// Ids per block: large enough that a busy shard rarely asks the controller,
/// small enough that the ids a crash skips (the rest of every block) do not
/// matter in the 2^63 id space.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// One shard's current block `[next, end)`.
#[derive(Debug, Default)]
pub struct ProducerIdBlock {
    next: Cell<i64>,
    end: Cell<i64>,
}

impl ProducerIdBlock {
    /// The next id of the block, or None when the block is used up.
    pub fn take(&self) -> Option<i64> {
        let n = self.next.get();
        if n < self.end.get() {
            self.next.set(n + 1);
            Some(n)
        } else {
            None
        }
    }

    /// Installs a fresh block from the controller. A block that arrives while
    /// the current one still has ids (two requests ran out at once) replaces
    /// it only if the current one is empty; the other is simply never used.
    pub fn install(&self, start: i64, count: i64) {
        if self.next.get() >= self.end.get() && count > 0 {
            self.next.set(start);
            self.end.set(start.saturating_add(count));
        }
    }
}

/// The controller's side: the block to hand out from counter `next` and the
/// counter after it, or None when the id space is exhausted.
pub fn next_block(next: i64) -> Option<(i64, i64)> {
    let start = next.max(0);
    let end = start.checked_add(PRODUCER_ID_BLOCK_SIZE)?;
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_hand_out_each_id_once() {
        let b = ProducerIdBlock::default();
        assert_eq!(b.take(), None);
        let (start, end) = next_block(0).unwrap();
        b.install(start, end - start);
        let ids: Vec<i64> = std::iter::from_fn(|| b.take()).collect();
        assert_eq!(ids.len() as i64, PRODUCER_ID_BLOCK_SIZE);
        assert_eq!(ids[0], 0);
        // The next block starts where the controller's counter moved to.
        let (s2, _) = next_block(end).unwrap();
        b.install(s2, PRODUCER_ID_BLOCK_SIZE);
        assert_eq!(b.take(), Some(PRODUCER_ID_BLOCK_SIZE));
        // A second block arriving while this one has ids is ignored.
        b.install(999_999, 10);
        assert_eq!(b.take(), Some(PRODUCER_ID_BLOCK_SIZE + 1));
        assert_eq!(next_block(i64::MAX - 5), None);
    }
}
