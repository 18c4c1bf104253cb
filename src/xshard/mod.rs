//! Cross-shard calls: the ONLY code that touches glommio channels.
//!
//! Every pair of shards has one bounded SPSC channel per direction
//! (`xshard.channel.capacity`); a full channel makes the sender wait
//! (backpressure), never grows. A [`Request`] goes to a core's partition owner
//! ([`Shard::handle`]) or to its coordinators ([`Coordinators`]); a call to the
//! local core skips the channel. Replies travel on a one-shot channel carried
//! inside the request envelope. `xshard` also implements the interfaces through
//! which the layers below reach other cores ([`Peers`], [`Outbound`]), and owns
//! the one through which it reaches other brokers ([`RemoteBrokers`], implemented
//! by `cluster/` above it).
//!
//! The receiver starts each request as its own task (a long-poll must not block the
//! channel), so the bound on work in flight sits with the sender: a shard has at most
//! `xshard.inflight.max` requests running on each other shard, and a caller beyond that
//! waits for a permit (backpressure to the connection that asked). Requests a shard sends
//! while serving another one ([`is_nested`]: transaction markers, producer-id blocks,
//! the controller's metadata pushes) draw on
//! a second budget of the same size: they never call onward, so they always finish, and a
//! shard whose first budget is spent on requests waiting for nested calls cannot deadlock.

pub mod fan_out;

use std::cell::OnceCell;
use std::rc::{Rc, Weak};

use futures::channel::oneshot;
use glommio::channels::shared_channel::{self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender};
use glommio::sync::Semaphore;

use std::sync::Arc;

use futures::future::LocalBoxFuture;

use crate::coordinator::txn::{TxnRequest, TxnResponse};
use crate::coordinator::{Coordinators, GroupRequest, GroupResponse, Outbound};
use crate::error::{Error, Result};
use crate::metadata::{MetadataImage, Route, ShardPlacement};
use crate::shard::links::Peers;
use crate::shard::request::{ControllerOp, ShardRequest, ShardResponse, TxnMarker};
use crate::shard::{Shard, CONTROLLER_SHARD};

/// What one core asks another: its partition owner, or its coordinators.
pub enum Request {
    /// For the partitions (or, on the controller, the metadata) the shard owns.
    Shard(ShardRequest),
    /// For a group the core coordinates. Boxed: group requests carry whole
    /// JoinGroup/SyncGroup requests, and every cross-core message would
    /// otherwise be as large as the largest of them.
    Group(Box<GroupRequest>),
    /// For a transactional id the core coordinates (or, for List, every one it does).
    Txn(TxnRequest),
}

/// The answer to each [`Request`], same variant.
pub enum Response {
    /// From the partition owner.
    Shard(ShardResponse),
    /// From the group coordinator.
    Group(GroupResponse),
    /// From the transaction coordinator.
    Txn(TxnResponse),
}

/// A request on its way to another core, with the way back.
pub struct Envelope {
    req: Request,
    reply: oneshot::Sender<Response>,
}

/// Channel ends one shard receives at start-up (`Send`, connected on the shard).
pub struct Endpoints {
    senders: Vec<Option<SharedSender<Envelope>>>,
    receivers: Vec<SharedReceiver<Envelope>>,
}

/// Builds the full mesh for `n` shards; element i goes to shard i.
pub fn mesh(n: usize, capacity: usize) -> Vec<Endpoints> {
    let mut eps: Vec<Endpoints> = (0..n).map(|_| Endpoints { senders: (0..n).map(|_| None).collect(), receivers: Vec::new() }).collect();
    for from in 0..n {
        for to in 0..n {
            if from != to {
                let (tx, rx) = shared_channel::new_bounded(capacity);
                eps[from].senders[to] = Some(tx);
                eps[to].receivers.push(rx);
            }
        }
    }
    eps
}

/// The way to the other brokers of a cluster, for what this core must have done
/// on partitions they lead: transaction markers (Kafka's inter-broker
/// WriteTxnMarkers). Implemented in `cluster/` (a per-core client), held weakly
/// by each core's [`XShard`]; a single broker has none.
pub trait RemoteBrokers {
    /// Writes `markers` (every one for a partition broker `broker` leads) on that
    /// broker, in one request; one result per marker, in order.
    fn write_txn_markers(&self, broker: i32, markers: Vec<TxnMarker>) -> LocalBoxFuture<'_, Vec<Result<()>>>;
}

/// A core's handle for calling any core.
pub struct XShard {
    /// This core's partition owner.
    pub shard: Rc<Shard>,
    /// This core's coordinators.
    pub coordinators: Rc<Coordinators>,
    senders: Vec<Option<ConnectedSender<Envelope>>>,
    /// Per destination shard: permits for requests from clients, and for nested requests.
    inflight: Vec<(Rc<Semaphore>, Rc<Semaphore>)>,
    /// The way to other brokers (cluster mode), set once at start-up.
    remote: OnceCell<Weak<dyn RemoteBrokers>>,
}

