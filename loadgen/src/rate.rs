//! Open-loop pacing (`--rate`).
//!
//! Why open loop: a closed-loop client (send when the previous answer came
//! back) slows down exactly when the broker does, so a stall shows up as a
//! lower rate instead of as latency ("coordinated omission"). With `--rate`
//! every send has an *intended* time on a fixed schedule
//! (`start + k * interval`, computed from k, so rounding never drifts), and
//! latency is measured from that intended time: if the client falls behind
//! (inflight window full, socket blocked), the wait is counted as latency.
//!
//! The rate is split evenly over the producer connections; each connection
//! sends whole batches, so its interval is `records_per_batch / rate_share`.

use std::time::{Duration, Instant};

/// A target rate as given on the command line or in a workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Records per second (`--rate 50000`).
    Records(f64),
    /// Payload bytes per second (`--rate 50MB/s`, MB = 10^6 bytes).
    Bytes(f64),
}

impl Rate {
    /// Records per second for records of `record_size` payload bytes.
    pub fn records_per_sec(&self, record_size: usize) -> f64 {
        match *self {
            Rate::Records(r) => r,
            Rate::Bytes(b) => b / record_size.max(1) as f64,
        }
    }

    /// The same rate times `f` (workload `--scale`).
    pub fn scaled(&self, f: f64) -> Rate {
        match *self {
            Rate::Records(r) => Rate::Records(r * f),
            Rate::Bytes(b) => Rate::Bytes(b * f),
        }
    }
}

impl std::str::FromStr for Rate {
    type Err = String;
    /// `N` or `N/s` = records/s; `N MB/s`, `N KB/s`, `N GB/s` = payload bytes
    /// (decimal units, as the summary's MB/s).
    fn from_str(s: &str) -> Result<Rate, String> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        let (num, mult) = if let Some(n) = lower.strip_suffix("gb/s") {
            (n, Some(1e9))
        } else if let Some(n) = lower.strip_suffix("mb/s") {
            (n, Some(1e6))
        } else if let Some(n) = lower.strip_suffix("kb/s") {
            (n, Some(1e3))
        } else if let Some(n) = lower.strip_suffix("/s") {
            (n, None)
        } else {
            (lower.as_str(), None)
        };
        let v: f64 = num.trim().replace('_', "").parse().map_err(|_| format!("`{s}` is not a rate (records/s, or e.g. 50MB/s)"))?;
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("`{s}`: the rate must be positive"));
        }
        Ok(match mult {
            Some(m) => Rate::Bytes(v * m),
            None => Rate::Records(v),
        })
    }
}

/// Time between two sends of `records_per_send` records at `records_per_sec`.
pub fn send_interval(records_per_sec: f64, records_per_send: usize) -> Duration {
    if records_per_sec <= 0.0 {
        return Duration::MAX;
    }
    Duration::from_secs_f64(records_per_send as f64 / records_per_sec)
}

/// How early before a send the coarse timer hands over to yielding.
const FINE_WAIT: Duration = Duration::from_micros(1500);

/// Waits until `t` to within a few microseconds.
///
/// Why not just `tokio::time::sleep_until`: tokio's timer wheel has 1 ms
/// resolution and rounds every deadline up to the next tick, so a paced send
/// due in 300 us left up to 1 ms late, and since latency counts from the
/// intended time, the client's own timer showed up as ~0.5-1 ms of broker
/// latency at every percentile. So: sleep on the timer until `FINE_WAIT`
/// before the send, then yield to the runtime's other tasks (response
/// readers, consumers; tokio polls I/O between yields) until it is due. The
/// cost is client CPU spent yielding in that last stretch, on the client's
/// own core.
pub async fn wait_until(t: Instant) {
    if let Some(coarse) = t.checked_sub(FINE_WAIT) {
        if coarse > Instant::now() {
            tokio::time::sleep_until(coarse.into()).await;
        }
    }
    while Instant::now() < t {
        tokio::task::yield_now().await;
    }
}

/// The send schedule of one connection.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    interval_ns: f64,
    sent: u64,
}

impl Pacer {
    /// `records_per_sec` is this connection's share of the total rate.
    pub fn new(start: Instant, records_per_sec: f64, records_per_send: usize) -> Pacer {
        Pacer { start, interval_ns: send_interval(records_per_sec, records_per_send).as_nanos() as f64, sent: 0 }
    }

    /// The intended time of the next send; advances the schedule. It may lie
    /// in the past when the client is behind: the caller sends at once and
    /// charges the delay to latency.
    pub fn next_send(&mut self) -> Instant {
        let at = self.start + Duration::from_nanos((self.interval_ns * self.sent as f64) as u64);
        self.sent += 1;
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_bytes() {
        assert_eq!("10000".parse::<Rate>(), Ok(Rate::Records(10000.0)));
        assert_eq!("2500/s".parse::<Rate>(), Ok(Rate::Records(2500.0)));
        assert_eq!("50MB/s".parse::<Rate>(), Ok(Rate::Bytes(50e6)));
        assert_eq!("1.5 GB/s".parse::<Rate>(), Ok(Rate::Bytes(1.5e9)));
        assert_eq!("300mb/s".parse::<Rate>(), Ok(Rate::Bytes(300e6)));
        assert!("0".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
    }

    #[test]
    fn bytes_rate_converts_by_record_size() {
        let r: Rate = "50MB/s".parse().expect("rate");
        assert!((r.records_per_sec(1000) - 50_000.0).abs() < 1e-9);
        assert!((r.scaled(0.1).records_per_sec(1000) - 5_000.0).abs() < 1e-9);
    }

    #[test]
    fn interval_is_batch_over_rate() {
        // 10,000 records/s in batches of 100 = 100 sends/s = 10 ms apart.
        assert_eq!(send_interval(10_000.0, 100), Duration::from_millis(10));
        // Split over 4 connections: each sends every 40 ms.
        assert_eq!(send_interval(10_000.0 / 4.0, 100), Duration::from_millis(40));
        assert_eq!(send_interval(0.0, 1), Duration::MAX);
    }

    #[tokio::test]
    async fn fine_wait_never_wakes_early() {
        // Deadlines inside the fine window, beyond it, and already past.
        for us in [0u64, 120, 300, 1_400, 1_600, 2_500] {
            let t = Instant::now() + Duration::from_micros(us);
            wait_until(t).await;
            assert!(Instant::now() >= t, "woke before a deadline {us} us ahead");
        }
        wait_until(Instant::now() - Duration::from_millis(5)).await;
    }

    #[test]
    fn schedule_does_not_drift() {
        let t0 = Instant::now();
        // 3 sends/s: 333.33.. ms, not representable exactly; send 3000 lands at 1000 s.
        let mut p = Pacer::new(t0, 3.0, 1);
        assert_eq!(p.next_send(), t0);
        let mut last = t0;
        for _ in 0..3000 {
            last = p.next_send();
        }
        let err = (last - t0).as_secs_f64() - 1000.0;
        assert!(err.abs() < 1e-3, "drift {err}");
    }
}
