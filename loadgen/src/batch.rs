//! RecordBatch v2, encoded once and patched per send; batch-header scanning
//! for the consumer.
//!
//! Why pre-encode: a load generator must not be the bottleneck. Building
//! records and compressing them for every request costs far more CPU than the
//! broker spends appending them, so one client core could not push what one
//! broker core takes. Instead each batch is encoded once with
//! `kafka_protocol::records::RecordBatchEncoder` (all records carry timestamp
//! 0, so their timestamp *deltas* are 0 and even compressed payloads never
//! change), and a send only rewrites the header's `baseTimestamp` and
//! `maxTimestamp` (bytes 27..43) to "now" and fixes the CRC32C.
//!
//! The CRC covers bytes 21..end. Only bytes 21..43 change between sends, so
//! the CRC of the unchanging tail (43..end) is computed once and combined with
//! the 22 changed bytes (`crc32c_combine`): the result is exactly the CRC32C
//! over 21..end (a unit test checks this against a full recomputation) at a
//! cost independent of the batch size.
//!
//! RecordBatch v2 header layout (big-endian), as Kafka defines it:
//! ```text
//!  0 baseOffset i64        8 batchLength i32      12 partitionLeaderEpoch i32
//! 16 magic i8             17 crc u32             21 attributes i16
//! 23 lastOffsetDelta i32  27 baseTimestamp i64   35 maxTimestamp i64
//! 43 producerId i64       51 producerEpoch i16   53 baseSequence i32
//! 57 recordsCount i32     61 records...
//! ```

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

/// Where the CRC32C field sits.
pub const CRC_AT: usize = 17;
/// First byte covered by the CRC (attributes).
pub const CRC_FROM: usize = 21;
/// lastOffsetDelta field.
pub const LAST_OFFSET_DELTA_AT: usize = 23;
/// baseTimestamp field; maxTimestamp follows at 35.
pub const BASE_TS_AT: usize = 27;
/// maxTimestamp field.
pub const MAX_TS_AT: usize = 35;
/// End of the bytes rewritten per send (start of producerId).
pub const PATCH_END: usize = 43;
/// recordsCount field.
pub const RECORDS_COUNT_AT: usize = 57;
/// Size of the v2 batch header; records follow.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength` counts (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;

/// How record keys are chosen (`--keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// Null keys (the common "nullkey" OMB case).
    None,
    /// A random 16-character key per record.
    Random,
    /// Keys `key-0` .. `key-{N-1}`, cycling record by record.
    RoundRobin(u32),
}

impl std::str::FromStr for Keys {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Keys::None),
            "random" => Ok(Keys::Random),
            _ => match s.strip_prefix("round-robin:") {
                Some(n) => match n.parse::<u32>() {
                    Ok(n) if n > 0 => Ok(Keys::RoundRobin(n)),
                    _ => Err(format!("`{s}`: round-robin:N needs N >= 1")),
                },
                None => Err(format!("`{s}` is not none, random or round-robin:N")),
            },
        }
    }
}

/// Parses `--compression`.
pub fn parse_compression(s: &str) -> Result<Compression, String> {
    Ok(match s {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => return Err(format!("`{s}` is not none, gzip, snappy, lz4 or zstd")),
    })
}

/// Small deterministic PRNG (xorshift64*): payloads and keys need variety,
/// not cryptographic quality, and a seed makes runs reproducible.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Fills `out` with printable ASCII (64 symbols): text-like data, so
    /// compression codecs do real work without collapsing it to nothing.
    pub fn fill_text(&mut self, out: &mut [u8]) {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for chunk in out.chunks_mut(10) {
            let mut r = self.next_u64();
            for b in chunk {
                *b = ALPHABET[(r & 63) as usize];
                r >>= 6;
            }
        }
    }
}

