//! Hand-written encoder for Fetch responses (API key 1, versions 4-12) that
//! leaves holes for the record data.
//!
//! The broker sends record bytes straight from segment files
//! (sendfile/splice), so it cannot hand them to kafka-protocol's
//! `FetchResponse` encoder, which would copy every record into one buffer.
//! Instead [`encode_fetch_response`] produces the frame as a list of
//! [`FetchPiece`]s: encoded protocol bytes interleaved with placeholders
//! that the caller fills with `records_len` bytes taken from the log.
//!
//! Wire layout produced (v12 is the first "flexible" version: compact
//! strings/arrays/bytes with unsigned-varint lengths + 1, and an empty
//! tagged-field section after every struct and after the header):
//!
//! ```text
//! size            i32     bytes after this field, records included
//! correlation_id  i32     response header (v0; v1 adds tagged fields)
//! [header tags]           v12
//! throttle_time_ms i32
//! error_code      i16     v7+
//! session_id      i32     v7+
//! responses       array
//!   topic         string
//!   partitions    array
//!     partition_index       i32
//!     error_code            i16
//!     high_watermark        i64
//!     last_stable_offset    i64
//!     log_start_offset      i64      v5+
//!     aborted_transactions  nullable array of { producer_id i64, first_offset i64, [tags] v12 }
//!     preferred_read_replica i32     v11+
//!     records               nullable bytes (never null here)
//!     [tags]                         v12 (diverging_epoch for followers;
//!                                    current_leader, snapshot_id never written)
//!   [tags]                  v12
//! [tags]                    v12
//! ```

use bytes::{BufMut, Bytes, BytesMut};

/// Oldest Fetch version this encoder supports (kafka-protocol 0.18 and
/// Kafka 4.x also start at 4).
pub const FETCH_MIN_VERSION: i16 = 4;
/// Newest Fetch version this encoder supports; v13+ identify topics by id
/// instead of name and are not implemented.
pub const FETCH_MAX_VERSION: i16 = 12;
/// First Fetch version using the flexible (compact + tagged fields)
/// encoding and response header v1; exposed so callers and tests agree on
/// where the format switches.
pub const FETCH_FIRST_FLEXIBLE_VERSION: i16 = 12;

/// One aborted transaction reported to a READ_COMMITTED consumer, so it can
/// skip that producer's records from `first_offset` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer id of the aborted transaction.
    pub producer_id: i64,
    /// Offset of the first message of the aborted transaction.
    pub first_offset: i64,
}

/// Per-partition result of a fetch: everything the response carries for
/// the partition except the record bytes, of which only the length is
/// known here (the caller streams them from the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartitionOut {
    /// The partition index.
    pub partition_index: i32,
    /// Partition-level error code, 0 for none.
    pub error_code: i16,
    /// Current high watermark of the partition.
    pub high_watermark: i64,
    /// Last stable offset (-1 when unknown).
    pub last_stable_offset: i64,
    /// Log start offset; only sent for v5+ (-1 when unknown).
    pub log_start_offset: i64,
    /// Aborted transactions in the fetched range; `None` encodes a null
    /// array (what Kafka sends for READ_UNCOMMITTED fetches).
    pub aborted_transactions: Option<Vec<AbortedTxn>>,
    /// Replica the consumer should fetch from (KIP-392); only sent for
    /// v11+, use -1 for "none".
    pub preferred_read_replica: i32,
    /// Number of record bytes the caller will send for this partition; 0
    /// encodes an empty (not null) records field and no
    /// [`FetchPiece::Records`] piece.
    pub records_len: u32,
    /// A follower's log diverged: the leader's (epoch, end offset) for the
    /// follower's last fetched epoch, sent as tagged field 0 (v12+).
    pub diverging_epoch: Option<(i32, i64)>,
}

impl Default for FetchPartitionOut {
    /// Kafka's schema defaults: no error, offsets unknown (-1, except the
    /// high watermark 0), empty aborted-transaction list, no preferred
    /// replica, no records.
    fn default() -> Self {
        FetchPartitionOut {
            partition_index: 0,
            error_code: 0,
            high_watermark: 0,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted_transactions: Some(Vec::new()),
            preferred_read_replica: -1,
            records_len: 0,
            diverging_epoch: None,
        }
    }
}

/// Per-topic group of partition results in a Fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTopicOut {
    /// Topic name (v4-v12 identify topics by name).
    pub name: String,
    /// Partition results, in response order.
    pub partitions: Vec<FetchPartitionOut>,
}

