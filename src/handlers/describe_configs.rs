//! DescribeConfigs (key 32), versions 1-4: every topic config with its value,
//! source (topic override, static broker config, default), synonyms and type;
//! every broker config (all static: set at start, read-only here).

use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::config::topic::{effective, BrokerValues, Source, TOPIC_CONFIGS};
use crate::error::Error;

/// Kafka's ConfigResource types.
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's ConfigResource type of a broker (its name is the broker id).
pub const RESOURCE_BROKER: i8 = 4;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// Serves DescribeConfigs `version`: topic resources from the metadata image's
/// overrides and the broker's defaults; broker resources for this broker only.
pub async fn handle(ctx: &Ctx, req: DescribeConfigsRequest, version: i16) -> DescribeConfigsResponse {
    let shard = ctx.shard();
    let cfg = &shard.cfg;
    let image = shard.image();
    let broker = BrokerValues::of(cfg);
    let results = req
        .resources
        .iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let wanted = |k: &str| r.configuration_keys.as_ref().is_none_or(|ks| ks.iter().any(|x| x.as_str() == k));
            let configs = match r.resource_type {
                RESOURCE_TOPIC => match image.topics.get(&name) {
                    Some(t) => Ok(topic_entries(&broker, &t.configs, req.include_synonyms, req.include_documentation, version, &wanted)),
                    None => Err(Error::UnknownTopicOrPartition),
                },
                // The cluster-wide dynamic defaults (only the replication throttle rates exist).
                RESOURCE_BROKER if name.is_empty() => Ok(dynamic_entries(&image, -1, SOURCE_DYNAMIC_DEFAULT_BROKER, &wanted)),
                RESOURCE_BROKER if name == cfg.broker_id.to_string() => {
                    let mut entries = broker_entries(&broker, req.include_synonyms, version, &wanted);
                    entries.extend(dynamic_entries(&image, cfg.broker_id, SOURCE_DYNAMIC_BROKER, &wanted));
                    Ok(entries)
                }
                RESOURCE_BROKER => Err(Error::InvalidRequest(format!("broker {name} is not this broker ({})", cfg.broker_id))),
                other => Err(Error::InvalidRequest(format!("resource type {other} is not supported (topics: 2, brokers: 4)"))),
            };
            let mut out = DescribeConfigsResult::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name.clone());
            match configs {
                Ok(c) => out.configs = c,
                Err(e) => {
                    out.error_code = e.code();
                    out.error_message = Some(s(e.to_string()));
                }
            }
            out
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn topic_entries(
    broker: &BrokerValues,
    overrides: &std::collections::BTreeMap<String, String>,
    synonyms: bool,
    docs: bool,
    version: i16,
    wanted: &dyn Fn(&str) -> bool,
) -> Vec<DescribeConfigsResourceResult> {
    TOPIC_CONFIGS
        .iter()
        .filter(|d| wanted(d.name))
        .map(|d| {
            let (value, source) = effective(broker, overrides, d);
            let mut e = DescribeConfigsResourceResult::default()
                .with_name(s(d.name))
                .with_value(Some(s(value)))
                .with_read_only(false)
                .with_config_source(source as i8)
                .with_is_sensitive(false);
            if synonyms {
                let mut syn = Vec::new();
                if let Some(v) = overrides.get(d.name) {
                    syn.push(DescribeConfigsSynonym::default().with_name(s(d.name)).with_value(Some(s(v.clone()))).with_source(Source::Topic as i8));
                }
                let (bv, bsrc) = broker.get(d.broker_key);
                if bsrc == Source::StaticBroker {
                    syn.push(DescribeConfigsSynonym::default().with_name(s(d.broker_key)).with_value(Some(s(bv))).with_source(Source::StaticBroker as i8));
                }
                syn.push(
                    DescribeConfigsSynonym::default()
                        .with_name(s(d.broker_key))
                        .with_value(Some(s(broker.default_of(d.broker_key))))
                        .with_source(Source::Default as i8),
                );
                e.synonyms = syn;
            }
            if version >= 3 {
                e.config_type = d.kind.type_code();
                if docs {
                    e.documentation = Some(s(d.doc));
                }
            }
            e
        })
        .collect()
}

/// Kafka's DescribeConfigs sources of dynamic broker configs.
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;

/// The dynamic broker configs (`shard::throttle`) set for broker `id` (-1: cluster-wide).
fn dynamic_entries(image: &crate::metadata::MetadataImage, id: i32, source: i8, wanted: &dyn Fn(&str) -> bool) -> Vec<DescribeConfigsResourceResult> {
    image
        .broker_configs
        .get(&id)
        .into_iter()
        .flatten()
        .filter(|(k, _)| wanted(k))
        .map(|(k, v)| {
            DescribeConfigsResourceResult::default()
                .with_name(s(k.clone()))
                .with_value(Some(s(v.clone())))
                .with_read_only(false)
                .with_config_source(source)
                .with_is_sensitive(false)
        })
        .collect()
}

fn broker_entries(broker: &BrokerValues, synonyms: bool, version: i16, wanted: &dyn Fn(&str) -> bool) -> Vec<DescribeConfigsResourceResult> {
    broker
        .iter()
        .filter(|(k, _)| wanted(k))
        .map(|(k, v)| {
            let (v, source) = (v.clone(), broker.get(k).1);
            let mut e = DescribeConfigsResourceResult::default()
                .with_name(s(k))
                .with_value(Some(s(v.clone())))
                .with_read_only(true)
                .with_config_source(source as i8)
                .with_is_sensitive(false);
            if synonyms {
                e.synonyms = vec![DescribeConfigsSynonym::default().with_name(s(k)).with_value(Some(s(v))).with_source(source as i8)];
            }
            if version >= 3 {
                e.config_type = 0; // UNKNOWN: broker keys are not typed here
            }
            e
        })
        .collect()
}
