//! Shared by the fuzz targets in `fuzz_targets/`.
//!
//! [`CappedAlloc`] is the "no huge allocation" property. libFuzzer's own
//! `-malloc_limit_mb` only works through a sanitizer's malloc hooks, and the
//! targets are built with `-s none` so that they build on stable Rust (see
//! README.md), so each target installs this allocator instead: any single
//! allocation of [`MAX_ALLOCATION_BYTES`] or more prints what asked for it and
//! aborts, which libFuzzer reports as a crash and saves the input. The bound
//! is far above anything a decoder needs for the inputs the targets take
//! (`-max_len`, at most a few hundred KiB), and far below the gigabytes a
//! length or count read off the wire asks for when it is trusted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use shardlog::protocol::record_batch::{ATTRIBUTES_OFFSET, BATCH_LENGTH_OFFSET, CRC_OFFSET, LOG_OVERHEAD};

/// Largest single allocation a target may make (256 MiB).
pub const MAX_ALLOCATION_BYTES: usize = 256 << 20;

/// The system allocator, aborting on any allocation of [`MAX_ALLOCATION_BYTES`] or more.
pub struct CappedAlloc;

static REPORTING: AtomicBool = AtomicBool::new(false);

#[cold]
fn too_large(size: usize) -> ! {
    // The report itself allocates (the backtrace); a second oversized request
    // while reporting, or a report that fails, must still end in the abort.
    if !REPORTING.swap(true, Ordering::SeqCst) {
        let mut err = std::io::stderr();
        let _ = writeln!(err, "==fuzz== allocation of {size} bytes (limit {MAX_ALLOCATION_BYTES}): a length or count was trusted before it was checked");
        let _ = writeln!(err, "{}", std::backtrace::Backtrace::force_capture());
    }
    std::process::abort()
}

// SAFETY: every call is forwarded unchanged to `System` after the size check.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MAX_ALLOCATION_BYTES {
            too_large(layout.size());
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MAX_ALLOCATION_BYTES {
            too_large(layout.size());
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= MAX_ALLOCATION_BYTES {
            too_large(new_size);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Rewrites the CRC of every complete RecordBatch in `buf` in place, walking
/// the batch lengths: most mutated inputs would otherwise stop at the CRC
/// check and never reach the records or the recovery code behind it.
pub fn fix_crcs(buf: &mut [u8]) {
    let mut pos = 0usize;
    while pos + ATTRIBUTES_OFFSET <= buf.len() {
        let len = i32::from_be_bytes(buf[pos + BATCH_LENGTH_OFFSET..pos + BATCH_LENGTH_OFFSET + 4].try_into().unwrap());
        let Some(end) = usize::try_from(len).ok().and_then(|l| (pos + LOG_OVERHEAD).checked_add(l)) else { return };
        if end > buf.len() || end < pos + ATTRIBUTES_OFFSET {
            return;
        }
        let crc = crc32c::crc32c(&buf[pos + ATTRIBUTES_OFFSET..end]);
        buf[pos + CRC_OFFSET..pos + CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        pos = end;
    }
}
