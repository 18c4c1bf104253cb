//! The Raft metadata quorum, sans-IO: [`Quorum`] wraps raft-rs's `RawNode` over a
//! [`MemoryLog`], [`wal::Wal`] keeps that log durable, and the driver (one task on
//! the controller shard, not in this module) moves bytes between them:
//!
//! ```text
//! every TICK_INTERVAL:    quorum.tick()
//! a peer's message:       quorum.step(decode_message(bytes)?)
//! a local proposal:       quorum.propose(id, payload)   // NotLeader { leader_hint } on followers
//! then, after any of them:
//! while let Some(out) = quorum.ready()? {
//!     wal.stage(&out.persist); wal.sync(&ring).await?;  // 1. durable first
//!     send(out.messages);                               // 2. then tell the peers
//!     if let Some(s) = &out.persist.snapshot { image = restore(&s.data) }
//!     for c in out.committed { image.apply(c) }         // 3. then apply, in order
//! }
//! if quorum.snapshot_due(bytes) { let s = quorum.compact(quorum.applied_index(), image.encode())?; wal.checkpoint(&ring, &s).await? }
//! ```
//!
//! Outputs are made durable in the order `ready` returned them, and no message of
//! an output leaves before its `persist` (and every earlier one) is synced: a
//! vote or an append acknowledged before it is on disk could be forgotten by a
//! crash, and that breaks Raft. The leader's own appends could in theory go out
//! before its sync (Raft thesis 10.2.1); sending everything after it is simpler
//! and costs one fdatasync of latency on a log that is small and slow-moving.
//!
//! Time is counted in ticks: the driver calls [`Quorum::tick`] every
//! [`TICK_INTERVAL`] (100 ms), so the defaults elect a new leader within
//! 1-2 s of the old one going silent ([`DEFAULT_ELECTION_TICK`]) and the leader
//! heartbeats every 200 ms ([`DEFAULT_HEARTBEAT_TICK`]). Pre-vote and check-quorum
//! are on: a member cut off from the majority neither disrupts the others with
//! higher terms when it returns nor keeps believing it leads.
//!
//! The voter set is fixed by configuration (no membership changes yet).

pub mod logger;
#[cfg(test)]
mod sim;
pub mod store;
pub mod wal;

use std::collections::BTreeMap;
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot};
use raft::{RawNode, StateRole};

pub use store::MemoryLog;

/// How often the driver calls [`Quorum::tick`].
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// Ticks without a leader's word before a follower campaigns (randomized up to twice that).
pub const DEFAULT_ELECTION_TICK: usize = 10;
/// Ticks between the leader's heartbeats.
pub const DEFAULT_HEARTBEAT_TICK: usize = 2;
/// The largest encoded Raft message accepted or produced (a snapshot carries the
/// whole metadata image, so this also bounds the image).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// The most entry bytes one append message carries.
const MAX_APPEND_BYTES: u64 = 1 << 20;
/// Append messages in flight to one follower.
const MAX_INFLIGHT_APPENDS: usize = 256;

/// What went wrong in the quorum (raft-rs's errors, mapped to what a driver does about them).
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// Only the leader takes proposals; `leader_hint` is the leader this member knows, if any.
    #[error("not the metadata quorum leader (leader: {leader_hint:?})")]
    NotLeader {
        /// The member this one believes leads, if it knows one.
        leader_hint: Option<u64>,
    },
    /// An empty payload cannot be told apart from raft's own no-op entries.
    #[error("empty metadata proposal")]
    EmptyProposal,
    /// The configuration or the log given to [`Quorum::new`] cannot start a member.
    #[error("invalid metadata quorum configuration: {0}")]
    Config(String),
    /// A message that this member does not take (wrong addressee, unknown sender, local type).
    #[error("raft message refused: {0}")]
    Refused(String),
    /// The log refused a change (cannot happen while raft-rs keeps its invariants).
    #[error("raft log: {0}")]
    Log(String),
    /// A message that does not encode or decode.
    #[error("raft message codec: {0}")]
    Codec(String),
}

