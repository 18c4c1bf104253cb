//! The one clock the broker's time-based logic reads.
//!
//! [`Clock`] gives wall time in Kafka's timestamp unit ([`Clock::now_ms`], ms since
//! the Unix epoch) and a monotonic [`Instant`] ([`Clock::instant`]). The broker's
//! clock ([`Clock::system`], the default) reads the system clocks; a manual one
//! ([`Clock::manual`], a [`ManualClock`] handle) stands still until a test sets or
//! advances it through that handle, and every clock taken from it moves together. A clone is a pointer copy; reading takes no lock and
//! allocates nothing.
//!
//! It travels in [`crate::config::Config::clock`] (and from there in
//! `log::LogConfig`), so every per-core component that already holds the config
//! reads it: the classic and consumer group coordinators (session, rebalance and
//! initial-delay timeouts, offset retention, commit timestamps), the transaction
//! coordinator (transaction timeouts, transactional-id and producer-id expiration),
//! the shard's housekeeping (retention by time, compaction lags and the tombstone
//! horizon), partition logs (LogAppendTime, marker timestamps, `segment.ms` rolls,
//! `flush.ms`) and Produce's timestamp bounds.
//!
//! These keep the system clock, since they are not time-based broker logic a test
//! needs to drive:
//! - the timers the runtime sleeps on (tickers, Fetch's `max.wait.ms` deadline in
//!   `handlers/fetch.rs`): they wait real time, so they measure real time;
//! - durations measured for logs and stats (the cleaner's run time, `net/`'s
//!   request timings) and `net/`'s accept back-off;
//! - `logging`'s rate limiter and its flush deadline, and `runtime/exclusive.rs`'s
//!   port-claim retry (start-up, before any shard exists);
//! - the CLI tools (`cli/`), which are clients of the broker;
//! - `protocol::now_ms`, kept for code outside the broker's per-core state;
//! - the `Instant::now` default of a classic member's `last_heartbeat` when its
//!   record is decoded: replay overwrites it from this clock straight away.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Wall time (ms since the Unix epoch) and a monotonic instant: the system's, or
/// a manual one for tests. Cheap to clone; clones of a manual clock share its time.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

/// A manual clock's state: the instant and wall time it started at, and how far
/// it has been moved since (ms).
struct Manual {
    start: Instant,
    start_ms: i64,
    offset_ms: AtomicI64,
}

/// The system's wall time in ms since the Unix epoch (0 before it).
pub fn system_now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Clock {
    /// The system clock: `SystemTime` for wall time, `Instant` for the monotonic one.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A manual clock at wall time `start_ms`, and the handle that moves it
    /// ([`ManualClock::advance`], [`ManualClock::set_ms`]); give [`ManualClock::clock`] to
    /// what should read it.
    pub fn manual(start_ms: i64) -> ManualClock {
        ManualClock(Arc::new(Manual { start: Instant::now(), start_ms, offset_ms: AtomicI64::new(0) }))
    }

    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Wall time in ms since the Unix epoch: record timestamps, retention,
    /// transaction and group timeouts kept as timestamps.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            None => system_now_ms(),
            Some(m) => m.start_ms.saturating_add(m.offset_ms.load(Ordering::Relaxed)),
        }
    }

    /// A monotonic instant: member sessions, rebalance deadlines, segment ages.
    /// A manual clock's instant moves with its wall time (never before where it
    /// started, if it is set back).
    pub fn instant(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(m) => m.start + Duration::from_millis(m.offset_ms.load(Ordering::Relaxed).max(0) as u64),
        }
    }
}

/// The handle of a manual clock: the only way to move it, so a system clock
/// cannot be asked to.
#[derive(Clone)]
pub struct ManualClock(Arc<Manual>);

impl ManualClock {
    /// A clock that reads this manual time (for `Config::clock`).
    pub fn clock(&self) -> Clock {
        Clock { manual: Some(self.0.clone()) }
    }

    /// Its wall time in ms.
    pub fn now_ms(&self) -> i64 {
        self.clock().now_ms()
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.0.offset_ms.fetch_add(d.as_millis() as i64, Ordering::Relaxed);
    }

    /// Sets the clock's wall time to `ms`.
    pub fn set_ms(&self, ms: i64) {
        self.0.offset_ms.store(ms.saturating_sub(self.0.start_ms), Ordering::Relaxed);
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::system"),
            Some(_) => write!(f, "Clock::manual({})", self.now_ms()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let m = Clock::manual(1_000);
        let (c, other) = (m.clock(), m.clock());
        let i0 = c.instant();
        assert_eq!(c.now_ms(), 1_000);
        m.advance(Duration::from_millis(250));
        assert_eq!(other.now_ms(), 1_250);
        assert_eq!(other.instant().duration_since(i0), Duration::from_millis(250));
        m.set_ms(5_000);
        assert_eq!(c.now_ms(), 5_000);
        assert_eq!(c.instant().duration_since(i0), Duration::from_millis(4_000));
        // Set back before its start: the instant stays at the start.
        m.set_ms(0);
        assert_eq!(c.now_ms(), 0);
        assert_eq!(c.instant(), i0);
    }

    #[test]
    fn system_clock_reads_the_system_time() {
        let c = Clock::system();
        let before = system_now_ms();
        let t = c.now_ms();
        assert!(t >= before && t <= system_now_ms());
        assert!(!c.is_manual());
    }
}
