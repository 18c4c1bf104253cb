//! Calls this broker makes to other brokers' client listeners with the Kafka
//! protocol itself, as Kafka's brokers do: WriteTxnMarkers, the transaction
//! coordinator's COMMIT/ABORT markers for partitions led elsewhere (here), and
//! followers' Fetch (`super::replica_fetcher`, on connections of its own).
//!
//! One [`InterBrokerClient`] per core (the coordinators live on every core),
//! implementing `xshard::RemoteBrokers` for that core's `XShard`, which holds it
//! weakly. It keeps one idle connection per remote broker, re-made after any
//! error (a call made while that one is in use opens another, kept if the slot
//! is free again); every call has a deadline ([`CALL_TIMEOUT`]) and a response
//! frame is size-checked ([`MAX_RESPONSE`]) before anything is allocated.
//!
//! Failures are per call, each marker of it answered with the same error, all
//! retriable (the coordinator retries, then its ticker does):
//! - the broker is not in the image or fenced, it cannot be reached, or the
//!   connection broke or answered garbage: LEADER_NOT_AVAILABLE
//!   ([`Error::LeaderNotAvailable`]): the partition's leader is not reachable
//!   right now, which is what a fenced leader also means to clients; unlike
//!   NOT_LEADER_OR_FOLLOWER it does not claim the partition moved, and unlike
//!   COORDINATOR_NOT_AVAILABLE it does not blame the coordinator, which is this
//!   broker. The detail is logged (rate-limited).
//! - no answer within [`CALL_TIMEOUT`]: REQUEST_TIMED_OUT ([`Error::RequestTimedOut`]).
//!
//! Per partition the remote broker's code comes back as NONE (`Ok`),
//! UNKNOWN_TOPIC_OR_PARTITION and NOT_LEADER_OR_FOLLOWER as those variants (the
//! coordinator treats a deleted partition as done), anything else as
//! [`Error::Remote`] with its code.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::LocalBoxFuture;
use futures::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{ApiKey, ProducerId, RequestHeader, ResponseHeader, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;

use crate::error::{Error, Result};
use crate::shard::request::TxnMarker;
use crate::shard::Shard;
use crate::xshard::RemoteBrokers;

/// The WriteTxnMarkers version sent (the only one kafka-protocol encodes; Kafka 4.0's).
const WRITE_TXN_MARKERS_VERSION: i16 = 1;
/// How long one call may take, connecting included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest response frame read (a WriteTxnMarkers answer is a few bytes per partition).
pub const MAX_RESPONSE: usize = 16 << 20;

/// One core's client for other brokers' client listeners.
pub struct InterBrokerClient {
    shard: Rc<Shard>,
    /// The idle connection per broker id, with the address it went to.
    idle: RefCell<HashMap<i32, (SocketAddr, TcpStream)>>,
    next_correlation_id: Cell<i32>,
}

impl InterBrokerClient {
    /// A client for the core of `shard` (its image names the brokers).
    pub fn new(shard: Rc<Shard>) -> Rc<InterBrokerClient> {
        Rc::new(InterBrokerClient { shard, idle: RefCell::new(HashMap::new()), next_correlation_id: Cell::new(1) })
    }

    fn address(&self, broker: i32) -> io::Result<SocketAddr> {
        broker_address(&self.shard.image(), broker)
    }

    /// Sends one request frame (`body` encoded at `version`) to `broker` and
    /// decodes its answer, within [`CALL_TIMEOUT`].
    async fn call(&self, broker: i32, key: ApiKey, version: i16, body: &WriteTxnMarkersRequest) -> Result<WriteTxnMarkersResponse> {
        let cid = self.next_correlation_id.get();
        self.next_correlation_id.set(cid.wrapping_add(1).max(1));
        let frame = encode_request(key, version, cid, self.shard.cfg.broker_id, body).map_err(|e| unreachable_error(broker, &e))?;
        let cached = self.idle.borrow_mut().remove(&broker);
        let exchange = async {
            let addr = self.address(broker)?;
            let mut conn = match cached {
                Some((a, c)) if a == addr => c,
                _ => connect(addr).await?,
            };
            conn.write_all(&frame).await?;
            let mut resp = read_response(&mut conn, MAX_RESPONSE).await?;
            let header =
                ResponseHeader::decode(&mut resp, key.response_header_version(version)).map_err(|e| io::Error::other(format!("response header: {e}")))?;
            if header.correlation_id != cid {
                return Err(io::Error::other(format!("correlation id {} answered for {cid}", header.correlation_id)));
            }
            let body = WriteTxnMarkersResponse::decode(&mut resp, version).map_err(|e| io::Error::other(format!("response body: {e}")))?;
            Ok((addr, conn, body))
        };
        match glommio::timer::timeout(CALL_TIMEOUT, async { exchange.await.map_err(glommio::GlommioError::IoError) }).await {
            Ok((addr, conn, body)) => {
                self.idle.borrow_mut().entry(broker).or_insert((addr, conn));
                Ok(body)
            }
            Err(glommio::GlommioError::IoError(e)) => Err(unreachable_error(broker, &e)),
            Err(e) => Err(Error::RequestTimedOut(format!("broker {broker} did not answer WriteTxnMarkers in {CALL_TIMEOUT:?}: {e}"))),
        }
    }
}

impl RemoteBrokers for InterBrokerClient {
    fn write_txn_markers(&self, broker: i32, markers: Vec<TxnMarker>) -> LocalBoxFuture<'_, Vec<Result<()>>> {
        Box::pin(async move {
            let (req, keys) = build_request(&markers);
            match self.call(broker, ApiKey::WriteTxnMarkers, WRITE_TXN_MARKERS_VERSION, &req).await {
                Ok(resp) => map_results(broker, &markers, &keys, &resp),
                Err(e) => {
                    // `Error` is not Clone: the call's error, once per marker.
                    let timed_out = matches!(e, Error::RequestTimedOut(_));
                    let msg = e.to_string();
                    markers.iter().map(|_| Err(if timed_out { Error::RequestTimedOut(msg.clone()) } else { Error::LeaderNotAvailable })).collect()
                }
            }
        })
    }
}

