//! What every client subcommand shares: the `--bootstrap-server` option, the
//! librdkafka configuration built from it, a small blocking request helper for
//! the Kafka APIs librdkafka has no call for, and the ONE place where a Kafka
//! error code becomes a message naming the error and what to do about it.
//!
//! librdkafka (the `rdkafka` crate) is the full client: produce, group
//! consumption, the admin calls it has. The raw helper ([`Conn`]) speaks the
//! protocol through the `kafka-protocol` crate over a std `TcpStream`; it
//! negotiates versions with ApiVersions first, so it works against any broker
//! that supports the API at some version we know.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, HeaderVersion, Request, StrBytes};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Default bootstrap address, as Kafka's tools and `shardlog start` use.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";
/// Timeout of one admin/metadata operation. A CLI call should fail in
/// seconds, not hang, when the broker is unreachable.
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// Name we send as `client.id`, so broker logs show who asked.
pub const CLIENT_ID: &str = "shardlog-cli";
/// Largest response frame the raw helper accepts (a bad peer must not make
/// us allocate gigabytes).
const MAX_RESPONSE_BYTES: usize = 100 << 20;

/// How to reach the cluster; shared by every client subcommand.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Brokers to bootstrap from, HOST:PORT[,HOST:PORT...].
    #[arg(long = "bootstrap-server", env = "SHARDLOG_BOOTSTRAP", default_value = DEFAULT_BOOTSTRAP,
          value_name = "HOST:PORT[,...]", global = true)]
    pub bootstrap_server: String,
}

impl ConnectArgs {
    /// librdkafka configuration: bootstrap, client id, bounded timeouts, and
    /// librdkafka's own log kept to critical messages (our errors say what
    /// went wrong; its per-connection chatter would only bury that line).
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_server)
            .set("client.id", CLIENT_ID)
            .set("socket.timeout.ms", "30000")
            .set("log_level", "2")
            .set_log_level(RDKafkaLogLevel::Critical);
        c
    }

    /// An admin client (create/delete topics, configs, records, groups).
    pub fn admin(&self) -> Result<rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>, CliError> {
        self.client_config().create().map_err(|e| CliError::rdkafka("create admin client", e))
    }

    /// A consumer for metadata, watermarks and offset calls; no group unless given.
    pub fn consumer(&self, group: Option<&str>) -> Result<rdkafka::consumer::BaseConsumer, CliError> {
        let mut c = self.client_config();
        c.set("enable.auto.commit", "false").set("enable.partition.eof", "false");
        if let Some(g) = group {
            c.set("group.id", g);
        }
        c.create().map_err(|e| CliError::rdkafka("create consumer", e))
    }

    /// Bootstrap addresses in order.
    pub fn addresses(&self) -> Vec<String> {
        self.bootstrap_server.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    }

    /// A raw connection to the first bootstrap broker that answers.
    pub fn connect(&self) -> Result<Conn, CliError> {
        let mut last = None;
        for addr in self.addresses() {
            match Conn::open(&addr) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| CliError::Input("--bootstrap-server is empty".into())))
    }
}

/// Admin options with the CLI's timeouts.
/// Enqueues one record, waiting (and serving delivery callbacks) while
/// librdkafka's local queue is full; any other error ends the command.
pub fn send_waiting<K, P, C>(
    producer: &rdkafka::producer::BaseProducer<C>,
    mut record: rdkafka::producer::BaseRecord<'_, K, P, C::DeliveryOpaque>,
) -> Result<(), CliError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
    C: rdkafka::producer::ProducerContext,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, r)) => return Err(CliError::rdkafka(format!("produce to '{}'", r.topic), e)),
        }
    }
}

/// Admin options for every admin call: request and operation timeouts of [`OP_TIMEOUT`].
pub fn admin_opts() -> rdkafka::admin::AdminOptions {
    rdkafka::admin::AdminOptions::new().request_timeout(Some(OP_TIMEOUT)).operation_timeout(Some(OP_TIMEOUT))
}

