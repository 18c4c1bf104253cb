//! The error codes a response carries, for the per-API error counters
//! (`shardlog_request_errors_total`, Kafka's `ErrorsPerSec` by request and error).
//! Like Kafka's `AbstractResponse.errorCounts()`, every code in the response
//! counts, top-level and per topic, partition, group or resource; NONE (0) is
//! left out by the caller.

use kafka_protocol::messages::*;

/// Calls `f` with each error code in a response.
pub trait ErrorCodes {
    /// Every error code field of the response, NONE included.
    fn each_error_code(&self, f: &mut dyn FnMut(i16));
}

macro_rules! error_codes {
    ($($t:ty => |$r:ident, $f:ident| $body:expr;)*) => {
        $(impl ErrorCodes for $t {
            fn each_error_code(&self, $f: &mut dyn FnMut(i16)) {
                let $r = self;
                $body
            }
        })*
    };
}

error_codes! {
    ApiVersionsResponse => |r, f| f(r.error_code);
    MetadataResponse => |r, f| {
        f(r.error_code);
        r.topics.iter().for_each(|t| {
            f(t.error_code);
            t.partitions.iter().for_each(|p| f(p.error_code));
        })
    };
    CreateTopicsResponse => |r, f| r.topics.iter().for_each(|t| f(t.error_code));
    ProduceResponse => |r, f| r.responses.iter().flat_map(|t| &t.partition_responses).for_each(|p| f(p.error_code));
    ListOffsetsResponse => |r, f| r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
    DeleteTopicsResponse => |r, f| r.responses.iter().for_each(|t| f(t.error_code));
    CreatePartitionsResponse => |r, f| r.results.iter().for_each(|t| f(t.error_code));
    FindCoordinatorResponse => |r, f| {
        f(r.error_code);
        r.coordinators.iter().for_each(|c| f(c.error_code))
    };
    JoinGroupResponse => |r, f| f(r.error_code);
    SyncGroupResponse => |r, f| f(r.error_code);
    HeartbeatResponse => |r, f| f(r.error_code);
    LeaveGroupResponse => |r, f| {
        f(r.error_code);
        r.members.iter().for_each(|m| f(m.error_code))
    };
    OffsetCommitResponse => |r, f| r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
    OffsetFetchResponse => |r, f| {
        f(r.error_code);
        r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
        r.groups.iter().for_each(|g| {
            f(g.error_code);
            g.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
        })
    };
    ListGroupsResponse => |r, f| f(r.error_code);
    DescribeGroupsResponse => |r, f| r.groups.iter().for_each(|g| f(g.error_code));
    DeleteGroupsResponse => |r, f| r.results.iter().for_each(|g| f(g.error_code));
    OffsetDeleteResponse => |r, f| {
        f(r.error_code);
        r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code))
    };
    DescribeConfigsResponse => |r, f| r.results.iter().for_each(|x| f(x.error_code));
    AlterConfigsResponse => |r, f| r.responses.iter().for_each(|x| f(x.error_code));
    IncrementalAlterConfigsResponse => |r, f| r.responses.iter().for_each(|x| f(x.error_code));
    DeleteRecordsResponse => |r, f| r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
    DescribeClusterResponse => |r, f| f(r.error_code);
    WriteTxnMarkersResponse => |r, f| r.markers.iter().flat_map(|m| &m.topics).flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
    ElectLeadersResponse => |r, f| {
        f(r.error_code);
        r.replica_election_results.iter().flat_map(|t| &t.partition_result).for_each(|p| f(p.error_code))
    };
    AlterPartitionReassignmentsResponse => |r, f| {
        f(r.error_code);
        r.responses.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code))
    };
    ListPartitionReassignmentsResponse => |r, f| f(r.error_code);
    UnregisterBrokerResponse => |r, f| f(r.error_code);
    DescribeQuorumResponse => |r, f| {
        f(r.error_code);
        r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code))
    };
    DescribeLogDirsResponse => |r, f| {
        f(r.error_code);
        r.results.iter().for_each(|d| f(d.error_code))
    };
    OffsetForLeaderEpochResponse => |r, f| r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
    DescribeProducersResponse => |r, f| r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
    InitProducerIdResponse => |r, f| f(r.error_code);
    AddPartitionsToTxnResponse => |r, f| {
        f(r.error_code);
        r.results_by_transaction.iter().flat_map(|t| &t.topic_results).chain(&r.results_by_topic_v3_and_below)
            .flat_map(|t| &t.results_by_partition)
            .for_each(|p| f(p.partition_error_code))
    };
    AddOffsetsToTxnResponse => |r, f| f(r.error_code);
    EndTxnResponse => |r, f| f(r.error_code);
    TxnOffsetCommitResponse => |r, f| r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
    DescribeTransactionsResponse => |r, f| r.transaction_states.iter().for_each(|t| f(t.error_code));
    ListTransactionsResponse => |r, f| f(r.error_code);
    ConsumerGroupHeartbeatResponse => |r, f| f(r.error_code);
    ConsumerGroupDescribeResponse => |r, f| r.groups.iter().for_each(|g| f(g.error_code));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_codes_are_all_visited() {
        let mut r = ProduceResponse::default();
        let mut t = produce_response::TopicProduceResponse::default();
        t.partition_responses.push(produce_response::PartitionProduceResponse::default().with_error_code(6));
        t.partition_responses.push(produce_response::PartitionProduceResponse::default());
        r.responses.push(t);
        let mut seen = Vec::new();
        r.each_error_code(&mut |c| seen.push(c));
        assert_eq!(seen, vec![6, 0]);
    }
}
