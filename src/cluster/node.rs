//! A cluster node's metadata quorum member, on the controller shard (shard 0).
//!
//! Three tasks share it, each owning one job, so none waits for another's I/O:
//! - the **Raft loop** ticks the quorum every [`TICK`], steps inbound messages,
//!   and for each Raft `Ready` makes the log durable (the WAL's write and
//!   fdatasync through the shard's io_uring) *before* sending any message, then
//!   queues the committed entries for the applier;
//! - the **applier** applies committed entries in order to a copy of the image,
//!   installs and publishes it on every shard (this node's broker serves from
//!   it), resolves the proposal that made it, and asks for a snapshot of the
//!   image every `metadata.log.max.record.bytes.between.snapshots` bytes;
//! - the **controller listener** (`transport`) feeds Raft messages and calls in.
//!
//! Every node applies the same committed entries in the same order, so every
//! image at a given offset is the same; a node's image `version` is the Raft
//! index of the last entry it applied (its metadata offset).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::LocalBoxFuture;

use super::controller::BrokerSessions;
use super::quorum::wal::Wal;
use super::quorum::{decode_message, encode_message, Output, Quorum};
use super::rpc::{ControllerRequest, ControllerResponse};
use super::transport::{Inbound, RaftPeers, RpcClient};
use crate::error::{Error, Result};
use crate::metadata::{MetadataImage, MetadataRecord};
use crate::shard::links::{MetadataQuorum, QuorumDescription, QuorumReplica};
use crate::shard::request::{ControllerOp, ControllerReply};
use crate::shard::Shard;
use crate::sync::Notify;

/// The Raft tick: election and heartbeat timeouts are counted in these.
pub const TICK: Duration = Duration::from_millis(100);
/// Inbound Raft messages held before the loop steps them; more are dropped.
const INBOX_MAX: usize = 4096;
/// How long a proposal may wait to be committed and applied here.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a forwarded change may take, retries included.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

/// A committed entry or snapshot waiting for the applier.
pub(super) enum Apply {
    Entry { index: u64, proposal_id: Option<u64>, payload: Vec<u8> },
    Snapshot { index: u64, data: Vec<u8> },
}

/// The image as a snapshot holds it.
#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotData {
    records: Vec<MetadataRecord>,
}

/// This node's part in the cluster's metadata (see the module doc): a quorum
/// member on a controller, an observer of the controller's log on a
/// broker-only node (`process.roles=broker`, [`super::observer`]).
pub struct ClusterNode {
    pub(super) shard: Rc<Shard>,
    pub(super) node_id: i32,
    cluster_id: String,
    /// Voters' node ids and controller addresses.
    voters: Vec<(i32, SocketAddr)>,
    /// The Raft member: Some on a controller (a voter), None on a broker-only node.
    member: Option<Member>,
    pub(super) rpc: RpcClient,
    /// The controller that last answered a call (a broker-only node knows no leader).
    last_controller: Cell<Option<SocketAddr>>,
    waiters: RefCell<HashMap<u64, oneshot::Sender<Result<()>>>>,
    applies: RefCell<VecDeque<Apply>>,
    apply_wake: Notify,
    applied: Cell<u64>,
    pub(super) applied_changed: Notify,
    stopping: Rc<Cell<bool>>,
    pub(super) sessions: BrokerSessions,
    /// This broker's controlled shutdown ([`super::shutdown`]).
    pub(super) shutdown: super::shutdown::ShutdownState,
    /// Wakes the heartbeat loop before its interval (a controlled shutdown starts).
    pub(super) wake_heartbeat: Notify,
}

/// The Raft parts of a controller: the quorum member, its WAL, its peers.
struct Member {
    quorum: RefCell<Quorum>,
    wal: RefCell<Option<Wal>>,
    inbox: RefCell<VecDeque<Vec<u8>>>,
    wake: Notify,
    peers: RaftPeers,
    pending_snapshot: RefCell<Option<(u64, Vec<u8>)>>,
    bytes_since_snapshot: Cell<u64>,
}

