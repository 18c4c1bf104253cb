//! The broker's error type and THE one mapping to Kafka error codes.
//!
//! Code anywhere below `router/` returns [`Error`]; a handler turns it into a
//! per-partition or per-topic error code with [`Error::code_for`] (or
//! [`Error::code`] where the answer does not depend on the API and version).
//! Only `router/` decides that an error closes the connection
//! ([`Error::closes_connection`]).

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;
use thiserror::Error;

use crate::protocol::record_batch::BatchError;
use crate::protocol::record_validator::{RecordError, RecordsError};

/// Everything that can go wrong while serving a request.
#[derive(Debug, Error)]
pub enum Error {
    /// The topic, or the partition of it, does not exist on this broker
    /// (UNKNOWN_TOPIC_OR_PARTITION; the client refreshes its metadata and retries).
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// This node is not the cluster's active controller, or lost that role while
    /// the change was in flight (NOT_CONTROLLER: retriable, the client retries).
    #[error("this node is not the active controller")]
    NotController,
    /// An error another broker answered (a forwarded controller operation): its
    /// Kafka code and message, passed through unchanged.
    #[error("{message}")]
    Remote {
        /// The Kafka error code the other broker chose.
        code: i16,
        /// Its message.
        message: String,
    },
    /// A change was proposed but not seen committed in time (REQUEST_TIMED_OUT:
    /// it may still commit; the client retries and may find it done).
    #[error("{0}")]
    RequestTimedOut(String),
    /// A broker's call carried an epoch from before its last registration (STALE_BROKER_EPOCH).
    #[error("{0}")]
    StaleBrokerEpoch(String),
    /// No broker with this id is registered, or this is not a cluster (BROKER_ID_NOT_REGISTERED).
    #[error("{0}")]
    BrokerIdNotRegistered(String),
    /// A node formatted for another cluster (INCONSISTENT_CLUSTER_ID).
    #[error("{0}")]
    InconsistentClusterId(String),
    /// The partition has no leader right now (its broker is fenced; LEADER_NOT_AVAILABLE).
    #[error("the partition has no leader right now")]
    LeaderNotAvailable,
    /// The partition is led by another broker (the client refreshes its metadata).
    #[error("this broker does not lead the partition")]
    NotLeaderOrFollower,
    /// A fetch, list or delete offset outside the partition's log (OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// The offset the client asked for.
        offset: i64,
        /// The partition's log start offset (its low watermark) at the time.
        log_start: i64,
        /// The upper bound it was checked against: the log end offset for a read,
        /// the high watermark for DeleteRecords.
        log_end: i64,
    },
    /// A record batch larger than the limit that applies to it (MESSAGE_TOO_LARGE).
    #[error("record batch of {size} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// The batch's size in bytes.
        size: usize,
        /// The limit in bytes (the topic's `max.message.bytes`, else the broker's
        /// `message.max.bytes`).
        max: usize,
    },
    /// A record batch whose framing, length or CRC32C is wrong, or that does not
    /// decode (CORRUPT_MESSAGE); the text says what was wrong.
    #[error("corrupt record batch: {0}")]
    CorruptMessage(&'static str),
    /// A record batch that breaks a rule of the log (INVALID_RECORD), e.g. a
    /// record count that does not match the last offset delta, or a control batch
    /// sent by a client; the text says which rule.
    #[error("invalid record: {0}")]
    InvalidRecord(&'static str),
    /// Records that break Kafka's LogValidator rules: the message and, per
    /// record at fault, its index and why (Produce v8+ `record_errors`, KIP-467).
    #[error("invalid record: {message}")]
    InvalidRecords {
        /// The response's error message, a sentence naming the first rule broken.
        message: String,
        /// Per record at fault: its index in the partition's produced records and why.
        record_errors: Vec<RecordError>,
    },
    /// Compressed records that decompress to more than this many bytes, refused
    /// before they are inflated further (MESSAGE_TOO_LARGE).
    #[error("compressed records inflate past {0} bytes")]
    InflatesTooLarge(usize),
    /// A record batch with a magic byte other than 2, the only format this broker
    /// stores (UNSUPPORTED_FOR_MESSAGE_FORMAT).
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    /// CreateTopics for a topic name that already exists (TOPIC_ALREADY_EXISTS).
    #[error("topic already exists")]
    TopicAlreadyExists,
    /// INVALID_TOPIC_EXCEPTION; the message is a whole sentence, as Kafka's are.
    #[error("{0}")]
    InvalidTopic(String),
    /// A client asked to create a topic the broker owns; Kafka's answer for
    /// the internal topic it refuses (INVALID_REQUEST, not a closed connection).
    #[error("Creation of internal topic {0} is prohibited.")]
    InternalTopicCreation(String),
    /// DeleteTopics while `delete.topic.enable` is false (TOPIC_DELETION_DISABLED).
    #[error("topic deletion is disabled (delete.topic.enable=false)")]
    TopicDeletionDisabled,
    /// A topic id (UUID) that names no topic in the metadata image (UNKNOWN_TOPIC_ID).
    #[error("unknown topic id")]
    UnknownTopicId,
    /// CreateTopics or CreatePartitions with a partition count Kafka refuses
    /// (INVALID_PARTITIONS); the text says why.
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    /// A replication factor or replica assignment this single broker cannot honour
    /// (INVALID_REPLICATION_FACTOR); the text says why.
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    /// A topic config key or value that is unknown or out of range (INVALID_CONFIG).
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A Produce `acks` other than 0, 1 or -1 (INVALID_REQUIRED_ACKS).
    #[error("invalid required acks {0}")]
    InvalidRequiredAcks(i16),
    /// An API version outside the range this broker supports for the API
    /// (UNSUPPORTED_VERSION).
    #[error("unsupported version {version} of api {api_key}")]
    UnsupportedVersion {
        /// The API key of the request.
        api_key: i16,
        /// The version the client sent.
        version: i16,
    },
    /// INVALID_REQUEST. The router closes the connection on it
    /// ([`Error::closes_connection`]): there it means an unparseable request. Handlers
    /// also return it as a per-resource error code (e.g. a config resource type
    /// that is not supported), where the connection stays open.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// AlterConfigs on a broker config: broker configs are static in shardlog
    /// (config file or `--set`, then a restart); answered as INVALID_REQUEST.
    #[error("{0}")]
    StaticBrokerConfig(String),
    /// Produce with `acks=all` to a partition whose ISR is smaller than the topic's
    /// `min.insync.replicas` (NOT_ENOUGH_REPLICAS).
    #[error("not enough in-sync replicas: {isr} in sync, min.insync.replicas is {min}")]
    NotEnoughReplicas {
        /// The number of replicas in the ISR.
        isr: i32,
        /// The topic's `min.insync.replicas`.
        min: i32,
    },
    /// A record timestamp further from the broker's clock than the topic's
    /// `message.timestamp.before.max.ms` / `after.max.ms` allow (INVALID_TIMESTAMP, KIP-937).
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    /// The shard that owns the partition or coordinator did not answer (its
    /// channel is gone or closed); answered as NOT_LEADER_OR_FOLLOWER so the client retries.
    #[error("the owner shard is unavailable")]
    ShardUnavailable,
    /// The broker is stopping and refuses new writes; answered as
    /// NOT_LEADER_OR_FOLLOWER so the client retries elsewhere or later.
    #[error("broker is shutting down")]
    ShuttingDown,
    /// An idempotent producer's batch whose first sequence number does not follow
    /// the last one the partition has from that producer and epoch, or a new epoch
    /// not starting at 0 (OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error("out of order sequence number: {0}")]
    OutOfOrderSequence(String),
    /// A producer epoch older than the one the partition or coordinator has for
    /// the producer id (INVALID_PRODUCER_EPOCH); also what a fenced producer gets
    /// from clients that predate PRODUCER_FENCED (KIP-588).
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    /// A producer that a newer instance with the same transactional id has fenced
    /// off by bumping the producer epoch (PRODUCER_FENCED, KIP-588). Clients older
    /// than KIP-588 are told INVALID_PRODUCER_EPOCH ([`Error::code_for`]).
    #[error("producer fenced: {0}")]
    ProducerFenced(String),
    /// A request the transaction's current state does not allow, e.g. EndTxn with
    /// no transaction ongoing, or a non-transactional write from a producer with an
    /// open transaction (INVALID_TXN_STATE).
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// A producer id that is not the one the transaction coordinator holds for the
    /// transactional id (INVALID_PRODUCER_ID_MAPPING).
    #[error("unknown producer id {0} for this transactional id")]
    InvalidProducerIdMapping(i64),
    /// An InitProducerId transaction timeout (ms) that is not positive or is above
    /// `transaction.max.timeout.ms` (INVALID_TRANSACTION_TIMEOUT).
    #[error("invalid transaction timeout: {0}")]
    InvalidTransactionTimeout(String),
    /// The transactional id's previous transaction is still being committed or
    /// aborted (CONCURRENT_TRANSACTIONS; the client retries).
    #[error("a transaction for this transactional id is being completed; retry")]
    ConcurrentTransactions,
    /// A transaction marker from a coordinator epoch older than the one the
    /// partition has seen (TRANSACTION_COORDINATOR_FENCED).
    #[error("transaction coordinator fenced: {0}")]
    TransactionCoordinatorFenced(String),
    /// The coordinator cannot serve the request now, e.g. the log of its
    /// internal topic partition is missing or its shard did not answer
    /// (COORDINATOR_NOT_AVAILABLE; the client retries).
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    /// A transactional id the transaction coordinator has no state for
    /// (TRANSACTIONAL_ID_NOT_FOUND).
    #[error("transactional id not found")]
    TransactionalIdNotFound,
    /// A group request reached a shard that does not own the group's
    /// `__consumer_offsets` partition (the client looks the coordinator up again).
    #[error("this shard is not the coordinator of the group")]
    NotCoordinator,
    /// A request that decoded but carries a field value Kafka refuses: the
    /// response says INVALID_REQUEST and the connection stays open (unlike
    /// [`Error::InvalidRequest`], which is about an unparseable request).
    #[error("{0}")]
    InvalidField(String),
    /// Group errors of the consumer group protocol (KIP-848) and the offset
    /// APIs; each message is a sentence for the response's error message.
    #[error("{0}")]
    GroupIdNotFound(String),
    /// A member id the group does not have (UNKNOWN_MEMBER_ID).
    #[error("{0}")]
    UnknownMemberId(String),
    /// A consumer group heartbeat whose member epoch is ahead of the coordinator's,
    /// or behind it and not the previous epoch it may still be at (FENCED_MEMBER_EPOCH;
    /// the member gives up its partitions and rejoins).
    #[error("{0}")]
    FencedMemberEpoch(String),
    /// An offset commit or fetch in a consumer protocol group whose member epoch
    /// is not the member's current one (STALE_MEMBER_EPOCH; KIP-848).
    #[error("{0}")]
    StaleMemberEpoch(String),
    /// A static member (`group.instance.id`) joining while the member that holds
    /// the instance id has not left with epoch -2 (UNRELEASED_INSTANCE_ID).
    #[error("{0}")]
    UnreleasedInstanceId(String),
    /// A heartbeat from a static member whose instance id another member id has
    /// since taken over (FENCED_INSTANCE_ID).
    #[error("{0}")]
    FencedInstanceId(String),
    /// A server-side assignor name the consumer group protocol does not know
    /// (UNSUPPORTED_ASSIGNOR).
    #[error("{0}")]
    UnsupportedAssignor(String),
    /// A member whose protocol type or protocols do not match the group's, e.g. a
    /// classic member joining a group of the consumer protocol that still has
    /// members (INCONSISTENT_GROUP_PROTOCOL).
    #[error("{0}")]
    InconsistentGroupProtocol(String),
    /// A join that would take the group past its maximum member count
    /// (GROUP_MAX_SIZE_REACHED).
    #[error("{0}")]
    GroupMaxSizeReached(String),
    /// A subscription regular expression that does not compile as RE2
    /// (INVALID_REGULAR_EXPRESSION).
    #[error("{0}")]
    InvalidRegularExpression(String),
    /// A classic group request with a generation other than the group's current
    /// one (ILLEGAL_GENERATION).
    #[error("{0}")]
    IllegalGeneration(String),
    /// DeleteGroups or OffsetDelete on a group that still has members
    /// (NON_EMPTY_GROUP).
    #[error("{0}")]
    NonEmptyGroup(String),
    /// An empty group id (INVALID_GROUP_ID). This and the next variants are errors
    /// of the classic group protocol and the offset APIs, whose responses carry no message.
    #[error("the group id is empty")]
    InvalidGroupId,
    /// A JoinGroup session timeout outside `group.min.session.timeout.ms` ..=
    /// `group.max.session.timeout.ms` (INVALID_SESSION_TIMEOUT).
    #[error("the session timeout is outside group.min/max.session.timeout.ms")]
    InvalidSessionTimeout,
    /// JoinGroup v4+: the member must rejoin with the member id it was given.
    #[error("a member id is required to join the group")]
    MemberIdRequired,
    /// A Heartbeat, SyncGroup or OffsetCommit during a rebalance: the member must
    /// rejoin (REBALANCE_IN_PROGRESS).
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    /// OffsetDelete of a partition the group's members are subscribed to
    /// (GROUP_SUBSCRIBED_TO_TOPIC).
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    /// OffsetFetch with require_stable: an offset is pending in an open transaction.
    #[error("an offset of the partition is pending in an open transaction")]
    UnstableOffsetCommit,
    /// An offset commit whose metadata string is longer than
    /// `offset.metadata.max.bytes` (OFFSET_METADATA_TOO_LARGE).
    #[error("the offset's metadata is larger than offset.metadata.max.bytes")]
    OffsetMetadataTooLarge,
    /// A partition of a request that was not tried because another partition of
    /// the same request failed (OPERATION_NOT_ATTEMPTED, AddPartitionsToTxn).
    #[error("not attempted: another partition of the request failed")]
    OperationNotAttempted,
    /// A leader epoch older than the partition's (FENCED_LEADER_EPOCH).
    #[error("the leader epoch {0} is older than the partition's")]
    FencedLeaderEpoch(i32),
    /// A leader epoch newer than the partition's (UNKNOWN_LEADER_EPOCH): the
    /// client's metadata is ahead of this broker's.
    #[error("the leader epoch {0} is newer than the partition's")]
    UnknownLeaderEpoch(i32),
    /// Produce with acks=all whose records were written but whose ISR shrank below
    /// `min.insync.replicas` before they were replicated (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    #[error("written, but the ISR shrank below min.insync.replicas ({isr} in sync, {min} needed)")]
    NotEnoughReplicasAfterAppend {
        /// The number of replicas in the ISR now.
        isr: i32,
        /// The topic's `min.insync.replicas`.
        min: i32,
    },
    /// An ISR change based on an ISR the controller no longer has (INVALID_UPDATE_VERSION).
    #[error("stale ISR change: {0}")]
    InvalidUpdateVersion(String),
    /// An ISR change adding a fenced or unregistered broker (INELIGIBLE_REPLICA, KIP-903).
    #[error("ineligible replica: {0}")]
    IneligibleReplica(String),
    /// DescribeCluster for an endpoint type this broker does not have
    /// (UNSUPPORTED_ENDPOINT_TYPE, KIP-919).
    #[error("unsupported endpoint type {0}")]
    UnsupportedEndpointType(i8),
    /// CreatePartitions with a replica assignment this broker cannot honour
    /// (INVALID_REPLICA_ASSIGNMENT); the text says why.
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    /// ElectLeaders for a partition already led by the replica the election
    /// would pick (ELECTION_NOT_NEEDED).
    #[error("election not needed: {0}")]
    ElectionNotNeeded(String),
    /// A preferred election whose preferred replica is not live and in sync
    /// (PREFERRED_LEADER_NOT_AVAILABLE).
    #[error("preferred leader not available: {0}")]
    PreferredLeaderNotAvailable(String),
    /// An unclean election with no live replica to elect (ELIGIBLE_LEADERS_NOT_AVAILABLE).
    #[error("eligible leaders not available: {0}")]
    EligibleLeadersNotAvailable(String),
    /// Cancelling a reassignment of a partition that has none (NO_REASSIGNMENT_IN_PROGRESS).
    #[error("no reassignment in progress: {0}")]
    NoReassignmentInProgress(String),
    /// A partition whose log could not be opened (out of file descriptors, an
    /// I/O error): offline until it opens, as Kafka marks a failed log dir offline.
    #[error("storage error: {0}")]
    KafkaStorage(String),
    /// An I/O error of the log or a coordinator's state (KAFKA_STORAGE_ERROR).
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<BatchError> for Error {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::Truncated => Error::CorruptMessage("truncated record batch"),
            BatchError::CorruptMessage(why) => Error::CorruptMessage(why),
            BatchError::UnsupportedMagic(m) => Error::UnsupportedMagic(m),
            BatchError::TooLarge { size, max } => Error::MessageTooLarge { size, max },
            BatchError::InvalidRecord(why) => Error::InvalidRecord(why),
        }
    }
}

