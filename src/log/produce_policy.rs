//! Topic rules a produced batch must pass before it is sent to its owner
//! shard, applied on the connection's shard (spreading the work):
//! `message.timestamp.before/after.max.ms`
//! (CreateTime topics), keys on compacted topics, and `compression.type`
//! (re-compress batches whose codec differs).
//!
//! Every batch is also walked record by record (Kafka's LogValidator, see
//! `protocol::record_validator`): one pass, no allocation, no copy for
//! uncompressed batches; compressed ones are decompressed through a fixed
//! buffer. Only re-compression decodes records into values.

use kafka_protocol::records::Compression;

use crate::error::{Error, Result};
use crate::log::LogConfig;
use crate::protocol::compression::{codec_of, decode_batch, encode_batch, CodecError};
use crate::protocol::record_batch::{validate_batches, ValidatedBatch, ATTR_CONTROL};
use crate::protocol::record_validator::{validate_records, RecordRules};

/// Applies the topic's rules to validated batches; may replace them (re-compression).
pub fn apply(cfg: &LogConfig, batches: Vec<ValidatedBatch>, max_inflated: usize) -> Result<Vec<ValidatedBatch>> {
    if !cfg.log_append_time {
        let now = cfg.clock.now_ms();
        for b in &batches {
            check_timestamps(cfg, now, b.header.base_timestamp.min(b.header.max_timestamp), b.header.max_timestamp)?;
        }
    }
    // Kafka's LogValidator: every record of every batch, keys on compacted topics.
    // Record indexes in errors count across the partition's batches.
    let rules = RecordRules { require_key: cfg.compact, max_inflated };
    let mut first_index = 0i32;
    for b in &batches {
        validate_records(&b.bytes, &rules).map_err(|e| Error::from(e.offset_indexes(first_index)))?;
        first_index = first_index.saturating_add(b.header.records_count);
    }
    let recompress =
        cfg.compression.filter(|&c| batches.iter().any(|b| codec_of(b.header.compression()) != Some(c) && b.header.attributes & ATTR_CONTROL == 0));
    let Some(codec) = recompress else {
        return Ok(batches);
    };
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        if b.header.attributes & ATTR_CONTROL != 0 || codec_of(b.header.compression()) == Some(codec) {
            out.push(b);
            continue;
        }
        let set = decode_batch(&b.bytes, max_inflated).map_err(|e| match e {
            CodecError::TooLarge(n) => Error::InflatesTooLarge(n),
            _ => Error::CorruptMessage("record batch does not decode"),
        })?;
        out.extend(reencode(&set.records, codec, cfg.max_message_bytes)?);
    }
    Ok(out)
}

/// Kafka's KIP-937 bounds, checked on the batch's first and largest timestamps.
fn check_timestamps(cfg: &LogConfig, now: i64, min_ts: i64, max_ts: i64) -> Result<()> {
    if cfg.timestamp_before_max_ms < i64::MAX && min_ts < now.saturating_sub(cfg.timestamp_before_max_ms) {
        return Err(Error::InvalidTimestamp(format!(
            "timestamp {min_ts} is more than message.timestamp.before.max.ms ({}) before the broker's time {now}",
            cfg.timestamp_before_max_ms
        )));
    }
    if cfg.timestamp_after_max_ms < i64::MAX && max_ts > now.saturating_add(cfg.timestamp_after_max_ms) {
        return Err(Error::InvalidTimestamp(format!(
            "timestamp {max_ts} is more than message.timestamp.after.max.ms ({}) after the broker's time {now}",
            cfg.timestamp_after_max_ms
        )));
    }
    Ok(())
}

fn reencode(records: &[kafka_protocol::records::Record], codec: Compression, max: usize) -> Result<Vec<ValidatedBatch>> {
    let bytes = encode_batch(records, codec).map_err(|_| Error::CorruptMessage("record batch could not be re-compressed"))?;
    Ok(validate_batches(&bytes, max)?)
}
