//! Shared harness for the integration tests: runs the real `shardlog` binary
//! and talks to it with librdkafka (the `rdkafka` crate) and, where a test
//! needs byte-level control, with raw Kafka protocol frames built with the
//! `kafka-protocol` crate.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, MetadataRequest, MetadataResponse, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// How long to wait for the "listening" line after spawning the broker.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGTERM'd broker may take to exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Generous default for client operations on a slow, shared 2-core machine.
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);

const LISTENING_PREFIX: &str = "shardlog listening on ";
/// The admin listener's line, printed before the listening line.
const ADMIN_LISTENING_PREFIX: &str = "shardlog admin listening on ";

/// Path of the broker binary: set by Cargo at compile time for integration
/// tests of the shardlog crate; `SHARDLOG_BIN` at run time otherwise.
pub fn broker_bin() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_shardlog") {
        return PathBuf::from(p);
    }
    match std::env::var_os("SHARDLOG_BIN") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "no shardlog binary: CARGO_BIN_EXE_shardlog was not set at compile time \
             and SHARDLOG_BIN is not set"
        ),
    }
}

// ---------------------------------------------------------------------------
// One broker at a time per test binary: the machine has 2 cores and every
// broker pins 2 shards, so parallel tests would only starve each other.
// ---------------------------------------------------------------------------

static SERIAL: Mutex<Option<(std::thread::ThreadId, usize)>> = Mutex::new(None);
static SERIAL_CV: Condvar = Condvar::new();

/// Held by a `Broker` for its whole life (Send, unlike a MutexGuard).
/// Re-entrant per thread, so one test may run two brokers side by side.
struct SerialGuard;

impl SerialGuard {
    fn acquire() -> SerialGuard {
        let me = std::thread::current().id();
        let mut st = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match st.as_mut() {
                None => {
                    *st = Some((me, 1));
                    break;
                }
                Some((owner, n)) if *owner == me => {
                    *n += 1;
                    break;
                }
                Some(_) => st = SERIAL_CV.wait(st).unwrap_or_else(|e| e.into_inner()),
            }
        }
        SerialGuard
    }
}

