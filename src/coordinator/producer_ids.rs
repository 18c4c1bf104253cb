//! Producer id allocation, a core's side: each core serves InitProducerId from
//! its current block and asks the controller for a new one
//! ([`crate::metadata::producer_ids`]) only when it runs out.

use std::cell::Cell;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::producer_ids::{next_block, PRODUCER_ID_BLOCK_SIZE};

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
