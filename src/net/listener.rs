//! The shard's listener. Every shard binds the same address with SO_REUSEPORT
//! (glommio sets it), so the kernel balances new connections across shards and
//! no shard hands sockets to another.
//!
//! Accept failures (EMFILE/ENFILE when descriptors run out, ENOBUFS/ENOMEM)
//! leave the connection in the backlog, so an immediate retry fails again: the
//! listener backs off, doubling from [`ACCEPT_BACKOFF_MIN`] to
//! [`ACCEPT_BACKOFF_MAX`], and logs the first failure of a run, then at most
//! one summary per [`ACCEPT_LOG_INTERVAL`] (a fixed 10 ms retry once logged
//! 3,100 warnings in 10 s).

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use glommio::net::TcpListener;

use super::connection_quotas::{ConnectionQuotas, Refused};
use super::request_memory::RequestMemory;
use crate::handlers::Ctx;
use crate::sync::Notify;

/// First wait after a failed accept.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest wait between accept attempts while they keep failing.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this interval while accepts keep failing.
pub const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(1);
/// How often a listener at `max.connections` looks again for a free place (connections close
/// on any shard, so there is no shard-local signal to wait for).
const FULL_RECHECK: Duration = Duration::from_millis(10);

/// Binds this shard's listener on `addr` (a concrete port).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).map_err(std::io::Error::from)
}

/// Failed accepts: how long to wait before the next attempt, and what (if
/// anything) to log. A run of failures ends at the next successful accept and
/// the wait starts again from the minimum; the log limit spans runs, so
/// descriptors hovering at the limit (one accept in, the next refused) cannot
/// turn each run into a line either.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    /// Failures since the last successful accept.
    failures: u64,
    /// Failures not yet reported in a log line.
    unlogged: u64,
    /// The wait after the latest failure.
    delay: Duration,
    /// When the latest line was logged.
    logged_at: Option<Instant>,
    /// The current run has been reported, so its end is worth a line too.
    run_reported: bool,
}

impl AcceptBackoff {
    /// One more failure at `now`: the wait before the next attempt, and the
    /// line to log if one is due.
    pub fn failed(&mut self, error: &str, now: Instant) -> (Duration, Option<String>) {
        self.failures += 1;
        self.unlogged += 1;
        self.delay = if self.failures == 1 { ACCEPT_BACKOFF_MIN } else { (self.delay * 2).min(ACCEPT_BACKOFF_MAX) };
        let line = match self.logged_at {
            Some(at) if now.duration_since(at) < ACCEPT_LOG_INTERVAL => None,
            None => Some(format!(
                "accept failed: {error}; retrying with backoff from {} ms up to {} ms",
                ACCEPT_BACKOFF_MIN.as_millis(),
                ACCEPT_BACKOFF_MAX.as_millis()
            )),
            Some(at) => Some(format!(
                "accept failed {} times in the last {:.1} s: {error}; next try in {} ms",
                self.unlogged,
                now.duration_since(at).as_secs_f64(),
                self.delay.as_millis()
            )),
        };
        if line.is_some() {
            self.unlogged = 0;
            self.logged_at = Some(now);
            self.run_reported = true;
        }
        (self.delay, line)
    }

    /// An accept succeeded: the run of failures is over. Returns its length
    /// when the run was reported in the log (so its end is logged too).
    pub fn succeeded(&mut self) -> Option<u64> {
        let failures = self.failures;
        let reported = std::mem::take(&mut self.run_reported);
        self.failures = 0;
        self.delay = Duration::ZERO;
        (reported && failures > 0).then_some(failures)
    }
}

