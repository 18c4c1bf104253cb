//! Kafka wire framing on top of the `kafka-protocol` crate, plus the few
//! admin calls a run needs (ApiVersions, Metadata, CreateTopics, ListOffsets)
//! and the API version ranges loadgen speaks (the group APIs' calls are in
//! `group`).
//!
//! Why not a Kafka client library: a load generator has to control exactly
//! what goes on the wire (pre-encoded batches, how many requests are in
//! flight, which connection carries which partitions) and has to cost the
//! client as little CPU as possible. kafka-protocol gives typed
//! encode/decode for every message and version; this module adds the 4-byte
//! size prefix, request headers, correlation ids and timeouts.
//!
//! Every network read is bounded by a timeout and a frame-size limit, and
//! nothing here unwraps network input: a misbehaving broker yields an error,
//! never a hang or a panic.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, CreateTopicsRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sent as client.id in every request header.
pub const CLIENT_ID: &str = "shardlog-loadgen";

/// Largest response frame accepted; larger sizes mean a broken stream.
pub const MAX_FRAME: usize = 512 << 20;

/// Kafka's error-code name for `code` (e.g. `NOT_LEADER_OR_FOLLOWER`), the
/// key under which errors are counted in the report.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE_{c}"),
        Some(e) => {
            // Display gives the variant name in CamelCase; Kafka spells it UPPER_SNAKE.
            let camel = e.to_string();
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
    }
}

/// Encodes `req` as a complete frame: size prefix, request header, body.
pub fn encode_request<R: Request>(req: &R, version: i16, correlation_id: i32) -> Result<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut buf: Vec<u8> = Vec::with_capacity(64);
    buf.extend_from_slice(&[0u8; 4]);
    header.encode(&mut buf, R::header_version(version)).map_err(|e| anyhow!("encoding request header: {e}"))?;
    req.encode(&mut buf, version).map_err(|e| anyhow!("encoding api key {} v{version}: {e}", R::KEY))?;
    let len = i32::try_from(buf.len() - 4).context("request too large")?;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// Decodes a response frame (without its size prefix) for request type `R`.
pub fn decode_response<R: Request>(mut frame: Bytes, version: i16) -> Result<(i32, R::Response)> {
    let header =
        ResponseHeader::decode(&mut frame, <R::Response as HeaderVersion>::header_version(version)).map_err(|e| anyhow!("decoding response header: {e}"))?;
    let body = R::Response::decode(&mut frame, version).map_err(|e| anyhow!("decoding response to api key {} v{version}: {e}", R::KEY))?;
    Ok((header.correlation_id, body))
}

/// A response must answer the request just sent (one request at a time per
/// connection, answered in order).
pub fn check_correlation(got: i32, sent: i32) -> Result<()> {
    if got != sent {
        bail!("response correlation id {got} does not match request {sent}");
    }
    Ok(())
}

/// Reads one size-prefixed frame; the size is checked before allocating.
pub async fn read_frame<Rd: AsyncRead + Unpin>(rd: &mut Rd) -> Result<Bytes> {
    read_frame_into(rd, &mut BytesMut::new()).await
}

/// Like [`read_frame`], reading into `buf`'s allocation. Why: fetch
/// responses are megabytes; a fresh allocation per response costs a page
/// fault per 4 KiB (it showed as the consumer's main cost at 32 MiB
/// fetches). Once the caller has dropped the previous frame's `Bytes`,
/// `reserve` takes the same memory back. Bytes are read straight into spare
/// capacity, never zero-filled first.
pub async fn read_frame_into<Rd: AsyncRead + Unpin>(rd: &mut Rd, buf: &mut BytesMut) -> Result<Bytes> {
    let mut len = [0u8; 4];
    rd.read_exact(&mut len).await.context("connection closed")?;
    let len = i32::from_be_bytes(len);
    if len < 4 || len as usize > MAX_FRAME {
        bail!("bad response frame size {len}");
    }
    let len = len as usize;
    buf.clear();
    buf.reserve(len);
    let mut body = rd.take(len as u64);
    while buf.len() < len {
        if body.read_buf(buf).await.context("reading response")? == 0 {
            bail!("connection closed mid-frame");
        }
    }
    Ok(buf.split_to(len).freeze())
}

/// API version ranges a broker advertised.
#[derive(Debug, Clone, Default)]
pub struct Versions(HashMap<i16, (i16, i16)>);

impl Versions {
    /// Highest version both sides speak, within our `lo..=hi`.
    pub fn pick(&self, key: ApiKey, lo: i16, hi: i16) -> Result<i16> {
        let (bmin, bmax) = *self.0.get(&(key as i16)).ok_or_else(|| anyhow!("broker does not support {key:?}"))?;
        let v = hi.min(bmax);
        if v < lo.max(bmin) {
            bail!("no common {key:?} version: broker {bmin}-{bmax}, loadgen {lo}-{hi}");
        }
        Ok(v)
    }
}

