//! The `records` of one Produce partition (RecordBatch v2, one or more back
//! to back), through what the broker does with them:
//! `record_batch::validate_batches` (framing, magic, size, counts, CRC), then
//! per batch `compression::decode_batch` (bounded decompression and record
//! decoding, as ListOffsets-by-timestamp and the cleaner use it) and, for a
//! control batch, `control::decode_marker`; then `produce_policy::apply` with
//! a compacted topic that re-compresses to another codec, the produce path
//! that decodes and re-encodes every record.
//!
//! Most inputs would fail the CRC; the target fixes up each batch's CRC
//! before validating (a mutation then reaches the records instead of dying at
//! the checksum), and also validates the bytes as they came, unchanged.
//!
//! Property: no panic, no hang, no allocation of 256 MiB or more.
#![no_main]

use std::collections::BTreeMap;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use shardlog::config::Config;
use shardlog::log::produce_policy;
use shardlog::log::LogConfig;
use shardlog::protocol::compression::decode_batch;
use shardlog::protocol::control::decode_marker;
use shardlog::protocol::record_batch::{validate_batches, ValidatedBatch};
use shardlog::protocol::record_validator::{validate_records, RecordRules};
use shardlog_fuzz::fix_crcs;

#[global_allocator]
static ALLOC: shardlog_fuzz::CappedAlloc = shardlog_fuzz::CappedAlloc;

/// `message.max.bytes`'s default.
const MESSAGE_MAX_BYTES: usize = 1_048_588;
/// The decompression bound handed to the decoders. The broker passes
/// `socket.request.max.bytes` (100 MiB); a smaller bound keeps a
/// decompression bomb from costing 100 MiB per execution while still
/// checking that the bound is what stops it.
const MAX_INFLATED: usize = 8 << 20;

/// Everything the broker does with one batch that passed `validate_batches`.
/// The record-level validator (issue 13) is one more call here.
fn check_batch(b: &ValidatedBatch) {
    if b.header.is_control() {
        let _ = decode_marker(&b.bytes);
    }
    // Kafka's LogValidator rules, as produce applies them to every batch (with
    // and without the compacted-topic key rule); decode_batch walks the records
    // the same way before the codec crate decodes them.
    for require_key in [false, true] {
        let _ = validate_records(&b.bytes, &RecordRules { require_key, max_inflated: MAX_INFLATED });
    }
    let _ = decode_batch(&b.bytes, MAX_INFLATED);
}

/// A compacted topic that stores lz4: `apply` decodes every batch (keys are
/// checked) and re-encodes those in another codec. LogAppendTime skips the
/// timestamp bounds, which depend on the wall clock.
fn compacting_lz4_topic() -> LogConfig {
    let topic: BTreeMap<String, String> = [("cleanup.policy", "compact"), ("compression.type", "lz4"), ("message.timestamp.type", "LogAppendTime")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    LogConfig::from(&Config::default(), &topic)
}

fn run(records: &Bytes, cfg: &LogConfig) {
    let Ok(batches) = validate_batches(records, MESSAGE_MAX_BYTES) else { return };
    for b in &batches {
        check_batch(b);
    }
    if let Ok(out) = produce_policy::apply(cfg, batches, MAX_INFLATED) {
        for b in &out {
            check_batch(b);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let cfg = compacting_lz4_topic();
    run(&Bytes::copy_from_slice(data), &cfg);
    let mut fixed = data.to_vec();
    fix_crcs(&mut fixed);
    if fixed != data {
        run(&Bytes::from(fixed), &cfg);
    }
});
