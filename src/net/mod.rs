//! Client connections: one SO_REUSEPORT listener per shard (the kernel spreads
//! connections over shards), framing, and in-order responses.

pub mod connection;
pub mod connection_quotas;
pub mod frame;
pub mod listener;
pub mod request_memory;
