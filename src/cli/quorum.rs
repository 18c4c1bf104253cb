//! `shardlog metadata-quorum describe --status|--replication`
//! (kafka-metadata-quorum.sh): the KRaft metadata quorum from DescribeQuorum
//! (key 55) of `__cluster_metadata-0`, which a broker forwards to the active
//! controller. [`describe`] is shared with `shardlog cluster info`, which
//! shows the quorum leader.

use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_quorum_request::{DescribeQuorumRequest, PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::ReplicaState;
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};

use super::client::{CliError, Conn, ConnectArgs};
use super::output::{print_json, print_rows, print_str, Format, OutputArgs};

/// The metadata log's topic, the one partition DescribeQuorum describes.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// `shardlog metadata-quorum`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example: shardlog metadata-quorum describe --status")]
pub struct QuorumArgs {
    /// How to reach the cluster (--bootstrap-server, or SHARDLOG_BOOTSTRAP).
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Output format (--output table or json).
    #[command(flatten)]
    pub out: OutputArgs,
    /// The metadata-quorum subcommand to run.
    #[command(subcommand)]
    pub cmd: QuorumCmd,
}

/// Subcommands of `shardlog metadata-quorum`.
#[derive(clap::Subcommand, Debug)]
pub enum QuorumCmd {
    /// The quorum's leader, epoch, high watermark and lag (--status), or one row per replica (--replication).
    ///
    /// Example: shardlog metadata-quorum describe --replication
    Describe {
        /// Leader, epoch, high watermark, largest follower lag, voters and observers.
        #[arg(long, required_unless_present = "replication", conflicts_with = "replication")]
        status: bool,
        /// Per replica: log end offset, lag, last fetch and last caught-up time, and role.
        #[arg(long)]
        replication: bool,
    },
}

/// One replica of the quorum as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// Node id.
    pub id: i32,
    /// Its metadata log end offset.
    pub log_end_offset: i64,
    /// Last fetch from the leader, ms since the epoch; -1 when unknown (v0).
    pub last_fetch_ms: i64,
    /// Last time it had caught up with the leader; -1 when unknown (v0).
    pub last_caught_up_ms: i64,
}

/// The quorum of `__cluster_metadata-0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    /// The leader's node id (-1 during an election).
    pub leader_id: i32,
    /// The leader's epoch.
    pub leader_epoch: i32,
    /// The metadata log's high watermark.
    pub high_watermark: i64,
    /// Voters, as listed.
    pub voters: Vec<Replica>,
    /// Observers (brokers that are not voters), as listed.
    pub observers: Vec<Replica>,
}

fn replicas(v: &[ReplicaState]) -> Vec<Replica> {
    v.iter()
        .map(|r| Replica {
            id: r.replica_id.0,
            log_end_offset: r.log_end_offset,
            last_fetch_ms: r.last_fetch_timestamp,
            last_caught_up_ms: r.last_caught_up_timestamp,
        })
        .collect()
}

/// DescribeQuorum of `__cluster_metadata-0` through `conn`.
pub fn describe(conn: &mut Conn) -> Result<Quorum, CliError> {
    let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let resp = conn.request(2, &req)?;
    if resp.error_code != 0 {
        return Err(CliError::kafka("describe the metadata quorum", resp.error_code));
    }
    let p = resp
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .next()
        .ok_or_else(|| CliError::Input("DescribeQuorum answered without the __cluster_metadata partition".into()))?;
    if p.error_code != 0 {
        return Err(CliError::kafka("describe the metadata quorum", p.error_code));
    }
    Ok(Quorum {
        leader_id: p.leader_id.0,
        leader_epoch: p.leader_epoch,
        high_watermark: p.high_watermark,
        voters: replicas(&p.current_voters),
        observers: replicas(&p.observers),
    })
}

impl Quorum {
    fn leader(&self) -> Option<&Replica> {
        self.voters.iter().find(|v| v.id == self.leader_id)
    }

    /// Kafka's MaxFollowerLag: the leader's log end minus the furthest-behind
    /// voter's, and MaxFollowerLagTimeMs: how much longer ago that voter last
    /// caught up than the leader (0 when the leader is furthest behind, -1
    /// when a time is unknown).
    pub fn max_follower_lag(&self) -> (i64, i64) {
        let Some(leader) = self.leader() else { return (0, -1) };
        let Some(slowest) = self.voters.iter().min_by_key(|v| v.log_end_offset) else { return (0, -1) };
        let lag = leader.log_end_offset - slowest.log_end_offset;
        let time = if slowest.id == leader.id {
            0
        } else if leader.last_caught_up_ms >= 0 && slowest.last_caught_up_ms >= 0 {
            leader.last_caught_up_ms - slowest.last_caught_up_ms
        } else {
            -1
        };
        (lag, time)
    }

