//! Throughput now: the traffic totals of the last few seconds (sampled every
//! [`RATE_SAMPLE_INTERVAL`] by the admin listener's sampler), as rates per second
//! for the console's overview and topic list.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::metrics::TopicTraffic;

/// How often totals are sampled.
pub const RATE_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Samples kept: rates are over the last (this - 1) intervals.
const KEPT: usize = 6;

/// Rates per second over the samples kept.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct RateView {
    /// Producer bytes appended per second.
    pub bytes_in_per_sec: f64,
    /// Consumer bytes sent per second.
    pub bytes_out_per_sec: f64,
    /// Records appended per second.
    pub records_in_per_sec: f64,
    /// Records sent to consumers per second.
    pub records_out_per_sec: f64,
}

/// The last few samples of per-topic totals.
#[derive(Default)]
pub struct Rates {
    samples: VecDeque<(Instant, BTreeMap<String, TopicTraffic>)>,
}

impl Rates {
    /// Adds the broker's totals now.
    pub fn record(&mut self, at: Instant, totals: BTreeMap<String, TopicTraffic>) {
        if self.samples.len() == KEPT {
            self.samples.pop_front();
        }
        self.samples.push_back((at, totals));
    }

    /// Rates of one topic, or of all topics (None).
    pub fn view(&self, topic: Option<&str>) -> RateView {
        let (Some((t0, first)), Some((t1, last))) = (self.samples.front(), self.samples.back()) else { return RateView::default() };
        let secs = t1.duration_since(*t0).as_secs_f64();
        if secs <= 0.0 {
            return RateView::default();
        }
        let total = |m: &BTreeMap<String, TopicTraffic>| match topic {
            Some(t) => m.get(t).copied().unwrap_or_default(),
            None => m.values().fold(TopicTraffic::default(), |mut a, b| {
                a.add(b);
                a
            }),
        };
        let (a, b) = (total(first), total(last));
        let rate = |x: u64, y: u64| y.saturating_sub(x) as f64 / secs;
        RateView {
            bytes_in_per_sec: rate(a.bytes_in, b.bytes_in),
            bytes_out_per_sec: rate(a.bytes_out, b.bytes_out),
            records_in_per_sec: rate(a.records_in, b.records_in),
            records_out_per_sec: rate(a.records_out, b.records_out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_over_the_span_kept() {
        let mut r = Rates::default();
        let t0 = Instant::now();
        for i in 0..10u64 {
            let mut m = BTreeMap::new();
            m.insert("a".to_string(), TopicTraffic { bytes_in: i * 100, ..Default::default() });
            m.insert("b".to_string(), TopicTraffic { bytes_in: i * 10, ..Default::default() });
            r.record(t0 + Duration::from_secs(i), m);
        }
        assert_eq!(r.view(Some("a")).bytes_in_per_sec, 100.0);
        assert_eq!(r.view(None).bytes_in_per_sec, 110.0);
        assert_eq!(r.view(Some("none")).bytes_in_per_sec, 0.0);
    }
}