impl From<raft::Error> for QuorumError {
    fn from(e: raft::Error) -> QuorumError {
        match e {
            raft::Error::ProposalDropped => QuorumError::NotLeader { leader_hint: None },
            raft::Error::ConfigInvalid(s) => QuorumError::Config(s),
            raft::Error::Store(s) => QuorumError::Log(s.to_string()),
            raft::Error::Io(e) => QuorumError::Log(e.to_string()),
            raft::Error::CodecError(e) => QuorumError::Codec(e.to_string()),
            e => QuorumError::Refused(e.to_string()),
        }
    }
}

/// How a member is set up (the voter set and its timing, in ticks).
#[derive(Clone, Debug)]
pub struct QuorumConfig {
    /// This member's id (non-zero; Kafka's `node.id`).
    pub id: u64,
    /// Every voter's id, this member's included.
    pub voters: Vec<u64>,
    /// Ticks without a leader before campaigning; the actual timeout is drawn from
    /// `election_tick..max_election_tick` after each reset.
    pub election_tick: usize,
    /// The upper end (exclusive) of the randomized election timeout; 0 = `2 * election_tick`.
    pub max_election_tick: usize,
    /// Ticks between the leader's heartbeats (less than `election_tick`).
    pub heartbeat_tick: usize,
    /// None: raft-rs draws each randomized election timeout from the thread's
    /// RNG. Some(seed): they are drawn from this seed instead, so a simulation
    /// replays exactly.
    pub timeout_seed: Option<u64>,
}

impl QuorumConfig {
    /// The default timing ([`DEFAULT_ELECTION_TICK`], [`DEFAULT_HEARTBEAT_TICK`]).
    pub fn new(id: u64, voters: Vec<u64>) -> QuorumConfig {
        QuorumConfig { id, voters, election_tick: DEFAULT_ELECTION_TICK, max_election_tick: 0, heartbeat_tick: DEFAULT_HEARTBEAT_TICK, timeout_seed: None }
    }
}

/// What must be durable before an output's messages are sent, in this order:
/// the snapshot (it replaces the log), the configuration, the entries (truncating
/// a conflicting suffix), the hard state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Persist {
    /// Entries to append; the first may replace existing ones from its index on.
    pub entries: Vec<Entry>,
    /// The new hard state (term, vote, commit), when it changed.
    pub hard_state: Option<HardState>,
    /// The configuration, when it changed (a fresh member's initial voter set).
    pub conf_state: Option<ConfState>,
    /// A snapshot from the leader: it replaces the whole log, and the state
    /// machine restarts from its data.
    pub snapshot: Option<Snapshot>,
}

impl Persist {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.hard_state.is_none() && self.conf_state.is_none() && self.snapshot.is_none()
    }
}

/// A committed proposal, to apply in index order.
#[derive(Clone, Debug, PartialEq)]
pub struct Committed {
    /// Its index in the Raft log.
    pub index: u64,
    /// The term of the leader that appended it.
    pub term: u64,
    /// The id its proposer gave [`Quorum::propose`] (matches an entry to its proposer).
    pub proposal_id: Option<u64>,
    /// The proposed bytes.
    pub payload: Vec<u8>,
}

/// One round of work for the driver (see the module doc for the order).
#[derive(Debug, Default)]
pub struct Output {
    /// What to make durable first.
    pub persist: Persist,
    /// Messages to send once `persist` is durable.
    pub messages: Vec<Message>,
    /// Proposals now committed, to apply after `persist` (after restoring
    /// `persist.snapshot`'s data, if there is one). Raft's own entries (a new
    /// leader's empty entry, configuration changes) are left out.
    pub committed: Vec<Committed>,
}

/// One voter as the leader sees it (Kafka's DescribeQuorum `ReplicaState`).
#[derive(Clone, Debug, PartialEq)]
pub struct VoterStatus {
    /// The voter's id.
    pub id: u64,
    /// The last index known to be in its log (the leader's match index); None on a follower.
    pub log_end_offset: Option<u64>,
    /// Ticks since the leader last heard from it (0 for the leader itself); None
    /// when not known (never heard from, or this member does not lead).
    pub last_caught_up_ticks: Option<u64>,
}

