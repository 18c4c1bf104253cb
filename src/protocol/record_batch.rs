//! Kafka RecordBatch (magic v2) handling that keeps batches as raw bytes.
//!
//! The broker stores and serves record batches exactly as the producer sent
//! them; it never decodes individual records. This module provides the
//! small amount of header work the broker needs on the produce path:
//!
//! * [`validate_batches`] splits a Produce payload into zero-copy batch
//!   slices and checks framing, magic, size limits, record counts and CRC;
//! * [`rewrite_header`] builds the header to store in front of the
//!   unchanged record bytes once the broker has assigned offsets (and
//!   optionally a log-append timestamp).
//!
//! Layout of the 61-byte v2 header (all big-endian):
//!
//! | offset | field                  | type |
//! |-------:|------------------------|------|
//! | 0      | baseOffset             | i64  |
//! | 8      | batchLength            | i32  |
//! | 12     | partitionLeaderEpoch   | i32  |
//! | 16     | magic                  | i8   |
//! | 17     | crc (CRC32C)           | u32  |
//! | 21     | attributes             | i16  |
//! | 23     | lastOffsetDelta        | i32  |
//! | 27     | baseTimestamp          | i64  |
//! | 35     | maxTimestamp           | i64  |
//! | 43     | producerId             | i64  |
//! | 51     | producerEpoch          | i16  |
//! | 53     | baseSequence           | i32  |
//! | 57     | recordsCount           | i32  |
//!
//! `batchLength` counts the bytes after the length field, so the whole batch
//! is `batchLength + 12` bytes. The CRC covers bytes 21 (attributes) up to
//! the end of the batch, so `baseOffset`, `batchLength` and
//! `partitionLeaderEpoch` can be changed without recomputing it.

use bytes::Bytes;

/// Size of the fixed v2 batch header; records start right after it.
pub const BATCH_HEADER_LEN: usize = 61;

/// Bytes before the part counted by `batchLength` (baseOffset + batchLength),
/// needed to turn `batchLength` into the total batch size.
pub const LOG_OVERHEAD: usize = 12;

/// Smallest legal `batchLength` value: a header with zero records
/// (`BATCH_HEADER_LEN - LOG_OVERHEAD`); anything smaller cannot hold a header.
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;

/// The only batch format ("magic" value) this broker accepts.
pub const MAGIC_V2: i8 = 2;

/// Byte offset of `baseOffset` (i64) in the header.
pub const BASE_OFFSET_OFFSET: usize = 0;
/// Byte offset of `batchLength` (i32) in the header.
pub const BATCH_LENGTH_OFFSET: usize = 8;
/// Byte offset of `partitionLeaderEpoch` (i32) in the header.
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
/// Byte offset of `magic` (i8) in the header.
pub const MAGIC_OFFSET: usize = 16;
/// Byte offset of `crc` (u32) in the header.
pub const CRC_OFFSET: usize = 17;
/// Byte offset of `attributes` (i16) in the header; the CRC covers
/// everything from here to the end of the batch.
pub const ATTRIBUTES_OFFSET: usize = 21;
/// Byte offset of `lastOffsetDelta` (i32) in the header.
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// Byte offset of `baseTimestamp` (i64) in the header.
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
/// Byte offset of `maxTimestamp` (i64) in the header.
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
/// Byte offset of `producerId` (i64) in the header.
pub const PRODUCER_ID_OFFSET: usize = 43;
/// Byte offset of `producerEpoch` (i16) in the header.
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
/// Byte offset of `baseSequence` (i32) in the header.
pub const BASE_SEQUENCE_OFFSET: usize = 53;
/// Byte offset of `recordsCount` (i32) in the header.
pub const RECORDS_COUNT_OFFSET: usize = 57;

/// Attribute bits 0-2: the compression codec (0 none, 1 gzip, 2 snappy,
/// 3 lz4, 4 zstd).
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: timestamps are LogAppendTime (set by the broker)
/// rather than CreateTime.
pub const ATTR_TIMESTAMP_TYPE: i16 = 1 << 3;
/// Attribute bit 4: the batch belongs to a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 1 << 4;
/// Attribute bit 5: the batch holds control records (transaction markers).
pub const ATTR_CONTROL: i16 = 1 << 5;

/// Why a batch (or a Produce payload of batches) was rejected.
///
/// Each variant corresponds to a Kafka error code the broker reports back
/// to the producer; the mapping is done by the caller.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer than [`BATCH_HEADER_LEN`] bytes were given to
    /// [`BatchHeader::parse`].
    #[error("record batch header truncated")]
    Truncated,
    /// The bytes are not a well-formed batch (bad CRC, bad lengths,
    /// partial trailing batch, empty payload).
    #[error("corrupt record batch: {0}")]
    CorruptMessage(&'static str),
    /// The batch uses a message format other than v2.
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    /// The batch is bigger than the configured maximum.
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Total size of the offending batch in bytes.
        size: usize,
        /// The limit it was checked against.
        max: usize,
    },
    /// The header is well-formed but its record metadata is inconsistent
    /// (negative record count, offset delta not matching the count).
    #[error("invalid record batch: {0}")]
    InvalidRecord(&'static str),
}

