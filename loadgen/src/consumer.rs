//! Consumer connections: Fetch with assigned partitions, counting records
//! from batch headers only.
//!
//! Why assigned partitions by default: a load generator needs a fixed,
//! repeatable assignment, and a fetch path that costs the same whatever the
//! broker's group coordinator does. Each consumer connection owns a set of
//! partitions (all partitions of the topic are split over the consumers of a
//! "group"; `--consumer-groups G` runs G such independent sets, each reading
//! everything: that is read fan-out). With `--group-mode group` the sets are
//! real Kafka consumer groups (`group`): the group coordinator assigns the
//! partitions, and a member runs this same fetch loop on what it was given,
//! until a rebalance takes it back (`revoke`).
//!
//! Why headers only: counting records needs `recordsCount` (bytes 57..61)
//! and the next offset needs `baseOffset + lastOffsetDelta + 1`; the records
//! themselves (possibly compressed) are never touched, so the consumer costs
//! about one copy of the data. End-to-end latency is now minus the batch's
//! `maxTimestamp`, which the producer stamped at send time.
//!
//! Responses are decoded by `fetch::decode`, not kafka-protocol: it skips
//! tagged fields that kafka-protocol 0.18 rejects (Tansu sends one), and
//! hands the records over as a slice of the frame.
//!
//! One Fetch is outstanding per connection (the next offsets are only known
//! from the previous response); a fetch long-polls at most
//! `--fetch-max-wait-ms`, and never past the run's deadline.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::batch::batches;
use crate::fetch;
use crate::producer::{now_ms, RunCtx};
use crate::wire::{self, error_name, Client};

/// Fetch settings shared by all consumers of a run.
#[derive(Debug, Clone)]
pub struct FetchCfg {
    pub max_wait_ms: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
    /// Record end-to-end latency for batches stamped at or after this wall
    /// time (ms); None = do not (consume-only runs read older data).
    pub e2e_since_ms: Option<i64>,
}

/// Next offsets by partition, published by a group member's fetchers after
/// every response so that the member can commit them while they run.
pub type Positions = Arc<Mutex<BTreeMap<i32, i64>>>;

/// A connected consumer with its start offsets resolved.
pub struct Consumer {
    client: Client,
    version: i16,
    topic: String,
    /// (partition, next offset to fetch)
    positions: Vec<(i32, i64)>,
    /// Records this consumer's group still has to read (`--records`).
    pub budget: Option<Arc<AtomicI64>>,
    /// Group mode: set when the member gives its partitions back (a
    /// rebalance, or the member stops); the loop returns before the next fetch.
    pub revoke: Option<Arc<AtomicBool>>,
    /// Group mode: where the positions go after each response.
    pub publish: Option<Positions>,
}

/// Kafka's special ListOffsets timestamps.
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

impl Consumer {
    /// Connects to the partitions' leader and looks up where to start.
    pub async fn connect(addr: &str, topic: &str, partitions: &[i32], from: i64, timeout: Duration) -> Result<Consumer> {
        let mut client = Client::connect(addr, timeout).await?;
        let version = client.versions.pick(ApiKey::Fetch, wire::FETCH.0, wire::FETCH.1)?;
        let offsets = wire::list_offsets(&mut client, topic, partitions, from).await?;
        let positions = partitions.iter().map(|p| (*p, offsets.get(p).copied().unwrap_or(0))).collect();
        Ok(Consumer { client, version, topic: topic.to_string(), positions, budget: None, revoke: None, publish: None })
    }

    /// A consumer on an open connection with known start offsets (group
    /// mode: the member resolved them from its committed offsets).
    pub fn on(client: Client, topic: &str, positions: Vec<(i32, i64)>) -> Result<Consumer> {
        let version = client.versions.pick(ApiKey::Fetch, wire::FETCH.0, wire::FETCH.1)?;
        Ok(Consumer { client, version, topic: topic.to_string(), positions, budget: None, revoke: None, publish: None })
    }

    /// The connection back, with the next offset of every partition.
    pub fn into_parts(self) -> (Client, Vec<(i32, i64)>) {
        (self.client, self.positions)
    }

    fn done(&self, ctx: &RunCtx) -> bool {
        ctx.should_stop()
            || self.budget.as_ref().is_some_and(|b| b.load(Ordering::Relaxed) <= 0)
            || self.revoke.as_ref().is_some_and(|r| r.load(Ordering::Relaxed))
    }

