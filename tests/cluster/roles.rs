//! Separate roles end to end: three controller-only voters (`process.roles=controller`,
//! no client listener) and three broker-only nodes (`process.roles=broker`, no
//! Raft member: they fetch the committed metadata log from the active
//! controller), one shard each, of the real `shardlog` binary on 127.0.0.1.
//!
//! 1. Metadata lists exactly the three brokers, never a controller; a
//!    6-partition topic is spread 2/2/2 over them; records produced through one
//!    broker are consumed through another;
//! 2. kill -9 of a broker: its partitions go leaderless after the session
//!    timeout; restarted, it leads them again with its data;
//! 3. a SIGTERM restart of a broker-only node (it keeps no metadata on disk)
//!    keeps its data and it serves again;
//! 4. kill -9 of the quorum leader (a controller-only node): a new leader, and
//!    CreateTopics works again.
//!
//! Run with `cargo test --test cluster roles:: -- --nocapture --test-threads=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::cluster_harness::*;

/// Controllers 1..=3, brokers 4..=6.
fn six() -> Cluster {
    let c = Cluster::start_roles(3, 3, &[]);
    assert_eq!(c.voter_ids(), vec![1, 2, 3]);
    assert_eq!(c.broker_ids(), vec![4, 5, 6]);
    c
}

/// Broker `id`'s partitions of `topic` leaderless on `survivors`, the others unchanged.
fn wait_fenced(c: &Cluster, victim: i32, survivors: &[i32], topic: &str, before: &BTreeMap<i32, i32>) {
    let victims: BTreeSet<i32> = before.iter().filter(|(_, &l)| l == victim).map(|(&p, _)| p).collect();
    let limit = Duration::from_millis(SESSION_TIMEOUT_MS) + Duration::from_secs(10);
    wait_until(&format!("broker {victim} fenced: its partitions {victims:?} leaderless on {survivors:?}"), limit, Duration::from_millis(50), || {
        for &id in survivors {
            let md = metadata(&c.bootstrap(id), Some(&[topic]))?;
            if broker_ids(&md).contains(&victim) {
                return Err(format!("node {id} still lists broker {victim}: {:?}", broker_ids(&md)));
            }
            for (p, (err, l)) in partition_leaders(&md, topic)? {
                let want = if victims.contains(&p) { (LEADER_NOT_AVAILABLE, -1) } else { (NONE, before[&p]) };
                if (err, l) != want {
                    return Err(format!("node {id}: partition {p} (error, leader) ({err}, {l}), want {want:?}"));
                }
            }
        }
        Ok(())
    });
}