    /// One row per replica, leader first, then the other voters, then the
    /// observers (kafka-metadata-quorum.sh --replication).
    pub fn replication_rows(&self) -> Vec<Value> {
        let leo = self.leader().map(|l| l.log_end_offset);
        let row = |r: &Replica, status: &str| {
            json!({"node_id": r.id, "log_end_offset": r.log_end_offset, "lag": leo.map(|l| (l - r.log_end_offset).max(0)),
                   "last_fetch_timestamp": r.last_fetch_ms, "last_caught_up_timestamp": r.last_caught_up_ms, "status": status})
        };
        let mut rows: Vec<Value> = self.leader().map(|l| row(l, "Leader")).into_iter().collect();
        rows.extend(self.voters.iter().filter(|v| v.id != self.leader_id).map(|v| row(v, "Follower")));
        rows.extend(self.observers.iter().map(|o| row(o, "Observer")));
        rows
    }
}

/// The cluster id, from DescribeCluster (or Metadata where it is not supported).
fn cluster_id(conn: &mut Conn) -> Option<String> {
    if conn.version_for::<DescribeClusterRequest>(2).is_ok() {
        if let Ok(r) = conn.request(2, &DescribeClusterRequest::default().with_endpoint_type(1)) {
            if r.error_code == 0 {
                return Some(r.cluster_id.to_string());
            }
        }
    }
    super::topic_describe::raw_metadata(conn, &[]).ok().and_then(|m| m.cluster_id.map(|c| c.to_string()))
}

/// Runs `shardlog metadata-quorum describe`.
pub fn run(args: QuorumArgs) -> Result<(), CliError> {
    let QuorumArgs { conn, out, cmd: QuorumCmd::Describe { status, replication: _ } } = args;
    let mut c = conn.connect()?;
    let q = describe(&mut c)?;
    if status {
        let (lag, lag_ms) = q.max_follower_lag();
        let voters: Vec<i32> = q.voters.iter().map(|v| v.id).collect();
        let observers: Vec<i32> = q.observers.iter().map(|v| v.id).collect();
        let id = cluster_id(&mut c);
        match out.output {
            Format::Json => print_json(&json!({"cluster_id": id, "leader_id": q.leader_id, "leader_epoch": q.leader_epoch,
                "high_watermark": q.high_watermark, "max_follower_lag": lag, "max_follower_lag_time_ms": lag_ms,
                "current_voters": voters, "current_observers": observers})),
            Format::Table => {
                let list = |v: &[i32]| format!("[{}]", v.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(","));
                print_str(&format!(
                    "ClusterId:              {}\nLeaderId:               {}\nLeaderEpoch:            {}\nHighWatermark:          {}\nMaxFollowerLag:         {lag}\nMaxFollowerLagTimeMs:   {lag_ms}\nCurrentVoters:          {}\nCurrentObservers:       {}\n",
                    id.as_deref().unwrap_or("-"),
                    q.leader_id,
                    q.leader_epoch,
                    q.high_watermark,
                    list(&voters),
                    list(&observers)
                ));
            }
        }
    } else {
        print_rows(
            out.output,
            &[
                ("NodeId", "node_id"),
                ("LogEndOffset", "log_end_offset"),
                ("Lag", "lag"),
                ("LastFetchTimestamp", "last_fetch_timestamp"),
                ("LastCaughtUpTimestamp", "last_caught_up_timestamp"),
                ("Status", "status"),
            ],
            &q.replication_rows(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: i32, leo: i64, caught_up: i64) -> Replica {
        Replica { id, log_end_offset: leo, last_fetch_ms: caught_up, last_caught_up_ms: caught_up }
    }

    #[test]
    fn lag_and_rows_follow_kafka_metadata_quorum() {
        let q = Quorum {
            leader_id: 2,
            leader_epoch: 5,
            high_watermark: 100,
            voters: vec![r(1, 90, 1000), r(2, 100, 1500), r(3, 100, 1500)],
            observers: vec![r(4, 80, 900)],
        };
        assert_eq!(q.max_follower_lag(), (10, 500));
        let rows = q.replication_rows();
        let ids: Vec<i64> = rows.iter().map(|r| r["node_id"].as_i64().unwrap()).collect();
        assert_eq!(ids, vec![2, 1, 3, 4]);
        assert_eq!(rows[0]["status"], "Leader");
        assert_eq!(rows[1]["lag"], 10);
        assert_eq!(rows[3]["status"], "Observer");
        let alone = Quorum { leader_id: 1, leader_epoch: 1, high_watermark: 3, voters: vec![r(1, 3, -1)], observers: vec![] };
        assert_eq!(alone.max_follower_lag(), (0, 0));
        let leaderless = Quorum { leader_id: -1, ..alone };
        assert_eq!(leaderless.max_follower_lag(), (0, -1));
    }
}