/// The decoded 61-byte header of a v2 record batch.
///
/// The broker needs these fields (offsets, counts, producer id/epoch,
/// sequence, timestamps, attribute bits) for offset assignment,
/// idempotence and indexing without ever touching the records themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record in the batch.
    pub base_offset: i64,
    /// Number of bytes following the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch stamped by the broker that appended the batch
    /// (-1 from producers).
    pub partition_leader_epoch: i32,
    /// Batch format version; must be 2.
    pub magic: i8,
    /// CRC32C of bytes 21..end of the batch.
    pub crc: u32,
    /// Compression codec, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (records store deltas to it).
    pub base_timestamp: i64,
    /// Largest record timestamp, or the log-append time when bit 3 is set.
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id (-1 if none).
    pub producer_id: i64,
    /// Producer epoch (-1 if none).
    pub producer_epoch: i16,
    /// Sequence number of the first record (-1 if none).
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

#[inline]
fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

#[inline]
fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

#[inline]
fn read_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

impl BatchHeader {
    /// Reads the header fields from the first [`BATCH_HEADER_LEN`] bytes of
    /// `buf`, so the broker can inspect a batch without decoding records.
    ///
    /// Only reads: the magic, lengths and CRC are not checked (see
    /// [`validate_batches`]). Returns [`BatchError::Truncated`] when `buf` is
    /// shorter than the header.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated);
        }
        // All indexing below is within the checked 61 bytes.
        Ok(BatchHeader {
            base_offset: read_i64(buf, BASE_OFFSET_OFFSET),
            batch_length: read_i32(buf, BATCH_LENGTH_OFFSET),
            partition_leader_epoch: read_i32(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic: buf[MAGIC_OFFSET] as i8,
            crc: u32::from_be_bytes([buf[CRC_OFFSET], buf[CRC_OFFSET + 1], buf[CRC_OFFSET + 2], buf[CRC_OFFSET + 3]]),
            attributes: read_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: read_i32(buf, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: read_i64(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: read_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: read_i64(buf, PRODUCER_ID_OFFSET),
            producer_epoch: read_i16(buf, PRODUCER_EPOCH_OFFSET),
            base_sequence: read_i32(buf, BASE_SEQUENCE_OFFSET),
            records_count: read_i32(buf, RECORDS_COUNT_OFFSET),
        })
    }

    /// Writes the header as its 61-byte wire form into `out[..61]`, so a
    /// modified header can be stored in front of the original records.
    ///
    /// The `crc` field is written as-is (not recomputed).
    ///
    /// # Panics
    /// If `out` is shorter than [`BATCH_HEADER_LEN`] (a caller bug; the
    /// length never depends on input data). Use [`BatchHeader::to_bytes`]
    /// for an infallible variant.
    pub fn write_to(&self, out: &mut [u8]) {
        let out = &mut out[..BATCH_HEADER_LEN];
        out[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&self.base_offset.to_be_bytes());
        out[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&self.batch_length.to_be_bytes());
        out[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out[MAGIC_OFFSET] = self.magic as u8;
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&self.crc.to_be_bytes());
        out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&self.attributes.to_be_bytes());
        out[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        out[BASE_TIMESTAMP_OFFSET..BASE_TIMESTAMP_OFFSET + 8].copy_from_slice(&self.base_timestamp.to_be_bytes());
        out[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&self.max_timestamp.to_be_bytes());
        out[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&self.producer_id.to_be_bytes());
        out[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2].copy_from_slice(&self.producer_epoch.to_be_bytes());
        out[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4].copy_from_slice(&self.base_sequence.to_be_bytes());
        out[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&self.records_count.to_be_bytes());
    }

    /// Returns the 61-byte wire form of the header (CRC written as-is);
    /// the infallible counterpart of [`BatchHeader::write_to`].
    pub fn to_bytes(&self) -> [u8; BATCH_HEADER_LEN] {
        let mut out = [0u8; BATCH_HEADER_LEN];
        self.write_to(&mut out);
        out
    }

    /// Total size of the batch in bytes (`batch_length + 12`), i.e. how far
    /// to advance to reach the next batch. A negative `batch_length`
    /// (invalid, rejected by [`validate_batches`]) counts as 0.
    pub fn total_len(&self) -> usize {
        self.batch_length.max(0) as usize + LOG_OVERHEAD
    }

    /// Offset of the last record in the batch (`base_offset +
    /// last_offset_delta`), used to advance the log end offset and for
    /// offset-index lookups. Wraps instead of overflowing on garbage input.
    pub fn last_offset(&self) -> i64 {
        self.base_offset.wrapping_add(i64::from(self.last_offset_delta))
    }

    /// Compression codec id from attribute bits 0-2 (0 none, 1 gzip,
    /// 2 snappy, 3 lz4, 4 zstd); the broker passes batches through
    /// compressed but may need to reject or report the codec.
    pub fn compression(&self) -> u8 {
        (self.attributes & ATTR_COMPRESSION_MASK) as u8
    }

    /// Whether attribute bit 3 is set: `max_timestamp` is the broker's
    /// log-append time rather than the producer's create time.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE != 0
    }

    /// Whether attribute bit 4 is set: the batch is part of a transaction
    /// (affects last-stable-offset and aborted-transaction tracking).
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Whether attribute bit 5 is set: the batch carries control records
    /// (commit/abort markers) rather than user data.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// One batch of a Produce payload that passed [`validate_batches`].
///
/// Keeps the parsed header next to the raw bytes so the broker can assign
/// offsets and append without re-parsing, and without copying the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedBatch {
    /// The parsed header of this batch.
    pub header: BatchHeader,
    /// The whole batch (header + records): a zero-copy slice of the input.
    pub bytes: Bytes,
}

