//! Producer connections: pre-built Produce requests, patched in place and
//! pipelined.
//!
//! Why a request template: the whole ProduceRequest (header, topic, one
//! partition, the pre-encoded batch) is encoded once with kafka-protocol
//! using a placeholder partition index. Each send then rewrites four things
//! in that buffer — correlation id, partition index, the batch's timestamps
//! and its CRC — and writes it: no allocation, no re-encode, no compression
//! per send. That is what lets one client core push more than a broker core
//! takes.
//!
//! Why pipelining: Kafka answers requests on one connection in order, so a
//! client may keep `--inflight N` requests outstanding and match responses
//! FIFO (checking correlation ids). The writer half sends while the reader
//! half (its own task) takes responses; a semaphore of N permits is the
//! window. With acks=0 the broker sends no response at all, so there is no
//! reader and records count as sent once written.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{mpsc, Semaphore};

use crate::batch::{patch_batch, CrcTail};
use crate::rate::{wait_until, Pacer};
use crate::report::Recorder;
use crate::wire::{self, decode_response, error_name, read_frame, Client};

/// Wall-clock milliseconds since the epoch (Kafka timestamps).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Placeholder partition index written at encode time and checked when the
/// template locates the field.
const PARTITION_PLACEHOLDER: i32 = 0x5A5A_5A5A;

/// Byte length of an unsigned varint (compact-bytes length prefix).
fn uvarint_len(mut v: u32) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// One encoded ProduceRequest frame with the positions of its patchable fields.
#[derive(Debug, Clone)]
pub struct ProduceTemplate {
    buf: Vec<u8>,
    part_at: usize,
    batch_at: usize,
    batch_len: usize,
    tail: CrcTail,
    /// Records in the batch.
    pub records: u64,
}

impl ProduceTemplate {
    /// Encodes the request once (`version` is the negotiated Produce version)
    /// and finds the partition index and the batch inside the frame.
    pub fn build(topic: &str, acks: i16, timeout_ms: i32, version: i16, batch: &[u8], records: u64) -> Result<ProduceTemplate> {
        let req = ProduceRequest::default().with_acks(acks).with_timeout_ms(timeout_ms).with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default().with_index(PARTITION_PLACEHOLDER).with_records(Some(Bytes::copy_from_slice(batch)))])]);
        let buf = wire::encode_request(&req, version, 0)?;
        let n = batch.len();
        // The records field is the last field of the partition entry; only
        // (flexible versions) empty tagged-field sections follow it.
        let batch_at = (0..=8usize)
            .filter_map(|trail| buf.len().checked_sub(trail + n))
            .find(|&at| buf.get(at..at + n) == Some(batch))
            .ok_or_else(|| anyhow!("batch not found in encoded Produce v{version}"))?;
        // Before the records: the partition index (i32), then the length
        // prefix (i32 before v9, unsigned varint of len+1 from v9).
        let prefix = if version >= 9 { uvarint_len(n as u32 + 1) } else { 4 };
        let part_at = batch_at.checked_sub(prefix + 4).context("produce template too short")?;
        if buf.get(part_at..part_at + 4) != Some(&PARTITION_PLACEHOLDER.to_be_bytes()[..]) {
            bail!("partition index not where expected in Produce v{version}");
        }
        Ok(ProduceTemplate { tail: CrcTail::of(batch)?, buf, part_at, batch_at, batch_len: n, records })
    }

    /// Patches correlation id, partition and timestamps (+CRC) in place and
    /// returns the frame to write.
    pub fn prepare(&mut self, correlation_id: i32, partition: i32, ts_ms: i64) -> &[u8] {
        self.buf[8..12].copy_from_slice(&correlation_id.to_be_bytes());
        self.buf[self.part_at..self.part_at + 4].copy_from_slice(&partition.to_be_bytes());
        patch_batch(&mut self.buf[self.batch_at..self.batch_at + self.batch_len], ts_ms, &self.tail);
        &self.buf
    }

    #[cfg(test)]
    pub fn frame_len(&self) -> usize {
        self.buf.len()
    }
}

