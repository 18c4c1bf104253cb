//! Work that several Kafka APIs share and that is no single API: creating
//! topics through the controller ([`topics`]) and finding the core that
//! coordinates a group or transactional id ([`coordinator_lookup`]), and the
//! brokers clients are told about ([`brokers`]). It sits
//! between `handlers/` (one file per API) and `xshard/`, which it calls.

pub mod brokers;
pub mod coordinator_lookup;
pub mod topics;
