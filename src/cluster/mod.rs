//! The cluster: the Raft metadata quorum, and later broker registration and
//! replication (see the crate doc).
//!
//! Why raft-rs (tikv's `raft` 0.7) for the quorum: it is sans-IO — a state
//! machine with `tick`, `step`, `propose` and a ready/advance protocol, with no
//! tasks, timers or runtime of its own — so it runs on a glommio executor with no
//! runtime adapter; that also gives a deterministic simulation for free (the
//! tests drive several members through a simulated clock and network in one
//! thread, [`quorum`]'s `sim`); and it runs in production in TiKV. The runner-up,
//! openraft, was at 0.10 alpha (an unstable API) and owns its tasks through an
//! `AsyncRuntime` trait that glommio would need an adapter for.
//! (`../shared/design/cluster.md` §2 has the comparison.)
//!
//! Layer: beside `admin`; uses only the ground floor (`io`, `config`, `error`,
//! `clock`) and `metadata`.

pub mod quorum;