impl From<RecordsError> for Error {
    fn from(e: RecordsError) -> Self {
        match e {
            RecordsError::Invalid { message, record_errors } => Error::InvalidRecords { message, record_errors },
            RecordsError::TooLarge(n) => Error::InflatesTooLarge(n),
        }
    }
}

impl Error {
    /// The Kafka error this maps to — the only place this decision is made.
    pub fn response_error(&self) -> ResponseError {
        use ResponseError as R;
        match self {
            Error::UnknownTopicOrPartition => R::UnknownTopicOrPartition,
            Error::NotController => R::NotController,
            Error::Remote { code, .. } => ResponseError::try_from_code(*code).unwrap_or(R::UnknownServerError),
            Error::LeaderNotAvailable => R::LeaderNotAvailable,
            Error::RequestTimedOut(_) => R::RequestTimedOut,
            Error::StaleBrokerEpoch(_) => R::StaleBrokerEpoch,
            Error::InconsistentClusterId(_) => R::InconsistentClusterId,
            Error::BrokerIdNotRegistered(_) => R::BrokerIdNotRegistered,
            Error::NotLeaderOrFollower => R::NotLeaderOrFollower,
            Error::OffsetOutOfRange { .. } => R::OffsetOutOfRange,
            Error::MessageTooLarge { .. } => R::MessageTooLarge,
            Error::CorruptMessage(_) => R::CorruptMessage,
            Error::InvalidRecord(_) => R::InvalidRecord,
            Error::InvalidRecords { .. } => R::InvalidRecord,
            Error::InflatesTooLarge(_) => R::MessageTooLarge,
            Error::UnsupportedMagic(_) => R::UnsupportedForMessageFormat,
            Error::TopicAlreadyExists => R::TopicAlreadyExists,
            Error::InvalidTopic(_) => R::InvalidTopicException,
            Error::InternalTopicCreation(_) => R::InvalidRequest,
            Error::InvalidPartitions(_) => R::InvalidPartitions,
            Error::TopicDeletionDisabled => R::TopicDeletionDisabled,
            Error::UnknownTopicId => R::UnknownTopicId,
            Error::InvalidReplicationFactor(_) => R::InvalidReplicationFactor,
            Error::InvalidConfig(_) => R::InvalidConfig,
            Error::InvalidRequiredAcks(_) => R::InvalidRequiredAcks,
            Error::UnsupportedVersion { .. } => R::UnsupportedVersion,
            Error::InvalidRequest(_) => R::InvalidRequest,
            Error::StaticBrokerConfig(_) => R::InvalidRequest,
            Error::NotEnoughReplicas { .. } => R::NotEnoughReplicas,
            Error::InvalidTimestamp(_) => R::InvalidTimestamp,
            Error::ShardUnavailable => R::NotLeaderOrFollower,
            Error::ShuttingDown => R::NotLeaderOrFollower,
            Error::OutOfOrderSequence(_) => R::OutOfOrderSequenceNumber,
            Error::InvalidProducerEpoch(_) => R::InvalidProducerEpoch,
            Error::ProducerFenced(_) => R::ProducerFenced,
            Error::InvalidTxnState(_) => R::InvalidTxnState,
            Error::InvalidProducerIdMapping(_) => R::InvalidProducerIdMapping,
            Error::InvalidTransactionTimeout(_) => R::InvalidTransactionTimeout,
            Error::ConcurrentTransactions => R::ConcurrentTransactions,
            Error::TransactionCoordinatorFenced(_) => R::TransactionCoordinatorFenced,
            Error::CoordinatorNotAvailable => R::CoordinatorNotAvailable,
            Error::TransactionalIdNotFound => R::TransactionalIdNotFound,
            Error::NotCoordinator => R::NotCoordinator,
            Error::InvalidField(_) => R::InvalidRequest,
            Error::GroupIdNotFound(_) => R::GroupIdNotFound,
            Error::UnknownMemberId(_) => R::UnknownMemberId,
            Error::FencedMemberEpoch(_) => R::FencedMemberEpoch,
            Error::StaleMemberEpoch(_) => R::StaleMemberEpoch,
            Error::UnreleasedInstanceId(_) => R::UnreleasedInstanceId,
            Error::FencedInstanceId(_) => R::FencedInstanceId,
            Error::UnsupportedAssignor(_) => R::UnsupportedAssignor,
            Error::InconsistentGroupProtocol(_) => R::InconsistentGroupProtocol,
            Error::GroupMaxSizeReached(_) => R::GroupMaxSizeReached,
            Error::InvalidRegularExpression(_) => R::InvalidRegularExpression,
            Error::IllegalGeneration(_) => R::IllegalGeneration,
            Error::NonEmptyGroup(_) => R::NonEmptyGroup,
            Error::InvalidGroupId => R::InvalidGroupId,
            Error::InvalidSessionTimeout => R::InvalidSessionTimeout,
            Error::MemberIdRequired => R::MemberIdRequired,
            Error::RebalanceInProgress => R::RebalanceInProgress,
            Error::GroupSubscribedToTopic => R::GroupSubscribedToTopic,
            Error::UnstableOffsetCommit => R::UnstableOffsetCommit,
            Error::OffsetMetadataTooLarge => R::OffsetMetadataTooLarge,
            Error::OperationNotAttempted => R::OperationNotAttempted,
            Error::FencedLeaderEpoch(_) => R::FencedLeaderEpoch,
            Error::NotEnoughReplicasAfterAppend { .. } => R::NotEnoughReplicasAfterAppend,
            Error::InvalidUpdateVersion(_) => R::InvalidUpdateVersion,
            Error::IneligibleReplica(_) => R::IneligibleReplica,
            Error::UnknownLeaderEpoch(_) => R::UnknownLeaderEpoch,
            Error::UnsupportedEndpointType(_) => R::UnsupportedEndpointType,
            Error::InvalidReplicaAssignment(_) => R::InvalidReplicaAssignment,
            Error::ElectionNotNeeded(_) => R::ElectionNotNeeded,
            Error::PreferredLeaderNotAvailable(_) => R::PreferredLeaderNotAvailable,
            Error::EligibleLeadersNotAvailable(_) => R::EligibleLeadersNotAvailable,
            Error::NoReassignmentInProgress(_) => R::NoReassignmentInProgress,
            Error::KafkaStorage(_) | Error::Io(_) => R::KafkaStorageError,
        }
    }