/// Splits a leader's Fetch answer, on a follower, into whole batches: a
/// trailing partial batch (the leader cuts the last one at the fetch's byte
/// limit) is left for the next fetch; every whole batch must be v2 with a
/// matching CRC. Record counts are not checked against offset deltas: a
/// compacted batch keeps its last offset delta over fewer records.
pub fn replicated_batches(records: &Bytes) -> Result<Vec<ValidatedBatch>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while records.len() - pos >= BATCH_HEADER_LEN {
        let rest = &records[pos..];
        let batch_length = read_i32(rest, BATCH_LENGTH_OFFSET);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::CorruptMessage("batch length smaller than header"));
        }
        let total = batch_length as usize + LOG_OVERHEAD;
        if total > rest.len() {
            break;
        }
        let magic = rest[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let batch = &rest[..total];
        let header = BatchHeader::parse(batch)?;
        if crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]) != header.crc {
            return Err(BatchError::CorruptMessage("crc"));
        }
        out.push(ValidatedBatch { header, bytes: records.slice(pos..pos + total) });
        pos += total;
    }
    Ok(out)
}

/// Splits a Produce payload (one or more v2 batches back to back) into
/// validated, zero-copy batch slices, so malformed or oversized data is
/// rejected before anything is appended to the log.
///
/// Per batch, without looking at individual records:
/// * at least [`BATCH_HEADER_LEN`] bytes remain, `batch_length >= 49` and
///   the batch fits in the remaining input, else
///   [`BatchError::CorruptMessage`] (also for a trailing partial batch and
///   for empty input);
/// * `magic == 2`, else [`BatchError::UnsupportedMagic`] (checked as soon as
///   the magic byte and a plausible length are present, so small legacy
///   v0/v1 messages report the magic rather than a length problem);
/// * total size `<= max_batch_bytes`, else [`BatchError::TooLarge`];
/// * `records_count >= 0` and, for non-control batches,
///   `last_offset_delta == records_count - 1`, else
///   [`BatchError::InvalidRecord`];
/// * the CRC32C matches, else `CorruptMessage("crc")`.
pub fn validate_batches(records: &Bytes, max_batch_bytes: usize) -> Result<Vec<ValidatedBatch>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::CorruptMessage("empty record set"));
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let rest = &records[pos..];
        // Need offset + length + epoch + magic to say anything at all.
        if rest.len() < MAGIC_OFFSET + 1 {
            return Err(BatchError::CorruptMessage("truncated record batch"));
        }
        let batch_length = read_i32(rest, BATCH_LENGTH_OFFSET);
        if batch_length < 0 {
            return Err(BatchError::CorruptMessage("negative batch length"));
        }
        let total = batch_length as usize + LOG_OVERHEAD;
        if total > rest.len() {
            return Err(BatchError::CorruptMessage("truncated record batch"));
        }
        let magic = rest[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::CorruptMessage("batch length smaller than header"));
        }
        if total > max_batch_bytes {
            return Err(BatchError::TooLarge { size: total, max: max_batch_bytes });
        }
        let batch = &rest[..total];
        let header = BatchHeader::parse(batch)?;
        if header.records_count < 0 {
            return Err(BatchError::InvalidRecord("negative record count"));
        }
        if !header.is_control() && i64::from(header.last_offset_delta) != i64::from(header.records_count) - 1 {
            return Err(BatchError::InvalidRecord("last offset delta does not match record count"));
        }
        if crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]) != header.crc {
            return Err(BatchError::CorruptMessage("crc"));
        }
        out.push(ValidatedBatch { header, bytes: records.slice(pos..pos + total) });
        pos += total;
    }
    Ok(out)
}

/// CRC32C of a batch given its (possibly rewritten) header and its record
/// bytes, computed without concatenating them: `crc32c(header[21..61] ++
/// records)`. The CRC field inside `header` is ignored.
pub fn crc_of(header: &[u8; BATCH_HEADER_LEN], records: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&header[ATTRIBUTES_OFFSET..]);
    crc32c::crc32c_append(crc, records)
}

