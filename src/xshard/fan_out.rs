//! Split a multi-partition request per owner shard, run the parts concurrently
//! (one message per owner), and put the answers back in the client's order.
//! A partition without a local shard (unknown, or led by another broker), or a
//! shard that fails, becomes an error for those partitions only.

use super::XShard;
use crate::error::Error;
use crate::metadata::Route;
use crate::shard::request::{ShardRequest, ShardResponse};

/// `items[i]` = (where the partition is served, payload). Returns one result per
/// item, in order: UNKNOWN_TOPIC_OR_PARTITION for `Unknown`, NOT_LEADER_OR_FOLLOWER
/// for `Remote` (the client refreshes its metadata and goes to the leader).
pub async fn fan_out<T, R>(
    x: &XShard,
    items: Vec<(Route, T)>,
    make: impl Fn(Vec<T>) -> ShardRequest,
    take: impl Fn(ShardResponse) -> Option<Vec<Result<R, Error>>>,
) -> Vec<Result<R, Error>> {
    let n = items.len();
    let mut per_shard: Vec<(Vec<usize>, Vec<T>)> = (0..x.nr_shards()).map(|_| (Vec::new(), Vec::new())).collect();
    let mut out: Vec<Option<Result<R, Error>>> = (0..n).map(|_| None).collect();
    for (i, (route, item)) in items.into_iter().enumerate() {
        match route {
            Route::Local(s) if s < per_shard.len() => {
                per_shard[s].0.push(i);
                per_shard[s].1.push(item);
            }
            Route::Remote(_) => out[i] = Some(Err(Error::NotLeaderOrFollower)),
            Route::Local(_) | Route::Unknown => out[i] = Some(Err(Error::UnknownTopicOrPartition)),
        }
    }
    let calls = per_shard.into_iter().enumerate().filter(|(_, (idx, _))| !idx.is_empty()).map(|(s, (idx, payload))| {
        let req = make(payload);
        async move { (idx, x.call(s, req).await) }
    });
    for (idx, resp) in futures::future::join_all(calls).await {
        let results = resp.ok().and_then(&take);
        match results {
            Some(rs) if rs.len() == idx.len() => {
                for (i, r) in idx.into_iter().zip(rs) {
                    out[i] = Some(r);
                }
            }
            _ => {
                for i in idx {
                    out[i] = Some(Err(Error::ShardUnavailable));
                }
            }
        }
    }
    out.into_iter().map(|r| r.unwrap_or(Err(Error::ShardUnavailable))).collect()
}