/// Accepts until the broker stops, then waits for open connections to finish.
pub async fn serve(ctx: Rc<Ctx>, listener: TcpListener, quotas: std::sync::Arc<ConnectionQuotas>) {
    let open = Rc::new(Cell::new(0usize));
    let closed = Rc::new(Notify::default());
    let memory = Rc::new(RequestMemory::new(ctx.shard().cfg.queued_max_request_bytes, ctx.shard().nr_shards));
    let mut backoff = AcceptBackoff::default();
    loop {
        let stop = ctx.shard().stop_signal.wait();
        if ctx.shard().stopping.get() {
            break;
        }
        if !quotas.has_room() {
            // At max.connections: leave new connections in the backlog (as Kafka's acceptor
            // does) until one closes somewhere in the broker.
            futures::select! {
                _ = glommio::timer::sleep(FULL_RECHECK).fuse() => continue,
                _ = stop.fuse() => break,
            }
        }
        let accepted = futures::select! {
            s = listener.accept().fuse() => s,
            _ = stop.fuse() => break,
        };
        match accepted {
            Ok(stream) => {
                if let Some(failures) = backoff.succeeded() {
                    tracing::info!(failures, "accepting connections again");
                }
                let Ok(peer) = stream.peer_addr() else { continue };
                // An accept that was already waiting when the broker filled up returns a
                // connection over max.connections: it waits here, unserved, for a place
                // (as it would have in the backlog); no more accepts happen meanwhile.
                let admitted = loop {
                    match quotas.open(peer.ip()) {
                        Err(Refused::BrokerFull) if !ctx.shard().stopping.get() => {
                            let stop = ctx.shard().stop_signal.wait();
                            futures::select! {
                                _ = glommio::timer::sleep(FULL_RECHECK).fuse() => {}
                                _ = stop.fuse() => {}
                            }
                        }
                        other => break other,
                    }
                };
                let slot = match admitted {
                    Ok(slot) => slot,
                    Err(why) => {
                        // Dropping the stream closes it: the client sees the connection end.
                        crate::metrics::with(|m| m.connection_refused());
                        match why {
                            Refused::PerIp { limit } => {
                                crate::info_limited!(%peer, limit, "connection refused: max.connections.per.ip reached")
                            }
                            Refused::BrokerFull => crate::info_limited!(%peer, "connection closed: the broker is stopping"),
                        }
                        continue;
                    }
                };
                open.set(open.get() + 1);
                crate::metrics::with(|m| m.connection_opened());
                let (ctx, open, closed, memory) = (ctx.clone(), open.clone(), closed.clone(), memory.clone());
                glommio::spawn_local(async move {
                    super::connection::serve(ctx, stream, memory).await;
                    crate::metrics::with(|m| m.connection_closed());
                    drop(slot);
                    open.set(open.get() - 1);
                    closed.notify_all();
                })
                .detach();
            }
            Err(e) => {
                let (wait, line) = backoff.failed(&e.to_string(), Instant::now());
                if let Some(line) = line {
                    tracing::warn!("{line}");
                }
                // The stop signal cuts the wait short.
                let stop = ctx.shard().stop_signal.wait();
                futures::select! {
                    _ = glommio::timer::sleep(wait).fuse() => {}
                    _ = stop.fuse() => {}
                }
            }
        }
    }
    drop(listener);
    while open.get() > 0 {
        closed.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_logs_once_per_interval() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let (d, line) = b.failed("Too many open files", t0);
        assert_eq!(d, ACCEPT_BACKOFF_MIN);
        assert!(line.unwrap().starts_with("accept failed: Too many open files"));
        let mut logged = 0;
        let mut now = t0;
        let mut last = d;
        // 10 s of failures, time moving by each wait.
        while now.duration_since(t0) < Duration::from_secs(10) {
            now += last;
            let (d, line) = b.failed("Too many open files", now);
            assert!(d >= last && d <= ACCEPT_BACKOFF_MAX);
            last = d;
            logged += line.is_some() as usize;
        }
        assert_eq!(last, ACCEPT_BACKOFF_MAX);
        assert!((5..=10).contains(&logged), "one line per second at most: {logged}");
        assert!(b.succeeded().is_some_and(|n| n > 10));
        assert_eq!(b.failed("x", now).0, ACCEPT_BACKOFF_MIN, "a new run starts from the minimum");
    }

    #[test]
    fn summary_counts_the_unlogged() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        b.failed("e", t0);
        for i in 1..=5 {
            assert!(b.failed("e", t0 + Duration::from_millis(i * 100)).1.is_none());
        }
        let line = b.failed("e", t0 + Duration::from_millis(1000)).1.unwrap();
        assert!(line.starts_with("accept failed 6 times in the last 1.0 s"), "{line}");
    }

    #[test]
    fn runs_alternating_with_accepts_share_one_limit() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let mut lines = 0;
        // One accept in, the next refused, every 10 ms for 5 s.
        for i in 0..500u64 {
            let now = t0 + Duration::from_millis(i * 10);
            let (d, line) = b.failed("Too many open files", now);
            assert_eq!(d, ACCEPT_BACKOFF_MIN);
            lines += line.is_some() as usize;
            lines += b.succeeded().is_some() as usize;
        }
        assert!(lines <= 2 * 6, "at most a failure and a recovery line per second: {lines}");
    }
}
