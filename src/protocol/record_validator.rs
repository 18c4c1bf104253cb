//! Record-level validation of a RecordBatch v2, as Kafka's `LogValidator` does it.
//!
//! [`super::record_batch::validate_batches`] checks what the 61-byte header says
//! (framing, magic, CRC, `lastOffsetDelta == count - 1`). That is not enough: a
//! header can claim 1 record while the bytes hold 3, or 2^31-1 records, or a
//! record can claim 2^31-1 headers or a 1 GiB value. Stored as sent, such a
//! batch corrupts offsets for every consumer and makes any later decode
//! allocate gigabytes. So every batch a client produces is walked here once,
//! record by record, before it is appended:
//!
//! * the codec is one of the five Kafka knows (0-4), and a compressed payload
//!   decompresses (streaming, through a fixed 64 KiB buffer, never more than
//!   `max_inflated` bytes in total: a zstd bomb costs time bounded by the
//!   limit, not memory);
//! * exactly `recordsCount` records are present and nothing follows the last;
//! * each record's length is non-negative and equals the bytes its fields take;
//!   every key, value and header length is `>= -1` (header keys `>= 0`) and fits
//!   inside the record; header keys are UTF-8; the header count is `>= 0`;
//! * record `i` has offset delta `i` (offsets are contiguous, Kafka's "inner
//!   record offsets" rule), and `baseOffset + lastOffsetDelta` does not overflow
//!   (a record's timestamp, `baseTimestamp + delta`, wraps as in Java);
//! * optionally (compacted topics) every record has a key.
//!
//! Nothing is allocated per record and nothing is copied for uncompressed
//! batches: lengths are read as varints and the bytes they cover are skipped.
//! Every count and length is checked against the bytes that remain before it is
//! used, so a hostile count costs at most one pass over the bytes actually sent.
//!
//! Errors follow Kafka: INVALID_RECORD with the index of the offending record
//! (Produce v8+ `record_errors`, KIP-467) and a message; structural problems stop
//! at the first bad record, per-record rule violations (a missing key) list every
//! record that breaks the rule, as Kafka's `processRecordErrors` does.
//!
//! The same walk runs before every full decode of a batch (`compression::decode_batch`,
//! used by the cleaner, re-compression and ListOffsets by timestamp), so data
//! read back from disk is bounded the same way.

use std::io::{BufRead, BufReader, Read};

use super::record_batch::{BatchHeader, BATCH_HEADER_LEN};

/// Size of the buffer a compressed payload is streamed through.
const STREAM_BUFFER_BYTES: usize = 64 * 1024;

/// What one record looks like to a visitor of [`walk_records`]: the fields the
/// broker needs without touching keys or values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView {
    /// Position of the record in its batch (0-based); equals its offset delta.
    pub index: i32,
    /// `baseOffset + offsetDelta`.
    pub offset: i64,
    /// `baseTimestamp + timestampDelta`, or the batch's `maxTimestamp` when it
    /// is LogAppendTime (Kafka gives every record the broker's append time then).
    pub timestamp: i64,
    /// Whether the record has a (non-null) key.
    pub has_key: bool,
}

/// One entry of Produce's `record_errors` (KIP-467): which record, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// Index of the record in the partition's produced records.
    pub batch_index: i32,
    /// Why it was refused.
    pub message: String,
}

/// Why a batch's records were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// The records break Kafka's rules (INVALID_RECORD): `message` for the
    /// partition, `record_errors` for the records at fault.
    #[error("{message}")]
    Invalid {
        /// The partition-level message (Produce `error_message`).
        message: String,
        /// The records at fault (Produce `record_errors`).
        record_errors: Vec<RecordError>,
    },
    /// The compressed payload inflates past the limit given.
    #[error("record batch inflates past {0} bytes")]
    TooLarge(usize),
}

impl RecordsError {
    fn at(index: i32, message: String) -> RecordsError {
        RecordsError::Invalid { message: message.clone(), record_errors: vec![RecordError { batch_index: index, message }] }
    }

    fn batch(message: String) -> RecordsError {
        RecordsError::Invalid { message, record_errors: Vec::new() }
    }