/// What start-up hands a controller's node: the opened WAL, the quorum over
/// its log, and the bound controller listener.
pub struct NodeStart {
    /// The WAL, open for appends.
    pub wal: Wal,
    /// The quorum member over the WAL's log.
    pub quorum: Quorum,
    /// The controller listener, bound.
    pub listener: glommio::net::TcpListener,
}

impl ClusterNode {
    /// Starts the node's tasks on the controller shard. A controller (`voter`
    /// given): the Raft loop, the applier, the controller listener and the
    /// active controller's session checks. A broker-only node: the fetcher of
    /// the controller's committed log ([`super::observer`]). A broker, either
    /// way: its registration and heartbeats. `applied` is the metadata offset
    /// the shard's start-up image holds.
    pub fn start(shard: Rc<Shard>, cluster_id: String, applied: u64, voter: Option<NodeStart>) -> Rc<ClusterNode> {
        let cfg = shard.cfg.clone();
        let voters: Vec<(i32, SocketAddr)> = cfg.controller_quorum_voters.iter().filter_map(|v| Some((v.id, resolve(&v.host, v.port)?))).collect();
        let stopping = Rc::new(Cell::new(false));
        let others: Vec<(u64, SocketAddr)> = voters.iter().filter(|(id, _)| *id != cfg.broker_id).map(|&(id, a)| (super::raft_id(id), a)).collect();
        let (member, listener) = match voter {
            Some(v) => {
                let member = Member {
                    quorum: RefCell::new(v.quorum),
                    wal: RefCell::new(Some(v.wal)),
                    inbox: RefCell::new(VecDeque::new()),
                    wake: Notify::default(),
                    peers: RaftPeers::start(cluster_id.clone(), cfg.broker_id, others, stopping.clone()),
                    pending_snapshot: RefCell::new(None),
                    bytes_since_snapshot: Cell::new(0),
                };
                (Some(member), Some(v.listener))
            }
            None => (None, None),
        };
        let node = Rc::new(ClusterNode {
            node_id: cfg.broker_id,
            member,
            rpc: RpcClient::new(cluster_id.clone(), cfg.broker_id),
            last_controller: Cell::new(None),
            cluster_id,
            voters,
            waiters: RefCell::new(HashMap::new()),
            applies: RefCell::new(VecDeque::new()),
            apply_wake: Notify::default(),
            applied: Cell::new(applied),
            applied_changed: Notify::default(),
            stopping,
            sessions: BrokerSessions::default(),
            shutdown: Default::default(),
            wake_heartbeat: Notify::default(),
            shard,
        });
        let weak: std::rc::Weak<dyn MetadataQuorum> = Rc::downgrade(&(node.clone() as Rc<dyn MetadataQuorum>));
        node.shard.set_quorum(weak);
        match listener {
            Some(listener) => {
                glommio::spawn_local(node.clone().raft_loop()).detach();
                glommio::spawn_local(node.clone().apply_loop()).detach();
                glommio::spawn_local(super::transport::serve(listener, node.clone())).detach();
                glommio::spawn_local(node.clone().session_loop()).detach();
            }
            None => {
                glommio::spawn_local(node.clone().fetch_loop()).detach();
            }
        }
        if cfg.process_roles.broker {
            glommio::spawn_local(node.clone().broker_loop()).detach();
        }
        node
    }

    /// The metadata offset this node has applied.
    pub fn applied(&self) -> u64 {
        self.applied.get()
    }

    /// The quorum leader's node id, if known.
    /// None on a broker-only node (it runs no quorum member).
    pub fn leader(&self) -> Option<i32> {
        self.member.as_ref().and_then(|m| m.quorum.borrow().leader_id()).map(super::node_id)
    }

    /// The quorum's state for DescribeQuorum; None on a broker-only node.
    pub fn status(&self) -> Option<super::quorum::QuorumStatus> {
        self.member.as_ref().map(|m| m.quorum.borrow().status())
    }

