//! hyper's I/O traits over a glommio socket, so the admin listener runs hyper's
//! HTTP/1.1 on a shard's executor (hyper ships adapters for tokio only; glommio's
//! streams implement the `futures` traits).
//!
//! Reads zero the part of hyper's buffer they offer the socket (at most
//! [`READ_WINDOW`] bytes) before handing it over as `&mut [u8]`: admin traffic is
//! small, and it keeps this adapter to one plain `unsafe` conversion.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

/// Most bytes one read offers the socket.
const READ_WINDOW: usize = 16 * 1024;

/// A `futures` stream seen through hyper's `rt::Read`/`rt::Write`.
pub struct HyperIo<T>(pub T);

impl<T: AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, mut buf: hyper::rt::ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        // SAFETY: the slice is only written to (zeroed below) before it is read from,
        // and the cursor is advanced only over bytes the socket filled.
        let uninit: &mut [MaybeUninit<u8>] = unsafe { buf.as_mut() };
        let len = uninit.len().min(READ_WINDOW);
        let window = &mut uninit[..len];
        for b in window.iter_mut() {
            b.write(0);
        }
        // SAFETY: every byte of `window` was initialised just above.
        let bytes: &mut [u8] = unsafe { &mut *(window as *mut [MaybeUninit<u8>] as *mut [u8]) };
        match Pin::new(&mut self.0).poll_read(cx, bytes) {
            Poll::Ready(Ok(n)) => {
                // SAFETY: the socket wrote `n` bytes of the initialised window.
                unsafe { buf.advance(n) };
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}