impl Drop for SerialGuard {
    fn drop(&mut self) {
        let mut st = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, n)) = st.as_mut() {
            *n -= 1;
            if *n == 0 {
                *st = None;
                SERIAL_CV.notify_all();
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Broker process
// ---------------------------------------------------------------------------

/// A running (or stopped) shardlog broker with its own temporary log dir.
/// The log dir and the port survive `stop`/`kill9` + `restart`.
pub struct Broker {
    child: Option<Child>,
    readers: Vec<JoinHandle<()>>,
    dir: tempfile::TempDir,
    port: u16,
    extra: Vec<(String, String)>,
    /// RLIMIT_NOFILE (soft and hard) every generation starts with; None = inherited.
    nofile: Option<u64>,
    output: Arc<Mutex<String>>,
    generation: u32,
    /// `http://127.0.0.1:PORT` of the admin listener (a new port each generation).
    admin_url: Option<String>,
    _serial: SerialGuard,
}

impl Broker {
    /// Start a broker on a free port (`listeners=PLAINTEXT://127.0.0.1:0`),
    /// 2 shards (`shard.cores=0,1`) and a fresh temporary `log.dirs`, plus
    /// the given extra `--set key=value` pairs.
    pub fn start(extra: &[(&str, &str)]) -> Broker {
        Broker::start_with_nofile(extra, None)
    }

    /// Like [`Broker::start`], with RLIMIT_NOFILE set to `nofile` (soft and
    /// hard, since the broker raises soft to hard) for this and every restart.
    pub fn start_with_nofile(extra: &[(&str, &str)], nofile: Option<u64>) -> Broker {
        let serial = SerialGuard::acquire();
        let dir = tempfile::Builder::new().prefix("shardlog-it-").tempdir().expect("create temp log dir");
        let mut b = Broker {
            child: None,
            readers: Vec::new(),
            dir,
            port: 0,
            extra: extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            nofile,
            output: Arc::new(Mutex::new(String::new())),
            generation: 0,
            admin_url: None,
            _serial: serial,
        };
        if let Err(e) = b.spawn(0) {
            panic!("broker did not start: {e} (broker output is printed below)");
        }
        b
    }

    /// The admin listener's `http://127.0.0.1:PORT` (the harness gives every
    /// generation an ephemeral port; `admin.listener=0` in the extras disables it).
    pub fn admin_url(&self) -> String {
        self.admin_url.clone().expect("this broker runs no admin listener")
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// A field of /proc/PID/status in KiB (e.g. "VmPeak", "VmHWM", "VmRSS").
    pub fn proc_status_kib(&self, field: &str) -> Option<u64> {
        let pid = self.pid()?;
        let st = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        st.lines().find(|l| l.starts_with(&format!("{field}:"))).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok())
    }

    /// Everything the broker printed so far (all generations).
    pub fn output(&self) -> String {
        self.output.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn output_banner(&self) -> String {
        format!("----- shardlog output (stdout+stderr, log dir {}) -----\n{}\n----- end of shardlog output -----", self.dir.path().display(), self.output())
    }

    fn note(&self, line: &str) {
        let mut o = self.output.lock().unwrap_or_else(|e| e.into_inner());
        o.push_str(&format!("[harness] {line}\n"));
    }

    /// Spawn one broker process and wait for its listening line.
    fn spawn(&mut self, port: u16) -> Result<(), String> {
        self.generation += 1;
        let bin = broker_bin();
        let mut cmd = Command::new(&bin);
        cmd.arg("start")
            .arg("--set")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .arg("--set")
            .arg(format!("log.dirs={}", self.dir.path().display()))
            .arg("--set")
            .arg("shard.cores=0,1")
            .arg("--set")
            .arg("admin.listener=http://127.0.0.1:0");
        for (k, v) in &self.extra {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        if let Some(n) = self.nofile {
            limit_nofile(&mut cmd, n);
        }
        self.note(&format!("generation {}: spawning {} {:?}", self.generation, bin.display(), cmd.get_args().collect::<Vec<_>>()));
        let mut child = cmd.spawn().map_err(|e| format!("spawn {}: {e}", bin.display()))?;

        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let out = self.output.clone();
        self.readers.push(std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let s = String::from_utf8_lossy(&line).into_owned();
                        out.lock().unwrap_or_else(|e| e.into_inner()).push_str(&format!("[stdout] {s}"));
                        let _ = tx.send(s);
                    }
                }
            }
        }));
        let out = self.output.clone();
        self.readers.push(std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let s = String::from_utf8_lossy(&line);
                        out.lock().unwrap_or_else(|e| e.into_inner()).push_str(&format!("[stderr] {s}"));
                    }
                }
            }
        }));
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.kill_child();
                return Err(format!("no `{LISTENING_PREFIX}HOST:PORT` line on stdout within {START_TIMEOUT:?}"));
            }
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix(ADMIN_LISTENING_PREFIX) {
                        self.admin_url = Some(url.trim().to_string());
                    }
                    if let Some(pos) = line.find(LISTENING_PREFIX) {
                        let addr = line[pos + LISTENING_PREFIX.len()..].trim();
                        let bound: u16 =
                            addr.rsplit(':').next().and_then(|p| p.parse().ok()).ok_or_else(|| format!("cannot parse port from listening line {line:?}"))?;
                        if port != 0 && bound != port {
                            self.kill_child();
                            return Err(format!("asked for port {port}, broker bound {bound}"));
                        }
                        self.port = bound;
                        self.note(&format!("generation {}: listening on port {bound}", self.generation));
                        return Ok(());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process is exiting. Collect status and output.
                    let status = self.wait_child(Duration::from_secs(5));
                    self.join_readers();
                    return Err(format!("broker exited before listening (status {status:?})"));
                }
            }
        }
    }

    fn wait_child(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(st)) => {
                    self.child = None;
                    return Some(st);
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Ok(None) => return None,
                Err(_) => return None,
            }
        }
    }

    fn kill_child(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.join_readers();
    }

    fn join_readers(&mut self) {
        for h in self.readers.drain(..) {
            let _ = h.join();
        }
    }

    /// SIGTERM, wait (up to `STOP_TIMEOUT`), assert a clean exit (status 0).
    pub fn stop(&mut self) {
        let pid = match self.child.as_ref() {
            Some(c) => c.id(),
            None => panic!("stop(): broker is not running"),
        };
        self.note(&format!("generation {}: SIGTERM", self.generation));
        let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed: {}", std::io::Error::last_os_error());
        match self.wait_child(STOP_TIMEOUT) {
            Some(st) => {
                self.join_readers();
                self.note(&format!("generation {}: exited with {st:?}", self.generation));
                if !st.success() {
                    panic!("broker did not exit cleanly after SIGTERM: {st:?} (broker output is printed below)");
                }
            }
            None => {
                self.kill_child();
                panic!("broker did not exit within {STOP_TIMEOUT:?} of SIGTERM (broker output is printed below)");
            }
        }
    }

    /// SIGKILL the broker (no chance to flush or clean up) and reap it.
    pub fn kill9(&mut self) {
        let Some(mut c) = self.child.take() else {
            panic!("kill9(): broker is not running");
        };
        self.note(&format!("generation {}: SIGKILL", self.generation));
        let _ = c.kill(); // SIGKILL on Unix
        let _ = c.wait();
        self.join_readers();
    }

    /// Changes (or adds) a `--set key=value` for the next (re)start.
    #[allow(dead_code)]
    pub fn set(&mut self, key: &str, value: &str) {
        self.extra.retain(|(k, _)| k != key);
        self.extra.push((key.to_string(), value.to_string()));
    }

    /// Start again on the same log dir and the same port. If the broker is
    /// still running it is stopped cleanly first. Binding the port may fail
    /// briefly right after a kill; that is retried for a few seconds.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let port = self.port;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.spawn(port) {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline && self.child.is_none() => {
                    self.note(&format!("restart attempt failed: {e}; retrying"));
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!("broker did not restart on port {port}: {e} (broker output is printed below)"),
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill_child();
        if std::thread::panicking() {
            eprintln!("{}", self.output_banner());
        }
    }
}

