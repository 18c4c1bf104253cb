//! How group state is kept in `__consumer_offsets`: one record per committed
//! offset (key: group, topic, partition) and one per group (key: group), JSON
//! encoded, latest value wins and a null value is a tombstone — the shape a
//! compacted topic needs. On start the coordinator replays its partitions.
//! Consumer-protocol groups (KIP-848) add a record per group and per member
//! (see `consumer_group::records`).
//!
//! TxnOffsetCommit writes offset records in transactional batches (producer id
//! and epoch set); replay keeps them pending per producer until that
//! producer's commit marker (control batch) in the same partition, and drops
//! them at an abort marker — the same rule live commits follow. The
//! transaction coordinator reuses [`append_raw`] and [`read_raw`] for
//! `__transaction_state`.

use std::os::unix::fs::FileExt;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use crate::protocol::compression::decode_batch;

/// Most bytes a stored coordinator batch may inflate to when replayed.
const MAX_INFLATED_BYTES: usize = 256 << 20;
use serde::{Deserialize, Serialize};

use super::group::state::{CommittedOffset, Member};
use crate::error::{Error, Result};
use crate::log::producer_state::Origin;
use crate::log::PartitionLog;
use crate::protocol::control::decode_marker;
use crate::protocol::record_batch::{validate_batches, BatchHeader, BATCH_HEADER_LEN};

/// The key of a record in `__consumer_offsets`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum StoreKey {
    /// A committed offset of one partition for a group.
    Offset {
        /// Group id (`group.id`); it picks the `__consumer_offsets` partition the record is in.
        group: String,
        /// Topic of the committed partition.
        topic: String,
        /// Partition index within that topic.
        partition: i32,
    },
    /// A classic group's metadata ([`GroupSnapshot`]).
    Group {
        /// Group id (`group.id`); it picks the `__consumer_offsets` partition the record is in.
        group: String,
    },
    /// A consumer-protocol group (KIP-848): see `consumer_group::records`.
    ConsumerGroup {
        /// Group id (`group.id`); it picks the `__consumer_offsets` partition the record is in.
        group: String,
    },
    /// One member of a consumer-protocol group.
    ConsumerGroupMember {
        /// Group id (`group.id`); it picks the `__consumer_offsets` partition the record is in.
        group: String,
        /// The member id.
        member: String,
    },
}

/// The group part that survives restarts (members come back as they were).
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupSnapshot {
    /// Protocol type the members joined with, e.g. `consumer`.
    pub protocol_type: Option<String>,
    /// Protocol (assignor) of the generation, e.g. `range`.
    pub protocol_name: Option<String>,
    /// Generation id at the time of the snapshot.
    pub generation: i32,
    /// Member id of the generation's leader.
    pub leader: Option<String>,
    /// The members, with their subscriptions and assignments.
    pub members: Vec<Member>,
}

/// A decoded record: key and value (None = tombstone).
// Records are decoded one at a time while replaying; boxing the largest would
// allocate once per member record for nothing.
#[allow(clippy::large_enum_variant)]
pub enum StoreRecord {
    /// A committed offset, or its tombstone.
    Offset {
        /// Group id (`group.id`); it picks the `__consumer_offsets` partition the record is in.
        group: String,
        /// Topic of the committed partition.
        topic: String,
        /// Partition index within that topic.
        partition: i32,
        /// The commit; None deletes it.
        value: Option<CommittedOffset>,
    },
    /// A classic group's metadata, or its tombstone.
    Group {
        /// Group id (`group.id`); it picks the `__consumer_offsets` partition the record is in.
        group: String,
        /// The group's snapshot; None deletes the group.
        value: Option<GroupSnapshot>,
    },
    /// A consumer-protocol group's metadata (epochs, subscriptions), or its tombstone.
    ConsumerGroup {
        /// Group id (`group.id`); it picks the `__consumer_offsets` partition the record is in.
        group: String,
        /// The group's record; None deletes the group.
        value: Option<super::consumer_group::records::GroupValue>,
    },
    /// One member of a consumer-protocol group, or its tombstone.
    ConsumerGroupMember {
        /// Group id (`group.id`); it picks the `__consumer_offsets` partition the record is in.
        group: String,
        /// The member id.
        member: String,
        /// The member's state; None removes the member.
        value: Option<super::consumer_group::member::ConsumerGroupMember>,
    },
}

/// What replay finds in `__consumer_offsets`, in log order.
// Replayed one at a time (see `StoreRecord`).
#[allow(clippy::large_enum_variant)]
pub enum Replayed {
    /// A record; `producer_id` is set when it was written inside a transaction
    /// (TxnOffsetCommit), so it only counts once that producer's commit marker follows.
    Record(StoreRecord, Option<i64>),
    /// A transaction marker: the producer's pending offsets become visible (commit) or are dropped.
    Marker {
        /// The producer whose transaction ended.
        producer_id: i64,
        /// True for a commit marker, false for an abort.
        commit: bool,
    },
}

/// One raw record of a coordinator partition: key bytes and value (None = tombstone).
pub type RawRecord = (Vec<u8>, Option<Vec<u8>>);

