//! Broker configuration: Kafka's key names, one place for every limit.
//!
//! Sources, later ones win: built-in defaults < tuning profile (`--profile`)
//! < config file (`--config`) < `--set KEY=VALUE` flags. Profiles and config
//! files are TOML; both dotted keys (`log.dirs = "..."`, which TOML reads as
//! nested tables) and quoted keys (`"log.dirs" = "..."`) are accepted and
//! flattened back into Kafka's dotted names. Every value goes through
//! [`Config::set`], so an unknown key or a bad value stops start-up with a
//! message naming the key, whichever source it came from.

pub mod topic;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a configuration could not be built; always names the key at fault.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A key this broker does not know (a typo, or a Kafka setting shardlog does not have).
    #[error("unknown config key `{0}`")]
    UnknownKey(String),
    /// A known key with a value it does not accept (wrong type, out of range).
    #[error("bad value for `{key}`: {why}")]
    BadValue {
        /// The config key, as given.
        key: String,
        /// Why the value was refused, e.g. the range it must be in.
        why: String,
    },
    /// The config file (`--config`) or tuning profile could not be read or is not valid TOML.
    #[error("cannot read config file {path}: {why}")]
    File {
        /// The config file's path.
        path: PathBuf,
        /// The read or TOML parse error.
        why: String,
    },
}

fn bad(key: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::BadValue { key: key.to_string(), why: why.into() }
}

/// How a topic stamps record timestamps (`log.message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's timestamp in each record is kept.
    CreateTime,
    /// The broker stamps each batch with its clock at append (ms), replacing the producer's.
    LogAppendTime,
}

/// Which cores run shards: an explicit list or one per online core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardCores {
    /// One shard per online CPU (the default profile).
    All,
    /// These CPU ids, one shard each, in shard order.
    List(Vec<usize>),
}

