//! The transaction coordinator (Kafka's `TransactionCoordinator`).
//!
//! A transactional id lives on the shard owning its `__transaction_state`
//! partition, so all of an id's state is touched by one core. Every state
//! change is appended there ([`super::txn_store`]) before it takes effect, and
//! replayed when the shard opens the partition.
//!
//! The state machine follows Kafka's `TransactionMetadata`:
//! `Empty -> Ongoing` (AddPartitionsToTxn / AddOffsetsToTxn),
//! `Ongoing -> PrepareCommit | PrepareAbort` (EndTxn, or a timeout abort that
//! also bumps the epoch to fence the stuck producer), then markers go to every
//! partition of the transaction through [`super::Outbound`] (`xshard`, grouped per owner shard),
//! then `-> CompleteCommit | CompleteAbort` with the partition set cleared.
//! InitProducerId bumps the epoch (a new producer id once the epoch is
//! exhausted); an Ongoing transaction is aborted first.
//!
//! An id with a transition in flight (its state written, markers being sent)
//! answers CONCURRENT_TRANSACTIONS, as Kafka does for a pending state; the
//! client retries. A retried EndTxn or InitProducerId that finds a Prepare*
//! nobody is completing finishes it itself. A transaction left in Prepare* (a marker write failed, the
//! request was cancelled, or the broker died) is finished by the per-shard
//! ticker, which runs once right after the shards are connected (recovery) and
//! then every `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
//! The ticker also aborts Ongoing transactions past their timeout and forgets
//! ids idle longer than `transactional.id.expiration.ms` (tombstone).
//!
//! Unlike Kafka, EndTxn answers only after the markers are written (the client
//! never sees a commit that a read_committed consumer cannot yet read).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::coordinators::{Coordinators, Outbound};
use super::partition_for;
use super::txn_store::{self, TXN_STATE_TOPIC};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::log::PartitionLog;
use crate::shard::request::{TopicPartition, TxnMarker};

/// Kafka's `isProducerEpochExhausted`: at this epoch a bump needs a new producer id.
const EPOCH_EXHAUSTED: i16 = i16::MAX - 1;
/// Attempts per marker write inside a request before leaving the rest to the ticker.
const MARKER_ATTEMPTS: u32 = 3;
/// Pause between marker write attempts.
const MARKER_RETRY_BACKOFF_MS: u64 = 50;

/// A transactional id's state (Kafka's `TransactionState`; names as ListTransactions reports them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    /// A producer id and epoch, no transaction open.
    Empty,
    /// A transaction is open: partitions (or offsets) were added to it.
    Ongoing,
    /// EndTxn(commit) is persisted; COMMIT markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a fence is persisted; ABORT markers are being written.
    PrepareAbort,
    /// Every COMMIT marker is written; the transaction is over.
    CompleteCommit,
    /// Every ABORT marker is written; the transaction is over.
    CompleteAbort,
    /// The id expired (`transactional.id.expiration.ms`); treated as absent.
    Dead,
    /// The epoch must be bumped to fence the producer before aborting (Kafka's
    /// state for a timed-out transaction; the ticker aborts it).
    PrepareEpochFence,
}

impl TxnState {
    /// Every state, in Kafka's order (ListTransactions' state filters are matched against their names).
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// The name ListTransactions / DescribeTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Parses a ListTransactions state filter (Kafka matches names exactly).
    pub fn parse(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence)
    }
}

/// Everything the coordinator keeps per transactional id (persisted as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnMetadata {
    /// The transactional id (`transactional.id` of the producer).
    pub transactional_id: String,
    /// The producer id the id currently holds.
    pub producer_id: i64,
    /// The producer id before the last change (KIP-360: a retried InitProducerId
    /// carrying it is answered with the current id instead of being fenced).
    pub last_producer_id: i64,
    /// The current producer epoch; bumped by InitProducerId and by fencing aborts.
    pub producer_epoch: i16,
    /// The epoch before the last bump (-1: none), for the same retry rule.
    pub last_producer_epoch: i16,
    /// The producer's `transaction.timeout.ms`, in ms: an Ongoing transaction older is aborted.
    pub timeout_ms: i32,
    /// Where the id's state machine stands.
    pub state: TxnState,
    /// Partitions written in the open (or completing) transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// When the first partition was added (-1: no transaction).
    pub start_ms: i64,
    /// Wall-clock ms of the last state change (for `transactional.id.expiration.ms`).
    pub last_update_ms: i64,
}

/// What an InitProducerId must do next (see [`TxnMetadata::plan_init`]).
#[derive(Debug, PartialEq)]
pub enum InitStep {
    /// A retry of a request already served: answer (producer id, epoch).
    Done(i64, i16),
    /// Persist this state, then answer its producer id and epoch.
    Transit(TxnMetadata),
    /// A fresh producer id is needed; plan again with one.
    NeedProducerId,
    /// Abort the open transaction first (this Prepare state, epoch bumped), then plan again.
    AbortOngoing(TxnMetadata),
    /// A transaction left in Prepare* (its markers failed): finish it, then plan again.
    Resume(TxnMetadata),
}

