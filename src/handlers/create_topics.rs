//! CreateTopics (key 19), versions 2-7. Validation and placement happen on the
//! controller shard, which publishes the new metadata image to every shard before
//! it answers, so a client that produces right after sees its topic.
//! A topic some of whose partition logs could not be opened (out of file
//! descriptors, an I/O error) exists, but is answered KAFKA_STORAGE_ERROR
//! naming the offline partitions, never reported as created and healthy.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::error::{Error, Result};
use crate::shard::request::{NewTopic, ShardRequest, ShardResponse};
use crate::shard::CONTROLLER_SHARD;

/// Creates topics through the controller and installs the new image on all shards.
/// Used by CreateTopics and by Metadata's auto-creation: internal topics are
/// refused. A created topic with offline partitions (logs that could not be
/// opened) is a KAFKA_STORAGE_ERROR.
pub async fn create(ctx: &Ctx, topics: Vec<NewTopic>, validate_only: bool) -> Vec<Result<()>> {
    create_as(ctx, topics, validate_only, false).await
}

/// Creates one of the broker's own internal topics (the coordinators, on first use).
pub async fn create_internal(ctx: &Ctx, topic: NewTopic) -> Result<()> {
    create_as(ctx, vec![topic], false, true).await.pop().unwrap_or(Err(Error::ShardUnavailable))
}

async fn create_as(ctx: &Ctx, topics: Vec<NewTopic>, validate_only: bool, internal: bool) -> Vec<Result<()>> {
    let n = topics.len();
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let resp = ctx.x.call(CONTROLLER_SHARD, ShardRequest::CreateTopics { topics, validate_only, internal }).await;
    let results = match resp {
        Ok(ShardResponse::CreateTopics(r)) if r.len() == n => r,
        _ => return (0..n).map(|_| Err(Error::ShardUnavailable)).collect(),
    };
    if validate_only || !results.iter().any(|r| r.is_ok()) {
        return results;
    }
    // The controller published the image to every shard (which tried to open
    // their logs) before answering.
    let image = ctx.shard().image();
    results
        .into_iter()
        .zip(names)
        .map(|(r, name)| {
            r?;
            offline_partitions(ctx, &image, &name, 0)
        })
        .collect()
}

/// KAFKA_STORAGE_ERROR when partitions `from..` of `topic` are offline.
pub fn offline_partitions(ctx: &Ctx, image: &crate::metadata::MetadataImage, topic: &str, from: i32) -> Result<()> {
    let Some(meta) = image.topics.get(topic) else { return Ok(()) };
    let mut offline = ctx.shard().offline.of_topic(topic, meta.topic_id);
    offline.retain(|&p, _| p >= from);
    if offline.is_empty() {
        return Ok(());
    }
    Err(Error::KafkaStorage(crate::shard::offline::describe(topic, &offline)))
}

/// Serves CreateTopics `version`: the controller creates the topics (or only
/// validates them with `validate_only`); per-topic results, with the partition
/// count and replication factor on v5+ and the topic id on v7.
pub async fn handle(ctx: &Ctx, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let cfg = &ctx.shard().cfg;
    let mut news = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let configs: BTreeMap<String, String> = t.configs.iter().filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string()))).collect();
        news.push(NewTopic {
            name: t.name.0.to_string(),
            // Manual assignments (num_partitions = -1) give one partition per entry.
            num_partitions: match (t.num_partitions, t.assignments.len()) {
                (-1, 0) => cfg.num_partitions,
                (-1, n) => n as i32,
                (n, _) => n,
            },
            replication_factor: if t.replication_factor == -1 { cfg.default_replication_factor } else { t.replication_factor },
            configs,
        });
    }
    let results = create(ctx, news.clone(), req.validate_only).await;
    let image = ctx.shard().image();
    let topics = news
        .iter()
        .zip(results)
        .map(|(t, r)| {
            let mut out = CreatableTopicResult::default().with_name(kafka_protocol::messages::TopicName(StrBytes::from_string(t.name.clone())));
            match r {
                Ok(()) => {
                    if version >= 5 {
                        out.num_partitions = t.num_partitions;
                        out.replication_factor = t.replication_factor;
                        out.configs = Some(Vec::new());
                    }
                    if version >= 7 {
                        if let Some(meta) = image.topics.get(&t.name) {
                            out.topic_id = meta.topic_id;
                        }
                    }
                }
                Err(e) => {
                    out.error_code = e.code();
                    if version >= 1 {
                        out.error_message = Some(StrBytes::from_string(e.to_string()));
                    }
                }
            }
            out
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}
