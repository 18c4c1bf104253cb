//! `GET /api/v1/topics/{topic}/partitions/{p}/records`: a page of a partition's
//! records, read as a consumer would (up to the high watermark, from the
//! partition's owner shard, through this shard's io_uring ring), decoded from
//! their batches (decompressed as clients do) and given with keys, values and
//! header values in base64. Control records (transaction markers) are left out.
//! A partition led by another broker is answered 421 with its leader.

use std::os::fd::AsRawFd;

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use kafka_protocol::records::{RecordBatchDecoder, TimestampType};
use serde::Serialize;

use super::api::{self, Admin};
use crate::metadata::Route;
use crate::shard::request::{FetchRead, ShardRequest, ShardResponse, TopicPartition};

/// Records a page holds by default, and at most.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;
/// Bytes read per step (a page takes a few steps at most).
const READ_BYTES: usize = 1024 * 1024;
/// Reads one page may make.
const MAX_READS: usize = 8;

#[derive(Serialize)]
struct HeaderView {
    key: String,
    value: Option<String>,
}

#[derive(Serialize)]
struct RecordView {
    offset: i64,
    timestamp: i64,
    timestamp_type: &'static str,
    key: Option<String>,
    value: Option<String>,
    headers: Vec<HeaderView>,
}

#[derive(Serialize)]
struct Page {
    topic: String,
    partition: i32,
    log_start_offset: i64,
    high_watermark: i64,
    next_offset: i64,
    records: Vec<RecordView>,
}

fn b64(b: &Bytes) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The page asked for.
pub async fn page(admin: &Admin, topic: &str, partition: &str, query: &str) -> Response<Full<Bytes>> {
    let Ok(partition) = partition.parse::<i32>() else { return api::error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "the partition must be a number") };
    let num = |k: &str| api::query_param(query, k).map(|v| v.parse::<i64>());
    let limit = match num("limit") {
        None => DEFAULT_LIMIT,
        Some(Ok(l)) if (1..=MAX_LIMIT).contains(&l) => l,
        Some(_) => return api::error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &format!("limit must be 1-{MAX_LIMIT}")),
    };
    let offset = match num("offset") {
        None => None,
        Some(Ok(o)) => Some(o),
        Some(Err(_)) => return api::error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "offset must be a number"),
    };
    let shard = admin.ctx.shard();
    let owner = match shard.route(topic, partition) {
        Route::Local(s) => s,
        Route::Remote(leader) => {
            return api::json_error(
                StatusCode::MISDIRECTED_REQUEST,
                serde_json::json!({"error": "NOT_LEADER_OR_FOLLOWER", "message": format!("broker {leader} leads {topic}-{partition}: ask its admin listener"), "leader": leader}),
            )
        }
        Route::Unknown => return api::error(StatusCode::NOT_FOUND, "UNKNOWN_TOPIC_OR_PARTITION", &format!("no partition {topic}-{partition} here")),
    };
    let tp = TopicPartition { topic: topic.to_string(), partition };
    // The bounds first: where a default page starts.
    let (log_start, hw) =
        match admin.ctx.x.call(owner, ShardRequest::ListOffsets { partitions: vec![(tp.clone(), -2), (tp.clone(), -1)], read_committed: false }).await {
            Ok(ShardResponse::ListOffsets(r)) => match (r.first(), r.get(1)) {
                (Some(Ok((_, start))), Some(Ok((_, hw)))) => (*start, *hw),
                (Some(Err(e)), _) | (_, Some(Err(e))) => return api::kafka_error(e.code(), Some(&e.to_string())),
                _ => return api::error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "ListOffsets answered nothing"),
            },
            Ok(_) => return api::error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "unexpected answer"),
            Err(e) => return api::kafka_error(e.code(), Some(&e.to_string())),
        };
    let start = offset.unwrap_or(hw - limit).clamp(log_start, hw.max(log_start));
    let mut records = Vec::new();
    let mut next = start;
    for _ in 0..MAX_READS {
        if next >= hw || records.len() as i64 >= limit {
            break;
        }
        let read = FetchRead {
            tp: tp.clone(),
            offset: next,
            max_bytes: READ_BYTES,
            read_committed: false,
            replica_id: -1,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
        };
        let slice = match admin.ctx.x.call(owner, ShardRequest::Fetch { reads: vec![read] }).await {
            Ok(ShardResponse::Fetch(mut r)) if !r.is_empty() => match r.swap_remove(0) {
                Ok(s) => s,
                Err(e) => return api::kafka_error(e.code(), Some(&e.to_string())),
            },
            Ok(_) => return api::error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "unexpected answer"),
            Err(e) => return api::kafka_error(e.code(), Some(&e.to_string())),
        };
        let Some((file, pos, len)) = slice.data else { break };
        let bytes = match shard.ring.read_exact_at(file.as_raw_fd(), vec![0; len as usize], pos).await {
            Ok(b) => Bytes::from(b),
            Err(e) => return api::error(StatusCode::INTERNAL_SERVER_ERROR, "KAFKA_STORAGE_ERROR", &format!("reading the segment failed: {e}")),
        };
        drop(file);
        let batches = match crate::protocol::record_batch::replicated_batches(&bytes) {
            Ok(b) if !b.is_empty() => b,
            Ok(_) => break,
            Err(e) => return api::error(StatusCode::INTERNAL_SERVER_ERROR, "CORRUPT_MESSAGE", &format!("a batch in the log is invalid: {e:?}")),
        };
        for batch in batches {
            let last = batch.header.base_offset + i64::from(batch.header.last_offset_delta);
            let mut buf = batch.bytes.clone();
            let set = match RecordBatchDecoder::decode(&mut buf) {
                Ok(s) => s,
                Err(e) => {
                    return api::error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "CORRUPT_MESSAGE",
                        &format!("decoding the batch at {} failed: {e}", batch.header.base_offset),
                    )
                }
            };
            for r in set.records {
                if r.control || r.offset < start || r.offset >= hw || records.len() as i64 >= limit {
                    continue;
                }
                records.push(RecordView {
                    offset: r.offset,
                    timestamp: r.timestamp,
                    timestamp_type: match r.timestamp_type {
                        TimestampType::Creation => "CreateTime",
                        TimestampType::LogAppend => "LogAppendTime",
                    },
                    key: r.key.as_ref().map(b64),
                    value: r.value.as_ref().map(b64),
                    headers: r.headers.iter().map(|(k, v)| HeaderView { key: k.to_string(), value: v.as_ref().map(b64) }).collect(),
                });
            }
            next = next.max(last + 1);
            if records.len() as i64 >= limit {
                break;
            }
        }
    }
    let next_offset = records.last().map_or(next.min(hw), |r| r.offset + 1);
    api::json(StatusCode::OK, &Page { topic: topic.to_string(), partition, log_start_offset: log_start, high_watermark: hw, next_offset, records })
}
