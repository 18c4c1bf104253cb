//! How group state is kept in `__consumer_offsets`: one record per committed
//! offset (key: group, topic, partition) and one per group (key: group), JSON
//! encoded, latest value wins and a null value is a tombstone — the shape a
//! compacted topic needs. On start the coordinator replays its partitions.

use std::os::unix::fs::FileExt;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use serde::{Deserialize, Serialize};

use super::group::{CommittedOffset, Member};
use crate::error::{Error, Result};
use crate::log::PartitionLog;
use crate::protocol::record_batch::{validate_batches, BatchHeader, BATCH_HEADER_LEN};

/// The key of a record in `__consumer_offsets`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum StoreKey {
    Offset { group: String, topic: String, partition: i32 },
    Group { group: String },
}

/// The group part that survives restarts (members come back as they were).
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupSnapshot {
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: Vec<Member>,
}

/// A decoded record: key and value (None = tombstone).
pub enum StoreRecord {
    Offset { group: String, topic: String, partition: i32, value: Option<CommittedOffset> },
    Group { group: String, value: Option<GroupSnapshot> },
}

/// Encodes records as one batch and appends it; returns once it is in the log.
pub async fn append(log: &Rc<PartitionLog>, records: Vec<(StoreKey, Option<Vec<u8>>)>) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let now = super::now_ms();
    let recs: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: now,
            key: Some(Bytes::from(serde_json::to_vec(&k).unwrap_or_default())),
            value: v.map(Bytes::from),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, recs.iter(), &RecordEncodeOptions { version: 2, compression: Compression::None })
        .map_err(|_| Error::CorruptMessage("encoding a coordinator record batch failed"))?;
    let bytes = buf.freeze();
    let batches = validate_batches(&bytes, usize::MAX)?;
    log.append(batches).await.map(|_| ())
}

/// Reads every record of the partition, in offset order.
pub fn replay(log: &PartitionLog) -> Result<Vec<StoreRecord>> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.high_watermark();
    while offset < end {
        let slice = log.read(offset, 1 << 20, false)?;
        let Some((file, pos, len)) = slice.data else { break };
        let mut raw = vec![0u8; len as usize];
        file.read_exact_at(&mut raw, pos)?;
        let mut at = 0usize;
        let mut progressed = false;
        while at + BATCH_HEADER_LEN <= raw.len() {
            let h = BatchHeader::parse(&raw[at..]).map_err(Error::from)?;
            let total = h.total_len();
            if at + total > raw.len() {
                break;
            }
            let mut batch = Bytes::copy_from_slice(&raw[at..at + total]);
            if !h.is_control() {
                let set = RecordBatchDecoder::decode(&mut batch).map_err(|_| Error::CorruptMessage("coordinator batch does not decode"))?;
                for r in set.records {
                    if r.offset < offset {
                        continue;
                    }
                    if let Some(rec) = decode(&r) {
                        out.push(rec);
                    }
                }
            }
            offset = h.last_offset() + 1;
            at += total;
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    Ok(out)
}

fn decode(r: &Record) -> Option<StoreRecord> {
    let key: StoreKey = serde_json::from_slice(r.key.as_ref()?).ok()?;
    Some(match key {
        StoreKey::Offset { group, topic, partition } => StoreRecord::Offset {
            group,
            topic,
            partition,
            value: r.value.as_ref().and_then(|v| serde_json::from_slice(v).ok()),
        },
        StoreKey::Group { group } => StoreRecord::Group { group, value: r.value.as_ref().and_then(|v| serde_json::from_slice(v).ok()) },
    })
}