    /// An error another broker answered with `code` and `message`: the unit
    /// errors the broker's own code matches on come back as themselves (a
    /// forwarded CreateTopics' TOPIC_ALREADY_EXISTS is [`Error::TopicAlreadyExists`]),
    /// every other one as [`Error::Remote`], which keeps the code.
    pub fn from_remote(code: i16, message: String) -> Error {
        match ResponseError::try_from_code(code) {
            Some(ResponseError::TopicAlreadyExists) => Error::TopicAlreadyExists,
            Some(ResponseError::UnknownTopicOrPartition) => Error::UnknownTopicOrPartition,
            Some(ResponseError::NotController) => Error::NotController,
            Some(ResponseError::NotLeaderOrFollower) => Error::NotLeaderOrFollower,
            Some(ResponseError::CoordinatorNotAvailable) => Error::CoordinatorNotAvailable,
            Some(ResponseError::NotCoordinator) => Error::NotCoordinator,
            _ => Error::Remote { code, message },
        }
    }

    /// The records at fault, for Produce's `record_errors` (KIP-467); empty
    /// when the error is not about particular records.
    pub fn record_errors(&self) -> &[RecordError] {
        match self {
            Error::InvalidRecords { record_errors, .. } => record_errors,
            _ => &[],
        }
    }