    /// Asks the quorum to hand this member's leadership to another voter
    /// ([`super::quorum::Quorum::transfer_leadership`]); the transferee's Raft id.
    pub(super) fn transfer_quorum_leadership(&self) -> Option<u64> {
        let m = self.member.as_ref()?;
        let to = m.quorum.borrow_mut().transfer_leadership();
        m.wake.notify_all();
        to
    }

    /// Runs `f` on the quorum member's log (a controller's); None on a broker-only node.
    pub(super) fn with_log<R>(&self, f: impl FnOnce(&super::quorum::store::MemoryLog) -> R) -> Option<R> {
        self.member.as_ref().map(|m| f(m.quorum.borrow().log()))
    }

    /// The controller address of voter `id`.
    pub(super) fn voter_addr(&self, id: i32) -> Option<SocketAddr> {
        self.voters.iter().find(|(v, _)| *v == id).map(|(_, a)| *a)
    }

    /// Every voter's controller address, the known leader first (or, where
    /// no leader is known, the controller that last answered).
    pub(super) fn controller_candidates(&self) -> Vec<SocketAddr> {
        let first = self.leader().and_then(|l| self.voter_addr(l)).or(self.last_controller.get());
        let mut out: Vec<SocketAddr> = first.into_iter().collect();
        out.extend(self.voters.iter().map(|(_, a)| *a).filter(|a| Some(*a) != first));
        out
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.stopping.get() || self.shard.stopping.get()
    }

    async fn raft_loop(self: Rc<Self>) {
        let Some(m) = self.member.as_ref() else { return };
        let mut next_tick = std::time::Instant::now() + TICK;
        let mut was_leader = false;
        while !self.is_stopping() {
            let woken = m.wake.wait();
            let now = std::time::Instant::now();
            if now >= next_tick {
                m.quorum.borrow_mut().tick();
                next_tick = now + TICK;
            }
            let inbox: Vec<Vec<u8>> = m.inbox.borrow_mut().drain(..).collect();
            for bytes in inbox {
                match decode_message(&bytes) {
                    Ok(msg) => {
                        let _ = m.quorum.borrow_mut().step(msg);
                    }
                    Err(e) => crate::warn_limited!("dropped an undecodable Raft message: {e}"),
                }
            }
            self.write_snapshot_if_asked(m).await;
            loop {
                let ready = m.quorum.borrow_mut().ready();
                let out = match ready {
                    Ok(Some(out)) => out,
                    Ok(None) => break,
                    Err(e) => {
                        crate::error_limited!("the metadata quorum failed a round: {e}");
                        break;
                    }
                };
                self.handle_ready(m, out).await;
            }
            let leader = m.quorum.borrow().is_leader();
            if was_leader && !leader {
                // Proposals in flight may or may not commit under the next leader:
                // their callers get NOT_CONTROLLER and retry.
                for (_, w) in self.waiters.borrow_mut().drain() {
                    let _ = w.send(Err(Error::NotController));
                }
            }
            was_leader = leader;
            let until = next_tick.saturating_duration_since(std::time::Instant::now());
            futures_lite::future::or(woken, glommio::timer::sleep(until)).await;
        }
    }

    /// Persist, then send, then queue the committed entries (Raft's order).
    async fn handle_ready(&self, m: &Member, out: Output) {
        let Some(mut wal) = m.wal.borrow_mut().take() else { return };
        wal.stage(&out.persist);
        let res = wal.sync(&self.shard.ring).await;
        *m.wal.borrow_mut() = Some(wal);
        if let Err(e) = res {
            // A vote or an entry that is not durable must never be acknowledged:
            // stop the process rather than go on with a log the disk does not hold.
            tracing::error!("writing the metadata log failed, stopping: {e}");
            std::process::exit(1);
        }
        for msg in &out.messages {
            match encode_message(msg) {
                Ok(bytes) => m.peers.send(msg.to, bytes),
                Err(e) => crate::error_limited!("encoding a Raft message failed: {e}"),
            }
        }
        let mut applies = self.applies.borrow_mut();
        if let Some(snap) = &out.persist.snapshot {
            let md = snap.get_metadata();
            applies.push_back(Apply::Snapshot { index: md.index, data: snap.data.to_vec() });
        }
        for c in out.committed {
            applies.push_back(Apply::Entry { index: c.index, proposal_id: c.proposal_id, payload: c.payload });
        }
        drop(applies);
        self.apply_wake.notify_all();
    }