/// The quorum as this member sees it (for DescribeQuorum).
#[derive(Clone, Debug, PartialEq)]
pub struct QuorumStatus {
    /// The leader this member knows, if any.
    pub leader: Option<u64>,
    /// The current term (Kafka's leader epoch of the metadata log).
    pub term: u64,
    /// The commit index.
    pub high_watermark: u64,
    /// Every voter, by id.
    pub voters: Vec<VoterStatus>,
}

/// A member of the metadata quorum (see the module doc).
pub struct Quorum {
    node: RawNode<MemoryLog>,
    id: u64,
    voters: Vec<u64>,
    /// The hard state the last output asked to persist (or the log's at start).
    persisted_hs: HardState,
    /// A fresh member's initial configuration, persisted with the first output.
    pending_conf: Option<ConfState>,
    ticks: u64,
    last_heard: BTreeMap<u64, u64>,
    bytes_since_snapshot: u64,
    election_tick: u64,
    /// Leader: ticks each follower has been waiting for a snapshot.
    snapshot_wait: BTreeMap<u64, u64>,
    /// State of the generator of election timeouts ([`QuorumConfig::timeout_seed`]).
    timeout_rng: Option<u64>,
    /// raft-rs's randomized election timeout range, `lo..hi` ticks.
    election_range: (usize, usize),
}

impl Quorum {
    /// Starts a member from its log (from [`wal::Wal::open`], or empty for a new
    /// one, which then takes `config.voters` as its configuration). `applied` is
    /// the index the state machine's image is at: the log's snapshot index when
    /// the image was restored from the snapshot's data (0 = the snapshot's index);
    /// committed entries after it come out of [`Quorum::ready`] again.
    pub fn new(config: &QuorumConfig, mut log: MemoryLog, applied: u64) -> Result<Quorum, QuorumError> {
        let mut voters = config.voters.clone();
        voters.sort_unstable();
        voters.dedup();
        if config.id == 0 || voters.contains(&0) || !voters.contains(&config.id) {
            return Err(QuorumError::Config(format!("member {} with voters {:?} (ids are non-zero; a member is a voter)", config.id, config.voters)));
        }
        let mut pending_conf = None;
        if log.conf_state().voters.is_empty() {
            let cs = ConfState { voters: voters.clone(), ..Default::default() };
            log.set_conf_state(cs.clone());
            pending_conf = Some(cs);
        } else {
            let mut have = log.conf_state().voters.clone();
            have.sort_unstable();
            if have != voters {
                return Err(QuorumError::Config(format!(
                    "the log's voters {have:?} differ from the configured {voters:?} (membership changes are not supported)"
                )));
            }
        }
        let hs = log.hard_state().clone();
        if hs.commit > log.last() {
            return Err(QuorumError::Config(format!("the log's commit index {} is past its last entry {}", hs.commit, log.last())));
        }
        let applied = if applied == 0 { log.snapshot_index() } else { applied };
        if applied < log.snapshot_index() || applied > hs.commit.max(log.snapshot_index()) {
            return Err(QuorumError::Config(format!(
                "applied index {applied} outside the snapshot index {} .. commit index {}",
                log.snapshot_index(),
                hs.commit
            )));
        }
        let cfg = raft::Config {
            id: config.id,
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            min_election_tick: config.election_tick,
            max_election_tick: if config.max_election_tick == 0 { 2 * config.election_tick } else { config.max_election_tick },
            applied,
            max_size_per_msg: MAX_APPEND_BYTES,
            max_inflight_msgs: MAX_INFLIGHT_APPENDS,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        let election_range = (cfg.min_election_tick(), cfg.max_election_tick());
        let node = RawNode::new(&cfg, log, &logger::raft_logger(config.id))?;
        let mut q = Quorum {
            node,
            id: config.id,
            voters,
            persisted_hs: hs,
            pending_conf,
            ticks: 0,
            last_heard: BTreeMap::new(),
            bytes_since_snapshot: 0,
            election_tick: config.election_tick as u64,
            snapshot_wait: BTreeMap::new(),
            timeout_rng: config.timeout_seed,
            election_range,
        };
        q.redraw_timeout();
        Ok(q)
    }

    /// One tick of the logical clock (every [`TICK_INTERVAL`]).
    ///
    /// raft-rs's leader sends a follower nothing else while a snapshot to it is
    /// outstanding, and learns of its arrival only from the follower's answer. A
    /// snapshot message can be lost (a dropped connection, the follower crashing
    /// before it persisted it), so after an election timeout without that answer
    /// the leader counts the snapshot as failed and probes the follower again.
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.node.tick();
        self.redraw_timeout();
        if !self.is_leader() {
            self.snapshot_wait.clear();
            return;
        }
        for &id in &self.voters {
            let waiting = id != self.id && self.node.raft.prs().get(id).is_some_and(|p| p.state == raft::ProgressState::Snapshot);
            if !waiting {
                self.snapshot_wait.remove(&id);
                continue;
            }
            let t = self.snapshot_wait.entry(id).or_insert(0);
            *t += 1;
            if *t >= self.election_tick {
                self.snapshot_wait.remove(&id);
                self.node.report_snapshot(id, raft::SnapshotStatus::Failure);
            }
        }
    }

