//! The controller listener's connections, on the controller shard's executor.
//!
//! - Inbound: every connection starts with a Hello of the same cluster id; Raft
//!   messages go to the node's inbox, requests are served each in its own task
//!   (a forwarded CreateTopics waits for a commit; a heartbeat behind it must
//!   not), their responses written by the connection's one writer.
//! - Outbound Raft: one connection per voter, fed by a bounded queue; a full
//!   queue or a broken connection drops messages (Raft resends what matters),
//!   and the connection is re-made with a back-off.
//! - Calls: [`RpcClient::call`] keeps one connection per address for the calls
//!   made one after another (heartbeats), opening another when it is in use.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::StreamExt;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::{TcpListener, TcpStream};

use super::rpc::{read_frame, write_frame, write_request, ControllerRequest, ControllerResponse, Frame};

/// What the node does with inbound traffic (implemented by [`super::node::ClusterNode`]).
pub trait Inbound {
    /// This cluster's id (Hello frames must match it).
    fn cluster_id(&self) -> &str;
    /// A Raft message arrived.
    fn raft_message(&self, bytes: Vec<u8>);
    /// A call arrived; the future answers it.
    fn call(self: Rc<Self>, req: ControllerRequest) -> futures::future::LocalBoxFuture<'static, ControllerResponse>;
    /// True once the node stops (loops end).
    fn stopping(&self) -> bool;
}

/// Responses queued per inbound connection before its writer.
const RESPONSES_IN_FLIGHT: usize = 64;
/// Raft messages queued per outbound voter connection.
const RAFT_QUEUE: usize = 1024;
/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Accepts controller connections until the node stops.
pub async fn serve<N: Inbound + 'static>(listener: TcpListener, node: Rc<N>) {
    while !node.stopping() {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                crate::warn_limited!("accepting a controller connection failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        glommio::spawn_local(serve_connection(stream, node.clone())).detach();
    }
}

async fn serve_connection<N: Inbound + 'static>(stream: TcpStream, node: Rc<N>) {
    let peer = stream.peer_addr().ok();
    let (mut reader, mut writer) = futures::AsyncReadExt::split(stream);
    match read_frame(&mut reader).await {
        Ok(Some(Frame::Hello { cluster_id, .. })) if cluster_id == node.cluster_id() => {}
        Ok(Some(Frame::Hello { cluster_id, node_id })) => {
            let why = format!("node {node_id} belongs to cluster {cluster_id}, this node to cluster {}", node.cluster_id());
            crate::error_limited!(?peer, "refused a controller connection: {why}");
            // Id 0 answers whatever the caller asks first: it learns why and gives up.
            let refusal = ControllerResponse::Error(crate::error::Error::InconsistentClusterId(why).into());
            let _ = write_frame(&mut writer, &Frame::Response(0, refusal)).await;
            return;
        }
        _ => return,
    }
    let (tx, rx) = local_channel::new_bounded::<Frame>(RESPONSES_IN_FLIGHT);
    let writer_task = glommio::spawn_local(async move {
        let mut rx = rx.stream();
        while let Some(f) = rx.next().await {
            if write_frame(&mut writer, &f).await.is_err() {
                break;
            }
        }
    });
    let tx = Rc::new(tx);
    loop {
        match read_frame(&mut reader).await {
            Ok(Some(Frame::Raft(b))) => node.raft_message(b),
            Ok(Some(Frame::Request(id, req))) => {
                let (node, tx) = (node.clone(), tx.clone());
                glommio::spawn_local(async move {
                    let resp = node.call(req).await;
                    let _ = tx.send(Frame::Response(id, resp)).await;
                })
                .detach();
            }
            Ok(Some(_)) | Ok(None) => break,
            Err(e) => {
                crate::warn_limited!(?peer, "controller connection closed: {e}");
                break;
            }
        }
    }
    drop(tx);
    writer_task.await;
}

/// Outbound Raft messages to the other voters.
pub struct RaftPeers {
    queues: HashMap<u64, LocalSender<Vec<u8>>>,
}

