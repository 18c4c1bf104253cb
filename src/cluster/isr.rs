//! ISR changes, proposed by partition leaders (Kafka's `Partition.maybeShrinkIsr`
//! / `maybeExpandIsr` and AlterPartition): every core looks at the partitions
//! it leads every [`CHECK_EVERY`] and sends the changes due to the active
//! controller (through its controller shard, which forwards when this node is
//! not the active controller). A change counts once committed and back in the
//! image — except an expansion, which the high watermark counts at once
//! (`shard::partition`); a refused change is dropped and re-derived next round.

use std::rc::Rc;
use std::time::Duration;

use crate::shard::request::{ControllerOp, ShardRequest, ShardResponse};
use crate::shard::CONTROLLER_SHARD;
use crate::xshard::XShard;

/// How often each core checks its leaders' ISRs.
pub const CHECK_EVERY: Duration = Duration::from_millis(200);

/// Starts the ISR checks of `x`'s core (cluster brokers only).
pub fn start(x: Rc<XShard>) {
    glommio::spawn_local(check_loop(x)).detach();
}

async fn check_loop(x: Rc<XShard>) {
    let shard = x.shard.clone();
    let lag = shard.cfg.replica_lag_time_max_ms;
    while !shard.stopping.get() {
        glommio::timer::sleep(CHECK_EVERY).await;
        for (tp, p) in shard.partitions() {
            let Some((leader_epoch, current_isr, mut new_isr)) = p.isr_change_wanted(lag) else { continue };
            let image = shard.image();
            // A fenced or stopping broker's fetches do not bring it back (the controller would refuse it).
            new_isr.retain(|r| current_isr.contains(r) || image.eligible_broker(*r));
            if new_isr == current_isr {
                continue;
            }
            let Some(topic_id) = image.topics.get(&tp.topic).map(|t| t.topic_id) else { continue };
            p.set_pending_isr(Some(new_isr.clone()));
            tracing::info!(topic = %tp.topic, partition = tp.partition, from = ?current_isr, to = ?new_isr, "proposing an ISR change");
            let op = ControllerOp::AlterPartition { topic_id, partition: tp.partition, leader: shard.cfg.broker_id, leader_epoch, current_isr, new_isr };
            let x = x.clone();
            glommio::spawn_local(async move {
                let res = match x.call(CONTROLLER_SHARD, ShardRequest::Controller(op)).await {
                    Ok(ShardResponse::AlterPartition(r)) => r,
                    Ok(_) => Err(crate::error::Error::ShardUnavailable),
                    Err(e) => Err(e),
                };
                if let Err(e) = res {
                    p.set_pending_isr(None);
                    crate::warn_limited!(topic = %tp.topic, partition = tp.partition, "ISR change refused: {e}");
                }
            })
            .detach();
        }
    }
}