/// Builds the header to write in front of `batch`'s unchanged record bytes
/// when appending it at `base_offset`, so the broker can store the batch
/// without copying or re-encoding records.
///
/// * `log_append_time_ms == None`: the original header with only
///   `baseOffset` replaced; the CRC is unchanged because it does not cover
///   `baseOffset`.
/// * `Some(t)`: additionally sets the LogAppendTime attribute bit and
///   `maxTimestamp = t` (what Kafka does for topics with
///   `message.timestamp.type=LogAppendTime`), and recomputes the CRC over
///   the new header bytes 21..61 followed by `batch.bytes[61..]`.
///
/// The record bytes to store after this header are `batch.bytes[61..]`.
pub fn rewrite_header(batch: &ValidatedBatch, base_offset: i64, log_append_time_ms: Option<i64>) -> [u8; BATCH_HEADER_LEN] {
    let mut header = batch.header;
    header.base_offset = base_offset;
    match log_append_time_ms {
        None => header.to_bytes(),
        Some(t) => {
            header.attributes |= ATTR_TIMESTAMP_TYPE;
            header.max_timestamp = t;
            let mut out = header.to_bytes();
            let records = batch.bytes.get(BATCH_HEADER_LEN..).unwrap_or(&[]);
            let crc = crc_of(&out, records);
            out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
            out
        }
    }
}