impl RaftPeers {
    /// Starts one sender task per voter (`addrs`: node id -> controller address).
    pub fn start(cluster_id: String, node_id: i32, addrs: Vec<(u64, SocketAddr)>, stopping: Rc<Cell<bool>>) -> RaftPeers {
        let mut queues = HashMap::new();
        for (id, addr) in addrs {
            let (tx, rx) = local_channel::new_bounded::<Vec<u8>>(RAFT_QUEUE);
            queues.insert(id, tx);
            let (cluster_id, stopping) = (cluster_id.clone(), stopping.clone());
            glommio::spawn_local(async move {
                let mut rx = rx.stream();
                let mut conn: Option<TcpStream> = None;
                let mut backoff = Duration::from_millis(50);
                while let Some(msg) = rx.next().await {
                    if stopping.get() {
                        break;
                    }
                    if conn.is_none() {
                        match connect(addr, &cluster_id, node_id).await {
                            Ok(c) => {
                                conn = Some(c);
                                backoff = Duration::from_millis(50);
                            }
                            Err(_) => {
                                // Drop this message; wait before the next try.
                                glommio::timer::sleep(backoff).await;
                                backoff = (backoff * 2).min(Duration::from_secs(1));
                                continue;
                            }
                        }
                    }
                    if let Some(c) = conn.as_mut() {
                        if write_frame(c, &Frame::Raft(msg)).await.is_err() {
                            conn = None;
                        }
                    }
                }
            })
            .detach();
        }
        RaftPeers { queues }
    }

    /// Queues a message for voter `to`; dropped when its queue is full.
    pub fn send(&self, to: u64, bytes: Vec<u8>) {
        if let Some(q) = self.queues.get(&to) {
            let _ = q.try_send(bytes);
        }
    }
}

/// Connects and says Hello.
async fn connect(addr: SocketAddr, cluster_id: &str, node_id: i32) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).await.map_err(|e| io::Error::other(e.to_string()))?;
    let _ = s.set_nodelay(true);
    write_frame(&mut s, &Frame::Hello { cluster_id: cluster_id.to_string(), node_id }).await?;
    Ok(s)
}

/// Calls to controllers, one idle connection kept per address.
pub struct RpcClient {
    cluster_id: String,
    node_id: i32,
    idle: RefCell<HashMap<SocketAddr, TcpStream>>,
    next_id: Cell<u64>,
}

impl RpcClient {
    /// A client saying Hello as `node_id` of `cluster_id`.
    pub fn new(cluster_id: String, node_id: i32) -> RpcClient {
        RpcClient { cluster_id, node_id, idle: RefCell::new(HashMap::new()), next_id: Cell::new(1) }
    }

    /// Sends `req` to the controller at `addr` and waits for its answer, at most `timeout`.
    pub async fn call(&self, addr: SocketAddr, req: &ControllerRequest, timeout: Duration) -> io::Result<ControllerResponse> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let cached = self.idle.borrow_mut().remove(&addr);
        let fut = async {
            let mut conn = match cached {
                Some(c) => c,
                None => connect(addr, &self.cluster_id, self.node_id).await?,
            };
            write_request(&mut conn, id, req).await?;
            loop {
                match read_frame(&mut conn).await? {
                    Some(Frame::Response(rid, resp)) if rid == id || rid == 0 => return Ok((conn, resp)),
                    Some(Frame::Response(..)) => continue,
                    _ => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "controller closed the connection")),
                }
            }
        };
        match glommio::timer::timeout(timeout, async { fut.await.map_err(glommio::GlommioError::IoError) }).await {
            Ok((conn, resp)) => {
                self.idle.borrow_mut().insert(addr, conn);
                Ok(resp)
            }
            Err(glommio::GlommioError::IoError(e)) => Err(e),
            Err(e) => Err(io::Error::new(io::ErrorKind::TimedOut, e.to_string())),
        }
    }
}