    /// Shifts record indexes by `by`, for a partition whose records span batches.
    pub fn offset_indexes(mut self, by: i32) -> RecordsError {
        if let RecordsError::Invalid { record_errors, .. } = &mut self {
            for e in record_errors {
                e.batch_index = e.batch_index.saturating_add(by);
            }
        }
        self
    }
}

/// How record offset deltas must run inside a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deltas {
    /// Record `i` has delta `i`: what a producer sends (Kafka's inner-offset rule).
    Contiguous,
    /// Strictly increasing, at most `lastOffsetDelta`: a stored batch after the
    /// cleaner removed records (offsets are kept, so gaps appear).
    Increasing,
}

/// The rules a produced batch must pass on top of the structural ones.
#[derive(Debug, Clone, Copy)]
pub struct RecordRules {
    /// Compacted topics: every record needs a key.
    pub require_key: bool,
    /// Most bytes a compressed payload may inflate to.
    pub max_inflated: usize,
}

/// Checks every record of one whole batch (header included) against Kafka's
/// rules; see the module doc. Control batches are checked structurally too.
pub fn validate_records(batch: &[u8], rules: &RecordRules) -> Result<(), RecordsError> {
    let mut keyless = Vec::new();
    walk_records(batch, rules.max_inflated, Deltas::Contiguous, |r| {
        if rules.require_key && !r.has_key {
            keyless.push(r.index);
        }
        true
    })?;
    if keyless.is_empty() {
        return Ok(());
    }
    const WHY: &str = "Compacted topic cannot accept message without key";
    Err(RecordsError::Invalid {
        message: format!("{WHY} ({} of the batch's records have none)", keyless.len()),
        record_errors: keyless.into_iter().map(|i| RecordError { batch_index: i, message: WHY.to_string() }).collect(),
    })
}

/// Walks the records of one whole batch, checking their structure, and calls
/// `visit` for each until it returns false. Allocation-free for uncompressed
/// batches; compressed ones stream through a 64 KiB buffer.
pub fn walk_records(batch: &[u8], max_inflated: usize, deltas: Deltas, mut visit: impl FnMut(&RecordView) -> bool) -> Result<(), RecordsError> {
    let header = BatchHeader::parse(batch).map_err(|e| RecordsError::batch(e.to_string()))?;
    if header.total_len() != batch.len() {
        return Err(RecordsError::batch(format!("batch length field says {} bytes, {} given", header.total_len(), batch.len())));
    }
    let count = header.records_count;
    if count < 0 {
        return Err(RecordsError::batch(format!("invalid record count {count}")));
    }
    if count == 0 && !header.is_control() {
        return Err(RecordsError::batch("a record batch must hold at least one record".into()));
    }
    if header.last_offset_delta < 0 || count > header.last_offset_delta.saturating_add(1) {
        return Err(RecordsError::batch(format!("{count} records but last offset delta {}", header.last_offset_delta)));
    }
    if header.base_offset.checked_add(i64::from(header.last_offset_delta)).is_none() {
        return Err(RecordsError::batch(format!("base offset {} + last offset delta overflows", header.base_offset)));
    }
    let body = &batch[BATCH_HEADER_LEN..];
    let codec = header.compression();
    let limit = max_inflated as u64;
    match codec {
        0 => walk(&header, deltas, &mut SliceSource(body), &mut visit),
        1 => walk(&header, deltas, &mut StreamSource::new(flate2::read::GzDecoder::new(body), limit), &mut visit),
        2 => walk(&header, deltas, &mut StreamSource::new(XerialSnappy::new(body), limit), &mut visit),
        3 => match lz4::Decoder::new(body) {
            Ok(d) => walk(&header, deltas, &mut StreamSource::new(d, limit), &mut visit),
            Err(e) => Err(RecordsError::batch(format!("lz4 payload does not decode: {e}"))),
        },
        4 => match zstd::stream::read::Decoder::with_buffer(body) {
            Ok(d) => walk(&header, deltas, &mut StreamSource::new(d, limit), &mut visit),
            Err(e) => Err(RecordsError::batch(format!("zstd payload does not decode: {e}"))),
        },
        other => Err(RecordsError::batch(format!("unknown compression codec {other} (Kafka knows 0-4)"))),
    }
}

/// Why a read from a record source stopped.
enum Stop {
    /// The bytes ended (or the record's length did) before the field did.
    End,
    /// The compressed stream is corrupt.
    Codec(String),
    /// The compressed stream inflated past the limit.
    TooLarge(u64),
}