/// Version ranges loadgen speaks. Fetch stops at 12 and Produce at 12
/// because later versions name topics by id only.
pub const PRODUCE: (i16, i16) = (3, 12);
pub const FETCH: (i16, i16) = (4, 12);
pub const METADATA: (i16, i16) = (1, 12);
pub const CREATE_TOPICS: (i16, i16) = (2, 7);
pub const LIST_OFFSETS: (i16, i16) = (1, 8);
/// Consumer-group APIs (`group`, `--group-mode group`). JoinGroup from v1,
/// the first with a rebalance timeout; OffsetFetch v8+ batches groups.
pub const FIND_COORDINATOR: (i16, i16) = (0, 4);
pub const JOIN_GROUP: (i16, i16) = (1, 9);
pub const SYNC_GROUP: (i16, i16) = (0, 5);
pub const HEARTBEAT: (i16, i16) = (0, 4);
pub const LEAVE_GROUP: (i16, i16) = (0, 5);
pub const OFFSET_COMMIT: (i16, i16) = (2, 8);
pub const OFFSET_FETCH: (i16, i16) = (1, 8);

/// One connection used request-by-request (admin calls, the fetch loop).
/// Producers split it into halves for pipelining (see `producer`).
pub struct Client {
    pub stream: TcpStream,
    pub addr: String,
    pub versions: Versions,
    pub timeout: Duration,
    next_corr: i32,
    /// Reused for response frames (see [`read_frame_into`]).
    rbuf: BytesMut,
}

impl Client {
    /// Connects (bounded by `timeout`), sets TCP_NODELAY and learns the
    /// broker's API versions (ApiVersions v0, which every broker answers).
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Client> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr}: timed out after {timeout:?}"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        let mut c = Client { stream, addr: addr.to_string(), versions: Versions::default(), timeout, next_corr: 0, rbuf: BytesMut::new() };
        let resp = c.call(&ApiVersionsRequest::default(), 0).await.with_context(|| format!("ApiVersions to {addr}"))?;
        if resp.error_code != 0 {
            bail!("ApiVersions to {addr}: {}", error_name(resp.error_code));
        }
        c.versions = Versions(resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect());
        Ok(c)
    }

    pub fn next_corr(&mut self) -> i32 {
        self.next_corr = self.next_corr.wrapping_add(1) & i32::MAX;
        self.next_corr
    }

    /// Sends one request and returns its correlation id and the undecoded
    /// response frame (header and body, without the size prefix), each step
    /// bounded by `self.timeout + extra` (extra covers a fetch's long-poll
    /// wait). The caller decodes it and checks the correlation id (see
    /// `fetch::decode` for why Fetch is not decoded by kafka-protocol).
    pub async fn round_trip<R: Request>(&mut self, req: &R, version: i16, extra: Duration) -> Result<(i32, Bytes)> {
        let corr = self.next_corr();
        let frame = encode_request(req, version, corr)?;
        let limit = self.timeout + extra;
        tokio::time::timeout(limit, self.stream.write_all(&frame))
            .await
            .map_err(|_| anyhow!("request to {} timed out", self.addr))?
            .with_context(|| format!("writing to {}", self.addr))?;
        let resp = tokio::time::timeout(limit, read_frame_into(&mut self.stream, &mut self.rbuf))
            .await
            .map_err(|_| anyhow!("no response from {} within {limit:?}", self.addr))??;
        Ok((corr, resp))
    }

    /// Sends one request and waits for its response (see [`Self::round_trip`]).
    pub async fn call_with<R: Request>(&mut self, req: &R, version: i16, extra: Duration) -> Result<R::Response> {
        let (corr, resp) = self.round_trip(req, version, extra).await?;
        let (c, body) = decode_response::<R>(resp, version)?;
        check_correlation(c, corr)?;
        Ok(body)
    }

    pub async fn call<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response> {
        self.call_with(req, version, Duration::ZERO).await
    }

    /// Metadata for one topic (no auto-creation: CreateTopics decides partitions).
    pub async fn metadata(&mut self, topic: &str) -> Result<MetadataResponse> {
        let v = self.versions.pick(ApiKey::Metadata, METADATA.0, METADATA.1)?;
        let req = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]))
            // The field exists from v4; older versions always auto-create.
            .with_allow_auto_topic_creation(v < 4);
        self.call(&req, v).await
    }
}

/// One partition and the address of its leader.
#[derive(Debug, Clone)]
pub struct PartitionLeader {
    pub partition: i32,
    pub leader: String,
}

