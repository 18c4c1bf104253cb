//! Client connections: one SO_REUSEPORT listener per shard (the kernel spreads
//! connections over shards), framing, and in-order responses.

pub mod connection;
pub mod frame;
pub mod listener;