/// Where record bytes come from: the batch itself, or a decompressor.
trait Source {
    /// The next byte, or None at the end.
    fn byte(&mut self) -> Result<Option<u8>, Stop>;
    /// Skips `n` bytes; Err(End) if fewer remain.
    fn skip(&mut self, n: usize) -> Result<(), Stop>;
    /// Reads `n` bytes and tells whether they are UTF-8.
    fn is_utf8(&mut self, n: usize) -> Result<bool, Stop>;
    /// Bytes known to remain, when known without reading (uncompressed only).
    fn remaining_hint(&self) -> Option<usize>;
}

struct SliceSource<'a>(&'a [u8]);

impl Source for SliceSource<'_> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, Stop> {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                Ok(Some(*b))
            }
            None => Ok(None),
        }
    }
    #[inline]
    fn skip(&mut self, n: usize) -> Result<(), Stop> {
        if n > self.0.len() {
            return Err(Stop::End);
        }
        self.0 = &self.0[n..];
        Ok(())
    }
    fn is_utf8(&mut self, n: usize) -> Result<bool, Stop> {
        if n > self.0.len() {
            return Err(Stop::End);
        }
        let ok = std::str::from_utf8(&self.0[..n]).is_ok();
        self.0 = &self.0[n..];
        Ok(ok)
    }
    fn remaining_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// A decompressor read through a fixed buffer, counting what it yields.
struct StreamSource<R: Read> {
    r: BufReader<R>,
    inflated: u64,
    limit: u64,
    scratch: Vec<u8>,
}

impl<R: Read> StreamSource<R> {
    fn new(r: R, limit: u64) -> Self {
        StreamSource { r: BufReader::with_capacity(STREAM_BUFFER_BYTES, r), inflated: 0, limit, scratch: Vec::new() }
    }

    /// The buffered bytes (refilled when empty); empty at the end of the stream.
    fn fill(&mut self) -> Result<&[u8], Stop> {
        let buf = self.r.fill_buf().map_err(|e| Stop::Codec(e.to_string()))?;
        Ok(buf)
    }

    fn consume(&mut self, n: usize) -> Result<(), Stop> {
        self.r.consume(n);
        self.inflated += n as u64;
        if self.inflated > self.limit {
            return Err(Stop::TooLarge(self.limit));
        }
        Ok(())
    }
}

impl<R: Read> Source for StreamSource<R> {
    fn byte(&mut self) -> Result<Option<u8>, Stop> {
        let b = match self.fill()?.first() {
            Some(b) => *b,
            None => return Ok(None),
        };
        self.consume(1)?;
        Ok(Some(b))
    }
    fn skip(&mut self, mut n: usize) -> Result<(), Stop> {
        while n > 0 {
            let avail = self.fill()?.len();
            if avail == 0 {
                return Err(Stop::End);
            }
            let step = avail.min(n);
            self.consume(step)?;
            n -= step;
        }
        Ok(())
    }
    fn is_utf8(&mut self, mut n: usize) -> Result<bool, Stop> {
        // Header keys are short; the scratch grows only with bytes that really arrived.
        self.scratch.clear();
        while n > 0 {
            let buf = self.r.fill_buf().map_err(|e| Stop::Codec(e.to_string()))?;
            if buf.is_empty() {
                return Err(Stop::End);
            }
            let step = buf.len().min(n);
            self.scratch.extend_from_slice(&buf[..step]);
            self.consume(step)?;
            n -= step;
        }
        Ok(std::str::from_utf8(&self.scratch).is_ok())
    }
    fn remaining_hint(&self) -> Option<usize> {
        None
    }
}

/// Reads the fields of one record, counting them against its declared length.
struct Fields<'s, S: Source> {
    src: &'s mut S,
    left: usize,
}

