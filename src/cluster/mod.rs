//! The cluster: several shardlog processes as one Kafka cluster, KRaft's way.
//! An embedded Raft quorum holds the metadata log ([`quorum`]); its leader is
//! the active controller, the only writer of metadata records; every node
//! applies the committed records to its image and publishes it to its shards
//! ([`node`]); brokers register and heartbeat ([`broker`]) and the controller
//! fences those that stop ([`controller`]); all of it travels on the controller
//! listener ([`transport`], [`rpc`]). A broker-only node (`process.roles=broker`)
//! runs no Raft member: it fetches the committed log from the active controller
//! ([`observer`]); a controller-only node serves no clients. Calls between brokers that Kafka makes
//! with its own protocol (WriteTxnMarkers) go to the other brokers' client
//! listeners ([`inter_broker`]). Start-up rebuilds the image from the
//! quorum's log ([`boot`]). Partition data is replicated Kafka's way:
//! followers fetch from leaders ([`replica_fetcher`]), leaders propose ISR
//! changes to the controller ([`isr`]), and the controller elects leaders from
//! the ISR (`metadata::partition_change`).
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
//! Layer: beside `admin`; below it are `xshard`, `shard` (whose controller it
//! commits for, through `shard::links::MetadataQuorum`) and the ground floor.

pub mod boot;
pub mod broker;
pub mod controller;
pub mod inter_broker;
pub mod isr;
pub mod node;
pub mod observer;
pub mod quorum;
pub mod replica_fetcher;
pub mod rpc;
pub mod shutdown;
pub mod transport;

use std::io;
use std::rc::Rc;

use crate::shard::Shard;
use node::{ClusterNode, NodeStart, TICK};
use quorum::{Quorum, QuorumConfig};

/// Raft ids are non-zero; Kafka node ids start at 0: Raft id = node id + 1.
pub fn raft_id(node_id: i32) -> u64 {
    node_id as u64 + 1
}

/// The node id of Raft id `id`.
pub fn node_id(raft_id: u64) -> i32 {
    raft_id as i32 - 1
}

/// Starts this node's part of the cluster on the controller shard (after the
/// shards are connected). A controller binds the controller listener and starts
/// its quorum member; a broker-only node (no Raft log in `boot`) starts
/// fetching the controller's committed log ([`observer`]).
pub fn start(shard: Rc<Shard>, boot: boot::ClusterBoot) -> io::Result<Rc<ClusterNode>> {
    let cfg = shard.cfg.clone();
    let Some(raft) = boot.raft else { return Ok(ClusterNode::start(shard, boot.cluster_id, boot.applied, None)) };
    let addr = cfg.controller_listener.ok_or_else(|| io::Error::other("a controller needs a CONTROLLER listener in `listeners`"))?;
    let listener = glommio::net::TcpListener::bind(addr).map_err(|e| io::Error::other(format!("binding the controller listener {addr}: {e}")))?;
    let voters = cfg.controller_quorum_voters.iter().map(|v| raft_id(v.id)).collect();
    let mut qc = QuorumConfig::new(raft_id(cfg.broker_id), voters);
    let tick_ms = TICK.as_millis() as u64;
    qc.election_tick = (cfg.controller_quorum_election_timeout_ms / tick_ms).max(4) as usize;
    qc.heartbeat_tick = (qc.election_tick / 5).max(1);
    let quorum = Quorum::new(&qc, raft.log, boot.applied).map_err(io::Error::other)?;
    Ok(ClusterNode::start(shard, boot.cluster_id, boot.applied, Some(NodeStart { wal: raft.wal, quorum, listener })))
}