    /// Tells the leader that a snapshot message to `to` could not be delivered
    /// (the driver saw its connection fail), so it probes `to` again now rather
    /// than after the timeout [`Quorum::tick`] applies.
    pub fn report_snapshot_failed(&mut self, to: u64) {
        self.snapshot_wait.remove(&to);
        self.node.report_snapshot(to, raft::SnapshotStatus::Failure);
    }

    /// Takes a message from a peer. Messages for another member, from a member
    /// that is not a voter, and local-only types (proposals included: they enter
    /// through [`Quorum::propose`] on the leader) are refused.
    pub fn step(&mut self, msg: Message) -> Result<(), QuorumError> {
        if msg.to != self.id {
            return Err(QuorumError::Refused(format!("message for {} reached {}", msg.to, self.id)));
        }
        if !self.voters.contains(&msg.from) || msg.from == self.id {
            return Err(QuorumError::Refused(format!("message from {}, not a peer", msg.from)));
        }
        let t = msg.get_msg_type();
        if matches!(
            t,
            MessageType::MsgHup
                | MessageType::MsgBeat
                | MessageType::MsgPropose
                | MessageType::MsgUnreachable
                | MessageType::MsgSnapStatus
                | MessageType::MsgCheckQuorum
        ) {
            return Err(QuorumError::Refused(format!("{t:?} is not taken from peers")));
        }
        self.last_heard.insert(msg.from, self.ticks);
        let res = self.node.step(msg);
        self.redraw_timeout();
        Ok(res?)
    }

    /// With [`QuorumConfig::timeout_seed`], replaces the election timeout raft-rs
    /// drew from the thread's RNG whenever its election clock restarted (a new
    /// term, a role change, word from the leader), with one from the seed.
    fn redraw_timeout(&mut self) {
        let Some(state) = self.timeout_rng.as_mut() else { return };
        let raft = &mut self.node.raft;
        if raft.election_elapsed != 0 {
            return;
        }
        // SplitMix64.
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let (lo, hi) = self.election_range;
        raft.set_randomized_election_timeout(lo + (z % (hi - lo) as u64) as usize);
    }

    /// Starts an election now (a test or an operator's leader move; elections
    /// otherwise start from ticks).
    pub fn campaign(&mut self) -> Result<(), QuorumError> {
        let res = self.node.campaign();
        self.redraw_timeout();
        Ok(res?)
    }

    /// Hands leadership to the most caught-up other voter (a leader that is
    /// about to stop: the quorum does not wait an election timeout for a new
    /// leader). raft-rs lets the transferee catch up, then tells it to campaign
    /// at once; proposals are refused meanwhile. Answers the transferee, or
    /// None when this member does not lead or has no other voter.
    pub fn transfer_leadership(&mut self) -> Option<u64> {
        if !self.is_leader() {
            return None;
        }
        let me = self.id;
        let to = self.voters.iter().copied().filter(|&v| v != me).max_by_key(|&v| self.node.raft.prs().get(v).map_or(0, |p| p.matched))?;
        self.node.transfer_leader(to);
        Some(to)
    }

