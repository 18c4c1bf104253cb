//! Cross-shard calls: the ONLY code that touches glommio channels.
//!
//! Every pair of shards has one bounded SPSC channel per direction
//! (`xshard.channel.capacity`); a full channel makes the sender wait
//! (backpressure), never grows. A call to the local shard skips the channel
//! and calls [`Shard::handle`] directly. Replies travel on a one-shot channel
//! carried inside the request envelope.
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

use std::rc::Rc;

use futures::channel::oneshot;
use glommio::channels::shared_channel::{self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender};
use glommio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::shard::request::{ShardRequest, ShardResponse};
use crate::shard::Shard;

/// A request on its way to another shard, with the way back.
pub struct Envelope {
    req: ShardRequest,
    reply: oneshot::Sender<ShardResponse>,
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

/// A shard's handle for calling any shard.
pub struct XShard {
    pub local: Rc<Shard>,
    senders: Vec<Option<ConnectedSender<Envelope>>>,
    /// Per destination shard: permits for requests from clients, and for nested requests.
    inflight: Vec<(Rc<Semaphore>, Rc<Semaphore>)>,
}

/// Whether `req` is one a shard sends while serving another request. Such requests must
/// not call other shards themselves (see the module doc).
fn is_nested(req: &ShardRequest) -> bool {
    matches!(req, ShardRequest::WriteTxnMarkers { .. } | ShardRequest::AllocateProducerIds | ShardRequest::ApplyMetadata { .. })
}

impl XShard {
    /// Connects this shard's channel ends and starts serving the incoming ones.
    pub async fn connect(local: Rc<Shard>, eps: Endpoints) -> Rc<XShard> {
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
            let shard = local.clone();
            glommio::spawn_local(async move {
                while let Some(env) = rx.recv().await {
                    let shard = shard.clone();
                    // Each request runs as its own task so a long-poll never blocks the channel;
                    // a caller that went away (its reply end dropped) cancels the work.
                    glommio::spawn_local(async move {
                        let Envelope { req, mut reply } = env;
                        let work = shard.handle(req);
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
        let max = local.cfg.xshard_inflight_max as u64;
        let inflight = (0..senders.len()).map(|_| (Rc::new(Semaphore::new(max)), Rc::new(Semaphore::new(max)))).collect();
        let x = Rc::new(XShard { local: local.clone(), senders, inflight });
        // The coordinators send transaction markers from inside Shard::handle.
        local.set_xshard(Rc::downgrade(&x));
        x
    }

    /// Number of shards in the broker.
    pub fn nr_shards(&self) -> usize {
        self.senders.len()
    }

    /// Sends `req` to shard `to` (directly when local) and awaits its answer.
    pub async fn call(&self, to: usize, req: ShardRequest) -> Result<ShardResponse> {
        if to == self.local.id {
            return Ok(self.local.handle(req).await);
        }
        let sender = self.senders.get(to).and_then(|s| s.as_ref()).ok_or(Error::ShardUnavailable)?;
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
}
