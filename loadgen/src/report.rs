//! Counters, latency histograms, the live progress line and the summary.
//!
//! Latencies go into HdrHistograms in microseconds (1 µs .. 1 h, 3
//! significant digits): percentiles stay exact to 0.1% over the whole range
//! and recording is a few nanoseconds. Produce-ack latency is per request
//! (send -> response; with `--rate` from the *intended* send time, see
//! `rate`). End-to-end latency is per record: consume time minus the batch's
//! maxTimestamp (stamped at send), so it has millisecond resolution.
//!
//! Events before the warmup ends feed the progress line but not the final
//! figures. Errors are counted for the whole run (warmup included): an error
//! is worth seeing whenever it happens.
//!
//! All actors share one [`Recorder`]; each record call takes a mutex once per
//! request/response (not per record), uncontended with one thread and cheap
//! with a few.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Highest latency tracked: 1 hour in µs (larger values saturate).
const MAX_US: u64 = 3_600_000_000;

fn histogram() -> Histogram<u64> {
    // Constant bounds, valid by construction (not input-dependent).
    Histogram::new_with_bounds(1, MAX_US, 3).expect("1us..1h with 3 digits is a valid histogram")
}

/// Counters and histograms of one role (produce or consume).
pub struct RoleStats {
    pub records: u64,
    pub payload_bytes: u64,
    pub wire_bytes: u64,
    pub requests: u64,
    /// produce: ack latency per request; consume: e2e latency per record (µs).
    pub latency: Histogram<u64>,
    iv_records: u64,
    iv_bytes: u64,
    iv_latency: Histogram<u64>,
}

impl RoleStats {
    fn new() -> RoleStats {
        RoleStats { records: 0, payload_bytes: 0, wire_bytes: 0, requests: 0, latency: histogram(), iv_records: 0, iv_bytes: 0, iv_latency: histogram() }
    }
}