/// Whether `req` is one a shard sends while serving another request. Such requests must
/// not call other shards themselves (see the module doc).
fn is_nested(req: &Request) -> bool {
    matches!(
        req,
        Request::Shard(ShardRequest::WriteTxnMarkers { .. } | ShardRequest::Controller(ControllerOp::AllocateProducerIds) | ShardRequest::ApplyMetadata { .. })
    )
}

/// Serves a request on this core.
async fn serve(shard: &Rc<Shard>, coordinators: &Coordinators, req: Request) -> Response {
    match req {
        Request::Shard(r) => Response::Shard(shard.handle(r).await),
        Request::Group(r) => Response::Group(coordinators.handle_group(*r).await),
        Request::Txn(r) => Response::Txn(coordinators.handle_txn(r).await),
    }
}

impl XShard {
    /// Connects this core's channel ends and starts serving the incoming ones.
    pub async fn connect(shard: Rc<Shard>, coordinators: Rc<Coordinators>, eps: Endpoints) -> Rc<XShard> {
        // Both ends of a channel wait for each other to connect: connect every end at
        // once, or two shards each waiting on their first peer would deadlock.
        let senders = futures::future::join_all(eps.senders.into_iter().map(|s| async move {
            match s {
                Some(s) => Some(s.connect().await),
                None => None,
            }
        }));
        let receivers = futures::future::join_all(eps.receivers.into_iter().map(|r| r.connect()));
        let (senders, receivers) = futures::join!(senders, receivers);
        for rx in receivers {
            let rx: ConnectedReceiver<Envelope> = rx;
            let (shard, coordinators) = (shard.clone(), coordinators.clone());
            glommio::spawn_local(async move {
                while let Some(env) = rx.recv().await {
                    let (shard, coordinators) = (shard.clone(), coordinators.clone());
                    // Each request runs as its own task so a long-poll never blocks the channel;
                    // a caller that went away (its reply end dropped) cancels the work.
                    glommio::spawn_local(async move {
                        let Envelope { req, mut reply } = env;
                        let work = serve(&shard, &coordinators, req);
                        futures::pin_mut!(work);
                        let cancelled = reply.cancellation();
                        futures::pin_mut!(cancelled);
                        if let futures::future::Either::Left((resp, _)) = futures::future::select(work, cancelled).await {
                            let _ = reply.send(resp);
                        }
                    })
                    .detach();
                }
            })
            .detach();
        }
        let max = shard.cfg.xshard_inflight_max as u64;
        let inflight = (0..senders.len()).map(|_| (Rc::new(Semaphore::new(max)), Rc::new(Semaphore::new(max)))).collect();
        let x = Rc::new(XShard { shard: shard.clone(), coordinators: coordinators.clone(), senders, inflight, remote: OnceCell::new() });
        // The controller publishes images, and the coordinators send markers and
        // ask for producer ids, through this XShard.
        let peers: std::rc::Weak<XShard> = Rc::downgrade(&x);
        shard.set_peers(peers.clone());
        coordinators.set_outbound(peers);
        x
    }

    /// Sets the way to the other brokers of the cluster (once, at start-up; later
    /// calls are ignored). Weak: the runtime owns the implementor.
    pub fn set_remote_brokers(&self, remote: Weak<dyn RemoteBrokers>) {
        let _ = self.remote.set(remote);
    }

    /// The way to other brokers, when this is a cluster node that set one and it is still alive.
    fn remote_brokers(&self) -> Option<Rc<dyn RemoteBrokers>> {
        self.remote.get().and_then(Weak::upgrade)
    }

    /// Number of shards in the broker.
    pub fn nr_shards(&self) -> usize {
        self.senders.len()
    }

    /// Sends `req` to the partition owner of core `to` and awaits its answer.
    pub async fn call(&self, to: usize, req: ShardRequest) -> Result<ShardResponse> {
        match self.send(to, Request::Shard(req)).await? {
            Response::Shard(r) => Ok(r),
            _ => Err(Error::ShardUnavailable),
        }
    }

    /// Sends a group request to the coordinators of core `to`.
    pub async fn call_group(&self, to: usize, req: GroupRequest) -> Result<GroupResponse> {
        match self.send(to, Request::Group(Box::new(req))).await? {
            Response::Group(r) => Ok(r),
            _ => Err(Error::ShardUnavailable),
        }
    }

    /// Sends a transactional request to the coordinators of core `to`.
    pub async fn call_txn(&self, to: usize, req: TxnRequest) -> Result<TxnResponse> {
        match self.send(to, Request::Txn(req)).await? {
            Response::Txn(r) => Ok(r),
            _ => Err(Error::ShardUnavailable),
        }
    }

