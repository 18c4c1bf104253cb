//! `shardlog config`: kafka-configs.sh --describe / --alter for topics and brokers.
//!
//! Describe is librdkafka's DescribeConfigs. Alter is IncrementalAlterConfigs
//! (KIP-339: set or delete single keys, leaving the others alone), which
//! librdkafka's Rust binding lacks, so it goes through the raw helper.

use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{ConfigSource, ResourceSpecifier};
use rdkafka::consumer::Consumer;
use serde_json::{json, Value};

use super::client::{admin_opts, block_on, parse_key_value, CliError, Conn, ConnectArgs, OP_TIMEOUT};
use super::output::{print_rows, print_str, OutputArgs};

/// Describe or change topic and broker configs.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example: shardlog config alter --entity-type topics --entity-name orders --add-config retention.ms=3600000")]
pub struct ConfigArgs {
    /// How to reach the cluster (--bootstrap-server, or SHARDLOG_BOOTSTRAP).
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Output format of listings (--output table or json).
    #[command(flatten)]
    pub out: OutputArgs,
    /// The config subcommand to run.
    #[command(subcommand)]
    pub cmd: ConfigCmd,
}

/// Which kind of resource a config belongs to (Kafka's entity types).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityType {
    /// Topic configs; --entity-name is the topic name.
    Topics,
    /// Broker configs; --entity-name is the broker id.
    Brokers,
}

impl EntityType {
    /// Kafka's ConfigResource.Type code.
    fn resource_type(self) -> i8 {
        match self {
            EntityType::Topics => 2,
            EntityType::Brokers => 4,
        }
    }
}

/// The resource whose configs are described or altered.
#[derive(clap::Args, Debug, Clone)]
pub struct Entity {
    /// Kind of resource.
    #[arg(long, value_enum)]
    pub entity_type: EntityType,
    /// Topic name, or broker id.
    #[arg(long)]
    pub entity_name: String,
}

/// Subcommands of `shardlog config`.
#[derive(clap::Subcommand, Debug)]
pub enum ConfigCmd {
    /// Show the configs set on a topic or broker; --all adds defaults (kafka-configs.sh --describe).
    ///
    /// Example: shardlog config describe --entity-type topics --entity-name orders --all
    Describe {
        /// The topic or broker whose configs are shown.
        #[command(flatten)]
        entity: Entity,
        /// Every config, including defaults and static broker configs.
        #[arg(long)]
        all: bool,
    },
    /// Set and/or delete configs, leaving the others alone (kafka-configs.sh --alter).
    ///
    /// Example: shardlog config alter --entity-type topics --entity-name orders --add-config retention.ms=3600000,cleanup.policy=[delete,compact] --delete-config segment.ms
    Alter {
        /// The topic or broker whose configs are changed.
        #[command(flatten)]
        entity: Entity,
        /// KEY=VALUE[,KEY=VALUE...]; a value with commas goes in brackets: k=[a,b].
        #[arg(long, value_name = "K=V,...")]
        add_config: Vec<String>,
        /// Keys to remove (back to the default), comma-separated or repeated.
        #[arg(long, value_name = "KEY[,KEY...]", value_delimiter = ',')]
        delete_config: Vec<String>,
    },
}

