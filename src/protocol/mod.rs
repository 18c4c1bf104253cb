//! Bytes <-> typed Kafka requests and responses, on the kafka-protocol crate.
//! No I/O here: everything takes the API version explicitly, so benches and
//! fuzz targets can call it directly.
//!
//! `record_batch` keeps RecordBatch v2 as bytes (header validation, offset rewrite);
//! `record_validator` walks the records inside a batch (Kafka's LogValidator);
//! `fetch_response` encodes Fetch responses around file ranges (zero-copy);
//! `topic` holds Kafka's topic name rules (legal names, collisions, internal topics).

pub mod compression;
pub mod control;
pub mod error_codes;
pub mod fetch_response;
pub mod record_batch;
pub mod record_validator;
pub mod topic;

use std::fs::File;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// The APIs and version ranges this broker implements — the single source for
/// both ApiVersions and the router's version gate.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, fetch_response::FETCH_MIN_VERSION, fetch_response::FETCH_MAX_VERSION),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    // kafka-protocol decodes CreateTopics from v2 and DeleteTopics from v1 (Kafka
    // 4.0 removed the older ones, KIP-896).
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeQuorum, 0, 1),
    (ApiKey::UnregisterBroker, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::InitProducerId, 0, 4),
    // v4+ is the broker-to-broker (KIP-890) form; clients use 0-3.
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    // Inter-broker (a transaction coordinator on another broker); kafka-protocol
    // decodes v1 only, the one Kafka 4.0 keeps (KIP-896 removed v0).
    (ApiKey::WriteTxnMarkers, 1, 1),
    // The consumer group protocol (KIP-848); v1 adds SubscribedTopicRegex and
    // has the client generate its member id (KIP-1082).
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// Wall-clock time in Kafka's timestamp unit (ms since the Unix epoch): record
/// timestamps, LogAppendTime, retention and tombstone horizons, group expiry.
/// The system's: the broker's time-based logic reads [`crate::clock::Clock`]
/// instead (from its config), which tests can move.
pub fn now_ms() -> i64 {
    crate::clock::system_now_ms()
}

/// The supported version range of `key`, if the API is implemented.
pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS.iter().find(|(k, _, _)| *k == key).map(|&(_, lo, hi)| (lo, hi))
}

/// The fixed prefix every request header shares, readable before knowing the version.
#[derive(Debug, Clone, Copy)]
pub struct HeaderPrefix {
    /// API key of the request (0 = Produce, 1 = Fetch, ...).
    pub api_key: i16,
    /// Version of that API the request is encoded in.
    pub api_version: i16,
    /// Correlation id, echoed in the response so the client can match it.
    pub correlation_id: i32,
}

/// Reads api key, version and correlation id (bytes 0..8 of every request header version).
pub fn peek_header(frame: &[u8]) -> Option<HeaderPrefix> {
    if frame.len() < 8 {
        return None;
    }
    Some(HeaderPrefix {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// The client id of a request (header v1 and later: a nullable string right
/// after the prefix, in every header version but ControlledShutdown v0's), read
/// without decoding the header. None when null, absent, cut short or not UTF-8.
pub fn peek_client_id(frame: &[u8]) -> Option<&str> {
    let h = peek_header(frame)?;
    // ControlledShutdown (key 7, pre-KRaft: no variant in kafka-protocol) v0.
    if h.api_key == 7 && h.api_version == 0 {
        return None;
    }
    let len = i16::from_be_bytes([*frame.get(8)?, *frame.get(9)?]);
    let len = usize::try_from(len).ok()?;
    std::str::from_utf8(frame.get(10..10 + len)?).ok()
}

/// Decodes the full request header; `frame` is left at the start of the body.
pub fn decode_header(frame: &mut Bytes, key: ApiKey, version: i16) -> CodecResult<RequestHeader> {
    RequestHeader::decode(frame, key.request_header_version(version)).map_err(|e| e.to_string())
}

/// Decodes a request body of a known type.
pub fn decode_body<T: Decodable>(frame: &mut Bytes, version: i16) -> CodecResult<T> {
    T::decode(frame, version).map_err(|e| e.to_string())
}

/// Decode/encode failures as text: they only ever close a connection or get logged,
/// so callers need not depend on the codec crate's error type.
pub type CodecResult<T> = std::result::Result<T, String>;

/// One piece of a response on the wire: encoded bytes or a range of a segment file.
pub enum Piece {
    /// Encoded bytes (response header, fields), written with `writev`.
    Bytes(Bytes),
    /// A range of a segment file holding whole record batches, spliced to the
    /// socket from the page cache (Fetch).
    File {
        /// The segment file holding the records.
        file: Arc<File>,
        /// Byte position of the range in the file.
        pos: u64,
        /// Length of the range in bytes.
        len: u32,
    },
}

/// A complete response frame (size prefix included), as pieces in wire order.
pub struct ResponseFrame {
    /// The pieces, written to the socket in this order.
    pub pieces: Vec<Piece>,
}

/// Encodes `body` with its response header and the 4-byte size prefix, reusing `buf`.
pub fn encode_response<T: Encodable>(buf: &mut BytesMut, key: ApiKey, version: i16, correlation_id: i32, body: &T) -> CodecResult<ResponseFrame> {
    buf.clear();
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(buf, key.response_header_version(version)).map_err(|e| e.to_string())?;
    body.encode(buf, version).map_err(|e| e.to_string())?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(ResponseFrame { pieces: vec![Piece::Bytes(buf.split().freeze())] })
}

#[cfg(test)]
mod advertised_tests {
    use super::*;

    /// Every advertised version must be one kafka-protocol can decode: a
    /// range wider than the decoder's means a client that picks the low end
    /// gets its connection closed instead of an answer (CreateTopics v0-1 and
    /// DeleteTopics v0 were once advertised that way).
    #[test]
    fn advertised_ranges_are_decodable() {
        for &(key, lo, hi) in SUPPORTED_APIS {
            let v = key.valid_versions();
            assert!(lo <= hi, "{key:?}: empty range {lo}-{hi}");
            assert!(v.min <= lo && hi <= v.max, "{key:?}: advertised {lo}-{hi}, kafka-protocol decodes {}-{}", v.min, v.max);
        }
    }
}

#[cfg(test)]
mod client_id_tests {
    use super::*;

    #[test]
    fn client_id_is_peeked_from_the_header() {
        // Metadata v1: key 3, version 1, correlation id 7, client id "rdkafka".
        let mut f = vec![0, 3, 0, 1, 0, 0, 0, 7, 0, 7];
        f.extend_from_slice(b"rdkafka");
        f.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(peek_client_id(&f), Some("rdkafka"));
        // Null, cut short, and ControlledShutdown v0 (no client id in its header).
        assert_eq!(peek_client_id(&[0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xff]), None);
        assert_eq!(peek_client_id(&f[..12]), None);
        assert_eq!(peek_client_id(&[0, 7, 0, 0, 0, 0, 0, 7, 0, 1, b'x']), None);
    }
}