/// The whole broker configuration. Field names are Kafka's keys with units last.
#[derive(Debug, Clone)]
pub struct Config {
    /// `listeners`: where clients connect (PLAINTEXT only). Port 0 picks a free port.
    pub listener: SocketAddr,
    /// `advertised.listeners`: host:port returned in Metadata; None = the bound listener.
    pub advertised_listener: Option<(String, u16)>,
    /// `log.dirs`: the one data directory (Kafka's on-disk layout under it).
    pub log_dir: PathBuf,
    /// `broker.id` (alias `node.id`).
    pub broker_id: i32,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `delete.topic.enable`: DeleteTopics is refused when false.
    pub delete_topic_enable: bool,
    /// `log.segment.bytes`: roll the active segment when it would exceed this.
    pub log_segment_bytes: u64,
    /// `log.roll.ms` (or `log.roll.hours`): roll a segment older than this.
    pub log_roll_ms: u64,
    /// `log.index.interval.bytes`: log bytes between two sparse index entries.
    pub log_index_interval_bytes: u64,
    /// `message.max.bytes`: largest record batch a produce may carry.
    pub message_max_bytes: usize,
    /// `socket.request.max.bytes`: largest request frame; checked before any allocation.
    pub socket_request_max_bytes: usize,
    /// `log.flush.interval.messages`: fdatasync after this many records (None = the OS decides).
    pub log_flush_interval_messages: Option<u64>,
    /// `log.flush.interval.ms`: fdatasync data older than this (None = the OS decides).
    pub log_flush_interval_ms: Option<u64>,
    /// `log.message.timestamp.type`: CreateTime or LogAppendTime for new topics.
    pub log_message_timestamp_type: TimestampType,
    /// `shard.cores`: CPUs that run one pinned shard each.
    pub shard_cores: ShardCores,
    /// `shard.io.memory.bytes`: glommio io_memory per shard; capped by RLIMIT_MEMLOCK at start.
    pub shard_io_memory_bytes: usize,
    /// `shard.spin.before.park.us`: how long an idle shard spins before sleeping
    /// (0 = park at once). Spinning cuts cross-shard hop latency ~10x at the cost of CPU.
    pub shard_spin_before_park_us: u64,
    /// `xshard.channel.capacity`: messages queued between two shards before senders wait.
    pub xshard_channel_capacity: usize,
    /// `queued.max.requests`: requests in flight on one connection before reading pauses.
    pub queued_max_requests: usize,
    /// `metadata.log.max.record.bytes.between.snapshots`: bytes appended to the metadata
    /// log before the controller writes a checkpoint and drops the records before it.
    pub metadata_log_max_record_bytes_between_snapshots: u64,
    /// `xshard.inflight.max`: requests one shard may have running on another shard at once
    /// (per direction; a caller beyond it waits). Calls made while serving another request
    /// (transaction markers, producer-id blocks) have a budget of the same size of their own,
    /// so nested calls can never wait on the calls that wait on them.
    pub xshard_inflight_max: usize,
    /// `max.connections`: client connections open on the broker at once; beyond it the broker
    /// stops accepting (new connections wait in the kernel's backlog) until one closes.
    pub max_connections: usize,
    /// `max.connections.per.ip`: connections from one IP address; beyond it new ones are closed.
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`: per-address exceptions, `ip:count,ip:count`.
    pub max_connections_per_ip_overrides: Vec<(std::net::IpAddr, usize)>,
    /// `queued.max.request.bytes`: bytes of request frames the broker holds in flight (read but
    /// not yet answered), split evenly between shards; a shard at its share stops reading requests
    /// until some finish. None (-1) = unbounded, as in Kafka. Bytes.
    pub queued_max_request_bytes: Option<usize>,
    /// `fetch.max.bytes`: upper bound for one Fetch response (Kafka's broker default 55 MiB).
    pub fetch_max_bytes: usize,
    /// `group.initial.rebalance.delay.ms`: a new group waits this long for more members.
    pub group_initial_rebalance_delay_ms: u64,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets` (fixed once created).
    pub offsets_topic_num_partitions: i32,
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state` (fixed once created).
    pub transaction_state_log_num_partitions: i32,
    /// `transaction.max.timeout.ms`: the largest `transaction.timeout.ms` a producer may ask for.
    pub transaction_max_timeout_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often coordinators abort expired transactions.
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// `transactional.id.expiration.ms`: a transactional id idle this long (no transaction open) is forgotten.
    pub transactional_id_expiration_ms: i64,
    /// `producer.id.expiration.ms`: a partition forgets an idle producer's sequence state after this.
    pub producer_id_expiration_ms: i64,
    /// `group.min.session.timeout.ms`: smallest session timeout a member may ask for.
    pub group_min_session_timeout_ms: u64,
    /// `group.max.session.timeout.ms`: largest session timeout a member may ask for.
    pub group_max_session_timeout_ms: u64,
    /// `offsets.retention.minutes`: offsets of an empty group older than this are dropped.
    pub offsets_retention_minutes: u64,
    /// `group.consumer.heartbeat.interval.ms`: how often a member of a consumer
    /// group (KIP-848 protocol) is told to heartbeat; clients do not choose it.
    pub group_consumer_heartbeat_interval_ms: u64,
    /// `group.consumer.session.timeout.ms`: a consumer-protocol member not heard
    /// from for this long is removed (its partitions go to the others).
    pub group_consumer_session_timeout_ms: u64,
    /// `group.consumer.assignors`: the server-side assignors a consumer-protocol
    /// group may use (`uniform`, `range`, or Kafka's class names); the first is
    /// the default. A member naming another gets UNSUPPORTED_ASSIGNOR.
    pub group_consumer_assignors: Vec<String>,
    /// `group.consumer.max.size`: most members one consumer-protocol group may
    /// have (GROUP_MAX_SIZE_REACHED beyond); bounds a group's memory.
    pub group_consumer_max_size: u32,
    /// `offset.metadata.max.bytes`: longest metadata string of a committed offset.
    pub offset_metadata_max_bytes: usize,
    /// `log.retention.ms` (or `.minutes`, `.hours`): delete segments older than this; None = forever.
    pub log_retention_ms: Option<i64>,
    /// `log.retention.bytes`: delete old segments beyond this partition size; None = no limit.
    pub log_retention_bytes: Option<i64>,
    /// `log.retention.check.interval.ms`: how often each shard applies retention.
    pub log_retention_check_interval_ms: u64,
    /// `log.cleanup.policy`: `delete`, `compact` or both (comma-separated), for new topics.
    pub log_cleanup_policy: String,
    /// `log.cleaner.enable`: run the log cleaner (compaction) on every shard.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.threads`: 0 disables the cleaner; thread-per-core, every shard
    /// cleans its own partitions on a low-priority task queue, so larger values add nothing.
    pub log_cleaner_threads: u32,
    /// `log.cleaner.backoff.ms`: pause between cleaner passes when nothing was dirty enough.
    pub log_cleaner_backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`: key-map budget of one shard's cleaner pass.
    pub log_cleaner_dedupe_buffer_size: usize,
    /// `log.cleaner.min.cleanable.ratio`: dirty share that makes a compacted log worth cleaning.
    pub log_cleaner_min_cleanable_ratio: f64,
    /// `log.cleaner.delete.retention.ms`: how long tombstones survive compaction.
    pub log_cleaner_delete_retention_ms: i64,
    /// `log.cleaner.min.compaction.lag.ms`: records younger than this are not compacted.
    pub log_cleaner_min_compaction_lag_ms: i64,
    /// `log.cleaner.max.compaction.lag.ms`: a compacted log with an uncleaned record
    /// older than this is cleaned whatever its dirty ratio (and its active segment
    /// rolls at this age, so the record can be cleaned).
    pub log_cleaner_max_compaction_lag_ms: i64,
    /// `compression.type`: `producer` (store as sent) or a codec to re-compress with.
    pub compression_type: String,
    /// `log.message.timestamp.before.max.ms`: oldest CreateTime accepted, relative to now.
    pub log_message_timestamp_before_max_ms: i64,
    /// `log.message.timestamp.after.max.ms`: newest CreateTime accepted, relative to now.
    pub log_message_timestamp_after_max_ms: i64,
    /// `min.insync.replicas`: an acks=all produce needs this many in-sync replicas.
    pub min_insync_replicas: i32,
    /// Not a Kafka key: the clock the broker's time-based logic reads (group and
    /// transaction timeouts, retention, timestamps). The system clock; unit tests
    /// put a manual one here to move time themselves.
    pub clock: crate::clock::Clock,
    /// TEMP(cluster-config branch replaces): `process.roles`.
    pub process_roles: ProcessRoles,
    /// TEMP: `controller.quorum.voters`.
    pub controller_quorum_voters: Vec<QuorumVoter>,
    /// TEMP: the CONTROLLER listener.
    pub controller_listener: Option<SocketAddr>,
    /// TEMP: `broker.rack`.
    pub broker_rack: Option<String>,
    /// TEMP: `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// TEMP: `broker.session.timeout.ms`.
    pub broker_session_timeout_ms: u64,
    /// TEMP: `controller.quorum.election.timeout.ms`.
    pub controller_quorum_election_timeout_ms: u64,
    /// TEMP: `offsets.topic.replication.factor`.
    pub offsets_topic_replication_factor: i16,
    /// TEMP: `transaction.state.log.replication.factor`.
    pub transaction_state_log_replication_factor: i16,
}

