//! The broker's side of its lifecycle (Kafka's `BrokerLifecycleManager`):
//! register with the active controller, then heartbeat every
//! `broker.heartbeat.interval.ms`, reporting the metadata offset applied here.
//! A heartbeat refused with STALE_BROKER_EPOCH (the controller fenced and
//! forgot this registration, or another process registered the same id) makes
//! it register again; a stopping broker's heartbeats ask for its controlled
//! shutdown ([`super::shutdown`]); a registration refused with INCONSISTENT_CLUSTER_ID stops
//! the process: its data directory belongs to another cluster.

use std::rc::Rc;
use std::time::Duration;

use super::node::ClusterNode;
use super::rpc::{ControllerRequest, ControllerResponse};
use crate::error::Error;

impl ClusterNode {
    /// Registers and heartbeats until the broker stops.
    pub(super) async fn broker_loop(self: Rc<Self>) {
        let cfg = self.shard.cfg.clone();
        let interval = Duration::from_millis(cfg.broker_heartbeat_interval_ms.max(1));
        let incarnation_id = crate::shard::incarnation_id();
        let (host, port) = self.shard.advertised.clone();
        while !self.is_stopping() {
            let reg = ControllerRequest::BrokerRegistration {
                broker_id: self.node_id,
                incarnation_id,
                host: host.clone(),
                port,
                rack: cfg.broker_rack.clone(),
                shards: self.shard.nr_shards as u32,
                clean_shutdown: self.shard.started_clean(),
            };
            let epoch = match self.call_controller(&reg, interval * 2).await {
                Ok(ControllerResponse::Registered { epoch }) => epoch,
                Ok(ControllerResponse::Error(e)) => {
                    let e: Error = e.into();
                    if e.code() == Error::InconsistentClusterId(String::new()).code() {
                        tracing::error!("the controller refused this broker: {e}; stopping");
                        std::process::exit(1);
                    }
                    crate::warn_limited!("broker registration refused: {e}");
                    glommio::timer::sleep(interval).await;
                    continue;
                }
                _ => {
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            tracing::info!(broker = self.node_id, epoch, "registered with the controller");
            let mut fenced = true;
            while !self.is_stopping() {
                let want_shutdown = self.shutdown.wanted.get();
                let hb = ControllerRequest::BrokerHeartbeat { broker_id: self.node_id, epoch, metadata_offset: self.applied(), want_shutdown };
                match self.call_controller(&hb, interval * 2).await {
                    Ok(ControllerResponse::Heartbeat { fenced: f, should_shutdown }) => {
                        if fenced && !f {
                            tracing::info!(broker = self.node_id, epoch, "unfenced: serving as a cluster member");
                        }
                        fenced = f;
                        if want_shutdown && should_shutdown && !self.shutdown.granted.get() {
                            self.shutdown.granted.set(true);
                            self.shutdown.changed.notify_all();
                        }
                    }
                    Ok(ControllerResponse::Error(e)) => {
                        crate::warn_limited!("heartbeat refused ({}), registering again", Error::from(e));
                        break;
                    }
                    _ => {}
                }
                // A fenced broker asks again soon: it is unfenced once caught up;
                // a stopping one too: it waits for the controller's go.
                let wait = if fenced || self.shutdown.wanted.get() { interval.min(Duration::from_millis(50)) } else { interval };
                let woken = self.wake_heartbeat.wait();
                futures_lite::future::or(woken, glommio::timer::sleep(wait)).await;
            }
        }
    }
}
