//! Consumer lag with a verdict, after Burrow's evaluation rules
//! (github.com/linkedin/Burrow/wiki/Consumer-Lag-Evaluation-Rules).
//!
//! Burrow looks at a window of a group's commits, each with the lag it had
//! then. Here the group's coordinator samples instead, every
//! `consumer.lag.sample.interval.ms`: each partition's committed offset and
//! the high watermark it knows (the partition's leader or a follower replica
//! on this broker). Sampling sees any client's group the same way, and it sees a
//! consumer that stopped: no commit is also a sample. The verdict of a
//! partition over its last `consumer.lag.window.samples` samples:
//!
//! - **REWIND**: the committed offset went back between two samples (a reset, or
//!   a consumer committing an older position).
//! - **OK**: any sample had no lag (Burrow's rule 1), or the window is not full yet.
//! - **STALLED**: the committed offset did not move across the window, lag > 0
//!   throughout, and the group still has members: they are alive but not
//!   committing progress (stuck, or not committing at all).
//! - **STOPPED**: the same with no member left: the consumers are gone (killed,
//!   or closed) and the lag stays.
//! - **WARNING**: the offset moves but the lag grew at no step smaller and ended
//!   larger than it began: consumers fall behind.
//! - else **OK**.
//!
//! A group's verdict is the worst of its partitions' (OK < WARNING < REWIND <
//! STALLED < STOPPED). Memory: per partition at most max(window, [`CHART_SAMPLES`])
//! samples of 24 bytes.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

/// Samples kept per partition at least, for the console's lag chart (five minutes
/// at the default interval).
pub const CHART_SAMPLES: usize = 60;

/// A partition's (or group's) lag status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Keeping up.
    Ok,
    /// Falling behind.
    Warning,
    /// The committed offset went back.
    Rewind,
    /// Members alive, offset not moving, lag > 0.
    Stalled,
    /// No member, offset not moving, lag > 0.
    Stopped,
}

impl Verdict {
    /// Every status, in order of severity.
    pub const ALL: [Verdict; 5] = [Verdict::Ok, Verdict::Warning, Verdict::Rewind, Verdict::Stalled, Verdict::Stopped];

    /// The name shown in the API, the CLI and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Warning => "WARNING",
            Verdict::Rewind => "REWIND",
            Verdict::Stalled => "STALLED",
            Verdict::Stopped => "STOPPED",
        }
    }
}

/// One sample of a partition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// The group's committed offset.
    pub committed: i64,
    /// The partition's high watermark, when this broker knows it.
    pub high_watermark: Option<i64>,
}

impl Sample {
    /// Records between the committed offset and the high watermark.
    pub fn lag(&self) -> Option<i64> {
        self.high_watermark.map(|hw| (hw - self.committed).max(0))
    }
}

/// The verdict over a window of samples (oldest first); `full` when it holds
/// `consumer.lag.window.samples` samples.
pub fn evaluate(window: &[Sample], full: bool, has_members: bool) -> Verdict {
    if window.windows(2).any(|w| w[1].committed < w[0].committed) {
        return Verdict::Rewind;
    }
    let lags: Vec<i64> = window.iter().filter_map(Sample::lag).collect();
    if !full || lags.len() < window.len() || lags.contains(&0) {
        return Verdict::Ok;
    }
    let (first, last) = (window[0], window[window.len() - 1]);
    if first.committed == last.committed {
        return if has_members { Verdict::Stalled } else { Verdict::Stopped };
    }
    if lags.windows(2).all(|w| w[1] >= w[0]) && lags[lags.len() - 1] > lags[0] {
        return Verdict::Warning;
    }
    Verdict::Ok
}

/// What one sample saw of a group.
pub struct ObservedGroup {
    /// Kafka's group state (Empty, Stable, ...).
    pub state: String,
    /// `consumer`, `connect`, ... or empty.
    pub protocol_type: String,
    /// Members now.
    pub members: usize,
    /// (topic, partition) -> (committed offset, high watermark if known).
    pub offsets: BTreeMap<(String, i32), (i64, Option<i64>)>,
}