    async fn write_snapshot_if_asked(&self, m: &Member) {
        let Some((index, data)) = m.pending_snapshot.borrow_mut().take() else { return };
        let snapshot = match m.quorum.borrow_mut().compact(index, data) {
            Ok(s) => s,
            Err(e) => {
                crate::warn_limited!("compacting the metadata log at {index} failed: {e}");
                return;
            }
        };
        let Some(mut wal) = m.wal.borrow_mut().take() else { return };
        let res = wal.checkpoint(&self.shard.ring, &snapshot).await;
        *m.wal.borrow_mut() = Some(wal);
        match res {
            Ok(()) => tracing::info!(index, "wrote a metadata snapshot"),
            // The entries are still in the log: the next snapshot tries again.
            Err(e) => crate::warn_limited!("writing a metadata snapshot at {index} failed: {e}"),
        }
    }

    async fn apply_loop(self: Rc<Self>) {
        while !self.is_stopping() {
            let woken = self.apply_wake.wait();
            loop {
                let next = self.applies.borrow_mut().pop_front();
                let Some(a) = next else { break };
                self.apply_one(a).await;
            }
            woken.await;
        }
    }

    /// Applies one committed entry or snapshot (in log order): a controller's
    /// applier and a broker-only node's fetcher both come here.
    pub(super) async fn apply_one(&self, a: Apply) {
        let index = match a {
            Apply::Snapshot { index, data } => {
                match image_from_snapshot(&self.shard.image().cluster_id, index, &data) {
                    Ok(img) => self.shard.install_image(img).await,
                    Err(e) => {
                        tracing::error!("a metadata snapshot at {index} does not decode, stopping: {e}");
                        std::process::exit(1);
                    }
                }
                if let Some(m) = &self.member {
                    m.bytes_since_snapshot.set(0);
                }
                index
            }
            Apply::Entry { index, proposal_id, payload } => {
                let result = if payload.is_empty() {
                    Ok(())
                } else {
                    let applied = apply_entry(&self.shard.image(), index, &payload);
                    match applied {
                        Ok(next) => {
                            self.shard.install_image(next).await;
                            Ok(())
                        }
                        Err(e) => {
                            // Every node refuses the same entry the same way: the
                            // images stay equal. The proposer learns why.
                            crate::error_limited!("metadata entry {index} refused: {e}");
                            Err(Error::InvalidRequest(format!("metadata change refused: {e}")))
                        }
                    }
                };
                if let Some(m) = &self.member {
                    m.bytes_since_snapshot.set(m.bytes_since_snapshot.get() + payload.len() as u64);
                }
                if let Some(w) = proposal_id.and_then(|id| self.waiters.borrow_mut().remove(&id)) {
                    let _ = w.send(result);
                }
                index
            }
        };
        self.applied.set(index);
        self.applied_changed.notify_all();
        let Some(m) = &self.member else { return };
        if m.bytes_since_snapshot.get() >= self.shard.cfg.metadata_log_max_record_bytes_between_snapshots {
            m.bytes_since_snapshot.set(0);
            match snapshot_data(&self.shard.image()) {
                Ok(data) => {
                    *m.pending_snapshot.borrow_mut() = Some((index, data));
                    m.wake.notify_all();
                }
                Err(e) => crate::warn_limited!("encoding a metadata snapshot failed: {e}"),
            }
        }
    }

