//! A partition directory's files as recovery reads them at start-up: a
//! segment's `.log`, `.index` and `.timeindex`, its `.txnindex`, and a
//! producer-state `.snapshot`, parsed with the functions `log::segment`,
//! `log::txn_index` and `log::producer_state` use on the files:
//!
//! * the clean-start path: `parse_offset_index`, `parse_time_index`, then
//!   `walk_batches` over the log from the last index entry;
//! * the recovery path: `scan_batches` (CRC checked or not) feeding
//!   `Segment::note_batch`, which rebuilds the indexes;
//! * producer state: `ProducerState::parse_snapshot`, then the replay of the
//!   scanned batch headers and transaction markers (as `load_producer_state`
//!   does), and `txn_index::parse` with `overlapping`.
//!
//! Properties, beyond no panic, hang or allocation of 256 MiB or more:
//! recovery is idempotent (scanning the valid prefix it kept keeps all of
//! it); indexes written from a rebuilt segment load back, and the clean-start
//! path then agrees with the rebuild on the next offset, max timestamp and
//! bytes since the last index entry; a snapshot written from the replayed
//! state parses back.
//!
//! Input layout (see README.md; `seeds/make_corpora.py` builds it from a
//! data directory): one flags byte (bit 0: check CRCs as an unclean start
//! does; bit 1: first rewrite the CRC of each batch of the `.log`, so that
//! mutated batches get past the check), then sections `tag: u8, length: u16
//! BE, bytes`, tag 0 `.log`, 1 `.index`, 2 `.timeindex`, 3 `.txnindex`,
//! 4 `.snapshot`.
#![no_main]

use std::cell::RefCell;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use shardlog::log::producer_state::{Origin, ProducerState};
use shardlog::log::segment::{encode_offset_index, encode_time_index, parse_offset_index, parse_time_index, scan_batches, walk_batches, Segment};
use shardlog::log::txn_index::{self, AbortedTxn};
use shardlog::protocol::control::decode_marker;

#[global_allocator]
static ALLOC: shardlog_fuzz::CappedAlloc = shardlog_fuzz::CappedAlloc;

/// `log.index.interval.bytes`'s default.
const INDEX_INTERVAL_BYTES: u64 = 4096;

thread_local! {
    /// One segment whose in-memory state each input resets and rebuilds:
    /// `note_batch` is a method, and a segment needs a file (created once,
    /// in a directory removed at once; the open file is never written).
    static SEGMENT: RefCell<Segment> = RefCell::new(scratch_segment());
}

fn scratch_segment() -> Segment {
    let dir = std::env::temp_dir().join(format!("shardlog-fuzz-recovery-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let seg = Segment::create(&dir, 0, std::time::Instant::now());
    let _ = std::fs::remove_dir_all(&dir);
    seg.expect("scratch segment")
}

#[derive(Default)]
struct Files<'a> {
    check_crc: bool,
    fix_crcs: bool,
    log: &'a [u8],
    index: &'a [u8],
    time_index: &'a [u8],
    txn_index: &'a [u8],
    snapshot: &'a [u8],
}

fn split(data: &[u8]) -> Files<'_> {
    let mut f = Files::default();
    let Some((&flags, mut rest)) = data.split_first() else { return f };
    f.check_crc = flags & 1 != 0;
    f.fix_crcs = flags & 2 != 0;
    while rest.len() >= 3 {
        let len = u16::from_be_bytes([rest[1], rest[2]]) as usize;
        let tag = rest[0];
        let body = &rest[3..(3 + len).min(rest.len())];
        match tag {
            0 => f.log = body,
            1 => f.index = body,
            2 => f.time_index = body,
            3 => f.txn_index = body,
            4 => f.snapshot = body,
            _ => {}
        }
        rest = &rest[3 + body.len()..];
    }
    f
}

/// What rebuilding a segment from `log` found.
struct Rebuilt {
    valid: u64,
    index: Vec<(u32, u32)>,
    time_index: Vec<(i64, u32)>,
    next_offset: i64,
    max_timestamp: i64,
    bytes_since_index: u64,
    /// Position and length of each valid batch.
    batches: Vec<(u64, u64)>,
}