/// How long a coordinator write waits for the in-sync replicas (Kafka's
/// `offsets.commit.timeout.ms` default).
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Encodes records as one batch and appends it; returns once it is in the log and
/// on the in-sync replicas, with the offset of the first record (the rest follow in order).
pub async fn append(log: &Rc<PartitionLog>, records: Vec<(StoreKey, Option<Vec<u8>>)>) -> Result<i64> {
    let raw = records.into_iter().map(|(k, v)| (serde_json::to_vec(&k).unwrap_or_default(), v)).collect();
    append_raw(log, raw, None).await
}

/// Encodes raw records as one batch and appends it. With `txn` = (producer id,
/// epoch) the batch is transactional (TxnOffsetCommit): its records stay
/// pending until the coordinator writes that producer's marker here.
pub async fn append_raw(log: &Rc<PartitionLog>, records: Vec<RawRecord>, txn: Option<(i64, i16)>) -> Result<i64> {
    if records.is_empty() {
        return Ok(log.log_end_offset());
    }
    let now = log.now_ms();
    let (producer_id, producer_epoch) = txn.unwrap_or((-1, -1));
    let recs: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: txn.is_some(),
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Coordinator writes carry no sequence (Kafka's NO_SEQUENCE): the
            // partition checks only their producer epoch.
            sequence: if txn.is_some() { -1 } else { i as i32 },
            timestamp: now,
            key: Some(Bytes::from(k)),
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
    let count = recs.len() as i64;
    let info = if txn.is_some() { log.append_with(batches, Origin::Coordinator).await? } else { log.append(batches).await? };
    // Kafka's coordinators write with acks=-1: answered once the in-sync replicas have it.
    log.wait_high_watermark(info.base_offset + count, WRITE_TIMEOUT).await?;
    Ok(info.base_offset)
}

/// One thing found in a coordinator partition by [`read_raw`].
pub enum RawEvent {
    /// (key, value, producer id when transactional)
    Record(Record, Option<i64>),
    /// A transaction marker (control batch) of a producer.
    Marker {
        /// The producer whose transaction ended.
        producer_id: i64,
        /// True for a commit marker, false for an abort.
        commit: bool,
    },
}

/// Reads every record and transaction marker of a coordinator partition, in offset order.
/// Blocking reads: it runs while the partition opens (see [`PartitionLog::read_blocking`]).
pub fn read_raw(log: &PartitionLog) -> Result<Vec<RawEvent>> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    // The coordinator replays everything it wrote: up to the log end.
    let end = log.log_end_offset();
    while offset < end {
        let slice = log.read_blocking(offset, 1 << 20, end)?;
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
            let batch = Bytes::copy_from_slice(&raw[at..at + total]);
            if h.is_control() {
                if let Some((commit, _coordinator_epoch)) = decode_marker(&batch) {
                    out.push(RawEvent::Marker { producer_id: h.producer_id, commit });
                }
            } else {
                let txn = h.is_transactional().then_some(h.producer_id);
                // Walked and bounded first (decode_batch), like every stored batch the broker decodes.
                let set = decode_batch(&batch, MAX_INFLATED_BYTES).map_err(|_| Error::CorruptMessage("coordinator batch does not decode"))?;
                for r in set.records {
                    if r.offset >= offset {
                        out.push(RawEvent::Record(r, txn));
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

/// Reads the group records and markers of a `__consumer_offsets` partition, in offset order.
pub fn replay(log: &PartitionLog) -> Result<Vec<Replayed>> {
    Ok(read_raw(log)?
        .into_iter()
        .filter_map(|e| match e {
            RawEvent::Record(r, txn) => decode(&r).map(|rec| Replayed::Record(rec, txn)),
            RawEvent::Marker { producer_id, commit } => Some(Replayed::Marker { producer_id, commit }),
        })
        .collect())
}

fn decode(r: &Record) -> Option<StoreRecord> {
    let key: StoreKey = serde_json::from_slice(r.key.as_ref()?).ok()?;
    Some(match key {
        StoreKey::Offset { group, topic, partition } => StoreRecord::Offset {
            group,
            topic,
            partition,
            value: r.value.as_ref().and_then(|v| serde_json::from_slice::<CommittedOffset>(v).ok()).map(|mut c| {
                c.record_offset = r.offset;
                c
            }),
        },
        StoreKey::Group { group } => StoreRecord::Group { group, value: r.value.as_ref().and_then(|v| serde_json::from_slice(v).ok()) },
        // A value that does not decode is skipped whole (not read as a tombstone).
        StoreKey::ConsumerGroup { group } => StoreRecord::ConsumerGroup {
            group,
            value: match &r.value {
                Some(v) => Some(serde_json::from_slice(v).ok()?),
                None => None,
            },
        },
        StoreKey::ConsumerGroupMember { group, member } => StoreRecord::ConsumerGroupMember {
            group,
            member,
            value: match &r.value {
                Some(v) => Some(serde_json::from_slice(v).ok()?),
                None => None,
            },
        },
    })
}
