//! Metadata (key 3), versions 0-12: brokers, cluster id, controller, topics with
//! partition leaders, replicas and ISR. Auto-creates requested topics when the
//! request allows it (v4+, always for older versions) and
//! `auto.create.topics.enable` is true — librdkafka's producers rely on it.
//! A name that cannot be created (it collides with an existing topic) gets the
//! creation's error (INVALID_TOPIC_EXCEPTION), as Kafka answers.
//! A partition whose log could not be opened is listed offline, as Kafka lists
//! a replica on a failed log dir: KAFKA_STORAGE_ERROR, no leader, no ISR, and
//! this broker among its offline replicas (v5+). It is never shown healthy.
//! From v10 a topic may be asked for by id instead of name.
//! A cluster broker that has not yet caught up with the metadata log since it
//! started lists the partitions its stale image says it leads as leaderless,
//! as its partitions see them (`shard::partition::served_leader`): Kafka does
//! not answer clients at all before that point, and naming itself would send
//! clients to a leader that is not serving.

use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use std::collections::HashMap;

use super::Ctx;
use crate::error::Error;
use crate::metadata::TopicMeta;
use crate::protocol::topic::{is_internal_topic, validate_topic_name, OFFSETS_TOPIC, TXN_STATE_TOPIC};
use crate::services::coordinator_lookup as lookup;
use crate::shard::offline::OfflinePartitions;
use crate::shard::partition::served_leader;
use crate::shard::request::NewTopic;

/// Serves Metadata `version`: the requested topics (all when none are named),
/// auto-created where allowed, with their partitions from the metadata image.
pub async fn handle(ctx: &Ctx, req: MetadataRequest, version: i16) -> MetadataResponse {
    let cfg = ctx.shard().cfg.clone();
    let allow_auto = version < 4 || req.allow_auto_topic_creation;
    let requested: Option<Vec<String>> = req.topics.as_ref().map(|ts| ts.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect());
    // v0 used an empty list to mean "all topics".
    let requested = requested.filter(|r| !(version == 0 && r.is_empty()));

    // Why auto-creation failed, per name (e.g. a name colliding with an existing one).
    let mut create_errors: HashMap<String, i16> = HashMap::new();
    if let Some(names) = &requested {
        let image = ctx.shard().image();
        let missing: Vec<&String> = names.iter().filter(|n| !image.topics.contains_key(*n) && validate_topic_name(n).is_ok()).collect();
        if allow_auto && cfg.auto_create_topics_enable && !missing.is_empty() {
            // Internal topics are created the broker's way (their own partition
            // count and configs), as Kafka's auto-creation does; names the broker
            // reserves but does not use are never created.
            if missing.iter().any(|n| n.as_str() == OFFSETS_TOPIC) {
                lookup::ensure_offsets_topic(&ctx.x).await;
            }
            if missing.iter().any(|n| n.as_str() == TXN_STATE_TOPIC) {
                lookup::ensure_txn_topic(&ctx.x).await;
            }
            let plain: Vec<NewTopic> = missing
                .iter()
                .filter(|n| !is_internal_topic(n))
                .map(|n| NewTopic {
                    name: (*n).clone(),
                    num_partitions: cfg.num_partitions,
                    replication_factor: cfg.default_replication_factor,
                    configs: Default::default(),
                    assignments: None,
                })
                .collect();
            let names: Vec<String> = plain.iter().map(|t| t.name.clone()).collect();
            if !plain.is_empty() {
                for (name, r) in names.into_iter().zip(crate::services::topics::create(&ctx.x, plain, false).await) {
                    // Already existing means another request created it meanwhile.
                    match r {
                        Ok(()) | Err(Error::TopicAlreadyExists) => {}
                        Err(e) => {
                            create_errors.insert(name, e.code());
                        }
                    }
                }
            }
        }
    }

    let image = ctx.shard().image();
    let offline = &ctx.shard().offline;
    let down_brokers: Vec<i32> = image.brokers.iter().filter(|(_, b)| b.fenced).map(|(&id, _)| id).collect();
    let view = View { version, offline, down_brokers: &down_brokers, me: cfg.broker_id, may_lead: ctx.shard().may_lead(&image) };
    let topics: Vec<MetadataResponseTopic> = match &requested {
        Some(names) => names
            .iter()
            .map(|n| match image.topics.get(n) {
                Some(t) => topic_entry(t, &view),
                None => {
                    let code = if validate_topic_name(n).is_err() {
                        Error::InvalidTopic(n.clone()).code()
                    } else {
                        create_errors.get(n).copied().unwrap_or(Error::UnknownTopicOrPartition.code())
                    };
                    MetadataResponseTopic::default().with_name(Some(TopicName(StrBytes::from_string(n.clone())))).with_error_code(code)
                }
            })
            .collect(),
        None => image.topics.values().map(|t| topic_entry(t, &view)).collect(),
    };
    // v10+ may ask by topic id (name null): consumer-protocol clients (KIP-848)
    // learn their assignment as topic ids and look the names up this way. An
    // unknown id is UNKNOWN_TOPIC_ID, as Kafka answers.
    let mut topics = topics;
    if version >= 10 {
        for id in req.topics.iter().flatten().filter(|t| t.name.is_none() && !t.topic_id.is_nil()).map(|t| t.topic_id) {
            topics.push(match image.topics.values().find(|t| t.topic_id == id) {
                Some(t) => topic_entry(t, &view),
                None => MetadataResponseTopic::default().with_topic_id(id).with_error_code(Error::UnknownTopicId.code()),
            });
        }
    }
    let brokers = crate::services::brokers::live_brokers(ctx.shard())
        .into_iter()
        .map(|b| {
            let e = MetadataResponseBroker::default().with_node_id(BrokerId(b.id)).with_host(StrBytes::from_string(b.host)).with_port(b.port as i32);
            // rack exists from v1 on.
            if version >= 1 {
                e.with_rack(b.rack.map(StrBytes::from_string))
            } else {
                e
            }
        })
        .collect();
    let mut resp = MetadataResponse::default().with_brokers(brokers).with_topics(topics);
    // Fields exist only from some versions on; the encoder rejects others.
    if version >= 1 {
        resp.controller_id = BrokerId(crate::services::brokers::controller_id(ctx.shard()));
    }
    if version >= 2 {
        resp.cluster_id = Some(StrBytes::from_string(image.cluster_id.clone()));
    }
    resp
}

