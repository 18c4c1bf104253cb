//! Transaction markers on the partition owner: the coordinator's commit or abort
//! written into each partition of a transaction as a control batch.

use super::request::TxnMarker;
use super::Shard;
use crate::error::Result;

impl Shard {
    /// Appends transaction markers to owned partitions and tells the coordinators
    /// (a marker in a `__consumer_offsets` partition ends that producer's pending offsets).
    pub(super) async fn write_txn_markers(&self, markers: Vec<TxnMarker>) -> Vec<Result<()>> {
        let futs = markers.into_iter().map(|m| {
            let log = self.log(&m.tp);
            async move {
                log?.append_marker(m.producer_id, m.producer_epoch, m.commit, m.coordinator_epoch).await?;
                if let Some(events) = self.events() {
                    events.marker_written(&m);
                }
                Ok(())
            }
        });
        futures::future::join_all(futs).await
    }
}