/// What an EndTxn must do next.
#[derive(Debug, PartialEq)]
pub enum EndStep {
    /// Already completed in this direction (a retry): success.
    AlreadyDone,
    /// Persist this Prepare state, write markers, complete.
    Prepare(TxnMetadata),
    /// The same decision is already logged but its markers failed and nothing
    /// is completing it now: write the markers and complete (a retried EndTxn
    /// finishes at once instead of waiting for the ticker).
    Resume(TxnMetadata),
}

impl TxnMetadata {
    /// A new id: producer id `producer_id`, epoch 0, no transaction.
    pub fn new(transactional_id: String, producer_id: i64, timeout_ms: i32, now: i64) -> TxnMetadata {
        TxnMetadata {
            transactional_id,
            producer_id,
            last_producer_id: -1,
            producer_epoch: 0,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now,
        }
    }

    /// InitProducerId for an existing (`cur`) or new id. `requested` is the
    /// KIP-360 (producer id, epoch) of v3+ requests; `new_pid` a freshly
    /// allocated producer id when the previous plan asked for one.
    pub fn plan_init(cur: Option<&TxnMetadata>, id: &str, requested: Option<(i64, i16)>, timeout_ms: i32, now: i64, new_pid: Option<i64>) -> Result<InitStep> {
        let Some(m) = cur.filter(|m| m.state != TxnState::Dead) else {
            return Ok(match new_pid {
                None => InitStep::NeedProducerId,
                Some(p) => InitStep::Transit(TxnMetadata::new(id.to_string(), p, timeout_ms, now)),
            });
        };
        let mut retry = false;
        if let Some((pid, epoch)) = requested {
            let current = m.producer_id == pid && m.producer_epoch == epoch;
            retry = !current && m.last_producer_id == pid && m.last_producer_epoch == epoch && epoch >= 0;
            if !(epoch < 0 || current || retry) {
                return Err(Error::ProducerFenced(format!(
                    "producer id {pid} epoch {epoch} is not the current producer ({} epoch {})",
                    m.producer_id, m.producer_epoch
                )));
            }
        }
        match m.state {
            // Reached only when no request is completing it (those hold the
            // id in flight and the caller answers CONCURRENT_TRANSACTIONS).
            TxnState::PrepareCommit | TxnState::PrepareAbort => Ok(InitStep::Resume(m.clone())),
            TxnState::PrepareEpochFence => Err(Error::ConcurrentTransactions),
            TxnState::Ongoing => Ok(InitStep::AbortOngoing(m.fence_and_abort(now))),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Dead => {
                if retry {
                    return Ok(InitStep::Done(m.producer_id, m.producer_epoch));
                }
                let mut next = m.clone();
                if m.producer_epoch >= EPOCH_EXHAUSTED {
                    let Some(p) = new_pid else { return Ok(InitStep::NeedProducerId) };
                    next.producer_id = p;
                    next.producer_epoch = 0;
                } else {
                    next.producer_epoch = m.producer_epoch + 1;
                }
                next.last_producer_id = m.producer_id;
                next.last_producer_epoch = m.producer_epoch;
                next.timeout_ms = timeout_ms;
                next.state = TxnState::Empty;
                next.partitions.clear();
                next.start_ms = -1;
                next.last_update_ms = now;
                Ok(InitStep::Transit(next))
            }
        }
    }

    /// The producer named in a request must be the current one.
    fn check_producer(&self, pid: i64, epoch: i16) -> Result<()> {
        if pid != self.producer_id {
            return Err(Error::InvalidProducerIdMapping(pid));
        }
        if epoch != self.producer_epoch {
            return Err(Error::ProducerFenced(format!("epoch {epoch} is not the current epoch {} of producer {pid}", self.producer_epoch)));
        }
        Ok(())
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: Some(new state) to persist, None
    /// when every partition is already in the open transaction.
    pub fn plan_add_partitions(&self, pid: i64, epoch: i16, partitions: &[(String, i32)], now: i64) -> Result<Option<TxnMetadata>> {
        self.check_producer(pid, epoch)?;
        match self.state {
            s if s.is_prepare() => Err(Error::ConcurrentTransactions),
            TxnState::Dead => Err(Error::InvalidProducerIdMapping(pid)),
            TxnState::Ongoing if partitions.iter().all(|p| self.partitions.contains(p)) => Ok(None),
            _ => {
                let mut next = self.clone();
                if self.state != TxnState::Ongoing {
                    next.partitions.clear();
                    next.start_ms = now;
                }
                next.partitions.extend(partitions.iter().cloned());
                next.state = TxnState::Ongoing;
                next.last_update_ms = now;
                Ok(Some(next))
            }
        }
    }

    /// EndTxn (Kafka's rules): Ongoing prepares; a completed transaction in the
    /// same direction is a retry; anything else is an invalid transition.
    pub fn plan_end(&self, pid: i64, epoch: i16, commit: bool, now: i64) -> Result<EndStep> {
        self.check_producer(pid, epoch)?;
        let invalid = || Error::InvalidTxnState(format!("cannot {} a transaction in state {}", if commit { "commit" } else { "abort" }, self.state.name()));
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut next = self.clone();
                next.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
                next.last_update_ms = now;
                Ok(EndStep::Prepare(next))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(EndStep::AlreadyDone),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => Ok(EndStep::Resume(self.clone())),
            (TxnState::PrepareEpochFence, _) => Err(Error::ConcurrentTransactions),
            (TxnState::Dead, _) => Err(Error::InvalidProducerIdMapping(pid)),
            _ => Err(invalid()),
        }
    }