/// Logs why broker `broker` could not be called and answers LEADER_NOT_AVAILABLE (see the module doc).
fn unreachable_error(broker: i32, e: &io::Error) -> Error {
    crate::warn_limited!(broker, "calling broker {broker} failed: {e}");
    Error::LeaderNotAvailable
}

/// The identity of one WriteTxnMarkers marker entry.
type MarkerKey = (i64, i16, bool, i32);

/// Groups the markers into request entries (one per producer id, epoch, result
/// and coordinator epoch; topics grouped by name, all in first-seen order).
/// Answers the request and, per marker, the index of its entry.
fn build_request(markers: &[TxnMarker]) -> (WriteTxnMarkersRequest, Vec<usize>) {
    let mut keys: Vec<MarkerKey> = Vec::new();
    let mut entries: Vec<WritableTxnMarker> = Vec::new();
    let mut index = Vec::with_capacity(markers.len());
    for m in markers {
        let key = (m.producer_id, m.producer_epoch, m.commit, m.coordinator_epoch);
        let k = match keys.iter().position(|k| *k == key) {
            Some(k) => k,
            None => {
                keys.push(key);
                entries.push(
                    WritableTxnMarker::default()
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_producer_epoch(m.producer_epoch)
                        .with_transaction_result(m.commit)
                        .with_coordinator_epoch(m.coordinator_epoch),
                );
                keys.len() - 1
            }
        };
        index.push(k);
        let entry = &mut entries[k];
        match entry.topics.iter_mut().find(|t| t.name.0.as_str() == m.tp.topic) {
            Some(t) => t.partition_indexes.push(m.tp.partition),
            None => entry.topics.push(
                WritableTxnMarkerTopic::default().with_name(TopicName(StrBytes::from_string(m.tp.topic.clone()))).with_partition_indexes(vec![m.tp.partition]),
            ),
        }
    }
    (WriteTxnMarkersRequest::default().with_markers(entries), index)
}

/// One result per marker from the answer: entry `keys[i]` of the response
/// (Kafka answers entries in request order), the marker's topic and partition in it.
fn map_results(broker: i32, markers: &[TxnMarker], keys: &[usize], resp: &WriteTxnMarkersResponse) -> Vec<Result<()>> {
    markers
        .iter()
        .zip(keys)
        .map(|(m, &k)| {
            let code = resp
                .markers
                .get(k)
                .filter(|e| e.producer_id.0 == m.producer_id)
                .and_then(|e| e.topics.iter().find(|t| t.name.0.as_str() == m.tp.topic))
                .and_then(|t| t.partitions.iter().find(|p| p.partition_index == m.tp.partition))
                .map(|p| p.error_code);
            match code {
                Some(0) => Ok(()),
                Some(c) if c == ResponseError::UnknownTopicOrPartition.code() => Err(Error::UnknownTopicOrPartition),
                Some(c) if c == ResponseError::NotLeaderOrFollower.code() => Err(Error::NotLeaderOrFollower),
                Some(c) => Err(Error::Remote {
                    code: c,
                    message: format!("broker {broker} refused the marker for {}-{} (error code {c})", m.tp.topic, m.tp.partition),
                }),
                None => {
                    crate::warn_limited!(broker, "broker {broker}'s WriteTxnMarkers answer left out {}-{}", m.tp.topic, m.tp.partition);
                    Err(Error::LeaderNotAvailable)
                }
            }
        })
        .collect()
}