/// What every actor of a run shares.
pub struct RunCtx {
    pub rec: Arc<Recorder>,
    /// No new requests after this.
    pub deadline: Instant,
    /// Set by Ctrl-C.
    pub stop: Arc<AtomicBool>,
    /// Per-request timeout (socket writes, waiting for a response).
    pub timeout: Duration,
}

impl RunCtx {
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }
}

/// A connected producer connection, ready to run.
pub struct Producer {
    pub client: Client,
    pub version: i16,
    pub partitions: Vec<i32>,
    pub templates: Vec<ProduceTemplate>,
    pub inflight: usize,
    pub acks: i16,
    /// This connection's share of `--rate` in records/s (None = closed loop).
    pub rate: Option<f64>,
    /// Records left to send across all producers (`--records`).
    pub budget: Option<Arc<AtomicI64>>,
}

struct Pending {
    corr: i32,
    sent: Instant,
    records: u64,
    wire: u64,
}

impl Producer {
    /// Sends until the deadline (or the record budget is spent), then waits
    /// for the outstanding responses.
    pub async fn run(self, ctx: Arc<RunCtx>) -> Result<()> {
        let Producer { client, version, partitions, mut templates, inflight, acks, rate, budget } = self;
        if partitions.is_empty() || templates.is_empty() {
            return Ok(());
        }
        let addr = client.addr.clone();
        let (rd, mut wr) = client.stream.into_split();
        let records_per_send = templates[0].records;
        let mut pacer = rate.map(|r| Pacer::new(Instant::now(), r, records_per_send as usize));
        let window = Arc::new(Semaphore::new(if acks == 0 { 0 } else { inflight.max(1) }));
        let (tx, rx) = mpsc::unbounded_channel::<Pending>();
        let reader = (acks != 0).then(|| tokio::spawn(read_loop(rd, rx, window.clone(), ctx.clone(), version)));
        let mut corr: i32 = 0;
        let mut i: usize = 0;
        let result: Result<()> = loop {
            if ctx.should_stop() {
                break Ok(());
            }
            let intended = match pacer.as_mut() {
                Some(p) => {
                    let t = p.next_send();
                    if t >= ctx.deadline {
                        break Ok(());
                    }
                    wait_until(t).await;
                    Some(t)
                }
                None => None,
            };
            if acks != 0 {
                // Wait for a slot in the window, but never past the deadline.
                let permit = tokio::select! {
                    p = window.clone().acquire_owned() => p,
                    _ = tokio::time::sleep_until(ctx.deadline.into()) => break Ok(()),
                };
                match permit {
                    Ok(p) => p.forget(),
                    // The reader closed the window: it failed and said why.
                    Err(_) => break Ok(()),
                }
            }
            if let Some(b) = &budget {
                if b.fetch_sub(records_per_send as i64, Ordering::Relaxed) <= 0 {
                    break Ok(());
                }
            }
            corr = corr.wrapping_add(1) & i32::MAX;
            let partition = partitions[i % partitions.len()];
            let nt = templates.len();
            let t = &mut templates[i % nt];
            i = i.wrapping_add(1);
            let records = t.records;
            let frame = t.prepare(corr, partition, now_ms());
            let sent = intended.unwrap_or_else(Instant::now);
            let p = Pending { corr, sent, records, wire: frame.len() as u64 };
            let wire_len = p.wire;
            if acks != 0 && tx.send(p).is_err() {
                break Ok(()); // reader gone
            }
            match tokio::time::timeout(ctx.timeout, wr.write_all(frame)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    ctx.rec.error("NETWORK_EXCEPTION");
                    break Err(anyhow!("producer to {addr}: write failed: {e}"));
                }
                Err(_) => {
                    ctx.rec.error("CLIENT_TIMEOUT");
                    break Err(anyhow!("producer to {addr}: write blocked for {:?}", ctx.timeout));
                }
            }
            if acks == 0 {
                ctx.rec.produced(Instant::now(), records, wire_len, None);
            }
        };
        drop(tx);
        let read_result = match reader {
            None => Ok(()),
            // Outstanding responses get one timeout to arrive.
            Some(h) => match tokio::time::timeout(ctx.timeout + Duration::from_secs(1), h).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => Err(anyhow!("producer reader task: {e}")),
                Err(_) => Err(anyhow!("producer to {addr}: outstanding responses did not arrive")),
            },
        };
        let _ = wr.shutdown().await;
        result.and(read_result)
    }
}