    /// The coordinator aborts on its own (timeout, or InitProducerId of a new
    /// producer instance): the epoch is bumped so the old producer is fenced at
    /// the partitions by the abort markers, which carry the new epoch.
    pub fn fence_and_abort(&self, now: i64) -> TxnMetadata {
        let mut next = self.clone();
        if self.producer_epoch < EPOCH_EXHAUSTED {
            next.producer_epoch = self.producer_epoch + 1;
            next.last_producer_epoch = self.producer_epoch;
            next.last_producer_id = self.producer_id;
        }
        next.state = TxnState::PrepareAbort;
        next.last_update_ms = now;
        next
    }

    /// The Complete state after a Prepare (partitions cleared).
    pub fn completed(&self, now: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.state = if self.state == TxnState::PrepareCommit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        next.partitions.clear();
        next.start_ms = -1;
        next.last_update_ms = now;
        next
    }

    /// An Ongoing transaction past its timeout.
    pub fn timed_out(&self, now: i64) -> bool {
        self.state == TxnState::Ongoing && self.start_ms >= 0 && now - self.start_ms > i64::from(self.timeout_ms)
    }

    /// An id with no transaction, idle longer than `expiration_ms`.
    pub fn expired(&self, now: i64, expiration_ms: i64) -> bool {
        matches!(self.state, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort) && now - self.last_update_ms > expiration_ms
    }
}

/// Transactional requests a shard serves for the ids it coordinates.
pub enum TxnRequest {
    /// `requested`: the KIP-360 producer id and epoch (v3+, when not -1).
    InitProducerId {
        /// The producer's transactional id.
        transactional_id: String,
        /// Its `transaction.timeout.ms`, in ms (checked against `transaction.max.timeout.ms` by the handler).
        timeout_ms: i32,
        /// The producer id and epoch the client had (KIP-360), when it sent them.
        requested: Option<(i64, i16)>,
    },
    /// AddPartitionsToTxn, and AddOffsetsToTxn (the group's `__consumer_offsets` partition).
    AddPartitions {
        /// The producer's transactional id.
        transactional_id: String,
        /// The producer id it must hold.
        producer_id: i64,
        /// The producer epoch it must hold (older: fenced).
        producer_epoch: i16,
        /// The (topic, partition) pairs to add to the open transaction.
        partitions: Vec<(String, i32)>,
    },
    /// EndTxn: commit or abort the open transaction (markers written before the answer).
    EndTxn {
        /// The producer's transactional id.
        transactional_id: String,
        /// The producer id it must hold.
        producer_id: i64,
        /// The producer epoch it must hold (older: fenced).
        producer_epoch: i16,
        /// Commit when true, abort when false.
        commit: bool,
    },
    /// ListTransactions on this shard: empty filters match all; `duration_ms` < 0 disables that filter.
    List {
        /// Only ids in these states (empty: all).
        states: Vec<TxnState>,
        /// Only ids holding these producer ids (empty: all).
        producer_ids: Vec<i64>,
        /// Only transactions open longer than this, in ms (< 0: all; ListTransactions v1).
        duration_ms: i64,
    },
    /// DescribeTransactions of ids this shard coordinates.
    Describe {
        /// The ids, answered in this order.
        transactional_ids: Vec<String>,
    },
}

/// A described transactional id, ready for DescribeTransactions.
#[derive(Debug)]
pub struct TxnDescription {
    /// The id described.
    pub transactional_id: String,
    /// Why it cannot be described (e.g. TRANSACTIONAL_ID_NOT_FOUND); None when described.
    pub error: Option<Error>,
    /// Its state's name (see [`TxnState::name`]).
    pub state: &'static str,
    /// The producer's transaction timeout, in ms.
    pub timeout_ms: i32,
    /// When the open transaction started (wall-clock ms; -1: none).
    pub start_ms: i64,
    /// The producer id it holds.
    pub producer_id: i64,
    /// The producer epoch it holds.
    pub producer_epoch: i16,
    /// The partitions of the open transaction, per topic.
    pub partitions: Vec<(String, Vec<i32>)>,
}

impl TxnDescription {
    /// An id that cannot be described: only the id and the error.
    pub fn error(transactional_id: String, error: Error) -> TxnDescription {
        TxnDescription { error: Some(error), ..TxnDescription::blank(transactional_id) }
    }

    /// The id alone, no error: [`TxnCoordinator`] fills in the rest.
    fn blank(transactional_id: String) -> TxnDescription {
        TxnDescription { transactional_id, error: None, state: "", timeout_ms: 0, start_ms: -1, producer_id: -1, producer_epoch: -1, partitions: Vec::new() }
    }
}

