//! A private io_uring ring per shard, for the operations glommio does not offer
//! on files the shard opens itself: DMA writes of pooled aligned chunks into
//! segments, `writev` (the cleaner's rewrites, socket sends), reads, fsyncs, and
//! `splice` from a segment file through a pipe into a socket (zero-copy fetch).
//!
//! Bridge into glommio (measured to work on this kernel, see ARCHITECTURE.md):
//! an eventfd is registered with the ring, so the kernel bumps it on every
//! completion; one driver task per shard awaits a read of that eventfd through
//! glommio (a glommio `BufferedFile` wrapping the eventfd) and then drains the
//! completion queue, waking the futures whose operations finished. The eventfd
//! counter cannot lose a wake-up: completions posted before the read is
//! submitted leave the counter non-zero and the read returns at once.
//!
//! Buffers handed to the kernel must outlive the operation even when the
//! awaiting future is dropped; each operation therefore owns a `keep` box that
//! moves into the slot table when the future goes away early and is freed only
//! when the kernel reports completion.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use io_uring::{opcode, squeue, types, IoUring};
use slab::Slab;

/// Submission queue depth per shard: concurrent segment writes + fetch splices.
/// A full queue is drained by submitting, so this bounds memory, not concurrency.
const RING_ENTRIES: u32 = 256;

enum Slot {
    /// Submitted; the waker of the future awaiting it, if polled yet.
    Waiting(Option<Waker>),
    /// The kernel's result (bytes or -errno), not yet collected.
    Done(i32),
    /// The future was dropped; buffers are kept until the kernel is done with them.
    Abandoned(#[allow(dead_code)] Box<dyn Any>),
}

struct Inner {
    ring: RefCell<IoUring>,
    slots: RefCell<Slab<Slot>>,
}

/// Handle to this shard's ring. Cheap to clone; shard-local (not `Send`).
#[derive(Clone)]
pub struct Ring {
    inner: Rc<Inner>,
}

impl Ring {
    /// Creates the ring and spawns its completion driver on the current glommio executor.
    pub fn start() -> io::Result<Ring> {
        let ring = IoUring::new(RING_ENTRIES)?;
        // SAFETY: plain syscall; the fd is owned by the driver's BufferedFile below.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        ring.submitter().register_eventfd(efd)?;
        let inner = Rc::new(Inner { ring: RefCell::new(ring), slots: RefCell::new(Slab::with_capacity(64)) });
        let driver = Rc::downgrade(&inner);
        // SAFETY: efd is a fresh descriptor owned by nobody else.
        let evfile = unsafe { glommio::io::BufferedFile::from_raw_fd(efd) };
        glommio::spawn_local(async move {
            loop {
                if evfile.read_at(0, 8).await.is_err() {
                    // An eventfd read fails only if the fd is gone; nothing left to drive.
                    break;
                }
                match driver.upgrade() {
                    Some(inner) => inner.drain(),
                    None => break,
                }
            }
        })
        .detach();
        Ok(Ring { inner })
    }

    /// Operations submitted and not yet completed (the ring's queue depth).
    pub fn in_flight(&self) -> usize {
        self.inner.slots.borrow().len()
    }

    /// Submits one entry; `keep` owns every buffer the entry points into.
    ///
    /// # Safety
    /// Every pointer in `entry` must point into memory owned by `keep` (or be
    /// otherwise valid until completion), and every fd must stay open until then.
    pub unsafe fn submit(&self, entry: squeue::Entry, keep: Box<dyn Any>) -> Op {
        crate::metrics::with(|m| m.ring_submitted());
        let key = self.inner.slots.borrow_mut().insert(Slot::Waiting(None));
        let entry = entry.user_data(key as u64);
        let mut ring = self.inner.ring.borrow_mut();
        loop {
            // SAFETY: the caller guarantees the entry's buffers live as long as `keep`.
            let pushed = unsafe { ring.submission().push(&entry).is_ok() };
            if pushed {
                break;
            }
            // Queue full: hand what is queued to the kernel, then retry.
            let _ = ring.submit();
        }
        let _ = ring.submit();
        drop(ring);
        Op { inner: self.inner.clone(), key: Some(key), keep: Some(keep) }
    }

    /// Writes all of `iov` at file offset `pos`, resubmitting after short writes.
    /// `keep` owns the memory `iov` points into.
    pub async fn writev_all(&self, fd: RawFd, iov: Vec<libc::iovec>, keep: Rc<dyn Any>, pos: u64) -> io::Result<()> {
        self.writev_inner(fd, iov, keep, Some(pos)).await
    }