/// Runs `cmd` with RLIMIT_NOFILE set to `n`, soft and hard (the broker raises
/// its soft limit to the hard one, so both must be low to test a low limit).
pub fn limit_nofile(cmd: &mut Command, n: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit { rlim_cur: n, rlim_max: n };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------
// rdkafka helpers
// ---------------------------------------------------------------------------

/// Base client config: bootstrap + modest timeouts.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set("client.id", "shardlog-it").set("socket.timeout.ms", "30000").set("broker.address.family", "v4");
    c
}

/// Producer config: acks=all, linger.ms=5.
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("acks", "all").set("linger.ms", "5").set("message.timeout.ms", "60000").set("request.timeout.ms", "30000");
    c
}

/// Consumer config for assign()-only use: a group.id is required by
/// librdkafka for assign(), but nothing is committed or stored.
pub fn consumer_config(bootstrap: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("group.id", "shardlog-it-assign-only")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100");
    c
}

pub fn admin_client(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client_config(bootstrap).create().expect("create AdminClient")
}

pub fn admin_opts() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(OP_TIMEOUT)).operation_timeout(Some(OP_TIMEOUT))
}

/// CreateTopics through the AdminClient; panics unless the topic was created.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin = admin_client(bootstrap);
    let res = admin.create_topics(&[NewTopic::new(name, partitions, TopicReplication::Fixed(1))], &admin_opts()).await.expect("CreateTopics request failed");
    assert_eq!(res.len(), 1, "one topic result expected: {res:?}");
    match &res[0] {
        Ok(n) => assert_eq!(n, name),
        Err((n, code)) => panic!("CreateTopics {n} failed: {code:?}"),
    }
}

/// A consumed record, copied out of librdkafka.
#[derive(Debug, Clone, PartialEq)]
pub struct Rec {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

/// Assign `topic` partitions `0..partitions` at `Offset::Beginning` and
/// collect until `target` records arrived or `timeout` passed.
pub fn consume_all(bootstrap: &str, topic: &str, partitions: i32, target: usize, timeout: Duration) -> Vec<Rec> {
    let starts: Vec<(i32, Offset)> = (0..partitions).map(|p| (p, Offset::Beginning)).collect();
    consume_from(bootstrap, topic, &starts, target, timeout)
}

/// Assign the given (partition, start offset) pairs and collect until
/// `target` records arrived or `timeout` passed (then return what came).
pub fn consume_from(bootstrap: &str, topic: &str, starts: &[(i32, Offset)], target: usize, timeout: Duration) -> Vec<Rec> {
    let consumer: BaseConsumer = consumer_config(bootstrap).create().expect("create BaseConsumer");
    let mut tpl = TopicPartitionList::new();
    for &(p, off) in starts {
        tpl.add_partition_offset(topic, p, off).expect("tpl offset");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut errors = 0usize;
    while out.len() < target && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => out.push(to_rec(&m)),
            Some(Err(e)) => {
                errors += 1;
                if errors <= 20 {
                    eprintln!("consumer error (ignored, keeps polling): {e}");
                }
            }
        }
    }
    out
}

pub fn to_rec<M: Message>(m: &M) -> Rec {
    let headers = match m.headers() {
        Some(h) => h.iter().map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec()))).collect(),
        None => Vec::new(),
    };
    Rec {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(|k| k.to_vec()),
        value: m.payload().map(|v| v.to_vec()),
        headers,
        timestamp: m.timestamp().to_millis(),
    }
}