    /// Waits until this node has applied `offset` (at most `within`).
    pub(super) async fn wait_applied(&self, offset: u64, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while self.applied.get() < offset {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            futures_lite::future::or(async { self.applied_changed.wait().await }, glommio::timer::sleep(left)).await;
        }
        true
    }

    /// Calls the active controller: the known leader first, then every voter,
    /// following NOT_CONTROLLER hints, until `within` runs out.
    pub(super) async fn call_controller(&self, req: &ControllerRequest, within: Duration) -> Result<ControllerResponse> {
        self.call_controller_on(&self.rpc, req, within).await
    }

    /// [`ClusterNode::call_controller`] on connections of `rpc`.
    pub(super) async fn call_controller_on(&self, rpc: &RpcClient, req: &ControllerRequest, within: Duration) -> Result<ControllerResponse> {
        let deadline = std::time::Instant::now() + within;
        let mut backoff = Duration::from_millis(50);
        let mut hint: Option<SocketAddr> = None;
        loop {
            let mut targets: Vec<SocketAddr> = hint.take().into_iter().collect();
            targets.extend(self.controller_candidates());
            for addr in targets {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                match rpc.call(addr, req, left.min(Duration::from_secs(5))).await {
                    Ok(ControllerResponse::NotController { leader }) => {
                        hint = leader.and_then(|l| self.voter_addr(l)).filter(|&a| a != addr);
                        if hint.is_some() {
                            break;
                        }
                    }
                    Ok(resp) => {
                        self.last_controller.set(Some(addr));
                        return Ok(resp);
                    }
                    Err(_) => {}
                }
            }
            if hint.is_some() {
                continue;
            }
            if std::time::Instant::now() >= deadline || self.is_stopping() {
                return Err(Error::NotController);
            }
            glommio::timer::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }
}

impl MetadataQuorum for ClusterNode {
    fn unregister_broker(&self, broker_id: i32) -> LocalBoxFuture<'_, Result<()>> {
        Box::pin(async move {
            match self.call_controller(&ControllerRequest::UnregisterBroker { broker_id }, FORWARD_TIMEOUT).await? {
                ControllerResponse::Unregistered { metadata_offset } => {
                    self.wait_applied(metadata_offset, Duration::from_secs(5)).await;
                    Ok(())
                }
                ControllerResponse::Error(e) => Err(e.into()),
                _ => Err(Error::NotController),
            }
        })
    }

    fn controlled_shutdown(&self) -> LocalBoxFuture<'_, ()> {
        Box::pin(ClusterNode::controlled_shutdown(self))
    }

    fn describe(&self) -> LocalBoxFuture<'_, Result<QuorumDescription>> {
        Box::pin(async move {
            if let Some(d) = self.member.as_ref().filter(|m| m.quorum.borrow().is_leader()).and_then(|_| self.local_description()) {
                return Ok(d);
            }
            match self.call_controller(&ControllerRequest::DescribeQuorum, Duration::from_secs(5)).await? {
                ControllerResponse::Quorum(d) => Ok(d),
                ControllerResponse::Error(e) => Err(e.into()),
                _ => Err(Error::NotController),
            }
        })
    }

    fn is_active(&self) -> bool {
        self.member.as_ref().is_some_and(|m| m.quorum.borrow().leader_ready())
    }

    fn propose(&self, records: Vec<MetadataRecord>) -> LocalBoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let payload = serde_json::to_vec(&records).map_err(|e| Error::Io(std::io::Error::other(e)))?;
            let id = uuid::Uuid::new_v4().as_u64_pair().0;
            let (tx, rx) = oneshot::channel();
            // A broker-only node proposes nothing: its changes are forwarded.
            let Some(m) = &self.member else { return Err(Error::NotController) };
            self.waiters.borrow_mut().insert(id, tx);
            if m.quorum.borrow_mut().propose(id, payload).is_err() {
                self.waiters.borrow_mut().remove(&id);
                return Err(Error::NotController);
            }
            m.wake.notify_all();
            match glommio::timer::timeout(COMMIT_TIMEOUT, async { Ok(rx.await) }).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(Error::NotController),
                Err(_) => {
                    self.waiters.borrow_mut().remove(&id);
                    Err(Error::RequestTimedOut(format!("the metadata change was not committed within {COMMIT_TIMEOUT:?}")))
                }
            }
        })
    }

    fn forward(&self, op: ControllerOp) -> LocalBoxFuture<'_, Result<ControllerReply>> {
        Box::pin(async move {
            let req = ControllerRequest::Forward(op);
            match self.call_controller(&req, FORWARD_TIMEOUT).await? {
                ControllerResponse::Forwarded { reply, metadata_offset } => {
                    // Answer once this node serves what the controller committed.
                    if !self.wait_applied(metadata_offset, Duration::from_secs(5)).await {
                        crate::warn_limited!(metadata_offset, applied = self.applied.get(), "answering a forwarded change before applying it here");
                    }
                    Ok(reply)
                }
                ControllerResponse::Error(e) => Err(e.into()),
                _ => Err(Error::NotController),
            }
        })
    }
}