/// Run an rdkafka admin future to completion. Admin futures are completed by
/// librdkafka's own threads, so no async runtime is needed.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// Everything a client subcommand can fail with. Displayed as one line.
#[derive(thiserror::Error, Debug)]
pub enum CliError {
    /// The broker answered with a Kafka error code.
    #[error("{name}: {context}: {description} {advice}")]
    Kafka {
        /// The error's Kafka name, e.g. `TOPIC_ALREADY_EXISTS`.
        name: String,
        /// What the command was doing, e.g. `create topic 'orders'`.
        context: String,
        /// Kafka's description of the error.
        description: String,
        /// What the user can do about it; empty when there is nothing to suggest.
        advice: String,
    },
    /// librdkafka failed locally (no broker reachable, timeout, bad config).
    #[error("{context}: {detail} {advice}")]
    Client {
        /// What the command was doing.
        context: String,
        /// librdkafka's error text.
        detail: String,
        /// What the user can do about it, e.g. check --bootstrap-server; may be empty.
        advice: String,
    },
    /// Bad command-line input or input file.
    #[error("{0}")]
    Input(String),
    /// Reading input or writing output failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being read or written, e.g. the input file's path.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl CliError {
    /// A Kafka error code from a response (`code` != 0).
    pub fn kafka(context: impl Into<String>, code: i16) -> CliError {
        let (name, description) = kafka_error_name(code);
        CliError::Kafka { advice: advice(&name).to_string(), name, context: context.into(), description }
    }

    /// An rdkafka error code: broker codes (> 0 or -1) become Kafka errors,
    /// librdkafka's local codes (< -1) client errors.
    pub fn rd_code(context: impl Into<String>, code: RDKafkaErrorCode) -> CliError {
        let n = code as i32;
        if n > 0 || n == -1 {
            return CliError::kafka(context, n as i16);
        }
        let advice = match code {
            RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::Resolve => "Is a broker running at --bootstrap-server (or SHARDLOG_BOOTSTRAP)?",
            RDKafkaErrorCode::UnsupportedFeature => "The broker does not support the API this command needs.",
            _ => "",
        };
        CliError::Client { context: context.into(), detail: code.to_string(), advice: advice.into() }
    }

    /// Any rdkafka error.
    pub fn rdkafka(context: impl Into<String>, e: KafkaError) -> CliError {
        let context = context.into();
        match &e {
            KafkaError::AdminOp(code) => CliError::rd_code(context, *code),
            _ => match e.rdkafka_error_code() {
                Some(code) => CliError::rd_code(context, code),
                None => CliError::Client { context, detail: e.to_string(), advice: String::new() },
            },
        }
    }

    /// A failed read of input or write of output, with what was being read or written.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> CliError {
        CliError::Io { context: context.into(), source }
    }

    /// Process exit code: 2 for bad input (as clap does), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_) => 2,
            _ => 1,
        }
    }
}

/// Kafka's name for an error code (`TOPIC_ALREADY_EXISTS`, from the
/// kafka-protocol crate's table) and its description (librdkafka's text).
pub fn kafka_error_name(code: i16) -> (String, String) {
    let description = match rdkafka::types::RDKafkaRespErr::try_from(code as i32) {
        Ok(e) => {
            let s = RDKafkaErrorCode::from(e).to_string();
            match s.split_once("(Broker: ") {
                Some((_, d)) => format!("{}.", d.trim_end_matches(')')),
                None => s,
            }
        }
        Err(_) => format!("error code {code}."),
    };
    match ResponseError::try_from_code(code) {
        None => ("NONE".into(), "no error".into()),
        Some(ResponseError::Unknown(c)) => (format!("UNKNOWN_ERROR_CODE_{c}"), description),
        Some(e) => (screaming_snake(&format!("{e:?}")), description),
    }
}

