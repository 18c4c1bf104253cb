//! One client connection: a reader that frames requests and starts each as its
//! own task (pipelining), and a writer that sends their responses strictly in
//! request order (Kafka clients rely on it). At most `queued.max.requests` are
//! in flight; beyond that the reader stops reading (TCP backpressure). The reader
//! also stops while the shard's budget of request bytes in flight
//! (`queued.max.request.bytes`, see [`super::request_memory`]) is spent.
//!
//! Both directions go through the shard's io_uring ring on glommio's socket fd:
//! the reader receives into the spare capacity of its buffer (uninitialised
//! memory, no zeroing per read); frames are split off it without a copy and
//! the produce path copies their batches once, into the DMA chunks. The
//! writer sends `writev` for encoded bytes and `splice` for segment file
//! ranges, so fetched records never pass through user space.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use glommio::task::JoinHandle;

use super::frame::{next_frame, Framed};
use super::request_memory::{RequestMemory, Reservation};
use crate::handlers::Ctx;
use crate::io::ring::Ring;
use crate::io::zero_copy::{send_file_range, SplicePipe};
use crate::protocol::Piece;
use crate::router::{route, Outcome};

/// Bytes asked of the socket per read when the buffer is short of space.
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// Requests at least this large make the reader take the next request's size
/// prefix alone (one more, short read) so that a large request is read
/// straight into a buffer of its own size, never moved.
const LARGE_FRAME_BYTES: usize = 64 * 1024;
/// Largest window one read fills.
const READ_MAX_BYTES: usize = 1024 * 1024;
/// Most finished responses the writer gathers into one send.
const MAX_COALESCED_RESPONSES: usize = 64;