impl ClusterNode {
    /// The quorum as this node sees it; the leader knows every voter's
    /// progress. None on a broker-only node.
    pub(super) fn local_description(&self) -> Option<QuorumDescription> {
        let st = self.status()?;
        let now_ms = self.shard.cfg.clock.now_ms();
        let tick_ms = TICK.as_millis() as i64;
        Some(QuorumDescription {
            leader_id: st.leader.map_or(-1, super::node_id),
            leader_epoch: st.term as i32,
            high_watermark: st.high_watermark as i64,
            voters: st
                .voters
                .iter()
                .map(|v| QuorumReplica {
                    replica_id: super::node_id(v.id),
                    log_end_offset: v.log_end_offset.map_or(-1, |o| o as i64),
                    last_fetch_timestamp: v.last_caught_up_ticks.map_or(-1, |t| now_ms - t as i64 * tick_ms),
                })
                .collect(),
        })
    }
}

impl Inbound for ClusterNode {
    fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    fn raft_message(&self, bytes: Vec<u8>) {
        // Only a controller listens; a broker-only node has no inbox.
        let Some(m) = &self.member else { return };
        let mut inbox = m.inbox.borrow_mut();
        if inbox.len() < INBOX_MAX {
            inbox.push_back(bytes);
        }
        drop(inbox);
        m.wake.notify_all();
    }

    fn call(self: Rc<Self>, req: ControllerRequest) -> LocalBoxFuture<'static, ControllerResponse> {
        Box::pin(async move { self.handle_call(req).await })
    }

    fn stopping(&self) -> bool {
        self.is_stopping()
    }
}

/// Applies one committed entry's records to a copy of `image`; the copy's
/// version becomes the entry's index.
pub fn apply_entry(image: &MetadataImage, index: u64, payload: &[u8]) -> std::result::Result<MetadataImage, String> {
    let records: Vec<MetadataRecord> = serde_json::from_slice(payload).map_err(|e| format!("undecodable entry: {e}"))?;
    let mut next = image.clone();
    for r in &records {
        next.apply(r)?;
    }
    next.version = index;
    Ok(next)
}

/// The image a snapshot holds, at `index`.
pub fn image_from_snapshot(cluster_id: &str, index: u64, data: &[u8]) -> std::result::Result<MetadataImage, String> {
    let snap: SnapshotData = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    let mut img = MetadataImage::empty(cluster_id.to_string());
    for r in &snap.records {
        img.apply(r)?;
    }
    img.version = index;
    Ok(img)
}

fn snapshot_data(image: &Arc<MetadataImage>) -> std::result::Result<Vec<u8>, String> {
    serde_json::to_vec(&SnapshotData { records: image.to_records() }).map_err(|e| e.to_string())
}

fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    (host, port).to_socket_addrs().ok()?.next()
}
