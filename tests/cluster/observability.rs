//! `/metrics` of a cluster: a killed broker makes the partitions led by the
//! others under-replicated (and under their min ISR), as their leaders report
//! it; the count goes back to 0 once it rejoins. The active controller reports
//! offline partitions; the quorum gauges name the same leader on every node.
//!
//! Run with `cargo test --test cluster observability:: -- --nocapture`.

use std::time::Duration;

use crate::cluster_harness::*;

fn scrape(url: &str) -> Result<String, String> {
    ureq::get(&format!("{url}/metrics")).timeout(Duration::from_secs(10)).call().map_err(|e| e.to_string())?.into_string().map_err(|e| e.to_string())
}

/// The unlabelled sample `name`.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

/// Sums `name` over the running nodes (a node without the sample counts 0, but
/// one node at least must have it).
fn sum_over(c: &mut Cluster, name: &str) -> Result<f64, String> {
    let mut values = Vec::new();
    for id in c.running() {
        let text = scrape(&c.node(id).admin_url())?;
        values.extend(gauge(&text, name));
    }
    if values.is_empty() {
        return Err(format!("no node reports {name}"));
    }
    Ok(values.iter().sum())
}

#[test]
fn under_replicated_partitions_are_reported_by_their_leaders() {
    let mut c = Cluster::start(3, &[]);
    let r = create_topic_rf(&c.bootstrap(1), "obs", 6, 3, &[("min.insync.replicas", "3")], OP).expect("CreateTopics");
    assert_eq!(r.0, 0, "CreateTopics obs: {r:?}");
    wait_leaders(&c, "obs", 6, &[1, 2, 3], OP);
    let none =
        wait_until("no partition under-replicated", OP, Duration::from_millis(200), || match sum_over(&mut c, "shardlog_under_replicated_partitions")? {
            v if v == 0.0 => Ok(v),
            v => Err(format!("{v}")),
        });
    assert_eq!(none, 0.0);
    let leader = wait_until("the quorum leader on every node's metrics", OP, Duration::from_millis(200), || {
        let ids: Vec<f64> = c
            .running()
            .iter()
            .map(|id| scrape(&c.node(*id).admin_url()).ok().and_then(|t| gauge(&t, "shardlog_metadata_quorum_leader_id")).unwrap_or(-1.0))
            .collect();
        if ids.iter().all(|l| *l == ids[0] && *l > 0.0) {
            Ok(ids[0])
        } else {
            Err(format!("{ids:?}"))
        }
    });
    // Kill a broker that is not the quorum leader: the others shrink their ISRs.
    let victim = [1, 2, 3].into_iter().find(|id| *id as f64 != leader).unwrap();
    c.step(&format!("kill -9 node {victim}"));
    c.kill9(victim);
    let urp = wait_until("under-replicated partitions reported", Duration::from_secs(60), Duration::from_millis(300), || {
        let urp = sum_over(&mut c, "shardlog_under_replicated_partitions")?;
        let below = sum_over(&mut c, "shardlog_under_min_isr_partitions")?;
        if urp == 6.0 && below == 6.0 {
            Ok(urp)
        } else {
            Err(format!("under-replicated {urp}, under min ISR {below}"))
        }
    });
    assert_eq!(urp, 6.0);
    let offline = sum_over(&mut c, "shardlog_offline_partitions").unwrap();
    assert_eq!(offline, 0.0, "every partition still has a leader");
    assert!(sum_over(&mut c, "shardlog_isr_shrinks_total").unwrap() >= 1.0);
    c.step(&format!("restart node {victim}"));
    c.start_node(victim);
    wait_until("the rejoined replica back in every ISR", Duration::from_secs(90), Duration::from_millis(300), || {
        let v = sum_over(&mut c, "shardlog_under_replicated_partitions")?;
        if v == 0.0 {
            Ok(())
        } else {
            Err(format!("{v} under-replicated"))
        }
    });
    assert!(sum_over(&mut c, "shardlog_isr_expands_total").unwrap() >= 1.0);
}