/// Takes responses in order, checks them, records latency and opens the
/// window again. On failure it closes the window so the writer stops too.
async fn read_loop(rd: OwnedReadHalf, mut rx: mpsc::UnboundedReceiver<Pending>, window: Arc<Semaphore>, ctx: Arc<RunCtx>, version: i16) -> Result<()> {
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let res: Result<()> = async {
        while let Some(p) = rx.recv().await {
            let frame = match tokio::time::timeout(ctx.timeout, read_frame(&mut rd)).await {
                Ok(Ok(f)) => f,
                Ok(Err(e)) => {
                    ctx.rec.error("NETWORK_EXCEPTION");
                    return Err(e.context("reading produce response"));
                }
                Err(_) => {
                    ctx.rec.error("CLIENT_TIMEOUT");
                    bail!("no produce response within {:?}", ctx.timeout);
                }
            };
            let now = Instant::now();
            let (corr, resp) = decode_response::<ProduceRequest>(frame, version)?;
            if corr != p.corr {
                ctx.rec.error("CORRELATION_MISMATCH");
                bail!("produce response correlation id {corr}, expected {}", p.corr);
            }
            let mut ok = true;
            for t in &resp.responses {
                for pr in &t.partition_responses {
                    if pr.error_code != 0 {
                        ok = false;
                        ctx.rec.error(&error_name(pr.error_code));
                    }
                }
            }
            let latency_us = now.saturating_duration_since(p.sent).as_micros() as u64;
            ctx.rec.produced(now, if ok { p.records } else { 0 }, p.wire, Some(latency_us));
            window.add_permits(1);
        }
        Ok(())
    }
    .await;
    window.close();
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{encode_batch, Keys, XorShift};
    use kafka_protocol::protocol::Decodable;
    use kafka_protocol::records::{Compression, RecordBatchDecoder};

    #[test]
    fn template_patches_decode_as_a_valid_produce_request() {
        let batch = encode_batch(8, 64, Keys::None, 0, Compression::Snappy, &mut XorShift::new(3)).expect("batch");
        for version in [3i16, 7, 8, 9, 12] {
            let mut t = ProduceTemplate::build("bench-topic", -1, 30_000, version, &batch, 8).expect("template");
            let frame = t.prepare(4242, 17, 1_234_567).to_vec();
            assert_eq!(frame.len(), t.frame_len());
            let mut body = Bytes::from(frame[4..].to_vec());
            let header = kafka_protocol::messages::RequestHeader::decode(&mut body, if version >= 9 { 2 } else { 1 }).expect("header");
            assert_eq!(header.correlation_id, 4242);
            let req = ProduceRequest::decode(&mut body, version).expect("request decodes");
            assert_eq!(req.acks, -1);
            let pd = &req.topic_data[0].partition_data[0];
            assert_eq!(pd.index, 17, "v{version}");
            let mut records = pd.records.clone().expect("records");
            let set = RecordBatchDecoder::decode(&mut records).expect("batch decodes with a valid CRC");
            assert_eq!(set.records.len(), 8);
            assert!(set.records.iter().all(|r| r.timestamp == 1_234_567));
        }
    }

    #[test]
    fn uvarint_lengths() {
        assert_eq!(uvarint_len(0), 1);
        assert_eq!(uvarint_len(127), 1);
        assert_eq!(uvarint_len(128), 2);
        assert_eq!(uvarint_len(262_145), 3);
    }
}
