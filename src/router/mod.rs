//! One flat dispatch on the API key, with the version gate in exactly one place.
//! ApiVersions is exempt from the gate: KIP-511 says an unsupported version
//! still gets a (v0) answer listing what we support. Only this module decides
//! to close a connection: an unparseable frame, an unknown API or an
//! unsupported version of any other API (Kafka closes in those cases too).

use bytes::Bytes;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AlterConfigsRequest, AlterPartitionReassignmentsRequest, ApiKey, ApiVersionsRequest,
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest, DescribeLogDirsRequest, DescribeProducersRequest,
    DescribeQuorumRequest, DescribeTransactionsRequest, ElectLeadersRequest, EndTxnRequest, FetchRequest, FindCoordinatorRequest, HeartbeatRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest,
    ListPartitionReassignmentsRequest, ListTransactionsRequest, MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest,
    OffsetForLeaderEpochRequest, ProduceRequest, SyncGroupRequest, TxnOffsetCommitRequest, UnregisterBrokerRequest, WriteTxnMarkersRequest,
};

use std::time::Instant;

use crate::handlers::{self, Client, Ctx};
use crate::protocol::error_codes::ErrorCodes;
use crate::protocol::{decode_body, decode_header, encode_response, peek_header, supported_range, ResponseFrame};

/// What the connection does with a request.
pub enum Outcome {
    /// Send this frame (in request order).
    Respond(ResponseFrame),
    /// Send nothing (Produce with acks=0).
    NoResponse,
    /// Close the connection; the reason is logged.
    Close(String),
}

macro_rules! respond {
    ($ctx:expr, $key:expr, $ver:expr, $cid:expr, $body:expr) => {{
        count_errors($key, $ver, &$body);
        let mut buf = std::mem::take(&mut *$ctx.encode_buf.borrow_mut());
        let out = encode_response(&mut buf, $key, $ver, $cid, &$body);
        *$ctx.encode_buf.borrow_mut() = buf;
        match out {
            Ok(frame) => Outcome::Respond(frame),
            Err(e) => Outcome::Close(format!("encoding {:?} v{} response failed: {e}", $key, $ver)),
        }
    }};
}

/// Counts the error codes of a response (`shardlog_request_errors_total`).
fn count_errors(key: ApiKey, version: i16, body: &impl ErrorCodes) {
    crate::metrics::with(|m| {
        body.each_error_code(&mut |code| {
            if code != 0 {
                m.error(key as i16, version, code)
            }
        })
    });
}

/// Routes one request frame (without its size prefix) to its handler, and
/// counts it with its latency (`shardlog_requests_total`,
/// `shardlog_request_duration_seconds`; a request closing the connection counts too).
/// `client` is the connection it came on.
pub async fn route(ctx: &Ctx, frame: Bytes, client: &Client) -> Outcome {
    let started = Instant::now();
    let api = peek_header(&frame).map(|h| (h.api_key, h.api_version));
    let out = dispatch(ctx, frame, client).await;
    if let Some((key, version)) = api {
        crate::metrics::with(|m| m.request(key, version, started.elapsed()));
    }
    out
}