/// Answers to [`TxnRequest`]s.
pub enum TxnResponse {
    /// (producer id, epoch)
    InitProducerId(Result<(i64, i16)>),
    /// The partitions were added (or were already in the transaction).
    AddPartitions(Result<()>),
    /// The transaction is complete: markers written, state persisted.
    EndTxn(Result<()>),
    /// (transactional id, producer id, state)
    List(Vec<(String, i64, &'static str)>),
    /// One description per id asked, in order.
    Describe(Vec<TxnDescription>),
}

/// Marks an id busy while a transition is in flight; unmarks on drop, so a
/// cancelled request never leaves the id stuck.
struct InFlight<'a> {
    set: &'a RefCell<HashSet<String>>,
    id: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.set.borrow_mut().remove(&self.id);
    }
}

/// One shard's transaction coordinator: the ids of the `__transaction_state` partitions it owns.
pub struct TxnCoordinator {
    cfg: Arc<Config>,
    txns: RefCell<HashMap<String, TxnMetadata>>,
    in_flight: RefCell<HashSet<String>>,
    logs: RefCell<HashMap<i32, Rc<PartitionLog>>>,
    /// Partitions of `__transaction_state` (see [`super::internal_partition_count`]).
    partition_count: std::cell::Cell<i32>,
}

impl TxnCoordinator {
    /// An empty coordinator; it takes over `__transaction_state` partitions as the shard opens them.
    pub fn new(cfg: Arc<Config>) -> TxnCoordinator {
        let partition_count = std::cell::Cell::new(cfg.transaction_state_log_num_partitions);
        TxnCoordinator { cfg, txns: RefCell::new(HashMap::new()), in_flight: RefCell::new(HashSet::new()), logs: RefCell::new(HashMap::new()), partition_count }
    }

    /// The shard tells the coordinator how many partitions `__transaction_state`
    /// has, before it hands over any of them.
    pub fn set_partition_count(&self, n: i32) {
        self.partition_count.set(n.max(1));
    }

    /// Takes over a `__transaction_state` partition: replays it into id state.
    /// Ids left in Prepare* are finished by the next [`TxnCoordinator::tick`].
    pub fn add_partition(&self, partition: i32, log: Rc<PartitionLog>) -> Result<()> {
        // A leader again after a failover: what was loaded before is stale.
        self.remove_partition(partition);
        let state = txn_store::replay(&log)?;
        let prepared = state.values().filter(|m| m.state.is_prepare()).count();
        if prepared > 0 {
            tracing::info!(topic = txn_store::TXN_STATE_TOPIC, partition, prepared, "transactions to complete after replay");
        }
        self.txns.borrow_mut().extend(state);
        self.logs.borrow_mut().insert(partition, log);
        Ok(())
    }

    /// Drops the transactions of `partition` of `__transaction_state` and its log
    /// (this broker no longer leads it: their requests get NOT_COORDINATOR).
    pub fn remove_partition(&self, partition: i32) {
        if self.logs.borrow_mut().remove(&partition).is_some() {
            let n = self.partition_count.get();
            self.txns.borrow_mut().retain(|id, _| partition_for(id, n) != partition);
            tracing::info!(topic = txn_store::TXN_STATE_TOPIC, partition, "transaction coordinator: partition unloaded");
        }
    }

    fn partition_of(&self, id: &str) -> i32 {
        partition_for(id, self.partition_count.get())
    }

    fn log_for(&self, id: &str) -> Option<Rc<PartitionLog>> {
        self.logs.borrow().get(&self.partition_of(id)).cloned()
    }