    /// The numeric Kafka error code for a response field, whatever the API
    /// and version; [`Error::code_for`] when the version matters.
    pub fn code(&self) -> i16 {
        self.response_error().code()
    }

    /// The numeric Kafka error code for a response of `api` at `version`:
    /// [`Error::code`], except where a client of that version does not know
    /// the code. A fenced producer ([`Error::ProducerFenced`], KIP-588) is
    /// PRODUCER_FENCED only for InitProducerId v4+, AddPartitionsToTxn v2+,
    /// AddOffsetsToTxn v2+, EndTxn v2+ and TxnOffsetCommit v3+, and
    /// INVALID_PRODUCER_EPOCH for older versions of those APIs, as Kafka answers.
    /// So the domain code always says "fenced" and never needs the version.
    pub fn code_for(&self, api: ApiKey, version: i16) -> i16 {
        match self {
            Error::ProducerFenced(_) if !knows_producer_fenced(api, version) => ResponseError::InvalidProducerEpoch.code(),
            _ => self.code(),
        }
    }

    /// True when the request cannot be answered at all and the connection must close
    /// (Kafka closes on unparseable requests rather than guessing a response shape).
    pub fn closes_connection(&self) -> bool {
        matches!(self, Error::InvalidRequest(_))
    }
}

/// Whether a client of `api` at `version` understands PRODUCER_FENCED
/// (KIP-588). Other APIs never see [`Error::ProducerFenced`]; they keep its code.
fn knows_producer_fenced(api: ApiKey, version: i16) -> bool {
    match api {
        ApiKey::InitProducerId => version >= 4,
        ApiKey::AddPartitionsToTxn | ApiKey::AddOffsetsToTxn | ApiKey::EndTxn => version >= 2,
        ApiKey::TxnOffsetCommit => version >= 3,
        _ => true,
    }
}