/// Encodes one RecordBatch v2 of `records` records of `record_size` value
/// bytes. `key_start` numbers the first record for round-robin keys, so
/// several templates continue one key sequence. Timestamps are 0 (patched
/// per send); sequence numbers follow offsets so the encoder keeps all
/// records in one batch (it splits where offset - sequence changes).
pub fn encode_batch(records: usize, record_size: usize, keys: Keys, key_start: u64, compression: Compression, rng: &mut XorShift) -> Result<Vec<u8>> {
    if records == 0 {
        bail!("a batch needs at least one record");
    }
    let mut recs = Vec::with_capacity(records);
    for i in 0..records {
        let mut value = vec![0u8; record_size];
        rng.fill_text(&mut value);
        let key = match keys {
            Keys::None => None,
            Keys::Random => {
                let mut k = vec![0u8; 16];
                rng.fill_text(&mut k);
                Some(Bytes::from(k))
            }
            Keys::RoundRobin(n) => Some(Bytes::from(format!("key-{}", (key_start + i as u64) % n as u64))),
        };
        recs.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 0,
            key,
            value: Some(Bytes::from(value)),
            headers: IndexMap::new(),
        });
    }
    let mut buf: Vec<u8> = Vec::with_capacity(records * (record_size + 32) + HEADER_LEN);
    RecordBatchEncoder::encode(&mut buf, recs.iter(), &RecordEncodeOptions { version: 2, compression }).map_err(|e| anyhow!("encoding record batch: {e}"))?;
    let h = header(&buf).context("encoder produced a short batch")?;
    if h.total_len != buf.len() || h.records as usize != records {
        bail!("encoder produced {} bytes / {} records, expected one batch of {records}", buf.len(), h.records);
    }
    Ok(buf)
}

/// CRC32C of the part of a batch that never changes between sends (43..end).
#[derive(Debug, Clone, Copy)]
pub struct CrcTail {
    crc: u32,
    len: usize,
}

impl CrcTail {
    pub fn of(batch: &[u8]) -> Result<CrcTail> {
        let tail = batch.get(PATCH_END..).context("batch shorter than its header")?;
        Ok(CrcTail { crc: crc32c::crc32c(tail), len: tail.len() })
    }
}

/// Stamps `ts_ms` as base and max timestamp and rewrites the CRC. `batch` is
/// exactly one batch, `tail` its [`CrcTail`].
pub fn patch_batch(batch: &mut [u8], ts_ms: i64, tail: &CrcTail) {
    let ts = ts_ms.to_be_bytes();
    batch[BASE_TS_AT..MAX_TS_AT].copy_from_slice(&ts);
    batch[MAX_TS_AT..PATCH_END].copy_from_slice(&ts);
    let head = crc32c::crc32c(&batch[CRC_FROM..PATCH_END]);
    let crc = crc32c::crc32c_combine(head, tail.crc, tail.len);
    batch[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_be_bytes());
}

/// What the consumer needs from one batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Whole batch including the 12-byte log overhead.
    pub total_len: usize,
    pub last_offset_delta: i32,
    pub max_timestamp: i64,
    pub records: i32,
    pub magic: i8,
}

impl BatchHeader {
    /// Offset after this batch: where the next fetch starts.
    pub fn next_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64 + 1
    }
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

/// Reads the header of the batch at the start of `buf`; None when the buffer
/// does not hold a complete batch (fetch responses may end in a partial one).
/// Old message sets (magic 0/1) count as one record each: their framing
/// (offset, size) is the same, their inner layout is not parsed.
pub fn header(buf: &[u8]) -> Option<BatchHeader> {
    if buf.len() < LOG_OVERHEAD + 5 {
        return None;
    }
    let base_offset = be_i64(buf, 0);
    let len = be_i32(buf, 8);
    if len < 0 {
        return None;
    }
    let total_len = LOG_OVERHEAD + len as usize;
    if buf.len() < total_len {
        return None;
    }
    let magic = buf[16] as i8;
    if magic < 2 {
        return Some(BatchHeader { base_offset, total_len, last_offset_delta: 0, max_timestamp: -1, records: 1, magic });
    }
    if total_len < HEADER_LEN {
        return None;
    }
    Some(BatchHeader {
        base_offset,
        total_len,
        last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_AT),
        max_timestamp: be_i64(buf, MAX_TS_AT),
        records: be_i32(buf, RECORDS_COUNT_AT),
        magic,
    })
}

