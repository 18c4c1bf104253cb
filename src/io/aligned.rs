//! Block-aligned buffers for O_DIRECT (DMA) writes, from a per-thread pool.
//!
//! O_DIRECT wants the memory, the file offset and the length of every write
//! aligned to the device's logical block; [`BLOCK`] (4 KiB) covers every
//! device Linux offers (512-byte and 4 KiB sectors). A chunk is allocated
//! zeroed once and then recycled: dropping an [`AlignedBuf`] returns its
//! memory to the pool of the thread it was made on (each shard has its own,
//! with no lock), up to [`POOL_MAX_CHUNKS`]; beyond that it is freed.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::RefCell;
use std::ptr::NonNull;

/// Alignment and granularity of direct I/O.
pub const BLOCK: usize = 4096;
/// Bytes of one pooled chunk (a multiple of [`BLOCK`]).
pub const CHUNK_BYTES: usize = 128 * 1024;
/// Free chunks a thread keeps for reuse (4 MiB).
pub const POOL_MAX_CHUNKS: usize = 32;

thread_local! {
    static POOL: RefCell<Vec<NonNull<u8>>> = const { RefCell::new(Vec::new()) };
}

/// The chunk's layout, checked when compiling (CHUNK_BYTES and BLOCK are
/// non-zero powers of two), so no run can fail here.
const LAYOUT: Layout = match Layout::from_size_align(CHUNK_BYTES, BLOCK) {
    Ok(l) => l,
    Err(_) => panic!("CHUNK_BYTES and BLOCK must make a valid layout"),
};

fn layout() -> Layout {
    LAYOUT
}

/// One [`CHUNK_BYTES`] buffer aligned to [`BLOCK`]. It may end on another
/// thread (the tail cache's chunks are sent from there): it then joins that
/// thread's pool.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
}

// SAFETY: an AlignedBuf is the only owner of its allocation, like a Box<[u8]>;
// shared access is read-only (`as_slice`).
unsafe impl Send for AlignedBuf {}
// SAFETY: as above; `&AlignedBuf` only reads.
unsafe impl Sync for AlignedBuf {}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AlignedBuf {
    /// A chunk from this thread's pool, or a freshly allocated zeroed one.
    /// Its bytes are whatever the previous user left (initialised memory).
    pub fn take() -> AlignedBuf {
        if let Some(ptr) = POOL.with(|p| p.borrow_mut().pop()) {
            return AlignedBuf { ptr };
        }
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout()) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout()));
        AlignedBuf { ptr }
    }

    /// The chunk's memory.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` owns CHUNK_BYTES initialised bytes (zeroed at allocation).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), CHUNK_BYTES) }
    }

    /// The chunk's memory, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), CHUNK_BYTES) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let ptr = self.ptr;
        let kept = POOL
            .try_with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < POOL_MAX_CHUNKS {
                    p.push(ptr);
                    true
                } else {
                    false
                }
            })
            .unwrap_or(false);
        if !kept {
            // SAFETY: allocated in `take` with the same layout, and no longer referenced.
            unsafe { dealloc(ptr.as_ptr(), layout()) };
        }
    }
}

/// Rounds `n` down to a multiple of [`BLOCK`].
pub fn align_down(n: u64) -> u64 {
    n & !(BLOCK as u64 - 1)
}

/// Rounds `n` up to a multiple of [`BLOCK`].
pub fn align_up(n: u64) -> u64 {
    align_down(n + BLOCK as u64 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_aligned_and_recycled() {
        let a = AlignedBuf::take();
        assert_eq!(a.as_slice().as_ptr() as usize % BLOCK, 0);
        let p = a.as_slice().as_ptr();
        drop(a);
        let b = AlignedBuf::take();
        assert_eq!(b.as_slice().as_ptr(), p, "a dropped chunk is reused by the same thread");
        assert_eq!((align_down(4097), align_up(4097), align_up(4096), align_up(0)), (4096, 8192, 4096, 0));
    }
}
