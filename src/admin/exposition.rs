//! `/metrics`: the shards' snapshots added up and written in Prometheus' text
//! format (0.0.4) — the one place that names a metric. Names, units and labels
//! follow Prometheus conventions (`_total` counters, base units `_seconds` and
//! `_bytes`) and are listed with their meaning in the README's metrics table.
//!
//! Per-shard values that say something about one core (busy time, cross-core
//! calls, io_uring) keep a `shard` label; the rest are summed over shards.
//! Under-replicated and under-min-ISR partitions are counted by their leader
//! and offline partitions by the active controller, as Kafka does, so a sum over
//! brokers counts each partition once.

use std::collections::BTreeMap;

use prometheus::proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType};

use super::lag::{GroupLag, Verdict};
use crate::metrics::{HistogramSnapshot, ShardSnapshot, TopicTraffic};

/// Everything a scrape shows.
pub struct Scrape<'a> {
    /// Every shard's snapshot.
    pub shards: &'a [ShardSnapshot],
    /// This node is the active controller.
    pub controller_active: bool,
    /// Partitions without a leader (reported by the active controller only).
    pub offline_partitions: Option<usize>,
    /// The metadata image's version (the last metadata record applied).
    pub metadata_version: u64,
    /// KRaft: (quorum leader id, leader epoch, high watermark).
    pub quorum: Option<(i32, i32, i64)>,
    /// The lag of each group this broker coordinates.
    pub lag: &'a [GroupLag],
}