/// Everything needed to encode a Fetch response besides the record data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchResponseOut {
    /// Quota throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// Top-level error code; only sent for v7+.
    pub error_code: i16,
    /// Fetch session id (0 = no session); only sent for v7+.
    pub session_id: i32,
    /// Topic results, in response order.
    pub topics: Vec<FetchTopicOut>,
}

/// One piece of the wire response, in order.
///
/// Writing each `Encoded` piece as-is and, at each `Records` piece, exactly
/// `len` record bytes of the given partition yields the complete frame
/// (size prefix included), letting record bytes go out zero-copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchPiece {
    /// Already-encoded protocol bytes.
    Encoded(Bytes),
    /// Placeholder for the record data of
    /// `resp.topics[topic].partitions[partition]`.
    Records {
        /// Index into [`FetchResponseOut::topics`].
        topic: usize,
        /// Index into [`FetchTopicOut::partitions`].
        partition: usize,
        /// Number of record bytes to send (the partition's `records_len`).
        len: u32,
    },
}

/// Why a Fetch response could not be encoded; every case is a limit of the
/// wire format, so the broker must not send a malformed frame.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FetchEncodeError {
    /// The requested version is outside
    /// [`FETCH_MIN_VERSION`]..=[`FETCH_MAX_VERSION`].
    #[error("unsupported Fetch response version {0}")]
    UnsupportedVersion(i16),
    /// A topic name is longer than a protocol string allows (32767 bytes).
    #[error("topic name of {len} bytes is too long to encode")]
    TopicNameTooLong {
        /// Length of the offending name in bytes.
        len: usize,
    },
    /// An array has more elements than its length field can express.
    #[error("array of {len} elements is too long to encode")]
    ArrayTooLong {
        /// Number of elements.
        len: usize,
    },
    /// A partition's `records_len` exceeds the protocol's i32 length.
    #[error("records length {0} exceeds i32::MAX")]
    RecordsTooLarge(u32),
    /// The whole frame (after the size prefix) exceeds i32::MAX bytes.
    #[error("Fetch response frame of {0} bytes exceeds i32::MAX")]
    FrameTooLarge(u64),
}

/// Destination of the encoding walk: run once to measure, once to write, so
/// the size prefix and the buffer capacity are known before writing.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
    fn records(&mut self, topic: usize, partition: usize, len: u32);
}

/// Measuring pass.
#[derive(Default)]
struct Counter {
    encoded: usize,
    records_bytes: u64,
    records_pieces: usize,
}

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.encoded += bytes.len();
    }
    fn records(&mut self, _topic: usize, _partition: usize, len: u32) {
        self.records_bytes += u64::from(len);
        self.records_pieces += 1;
    }
}

/// Writing pass: appends to `buf` and cuts it into pieces at each records
/// hole.
struct Writer<'a> {
    buf: &'a mut BytesMut,
    pieces: Vec<FetchPiece>,
}

impl Writer<'_> {
    fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.pieces.push(FetchPiece::Encoded(self.buf.split().freeze()));
        }
    }
}

impl Sink for Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf.put_slice(bytes);
    }
    fn records(&mut self, topic: usize, partition: usize, len: u32) {
        self.flush();
        self.pieces.push(FetchPiece::Records { topic, partition, len });
    }
}

fn put_i16<S: Sink>(s: &mut S, v: i16) {
    s.put(&v.to_be_bytes());
}

fn put_i32<S: Sink>(s: &mut S, v: i32) {
    s.put(&v.to_be_bytes());
}

fn put_i64<S: Sink>(s: &mut S, v: i64) {
    s.put(&v.to_be_bytes());
}