async fn dispatch(ctx: &Ctx, mut frame: Bytes, client: &Client) -> Outcome {
    let Some(h) = peek_header(&frame) else {
        return Outcome::Close("request shorter than its header".into());
    };
    let Ok(key) = ApiKey::try_from(h.api_key) else {
        return Outcome::Close(format!("unknown api key {}", h.api_key));
    };
    let (v, cid) = (h.api_version, h.correlation_id);
    let Some((lo, hi)) = supported_range(key) else {
        return Outcome::Close(format!("api {key:?} is not implemented"));
    };
    if v < lo || v > hi {
        if key == ApiKey::ApiVersions {
            return respond!(ctx, key, 0, cid, handlers::api_versions::handle(true));
        }
        return Outcome::Close(format!("unsupported version {v} of {key:?} (supported {lo}-{hi})"));
    }
    let header = match decode_header(&mut frame, key, v) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(format!("bad {key:?} request header: {e}")),
    };
    let client_id = header.client_id.as_ref().map(|s| s.to_string()).unwrap_or_default();
    macro_rules! body {
        ($t:ty) => {
            match decode_body::<$t>(&mut frame, v) {
                Ok(b) => b,
                Err(e) => return Outcome::Close(format!("bad {key:?} v{v} request: {e}")),
            }
        };
    }
    match key {
        ApiKey::ApiVersions => {
            let _req = body!(ApiVersionsRequest);
            respond!(ctx, key, v, cid, handlers::api_versions::handle(false))
        }
        ApiKey::Metadata => {
            let req = body!(MetadataRequest);
            let resp = handlers::metadata::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::CreateTopics => {
            let req = body!(CreateTopicsRequest);
            let resp = handlers::create_topics::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::Produce => {
            let req = body!(ProduceRequest);
            match handlers::produce::handle(ctx, req, v).await {
                Some(resp) => respond!(ctx, key, v, cid, resp),
                None => Outcome::NoResponse,
            }
        }
        ApiKey::Fetch => {
            let req = body!(FetchRequest);
            match handlers::fetch::handle(ctx, req, v, cid, client).await {
                Ok(frame) => Outcome::Respond(frame),
                Err(e) => Outcome::Close(format!("encoding Fetch v{v} response failed: {e}")),
            }
        }
        ApiKey::ListOffsets => {
            let req = body!(ListOffsetsRequest);
            let resp = handlers::list_offsets::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::DeleteTopics => {
            let req = body!(DeleteTopicsRequest);
            let resp = handlers::delete_topics::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::CreatePartitions => {
            let req = body!(CreatePartitionsRequest);
            let resp = handlers::create_partitions::handle(ctx, req).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::FindCoordinator => {
            let req = body!(FindCoordinatorRequest);
            let resp = handlers::find_coordinator::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::JoinGroup => {
            let req = body!(JoinGroupRequest);
            let resp = handlers::join_group::handle(ctx, req, v, client_id, client.host.to_string()).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::SyncGroup => {
            let req = body!(SyncGroupRequest);
            let resp = handlers::sync_group::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::Heartbeat => {
            let req = body!(HeartbeatRequest);
            let resp = handlers::heartbeat::handle(ctx, req).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::LeaveGroup => {
            let req = body!(LeaveGroupRequest);
            let resp = handlers::leave_group::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::OffsetCommit => {
            let req = body!(OffsetCommitRequest);
            let resp = handlers::offset_commit::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::OffsetFetch => {
            let req = body!(OffsetFetchRequest);
            let resp = handlers::offset_fetch::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::ListGroups => {
            let req = body!(ListGroupsRequest);
            let resp = handlers::list_groups::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::DescribeGroups => {
            let req = body!(DescribeGroupsRequest);
            let resp = handlers::describe_groups::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::DeleteGroups => {
            let req = body!(DeleteGroupsRequest);
            let resp = handlers::delete_groups::handle(ctx, req).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::OffsetDelete => {
            let req = body!(OffsetDeleteRequest);
            let resp = handlers::offset_delete::handle(ctx, req).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::DescribeConfigs => {
            let req = body!(DescribeConfigsRequest);
            let resp = handlers::describe_configs::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::AlterConfigs => {
            let req = body!(AlterConfigsRequest);
            let resp = handlers::alter_configs::handle_alter(ctx, req).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::IncrementalAlterConfigs => {
            let req = body!(IncrementalAlterConfigsRequest);
            let resp = handlers::alter_configs::handle_incremental(ctx, req).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::DeleteRecords => {
            let req = body!(DeleteRecordsRequest);
            let resp = handlers::delete_records::handle(ctx, req).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::DescribeCluster => {
            let req = body!(DescribeClusterRequest);
            let resp = handlers::describe_cluster::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::WriteTxnMarkers => {
            let req = body!(WriteTxnMarkersRequest);
            let resp = handlers::write_txn_markers::handle(ctx, req).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::ElectLeaders => {
            let req = body!(ElectLeadersRequest);
            let resp = handlers::elect_leaders::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::AlterPartitionReassignments => {
            let req = body!(AlterPartitionReassignmentsRequest);
            let resp = handlers::alter_partition_reassignments::handle(ctx, req).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::ListPartitionReassignments => {
            let req = body!(ListPartitionReassignmentsRequest);
            let resp = handlers::list_partition_reassignments::handle(ctx, req);
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::UnregisterBroker => {
            let req = body!(UnregisterBrokerRequest);
            let resp = handlers::unregister_broker::handle(ctx, req).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::DescribeQuorum => {
            let req = body!(DescribeQuorumRequest);
            let resp = handlers::describe_quorum::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::DescribeLogDirs => {
            let req = body!(DescribeLogDirsRequest);
            let resp = handlers::describe_log_dirs::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::OffsetForLeaderEpoch => {
            let req = body!(OffsetForLeaderEpochRequest);
            let resp = handlers::offset_for_leader_epoch::handle(ctx, req).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::DescribeProducers => {
            let req = body!(DescribeProducersRequest);
            let resp = handlers::describe_producers::handle(ctx, req).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::InitProducerId => {
            let req = body!(InitProducerIdRequest);
            let resp = handlers::init_producer_id::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::AddPartitionsToTxn => {
            let req = body!(AddPartitionsToTxnRequest);
            let resp = handlers::add_partitions_to_txn::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::AddOffsetsToTxn => {
            let req = body!(AddOffsetsToTxnRequest);
            let resp = handlers::add_offsets_to_txn::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::EndTxn => {
            let req = body!(EndTxnRequest);
            let resp = handlers::end_txn::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::TxnOffsetCommit => {
            let req = body!(TxnOffsetCommitRequest);
            let resp = handlers::txn_offset_commit::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::DescribeTransactions => {
            let req = body!(DescribeTransactionsRequest);
            let resp = handlers::describe_transactions::handle(ctx, req).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::ListTransactions => {
            let req = body!(ListTransactionsRequest);
            let resp = handlers::list_transactions::handle(ctx, req, v).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let req = body!(ConsumerGroupHeartbeatRequest);
            let resp = handlers::consumer_group_heartbeat::handle(ctx, req, v, client_id, client.host.to_string()).await;
            respond!(ctx, key, v, cid, resp)
        }
        ApiKey::ConsumerGroupDescribe => {
            let req = body!(ConsumerGroupDescribeRequest);
            let resp = handlers::consumer_group_describe::handle(ctx, req).await;
            respond!(ctx, key, v, cid, resp)
        }
        _ => Outcome::Close(format!("api {key:?} is not implemented")),
    }
}
