//! Producer id blocks, the controller's side. The counter of handed-out ids is
//! part of the metadata image (a `ProducerIds` record moves it); the controller
//! hands out blocks of [`PRODUCER_ID_BLOCK_SIZE`] ids, and each shard serves
//! InitProducerId from its block (`coordinator::producer_ids`), so the
//! controller is asked once per thousand producers, not once per producer
//! (Kafka's `ProducerIdManager` does the same with blocks from the controller quorum).

/// Ids per block: large enough that a busy shard rarely asks the controller,
/// small enough that the ids a crash skips (the rest of every block) do not
/// matter in the 2^63 id space.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// The block to hand out from counter `next` and the counter after it, or None
/// when the id space is exhausted.
pub fn next_block(next: i64) -> Option<(i64, i64)> {
    let start = next.max(0);
    let end = start.checked_add(PRODUCER_ID_BLOCK_SIZE)?;
    Some((start, end))
}
