//! Operating a cluster under an idempotent acks=all load: rolling restarts
//! with controlled shutdown, preferred leader elections (API, CLI and
//! automatic), and scale-out/scale-in by reassignment (API and CLI, throttled,
//! cancelled midway, then a broker stopped and unregistered). Every scenario
//! ends with the checker: nothing acknowledged lost or duplicated, replicas
//! byte-identical.
//!
//! Run with `cargo test --test cluster operations:: -- --nocapture`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, BrokerId, ElectLeadersRequest, ListPartitionReassignmentsRequest, TopicName};

use crate::checker::*;
use crate::cluster_harness::*;
use crate::common::sb;
use crate::faults::*;
use crate::replication::{Layout, Scenario, PARTITIONS};

/// How long a partition may go without a leader per controlled restart (the bound).
const LEADERLESS_BOUND: Duration = Duration::from_secs(1);

fn cli(args: &[&str]) -> String {
    let out = shardlog(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "shardlog {args:?} failed: {text}");
    text
}

/// Polls partition leaders through `addr` every 25 ms while running; counts,
/// per partition, the longest stretch with no leader (-1) or led by the
/// broker in `down` (a broker whose process is gone).
struct LeaderWatch {
    stop: Arc<AtomicBool>,
    down: Arc<AtomicI32>,
    worst: Arc<Mutex<BTreeMap<i32, Duration>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LeaderWatch {
    fn start(addrs: Vec<String>, topic: String) -> LeaderWatch {
        let (stop, down, worst) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicI32::new(-2)), Arc::new(Mutex::new(BTreeMap::new())));
        let (s, d, w) = (stop.clone(), down.clone(), worst.clone());
        let thread = std::thread::spawn(move || {
            let mut since: BTreeMap<i32, Instant> = BTreeMap::new();
            while !s.load(Ordering::SeqCst) {
                // The first address that answers (the broker being restarted may not).
                let leaders = addrs.iter().find_map(|a| metadata(a, Some(&[topic.as_str()])).ok().and_then(|md| partition_leaders(&md, &topic).ok()));
                if let Some(leaders) = leaders {
                    let now = Instant::now();
                    for (p, (_, leader)) in leaders {
                        let without = leader < 0 || leader == d.load(Ordering::SeqCst);
                        if without {
                            let t = *since.entry(p).or_insert(now);
                            let mut w = w.lock().unwrap();
                            let e = w.entry(p).or_insert(Duration::ZERO);
                            *e = (*e).max(now - t);
                        } else {
                            since.remove(&p);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        });
        LeaderWatch { stop, down, worst, thread: Some(thread) }
    }

    fn take_worst(&self) -> BTreeMap<i32, Duration> {
        std::mem::take(&mut *self.worst.lock().unwrap())
    }
}

impl Drop for LeaderWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The longest gap between consecutive acknowledgements per partition among
/// `reports` done in `[from, to]` (the clients' view of unavailability).
fn ack_gaps(reports: &[Delivery], from: Instant, to: Instant) -> BTreeMap<i32, Duration> {
    let mut by_p: BTreeMap<i32, Vec<Instant>> = BTreeMap::new();
    for r in reports.iter().filter(|r| r.result.is_ok() && r.done >= from && r.done <= to) {
        by_p.entry(r.partition).or_default().push(r.done);
    }
    by_p.into_iter()
        .map(|(p, mut t)| {
            t.sort();
            (p, t.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default())
        })
        .collect()
}

/// Every partition's leader is its first replica.
fn wait_preferred_leaders(c: &Cluster, topic: &str, timeout: Duration) {
    wait_until(&format!("every partition of {topic} led by its preferred replica"), timeout, Duration::from_millis(200), || {
        for p in 0..PARTITIONS {
            let s = partition_state(c, topic, p)?;
            if s.replicas.first() != Some(&s.leader) {
                return Err(format!("{topic}-{p}: {s:?}"));
            }
        }
        Ok(())
    });
}

/// 1. Rolling restart: each broker in turn gets SIGTERM (controlled shutdown)
///    under load and starts again; no partition goes without a leader for
///    more than 1 s, no delivery fails. Then preferred elections, through the
///    API for one partition and the CLI for all, put every leader back on its
///    first replica. The checker is clean, replicas identical.
#[test]
fn rolling_restart_under_load_then_preferred_election() {
    let mut s = Scenario::start_with("rolling_restart", Layout::Combined, &[("auto.leader.rebalance.enable", "false")], &[]);
    s.start_load(LoadOpts::default());
    s.run_for(Duration::from_secs(2));
    let topic = s.topic.clone();
    let watch = LeaderWatch::start(s.c.ids().iter().map(|&id| s.c.bootstrap(id)).collect(), topic.clone());
    let mut windows = Vec::new();
    for id in s.c.ids() {
        let t0 = Instant::now();
        s.c.stop_nodes(&[id]);
        watch.down.store(id, Ordering::SeqCst);
        let stopped = t0.elapsed();
        s.run_for(Duration::from_millis(500));
        s.c.start_node(id);
        watch.down.store(-2, Ordering::SeqCst);
        wait_full_isr(&s.c, &topic, PARTITIONS, OP + Duration::from_millis(crate::replication::LAG_MS));
        let worst = watch.take_worst();
        s.step(&format!("restart of {id}: stopped in {:.2}s; longest leaderless stretch per partition {worst:?}", stopped.as_secs_f64()));
        for (p, d) in &worst {
            assert!(*d <= LEADERLESS_BOUND, "{topic}-{p} had no live leader for {d:?} during the restart of broker {id}");
        }
        windows.push((id, t0, Instant::now()));
        s.run_for(Duration::from_secs(1));
    }
    drop(watch);
    let reports = s.load().reports();
    for (id, from, to) in &windows {
        let gaps = ack_gaps(&reports, *from, *to);
        for (p, g) in &gaps {
            eprintln!("TIMING controlled_restart broker={id} partition={p} longest_ack_gap_s={:.3}", g.as_secs_f64());
        }
    }
    let failed: Vec<&Delivery> = reports.iter().filter(|r| r.result.is_err()).collect();
    assert!(failed.is_empty(), "{} deliveries failed during the rolling restart, e.g. {:?}", failed.len(), failed.first());

    // Preferred election through the API for partition 0 (it may already be led by its first replica).
    let addr = s.c.bootstrap(1);
    let req = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_topic_partitions(Some(vec![TopicPartitions::default().with_topic(TopicName(sb(&topic))).with_partitions(vec![0])]))
        .with_timeout_ms(10_000);
    let resp = raw_call(&addr, 2, &req, Duration::from_secs(20)).expect("ElectLeaders");
    let code = resp.replica_election_results[0].partition_result[0].error_code;
    assert!(code == 0 || code == 84, "ElectLeaders for {topic}-0: error {code}");
    let st = partition_state(&s.c, &topic, 0).expect("state");
    assert_eq!(st.replicas.first(), Some(&st.leader), "{topic}-0 after a preferred election: {st:?}");
    // Every partition through the CLI.
    let out = cli(&["leader-election", "--election-type", "preferred", "--all-topic-partitions", "--bootstrap-server", &s.c.bootstrap_all()]);
    s.step(&format!("leader-election: {}", out.trim()));
    wait_preferred_leaders(&s.c, &topic, Duration::from_secs(10));
    s.finish();
}

/// 2. Automatic rebalancing: with `leader.imbalance.check.interval.seconds=2`,
///    a broker restarted under load gets its preferred leaderships back by
///    itself once it is in sync again.
#[test]
fn auto_rebalance_restores_preferred_leaders() {
    let mut s = Scenario::start_with("auto_rebalance", Layout::Combined, &[("leader.imbalance.check.interval.seconds", "2")], &[]);
    s.start_load(LoadOpts::default());
    s.run_for(Duration::from_secs(1));
    let topic = s.topic.clone();
    wait_preferred_leaders(&s.c, &topic, Duration::from_secs(15));
    let st = partition_state(&s.c, &topic, 0).expect("state");
    let preferred = st.leader;
    s.c.stop_nodes(&[preferred]);
    let moved = partition_state(&s.c, &topic, 0).map(|s| s.leader).unwrap_or(-1);
    s.step(&format!("stopped {preferred} (preferred leader of {topic}-0); leader now {moved}"));
    assert_ne!(moved, preferred);
    s.c.start_node(preferred);
    let t0 = Instant::now();
    wait_full_isr(&s.c, &topic, PARTITIONS, OP + Duration::from_millis(crate::replication::LAG_MS));
    wait_preferred_leaders(&s.c, &topic, Duration::from_secs(20));
    s.step(&format!("every leader back on its preferred replica {:.2}s after the restart", t0.elapsed().as_secs_f64()));
    s.finish();
}

fn reassign_file(dir: &std::path::Path, name: &str, topic: &str, moves: &[(i32, Vec<i32>)]) -> String {
    let parts: Vec<serde_json::Value> = moves.iter().map(|(p, r)| serde_json::json!({"topic": topic, "partition": p, "replicas": r})).collect();
    let path = dir.join(name);
    std::fs::write(&path, serde_json::json!({"version": 1, "partitions": parts}).to_string()).expect("write reassignment file");
    path.display().to_string()
}

/// (replicas, adding, removing) of an ongoing reassignment.
type Moving = (Vec<i32>, Vec<i32>, Vec<i32>);

/// Ongoing reassignments of `topic` by partition.
fn ongoing(addr: &str, topic: &str) -> BTreeMap<i32, Moving> {
    let req = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(Some(vec![ListPartitionReassignmentsTopics::default().with_name(TopicName(sb(topic))).with_partition_indexes((0..PARTITIONS).collect())]));
    let resp = raw_call(addr, 0, &req, Duration::from_secs(20)).expect("ListPartitionReassignments");
    assert_eq!(resp.error_code, 0);
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    resp.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, (ids(&p.replicas), ids(&p.adding_replicas), ids(&p.removing_replicas)))))
        .collect()
}