/// Serves one connection until the peer closes, a request is invalid, or the broker stops.
pub async fn serve(ctx: Rc<Ctx>, stream: TcpStream, memory: Rc<RequestMemory>) {
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let addr = stream.peer_addr().ok();
    let peer: Rc<str> = addr.map(|a| format!("/{}", a.ip())).unwrap_or_default().into();
    let peer = Rc::new(crate::handlers::Client::new(peer));
    // Every line about this connection carries its peer and, from its first
    // request that names one, its client id. As event fields, not a span: a
    // span around this task would be entered and exited on every poll (the
    // filter takes a lock shared by all shards each time), and the requests run
    // as tasks of their own, outside it, anyway.
    let remote = addr.map(|a| a.to_string()).unwrap_or_default();
    let client_id = std::cell::OnceCell::<String>::new();
    let (remote, client_id) = (remote.as_str(), &client_id);
    let cfg = ctx.shard().cfg.clone();
    let (tx, rx) = local_channel::new_bounded::<JoinHandle<Outcome>>(cfg.queued_max_requests);

    let reader = {
        let ctx = ctx.clone();
        let ring = ctx.shard().ring.clone();
        async move {
            let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
            // The last request was large: the next read takes only the next size prefix.
            let mut last_large = false;
            // Bytes reserved for the frame being read (its size known, its body not all here).
            let mut reserved: Option<Reservation> = None;
            loop {
                match next_frame(&mut buf, cfg.socket_request_max_bytes) {
                    Framed::Frame(frame) => {
                        last_large = frame.len() >= LARGE_FRAME_BYTES;
                        if client_id.get().is_none() {
                            if let Some(id) = crate::protocol::peek_client_id(&frame) {
                                let _ = client_id.set(id.to_string());
                            }
                        }
                        let held = match reserved.take() {
                            Some(r) => r,
                            None => memory.reserve(frame.len()).await,
                        };
                        let (ctx, peer) = (ctx.clone(), peer.clone());
                        let task = glommio::spawn_local(async move {
                            let outcome = route(&ctx, frame, &peer).await;
                            // The request's bytes are done with once its response is built.
                            drop(held);
                            outcome
                        })
                        .detach();
                        if tx.send(task).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Framed::Invalid(size) => {
                        crate::metrics::with(|m| m.connection_closed_by_broker());
                        crate::info_limited!(peer = remote, client_id = client_id.get(), size, "request size out of bounds; closing connection");
                        shutdown(fd);
                        return;
                    }
                    Framed::Incomplete(need) => {
                        // Reserve the frame's bytes before making room for them.
                        if need > 4 && reserved.is_none() {
                            reserved = Some(memory.reserve(need - 4).await);
                        }
                        if need > READ_CHUNK_BYTES && need > buf.capacity() {
                            // A large frame gets a buffer of its own, exactly its size: the
                            // bytes already read move once (after a large frame, only its
                            // 4-byte size was read), and no read lands past the frame.
                            let mut own = BytesMut::with_capacity(need);
                            own.extend_from_slice(&buf);
                            buf = own;
                        } else if last_large && buf.is_empty() {
                            // After a large frame: read the next size prefix alone first.
                            buf.reserve(4);
                        } else {
                            // Room for the whole rest of this frame in one allocation (growing a
                            // chunk at a time would double the buffer and leave copies behind, so
                            // memory would exceed the bytes reserved above), but at least one
                            // chunk so pipelined requests come in together. Reads fill it a
                            // window at a time.
                            buf.reserve(need.saturating_sub(buf.len()).max(READ_CHUNK_BYTES));
                        }
                    }
                }
                // The read lands in the buffer's spare capacity, uninitialised (no zeroing).
                let read_len = if last_large && buf.is_empty() { 4 } else { (buf.capacity() - buf.len()).min(READ_MAX_BYTES) };
                let stop = ctx.shard().stop_signal.wait();
                let read = ring.recv_into(fd, std::mem::take(&mut buf), read_len);
                futures::pin_mut!(read);
                let (back, n) = futures::select! {
                    r = read.fuse() => r,
                    _ = stop.fuse() => return,
                };
                buf = back;
                match n {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if ctx.shard().stopping.get() {
                    return;
                }
            }
            // `tx` drops here: the writer finishes what is queued, then ends.
        }
    };

    let writer = {
        let ring = ctx.shard().ring.clone();
        async move {
            let mut pipe: Option<SplicePipe> = None;
            // A response task taken from the queue but not finished yet.
            let mut held: Option<JoinHandle<Outcome>> = None;
            loop {
                let task = match held.take() {
                    Some(t) => t,
                    None => match rx.recv().await {
                        Some(t) => t,
                        None => break,
                    },
                };
                let Some(first) = task.await else { break };
                // Responses of pipelined requests that are already done go out
                // in the same write: a group commit finishes many produces at
                // once, and one send instead of one per response saves a
                // syscall and a wake-up of the client each.
                let mut pieces = Vec::new();
                let mut last = Some(first);
                let mut coalesced = 0;
                let mut end = After::Continue;
                while let Some(outcome) = last.take() {
                    match outcome {
                        Outcome::Respond(frame) => pieces.extend(frame.pieces),
                        Outcome::NoResponse => {}
                        Outcome::Close(why) => {
                            crate::metrics::with(|m| m.connection_closed_by_broker());
                            end = After::Close(why);
                            break;
                        }
                    }
                    coalesced += 1;
                    if coalesced >= MAX_COALESCED_RESPONSES {
                        break;
                    }
                    let Some(Some(mut next)) = rx.recv().now_or_never() else { break };
                    match futures::poll!(&mut next) {
                        std::task::Poll::Ready(Some(o)) => last = Some(o),
                        std::task::Poll::Ready(None) => end = After::Stop,
                        std::task::Poll::Pending => held = Some(next),
                    }
                }
                if let Err(e) = send_pieces(&ring, fd, &mut pipe, pieces).await {
                    tracing::debug!(peer = remote, client_id = client_id.get(), "connection write failed: {e}");
                    shutdown(fd);
                    break;
                }
                match end {
                    After::Close(why) => {
                        crate::info_limited!(peer = remote, client_id = client_id.get(), "closing connection: {why}");
                        shutdown(fd);
                        break;
                    }
                    After::Stop => break,
                    After::Continue => {}
                }
            }
            // Dropping `rx` makes the reader's next send fail, so it stops too.
            drop(rx);
        }
    };
    futures::join!(reader, writer);
}

/// What the writer does after sending a gathered run of responses.
enum After {
    Continue,
    /// A handler asked to close the connection (after the responses before it).
    Close(String),
    /// A response task was cancelled: the connection is going away.
    Stop,
}

fn shutdown(fd: RawFd) {
    // Wakes our own pending read with end of file.
    crate::io::sys::shutdown_socket(fd);
}

/// Writes a response: runs of encoded bytes with one `writev`, file ranges by splice.
async fn send_pieces(ring: &Ring, fd: RawFd, pipe: &mut Option<SplicePipe>, pieces: Vec<Piece>) -> io::Result<()> {
    let mut run: Vec<Bytes> = Vec::new();
    for p in pieces {
        match p {
            Piece::Bytes(b) => {
                if !b.is_empty() {
                    run.push(b);
                }
            }
            Piece::File { file, pos, len } => {
                send_bytes(ring, fd, std::mem::take(&mut run)).await?;
                if pipe.is_none() {
                    *pipe = Some(SplicePipe::new()?);
                }
                let p = pipe.as_ref().ok_or_else(|| io::Error::other("no pipe"))?;
                send_file_range(ring, p, fd, &file, pos, len as u64).await?;
            }
        }
    }
    send_bytes(ring, fd, run).await
}

async fn send_bytes(ring: &Ring, fd: RawFd, run: Vec<Bytes>) -> io::Result<()> {
    if run.is_empty() {
        return Ok(());
    }
    let iov: Vec<libc::iovec> = run.iter().map(|b| libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() }).collect();
    ring.send_all(fd, iov, Rc::new(run)).await
}
