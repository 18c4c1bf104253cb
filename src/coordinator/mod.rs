//! The coordinators: consumer groups ([`group`]: Kafka's classic protocol, and
//! [`consumer_group`]: KIP-848's consumer protocol beside it) and transactions
//! ([`txn`]), each living on the shard that owns its `__consumer_offsets` or
//! `__transaction_state` partition, with their state stored in that partition
//! ([`store`], [`txn_store`]) and replayed when the shard opens it.
//! [`coordinators`] holds one core's coordinators and the interfaces they
//! use to reach the shard below them and the other cores.

pub mod consumer_group;
pub mod coordinators;
pub mod group;
pub mod producer_ids;
pub mod store;
pub mod txn;
pub mod txn_store;

pub use coordinators::{Coordinators, Outbound};
pub use group::*;
