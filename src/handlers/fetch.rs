//! Fetch (key 1), versions 4-12. Each owner shard locates whole batches for its
//! partitions (a fetch inside a batch starts at that batch; clients skip the
//! earlier records) and hands back file ranges; the response is encoded around
//! them so the connection can splice the bytes from the page cache to the socket.
//!
//! Long-poll: when fewer than `min_bytes` are available, the owners are asked
//! to wait until an append moves one of the partitions' high watermark or
//! `max_wait_ms` passes — woken by the append, never by polling. No fetch
//! sessions are kept: the response's session id is 0, which clients read as
//! "full fetch each time" (Kafka does the same when its session cache is full).

use std::time::{Duration, Instant};

use kafka_protocol::messages::FetchRequest;

use super::Ctx;
use crate::error::Error;
use crate::log::ReadSlice;
use crate::metadata::Route;
use crate::protocol::fetch_response::{encode_fetch_response, AbortedTxn, FetchPartitionOut, FetchPiece, FetchResponseOut, FetchTopicOut};
use crate::protocol::{Piece, ResponseFrame};
use crate::shard::request::{FetchRead, ShardRequest, ShardResponse, TopicPartition};
use crate::xshard::fan_out::fan_out;

type Reads = Vec<Result<ReadSlice, Error>>;

async fn read_all(ctx: &Ctx, reads: &[(Route, FetchRead)]) -> Reads {
    fan_out(
        &ctx.x,
        reads.to_vec(),
        |reads| ShardRequest::Fetch { reads },
        |r| match r {
            ShardResponse::Fetch(v) => Some(v),
            _ => None,
        },
    )
    .await
}

/// Bytes a response would carry, after the total `max_bytes` budget.
fn budget(results: &Reads, max_bytes: usize) -> Vec<u32> {
    let mut left = max_bytes;
    let mut first = true;
    results
        .iter()
        .map(|r| match r {
            Ok(ReadSlice { data: Some((_, _, len)), .. }) => {
                let len = *len as usize;
                if first || len <= left {
                    first = false;
                    left = left.saturating_sub(len);
                    len as u32
                } else {
                    0
                }
            }
            _ => 0,
        })
        .collect()
}

