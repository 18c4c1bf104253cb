//! The metadata image: the state the committed metadata records add up to —
//! topics, their partitions' replicas, leaders and ISR, config overrides, and the
//! producer-id counter. It is immutable once published: the controller applies
//! new records to a copy (topics are `Arc`s, so a copy shares every unchanged
//! topic) and every shard swaps its `Arc` to the new image. Readers never lock.
//!
//! Which shard of a broker holds a partition is not here: that is local to the
//! broker (see [`super::placement`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::records::MetadataRecord;

/// One partition's replication state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMeta {
    /// Broker id of the leader.
    pub leader: i32,
    /// Leader epoch, bumped on each leader change.
    pub leader_epoch: i32,
    /// Broker ids holding a replica.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Eligible leader replicas (KIP-966): replicas that left the ISR while it
    /// was below `min.insync.replicas` (the high watermark was frozen, so they
    /// hold everything committed). Electable when no ISR member is alive.
    pub elr: Vec<i32>,
    /// Replicas an ongoing reassignment adds (also in `replicas`; empty: none).
    pub adding: Vec<i32>,
    /// Replicas an ongoing reassignment removes once every added one is in sync.
    pub removing: Vec<i32>,
}

impl PartitionMeta {
    /// Whether a reassignment of this partition is in progress.
    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }
}

/// A topic: id, partitions and its config overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// Topic name (unique in the image; validated by `protocol::topic` at creation).
    pub name: String,
    /// Topic id (KIP-516), returned by Metadata v10+.
    pub topic_id: Uuid,
    /// The partitions, indexed by partition number.
    pub partitions: Vec<PartitionMeta>,
    /// Topic-level config overrides (Kafka key names).
    pub configs: BTreeMap<String, String>,
}

impl TopicMeta {
    /// Appends the records that create this topic as it stands: its name and id,
    /// each partition, each config override.
    pub fn push_records(&self, out: &mut Vec<MetadataRecord>) {
        out.push(MetadataRecord::Topic { name: self.name.clone(), topic_id: self.topic_id });
        for (i, p) in self.partitions.iter().enumerate() {
            out.push(MetadataRecord::Partition {
                topic_id: self.topic_id,
                partition: i as i32,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                leader: p.leader,
                leader_epoch: p.leader_epoch,
            });
            if !p.elr.is_empty() || p.reassigning() {
                out.push(MetadataRecord::PartitionChange {
                    topic_id: self.topic_id,
                    partition: i as i32,
                    leader: None,
                    isr: None,
                    elr: (!p.elr.is_empty()).then(|| p.elr.clone()),
                    replicas: None,
                    adding: p.reassigning().then(|| p.adding.clone()),
                    removing: p.reassigning().then(|| p.removing.clone()),
                });
            }
        }
        for (k, v) in &self.configs {
            out.push(MetadataRecord::Config { topic: self.name.clone(), key: k.clone(), value: Some(v.clone()) });
        }
    }
}

/// A registered broker, as the controller last recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMeta {
    /// Epoch of its current registration.
    pub epoch: i64,
    /// The process start that registered.
    pub incarnation_id: Uuid,
    /// Advertised client listener host.
    pub host: String,
    /// Advertised client listener port.
    pub port: u16,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// Shards (cores) serving partitions.
    pub shards: u32,
    /// Fenced: its heartbeats stopped, or it has not caught up since registering.
    /// A fenced broker leads nothing and is left out of Metadata.
    pub fenced: bool,
    /// In controlled shutdown (it asked to stop): it still serves, but leads
    /// nothing and joins no ISR until it registers again.
    pub in_controlled_shutdown: bool,
}

/// The whole image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataImage {
    /// The cluster id (`cluster.id` in the log dir's `meta.properties`; 22 characters, URL-safe base64).
    pub cluster_id: String,
    /// Records applied so far (the offset of the next record): a shard ignores
    /// a pushed image older than the one it has.
    pub version: u64,
    /// The topics by name.
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    /// Topic names by id (RemoveTopic and Partition records name topics by id).
    names: BTreeMap<Uuid, String>,
    /// The first producer id not yet handed out. The controller moves it past
    /// every block it gives a shard *before* the shard uses the block, so ids
    /// stay unique across restarts and kill -9 (a crash only skips ids).
    pub next_producer_id: i64,
    /// Registered brokers by id (empty on a single broker that is not a cluster).
    pub brokers: BTreeMap<i32, BrokerMeta>,
    /// The epoch the next registration gets (one more than any given so far).
    pub next_broker_epoch: i64,
    /// Dynamic broker configs (the replication throttle rates) per broker id;
    /// -1 holds the cluster-wide default (Kafka's resource name "").
    pub broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
}