/// Group records by partition, each list sorted by offset.
pub fn by_partition(recs: &[Rec]) -> BTreeMap<i32, Vec<Rec>> {
    let mut m: BTreeMap<i32, Vec<Rec>> = BTreeMap::new();
    for r in recs {
        m.entry(r.partition).or_default().push(r.clone());
    }
    for v in m.values_mut() {
        v.sort_by_key(|r| r.offset);
    }
    m
}

/// Unique topic name per test (brokers are per test anyway; this just keeps
/// names readable in broker logs).
pub fn topic_name(base: &str) -> String {
    format!("{base}-{}", std::process::id())
}

// ---------------------------------------------------------------------------
// Raw protocol helpers (kafka-protocol crate over a blocking TcpStream)
// ---------------------------------------------------------------------------

/// A blocking connection speaking raw Kafka frames.
pub struct RawConn {
    pub stream: TcpStream,
    next_correlation_id: i32,
}

impl RawConn {
    pub fn connect(bootstrap: &str) -> RawConn {
        let stream = TcpStream::connect(bootstrap).expect("raw connect");
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        RawConn { stream, next_correlation_id: 1 }
    }

    pub fn set_read_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).unwrap();
    }

    /// Encode header (+ body) at `version` and send one size-prefixed frame.
    /// Returns the correlation id used.
    pub fn send<R: Request>(&mut self, version: i16, req: &R) -> i32 {
        let corr = self.next_correlation_id;
        self.next_correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = corr;
        header.client_id = Some(StrBytes::from_static_str("shardlog-it-raw"));
        let mut body = BytesMut::new();
        encode_request_header_into_buffer(&mut body, &header).expect("encode header");
        req.encode(&mut body, version).expect("encode request");
        self.write_frame(&body);
        corr
    }

    /// Write a 4-byte big-endian size followed by `payload`.
    pub fn write_frame(&mut self, payload: &[u8]) {
        let mut frame = BytesMut::with_capacity(4 + payload.len());
        frame.put_i32(payload.len() as i32);
        frame.put_slice(payload);
        self.stream.write_all(&frame).expect("write frame");
    }

    /// Read one size-prefixed frame (body without the size).
    pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        assert!((0..=256 * 1024 * 1024).contains(&len), "implausible response frame size {len}");
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf)?;
        Ok(Bytes::from(buf))
    }

    /// Read one response for request type `R` sent at `version` with
    /// correlation id `corr`; decodes header and body.
    pub fn recv<R: Request>(&mut self, version: i16, corr: i32) -> R::Response {
        let mut frame = self.read_frame().expect("read response frame");
        let got = parse_response_header(&mut frame, R::Response::header_version(version));
        assert_eq!(got, corr, "correlation id mismatch");
        R::Response::decode(&mut frame, version).expect("decode response body")
    }

    pub fn roundtrip<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        let corr = self.send(version, req);
        self.recv::<R>(version, corr)
    }

    /// Read until the peer closes (Ok(0) or a reset). Returns Ok(bytes seen
    /// before the close) or Err(description) if nothing closed within
    /// `timeout`.
    pub fn expect_closed(&mut self, timeout: Duration) -> Result<usize, String> {
        self.stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let deadline = Instant::now() + timeout;
        let mut seen = 0usize;
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(seen),
                Ok(n) => seen += n,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut
                        || e.kind() == std::io::ErrorKind::Interrupted =>
                {
                    if Instant::now() >= deadline {
                        return Err(format!("connection still open after {timeout:?} ({seen} bytes received)"));
                    }
                }
                // ECONNRESET / EPIPE etc.: closed by the broker.
                Err(_) => return Ok(seen),
            }
        }
    }
}

/// Response header: v0 = correlation id; v1 = correlation id + tagged fields.
pub fn parse_response_header(buf: &mut Bytes, header_version: i16) -> i32 {
    assert!(buf.remaining() >= 4, "response too short for a header");
    let corr = buf.get_i32();
    if header_version >= 1 {
        // tagged fields: unsigned varint count, then (tag, size, bytes)*
        let n = get_uvarint(buf);
        for _ in 0..n {
            let _tag = get_uvarint(buf);
            let size = get_uvarint(buf) as usize;
            buf.advance(size);
        }
    }
    corr
}

fn get_uvarint(buf: &mut Bytes) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = buf.get_u8();
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// A plain Fetch request (v4..=12 shape, topic by name) for one partition.
pub fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32, min_bytes: i32) -> kafka_protocol::messages::FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(50 * 1024 * 1024)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(TopicName(StrBytes::from_string(topic.to_string()))).with_partitions(vec![
            FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(10 * 1024 * 1024),
        ])])
        .with_rack_id(StrBytes::from_static_str(""))
}

