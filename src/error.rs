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
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// The partition is led by another broker (the client refreshes its metadata).
    #[error("this broker does not lead the partition")]
    NotLeaderOrFollower,
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange { offset: i64, log_start: i64, log_end: i64 },
    #[error("record batch of {size} bytes exceeds the limit of {max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("corrupt record batch: {0}")]
    CorruptMessage(&'static str),
    #[error("invalid record: {0}")]
    InvalidRecord(&'static str),
    /// Records that break Kafka's LogValidator rules: the message and, per
    /// record at fault, its index and why (Produce v8+ `record_errors`, KIP-467).
    #[error("invalid record: {message}")]
    InvalidRecords { message: String, record_errors: Vec<RecordError> },
    #[error("compressed records inflate past {0} bytes")]
    InflatesTooLarge(usize),
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    #[error("topic already exists")]
    TopicAlreadyExists,
    /// INVALID_TOPIC_EXCEPTION; the message is a whole sentence, as Kafka's are.
    #[error("{0}")]
    InvalidTopic(String),
    /// A client asked to create a topic the broker owns; Kafka's answer for
    /// the internal topic it refuses (INVALID_REQUEST, not a closed connection).
    #[error("Creation of internal topic {0} is prohibited.")]
    InternalTopicCreation(String),
    #[error("topic deletion is disabled (delete.topic.enable=false)")]
    TopicDeletionDisabled,
    #[error("unknown topic id")]
    UnknownTopicId,
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("invalid required acks {0}")]
    InvalidRequiredAcks(i16),
    #[error("unsupported version {version} of api {api_key}")]
    UnsupportedVersion { api_key: i16, version: i16 },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("{0}")]
    StaticBrokerConfig(String),
    #[error("not enough in-sync replicas: {isr} in sync, min.insync.replicas is {min}")]
    NotEnoughReplicas { isr: i32, min: i32 },
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    #[error("the owner shard is unavailable")]
    ShardUnavailable,
    #[error("broker is shutting down")]
    ShuttingDown,
    #[error("out of order sequence number: {0}")]
    OutOfOrderSequence(String),
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    /// A newer instance of the transactional producer exists. Clients older
    /// than KIP-588 are told INVALID_PRODUCER_EPOCH ([`Error::code_for`]).
    #[error("producer fenced: {0}")]
    ProducerFenced(String),
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    #[error("unknown producer id {0} for this transactional id")]
    InvalidProducerIdMapping(i64),
    #[error("invalid transaction timeout: {0}")]
    InvalidTransactionTimeout(String),
    #[error("a transaction for this transactional id is being completed; retry")]
    ConcurrentTransactions,
    #[error("transaction coordinator fenced: {0}")]
    TransactionCoordinatorFenced(String),
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
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
    #[error("{0}")]
    UnknownMemberId(String),
    #[error("{0}")]
    FencedMemberEpoch(String),
    #[error("{0}")]
    StaleMemberEpoch(String),
    #[error("{0}")]
    UnreleasedInstanceId(String),
    #[error("{0}")]
    FencedInstanceId(String),
    #[error("{0}")]
    UnsupportedAssignor(String),
    #[error("{0}")]
    InconsistentGroupProtocol(String),
    #[error("{0}")]
    GroupMaxSizeReached(String),
    #[error("{0}")]
    InvalidRegularExpression(String),
    #[error("{0}")]
    IllegalGeneration(String),
    #[error("{0}")]
    NonEmptyGroup(String),
    /// Errors of the classic group protocol and the offset APIs, which carry
    /// no message.
    #[error("the group id is empty")]
    InvalidGroupId,
    #[error("the session timeout is outside group.min/max.session.timeout.ms")]
    InvalidSessionTimeout,
    /// JoinGroup v4+: the member must rejoin with the member id it was given.
    #[error("a member id is required to join the group")]
    MemberIdRequired,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    /// OffsetFetch with require_stable: an offset is pending in an open transaction.
    #[error("an offset of the partition is pending in an open transaction")]
    UnstableOffsetCommit,
    #[error("the offset's metadata is larger than offset.metadata.max.bytes")]
    OffsetMetadataTooLarge,
    /// A partition whose log could not be opened (out of file descriptors, an
    /// I/O error): offline until it opens, as Kafka marks a failed log dir offline.
    #[error("storage error: {0}")]
    KafkaStorage(String),
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
            Error::KafkaStorage(_) | Error::Io(_) => R::KafkaStorageError,
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
