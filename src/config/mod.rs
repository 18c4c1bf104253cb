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

/// `process.roles`: what this node runs (Kafka's KRaft roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    /// `broker`: serves clients and holds partitions.
    pub broker: bool,
    /// `controller`: a member of the metadata quorum (`controller.quorum.voters`).
    pub controller: bool,
}

impl ProcessRoles {
    /// Kafka's form: `broker`, `controller` or `broker,controller`.
    pub fn as_kafka(&self) -> &'static str {
        match (self.broker, self.controller) {
            (true, true) => "broker,controller",
            (true, false) => "broker",
            (false, true) => "controller",
            (false, false) => "",
        }
    }
}

/// One entry of `controller.quorum.voters` (`id@host:port`): a controller of the quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    /// The controller's `node.id`.
    pub id: i32,
    /// Host of its controller listener (a name or an address; IPv6 without brackets).
    pub host: String,
    /// Port of its controller listener.
    pub port: u16,
}

impl std::fmt::Display for QuorumVoter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.id, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.id, self.host, self.port)
        }
    }
}

/// The listener name of client and inter-broker traffic (the only one besides controller listeners).
pub const PLAINTEXT: &str = "PLAINTEXT";

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
    /// `listeners`, its `PLAINTEXT://host:port` entry: where clients and other
    /// brokers connect. Port 0 picks a free port. Unused on a controller-only node
    /// (whose `listeners` has no PLAINTEXT entry, see [`Config::listener_names`]).
    pub listener: SocketAddr,
    /// `listeners`, its controller entry (named in `controller.listener.names`,
    /// e.g. `CONTROLLER://host:port`): where the quorum's controllers reach this
    /// node's controller. None when `listeners` has none.
    pub controller_listener: Option<SocketAddr>,
    /// The names `listeners` lists, in its order and upper case: `PLAINTEXT`
    /// and/or one controller listener name. Kept so [`Config::validate`] can
    /// check them against `controller.listener.names` and `process.roles`
    /// whatever order the keys were set in. Default `["PLAINTEXT"]`.
    pub listener_names: Vec<String>,
    /// `advertised.listeners`, its PLAINTEXT entry: host:port returned in
    /// Metadata; None = the bound listener. Entries of other names (a controller
    /// listener's) are skipped: controllers are found through `controller.quorum.voters`.
    pub advertised_listener: Option<(String, u16)>,
    /// `controller.listener.names`: the listener names that are controller
    /// listeners (upper case); the first is the one used. Default `["CONTROLLER"]`.
    pub controller_listener_names: Vec<String>,
    /// `inter.broker.listener.name`: the listener brokers reach each other on.
    /// Only `PLAINTEXT` is supported (the default).
    pub inter_broker_listener_name: String,
    /// `listener.security.protocol.map`: `NAME:PROTOCOL` pairs, upper case.
    /// Accepted so Kafka's sample configs load; every listener in `listeners`
    /// must map to PLAINTEXT (the only protocol shardlog speaks). Empty (the
    /// default) = PLAINTEXT for PLAINTEXT and the controller listener names.
    pub listener_security_protocol_map: Vec<(String, String)>,
    /// `log.dirs`: the one data directory (Kafka's on-disk layout under it).
    pub log_dir: PathBuf,
    /// `node.id` (alias `broker.id`, both set this field): this node's id, in
    /// `controller.quorum.voters` when it is a controller.
    pub broker_id: i32,
    /// `process.roles`: `broker`, `controller` or `broker,controller` (the
    /// default). A single role needs `controller.quorum.voters`.
    pub process_roles: ProcessRoles,
    /// `controller.quorum.voters`: the metadata quorum, `id@host:port,...`.
    /// Empty (the default) = one node that is its own controller, no quorum
    /// (no `shardlog storage format` needed); non-empty = a cluster
    /// ([`Config::is_cluster`]).
    pub controller_quorum_voters: Vec<QuorumVoter>,
    /// `broker.rack`: the rack (or zone) of this broker, for rack-aware placement. None = unset.
    pub broker_rack: Option<String>,
    /// `broker.heartbeat.interval.ms`: how often a broker heartbeats to the active controller.
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`: a broker not heard from for this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `admin.listener`: where the admin HTTP listener (`/metrics`, the JSON admin
    /// API, the console) binds, `http://HOST:PORT`; `0` disables it. 127.0.0.1 by
    /// default: its actions change topics and groups and it has no authentication.
    pub admin_listener: Option<SocketAddr>,
    /// `admin.console.read.only`: the admin API refuses every change (403).
    pub admin_console_read_only: bool,
    /// `admin.max.connections`: admin connections open at once; more are closed at accept.
    pub admin_max_connections: usize,
    /// `admin.request.max.bytes`: the largest admin request body (bytes); a larger one is refused (413).
    pub admin_request_max_bytes: usize,
    /// `admin.request.timeout.ms`: an admin connection silent (or not reading) this long is closed.
    pub admin_request_timeout_ms: u64,
    /// `consumer.lag.sample.interval.ms`: how often the group coordinator's broker samples
    /// each group's committed offsets and high watermarks for lag and its verdict.
    pub consumer_lag_sample_interval_ms: u64,
    /// `consumer.lag.window.samples`: samples the lag verdict looks at (Burrow's window).
    pub consumer_lag_window_samples: usize,
    /// `controlled.shutdown.enable`: on SIGTERM a cluster broker first has the
    /// controller move its leaderships and take it out of the ISRs.
    pub controlled_shutdown_enable: bool,
    /// `controlled.shutdown.max.retries`: with `controlled.shutdown.retry.backoff.ms`,
    /// bounds the wait for the controller (retries x backoff) before stopping anyway.
    pub controlled_shutdown_max_retries: u32,
    /// `controlled.shutdown.retry.backoff.ms`.
    pub controlled_shutdown_retry_backoff_ms: u64,
    /// `auto.leader.rebalance.enable`: the active controller moves leadership
    /// back to preferred replicas when a broker's imbalance is over the limit.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`: how often it checks.
    pub leader_imbalance_check_interval_seconds: u64,
    /// `leader.imbalance.per.broker.percentage`: the share of a broker's
    /// preferred-leader partitions led elsewhere that it tolerates.
    pub leader_imbalance_per_broker_percentage: u32,
    /// `transaction.state.log.min.isr`: `min.insync.replicas` of `__transaction_state`
    /// (the transaction coordinator's writes need that many in-sync replicas).
    pub transaction_state_log_min_isr: i32,
    /// `replica.lag.time.max.ms`: a follower that has not caught up with the
    /// leader's log end within this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.max.bytes`: bytes a follower asks per partition per fetch.
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: bytes a follower asks per fetch.
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits for data.
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.fetch.min.bytes`: bytes a follower's fetch waits for.
    pub replica_fetch_min_bytes: i32,
    /// `replica.fetch.backoff.ms`: pause after a failed follower fetch.
    pub replica_fetch_backoff_ms: u64,
    /// `num.replica.fetchers`: fetch sessions each follower shard keeps per leader
    /// broker (its partitions of that leader are spread over them).
    pub num_replica_fetchers: usize,
    /// `replica.high.watermark.checkpoint.interval.ms`: how often high watermarks are written to disk.
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    /// `unclean.leader.election.enable`: elect an out-of-sync replica when no
    /// in-sync one is left (records only the old leader had are lost).
    pub unclean_leader_election_enable: bool,
    /// `controller.quorum.election.timeout.ms`: a voter without a leader for this
    /// long (plus a random share of it) starts an election.
    pub controller_quorum_election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`: a follower that has not fetched from
    /// the leader for this long becomes a candidate.
    pub controller_quorum_fetch_timeout_ms: u64,
    /// `offsets.topic.replication.factor`: replicas of `__consumer_offsets`.
    /// Kafka's default is 3; shardlog's is 1 because the embedded default is one
    /// broker. A cluster refuses (creating the topic fails) a factor above the
    /// brokers it can place replicas on; it never lowers it silently.
    pub offsets_topic_replication_factor: i16,
    /// `transaction.state.log.replication.factor`: replicas of `__transaction_state`.
    /// Kafka's default is 3; shardlog's is 1 because the embedded default is one
    /// broker. A cluster refuses (creating the topic fails) a factor above the
    /// brokers it can place replicas on; it never lowers it silently.
    pub transaction_state_log_replication_factor: i16,
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
    /// `log.tail.cache.bytes`: memory per shard for the tail cache, the bytes just written to
    /// active segments, which serve tailing consumers and followers without a disk read (segment
    /// writes are DMA, so the page cache does not hold them). 0 turns the cache off. Bytes.
    pub log_tail_cache_bytes: usize,
    /// `log.direct.io`: write segments with O_DIRECT (DMA, the default). `false` writes the same
    /// aligned chunks through the page cache: the device then sees the kernel's merged writeback
    /// instead of one write per partition per group commit, which keeps produce-ack latency low
    /// for many partitions of small batches on a disk limited in operations per second (measured
    /// in BENCHMARKS.md), at a higher CPU cost per byte.
    pub log_direct_io: bool,
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
    /// `log.format`: `text` (the default) or `json`, one object per line (see
    /// [`crate::logging`]). Not a Kafka key: Kafka sets its format in log4j's
    /// config; shardlog has no separate logging file, so it is a broker key.
    pub log_format: crate::logging::LogFormat,
    /// `log.level`: a `tracing` filter such as `info` (the default) or
    /// `info,shardlog::cluster=debug`. `SHARDLOG_LOG` or `RUST_LOG`, when set, win
    /// over it (an operator's one-off override; see [`crate::logging::init`]).
    pub log_level: String,
    /// Not a Kafka key: the clock the broker's time-based logic reads (group and
    /// transaction timeouts, retention, timestamps). The system clock; unit tests
    /// put a manual one here to move time themselves.
    pub clock: crate::clock::Clock,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listener: "127.0.0.1:9092".parse().expect("static address"),
            controller_listener: None,
            listener_names: vec![PLAINTEXT.into()],
            advertised_listener: None,
            controller_listener_names: vec!["CONTROLLER".into()],
            inter_broker_listener_name: PLAINTEXT.into(),
            listener_security_protocol_map: Vec::new(),
            log_dir: PathBuf::from("./data"),
            broker_id: 0,
            process_roles: ProcessRoles { broker: true, controller: true },
            controller_quorum_voters: Vec::new(),
            broker_rack: None,
            broker_heartbeat_interval_ms: 2000,
            broker_session_timeout_ms: 9000,
            admin_listener: Some(SocketAddr::from(([127, 0, 0, 1], 9644))),
            admin_console_read_only: false,
            admin_max_connections: 64,
            admin_request_max_bytes: 1024 * 1024,
            admin_request_timeout_ms: 10_000,
            consumer_lag_sample_interval_ms: 5000,
            consumer_lag_window_samples: 10,
            controlled_shutdown_enable: true,
            controlled_shutdown_max_retries: 3,
            controlled_shutdown_retry_backoff_ms: 5000,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
            transaction_state_log_min_isr: 2,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_max_bytes: 1 << 20,
            replica_fetch_response_max_bytes: 10 << 20,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_min_bytes: 1,
            replica_fetch_backoff_ms: 1000,
            num_replica_fetchers: 1,
            replica_high_watermark_checkpoint_interval_ms: 5000,
            unclean_leader_election_enable: false,
            controller_quorum_election_timeout_ms: 1000,
            controller_quorum_fetch_timeout_ms: 2000,
            offsets_topic_replication_factor: 1,
            transaction_state_log_replication_factor: 1,
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
            log_tail_cache_bytes: 256 * 1024 * 1024,
            log_direct_io: true,
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
            log_format: crate::logging::LogFormat::Text,
            log_level: "info".into(),
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

