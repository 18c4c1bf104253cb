//! Partitions whose log could not be opened, and the file descriptors that
//! opening logs must leave free.
//!
//! A partition log that fails to open (EMFILE when RLIMIT_NOFILE is used up,
//! or any I/O error) is *offline*, as Kafka marks a failed log dir offline:
//! CreateTopics and CreatePartitions answer KAFKA_STORAGE_ERROR for its topic,
//! Metadata lists it with KAFKA_STORAGE_ERROR, no leader and the broker as an
//! offline replica, and Produce, Fetch and ListOffsets to it get
//! KAFKA_STORAGE_ERROR. The owner shard tries to open it again on every
//! metadata change (descriptors may have come free), and a restart does too.
//!
//! [`OfflinePartitions`] is the one piece of partition state shared between
//! shards: the owner writes it, and Metadata, answered on whatever shard the
//! client is connected to, reads it. Like Kafka's `LogDirFailureChannel` it is
//! a small locked map off the data path: it is read on Metadata and
//! CreateTopics (and only after a lock-free emptiness check), never on produce
//! or fetch of a healthy partition, and the lock is never held across an await.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::request::TopicPartition;

/// Why one partition is offline, and which incarnation of its topic it is
/// (a topic deleted and created again under the same name gets a new id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflinePartition {
    /// Id of the topic the partition belonged to when its log failed to open.
    pub topic_id: uuid::Uuid,
    /// The error that kept the log closed, e.g. "Too many open files (os error 24)".
    pub reason: String,
}

/// Offline partitions of the whole broker (see the module doc).
#[derive(Debug)]
pub struct OfflinePartitions {
    /// Number of entries, so the common case (none) takes no lock.
    len: AtomicUsize,
    map: Mutex<HashMap<TopicPartition, OfflinePartition>>,
    /// [`descriptors_reserved`] for the process's RLIMIT_NOFILE, fixed at start.
    pub descriptors_reserved: u64,
    /// Held by a shard opening logs after start-up (see [`SpareDescriptors`]).
    opening: Mutex<()>,
}

impl OfflinePartitions {
    /// None offline yet; opening logs will leave `descriptors_reserved` descriptors free.
    pub fn new(descriptors_reserved: u64) -> OfflinePartitions {
        OfflinePartitions { len: AtomicUsize::new(0), map: Mutex::new(HashMap::new()), descriptors_reserved, opening: Mutex::new(()) }
    }

