//! Controlled shutdown (Kafka's, KRaft flavour): a broker told to stop
//! (SIGTERM/SIGINT, `controlled.shutdown.enable`) first asks the active
//! controller, through its heartbeats (`want_shutdown`), to move every
//! leadership it holds to another in-sync replica and to take it out of the
//! ISRs; it stops only once the controller says it leads nothing
//! (`should_shutdown`) — or after `controlled.shutdown.max.retries` x
//! `controlled.shutdown.retry.backoff.ms`, saying so. Clients then see one
//! NOT_LEADER_OR_FOLLOWER per partition and find the new leader at once,
//! instead of waiting `broker.session.timeout.ms` for the broker to be fenced.
//!
//! A voter that leads the metadata quorum hands that leadership to the most
//! caught-up other voter before it stops, so the cluster does not wait an
//! election timeout without an active controller.

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::node::ClusterNode;
use crate::sync::Notify;

/// The broker's side of its controlled shutdown, read by the heartbeat loop.
#[derive(Default)]
pub struct ShutdownState {
    /// Stopping: heartbeats carry `want_shutdown`.
    pub(super) wanted: Cell<bool>,
    /// The controller answered `should_shutdown`.
    pub(super) granted: Cell<bool>,
    /// Woken when `granted` is set.
    pub(super) changed: Notify,
}

/// How long a quorum leader waits for its leadership to move before it stops anyway.
const HANDOFF_WAIT: Duration = Duration::from_secs(5);

impl ClusterNode {
    /// Runs the controlled shutdown (see the module doc); returns when this
    /// node may stop. Called once, on the controller shard, before any shard
    /// stops serving.
    pub async fn controlled_shutdown(&self) {
        let cfg = &self.shard.cfg;
        if cfg.process_roles.broker && cfg.controlled_shutdown_enable {
            let within = Duration::from_millis(cfg.controlled_shutdown_retry_backoff_ms.saturating_mul(u64::from(cfg.controlled_shutdown_max_retries.max(1))));
            let started = Instant::now();
            tracing::info!(broker = self.node_id, "controlled shutdown: asking the controller to move this broker's leaderships");
            self.shutdown.wanted.set(true);
            self.wake_heartbeat.notify_all();
            let deadline = started + within;
            while !self.shutdown.granted.get() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let changed = self.shutdown.changed.wait();
                futures_lite::future::or(changed, glommio::timer::sleep(left)).await;
            }
            if self.shutdown.granted.get() {
                tracing::info!(broker = self.node_id, took = ?started.elapsed(), "controlled shutdown: this broker leads nothing; stopping");
            } else {
                tracing::warn!(broker = self.node_id, ?within,
                    "controlled shutdown did not complete within controlled.shutdown.max.retries x controlled.shutdown.retry.backoff.ms; stopping anyway (its partitions move when its session expires)");
            }
        }
        self.hand_off_quorum_leadership().await;
    }

    /// A quorum leader passes leadership on before it stops (see the module doc).
    async fn hand_off_quorum_leadership(&self) {
        let deadline = Instant::now() + HANDOFF_WAIT;
        let mut asked = None;
        while self.leader() == Some(self.node_id) && Instant::now() < deadline {
            if asked.is_none_or(|t: Instant| t.elapsed() > Duration::from_secs(1)) {
                if let Some(to) = self.transfer_quorum_leadership() {
                    tracing::info!(to = super::node_id(to), "handing the metadata quorum's leadership over before stopping");
                }
                asked = Some(Instant::now());
            }
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
        if self.leader() == Some(self.node_id) {
            tracing::warn!("the metadata quorum's leadership did not move before stopping; the other voters elect a leader after their election timeout");
        }
    }
}