/// `host:port` (IPv6 in brackets; an empty host = all addresses) -> (host, port).
fn parse_host_port(key: &str, v: &str) -> Result<(String, u16), ConfigError> {
    let (host, port) = v.rsplit_once(':').ok_or_else(|| bad(key, format!("`{v}` is not host:port")))?;
    let port: u16 = parse_num(key, port)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok((host.to_string(), port))
}

/// A comma list of `NAME://host:port` (a bare `host:port` is PLAINTEXT) ->
/// (upper-case name, host, port). Security protocol names other than
/// PLAINTEXT are refused here (shardlog speaks no TLS or SASL); which other
/// names are allowed is checked by [`Config::validate`].
fn parse_listeners(key: &str, v: &str) -> Result<Vec<(String, String, u16)>, ConfigError> {
    let mut out: Vec<(String, String, u16)> = Vec::new();
    for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, rest) = match entry.split_once("://") {
            Some((name, rest)) => (name.trim().to_ascii_uppercase(), rest),
            None => (PLAINTEXT.to_string(), entry),
        };
        if matches!(name.as_str(), "SSL" | "SASL_PLAINTEXT" | "SASL_SSL") {
            return Err(bad(key, format!("only PLAINTEXT listeners are supported, got `{name}`")));
        }
        if name.is_empty() {
            return Err(bad(key, format!("`{entry}` has no listener name")));
        }
        if out.iter().any(|(n, _, _)| *n == name) {
            return Err(bad(key, format!("listener name `{name}` is listed twice")));
        }
        let (host, port) = parse_host_port(key, rest)?;
        out.push((name, host, port));
    }
    if out.is_empty() {
        return Err(bad(key, "no listener given"));
    }
    Ok(out)
}