    /// Appends `payload` to the log if this member leads; `proposal_id` comes back
    /// in [`Committed::proposal_id`] when it commits. A proposal may still be lost
    /// (a leader change before it commits): the proposer learns that when
    /// committed entries pass its proposal without it, or from a timeout.
    pub fn propose(&mut self, proposal_id: u64, payload: Vec<u8>) -> Result<(), QuorumError> {
        if payload.is_empty() {
            return Err(QuorumError::EmptyProposal);
        }
        if !self.is_leader() {
            return Err(QuorumError::NotLeader { leader_hint: self.leader_id() });
        }
        Ok(self.node.propose(proposal_id.to_be_bytes().to_vec(), payload)?)
    }

    /// Runs raft-rs's ready protocol through once (persist into the in-memory log,
    /// advance, the light ready, advance apply) and returns what the driver must
    /// do, in order (see the module doc), or None when there is nothing to do.
    pub fn ready(&mut self) -> Result<Option<Output>, QuorumError> {
        let mut out = Output { persist: Persist { conf_state: self.pending_conf.take(), ..Default::default() }, ..Default::default() };
        if self.node.has_ready() {
            let mut rd = self.node.ready();
            out.messages.extend(rd.take_messages());
            if !rd.snapshot().is_empty() {
                out.persist.snapshot = Some(rd.snapshot().clone());
                self.bytes_since_snapshot = 0;
            }
            let committed = rd.take_committed_entries();
            out.persist.entries = rd.take_entries();
            let hs = rd.hs().cloned();
            {
                let store = self.node.mut_store();
                if let Some(s) = &out.persist.snapshot {
                    store.apply_snapshot(s.clone())?;
                }
                store.append(&out.persist.entries)?;
                if let Some(hs) = hs {
                    store.set_hard_state(hs);
                }
            }
            out.messages.extend(rd.take_persisted_messages());
            self.collect(committed, &mut out.committed);
            let mut light = self.node.advance(rd);
            if let Some(commit) = light.commit_index() {
                self.node.mut_store().set_commit(commit);
            }
            out.messages.extend(light.take_messages());
            self.collect(light.take_committed_entries(), &mut out.committed);
            self.node.advance_apply();
        }
        let hs = self.node.store().hard_state();
        if *hs != self.persisted_hs {
            self.persisted_hs = hs.clone();
            out.persist.hard_state = Some(hs.clone());
        }
        if out.persist.is_empty() && out.messages.is_empty() && out.committed.is_empty() {
            return Ok(None);
        }
        Ok(Some(out))
    }

    fn collect(&mut self, entries: Vec<Entry>, out: &mut Vec<Committed>) {
        for e in entries {
            if e.get_entry_type() != EntryType::EntryNormal {
                tracing::warn!(index = e.index, "skipping a configuration change entry (the voter set is fixed)");
                continue;
            }
            if e.data.is_empty() {
                continue;
            }
            let proposal_id = <[u8; 8]>::try_from(&e.context[..]).ok().map(u64::from_be_bytes);
            self.bytes_since_snapshot += e.data.len() as u64;
            out.push(Committed { index: e.index, term: e.term, proposal_id, payload: e.data.to_vec() });
        }
    }