/// `TopicAlreadyExists` -> `TOPIC_ALREADY_EXISTS`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// What to do about a Kafka error, for the errors a CLI user can act on.
fn advice(name: &str) -> &'static str {
    match name {
        "TOPIC_ALREADY_EXISTS" => "Choose another name, or delete it first with `shardlog topic delete`.",
        "UNKNOWN_TOPIC_OR_PARTITION" => "Check the name with `shardlog topic list` (or the partition with `shardlog topic describe`).",
        "INVALID_TOPIC_EXCEPTION" => "Topic names are 1-249 characters of [a-zA-Z0-9._-], and not `.` or `..`.",
        "INVALID_PARTITIONS" => "Give --partitions a positive number; partitions can only be added, never removed.",
        "INVALID_REPLICATION_FACTOR" => "Give --replication-factor at most the number of brokers (`shardlog cluster info`).",
        "INVALID_CONFIG" => "Check the key and value (`shardlog config describe --all` lists the keys).",
        "TOPIC_DELETION_DISABLED" => "Set delete.topic.enable=true on the broker to allow deletes.",
        "NON_EMPTY_GROUP" => "Stop the group's consumers first (see `shardlog group describe --members`).",
        "GROUP_ID_NOT_FOUND" => "Check the name with `shardlog group list`.",
        "GROUP_SUBSCRIBED_TO_TOPIC" => "Stop the consumers subscribed to the topic first.",
        "UNSUPPORTED_VERSION" => "The broker does not support this API; `shardlog api-versions` lists what it supports.",
        "OFFSET_OUT_OF_RANGE" => "Pick an offset between the partition's low and high watermark.",
        "MESSAGE_TOO_LARGE" | "RECORD_LIST_TOO_LARGE" => "Send smaller records, or raise max.message.bytes on the topic.",
        "COORDINATOR_NOT_AVAILABLE" | "COORDINATOR_LOAD_IN_PROGRESS" | "NOT_COORDINATOR" => "Retry in a few seconds.",
        "POLICY_VIOLATION" => "The broker's policy refused the change.",
        "INVALID_REQUEST" => "The broker refused the request; see its log.",
        _ => "",
    }
}

/// Parse `k=v`, splitting at the first `=`.
pub fn parse_key_value(s: &str) -> Result<(String, String), CliError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(CliError::Input(format!("expected KEY=VALUE, got '{s}'"))),
    }
}

/// A blocking connection speaking raw Kafka frames, after ApiVersions.
pub struct Conn {
    stream: TcpStream,
    addr: String,
    next_correlation_id: i32,
    /// The broker's supported range per API key.
    versions: Vec<(i16, i16, i16)>,
}

impl Conn {
    /// Connect to `addr` (HOST:PORT) and learn its API versions.
    pub fn open(addr: &str) -> Result<Conn, CliError> {
        let unreachable = |e: std::io::Error| CliError::Client {
            context: format!("connect to {addr}"),
            detail: e.to_string(),
            advice: "Is a broker running at --bootstrap-server (or SHARDLOG_BOOTSTRAP)?".into(),
        };
        let sock =
            std::net::ToSocketAddrs::to_socket_addrs(addr).map_err(unreachable)?.next().ok_or_else(|| CliError::Input(format!("cannot resolve '{addr}'")))?;
        let stream = TcpStream::connect_timeout(&sock, Duration::from_secs(10)).map_err(unreachable)?;
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(Some(OP_TIMEOUT)).ok();
        stream.set_write_timeout(Some(OP_TIMEOUT)).ok();
        let mut conn = Conn { stream, addr: addr.to_string(), next_correlation_id: 1, versions: Vec::new() };
        conn.versions = conn.fetch_api_versions()?;
        Ok(conn)
    }

    /// The broker address this connection was opened to (HOST:PORT, as given).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The broker's `(api_key, min, max)` triples, as it reported them.
    pub fn api_versions(&self) -> &[(i16, i16, i16)] {
        &self.versions
    }