/// Resolves a listener's host and port to the address to bind.
/// The largest `consumer.lag.window.samples` (the lag history kept per partition is
/// bounded by it, together with the console's chart span).
pub const MAX_LAG_WINDOW_SAMPLES: usize = 100;

/// `admin.listener`: `0` (or empty) disables; otherwise `http://HOST:PORT` (the
/// scheme may be left out).
fn parse_admin_listener(key: &str, v: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let v = v.trim();
    if v.is_empty() || v == "0" {
        return Ok(None);
    }
    let rest = v.strip_prefix("http://").unwrap_or(v);
    if rest.contains("://") {
        return Err(bad(key, format!("only http:// is supported, got `{v}`")));
    }
    let (host, port) = rest.trim_end_matches('/').rsplit_once(':').ok_or_else(|| bad(key, format!("expected http://HOST:PORT or 0, got `{v}`")))?;
    let port: u16 = port.parse().map_err(|_| bad(key, format!("bad port in `{v}`")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(Some(resolve(key, host, port)?))
}

fn resolve(key: &str, host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    format!("{host}:{port}")
        .parse()
        .or_else(|_| {
            use std::net::ToSocketAddrs;
            (host, port).to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or(())
        })
        .map_err(|_| bad(key, format!("cannot resolve `{host}`")))
}

/// `process.roles`: `broker`, `controller` or both, comma-separated.
fn parse_roles(key: &str, v: &str) -> Result<ProcessRoles, ConfigError> {
    let mut roles = ProcessRoles { broker: false, controller: false };
    for r in v.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let slot = match r {
            "broker" => &mut roles.broker,
            "controller" => &mut roles.controller,
            other => return Err(bad(key, format!("unknown role `{other}` (known: broker, controller)"))),
        };
        if *slot {
            return Err(bad(key, format!("role `{r}` is listed twice")));
        }
        *slot = true;
    }
    if !roles.broker && !roles.controller {
        return Err(bad(key, "expected broker, controller or broker,controller"));
    }
    Ok(roles)
}

/// `controller.quorum.voters`: `id@host:port,...` (empty = no quorum).
fn parse_voters(key: &str, v: &str) -> Result<Vec<QuorumVoter>, ConfigError> {
    let mut out = Vec::new();
    for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry.split_once('@').ok_or_else(|| bad(key, format!("`{entry}` is not id@host:port")))?;
        let id: i32 = parse_num(key, id)?;
        if id < 0 {
            return Err(bad(key, format!("voter id {id} is negative")));
        }
        let (host, port) = parse_host_port(key, addr)?;
        if port == 0 {
            return Err(bad(key, format!("voter {id} has port 0")));
        }
        out.push(QuorumVoter { id, host, port });
    }
    Ok(out)
}

/// A comma list of names, upper case, at least one.
fn parse_names(key: &str, v: &str) -> Result<Vec<String>, ConfigError> {
    let names: Vec<String> = v.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_ascii_uppercase).collect();
    if names.is_empty() {
        return Err(bad(key, "at least one name is required"));
    }
    Ok(names)
}

