//! Which shard of this broker holds each of its partition replicas, and routing.
//!
//! Placement is local to a broker: it depends on this broker's shard count, and
//! another broker holding a replica of the same partition places it by its own
//! cores. So it is not in the replicated image but in a table of its own,
//! `<log.dirs>/shard-placement.json`, kept so a restart serves every partition
//! from the shard it had. New partitions go to the shard with the fewest. When
//! `shard.cores` changes, partitions of shards that no longer exist move to the
//! least loaded ones and the table is rebalanced (at most one partition apart);
//! partition directories do not depend on the shard, so nothing moves on disk.
//!
//! [`Route`] is what a handler needs to know about a partition: served by a
//! shard here, led by another broker, or unknown.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::image::MetadataImage;

/// The placement table's file under `log.dirs`.
pub const PLACEMENT_FILE: &str = "shard-placement.json";

/// Where a partition is served from, seen from this broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// This broker leads it; the shard that holds it.
    Local(usize),
    /// Another broker (this id) leads it: NOT_LEADER_OR_FOLLOWER / NOT_COORDINATOR.
    Remote(i32),
    /// No such topic or partition.
    Unknown,
}

/// The local shard of every partition replica on this broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlacement {
    nr_shards: usize,
    shards: BTreeMap<(Uuid, i32), usize>,
}

#[derive(Serialize, Deserialize)]
struct PlacementFile {
    shards: usize,
    partitions: Vec<(Uuid, i32, usize)>,
}

impl ShardPlacement {
    /// An empty table for `nr_shards` shards.
    pub fn new(nr_shards: usize) -> ShardPlacement {
        ShardPlacement { nr_shards: nr_shards.max(1), shards: BTreeMap::new() }
    }

    /// Start-up (blocking I/O is fine): the stored table (or `legacy`, the placement
    /// of a migrated image), fitted to `image` and to `nr_shards`. Returns it and
    /// whether it differs from what was stored (the caller then saves it).
    pub fn at_start(
        log_dir: &Path,
        image: &MetadataImage,
        nr_shards: usize,
        broker_id: i32,
        legacy: Option<Vec<(Uuid, i32, usize)>>,
    ) -> io::Result<(ShardPlacement, bool)> {
        let stored = match legacy {
            Some(rows) => Some(PlacementFile { shards: nr_shards, partitions: rows }),
            None => match std::fs::read(log_dir.join(PLACEMENT_FILE)) {
                Ok(raw) => Some(
                    serde_json::from_slice::<PlacementFile>(&raw).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{PLACEMENT_FILE}: {e}")))?,
                ),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            },
        };
        let mut table = ShardPlacement::new(nr_shards);
        let mut changed = stored.is_none();
        if let Some(f) = stored {
            changed |= f.shards != nr_shards;
            table.shards = f.partitions.into_iter().map(|(t, p, s)| ((t, p), s)).collect();
        }
        let before = table.shards.clone();
        table.fit(image, broker_id);
        if changed {
            table.rebalance();
        }
        changed |= table.shards != before;
        Ok((table, changed))
    }

    /// Drops partitions that left `image`, moves those of shards that no longer
    /// exist, and places every partition of `image` with a replica on this broker
    /// that has no shard yet on the least loaded one (new partitions, in order).
    pub fn fit(&mut self, image: &MetadataImage, broker_id: i32) {
        let n = self.nr_shards;
        self.shards.retain(|(t, p), s| {
            // A partition stays while it exists and this broker holds one of its
            // replicas (a reassignment may have moved it away). A single broker
            // (no registrations) holds every partition whatever its node.id.
            *s < n
                && image
                    .topic_name(t)
                    .and_then(|name| image.topics.get(name))
                    .and_then(|topic| topic.partitions.get(*p as usize))
                    .is_some_and(|part| image.brokers.is_empty() || part.replicas.contains(&broker_id))
        });
        let mut load = self.load();
        for t in image.topics.values() {
            for (i, part) in t.partitions.iter().enumerate() {
                let key = (t.topic_id, i as i32);
                if self.shards.contains_key(&key) || !part.replicas.contains(&broker_id) {
                    continue;
                }
                let s = (0..n).min_by_key(|&s| load[s]).unwrap_or(0);
                load[s] += 1;
                self.shards.insert(key, s);
            }
        }
    }

