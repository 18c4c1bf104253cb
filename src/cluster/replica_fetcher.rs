//! Followers fetch from leaders, Kafka's way: a follower shard sends Fetch v12
//! with its broker id as replica id to the leader's client listener, per
//! partition its log end as the fetch offset, the leader epoch it knows, and
//! the epoch of its last batch (so the leader can say where the logs
//! diverged, KIP-595's DivergingEpoch). It appends what comes back unchanged
//! (offsets and leader epochs are the leader's) and takes the leader's high
//! watermark. The leader serves these fetches from the same zero-copy path
//! consumers use (`handlers::fetch`, `shard::partition::read_for_follower`).
//!
//! Sessions: each follower shard keeps `num.replica.fetchers` sessions per
//! leader broker, each with its own connection, carrying the partitions of
//! this shard that broker leads (spread by partition), so a follower's appends
//! never hop cores. The leader side does hop once: a connection lands on one
//! of the leader's cores and its fetch fans out to the owner shards, like any
//! client's. (Per-shard listeners would remove that hop; not built.)
//!
//! Divergence: the follower truncates to the smaller of the leader's end
//! offset for the diverging epoch and its own end for that epoch (KIP-101/279),
//! never to its high watermark unless the leader knows no epoch at all.
//! Errors: a leader that is not (yet) leader, or whose epoch differs, is
//! retried after a short pause while the image catches up; a broken
//! connection after `replica.fetch.backoff.ms`.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::time::Duration;

use futures::AsyncWriteExt;
use glommio::net::TcpStream;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError;

use super::inter_broker::{broker_address, connect, encode_request, read_response};
use crate::protocol::record_batch::replicated_batches;
use crate::shard::partition::Partition;
use crate::shard::request::TopicPartition;
use crate::shard::throttle::{follower_rate, ReplicationThrottle};
use crate::shard::Shard;

/// The Fetch version followers send (the newest this broker serves).
const FETCH_VERSION: i16 = 12;
/// How often the manager looks for partitions that need a session.
const MANAGE_EVERY: Duration = Duration::from_millis(100);
/// The pause after a leadership error (the image is about to change).
const LEADER_RETRY: Duration = Duration::from_millis(100);
/// How long a session whose every partition is throttled waits for the bucket.
const THROTTLE_WAIT: Duration = Duration::from_millis(50);

/// Starts the replica fetchers of `shard`'s core (cluster brokers only).
pub fn start(shard: Rc<Shard>) {
    glommio::spawn_local(manage(shard)).detach();
}

/// Which session of leader `leader` a partition belongs to.
fn session_of(tp: &TopicPartition, sessions: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tp.hash(&mut h);
    (h.finish() % sessions.max(1) as u64) as usize
}

/// Starts a session for every (leader, index) some partition here follows.
async fn manage(shard: Rc<Shard>) {
    let mut running: HashMap<(i32, usize), Rc<Cell<bool>>> = HashMap::new();
    let n = shard.cfg.num_replica_fetchers;
    while !shard.stopping.get() {
        for (tp, p) in shard.partitions() {
            let Some((leader, _)) = p.following() else { continue };
            if leader < 0 || leader == shard.cfg.broker_id {
                continue;
            }
            let key = (leader, session_of(&tp, n));
            let alive = running.get(&key).is_some_and(|a| a.get());
            if !alive {
                let flag = Rc::new(Cell::new(true));
                running.insert(key, flag.clone());
                glommio::spawn_local(session(shard.clone(), key.0, key.1, flag)).detach();
            }
        }
        glommio::timer::sleep(MANAGE_EVERY).await;
    }
}

/// This shard's partitions that `leader` leads and session `index` carries, with the epoch known.
fn partitions_for(shard: &Shard, leader: i32, index: usize) -> Vec<(TopicPartition, Rc<Partition>, i32)> {
    let n = shard.cfg.num_replica_fetchers;
    shard
        .partitions()
        .into_iter()
        .filter_map(|(tp, p)| match p.following() {
            Some((l, epoch)) if l == leader && session_of(&tp, n) == index => Some((tp, p, epoch)),
            _ => None,
        })
        .collect()
}

