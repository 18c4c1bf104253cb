//! A partition replica on its owner shard: its log, the high watermark above
//! it, and this broker's part in the partition (leader, follower, or neither),
//! taken from the metadata image.
//!
//! Kafka's rules (`Partition.scala`), kept here:
//! - **Leader.** The high watermark is the smallest log end offset over the ISR
//!   (this replica's own included), and a replica being added counts at once
//!   (an expansion in flight); it never moves back. With more than one replica
//!   it does not move at all while the ISR is smaller than `min.insync.replicas`
//!   (KIP-966 part 1), so nothing is committed that fewer replicas hold. A
//!   follower's progress is what its fetches say: fetching from offset N means
//!   it holds everything below N. It is caught up when it fetched from the
//!   leader's log end (or from where the log end was at its previous fetch);
//!   one not caught up for `replica.lag.time.max.ms` is proposed out of the ISR
//!   (by `cluster::isr`), one at the high watermark and past the start of this
//!   leader epoch is proposed back in.
//! - **Follower.** The high watermark is the leader's (from fetch responses),
//!   capped at the local log end.
//! - **acks=all** waits until the high watermark passes the records, or the ISR
//!   falls below `min.insync.replicas` (NOT_ENOUGH_REPLICAS_AFTER_APPEND), or
//!   leadership moves (NOT_LEADER_OR_FOLLOWER), or the request's timeout.
//!
//! On a single broker the partition is led here with an ISR of one, so the
//! high watermark follows the log end as each write completes.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures::FutureExt;

use crate::error::{Error, Result};
use crate::log::{PartitionLog, ReadSlice};
use crate::metadata::PartitionMeta;
use crate::sync::Notify;

/// What a follower's fetches say about it, on the leader.
#[derive(Debug, Clone)]
struct FollowerProgress {
    /// Its broker id.
    id: i32,
    /// Its log end offset (the offset it last fetched from); -1 until it fetches.
    log_end: i64,
    /// When it was last caught up with the leader's log end (ms).
    last_caught_up_ms: i64,
    /// When it last fetched (ms) and the leader's log end then.
    last_fetch_ms: i64,
    leader_end_at_last_fetch: i64,
}

/// The leader's view of its partition.
#[derive(Debug, Clone)]
struct Leadership {
    epoch: i32,
    replicas: Vec<i32>,
    /// The ISR committed in the image.
    isr: Vec<i32>,
    /// An ISR change sent to the controller and not yet in the image.
    pending_isr: Option<Vec<i32>>,
    /// The log end when this leader epoch began: a follower rejoins the ISR only past it.
    epoch_start_offset: i64,
    followers: Vec<FollowerProgress>,
}

impl Leadership {
    /// The ISR the high watermark counts: the committed one, plus replicas a
    /// pending expansion adds (a pending shrink counts only once committed).
    fn maximal_isr(&self) -> Vec<i32> {
        let mut isr = self.isr.clone();
        if let Some(p) = &self.pending_isr {
            isr.extend(p.iter().filter(|r| !self.isr.contains(r)));
        }
        isr
    }
}

/// This broker's part in the partition.
#[derive(Debug, Clone)]
enum Role {
    /// Not yet told by an image (just opened).
    Unknown,
    /// This broker leads.
    Leader(Leadership),
    /// Another broker (`leader`, -1 for none) leads at `epoch`.
    Follower { leader: i32, epoch: i32 },
}

/// An ISR change a leader wants: (leader epoch, current ISR, new ISR).
pub type IsrChange = (i32, Vec<i32>, Vec<i32>);

/// One partition replica and its high watermark.
pub struct Partition {
    /// The partition's log on this broker (segments, indexes, producer state).
    pub log: Rc<PartitionLog>,
    /// This broker's id.
    me: i32,
    high_watermark: Cell<i64>,
    /// The high watermark last checkpointed.
    checkpointed: Cell<i64>,
    /// Woken whenever the high watermark moves (fetch long-polls wait on it).
    pub hw_moved: Notify,
    /// Woken whenever the log end moves (followers' fetches long-poll on it).
    pub log_end_moved: Notify,
    /// Woken on every change of role or ISR (acks=all waits re-check).
    pub changed: Notify,
    role: RefCell<Role>,
    /// This replica is one a reassignment is adding: its fetches copy the log
    /// and count against the replication throttle (`shard::throttle`).
    reassignment_copy: Cell<bool>,
}