/// TEMP `process.roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    /// Serves clients.
    pub broker: bool,
    /// Votes in the metadata quorum.
    pub controller: bool,
}

/// TEMP one voter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    /// node.id
    pub id: i32,
    /// host
    pub host: String,
    /// port
    pub port: u16,
}

impl Config {
    /// TEMP
    pub fn is_cluster(&self) -> bool {
        !self.controller_quorum_voters.is_empty()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listener: "127.0.0.1:9092".parse().expect("static address"),
            advertised_listener: None,
            log_dir: PathBuf::from("./data"),
            broker_id: 0,
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics_enable: true,
            delete_topic_enable: true,
            log_segment_bytes: 1 << 30,
            log_roll_ms: 168 * 3_600_000,
            log_index_interval_bytes: 4096,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            log_flush_interval_messages: None,
            log_flush_interval_ms: None,
            log_message_timestamp_type: TimestampType::CreateTime,
            shard_cores: ShardCores::All,
            shard_io_memory_bytes: 4 << 20,
            shard_spin_before_park_us: 0,
            xshard_channel_capacity: 1024,
            queued_max_requests: 500,
            xshard_inflight_max: 1024,
            metadata_log_max_record_bytes_between_snapshots: 20 * 1024 * 1024,
            max_connections: i32::MAX as usize,
            max_connections_per_ip: i32::MAX as usize,
            max_connections_per_ip_overrides: Vec::new(),
            // Kafka's default is -1 (unbounded); a bound by default keeps a pipelining client
            // from making the broker hold queued.max.requests x socket.request.max.bytes.
            queued_max_request_bytes: Some(512 * 1024 * 1024),
            fetch_max_bytes: 55 * 1024 * 1024,
            group_initial_rebalance_delay_ms: 3000,
            offsets_topic_num_partitions: 50,
            transaction_state_log_num_partitions: 50,
            transaction_max_timeout_ms: 900_000,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            transactional_id_expiration_ms: 604_800_000,
            producer_id_expiration_ms: 86_400_000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            offsets_retention_minutes: 10080,
            group_consumer_heartbeat_interval_ms: 5000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_assignors: vec!["uniform".into(), "range".into()],
            // Kafka's default (Integer.MAX_VALUE).
            group_consumer_max_size: i32::MAX as u32,
            offset_metadata_max_bytes: 4096,
            log_retention_ms: Some(168 * 3_600_000),
            log_retention_bytes: None,
            log_retention_check_interval_ms: 300_000,
            log_cleanup_policy: "delete".into(),
            log_cleaner_enable: true,
            log_cleaner_threads: 1,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_dedupe_buffer_size: 128 * 1024 * 1024,
            log_cleaner_min_cleanable_ratio: 0.5,
            log_cleaner_delete_retention_ms: 86_400_000,
            log_cleaner_min_compaction_lag_ms: 0,
            log_cleaner_max_compaction_lag_ms: i64::MAX,
            compression_type: "producer".into(),
            log_message_timestamp_before_max_ms: i64::MAX,
            log_message_timestamp_after_max_ms: i64::MAX,
            min_insync_replicas: 1,
            process_roles: ProcessRoles { broker: true, controller: true },
            controller_quorum_voters: Vec::new(),
            controller_listener: None,
            broker_rack: None,
            broker_heartbeat_interval_ms: 2000,
            broker_session_timeout_ms: 9000,
            controller_quorum_election_timeout_ms: 1000,
            offsets_topic_replication_factor: 1,
            transaction_state_log_replication_factor: 1,
            clock: crate::clock::Clock::system(),
        }
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(key, format!("`{v}` is not true or false"))),
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigError> {
    v.trim().parse::<T>().map_err(|_| bad(key, format!("`{v}` is not a valid number")))
}

