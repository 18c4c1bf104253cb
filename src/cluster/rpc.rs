//! What travels on the controller listener, and its framing.
//!
//! Every frame is `[length: u32][kind: u8][payload]`, the length counting kind
//! and payload and checked against [`MAX_FRAME`] before anything is allocated.
//! A connection opens with [`Frame::Hello`] naming the cluster id and the
//! sender's node id: a node of another cluster (a data dir formatted with
//! another id) is refused there, before any of its Raft messages is read.
//!
//! Raft messages are raft-rs's protobuf encoding, one per frame, one way: Raft
//! tolerates their loss, so a full queue or a broken connection drops them. The
//! broker-to-controller calls carry Kafka's names (BrokerRegistration,
//! BrokerHeartbeat, UnregisterBroker) and forwarded metadata changes (Kafka's
//! Envelope forwarding does the same job); they are JSON, request and response
//! matched by id. Only shardlog nodes speak this listener, and the volume is
//! small (heartbeats, metadata changes), so readability wins over compactness.

use std::io;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use serde::{Deserialize, Serialize};

use crate::shard::request::{ControllerOp, ControllerReply, WireError};

/// The largest frame accepted: a Raft snapshot of a large image fits.
pub const MAX_FRAME: usize = 64 << 20;

const KIND_HELLO: u8 = 0;
const KIND_RAFT: u8 = 1;
const KIND_REQUEST: u8 = 2;
const KIND_RESPONSE: u8 = 3;

/// One frame on the controller listener.
#[derive(Debug)]
pub enum Frame {
    /// First frame of every connection: (cluster id, the sender's node id).
    Hello {
        /// The sender's cluster id (its `meta.properties`).
        cluster_id: String,
        /// The sender's `node.id`.
        node_id: i32,
    },
    /// A Raft message (raft-rs protobuf bytes).
    Raft(Vec<u8>),
    /// A call to the controller, answered by a [`Frame::Response`] with the same id.
    Request(u64, ControllerRequest),
    /// The answer to the request with this id.
    Response(u64, ControllerResponse),
}

/// A broker's calls to the active controller.
#[derive(Debug, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// Kafka's BrokerRegistration: a broker (re)starting joins the cluster.
    BrokerRegistration {
        /// `node.id`.
        broker_id: i32,
        /// Random per process start.
        incarnation_id: uuid::Uuid,
        /// Advertised client listener host.
        host: String,
        /// Advertised client listener port.
        port: u16,
        /// `broker.rack`.
        rack: Option<String>,
        /// Shards serving partitions.
        shards: u32,
        /// It stopped cleanly last time (its clean-shutdown marker was there):
        /// Kafka's PreviousBrokerEpoch, KIP-966. An unclean stop may have lost
        /// its unflushed tail, so it leaves the eligible leader replicas.
        #[serde(default)]
        clean_shutdown: bool,
    },
    /// Kafka's BrokerHeartbeat: the broker is alive and has applied the metadata
    /// log up to `metadata_offset`.
    BrokerHeartbeat {
        /// `node.id`.
        broker_id: i32,
        /// The epoch its registration got.
        epoch: i64,
        /// The metadata log offset (Raft index) the broker has applied.
        metadata_offset: u64,
        /// It is stopping (SIGTERM, `controlled.shutdown.enable`): move its
        /// leaderships and take it out of the ISRs first (Kafka's WantShutDown).
        #[serde(default)]
        want_shutdown: bool,
    },
    /// Kafka's UnregisterBroker: the broker leaves the cluster for good.
    UnregisterBroker {
        /// `node.id`.
        broker_id: i32,
    },
    /// A metadata change asked on another node (CreateTopics, DeleteTopics, ...).
    Forward(ControllerOp),
    /// Kafka's DescribeQuorum, asked of the leader (only it knows the voters' progress).
    DescribeQuorum,
    /// A broker-only node fetches the committed metadata log (Kafka's brokers
    /// fetch `__cluster_metadata` from the controller quorum): the entries
    /// after index `from`, long-polled (see [`super::observer`]).
    FetchMetadata {
        /// The last index the broker holds (0: nothing yet).
        from: u64,
    },
}

/// The controller's answers.
#[derive(Debug, Serialize, Deserialize)]
pub enum ControllerResponse {
    /// This node is not the active controller; the leader it knows of, if any.
    NotController {
        /// Node id of the quorum leader, when known.
        leader: Option<i32>,
    },
    /// Registered with this epoch (fenced until it catches up).
    Registered {
        /// The broker epoch.
        epoch: i64,
    },
    /// Heartbeat answered.
    Heartbeat {
        /// Still fenced: it leads nothing.
        fenced: bool,
        /// Its controlled shutdown is done here: it leads nothing and this
        /// node applied that change (Kafka's ShouldShutDown). It may stop.
        #[serde(default)]
        should_shutdown: bool,
    },
    /// Unregistered, at this metadata offset.
    Unregistered {
        /// The controller's applied metadata offset after the change.
        metadata_offset: u64,
    },
    /// The forwarded change's answer, and the metadata offset that holds it.
    Forwarded {
        /// The answer.
        reply: ControllerReply,
        /// The controller's applied metadata offset after the change.
        metadata_offset: u64,
    },
    /// The quorum as the leader sees it.
    Quorum(crate::shard::links::QuorumDescription),
    /// Committed metadata entries after the asked index, in order (none when
    /// the long poll ran out first): (Raft index, payload) pairs.
    MetadataEntries {
        /// The entries, each the records one proposal committed.
        entries: Vec<(u64, Vec<u8>)>,
    },
    /// The controller's latest snapshot: the asked index is older than the
    /// first entry its log still holds.
    MetadataSnapshot {
        /// The Raft index the snapshot holds the image at.
        index: u64,
        /// The snapshot's data (the image's records).
        data: Vec<u8>,
    },
    /// Refused, with Kafka's code (STALE_BROKER_EPOCH, INCONSISTENT_CLUSTER_ID, ...).
    Error(WireError),
}