    fn begin(&self, id: &str) -> Result<InFlight<'_>> {
        if !self.in_flight.borrow_mut().insert(id.to_string()) {
            return Err(Error::ConcurrentTransactions);
        }
        Ok(InFlight { set: &self.in_flight, id: id.to_string() })
    }

    fn get(&self, id: &str) -> Option<TxnMetadata> {
        self.txns.borrow().get(id).cloned()
    }

    /// Appends the new state, then installs it.
    async fn persist(&self, meta: TxnMetadata) -> Result<TxnMetadata> {
        let log = self.log_for(&meta.transactional_id).ok_or(Error::CoordinatorNotAvailable)?;
        if let Err(e) = txn_store::append(&log, vec![txn_store::record(&meta)]).await {
            crate::error_limited!(transactional_id = %meta.transactional_id, "persisting transaction state failed: {e}");
            return Err(Error::CoordinatorNotAvailable);
        }
        self.txns.borrow_mut().insert(meta.transactional_id.clone(), meta.clone());
        Ok(meta)
    }

    /// Serves one transactional request.
    pub async fn handle(&self, req: TxnRequest, c: &Coordinators) -> TxnResponse {
        match req {
            TxnRequest::InitProducerId { transactional_id, timeout_ms, requested } => {
                TxnResponse::InitProducerId(self.init_producer_id(c, &transactional_id, timeout_ms, requested).await)
            }
            TxnRequest::AddPartitions { transactional_id, producer_id, producer_epoch, partitions } => {
                TxnResponse::AddPartitions(self.add_partitions(&transactional_id, producer_id, producer_epoch, &partitions).await)
            }
            TxnRequest::EndTxn { transactional_id, producer_id, producer_epoch, commit } => {
                TxnResponse::EndTxn(self.end_txn(c, &transactional_id, producer_id, producer_epoch, commit).await)
            }
            TxnRequest::List { states, producer_ids, duration_ms } => {
                TxnResponse::List(self.list(&states, &producer_ids, duration_ms, self.cfg.clock.now_ms()))
            }
            TxnRequest::Describe { transactional_ids } => TxnResponse::Describe(transactional_ids.into_iter().map(|id| self.describe(id)).collect()),
        }
    }

    async fn init_producer_id(&self, c: &Coordinators, id: &str, timeout_ms: i32, mut requested: Option<(i64, i16)>) -> Result<(i64, i16)> {
        if self.log_for(id).is_none() {
            return Err(Error::CoordinatorNotAvailable);
        }
        let mut new_pid = None;
        // At most: finish a prepared transaction or abort the open one,
        // allocate an id (new id or epoch exhausted), transit. Bounded so a
        // bug cannot spin forever.
        for _ in 0..4 {
            let guard = self.begin(id)?;
            let step = TxnMetadata::plan_init(self.get(id).as_ref(), id, requested, timeout_ms, self.cfg.clock.now_ms(), new_pid)?;
            match step {
                InitStep::Done(p, e) => return Ok((p, e)),
                InitStep::Transit(m) => {
                    let m = self.persist(m).await?;
                    drop(guard);
                    return Ok((m.producer_id, m.producer_epoch));
                }
                InitStep::NeedProducerId => {
                    drop(guard);
                    new_pid = Some(c.next_producer_id().await?);
                }
                InitStep::AbortOngoing(prepared) => {
                    self.complete(c, prepared, true).await?;
                    drop(guard);
                    // The request was checked against the producer it fenced.
                    requested = None;
                }
                InitStep::Resume(prepared) => {
                    self.complete(c, prepared, false).await?;
                    drop(guard);
                }
            }
        }
        Err(Error::ConcurrentTransactions)
    }

    async fn add_partitions(&self, id: &str, pid: i64, epoch: i16, partitions: &[(String, i32)]) -> Result<()> {
        if self.log_for(id).is_none() {
            return Err(Error::CoordinatorNotAvailable);
        }
        let _guard = self.begin(id)?;
        let cur = self.get(id).ok_or(Error::InvalidProducerIdMapping(pid))?;
        if let Some(next) = cur.plan_add_partitions(pid, epoch, partitions, self.cfg.clock.now_ms())? {
            self.persist(next).await?;
        }
        Ok(())
    }

    async fn end_txn(&self, c: &Coordinators, id: &str, pid: i64, epoch: i16, commit: bool) -> Result<()> {
        if self.log_for(id).is_none() {
            return Err(Error::CoordinatorNotAvailable);
        }
        let _guard = self.begin(id)?;
        let cur = self.get(id).ok_or(Error::InvalidProducerIdMapping(pid))?;
        match cur.plan_end(pid, epoch, commit, self.cfg.clock.now_ms())? {
            EndStep::AlreadyDone => Ok(()),
            EndStep::Prepare(prepared) => self.complete(c, prepared, true).await,
            EndStep::Resume(prepared) => self.complete(c, prepared, false).await,
        }
    }

    /// Persists a Prepare state (unless replayed from the log), writes the
    /// markers and persists the Complete state. The caller holds the id's
    /// in-flight mark. On a marker failure the id stays in Prepare* for the
    /// ticker, and the caller gets COORDINATOR_NOT_AVAILABLE (retriable).
    async fn complete(&self, c: &Coordinators, prepared: TxnMetadata, persist_prepare: bool) -> Result<()> {
        let prepared = if persist_prepare { self.persist(prepared).await? } else { prepared };
        let commit = prepared.state == TxnState::PrepareCommit;
        let coordinator_epoch = self.coordinator_epoch(c, &prepared.transactional_id);
        let markers: Vec<TxnMarker> = prepared
            .partitions
            .iter()
            .map(|(t, p)| TxnMarker {
                tp: TopicPartition { topic: t.clone(), partition: *p },
                producer_id: prepared.producer_id,
                producer_epoch: prepared.producer_epoch,
                commit,
                coordinator_epoch,
            })
            .collect();
        let written = match c.outbound() {
            Ok(out) => write_markers(&*out, markers).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            crate::warn_limited!(transactional_id = %prepared.transactional_id, "writing transaction markers failed; the ticker retries: {e}");
            return Err(Error::CoordinatorNotAvailable);
        }
        self.persist(prepared.completed(self.cfg.clock.now_ms())).await.map(|_| ())
    }

    /// The coordinator epoch is the leader epoch of the id's `__transaction_state` partition.
    fn coordinator_epoch(&self, c: &Coordinators, id: &str) -> i32 {
        let p = self.partition_of(id);
        c.shard.image().topics.get(TXN_STATE_TOPIC).and_then(|t| t.partitions.get(usize::try_from(p).ok()?).map(|m| m.leader_epoch)).unwrap_or(0)
    }

    /// Periodic work (also the recovery pass at start): finish transactions
    /// left in Prepare*, abort Ongoing ones past their timeout (fencing the
    /// producer), and forget ids idle past `transactional.id.expiration.ms`.
    pub async fn tick(&self, c: &Coordinators) {
        let now = self.cfg.clock.now_ms();
        let expiration_ms = self.cfg.transactional_id_expiration_ms;
        let (prepared, timed_out, expired) = self.plan_tick(now);
        for m in prepared {
            let Ok(_guard) = self.begin(&m.transactional_id) else { continue };
            // Re-read: while earlier ids were completed a client may have finished
            // this one and started another, or bumped the epoch.
            let Some(cur) = self.get(&m.transactional_id).filter(|c| {
                matches!(c.state, TxnState::PrepareCommit | TxnState::PrepareAbort) && c.producer_id == m.producer_id && c.producer_epoch == m.producer_epoch
            }) else {
                continue;
            };
            if let Err(e) = self.complete(c, cur.clone(), false).await {
                crate::warn_limited!(transactional_id = %cur.transactional_id, "completing a prepared transaction failed: {e}");
            }
        }
        for m in timed_out {
            let Ok(_guard) = self.begin(&m.transactional_id) else { continue };
            // Re-read: the state may have moved while earlier ids were completed.
            let Some(cur) = self.get(&m.transactional_id).filter(|c| c.timed_out(now) || c.state == TxnState::PrepareEpochFence) else { continue };
            tracing::info!(transactional_id = %cur.transactional_id, producer_id = cur.producer_id, epoch = cur.producer_epoch, "aborting a transaction past its timeout");
            if let Err(e) = self.complete(c, cur.fence_and_abort(now), true).await {
                crate::warn_limited!(transactional_id = %cur.transactional_id, "aborting a timed-out transaction failed: {e}");
            }
        }
        for id in expired {
            let Ok(_guard) = self.begin(&id) else { continue };
            if !self.get(&id).is_some_and(|m| m.expired(now, expiration_ms)) {
                continue;
            }
            let Some(log) = self.log_for(&id) else { continue };
            match txn_store::append(&log, vec![txn_store::tombstone(&id)]).await {
                Ok(()) => {
                    self.txns.borrow_mut().remove(&id);
                    tracing::info!(transactional_id = %id, "transactional id expired");
                }
                Err(e) => crate::warn_limited!(transactional_id = %id, "expiring a transactional id failed: {e}"),
            }
        }
    }

    // What a tick at `now` does, by transactional id not in flight: prepared
    // transactions to finish, Ongoing ones past their timeout (and epoch fences)
    // to abort, and idle ids past `transactional.id.expiration.ms` to forget.
    fn plan_tick(&self, now: i64) -> (Vec<TxnMetadata>, Vec<TxnMetadata>, Vec<String>) {
        let expiration_ms = self.cfg.transactional_id_expiration_ms;
        let txns = self.txns.borrow();
        let busy = self.in_flight.borrow();
        let idle = txns.values().filter(|m| !busy.contains(&m.transactional_id));
        let mut prepared = Vec::new();
        let mut timed_out = Vec::new();
        let mut expired = Vec::new();
        for m in idle {
            if matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                prepared.push(m.clone());
            } else if m.state == TxnState::PrepareEpochFence || m.timed_out(now) {
                timed_out.push(m.clone());
            } else if m.expired(now, expiration_ms) {
                expired.push(m.transactional_id.clone());
            }
        }
        (prepared, timed_out, expired)
    }

    /// Kafka's ListTransactions filters: producer ids, states, and (v1) only
    /// transactions running longer than `duration_ms`.
    pub fn list(&self, states: &[TxnState], producer_ids: &[i64], duration_ms: i64, now: i64) -> Vec<(String, i64, &'static str)> {
        self.txns
            .borrow()
            .values()
            .filter(|m| m.state != TxnState::Dead)
            .filter(|m| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|m| states.is_empty() || states.contains(&m.state))
            .filter(|m| duration_ms < 0 || now - m.start_ms > duration_ms)
            .map(|m| (m.transactional_id.clone(), m.producer_id, m.state.name()))
            .collect()
    }

    fn describe(&self, id: String) -> TxnDescription {
        if self.log_for(&id).is_none() {
            return TxnDescription::error(id, Error::CoordinatorNotAvailable);
        }
        let txns = self.txns.borrow();
        let Some(m) = txns.get(&id) else { return TxnDescription::error(id, Error::TransactionalIdNotFound) };
        let mut d = TxnDescription::blank(id.clone());
        d.state = m.state.name();
        d.timeout_ms = m.timeout_ms;
        d.start_ms = m.start_ms;
        d.producer_id = m.producer_id;
        d.producer_epoch = m.producer_epoch;
        let mut by: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in &m.partitions {
            by.entry(t.clone()).or_default().push(*p);
        }
        d.partitions = by.into_iter().collect();
        d
    }
}