/// (1)-(3): the brokers serve, a killed broker is fenced and comes back with
/// its data, a restarted broker-only node rebuilds its image from the
/// controller and serves its data again.
#[test]
fn broker_only_nodes_serve_and_recover_beside_controller_only_nodes() {
    let mut c = six();
    let brokers = c.broker_ids();
    // Every broker lists exactly the brokers; no controller is a broker.
    for &id in &brokers {
        let md = metadata(&c.bootstrap(id), Some(&[])).expect("Metadata");
        assert_eq!(broker_ids(&md), brokers, "node {id}'s broker list");
    }
    create(&c, 4, "roles", 6, &[]);
    let before = wait_leaders(&c, "roles", 6, &brokers, OP);
    let counts: BTreeMap<i32, usize> = before.values().fold(BTreeMap::new(), |mut m, l| {
        *m.entry(*l).or_insert(0) += 1;
        m
    });
    assert_eq!(counts, BTreeMap::from([(4, 2), (5, 2), (6, 2)]), "6 partitions over brokers 4, 5, 6: {before:?}");
    produce(&c, &c.bootstrap(4), "roles", 6, 50);
    assert_all_records(&c, &c.bootstrap(5), "roles", 6, 50);

    // kill -9 of broker 6: fenced, then back with its data.
    c.kill9(6);
    let t0 = Instant::now();
    wait_fenced(&c, 6, &[4, 5], "roles", &before);
    let fenced = t0.elapsed();
    c.step(&format!("broker 6 fenced {:.3}s after the kill (session timeout {SESSION_TIMEOUT_MS} ms)", fenced.as_secs_f64()));
    eprintln!("TIMING roles_broker_fencing fenced_s={:.3}", fenced.as_secs_f64());
    c.start_node(6);
    let t1 = Instant::now();
    let after = wait_leaders(&c, "roles", 6, &brokers, OP);
    c.step(&format!("broker 6 leads its partitions again {:.3}s after its restart", t1.elapsed().as_secs_f64()));
    assert_eq!(after, before, "leadership after broker 6's restart");
    assert_all_records(&c, &c.bootstrap(4), "roles", 6, 50);
    produce_range(&c, &c.bootstrap(6), "roles", 6, 50..60);

    // A clean restart of broker 5: it starts from an empty image, fetches the
    // metadata again, opens its partitions' logs with their data and serves.
    c.stop_nodes(&[5]);
    c.start_node(5);
    c.wait_formed();
    let again = wait_leaders(&c, "roles", 6, &brokers, OP);
    assert_eq!(again, before, "leadership after broker 5's restart");
    assert_all_records(&c, &c.bootstrap(5), "roles", 6, 60);
    produce_range(&c, &c.bootstrap(5), "roles", 6, 60..70);
    assert_all_records(&c, &c.bootstrap(6), "roles", 6, 70);
}

/// (4): kill -9 of the quorum leader, a controller-only node: the two other
/// controllers elect a new leader, and the brokers' CreateTopics (forwarded to
/// it) works again; the brokers keep serving meanwhile.
#[test]
fn controller_only_leader_kill9_elects_a_new_leader_and_create_topics_works() {
    let mut c = six();
    let (old, old_epoch) = wait_until("a quorum leader all brokers agree on", OP, POLL, || c.quorum_leader());
    assert!(c.voter_ids().contains(&old), "the quorum leader {old} is a controller");
    create(&c, 5, "before", 3, &[]);
    wait_leaders(&c, "before", 3, &c.broker_ids(), OP);

    c.kill9(old);
    let t0 = Instant::now();
    let brokers = c.broker_ids();
    let mut attempt = 0;
    let name = wait_until("CreateTopics through a broker to succeed after the kill", Duration::from_secs(30), Duration::from_millis(50), || {
        attempt += 1;
        let (via, name) = (brokers[attempt % brokers.len()], format!("after-{attempt}"));
        match create_topic_raw(&c.bootstrap(via), &name, 3, &[], Duration::from_secs(2)) {
            Ok((NONE, _)) => Ok(name),
            answer => Err(format!("CreateTopics {name} via node {via}: {answer:?}")),
        }
    });
    let t_create = t0.elapsed();
    c.step(&format!("CreateTopics {name} succeeded {:.3}s after the kill ({attempt} attempts)", t_create.as_secs_f64()));
    let (new, new_epoch) = wait_until("a new quorum leader", OP, POLL, || match c.quorum_leader() {
        Ok((l, _)) if l == old => Err(format!("the quorum still names {old}")),
        other => other,
    });
    c.step(&format!("new quorum leader {new} (epoch {new_epoch}, was {old} epoch {old_epoch})"));
    assert!(c.voter_ids().contains(&new) && new != old && new_epoch > old_epoch);
    eprintln!("TIMING roles_controller_failover create_topics_s={:.3}", t_create.as_secs_f64());
    let leaders = wait_leaders(&c, &name, 3, &c.broker_ids(), OP);
    assert!(leaders.values().all(|l| c.broker_ids().contains(l)), "{name} led by brokers only: {leaders:?}");
    // Nothing was fenced: the brokers heartbeat to the new controller.
    c.wait_formed();
    produce(&c, &c.bootstrap(6), "before", 3, 10);
    assert_all_records(&c, &c.bootstrap(4), "before", 3, 10);
}
