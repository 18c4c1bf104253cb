//! DescribeLogDirs (key 35), versions 1-4: the one `log.dirs` directory with
//! each partition's size on disk (asked from every shard), and (v4) the
//! filesystem's total and usable bytes.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::shard::request::{ShardRequest, ShardResponse};

/// Serves DescribeLogDirs `version`: partition sizes (bytes) gathered from every shard.
pub async fn handle(ctx: &Ctx, req: DescribeLogDirsRequest, version: i16) -> DescribeLogDirsResponse {
    let mut sizes: BTreeMap<(String, i32), u64> = BTreeMap::new();
    for r in ctx.x.broadcast(|| ShardRequest::LogDirSizes).await {
        if let Ok(ShardResponse::LogDirSizes(v)) = r {
            sizes.extend(v.into_iter().map(|(tp, n)| ((tp.topic, tp.partition), n)));
        }
    }
    let wanted = |t: &str, p: i32| match &req.topics {
        None => true,
        Some(ts) => ts.iter().any(|x| x.topic.0.as_str() == t && x.partitions.contains(&p)),
    };
    let mut topics: Vec<DescribeLogDirsTopic> = Vec::new();
    for ((t, p), n) in sizes.into_iter().filter(|((t, p), _)| wanted(t, *p)) {
        let part = DescribeLogDirsPartition::default().with_partition_index(p).with_partition_size(n as i64).with_offset_lag(0).with_is_future_key(false);
        match topics.last_mut() {
            Some(last) if last.name.0.as_str() == t => last.partitions.push(part),
            _ => topics.push(DescribeLogDirsTopic::default().with_name(TopicName(StrBytes::from_string(t))).with_partitions(vec![part])),
        }
    }
    // realpath and statvfs can wait on the filesystem (a network mount, a busy
    // disk): they run on the shard's blocking-thread pool, not on the shard.
    let dir = ctx.shard().cfg.log_dir.clone();
    let (path, space) = glommio::executor()
        .spawn_blocking(move || {
            let path = std::fs::canonicalize(&dir).unwrap_or(dir);
            let space = crate::io::sys::fs_space(&path);
            (path, space)
        })
        .await;
    let mut result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(path.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(-1)
        .with_usable_bytes(-1);
    if version >= 4 {
        if let Some((total, usable)) = space {
            result.total_bytes = total;
            result.usable_bytes = usable;
        }
    }
    DescribeLogDirsResponse::default().with_results(vec![result])
}
