//! Transaction markers: the control batches a coordinator writes into every
//! partition of a transaction when it commits or aborts (Kafka's
//! `EndTransactionMarker`). One control record per batch: key = version i16
//! (0) + type i16 (0 abort, 1 commit); value = version i16 (0) + coordinator
//! epoch i32. Clients never see them as messages; read_committed consumers use
//! them to end a producer's transaction.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use crate::protocol::compression::decode_batch;

/// Builds the marker batch (offset 0; the log assigns the real one).
pub fn encode_marker(producer_id: i64, producer_epoch: i16, commit: bool, coordinator_epoch: i32, timestamp: i64) -> Bytes {
    let mut key = BytesMut::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&(commit as i16).to_be_bytes());
    let mut value = BytesMut::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let rec = Record {
        transactional: true,
        control: true,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut buf = BytesMut::with_capacity(96);
    // Encoding one small uncompressed record into a growable buffer cannot fail.
    let _ = RecordBatchEncoder::encode(&mut buf, std::iter::once(&rec), &RecordEncodeOptions { version: 2, compression: Compression::None });
    buf.freeze()
}

/// Reads a stored control batch: Some((commit, coordinator epoch)) for a
/// transaction marker, None for anything else.
pub fn decode_marker(batch: &Bytes) -> Option<(bool, i32)> {
    let set = decode_batch(batch, 1 << 16).ok()?;
    let r = set.records.first()?;
    let key = r.key.as_ref()?;
    if key.len() < 4 {
        return None;
    }
    let kind = i16::from_be_bytes([key[2], key[3]]);
    let epoch = r.value.as_ref().filter(|v| v.len() >= 6).map(|v| i32::from_be_bytes([v[2], v[3], v[4], v[5]])).unwrap_or(-1);
    match kind {
        0 => Some((false, epoch)),
        1 => Some((true, epoch)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::record_batch::{validate_batches, BatchHeader};

    #[test]
    fn markers_are_valid_control_batches_that_read_back() {
        for commit in [true, false] {
            let b = encode_marker(42, 3, commit, 7, 1000);
            let v = validate_batches(&b, usize::MAX).unwrap();
            let h: BatchHeader = v[0].header;
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch, h.records_count), (42, 3, 1));
            assert_eq!(decode_marker(&b), Some((commit, 7)));
        }
    }
}