    /// Receives at most `max` bytes from socket `fd` into `buf`'s spare
    /// capacity, which need not be initialised (no zeroing per read), and hands
    /// the buffer back with the kernel's bytes appended. Waits for POLLIN on
    /// EAGAIN. If the future is dropped, the buffer stays with the operation
    /// until the kernel is done with it.
    pub async fn recv_into(&self, fd: RawFd, buf: bytes::BytesMut, max: usize) -> (bytes::BytesMut, io::Result<usize>) {
        let shared = Rc::new(RefCell::new(buf));
        let res = loop {
            let (ptr, want) = {
                let mut b = shared.borrow_mut();
                let spare = b.spare_capacity_mut();
                (spare.as_mut_ptr().cast::<u8>(), spare.len().min(max).min(u32::MAX as usize))
            };
            let e = opcode::Recv::new(types::Fd(fd), ptr, want as u32).build();
            // SAFETY: `ptr..ptr+want` is spare capacity of the BytesMut that `shared`
            // owns; a clone of `shared` rides with the operation until completion and
            // the buffer is not touched meanwhile. The caller keeps `fd` open.
            match unsafe { self.submit(e, Box::new(shared.clone())) }.await {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.poll(fd, libc::POLLIN as u32).await {
                        break Err(e);
                    }
                }
                r => break r,
            }
        };
        // Every operation has completed and released its clone.
        let mut buf = Rc::try_unwrap(shared).map(RefCell::into_inner).unwrap_or_else(|rc| rc.borrow().clone());
        if let Ok(n) = res {
            // SAFETY: the kernel initialised `n` bytes of the spare capacity, n <= want.
            unsafe { buf.set_len(buf.len() + n) };
        }
        (buf, res)
    }

    /// Sends all of `iov` on a socket (no offset); waits for POLLOUT on EAGAIN.
    pub async fn send_all(&self, fd: RawFd, iov: Vec<libc::iovec>, keep: Rc<dyn Any>) -> io::Result<()> {
        self.writev_inner(fd, iov, keep, None).await
    }

    async fn writev_inner(&self, fd: RawFd, mut iov: Vec<libc::iovec>, keep: Rc<dyn Any>, mut pos: Option<u64>) -> io::Result<()> {
        let mut start = 0usize;
        while start < iov.len() {
            let n_iov = (iov.len() - start).min(libc::UIO_MAXIOV as usize);
            let slice = iov[start..start + n_iov].to_vec();
            // -1 = "current position", what sockets need.
            let e = opcode::Writev::new(types::Fd(fd), slice.as_ptr(), n_iov as u32).offset(pos.unwrap_or(u64::MAX)).build();
            // SAFETY: `slice` (the iovec array) and `keep` (the memory it points to) are
            // both owned by the operation until it completes.
            let n = match unsafe { self.submit(e, Box::new((slice, keep.clone()))) }.await {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && pos.is_none() => {
                    self.poll(fd, libc::POLLOUT as u32).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "write wrote nothing"));
            }
            if let Some(p) = pos.as_mut() {
                *p += n as u64;
            }
            let mut left = n;
            while start < iov.len() && left >= iov[start].iov_len {
                left -= iov[start].iov_len;
                start += 1;
            }
            if left > 0 {
                // SAFETY: advancing within the same buffer; left < iov_len.
                iov[start].iov_base = unsafe { (iov[start].iov_base as *mut u8).add(left) } as *mut libc::c_void;
                iov[start].iov_len -= left;
            }
        }
        Ok(())
    }

    /// `fdatasync` through the ring.
    pub async fn fdatasync(&self, fd: RawFd) -> io::Result<()> {
        let e = opcode::Fsync::new(types::Fd(fd)).flags(types::FsyncFlags::DATASYNC).build();
        // SAFETY: no buffers; the caller keeps `fd` open (segments own their files).
        unsafe { self.submit(e, Box::new(())) }.await.map(|_| ())
    }

    /// Full `fsync` through the ring (directories, after renames).
    pub async fn fsync(&self, fd: RawFd) -> io::Result<()> {
        let e = opcode::Fsync::new(types::Fd(fd)).build();
        // SAFETY: no buffers; the caller keeps `fd` open.
        unsafe { self.submit(e, Box::new(())) }.await.map(|_| ())
    }

    /// Fills `buf` from `fd` at `pos` (`pread` through the ring), resubmitting after
    /// short reads; end of file before `buf` is full is `UnexpectedEof`. The buffer is
    /// owned by the operation while the kernel may write into it, and handed back.
    pub async fn read_exact_at(&self, fd: RawFd, buf: Vec<u8>, pos: u64) -> io::Result<Vec<u8>> {
        let shared = Rc::new(RefCell::new(buf));
        let len = shared.borrow().len();
        let mut done = 0usize;
        while done < len {
            let ptr = shared.borrow_mut()[done..].as_mut_ptr();
            let want = (len - done).min(u32::MAX as usize) as u32;
            let e = opcode::Read::new(types::Fd(fd), ptr, want).offset(pos + done as u64).build();
            // SAFETY: `ptr..ptr+want` lies in the Vec that `shared` owns; a clone of
            // `shared` rides with the operation until the kernel completes it, and
            // the Vec is not resized meanwhile. The caller keeps `fd` open.
            let n = unsafe { self.submit(e, Box::new(shared.clone())) }.await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("end of file at {}", pos + done as u64)));
            }
            done += n;
        }
        // Every operation has completed and released its clone.
        Ok(Rc::try_unwrap(shared).map(RefCell::into_inner).unwrap_or_else(|rc| rc.borrow().clone()))
    }

    /// Fills `buf` from `fd` at `pos` without ever making the shard wait on the
    /// device: what the page cache holds is copied at once (`preadv2(RWF_NOWAIT)`,
    /// no ring round trip — the common case for the recent data fetches read), the
    /// rest is read through the ring. End of file before `buf` is full is `UnexpectedEof`.
    pub async fn read_exact_at_cached_first(&self, fd: RawFd, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            match super::sys::pread_cached(fd, &mut buf[done..], pos + done as u64) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("end of file at {}", pos + done as u64))),
                Ok(n) => done += n,
                Err(_) => {
                    // Not cached (or RWF_NOWAIT unsupported): the rest through the ring.
                    let rest = self.read_exact_at(fd, vec![0u8; buf.len() - done], pos + done as u64).await?;
                    buf[done..].copy_from_slice(&rest);
                    done = buf.len();
                }
            }
        }
        Ok(())
    }

    /// One `splice(2)`: up to `len` bytes from `fd_in` (at `off_in`, or the pipe's
    /// position when -1) to `fd_out`.
    pub async fn splice(&self, fd_in: RawFd, off_in: i64, fd_out: RawFd, len: u32, keep: Box<dyn Any>) -> io::Result<usize> {
        let e = opcode::Splice::new(types::Fd(fd_in), off_in, types::Fd(fd_out), -1, len).flags(libc::SPLICE_F_MOVE).build();
        // SAFETY: no user buffers; `keep` holds the file and pipe open.
        unsafe { self.submit(e, keep) }.await
    }

    /// Waits until `fd` reports one of `events` (e.g. POLLOUT after EAGAIN).
    pub async fn poll(&self, fd: RawFd, events: u32) -> io::Result<()> {
        let e = opcode::PollAdd::new(types::Fd(fd), events).build();
        // SAFETY: no buffers.
        unsafe { self.submit(e, Box::new(())) }.await.map(|_| ())
    }
}