impl<S: Source> Fields<'_, S> {
    fn byte(&mut self) -> Result<u8, Stop> {
        if self.left == 0 {
            return Err(Stop::End);
        }
        self.left -= 1;
        self.src.byte()?.ok_or(Stop::End)
    }

    /// A zigzag varint of at most `max_bytes` bytes (5 for int, 10 for long).
    fn varint(&mut self, max_bytes: u32) -> Result<Option<i64>, Stop> {
        let mut raw: u64 = 0;
        for i in 0..max_bytes {
            let b = self.byte()?;
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(Some(((raw >> 1) as i64) ^ -((raw & 1) as i64)));
            }
        }
        Ok(None)
    }

    fn skip(&mut self, n: usize) -> Result<(), Stop> {
        if n > self.left {
            return Err(Stop::End);
        }
        self.left -= n;
        self.src.skip(n)
    }

    fn is_utf8(&mut self, n: usize) -> Result<bool, Stop> {
        if n > self.left {
            return Err(Stop::End);
        }
        self.left -= n;
        self.src.is_utf8(n)
    }
}

/// Reads a zigzag varint (at most 5 bytes) straight from the source: a record's
/// length, before there is a record to count it against.
fn length_varint<S: Source>(src: &mut S) -> Result<Option<Option<i64>>, Stop> {
    let mut raw: u64 = 0;
    for i in 0..5 {
        let b = match src.byte()? {
            Some(b) => b,
            None if i == 0 => return Ok(None),
            None => return Err(Stop::End),
        };
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some(Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))));
        }
    }
    Ok(Some(None))
}

/// What was wrong inside one record.
enum Bad {
    Stop(Stop),
    Rule(String),
}

impl From<Stop> for Bad {
    fn from(s: Stop) -> Self {
        Bad::Stop(s)
    }
}

fn walk<S: Source>(h: &BatchHeader, deltas: Deltas, src: &mut S, visit: &mut impl FnMut(&RecordView) -> bool) -> Result<(), RecordsError> {
    let count = h.records_count;
    let mut prev_delta: i64 = -1;
    for i in 0..count {
        let len = match length_varint(src) {
            Ok(Some(Some(len))) => len,
            Ok(Some(None)) => return Err(RecordsError::at(i, format!("record {i}: malformed length varint"))),
            Ok(None) => {
                return Err(RecordsError::at(i, format!("the batch says {count} records but holds only {i}")));
            }
            Err(s) => return Err(stop_error(i, s)),
        };
        if len < 0 || len > i64::from(i32::MAX) {
            return Err(RecordsError::at(i, format!("record {i}: invalid length {len}")));
        }
        let len = len as usize;
        if let Some(rem) = src.remaining_hint() {
            if len > rem {
                return Err(RecordsError::at(i, format!("record {i}: length {len} but only {rem} bytes remain in the batch")));
            }
        }
        let mut f = Fields { src: &mut *src, left: len };
        let view = match record(h, i, deltas, prev_delta, &mut f) {
            Ok(v) => v,
            Err(Bad::Rule(why)) => return Err(RecordsError::at(i, format!("record {i}: {why}"))),
            Err(Bad::Stop(Stop::End)) => {
                return Err(RecordsError::at(i, format!("record {i}: its fields run past its length {len} or the batch")));
            }
            Err(Bad::Stop(s)) => return Err(stop_error(i, s)),
        };
        if f.left != 0 {
            return Err(RecordsError::at(i, format!("record {i}: length {len} but its fields take {} bytes", len - f.left)));
        }
        prev_delta = view.offset - h.base_offset;
        if !visit(&view) {
            return Ok(());
        }
    }
    match src.byte() {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(RecordsError::batch(format!("bytes follow the last of the batch's {count} records"))),
        Err(s) => Err(stop_error(count, s)),
    }
}

fn stop_error(i: i32, s: Stop) -> RecordsError {
    match s {
        Stop::End => RecordsError::at(i, format!("record {i}: the batch ends inside it")),
        Stop::Codec(e) => RecordsError::batch(format!("compressed records do not decode: {e}")),
        Stop::TooLarge(n) => RecordsError::TooLarge(n as usize),
    }
}

