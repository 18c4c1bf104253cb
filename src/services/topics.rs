//! Creating topics through the controller: for CreateTopics, for Metadata's
//! auto-creation, and for the internal topics the coordinators create on first
//! use (Kafka's `AutoTopicCreationManager`). The controller publishes the new
//! metadata image to every shard before it answers, so whoever asked finds the
//! topic on whichever shard it looks.

use crate::error::{Error, Result};
use crate::shard::request::{ControllerOp, NewTopic, ShardRequest, ShardResponse};
use crate::shard::CONTROLLER_SHARD;
use crate::xshard::XShard;

/// Creates topics through the controller and installs the new image on all shards.
/// Used by CreateTopics and by Metadata's auto-creation: internal topics are
/// refused. A created topic with offline partitions (logs that could not be
/// opened) is a KAFKA_STORAGE_ERROR.
pub async fn create(x: &XShard, topics: Vec<NewTopic>, validate_only: bool) -> Vec<Result<()>> {
    create_as(x, topics, validate_only, false).await
}

/// Creates one of the broker's own internal topics (the coordinators, on first use).
pub async fn create_internal(x: &XShard, topic: NewTopic) -> Result<()> {
    create_as(x, vec![topic], false, true).await.pop().unwrap_or(Err(Error::ShardUnavailable))
}

async fn create_as(x: &XShard, topics: Vec<NewTopic>, validate_only: bool, internal: bool) -> Vec<Result<()>> {
    let n = topics.len();
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let resp = x.call(CONTROLLER_SHARD, ShardRequest::Controller(ControllerOp::CreateTopics { topics, validate_only, internal })).await;
    let results = match resp {
        Ok(ShardResponse::CreateTopics(r)) if r.len() == n => r,
        _ => return (0..n).map(|_| Err(Error::ShardUnavailable)).collect(),
    };
    if validate_only || !results.iter().any(|r| r.is_ok()) {
        return results;
    }
    // The controller published the image to every shard (which tried to open
    // their logs) before answering.
    let image = x.shard.image();
    results
        .into_iter()
        .zip(names)
        .map(|(r, name)| {
            r?;
            offline_partitions(x, &image, &name, 0)
        })
        .collect()
}

/// KAFKA_STORAGE_ERROR when partitions `from..` of `topic` are offline.
pub fn offline_partitions(x: &XShard, image: &crate::metadata::MetadataImage, topic: &str, from: i32) -> Result<()> {
    let Some(meta) = image.topics.get(topic) else { return Ok(()) };
    let mut offline = x.shard.offline.of_topic(topic, meta.topic_id);
    offline.retain(|&p, _| p >= from);
    if offline.is_empty() {
        return Ok(());
    }
    Err(Error::KafkaStorage(crate::shard::offline::describe(topic, &offline)))
}
