//! A shard-local "something changed" signal: waiters park until the next
//! `notify_all`. Used for fetch long-polls (woken by appends, never by polling).
//! Single-threaded by construction (`Cell`/`RefCell`), so no lock is involved.
//! A waiter that gives up (timeout) removes its waker, so an idle partition
//! polled by many long-polls does not accumulate wakers.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

/// Wakes every current waiter on `notify_all`.
#[derive(Default)]
pub struct Notify {
    epoch: Cell<u64>,
    waiters: RefCell<Slab<Waker>>,
}

impl Notify {
    /// Wakes everyone waiting now.
    pub fn notify_all(&self) {
        self.epoch.set(self.epoch.get().wrapping_add(1));
        let waiters: Vec<Waker> = self.waiters.borrow_mut().drain().collect();
        for w in waiters {
            w.wake();
        }
    }

    /// Resolves at the next `notify_all` after this call.
    pub fn wait(&self) -> Wait<'_> {
        Wait { notify: self, epoch: self.epoch.get(), key: None }
    }
}

/// Future returned by [`Notify::wait`].
pub struct Wait<'a> {
    notify: &'a Notify,
    epoch: u64,
    key: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.epoch.get() != self.epoch {
            self.key = None;
            return Poll::Ready(());
        }
        let mut w = self.notify.waiters.borrow_mut();
        match self.key.and_then(|k| w.get_mut(k)) {
            Some(existing) => existing.clone_from(cx.waker()),
            None => {
                let k = w.insert(cx.waker().clone());
                drop(w);
                self.key = Some(k);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            // Same epoch means our waker is still registered under `k`.
            if self.notify.epoch.get() == self.epoch {
                self.notify.waiters.borrow_mut().try_remove(k);
            }
        }
    }
}