impl Partition {
    /// Wraps an open log of broker `me`. The high watermark starts at
    /// `high_watermark` (the checkpointed one, capped at the log end); the role
    /// comes with the first [`Partition::apply_image`].
    pub fn new(log: Rc<PartitionLog>, me: i32, high_watermark: i64) -> Rc<Partition> {
        let hw = high_watermark.min(log.log_end_offset()).max(log.log_start_offset());
        log.publish_high_watermark(hw);
        let p = Rc::new(Partition {
            high_watermark: Cell::new(hw),
            checkpointed: Cell::new(hw),
            log,
            me,
            hw_moved: Notify::default(),
            log_end_moved: Notify::default(),
            changed: Notify::default(),
            role: RefCell::new(Role::Unknown),
            reassignment_copy: Cell::new(false),
        });
        let weak = Rc::downgrade(&p);
        p.log.set_on_written(Box::new(move |_end| {
            if let Some(p) = weak.upgrade() {
                p.log_end_moved.notify_all();
                p.maybe_advance_high_watermark();
            }
        }));
        p
    }

    fn now_ms(&self) -> i64 {
        self.log.now_ms()
    }

    fn min_isr(&self) -> usize {
        self.log.config().min_insync_replicas.max(1) as usize
    }

    /// Whether a reassignment is adding this replica (its catch-up is throttled).
    pub fn reassignment_copy(&self) -> bool {
        self.reassignment_copy.get()
    }

    /// Takes this broker's part from the image: becomes leader (a new leader
    /// epoch: the log stamps it and starts it in its epoch cache), follower, or
    /// keeps leading with the committed ISR. Answers Some(true) when it became
    /// leader, Some(false) when it stopped leading, None otherwise. Without
    /// `may_lead` (a cluster broker not yet caught up with the metadata log) a
    /// partition the image says it leads is served by nobody here yet.
    pub fn apply_image(&self, meta: &PartitionMeta, may_lead: bool) -> Option<bool> {
        self.reassignment_copy.set(meta.adding.contains(&self.me));
        let leader = served_leader(meta.leader, self.me, may_lead);
        let now = self.now_ms();
        let mut stopped_leading = false;
        let became_leader = {
            let mut role = self.role.borrow_mut();
            match &mut *role {
                Role::Leader(l) if leader == self.me && l.epoch == meta.leader_epoch => {
                    l.replicas = meta.replicas.clone();
                    if l.isr != meta.isr {
                        // Counted however the ISR changed: the leader's AlterPartition,
                        // or the controller dropping a fenced or stopping broker.
                        crate::metrics::with(|m| m.isr_changed(meta.isr.len() < l.isr.len()));
                        l.isr = meta.isr.clone();
                        l.pending_isr = None;
                    }
                    l.followers.retain(|f| meta.replicas.contains(&f.id));
                    for &r in meta.replicas.iter().filter(|&&r| r != self.me) {
                        if !l.followers.iter().any(|f| f.id == r) {
                            l.followers.push(FollowerProgress { id: r, log_end: -1, last_caught_up_ms: 0, last_fetch_ms: 0, leader_end_at_last_fetch: -1 });
                        }
                    }
                    false
                }
                _ if leader == self.me => {
                    let followers = meta
                        .replicas
                        .iter()
                        .filter(|&&r| r != self.me)
                        .map(|&r| FollowerProgress {
                            id: r,
                            log_end: -1,
                            // Kafka: in-sync followers start caught up, so a new leader
                            // does not shrink the ISR before they had time to fetch.
                            last_caught_up_ms: if meta.isr.contains(&r) { now } else { 0 },
                            last_fetch_ms: 0,
                            leader_end_at_last_fetch: -1,
                        })
                        .collect();
                    *role = Role::Leader(Leadership {
                        epoch: meta.leader_epoch,
                        replicas: meta.replicas.clone(),
                        isr: meta.isr.clone(),
                        pending_isr: None,
                        epoch_start_offset: self.log.log_end_offset(),
                        followers,
                    });
                    true
                }
                _ => {
                    stopped_leading = matches!(*role, Role::Leader(_));
                    *role = Role::Follower { leader, epoch: meta.leader_epoch };
                    false
                }
            }
        };
        if became_leader {
            if let Err(e) = self.log.become_leader(meta.leader_epoch) {
                crate::error_limited!(topic = %self.log.topic, partition = self.log.partition, "recording leader epoch {} failed: {e}", meta.leader_epoch);
            }
            tracing::info!(topic = %self.log.topic, partition = self.log.partition, epoch = meta.leader_epoch, isr = ?meta.isr, "leading");
        }
        self.changed.notify_all();
        self.maybe_advance_high_watermark();
        match (became_leader, stopped_leading) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }

    /// This replica's gauges for `/metrics` (under-replicated and under-min-ISR
    /// are a leader's view, as in Kafka).
    pub fn gauges(&self) -> crate::metrics::PartitionGauges {
        let (leader, under_replicated, under_min_isr) = match &*self.role.borrow() {
            Role::Leader(l) => (true, l.isr.len() < l.replicas.len(), l.isr.len() < self.min_isr()),
            _ => (false, false, false),
        };
        crate::metrics::PartitionGauges {
            topic: self.log.topic.clone(),
            partition: self.log.partition,
            size_bytes: self.log.size_bytes(),
            log_start_offset: self.log.log_start_offset(),
            log_end_offset: self.log.log_end_offset(),
            high_watermark: self.high_watermark(),
            leader,
            under_replicated,
            under_min_isr,
        }
    }

    /// Everything below it is committed and readable by consumers.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.get()
    }

    /// The leader epoch when this broker leads.
    pub fn leader_epoch(&self) -> Option<i32> {
        match &*self.role.borrow() {
            Role::Leader(l) => Some(l.epoch),
            _ => None,
        }
    }

    /// The leader and epoch when another broker leads (or none, -1).
    pub fn following(&self) -> Option<(i32, i32)> {
        match &*self.role.borrow() {
            Role::Follower { leader, epoch } => Some((*leader, *epoch)),
            _ => None,
        }
    }

    /// This broker's leader epoch, checked against a client's (KIP-320): -1 skips
    /// the check; older is FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH; not
    /// leading is NOT_LEADER_OR_FOLLOWER.
    pub fn check_leader(&self, current_leader_epoch: i32) -> Result<i32> {
        let epoch = self.leader_epoch().ok_or(Error::NotLeaderOrFollower)?;
        if current_leader_epoch >= 0 && current_leader_epoch < epoch {
            return Err(Error::FencedLeaderEpoch(current_leader_epoch));
        }
        if current_leader_epoch > epoch {
            return Err(Error::UnknownLeaderEpoch(current_leader_epoch));
        }
        Ok(epoch)
    }

    /// Before an acks=all append: the ISR must hold `min.insync.replicas`.
    pub fn check_enough_replicas(&self) -> Result<()> {
        let Role::Leader(l) = &*self.role.borrow() else { return Err(Error::NotLeaderOrFollower) };
        let min = self.min_isr();
        if l.isr.len() < min {
            return Err(Error::NotEnoughReplicas { isr: l.isr.len() as i32, min: min as i32 });
        }
        Ok(())
    }

    /// Leader: moves the high watermark to the smallest log end over the
    /// (maximal) ISR, unless the ISR is below `min.insync.replicas` on a
    /// replicated partition. Never moves it back.
    fn maybe_advance_high_watermark(&self) {
        let to = {
            let Role::Leader(l) = &*self.role.borrow() else { return };
            let isr = l.maximal_isr();
            if l.replicas.len() > 1 && isr.len() < self.min_isr() {
                return;
            }
            let mut hw = self.log.log_end_offset();
            for f in l.followers.iter().filter(|f| isr.contains(&f.id)) {
                hw = hw.min(f.log_end);
            }
            hw
        };
        self.advance_high_watermark(to);
    }

    /// Moves the high watermark up (never down) and wakes long-polls.
    fn advance_high_watermark(&self, to: i64) {
        if to > self.high_watermark.get() {
            self.high_watermark.set(to);
            self.log.publish_high_watermark(to);
            self.hw_moved.notify_all();
        }
    }

    /// Writes the high watermark to disk if it moved since the last time.
    pub fn checkpoint_high_watermark(&self) -> std::io::Result<()> {
        let hw = self.high_watermark();
        if hw != self.checkpointed.get() {
            self.log.checkpoint_high_watermark(hw)?;
            self.checkpointed.set(hw);
        }
        Ok(())
    }

    /// Follower: the leader's high watermark, from a fetch response (capped at the local log end).
    pub fn follower_high_watermark(&self, leader_hw: i64) {
        self.advance_high_watermark(leader_hw.min(self.log.log_end_offset()));
    }

    /// Leader: a follower fetched from `fetch_offset` (so holds everything below it).
    fn record_follower_fetch(&self, replica: i32, fetch_offset: i64) -> Result<()> {
        let now = self.now_ms();
        let leader_end = self.log.log_end_offset();
        {
            let mut role = self.role.borrow_mut();
            let Role::Leader(l) = &mut *role else { return Err(Error::NotLeaderOrFollower) };
            let f = l.followers.iter_mut().find(|f| f.id == replica).ok_or(Error::NotLeaderOrFollower)?;
            f.log_end = fetch_offset;
            if fetch_offset >= leader_end {
                f.last_caught_up_ms = now;
            } else if fetch_offset >= f.leader_end_at_last_fetch && f.leader_end_at_last_fetch >= 0 {
                f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
            }
            f.last_fetch_ms = now;
            f.leader_end_at_last_fetch = leader_end;
        }
        self.maybe_advance_high_watermark();
        Ok(())
    }

    /// Leader: the ISR change due now, if any and none is in flight — followers
    /// not caught up for `lag_ms` out, followers at the high watermark and past
    /// this epoch's start in.
    pub fn isr_change_wanted(&self, lag_ms: u64) -> Option<IsrChange> {
        let now = self.now_ms();
        let hw = self.high_watermark();
        let role = self.role.borrow();
        let Role::Leader(l) = &*role else { return None };
        if l.pending_isr.is_some() {
            return None;
        }
        let mut new: Vec<i32> =
            l.isr.iter().copied().filter(|&r| r == self.me || l.followers.iter().any(|f| f.id == r && now - f.last_caught_up_ms <= lag_ms as i64)).collect();
        for f in &l.followers {
            // Only a follower that is fetching now: a dead one's last fetch may have reached the
            // (frozen) high watermark, and proposing it would block every other expansion.
            let fetching = now - f.last_fetch_ms <= lag_ms as i64 && now - f.last_caught_up_ms <= lag_ms as i64;
            if !new.contains(&f.id) && !l.isr.contains(&f.id) && fetching && f.log_end >= hw && f.log_end >= l.epoch_start_offset {
                new.push(f.id);
            }
        }
        (new != l.isr).then(|| (l.epoch, l.isr.clone(), new))
    }

    /// Leader: an ISR change is on its way to the controller (Some) or failed (None).
    pub fn set_pending_isr(&self, pending: Option<Vec<i32>>) {
        if let Role::Leader(l) = &mut *self.role.borrow_mut() {
            l.pending_isr = pending;
        }
        self.maybe_advance_high_watermark();
    }

    /// acks=all: waits until the high watermark reaches `end` (the offset after
    /// the records), at most `timeout`, while this broker leads at `epoch`.
    pub async fn wait_committed(&self, end: i64, epoch: i32, timeout: Duration) -> Result<()> {
        let deadline = glommio::timer::sleep(timeout).fuse();
        futures::pin_mut!(deadline);
        loop {
            // Take the notifications first, so a change between the check and the wait is seen.
            let (hw_moved, changed) = (self.hw_moved.wait(), self.changed.wait());
            {
                let role = self.role.borrow();
                let Role::Leader(l) = &*role else { return Err(Error::NotLeaderOrFollower) };
                if l.epoch != epoch {
                    return Err(Error::NotLeaderOrFollower);
                }
                let min = self.min_isr();
                if l.replicas.len() > 1 && l.isr.len() < min {
                    return Err(Error::NotEnoughReplicasAfterAppend { isr: l.isr.len() as i32, min: min as i32 });
                }
                if self.high_watermark() >= end {
                    return Ok(());
                }
            }
            futures::select! {
                _ = hw_moved.fuse() => {}
                _ = changed.fuse() => {}
                _ = deadline => {
                    return Err(Error::RequestTimedOut(format!("records not replicated to the ISR within the request's {} ms", timeout.as_millis())));
                }
            }
        }
    }

    /// The last stable offset: below the first open transaction, at most the high watermark.
    pub fn last_stable_offset(&self) -> i64 {
        self.log.last_stable_offset(self.high_watermark())
    }

    /// A fetch read, bounded by the high watermark (or the LSO for read_committed).
    pub async fn read(&self, offset: i64, max_bytes: usize, read_committed: bool) -> Result<ReadSlice> {
        self.log.read(offset, max_bytes, read_committed, self.high_watermark()).await
    }

    /// A follower's fetch, on the leader: checks its leader epoch, tells it where
    /// its log diverged (its last fetched epoch ends earlier here, or is unknown),
    /// records its progress, and reads up to the log end (followers replicate
    /// what is not committed yet). The slice reports the real high watermark.
    pub async fn read_for_follower(
        &self,
        replica: i32,
        offset: i64,
        max_bytes: usize,
        current_leader_epoch: i32,
        last_fetched_epoch: i32,
    ) -> Result<ReadSlice> {
        self.check_leader(current_leader_epoch)?;
        if last_fetched_epoch >= 0 {
            let (epoch, mut end) = self.log.end_offset_for_epoch(last_fetched_epoch);
            if epoch < last_fetched_epoch || end < offset {
                if epoch < 0 {
                    // No epoch history here: the follower falls back to its high watermark,
                    // and this end (not Kafka's -1, which the wire cannot tell from "none") says so.
                    end = self.high_watermark();
                }
                return Ok(ReadSlice {
                    data: None,
                    cached: None,
                    high_watermark: self.high_watermark(),
                    log_start_offset: self.log.log_start_offset(),
                    last_stable_offset: self.last_stable_offset(),
                    aborted: None,
                    diverging_epoch: Some((epoch, end)),
                });
            }
        }
        self.record_follower_fetch(replica, offset)?;
        let mut slice = self.log.read(offset, max_bytes, false, self.log.log_end_offset()).await?;
        slice.high_watermark = self.high_watermark();
        slice.last_stable_offset = self.last_stable_offset();
        Ok(slice)
    }

    /// Follower: cuts the log back to `offset` after a divergence (or an unclean
    /// election), and the high watermark with it.
    pub async fn truncate_to(&self, offset: i64) -> Result<i64> {
        let end = self.log.truncate_to(offset).await?;
        if self.high_watermark.get() > end {
            self.high_watermark.set(end);
            self.log.publish_high_watermark(end);
        }
        self.log_end_moved.notify_all();
        Ok(end)
    }

    /// DeleteRecords up to `offset` (-1: the high watermark); waits while the
    /// cleaner is swapping a segment of this log in.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64> {
        self.log.delete_records_before(offset, self.high_watermark()).await
    }

    /// The topic was deleted: refuse appends and wake long-polls so they answer.
    pub fn mark_deleted(&self) {
        self.log.mark_deleted();
        self.hw_moved.notify_all();
        self.log_end_moved.notify_all();
        self.changed.notify_all();
    }
}

/// The leader of a partition whose image names `leader`, as broker `me`
/// serves it and tells clients: `leader`, except `me` itself while it may not
/// lead (`Shard::may_lead`: a cluster broker not yet caught up since its
/// start, whose image may be stale). Then nobody here serves as that leader,
/// so it is no leader (-1) to the partition and to Metadata alike.
pub fn served_leader(leader: i32, me: i32, may_lead: bool) -> i32 {
    if leader == me && !may_lead {
        -1
    } else {
        leader
    }
}