struct TrackedGroup {
    state: String,
    protocol_type: String,
    members: usize,
    partitions: BTreeMap<(String, i32), VecDeque<Sample>>,
}

/// One point of a partition's lag history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryPoint {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// The committed offset.
    pub committed_offset: i64,
    /// The high watermark (null when unknown here).
    pub high_watermark: Option<i64>,
    /// Their difference (null when unknown here).
    pub lag: Option<i64>,
}

/// A partition's lag now, with its history and verdict.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartitionLag {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The committed offset at the last sample.
    pub committed_offset: i64,
    /// The high watermark at the last sample (null when unknown here).
    pub high_watermark: Option<i64>,
    /// Records behind at the last sample (null when unknown here).
    pub lag: Option<i64>,
    /// Offsets committed per second over the window.
    pub commit_rate: f64,
    /// Since when the committed offset has not moved (ms), as far as the history shows.
    pub last_commit_age_ms: Option<i64>,
    /// The verdict over the window.
    pub verdict: Verdict,
    /// The samples kept, oldest first.
    pub history: Vec<HistoryPoint>,
}

/// A group's lag now.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupLag {
    /// The group.
    pub group_id: String,
    /// Kafka's group state at the last sample.
    pub state: String,
    /// The group's protocol type.
    pub protocol_type: String,
    /// Members at the last sample.
    pub members: usize,
    /// The worst verdict of its partitions (OK without any).
    pub verdict: Verdict,
    /// Lag summed over the partitions whose lag is known.
    pub total_lag: i64,
    /// `consumer.lag.sample.interval.ms`.
    pub sample_interval_ms: u64,
    /// Per partition, by topic and partition.
    pub partitions: Vec<PartitionLag>,
}

/// The samples of every group this broker coordinates.
pub struct LagTracker {
    window: usize,
    keep: usize,
    interval_ms: u64,
    groups: BTreeMap<String, TrackedGroup>,
}

impl LagTracker {
    /// A tracker judging over `window` samples taken every `interval_ms`.
    pub fn new(window: usize, interval_ms: u64) -> LagTracker {
        LagTracker { window, keep: window.max(CHART_SAMPLES), interval_ms, groups: BTreeMap::new() }
    }

    /// Adds one sample of every group seen; groups not seen (deleted, or coordinated
    /// elsewhere now) and partitions without a committed offset any more are dropped.
    pub fn record(&mut self, at_ms: i64, seen: BTreeMap<String, ObservedGroup>) {
        self.groups.retain(|g, _| seen.contains_key(g));
        for (id, obs) in seen {
            let g = self.groups.entry(id).or_insert_with(|| TrackedGroup {
                state: String::new(),
                protocol_type: String::new(),
                members: 0,
                partitions: BTreeMap::new(),
            });
            g.state = obs.state;
            g.protocol_type = obs.protocol_type;
            g.members = obs.members;
            g.partitions.retain(|tp, _| obs.offsets.contains_key(tp));
            for (tp, (committed, high_watermark)) in obs.offsets {
                let samples = g.partitions.entry(tp).or_default();
                if samples.len() == self.keep {
                    samples.pop_front();
                }
                samples.push_back(Sample { at_ms, committed, high_watermark });
            }
        }
    }

    /// One group's lag (None: not coordinated here, or not sampled yet).
    pub fn group(&self, group: &str, now_ms: i64) -> Option<GroupLag> {
        self.groups.get(group).map(|g| self.view(group, g, now_ms))
    }

    /// Every group's lag.
    pub fn all(&self, now_ms: i64) -> Vec<GroupLag> {
        self.groups.iter().map(|(id, g)| self.view(id, g, now_ms)).collect()
    }

