//! The broker's counters, one set per shard thread, in plain cells.
//!
//! Why thread-local cells: a shard is one thread that owns its partitions and
//! connections, so its counters need no atomic or lock — an increment on the
//! produce path is an add to a `Cell`. The admin listener (`admin/`) asks every
//! shard for a [`ShardSnapshot`] when `/metrics` is scraped (a cross-core call per
//! shard, off the data path) and adds them up. A thread that is not a shard
//! (a client tool, a test) has its own set that nobody reads.
//!
//! What is counted where is listed in the README's metrics table; the names
//! and units follow Prometheus conventions (`_total` counters, `_seconds`,
//! `_bytes`) and are given in `admin/exposition.rs`, the only place that
//! names a metric.
//!
//! Memory: fixed arrays for per-API counters (API keys below [`MAX_API_KEY`],
//! versions below [`MAX_API_VERSION`]); per-topic and per-error-code maps hold
//! one entry per topic this shard served and per (API, version, code) seen.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

/// API keys counted per key (Kafka's keys are below 100).
pub const MAX_API_KEY: usize = 100;
/// API versions counted per version (Kafka's are below 20).
pub const MAX_API_VERSION: usize = 20;

/// Upper bounds (seconds) of the request latency histogram's buckets.
pub const LATENCY_BOUNDS: [f64; 15] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Upper bounds (bytes) of the produced batch size histogram's buckets.
pub const BATCH_BOUNDS: [f64; 10] = [256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0];

/// A histogram in cells: per-bucket counts (not cumulative), sum and count.
pub struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    buckets: [Cell<u64>; N],
    sum: Cell<f64>,
    count: Cell<u64>,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: &'static [f64; N]) -> Self {
        Histogram { bounds, buckets: std::array::from_fn(|_| Cell::new(0)), sum: Cell::new(0.0), count: Cell::new(0) }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        if let Some(b) = self.buckets.get(i) {
            b.set(b.get() + 1);
        }
        self.sum.set(self.sum.get() + v);
        self.count.set(self.count.get() + 1);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot { bounds: self.bounds.to_vec(), buckets: self.buckets.iter().map(Cell::get).collect(), sum: self.sum.get(), count: self.count.get() }
    }
}

/// A histogram's values at one moment (bucket counts not cumulative; the
/// observations above the last bound are `count - sum(buckets)`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bound of each bucket.
    pub bounds: Vec<f64>,
    /// Observations per bucket.
    pub buckets: Vec<u64>,
    /// Sum of all observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl HistogramSnapshot {
    /// Adds another shard's histogram (same bounds) to this one.
    pub fn add(&mut self, o: &HistogramSnapshot) {
        if self.bounds.is_empty() {
            *self = o.clone();
            return;
        }
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.sum += o.sum;
        self.count += o.count;
    }
}

/// Traffic of one topic on one shard.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TopicTraffic {
    /// Bytes appended by producers (whole batches).
    pub bytes_in: u64,
    /// Records appended by producers.
    pub records_in: u64,
    /// Bytes sent to consumers (record batches in Fetch responses).
    pub bytes_out: u64,
    /// Records sent to consumers: how far consumers' fetch positions advanced.
    pub records_out: u64,
    /// Bytes sent to follower replicas.
    pub replication_bytes_out: u64,
}

impl TopicTraffic {
    /// Adds another shard's counts.
    pub fn add(&mut self, o: &TopicTraffic) {
        self.bytes_in += o.bytes_in;
        self.records_in += o.records_in;
        self.bytes_out += o.bytes_out;
        self.records_out += o.records_out;
        self.replication_bytes_out += o.replication_bytes_out;
    }
}