/// Kafka's name of an error code (`UNKNOWN_TOPIC_OR_PARTITION`), or the code.
pub fn error_name(code: i16) -> String {
    match kafka_protocol::ResponseError::try_from_code(code).map(|e| format!("{e:?}")).filter(|n| !n.contains('(')) {
        Some(camel) => {
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
        None => format!("CODE_{code}"),
    }
}

/// An API key's Kafka name (`Produce`), or the number.
pub fn api_name(key: i16) -> String {
    kafka_protocol::messages::ApiKey::try_from(key).map_or_else(|_| key.to_string(), |k| format!("{k:?}"))
}

struct Families(Vec<MetricFamily>);

impl Families {
    fn add(&mut self, name: &str, help: &str, ty: MetricType, metrics: Vec<Metric>) {
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(ty);
        f.set_metric(metrics);
        self.0.push(f);
    }

    fn counter(&mut self, name: &str, help: &str, values: Vec<(Vec<(&str, String)>, f64)>) {
        let metrics = values.into_iter().map(|(l, v)| metric(l, |m| m.set_counter(counter(v)))).collect();
        self.add(name, help, MetricType::COUNTER, metrics);
    }

    fn gauge(&mut self, name: &str, help: &str, values: Vec<(Vec<(&str, String)>, f64)>) {
        let metrics = values.into_iter().map(|(l, v)| metric(l, |m| m.set_gauge(gauge(v)))).collect();
        self.add(name, help, MetricType::GAUGE, metrics);
    }

    fn histogram(&mut self, name: &str, help: &str, values: Vec<(Vec<(&str, String)>, &HistogramSnapshot)>) {
        let metrics = values.into_iter().map(|(l, h)| metric(l, |m| m.set_histogram(histogram(h)))).collect();
        self.add(name, help, MetricType::HISTOGRAM, metrics);
    }
}

fn metric(labels: Vec<(&str, String)>, set: impl FnOnce(&mut Metric)) -> Metric {
    let mut m = Metric::default();
    m.set_label(
        labels
            .into_iter()
            .map(|(k, v)| {
                let mut l = LabelPair::default();
                l.set_name(k.to_string());
                l.set_value(v);
                l
            })
            .collect(),
    );
    set(&mut m);
    m
}

fn counter(v: f64) -> Counter {
    let mut c = Counter::default();
    c.set_value(v);
    c
}

fn gauge(v: f64) -> Gauge {
    let mut g = Gauge::default();
    g.set_value(v);
    g
}

fn histogram(h: &HistogramSnapshot) -> Histogram {
    let mut out = Histogram::default();
    let mut cumulative = 0;
    let buckets = h
        .bounds
        .iter()
        .zip(&h.buckets)
        .map(|(bound, n)| {
            cumulative += n;
            let mut b = Bucket::default();
            b.set_upper_bound(*bound);
            b.set_cumulative_count(cumulative);
            b
        })
        .collect();
    out.set_bucket(buckets);
    out.set_sample_count(h.count);
    out.set_sample_sum(h.sum);
    out
}

/// The text a scrape answers.
pub fn encode(s: &Scrape<'_>) -> String {
    let mut f = Families(Vec::new());
    let shards = s.shards;
    f.gauge("shardlog_build_info", "The running shardlog's version.", vec![(vec![("version", env!("CARGO_PKG_VERSION").to_string())], 1.0)]);

    // Requests, errors and latency per API.
    let mut requests: BTreeMap<(i16, i16), u64> = BTreeMap::new();
    let mut errors: BTreeMap<(i16, i16, i16), u64> = BTreeMap::new();
    let mut latency: BTreeMap<i16, HistogramSnapshot> = BTreeMap::new();
    for sh in shards {
        for (api, v, n) in &sh.requests {
            *requests.entry((*api, *v)).or_default() += n;
        }
        for (k, n) in &sh.errors {
            *errors.entry(*k).or_default() += n;
        }
        for (api, h) in &sh.latency {
            latency.entry(*api).or_default().add(h);
        }
    }
    f.counter(
        "shardlog_requests_total",
        "Kafka requests answered, per API and version.",
        requests.iter().map(|((a, v), n)| (vec![("api", api_name(*a)), ("version", v.to_string())], *n as f64)).collect(),
    );
    f.counter(
        "shardlog_request_errors_total",
        "Error codes (other than NONE) in Kafka responses, per API, version and error (top-level and per partition, group or resource).",
        errors.iter().map(|((a, v, c), n)| (vec![("api", api_name(*a)), ("version", v.to_string()), ("error", error_name(*c))], *n as f64)).collect(),
    );
    f.histogram(
        "shardlog_request_duration_seconds",
        "Time from a request's arrival on its connection's shard to its response being ready, per API.",
        latency.iter().map(|(a, h)| (vec![("api", api_name(*a))], h)).collect(),
    );

    // Traffic per topic and produced batch sizes.
    let mut topics: BTreeMap<&str, TopicTraffic> = BTreeMap::new();
    let mut batches = HistogramSnapshot::default();
    for sh in shards {
        for (t, c) in &sh.topics {
            topics.entry(t).or_default().add(c);
        }
        batches.add(&sh.produce_batch_bytes);
    }
    let per_topic = |get: fn(&TopicTraffic) -> u64| topics.iter().map(|(t, c)| (vec![("topic", t.to_string())], get(c) as f64)).collect::<Vec<_>>();
    f.counter("shardlog_topic_bytes_in_total", "Bytes of record batches appended by producers.", per_topic(|c| c.bytes_in));
    f.counter("shardlog_topic_records_in_total", "Records appended by producers.", per_topic(|c| c.records_in));
    f.counter("shardlog_topic_bytes_out_total", "Bytes of record batches sent to consumers.", per_topic(|c| c.bytes_out));
    f.counter(
        "shardlog_topic_records_out_total",
        "Records sent to consumers: how far their fetch positions advanced (counted at each next fetch on the connection).",
        per_topic(|c| c.records_out),
    );
    f.counter("shardlog_topic_replication_bytes_out_total", "Bytes of record batches sent to follower replicas.", per_topic(|c| c.replication_bytes_out));
    f.histogram("shardlog_produce_batch_size_bytes", "Sizes of the record batches appended by producers.", vec![(vec![], &batches)]);

    // Partitions hosted here.
    let parts: Vec<_> = shards.iter().flat_map(|sh| &sh.partitions).collect();
    let per_partition = |get: fn(&crate::metrics::PartitionGauges) -> f64| {
        parts.iter().map(|p| (vec![("topic", p.topic.clone()), ("partition", p.partition.to_string())], get(p))).collect::<Vec<_>>()
    };
    f.gauge("shardlog_partition_log_size_bytes", "Bytes of a partition replica's segments on this broker's disk.", per_partition(|p| p.size_bytes as f64));
    f.gauge("shardlog_partition_log_start_offset", "A partition replica's first readable offset.", per_partition(|p| p.log_start_offset as f64));
    f.gauge("shardlog_partition_log_end_offset", "A partition replica's next offset to append.", per_partition(|p| p.log_end_offset as f64));
    f.gauge(
        "shardlog_partition_high_watermark",
        "A partition replica's high watermark (first offset not committed by the ISR).",
        per_partition(|p| p.high_watermark as f64),
    );
    let count = |pred: fn(&&&crate::metrics::PartitionGauges) -> bool| parts.iter().filter(pred).count() as f64;
    f.gauge("shardlog_partitions", "Partition replicas hosted on this broker.", vec![(vec![], parts.len() as f64)]);
    f.gauge("shardlog_leader_partitions", "Partitions this broker leads.", vec![(vec![], count(|p| p.leader))]);
    f.gauge(
        "shardlog_under_replicated_partitions",
        "Partitions led here whose ISR is smaller than their replica set.",
        vec![(vec![], count(|p| p.under_replicated))],
    );
    f.gauge(
        "shardlog_under_min_isr_partitions",
        "Partitions led here whose ISR is smaller than min.insync.replicas.",
        vec![(vec![], count(|p| p.under_min_isr))],
    );
    if let Some(n) = s.offline_partitions {
        f.gauge("shardlog_offline_partitions", "Partitions without a leader (reported by the active controller).", vec![(vec![], n as f64)]);
    }
    let sum = |get: fn(&ShardSnapshot) -> u64| vec![(vec![], shards.iter().map(get).sum::<u64>() as f64)];
    f.counter(
        "shardlog_isr_shrinks_total",
        "ISR shrinks of partitions led here (the leader's request, or the controller dropping a fenced or stopping broker).",
        sum(|s| s.isr_shrinks),
    );
    f.counter("shardlog_isr_expands_total", "ISR expansions of partitions led here.", sum(|s| s.isr_expands));

    // Controller and metadata quorum.
    f.gauge("shardlog_controller_active", "1 when this node is the active controller.", vec![(vec![], if s.controller_active { 1.0 } else { 0.0 })]);
    f.gauge("shardlog_metadata_version", "The version of the metadata image this broker applied.", vec![(vec![], s.metadata_version as f64)]);
    if let Some((leader, epoch, hw)) = s.quorum {
        f.gauge("shardlog_metadata_quorum_leader_id", "The metadata quorum's leader (-1: none known).", vec![(vec![], leader as f64)]);
        f.gauge("shardlog_metadata_quorum_epoch", "The metadata quorum's leader epoch.", vec![(vec![], epoch as f64)]);
        f.gauge("shardlog_metadata_quorum_high_watermark", "The metadata quorum's high watermark.", vec![(vec![], hw as f64)]);
    }

    // Connections and requests in flight.
    f.gauge("shardlog_connections_open", "Kafka client connections open.", vec![(vec![], shards.iter().map(|s| s.connections_open).sum::<i64>() as f64)]);
    f.counter("shardlog_connections_accepted_total", "Kafka client connections admitted.", sum(|s| s.connections_accepted));
    f.counter("shardlog_connections_refused_total", "Kafka client connections refused (max.connections.per.ip).", sum(|s| s.connections_refused));
    f.counter(
        "shardlog_connections_closed_by_broker_total",
        "Kafka client connections the broker closed over an invalid request, an unsupported version or an API not built.",
        sum(|s| s.connections_closed_by_broker),
    );
    f.gauge(
        "shardlog_request_bytes_in_flight",
        "Bytes of Kafka requests held by connections now (queued.max.request.bytes).",
        sum(|s| s.request_bytes_in_flight),
    );

    // Per shard.
    let per_shard = |get: fn(&ShardSnapshot) -> f64| shards.iter().map(|s| (vec![("shard", s.shard.to_string())], get(s))).collect::<Vec<_>>();
    f.counter("shardlog_shard_busy_seconds_total", "Time a shard's executor spent running tasks.", per_shard(|s| s.busy_seconds));
    f.counter("shardlog_xshard_calls_total", "Requests a shard sent to another shard.", per_shard(|s| s.xshard_calls as f64));
    f.counter("shardlog_io_uring_submissions_total", "Operations submitted to a shard's own io_uring ring.", per_shard(|s| s.ring_submissions as f64));
    f.gauge("shardlog_io_uring_in_flight", "Operations of a shard's own io_uring ring not yet completed.", per_shard(|s| s.ring_in_flight as f64));
    f.gauge(
        "shardlog_tail_cache_bytes",
        "Bytes a shard's tail cache holds (recently written data of active segments).",
        per_shard(|s| s.tail_cache_bytes as f64),
    );
    f.counter("shardlog_tail_cache_hits_total", "Fetch reads of an active segment served from the tail cache.", per_shard(|s| s.tail_cache_hits as f64));
    f.counter("shardlog_tail_cache_misses_total", "Fetch reads of an active segment read from the segment file.", per_shard(|s| s.tail_cache_misses as f64));

    // Log cleaner and retention.
    f.counter("shardlog_log_cleaner_passes_total", "Compaction passes (one partition each).", sum(|s| s.cleaner_passes));
    f.counter("shardlog_log_cleaner_read_bytes_total", "Bytes the log cleaner read.", sum(|s| s.cleaner_bytes_read));
    f.counter("shardlog_log_cleaner_written_bytes_total", "Bytes the log cleaner wrote.", sum(|s| s.cleaner_bytes_written));
    f.counter("shardlog_retention_deleted_segments_total", "Segments deleted by retention.ms / retention.bytes.", sum(|s| s.retention_segments_deleted));
    f.counter("shardlog_retention_deleted_bytes_total", "Bytes deleted by retention.", sum(|s| s.retention_bytes_deleted));

    // Consumer groups coordinated here.
    let mut commits: BTreeMap<&str, u64> = BTreeMap::new();
    for sh in shards {
        for (g, n) in &sh.offset_commits {
            *commits.entry(g).or_default() += n;
        }
    }
    f.counter(
        "shardlog_consumer_group_offset_commits_total",
        "OffsetCommit requests accepted, per group coordinated here.",
        commits.iter().map(|(g, n)| (vec![("group", g.to_string())], *n as f64)).collect(),
    );
    let gtp =
        |g: &GroupLag, topic: &str, partition: i32| vec![("group", g.group_id.clone()), ("topic", topic.to_string()), ("partition", partition.to_string())];
    let mut committed = Vec::new();
    let mut lag = Vec::new();
    let mut part_status = Vec::new();
    let mut group_status = Vec::new();
    let mut total = Vec::new();
    for g in s.lag {
        for p in &g.partitions {
            committed.push((gtp(g, &p.topic, p.partition), p.committed_offset as f64));
            if let Some(l) = p.lag {
                lag.push((gtp(g, &p.topic, p.partition), l as f64));
            }
            for v in Verdict::ALL {
                let mut labels = gtp(g, &p.topic, p.partition);
                labels.push(("status", v.as_str().to_string()));
                part_status.push((labels, if p.verdict == v { 1.0 } else { 0.0 }));
            }
        }
        for v in Verdict::ALL {
            group_status.push((vec![("group", g.group_id.clone()), ("status", v.as_str().to_string())], if g.verdict == v { 1.0 } else { 0.0 }));
        }
        total.push((vec![("group", g.group_id.clone())], g.total_lag as f64));
    }
    f.gauge("shardlog_consumer_group_committed_offset", "A group's committed offset per partition (last sample).", committed);
    f.gauge("shardlog_consumer_group_lag", "A group's lag per partition in records: high watermark minus committed offset (last sample).", lag);
    f.gauge("shardlog_consumer_group_total_lag", "A group's lag summed over its partitions (last sample).", total);
    f.gauge(
        "shardlog_consumer_group_partition_status",
        "The lag verdict per group and partition: 1 for the current status (OK, WARNING, STALLED, STOPPED, REWIND), 0 for the others.",
        part_status,
    );
    f.gauge("shardlog_consumer_group_status", "A group's lag verdict (the worst of its partitions): 1 for the current status.", group_status);

    // Families without any sample are left out (promtool and Prometheus accept them, but they say nothing).
    f.0.retain(|fam| !fam.get_metric().is_empty());
    let mut out = String::new();
    if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&f.0, &mut out) {
        crate::warn_limited!("encoding /metrics failed: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(-12345), "CODE_-12345");
    }

    #[test]
    fn a_scrape_sums_shards_and_writes_cumulative_buckets() {
        let m = crate::metrics::with(|m| {
            m.request(0, 9, std::time::Duration::from_micros(50));
            m.topic("orders", |t| t.bytes_in += 10);
            m.snapshot()
        });
        let mut second = m.clone();
        second.shard = 1;
        let text = encode(&Scrape { shards: &[m, second], controller_active: true, offline_partitions: Some(0), metadata_version: 7, quorum: None, lag: &[] });
        assert!(text.contains("shardlog_requests_total{api=\"Produce\",version=\"9\"} 2"), "{text}");
        assert!(text.contains("shardlog_topic_bytes_in_total{topic=\"orders\"} 20"), "{text}");
        assert!(text.contains("shardlog_request_duration_seconds_bucket{api=\"Produce\",le=\"0.0001\"} 2"), "{text}");
        assert!(text.contains("shardlog_request_duration_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("# TYPE shardlog_shard_busy_seconds_total counter"), "{text}");
    }
}