/// `listener.security.protocol.map`: `NAME:PROTOCOL,...`.
fn parse_protocol_map(key: &str, v: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, proto) = entry.split_once(':').ok_or_else(|| bad(key, format!("`{entry}` is not NAME:PROTOCOL")))?;
        let proto = proto.trim().to_ascii_uppercase();
        if !matches!(proto.as_str(), "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL") {
            return Err(bad(key, format!("unknown security protocol `{proto}`")));
        }
        out.push((name.trim().to_ascii_uppercase(), proto));
    }
    Ok(out)
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
            "listeners" => {
                let entries = parse_listeners(key, v)?;
                if entries.iter().filter(|(n, _, _)| n != PLAINTEXT).count() > 1 {
                    return Err(bad(key, "at most one controller listener (besides PLAINTEXT) is supported"));
                }
                let mut controller = None;
                for (name, host, port) in &entries {
                    let addr = resolve(key, host, *port)?;
                    if name == PLAINTEXT {
                        self.listener = addr;
                    } else {
                        controller = Some(addr);
                    }
                }
                self.controller_listener = controller;
                self.listener_names = entries.into_iter().map(|(n, _, _)| n).collect();
            }
            "advertised.listeners" => {
                let entries = parse_listeners(key, v)?;
                self.advertised_listener = entries.into_iter().find(|(n, _, _)| n == PLAINTEXT).map(|(_, h, p)| (h, p));
            }
            "controller.listener.names" => self.controller_listener_names = parse_names(key, v)?,
            "inter.broker.listener.name" => {
                let name = v.trim().to_ascii_uppercase();
                if name.is_empty() {
                    return Err(bad(key, "empty name"));
                }
                self.inter_broker_listener_name = name;
            }
            "listener.security.protocol.map" => self.listener_security_protocol_map = parse_protocol_map(key, v)?,
            "process.roles" => self.process_roles = parse_roles(key, v)?,
            "controller.quorum.voters" => self.controller_quorum_voters = parse_voters(key, v)?,
            "broker.rack" => self.broker_rack = Some(v.to_string()).filter(|r| !r.is_empty()),
            "broker.heartbeat.interval.ms" => self.broker_heartbeat_interval_ms = parse_num(key, v)?,
            "broker.session.timeout.ms" => self.broker_session_timeout_ms = parse_num(key, v)?,
            "admin.listener" => self.admin_listener = parse_admin_listener(key, v)?,
            "admin.console.read.only" => self.admin_console_read_only = parse_bool(key, v)?,
            "admin.max.connections" => self.admin_max_connections = parse_num(key, v)?,
            "admin.request.max.bytes" => self.admin_request_max_bytes = parse_num(key, v)?,
            "admin.request.timeout.ms" => self.admin_request_timeout_ms = parse_num(key, v)?,
            "consumer.lag.sample.interval.ms" => self.consumer_lag_sample_interval_ms = parse_num(key, v)?,
            "consumer.lag.window.samples" => self.consumer_lag_window_samples = parse_num(key, v)?,
            "controlled.shutdown.enable" => self.controlled_shutdown_enable = parse_bool(key, v)?,
            "controlled.shutdown.max.retries" => self.controlled_shutdown_max_retries = parse_num(key, v)?,
            "controlled.shutdown.retry.backoff.ms" => self.controlled_shutdown_retry_backoff_ms = parse_num(key, v)?,
            "auto.leader.rebalance.enable" => self.auto_leader_rebalance_enable = parse_bool(key, v)?,
            "leader.imbalance.check.interval.seconds" => self.leader_imbalance_check_interval_seconds = parse_num(key, v)?,
            "leader.imbalance.per.broker.percentage" => self.leader_imbalance_per_broker_percentage = parse_num(key, v)?,
            "replica.lag.time.max.ms" => self.replica_lag_time_max_ms = parse_num(key, v)?,
            "transaction.state.log.min.isr" => self.transaction_state_log_min_isr = parse_num(key, v)?,
            "replica.fetch.max.bytes" => self.replica_fetch_max_bytes = parse_num(key, v)?,
            "replica.fetch.response.max.bytes" => self.replica_fetch_response_max_bytes = parse_num(key, v)?,
            "replica.fetch.wait.max.ms" => self.replica_fetch_wait_max_ms = parse_num(key, v)?,
            "replica.fetch.min.bytes" => self.replica_fetch_min_bytes = parse_num(key, v)?,
            "replica.fetch.backoff.ms" => self.replica_fetch_backoff_ms = parse_num(key, v)?,
            "num.replica.fetchers" => self.num_replica_fetchers = parse_num(key, v)?,
            "replica.high.watermark.checkpoint.interval.ms" => self.replica_high_watermark_checkpoint_interval_ms = parse_num(key, v)?,
            "unclean.leader.election.enable" => self.unclean_leader_election_enable = parse_bool(key, v)?,
            "controller.quorum.election.timeout.ms" => self.controller_quorum_election_timeout_ms = parse_num(key, v)?,
            "controller.quorum.fetch.timeout.ms" => self.controller_quorum_fetch_timeout_ms = parse_num(key, v)?,
            "offsets.topic.replication.factor" => self.offsets_topic_replication_factor = parse_num(key, v)?,
            "transaction.state.log.replication.factor" => self.transaction_state_log_replication_factor = parse_num(key, v)?,
            "log.dirs" | "log.dir" => {
                if v.contains(',') {
                    return Err(bad(key, "one data directory is supported"));
                }
                if v.is_empty() {
                    return Err(bad(key, "empty path"));
                }
                self.log_dir = PathBuf::from(v);
            }
            "node.id" | "broker.id" => self.broker_id = parse_num(key, v)?,
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
            "log.tail.cache.bytes" => self.log_tail_cache_bytes = parse_num(key, v)?,
            "log.direct.io" => self.log_direct_io = parse_bool(key, v)?,
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
            "log.format" => self.log_format = v.parse().map_err(|e: String| bad(key, e))?,
            "log.level" => {
                crate::logging::parse_level(v).map_err(|e| bad(key, e))?;
                self.log_level = v.trim().to_string();
            }
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
        let pairs = |v: &[(String, String)]| v.iter().map(|(a, b)| format!("{a}:{b}")).collect::<Vec<_>>().join(",");
        vec![
            ("advertised.listeners", advertised),
            ("auto.create.topics.enable", self.auto_create_topics_enable.to_string()),
            ("broker.heartbeat.interval.ms", self.broker_heartbeat_interval_ms.to_string()),
            ("broker.id", self.broker_id.to_string()),
            ("broker.rack", self.broker_rack.clone().unwrap_or_default()),
            ("broker.session.timeout.ms", self.broker_session_timeout_ms.to_string()),
            ("admin.listener", self.admin_listener.map_or_else(|| "0".to_string(), |a| format!("http://{a}"))),
            ("admin.console.read.only", self.admin_console_read_only.to_string()),
            ("admin.max.connections", self.admin_max_connections.to_string()),
            ("admin.request.max.bytes", self.admin_request_max_bytes.to_string()),
            ("admin.request.timeout.ms", self.admin_request_timeout_ms.to_string()),
            ("consumer.lag.sample.interval.ms", self.consumer_lag_sample_interval_ms.to_string()),
            ("consumer.lag.window.samples", self.consumer_lag_window_samples.to_string()),
            ("controlled.shutdown.enable", self.controlled_shutdown_enable.to_string()),
            ("controlled.shutdown.max.retries", self.controlled_shutdown_max_retries.to_string()),
            ("controlled.shutdown.retry.backoff.ms", self.controlled_shutdown_retry_backoff_ms.to_string()),
            ("auto.leader.rebalance.enable", self.auto_leader_rebalance_enable.to_string()),
            ("leader.imbalance.check.interval.seconds", self.leader_imbalance_check_interval_seconds.to_string()),
            ("leader.imbalance.per.broker.percentage", self.leader_imbalance_per_broker_percentage.to_string()),
            ("num.replica.fetchers", self.num_replica_fetchers.to_string()),
            ("replica.fetch.backoff.ms", self.replica_fetch_backoff_ms.to_string()),
            ("replica.fetch.max.bytes", self.replica_fetch_max_bytes.to_string()),
            ("replica.fetch.min.bytes", self.replica_fetch_min_bytes.to_string()),
            ("replica.fetch.response.max.bytes", self.replica_fetch_response_max_bytes.to_string()),
            ("replica.fetch.wait.max.ms", self.replica_fetch_wait_max_ms.to_string()),
            ("replica.high.watermark.checkpoint.interval.ms", self.replica_high_watermark_checkpoint_interval_ms.to_string()),
            ("replica.lag.time.max.ms", self.replica_lag_time_max_ms.to_string()),
            ("transaction.state.log.min.isr", self.transaction_state_log_min_isr.to_string()),
            ("unclean.leader.election.enable", self.unclean_leader_election_enable.to_string()),
            ("compression.type", self.compression_type.clone()),
            ("controller.listener.names", self.controller_listener_names.join(",")),
            ("controller.quorum.election.timeout.ms", self.controller_quorum_election_timeout_ms.to_string()),
            ("controller.quorum.fetch.timeout.ms", self.controller_quorum_fetch_timeout_ms.to_string()),
            ("controller.quorum.voters", self.controller_quorum_voters.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")),
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
            ("inter.broker.listener.name", self.inter_broker_listener_name.clone()),
            ("listener.security.protocol.map", pairs(&self.listener_security_protocol_map)),
            ("listeners", self.listeners_text()),
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
            ("log.format", self.log_format.as_str().to_string()),
            ("log.level", self.log_level.clone()),
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
            ("node.id", self.broker_id.to_string()),
            ("num.partitions", self.num_partitions.to_string()),
            ("offset.metadata.max.bytes", self.offset_metadata_max_bytes.to_string()),
            ("offsets.retention.minutes", self.offsets_retention_minutes.to_string()),
            ("offsets.topic.num.partitions", self.offsets_topic_num_partitions.to_string()),
            ("offsets.topic.replication.factor", self.offsets_topic_replication_factor.to_string()),
            ("process.roles", self.process_roles.as_kafka().to_string()),
            ("producer.id.expiration.ms", self.producer_id_expiration_ms.to_string()),
            ("max.connections", self.max_connections.to_string()),
            ("max.connections.per.ip", self.max_connections_per_ip.to_string()),
            ("max.connections.per.ip.overrides", self.max_connections_per_ip_overrides.iter().map(|(ip, n)| format!("{ip}:{n}")).collect::<Vec<_>>().join(",")),
            ("queued.max.request.bytes", self.queued_max_request_bytes.map(|n| n.to_string()).unwrap_or_else(|| "-1".into())),
            ("queued.max.requests", self.queued_max_requests.to_string()),
            ("log.tail.cache.bytes", self.log_tail_cache_bytes.to_string()),
            ("log.direct.io", self.log_direct_io.to_string()),
            ("shard.cores", cores),
            ("shard.io.memory.bytes", self.shard_io_memory_bytes.to_string()),
            ("shard.spin.before.park.us", self.shard_spin_before_park_us.to_string()),
            ("socket.request.max.bytes", self.socket_request_max_bytes.to_string()),
            ("transaction.abort.timed.out.transaction.cleanup.interval.ms", self.transaction_abort_timed_out_transaction_cleanup_interval_ms.to_string()),
            ("transaction.max.timeout.ms", self.transaction_max_timeout_ms.to_string()),
            ("transaction.state.log.num.partitions", self.transaction_state_log_num_partitions.to_string()),
            ("transaction.state.log.replication.factor", self.transaction_state_log_replication_factor.to_string()),
            ("transactional.id.expiration.ms", self.transactional_id_expiration_ms.to_string()),
            ("xshard.channel.capacity", self.xshard_channel_capacity.to_string()),
            ("xshard.inflight.max", self.xshard_inflight_max.to_string()),
        ]
    }

    /// `listeners` as Kafka writes it: the PLAINTEXT entry (when listed) and the controller entry.
    fn listeners_text(&self) -> String {
        let mut out = Vec::new();
        if self.listener_names.iter().any(|n| n == PLAINTEXT) {
            out.push(format!("{PLAINTEXT}://{}", self.listener));
        }
        if let Some(addr) = self.controller_listener {
            out.push(format!("{}://{addr}", self.controller_listener_name()));
        }
        out.join(",")
    }

    /// Whether this node is part of a cluster: `controller.quorum.voters` is set.
    /// Without voters it is the single node of today, its own controller.
    pub fn is_cluster(&self) -> bool {
        !self.controller_quorum_voters.is_empty()
    }

    /// The name of the controller listener: the one `listeners` lists, else the
    /// first of `controller.listener.names` (what brokers use to reach controllers).
    pub fn controller_listener_name(&self) -> &str {
        self.listener_names.iter().find(|n| *n != PLAINTEXT).or_else(|| self.controller_listener_names.first()).map(String::as_str).unwrap_or("CONTROLLER")
    }

    /// The voter entry of this node (`node.id` in `controller.quorum.voters`), if any.
    pub fn own_voter(&self) -> Option<&QuorumVoter> {
        self.controller_quorum_voters.iter().find(|v| v.id == self.broker_id)
    }

    /// The cluster keys' rules (`process.roles`, `listeners`, `controller.*`, `broker.*`).
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let roles = self.process_roles;
        if self.controller_listener_names.iter().any(|n| n == PLAINTEXT) {
            return Err(bad(
                "controller.listener.names",
                "PLAINTEXT is the client and inter-broker listener; name the controller listener otherwise (e.g. CONTROLLER)",
            ));
        }
        if self.inter_broker_listener_name != PLAINTEXT {
            return Err(bad("inter.broker.listener.name", format!("only PLAINTEXT is supported, got `{}`", self.inter_broker_listener_name)));
        }
        for name in &self.listener_names {
            if name != PLAINTEXT && !self.controller_listener_names.contains(name) {
                return Err(bad(
                    "listeners",
                    format!("listener name `{name}` is neither PLAINTEXT nor one of controller.listener.names ({})", self.controller_listener_names.join(",")),
                ));
            }
            if !self.listener_security_protocol_map.is_empty() {
                match self.listener_security_protocol_map.iter().find(|(n, _)| n == name) {
                    None => return Err(bad("listener.security.protocol.map", format!("no entry for listener `{name}` of listeners"))),
                    Some((_, proto)) if proto != PLAINTEXT => {
                        return Err(bad("listener.security.protocol.map", format!("listener `{name}` maps to {proto}; only PLAINTEXT is supported")))
                    }
                    Some(_) => {}
                }
            }
        }
        let mut ids: Vec<i32> = self.controller_quorum_voters.iter().map(|v| v.id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad("controller.quorum.voters", format!("voter id {} is listed twice", w[0])));
        }
        if !self.is_cluster() {
            if !(roles.broker && roles.controller) {
                return Err(bad(
                    "process.roles",
                    format!("process.roles={} needs controller.quorum.voters (without voters a node is broker,controller)", roles.as_kafka()),
                ));
            }
        } else {
            if self.broker_id < 0 {
                return Err(bad("node.id", "must not be negative in a cluster (controller.quorum.voters is set)"));
            }
            match (roles.controller, self.own_voter()) {
                (true, None) => {
                    return Err(bad(
                        "node.id",
                        format!(
                            "process.roles={} includes controller, so node.id {} must be one of controller.quorum.voters ({})",
                            roles.as_kafka(),
                            self.broker_id,
                            ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
                        ),
                    ))
                }
                (true, Some(me)) => match self.controller_listener {
                    None => {
                        return Err(bad(
                            "listeners",
                            format!("process.roles={} includes controller, so listeners needs a {}:// listener on port {} (node.id {}'s entry in controller.quorum.voters)", roles.as_kafka(), self.controller_listener_name(), me.port, me.id),
                        ))
                    }
                    Some(addr) if addr.port() != me.port => {
                        return Err(bad(
                            "listeners",
                            format!("the controller listener's port {} differs from port {} of node.id {}'s entry in controller.quorum.voters", addr.port(), me.port, me.id),
                        ))
                    }
                    Some(_) => {}
                },
                (false, Some(_)) => {
                    return Err(bad("node.id", format!("process.roles=broker, but node.id {} is one of controller.quorum.voters (a voter runs the controller role)", self.broker_id)))
                }
                (false, None) => {}
            }
        }
        let has_plaintext = self.listener_names.iter().any(|n| n == PLAINTEXT);
        if roles.broker && !has_plaintext {
            return Err(bad("listeners", format!("process.roles={} needs a PLAINTEXT listener (inter.broker.listener.name)", roles.as_kafka())));
        }
        if !roles.broker && has_plaintext {
            return Err(bad("listeners", "process.roles=controller takes only the controller listener (controller.listener.names), not PLAINTEXT"));
        }
        if roles.broker && !roles.controller && self.controller_listener.is_some() {
            return Err(bad("listeners", "process.roles=broker must not list a controller listener (controller.listener.names): it runs no controller"));
        }
        if self.broker_heartbeat_interval_ms == 0 || self.broker_heartbeat_interval_ms >= self.broker_session_timeout_ms {
            return Err(bad("broker.heartbeat.interval.ms", "must be positive and less than broker.session.timeout.ms"));
        }
        if self.leader_imbalance_check_interval_seconds == 0 {
            return Err(bad("leader.imbalance.check.interval.seconds", "must be at least 1"));
        }
        if self.leader_imbalance_per_broker_percentage > 100 {
            return Err(bad("leader.imbalance.per.broker.percentage", "must be between 0 and 100"));
        }
        if self.replica_lag_time_max_ms == 0
            || self.replica_fetch_max_bytes < 1
            || self.replica_fetch_response_max_bytes < 1
            || self.replica_fetch_wait_max_ms < 0
        {
            return Err(bad(
                "replica.lag.time.max.ms / replica.fetch.max.bytes / replica.fetch.response.max.bytes / replica.fetch.wait.max.ms",
                "must be positive",
            ));
        }
        if self.transaction_state_log_min_isr < 1 {
            return Err(bad("transaction.state.log.min.isr", "must be at least 1"));
        }
        if !(1..=64).contains(&self.num_replica_fetchers) {
            return Err(bad("num.replica.fetchers", "must be between 1 and 64"));
        }
        if self.replica_fetch_wait_max_ms as u64 >= self.replica_lag_time_max_ms {
            return Err(bad("replica.fetch.wait.max.ms", "must be less than replica.lag.time.max.ms, or followers fall out of the ISR while waiting"));
        }
        if self.controller_quorum_election_timeout_ms == 0 || self.controller_quorum_fetch_timeout_ms == 0 {
            return Err(bad("controller.quorum.election.timeout.ms / controller.quorum.fetch.timeout.ms", "must be positive"));
        }
        // One broker places one replica: a larger factor could never be met.
        for (key, rf) in [
            ("default.replication.factor", self.default_replication_factor),
            ("offsets.topic.replication.factor", self.offsets_topic_replication_factor),
            ("transaction.state.log.replication.factor", self.transaction_state_log_replication_factor),
        ] {
            if rf < 1 {
                return Err(bad(key, "must be at least 1"));
            }
            if rf != 1 && !self.is_cluster() {
                return Err(bad(key, "a single broker supports only 1 (controller.quorum.voters is empty)"));
            }
        }
        Ok(())
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
        if self.admin_max_connections < 1 {
            return Err(bad("admin.max.connections", "must be at least 1 (disable the listener with admin.listener=0)"));
        }
        if self.admin_request_timeout_ms < 100 {
            return Err(bad("admin.request.timeout.ms", "must be at least 100"));
        }
        if self.consumer_lag_sample_interval_ms < 10 {
            return Err(bad("consumer.lag.sample.interval.ms", "must be at least 10"));
        }
        if !(2..=MAX_LAG_WINDOW_SAMPLES).contains(&self.consumer_lag_window_samples) {
            return Err(bad("consumer.lag.window.samples", format!("must be between 2 and {MAX_LAG_WINDOW_SAMPLES}")));
        }
        self.validate_cluster()?;
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
    fn log_format_and_level() {
        let c = Config::load(None, None, &[]).unwrap();
        assert_eq!((c.log_format, c.log_level.as_str()), (crate::logging::LogFormat::Text, "info"));
        let c = Config::load(None, None, &["log.format=json".into(), "log.level=info,shardlog::cluster=debug".into()]).unwrap();
        assert_eq!(c.log_format, crate::logging::LogFormat::Json);
        assert_eq!(c.log_level, "info,shardlog::cluster=debug");
        assert_eq!(c.get("log.format").as_deref(), Some("json"));
        let e = Config::load(None, None, &["log.format=xml".into()]).unwrap_err().to_string();
        assert_eq!(e, "bad value for `log.format`: unknown log format `xml` (known: text, json)");
        for bad_level in ["", "info,shardlog=loud", "[{"] {
            let e = Config::load(None, None, &[format!("log.level={bad_level}")]).unwrap_err().to_string();
            assert!(e.starts_with("bad value for `log.level`: "), "{bad_level}: {e}");
        }
        // From a config file: `log.format` is the table `log`, as `log.dirs` is.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[log]\nformat = \"json\"\nlevel = \"debug\"\ndirs = \"/x\"\n").unwrap();
        let c = Config::load(None, Some(&p), &[]).unwrap();
        assert_eq!((c.log_format, c.log_level.as_str(), c.log_dir.to_str()), (crate::logging::LogFormat::Json, "debug", Some("/x")));
    }

    #[test]
    fn listener_forms() {
        let c = Config::load(None, None, &["listeners=PLAINTEXT://127.0.0.1:0".into()]).unwrap();
        assert_eq!(c.listener.port(), 0);
        assert!(Config::load(None, None, &["listeners=SSL://x:1".into()]).is_err());
    }

    fn load(sets: &[&str]) -> Result<Config, ConfigError> {
        Config::load(None, None, &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    /// The keys of node 1 of a three-controller quorum, combined mode.
    const NODE1: [&str; 4] = [
        "node.id=1",
        "process.roles=broker,controller",
        "controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9095,3@[::1]:9097",
        "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
    ];

    fn node1_with(extra: &[&str]) -> Result<Config, ConfigError> {
        load(&NODE1.iter().chain(extra).copied().collect::<Vec<_>>())
    }

    #[test]
    fn kraft_defaults_are_one_node() {
        let c = Config::default();
        assert_eq!(c.process_roles, ProcessRoles { broker: true, controller: true });
        assert!(c.controller_quorum_voters.is_empty() && !c.is_cluster());
        assert_eq!(c.controller_listener, None);
        assert_eq!(c.controller_listener_names, vec!["CONTROLLER".to_string()]);
        assert_eq!(c.controller_listener_name(), "CONTROLLER");
        assert_eq!(c.inter_broker_listener_name, "PLAINTEXT");
        assert_eq!((c.broker_heartbeat_interval_ms, c.broker_session_timeout_ms), (2000, 9000));
        assert_eq!((c.controller_quorum_election_timeout_ms, c.controller_quorum_fetch_timeout_ms), (1000, 2000));
        assert_eq!((c.offsets_topic_replication_factor, c.transaction_state_log_replication_factor), (1, 1));
        assert_eq!(c.broker_rack, None);
        assert_eq!(c.get("listeners").as_deref(), Some("PLAINTEXT://127.0.0.1:9092"));
        c.validate().unwrap();
    }

    #[test]
    fn node_id_and_broker_id_set_one_field() {
        assert_eq!(load(&["node.id=7"]).unwrap().broker_id, 7);
        assert_eq!(load(&["broker.id=8"]).unwrap().broker_id, 8);
        let c = load(&["broker.id=8", "node.id=9"]).unwrap();
        assert_eq!((c.get("node.id"), c.get("broker.id")), (Some("9".into()), Some("9".into())));
    }

    #[test]
    fn quorum_keys_parse_and_describe() {
        let c = node1_with(&["broker.rack=eu-1a"]).unwrap();
        assert!(c.is_cluster());
        assert_eq!(
            c.controller_quorum_voters,
            vec![
                QuorumVoter { id: 1, host: "127.0.0.1".into(), port: 9093 },
                QuorumVoter { id: 2, host: "127.0.0.1".into(), port: 9095 },
                QuorumVoter { id: 3, host: "::1".into(), port: 9097 },
            ]
        );
        assert_eq!(c.listener.to_string(), "127.0.0.1:9092");
        assert_eq!(c.controller_listener.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:9093"));
        assert_eq!(c.own_voter().map(|v| v.port), Some(9093));
        assert_eq!(c.broker_rack.as_deref(), Some("eu-1a"));
        assert_eq!(c.get("controller.quorum.voters").as_deref(), Some("1@127.0.0.1:9093,2@127.0.0.1:9095,3@[::1]:9097"));
        assert_eq!(c.get("listeners").as_deref(), Some("PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"));
        assert_eq!(c.get("process.roles").as_deref(), Some("broker,controller"));
        // Every described value sets back to itself, the cluster keys included.
        for (k, v) in c.describe() {
            if v.is_empty() {
                continue;
            }
            let mut d = Config::default();
            d.set(k, &v).unwrap_or_else(|e| panic!("{k}={v} does not set back: {e}"));
            assert_eq!(d.get(k).as_deref(), Some(v.as_str()), "{k}");
        }
        assert!(load(&["process.roles=brokers"]).unwrap_err().to_string().contains("process.roles"));
        assert!(load(&["process.roles=broker,broker"]).is_err());
        assert!(load(&["controller.quorum.voters=1@x"]).unwrap_err().to_string().contains("controller.quorum.voters"));
        assert!(load(&["controller.quorum.voters=1:127.0.0.1:9093"]).is_err());
        assert!(load(&["controller.quorum.voters=-1@127.0.0.1:9093"]).is_err());
    }

    #[test]
    fn listener_names() {
        // Any order of keys: the names are checked once all are set.
        let c =
            load(&["listeners=plaintext://127.0.0.1:0,CTRL://127.0.0.1:9093", "controller.listener.names=CTRL", "controller.quorum.voters=0@127.0.0.1:9093"])
                .unwrap();
        assert_eq!(c.controller_listener_name(), "CTRL");
        assert_eq!(c.listener_names, vec!["PLAINTEXT".to_string(), "CTRL".to_string()]);
        let e = load(&["listeners=PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:9093"]).unwrap_err().to_string();
        assert!(e.contains("listeners") && e.contains("INTERNAL") && e.contains("controller.listener.names"), "{e}");
        assert!(load(&["listeners=PLAINTEXT://a:1,PLAINTEXT://a:2"]).is_err());
        assert!(load(&["listeners=PLAINTEXT://127.0.0.1:1,A://127.0.0.1:2,B://127.0.0.1:3"]).is_err());
        assert!(load(&["listeners=SASL_SSL://127.0.0.1:1"]).is_err());
        assert!(load(&["controller.listener.names=PLAINTEXT"]).unwrap_err().to_string().contains("controller.listener.names"));
        assert!(load(&["inter.broker.listener.name=CONTROLLER"]).unwrap_err().to_string().contains("inter.broker.listener.name"));
        // advertised.listeners: the PLAINTEXT entry; a controller's is skipped.
        let c = node1_with(&["advertised.listeners=CONTROLLER://h1:9093,PLAINTEXT://h1:9092"]).unwrap();
        assert_eq!(c.advertised_listener, Some(("h1".into(), 9092)));
        // Kafka's sample map loads; a used listener must map to PLAINTEXT.
        node1_with(&["listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL"]).unwrap();
        let e = node1_with(&["listener.security.protocol.map=CONTROLLER:SSL,PLAINTEXT:PLAINTEXT"]).unwrap_err().to_string();
        assert!(e.contains("listener.security.protocol.map") && e.contains("CONTROLLER"), "{e}");
        assert!(node1_with(&["listener.security.protocol.map=PLAINTEXT:PLAINTEXT"]).is_err());
        assert!(load(&["listener.security.protocol.map=A:TLS"]).is_err());
    }

    #[test]
    fn roles_and_voters_must_agree() {
        let err = |sets: &[&str]| node1_with(sets).unwrap_err().to_string();
        node1_with(&[]).unwrap();
        // A controller must be a voter, listening on its voter port.
        let e = err(&["node.id=4"]);
        assert!(e.contains("node.id") && e.contains("controller.quorum.voters"), "{e}");
        let e = err(&["listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9099"]);
        assert!(e.contains("listeners") && e.contains("9099") && e.contains("9093"), "{e}");
        let e = err(&["listeners=PLAINTEXT://127.0.0.1:9092"]);
        assert!(e.contains("listeners") && e.contains("CONTROLLER://"), "{e}");
        // A broker-only node is not a voter and has no controller listener.
        let e = err(&["process.roles=broker"]);
        assert!(e.contains("process.roles=broker") && e.contains("node.id"), "{e}");
        let e = err(&["process.roles=broker", "node.id=5"]);
        assert!(e.contains("listeners"), "{e}");
        node1_with(&["process.roles=broker", "node.id=5", "listeners=PLAINTEXT://127.0.0.1:9092"]).unwrap();
        // A controller-only node listens only as a controller.
        node1_with(&["process.roles=controller", "listeners=CONTROLLER://127.0.0.1:9093"]).unwrap();
        let e = err(&["process.roles=controller"]);
        assert!(e.contains("PLAINTEXT"), "{e}");
        // One role alone needs voters.
        for roles in ["process.roles=broker", "process.roles=controller"] {
            let e = load(&[roles]).unwrap_err().to_string();
            assert!(e.contains("controller.quorum.voters"), "{e}");
        }
        let e = err(&["controller.quorum.voters=1@127.0.0.1:9093,1@127.0.0.1:9095"]);
        assert!(e.contains("controller.quorum.voters") && e.contains("twice"), "{e}");
        let e = err(&["broker.heartbeat.interval.ms=9000"]);
        assert!(e.contains("broker.heartbeat.interval.ms") && e.contains("broker.session.timeout.ms"), "{e}");
    }

    #[test]
    fn internal_replication_factors() {
        assert!(load(&["offsets.topic.replication.factor=3"]).unwrap_err().to_string().contains("offsets.topic.replication.factor"));
        assert!(load(&["transaction.state.log.replication.factor=3"]).is_err());
        assert!(load(&["default.replication.factor=3"]).is_err());
        let c = node1_with(&["offsets.topic.replication.factor=3", "transaction.state.log.replication.factor=3", "default.replication.factor=3"]).unwrap();
        assert_eq!((c.offsets_topic_replication_factor, c.transaction_state_log_replication_factor), (3, 3));
        assert!(node1_with(&["offsets.topic.replication.factor=0"]).is_err());
    }
}