/// Shared by every producer and consumer of a run.
pub struct Recorder {
    /// When the run (after setup) started.
    pub start: Instant,
    /// Events from here on count in the summary (start + warmup).
    pub measure_from: Instant,
    /// Bytes of record payload per record (MB/s = record_size x records).
    pub record_size: u64,
    produce: Mutex<RoleStats>,
    consume: Mutex<RoleStats>,
    errors: Mutex<BTreeMap<String, u64>>,
    last_event: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking actor must not take the report down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Recorder {
    pub fn new(start: Instant, warmup: Duration, record_size: usize) -> Recorder {
        Recorder {
            start,
            measure_from: start + warmup,
            record_size: record_size as u64,
            produce: Mutex::new(RoleStats::new()),
            consume: Mutex::new(RoleStats::new()),
            errors: Mutex::new(BTreeMap::new()),
            last_event: Mutex::new(None),
        }
    }

    fn measured(&self, now: Instant) -> bool {
        if now < self.measure_from {
            return false;
        }
        let mut l = lock(&self.last_event);
        if l.is_none_or(|t| now > t) {
            *l = Some(now);
        }
        true
    }

    /// A produce response: `records` acknowledged records (0 when the
    /// partition answered with an error), ack latency in µs (None for acks=0).
    pub fn produced(&self, now: Instant, records: u64, wire_bytes: u64, latency_us: Option<u64>) {
        let measured = self.measured(now);
        let mut s = lock(&self.produce);
        let bytes = records * self.record_size;
        s.iv_records += records;
        s.iv_bytes += bytes;
        if let Some(l) = latency_us {
            s.iv_latency.saturating_record(l.max(1));
        }
        if measured {
            s.records += records;
            s.payload_bytes += bytes;
            s.wire_bytes += wire_bytes;
            s.requests += 1;
            if let Some(l) = latency_us {
                s.latency.saturating_record(l.max(1));
            }
        }
    }

    /// A fetched batch of `records` records; `e2e_us` its end-to-end latency
    /// (recorded once per record of the batch).
    pub fn consumed(&self, now: Instant, records: u64, wire_bytes: u64, e2e_us: Option<u64>) {
        let measured = self.measured(now);
        let mut s = lock(&self.consume);
        let bytes = records * self.record_size;
        s.iv_records += records;
        s.iv_bytes += bytes;
        if let Some(l) = e2e_us {
            s.iv_latency.saturating_record_n(l.max(1), records.max(1));
        }
        if measured {
            s.records += records;
            s.payload_bytes += bytes;
            s.wire_bytes += wire_bytes;
            if let Some(l) = e2e_us {
                s.latency.saturating_record_n(l.max(1), records.max(1));
            }
        }
    }

    /// One fetch round trip finished (requests are counted apart from batches).
    pub fn fetch_done(&self, now: Instant) {
        if now >= self.measure_from {
            lock(&self.consume).requests += 1;
        }
    }

    /// Counts an error under its Kafka code name (or a client-side name such
    /// as `CLIENT_TIMEOUT`).
    pub fn error(&self, name: &str) {
        *lock(&self.errors).entry(name.to_string()).or_insert(0) += 1;
    }

    pub fn error_count(&self) -> u64 {
        lock(&self.errors).values().sum()
    }

    /// The progress line for the interval since the previous call; resets
    /// the interval counters.
    pub fn progress_line(&self, now: Instant, interval: Duration, show_produce: bool, show_consume: bool) -> String {
        let secs = interval.as_secs_f64().max(1e-9);
        let t = now.saturating_duration_since(self.start).as_secs_f64();
        let stamp = format!("[{t:6.1}s{}]", if now < self.measure_from { " warmup" } else { "" });
        let mut parts = Vec::new();
        for (show, name, m, lat) in [(show_produce, "produce", &self.produce, "p99"), (show_consume, "consume", &self.consume, "e2e p99")] {
            if !show {
                continue;
            }
            let mut s = lock(m);
            let p99 = if s.iv_latency.is_empty() { "-".to_string() } else { format!("{:.2} ms", s.iv_latency.value_at_quantile(0.99) as f64 / 1000.0) };
            parts.push(format!("{name} {:8.1} MB/s {:10.0} rec/s {lat} {p99}", s.iv_bytes as f64 / 1e6 / secs, s.iv_records as f64 / secs));
            s.iv_records = 0;
            s.iv_bytes = 0;
            s.iv_latency.reset();
        }
        let errs = self.error_count();
        if errs > 0 {
            parts.push(format!("errors {errs}"));
        }
        format!("{stamp} {}", parts.join(" | "))
    }

    /// Final figures over [measure_from, end].
    pub fn summary(&self, end: Instant) -> Summary {
        let last = lock(&self.last_event).unwrap_or(end);
        let elapsed = last.max(end).saturating_duration_since(self.measure_from).as_secs_f64().max(1e-9);
        let role = |m: &Mutex<RoleStats>| {
            let s = lock(m);
            RoleSummary {
                records: s.records,
                payload_bytes: s.payload_bytes,
                wire_bytes: s.wire_bytes,
                requests: s.requests,
                records_per_sec: s.records as f64 / elapsed,
                mb_per_sec: s.payload_bytes as f64 / 1e6 / elapsed,
                latency: Percentiles::of(&s.latency),
            }
        };
        Summary { elapsed_s: elapsed, produce: role(&self.produce), consume: role(&self.consume), errors: lock(&self.errors).clone() }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }

    fn json(&self) -> Value {
        json!({"count": self.count, "p50": self.p50, "p90": self.p90, "p99": self.p99, "p999": self.p999, "max": self.max})
    }

    fn line(&self) -> String {
        if self.count == 0 {
            return "no samples".to_string();
        }
        format!("p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3} ms  ({} samples)", self.p50, self.p90, self.p99, self.p999, self.max, self.count)
    }
}

#[derive(Debug, Clone, Default)]
pub struct RoleSummary {
    pub records: u64,
    pub payload_bytes: u64,
    pub wire_bytes: u64,
    pub requests: u64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    pub latency: Percentiles,
}

impl RoleSummary {
    fn json(&self) -> Value {
        json!({
            "records": self.records,
            "payload_bytes": self.payload_bytes,
            "wire_bytes": self.wire_bytes,
            "requests": self.requests,
            "records_per_sec": self.records_per_sec,
            "mb_per_sec": self.mb_per_sec,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub elapsed_s: f64,
    pub produce: RoleSummary,
    pub consume: RoleSummary,
    pub errors: BTreeMap<String, u64>,
}

/// Run facts printed with the figures.
pub struct RunInfo<'a> {
    pub workload: Option<&'a str>,
    pub mode: &'a str,
    pub produces: bool,
    pub consumes: bool,
    pub settings: Value,
}

impl Summary {
    /// The headline rate: produce when producing, otherwise consume.
    fn headline<'a>(&'a self, info: &RunInfo) -> &'a RoleSummary {
        if info.produces {
            &self.produce
        } else {
            &self.consume
        }
    }

