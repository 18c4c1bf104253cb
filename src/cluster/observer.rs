//! The metadata log of a broker-only node (`process.roles=broker`), fetched
//! from the active controller as Kafka's brokers fetch `__cluster_metadata`.
//!
//! - The controller's side ([`ClusterNode::answer_fetch`]): the committed
//!   entries after the asked index that it has applied, at most
//!   [`MAX_ENTRIES`] / about [`MAX_BYTES`] per answer; or, when the asked index
//!   is older than the first entry its log still holds, its latest snapshot.
//!   With nothing new it waits up to [`LONG_POLL`] for its applier to apply
//!   more, then answers with no entries.
//! - The broker's side ([`ClusterNode::fetch_loop`]): asks from the last index
//!   it applied, and applies what comes with the same path as a controller's
//!   applier (`apply_one`: `apply_entry` / `image_from_snapshot`, then
//!   `Shard::install_image`), in order. Its applied offset is what its
//!   heartbeats report: the controller unfences it once it has caught up.
//!
//! Only entries the controller applied are served, and those are committed, so
//! every later leader holds them too: a broker never applies an entry a new
//! leader does not have. Raft's own entries (a new leader's empty entry) carry
//! no records and are not sent; the applied offset counts proposals, as on a
//! controller.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::node::{Apply, ClusterNode};
use super::rpc::{ControllerRequest, ControllerResponse};
use super::transport::{Inbound, RpcClient};

/// How long the controller holds a fetch that has nothing new.
pub const LONG_POLL: Duration = Duration::from_millis(500);
/// Entries per answer, at most.
pub const MAX_ENTRIES: usize = 1000;
/// Payload bytes per answer: no more entries are added once this is reached.
pub const MAX_BYTES: usize = 1 << 20;
/// How long the broker tries to reach a controller for one fetch.
const FETCH_WITHIN: Duration = Duration::from_secs(5);
/// The pause after a failed fetch.
const RETRY: Duration = Duration::from_millis(100);

impl ClusterNode {
    /// The active controller's answer to `FetchMetadata { from }` (see the module doc).
    pub(super) async fn answer_fetch(&self, from: u64) -> ControllerResponse {
        let deadline = Instant::now() + LONG_POLL;
        loop {
            let woken = self.applied_changed.wait();
            if let Some(answer) = self.committed_after(from) {
                return answer;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.is_stopping() {
                return ControllerResponse::MetadataEntries { entries: Vec::new() };
            }
            futures_lite::future::or(woken, glommio::timer::sleep(left)).await;
        }
    }

    /// What this controller has applied after `from`: its snapshot when the
    /// entries right after `from` are compacted, else the entries; None when
    /// there is nothing (or this node holds no Raft log).
    fn committed_after(&self, from: u64) -> Option<ControllerResponse> {
        let applied = self.applied();
        if from >= applied {
            return None;
        }
        self.with_log(|log| {
            let snap_index = log.snapshot_index();
            if from < snap_index && snap_index <= applied {
                return Some(ControllerResponse::MetadataSnapshot { index: snap_index, data: log.snapshot_ref().data.to_vec() });
            }
            let mut entries = Vec::new();
            let mut bytes = 0;
            for e in log.entries_ref() {
                if e.index <= from {
                    continue;
                }
                if e.index > applied || entries.len() >= MAX_ENTRIES || bytes >= MAX_BYTES {
                    break;
                }
                if e.get_entry_type() != raft::prelude::EntryType::EntryNormal || e.data.is_empty() {
                    continue;
                }
                bytes += e.data.len();
                entries.push((e.index, e.data.to_vec()));
            }
            (!entries.is_empty()).then_some(ControllerResponse::MetadataEntries { entries })
        })
        .flatten()
    }

    /// A broker-only node's fetcher: fetches and applies the controller's
    /// committed metadata log until the node stops.
    pub(super) async fn fetch_loop(self: Rc<Self>) {
        // Its own connections: a long poll must not hold the one heartbeats use.
        let rpc = RpcClient::new(self.cluster_id().to_string(), self.node_id);
        let mut logged_first = false;
        while !self.is_stopping() {
            let from = self.applied();
            match self.call_controller_on(&rpc, &ControllerRequest::FetchMetadata { from }, FETCH_WITHIN).await {
                Ok(ControllerResponse::MetadataEntries { entries }) => {
                    for (index, payload) in entries {
                        if index > self.applied() {
                            self.apply_one(Apply::Entry { index, proposal_id: None, payload }).await;
                        }
                    }
                }
                Ok(ControllerResponse::MetadataSnapshot { index, data }) => {
                    if index > self.applied() {
                        tracing::info!(index, "metadata snapshot fetched from the controller");
                        self.apply_one(Apply::Snapshot { index, data }).await;
                    }
                }
                Ok(ControllerResponse::Error(e)) => {
                    crate::warn_limited!("fetching metadata refused: {}", crate::error::Error::from(e));
                    glommio::timer::sleep(RETRY).await;
                }
                Ok(_) | Err(_) => glommio::timer::sleep(RETRY).await,
            }
            if !logged_first && self.applied() > 0 {
                logged_first = true;
                tracing::info!(applied = self.applied(), "metadata fetched from the controller");
            }
        }
    }
}