/// What a topic's entry is drawn with, besides the topic itself.
#[derive(Clone, Copy)]
struct View<'a> {
    version: i16,
    offline: &'a OfflinePartitions,
    /// In a cluster, registered brokers that are fenced; their replicas are
    /// listed offline (v5+), as Kafka lists replicas of dead brokers.
    down_brokers: &'a [i32],
    /// This broker, and whether it may lead yet ([`served_leader`]).
    me: i32,
    may_lead: bool,
}

fn topic_entry(t: &TopicMeta, view: &View) -> MetadataResponseTopic {
    let View { version, offline, down_brokers, me, may_lead } = *view;
    let down = offline.of_topic(&t.name, t.topic_id);
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let entry = MetadataResponsePartition::default()
                .with_partition_index(i as i32)
                .with_leader_epoch(if version >= 7 { p.leader_epoch } else { -1 })
                .with_replica_nodes(p.replicas.iter().map(|&b| BrokerId(b)).collect());
            let leader = served_leader(p.leader, me, may_lead);
            match down.get(&(i as i32)) {
                // No leader (its broker is fenced, or it is this broker, not
                // caught up yet): clients wait and ask again.
                None if leader < 0 => {
                    let e = entry
                        .with_error_code(Error::LeaderNotAvailable.code())
                        .with_leader_id(BrokerId(-1))
                        .with_isr_nodes(p.isr.iter().map(|&b| BrokerId(b)).collect());
                    if version >= 5 {
                        e.with_offline_replicas(p.replicas.iter().filter(|b| down_brokers.contains(b)).map(|&b| BrokerId(b)).collect())
                    } else {
                        e
                    }
                }
                None => {
                    let e = entry.with_leader_id(BrokerId(leader)).with_isr_nodes(p.isr.iter().map(|&b| BrokerId(b)).collect());
                    if version >= 5 {
                        e.with_offline_replicas(p.replicas.iter().filter(|b| down_brokers.contains(b)).map(|&b| BrokerId(b)).collect())
                    } else {
                        e
                    }
                }
                Some(reason) => {
                    let e = entry.with_error_code(Error::KafkaStorage(reason.clone()).code()).with_leader_id(BrokerId(-1)).with_isr_nodes(Vec::new());
                    // offline_replicas exists from v5 on; the encoder rejects it before.
                    if version >= 5 {
                        e.with_offline_replicas(p.replicas.iter().map(|&b| BrokerId(b)).collect())
                    } else {
                        e
                    }
                }
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(if version >= 10 { t.topic_id } else { uuid::Uuid::nil() })
        .with_is_internal(version >= 1 && is_internal_topic(&t.name))
        .with_partitions(partitions)
}
