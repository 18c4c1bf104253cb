//! The cluster and its topics as the admin API shows them, and the topic
//! actions (create, delete) through the CreateTopics and DeleteTopics handlers.
//! Placement (leader, replicas, ISR) comes from the metadata image; offsets and
//! sizes from the replicas this broker hosts (`null` for the others).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{CreateTopicsRequest, DeleteTopicsRequest, DescribeClusterRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};

use super::api::{self, Admin};
use super::rates::RateView;
use crate::handlers;
use crate::metadata::TopicMeta;
use crate::metrics::PartitionGauges;
use crate::shard::request::{ShardRequest, ShardResponse};

#[derive(Serialize)]
struct BrokerView {
    id: i32,
    host: String,
    port: i32,
    rack: Option<String>,
    fenced: bool,
    in_controlled_shutdown: bool,
}

#[derive(Serialize, Default)]
struct Health {
    total: usize,
    under_replicated: usize,
    under_min_isr: usize,
    offline: usize,
}

#[derive(Serialize)]
struct ClusterView {
    cluster_id: String,
    broker_id: i32,
    controller_id: i32,
    quorum_leader_id: Option<i32>,
    read_only: bool,
    brokers: Vec<BrokerView>,
    partitions: Health,
    throughput: RateView,
}

/// `GET /api/v1/cluster`.
pub async fn cluster(admin: &Admin) -> Response<Full<Bytes>> {
    let ctx = &admin.ctx;
    let shard = ctx.shard();
    let described = handlers::describe_cluster::handle(ctx, DescribeClusterRequest::default().with_include_fenced_brokers(true), 2).await;
    let image = shard.image();
    let brokers = described
        .brokers
        .iter()
        .map(|b| BrokerView {
            id: b.broker_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
            fenced: b.is_fenced,
            in_controlled_shutdown: image.brokers.get(&b.broker_id.0).is_some_and(|m| m.in_controlled_shutdown),
        })
        .collect();
    let quorum_leader_id = match shard.quorum() {
        Some(_) => match ctx.x.call(crate::shard::CONTROLLER_SHARD, ShardRequest::DescribeQuorum).await {
            Ok(ShardResponse::Quorum(Ok(q))) => Some(q.leader_id),
            _ => Some(-1),
        },
        None => None,
    };
    let mut health = Health::default();
    for t in image.topics.values() {
        let min_isr = shard.topic_config(&t.name).map_or(1, |c| c.min_insync_replicas.max(1) as usize);
        for p in &t.partitions {
            health.total += 1;
            health.offline += usize::from(p.leader < 0);
            health.under_replicated += usize::from(p.isr.len() < p.replicas.len());
            health.under_min_isr += usize::from(!p.replicas.is_empty() && p.isr.len() < min_isr.min(p.replicas.len()));
        }
    }
    let view = ClusterView {
        cluster_id: described.cluster_id.to_string(),
        broker_id: shard.cfg.broker_id,
        controller_id: described.controller_id.0,
        quorum_leader_id,
        read_only: shard.cfg.admin_console_read_only,
        brokers,
        partitions: health,
        throughput: admin.rates.borrow().view(None),
    };
    api::json(StatusCode::OK, &view)
}

#[derive(Serialize)]
struct TopicSummary {
    name: String,
    topic_id: String,
    internal: bool,
    partitions: usize,
    replication_factor: usize,
    under_replicated: usize,
    offline: usize,
    size_bytes: u64,
    rates: RateView,
}

#[derive(Serialize)]
struct PartitionView {
    partition: i32,
    leader: i32,
    leader_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    elr: Vec<i32>,
    adding: Vec<i32>,
    removing: Vec<i32>,
    hosted_here: bool,
    log_start_offset: Option<i64>,
    high_watermark: Option<i64>,
    log_end_offset: Option<i64>,
    size_bytes: Option<u64>,
}

#[derive(Serialize)]
struct TopicView {
    #[serde(flatten)]
    summary: TopicSummary,
    configs: BTreeMap<String, String>,
    partition_list: Vec<PartitionView>,
}

/// The gauges of the replicas hosted here, by (topic, partition).
async fn hosted(admin: &Admin) -> HashMap<(String, i32), PartitionGauges> {
    super::gather(admin, true).await.into_iter().flat_map(|s| s.partitions).map(|p| ((p.topic.clone(), p.partition), p)).collect()
}

