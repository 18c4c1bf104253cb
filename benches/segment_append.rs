//! Hot path guarded: the produce append — record batches written from request
//! buffers into the active segment with one `writev` through the shard's
//! private io_uring (`io::ring::Ring::writev_all`), optionally followed by
//! `fdatasync` (`Ring::fdatasync`, what `log.flush.interval.*` triggers).
//!
//! Inside a glommio executor pinned to core 0 (a shard), `Ring::start()` once,
//! then 1 MiB per iteration as 16 x 64 KiB iovecs, appended to a file under
//! `target/` (a real disk; /tmp may be tmpfs, where fdatasync is free). As a
//! segment does (`Segment::reserve`), the file is preallocated with
//! `FALLOC_FL_KEEP_SIZE`; every 256 MiB it is truncated and preallocated again,
//! outside the timed region. Timed with criterion's `iter_custom`, which sends
//! the iteration count to the executor thread and gets its elapsed time back.
//! Set `SHARDLOG_BENCH_DIR` to bench another disk.
//!
//! Run: `cargo bench --bench segment_append -- --warm-up-time 1 --measurement-time 2`

// Generated code: `criterion_group!` expands to an undocumented `pub fn` (the
// benchmark group), which the workspace's `missing_docs` lint would report.
#![allow(missing_docs)]

use std::any::Any;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use glommio::{LocalExecutorBuilder, Placement};
use shardlog::io::ring::Ring;

/// One iovec: a 64 KiB batch.
const IOV_BYTES: usize = 64 * 1024;
/// Iovecs per write: 16 x 64 KiB = 1 MiB per `writev_all`.
const IOVS: usize = 16;
const WRITE_BYTES: u64 = (IOV_BYTES * IOVS) as u64;
/// File size before it is truncated and reused (keeps disk use bounded).
const FILE_CYCLE_BYTES: u64 = 256 << 20;
/// glommio io_memory: the ring bench does no glommio file I/O; stays under an 8 MiB memlock limit.
const IO_MEMORY_BYTES: usize = 1 << 20;

struct Cmd {
    iters: u64,
    fdatasync: bool,
}

fn bench_dir() -> PathBuf {
    std::env::var_os("SHARDLOG_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn preallocate(fd: i32) {
    // SAFETY: fallocate on our own open fd; KEEP_SIZE leaves the file size alone.
    let r = unsafe { libc::fallocate(fd, libc::FALLOC_FL_KEEP_SIZE, 0, FILE_CYCLE_BYTES as i64) };
    if r != 0 {
        eprintln!("fallocate failed ({}); appending without preallocation", std::io::Error::last_os_error());
    }
}

fn benches(c: &mut Criterion) {
    let (cmd_tx, cmd_rx) = mpsc::channel::<Cmd>();
    let (done_tx, done_rx) = mpsc::channel::<Duration>();
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).expect("bench dir");
    let shard = LocalExecutorBuilder::new(Placement::Fixed(0))
        .name("append-shard")
        .io_memory(IO_MEMORY_BYTES)
        .spawn(move || async move {
            let ring = Ring::start().expect("io_uring ring");
            let file = tempfile::tempfile_in(&dir).expect("tempfile");
            let fd = file.as_raw_fd();
            preallocate(fd);
            let bufs: Vec<Vec<u8>> = (0..IOVS).map(|i| vec![i as u8; IOV_BYTES]).collect();
            let iov: Vec<libc::iovec> = bufs.iter().map(|b| libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() }).collect();
            let keep: Rc<dyn Any> = Rc::new(bufs);
            let mut pos = 0u64;
            // Blocking here is fine: between commands the ring has nothing in flight.
            while let Ok(Cmd { iters, fdatasync }) = cmd_rx.recv() {
                let mut timed = Duration::ZERO;
                let mut start = Instant::now();
                for _ in 0..iters {
                    if pos + WRITE_BYTES > FILE_CYCLE_BYTES {
                        timed += start.elapsed();
                        file.set_len(0).expect("truncate");
                        preallocate(fd);
                        pos = 0;
                        start = Instant::now();
                    }
                    ring.writev_all(fd, iov.clone(), keep.clone(), pos).await.expect("writev");
                    if fdatasync {
                        ring.fdatasync(fd).await.expect("fdatasync");
                    }
                    pos += WRITE_BYTES;
                }
                timed += start.elapsed();
                done_tx.send(timed).expect("bench thread alive");
            }
        })
        .expect("spawn shard executor on core 0");

    let mut g = c.benchmark_group("segment_append");
    g.throughput(Throughput::Bytes(WRITE_BYTES));
    for (name, fdatasync) in [("writev_1MiB_16x64KiB", false), ("writev_1MiB_16x64KiB+fdatasync", true)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                cmd_tx.send(Cmd { iters, fdatasync }).expect("shard alive");
                done_rx.recv().expect("shard alive")
            })
        });
    }
    g.finish();
    drop(cmd_tx);
    shard.join().expect("shard executor");
}

criterion_group!(segment_append, benches);
criterion_main!(segment_append);