/// Stamps `partitionLeaderEpoch` into a header produced by
/// [`rewrite_header`]; Kafka leaders record their epoch in every appended
/// batch (used by followers/consumers for truncation detection). The field
/// is outside the CRC, so no CRC update is needed.
pub fn set_partition_leader_epoch(header: &mut [u8; BATCH_HEADER_LEN], epoch: i32) {
    header[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4].copy_from_slice(&epoch.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    const MAX: usize = 1 << 20;

    fn record(offset: i64, ts: i64, value: &str) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 42,
            producer_epoch: 3,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: 100 + offset as i32,
            timestamp: ts,
            key: Some(Bytes::from(format!("key-{offset}"))),
            value: Some(Bytes::from(value.to_string())),
            headers: Default::default(),
        }
    }

    /// A real client-format batch with `n` records at offsets 0..n.
    fn encode_batch(n: i64, base_ts: i64) -> Bytes {
        let recs: Vec<Record> = (0..n).map(|i| record(i, base_ts + i * 10, &format!("value-{i}"))).collect();
        encode(&recs)
    }

    fn encode(recs: &[Record]) -> Bytes {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, recs, &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
        buf.freeze()
    }

    fn fix_crc(b: &mut [u8]) {
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }

    fn mutate(b: &Bytes, f: impl FnOnce(&mut Vec<u8>)) -> Bytes {
        let mut v = b.to_vec();
        f(&mut v);
        Bytes::from(v)
    }

    #[test]
    fn offsets_are_consistent() {
        assert_eq!(RECORDS_COUNT_OFFSET + 4, BATCH_HEADER_LEN);
        assert_eq!(MIN_BATCH_LENGTH, 49);
        assert_eq!(CRC_OFFSET + 4, ATTRIBUTES_OFFSET);
    }

    #[test]
    fn parse_reads_encoder_header() {
        let b = encode_batch(3, 1_000);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.total_len(), b.len());
        assert_eq!(h.partition_leader_epoch, -1);
        assert_eq!(h.magic, 2);
        assert_eq!(h.crc, crc32c::crc32c(&b[21..]));
        assert_eq!(h.attributes, 0);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.last_offset(), 2);
        assert_eq!(h.base_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_020);
        assert_eq!(h.producer_id, 42);
        assert_eq!(h.producer_epoch, 3);
        assert_eq!(h.base_sequence, 100);
        assert_eq!(h.records_count, 3);
        assert_eq!(h.compression(), 0);
        assert!(!h.is_log_append_time());
        assert!(!h.is_transactional());
        assert!(!h.is_control());
    }

    #[test]
    fn parse_truncated() {
        let b = encode_batch(1, 0);
        assert_eq!(BatchHeader::parse(&b[..60]), Err(BatchError::Truncated));
        assert_eq!(BatchHeader::parse(&[]), Err(BatchError::Truncated));
        assert!(BatchHeader::parse(&b[..61]).is_ok());
    }

    #[test]
    fn write_to_roundtrips() {
        let b = encode_batch(4, 5);
        let h = BatchHeader::parse(&b).unwrap();
        let mut out = [0u8; 70];
        h.write_to(&mut out);
        assert_eq!(&out[..61], &b[..61]);
        assert_eq!(&out[61..], &[0u8; 9]);
        assert_eq!(h.to_bytes(), out[..61]);
        assert_eq!(BatchHeader::parse(&out).unwrap(), h);

        let weird = BatchHeader {
            base_offset: i64::MIN,
            batch_length: -5,
            partition_leader_epoch: 7,
            magic: -1,
            crc: 0xdead_beef,
            attributes: 0x7fff,
            last_offset_delta: i32::MAX,
            base_timestamp: -1,
            max_timestamp: i64::MAX,
            producer_id: -1,
            producer_epoch: i16::MIN,
            base_sequence: -1,
            records_count: i32::MIN,
        };
        assert_eq!(BatchHeader::parse(&weird.to_bytes()).unwrap(), weird);
        // Helpers must not panic on garbage.
        assert_eq!(weird.total_len(), LOG_OVERHEAD);
        assert_eq!(weird.last_offset(), i64::MIN + i64::from(i32::MAX));
        assert_eq!(weird.compression(), 7);
        assert!(weird.is_log_append_time() && weird.is_transactional() && weird.is_control());
        let max = BatchHeader { base_offset: i64::MAX, last_offset_delta: 1, ..weird };
        assert_eq!(max.last_offset(), i64::MIN); // wraps, no panic
    }

    #[test]
    fn attribute_helpers() {
        let b = encode_batch(1, 0);
        let mut h = BatchHeader::parse(&b).unwrap();
        for codec in 0..=4i16 {
            h.attributes = codec;
            assert_eq!(h.compression(), codec as u8);
        }
        h.attributes = ATTR_TIMESTAMP_TYPE | 3;
        assert!(h.is_log_append_time());
        assert!(!h.is_transactional());
        assert_eq!(h.compression(), 3);
        h.attributes = ATTR_TRANSACTIONAL;
        assert!(h.is_transactional() && !h.is_control() && !h.is_log_append_time());
        h.attributes = ATTR_CONTROL;
        assert!(h.is_control() && !h.is_transactional());
    }

    #[test]
    fn encoder_sets_transactional_and_control_bits() {
        let mut r = record(0, 0, "x");
        r.transactional = true;
        r.control = true;
        let b = encode(&[r]);
        let h = BatchHeader::parse(&b).unwrap();
        assert!(h.is_transactional());
        assert!(h.is_control());
        assert_eq!(validate_batches(&b, MAX).unwrap().len(), 1);
    }

    #[test]
    fn validate_single_batch_zero_copy() {
        let b = encode_batch(5, 123);
        let v = validate_batches(&b, MAX).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].bytes, b);
        assert_eq!(v[0].bytes.as_ptr(), b.as_ptr());
        assert_eq!(v[0].header, BatchHeader::parse(&b).unwrap());
        assert_eq!(v[0].header.records_count, 5);
    }

    #[test]
    fn validate_multiple_batches() {
        let b1 = encode_batch(1, 10);
        let b2 = encode_batch(7, 20);
        let b3 = encode_batch(2, 30);
        let mut all = BytesMut::new();
        all.extend_from_slice(&b1);
        all.extend_from_slice(&b2);
        all.extend_from_slice(&b3);
        let all = all.freeze();
        let v = validate_batches(&all, MAX).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].bytes, b1);
        assert_eq!(v[1].bytes, b2);
        assert_eq!(v[2].bytes, b3);
        assert_eq!(v[1].bytes.as_ptr(), all[b1.len()..].as_ptr());
        assert_eq!(v[2].bytes.as_ptr(), all[b1.len() + b2.len()..].as_ptr());
        assert_eq!(v.iter().map(|x| x.header.records_count).collect::<Vec<_>>(), vec![1, 7, 2]);
    }

    #[test]
    fn validate_encoder_multi_batch_output() {
        // Different producer ids force the encoder to emit two batches.
        let mut r1 = record(0, 0, "a");
        r1.producer_id = 1;
        let mut r2 = record(1, 0, "b");
        r2.producer_id = 2;
        let b = encode(&[r1, r2]);
        let v = validate_batches(&b, MAX).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].header.base_offset, 1);
    }

    #[test]
    fn validate_empty_is_corrupt() {
        assert!(matches!(validate_batches(&Bytes::new(), MAX), Err(BatchError::CorruptMessage(_))));
    }

    #[test]
    fn validate_bad_crc() {
        let b = encode_batch(3, 0);
        // Flip a byte inside the records.
        let bad = mutate(&b, |v| {
            let last = v.len() - 2;
            v[last] ^= 0x01;
        });
        assert_eq!(validate_batches(&bad, MAX), Err(BatchError::CorruptMessage("crc")));
        // Flip a byte of the CRC field itself.
        let bad = mutate(&b, |v| v[CRC_OFFSET] ^= 0x80);
        assert_eq!(validate_batches(&bad, MAX), Err(BatchError::CorruptMessage("crc")));
        // Flip a covered header field (maxTimestamp).
        let bad = mutate(&b, |v| v[MAX_TIMESTAMP_OFFSET + 7] ^= 1);
        assert_eq!(validate_batches(&bad, MAX), Err(BatchError::CorruptMessage("crc")));
        // A bad second batch fails the whole payload.
        let mut two = b.to_vec();
        two.extend_from_slice(&bad);
        assert_eq!(validate_batches(&Bytes::from(two), MAX), Err(BatchError::CorruptMessage("crc")));
    }

    #[test]
    fn uncovered_fields_do_not_affect_crc() {
        let b = encode_batch(2, 0);
        let changed = mutate(&b, |v| {
            v[..8].copy_from_slice(&77i64.to_be_bytes());
            v[12..16].copy_from_slice(&9i32.to_be_bytes());
        });
        let v = validate_batches(&changed, MAX).unwrap();
        assert_eq!(v[0].header.base_offset, 77);
        assert_eq!(v[0].header.partition_leader_epoch, 9);
    }

    #[test]
    fn validate_truncated() {
        let b = encode_batch(3, 0);
        for cut in [1, 10, 16, 17, 60, 61, b.len() - 1] {
            let r = validate_batches(&b.slice(..cut), MAX);
            assert!(matches!(r, Err(BatchError::CorruptMessage(_))), "cut {cut}: {r:?}");
        }
        // Trailing partial batch after a good one.
        let mut v = b.to_vec();
        v.extend_from_slice(&b[..30]);
        assert!(matches!(validate_batches(&Bytes::from(v), MAX), Err(BatchError::CorruptMessage(_))));
        // A few trailing garbage bytes.
        let mut v = b.to_vec();
        v.extend_from_slice(&[0, 0, 0]);
        assert!(matches!(validate_batches(&Bytes::from(v), MAX), Err(BatchError::CorruptMessage(_))));
    }

    #[test]
    fn validate_bad_lengths() {
        let b = encode_batch(1, 0);
        let neg = mutate(&b, |v| v[8..12].copy_from_slice(&(-1i32).to_be_bytes()));
        assert_eq!(validate_batches(&neg, MAX), Err(BatchError::CorruptMessage("negative batch length")));
        let min = mutate(&b, |v| v[8..12].copy_from_slice(&i32::MIN.to_be_bytes()));
        assert!(matches!(validate_batches(&min, MAX), Err(BatchError::CorruptMessage(_))));
        // batch_length 48 < 49: a header cannot fit.
        let short = mutate(&b, |v| v[8..12].copy_from_slice(&48i32.to_be_bytes()));
        assert_eq!(validate_batches(&short, MAX), Err(BatchError::CorruptMessage("batch length smaller than header")));
        // Claims more bytes than present.
        let long = mutate(&b, |v| {
            v[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        });
        assert!(matches!(validate_batches(&long, MAX), Err(BatchError::CorruptMessage(_))));
    }

    #[test]
    fn validate_zero_record_header_only_batch() {
        // A header-only batch (batch_length 49, 0 records, delta -1) is well-formed.
        let b = encode_batch(1, 0);
        let mut h = BatchHeader::parse(&b).unwrap();
        h.batch_length = 49;
        h.records_count = 0;
        h.last_offset_delta = -1;
        let mut bytes = h.to_bytes();
        fix_crc(&mut bytes);
        let v = validate_batches(&Bytes::copy_from_slice(&bytes), MAX).unwrap();
        assert_eq!(v[0].header.records_count, 0);
        assert_eq!(v[0].bytes.len(), BATCH_HEADER_LEN);
    }

    #[test]
    fn validate_too_large() {
        let b = encode_batch(3, 0);
        assert_eq!(validate_batches(&b, b.len() - 1), Err(BatchError::TooLarge { size: b.len(), max: b.len() - 1 }));
        assert!(validate_batches(&b, b.len()).is_ok());
        // Only the oversized batch triggers it.
        let small = encode_batch(1, 0);
        let mut v = small.to_vec();
        v.extend_from_slice(&b);
        assert_eq!(validate_batches(&Bytes::from(v), small.len()), Err(BatchError::TooLarge { size: b.len(), max: small.len() }));
    }

    #[test]
    fn validate_wrong_magic() {
        let b = encode_batch(2, 0);
        for m in [0i8, 1, 3, -1] {
            let bad = mutate(&b, |v| v[MAGIC_OFFSET] = m as u8);
            assert_eq!(validate_batches(&bad, MAX), Err(BatchError::UnsupportedMagic(m)));
        }
        // A small legacy v1 message (shorter than a v2 header) reports magic.
        let mut legacy = vec![0u8; 12 + 22];
        legacy[8..12].copy_from_slice(&22i32.to_be_bytes());
        legacy[MAGIC_OFFSET] = 1;
        assert_eq!(validate_batches(&Bytes::from(legacy), MAX), Err(BatchError::UnsupportedMagic(1)));
    }

    #[test]
    fn validate_record_count_checks() {
        let b = encode_batch(3, 0);
        let neg = mutate(&b, |v| {
            v[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&(-1i32).to_be_bytes());
            fix_crc(v);
        });
        assert_eq!(validate_batches(&neg, MAX), Err(BatchError::InvalidRecord("negative record count")));
        let mismatch = mutate(&b, |v| {
            v[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4].copy_from_slice(&5i32.to_be_bytes());
            fix_crc(v);
        });
        assert!(matches!(validate_batches(&mismatch, MAX), Err(BatchError::InvalidRecord(_))));
        let count_mismatch = mutate(&b, |v| {
            v[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&4i32.to_be_bytes());
            fix_crc(v);
        });
        assert!(matches!(validate_batches(&count_mismatch, MAX), Err(BatchError::InvalidRecord(_))));
        // i32::MIN count must not overflow the delta check.
        let min = mutate(&b, |v| {
            v[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&i32::MIN.to_be_bytes());
            fix_crc(v);
        });
        assert!(matches!(validate_batches(&min, MAX), Err(BatchError::InvalidRecord(_))));
    }

    #[test]
    fn control_batch_skips_delta_check() {
        let mut r = record(0, 0, "marker");
        r.control = true;
        r.transactional = true;
        let b = encode(&[r]);
        let odd = mutate(&b, |v| {
            v[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4].copy_from_slice(&9i32.to_be_bytes());
            fix_crc(v);
        });
        assert_eq!(validate_batches(&odd, MAX).unwrap()[0].header.last_offset_delta, 9);
        // ... but a negative count is still rejected.
        let neg = mutate(&b, |v| {
            v[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&(-2i32).to_be_bytes());
            fix_crc(v);
        });
        assert!(matches!(validate_batches(&neg, MAX), Err(BatchError::InvalidRecord(_))));
    }

    #[test]
    fn crc_of_matches_header_crc() {
        let b = encode_batch(4, 0);
        let mut hdr = [0u8; BATCH_HEADER_LEN];
        hdr.copy_from_slice(&b[..61]);
        assert_eq!(crc_of(&hdr, &b[61..]), BatchHeader::parse(&b).unwrap().crc);
        // CRC field content is ignored.
        hdr[CRC_OFFSET] ^= 0xff;
        assert_eq!(crc_of(&hdr, &b[61..]), BatchHeader::parse(&b).unwrap().crc);
    }

    fn reassemble(header: &[u8; BATCH_HEADER_LEN], batch: &ValidatedBatch) -> Bytes {
        let mut v = header.to_vec();
        v.extend_from_slice(&batch.bytes[BATCH_HEADER_LEN..]);
        Bytes::from(v)
    }

    #[test]
    fn rewrite_without_append_time() {
        let b = encode_batch(3, 1_000);
        let batch = validate_batches(&b, MAX).unwrap().remove(0);
        let hdr = rewrite_header(&batch, 5_000, None);
        assert_eq!(&hdr[..8], &5_000i64.to_be_bytes());
        assert_eq!(&hdr[8..], &b[8..61], "only baseOffset may change");

        let stored = reassemble(&hdr, &batch);
        let v = validate_batches(&stored, MAX).unwrap();
        assert_eq!(v[0].header.base_offset, 5_000);
        assert_eq!(v[0].header.last_offset(), 5_002);
        assert_eq!(v[0].header.crc, batch.header.crc);

        let set = RecordBatchDecoder::decode(&mut stored.clone()).unwrap();
        let offs: Vec<i64> = set.records.iter().map(|r| r.offset).collect();
        assert_eq!(offs, vec![5_000, 5_001, 5_002]);
        let ts: Vec<i64> = set.records.iter().map(|r| r.timestamp).collect();
        assert_eq!(ts, vec![1_000, 1_010, 1_020]);
        for (i, r) in set.records.iter().enumerate() {
            assert_eq!(r.timestamp_type, TimestampType::Creation);
            assert_eq!(r.value.as_deref(), Some(format!("value-{i}").as_bytes()));
            assert_eq!(r.sequence, 100 + i as i32);
            assert_eq!(r.producer_id, 42);
        }
    }

    #[test]
    fn rewrite_with_append_time() {
        let b = encode_batch(4, 1_000);
        let batch = validate_batches(&b, MAX).unwrap().remove(0);
        let t = 1_700_000_000_123i64;
        let hdr = rewrite_header(&batch, 77, Some(t));
        let stored = reassemble(&hdr, &batch);

        let v = validate_batches(&stored, MAX).unwrap();
        let h = v[0].header;
        assert_eq!(h.base_offset, 77);
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, t);
        assert_eq!(h.base_timestamp, 1_000);
        assert_ne!(h.crc, batch.header.crc);
        assert_eq!(h.crc, crc32c::crc32c(&stored[21..]));
        // Everything except offset, attributes, maxTimestamp and crc unchanged.
        assert_eq!(
            BatchHeader { base_offset: 0, crc: batch.header.crc, attributes: batch.header.attributes, max_timestamp: batch.header.max_timestamp, ..h },
            batch.header
        );
        assert_eq!(&stored[61..], &b[61..]);

        let set = RecordBatchDecoder::decode(&mut stored.clone()).unwrap();
        assert_eq!(set.records.len(), 4);
        for (i, r) in set.records.iter().enumerate() {
            assert_eq!(r.offset, 77 + i as i64);
            assert_eq!(r.timestamp_type, TimestampType::LogAppend);
            assert_eq!(r.key.as_deref(), Some(format!("key-{i}").as_bytes()));
        }
        let info = RecordBatchDecoder::decode_batch_info(&mut stored.clone()).unwrap();
        assert_eq!(info[0].timestamp_type, TimestampType::LogAppend);
        assert_eq!(info[0].min_offset, 77);
    }

    #[test]
    fn rewrite_twice_and_keep_other_bits() {
        // A transactional batch: bit 4 must survive, bit 3 added.
        let recs: Vec<Record> = (0..2)
            .map(|i| {
                let mut r = record(i, 50, "t");
                r.transactional = true;
                r
            })
            .collect();
        let b = encode(&recs);
        let batch = validate_batches(&b, MAX).unwrap().remove(0);
        let h1 = rewrite_header(&batch, 10, Some(999));
        let stored = reassemble(&h1, &batch);
        let again = validate_batches(&stored, MAX).unwrap().remove(0);
        assert!(again.header.is_transactional());
        assert!(again.header.is_log_append_time());
        // Re-stamping an already log-append batch is idempotent in shape.
        let h2 = rewrite_header(&again, 20, Some(1_000));
        let stored2 = reassemble(&h2, &again);
        let v = validate_batches(&stored2, MAX).unwrap();
        assert_eq!(v[0].header.base_offset, 20);
        assert_eq!(v[0].header.max_timestamp, 1_000);
        // And without append time the CRC carries over.
        let h3 = rewrite_header(&again, 30, None);
        assert_eq!(BatchHeader::parse(&h3).unwrap().crc, again.header.crc);
        assert!(validate_batches(&reassemble(&h3, &again), MAX).is_ok());
    }

    #[test]
    fn rewrite_in_multi_batch_payload() {
        let b1 = encode_batch(2, 0);
        let b2 = encode_batch(3, 100);
        let mut all = b1.to_vec();
        all.extend_from_slice(&b2);
        let v = validate_batches(&Bytes::from(all), MAX).unwrap();
        let mut log = Vec::new();
        let mut next = 1_000i64;
        for batch in &v {
            let hdr = rewrite_header(batch, next, Some(5));
            log.extend_from_slice(&hdr);
            log.extend_from_slice(&batch.bytes[BATCH_HEADER_LEN..]);
            next += i64::from(batch.header.last_offset_delta) + 1;
        }
        let log = Bytes::from(log);
        assert_eq!(validate_batches(&log, MAX).unwrap().len(), 2);
        let sets = RecordBatchDecoder::decode_all(&mut log.clone()).unwrap();
        let offs: Vec<i64> = sets.iter().flat_map(|s| s.records.iter().map(|r| r.offset)).collect();
        assert_eq!(offs, vec![1_000, 1_001, 1_002, 1_003, 1_004]);
    }

    #[test]
    fn rewrite_does_not_panic_on_short_handmade_batch() {
        let b = encode_batch(1, 0);
        let batch = ValidatedBatch { header: BatchHeader::parse(&b).unwrap(), bytes: b.slice(..10) };
        let hdr = rewrite_header(&batch, 1, Some(2));
        assert_eq!(BatchHeader::parse(&hdr).unwrap().base_offset, 1);
    }

    #[test]
    fn leader_epoch_stamp_keeps_crc_valid() {
        let b = encode_batch(2, 0);
        let batch = validate_batches(&b, MAX).unwrap().remove(0);
        let mut hdr = rewrite_header(&batch, 3, Some(4));
        set_partition_leader_epoch(&mut hdr, 12);
        let stored = reassemble(&hdr, &batch);
        let v = validate_batches(&stored, MAX).unwrap();
        assert_eq!(v[0].header.partition_leader_epoch, 12);
        let set = RecordBatchDecoder::decode(&mut stored.clone()).unwrap();
        assert_eq!(set.records[0].partition_leader_epoch, 12);
    }

    #[test]
    fn batch_with_headers_and_null_key() {
        let mut r = record(0, 0, "v");
        r.key = None;
        r.headers.insert(StrBytes::from_static_str("h"), Some(Bytes::from_static(b"hv")));
        let b = encode(&[r]);
        let v = validate_batches(&b, MAX).unwrap();
        let hdr = rewrite_header(&v[0], 9, None);
        let set = RecordBatchDecoder::decode(&mut reassemble(&hdr, &v[0])).unwrap();
        assert_eq!(set.records[0].offset, 9);
        assert_eq!(set.records[0].key, None);
        assert_eq!(set.records[0].headers.len(), 1);
    }

    #[test]
    fn garbage_never_panics() {
        let mut payload = encode_batch(3, 0).to_vec();
        payload.extend_from_slice(&encode_batch(2, 9));
        let payload = Bytes::from(payload);
        // Every truncation point: only whole-batch boundaries are valid.
        let first = BatchHeader::parse(&payload).unwrap().total_len();
        for cut in 0..=payload.len() {
            let r = validate_batches(&payload.slice(..cut), MAX);
            assert_eq!(r.is_ok(), cut == first || cut == payload.len(), "cut {cut}");
        }
        // Every single-byte corruption, with a few patterns.
        for i in 0..payload.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let bad = mutate(&payload, |v| v[i] ^= x);
                let _ = validate_batches(&bad, MAX);
                let _ = validate_batches(&bad, 0);
                let _ = BatchHeader::parse(&bad);
            }
        }
        // All-0xff and all-zero inputs of every small size.
        for n in 0..130 {
            let _ = validate_batches(&Bytes::from(vec![0xffu8; n]), MAX);
            let r = validate_batches(&Bytes::from(vec![0u8; n]), MAX);
            assert!(r.is_err());
        }
    }

    #[test]
    fn error_messages() {
        assert_eq!(BatchError::TooLarge { size: 10, max: 5 }.to_string(), "record batch of 10 bytes exceeds the maximum of 5 bytes");
        assert_eq!(BatchError::CorruptMessage("crc").to_string(), "corrupt record batch: crc");
        assert_eq!(BatchError::UnsupportedMagic(1).to_string(), "unsupported record batch magic 1");
    }
}
