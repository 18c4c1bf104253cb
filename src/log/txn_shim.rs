//! TEMPORARY (branch txn-coord): stand-ins for `PartitionLog::append_marker`
//! and `PartitionLog::append_with`, which the partition-side work on main
//! adds with producer-state checks. Delete this file when merging main.

use std::rc::Rc;

use super::producer_state::Origin;
use super::{AppendInfo, PartitionLog};
use crate::error::Result;
use crate::protocol::control::encode_marker;
use crate::protocol::now_ms;
use crate::protocol::record_batch::{validate_batches, ValidatedBatch};

impl PartitionLog {
    /// Appends a transaction marker; returns its offset.
    pub async fn append_marker(self: &Rc<Self>, producer_id: i64, producer_epoch: i16, commit: bool, coordinator_epoch: i32) -> Result<i64> {
        let bytes = encode_marker(producer_id, producer_epoch, commit, coordinator_epoch, now_ms());
        let batches = validate_batches(&bytes, usize::MAX)?;
        self.append(batches).await.map(|i| i.base_offset)
    }

    /// Appends batches from `origin` (no producer checks in this stand-in).
    pub async fn append_with(self: &Rc<Self>, batches: Vec<ValidatedBatch>, _origin: Origin) -> Result<AppendInfo> {
        self.append(batches).await
    }
}