fn summary(admin: &Admin, t: &TopicMeta, hosted: &HashMap<(String, i32), PartitionGauges>) -> TopicSummary {
    let size = (0..t.partitions.len() as i32).filter_map(|p| hosted.get(&(t.name.clone(), p))).map(|g| g.size_bytes).sum();
    TopicSummary {
        name: t.name.clone(),
        topic_id: t.topic_id.to_string(),
        internal: crate::protocol::topic::is_internal_topic(&t.name),
        partitions: t.partitions.len(),
        replication_factor: t.partitions.first().map_or(1, |p| p.replicas.len().max(1)),
        under_replicated: t.partitions.iter().filter(|p| p.isr.len() < p.replicas.len()).count(),
        offline: t.partitions.iter().filter(|p| p.leader < 0).count(),
        size_bytes: size,
        rates: admin.rates.borrow().view(Some(&t.name)),
    }
}

/// `GET /api/v1/topics`.
pub async fn topics(admin: &Admin) -> Response<Full<Bytes>> {
    let hosted = hosted(admin).await;
    let image = admin.ctx.shard().image();
    let list: Vec<TopicSummary> = image.topics.values().map(|t| summary(admin, t, &hosted)).collect();
    api::json(StatusCode::OK, &list)
}

/// `GET /api/v1/topics/{topic}`.
pub async fn topic(admin: &Admin, name: &str) -> Response<Full<Bytes>> {
    let hosted = hosted(admin).await;
    let image = admin.ctx.shard().image();
    let Some(t) = image.topics.get(name) else {
        return api::error(StatusCode::NOT_FOUND, "UNKNOWN_TOPIC_OR_PARTITION", &format!("no topic `{name}`"));
    };
    let partition_list = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let g = hosted.get(&(t.name.clone(), i as i32));
            PartitionView {
                partition: i as i32,
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                elr: p.elr.clone(),
                adding: p.adding.clone(),
                removing: p.removing.clone(),
                hosted_here: g.is_some(),
                log_start_offset: g.map(|g| g.log_start_offset),
                high_watermark: g.map(|g| g.high_watermark),
                log_end_offset: g.map(|g| g.log_end_offset),
                size_bytes: g.map(|g| g.size_bytes),
            }
        })
        .collect();
    let view = TopicView { summary: summary(admin, t, &hosted), configs: t.configs.clone(), partition_list };
    api::json(StatusCode::OK, &view)
}

/// The body of `POST /api/v1/topics`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTopic {
    name: String,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

/// `POST /api/v1/topics`: CreateTopics, as a client would send it.
pub async fn create_topic(admin: &Admin, body: &[u8]) -> Response<Full<Bytes>> {
    let new: NewTopic = match serde_json::from_slice(body) {
        Ok(n) => n,
        Err(e) => {
            return api::error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &format!("expected {{\"name\", \"partitions\", \"replication_factor\", \"configs\"}}: {e}"),
            )
        }
    };
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(new.name.clone())))
        .with_num_partitions(new.partitions.unwrap_or(-1))
        .with_replication_factor(new.replication_factor.unwrap_or(-1))
        .with_configs(
            new.configs
                .into_iter()
                .map(|(k, v)| CreatableTopicConfig::default().with_name(StrBytes::from_string(k)).with_value(Some(StrBytes::from_string(v))))
                .collect(),
        );
    let req = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(30_000);
    let resp = handlers::create_topics::handle(&admin.ctx, req, 7).await;
    let Some(r) = resp.topics.first() else { return api::error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "CreateTopics answered no topic") };
    if r.error_code != 0 {
        return api::kafka_error(r.error_code, r.error_message.as_deref());
    }
    let hosted = hosted(admin).await;
    let image = admin.ctx.shard().image();
    match image.topics.get(&new.name) {
        Some(t) => api::json(StatusCode::CREATED, &summary(admin, t, &hosted)),
        None => {
            api::json(StatusCode::CREATED, &serde_json::json!({ "name": new.name, "partitions": r.num_partitions, "replication_factor": r.replication_factor }))
        }
    }
}

/// `DELETE /api/v1/topics/{topic}`: DeleteTopics, as a client would send it.
pub async fn delete_topic(admin: &Admin, name: &str) -> Response<Full<Bytes>> {
    let req = DeleteTopicsRequest::default()
        .with_topics(vec![DeleteTopicState::default().with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))])
        .with_timeout_ms(30_000);
    let resp = handlers::delete_topics::handle(&admin.ctx, req, 6).await;
    match resp.responses.first() {
        Some(r) if r.error_code != 0 => api::kafka_error(r.error_code, r.error_message.as_deref()),
        Some(_) => api::json(StatusCode::OK, &serde_json::json!({ "name": name })),
        None => api::error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "DeleteTopics answered no topic"),
    }
}