    /// This member's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The leader this member knows, if any.
    pub fn leader_id(&self) -> Option<u64> {
        Some(self.node.raft.leader_id).filter(|&l| l != raft::INVALID_ID)
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    /// Whether this member leads.
    pub fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    /// The commit index (Kafka's high watermark of the metadata log).
    pub fn commit_index(&self) -> u64 {
        self.node.raft.raft_log.committed
    }

    /// The index of the last entry handed out in [`Output::committed`] (or skipped as raft's own).
    pub fn applied_index(&self) -> u64 {
        self.node.raft.raft_log.applied
    }

    /// Whether this member leads and its state machine has every entry up to the
    /// first one of its own term: only then is its image up to date, so a new
    /// leader waits for this before it validates and proposes changes.
    pub fn leader_ready(&self) -> bool {
        // Terms in a log never decrease and a leader only appends in its own term,
        // so the applied entry is of this term exactly when it is at or past the
        // term's first entry.
        self.is_leader() && self.node.raft.raft_log.term(self.applied_index()).ok() == Some(self.term())
    }

    /// The quorum as this member sees it; only the leader knows the voters' progress.
    pub fn status(&self) -> QuorumStatus {
        let leading = self.is_leader();
        let voters = self
            .voters
            .iter()
            .map(|&id| {
                let matched = if leading { self.node.raft.prs().get(id).map(|p| p.matched) } else { None };
                let heard = if !leading {
                    None
                } else if id == self.id {
                    Some(0)
                } else {
                    self.last_heard.get(&id).map(|&t| self.ticks - t)
                };
                VoterStatus { id, log_end_offset: matched, last_caught_up_ticks: heard }
            })
            .collect();
        QuorumStatus { leader: self.leader_id(), term: self.term(), high_watermark: self.commit_index(), voters }
    }

    /// Whether at least `bytes_threshold` payload bytes were applied since the last
    /// snapshot (`metadata.log.max.record.bytes.between.snapshots`).
    pub fn snapshot_due(&self, bytes_threshold: u64) -> bool {
        self.bytes_since_snapshot >= bytes_threshold && self.applied_index() > self.node.store().snapshot_index()
    }

    /// Makes a snapshot at `applied_index` (at most [`Quorum::applied_index`]) with
    /// `data` as the state machine's image there, drops the entries it covers, and
    /// returns it for [`wal::Wal::checkpoint`]. Followers too far behind get it.
    pub fn compact(&mut self, applied_index: u64, data: Vec<u8>) -> Result<Snapshot, QuorumError> {
        if applied_index > self.applied_index() {
            return Err(QuorumError::Log(format!("snapshot at {applied_index} past the applied index {}", self.applied_index())));
        }
        self.node.mut_store().compact(applied_index, data)?;
        self.bytes_since_snapshot = 0;
        Ok(self.node.store().snapshot_ref().clone())
    }

    /// The in-memory log (what raft-rs reads).
    pub fn log(&self) -> &MemoryLog {
        self.node.store()
    }
}

/// Encodes a message for a peer (protobuf); refuses one over [`MAX_MESSAGE_BYTES`].
pub fn encode_message(msg: &Message) -> Result<Vec<u8>, QuorumError> {
    let size = msg.compute_size() as usize;
    if size > MAX_MESSAGE_BYTES {
        return Err(QuorumError::Codec(format!("raft message of {size} bytes, over {MAX_MESSAGE_BYTES}")));
    }
    msg.write_to_bytes().map_err(|e| QuorumError::Codec(e.to_string()))
}

/// Decodes a peer's message. Bounded: a frame over [`MAX_MESSAGE_BYTES`] is
/// refused before parsing, and so is any protobuf group (raft's schema has none;
/// protobuf 2.28 skips unknown groups by unbounded recursion, RUSTSEC-2024-0437).
pub fn decode_message(bytes: &[u8]) -> Result<Message, QuorumError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(QuorumError::Codec(format!("raft message of {} bytes, over {MAX_MESSAGE_BYTES}", bytes.len())));
    }
    wire::check(bytes, wire::Schema::Message).map_err(QuorumError::Codec)?;
    Message::parse_from_bytes(bytes).map_err(|e| QuorumError::Codec(e.to_string()))
}

/// A walk over protobuf's wire format that refuses groups at every level of
/// raft's messages (see [`decode_message`]).
mod wire {
    /// The messages of `eraftpb.proto` that hold other messages, and the leaves.
    #[derive(Clone, Copy)]
    pub enum Schema {
        Message,
        Snapshot,
        SnapshotMetadata,
        Leaf,
    }

    fn nested(schema: Schema, field: u64) -> Option<Schema> {
        match (schema, field) {
            (Schema::Message, 7) => Some(Schema::Leaf), // entries: Entry holds no messages
            (Schema::Message, 9) => Some(Schema::Snapshot),
            (Schema::Snapshot, 2) => Some(Schema::SnapshotMetadata),
            (Schema::SnapshotMetadata, 1) => Some(Schema::Leaf), // conf_state
            _ => None,
        }
    }