/// `PLAINTEXT://host:port` (or bare `host:port`) -> (host, port).
fn parse_listener(key: &str, v: &str) -> Result<(String, u16), ConfigError> {
    let first = v.split(',').next().unwrap_or("").trim();
    let rest = match first.split_once("://") {
        Some((proto, rest)) => {
            if !proto.eq_ignore_ascii_case("PLAINTEXT") {
                return Err(bad(key, format!("only PLAINTEXT listeners are supported, got `{proto}`")));
            }
            rest
        }
        None => first,
    };
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad(key, format!("`{v}` is not PLAINTEXT://host:port")))?;
    let port: u16 = parse_num(key, port)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok((host.to_string(), port))
}

impl Config {
    /// Builds the configuration from its sources, in precedence order, then validates it.
    pub fn load(profile: Option<&Path>, file: Option<&Path>, sets: &[String]) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        for path in [profile, file].into_iter().flatten() {
            for (k, v) in read_toml(path)? {
                cfg.set(&k, &v)?;
            }
        }
        for kv in sets {
            let (k, v) = kv.split_once('=').ok_or_else(|| bad(kv, "expected KEY=VALUE"))?;
            cfg.set(k.trim(), v.trim())?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Sets one key from its text form; the single place that knows every key.
    pub fn set(&mut self, key: &str, v: &str) -> Result<(), ConfigError> {
        match key {
            "controller.quorum.voters" => {
                self.controller_quorum_voters = v
                    .split(',')
                    .map(|e| {
                        let (id, hp) = e.trim().split_once('@').ok_or_else(|| bad(key, "id@host:port"))?;
                        let (h, p) = hp.rsplit_once(':').ok_or_else(|| bad(key, "id@host:port"))?;
                        Ok(QuorumVoter { id: parse_num(key, id)?, host: h.to_string(), port: parse_num(key, p)? })
                    })
                    .collect::<Result<_, ConfigError>>()?
            }
            "broker.session.timeout.ms" => self.broker_session_timeout_ms = parse_num(key, v)?,
            "broker.heartbeat.interval.ms" => self.broker_heartbeat_interval_ms = parse_num(key, v)?,
            "controller.quorum.election.timeout.ms" => self.controller_quorum_election_timeout_ms = parse_num(key, v)?,
            "broker.rack" => self.broker_rack = Some(v.to_string()),
            "listeners" if v.contains("CONTROLLER://") => {
                for l in v.split(',') {
                    if let Some(a) = l.strip_prefix("CONTROLLER://") {
                        self.controller_listener = Some(a.parse().map_err(|_| bad(key, "addr"))?);
                    } else {
                        self.set(key, l)?;
                    }
                }
            }
            "listeners" => {
                let (host, port) = parse_listener(key, v)?;
                self.listener = format!("{host}:{port}")
                    .parse()
                    .or_else(|_| {
                        use std::net::ToSocketAddrs;
                        (host.as_str(), port).to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or(())
                    })
                    .map_err(|_| bad(key, format!("cannot resolve `{host}`")))?;
            }
            "advertised.listeners" => self.advertised_listener = Some(parse_listener(key, v)?),
            "log.dirs" | "log.dir" => {
                if v.contains(',') {
                    return Err(bad(key, "one data directory is supported"));
                }
                if v.is_empty() {
                    return Err(bad(key, "empty path"));
                }
                self.log_dir = PathBuf::from(v);
            }
            "broker.id" | "node.id" => self.broker_id = parse_num(key, v)?,
            "num.partitions" => self.num_partitions = parse_num(key, v)?,
            "default.replication.factor" => self.default_replication_factor = parse_num(key, v)?,
            "auto.create.topics.enable" => self.auto_create_topics_enable = parse_bool(key, v)?,
            "delete.topic.enable" => self.delete_topic_enable = parse_bool(key, v)?,
            "log.segment.bytes" => self.log_segment_bytes = parse_num(key, v)?,
            "log.roll.ms" => self.log_roll_ms = parse_num(key, v)?,
            "log.roll.hours" => self.log_roll_ms = parse_num::<u64>(key, v)? * 3_600_000,
            "log.index.interval.bytes" => self.log_index_interval_bytes = parse_num(key, v)?,
            "message.max.bytes" => self.message_max_bytes = parse_num(key, v)?,
            "socket.request.max.bytes" => self.socket_request_max_bytes = parse_num(key, v)?,
            "log.flush.interval.messages" => {
                let n: i64 = parse_num(key, v)?;
                self.log_flush_interval_messages = if n <= 0 || n == i64::MAX { None } else { Some(n as u64) };
            }
            "log.flush.interval.ms" => {
                let n: i64 = parse_num(key, v)?;
                self.log_flush_interval_ms = if n <= 0 || n == i64::MAX { None } else { Some(n as u64) };
            }
            "log.message.timestamp.type" => {
                self.log_message_timestamp_type = match v {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(bad(key, "expected CreateTime or LogAppendTime")),
                }
            }
            "shard.cores" => {
                self.shard_cores = if v == "all" {
                    ShardCores::All
                } else {
                    let mut cores = Vec::new();
                    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        if let Some((a, b)) = part.split_once('-') {
                            let (a, b): (usize, usize) = (parse_num(key, a)?, parse_num(key, b)?);
                            cores.extend(a..=b);
                        } else {
                            cores.push(parse_num(key, part)?);
                        }
                    }
                    ShardCores::List(cores)
                }
            }
            "shard.io.memory.bytes" => self.shard_io_memory_bytes = parse_num(key, v)?,
            "shard.spin.before.park.us" => self.shard_spin_before_park_us = parse_num(key, v)?,
            "xshard.channel.capacity" => self.xshard_channel_capacity = parse_num(key, v)?,
            "queued.max.requests" => self.queued_max_requests = parse_num(key, v)?,
            "xshard.inflight.max" => self.xshard_inflight_max = parse_num(key, v)?,
            "metadata.log.max.record.bytes.between.snapshots" => self.metadata_log_max_record_bytes_between_snapshots = parse_num(key, v)?,
            "max.connections" => self.max_connections = parse_num(key, v)?,
            "max.connections.per.ip" => self.max_connections_per_ip = parse_num(key, v)?,
            "max.connections.per.ip.overrides" => self.max_connections_per_ip_overrides = parse_ip_overrides(key, v)?,
            "queued.max.request.bytes" => {
                let n: i64 = parse_num(key, v)?;
                self.queued_max_request_bytes = if n < 0 { None } else { Some(n as usize) };
            }
            "fetch.max.bytes" => self.fetch_max_bytes = parse_num(key, v)?,
            "group.initial.rebalance.delay.ms" => self.group_initial_rebalance_delay_ms = parse_num(key, v)?,
            "offsets.topic.num.partitions" => self.offsets_topic_num_partitions = parse_num(key, v)?,
            "transaction.state.log.num.partitions" => self.transaction_state_log_num_partitions = parse_num(key, v)?,
            "transaction.max.timeout.ms" => self.transaction_max_timeout_ms = parse_num(key, v)?,
            "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                self.transaction_abort_timed_out_transaction_cleanup_interval_ms = parse_num(key, v)?
            }
            "transactional.id.expiration.ms" => self.transactional_id_expiration_ms = parse_num(key, v)?,
            "producer.id.expiration.ms" => self.producer_id_expiration_ms = parse_num(key, v)?,
            "group.min.session.timeout.ms" => self.group_min_session_timeout_ms = parse_num(key, v)?,
            "group.max.session.timeout.ms" => self.group_max_session_timeout_ms = parse_num(key, v)?,
            "offsets.retention.minutes" => self.offsets_retention_minutes = parse_num(key, v)?,
            "group.consumer.heartbeat.interval.ms" => self.group_consumer_heartbeat_interval_ms = parse_num(key, v)?,
            "group.consumer.session.timeout.ms" => self.group_consumer_session_timeout_ms = parse_num(key, v)?,
            "group.consumer.assignors" => self.group_consumer_assignors = parse_assignors(key, v)?,
            "group.consumer.max.size" => self.group_consumer_max_size = parse_num(key, v)?,
            "offset.metadata.max.bytes" => self.offset_metadata_max_bytes = parse_num(key, v)?,
            "log.retention.ms" => self.log_retention_ms = unlimited_if_negative(parse_num(key, v)?),
            "log.retention.minutes" => self.log_retention_ms = unlimited_if_negative(parse_num::<i64>(key, v)?.saturating_mul(60_000)),
            "log.retention.hours" => self.log_retention_ms = unlimited_if_negative(parse_num::<i64>(key, v)?.saturating_mul(3_600_000)),
            "log.retention.bytes" => self.log_retention_bytes = unlimited_if_negative(parse_num(key, v)?),
            "log.retention.check.interval.ms" => self.log_retention_check_interval_ms = parse_num(key, v)?,
            "log.cleanup.policy" => self.log_cleanup_policy = topic_kind(key, "cleanup.policy", v)?,
            "log.cleaner.enable" => self.log_cleaner_enable = parse_bool(key, v)?,
            "log.cleaner.threads" => self.log_cleaner_threads = parse_num(key, v)?,
            "log.cleaner.backoff.ms" => self.log_cleaner_backoff_ms = parse_num(key, v)?,
            "log.cleaner.dedupe.buffer.size" => self.log_cleaner_dedupe_buffer_size = parse_num(key, v)?,
            "log.cleaner.min.cleanable.ratio" => {
                self.log_cleaner_min_cleanable_ratio = topic_kind(key, "min.cleanable.dirty.ratio", v)?.parse().map_err(|_| bad(key, "not a number"))?
            }
            "log.cleaner.delete.retention.ms" => {
                self.log_cleaner_delete_retention_ms = topic_kind(key, "delete.retention.ms", v)?.parse().map_err(|_| bad(key, "not a number"))?
            }
            "log.cleaner.min.compaction.lag.ms" => {
                self.log_cleaner_min_compaction_lag_ms = topic_kind(key, "min.compaction.lag.ms", v)?.parse().map_err(|_| bad(key, "not a number"))?
            }
            "log.cleaner.max.compaction.lag.ms" => {
                self.log_cleaner_max_compaction_lag_ms = topic_kind(key, "max.compaction.lag.ms", v)?.parse().map_err(|_| bad(key, "not a number"))?
            }
            "compression.type" => self.compression_type = topic_kind(key, "compression.type", v)?,
            "log.message.timestamp.before.max.ms" => {
                self.log_message_timestamp_before_max_ms =
                    topic_kind(key, "message.timestamp.before.max.ms", v)?.parse().map_err(|_| bad(key, "not a number"))?
            }
            "log.message.timestamp.after.max.ms" => {
                self.log_message_timestamp_after_max_ms = topic_kind(key, "message.timestamp.after.max.ms", v)?.parse().map_err(|_| bad(key, "not a number"))?
            }
            "min.insync.replicas" => self.min_insync_replicas = parse_num(key, v)?,
            _ => return Err(ConfigError::UnknownKey(key.to_string())),
        }
        Ok(())
    }

    /// Every key with its current value as text, in Kafka's form (DescribeConfigs
    /// for the broker). The read-side twin of [`Config::set`]: a key added there
    /// is added here, and the unit test `every_described_key_is_settable` checks
    /// that each value read here is accepted back by `set`.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_else(|| i64::MAX.to_string());
        let unlimited = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_else(|| "-1".into());
        let cores = match &self.shard_cores {
            ShardCores::All => "all".to_string(),
            ShardCores::List(c) => c.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","),
        };
        let advertised = self.advertised_listener.as_ref().map(|(h, p)| format!("PLAINTEXT://{h}:{p}")).unwrap_or_default();
        vec![
            ("advertised.listeners", advertised),
            ("auto.create.topics.enable", self.auto_create_topics_enable.to_string()),
            ("broker.id", self.broker_id.to_string()),
            ("compression.type", self.compression_type.clone()),
            ("default.replication.factor", self.default_replication_factor.to_string()),
            ("delete.topic.enable", self.delete_topic_enable.to_string()),
            ("fetch.max.bytes", self.fetch_max_bytes.to_string()),
            ("group.consumer.assignors", self.group_consumer_assignors.join(",")),
            ("group.consumer.heartbeat.interval.ms", self.group_consumer_heartbeat_interval_ms.to_string()),
            ("group.consumer.max.size", self.group_consumer_max_size.to_string()),
            ("group.consumer.session.timeout.ms", self.group_consumer_session_timeout_ms.to_string()),
            ("group.initial.rebalance.delay.ms", self.group_initial_rebalance_delay_ms.to_string()),
            ("group.max.session.timeout.ms", self.group_max_session_timeout_ms.to_string()),
            ("group.min.session.timeout.ms", self.group_min_session_timeout_ms.to_string()),
            ("listeners", format!("PLAINTEXT://{}", self.listener)),
            ("log.cleaner.backoff.ms", self.log_cleaner_backoff_ms.to_string()),
            ("log.cleaner.dedupe.buffer.size", self.log_cleaner_dedupe_buffer_size.to_string()),
            ("log.cleaner.delete.retention.ms", self.log_cleaner_delete_retention_ms.to_string()),
            ("log.cleaner.enable", self.log_cleaner_enable.to_string()),
            ("log.cleaner.max.compaction.lag.ms", self.log_cleaner_max_compaction_lag_ms.to_string()),
            ("log.cleaner.min.cleanable.ratio", self.log_cleaner_min_cleanable_ratio.to_string()),
            ("log.cleaner.min.compaction.lag.ms", self.log_cleaner_min_compaction_lag_ms.to_string()),
            ("log.cleaner.threads", self.log_cleaner_threads.to_string()),
            ("log.cleanup.policy", self.log_cleanup_policy.clone()),
            ("log.dirs", self.log_dir.display().to_string()),
            ("log.flush.interval.messages", opt(self.log_flush_interval_messages)),
            ("log.flush.interval.ms", opt(self.log_flush_interval_ms)),
            ("log.index.interval.bytes", self.log_index_interval_bytes.to_string()),
            ("log.message.timestamp.after.max.ms", self.log_message_timestamp_after_max_ms.to_string()),
            ("log.message.timestamp.before.max.ms", self.log_message_timestamp_before_max_ms.to_string()),
            (
                "log.message.timestamp.type",
                match self.log_message_timestamp_type {
                    TimestampType::CreateTime => "CreateTime".into(),
                    TimestampType::LogAppendTime => "LogAppendTime".into(),
                },
            ),
            ("log.retention.bytes", unlimited(self.log_retention_bytes)),
            ("log.retention.check.interval.ms", self.log_retention_check_interval_ms.to_string()),
            ("log.retention.ms", unlimited(self.log_retention_ms)),
            ("log.roll.ms", self.log_roll_ms.to_string()),
            ("log.segment.bytes", self.log_segment_bytes.to_string()),
            ("message.max.bytes", self.message_max_bytes.to_string()),
            ("metadata.log.max.record.bytes.between.snapshots", self.metadata_log_max_record_bytes_between_snapshots.to_string()),
            ("min.insync.replicas", self.min_insync_replicas.to_string()),
            ("num.partitions", self.num_partitions.to_string()),
            ("offset.metadata.max.bytes", self.offset_metadata_max_bytes.to_string()),
            ("offsets.retention.minutes", self.offsets_retention_minutes.to_string()),
            ("offsets.topic.num.partitions", self.offsets_topic_num_partitions.to_string()),
            ("producer.id.expiration.ms", self.producer_id_expiration_ms.to_string()),
            ("max.connections", self.max_connections.to_string()),
            ("max.connections.per.ip", self.max_connections_per_ip.to_string()),
            ("max.connections.per.ip.overrides", self.max_connections_per_ip_overrides.iter().map(|(ip, n)| format!("{ip}:{n}")).collect::<Vec<_>>().join(",")),
            ("queued.max.request.bytes", self.queued_max_request_bytes.map(|n| n.to_string()).unwrap_or_else(|| "-1".into())),
            ("queued.max.requests", self.queued_max_requests.to_string()),
            ("shard.cores", cores),
            ("shard.io.memory.bytes", self.shard_io_memory_bytes.to_string()),
            ("shard.spin.before.park.us", self.shard_spin_before_park_us.to_string()),
            ("socket.request.max.bytes", self.socket_request_max_bytes.to_string()),
            ("transaction.abort.timed.out.transaction.cleanup.interval.ms", self.transaction_abort_timed_out_transaction_cleanup_interval_ms.to_string()),
            ("transaction.max.timeout.ms", self.transaction_max_timeout_ms.to_string()),
            ("transaction.state.log.num.partitions", self.transaction_state_log_num_partitions.to_string()),
            ("transactional.id.expiration.ms", self.transactional_id_expiration_ms.to_string()),
            ("xshard.channel.capacity", self.xshard_channel_capacity.to_string()),
            ("xshard.inflight.max", self.xshard_inflight_max.to_string()),
        ]
    }

    /// The current value of one key as text (see [`Config::describe`]).
    pub fn get(&self, key: &str) -> Option<String> {
        self.describe().into_iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Checks relationships between limits, so a bad combination fails at start, not under load.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.num_partitions < 1 {
            return Err(bad("num.partitions", "must be at least 1"));
        }
        if self.default_replication_factor != 1 {
            return Err(bad("default.replication.factor", "a single broker supports only 1"));
        }
        if self.message_max_bytes < 61 {
            return Err(bad("message.max.bytes", "must hold at least one record batch header (61 bytes)"));
        }
        if self.socket_request_max_bytes < self.message_max_bytes {
            return Err(bad("socket.request.max.bytes", "must be at least message.max.bytes"));
        }
        if self.log_segment_bytes < 14 || self.log_segment_bytes > u32::MAX as u64 {
            return Err(bad("log.segment.bytes", "must be between 14 and 4294967295 (index positions are 32-bit)"));
        }
        if self.log_segment_bytes < self.message_max_bytes as u64 {
            return Err(bad("log.segment.bytes", "must be at least message.max.bytes"));
        }
        if self.log_index_interval_bytes == 0 {
            return Err(bad("log.index.interval.bytes", "must be positive"));
        }
        if self.xshard_channel_capacity == 0 || self.queued_max_requests == 0 || self.xshard_inflight_max == 0 {
            return Err(bad("xshard.channel.capacity / queued.max.requests / xshard.inflight.max", "must be positive"));
        }
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            return Err(bad("max.connections / max.connections.per.ip", "must be positive"));
        }
        if self.queued_max_request_bytes == Some(0) {
            return Err(bad("queued.max.request.bytes", "must be positive, or -1 for no bound"));
        }
        if self.transaction_state_log_num_partitions < 1 {
            return Err(bad("transaction.state.log.num.partitions", "must be at least 1"));
        }
        if self.transaction_max_timeout_ms < 1 {
            return Err(bad("transaction.max.timeout.ms", "must be positive"));
        }
        if self.offsets_topic_num_partitions < 1 {
            return Err(bad("offsets.topic.num.partitions", "must be at least 1"));
        }
        if self.log_cleaner_min_compaction_lag_ms > self.log_cleaner_max_compaction_lag_ms {
            return Err(bad("log.cleaner.min.compaction.lag.ms", "must not exceed log.cleaner.max.compaction.lag.ms"));
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(bad("group.min.session.timeout.ms", "must not exceed group.max.session.timeout.ms"));
        }
        // As Kafka checks them: a member must get several heartbeats into one session.
        if self.group_consumer_heartbeat_interval_ms == 0 || self.group_consumer_heartbeat_interval_ms >= self.group_consumer_session_timeout_ms {
            return Err(bad("group.consumer.heartbeat.interval.ms", "must be positive and less than group.consumer.session.timeout.ms"));
        }
        if self.group_consumer_session_timeout_ms > i32::MAX as u64 {
            return Err(bad("group.consumer.session.timeout.ms", "must fit in 32 bits (milliseconds)"));
        }
        if self.group_consumer_max_size == 0 {
            return Err(bad("group.consumer.max.size", "must be at least 1"));
        }
        if let ShardCores::List(c) = &self.shard_cores {
            if c.is_empty() {
                return Err(bad("shard.cores", "empty list"));
            }
            let mut s = c.clone();
            s.sort_unstable();
            s.dedup();
            if s.len() != c.len() {
                return Err(bad("shard.cores", "a core is listed twice"));
            }
        }
        Ok(())
    }
}