impl MetadataImage {
    /// An empty image for `cluster_id`.
    pub fn empty(cluster_id: String) -> MetadataImage {
        MetadataImage {
            cluster_id,
            version: 0,
            topics: BTreeMap::new(),
            names: BTreeMap::new(),
            next_producer_id: 0,
            brokers: BTreeMap::new(),
            next_broker_epoch: 1,
            broker_configs: BTreeMap::new(),
        }
    }

    /// Unit tests' image: topics (name, id, partition count) led by broker 0, at `version`.
    #[cfg(test)]
    pub fn for_tests(topics: &[(&str, Uuid, usize)], version: u64) -> MetadataImage {
        let mut img = MetadataImage::empty("c".into());
        for (name, topic_id, n) in topics {
            img.apply(&MetadataRecord::Topic { name: name.to_string(), topic_id: *topic_id }).expect("new topic");
            for p in 0..*n as i32 {
                let rec = MetadataRecord::Partition { topic_id: *topic_id, partition: p, replicas: vec![0], isr: vec![0], leader: 0, leader_epoch: 0 };
                img.apply(&rec).expect("partition");
            }
        }
        img.version = version;
        img
    }

    /// One partition's state, if the partition exists.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionMeta> {
        self.topics.get(topic)?.partitions.get(usize::try_from(partition).ok()?)
    }

    /// The name of the topic with `id`.
    pub fn topic_name(&self, id: &Uuid) -> Option<&str> {
        self.names.get(id).map(String::as_str)
    }

    /// Applies one record. A record that does not fit the image (a partition of an
    /// unknown topic, a topic name taken) is an error: the log is corrupt or was
    /// written by a buggy controller, and applying it anyway would diverge.
    pub fn apply(&mut self, rec: &MetadataRecord) -> Result<(), String> {
        match rec {
            MetadataRecord::Topic { name, topic_id } => {
                if self.topics.contains_key(name) || self.names.contains_key(topic_id) {
                    return Err(format!("topic {name} ({topic_id}) already exists"));
                }
                self.names.insert(*topic_id, name.clone());
                self.topics
                    .insert(name.clone(), Arc::new(TopicMeta { name: name.clone(), topic_id: *topic_id, partitions: Vec::new(), configs: BTreeMap::new() }));
            }
            MetadataRecord::Partition { topic_id, partition, replicas, isr, leader, leader_epoch } => {
                let t = self.topic_mut(topic_id)?;
                if *partition as usize != t.partitions.len() {
                    return Err(format!("partition {partition} of {} out of order (it has {})", t.name, t.partitions.len()));
                }
                t.partitions.push(PartitionMeta {
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    elr: Vec::new(),
                    adding: Vec::new(),
                    removing: Vec::new(),
                });
            }
            MetadataRecord::Config { topic, key, value } => {
                let t = Arc::make_mut(self.topics.get_mut(topic).ok_or_else(|| format!("config for unknown topic {topic}"))?);
                match value {
                    Some(v) => t.configs.insert(key.clone(), v.clone()),
                    None => t.configs.remove(key),
                };
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let name = self.names.remove(topic_id).ok_or_else(|| format!("removing unknown topic id {topic_id}"))?;
                self.topics.remove(&name);
            }
            MetadataRecord::ProducerIds { next_producer_id } => {
                if *next_producer_id < self.next_producer_id {
                    return Err(format!("producer ids moved back from {} to {next_producer_id}", self.next_producer_id));
                }
                self.next_producer_id = *next_producer_id;
            }
            MetadataRecord::RegisterBroker { broker_id, epoch, incarnation_id, host, port, rack, shards, fenced } => {
                if *epoch < self.next_broker_epoch {
                    return Err(format!("broker {broker_id} registered with epoch {epoch}, below {}", self.next_broker_epoch));
                }
                self.next_broker_epoch = epoch + 1;
                let b = BrokerMeta {
                    epoch: *epoch,
                    incarnation_id: *incarnation_id,
                    host: host.clone(),
                    port: *port,
                    rack: rack.clone(),
                    shards: *shards,
                    fenced: *fenced,
                    in_controlled_shutdown: false,
                };
                self.brokers.insert(*broker_id, b);
            }
            MetadataRecord::FenceBroker { broker_id, epoch } | MetadataRecord::UnfenceBroker { broker_id, epoch } => {
                let b = self.brokers.get_mut(broker_id).ok_or_else(|| format!("fencing unknown broker {broker_id}"))?;
                if b.epoch != *epoch {
                    return Err(format!("fencing broker {broker_id} epoch {epoch}, registered as {}", b.epoch));
                }
                b.fenced = matches!(rec, MetadataRecord::FenceBroker { .. });
            }
            MetadataRecord::BrokerConfig { broker_id, key, value } => {
                let m = self.broker_configs.entry(*broker_id).or_default();
                match value {
                    Some(v) => m.insert(key.clone(), v.clone()),
                    None => m.remove(key),
                };
                if m.is_empty() {
                    self.broker_configs.remove(broker_id);
                }
            }
            MetadataRecord::ControlledShutdown { broker_id, epoch } => {
                let b = self.brokers.get_mut(broker_id).ok_or_else(|| format!("controlled shutdown of unknown broker {broker_id}"))?;
                if b.epoch != *epoch {
                    return Err(format!("controlled shutdown of broker {broker_id} epoch {epoch}, registered as {}", b.epoch));
                }
                b.in_controlled_shutdown = true;
            }
            MetadataRecord::UnregisterBroker { broker_id } => {
                self.brokers.remove(broker_id).ok_or_else(|| format!("unregistering unknown broker {broker_id}"))?;
            }
            MetadataRecord::PartitionChange { topic_id, partition, leader, isr, elr, replicas, adding, removing } => {
                let t = self.topic_mut(topic_id)?;
                let name = t.name.clone();
                let p = t.partitions.get_mut(*partition as usize).ok_or_else(|| format!("change of unknown partition {name}-{partition}"))?;
                if let Some(l) = leader {
                    if *l != p.leader {
                        p.leader = *l;
                        p.leader_epoch += 1;
                    }
                }
                if let Some(isr) = isr {
                    p.isr = isr.clone();
                }
                if let Some(elr) = elr {
                    p.elr = elr.clone();
                }
                if let Some(r) = replicas {
                    p.replicas = r.clone();
                }
                if let Some(a) = adding {
                    p.adding = a.clone();
                }
                if let Some(r) = removing {
                    p.removing = r.clone();
                }
            }
        }
        self.version += 1;
        Ok(())
    }

    fn topic_mut(&mut self, id: &Uuid) -> Result<&mut TopicMeta, String> {
        let name = self.names.get(id).ok_or_else(|| format!("unknown topic id {id}"))?;
        let t = self.topics.get_mut(name).ok_or_else(|| format!("topic {name} missing from the image"))?;
        Ok(Arc::make_mut(t))
    }

    /// Records that rebuild this image from an empty one (a checkpoint's content).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        if self.next_producer_id > 0 {
            out.push(MetadataRecord::ProducerIds { next_producer_id: self.next_producer_id });
        }
        // By epoch: a registration's epoch must exceed every earlier one.
        let mut brokers: Vec<_> = self.brokers.iter().collect();
        brokers.sort_by_key(|(_, b)| b.epoch);
        for (&broker_id, b) in brokers {
            out.push(MetadataRecord::RegisterBroker {
                broker_id,
                epoch: b.epoch,
                incarnation_id: b.incarnation_id,
                host: b.host.clone(),
                port: b.port,
                rack: b.rack.clone(),
                shards: b.shards,
                fenced: b.fenced,
            });
            if b.in_controlled_shutdown {
                out.push(MetadataRecord::ControlledShutdown { broker_id, epoch: b.epoch });
            }
        }
        for (&broker_id, m) in &self.broker_configs {
            for (k, v) in m {
                out.push(MetadataRecord::BrokerConfig { broker_id, key: k.clone(), value: Some(v.clone()) });
            }
        }
        for t in self.topics.values() {
            t.push_records(&mut out);
        }
        out
    }

    /// The broker with `id`, if registered and not fenced (it may lead and be named in Metadata).
    pub fn live_broker(&self, id: i32) -> Option<&BrokerMeta> {
        self.brokers.get(&id).filter(|b| !b.fenced)
    }

    /// Dynamic broker config `key` of broker `id`: its own value, else the cluster-wide one.
    pub fn broker_config(&self, id: i32, key: &str) -> Option<&str> {
        [id, -1].iter().find_map(|b| self.broker_configs.get(b).and_then(|m| m.get(key))).map(String::as_str)
    }

    /// Whether broker `id` may be elected leader or join an ISR: registered,
    /// unfenced and not in controlled shutdown (Kafka's "active" broker).
    pub fn eligible_broker(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced && !b.in_controlled_shutdown)
    }

    /// Records that make `topic` have exactly the overrides `configs`.
    pub fn config_records(&self, topic: &TopicMeta, configs: &BTreeMap<String, String>) -> Vec<MetadataRecord> {
        let removed = topic.configs.keys().filter(|k| !configs.contains_key(*k)).map(|k| (k.clone(), None));
        let set = configs.iter().filter(|(k, v)| topic.configs.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), Some(v.clone())));
        removed.chain(set).map(|(key, value)| MetadataRecord::Config { topic: topic.name.clone(), key, value }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, parts: i32) -> (Uuid, Vec<MetadataRecord>) {
        let id = Uuid::new_v4();
        let mut recs = vec![MetadataRecord::Topic { name: name.into(), topic_id: id }];
        recs.extend((0..parts).map(|p| MetadataRecord::Partition { topic_id: id, partition: p, replicas: vec![0], isr: vec![0], leader: 0, leader_epoch: 0 }));
        (id, recs)
    }

    #[test]
    fn records_build_the_image_and_checkpoints_rebuild_it() {
        let mut img = MetadataImage::empty("c".into());
        let (a, recs) = topic("a", 3);
        let (b, recs_b) = topic("b", 1);
        for r in recs.iter().chain(&recs_b) {
            img.apply(r).unwrap();
        }
        img.apply(&MetadataRecord::Config { topic: "a".into(), key: "cleanup.policy".into(), value: Some("compact".into()) }).unwrap();
        img.apply(&MetadataRecord::ProducerIds { next_producer_id: 1000 }).unwrap();
        img.apply(&MetadataRecord::PartitionChange {
            topic_id: a,
            partition: 1,
            leader: Some(2),
            isr: Some(vec![2]),
            elr: Some(vec![0]),
            replicas: None,
            adding: None,
            removing: None,
        })
        .unwrap();
        img.apply(&MetadataRecord::RemoveTopic { topic_id: b }).unwrap();
        assert_eq!(img.topics.len(), 1);
        assert_eq!(
            img.topics["a"].partitions[1],
            PartitionMeta { leader: 2, leader_epoch: 1, replicas: vec![0], isr: vec![2], elr: vec![0], adding: vec![], removing: vec![] }
        );
        assert_eq!(img.topics["a"].configs["cleanup.policy"], "compact");
        assert_eq!(img.topic_name(&b), None);

        let mut rebuilt = MetadataImage::empty("c".into());
        for r in img.to_records() {
            rebuilt.apply(&r).unwrap();
        }
        rebuilt.version = img.version;
        assert_eq!(rebuilt, img);
    }

    #[test]
    fn records_that_do_not_fit_are_refused() {
        let mut img = MetadataImage::empty("c".into());
        let (id, recs) = topic("a", 1);
        for r in &recs {
            img.apply(r).unwrap();
        }
        assert!(img.apply(&recs[0]).is_err(), "the same topic twice");
        assert!(img.apply(&MetadataRecord::Partition { topic_id: id, partition: 5, replicas: vec![], isr: vec![], leader: 0, leader_epoch: 0 }).is_err());
        assert!(img.apply(&MetadataRecord::RemoveTopic { topic_id: Uuid::new_v4() }).is_err());
        assert!(img.apply(&MetadataRecord::ProducerIds { next_producer_id: -1 }).is_err());
        assert_eq!(img.version, 2, "refused records are not counted");
    }

    #[test]
    fn copies_share_unchanged_topics() {
        let mut img = MetadataImage::empty("c".into());
        for name in ["a", "b"] {
            for r in topic(name, 1).1 {
                img.apply(&r).unwrap();
            }
        }
        let mut next = img.clone();
        next.apply(&MetadataRecord::Config { topic: "a".into(), key: "k".into(), value: Some("v".into()) }).unwrap();
        assert!(Arc::ptr_eq(&img.topics["b"], &next.topics["b"]));
        assert!(!Arc::ptr_eq(&img.topics["a"], &next.topics["a"]));
        assert!(img.topics["a"].configs.is_empty(), "the published image is not changed");
    }
}