/// Partition leaders of `topic` from a Metadata response; None while the
/// topic is unknown or some partition has no leader yet.
fn leaders(md: &MetadataResponse, topic: &str) -> Result<Option<Vec<PartitionLeader>>> {
    let brokers: HashMap<BrokerId, String> = md.brokers.iter().map(|b| (b.node_id, format!("{}:{}", b.host.as_str(), b.port))).collect();
    let Some(t) = md.topics.iter().find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic)) else {
        return Ok(None);
    };
    match t.error_code {
        0 => {}
        3 | 5 => return Ok(None), // UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE
        c => bail!("metadata for topic {topic}: {}", error_name(c)),
    }
    let mut out = Vec::with_capacity(t.partitions.len());
    for p in &t.partitions {
        if p.error_code != 0 || p.leader_id.0 < 0 {
            return Ok(None);
        }
        let Some(addr) = brokers.get(&p.leader_id) else { return Ok(None) };
        out.push(PartitionLeader { partition: p.partition_index, leader: addr.clone() });
    }
    if out.is_empty() {
        return Ok(None);
    }
    out.sort_by_key(|p| p.partition);
    Ok(Some(out))
}

/// Makes sure `topic` exists (CreateTopics with `partitions` and
/// `replication_factor` when missing) and returns its partition leaders once
/// every partition has one, bounded by `timeout`.
pub async fn ensure_topic(boot: &mut Client, topic: &str, partitions: i32, replication_factor: i16, timeout: Duration) -> Result<Vec<PartitionLeader>> {
    let md = boot.metadata(topic).await?;
    if let Some(l) = leaders(&md, topic)? {
        if l.len() as i32 != partitions {
            eprintln!("loadgen: topic {topic} exists with {} partitions (asked for {partitions}); using it as it is", l.len());
        }
        return Ok(l);
    }
    let exists = md.topics.iter().any(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic) && t.error_code == 0);
    if !exists {
        // CreateTopics belongs to the controller; a KRaft broker forwards it anyway.
        let controller = md.brokers.iter().find(|b| b.node_id == md.controller_id).map(|b| format!("{}:{}", b.host.as_str(), b.port));
        let mut ctl_conn;
        let ctl: &mut Client = match controller {
            Some(a) if a != boot.addr => {
                ctl_conn = Client::connect(&a, boot.timeout).await?;
                &mut ctl_conn
            }
            _ => boot,
        };
        let v = ctl.versions.pick(ApiKey::CreateTopics, CREATE_TOPICS.0, CREATE_TOPICS.1)?;
        let req = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)])
            .with_timeout_ms(timeout.as_millis().min(i32::MAX as u128) as i32);
        let resp = ctl.call_with(&req, v, timeout).await?;
        for t in &resp.topics {
            match t.error_code {
                0 | 36 => {} // created, or TOPIC_ALREADY_EXISTS (a concurrent run)
                c => bail!("creating topic {topic}: {}{}", error_name(c), t.error_message.as_ref().map(|m| format!(" ({})", m.as_str())).unwrap_or_default()),
            }
        }
    }
    let until = Instant::now() + timeout;
    loop {
        let md = boot.metadata(topic).await?;
        if let Some(l) = leaders(&md, topic)? {
            return Ok(l);
        }
        if Instant::now() >= until {
            bail!("topic {topic}: partitions still without a leader after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Offsets of `partitions` at `timestamp` (-2 earliest, -1 latest).
pub async fn list_offsets(c: &mut Client, topic: &str, partitions: &[i32], timestamp: i64) -> Result<HashMap<i32, i64>> {
    let v = c.versions.pick(ApiKey::ListOffsets, LIST_OFFSETS.0, LIST_OFFSETS.1)?;
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(partitions.iter().map(|&p| ListOffsetsPartition::default().with_partition_index(p).with_timestamp(timestamp)).collect())]);
    let resp = c.call(&req, v).await?;
    let mut out = HashMap::new();
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                bail!("ListOffsets {topic}-{}: {}", p.partition_index, error_name(p.error_code));
            }
            out.insert(p.partition_index, p.offset);
        }
    }
    for p in partitions {
        if !out.contains_key(p) {
            bail!("ListOffsets: no answer for {topic}-{p}");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ProduceRequest;

    #[test]
    fn error_names_are_kafka_style() {
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(0), "NONE");
    }

    #[test]
    fn request_frame_has_size_and_correlation_id() {
        let f = encode_request(&ProduceRequest::default().with_acks(1), 9, 77).expect("encode");
        let len = i32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
        assert_eq!(len, f.len() - 4);
        assert_eq!(i16::from_be_bytes([f[4], f[5]]), 0); // api key Produce
        assert_eq!(i16::from_be_bytes([f[6], f[7]]), 9);
        assert_eq!(i32::from_be_bytes([f[8], f[9], f[10], f[11]]), 77);
    }

    #[test]
    fn version_pick_intersects() {
        let v = Versions([(0i16, (3i16, 9i16))].into_iter().collect());
        assert_eq!(v.pick(ApiKey::Produce, 3, 12).expect("pick"), 9);
        assert!(v.pick(ApiKey::Produce, 10, 12).is_err());
        assert!(v.pick(ApiKey::Fetch, 4, 12).is_err());
    }
}