/// One shard's counters.
pub struct ShardMetrics {
    requests: Vec<[Cell<u64>; MAX_API_VERSION]>,
    latency: Vec<Histogram<15>>,
    errors: RefCell<HashMap<(i16, i16, i16), u64>>,
    topics: RefCell<HashMap<String, TopicTraffic>>,
    produce_batch_bytes: Histogram<10>,
    connections_open: Cell<i64>,
    connections_accepted: Cell<u64>,
    connections_refused: Cell<u64>,
    connections_closed_by_broker: Cell<u64>,
    xshard_calls: Cell<u64>,
    request_bytes_in_flight: Cell<i64>,
    ring_submissions: Cell<u64>,
    tail_cache_hits: Cell<u64>,
    tail_cache_misses: Cell<u64>,
    cleaner_passes: Cell<u64>,
    cleaner_bytes_read: Cell<u64>,
    cleaner_bytes_written: Cell<u64>,
    retention_segments_deleted: Cell<u64>,
    retention_bytes_deleted: Cell<u64>,
    isr_shrinks: Cell<u64>,
    isr_expands: Cell<u64>,
    offset_commits: RefCell<HashMap<String, u64>>,
}

thread_local! {
    static LOCAL: ShardMetrics = ShardMetrics::new();
}

/// Runs `f` on this thread's counters.
pub fn with<R>(f: impl FnOnce(&ShardMetrics) -> R) -> R {
    LOCAL.with(f)
}

fn bump(c: &Cell<u64>, by: u64) {
    c.set(c.get().wrapping_add(by));
}

impl ShardMetrics {
    fn new() -> Self {
        ShardMetrics {
            requests: (0..MAX_API_KEY).map(|_| std::array::from_fn(|_| Cell::new(0))).collect(),
            latency: (0..MAX_API_KEY).map(|_| Histogram::new(&LATENCY_BOUNDS)).collect(),
            errors: RefCell::default(),
            topics: RefCell::default(),
            produce_batch_bytes: Histogram::new(&BATCH_BOUNDS),
            connections_open: Cell::new(0),
            connections_accepted: Cell::new(0),
            connections_refused: Cell::new(0),
            connections_closed_by_broker: Cell::new(0),
            xshard_calls: Cell::new(0),
            request_bytes_in_flight: Cell::new(0),
            ring_submissions: Cell::new(0),
            tail_cache_hits: Cell::new(0),
            tail_cache_misses: Cell::new(0),
            cleaner_passes: Cell::new(0),
            cleaner_bytes_read: Cell::new(0),
            cleaner_bytes_written: Cell::new(0),
            retention_segments_deleted: Cell::new(0),
            retention_bytes_deleted: Cell::new(0),
            isr_shrinks: Cell::new(0),
            isr_expands: Cell::new(0),
            offset_commits: RefCell::default(),
        }
    }

    /// One request of `api` at `version` answered after `took`.
    pub fn request(&self, api: i16, version: i16, took: Duration) {
        let (a, v) = (api as usize, version as usize);
        if let Some(c) = self.requests.get(a).and_then(|r| r.get(v)) {
            bump(c, 1);
        }
        if let Some(h) = self.latency.get(a) {
            h.observe(took.as_secs_f64());
        }
    }

    /// An error code (not NONE) in a response of `api` at `version`.
    pub fn error(&self, api: i16, version: i16, code: i16) {
        *self.errors.borrow_mut().entry((api, version, code)).or_default() += 1;
    }

    /// Applies `f` to a topic's traffic counters.
    pub fn topic(&self, topic: &str, f: impl FnOnce(&mut TopicTraffic)) {
        let mut topics = self.topics.borrow_mut();
        match topics.get_mut(topic) {
            Some(t) => f(t),
            None => f(topics.entry(topic.to_string()).or_default()),
        }
    }

    /// A batch of `bytes` appended (the produce batch size histogram).
    pub fn produced_batch(&self, bytes: usize) {
        self.produce_batch_bytes.observe(bytes as f64);
    }

    /// A connection was admitted.
    pub fn connection_opened(&self) {
        bump(&self.connections_accepted, 1);
        self.connections_open.set(self.connections_open.get() + 1);
    }

    /// An admitted connection ended.
    pub fn connection_closed(&self) {
        self.connections_open.set(self.connections_open.get() - 1);
    }

    /// The broker closed a connection over a request it refuses (invalid frame or
    /// request, unsupported version, an API not built).
    pub fn connection_closed_by_broker(&self) {
        bump(&self.connections_closed_by_broker, 1);
    }

    /// A connection was refused (max.connections.per.ip, or the broker stopping).
    pub fn connection_refused(&self) {
        bump(&self.connections_refused, 1);
    }

    /// Request bytes reserved (positive) or given back (negative).
    pub fn request_bytes_in_flight(&self, delta: i64) {
        self.request_bytes_in_flight.set(self.request_bytes_in_flight.get() + delta);
    }

