//! Logging that never stops the broker.
//!
//! A log sink can fail: stderr may be a pipe whose reader went away (EPIPE), a
//! file on a full disk (ENOSPC), or a reader that stalls. None of that may
//! panic a shard (the panic hook aborts the process) or block it. So:
//!
//! - [`StderrSink`] is the `tracing` writer. Under `shardlog start` it is
//!   *queued*: a shard only copies the formatted line into a bounded queue
//!   ([`LOG_QUEUE_LINES`]) and one writer thread writes it to stderr with
//!   `write_all`. A line that does not fit the queue, or that stderr refuses,
//!   is dropped and counted ([`dropped_lines`]); the count is written to
//!   stderr as soon as a write succeeds again. Client tools use it *direct*
//!   (write in place, same dropping rule): they are short-lived and their
//!   warnings must not wait in a queue when they exit.
//! - [`RateLimitedLog`] and the [`error_limited!`](crate::error_limited),
//!   [`warn_limited!`](crate::warn_limited) and [`info_limited!`](crate::info_limited)
//!   macros are for events a client or a failing disk can trigger per request
//!   or per write: the first is logged, then at most one line per
//!   [`RATE_LIMIT_INTERVAL_MS`] per call site, carrying `suppressed_since_last`,
//!   the number of events not logged since the previous line. On a full disk
//!   that is one ERROR line a second instead of one per failed write.
//!
//! SIGPIPE: Rust's runtime sets it to SIG_IGN before `main` (std's default for
//! binaries), so a closed stderr or stdout pipe is an EPIPE error here, never a
//! signal that kills the broker. glommio does not change it; the tests check
//! the running broker's `SigIgn` mask.
//!
//! Memory: at most [`LOG_QUEUE_LINES`] queued lines (a broker line is a few
//! hundred bytes: about 1-2 MiB in the worst case).
//!
//! Format and level ([`init`]): a broker writes `log.format` (`text`, or `json`
//! for log shippers: one object per line) filtered by the first of
//! `SHARDLOG_LOG`, `RUST_LOG` and `log.level` that is set. The environment wins
//! over the config so an operator can turn on debug lines for one run without
//! editing the node's config file (as `RUST_LOG` does for any Rust program).
//! Every event on a shard's thread is inside that shard's `shard` span
//! (`runtime/`), so a line says which shard logged it in either format; events
//! name what they are about with the fields `topic`, `partition`, `group`,
//! `broker`, and on a client connection `peer` and `client_id`.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `log.format`: how each log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text, one line per event (the default; colours on a terminal only).
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`, the
    /// event's own fields at the top level, and the spans it happened in
    /// (`span`: the innermost, `spans`: all of them, outermost first).
    Json,
}

impl LogFormat {
    /// The config value: `text` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format `{s}` (known: text, json)")),
        }
    }
}

/// Environment variables that override the configured log level, first set one wins.
pub const LOG_ENV_VARS: [&str; 2] = ["SHARDLOG_LOG", "RUST_LOG"];

/// Checks a log level: a `tracing` filter directive list such as `info` or
/// `info,shardlog::cluster=debug`. The error says what is wrong with it.
pub fn parse_level(directives: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    if directives.trim().is_empty() {
        return Err("empty (e.g. `info`, `warn` or `info,shardlog::cluster=debug`)".into());
    }
    tracing_subscriber::EnvFilter::builder().parse(directives).map_err(|e| format!("`{directives}` is not a log filter: {e}"))
}

/// Installs the process's `tracing` subscriber: `format` lines to `sink`,
/// filtered by the first of [`LOG_ENV_VARS`] that is set, else by `level`
/// (already checked by [`parse_level`]; a bad one falls back to `info`).
/// An environment value that does not parse is reported and skipped.
pub fn init(format: LogFormat, level: &str, sink: StderrSink) {
    let mut refused = Vec::new();
    let mut filter = None;
    for var in LOG_ENV_VARS {
        let Ok(v) = std::env::var(var) else { continue };
        if v.trim().is_empty() {
            continue;
        }
        match parse_level(&v) {
            Ok(f) => {
                filter = Some(f);
                break;
            }
            Err(e) => refused.push(format!("{var} ignored: {e}")),
        }
    }
    let filter = filter.unwrap_or_else(|| parse_level(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(sink).log_internal_errors(false);
    match format {
        // Colours only for a terminal: a log file or a pipe gets plain text.
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(true).init(),
    }
    for line in refused {
        tracing::warn!("{line}");
    }
}

/// Lines the queue holds before new ones are dropped (see the module doc for the memory it costs).
pub const LOG_QUEUE_LINES: usize = 4096;

/// At most one line per call site of a rate-limited log in this many milliseconds.
pub const RATE_LIMIT_INTERVAL_MS: u64 = 1000;

enum Msg {
    Line(Vec<u8>),
    /// Answered once every line queued before it has been written (or dropped).
    Flush(SyncSender<()>),
}

static QUEUE: OnceLock<SyncSender<Msg>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped so far: the queue was full or stderr refused the write.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// The `tracing_subscriber` writer (a `MakeWriter`): see the module doc.
#[derive(Debug, Clone, Copy)]
pub struct StderrSink {
    queued: bool,
}

impl StderrSink {
    /// A sink whose lines go through the queue and the writer thread (started
    /// here, once). If the thread cannot be started, lines are written in place.
    pub fn queued() -> StderrSink {
        QUEUE.get_or_init(|| {
            let (tx, rx) = mpsc::sync_channel(LOG_QUEUE_LINES);
            if let Err(e) = std::thread::Builder::new().name("log-writer".into()).spawn(move || write_lines(rx)) {
                let _ = write_stderr(format!("shardlog: no log writer thread ({e}); logging in place\n").as_bytes());
            }
            tx
        });
        StderrSink { queued: true }
    }

    /// A sink that writes each line in place (client tools).
    pub fn direct() -> StderrSink {
        StderrSink { queued: false }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrSink {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter { queued: self.queued }
    }
}

/// Receives one formatted event (`tracing_subscriber` writes each with one
/// `write_all`). It always reports success: a failure is counted, never returned,
/// so no caller ever reacts to it (tracing_subscriber would `eprintln!`, which panics).
pub struct LineWriter {
    queued: bool,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match QUEUE.get().filter(|_| self.queued) {
            Some(tx) => {
                if tx.try_send(Msg::Line(buf.to_vec())).is_err() {
                    DROPPED.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                if write_stderr(buf).is_err() {
                    DROPPED.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn write_stderr(buf: &[u8]) -> io::Result<()> {
    io::stderr().lock().write_all(buf)
}

/// The writer thread: writes queued lines; after a drop, reports the count once
/// writing works again.
fn write_lines(rx: Receiver<Msg>) {
    let mut reported = 0u64;
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Line(line) => {
                if write_stderr(&line).is_err() {
                    DROPPED.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let dropped = dropped_lines();
                if dropped > reported {
                    let note = format!("shardlog: {} log lines dropped (stderr failed or the log queue was full), {dropped} in all\n", dropped - reported);
                    if write_stderr(note.as_bytes()).is_ok() {
                        reported = dropped;
                    }
                }
            }
            Msg::Flush(ack) => {
                let _ = ack.try_send(());
            }
        }
    }
}

/// Waits (up to `timeout`) until every line queued so far is written or
/// dropped. Called before the process exits and by the panic hook, so the lines
/// that explain an exit are not lost in the queue. True when done in time.
pub fn flush(timeout: Duration) -> bool {
    let Some(tx) = QUEUE.get() else { return true };
    let deadline = Instant::now() + timeout;
    let (ack_tx, ack_rx) = mpsc::sync_channel(1);
    let mut msg = Msg::Flush(ack_tx);
    loop {
        match tx.try_send(msg) {
            Ok(()) => break,
            Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                msg = m;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => return false,
        }
    }
    ack_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_ok()
}

/// One line on stdout for scripts (e.g. "shardlog listening on ..."); a closed
/// or failing stdout is ignored, never a panic.
pub fn stdout_line(line: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(format!("{line}\n").as_bytes()).and_then(|()| out.flush());
}

/// One line on stderr outside `tracing` (the reason the process exits), after
/// the queued log lines; a failing stderr is ignored.
pub fn stderr_line(line: &str) {
    flush(Duration::from_secs(1));
    let _ = write_stderr(format!("{line}\n").as_bytes());
}

/// Rate limit for one log call site: see the module doc. Use it through the
/// `*_limited!` macros, which give every call site its own static.
#[derive(Debug)]
pub struct RateLimitedLog {
    /// When the next line may be logged (ms on [`monotonic_ms`]'s clock).
    next_ms: AtomicU64,
    /// Events not logged since the last line.
    suppressed: AtomicU64,
}

impl RateLimitedLog {
    /// A limiter that lets the first event through (`const`, for the `static` of a call site).
    pub const fn new() -> RateLimitedLog {
        RateLimitedLog { next_ms: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    /// `Some(n)`: log this event, `n` events were suppressed since the previous
    /// line. `None`: suppressed (counted). Lock-free, callable from any shard.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(monotonic_ms())
    }

    fn admit_at(&self, now_ms: u64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Relaxed);
        if now_ms >= next && self.next_ms.compare_exchange(next, now_ms + RATE_LIMIT_INTERVAL_MS, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl Default for RateLimitedLog {
    fn default() -> Self {
        Self::new()
    }
}

/// Milliseconds since the first call (a monotonic clock for [`RateLimitedLog`]).
fn monotonic_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A `tracing` event at `$level` (error, warn, info), rate-limited per call site.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_limited {
    ($level:ident, $($arg:tt)+) => {{
        static LIMIT: $crate::logging::RateLimitedLog = $crate::logging::RateLimitedLog::new();
        if let Some(suppressed_since_last) = LIMIT.admit() {
            if suppressed_since_last == 0 {
                ::tracing::$level!($($arg)+);
            } else {
                ::tracing::$level!(suppressed_since_last, $($arg)+);
            }
        }
    }};
}

/// `tracing::error!`, at most once a second per call site (see [`crate::logging`]).
#[macro_export]
macro_rules! error_limited {
    ($($arg:tt)+) => { $crate::__log_limited!(error, $($arg)+) };
}

/// `tracing::warn!`, at most once a second per call site (see [`crate::logging`]).
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => { $crate::__log_limited!(warn, $($arg)+) };
}

/// `tracing::info!`, at most once a second per call site (see [`crate::logging`]).
#[macro_export]
macro_rules! info_limited {
    ($($arg:tt)+) => { $crate::__log_limited!(info, $($arg)+) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_event_logged_then_one_per_interval_with_the_count() {
        let l = RateLimitedLog::new();
        assert_eq!(l.admit_at(5), Some(0));
        for t in 6..500 {
            assert_eq!(l.admit_at(t), None);
        }
        assert_eq!(l.admit_at(5 + RATE_LIMIT_INTERVAL_MS - 1), None);
        assert_eq!(l.admit_at(5 + RATE_LIMIT_INTERVAL_MS), Some(495));
        assert_eq!(l.admit_at(5 + RATE_LIMIT_INTERVAL_MS + 1), None);
        // A quiet spell: the next event is logged at once, with what was left over.
        assert_eq!(l.admit_at(60_000), Some(1));
        assert_eq!(l.admit_at(60_001), None);
    }
}