    /// Moves partitions from the most to the least loaded shard until they are at
    /// most one apart (after a change of shard count).
    fn rebalance(&mut self) {
        loop {
            let load = self.load();
            let (max, min) = match ((0..self.nr_shards).max_by_key(|&s| load[s]), (0..self.nr_shards).min_by_key(|&s| load[s])) {
                (Some(a), Some(b)) => (a, b),
                _ => return,
            };
            if load[max] <= load[min] + 1 {
                return;
            }
            // The last partition (in table order) of the fullest shard moves.
            let Some(key) = self.shards.iter().rev().find(|(_, &s)| s == max).map(|(k, _)| *k) else { return };
            self.shards.insert(key, min);
        }
    }

    fn load(&self) -> Vec<usize> {
        let mut load = vec![0; self.nr_shards];
        for &s in self.shards.values() {
            load[s] += 1;
        }
        load
    }

    /// The shard holding a partition's replica, if this broker has one.
    pub fn shard_of(&self, topic_id: &Uuid, partition: i32) -> Option<usize> {
        self.shards.get(&(*topic_id, partition)).copied()
    }

    /// Partitions per shard (for diagnostics and tests).
    pub fn partitions_per_shard(&self) -> Vec<usize> {
        self.load()
    }

    /// The table as stored in [`PLACEMENT_FILE`].
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        let f = PlacementFile { shards: self.nr_shards, partitions: self.shards.iter().map(|(&(t, p), &s)| (t, p, s)).collect() };
        serde_json::to_vec(&f).map_err(io::Error::other)
    }

    /// Writes the table at start-up (blocking; nothing is served yet).
    pub fn save_at_start(&self, log_dir: &Path) -> io::Result<()> {
        let tmp = log_dir.join(format!("{PLACEMENT_FILE}.tmp"));
        std::fs::write(&tmp, self.encode()?)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, log_dir.join(PLACEMENT_FILE))?;
        std::fs::File::open(log_dir)?.sync_all()
    }
}

/// Where `topic`-`partition` is served from, for broker `broker_id`.
pub fn route(image: &MetadataImage, placement: &ShardPlacement, broker_id: i32, topic: &str, partition: i32) -> Route {
    let Some(t) = image.topics.get(topic) else { return Route::Unknown };
    let Some(p) = usize::try_from(partition).ok().and_then(|i| t.partitions.get(i)) else { return Route::Unknown };
    if p.leader != broker_id {
        return Route::Remote(p.leader);
    }
    match placement.shard_of(&t.topic_id, partition) {
        Some(s) => Route::Local(s),
        None => Route::Unknown,
    }
}

/// Kafka's replica assignment: the brokers in a rack-alternating order (when
/// racks are set: one broker of each rack in turn, as Kafka's
/// `getRackAlternatedBrokerList`), partition `p`'s first replica (its preferred
/// leader) at position `start + p`, the others the next brokers around the
/// circle. So leaders and replicas spread evenly over the brokers, and the
/// replicas of a partition sit on different racks where there are enough.
/// `brokers` are (id, rack), in id order; `count` partitions from `first`.
pub fn assign_replicas(brokers: &[(i32, Option<String>)], first: i32, count: i32, replication_factor: usize, start: usize) -> Vec<Vec<i32>> {
    let order = rack_alternated(brokers);
    let n = order.len();
    if n == 0 {
        return Vec::new();
    }
    (first..first + count)
        .map(|p| {
            let base = start + p as usize;
            (0..replication_factor.min(n)).map(|j| order[(base + j) % n]).collect()
        })
        .collect()
}