/// Result alias used across the broker.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_fenced_is_invalid_producer_epoch_for_clients_before_kip_588() {
        let fenced = || Error::ProducerFenced("newer instance".into());
        let (f, old) = (ResponseError::ProducerFenced.code(), ResponseError::InvalidProducerEpoch.code());
        for (api, threshold) in
            [(ApiKey::InitProducerId, 4), (ApiKey::AddPartitionsToTxn, 2), (ApiKey::AddOffsetsToTxn, 2), (ApiKey::EndTxn, 2), (ApiKey::TxnOffsetCommit, 3)]
        {
            assert_eq!(fenced().code_for(api, threshold - 1), old, "{api:?} v{}", threshold - 1);
            assert_eq!(fenced().code_for(api, 0), old, "{api:?} v0");
            assert_eq!(fenced().code_for(api, threshold), f, "{api:?} v{threshold}");
            assert_eq!(fenced().code_for(api, threshold + 1), f, "{api:?} v{}", threshold + 1);
        }
    }

    #[test]
    fn other_errors_keep_their_code_at_every_version() {
        for v in 0..5 {
            assert_eq!(Error::InvalidProducerEpoch("stale".into()).code_for(ApiKey::EndTxn, v), ResponseError::InvalidProducerEpoch.code());
            assert_eq!(Error::ConcurrentTransactions.code_for(ApiKey::InitProducerId, v), ResponseError::ConcurrentTransactions.code());
        }
        assert_eq!(Error::ProducerFenced("x".into()).code(), ResponseError::ProducerFenced.code());
    }
}