/// `Segment::rebuild` on memory: reset, then `scan_batches` into `note_batch`.
fn rebuild(seg: &mut Segment, log: &[u8], check_crc: bool) -> Rebuilt {
    seg.index.clear();
    seg.time_index.clear();
    seg.bytes_since_index = 0;
    seg.max_timestamp = -1;
    seg.next_offset = seg.base_offset;
    let mut batches = Vec::new();
    let valid = scan_batches(log, log.len() as u64, seg.base_offset, check_crc, |h, pos, total| {
        seg.note_batch(h, pos as u32, total, INDEX_INTERVAL_BYTES);
        batches.push((pos, total));
    });
    Rebuilt {
        valid,
        index: seg.index.clone(),
        time_index: seg.time_index.clone(),
        next_offset: seg.next_offset,
        max_timestamp: seg.max_timestamp,
        bytes_since_index: seg.bytes_since_index,
        batches,
    }
}

/// `Segment::load_indexes` on memory: the state a clean start would take.
fn load(log: &[u8], index: &[u8], time_index: &[u8], base_offset: i64) -> Option<(i64, i64, u64)> {
    let index = parse_offset_index(index, log.len() as u64)?;
    let time_index = parse_time_index(time_index)?;
    let from = index.last().map(|&(_, p)| p as u64).unwrap_or(0);
    let tail = walk_batches(log, from, log.len() as u64)?;
    let max_timestamp = time_index.last().map(|&(t, _)| t).unwrap_or(-1).max(tail.max_timestamp);
    Some((tail.next_offset.unwrap_or(base_offset), max_timestamp, tail.bytes))
}

/// `load_producer_state`'s replay of the batches after a snapshot.
fn replay(producers: &mut ProducerState, log: &[u8], batches: &[(u64, u64)]) -> Vec<AbortedTxn> {
    let mut aborted = Vec::new();
    for &(pos, total) in batches {
        let bytes = &log[pos as usize..(pos + total) as usize];
        let Ok(h) = shardlog::protocol::record_batch::BatchHeader::parse(bytes) else { continue };
        if h.producer_id < 0 {
            continue;
        }
        if h.is_control() {
            if let Some((commit, coordinator_epoch)) = decode_marker(&Bytes::copy_from_slice(bytes)) {
                let _ = producers.check_marker(h.producer_id, h.producer_epoch, coordinator_epoch);
                if let Some(c) = producers.apply_marker(h.producer_id, h.producer_epoch, coordinator_epoch, commit, h.base_offset, h.max_timestamp) {
                    producers.end_ongoing(c.first_offset);
                    if c.aborted {
                        aborted.push(AbortedTxn::of(&c, producers.first_unstable_offset()));
                    }
                }
            }
        } else {
            // What a produce of the same batch would be told, then the replay's update.
            let _ = producers.check(&h, Origin::Client);
            producers.update(&h);
        }
    }
    aborted
}

fuzz_target!(|data: &[u8]| {
    let mut f = split(data);
    let fixed;
    if f.fix_crcs {
        let mut log = f.log.to_vec();
        shardlog_fuzz::fix_crcs(&mut log);
        fixed = log;
        f.log = &fixed;
    }
    SEGMENT.with(|seg| {
        let mut seg = seg.borrow_mut();
        let base_offset = seg.base_offset;

        // Clean start with the stored indexes (any bytes at all).
        let _ = load(f.log, f.index, f.time_index, base_offset);

        // Unclean start: the scan, then the properties of what it kept.
        let r = rebuild(&mut seg, f.log, f.check_crc);
        assert!(r.valid <= f.log.len() as u64);
        let again = rebuild(&mut seg, &f.log[..r.valid as usize], f.check_crc);
        assert_eq!(again.valid, r.valid, "a second recovery dropped data the first kept");
        let loaded = load(&f.log[..r.valid as usize], &encode_offset_index(&r.index), &encode_time_index(&r.time_index), base_offset);
        assert_eq!(
            loaded,
            Some((r.next_offset, r.max_timestamp, r.bytes_since_index)),
            "indexes written after a rebuild do not load back to the same segment state"
        );

        // Producer state: the stored snapshot, the replay, and a snapshot of the result.
        let mut producers = ProducerState::parse_snapshot(f.snapshot).unwrap_or_default();
        let mut aborted = txn_index::parse(f.txn_index);
        aborted.extend(replay(&mut producers, f.log, &r.batches));
        let _ = txn_index::overlapping(&aborted, base_offset, r.next_offset);
        let snapshot = producers.encode_snapshot().expect("snapshot encodes");
        assert!(ProducerState::parse_snapshot(&snapshot).is_some(), "a written snapshot does not parse back");
    });
});