fn rack_alternated(brokers: &[(i32, Option<String>)]) -> Vec<i32> {
    if brokers.iter().all(|(_, r)| r.is_none()) {
        return brokers.iter().map(|(id, _)| *id).collect();
    }
    let mut racks: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (id, rack) in brokers {
        racks.entry(rack.as_deref().unwrap_or("")).or_default().push(*id);
    }
    let mut out = Vec::with_capacity(brokers.len());
    let mut i = 0;
    while out.len() < brokers.len() {
        for ids in racks.values() {
            if let Some(&id) = ids.get(i) {
                out.push(id);
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::records::MetadataRecord;

    fn image(topics: &[(&str, i32)]) -> MetadataImage {
        let mut img = MetadataImage::empty("c".into());
        for (name, n) in topics {
            let id = Uuid::new_v4();
            img.apply(&MetadataRecord::Topic { name: name.to_string(), topic_id: id }).unwrap();
            for p in 0..*n {
                img.apply(&MetadataRecord::Partition { topic_id: id, partition: p, replicas: vec![0], isr: vec![0], leader: 0, leader_epoch: 0 }).unwrap();
            }
        }
        img
    }

    #[test]
    fn new_partitions_go_to_the_least_loaded_shard_and_stay() {
        let d = tempfile::tempdir().unwrap();
        let img = image(&[("a", 3), ("b", 4)]);
        let (t, changed) = ShardPlacement::at_start(d.path(), &img, 2, 0, None).unwrap();
        assert!(changed);
        assert_eq!(t.partitions_per_shard(), vec![4, 3]);
        t.save_at_start(d.path()).unwrap();
        let (again, changed) = ShardPlacement::at_start(d.path(), &img, 2, 0, None).unwrap();
        assert!(!changed);
        assert_eq!(again, t, "a restart keeps every partition where it was");
        let a = img.topics["a"].topic_id;
        assert_eq!(route(&img, &t, 0, "a", 2), Route::Local(t.shard_of(&a, 2).unwrap()));
        assert_eq!(route(&img, &t, 0, "a", 3), Route::Unknown);
        assert_eq!(route(&img, &t, 0, "zz", 0), Route::Unknown);
        assert_eq!(route(&img, &t, 7, "a", 0), Route::Remote(0), "led by another broker");
    }

    #[test]
    fn fewer_and_more_shards_rebalance() {
        let d = tempfile::tempdir().unwrap();
        let img = image(&[("a", 10)]);
        let (t, _) = ShardPlacement::at_start(d.path(), &img, 4, 0, None).unwrap();
        t.save_at_start(d.path()).unwrap();
        let (fewer, changed) = ShardPlacement::at_start(d.path(), &img, 2, 0, None).unwrap();
        assert!(changed);
        assert_eq!(fewer.partitions_per_shard(), vec![5, 5]);
        // Partitions that were on shards 0 and 1 stayed there.
        let id = img.topics["a"].topic_id;
        for p in 0..10 {
            let s = t.shard_of(&id, p).unwrap();
            if s < 2 {
                assert_eq!(fewer.shard_of(&id, p), Some(s));
            }
        }
        fewer.save_at_start(d.path()).unwrap();
        let (more, _) = ShardPlacement::at_start(d.path(), &img, 3, 0, None).unwrap();
        let load = more.partitions_per_shard();
        assert_eq!(load.iter().sum::<usize>(), 10);
        assert!(load.iter().max().unwrap() - load.iter().min().unwrap() <= 1, "{load:?}");
    }

    #[test]
    fn removed_topics_leave_the_table() {
        let img = image(&[("a", 2), ("b", 2)]);
        let mut t = ShardPlacement::new(2);
        t.fit(&img, 0);
        let mut next = img.clone();
        next.apply(&MetadataRecord::RemoveTopic { topic_id: img.topics["a"].topic_id }).unwrap();
        t.fit(&next, 0);
        assert_eq!(t.partitions_per_shard().iter().sum::<usize>(), 2);
        let b = next.topics["b"].topic_id;
        assert!(t.shard_of(&b, 0).is_some() && t.shard_of(&img.topics["a"].topic_id, 0).is_none());
    }

    #[test]
    fn replicas_spread_over_brokers_and_racks() {
        let brokers: Vec<(i32, Option<String>)> = vec![(1, None), (2, None), (3, None)];
        let a = assign_replicas(&brokers, 0, 12, 1, 0);
        for b in 1..=3 {
            assert_eq!(a.iter().filter(|r| r[0] == b).count(), 4, "each broker leads 4 of 12");
        }
        let a = assign_replicas(&brokers, 0, 3, 3, 1);
        assert_eq!(a, vec![vec![2, 3, 1], vec![3, 1, 2], vec![1, 2, 3]]);
        let racked: Vec<(i32, Option<String>)> = vec![(1, Some("a".into())), (2, Some("a".into())), (3, Some("b".into())), (4, Some("b".into()))];
        for r in assign_replicas(&racked, 0, 8, 2, 0) {
            assert_ne!(racked[(r[0] - 1) as usize].1, racked[(r[1] - 1) as usize].1, "{r:?} on one rack");
        }
    }
}