/// 3. Scale out, then in, under load: a fourth broker joins; a reassignment
///    onto it, throttled to a crawl, is cancelled midway and the partition
///    keeps its old replicas (the new copy is deleted); then every replica of
///    broker 3 moves to broker 4 (partition 0 through the API, the others
///    through `partitions reassign --execute`, all checked with `--verify`);
///    broker 3 is stopped and unregistered; every acknowledged record is
///    still readable and the replicas are identical.
#[test]
fn scale_out_and_in_by_reassignment_under_load() {
    let mut s = Scenario::start("scale_out_in", Layout::Combined);
    s.start_load(LoadOpts::default());
    s.run_for(Duration::from_secs(3));
    let topic = s.topic.clone();
    let new = s.c.add_broker();
    wait_until("the new broker to serve the cluster's metadata", OP, Duration::from_millis(100), || partition_state_via(&s.c, new, &topic, 0));
    let bootstrap = s.c.bootstrap_all();
    let files = tempfile::tempdir().expect("temp dir");
    let before: BTreeMap<i32, Vec<i32>> = (0..PARTITIONS).map(|p| (p, partition_state(&s.c, &topic, p).expect("state").replicas)).collect();
    let target = |p: i32| before[&p].iter().map(|&r| if r == 3 { new } else { r }).collect::<Vec<_>>();

    // A crawl (100 B/s): the copy cannot catch up with the load, so the reassignment stays in progress.
    let slow = reassign_file(files.path(), "slow.json", &topic, &[(0, target(0))]);
    let out = cli(&["partitions", "reassign", "--execute", "--reassignment-json-file", &slow, "--throttle", "100", "--bootstrap-server", &bootstrap]);
    s.step(&format!("throttled reassignment of {topic}-0 started: {}", out.lines().last().unwrap_or("")));
    s.run_for(Duration::from_secs(3));
    let going = ongoing(&s.c.bootstrap(1), &topic);
    assert_eq!(going.get(&0).map(|g| g.1.clone()), Some(vec![new]), "{topic}-0 should still be adding broker {new}: {going:?}");
    let out = cli(&["partitions", "reassign", "--cancel", "--reassignment-json-file", &slow, "--bootstrap-server", &bootstrap]);
    s.step(&format!("cancelled: {}", out.trim()));
    let cancelled = wait_until("the cancelled reassignment to end", OP, Duration::from_millis(100), || {
        let st = partition_state(&s.c, &topic, 0)?;
        if st.replicas.contains(&new) || !ongoing(&s.c.bootstrap(1), &topic).is_empty() {
            return Err(format!("{st:?}"));
        }
        Ok(st)
    });
    let (mut kept, mut was) = (cancelled.replicas.clone(), before[&0].clone());
    kept.sort();
    was.sort();
    assert_eq!(kept, was, "the cancelled partition keeps its old replicas");
    let copy = s.c.data_dir(new).join(format!("{topic}-0"));
    wait_until("the cancelled copy on the new broker to be deleted", OP, Duration::from_millis(100), || {
        if copy.exists() {
            Err(copy.display().to_string())
        } else {
            Ok(())
        }
    });

    // Move every replica of broker 3 onto the new broker: partition 0 through the API ...
    let req = AlterPartitionReassignmentsRequest::default().with_timeout_ms(10_000).with_topics(vec![ReassignableTopic::default()
        .with_name(TopicName(sb(&topic)))
        .with_partitions(vec![ReassignablePartition::default().with_partition_index(0).with_replicas(Some(target(0).into_iter().map(BrokerId).collect()))])]);
    let resp = raw_call(&s.c.bootstrap(1), 0, &req, Duration::from_secs(20)).expect("AlterPartitionReassignments");
    assert_eq!(resp.responses[0].partitions[0].error_code, 0, "{:?}", resp.responses[0].partitions[0].error_message);
    // ... the others through the CLI, and all verified by it.
    let rest = reassign_file(files.path(), "rest.json", &topic, &(1..PARTITIONS).map(|p| (p, target(p))).collect::<Vec<_>>());
    // p0 is already moving (through the API): Kafka's tool then wants --additional.
    cli(&["partitions", "reassign", "--execute", "--additional", "--reassignment-json-file", &rest, "--bootstrap-server", &bootstrap]);
    let all = reassign_file(files.path(), "all.json", &topic, &(0..PARTITIONS).map(|p| (p, target(p))).collect::<Vec<_>>());
    let t0 = Instant::now();
    let out =
        cli(&["partitions", "reassign", "--verify", "--reassignment-json-file", &all, "--wait", "--timeout-ms", "60000", "--bootstrap-server", &bootstrap]);
    s.step(&format!("reassignments complete after {:.2}s: {}", t0.elapsed().as_secs_f64(), out.lines().filter(|l| l.contains("completed")).count()));
    assert_eq!(out.matches("is completed").count(), PARTITIONS as usize, "{out}");
    for p in 0..PARTITIONS {
        let st = partition_state(&s.c, &topic, p).expect("state");
        assert_eq!(st.replicas, target(p), "{topic}-{p}");
        assert!(!s.c.data_dir(3).join(format!("{topic}-{p}")).exists() || wait_gone(&s.c.data_dir(3).join(format!("{topic}-{p}"))));
    }
    wait_full_isr(&s.c, &topic, PARTITIONS, OP);

    // Scale in: broker 3 holds nothing of the topic any more; stop and unregister it.
    s.c.stop_nodes(&[3]);
    let out = cli(&["cluster", "unregister", "--id", "3", "--bootstrap-server", &s.c.bootstrap(1)]);
    s.step(out.trim());
    wait_until("broker 3 to leave the cluster's metadata", OP, Duration::from_millis(200), || {
        let md = metadata(&s.c.bootstrap(1), Some(&[topic.as_str()]))?;
        if broker_ids(&md).contains(&3) {
            return Err(format!("{:?}", broker_ids(&md)));
        }
        Ok(())
    });
    s.run_for(Duration::from_secs(2));
    let failed = s.load().reports().iter().filter(|r| r.result.is_err()).count();
    assert_eq!(failed, 0, "deliveries failed while scaling out and in");
    s.check_everything();
}

/// Waits (up to [`OP`]) for a removed replica's directory to be deleted.
fn wait_gone(path: &std::path::Path) -> bool {
    wait_until(&format!("{} to be deleted", path.display()), OP, Duration::from_millis(100), || if path.exists() { Err(String::new()) } else { Ok(()) });
    true
}