/// One fetch session: fetches in a loop while this shard follows `leader` for any partition of it.
async fn session(shard: Rc<Shard>, leader: i32, index: usize, alive: Rc<Cell<bool>>) {
    let cfg = shard.cfg.clone();
    let backoff = Duration::from_millis(cfg.replica_fetch_backoff_ms);
    let mut conn: Option<TcpStream> = None;
    let mut correlation_id = 0i32;
    tracing::debug!(leader, session = index, "replica fetch session started");
    let throttle = ReplicationThrottle::default();
    while !shard.stopping.get() {
        let mut parts = partitions_for(&shard, leader, index);
        if parts.is_empty() {
            break;
        }
        // Reassignment copies wait while the throttle's bucket is empty.
        let rate = follower_rate(&shard.image(), cfg.broker_id, leader);
        if rate.is_some_and(|r| !throttle.allow(r)) {
            parts.retain(|(_, p, _)| !p.reassignment_copy());
            if parts.is_empty() {
                glommio::timer::sleep(THROTTLE_WAIT).await;
                continue;
            }
        }
        correlation_id = correlation_id.wrapping_add(1);
        let req = build_request(&shard, &parts);
        let answer = glommio::timer::timeout(Duration::from_millis(cfg.replica_fetch_wait_max_ms as u64) + super::inter_broker::CALL_TIMEOUT, async {
            exchange(&shard, leader, &mut conn, correlation_id, &req).await.map_err(glommio::GlommioError::IoError)
        })
        .await;
        let resp = match answer {
            Ok(r) => r,
            Err(e) => {
                conn = None;
                crate::warn_limited!(leader, "replica fetch from broker {leader} failed: {e}");
                glommio::timer::sleep(backoff).await;
                continue;
            }
        };
        if rate.is_some() {
            throttle.charge(copied_bytes(&parts, &resp));
        }
        if handle_response(&parts, leader, resp).await {
            glommio::timer::sleep(LEADER_RETRY.min(backoff)).await;
        }
    }
    alive.set(false);
    tracing::debug!(leader, session = index, "replica fetch session ended");
}

/// Bytes of records `resp` brings for partitions a reassignment is copying here.
fn copied_bytes(parts: &[(TopicPartition, Rc<Partition>, i32)], resp: &FetchResponse) -> usize {
    let mut n = 0;
    for t in &resp.responses {
        for d in &t.partitions {
            let copying = parts.iter().any(|(tp, p, _)| p.reassignment_copy() && tp.partition == d.partition_index && tp.topic == t.topic.0.as_str());
            if copying {
                n += d.records.as_ref().map_or(0, |r| r.len());
            }
        }
    }
    n
}

