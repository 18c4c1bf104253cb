//! How transaction state is kept in `__transaction_state`: one record per
//! transactional id (key: the id, JSON; value: its [`TxnMetadata`], JSON),
//! latest value wins and a null value (tombstone) forgets an expired id — the
//! shape a compacted topic needs. The id's partition is
//! `abs(javaHashCode(id)) % transaction.state.log.num.partitions`, as in Kafka.
//! A coordinator replays its partitions when its shard opens them; ids found
//! in PrepareCommit/PrepareAbort are finished by the coordinator's ticker.

use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use super::store::{self, RawEvent, RawRecord};
use super::txn::TxnMetadata;
use crate::error::Result;
use crate::log::PartitionLog;

/// The internal topic holding transaction state.
pub use crate::protocol::topic::TXN_STATE_TOPIC;

/// The record key: the transactional id (a struct so the format can grow).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct TxnKey {
    transactional_id: String,
}

/// The record for an id's current state.
pub fn record(meta: &TxnMetadata) -> RawRecord {
    (key(&meta.transactional_id), serde_json::to_vec(meta).ok())
}

/// The tombstone that forgets an expired id.
pub fn tombstone(transactional_id: &str) -> RawRecord {
    (key(transactional_id), None)
}

fn key(id: &str) -> Vec<u8> {
    serde_json::to_vec(&TxnKey { transactional_id: id.to_string() }).unwrap_or_default()
}

/// Appends records as one batch; returns once they are in the log.
pub async fn append(log: &Rc<PartitionLog>, records: Vec<RawRecord>) -> Result<()> {
    store::append_raw(log, records, None).await.map(|_| ())
}

/// The state of every id in the partition (latest record wins, tombstones remove).
pub fn replay(log: &PartitionLog) -> Result<HashMap<String, TxnMetadata>> {
    let mut out = HashMap::new();
    for e in store::read_raw(log)? {
        if let RawEvent::Record(r, _) = e {
            apply(&mut out, r.key.as_deref(), r.value.as_deref());
        }
    }
    Ok(out)
}

/// Folds one stored record into the state; undecodable records are skipped
/// (logged) rather than failing the whole partition.
pub fn apply(state: &mut HashMap<String, TxnMetadata>, key: Option<&[u8]>, value: Option<&[u8]>) {
    let Some(k) = key.and_then(|k| serde_json::from_slice::<TxnKey>(k).ok()) else {
        crate::warn_limited!("skipping a __transaction_state record with an unreadable key");
        return;
    };
    match value {
        None => {
            state.remove(&k.transactional_id);
        }
        Some(v) => match serde_json::from_slice::<TxnMetadata>(v) {
            Ok(m) if m.transactional_id == k.transactional_id => {
                state.insert(k.transactional_id, m);
            }
            _ => crate::warn_limited!(transactional_id = %k.transactional_id, "skipping an unreadable __transaction_state record"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::txn::TxnState;

    #[test]
    fn replay_latest_wins_and_tombstones_forget() {
        let mut m = TxnMetadata::new("t1".into(), 7, 60_000, 1000);
        let mut state = HashMap::new();
        let (k, v) = record(&m);
        apply(&mut state, Some(&k), v.as_deref());
        m.state = TxnState::PrepareCommit;
        m.partitions.insert(("orders".into(), 3));
        let (k, v) = record(&m);
        apply(&mut state, Some(&k), v.as_deref());
        let got = &state["t1"];
        assert_eq!(got.state, TxnState::PrepareCommit);
        assert!(got.partitions.contains(&("orders".to_string(), 3)));
        assert_eq!(got.producer_id, 7);
        // Garbage is skipped, not fatal.
        apply(&mut state, Some(b"not json"), Some(b"x"));
        apply(&mut state, Some(&k), Some(b"{broken"));
        assert_eq!(state["t1"].state, TxnState::PrepareCommit);
        let (k, v) = tombstone("t1");
        apply(&mut state, Some(&k), v.as_deref());
        assert!(state.is_empty());
    }
}