/// `group.consumer.assignors`: a comma-separated list of assignor names, each
/// `uniform` or `range` or Kafka's class name for one (so a Kafka
/// server.properties line works unchanged); kept as the short names.
fn parse_assignors(key: &str, v: &str) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let short = match name {
            "uniform" | "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => "uniform",
            "range" | "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => "range",
            other => return Err(bad(key, format!("unknown assignor `{other}` (known: uniform, range)"))),
        };
        if !out.iter().any(|n| n == short) {
            out.push(short.to_string());
        }
    }
    if out.is_empty() {
        return Err(bad(key, "at least one assignor is required"));
    }
    Ok(out)
}

/// Kafka's "-1 means no limit" (any negative value).
/// `max.connections.per.ip.overrides`: `ip:count` pairs separated by commas (IPv6 as `[::1]:5`
/// or `::1:5`: the count follows the last colon). Kafka also accepts host names; shardlog does
/// not resolve names, so a name is refused rather than silently never matching.
fn parse_ip_overrides(key: &str, v: &str) -> Result<Vec<(std::net::IpAddr, usize)>, ConfigError> {
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (ip, n) = part.rsplit_once(':').ok_or_else(|| bad(key, format!("`{part}` is not ip:count")))?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        let ip: std::net::IpAddr = ip.parse().map_err(|_| bad(key, format!("`{ip}` is not an IP address")))?;
        out.push((ip, parse_num(key, n)?));
    }
    Ok(out)
}

