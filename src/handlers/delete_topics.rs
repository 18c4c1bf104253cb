//! DeleteTopics (key 20), versions 1-6 (v6 names topics by id too). The
//! controller drops the topics from the metadata image; each owner shard then
//! closes the partitions' logs and removes their directories before the answer.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::error::Error;
use crate::shard::request::{ControllerOp, ShardRequest, ShardResponse};
use crate::shard::CONTROLLER_SHARD;

/// Serves DeleteTopics `version` (topics by name, or by id from v6) through the controller.
pub async fn handle(ctx: &Ctx, req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        req.topics.iter().map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)).collect()
    } else {
        req.topic_names.iter().map(|n| (Some(n.0.to_string()), uuid::Uuid::nil())).collect()
    };
    let n = wanted.len();
    let results = match ctx.x.call(CONTROLLER_SHARD, ShardRequest::Controller(ControllerOp::DeleteTopics { topics: wanted.clone() })).await {
        Ok(ShardResponse::DeleteTopics(r)) if r.len() == n => r,
        _ => (0..n).map(|_| Err(Error::ShardUnavailable)).collect(),
    };
    let responses = wanted
        .into_iter()
        .zip(results)
        .map(|((name, id), r)| {
            let mut out = DeletableTopicResult::default();
            match r {
                Ok((name, id)) => {
                    out.name = Some(TopicName(StrBytes::from_string(name)));
                    if version >= 6 {
                        out.topic_id = id;
                    }
                }
                Err(e) => {
                    out.name = name.map(|n| TopicName(StrBytes::from_string(n)));
                    if version >= 6 {
                        out.topic_id = id;
                    }
                    out.error_code = e.code();
                    if version >= 5 {
                        out.error_message = Some(StrBytes::from_string(e.to_string()));
                    }
                }
            }
            out
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
