//! One file per Kafka API, named after it. A handler takes the decoded request,
//! asks the owner shards through `xshard` (never a channel directly), and
//! returns the typed response; `router/` encodes it.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_transactions;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod unregister_broker;
pub mod write_txn_markers;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use bytes::BytesMut;

use crate::shard::Shard;
use crate::xshard::XShard;

/// What every handler on a shard can reach.
pub struct Ctx {
    /// This core's cross-core handle: the local shard (`x.shard`), its coordinators (`x.coordinators`) and the channels
    /// to the others, through which every request for a partition or coordinator
    /// owned elsewhere goes.
    pub x: Rc<XShard>,
    /// Scratch buffer for encoding responses on this shard (taken, never borrowed across await).
    pub encode_buf: RefCell<BytesMut>,
}

impl Ctx {
    /// The context of one shard's handlers, with a 64 KiB encode buffer.
    pub fn new(x: Rc<XShard>) -> Rc<Ctx> {
        Rc::new(Ctx { x, encode_buf: RefCell::new(BytesMut::with_capacity(64 * 1024)) })
    }

    /// This shard.
    pub fn shard(&self) -> &Rc<Shard> {
        &self.x.shard
    }

    /// This core's group and transaction coordinators.
    pub fn coordinators(&self) -> &Rc<crate::coordinator::Coordinators> {
        &self.x.coordinators
    }
}

/// The client connection a request came on, as handlers see it.
pub struct Client {
    /// The peer address as Kafka reports it (`/ip`, DescribeGroups' client host).
    pub host: Rc<str>,
    /// Each partition's last consumer fetch offset on this connection: how far a
    /// consumer's position moved between two fetches is the records it was sent
    /// (`shardlog_topic_records_out_total`; fetch responses go out zero-copy,
    /// their records are never parsed).
    fetch_positions: RefCell<HashMap<String, HashMap<i32, i64>>>,
}

impl Client {
    /// A connection from `host`.
    pub fn new(host: Rc<str>) -> Client {
        Client { host, fetch_positions: RefCell::default() }
    }

    /// Records a consumer fetch at `offset`; returns how far this connection's
    /// position on the partition advanced since its previous fetch (0 the first time,
    /// or when it went back).
    pub fn fetch_position(&self, topic: &str, partition: i32, offset: i64) -> u64 {
        let mut all = self.fetch_positions.borrow_mut();
        let per_topic = match all.get_mut(topic) {
            Some(t) => t,
            None => all.entry(topic.to_string()).or_default(),
        };
        let before = per_topic.insert(partition, offset);
        before.map_or(0, |b| (offset - b).max(0) as u64)
    }
}