/// The Fetch a follower sends for `parts`.
fn build_request(shard: &Shard, parts: &[(TopicPartition, Rc<Partition>, i32)]) -> FetchRequest {
    let cfg = &shard.cfg;
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (tp, p, epoch) in parts {
        let fp = FetchPartition::default()
            .with_partition(tp.partition)
            .with_current_leader_epoch(*epoch)
            .with_fetch_offset(p.log.log_end_offset())
            .with_last_fetched_epoch(p.log.latest_epoch().unwrap_or(-1))
            .with_log_start_offset(p.log.log_start_offset())
            .with_partition_max_bytes(cfg.replica_fetch_max_bytes);
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == tp.topic => t.partitions.push(fp),
            _ => topics.push(FetchTopic::default().with_topic(TopicName(StrBytes::from_string(tp.topic.clone()))).with_partitions(vec![fp])),
        }
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(cfg.broker_id))
        .with_max_wait_ms(cfg.replica_fetch_wait_max_ms)
        .with_min_bytes(cfg.replica_fetch_min_bytes)
        .with_max_bytes(cfg.replica_fetch_response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// Sends `req` to `leader` on the session's connection (made on first use) and decodes the answer.
async fn exchange(shard: &Shard, leader: i32, conn: &mut Option<TcpStream>, correlation_id: i32, req: &FetchRequest) -> std::io::Result<FetchResponse> {
    let frame = encode_request(ApiKey::Fetch, FETCH_VERSION, correlation_id, shard.cfg.broker_id, req)?;
    if conn.is_none() {
        *conn = Some(connect(broker_address(&shard.image(), leader)?).await?);
    }
    let c = conn.as_mut().ok_or_else(|| std::io::Error::other("no connection"))?;
    c.write_all(&frame).await?;
    let max = (shard.cfg.replica_fetch_response_max_bytes as usize).max(shard.cfg.replica_fetch_max_bytes as usize) + (1 << 20);
    let mut resp = read_response(c, max).await?;
    let header = ResponseHeader::decode(&mut resp, ApiKey::Fetch.response_header_version(FETCH_VERSION))
        .map_err(|e| std::io::Error::other(format!("fetch response header: {e}")))?;
    if header.correlation_id != correlation_id {
        return Err(std::io::Error::other(format!("correlation id {} answered for {correlation_id}", header.correlation_id)));
    }
    FetchResponse::decode(&mut resp, FETCH_VERSION).map_err(|e| std::io::Error::other(format!("fetch response: {e}")))
}

/// Applies a leader's answer to the partitions asked; true when some partition
/// failed in a way worth a pause before the next fetch.
async fn handle_response(parts: &[(TopicPartition, Rc<Partition>, i32)], leader: i32, resp: FetchResponse) -> bool {
    if resp.error_code != 0 {
        crate::warn_limited!(leader, "replica fetch from broker {leader}: error code {}", resp.error_code);
        return true;
    }
    let mut pause = false;
    for t in resp.responses {
        for d in t.partitions {
            let Some((tp, p, epoch)) = parts.iter().find(|(tp, _, _)| tp.topic == t.topic.0.as_str() && tp.partition == d.partition_index) else {
                continue;
            };
            // Leadership moved while the fetch was out: its answer is stale.
            if p.following() != Some((leader, *epoch)) {
                continue;
            }
            if d.error_code != 0 {
                pause = true;
                if d.error_code == ResponseError::OffsetOutOfRange.code() {
                    crate::warn_limited!(topic = %tp.topic, partition = tp.partition, leader,
                        "replica fetch out of range at {} (leader's log start {}): this replica cannot catch up by fetching",
                        p.log.log_end_offset(), d.log_start_offset);
                } else {
                    tracing::debug!(topic = %tp.topic, partition = tp.partition, leader, code = d.error_code, "replica fetch error");
                }
                continue;
            }
            let diverging = (d.diverging_epoch.epoch, d.diverging_epoch.end_offset);
            if diverging != (-1, -1) {
                let target = truncation_offset(p, diverging);
                let before = p.log.log_end_offset();
                match p.truncate_to(target).await {
                    Ok(end) => tracing::info!(topic = %tp.topic, partition = tp.partition, leader, before, end,
                        leader_epoch = diverging.0, leader_end = diverging.1, "log diverged from the leader's: truncated"),
                    Err(e) => {
                        pause = true;
                        crate::error_limited!(topic = %tp.topic, partition = tp.partition, "truncating a diverged log failed: {e}");
                    }
                }
                continue;
            }
            if let Some(records) = d.records.filter(|r| !r.is_empty()) {
                match replicated_batches(&records) {
                    Ok(batches) if !batches.is_empty() => {
                        if let Err(e) = p.log.append_replicated(batches).await {
                            pause = true;
                            crate::error_limited!(topic = %tp.topic, partition = tp.partition, leader, "appending replicated batches failed: {e}");
                            continue;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        pause = true;
                        crate::error_limited!(topic = %tp.topic, partition = tp.partition, leader, "the leader sent batches that do not check: {e}");
                        continue;
                    }
                }
            }
            p.follower_high_watermark(d.high_watermark);
            // The leader's log start moved (retention, DeleteRecords): follow it up to what is committed here.
            let start = d.log_start_offset.min(p.high_watermark());
            if start > p.log.log_start_offset() {
                if let Err(e) = p.delete_records_before(start).await {
                    tracing::debug!(topic = %tp.topic, partition = tp.partition, "following the leader's log start failed: {e}");
                }
            }
        }
    }
    pause
}

/// Where a diverged follower's log ends: the leader's end for the epoch,
/// capped at this replica's own end for that epoch; the high watermark when
/// the leader knows no epoch (its log has no epoch history).
fn truncation_offset(p: &Partition, (epoch, leader_end): (i32, i64)) -> i64 {
    let target = if epoch < 0 {
        p.high_watermark()
    } else {
        let (local_epoch, local_end) = p.log.end_offset_for_epoch(epoch);
        if local_epoch >= 0 && local_end >= 0 {
            leader_end.min(local_end)
        } else {
            leader_end
        }
    };
    target.min(p.log.log_end_offset())
}