    /// Sends `req` to core `to` (directly when local) and awaits its answer.
    async fn send(&self, to: usize, req: Request) -> Result<Response> {
        if to == self.shard.id {
            return Ok(serve(&self.shard, &self.coordinators, req).await);
        }
        let sender = self.senders.get(to).and_then(|s| s.as_ref()).ok_or(Error::ShardUnavailable)?;
        crate::metrics::with(|m| m.xshard_call());
        let (clients, nested) = &self.inflight[to];
        let budget = if is_nested(&req) { nested } else { clients };
        // Held until the answer arrives (or the caller gives up and drops this future).
        let _permit = budget.acquire_permit(1).await.map_err(|_| Error::ShardUnavailable)?;
        let (tx, rx) = oneshot::channel();
        sender.send(Envelope { req, reply: tx }).await.map_err(|_| Error::ShardUnavailable)?;
        rx.await.map_err(|_| Error::ShardUnavailable)
    }

    /// Sends `req` built per shard to every shard and waits for all.
    pub async fn broadcast(&self, make: impl Fn() -> ShardRequest) -> Vec<Result<ShardResponse>> {
        futures::future::join_all((0..self.nr_shards()).map(|s| self.call(s, make()))).await
    }

    /// Sends a transactional request built per core to every core's coordinators and waits for all.
    pub async fn broadcast_txn(&self, make: impl Fn() -> TxnRequest) -> Vec<Result<TxnResponse>> {
        futures::future::join_all((0..self.nr_shards()).map(|s| self.call_txn(s, make()))).await
    }
}

impl Peers for XShard {
    fn apply_everywhere(&self, image: Arc<MetadataImage>, placement: Arc<ShardPlacement>) -> LocalBoxFuture<'_, usize> {
        Box::pin(async move {
            let applied = self.broadcast(|| ShardRequest::ApplyMetadata { image: image.clone(), placement: placement.clone() }).await;
            applied.iter().filter(|r| !matches!(r, Ok(ShardResponse::MetadataApplied))).count()
        })
    }
}

impl Outbound for XShard {
    /// Markers for partitions on this broker go to their owner shards
    /// ([`fan_out::fan_out`]); those led by another broker go to it through
    /// [`RemoteBrokers`], one request per broker, all concurrently. Without a way
    /// to other brokers (none set, or a leader id below 0) such markers fail with
    /// NOT_LEADER_OR_FOLLOWER, as `fan_out` answers. Results come back in order.
    fn write_txn_markers(&self, markers: Vec<TxnMarker>) -> LocalBoxFuture<'_, Vec<Result<()>>> {
        Box::pin(async move {
            let n = markers.len();
            let remote = self.remote_brokers();
            let mut local_idx = Vec::new();
            let mut local = Vec::new();
            // Per broker, in first-seen order: the markers' indexes and the markers.
            let mut per_broker: Vec<(i32, Vec<usize>, Vec<TxnMarker>)> = Vec::new();
            for (i, m) in markers.into_iter().enumerate() {
                let route = self.shard.route(&m.tp.topic, m.tp.partition);
                match route {
                    Route::Remote(b) if b >= 0 && remote.is_some() => match per_broker.iter_mut().find(|(id, _, _)| *id == b) {
                        Some((_, idx, ms)) => {
                            idx.push(i);
                            ms.push(m);
                        }
                        None => per_broker.push((b, vec![i], vec![m])),
                    },
                    _ => {
                        local_idx.push(i);
                        local.push((route, m));
                    }
                }
            }
            let local_call = fan_out::fan_out(
                self,
                local,
                |markers| ShardRequest::WriteTxnMarkers { markers },
                |r| match r {
                    ShardResponse::WriteTxnMarkers(v) => Some(v),
                    _ => None,
                },
            );
            let remote_calls = futures::future::join_all(per_broker.into_iter().map(|(b, idx, ms)| {
                let remote = remote.clone();
                async move {
                    let expected = ms.len();
                    let rs = match remote {
                        Some(r) => r.write_txn_markers(b, ms).await,
                        None => Vec::new(),
                    };
                    // A wrong count would misplace results: all fail instead.
                    let rs = if rs.len() == expected { rs } else { (0..expected).map(|_| Err(Error::NotLeaderOrFollower)).collect() };
                    (idx, rs)
                }
            }));
            let (local_rs, remote_rs) = futures::join!(local_call, remote_calls);
            let mut out: Vec<Option<Result<()>>> = (0..n).map(|_| None).collect();
            for (i, r) in local_idx.into_iter().zip(local_rs) {
                out[i] = Some(r);
            }
            for (idx, rs) in remote_rs {
                for (i, r) in idx.into_iter().zip(rs) {
                    out[i] = Some(r);
                }
            }
            out.into_iter().map(|r| r.unwrap_or(Err(Error::ShardUnavailable))).collect()
        })
    }

    fn allocate_producer_ids(&self) -> LocalBoxFuture<'_, Result<(i64, i64)>> {
        Box::pin(async move {
            match self.call(CONTROLLER_SHARD, ShardRequest::Controller(ControllerOp::AllocateProducerIds)).await? {
                ShardResponse::ProducerIds(r) => r,
                _ => Err(Error::CoordinatorNotAvailable),
            }
        })
    }
}
