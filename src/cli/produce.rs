//! `shardlog produce`: kafka-console-producer.sh. One record per input line
//! (stdin or `--file`), optionally `KEY<sep>VALUE`, sent with librdkafka.
//!
//! Progress (records, MB/s) goes to stderr once a second when reading a file;
//! a summary line ends every run. The exit code is non-zero when any record
//! was not acknowledged, and the error names the first Kafka error.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::client::{parse_key_value, CliError, ConnectArgs};
use super::output::eprint_line;

/// How long the final flush may wait for outstanding acknowledgements.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Compression codecs librdkafka can apply to produced batches.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum Compression {
    /// Batches are sent uncompressed.
    None,
    /// gzip (deflate) compression.
    Gzip,
    /// Snappy compression.
    Snappy,
    /// LZ4 compression.
    Lz4,
    /// Zstandard compression.
    Zstd,
}

/// Produce lines as records.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example: printf 'k1\\tv1\\nk2\\tv2\\n' | shardlog produce orders --parse-key --header source=cli")]
pub struct ProduceArgs {
    /// How to reach the cluster (--bootstrap-server, or SHARDLOG_BOOTSTRAP).
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Topic to produce to.
    pub topic: String,
    /// Read lines from this file instead of stdin (progress is shown on stderr).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Split each line at the first --key-separator into key and value.
    #[arg(long)]
    pub parse_key: bool,
    /// Separator between key and value (default: TAB, as Kafka's).
    #[arg(long, default_value = "\t", hide_default_value = true)]
    pub key_separator: String,
    /// Header KEY=VALUE added to every record (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Send every record to this partition (default: the partitioner decides by key).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Acknowledgements to wait for: all (= -1), 1 or 0.
    #[arg(long, default_value = "all", value_parser = ["all", "-1", "0", "1"], allow_hyphen_values = true)]
    pub acks: String,
    /// Batch compression.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// How long to wait for more records before sending a batch.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
}

/// Counts acknowledgements; keeps the first delivery error.
#[derive(Default)]
struct DeliveryCounter {
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<KafkaError>>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| e.clone());
            }
        }
    }
}

/// Runs `shardlog produce`: sends each input line as a record with a librdkafka
/// producer, then flushes; an error when any record was not acknowledged.
pub fn run(args: ProduceArgs) -> Result<(), CliError> {
    let headers = args.headers.iter().map(|h| parse_key_value(h)).collect::<Result<Vec<_>, _>>()?;
    if args.parse_key && args.key_separator.is_empty() {
        return Err(CliError::Input("--key-separator must not be empty".into()));
    }
    let input: Box<dyn Read> = match &args.file {
        Some(p) => Box::new(std::fs::File::open(p).map_err(|e| CliError::io(format!("open {}", p.display()), e))?),
        None => Box::new(std::io::stdin()),
    };
    let mut cfg = args.conn.client_config();
    cfg.set("acks", &args.acks)
        .set("linger.ms", args.linger_ms.to_string())
        .set("compression.type", format!("{:?}", args.compression).to_lowercase())
        .set("message.timeout.ms", "60000");
    let producer: BaseProducer<DeliveryCounter> = cfg.create_with_context(DeliveryCounter::default()).map_err(|e| CliError::rdkafka("create producer", e))?;

    let start = Instant::now();
    let mut last_progress = start;
    let (mut sent, mut bytes) = (0u64, 0u64);
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    let mut input_error = None;
    for line_no in 1.. {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                input_error = Some(CliError::io("read input", e));
                break;
            }
        }
        trim_newline(&mut line);
        let (key, value) = if args.parse_key {
            match split_key(&line, args.key_separator.as_bytes()) {
                Some(kv) => kv,
                None => {
                    input_error = Some(CliError::Input(format!(
                        "no key separator {:?} found on line number {line_no}: '{}'",
                        args.key_separator,
                        String::from_utf8_lossy(&line)
                    )));
                    break;
                }
            }
        } else {
            (None, &line[..])
        };
        let mut record = BaseRecord::<[u8], [u8]>::to(&args.topic).payload(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = args.partition {
            record = record.partition(p);
        }
        if !headers.is_empty() {
            let mut h = OwnedHeaders::new_with_capacity(headers.len());
            for (k, v) in &headers {
                h = h.insert(Header { key: k, value: Some(v.as_bytes()) });
            }
            record = record.headers(h);
        }
        super::client::send_waiting(&producer, record)?;
        sent += 1;
        bytes += (line.len()) as u64;
        producer.poll(Duration::ZERO);
        if args.file.is_some() && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprint_line(&format!("{sent} records sent, {} acknowledged, {:.2} MB/s", producer.context().acked.load(Ordering::Relaxed), mb_per_s(bytes, start)));
        }
    }
    let flushed = producer.flush(FLUSH_TIMEOUT);
    let ctx = producer.context();
    let (acked, failed) = (ctx.acked.load(Ordering::Relaxed), ctx.failed.load(Ordering::Relaxed));
    eprint_line(&format!(
        "Produced {acked} of {sent} records ({bytes} bytes) to {} in {:.2} s ({:.2} MB/s); {failed} failed.",
        args.topic,
        start.elapsed().as_secs_f64(),
        mb_per_s(bytes, start)
    ));
    if let Some(e) = ctx.first_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(CliError::rdkafka(format!("produce to '{}' ({failed} records failed)", args.topic), e));
    }
    if let Err(e) = flushed {
        return Err(CliError::rdkafka(format!("produce to '{}' ({} records unacknowledged)", args.topic, sent - acked), e));
    }
    match input_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn mb_per_s(bytes: u64, start: Instant) -> f64 {
    bytes as f64 / 1e6 / start.elapsed().as_secs_f64().max(1e-9)
}

/// Drop a trailing `\n` or `\r\n`.
fn trim_newline(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

/// `KEY<sep>VALUE` at the first separator.
fn split_key<'a>(line: &'a [u8], sep: &[u8]) -> Option<(Option<&'a [u8]>, &'a [u8])> {
    let at = line.windows(sep.len()).position(|w| w == sep)?;
    Some((Some(&line[..at]), &line[at + sep.len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_at_the_first_separator() {
        assert_eq!(split_key(b"k\tv\tw", b"\t"), Some((Some(&b"k"[..]), &b"v\tw"[..])));
        assert_eq!(split_key(b"k::v", b"::"), Some((Some(&b"k"[..]), &b"v"[..])));
        assert_eq!(split_key(b"novalue", b"\t"), None);
        let mut l = b"abc\r\n".to_vec();
        trim_newline(&mut l);
        assert_eq!(l, b"abc");
    }
}
