//! Hot path guarded: offset and time lookups in a log segment's sparse
//! indexes, run for every Fetch (`Segment::find_batch`: index floor, then a
//! header walk with `pread`) and ListOffsets by time
//! (`Segment::time_index_floor`), plus `Segment::note_batch`, run for every
//! appended batch.
//!
//! The segment holds 100k batches of 10 records. The in-memory index benches
//! use 1 KiB batches (a 100 MB segment, 25k index entries at Kafka's default
//! `log.index.interval.bytes` = 4096); `find_batch` needs a real file and
//! uses 128-byte batches (a 12.8 MB file written with std I/O, page-cached,
//! so up to 32 header reads per lookup between index entries).
//!
//! Run: `cargo bench --bench index -- --warm-up-time 1 --measurement-time 2`

// Generated code: `criterion_group!` expands to an undocumented `pub fn` (the
// benchmark group), which the workspace's `missing_docs` lint would report.
#![allow(missing_docs)]

use std::io::Write;
use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shardlog::log::segment::Segment;
use shardlog::protocol::record_batch::{crc_of, BatchHeader, BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2};

/// Batches in the segment.
const BATCHES: i64 = 100_000;
/// Records per batch (offsets advance by this much per batch).
const RECORDS_PER_BATCH: i64 = 10;
/// Kafka's default `log.index.interval.bytes`.
const INDEX_INTERVAL_BYTES: u64 = 4096;
/// Segment base offset (nonzero, so relative offsets are exercised).
const BASE_OFFSET: i64 = 5_000_000;
/// Lookups per iteration, spread over the segment.
const LOOKUPS: usize = 1024;
const BASE_TS: i64 = 1_700_000_000_000;

fn header(i: i64, total: usize) -> BatchHeader {
    BatchHeader {
        base_offset: BASE_OFFSET + i * RECORDS_PER_BATCH,
        batch_length: (total - LOG_OVERHEAD) as i32,
        partition_leader_epoch: 0,
        magic: MAGIC_V2,
        crc: 0,
        attributes: 0,
        last_offset_delta: (RECORDS_PER_BATCH - 1) as i32,
        base_timestamp: BASE_TS + i,
        max_timestamp: BASE_TS + i,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records_count: RECORDS_PER_BATCH as i32,
    }
}

/// Pseudo-random offsets within the segment (xorshift; fixed seed, no rand dependency).
fn lookups() -> Vec<i64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..LOOKUPS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            BASE_OFFSET + (x % (BATCHES * RECORDS_PER_BATCH) as u64) as i64
        })
        .collect()
}

fn noted_segment(dir: &std::path::Path, batch_total: usize) -> Segment {
    let mut seg = Segment::create(dir, BASE_OFFSET, Instant::now()).expect("create segment");
    for i in 0..BATCHES {
        seg.note_batch(&header(i, batch_total), (i as usize * batch_total) as u32, batch_total as u64, INDEX_INTERVAL_BYTES);
    }
    seg
}

fn in_memory(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = noted_segment(dir.path(), 1024);
    eprintln!("segment: {} batches, {} index entries, {} time-index entries", BATCHES, seg.index.len(), seg.time_index.len());
    let offsets = lookups();
    let times: Vec<i64> = offsets.iter().map(|o| BASE_TS + (o - BASE_OFFSET) / RECORDS_PER_BATCH).collect();

    let mut g = c.benchmark_group("segment_index");
    g.throughput(Throughput::Elements(LOOKUPS as u64));
    g.bench_function("index_floor", |b| b.iter(|| offsets.iter().map(|&o| seg.index_floor(black_box(o))).fold(0u64, u64::wrapping_add)));
    g.bench_function("time_index_floor", |b| b.iter(|| times.iter().map(|&t| seg.time_index_floor(black_box(t))).fold(0i64, i64::wrapping_add)));
    // Appending side: 100k batches noted into a fresh segment's in-memory indexes.
    g.throughput(Throughput::Elements(BATCHES as u64));
    let hdrs: Vec<BatchHeader> = (0..BATCHES).map(|i| header(i, 1024)).collect();
    let mut n = 0u64;
    g.bench_function("note_batch/100k", |b| {
        b.iter_batched_ref(
            || {
                n += 1;
                Segment::create(dir.path(), BASE_OFFSET + n as i64 * 10_000_000, Instant::now()).expect("create")
            },
            |seg| {
                for (i, h) in hdrs.iter().enumerate() {
                    seg.note_batch(h, (i * 1024) as u32, 1024, INDEX_INTERVAL_BYTES);
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn on_file(c: &mut Criterion) {
    const TOTAL: usize = 128;
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // A real .log file: valid v2 headers (CRC included) and filler records, std I/O.
        let path = dir.path().join(format!("{}.log", shardlog::log::layout::file_stem(BASE_OFFSET)));
        let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("create log"));
        let body = [0xABu8; TOTAL - BATCH_HEADER_LEN];
        for i in 0..BATCHES {
            let mut h = header(i, TOTAL);
            h.crc = crc_of(&h.to_bytes(), &body);
            w.write_all(&h.to_bytes()).expect("write");
            w.write_all(&body).expect("write");
        }
        w.flush().expect("flush");
    }
    // No index files: open rebuilds the indexes with a header scan.
    let seg = Segment::open(dir.path(), BASE_OFFSET, false, INDEX_INTERVAL_BYTES, Instant::now()).expect("open segment");
    assert_eq!(seg.next_offset, BASE_OFFSET + BATCHES * RECORDS_PER_BATCH);
    let offsets = lookups();
    let mut g = c.benchmark_group("segment_file");
    g.throughput(Throughput::Elements(LOOKUPS as u64));
    g.bench_function("find_batch/128B_batches", |b| {
        b.iter(|| {
            for &o in &offsets {
                let (_, h) = seg.find_batch(black_box(o)).expect("read").expect("inside segment");
                debug_assert!(h.base_offset <= o && o <= h.last_offset());
            }
        })
    });
    g.finish();
}

criterion_group!(index, in_memory, on_file);
criterion_main!(index);
