//! The cluster tests, one test target (`cargo test --test cluster`), each
//! module a part; one cluster runs at a time (the harness serialises them).
//!
//! - [`quorum`]: three combined nodes: formation, leaders, routing, group
//!   coordinators, controller failover, fencing, restarts;
//! - [`roles`]: controller-only voters beside broker-only nodes;
//! - [`replication`]: partition replication under faults (kill -9, SIGSTOP,
//!   two followers down, double failover, a follower's disk full) with an
//!   idempotent acks=all load,
//!   checked for lost acknowledged writes and byte-identical replicas;
//! - [`operations`]: operating a cluster under load: rolling restarts with
//!   controlled shutdown, preferred elections (API, CLI, automatic),
//!   scale-out and scale-in by reassignment (throttled, cancelled, verified);
//! - [`coordinators`]: group and transaction coordinators killed with
//!   `__consumer_offsets` and `__transaction_state` replicated;
//! - [`checker`]: the load driver and the checker (with unit tests of its
//!   logic on hand-made inputs); [`faults`]: fault helpers (partition state
//!   and ISR waits, seeds, a cuttable TCP proxy).
//!
//! Run one part with e.g. `cargo test --test cluster replication:: -- --nocapture`;
//! only the checker's and the proxy's unit tests: `cargo test --test cluster tests::`.

#[path = "../common/cluster.rs"]
mod cluster_harness;
#[path = "../common/mod.rs"]
mod common;
#[path = "../txn_common/mod.rs"]
mod txn_common;

mod checker;
mod coordinators;
mod faults;
mod observability;
mod operations;
mod quorum;
mod replication;
mod roles;