    /// A request sent to another shard.
    pub fn xshard_call(&self) {
        bump(&self.xshard_calls, 1);
    }

    /// An operation submitted to the shard's own io_uring ring.
    pub fn ring_submitted(&self) {
        bump(&self.ring_submissions, 1);
    }

    /// A fetch read of an active segment: served from the tail cache (`hit`) or the file.
    pub fn tail_cache_read(&self, hit: bool) {
        bump(if hit { &self.tail_cache_hits } else { &self.tail_cache_misses }, 1);
    }

    /// A compaction pass over one partition read and wrote these bytes.
    pub fn cleaned(&self, bytes_read: u64, bytes_written: u64) {
        bump(&self.cleaner_passes, 1);
        bump(&self.cleaner_bytes_read, bytes_read);
        bump(&self.cleaner_bytes_written, bytes_written);
    }

    /// Retention deleted a segment of `bytes`.
    pub fn retention_deleted(&self, bytes: u64) {
        bump(&self.retention_segments_deleted, 1);
        bump(&self.retention_bytes_deleted, bytes);
    }

    /// The committed ISR of a partition led here changed (a shrink when it got smaller).
    pub fn isr_changed(&self, shrink: bool) {
        bump(if shrink { &self.isr_shrinks } else { &self.isr_expands }, 1);
    }

    /// A group committed offsets (OffsetCommit or TxnOffsetCommit), on its coordinator.
    pub fn offset_commit(&self, group: &str) {
        let mut m = self.offset_commits.borrow_mut();
        match m.get_mut(group) {
            Some(c) => *c += 1,
            None => {
                m.insert(group.to_string(), 1);
            }
        }
    }

    /// This shard's counters now; the owner of the gauges fills in the rest.
    pub fn snapshot(&self) -> ShardSnapshot {
        let mut requests = Vec::new();
        for (api, versions) in self.requests.iter().enumerate() {
            for (v, c) in versions.iter().enumerate() {
                if c.get() > 0 {
                    requests.push((api as i16, v as i16, c.get()));
                }
            }
        }
        let latency = self.latency.iter().enumerate().filter(|(_, h)| h.count.get() > 0).map(|(api, h)| (api as i16, h.snapshot())).collect();
        ShardSnapshot {
            requests,
            latency,
            errors: self.errors.borrow().iter().map(|(k, v)| (*k, *v)).collect(),
            topics: self.topics.borrow().iter().map(|(k, v)| (k.clone(), *v)).collect(),
            produce_batch_bytes: self.produce_batch_bytes.snapshot(),
            connections_open: self.connections_open.get(),
            connections_accepted: self.connections_accepted.get(),
            connections_refused: self.connections_refused.get(),
            connections_closed_by_broker: self.connections_closed_by_broker.get(),
            xshard_calls: self.xshard_calls.get(),
            ring_submissions: self.ring_submissions.get(),
            tail_cache_hits: self.tail_cache_hits.get(),
            tail_cache_misses: self.tail_cache_misses.get(),
            cleaner_passes: self.cleaner_passes.get(),
            cleaner_bytes_read: self.cleaner_bytes_read.get(),
            cleaner_bytes_written: self.cleaner_bytes_written.get(),
            retention_segments_deleted: self.retention_segments_deleted.get(),
            retention_bytes_deleted: self.retention_bytes_deleted.get(),
            isr_shrinks: self.isr_shrinks.get(),
            isr_expands: self.isr_expands.get(),
            offset_commits: self.offset_commits.borrow().iter().map(|(k, v)| (k.clone(), *v)).collect(),
            request_bytes_in_flight: self.request_bytes_in_flight.get().max(0) as u64,
            ..ShardSnapshot::default()
        }
    }
}

/// One partition replica's gauges, read when scraped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionGauges {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Bytes of its segments on disk.
    pub size_bytes: u64,
    /// First readable offset.
    pub log_start_offset: i64,
    /// Offset of the next record to be appended.
    pub log_end_offset: i64,
    /// First offset not yet committed by the ISR.
    pub high_watermark: i64,
    /// This broker leads it.
    pub leader: bool,
    /// Leader only: its ISR is smaller than its replica set.
    pub under_replicated: bool,
    /// Leader only: its ISR is smaller than min.insync.replicas.
    pub under_min_isr: bool,
}