/// Runs a `shardlog config` subcommand: describe with DescribeConfigs, alter
/// with IncrementalAlterConfigs.
pub fn run(args: ConfigArgs) -> Result<(), CliError> {
    let ConfigArgs { conn, out, cmd } = args;
    match cmd {
        ConfigCmd::Describe { entity, all } => {
            let broker_id;
            let spec = match entity.entity_type {
                EntityType::Topics => ResourceSpecifier::Topic(&entity.entity_name),
                EntityType::Brokers => {
                    broker_id = parse_broker_id(&entity.entity_name)?;
                    ResourceSpecifier::Broker(broker_id)
                }
            };
            let ctx = format!("describe configs of {:?} '{}'", entity.entity_type, entity.entity_name).to_lowercase();
            let mut res = block_on(conn.admin()?.describe_configs([&spec], &admin_opts())).map_err(|e| CliError::rdkafka(ctx.clone(), e))?;
            let resource = match res.pop() {
                Some(Ok(r)) => r,
                Some(Err(code)) => return Err(CliError::rd_code(ctx, code)),
                None => return Err(CliError::Input(format!("{ctx}: empty answer"))),
            };
            let mut rows: Vec<Value> = resource
                .entries
                .iter()
                .filter(|e| all || is_dynamic(&e.source))
                .map(|e| {
                    json!({
                        "name": e.name,
                        "value": if e.is_sensitive { None } else { e.value.clone() },
                        "source": source_name(&e.source),
                        "is_default": e.is_default,
                        "read_only": e.is_read_only,
                        "sensitive": e.is_sensitive,
                    })
                })
                .collect();
            rows.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
            print_rows(
                out.output,
                &[("NAME", "name"), ("VALUE", "value"), ("SOURCE", "source"), ("READ-ONLY", "read_only"), ("SENSITIVE", "sensitive")],
                &rows,
            );
            Ok(())
        }
        ConfigCmd::Alter { entity, add_config, delete_config } => {
            let mut configs = Vec::new();
            for arg in &add_config {
                for (k, v) in parse_config_list(arg)? {
                    configs.push(
                        AlterableConfig::default().with_name(StrBytes::from_string(k)).with_config_operation(0).with_value(Some(StrBytes::from_string(v))),
                    );
                }
            }
            for k in delete_config.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
                configs.push(AlterableConfig::default().with_name(StrBytes::from_string(k.to_string())).with_config_operation(1));
            }
            if configs.is_empty() {
                return Err(CliError::Input("nothing to alter: give --add-config and/or --delete-config".into()));
            }
            let mut c = match entity.entity_type {
                EntityType::Topics => conn.connect()?,
                // Broker configs are changed on the broker itself.
                EntityType::Brokers => Conn::open(&broker_address(&conn, parse_broker_id(&entity.entity_name)?)?)?,
            };
            let req = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(entity.entity_type.resource_type())
                .with_resource_name(StrBytes::from_string(entity.entity_name.clone()))
                .with_configs(configs)]);
            let resp = c.request(1, &req)?;
            let what = match entity.entity_type {
                EntityType::Topics => "topic",
                EntityType::Brokers => "broker",
            };
            for r in resp.responses {
                if r.error_code != 0 {
                    let mut ctx = format!("alter configs of {what} '{}'", entity.entity_name);
                    if let Some(m) = r.error_message.filter(|m| !m.is_empty()) {
                        ctx.push_str(&format!(" ({m})"));
                    }
                    return Err(CliError::kafka(ctx, r.error_code));
                }
            }
            print_str(&format!("Completed updating config for {what} {}.\n", entity.entity_name));
            Ok(())
        }
    }
}

fn parse_broker_id(s: &str) -> Result<i32, CliError> {
    s.parse().map_err(|_| CliError::Input(format!("--entity-name of a broker is its numeric id, got '{s}'")))
}

/// host:port of broker `id`, from Metadata.
pub fn broker_address(conn: &ConnectArgs, id: i32) -> Result<String, CliError> {
    let md = conn.consumer(None)?.fetch_metadata(None, OP_TIMEOUT).map_err(|e| CliError::rdkafka("fetch metadata", e))?;
    md.brokers()
        .iter()
        .find(|b| b.id() == id)
        .map(|b| format!("{}:{}", b.host(), b.port()))
        .ok_or_else(|| CliError::Input(format!("no broker with id {id} (see `shardlog cluster info`)")))
}

fn is_dynamic(s: &ConfigSource) -> bool {
    matches!(s, ConfigSource::DynamicTopic | ConfigSource::DynamicBroker | ConfigSource::DynamicDefaultBroker)
}

/// Kafka's ConfigSource names, as kafka-configs.sh prints them.
fn source_name(s: &ConfigSource) -> &'static str {
    match s {
        ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
        ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
        ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
        ConfigSource::Default => "DEFAULT_CONFIG",
        ConfigSource::Unknown => "UNKNOWN",
    }
}

/// kafka-configs.sh's `k1=v1,k2=[a,b]` list: commas inside brackets belong
/// to the value, and the brackets are dropped.
pub fn parse_config_list(s: &str) -> Result<Vec<(String, String)>, CliError> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, ch) in s.char_indices() {
        match ch {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(CliError::Input(format!("unbalanced brackets in '{s}'")));
    }
    items.push(&s[start..]);
    items
        .into_iter()
        .filter(|i| !i.trim().is_empty())
        .map(|i| {
            let (k, v) = parse_key_value(i.trim())?;
            let v = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')).map(str::to_string).unwrap_or(v);
            Ok((k, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_keep_bracketed_commas() {
        let v = parse_config_list("a=1,b=[x,y],c=z=w").unwrap();
        assert_eq!(v, vec![("a".into(), "1".into()), ("b".into(), "x,y".into()), ("c".into(), "z=w".into())]);
        assert!(parse_config_list("a=[1,2").is_err());
        assert!(parse_config_list("novalue").is_err());
    }
}