// ---------------------------------------------------------------------------
// Raw requests and record batches: one version of each, the API version (and
// where tests differ, the timeout) chosen by the caller.
// ---------------------------------------------------------------------------

/// `StrBytes` (kafka-protocol's string) from a `&str`.
pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A record as a producer without idempotence sends it: no producer id, epoch
/// or sequence (-1), creation time `timestamp`, no headers. Idempotent and
/// transactional records set those fields over it (`Record { .., ..plain_record(..) }`).
pub fn plain_record(offset: i64, timestamp: i64, key: Option<Bytes>, value: Option<Bytes>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: -1,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// One v2 record batch of `records`, compressed with `codec`.
pub fn record_batch(records: &[Record], codec: Compression) -> Bytes {
    let mut b = BytesMut::new();
    RecordBatchEncoder::encode(&mut b, records.iter(), &RecordEncodeOptions { version: 2, compression: codec }).expect("encode record batch");
    b.freeze()
}

/// Produce of one record batch to one partition (timeout 30 s): that
/// partition's answer.
pub fn produce_raw(conn: &mut RawConn, version: i16, acks: i16, topic: &str, partition: i32, records: Bytes) -> PartitionProduceResponse {
    let req = ProduceRequest::default().with_acks(acks).with_timeout_ms(30_000).with_topic_data(vec![TopicProduceData::default()
        .with_name(TopicName(sb(topic)))
        .with_partition_data(vec![PartitionProduceData::default().with_index(partition).with_records(Some(records))])]);
    let mut resp = conn.roundtrip(version, &req);
    resp.responses.remove(0).partition_responses.remove(0)
}

/// CreateTopics of (name, partitions), replication factor 1: (name, error
/// code, error message or "") per topic, in the broker's order.
pub fn create_topics_raw(conn: &mut RawConn, version: i16, timeout_ms: i32, topics: &[(&str, i32)], validate_only: bool) -> Vec<(String, i16, String)> {
    let req = CreateTopicsRequest::default().with_timeout_ms(timeout_ms).with_validate_only(validate_only).with_topics(
        topics.iter().map(|(n, p)| CreatableTopic::default().with_name(TopicName(sb(n))).with_num_partitions(*p).with_replication_factor(1)).collect(),
    );
    let resp = conn.roundtrip(version, &req);
    resp.topics.iter().map(|t| (t.name.0.to_string(), t.error_code, t.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default())).collect()
}

/// CreatePartitions growing one topic to `count` partitions: (error code,
/// error message or "").
pub fn create_partitions_raw(conn: &mut RawConn, version: i16, timeout_ms: i32, topic: &str, count: i32) -> (i16, String) {
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_topics(vec![CreatePartitionsTopic::default().with_name(TopicName(sb(topic))).with_count(count)]);
    let resp = conn.roundtrip(version, &req);
    let r = &resp.results[0];
    (r.error_code, r.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default())
}

/// DeleteTopics of one topic by name (v6 shape): (error code, error message or "").
pub fn delete_topic_raw(conn: &mut RawConn, version: i16, timeout_ms: i32, topic: &str) -> (i16, String) {
    let req = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms).with_topics(vec![DeleteTopicState::default().with_name(Some(TopicName(sb(topic))))]);
    let resp = conn.roundtrip(version, &req);
    let r = &resp.responses[0];
    (r.error_code, r.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default())
}

/// Metadata for `topics` (None: all topics), auto-creating them if allowed.
pub fn metadata_raw(conn: &mut RawConn, version: i16, topics: Option<&[&str]>, allow_auto_topic_creation: bool) -> MetadataResponse {
    let topics = topics.map(|ts| ts.iter().map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(sb(t))))).collect());
    conn.roundtrip(version, &MetadataRequest::default().with_topics(topics).with_allow_auto_topic_creation(allow_auto_topic_creation))
}

/// Length of the whole record batches at the start of a segment file's bytes.
/// An active segment's file goes on with zeros (space allocated ahead of the
/// DMA writes, and the padding of the last block) that are not data, and
/// differ between replicas.
pub fn whole_batches_len(raw: &[u8]) -> usize {
    let mut pos = 0;
    // Batch header: base offset (8), length (4), leader epoch (4), magic (1) at 16.
    while pos + 61 <= raw.len() && raw[pos + 16] == 2 {
        let len = i32::from_be_bytes([raw[pos + 8], raw[pos + 9], raw[pos + 10], raw[pos + 11]]);
        let next = pos + 12 + len.max(49) as usize;
        if next > raw.len() {
            break;
        }
        pos = next;
    }
    pos
}