impl Inner {
    /// Collects every completion and wakes its future.
    fn drain(&self) {
        let mut wakers = Vec::new();
        {
            let mut ring = self.ring.borrow_mut();
            let mut slots = self.slots.borrow_mut();
            for cqe in ring.completion() {
                let key = cqe.user_data() as usize;
                let Some(slot) = slots.get_mut(key) else { continue };
                match std::mem::replace(slot, Slot::Done(cqe.result())) {
                    Slot::Waiting(Some(w)) => wakers.push(w),
                    Slot::Waiting(None) => {}
                    Slot::Abandoned(_) => {
                        slots.remove(key);
                    }
                    Slot::Done(_) => {}
                }
            }
        }
        for w in wakers {
            w.wake();
        }
    }
}

/// A submitted operation; resolves to the kernel's non-negative result.
pub struct Op {
    inner: Rc<Inner>,
    key: Option<usize>,
    keep: Option<Box<dyn Any>>,
}

impl Future for Op {
    type Output = io::Result<usize>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(key) = self.key else {
            return Poll::Ready(Err(io::Error::other("operation polled after completion")));
        };
        // Completions may be waiting in the queue before the driver ran; collect them.
        self.inner.drain();
        let mut slots = self.inner.slots.borrow_mut();
        match slots.get_mut(key) {
            Some(Slot::Done(res)) => {
                let res = *res;
                slots.remove(key);
                drop(slots);
                self.key = None;
                self.keep = None;
                if res < 0 {
                    Poll::Ready(Err(io::Error::from_raw_os_error(-res)))
                } else {
                    Poll::Ready(Ok(res as usize))
                }
            }
            Some(Slot::Waiting(w)) => {
                *w = Some(cx.waker().clone());
                Poll::Pending
            }
            _ => Poll::Ready(Err(io::Error::other("io_uring slot lost"))),
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut slots = self.inner.slots.borrow_mut();
            match slots.get(key) {
                Some(Slot::Done(_)) => {
                    slots.remove(key);
                }
                Some(_) => {
                    // In flight: the kernel may still use the buffers; park them.
                    let keep = self.keep.take().unwrap_or_else(|| Box::new(()));
                    if let Some(slot) = slots.get_mut(key) {
                        *slot = Slot::Abandoned(keep);
                    }
                }
                None => {}
            }
        }
    }
}