    /// One shard at a time opens logs after start-up: held for a (synchronous,
    /// await-free) pass of opens. Taken before the map's lock, never after.
    pub fn lock_opens(&self) -> std::sync::MutexGuard<'_, ()> {
        self.opening.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TopicPartition, OfflinePartition>> {
        // A panic elsewhere aborts the process (main.rs), so poisoning cannot be seen;
        // taking the map anyway keeps this path panic-free.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `tp` offline. True when it was not offline before (the caller logs it once).
    pub fn mark(&self, tp: &TopicPartition, topic_id: uuid::Uuid, reason: String) -> bool {
        let mut m = self.lock();
        let new = m.insert(tp.clone(), OfflinePartition { topic_id, reason }).is_none_or(|old| old.topic_id != topic_id);
        self.len.store(m.len(), Ordering::Release);
        new
    }

    /// Takes `tp` off the list (opened at last, or deleted). True when it was offline.
    pub fn clear(&self, tp: &TopicPartition) -> bool {
        if self.is_empty() {
            return false;
        }
        let mut m = self.lock();
        let was = m.remove(tp).is_some();
        self.len.store(m.len(), Ordering::Release);
        was
    }

    /// No partition is offline (no lock taken).
    pub fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    /// Why `tp` is offline, if it is.
    pub fn get(&self, tp: &TopicPartition) -> Option<OfflinePartition> {
        if self.is_empty() {
            return None;
        }
        self.lock().get(tp).cloned()
    }

    /// The offline partitions of one incarnation of a topic, by index, with their reason.
    pub fn of_topic(&self, topic: &str, topic_id: uuid::Uuid) -> BTreeMap<i32, String> {
        if self.is_empty() {
            return BTreeMap::new();
        }
        self.lock().iter().filter(|(tp, o)| tp.topic == topic && o.topic_id == topic_id).map(|(tp, o)| (tp.partition, o.reason.clone())).collect()
    }
}

/// One line naming a topic's offline partitions, for error messages:
/// "3 partition(s) of topic t could not be opened and are offline (4, 5, 9): Too many open files".
pub fn describe(topic: &str, offline: &BTreeMap<i32, String>) -> String {
    const NAMED: usize = 8;
    let mut names: Vec<String> = offline.keys().take(NAMED).map(|p| p.to_string()).collect();
    if offline.len() > NAMED {
        names.push(format!("{} more", offline.len() - NAMED));
    }
    let first = offline.values().next().map(String::as_str).unwrap_or("unknown error");
    format!("{} partition(s) of topic {topic} could not be opened and are offline ({}): {first}", offline.len(), names.join(", "))
}

/// File descriptors that opening partition logs leaves free, for client
/// connections and the short-lived files of rolls, snapshots and metadata
/// writes: an eighth of the soft RLIMIT_NOFILE, at least 64 and at most 1024.
/// Without it the logs of one large CreateTopics could take every descriptor,
/// after which the broker can accept no connection at all.
pub fn descriptors_reserved(nofile_limit: u64) -> u64 {
    (nofile_limit / 8).clamp(64, 1024)
}

/// Descriptors held while a shard opens partition logs, and closed after:
/// a log that cannot open without them stays offline, so the opens never
/// take the last [`descriptors_reserved`] descriptors. When fewer are free,
/// all are held and the opens fail, leaving as many free as before. Shards
/// take turns ([`OfflinePartitions::lock_opens`]): with two passes at once,
/// one could hold only part of the reserve and then open into the spares the
/// other has just released.
pub struct SpareDescriptors {
    _held: Vec<File>,
}

impl SpareDescriptors {
    /// Holds up to `n` descriptors (duplicates of one open of `dir`); fewer
    /// when fewer are free, which is what should make the opens fail.
    pub fn hold(dir: &Path, n: u64) -> SpareDescriptors {
        let mut held = Vec::new();
        if let Ok(first) = File::open(dir) {
            while (held.len() as u64) + 1 < n {
                match first.try_clone() {
                    Ok(f) => held.push(f),
                    Err(_) => break,
                }
            }
            held.push(first);
        }
        SpareDescriptors { _held: held }
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self._held.len()
    }

    /// True when none could be held.
    pub fn is_empty(&self) -> bool {
        self._held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition { topic: t.into(), partition: p }
    }

    #[test]
    fn mark_clear_and_topic_incarnations() {
        let o = OfflinePartitions::new(64);
        assert!(o.is_empty() && o.get(&tp("a", 0)).is_none());
        let (id1, id2) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        assert!(o.mark(&tp("a", 0), id1, "EMFILE".into()));
        assert!(!o.mark(&tp("a", 0), id1, "EMFILE again".into()), "already offline: not new");
        assert!(o.mark(&tp("a", 0), id2, "EMFILE".into()), "a new incarnation of the topic is new");
        o.mark(&tp("a", 3), id2, "EIO".into());
        o.mark(&tp("b", 0), id1, "EIO".into());
        assert_eq!(o.of_topic("a", id2).keys().copied().collect::<Vec<_>>(), vec![0, 3]);
        assert!(o.of_topic("a", id1).is_empty());
        assert!(o.clear(&tp("a", 0)));
        assert!(!o.clear(&tp("a", 0)));
        assert_eq!(o.get(&tp("a", 3)).map(|x| x.reason), Some("EIO".to_string()));
        o.clear(&tp("a", 3));
        o.clear(&tp("b", 0));
        assert!(o.is_empty());
    }

    #[test]
    fn describe_names_a_few() {
        let m: BTreeMap<i32, String> = (0..20).map(|p| (p, "Too many open files".to_string())).collect();
        let d = describe("t", &m);
        assert_eq!(d, "20 partition(s) of topic t could not be opened and are offline (0, 1, 2, 3, 4, 5, 6, 7, 12 more): Too many open files");
    }

    #[test]
    fn spares_are_held_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let s = SpareDescriptors::hold(dir.path(), 10);
        assert_eq!(s.len(), 10);
        assert!(SpareDescriptors::hold(&dir.path().join("missing"), 10).is_empty());
        assert_eq!(descriptors_reserved(256), 64);
        assert_eq!(descriptors_reserved(4096), 512);
        assert_eq!(descriptors_reserved(1 << 20), 1024);
    }
}