/// Serves Fetch `version` as a ready frame (header and size prefix included)
/// whose record ranges are spliced from segment files. `Err` is an encoding
/// failure, on which the router closes the connection.
pub async fn handle(ctx: &Ctx, req: FetchRequest, version: i16, correlation_id: i32, client: &super::Client) -> Result<ResponseFrame, String> {
    let max_bytes = (req.max_bytes.max(0) as usize).min(ctx.shard().cfg.fetch_max_bytes);
    let read_committed = req.isolation_level == 1;
    // A follower's fetch (replica id >= 0): read past the high watermark, check divergence.
    let replica_id = if req.replica_id.0 >= 0 { req.replica_id.0 } else { -1 };
    let mut reads: Vec<(Route, FetchRead)> = Vec::new();
    for t in &req.topics {
        let topic = t.topic.0.to_string();
        for p in &t.partitions {
            let owner = ctx.shard().route(&topic, p.partition);
            reads.push((
                owner,
                FetchRead {
                    tp: TopicPartition { topic: topic.clone(), partition: p.partition },
                    offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes.max(0) as usize,
                    read_committed: read_committed && replica_id < 0,
                    replica_id,
                    current_leader_epoch: p.current_leader_epoch,
                    last_fetched_epoch: p.last_fetched_epoch,
                },
            ));
        }
    }

    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut results = read_all(ctx, &reads).await;
    loop {
        let total: usize = budget(&results, max_bytes).iter().map(|&l| l as usize).sum();
        let any_error = results.iter().any(|r| r.as_ref().map_or(true, |s| s.diverging_epoch.is_some()));
        let now = Instant::now();
        if total >= req.min_bytes.max(1) as usize || any_error || now >= deadline || reads.is_empty() || ctx.shard().stopping.get() {
            break;
        }
        let wait_ms = (deadline - now).as_millis() as u64;
        let waits: Vec<(Route, (TopicPartition, i64))> = reads
            .iter()
            .zip(&results)
            .map(|((owner, r), res)| {
                // Wait for the end we saw; a partition already past its fetch offset wakes at once.
                // A follower waits for the log end to pass its fetch offset.
                let seen = match res {
                    _ if replica_id >= 0 => r.offset,
                    Ok(s) if read_committed => s.last_stable_offset,
                    Ok(s) => s.high_watermark,
                    Err(_) => r.offset,
                };
                (*owner, (r.tp.clone(), seen.max(r.offset)))
            })
            .collect();
        let mut by_shard: Vec<(usize, Vec<(TopicPartition, i64)>)> = Vec::new();
        for (owner, w) in waits.into_iter() {
            let Route::Local(o) = owner else { continue };
            match by_shard.iter_mut().find(|(s, _)| *s == o) {
                Some((_, v)) => v.push(w),
                None => by_shard.push((o, vec![w])),
            }
        }
        let calls: Vec<_> = by_shard
            .into_iter()
            .map(|(s, partitions)| {
                Box::pin(ctx.x.call(s, ShardRequest::WaitForAppend { partitions, max_wait_ms: wait_ms, read_committed, replica: replica_id >= 0 }))
            })
            .collect();
        if calls.is_empty() {
            break;
        }
        // The first owner that sees an append (or times out) ends the wait; the others are dropped.
        let _ = futures::future::select_all(calls).await;
        results = read_all(ctx, &reads).await;
    }

    let lens = budget(&results, max_bytes);
    count_traffic(&reads, &results, &lens, client, version);
    let mut out = FetchResponseOut::default();
    let mut files = Vec::new();
    for (((_, r), res), len) in reads.iter().zip(results).zip(lens) {
        let mut p = FetchPartitionOut { partition_index: r.tp.partition, ..Default::default() };
        match res {
            Ok(slice) => {
                p.high_watermark = slice.high_watermark;
                p.last_stable_offset = slice.last_stable_offset;
                p.log_start_offset = slice.log_start_offset;
                p.diverging_epoch = slice.diverging_epoch;
                p.aborted_transactions =
                    slice.aborted.map(|v| v.iter().map(|t| AbortedTxn { producer_id: t.producer_id, first_offset: t.first_offset }).collect());
                if let Some((file, pos, _)) = slice.data {
                    if len > 0 {
                        p.records_len = len;
                        files.push((file, pos, slice.cached));
                    }
                }
            }
            Err(e) => {
                p.error_code = e.code();
                p.high_watermark = -1;
            }
        }
        match out.topics.last_mut() {
            Some(t) if t.name == r.tp.topic => t.partitions.push(p),
            _ => out.topics.push(FetchTopicOut { name: r.tp.topic.clone(), partitions: vec![p] }),
        }
    }
    let mut buf = std::mem::take(&mut *ctx.encode_buf.borrow_mut());
    let pieces = encode_fetch_response(version, correlation_id, &out, &mut buf).map_err(|e| e.to_string());
    *ctx.encode_buf.borrow_mut() = buf;
    let mut files = files.into_iter();
    let mut out = Vec::new();
    for p in pieces? {
        match p {
            FetchPiece::Encoded(b) => out.push(Piece::Bytes(b)),
            FetchPiece::Records { len, .. } => match files.next() {
                // Recent data from the tail cache (sent from memory), older by splice.
                Some((_, _, Some(cached))) => out.extend(cached.into_iter().map(Piece::Bytes)),
                Some((file, pos, None)) => out.push(Piece::File { file, pos, len }),
                None => out.push(Piece::Bytes(bytes::Bytes::new())),
            },
        }
    }
    let pieces = out;
    Ok(ResponseFrame { pieces })
}

/// Bytes and records out per topic (`shardlog_topic_*_out_total`; a follower's
/// fetch is replication traffic) and the partitions' error codes.
fn count_traffic(reads: &[(Route, FetchRead)], results: &[crate::error::Result<ReadSlice>], lens: &[u32], client: &super::Client, version: i16) {
    crate::metrics::with(|m| {
        for (((_, r), res), len) in reads.iter().zip(results).zip(lens) {
            match res {
                Err(e) => m.error(kafka_protocol::messages::ApiKey::Fetch as i16, version, e.code()),
                Ok(_) if r.replica_id >= 0 => m.topic(&r.tp.topic, |t| t.replication_bytes_out += *len as u64),
                Ok(_) => {
                    let advanced = client.fetch_position(&r.tp.topic, r.tp.partition, r.offset);
                    m.topic(&r.tp.topic, |t| {
                        t.bytes_out += *len as u64;
                        t.records_out += advanced;
                    })
                }
            }
        }
    });
}