    fn varint(buf: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let (&b, rest) = buf.split_first().ok_or("truncated varint")?;
            *buf = rest;
            v |= u64::from(b & 0x7f) << shift.min(63);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint over 10 bytes".into())
    }

    fn skip(buf: &mut &[u8], n: u64) -> Result<(), String> {
        let n = usize::try_from(n).map_err(|_| "length overflow")?;
        if n > buf.len() {
            return Err(format!("field of {n} bytes with {} left", buf.len()));
        }
        *buf = &buf[n..];
        Ok(())
    }

    /// Checks that `buf` is well-formed wire data for `schema` without groups.
    pub fn check(mut buf: &[u8], schema: Schema) -> Result<(), String> {
        while !buf.is_empty() {
            let tag = varint(&mut buf)?;
            let field = tag >> 3;
            if field == 0 {
                return Err("field number 0".into());
            }
            match tag & 7 {
                0 => {
                    varint(&mut buf)?;
                }
                1 => skip(&mut buf, 8)?,
                5 => skip(&mut buf, 4)?,
                2 => {
                    let len = varint(&mut buf)?;
                    let body = buf;
                    skip(&mut buf, len)?;
                    if let Some(inner) = nested(schema, field) {
                        check(&body[..body.len() - buf.len()], inner)?;
                    }
                }
                w => return Err(format!("wire type {w} (groups are refused)")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drive(qs: &mut [Quorum]) -> Vec<Committed> {
        let mut applied = Vec::new();
        loop {
            let mut msgs = Vec::new();
            for q in qs.iter_mut() {
                while let Some(out) = q.ready().unwrap() {
                    msgs.extend(out.messages);
                    if q.id() == 1 {
                        applied.extend(out.committed);
                    }
                }
            }
            if msgs.is_empty() {
                return applied;
            }
            for m in msgs {
                let m = decode_message(&encode_message(&m).unwrap()).unwrap();
                let to = m.to as usize - 1;
                qs[to].step(m).unwrap();
            }
        }
    }

    fn three() -> Vec<Quorum> {
        (1..=3).map(|id| Quorum::new(&QuorumConfig::new(id, vec![1, 2, 3]), MemoryLog::new(), 0).unwrap()).collect()
    }

    #[test]
    fn a_campaign_elects_a_leader_whose_proposals_commit_everywhere() {
        let mut qs = three();
        let first = qs[0].ready().unwrap().unwrap();
        assert_eq!(first.persist.conf_state.unwrap().voters, [1, 2, 3], "a fresh member persists its voter set");
        assert!(matches!(qs[1].propose(1, b"x".to_vec()), Err(QuorumError::NotLeader { leader_hint: None })));
        qs[0].campaign().unwrap();
        drive(&mut qs);
        assert!(qs[0].is_leader());
        assert_eq!(qs[1].leader_id(), Some(1));
        assert!(qs[0].leader_ready(), "the leader applied its term's first entry");
        assert!(matches!(qs[2].propose(1, b"x".to_vec()), Err(QuorumError::NotLeader { leader_hint: Some(1) })));
        assert!(matches!(qs[0].propose(1, Vec::new()), Err(QuorumError::EmptyProposal)));
        qs[0].propose(42, b"hello".to_vec()).unwrap();
        qs[0].propose(43, b"world".to_vec()).unwrap();
        let applied = drive(&mut qs);
        assert_eq!(applied.iter().map(|c| (c.proposal_id, c.payload.as_slice())).collect::<Vec<_>>(), [(Some(42), &b"hello"[..]), (Some(43), &b"world"[..])]);
        let st = qs[0].status();
        assert_eq!((st.leader, st.term, st.high_watermark), (Some(1), qs[0].term(), qs[0].commit_index()));
        assert!(st.voters.iter().all(|v| v.log_end_offset == Some(st.high_watermark) && v.last_caught_up_ticks == Some(0)), "{st:?}");
        assert!(qs[1].status().voters.iter().all(|v| v.log_end_offset.is_none()));
        assert_eq!(qs[2].commit_index(), qs[0].commit_index());
        assert!(qs[0].snapshot_due(10) && !qs[0].snapshot_due(11));
        let applied = qs[0].applied_index();
        let snap = qs[0].compact(applied, b"image".to_vec()).unwrap();
        assert_eq!(snap.get_metadata().index, applied);
        assert!(!qs[0].snapshot_due(1));
        assert!(qs[0].compact(applied + 1, Vec::new()).is_err());
    }

    #[test]
    fn a_restarted_member_keeps_its_term_and_vote_and_reapplies_after_its_snapshot() {
        let mut qs = three();
        qs[1].campaign().unwrap();
        drive(&mut qs);
        qs[1].propose(1, b"a".to_vec()).unwrap();
        drive(&mut qs);
        let log = qs[2].log().clone();
        let hs = log.hard_state().clone();
        assert_eq!(hs.vote, 2);
        let again = Quorum::new(&QuorumConfig::new(3, vec![1, 2, 3]), log.clone(), 0).unwrap();
        assert_eq!(again.term(), hs.term);
        assert!(Quorum::new(&QuorumConfig::new(3, vec![1, 2, 3, 4]), log.clone(), 0).is_err(), "other voters");
        assert!(Quorum::new(&QuorumConfig::new(3, vec![1, 2, 3]), log.clone(), hs.commit + 1).is_err(), "applied past commit");
        assert!(Quorum::new(&QuorumConfig::new(5, vec![1, 2, 3]), MemoryLog::new(), 0).is_err(), "not a voter");
        let mut again = again;
        let out = again.ready().unwrap().unwrap();
        assert_eq!(out.committed.iter().map(|c| c.payload.as_slice()).collect::<Vec<_>>(), [b"a"], "committed entries after the image come again");
    }

    #[test]
    fn steps_from_strangers_local_types_and_misaddressed_messages_are_refused() {
        let mut qs = three();
        let m = |t: MessageType, from: u64, to: u64| Message { msg_type: t, from, to, ..Default::default() };
        assert!(matches!(qs[0].step(m(MessageType::MsgHeartbeat, 9, 1)), Err(QuorumError::Refused(_))));
        assert!(matches!(qs[0].step(m(MessageType::MsgHeartbeat, 2, 3)), Err(QuorumError::Refused(_))));
        assert!(matches!(qs[0].step(m(MessageType::MsgPropose, 2, 1)), Err(QuorumError::Refused(_))));
        assert!(matches!(qs[0].step(m(MessageType::MsgHup, 2, 1)), Err(QuorumError::Refused(_))));
    }

    #[test]
    fn the_codec_round_trips_and_refuses_groups_truncation_and_oversize() {
        let mut msg = Message { msg_type: MessageType::MsgAppend, from: 1, to: 2, term: 3, index: 4, ..Default::default() };
        msg.mut_entries().push(Entry { index: 5, term: 3, data: b"d".to_vec().into(), context: 7u64.to_be_bytes().to_vec().into(), ..Default::default() });
        msg.mut_snapshot().mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        let bytes = encode_message(&msg).unwrap();
        assert_eq!(decode_message(&bytes).unwrap(), msg);
        assert!(decode_message(&bytes[..bytes.len() - 1]).is_err());
        // A start-group tag (field 20, wire type 3) at the top and nested in an entry.
        let mut top = bytes.clone();
        top.extend_from_slice(&[(20 << 3 | 3) as u8, 1]);
        assert!(matches!(decode_message(&top), Err(QuorumError::Codec(_))));
        let group = [0x9b_u8, 0x01]; // field 19, wire type 3 (two-byte tag)
        let mut nested = vec![(7 << 3 | 2) as u8, group.len() as u8];
        nested.extend_from_slice(&group);
        assert!(matches!(decode_message(&nested), Err(QuorumError::Codec(_))));
        // Deep group nesting (the RUSTSEC-2024-0437 shape) is refused without recursion.
        let deep = vec![(20 << 3 | 3) as u8; 1 << 20];
        assert!(matches!(decode_message(&deep), Err(QuorumError::Codec(_))));
        assert!(decode_message(&vec![0u8; MAX_MESSAGE_BYTES + 1]).is_err());
        let mut huge = Message::default();
        huge.mut_snapshot().data = vec![0u8; MAX_MESSAGE_BYTES].into();
        assert!(encode_message(&huge).is_err());
    }
}
