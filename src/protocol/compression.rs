//! Decoding and re-encoding whole record batches, for the few places that must
//! look inside records: broker-side re-compression (`compression.type`), the log
//! cleaner (keys), ListOffsets by timestamp (record timestamps).
//!
//! The hot produce/fetch path never comes here: it keeps batches as bytes.
//! Decompression is bounded: a batch that inflates past `max_inflated` bytes
//! is rejected instead of being allowed to allocate without limit (a few KiB
//! of zstd can expand to gigabytes).

use std::io::Read;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, RecordSet};

use super::record_validator::{walk_records, Deltas, RecordsError};

/// Why a batch could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The decompressed records would exceed this many bytes.
    #[error("record batch inflates past {0} bytes")]
    TooLarge(usize),
    /// The compressed payload or the records in it are malformed; the text is the
    /// codec's or the record walk's error.
    #[error("record batch does not decode: {0}")]
    Corrupt(String),
    /// Compressing the records failed; the text is the codec's error.
    #[error("record batch could not be encoded: {0}")]
    Encode(String),
}

/// The codec of a `compression.type` value; `producer` (keep as sent) is None.
pub fn codec_for(compression_type: &str) -> Option<Compression> {
    match compression_type {
        "uncompressed" | "none" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// The codec in a batch's attributes (low 3 bits).
pub fn codec_of(attributes_codec: u8) -> Option<Compression> {
    match attributes_codec {
        0 => Some(Compression::None),
        1 => Some(Compression::Gzip),
        2 => Some(Compression::Snappy),
        3 => Some(Compression::Lz4),
        4 => Some(Compression::Zstd),
        _ => None,
    }
}

/// Decodes one whole RecordBatch v2 (header included), decompressing at most
/// `max_inflated` bytes of records.
///
/// The records are walked and checked first ([`walk_records`]): every count and
/// length in them is then consistent with the bytes, so the codec crate's
/// decoder never sizes an allocation from a hostile count (a record claiming
/// 2^31-1 headers made it reserve gigabytes).
pub fn decode_batch(batch: &Bytes, max_inflated: usize) -> Result<RecordSet, CodecError> {
    walk_records(batch, max_inflated, Deltas::Increasing, |_| true).map_err(|e| match e {
        RecordsError::TooLarge(n) => CodecError::TooLarge(n),
        RecordsError::Invalid { message, .. } => CodecError::Corrupt(message),
    })?;
    let mut buf = batch.clone();
    let decompress = |data: &mut Bytes, codec: Compression| -> anyhow::Result<Bytes> { inflate(data, codec, max_inflated).map_err(|e| anyhow::anyhow!(e)) };
    RecordBatchDecoder::decode_with_custom_compression(&mut buf, Some(decompress)).map_err(|e| {
        // Our own error travels through the codec crate's anyhow; keep its kind.
        match e.downcast_ref::<CodecError>() {
            Some(CodecError::TooLarge(n)) => CodecError::TooLarge(*n),
            _ => match e.root_cause().downcast_ref::<CodecError>() {
                Some(CodecError::TooLarge(n)) => CodecError::TooLarge(*n),
                _ => CodecError::Corrupt(format!("{e:#}")),
            },
        }
    })
}

/// Encodes the records of ONE batch (offsets, timestamps and producer fields as
/// given; offsets increasing) into RecordBatch v2 bytes with `codec`.
/// Sequence numbers are re-derived from the first record's (a batch stores only
/// its base sequence: each record's is base + offset delta), which keeps them
/// all in one batch even when records were removed from the middle.
pub fn encode_batch(records: &[Record], codec: Compression) -> Result<Bytes, CodecError> {
    let mut out = BytesMut::new();
    let Some(first) = records.first() else { return Ok(out.freeze()) };
    let (base_seq, base_off) = (first.sequence, first.offset);
    // A batch holds each record's offset as a 32-bit delta and its timestamp as
    // a delta from the smallest: records decoded from a client's batch carry
    // the client's deltas, which may not fit (the encoder's arithmetic would overflow).
    let (min_ts, max_ts) = records.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| (lo.min(r.timestamp), hi.max(r.timestamp)));
    let offsets_fit = records.iter().all(|r| r.offset.checked_sub(base_off).is_some_and(|d| i32::try_from(d).is_ok()));
    if !offsets_fit || max_ts.checked_sub(min_ts).is_none() {
        return Err(CodecError::Encode("record offsets or timestamps too far apart for one batch".into()));
    }
    let normalized: Vec<Record> = records.iter().map(|r| Record { sequence: base_seq.wrapping_add((r.offset - base_off) as i32), ..r.clone() }).collect();
    RecordBatchEncoder::encode(&mut out, normalized.iter(), &RecordEncodeOptions { version: 2, compression: codec })
        .map_err(|e| CodecError::Encode(format!("{e:#}")))?;
    Ok(out.freeze())
}

/// Decompresses `data` with `codec`, failing once more than `limit` bytes come out.
fn inflate(data: &mut Bytes, codec: Compression, limit: usize) -> Result<Bytes, CodecError> {
    let src = data.split_to(data.len());
    let corrupt = |e: std::io::Error| CodecError::Corrupt(e.to_string());
    let read_bounded = |mut r: Box<dyn Read + '_>| -> Result<Bytes, CodecError> {
        let mut out = Vec::new();
        r.by_ref().take(limit as u64 + 1).read_to_end(&mut out).map_err(corrupt)?;
        if out.len() > limit {
            return Err(CodecError::TooLarge(limit));
        }
        Ok(Bytes::from(out))
    };
    match codec {
        Compression::None => {
            if src.len() > limit {
                return Err(CodecError::TooLarge(limit));
            }
            Ok(src)
        }
        Compression::Gzip => read_bounded(Box::new(flate2::read::GzDecoder::new(src.reader()))),
        Compression::Lz4 => read_bounded(Box::new(lz4::Decoder::new(src.reader()).map_err(corrupt)?)),
        Compression::Zstd => read_bounded(Box::new(zstd::stream::read::Decoder::new(src.reader()).map_err(corrupt)?)),
        Compression::Snappy => inflate_snappy(src, limit),
    }
}