    /// ApiVersions v3 (KIP-511); a broker that does not know v3 answers with
    /// a v0 body carrying UNSUPPORTED_VERSION, so fall back to v0 then.
    fn fetch_api_versions(&mut self) -> Result<Vec<(i16, i16, i16)>, CliError> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("shardlog-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp: ApiVersionsResponse = match self.roundtrip(3, &req) {
            Ok(r) if r.error_code == 0 => r,
            _ => {
                // Reconnect: after a version mismatch the stream may hold a
                // response we could not parse.
                let sock = self.stream.peer_addr().map_err(|e| CliError::io("reconnect", e))?;
                self.stream = TcpStream::connect_timeout(&sock, Duration::from_secs(10)).map_err(|e| CliError::io("reconnect", e))?;
                self.stream.set_read_timeout(Some(OP_TIMEOUT)).ok();
                self.roundtrip(0, &ApiVersionsRequest::default())?
            }
        };
        if resp.error_code != 0 {
            return Err(CliError::kafka(format!("ApiVersions to {}", self.addr), resp.error_code));
        }
        Ok(resp.api_keys.iter().map(|k| (k.api_key, k.min_version, k.max_version)).collect())
    }

    /// The highest version of `R` both we and the broker support, at most
    /// `cap` (the newest version whose request/response shape this CLI fills).
    pub fn version_for<R: Request>(&self, cap: i16) -> Result<i16, CliError> {
        let ours = R::VERSIONS;
        let key = ApiKey::try_from(R::KEY).map(|k| format!("{k:?}")).unwrap_or_else(|_| R::KEY.to_string());
        let theirs = self.versions.iter().find(|(k, _, _)| *k == R::KEY);
        let Some(&(_, min, max)) = theirs else {
            return Err(CliError::Client {
                context: format!("{key} to {}", self.addr),
                detail: format!("the broker does not support the {key} API"),
                advice: "Use a broker that supports it; `shardlog api-versions` lists what it supports.".into(),
            });
        };
        let v = max.min(ours.max).min(cap);
        if v < min.max(ours.min) {
            return Err(CliError::Client {
                context: format!("{key} to {}", self.addr),
                detail: format!("no common version (broker {min}-{max}, this tool {}-{})", ours.min, ours.max.min(cap)),
                advice: String::new(),
            });
        }
        Ok(v)
    }

    /// Send `req` at the best common version (at most `cap`) and decode the answer.
    pub fn request<R: Request>(&mut self, cap: i16, req: &R) -> Result<R::Response, CliError> {
        let v = self.version_for::<R>(cap)?;
        self.roundtrip(v, req)
    }

    /// Send `req` at `version` and decode its response.
    pub fn roundtrip<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response, CliError> {
        let corr = self.next_correlation_id;
        self.next_correlation_id += 1;
        let api = ApiKey::try_from(R::KEY).map(|k| format!("{k:?}")).unwrap_or_default();
        let ctx = format!("{api} v{version} to {}", self.addr);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut body = BytesMut::new();
        encode_request_header_into_buffer(&mut body, &header)
            .and_then(|_| req.encode(&mut body, version))
            .map_err(|e| CliError::Input(format!("{ctx}: cannot encode request: {e}")))?;
        let mut frame = BytesMut::with_capacity(4 + body.len());
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        self.stream.write_all(&frame).map_err(|e| CliError::io(ctx.clone(), e))?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).map_err(|e| CliError::io(ctx.clone(), e))?;
        let len = i32::from_be_bytes(len);
        if len < 4 || len as usize > MAX_RESPONSE_BYTES {
            return Err(CliError::io(ctx, std::io::Error::other(format!("implausible response size {len}"))));
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf).map_err(|e| CliError::io(ctx.clone(), e))?;
        let mut buf = Bytes::from(buf);
        let got = buf.get_i32();
        if got != corr {
            return Err(CliError::io(ctx, std::io::Error::other(format!("correlation id {got}, expected {corr}"))));
        }
        if R::Response::header_version(version) >= 1 {
            skip_tagged_fields(&mut buf).map_err(|e| CliError::io(ctx.clone(), e))?;
        }
        R::Response::decode(&mut buf, version).map_err(|e| CliError::io(ctx, std::io::Error::other(format!("cannot decode response: {e}"))))
    }
}

/// Response header v1 ends in tagged fields: a count, then (tag, size, bytes).
fn skip_tagged_fields(buf: &mut Bytes) -> std::io::Result<()> {
    let n = get_uvarint(buf)?;
    for _ in 0..n {
        get_uvarint(buf)?;
        let size = get_uvarint(buf)? as usize;
        if buf.remaining() < size {
            return Err(std::io::Error::other("truncated tagged field"));
        }
        buf.advance(size);
    }
    Ok(())
}

fn get_uvarint(buf: &mut Bytes) -> std::io::Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if !buf.has_remaining() {
            return Err(std::io::Error::other("truncated varint"));
        }
        let b = buf.get_u8();
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(std::io::Error::other("varint too long"))
}

/// Our own (kafka-protocol's) version range of an API, for `api-versions`.
pub fn client_versions(key: ApiKey) -> (i16, i16) {
    let r = key.valid_versions();
    (r.min, r.max)
}

/// Kafka's error name for use by tests and output (`0` -> `NONE`).
pub fn error_name(code: i16) -> String {
    kafka_error_name(code).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(0), "NONE");
    }

    #[test]
    fn key_value_parsing() {
        assert_eq!(parse_key_value("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_key_value("nope").is_err());
        assert!(parse_key_value("=v").is_err());
    }
}