/// Reads one record's fields (after its length) and checks them.
fn record<S: Source>(h: &BatchHeader, i: i32, deltas: Deltas, prev_delta: i64, f: &mut Fields<'_, S>) -> Result<RecordView, Bad> {
    let _attributes = f.byte()?;
    let ts_delta = f.varint(10)?.ok_or_else(|| Bad::Rule("malformed timestamp delta".into()))?;
    let offset_delta = f.varint(5)?.ok_or_else(|| Bad::Rule("malformed offset delta".into()))?;
    match deltas {
        Deltas::Contiguous if offset_delta != i64::from(i) => {
            return Err(Bad::Rule(format!("offset delta {offset_delta}, expected {i} (inner offsets must be contiguous)")));
        }
        Deltas::Increasing if offset_delta <= prev_delta || offset_delta > i64::from(h.last_offset_delta) => {
            return Err(Bad::Rule(format!("offset delta {offset_delta} after {prev_delta}, last offset delta {}", h.last_offset_delta)));
        }
        _ => {}
    }
    // Wraps on overflow, as Kafka's Java decoder computes it (and the codec crate here).
    let timestamp = h.base_timestamp.wrapping_add(ts_delta);
    let key_len = nullable_len(f, "key")?;
    if let Some(n) = key_len {
        f.skip(n)?;
    }
    if let Some(n) = nullable_len(f, "value")? {
        f.skip(n)?;
    }
    let headers = f.varint(5)?.ok_or_else(|| Bad::Rule("malformed header count".into()))?;
    if headers < 0 {
        return Err(Bad::Rule(format!("invalid header count {headers}")));
    }
    // Each header takes at least two bytes, so this loop ends with the record's bytes.
    for _ in 0..headers {
        let key = f.varint(5)?.ok_or_else(|| Bad::Rule("malformed header key length".into()))?;
        if key < 0 {
            return Err(Bad::Rule(format!("invalid header key length {key}")));
        }
        if !f.is_utf8(key as usize)? {
            return Err(Bad::Rule("header key is not UTF-8".into()));
        }
        if let Some(n) = nullable_len(f, "header value")? {
            f.skip(n)?;
        }
    }
    let timestamp = if h.is_log_append_time() { h.max_timestamp } else { timestamp };
    Ok(RecordView { index: i, offset: h.base_offset + offset_delta, timestamp, has_key: key_len.is_some() })
}

/// A length where -1 means null and anything below is invalid.
fn nullable_len<S: Source>(f: &mut Fields<'_, S>, what: &str) -> Result<Option<usize>, Bad> {
    match f.varint(5)? {
        Some(-1) => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n as usize)),
        Some(n) => Err(Bad::Rule(format!("invalid {what} length {n}"))),
        None => Err(Bad::Rule(format!("malformed {what} length"))),
    }
}

/// Kafka's snappy framing as a reader: xerial (an 8-byte magic, two version
/// ints, then length-prefixed raw snappy blocks), or one raw block without the
/// header (as Java reads it). Each block states its inflated size up front and
/// is inflated on its own, so memory is one block, not the batch.
struct XerialSnappy<'a> {
    src: &'a [u8],
    raw_single: Option<&'a [u8]>,
    block: Vec<u8>,
    at: usize,
    failed: bool,
}

impl<'a> XerialSnappy<'a> {
    const MAGIC: &'static [u8] = b"\x82SNAPPY\x00";
    const HEADER_LEN: usize = 16;
    /// Largest block Kafka's xerial writer produces is 32 KiB; allow more, bounded.
    const MAX_BLOCK_INFLATED: usize = 16 << 20;

    fn new(body: &'a [u8]) -> Self {
        if body.len() >= Self::HEADER_LEN && body.starts_with(Self::MAGIC) {
            XerialSnappy { src: &body[Self::HEADER_LEN..], raw_single: None, block: Vec::new(), at: 0, failed: false }
        } else {
            XerialSnappy { src: &[], raw_single: Some(body), block: Vec::new(), at: 0, failed: false }
        }
    }

    fn inflate(&mut self, compressed: &[u8]) -> std::io::Result<()> {
        let bad = |e: snap::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
        let n = snap::raw::decompress_len(compressed).map_err(bad)?;
        if n > Self::MAX_BLOCK_INFLATED {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "snappy block inflates past 16 MiB"));
        }
        self.block.resize(n, 0);
        let got = snap::raw::Decoder::new().decompress(compressed, &mut self.block).map_err(bad)?;
        self.block.truncate(got);
        self.at = 0;
        Ok(())
    }

    fn next_block(&mut self) -> std::io::Result<bool> {
        if let Some(raw) = self.raw_single.take() {
            self.inflate(raw)?;
            return Ok(true);
        }
        if self.src.is_empty() {
            return Ok(false);
        }
        let truncated = || std::io::Error::new(std::io::ErrorKind::InvalidData, "truncated snappy block");
        let (len, rest) = self.src.split_at_checked(4).ok_or_else(truncated)?;
        let n = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (block, rest) = rest.split_at_checked(n).ok_or_else(truncated)?;
        self.src = rest;
        self.inflate(block)?;
        Ok(true)
    }
}

