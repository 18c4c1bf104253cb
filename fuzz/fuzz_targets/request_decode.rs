//! One request frame (size prefix removed, as `net::frame` hands it to the
//! router), decoded the way `router::route` does before any handler runs:
//! `peek_header`, the API key, the version gate over `SUPPORTED_APIS`, the
//! request header, then the body type of that API through
//! `protocol::decode_body`. Produce bodies then go through the produce
//! handler's first step, `validate_batches`, on every partition's records.
//!
//! Property: whatever the bytes, this returns (an error is fine) without a
//! panic, a hang (`-timeout`) or an allocation of 256 MiB or more
//! (`shardlog_fuzz::CappedAlloc`).
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::*;
use libfuzzer_sys::fuzz_target;
use shardlog::protocol::record_batch::validate_batches;
use shardlog::protocol::{decode_body, decode_header, peek_header, supported_range, SUPPORTED_APIS};

#[global_allocator]
static ALLOC: shardlog_fuzz::CappedAlloc = shardlog_fuzz::CappedAlloc;

/// `message.max.bytes`'s default: the batch limit the produce handler applies.
const MESSAGE_MAX_BYTES: usize = 1_048_588;

/// Decodes the body of `key` as the router does. `None` only for an API this
/// target does not list, which `init` turns into a failure at start-up.
fn decode(key: ApiKey, frame: &mut Bytes, v: i16) -> Option<Result<(), String>> {
    macro_rules! body {
        ($t:ty) => {
            decode_body::<$t>(frame, v).map(drop)
        };
    }
    Some(match key {
        ApiKey::Produce => decode_body::<ProduceRequest>(frame, v).map(|req| {
            for t in &req.topic_data {
                for p in &t.partition_data {
                    if let Some(records) = &p.records {
                        let _ = validate_batches(records, MESSAGE_MAX_BYTES);
                    }
                }
            }
        }),
        ApiKey::Fetch => body!(FetchRequest),
        ApiKey::ListOffsets => body!(ListOffsetsRequest),
        ApiKey::Metadata => body!(MetadataRequest),
        ApiKey::ApiVersions => body!(ApiVersionsRequest),
        ApiKey::CreateTopics => body!(CreateTopicsRequest),
        ApiKey::DeleteTopics => body!(DeleteTopicsRequest),
        ApiKey::CreatePartitions => body!(CreatePartitionsRequest),
        ApiKey::FindCoordinator => body!(FindCoordinatorRequest),
        ApiKey::JoinGroup => body!(JoinGroupRequest),
        ApiKey::SyncGroup => body!(SyncGroupRequest),
        ApiKey::Heartbeat => body!(HeartbeatRequest),
        ApiKey::LeaveGroup => body!(LeaveGroupRequest),
        ApiKey::OffsetCommit => body!(OffsetCommitRequest),
        ApiKey::OffsetFetch => body!(OffsetFetchRequest),
        ApiKey::ListGroups => body!(ListGroupsRequest),
        ApiKey::DescribeGroups => body!(DescribeGroupsRequest),
        ApiKey::DeleteGroups => body!(DeleteGroupsRequest),
        ApiKey::OffsetDelete => body!(OffsetDeleteRequest),
        ApiKey::DescribeConfigs => body!(DescribeConfigsRequest),
        ApiKey::AlterConfigs => body!(AlterConfigsRequest),
        ApiKey::IncrementalAlterConfigs => body!(IncrementalAlterConfigsRequest),
        ApiKey::DeleteRecords => body!(DeleteRecordsRequest),
        ApiKey::DescribeCluster => body!(DescribeClusterRequest),
        ApiKey::DescribeLogDirs => body!(DescribeLogDirsRequest),
        ApiKey::OffsetForLeaderEpoch => body!(OffsetForLeaderEpochRequest),
        ApiKey::DescribeProducers => body!(DescribeProducersRequest),
        ApiKey::InitProducerId => body!(InitProducerIdRequest),
        ApiKey::AddPartitionsToTxn => body!(AddPartitionsToTxnRequest),
        ApiKey::AddOffsetsToTxn => body!(AddOffsetsToTxnRequest),
        ApiKey::EndTxn => body!(EndTxnRequest),
        ApiKey::TxnOffsetCommit => body!(TxnOffsetCommitRequest),
        ApiKey::DescribeTransactions => body!(DescribeTransactionsRequest),
        ApiKey::ListTransactions => body!(ListTransactionsRequest),
        ApiKey::ConsumerGroupHeartbeat => body!(ConsumerGroupHeartbeatRequest),
        ApiKey::ConsumerGroupDescribe => body!(ConsumerGroupDescribeRequest),
        ApiKey::DescribeQuorum => body!(DescribeQuorumRequest),
        ApiKey::UnregisterBroker => body!(UnregisterBrokerRequest),
        ApiKey::ElectLeaders => body!(ElectLeadersRequest),
        ApiKey::AlterPartitionReassignments => body!(AlterPartitionReassignmentsRequest),
        ApiKey::ListPartitionReassignments => body!(ListPartitionReassignmentsRequest),
        ApiKey::WriteTxnMarkers => body!(WriteTxnMarkersRequest),
        _ => return None,
    })
}

/// Every advertised API must be decoded here: an API added to
/// `SUPPORTED_APIS` without a line above fails the first run.
fn every_advertised_api_is_covered() {
    for &(key, lo, _) in SUPPORTED_APIS {
        if decode(key, &mut Bytes::new(), lo).is_none() {
            panic!("{key:?} is advertised but request_decode does not decode it: add it to fuzz_targets/request_decode.rs");
        }
    }
}

fuzz_target!(init: every_advertised_api_is_covered(), |data: &[u8]| {
    let mut frame = Bytes::copy_from_slice(data);
    let Some(h) = peek_header(&frame) else { return };
    let Ok(key) = ApiKey::try_from(h.api_key) else { return };
    let Some((lo, hi)) = supported_range(key) else { return };
    let v = h.api_version;
    // Out of range: the router closes the connection (ApiVersions gets a v0
    // answer) without decoding anything more.
    if v < lo || v > hi {
        return;
    }
    let Ok(header) = decode_header(&mut frame, key, v) else { return };
    let _client_id = header.client_id.as_ref().map(|s| s.to_string()).unwrap_or_default();
    let _ = decode(key, &mut frame, v).expect("covered at init");
});