fn put_uvarint<S: Sink>(s: &mut S, mut v: u32) {
    let mut tmp = [0u8; 5];
    let mut n = 0;
    while v >= 0x80 {
        tmp[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    tmp[n] = v as u8;
    s.put(&tmp[..=n]);
}

/// Empty tagged-field section (flexible versions only).
fn put_tags<S: Sink>(s: &mut S, flexible: bool) {
    if flexible {
        put_uvarint(s, 0);
    }
}

fn put_array_len<S: Sink>(s: &mut S, flexible: bool, len: usize) -> Result<(), FetchEncodeError> {
    // Kafka caps arrays at i32::MAX elements in both encodings.
    let n = i32::try_from(len).map_err(|_| FetchEncodeError::ArrayTooLong { len })?;
    if flexible {
        put_uvarint(s, n as u32 + 1);
    } else {
        put_i32(s, n);
    }
    Ok(())
}

fn put_null_array<S: Sink>(s: &mut S, flexible: bool) {
    if flexible {
        put_uvarint(s, 0);
    } else {
        put_i32(s, -1);
    }
}

fn put_string<S: Sink>(s: &mut S, flexible: bool, v: &str) -> Result<(), FetchEncodeError> {
    let len = v.len();
    // Kafka limits strings to i16::MAX bytes in both encodings.
    let n = i16::try_from(len).map_err(|_| FetchEncodeError::TopicNameTooLong { len })?;
    if flexible {
        put_uvarint(s, n as u32 + 1);
    } else {
        put_i16(s, n);
    }
    s.put(v.as_bytes());
    Ok(())
}

fn put_bytes_len<S: Sink>(s: &mut S, flexible: bool, len: u32) -> Result<(), FetchEncodeError> {
    let n = i32::try_from(len).map_err(|_| FetchEncodeError::RecordsTooLarge(len))?;
    if flexible {
        put_uvarint(s, n as u32 + 1);
    } else {
        put_i32(s, n);
    }
    Ok(())
}

/// Header and body, without the size prefix.
fn encode_frame<S: Sink>(s: &mut S, version: i16, correlation_id: i32, resp: &FetchResponseOut) -> Result<(), FetchEncodeError> {
    let flexible = version >= FETCH_FIRST_FLEXIBLE_VERSION;

    // Response header v0 (correlation id) / v1 (+ tagged fields).
    put_i32(s, correlation_id);
    put_tags(s, flexible);

    put_i32(s, resp.throttle_time_ms);
    if version >= 7 {
        put_i16(s, resp.error_code);
        put_i32(s, resp.session_id);
    }
    put_array_len(s, flexible, resp.topics.len())?;
    for (ti, topic) in resp.topics.iter().enumerate() {
        put_string(s, flexible, &topic.name)?;
        put_array_len(s, flexible, topic.partitions.len())?;
        for (pi, p) in topic.partitions.iter().enumerate() {
            put_i32(s, p.partition_index);
            put_i16(s, p.error_code);
            put_i64(s, p.high_watermark);
            put_i64(s, p.last_stable_offset);
            if version >= 5 {
                put_i64(s, p.log_start_offset);
            }
            match &p.aborted_transactions {
                None => put_null_array(s, flexible),
                Some(txns) => {
                    put_array_len(s, flexible, txns.len())?;
                    for t in txns {
                        put_i64(s, t.producer_id);
                        put_i64(s, t.first_offset);
                        put_tags(s, flexible);
                    }
                }
            }
            if version >= 11 {
                put_i32(s, p.preferred_read_replica);
            }
            put_bytes_len(s, flexible, p.records_len)?;
            if p.records_len > 0 {
                s.records(ti, pi, p.records_len);
            }
            match p.diverging_epoch {
                Some((epoch, end_offset)) if flexible => {
                    // One tagged field: tag 0, size 13 = epoch i32 + end offset i64 + its empty tags.
                    put_uvarint(s, 1);
                    put_uvarint(s, 0);
                    put_uvarint(s, 13);
                    put_i32(s, epoch);
                    put_i64(s, end_offset);
                    put_tags(s, flexible);
                }
                _ => put_tags(s, flexible),
            }
        }
        put_tags(s, flexible);
    }
    put_tags(s, flexible);
    Ok(())
}

/// Encodes a complete Fetch response frame (4-byte size prefix, response
/// header, body) for `version` as pieces, leaving a [`FetchPiece::Records`]
/// hole wherever a partition has `records_len > 0`, so the broker can send
/// record data zero-copy from segment files.
///
/// `buf` is scratch space: it is cleared, reserved once for all encoded
/// bytes, and each `Encoded` piece is split off and frozen from it, so all
/// pieces share one allocation and `buf` can be reused by the caller.
///
/// Fields that do not exist in the requested version are silently left
/// out rather than rejected: `error_code`/`session_id` before v7,
/// `log_start_offset` before v5, `preferred_read_replica` before v11.
///
/// Errors: [`FetchEncodeError::UnsupportedVersion`] outside 4..=12, and
/// wire-format limits (topic name > 32767 bytes, `records_len` >
/// i32::MAX, frame > i32::MAX bytes). On error `buf` is left untouched.
pub fn encode_fetch_response(version: i16, correlation_id: i32, resp: &FetchResponseOut, buf: &mut BytesMut) -> Result<Vec<FetchPiece>, FetchEncodeError> {
    if !(FETCH_MIN_VERSION..=FETCH_MAX_VERSION).contains(&version) {
        return Err(FetchEncodeError::UnsupportedVersion(version));
    }
    let mut counter = Counter::default();
    encode_frame(&mut counter, version, correlation_id, resp)?;
    let frame_len = counter.encoded as u64 + counter.records_bytes;
    let size = i32::try_from(frame_len).map_err(|_| FetchEncodeError::FrameTooLarge(frame_len))?;

    buf.clear();
    buf.reserve(4 + counter.encoded);
    let mut w = Writer { buf, pieces: Vec::with_capacity(2 * counter.records_pieces + 1) };
    put_i32(&mut w, size);
    encode_frame(&mut w, version, correlation_id, resp)?;
    w.flush();
    Ok(w.pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
    use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{ApiKey, BrokerId, FetchResponse, ProducerId, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    /// Record data per topic/partition, indexed like the response.
    type Data = Vec<Vec<Bytes>>;

    fn real_batch(seed: i64, n: i64) -> Bytes {
        let recs: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: seed * 100 + i,
                // offset - sequence must be constant for one batch.
                sequence: i as i32,
                timestamp: 1_700_000_000_000 + i,
                key: Some(Bytes::from(format!("k{seed}-{i}"))),
                value: Some(Bytes::from(format!("value {seed} {i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
        buf.freeze()
    }

    fn part(index: i32, error: i16, aborted: Option<Vec<AbortedTxn>>, records: &Bytes) -> FetchPartitionOut {
        FetchPartitionOut {
            partition_index: index,
            error_code: error,
            high_watermark: 1_000 + i64::from(index),
            last_stable_offset: 900 + i64::from(index),
            log_start_offset: 10 + i64::from(index),
            aborted_transactions: aborted,
            preferred_read_replica: 2,
            records_len: records.len() as u32,
            diverging_epoch: None,
        }
    }

    /// 2 topics x 2 partitions: records, error + empty, empty, records.
    fn sample() -> (FetchResponseOut, Data) {
        let mut two = real_batch(1, 3).to_vec();
        two.extend_from_slice(&real_batch(2, 1));
        let d00 = Bytes::from(two);
        let d01 = Bytes::new();
        let d10 = Bytes::new();
        let d11 = real_batch(3, 5);
        let resp = FetchResponseOut {
            throttle_time_ms: 17,
            error_code: 0,
            session_id: 123_456,
            topics: vec![
                FetchTopicOut {
                    name: "orders".to_string(),
                    partitions: vec![
                        part(0, 0, Some(vec![AbortedTxn { producer_id: 7, first_offset: 50 }, AbortedTxn { producer_id: 8, first_offset: 60 }]), &d00),
                        // NOT_LEADER_OR_FOLLOWER, no records.
                        part(1, 6, None, &d01),
                    ],
                },
                FetchTopicOut {
                    name: "metrics.v2".to_string(),
                    // A follower's diverged partition (tagged field 0 from v12).
                    partitions: vec![FetchPartitionOut { diverging_epoch: Some((4, 1234)), ..part(3, 0, Some(vec![]), &d10) }, part(7, 0, None, &d11)],
                },
            ],
        };
        (resp, vec![vec![d00, d01], vec![d10, d11]])
    }

    /// The kafka-protocol message the peer should decode, version-adjusted.
    fn expected(v: i16, r: &FetchResponseOut, data: &Data) -> FetchResponse {
        FetchResponse::default()
            .with_throttle_time_ms(r.throttle_time_ms)
            .with_error_code(if v >= 7 { r.error_code } else { 0 })
            .with_session_id(if v >= 7 { r.session_id } else { 0 })
            .with_responses(
                r.topics
                    .iter()
                    .enumerate()
                    .map(|(ti, t)| {
                        FetchableTopicResponse::default().with_topic(TopicName(StrBytes::from_string(t.name.clone()))).with_partitions(
                            t.partitions
                                .iter()
                                .enumerate()
                                .map(|(pi, p)| {
                                    PartitionData::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(p.error_code)
                                        .with_high_watermark(p.high_watermark)
                                        .with_last_stable_offset(p.last_stable_offset)
                                        .with_log_start_offset(if v >= 5 { p.log_start_offset } else { -1 })
                                        .with_aborted_transactions(p.aborted_transactions.as_ref().map(|ts| {
                                            ts.iter()
                                                .map(|t| {
                                                    AbortedTransaction::default().with_producer_id(ProducerId(t.producer_id)).with_first_offset(t.first_offset)
                                                })
                                                .collect()
                                        }))
                                        .with_preferred_read_replica(BrokerId(if v >= 11 { p.preferred_read_replica } else { -1 }))
                                        .with_records(Some(data[ti][pi].clone()))
                                        .with_diverging_epoch(match p.diverging_epoch {
                                            Some((e, o)) if v >= 12 => {
                                                kafka_protocol::messages::fetch_response::EpochEndOffset::default().with_epoch(e).with_end_offset(o)
                                            }
                                            _ => Default::default(),
                                        })
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            )
    }

    fn assemble(pieces: &[FetchPiece], data: &Data) -> Bytes {
        let mut out = Vec::new();
        for p in pieces {
            match p {
                FetchPiece::Encoded(b) => out.extend_from_slice(b),
                FetchPiece::Records { topic, partition, len } => {
                    let d = &data[*topic][*partition];
                    assert_eq!(*len as usize, d.len());
                    assert!(!d.is_empty(), "no Records piece for empty records");
                    out.extend_from_slice(d);
                }
            }
        }
        Bytes::from(out)
    }

    /// Encodes, assembles, checks the size prefix, decodes with
    /// kafka-protocol and compares with its own encoder.
    fn roundtrip(v: i16, cid: i32, resp: &FetchResponseOut, data: &Data) -> FetchResponse {
        let mut buf = BytesMut::new();
        let pieces = encode_fetch_response(v, cid, resp, &mut buf).unwrap();
        for p in &pieces {
            if let FetchPiece::Encoded(b) = p {
                assert!(!b.is_empty(), "empty Encoded piece");
            }
        }
        let frame = assemble(&pieces, data);
        let mut body = frame.clone();
        let size = body.get_i32();
        assert_eq!(size as usize, frame.len() - 4, "size prefix v{v}");

        let hv = ApiKey::Fetch.response_header_version(v);
        assert_eq!(hv, if v >= 12 { 1 } else { 0 });
        let header = ResponseHeader::decode(&mut body, hv).unwrap();
        assert_eq!(header.correlation_id, cid);
        assert!(header.unknown_tagged_fields.is_empty());
        let decoded = FetchResponse::decode(&mut body, v).unwrap();
        assert_eq!(body.remaining(), 0, "trailing bytes v{v}");

        let exp = expected(v, resp, data);
        assert_eq!(decoded, exp, "decoded mismatch v{v}");

        // Byte-for-byte identical to kafka-protocol's encoder.
        let mut theirs = BytesMut::new();
        theirs.put_i32(0);
        ResponseHeader::default().with_correlation_id(cid).encode(&mut theirs, hv).unwrap();
        exp.encode(&mut theirs, v).unwrap();
        let n = (theirs.len() - 4) as i32;
        theirs[..4].copy_from_slice(&n.to_be_bytes());
        assert_eq!(&frame[..], &theirs[..], "bytes differ from kafka-protocol v{v}");
        decoded
    }

    #[test]
    fn all_versions_roundtrip_and_match_kafka_protocol() {
        let (resp, data) = sample();
        for v in FETCH_MIN_VERSION..=FETCH_MAX_VERSION {
            let d = roundtrip(v, 0x0102_0304 + i32::from(v), &resp, &data);
            // Spot-check every field explicitly as well.
            assert_eq!(d.throttle_time_ms, 17);
            assert_eq!(d.error_code, 0);
            assert_eq!(d.session_id, if v >= 7 { 123_456 } else { 0 });
            assert_eq!(d.responses.len(), 2);
            for (ti, t) in d.responses.iter().enumerate() {
                assert_eq!(t.topic.0.as_str(), resp.topics[ti].name);
                assert_eq!(t.partitions.len(), 2);
                for (pi, p) in t.partitions.iter().enumerate() {
                    let o = &resp.topics[ti].partitions[pi];
                    assert_eq!(p.partition_index, o.partition_index);
                    assert_eq!(p.error_code, o.error_code);
                    assert_eq!(p.high_watermark, o.high_watermark);
                    assert_eq!(p.last_stable_offset, o.last_stable_offset);
                    assert_eq!(p.log_start_offset, if v >= 5 { o.log_start_offset } else { -1 });
                    let got: Option<Vec<(i64, i64)>> = p.aborted_transactions.as_ref().map(|ts| ts.iter().map(|t| (t.producer_id.0, t.first_offset)).collect());
                    let want: Option<Vec<(i64, i64)>> = o.aborted_transactions.as_ref().map(|ts| ts.iter().map(|t| (t.producer_id, t.first_offset)).collect());
                    assert_eq!(got, want);
                    assert_eq!(p.preferred_read_replica.0, if v >= 11 { 2 } else { -1 });
                    // Empty, never null, and identical bytes.
                    assert_eq!(p.records.as_ref(), Some(&data[ti][pi]));
                    let (e, o) = match o.diverging_epoch {
                        Some(d) if v >= 12 => d,
                        _ => (-1, -1),
                    };
                    assert_eq!((p.diverging_epoch.epoch, p.diverging_epoch.end_offset), (e, o));
                    assert_eq!(p.current_leader, Default::default());
                    assert_eq!(p.snapshot_id, Default::default());
                }
            }
            // The record bytes are real batches that decode.
            let mut r00 = d.responses[0].partitions[0].records.clone().unwrap();
            let sets = RecordBatchDecoder::decode_all(&mut r00).unwrap();
            assert_eq!(sets.len(), 2);
            assert_eq!(sets[0].records[0].offset, 100);
            let mut r11 = d.responses[1].partitions[1].records.clone().unwrap();
            let set = RecordBatchDecoder::decode(&mut r11).unwrap();
            assert_eq!(set.records.len(), 5);
            assert_eq!(set.records[4].offset, 304);
        }
    }

    #[test]
    fn top_level_error_code_v7_plus() {
        let (mut resp, data) = sample();
        resp.error_code = 70; // FETCH_SESSION_ID_NOT_FOUND
        for v in FETCH_MIN_VERSION..=FETCH_MAX_VERSION {
            let d = roundtrip(v, 1, &resp, &data);
            assert_eq!(d.error_code, if v >= 7 { 70 } else { 0 });
        }
    }

    #[test]
    fn piece_layout() {
        let (resp, _) = sample();
        for v in FETCH_MIN_VERSION..=FETCH_MAX_VERSION {
            let mut buf = BytesMut::new();
            let pieces = encode_fetch_response(v, 5, &resp, &mut buf).unwrap();
            let holes: Vec<(usize, usize, u32)> = pieces
                .iter()
                .filter_map(|p| match p {
                    FetchPiece::Records { topic, partition, len } => Some((*topic, *partition, *len)),
                    FetchPiece::Encoded(_) => None,
                })
                .collect();
            assert_eq!(holes, vec![(0, 0, resp.topics[0].partitions[0].records_len), (1, 1, resp.topics[1].partitions[1].records_len)]);
            assert!(matches!(pieces[0], FetchPiece::Encoded(_)));
            assert!(matches!(pieces[1], FetchPiece::Records { .. }));
            // Pieces alternate; before v12 the frame ends with the last
            // partition's records, v12 adds trailing tagged-field bytes.
            if v >= 12 {
                assert_eq!(pieces.len(), 5);
                assert_eq!(pieces[4], FetchPiece::Encoded(Bytes::from_static(&[0, 0, 0])));
            } else {
                assert_eq!(pieces.len(), 4);
                assert!(matches!(pieces[3], FetchPiece::Records { .. }));
            }
            // All encoded pieces come from one contiguous allocation.
            let enc: Vec<&Bytes> = pieces
                .iter()
                .filter_map(|p| match p {
                    FetchPiece::Encoded(b) => Some(b),
                    FetchPiece::Records { .. } => None,
                })
                .collect();
            for w in enc.windows(2) {
                assert_eq!(w[0].as_ptr().wrapping_add(w[0].len()), w[1].as_ptr());
            }
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn no_records_means_single_piece() {
        let resp = FetchResponseOut {
            throttle_time_ms: 0,
            error_code: 0,
            session_id: 0,
            topics: vec![FetchTopicOut {
                name: "t".into(),
                partitions: vec![FetchPartitionOut {
                    partition_index: 0,
                    error_code: 1, // OFFSET_OUT_OF_RANGE
                    ..Default::default()
                }],
            }],
        };
        let data = vec![vec![Bytes::new()]];
        for v in FETCH_MIN_VERSION..=FETCH_MAX_VERSION {
            let mut buf = BytesMut::new();
            let pieces = encode_fetch_response(v, 9, &resp, &mut buf).unwrap();
            assert_eq!(pieces.len(), 1);
            let d = roundtrip(v, 9, &resp, &data);
            assert_eq!(d.responses[0].partitions[0].records, Some(Bytes::new()));
            assert_eq!(d.responses[0].partitions[0].error_code, 1);
        }
    }

    #[test]
    fn empty_response() {
        let resp = FetchResponseOut::default();
        for v in FETCH_MIN_VERSION..=FETCH_MAX_VERSION {
            let d = roundtrip(v, -1, &resp, &vec![]);
            assert!(d.responses.is_empty());
        }
        let mut buf = BytesMut::new();
        let p = encode_fetch_response(4, 7, &resp, &mut buf).unwrap();
        // size=12 | cid | throttle | topics=0
        assert_eq!(
            p,
            vec![FetchPiece::Encoded(Bytes::from_static(&[
                0, 0, 0, 12, // size
                0, 0, 0, 7, // correlation id
                0, 0, 0, 0, // throttle
                0, 0, 0, 0, // topics: 0
            ]))]
        );
        let p = encode_fetch_response(12, 7, &resp, &mut buf).unwrap();
        // size=17 | cid | hdr tags | throttle | err | session | topics=0 (1) | tags
        assert_eq!(
            p,
            vec![FetchPiece::Encoded(Bytes::from_static(&[
                0, 0, 0, 17, // size
                0, 0, 0, 7, // correlation id
                0, // header tagged fields
                0, 0, 0, 0, // throttle
                0, 0, // error
                0, 0, 0, 0, // session
                1, // topics: compact length 0 + 1
                0, // tagged fields
            ]))]
        );
    }

    #[test]
    fn unsupported_versions() {
        let (resp, _) = sample();
        let mut buf = BytesMut::new();
        for v in [i16::MIN, -1, 0, 1, 2, 3, 13, 16, 18, i16::MAX] {
            assert_eq!(encode_fetch_response(v, 0, &resp, &mut buf), Err(FetchEncodeError::UnsupportedVersion(v)));
        }
    }

    #[test]
    fn varint_boundaries() {
        // Lengths around 127/128 exercise multi-byte unsigned varints in
        // compact strings, arrays and bytes (v12).
        let mut data: Data = Vec::new();
        let mut topics = Vec::new();
        for (ti, name_len) in [126usize, 127, 128].into_iter().enumerate() {
            let name = "x".repeat(name_len - ti) + &"y".repeat(ti);
            let n_parts = [1usize, 127, 130][ti];
            let mut parts = Vec::new();
            let mut pdata = Vec::new();
            for pi in 0..n_parts {
                let len = [0usize, 1, 126, 127, 128, 300, 16_384][pi % 7];
                let rec = Bytes::from(vec![(pi % 251) as u8; len]);
                let aborted = match pi % 3 {
                    0 => None,
                    1 => Some(vec![]),
                    _ => Some((0..(pi as i64 % 130)).map(|i| AbortedTxn { producer_id: i, first_offset: i * 2 }).collect()),
                };
                parts.push(FetchPartitionOut {
                    partition_index: pi as i32,
                    error_code: 0,
                    high_watermark: pi as i64,
                    last_stable_offset: pi as i64,
                    log_start_offset: 0,
                    aborted_transactions: aborted,
                    preferred_read_replica: -1,
                    records_len: rec.len() as u32,
                    diverging_epoch: None,
                });
                pdata.push(rec);
            }
            topics.push(FetchTopicOut { name, partitions: parts });
            data.push(pdata);
        }
        let resp = FetchResponseOut { throttle_time_ms: 0, error_code: 0, session_id: 0, topics };
        for v in FETCH_MIN_VERSION..=FETCH_MAX_VERSION {
            roundtrip(v, 3, &resp, &data);
        }
    }

    #[test]
    fn long_topic_name_limits() {
        let mut resp = FetchResponseOut::default();
        resp.topics.push(FetchTopicOut { name: "a".repeat(32_767), partitions: vec![] });
        for v in FETCH_MIN_VERSION..=FETCH_MAX_VERSION {
            roundtrip(v, 3, &resp, &vec![vec![]]);
        }
        resp.topics[0].name.push('a');
        let mut buf = BytesMut::from(&b"keep"[..]);
        for v in [4, 12] {
            assert_eq!(encode_fetch_response(v, 0, &resp, &mut buf), Err(FetchEncodeError::TopicNameTooLong { len: 32_768 }));
        }
        assert_eq!(&buf[..], b"keep", "buf untouched on error");
    }

    #[test]
    fn records_and_frame_size_limits() {
        let mut resp = FetchResponseOut::default();
        resp.topics.push(FetchTopicOut { name: "t".into(), partitions: vec![FetchPartitionOut { records_len: i32::MAX as u32 + 1, ..Default::default() }] });
        let mut buf = BytesMut::new();
        for v in [4, 11, 12] {
            assert_eq!(encode_fetch_response(v, 0, &resp, &mut buf), Err(FetchEncodeError::RecordsTooLarge(i32::MAX as u32 + 1)));
        }
        resp.topics[0].partitions[0].records_len = u32::MAX;
        assert_eq!(encode_fetch_response(12, 0, &resp, &mut buf), Err(FetchEncodeError::RecordsTooLarge(u32::MAX)));

        // Each partition is legal but the frame is not.
        resp.topics[0].partitions[0].records_len = 1 << 30;
        resp.topics[0].partitions.push(FetchPartitionOut { partition_index: 1, records_len: 1 << 30, ..Default::default() });
        assert!(matches!(
            encode_fetch_response(4, 0, &resp, &mut buf),
            Err(FetchEncodeError::FrameTooLarge(n)) if n > i32::MAX as u64
        ));

        // The largest frame that fits is accepted (no data is touched).
        resp.topics[0].partitions.truncate(1);
        let mut small = resp.clone();
        small.topics[0].partitions[0].records_len = 0;
        let overhead = match &encode_fetch_response(4, 0, &small, &mut buf).unwrap()[..] {
            [FetchPiece::Encoded(b)] => b.len() - 4,
            other => panic!("unexpected pieces {other:?}"),
        };
        resp.topics[0].partitions[0].records_len = (i32::MAX as usize - overhead) as u32;
        let pieces = encode_fetch_response(4, 0, &resp, &mut buf).unwrap();
        match &pieces[0] {
            FetchPiece::Encoded(b) => assert_eq!(&b[..4], &i32::MAX.to_be_bytes()),
            other => panic!("unexpected piece {other:?}"),
        }
        resp.topics[0].partitions[0].records_len += 1;
        assert!(matches!(encode_fetch_response(4, 0, &resp, &mut buf), Err(FetchEncodeError::FrameTooLarge(_))));
    }

    #[test]
    fn buffer_is_reusable() {
        let (resp, data) = sample();
        let mut buf = BytesMut::with_capacity(16);
        buf.extend_from_slice(b"stale scratch data");
        let first = encode_fetch_response(12, 1, &resp, &mut buf).unwrap();
        let second = encode_fetch_response(4, 2, &resp, &mut buf).unwrap();
        let third = encode_fetch_response(12, 1, &resp, &mut buf).unwrap();
        // Earlier pieces stay valid after buf is reused.
        assert_eq!(first, third);
        let f1 = assemble(&first, &data);
        let f2 = assemble(&second, &data);
        let mut b1 = f1.slice(4..);
        assert_eq!(ResponseHeader::decode(&mut b1, 1).unwrap().correlation_id, 1);
        assert!(FetchResponse::decode(&mut b1, 12).is_ok());
        let mut b2 = f2.slice(4..);
        assert_eq!(ResponseHeader::decode(&mut b2, 0).unwrap().correlation_id, 2);
        assert!(FetchResponse::decode(&mut b2, 4).is_ok());
    }

    #[test]
    fn non_default_fields_dropped_in_old_versions() {
        // session_id / preferred_read_replica are not representable in old
        // versions; they are dropped, and the frame still decodes.
        let (mut resp, data) = sample();
        resp.session_id = 5;
        for p in resp.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            p.preferred_read_replica = 4;
        }
        for v in FETCH_MIN_VERSION..=FETCH_MAX_VERSION {
            let d = roundtrip(v, 1, &resp, &data);
            assert_eq!(d.session_id, if v >= 7 { 5 } else { 0 });
            assert_eq!(d.responses[0].partitions[0].preferred_read_replica.0, if v >= 11 { 4 } else { -1 });
        }
    }

    #[test]
    fn uvarint_encoding() {
        struct V(Vec<u8>);
        impl Sink for V {
            fn put(&mut self, b: &[u8]) {
                self.0.extend_from_slice(b);
            }
            fn records(&mut self, _: usize, _: usize, _: u32) {}
        }
        for (n, want) in [
            (0u32, vec![0u8]),
            (1, vec![1]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
            (16_384, vec![0x80, 0x80, 0x01]),
            (u32::MAX, vec![0xff, 0xff, 0xff, 0xff, 0x0f]),
        ] {
            let mut v = V(Vec::new());
            put_uvarint(&mut v, n);
            assert_eq!(v.0, want, "{n}");
        }
    }

    #[test]
    fn error_messages() {
        assert_eq!(FetchEncodeError::UnsupportedVersion(13).to_string(), "unsupported Fetch response version 13");
        assert_eq!(FetchEncodeError::TopicNameTooLong { len: 40_000 }.to_string(), "topic name of 40000 bytes is too long to encode");
    }
}