/// One shard's counters and gauges at one moment (sent across cores on a scrape).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardSnapshot {
    /// The shard's index.
    pub shard: usize,
    /// (api key, version, requests answered).
    pub requests: Vec<(i16, i16, u64)>,
    /// Request latency per api key.
    pub latency: Vec<(i16, HistogramSnapshot)>,
    /// ((api key, version, error code), responses carrying it).
    pub errors: Vec<((i16, i16, i16), u64)>,
    /// Traffic per topic.
    pub topics: Vec<(String, TopicTraffic)>,
    /// Sizes of appended batches.
    pub produce_batch_bytes: HistogramSnapshot,
    /// Connections open now.
    pub connections_open: i64,
    /// Connections admitted.
    pub connections_accepted: u64,
    /// Connections refused.
    pub connections_refused: u64,
    /// Connections the broker closed (invalid request, unsupported version, stop).
    pub connections_closed_by_broker: u64,
    /// Requests this shard sent to other shards.
    pub xshard_calls: u64,
    /// Operations submitted to the shard's own io_uring ring (DMA writes, receives, reads, splices, fsyncs).
    pub ring_submissions: u64,
    /// Operations of that ring in flight now (its queue depth).
    pub ring_in_flight: i64,
    /// Fetch reads of an active segment served from the tail cache.
    pub tail_cache_hits: u64,
    /// Fetch reads of an active segment that went to the file.
    pub tail_cache_misses: u64,
    /// Bytes the shard's tail cache holds now (filled by the shard).
    pub tail_cache_bytes: u64,
    /// Compaction passes (one partition each).
    pub cleaner_passes: u64,
    /// Bytes the cleaner read.
    pub cleaner_bytes_read: u64,
    /// Bytes the cleaner wrote.
    pub cleaner_bytes_written: u64,
    /// Segments deleted by retention.
    pub retention_segments_deleted: u64,
    /// Bytes deleted by retention.
    pub retention_bytes_deleted: u64,
    /// ISR shrinks of partitions led here (the leader's or the controller's).
    pub isr_shrinks: u64,
    /// ISR expansions of partitions led here.
    pub isr_expands: u64,
    /// Offset commits per group coordinated here.
    pub offset_commits: Vec<(String, u64)>,
    /// Request bytes held by this shard's connections now (queued.max.request.bytes' budget).
    pub request_bytes_in_flight: u64,
    /// Time the shard's executor spent running tasks, seconds.
    pub busy_seconds: f64,
    /// The partition replicas this shard owns.
    pub partitions: Vec<PartitionGauges>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_puts_each_observation_in_the_first_bucket_at_or_above_it() {
        let h = Histogram::new(&LATENCY_BOUNDS);
        h.observe(0.0001);
        h.observe(0.0003);
        h.observe(100.0);
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[2], 1);
        assert_eq!(s.buckets.iter().sum::<u64>(), 2, "100 s is above every bound: only in count");
        assert_eq!(s.count, 3);
    }

    #[test]
    fn snapshot_lists_only_what_moved() {
        let m = ShardMetrics::new();
        m.request(0, 9, Duration::from_millis(2));
        m.request(0, 9, Duration::from_millis(3));
        m.error(0, 9, 6);
        m.topic("t", |t| {
            t.bytes_in += 100;
            t.records_in += 2
        });
        m.topic("t", |t| t.bytes_in += 50);
        let s = m.snapshot();
        assert_eq!(s.requests, vec![(0, 9, 2)]);
        assert_eq!(s.latency.len(), 1);
        assert_eq!(s.errors, vec![((0, 9, 6), 1)]);
        assert_eq!(s.topics, vec![("t".to_string(), TopicTraffic { bytes_in: 150, records_in: 2, ..Default::default() })]);
    }

    #[test]
    fn versions_and_keys_out_of_range_are_not_counted() {
        let m = ShardMetrics::new();
        m.request(MAX_API_KEY as i16, 0, Duration::ZERO);
        m.request(0, MAX_API_VERSION as i16, Duration::ZERO);
        assert!(m.snapshot().requests.is_empty());
    }
}
