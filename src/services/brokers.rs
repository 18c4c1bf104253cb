//! The brokers clients are told about: on a single broker, itself; in a
//! cluster, every registered broker that is not fenced, from the metadata image
//! (a fenced broker leads nothing and is left out, as Kafka's Metadata does).

use crate::shard::Shard;

/// A broker as Metadata, DescribeCluster and FindCoordinator name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    /// `node.id`.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
    /// `broker.rack`.
    pub rack: Option<String>,
}

/// The live brokers, by id.
pub fn live_brokers(shard: &Shard) -> Vec<BrokerEndpoint> {
    if !shard.cfg.is_cluster() {
        let (host, port) = shard.advertised.clone();
        return vec![BrokerEndpoint { id: shard.cfg.broker_id, host, port, rack: shard.cfg.broker_rack.clone() }];
    }
    shard
        .image()
        .brokers
        .iter()
        .filter(|(_, b)| !b.fenced)
        .map(|(&id, b)| BrokerEndpoint { id, host: b.host.clone(), port: b.port, rack: b.rack.clone() })
        .collect()
}

/// Broker `id` if it is live.
pub fn live_broker(shard: &Shard, id: i32) -> Option<BrokerEndpoint> {
    live_brokers(shard).into_iter().find(|b| b.id == id)
}

/// The controller id clients are given. In KRaft the active controller is not a
/// broker clients may call, so Kafka names a live broker, which forwards admin
/// writes to the controller; shardlog names itself when live (it forwards too).
pub fn controller_id(shard: &Shard) -> i32 {
    let live = live_brokers(shard);
    if live.iter().any(|b| b.id == shard.cfg.broker_id) {
        shard.cfg.broker_id
    } else {
        live.first().map_or(-1, |b| b.id)
    }
}