    fn view(&self, id: &str, g: &TrackedGroup, now_ms: i64) -> GroupLag {
        let partitions: Vec<PartitionLag> = g
            .partitions
            .iter()
            .filter_map(|((topic, partition), samples)| {
                let last = *samples.back()?;
                let skip = samples.len().saturating_sub(self.window);
                let window: Vec<Sample> = samples.iter().skip(skip).copied().collect();
                let first = window[0];
                let secs = (last.at_ms - first.at_ms) as f64 / 1000.0;
                let commit_rate = if secs > 0.0 { (last.committed - first.committed).max(0) as f64 / secs } else { 0.0 };
                // The oldest sample of the run at the current offset.
                let since = samples.iter().rev().take_while(|s| s.committed == last.committed).last().map(|s| s.at_ms);
                Some(PartitionLag {
                    topic: topic.clone(),
                    partition: *partition,
                    committed_offset: last.committed,
                    high_watermark: last.high_watermark,
                    lag: last.lag(),
                    commit_rate,
                    last_commit_age_ms: since.map(|t| (now_ms - t).max(0)),
                    verdict: evaluate(&window, window.len() >= self.window, g.members > 0),
                    history: samples
                        .iter()
                        .map(|s| HistoryPoint { at_ms: s.at_ms, committed_offset: s.committed, high_watermark: s.high_watermark, lag: s.lag() })
                        .collect(),
                })
            })
            .collect();
        GroupLag {
            group_id: id.to_string(),
            state: g.state.clone(),
            protocol_type: g.protocol_type.clone(),
            members: g.members,
            verdict: partitions.iter().map(|p| p.verdict).max().unwrap_or(Verdict::Ok),
            total_lag: partitions.iter().filter_map(|p| p.lag).sum(),
            sample_interval_ms: self.interval_ms,
            partitions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(points: &[(i64, i64)]) -> Vec<Sample> {
        points.iter().enumerate().map(|(i, (c, hw))| Sample { at_ms: i as i64 * 1000, committed: *c, high_watermark: Some(*hw) }).collect()
    }

    #[test]
    fn any_sample_without_lag_is_ok() {
        assert_eq!(evaluate(&w(&[(10, 20), (20, 20), (20, 30)]), true, true), Verdict::Ok);
    }

    #[test]
    fn an_offset_going_back_is_rewind_even_in_a_short_window() {
        assert_eq!(evaluate(&w(&[(10, 20), (5, 20)]), false, true), Verdict::Rewind);
    }

    #[test]
    fn a_still_offset_with_lag_is_stalled_with_members_and_stopped_without() {
        let still = w(&[(10, 20), (10, 20), (10, 25)]);
        assert_eq!(evaluate(&still, true, true), Verdict::Stalled);
        assert_eq!(evaluate(&still, true, false), Verdict::Stopped);
        assert_eq!(evaluate(&still, false, false), Verdict::Ok, "not judged before the window is full");
    }

    #[test]
    fn moving_offsets_with_growing_lag_warn() {
        assert_eq!(evaluate(&w(&[(10, 20), (12, 25), (14, 30)]), true, true), Verdict::Warning);
        assert_eq!(evaluate(&w(&[(10, 20), (15, 22), (20, 35)]), true, true), Verdict::Ok, "lag fell at one step");
    }

    #[test]
    fn unknown_high_watermarks_are_never_judged_lagging() {
        let s = vec![Sample { at_ms: 0, committed: 5, high_watermark: None }, Sample { at_ms: 1, committed: 5, high_watermark: None }];
        assert_eq!(evaluate(&s, true, false), Verdict::Ok);
    }

    #[test]
    fn the_tracker_keeps_bounded_history_and_judges_the_last_window() {
        let mut t = LagTracker::new(3, 1000);
        for i in 0..100 {
            let mut offsets = BTreeMap::new();
            offsets.insert(("t".to_string(), 0), (5, Some(9)));
            let obs = ObservedGroup { state: "Empty".into(), protocol_type: "consumer".into(), members: 0, offsets };
            t.record(i * 1000, BTreeMap::from([("g".to_string(), obs)]));
        }
        let g = t.group("g", 100_000).unwrap();
        assert_eq!(g.partitions[0].history.len(), CHART_SAMPLES);
        assert_eq!(g.verdict, Verdict::Stopped);
        assert_eq!(g.total_lag, 4);
        assert_eq!(g.partitions[0].last_commit_age_ms, Some(100_000 - 40_000));
        t.record(200_000, BTreeMap::new());
        assert!(t.group("g", 0).is_none(), "a group no longer seen is dropped");
    }
}