impl Read for XerialSnappy<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.failed {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "snappy stream already failed"));
        }
        while self.at == self.block.len() {
            match self.next_block() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::compression::encode_batch;
    use crate::protocol::record_batch::{ATTRIBUTES_OFFSET, CRC_OFFSET};
    use bytes::Bytes;
    use kafka_protocol::records::{Compression, Record, TimestampType};

    const MAX: usize = 1 << 20;

    fn rec(i: i64, key: Option<&str>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: -1,
            timestamp: 1_000 + i,
            key: key.map(|k| Bytes::from(k.to_string())),
            value: Some(Bytes::from(vec![b'v'; 100])),
            headers: Default::default(),
        }
    }

    fn zigzag(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            let b = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    /// One record's bytes (length prefix included) with the given fields.
    fn raw_record(offset_delta: i64, key: Option<&[u8]>, value: &[u8], headers: i64) -> Vec<u8> {
        let mut body = vec![0u8];
        zigzag(&mut body, 0);
        zigzag(&mut body, offset_delta);
        match key {
            Some(k) => {
                zigzag(&mut body, k.len() as i64);
                body.extend_from_slice(k);
            }
            None => zigzag(&mut body, -1),
        }
        zigzag(&mut body, value.len() as i64);
        body.extend_from_slice(value);
        zigzag(&mut body, headers);
        let mut out = Vec::new();
        zigzag(&mut out, body.len() as i64);
        out.extend(body);
        out
    }

    /// A batch with a hand-set record count and codec around `records`, CRC correct.
    fn raw_batch(count: i32, codec: i16, records: &[u8]) -> Vec<u8> {
        let header = BatchHeader {
            base_offset: 0,
            batch_length: (BATCH_HEADER_LEN - 12 + records.len()) as i32,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: codec,
            last_offset_delta: count.saturating_sub(1),
            base_timestamp: 1_000,
            max_timestamp: 1_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: count,
        };
        let mut out = header.to_bytes().to_vec();
        out.extend_from_slice(records);
        let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }

    fn invalid_message(r: Result<(), RecordsError>) -> String {
        match r {
            Err(RecordsError::Invalid { message, .. }) => message,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    const PLAIN: RecordRules = RecordRules { require_key: false, max_inflated: MAX };

    #[test]
    fn client_batches_of_every_codec_pass_and_are_walked() {
        let rs: Vec<Record> = (0..20).map(|i| rec(i, if i % 2 == 0 { Some("k") } else { None })).collect();
        for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let b = encode_batch(&rs, codec).unwrap();
            validate_records(&b, &PLAIN).unwrap_or_else(|e| panic!("{codec:?}: {e}"));
            let mut seen = Vec::new();
            walk_records(&b, MAX, Deltas::Contiguous, |r| {
                seen.push((r.offset, r.timestamp, r.has_key));
                true
            })
            .unwrap();
            let want: Vec<_> = (0..20).map(|i| (i, 1_000 + i, i % 2 == 0)).collect();
            assert_eq!(seen, want, "{codec:?}");
        }
    }

    #[test]
    fn a_count_of_one_over_three_records_is_refused() {
        let mut recs = Vec::new();
        for i in 0..3 {
            recs.extend(raw_record(i, Some(b"k"), b"v", 0));
        }
        let b = raw_batch(1, 0, &recs);
        assert!(invalid_message(validate_records(&b, &PLAIN)).contains("follow the last"));
        assert!(validate_records(&raw_batch(3, 0, &recs), &PLAIN).is_ok());
    }

    #[test]
    fn a_huge_record_count_is_refused_without_iterating_it() {
        let recs = raw_record(0, Some(b"k"), b"v", 0);
        let b = raw_batch(i32::MAX, 0, &recs);
        assert!(invalid_message(validate_records(&b, &PLAIN)).contains("holds only 1"));
        assert!(validate_records(&raw_batch(0, 0, &[]), &PLAIN).is_err(), "an empty data batch is invalid");
    }

    #[test]
    fn a_huge_header_count_or_length_is_refused() {
        let b = raw_batch(1, 0, &raw_record(0, Some(b"k"), b"v", i32::MAX as i64));
        let err = validate_records(&b, &PLAIN).unwrap_err();
        match err {
            RecordsError::Invalid { record_errors, .. } => assert_eq!(record_errors[0].batch_index, 0),
            other => panic!("{other:?}"),
        }
        // A record claiming 2^30 bytes.
        let mut big = Vec::new();
        zigzag(&mut big, 1 << 30);
        big.extend_from_slice(&[0u8; 10]);
        assert!(invalid_message(validate_records(&raw_batch(1, 0, &big), &PLAIN)).contains("remain"));
        // A value claiming more than the record holds.
        let mut r = raw_record(0, None, b"v", 0);
        let at = r.len() - 3; // value length byte
        r[at] = 100;
        assert!(validate_records(&raw_batch(1, 0, &r), &PLAIN).is_err());
    }

    #[test]
    fn offset_deltas_must_be_contiguous() {
        let mut recs = raw_record(0, Some(b"k"), b"v", 0);
        recs.extend(raw_record(5, Some(b"k"), b"v", 0));
        let b = raw_batch(2, 0, &recs);
        assert!(invalid_message(validate_records(&b, &PLAIN)).contains("offset delta 5"));
        // Stored batches may have gaps (the cleaner keeps offsets), within lastOffsetDelta.
        let mut stored = b.clone();
        stored[crate::protocol::record_batch::LAST_OFFSET_DELTA_OFFSET..][..4].copy_from_slice(&5i32.to_be_bytes());
        assert!(walk_records(&stored, MAX, Deltas::Increasing, |_| true).is_ok());
        assert!(walk_records(&b, MAX, Deltas::Increasing, |_| true).is_err(), "delta past lastOffsetDelta");
    }

    #[test]
    fn unknown_codecs_and_garbage_payloads_are_refused() {
        let recs = raw_record(0, Some(b"k"), b"v", 0);
        for codec in 5..=7 {
            assert!(invalid_message(validate_records(&raw_batch(1, codec, &recs), &PLAIN)).contains("unknown compression codec"));
        }
        let garbage = [0x5au8; 64];
        for codec in 1..=4 {
            assert!(validate_records(&raw_batch(1, codec, &garbage), &PLAIN).is_err(), "codec {codec}");
        }
    }

    #[test]
    fn keyless_records_on_a_compacted_topic_are_each_listed() {
        let rs: Vec<Record> = (0..5).map(|i| rec(i, if i == 1 || i == 3 { None } else { Some("k") })).collect();
        for codec in [Compression::None, Compression::Lz4] {
            let b = encode_batch(&rs, codec).unwrap();
            let rules = RecordRules { require_key: true, max_inflated: MAX };
            match validate_records(&b, &rules) {
                Err(RecordsError::Invalid { record_errors, .. }) => {
                    assert_eq!(record_errors.iter().map(|e| e.batch_index).collect::<Vec<_>>(), vec![1, 3]);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_compression_bomb_stops_at_the_limit() {
        let rs: Vec<Record> = (0..200).map(|i| Record { value: Some(Bytes::from(vec![0u8; 64 * 1024])), ..rec(i, Some("k")) }).collect();
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let b = encode_batch(&rs, codec).unwrap();
            assert_eq!(validate_records(&b, &PLAIN), Err(RecordsError::TooLarge(MAX)), "{codec:?}");
        }
    }

    #[test]
    fn header_keys_must_be_utf8() {
        let mut body = vec![0u8];
        zigzag(&mut body, 0);
        zigzag(&mut body, 0);
        zigzag(&mut body, -1);
        zigzag(&mut body, -1);
        zigzag(&mut body, 1);
        zigzag(&mut body, 2);
        body.extend_from_slice(&[0xff, 0xfe]);
        zigzag(&mut body, -1);
        let mut r = Vec::new();
        zigzag(&mut r, body.len() as i64);
        r.extend(body);
        assert!(invalid_message(validate_records(&raw_batch(1, 0, &r), &PLAIN)).contains("UTF-8"));
    }
}