    /// Fetches until the deadline, until the group's record budget is read,
    /// or until `revoke` is set.
    pub async fn run(&mut self, ctx: &RunCtx, cfg: &FetchCfg) -> Result<()> {
        if self.positions.is_empty() {
            return Ok(());
        }
        let index: HashMap<i32, usize> = self.positions.iter().enumerate().map(|(i, (p, _))| (*p, i)).collect();
        let topic = TopicName(StrBytes::from_string(self.topic.clone()));
        let mut partition_max = cfg.partition_max_bytes.max(1);
        loop {
            if self.done(ctx) {
                return Ok(());
            }
            let left = ctx.deadline.saturating_duration_since(Instant::now());
            let wait_ms = (cfg.max_wait_ms.max(0) as u128).min(left.as_millis()) as i32;
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(wait_ms)
                .with_min_bytes(1)
                .with_max_bytes(cfg.max_bytes)
                .with_isolation_level(0)
                .with_topics(vec![FetchTopic::default().with_topic(topic.clone()).with_partitions(
                    self.positions
                        .iter()
                        .map(|(p, o)| FetchPartition::default().with_partition(*p).with_fetch_offset(*o).with_partition_max_bytes(partition_max))
                        .collect(),
                )]);
            let (corr, frame) = match self.client.round_trip(&req, self.version, Duration::from_millis(wait_ms as u64)).await {
                Ok(r) => r,
                Err(e) => {
                    ctx.rec.error(if e.to_string().contains("no response") { "CLIENT_TIMEOUT" } else { "NETWORK_EXCEPTION" });
                    return Err(anyhow!("consumer of {}: {e:#}", self.client.addr));
                }
            };
            // Our own decoder: it skips tagged fields kafka-protocol refuses (see `fetch`).
            let resp = fetch::decode(frame, self.version).map_err(|e| anyhow!("consumer of {}: decoding Fetch v{}: {e:#}", self.client.addr, self.version))?;
            wire::check_correlation(resp.correlation_id, corr)?;
            let now = Instant::now();
            let wall = now_ms();
            ctx.rec.fetch_done(now);
            if resp.error_code != 0 {
                ctx.rec.error(&error_name(resp.error_code));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let mut reset = Vec::new();
            let mut stuck = false;
            for t in resp.topics.iter().filter(|t| t.name.as_ref() == self.topic.as_bytes()) {
                for pd in &t.partitions {
                    let Some(&i) = index.get(&pd.partition) else { continue };
                    if pd.error_code != 0 {
                        ctx.rec.error(&error_name(pd.error_code));
                        if pd.error_code == 1 {
                            reset.push(pd.partition); // OFFSET_OUT_OF_RANGE
                        }
                        continue;
                    }
                    let Some(records) = pd.records.as_ref() else { continue };
                    let mut pos = self.positions[i].1;
                    let mut complete = 0usize;
                    for h in batches(records) {
                        complete += 1;
                        if h.next_offset() <= pos {
                            continue; // a batch we already have (fetch started inside it)
                        }
                        let e2e = cfg.e2e_since_ms.filter(|since| h.max_timestamp >= *since).map(|_| (wall - h.max_timestamp).max(0) as u64 * 1000);
                        ctx.rec.consumed(now, h.records.max(0) as u64, h.total_len as u64, e2e);
                        if let Some(b) = &self.budget {
                            b.fetch_sub(h.records.max(0) as i64, Ordering::Relaxed);
                        }
                        pos = h.next_offset();
                    }
                    if complete == 0 && !records.is_empty() {
                        stuck = true; // one batch is larger than the partition limit
                    }
                    self.positions[i].1 = pos;
                }
            }
            if stuck && partition_max < (64 << 20) {
                ctx.rec.error("PARTIAL_BATCH_GROW_FETCH");
                partition_max = partition_max.saturating_mul(2);
            }
            if !reset.is_empty() {
                let offsets = wire::list_offsets(&mut self.client, &self.topic, &reset, EARLIEST).await?;
                for (p, o) in offsets {
                    if let Some(&i) = index.get(&p) {
                        self.positions[i].1 = o;
                    }
                }
            }
            if let Some(publish) = &self.publish {
                // One lock per response, not per record or batch.
                let mut m = publish.lock().unwrap_or_else(|p| p.into_inner());
                m.extend(self.positions.iter().copied());
            }
        }
    }
}