/// The advertised client address of live broker `broker` in `image`. A host name
/// is resolved by the system resolver (advertised hosts are usually addresses).
pub fn broker_address(image: &crate::metadata::MetadataImage, broker: i32) -> io::Result<SocketAddr> {
    let b = image.brokers.get(&broker).filter(|b| !b.fenced).ok_or_else(|| io::Error::other(format!("broker {broker} is not registered or is fenced")))?;
    if let Ok(ip) = b.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, b.port));
    }
    std::net::ToSocketAddrs::to_socket_addrs(&(b.host.as_str(), b.port))?
        .next()
        .ok_or_else(|| io::Error::other(format!("broker {broker}'s host {} resolves to nothing", b.host)))
}

/// The size-prefixed request frame: header (the version `key` needs), then body.
pub fn encode_request<T: Encodable>(key: ApiKey, version: i16, correlation_id: i32, broker_id: i32, body: &T) -> io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(format!("shardlog-broker-{broker_id}"))));
    header.encode(&mut buf, key.request_header_version(version)).map_err(|e| io::Error::other(format!("encoding the request header: {e}")))?;
    body.encode(&mut buf, version).map_err(|e| io::Error::other(format!("encoding the request: {e}")))?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| io::Error::other("request over 2 GiB"))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Reads one size-prefixed response frame, refusing one over `max` bytes.
pub async fn read_response(conn: &mut TcpStream, max: usize) -> io::Result<Bytes> {
    let mut size = [0u8; 4];
    conn.read_exact(&mut size).await?;
    let size = i32::from_be_bytes(size);
    let len = usize::try_from(size).map_err(|_| io::Error::other(format!("negative response size {size}")))?;
    if len > max {
        return Err(io::Error::other(format!("response of {len} bytes over the {max} limit")));
    }
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).await?;
    Ok(Bytes::from(body))
}

/// Opens a connection to a broker's client listener.
pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).await.map_err(|e| io::Error::other(format!("connecting to {addr}: {e}")))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::request::TopicPartition;
    use kafka_protocol::messages::write_txn_markers_response::{WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult};

    fn marker(pid: i64, topic: &str, p: i32, commit: bool) -> TxnMarker {
        TxnMarker { tp: TopicPartition { topic: topic.into(), partition: p }, producer_id: pid, producer_epoch: 3, commit, coordinator_epoch: 7 }
    }

    #[test]
    fn groups_markers_and_maps_answers_back_in_order() {
        let ms = vec![marker(1, "a", 0, true), marker(2, "a", 1, false), marker(1, "b", 2, true), marker(1, "a", 3, true)];
        let (req, keys) = build_request(&ms);
        assert_eq!(keys, vec![0, 1, 0, 0]);
        assert_eq!(req.markers.len(), 2);
        assert_eq!(req.markers[0].topics.len(), 2);
        assert_eq!(req.markers[0].topics[0].partition_indexes, vec![0, 3]);
        // The request round-trips through the codec at the version sent.
        let frame = encode_request(ApiKey::WriteTxnMarkers, 1, 5, 0, &req).unwrap();
        let mut body = frame.slice(4..);
        let h = RequestHeader::decode(&mut body, 2).unwrap();
        assert_eq!((h.request_api_key, h.correlation_id), (27, 5));
        assert_eq!(WriteTxnMarkersRequest::decode(&mut body, 1).unwrap(), req);

        let part = |p: i32, c: i16| WritableTxnMarkerPartitionResult::default().with_partition_index(p).with_error_code(c);
        let topic = |t: &str, ps| WritableTxnMarkerTopicResult::default().with_name(TopicName(StrBytes::from_string(t.into()))).with_partitions(ps);
        let resp = WriteTxnMarkersResponse::default().with_markers(vec![
            WritableTxnMarkerResult::default()
                .with_producer_id(ProducerId(1))
                .with_topics(vec![topic("a", vec![part(0, 0), part(3, 6)]), topic("b", vec![part(2, 3)])]),
            WritableTxnMarkerResult::default().with_producer_id(ProducerId(2)).with_topics(vec![topic("a", vec![part(1, 90)])]),
        ]);
        let rs = map_results(9, &ms, &keys, &resp);
        assert!(rs[0].is_ok());
        assert!(matches!(rs[1], Err(Error::Remote { code: 90, .. })));
        assert!(matches!(rs[2], Err(Error::UnknownTopicOrPartition)));
        assert!(matches!(rs[3], Err(Error::NotLeaderOrFollower)));
        // An answer that leaves a partition out fails it (retriable).
        let rs = map_results(9, &ms, &keys, &WriteTxnMarkersResponse::default());
        assert!(rs.iter().all(|r| matches!(r, Err(Error::LeaderNotAvailable))));
    }
}
