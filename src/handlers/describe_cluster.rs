//! DescribeCluster (key 60), versions 0-2: the cluster id, the controller and
//! the live brokers, as the admin clients' describeCluster expects; v2 with
//! `include_fenced_brokers` adds the fenced ones, marked (KIP-1073).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;

/// "Authorized operations not requested" (Kafka's INT32 minimum sentinel).
const OPERATIONS_OMITTED: i32 = i32::MIN;

/// Serves DescribeCluster `version`: the live brokers and the controller id clients are given.
pub async fn handle(ctx: &Ctx, req: DescribeClusterRequest, version: i16) -> DescribeClusterResponse {
    let shard = ctx.shard();
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(shard.image().cluster_id.clone()))
        .with_controller_id(BrokerId(crate::services::brokers::controller_id(shard)))
        .with_cluster_authorized_operations(OPERATIONS_OMITTED);
    // v1+: endpoint type 1 = brokers; 2 = controllers (a KRaft controller
    // quorum, which a single shardlog node does not run separately).
    if version >= 1 && req.endpoint_type != 1 {
        resp.error_code = crate::error::Error::UnsupportedEndpointType(req.endpoint_type).code();
        resp.error_message = Some(StrBytes::from_static_str("only broker endpoints (type 1) are served"));
        resp.endpoint_type = req.endpoint_type;
        return resp;
    }
    if version >= 1 {
        resp.endpoint_type = 1;
    }
    resp.brokers = crate::services::brokers::live_brokers(shard)
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port as i32)
                .with_rack(b.rack.map(StrBytes::from_string))
        })
        .collect();
    // v2 (KIP-1073): fenced brokers too, when asked, marked as such.
    if version >= 2 && req.include_fenced_brokers {
        for (&id, b) in shard.image().brokers.iter().filter(|(_, b)| b.fenced) {
            resp.brokers.push(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(id))
                    .with_host(StrBytes::from_string(b.host.clone()))
                    .with_port(b.port as i32)
                    .with_rack(b.rack.clone().map(StrBytes::from_string))
                    .with_is_fenced(true),
            );
        }
        resp.brokers.sort_by_key(|b| b.broker_id.0);
    }
    resp
}