/// Writes one frame.
pub async fn write_frame<W: futures_lite::AsyncWrite + Unpin>(w: &mut W, frame: &Frame) -> io::Result<()> {
    match frame {
        Frame::Hello { cluster_id, node_id } => write_raw(w, KIND_HELLO, &serde_json::to_vec(&(cluster_id, node_id)).map_err(io::Error::other)?).await,
        Frame::Raft(b) => write_raw(w, KIND_RAFT, b).await,
        Frame::Request(id, r) => write_request(w, *id, r).await,
        Frame::Response(id, r) => write_raw(w, KIND_RESPONSE, &with_id(*id, serde_json::to_vec(r).map_err(io::Error::other)?)).await,
    }
}

/// Writes a request frame without taking the request.
pub async fn write_request<W: futures_lite::AsyncWrite + Unpin>(w: &mut W, id: u64, req: &ControllerRequest) -> io::Result<()> {
    write_raw(w, KIND_REQUEST, &with_id(id, serde_json::to_vec(req).map_err(io::Error::other)?)).await
}

async fn write_raw<W: futures_lite::AsyncWrite + Unpin>(w: &mut W, kind: u8, body: &[u8]) -> io::Result<()> {
    let len = body.len() + 1;
    if len > MAX_FRAME {
        return Err(io::Error::other(format!("controller frame of {len} bytes over the {MAX_FRAME} limit")));
    }
    let mut head = [0u8; 5];
    head[..4].copy_from_slice(&(len as u32).to_be_bytes());
    head[4] = kind;
    w.write_all(&head).await?;
    w.write_all(body).await?;
    w.flush().await
}

fn with_id(id: u64, json: Vec<u8>) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + json.len());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&json);
    v
}

/// Reads one frame; None at a clean end of stream. A frame over [`MAX_FRAME`]
/// or one that does not decode is an error (the caller closes the connection).
pub async fn read_frame<R: futures_lite::AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Frame>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(invalid(format!("controller frame length {len} outside 1..={MAX_FRAME}")));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    decode(body[0], &body[1..]).map(Some)
}

fn decode(kind: u8, body: &[u8]) -> io::Result<Frame> {
    Ok(match kind {
        KIND_HELLO => {
            let (cluster_id, node_id) = serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
            Frame::Hello { cluster_id, node_id }
        }
        KIND_RAFT => Frame::Raft(body.to_vec()),
        KIND_REQUEST => {
            let (id, b) = json(body)?;
            Frame::Request(id, serde_json::from_slice(b).map_err(|e| invalid(e.to_string()))?)
        }
        KIND_RESPONSE => {
            let (id, b) = json(body)?;
            Frame::Response(id, serde_json::from_slice(b).map_err(|e| invalid(e.to_string()))?)
        }
        k => return Err(invalid(format!("unknown controller frame kind {k}"))),
    })
}

/// A request or response body: its id, then JSON.
fn json(b: &[u8]) -> io::Result<(u64, &[u8])> {
    let id = b.get(..8).ok_or_else(|| invalid("controller frame without an id".into()))?;
    let mut raw = [0u8; 8];
    raw.copy_from_slice(id);
    Ok((u64::from_be_bytes(raw), &b[8..]))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(f: Frame) -> Frame {
        futures_lite::future::block_on(async {
            let mut buf = Vec::new();
            write_frame(&mut buf, &f).await.unwrap();
            read_frame(&mut futures_lite::io::Cursor::new(buf)).await.unwrap().unwrap()
        })
    }

    #[test]
    fn frames_round_trip() {
        assert!(matches!(round_trip(Frame::Raft(vec![1, 2, 3])), Frame::Raft(b) if b == [1, 2, 3]));
        let hb = ControllerRequest::BrokerHeartbeat { broker_id: 2, epoch: 7, metadata_offset: 40, want_shutdown: true };
        match round_trip(Frame::Request(9, hb)) {
            Frame::Request(9, ControllerRequest::BrokerHeartbeat { broker_id: 2, epoch: 7, metadata_offset: 40, want_shutdown: true }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(round_trip(Frame::Hello { cluster_id: "c".into(), node_id: 1 }), Frame::Hello { node_id: 1, .. }));
    }

    #[test]
    fn oversized_or_garbled_frames_are_refused() {
        futures_lite::future::block_on(async {
            let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
            assert!(read_frame(&mut futures_lite::io::Cursor::new(huge.to_vec())).await.is_err());
            let bad = [0, 0, 0, 3, KIND_REQUEST, 1, 2];
            assert!(read_frame(&mut futures_lite::io::Cursor::new(bad.to_vec())).await.is_err());
            assert!(read_frame(&mut futures_lite::io::Cursor::new(Vec::new())).await.unwrap().is_none());
        })
    }
}
