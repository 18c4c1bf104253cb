//! The admin HTTP listener (`admin.listener`, default `http://127.0.0.1:9644`):
//! Prometheus `/metrics`, the JSON admin API (`openapi.yaml`) and the web
//! console at `/`.
//!
//! It runs on shard 0's executor, in a task queue of its own with a small
//! share ([`ADMIN_SHARES`]), so a scrape or a console never delays Kafka
//! requests much. Nothing here is on the data path: the shards keep plain
//! counters (`metrics/`), and a scrape asks each for a snapshot through
//! `xshard`; the API calls the Kafka handlers in-process.
//!
//! - [`server`]: connections (hyper over glommio), limits and timeouts;
//! - [`api`]: routes, JSON and error answers, the console's files;
//! - [`exposition`]: the metrics' names and the text format;
//! - [`overview`], [`records`], [`groups`]: the API's views and actions;
//! - [`lag`]: consumer lag and its Burrow-style verdict; [`rates`]: throughput now.

pub mod api;
pub mod exposition;
pub mod groups;
pub mod lag;
pub mod overview;
pub mod rates;
pub mod records;
pub mod server;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::net::TcpListener;

use crate::handlers::Ctx;
use crate::metrics::{ShardSnapshot, TopicTraffic};
use crate::shard::request::{ShardRequest, ShardResponse};
use api::Admin;

/// The admin task queue's share of shard 0 (Kafka traffic runs in the default queue, 1000).
pub const ADMIN_SHARES: usize = 50;

/// Starts the admin listener's tasks on this shard (shard 0): the server, the
/// rate sampler and the lag sampler. They end when the broker stops.
pub fn start(ctx: Rc<Ctx>, listener: TcpListener) {
    let cfg = ctx.shard().cfg.clone();
    let admin = Rc::new(Admin {
        ctx,
        lag: RefCell::new(lag::LagTracker::new(cfg.consumer_lag_window_samples, cfg.consumer_lag_sample_interval_ms)),
        rates: RefCell::new(rates::Rates::default()),
    });
    let tq = glommio::executor().create_task_queue(glommio::Shares::Static(ADMIN_SHARES), glommio::Latency::NotImportant, "admin");
    let spawn = |fut: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>| match glommio::spawn_local_into(fut, tq) {
        Ok(t) => {
            t.detach();
        }
        Err(e) => tracing::error!("starting an admin listener task failed: {e}"),
    };
    spawn(Box::pin(server::serve(admin.clone(), listener)));
    let a = admin.clone();
    spawn(Box::pin(every(a.clone(), rates::RATE_SAMPLE_INTERVAL, move || {
        let a = a.clone();
        async move { sample_rates(&a).await }
    })));
    let a = admin;
    spawn(Box::pin(every(a.clone(), Duration::from_millis(cfg.consumer_lag_sample_interval_ms), move || {
        let a = a.clone();
        async move { groups::sample_lag(&a).await }
    })));
}

/// Runs `job` every `period` until the broker stops.
async fn every<F, Fut>(admin: Rc<Admin>, period: Duration, job: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    while !admin.ctx.shard().stopping.get() {
        job().await;
        glommio::timer::sleep(period).await;
    }
}

/// Every shard's snapshot, with its partitions' gauges when `partitions` (a shard
/// that does not answer is left out).
pub async fn gather(admin: &Admin, partitions: bool) -> Vec<ShardSnapshot> {
    admin
        .ctx
        .x
        .broadcast(|| ShardRequest::Metrics { partitions })
        .await
        .into_iter()
        .filter_map(|r| match r {
            Ok(ShardResponse::Metrics(s)) => Some(*s),
            _ => None,
        })
        .collect()
}

/// The traffic totals per topic over every shard.
pub fn topic_totals(shards: &[ShardSnapshot]) -> BTreeMap<String, TopicTraffic> {
    let mut out: BTreeMap<String, TopicTraffic> = BTreeMap::new();
    for s in shards {
        for (t, c) in &s.topics {
            out.entry(t.clone()).or_default().add(c);
        }
    }
    out
}

async fn sample_rates(admin: &Admin) {
    let shards = gather(admin, false).await;
    admin.rates.borrow_mut().record(Instant::now(), topic_totals(&shards));
}

/// The text of a `/metrics` scrape.
pub async fn scrape(admin: &Admin) -> String {
    let shards = gather(admin, true).await;
    let shard = admin.ctx.shard();
    let image = shard.image();
    let controller_active = shard.quorum().is_none_or(|q| q.is_active());
    let offline = controller_active.then(|| image.topics.values().flat_map(|t| &t.partitions).filter(|p| p.leader < 0).count());
    let quorum = match shard.quorum() {
        Some(_) => match admin.ctx.x.call(crate::shard::CONTROLLER_SHARD, ShardRequest::DescribeQuorum).await {
            Ok(ShardResponse::Quorum(Ok(q))) => Some((q.leader_id, q.leader_epoch, q.high_watermark)),
            _ => None,
        },
        None => None,
    };
    let lag = admin.lag.borrow().all(shard.cfg.clock.now_ms());
    exposition::encode(&exposition::Scrape {
        shards: &shards,
        controller_active,
        offline_partitions: offline,
        metadata_version: image.version,
        quorum,
        lag: &lag,
    })
}
