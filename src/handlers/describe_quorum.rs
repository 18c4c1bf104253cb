//! DescribeQuorum (key 55), versions 0-1: the metadata quorum — its leader,
//! epoch, high watermark and each voter's log end and last contact — as
//! `kafka-metadata-quorum.sh describe` shows it. Kafka serves it for the one
//! partition `__cluster_metadata-0`; any other is UNKNOWN_TOPIC_OR_PARTITION.
//! A single broker answers as its own one-voter quorum.

use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};

use super::Ctx;
use crate::error::Error;
use crate::shard::request::{ShardRequest, ShardResponse};
use crate::shard::CONTROLLER_SHARD;

/// The metadata log's topic name.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// Serves DescribeQuorum.
pub async fn handle(ctx: &Ctx, req: DescribeQuorumRequest, version: i16) -> DescribeQuorumResponse {
    let quorum = match ctx.x.call(CONTROLLER_SHARD, ShardRequest::DescribeQuorum).await {
        Ok(ShardResponse::Quorum(q)) => q,
        Ok(_) => Err(Error::NotController),
        Err(e) => Err(e),
    };
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let out = PartitionData::default().with_partition_index(p.partition_index);
                    if t.topic_name.0.as_str() != METADATA_TOPIC || p.partition_index != 0 {
                        return out.with_error_code(Error::UnknownTopicOrPartition.code());
                    }
                    match &quorum {
                        Err(e) => out.with_error_code(e.code()).with_leader_id(BrokerId(-1)),
                        Ok(q) => out
                            .with_leader_id(BrokerId(q.leader_id))
                            .with_leader_epoch(q.leader_epoch)
                            .with_high_watermark(q.high_watermark)
                            .with_current_voters(
                                q.voters
                                    .iter()
                                    .map(|v| {
                                        let r = ReplicaState::default().with_replica_id(BrokerId(v.replica_id)).with_log_end_offset(v.log_end_offset);
                                        // The timestamps exist from v1 on.
                                        if version >= 1 {
                                            r.with_last_fetch_timestamp(v.last_fetch_timestamp).with_last_caught_up_timestamp(v.last_fetch_timestamp)
                                        } else {
                                            r
                                        }
                                    })
                                    .collect(),
                            ),
                    }
                })
                .collect();
            TopicData::default().with_topic_name(t.topic_name.clone()).with_partitions(partitions)
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(topics)
}