fn unlimited_if_negative(n: i64) -> Option<i64> {
    (n >= 0).then_some(n)
}

/// A broker default of a topic config is checked with the topic config's own rule.
fn topic_kind(key: &str, topic_key: &str, v: &str) -> Result<String, ConfigError> {
    let d = crate::config::topic::def(topic_key).ok_or_else(|| bad(key, "no topic config rule"))?;
    crate::config::topic::check_kind(key, d.kind, v).map_err(|e| bad(key, e.to_string()))
}

/// Reads a TOML file into (dotted key, value as text) pairs.
fn read_toml(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let err = |why: String| ConfigError::File { path: path.to_path_buf(), why };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| err(e.to_string()))?;
    let mut out = Vec::new();
    flatten("", &toml::Value::Table(table), &mut out);
    Ok(out)
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<(String, String)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        toml::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        toml::Value::Array(a) => {
            let parts: Vec<String> = a
                .iter()
                .map(|x| match x {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            out.push((prefix.to_string(), parts.join(",")));
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serve_localhost_9092_under_data() {
        let c = Config::load(None, None, &[]).unwrap();
        assert_eq!(c.listener.to_string(), "127.0.0.1:9092");
        assert_eq!(c.log_dir, PathBuf::from("./data"));
    }

    #[test]
    fn unknown_key_and_bad_value_name_the_key() {
        let e = Config::load(None, None, &["no.such.key=1".into()]).unwrap_err();
        assert!(e.to_string().contains("no.such.key"));
        let e = Config::load(None, None, &["num.partitions=abc".into()]).unwrap_err();
        assert!(e.to_string().contains("num.partitions"));
    }

    #[test]
    fn toml_dotted_and_quoted_keys_flatten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "\"num.partitions\" = 3\n[log]\ndirs = \"/x\"\n[shard]\ncores = [0, 1]\n").unwrap();
        let c = Config::load(None, Some(&p), &[]).unwrap();
        assert_eq!(c.num_partitions, 3);
        assert_eq!(c.log_dir, PathBuf::from("/x"));
        assert_eq!(c.shard_cores, ShardCores::List(vec![0, 1]));
    }

    #[test]
    fn every_described_key_is_settable() {
        let c = Config::load(None, None, &["shard.cores=0,1".into(), "log.retention.bytes=1000".into()]).unwrap();
        for (k, v) in c.describe() {
            if v.is_empty() {
                continue; // advertised.listeners unset
            }
            let mut d = Config::default();
            d.set(k, &v).unwrap_or_else(|e| panic!("{k}={v} does not set back: {e}"));
            assert_eq!(d.get(k).as_deref(), Some(v.as_str()), "{k}");
        }
    }

    #[test]
    fn listener_forms() {
        let c = Config::load(None, None, &["listeners=PLAINTEXT://127.0.0.1:0".into()]).unwrap();
        assert_eq!(c.listener.port(), 0);
        assert!(Config::load(None, None, &["listeners=SSL://x:1".into()]).is_err());
    }
}