    pub fn to_json(&self, info: &RunInfo) -> Value {
        let h = self.headline(info);
        json!({
            "workload": info.workload,
            "mode": info.mode,
            "elapsed_s": self.elapsed_s,
            "records_per_sec": h.records_per_sec,
            "mb_per_sec": h.mb_per_sec,
            "produce": self.produce.json(),
            "consume": self.consume.json(),
            "produce_latency_ms": self.produce.latency.json(),
            "e2e_latency_ms": self.consume.latency.json(),
            "errors": self.errors,
            "settings": info.settings,
        })
    }

    pub fn to_text(&self, info: &RunInfo) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "loadgen summary{} ({} mode, {:.1} s measured)\n",
            info.workload.map(|w| format!(" [{w}]")).unwrap_or_default(),
            info.mode,
            self.elapsed_s
        ));
        if info.produces {
            let p = &self.produce;
            out.push_str(&format!(
                "  produce: {} records, {:.0} records/s, {:.2} MB/s ({} requests)\n  produce ack latency: {}\n",
                p.records,
                p.records_per_sec,
                p.mb_per_sec,
                p.requests,
                p.latency.line()
            ));
        }
        if info.consumes {
            let c = &self.consume;
            out.push_str(&format!("  consume: {} records, {:.0} records/s, {:.2} MB/s ({} fetches)\n", c.records, c.records_per_sec, c.mb_per_sec, c.requests));
            out.push_str(&format!("  end-to-end latency: {}\n", c.latency.line()));
        }
        if self.errors.is_empty() {
            out.push_str("  errors: none\n");
        } else {
            let e: Vec<String> = self.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("  errors: {}\n", e.join(" ")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_excluded_and_json_has_the_keys() {
        let t0 = Instant::now();
        let r = Recorder::new(t0, Duration::from_secs(1), 1000);
        r.produced(t0, 10, 10_500, Some(500)); // warmup
        r.produced(t0 + Duration::from_secs(2), 20, 21_000, Some(2000));
        r.consumed(t0 + Duration::from_secs(2), 20, 21_000, Some(3000));
        r.error("NOT_LEADER_OR_FOLLOWER");
        let s = r.summary(t0 + Duration::from_secs(3));
        assert_eq!(s.produce.records, 20);
        assert_eq!(s.produce.payload_bytes, 20_000);
        assert!((s.elapsed_s - 2.0).abs() < 1e-6);
        assert!((s.produce.records_per_sec - 10.0).abs() < 1e-6);
        assert!((s.produce.latency.p99 - 2.0).abs() < 0.01);
        assert_eq!(s.consume.latency.count, 20);
        let info = RunInfo { workload: None, mode: "both", produces: true, consumes: true, settings: json!({}) };
        let j = s.to_json(&info);
        for k in ["records_per_sec", "mb_per_sec", "produce_latency_ms", "e2e_latency_ms", "errors"] {
            assert!(j.get(k).is_some(), "{k}");
        }
        for k in ["p50", "p99", "p999", "max"] {
            assert!(j["produce_latency_ms"].get(k).is_some(), "{k}");
        }
        assert_eq!(j["errors"]["NOT_LEADER_OR_FOLLOWER"], 1);
        let line = r.progress_line(t0 + Duration::from_secs(3), Duration::from_secs(1), true, true);
        assert!(line.contains("produce") && line.contains("errors 1"), "{line}");
    }
}