/// Kafka's snappy is xerial-framed (a magic header, then length-prefixed raw
/// snappy blocks); a stream without the header is one raw block (as Java reads it).
/// Every block states its inflated length up front, so the limit is checked
/// before anything is allocated.
fn inflate_snappy(mut src: Bytes, limit: usize) -> Result<Bytes, CodecError> {
    const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
    const XERIAL_HEADER_LEN: usize = 16;
    let bad = |e: snap::Error| CodecError::Corrupt(e.to_string());
    let mut blocks = Vec::new();
    if src.len() >= XERIAL_HEADER_LEN && src.starts_with(XERIAL_MAGIC) {
        src.advance(XERIAL_HEADER_LEN);
        while src.has_remaining() {
            if src.remaining() < 4 {
                return Err(CodecError::Corrupt("truncated snappy block length".into()));
            }
            let n = src.get_u32() as usize;
            if n > src.remaining() {
                return Err(CodecError::Corrupt("truncated snappy block".into()));
            }
            blocks.push(src.split_to(n));
        }
    } else {
        blocks.push(src);
    }
    let mut total = 0usize;
    for b in &blocks {
        total = total.saturating_add(snap::raw::decompress_len(b).map_err(bad)?);
        if total > limit {
            return Err(CodecError::TooLarge(limit));
        }
    }
    let mut out = vec![0u8; total];
    let mut at = 0;
    for b in &blocks {
        at += snap::raw::Decoder::new().decompress(b, &mut out[at..]).map_err(bad)?;
    }
    out.truncate(at);
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize, value_len: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: kafka_protocol::records::TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32,
                timestamp: 1_000 + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'x'; value_len])),
                headers: Default::default(),
            })
            .collect()
    }

    #[test]
    fn every_codec_round_trips() {
        let rs = records(50, 100);
        for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let b = encode_batch(&rs, codec).unwrap();
            let set = decode_batch(&b, 1 << 20).unwrap();
            assert_eq!(set.compression, codec);
            assert_eq!(set.records, rs, "{codec:?}");
        }
    }

    #[test]
    fn a_batch_inflating_past_the_limit_is_refused() {
        // 1000 x 10 KiB of one byte value compresses to a few KiB.
        let rs = records(1000, 10 * 1024);
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let b = encode_batch(&rs, codec).unwrap();
            assert!(b.len() < 1 << 20, "{codec:?} compressed to {}", b.len());
            match decode_batch(&b, 1 << 20) {
                Err(CodecError::TooLarge(_)) => {}
                other => panic!("{codec:?}: expected TooLarge, got {:?}", other.map(|s| s.records.len())),
            }
        }
    }

    /// Found by fuzz/record_batch: a client's batch whose offset deltas put
    /// two records 2^63 apart made re-compression (`compression.type`)
    /// overflow while normalizing sequences; timestamps that far apart would
    /// overflow in the encoder. Both are an encode error now.
    #[test]
    fn records_too_far_apart_for_one_batch_are_an_encode_error() {
        let mut rs = records(2, 10);
        (rs[0].offset, rs[1].offset) = (i64::MAX, -1);
        assert!(matches!(encode_batch(&rs, Compression::Lz4), Err(CodecError::Encode(_))));
        let mut rs = records(2, 10);
        rs[1].offset = i64::MIN;
        assert!(matches!(encode_batch(&rs, Compression::Lz4), Err(CodecError::Encode(_))));
        let mut rs = records(2, 10);
        rs[1].offset = i32::MAX as i64 + 1;
        assert!(matches!(encode_batch(&rs, Compression::None), Err(CodecError::Encode(_))));
        let mut rs = records(2, 10);
        (rs[0].timestamp, rs[1].timestamp) = (i64::MIN, i64::MAX);
        assert!(matches!(encode_batch(&rs, Compression::Zstd), Err(CodecError::Encode(_))));
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        let rs = records(3, 10);
        let mut raw = BytesMut::from(&encode_batch(&rs, Compression::Zstd).unwrap()[..]);
        let n = raw.len();
        raw[n - 5..].copy_from_slice(&[0xff; 5]);
        assert!(decode_batch(&raw.freeze(), 1 << 20).is_err());
    }
}