/// Iterates over the complete batches of a fetched `records` blob, reading
/// headers only (no decompression, no record parsing).
pub fn batches(buf: &[u8]) -> impl Iterator<Item = BatchHeader> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let h = header(buf.get(pos..)?)?;
        pos += h.total_len;
        Some(h)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    fn batch(compression: Compression, keys: Keys) -> Vec<u8> {
        encode_batch(10, 100, keys, 0, compression, &mut XorShift::new(7)).expect("encode")
    }

    #[test]
    fn patched_batch_keeps_a_valid_crc_and_decodes() {
        for c in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let mut b = batch(c, Keys::RoundRobin(3));
            let tail = CrcTail::of(&b).expect("tail");
            let ts = 1_700_000_000_123;
            patch_batch(&mut b, ts, &tail);
            // The combined CRC equals a full recomputation over 21..end.
            assert_eq!(crc32c::crc32c(&b[CRC_FROM..]).to_be_bytes(), b[CRC_AT..CRC_FROM], "{c:?}");
            // kafka-protocol's decoder checks the CRC and expands timestamps.
            let mut bytes = Bytes::from(b.clone());
            let set = RecordBatchDecoder::decode(&mut bytes).expect("decodes");
            assert_eq!(set.compression, c);
            assert_eq!(set.records.len(), 10);
            assert!(set.records.iter().all(|r| r.timestamp == ts));
            assert_eq!(set.records[4].key.as_deref(), Some(&b"key-1"[..]));
            assert_eq!(set.records[0].value.as_ref().map(|v| v.len()), Some(100));
            // Patching again (a later send) still decodes.
            patch_batch(&mut b, ts + 5, &tail);
            let set = RecordBatchDecoder::decode(&mut Bytes::from(b)).expect("decodes again");
            assert!(set.records.iter().all(|r| r.timestamp == ts + 5));
        }
    }

    #[test]
    fn a_corrupted_patch_is_caught_by_the_decoder() {
        let mut b = batch(Compression::None, Keys::None);
        let tail = CrcTail::of(&b).expect("tail");
        patch_batch(&mut b, 42, &tail);
        b[BASE_TS_AT] ^= 1;
        assert!(RecordBatchDecoder::decode(&mut Bytes::from(b)).is_err());
    }

    #[test]
    fn header_scan_counts_records_and_stops_at_a_partial_batch() {
        let mut b1 = batch(Compression::Lz4, Keys::Random);
        let mut b2 = batch(Compression::None, Keys::None);
        b2[0..8].copy_from_slice(&10i64.to_be_bytes());
        let t1 = CrcTail::of(&b1).expect("tail");
        patch_batch(&mut b1, 1000, &t1);
        let mut all = b1.clone();
        all.extend_from_slice(&b2);
        all.extend_from_slice(&b2[..30]); // truncated third batch
        let hs: Vec<BatchHeader> = batches(&all).collect();
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[0].records, 10);
        assert_eq!(hs[0].max_timestamp, 1000);
        assert_eq!(hs[0].next_offset(), 10);
        assert_eq!(hs[1].next_offset(), 20);
        assert_eq!(hs.iter().map(|h| h.total_len).sum::<usize>(), b1.len() + b2.len());
    }

    #[test]
    fn keys_parse() {
        assert_eq!("none".parse::<Keys>(), Ok(Keys::None));
        assert_eq!("random".parse::<Keys>(), Ok(Keys::Random));
        assert_eq!("round-robin:5".parse::<Keys>(), Ok(Keys::RoundRobin(5)));
        assert!("round-robin:0".parse::<Keys>().is_err());
        assert!("hash".parse::<Keys>().is_err());
    }
}