/// Sends markers to the owner shards (one message per shard) and retries the
/// failed ones a few times. A partition that no longer exists (its topic was
/// deleted) needs no marker, as in Kafka.
async fn write_markers(out: &dyn Outbound, mut markers: Vec<TxnMarker>) -> Result<()> {
    let mut last = None;
    for attempt in 0..MARKER_ATTEMPTS {
        if markers.is_empty() {
            return Ok(());
        }
        if attempt > 0 {
            glommio::timer::sleep(Duration::from_millis(MARKER_RETRY_BACKOFF_MS)).await;
        }
        let results = out.write_txn_markers(markers.clone()).await;
        let mut failed = Vec::new();
        for (m, r) in markers.into_iter().zip(results) {
            match r {
                Ok(()) | Err(Error::UnknownTopicOrPartition) => {}
                Err(e) => {
                    tracing::debug!(topic = %m.tp.topic, partition = m.tp.partition, "marker write failed: {e}");
                    last = Some(e);
                    failed.push(m);
                }
            }
        }
        markers = failed;
    }
    if markers.is_empty() {
        Ok(())
    } else {
        Err(last.unwrap_or(Error::CoordinatorNotAvailable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::ResponseError;

    fn ongoing(id: &str) -> TxnMetadata {
        let m = TxnMetadata::new(id.into(), 100, 60_000, 0);
        m.plan_add_partitions(100, 0, &[("t".into(), 0), ("t".into(), 1)], 10).unwrap().unwrap()
    }

    #[test]
    fn init_new_id_needs_a_producer_id_then_starts_at_epoch_zero() {
        assert_eq!(TxnMetadata::plan_init(None, "a", None, 1000, 0, None).unwrap(), InitStep::NeedProducerId);
        let InitStep::Transit(m) = TxnMetadata::plan_init(None, "a", None, 1000, 0, Some(42)).unwrap() else { panic!() };
        assert_eq!((m.producer_id, m.producer_epoch, m.state), (42, 0, TxnState::Empty));
    }

    #[test]
    fn init_bumps_epoch_and_new_id_on_exhaustion() {
        let m = TxnMetadata::new("a".into(), 5, 1000, 0);
        let InitStep::Transit(n) = TxnMetadata::plan_init(Some(&m), "a", None, 2000, 1, None).unwrap() else { panic!() };
        assert_eq!((n.producer_id, n.producer_epoch, n.last_producer_epoch, n.timeout_ms), (5, 1, 0, 2000));
        let mut ex = m.clone();
        ex.producer_epoch = EPOCH_EXHAUSTED;
        assert_eq!(TxnMetadata::plan_init(Some(&ex), "a", None, 1000, 1, None).unwrap(), InitStep::NeedProducerId);
        let InitStep::Transit(n) = TxnMetadata::plan_init(Some(&ex), "a", None, 1000, 1, Some(9)).unwrap() else { panic!() };
        assert_eq!((n.producer_id, n.producer_epoch, n.last_producer_id), (9, 0, 5));
    }

    #[test]
    fn init_aborts_ongoing_and_refuses_prepare() {
        let m = ongoing("a");
        let InitStep::AbortOngoing(p) = TxnMetadata::plan_init(Some(&m), "a", None, 1000, 20, None).unwrap() else { panic!() };
        assert_eq!((p.state, p.producer_epoch), (TxnState::PrepareAbort, 1));
        assert_eq!(p.partitions.len(), 2);
        let done = p.completed(30);
        assert_eq!((done.state, done.partitions.len()), (TxnState::CompleteAbort, 0));
        let InitStep::Transit(n) = TxnMetadata::plan_init(Some(&done), "a", None, 1000, 40, None).unwrap() else { panic!() };
        assert_eq!(n.producer_epoch, 2);
        let mut prep = m.clone();
        prep.state = TxnState::PrepareCommit;
        assert_eq!(TxnMetadata::plan_init(Some(&prep), "a", None, 1000, 20, None).unwrap(), InitStep::Resume(prep.clone()));
        prep.state = TxnState::PrepareEpochFence;
        assert!(matches!(TxnMetadata::plan_init(Some(&prep), "a", None, 1000, 20, None), Err(Error::ConcurrentTransactions)));
    }

    #[test]
    fn init_kip360_fences_strangers_and_answers_retries() {
        let m = TxnMetadata::new("a".into(), 5, 1000, 0);
        let InitStep::Transit(n) = TxnMetadata::plan_init(Some(&m), "a", Some((5, 0)), 1000, 1, None).unwrap() else { panic!() };
        assert_eq!(n.producer_epoch, 1);
        // The same request again (its answer was lost) gets the current producer, no bump.
        assert_eq!(TxnMetadata::plan_init(Some(&n), "a", Some((5, 0)), 1000, 2, None).unwrap(), InitStep::Done(5, 1));
        assert!(matches!(TxnMetadata::plan_init(Some(&n), "a", Some((5, 7)), 1000, 2, None), Err(Error::ProducerFenced(_))));
        // A client before KIP-588 (InitProducerId v3) is told INVALID_PRODUCER_EPOCH.
        let old = TxnMetadata::plan_init(Some(&n), "a", Some((6, 1)), 1000, 2, None).unwrap_err();
        assert_eq!(old.code_for(ApiKey::InitProducerId, 3), ResponseError::InvalidProducerEpoch.code());
    }

    #[test]
    fn add_partitions_checks_producer_and_state() {
        let m = TxnMetadata::new("a".into(), 100, 1000, 0);
        assert!(matches!(m.plan_add_partitions(101, 0, &[("t".into(), 0)], 1), Err(Error::InvalidProducerIdMapping(101))));
        assert!(matches!(m.plan_add_partitions(100, 3, &[("t".into(), 0)], 1), Err(Error::ProducerFenced(_))));
        let old = m.plan_add_partitions(100, 3, &[("t".into(), 0)], 1).unwrap_err();
        assert_eq!(old.code_for(ApiKey::AddPartitionsToTxn, 1), ResponseError::InvalidProducerEpoch.code());
        let o = m.plan_add_partitions(100, 0, &[("t".into(), 0)], 7).unwrap().unwrap();
        assert_eq!((o.state, o.start_ms), (TxnState::Ongoing, 7));
        // Adding what is already there writes nothing; more keeps the start time.
        assert_eq!(o.plan_add_partitions(100, 0, &[("t".into(), 0)], 9).unwrap(), None);
        let o2 = o.plan_add_partitions(100, 0, &[("u".into(), 2)], 9).unwrap().unwrap();
        assert_eq!((o2.partitions.len(), o2.start_ms), (2, 7));
        let mut p = o2.clone();
        p.state = TxnState::PrepareAbort;
        assert!(matches!(p.plan_add_partitions(100, 0, &[("t".into(), 0)], 9), Err(Error::ConcurrentTransactions)));
        // After completion a new transaction starts from an empty set.
        let next = p.completed(10).plan_add_partitions(100, 0, &[("v".into(), 0)], 11).unwrap().unwrap();
        assert_eq!((next.partitions.len(), next.start_ms), (1, 11));
    }

    #[test]
    fn end_txn_transitions() {
        let o = ongoing("a");
        let EndStep::Prepare(p) = o.plan_end(100, 0, true, 20).unwrap() else { panic!() };
        assert_eq!(p.state, TxnState::PrepareCommit);
        // A retry finds the decision logged but not completed: finish it.
        assert_eq!(p.plan_end(100, 0, true, 21).unwrap(), EndStep::Resume(p.clone()));
        assert!(matches!(p.plan_end(100, 0, false, 21), Err(Error::InvalidTxnState(_))));
        let c = p.completed(22);
        assert_eq!(c.state, TxnState::CompleteCommit);
        assert_eq!(c.plan_end(100, 0, true, 23).unwrap(), EndStep::AlreadyDone);
        assert!(matches!(c.plan_end(100, 0, false, 23), Err(Error::InvalidTxnState(_))));
        let empty = TxnMetadata::new("b".into(), 1, 1000, 0);
        assert!(matches!(empty.plan_end(1, 0, true, 1), Err(Error::InvalidTxnState(_))));
        assert!(matches!(o.plan_end(100, 1, false, 1), Err(Error::ProducerFenced(_))));
        assert!(matches!(o.plan_end(99, 0, false, 1), Err(Error::InvalidProducerIdMapping(99))));
    }

    #[test]
    fn timeout_abort_fences_the_producer() {
        let o = ongoing("a");
        assert!(!o.timed_out(10 + 60_000));
        assert!(o.timed_out(10 + 60_001));
        let p = o.fence_and_abort(70_000);
        assert_eq!((p.state, p.producer_epoch), (TxnState::PrepareAbort, 1));
        // The fenced producer's own abort or commit now fails.
        let done = p.completed(70_001);
        assert!(matches!(done.plan_end(100, 0, false, 70_002), Err(Error::ProducerFenced(_))));
        assert!(matches!(done.plan_add_partitions(100, 0, &[("t".into(), 0)], 70_002), Err(Error::ProducerFenced(_))));
        assert!(done.expired(70_001 + 1001, 1000));
        assert!(!o.expired(1_000_000_000, 1000), "an open transaction never expires");
    }

    #[test]
    fn the_tick_aborts_an_ongoing_transaction_once_the_clock_passes_its_timeout() {
        let clock = crate::clock::Clock::manual(1_700_000_000_000);
        let cfg = Config { clock: clock.clock(), transactional_id_expiration_ms: 3_600_000, ..Config::default() };
        let tc = TxnCoordinator::new(Arc::new(cfg));
        let now = clock.now_ms();
        let open = TxnMetadata::new("open".into(), 100, 60_000, now).plan_add_partitions(100, 0, &[("t".into(), 0)], now).unwrap().unwrap();
        let idle = TxnMetadata::new("idle".into(), 101, 60_000, now);
        tc.txns.borrow_mut().extend([("open".to_string(), open), ("idle".to_string(), idle)]);
        let plan = |tc: &TxnCoordinator| {
            let (prepared, timed_out, expired) = tc.plan_tick(tc.cfg.clock.now_ms());
            (prepared.len(), timed_out.iter().map(|m| m.transactional_id.clone()).collect::<Vec<_>>(), expired)
        };
        assert_eq!(plan(&tc), (0, vec![], vec![]));
        clock.advance(Duration::from_millis(60_000));
        assert_eq!(plan(&tc), (0, vec![], vec![]), "at its timeout, not past it");
        clock.advance(Duration::from_millis(1));
        assert_eq!(plan(&tc), (0, vec!["open".to_string()], vec![]));
        // An id in flight is left to its request.
        tc.in_flight.borrow_mut().insert("open".into());
        assert_eq!(plan(&tc), (0, vec![], vec![]));
        // transactional.id.expiration.ms passes for the idle id.
        clock.advance(Duration::from_millis(3_600_000));
        assert_eq!(plan(&tc), (0, vec![], vec!["idle".to_string()]));
    }

    #[test]
    fn state_names_round_trip() {
        for s in TxnState::ALL {
            assert_eq!(TxnState::parse(s.name()), Some(s));
        }
        assert_eq!(TxnState::parse("ongoing"), None);
    }
}
