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
use crate::services::topics::create;
use crate::shard::request::NewTopic;

/// Serves CreateTopics `version`: the controller creates the topics (or only
/// validates them with `validate_only`); per-topic results, with the partition
/// count and replication factor on v5+ and the topic id on v7.
pub async fn handle(ctx: &Ctx, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let cfg = &ctx.shard().cfg;
    let mut news = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let configs: BTreeMap<String, String> = t.configs.iter().filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string()))).collect();
        // A manual assignment gives one partition per entry, in partition order (the
        // controller checks the brokers); its replica lists set the replication factor.
        let mut manual: Vec<(i32, Vec<i32>)> = t.assignments.iter().map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect())).collect();
        manual.sort_by_key(|(p, _)| *p);
        let assignments = (!manual.is_empty()).then(|| manual.into_iter().map(|(_, r)| r).collect::<Vec<Vec<i32>>>());
        news.push(NewTopic {
            name: t.name.0.to_string(),
            num_partitions: match (t.num_partitions, t.assignments.len()) {
                (-1, 0) => cfg.num_partitions,
                (-1, n) => n as i32,
                (n, _) => n,
            },
            replication_factor: match (&assignments, t.replication_factor) {
                (Some(a), _) => a.first().map_or(0, |r| r.len() as i16),
                (None, -1) => cfg.default_replication_factor,
                (None, rf) => rf,
            },
            configs,
            assignments,
        });
    }
    let results = create(&ctx.x, news.clone(), req.validate_only).await;
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
