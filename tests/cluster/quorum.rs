//! Cluster mode end to end: three combined nodes (broker + controller, one
//! shard each) of the real `shardlog` binary on 127.0.0.1, driven by librdkafka
//! and raw Kafka requests.
//!
//! 1. the cluster forms: every broker's Metadata lists all three;
//! 2. a 12-partition topic created through one broker is led 4/4/4;
//! 3. records produced through broker 1 are consumed through broker 2, all, in order;
//! 4. FindCoordinator of a group lands on the leader of its `__consumer_offsets`
//!    partition, from every broker; its commits survive a whole-cluster restart;
//! 5. kill -9 of the quorum leader: a new leader, CreateTopics succeeds within 3 s;
//! 6. kill -9 of a broker: its partitions go leaderless after the session timeout
//!    and it leaves the broker list; restarted, it leads them again with its data;
//! 7. a whole-cluster SIGTERM restart keeps topics, topic configs, data and offsets;
//! 8. after kill -9 of every node, two come back and fence the third; it returns
//!    and every record and commit is there.
//!
//! Every step prints its time since the cluster started (`[cluster +S.SSSs]`);
//! names and values are fixed, the ports and cluster id (printed) are the only
//! things that change between runs. Run with
//! `cargo test --test cluster quorum:: -- --nocapture --test-threads=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::cluster_harness::*;
use crate::common;
use common::client_config;
use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};
use kafka_protocol::records::Compression;
use rdkafka::admin::{AdminClient, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

fn group_consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    client_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("group consumer")
}

/// Commits `offsets` (partition -> next offset) of `topic` for `group` through
/// `bootstrap`, from a consumer outside the group (generation -1).
fn commit(bootstrap: &str, group: &str, topic: &str, offsets: &BTreeMap<i32, i64>) {
    let consumer = group_consumer(bootstrap, group);
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in offsets {
        tpl.add_partition_offset(topic, p, Offset::Offset(o)).expect("tpl");
    }
    consumer.commit(&tpl, CommitMode::Sync).unwrap_or_else(|e| panic!("commit of group {group} through {bootstrap}: {e}"));
}

/// OffsetFetch through librdkafka: partition -> committed offset (retried while the coordinator loads).
fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer = group_consumer(bootstrap, group);
    wait_until(&format!("committed offsets of {group} through {bootstrap}"), Duration::from_secs(60), Duration::from_millis(300), || {
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let t = consumer.committed_offsets(tpl, Duration::from_secs(10)).map_err(|e| e.to_string())?;
        let mut m = BTreeMap::new();
        for e in t.elements() {
            e.error().map_err(|x| format!("partition {}: {x}", e.partition()))?;
            match e.offset() {
                Offset::Offset(o) => m.insert(e.partition(), o),
                other => m.insert(e.partition(), -1000 - format!("{other:?}").len() as i64),
            };
        }
        Ok(m)
    })
}

/// The quorum leader: DescribeQuorum if the nodes answer it, else the
/// newest `became leader` line in the nodes' logs (printed loudly).
fn find_quorum_leader(c: &mut Cluster) -> (i32, i32) {
    let t0 = Instant::now();
    let mut last = String::new();
    while t0.elapsed() < Duration::from_secs(20) {
        match c.quorum_leader() {
            Ok(l) => {
                c.step(&format!("DescribeQuorum: leader {} epoch {}", l.0, l.1));
                return l;
            }
            Err(e) => last = e,
        }
        std::thread::sleep(POLL);
    }
    c.step(&format!("NOTE: no agreed DescribeQuorum answer within 20s ({last}); falling back to the nodes' logs"));
    let mut best: Option<(i32, i32)> = None;
    for n in &c.nodes {
        for line in n.output().lines().filter(|l| l.contains("became leader")) {
            let term = line.split("term=").nth(1).and_then(|s| s.split(|ch: char| !ch.is_ascii_digit()).next()).and_then(|s| s.parse::<i32>().ok());
            if let Some(t) = term {
                if best.is_none_or(|(_, bt)| t > bt) {
                    best = Some((n.id, t));
                }
            }
        }
    }
    let l = best.expect("no `became leader` line in any node's log either");
    c.step(&format!("from the logs: leader {} term {}", l.0, l.1));
    l
}

// ---------------------------------------------------------------------------

/// (1) Three nodes form a cluster: every node's Metadata (raw, and through
/// librdkafka bootstrapped from that node alone) lists brokers 1, 2, 3 at
/// their client ports, with the formatted cluster id.
#[test]
fn cluster_forms_and_every_broker_lists_all_three() {
    let c = Cluster::start(3, &[]);
    for n in &c.nodes {
        let md = metadata(&n.bootstrap(), None).expect("Metadata");
        let brokers: BTreeMap<i32, (String, i32)> = md.brokers.iter().map(|b| (b.node_id.0, (b.host.to_string(), b.port))).collect();
        let want: BTreeMap<i32, (String, i32)> = c.nodes.iter().map(|m| (m.id, ("127.0.0.1".to_string(), m.port as i32))).collect();
        assert_eq!(brokers, want, "node {}'s brokers", n.id);
        assert_eq!(md.cluster_id.as_deref(), Some(c.cluster_id.as_str()), "node {}'s cluster id", n.id);
        assert!(c.ids().contains(&md.controller_id.0), "node {}: controller id {} is not a node", n.id, md.controller_id.0);

        let consumer: BaseConsumer = client_config(&n.bootstrap()).create().expect("client");
        let rd = consumer.fetch_metadata(None, OP).expect("librdkafka fetch_metadata");
        let mut ids: Vec<i32> = rd.brokers().iter().map(|b| b.id()).collect();
        ids.sort();
        assert_eq!(ids, vec![1, 2, 3], "librdkafka bootstrapped from node {}", n.id);
    }
    c.step("every node lists brokers 1, 2, 3");
}

/// (2) A 12-partition topic (replication factor 1) created through node 1 is
/// spread evenly: every broker leads 4 partitions, as every node reports.
#[test]
fn twelve_partitions_are_led_four_by_each_broker() {
    let c = Cluster::start(3, &[]);
    create(&c, 1, "spread", 12, &[]);
    let leaders = wait_leaders(&c, "spread", 12, &c.ids(), OP);
    let counts = leader_counts(&leaders);
    c.step(&format!("partitions led per broker: {counts:?}"));
    for id in c.ids() {
        assert_eq!(counts.get(&id).copied().unwrap_or(0), 4, "broker {id} should lead 4 of 12 partitions: {counts:?}");
    }
}

/// (3) Records produced through broker 1's bootstrap are all consumed, in
/// order per partition, through broker 2's bootstrap (partitions led by
/// every broker, so both clients reach all three).
#[test]
fn produced_through_one_broker_consumed_through_another() {
    let c = Cluster::start(3, &[]);
    block_on(common::create_topic(&c.bootstrap(1), "routed", 6));
    let leaders = wait_leaders(&c, "routed", 6, &c.ids(), OP);
    let led_by: BTreeSet<i32> = leaders.values().copied().collect();
    assert_eq!(led_by, c.ids().into_iter().collect(), "precondition: every broker leads a partition of routed: {leaders:?}");
    produce(&c, &c.bootstrap(1), "routed", 6, 300);
    assert_all_records(&c, &c.bootstrap(2), "routed", 6, 300);

    // Sent to a broker that does not lead the partition: NOT_LEADER_OR_FOLLOWER.
    let (&p, &leader) = leaders.iter().find(|(_, &l)| l != 1).expect("a partition node 1 does not lead");
    let mut conn = common::RawConn::connect(&c.bootstrap(1));
    let batch = common::record_batch(&[common::plain_record(0, 1, None, Some(bytes::Bytes::from_static(b"x")))], Compression::None);
    let r = common::produce_raw(&mut conn, 9, -1, "routed", p, batch);
    assert_eq!(r.error_code, NOT_LEADER_OR_FOLLOWER, "Produce to routed-{p} (led by {leader}) through node 1: {r:?}");
    let f = conn.roundtrip(12, &common::fetch_request("routed", p, 0, 0, 1));
    let fe = f.responses[0].partitions[0].error_code;
    assert_eq!(fe, NOT_LEADER_OR_FOLLOWER, "Fetch of routed-{p} (led by {leader}) through node 1");
    c.step(&format!("Produce and Fetch of routed-{p} (led by {leader}) through node 1: NOT_LEADER_OR_FOLLOWER"));

    // Producer ids come in blocks from the controller: unique cluster-wide.
    let mut ids = BTreeSet::new();
    for id in c.ids() {
        for _ in 0..2 {
            let mut conn = common::RawConn::connect(&c.bootstrap(id));
            let r = conn.roundtrip(
                4,
                &InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60_000)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            );
            assert_eq!(r.error_code, NONE, "InitProducerId through node {id}: {r:?}");
            assert!(ids.insert(r.producer_id.0), "producer id {} handed out twice (node {id}): {ids:?}", r.producer_id.0);
        }
    }
    c.step(&format!("InitProducerId twice through each node: distinct producer ids {ids:?}"));
}

/// (4) FindCoordinator of a group, asked of every broker, names the leader of
/// the group's `__consumer_offsets` partition (Kafka's hash rule); a member
/// joined through broker 3 consumes everything and commits; the commits read
/// back through broker 2, and again after a whole-cluster SIGTERM restart.
#[test]
fn group_coordinator_is_the_offsets_partition_leader_and_commits_survive_restart() {
    let mut c = Cluster::start(3, &[("group.initial.rebalance.delay.ms", "0")]);
    let (topic, group) = ("orders", "cluster-it-billing");
    create(&c, 1, topic, 6, &[]);
    wait_leaders(&c, topic, 6, &c.ids(), OP);
    produce(&c, &c.bootstrap(1), topic, 6, 50);

    // A member joined through broker 3 reads all 300 records and commits them.
    let t0 = Instant::now();
    let member = group_consumer(&c.bootstrap(3), group);
    member.subscribe(&[topic]).expect("subscribe");
    let mut got = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < 300 && Instant::now() < deadline {
        match member.poll(Duration::from_millis(200)) {
            Some(Ok(_)) => got += 1,
            Some(Err(e)) => eprintln!("member poll error (keeps polling): {e}"),
            None => {}
        }
    }
    assert_eq!(got, 300, "the group member consumed {got} of 300 records within 60 s");
    member.commit_consumer_state(CommitMode::Sync).expect("commit the consumed positions");
    c.step(&format!("member through node 3 consumed and committed 300 records in {:.2}s", t0.elapsed().as_secs_f64()));
    drop(member);
    let want: BTreeMap<i32, i64> = (0..6).map(|p| (p, 50)).collect();

    // The coordinator: the leader of partition abs(hash(group)) % N of __consumer_offsets.
    let check_coordinator = |c: &Cluster| {
        // After a restart of every node the partition has a leader again once the
        // broker that was last in its ISR (the last one to stop) is unfenced.
        let (p, parts, leader) = wait_until("the group's __consumer_offsets partition to have a leader", OP, POLL, || {
            let md = metadata(&c.bootstrap(1), Some(&["__consumer_offsets"]))?;
            let parts = partition_leaders(&md, "__consumer_offsets")?;
            let p = offsets_partition(group, parts.len() as i32);
            match parts.get(&p) {
                Some(&(NONE, leader)) if leader >= 0 => Ok((p, parts.len(), leader)),
                other => Err(format!("__consumer_offsets-{p}: {other:?}")),
            }
        });
        c.step(&format!("{group} -> __consumer_offsets-{p} of {parts} partitions, led by {leader}"));
        for id in c.ids() {
            let r = wait_until(&format!("FindCoordinator({group}) from node {id}"), OP, POLL, || match find_group_coordinator(&c.bootstrap(id), group)? {
                (NONE, node) => Ok(node),
                other => Err(format!("(error, node) {other:?}")),
            });
            assert_eq!(r, leader, "FindCoordinator({group}) from node {id}: coordinator {r}, but __consumer_offsets-{p} is led by {leader}");
        }
        c.step("FindCoordinator from every node names that leader");
    };
    check_coordinator(&c);
    assert_eq!(committed(&c.bootstrap(2), group, topic, 6), want, "committed offsets through node 2");

    c.restart_all();
    check_coordinator(&c);
    assert_eq!(committed(&c.bootstrap(1), group, topic, 6), want, "committed offsets after the restart");
    c.step("committed offsets read back equal after the restart");
}

/// (5) kill -9 of the quorum leader (found with DescribeQuorum): the two others
/// elect a new leader and CreateTopics succeeds again within 3 s of the kill;
/// the killed node restarts, catches up, and sees the topics created without it.
#[test]
fn controller_failover_after_kill9_of_the_quorum_leader() {
    let mut c = Cluster::start(3, &[]);
    let (old, old_epoch) = find_quorum_leader(&mut c);
    create(&c, old, "before-failover", 3, &[]);
    let before = wait_leaders(&c, "before-failover", 3, &c.ids(), OP);
    let survivors: Vec<i32> = c.ids().into_iter().filter(|&id| id != old).collect();

    c.kill9(old);
    let t0 = Instant::now();
    let mut created: Option<(Duration, String)> = None;
    let mut new_leader: Option<(Duration, i32, i32)> = None;
    let mut attempt = 0;
    let mut last = String::new();
    while (created.is_none() || new_leader.is_none()) && t0.elapsed() < Duration::from_secs(30) {
        if new_leader.is_none() {
            match c.quorum_leader() {
                Ok((l, e)) if l != old => new_leader = Some((t0.elapsed(), l, e)),
                Ok(l) => last = format!("quorum still names {l:?}"),
                Err(e) => last = e,
            }
        }
        if created.is_none() {
            attempt += 1;
            let via = survivors[attempt % survivors.len()];
            let name = format!("after-failover-{attempt}");
            match create_topic_raw(&c.bootstrap(via), &name, 3, &[], Duration::from_secs(2)) {
                Ok((NONE, _)) => created = Some((t0.elapsed(), name)),
                Ok(r) => last = format!("CreateTopics {name} via node {via}: {r:?}"),
                Err(e) => last = format!("CreateTopics {name} via node {via}: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (t_create, name) = created.unwrap_or_else(|| panic!("CreateTopics did not succeed within 30 s of killing the quorum leader; last: {last}"));
    c.step(&format!("CreateTopics {name} succeeded {:.3}s after the kill ({attempt} attempts)", t_create.as_secs_f64()));
    match new_leader {
        Some((t, l, e)) => {
            c.step(&format!("new quorum leader {l} (epoch {e}, was {old} epoch {old_epoch}) seen {:.3}s after the kill", t.as_secs_f64()));
            assert!(survivors.contains(&l) && e > old_epoch, "new leader {l} epoch {e} after {old} epoch {old_epoch}");
        }
        None => panic!("no new quorum leader through DescribeQuorum within 30 s: {last}"),
    }
    eprintln!(
        "TIMING controller_failover create_topics_s={:.3} new_leader_s={:.3}",
        t_create.as_secs_f64(),
        new_leader.map(|x| x.0.as_secs_f64()).unwrap_or(-1.0)
    );
    assert!(t_create <= Duration::from_secs(3), "CreateTopics succeeded only {:.3}s after the kill (limit 3 s)", t_create.as_secs_f64());

    // The new controller fences the old one's broker: gone from every
    // survivor's broker list, the partitions it led leaderless.
    let t_fenced = wait_until(&format!("the new controller to fence broker {old}"), Duration::from_secs(20), POLL, || {
        for &id in &survivors {
            let md = metadata(&c.bootstrap(id), Some(&["before-failover"]))?;
            if broker_ids(&md).contains(&old) {
                return Err(format!("node {id} still lists broker {old}: {:?}", broker_ids(&md)));
            }
            for (p, (err, l)) in partition_leaders(&md, "before-failover")? {
                let want = if before[&p] == old { (LEADER_NOT_AVAILABLE, -1) } else { (NONE, before[&p]) };
                if (err, l) != want {
                    return Err(format!("node {id}: before-failover-{p} (error, leader) ({err}, {l}), want {want:?}"));
                }
            }
        }
        Ok(t0.elapsed())
    });
    c.step(&format!("broker {old} fenced by the new controller {:.3}s after the kill", t_fenced.as_secs_f64()));

    // The killed node comes back as a follower and catches up.
    c.start_node(old);
    c.wait_formed();
    wait_until(&format!("node {old} to see the topics created without it"), OP, POLL, || {
        let md = metadata(&c.bootstrap(old), Some(&["before-failover", &name]))?;
        for t in ["before-failover", name.as_str()] {
            let ps = partition_leaders(&md, t)?;
            if ps.len() != 3 {
                return Err(format!("{t}: {} partitions", ps.len()));
            }
        }
        Ok(())
    });
    let agreed = wait_until("all three nodes to agree on the quorum leader", OP, POLL, || c.quorum_leader());
    c.step(&format!("after the rejoin every node names quorum leader {} (epoch {})", agreed.0, agreed.1));
    create(&c, old, "after-rejoin", 3, &[]);
    wait_leaders(&c, "after-rejoin", 3, &c.ids(), OP);
}

/// (6) kill -9 of a broker that is not the quorum leader: within the session
/// timeout (plus slack) every partition it led shows no leader
/// (LEADER_NOT_AVAILABLE, leader -1) and it leaves every broker list, the
/// other partitions keep their leaders; restarted, it leads them again and
/// every record produced before the kill is readable.
#[test]
fn killed_broker_is_fenced_and_recovers_its_partitions() {
    let mut c = Cluster::start(3, &[]);
    let (leader, _) = find_quorum_leader(&mut c);
    let victim = c.ids().into_iter().find(|&id| id != leader).expect("a follower");
    let survivors: Vec<i32> = c.ids().into_iter().filter(|&id| id != victim).collect();
    create(&c, leader, "fenced", 12, &[]);
    let before = wait_leaders(&c, "fenced", 12, &c.ids(), OP);
    let victims: BTreeSet<i32> = before.iter().filter(|(_, &l)| l == victim).map(|(&p, _)| p).collect();
    assert!(!victims.is_empty(), "precondition: broker {victim} leads a partition of fenced: {before:?}");
    produce(&c, &c.bootstrap_all(), "fenced", 12, 100);

    c.kill9(victim);
    let t0 = Instant::now();
    let limit = Duration::from_millis(SESSION_TIMEOUT_MS) + Duration::from_secs(10);
    wait_until(&format!("broker {victim} fenced: its partitions {victims:?} leaderless on {survivors:?}"), limit, Duration::from_millis(50), || {
        for &id in &survivors {
            let md = metadata(&c.bootstrap(id), Some(&["fenced"]))?;
            let brokers = broker_ids(&md);
            if brokers.contains(&victim) {
                return Err(format!("node {id} still lists broker {victim}: {brokers:?}"));
            }
            let offline: BTreeMap<i32, Vec<i32>> =
                md.topics.iter().flat_map(|t| t.partitions.iter()).map(|p| (p.partition_index, p.offline_replicas.iter().map(|b| b.0).collect())).collect();
            let ps = partition_leaders(&md, "fenced")?;
            for (p, (err, l)) in &ps {
                let want_offline = if victims.contains(p) { vec![victim] } else { vec![] };
                if offline[p] != want_offline {
                    return Err(format!("node {id}: partition {p} offline replicas {:?}, want {want_offline:?}", offline[p]));
                }
                if victims.contains(p) {
                    if *l != -1 || *err != LEADER_NOT_AVAILABLE {
                        return Err(format!("node {id}: partition {p} (error, leader) ({err}, {l}), want ({LEADER_NOT_AVAILABLE}, -1)"));
                    }
                } else {
                    assert_eq!((*err, *l), (NONE, before[p]), "node {id}: partition {p} of a live broker changed");
                }
            }
        }
        Ok(())
    });
    let fenced = t0.elapsed();
    c.step(&format!("broker {victim} fenced {:.3}s after the kill (session timeout {SESSION_TIMEOUT_MS} ms)", fenced.as_secs_f64()));
    eprintln!("TIMING broker_fencing fenced_s={:.3}", fenced.as_secs_f64());

    c.start_node(victim);
    let t1 = Instant::now();
    let after = wait_leaders(&c, "fenced", 12, &c.ids(), OP);
    c.step(&format!("broker {victim} leads its partitions again {:.3}s after its restart", t1.elapsed().as_secs_f64()));
    assert_eq!(after, before, "leadership after the restart");
    assert_all_records(&c, &c.bootstrap(survivors[0]), "fenced", 12, 100);
    // Its partitions take appends again, after the records it had.
    produce_range(&c, &c.bootstrap(victim), "fenced", 12, 100..120);
    assert_all_records(&c, &c.bootstrap(survivors[1]), "fenced", 12, 120);
}

/// (7) A whole-cluster SIGTERM restart keeps topics (partition count, leaders),
/// a config set at creation and one set later with IncrementalAlterConfigs
/// (through another node), the records, and committed offsets.
#[test]
fn whole_cluster_restart_keeps_topics_configs_data_and_offsets() {
    let mut c = Cluster::start(3, &[]);
    let (topic, group) = ("kept", "cluster-it-kept");
    create(&c, 2, topic, 6, &[("segment.bytes", "1048576")]);
    let leaders = wait_leaders(&c, topic, 6, &c.ids(), OP);
    let r = set_topic_config(&c.bootstrap(3), topic, "retention.ms", "123456789").expect("IncrementalAlterConfigs");
    assert_eq!(r.0, NONE, "IncrementalAlterConfigs retention.ms through node 3: {r:?}");
    c.step("IncrementalAlterConfigs SET retention.ms=123456789 through node 3");
    let configs_ok = |c: &Cluster, when: &str| {
        for id in c.ids() {
            let admin: AdminClient<DefaultClientContext> = client_config(&c.bootstrap(id)).create().expect("admin");
            wait_until(&format!("{when}: topic configs through node {id}"), OP, Duration::from_millis(200), || {
                let res = block_on(admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &common::admin_opts())).map_err(|e| e.to_string())?;
                let r = res.into_iter().next().ok_or("no resource")?.map_err(|e| e.to_string())?;
                let get = |k: &str| r.entries.iter().find(|e| e.name == k).and_then(|e| e.value.clone());
                match (get("retention.ms").as_deref(), get("segment.bytes").as_deref()) {
                    (Some("123456789"), Some("1048576")) => Ok(()),
                    other => Err(format!("(retention.ms, segment.bytes) {other:?}")),
                }
            });
        }
        c.step(&format!("{when}: every node describes retention.ms=123456789, segment.bytes=1048576"));
    };
    configs_ok(&c, "before the restart");
    produce(&c, &c.bootstrap(1), topic, 6, 100);
    let offsets: BTreeMap<i32, i64> = (0..6).map(|p| (p, 10 * (p as i64 + 1))).collect();
    commit(&c.bootstrap(2), group, topic, &offsets);
    assert_eq!(committed(&c.bootstrap(3), group, topic, 6), offsets, "committed offsets before the restart");

    c.restart_all();
    let md = metadata(&c.bootstrap(1), None).expect("Metadata");
    let names: BTreeSet<String> = md.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect();
    assert!(names.contains(topic), "topics after the restart: {names:?}");
    assert_eq!(wait_leaders(&c, topic, 6, &c.ids(), OP), leaders, "leaders after the restart");
    configs_ok(&c, "after the restart");
    assert_all_records(&c, &c.bootstrap(3), topic, 6, 100);
    assert_eq!(committed(&c.bootstrap(1), group, topic, 6), offsets, "committed offsets after the restart");
    c.step("topics, configs, records and committed offsets all kept");
}

/// (8) kill -9 of every node at once; two restart and form a quorum without
/// the third, which their controller fences (gone from the broker list, its
/// partitions leaderless) although the image they restarted from had it
/// unfenced; then it restarts too and every record and commit is there.
#[test]
fn after_kill9_of_every_node_two_restart_and_fence_the_third() {
    let mut c = Cluster::start(3, &[]);
    let (topic, group) = ("crashed", "cluster-it-crashed");
    create(&c, 1, topic, 6, &[]);
    let leaders = wait_leaders(&c, topic, 6, &c.ids(), OP);
    produce(&c, &c.bootstrap(2), topic, 6, 100);
    let offsets: BTreeMap<i32, i64> = (0..6).map(|p| (p, 5 * (p as i64 + 1))).collect();
    commit(&c.bootstrap(3), group, topic, &offsets);
    assert_eq!(committed(&c.bootstrap(1), group, topic, 6), offsets, "committed offsets before the crash");

    for id in c.ids() {
        c.kill9(id);
    }
    let t0 = Instant::now();
    // Node 3 stays down; start_nodes waits until nodes 1 and 2 list only [1, 2].
    c.start_nodes(&[1, 2]);
    c.step(&format!("nodes 1 and 2 restarted and list only each other {:.3}s after their restart began", t0.elapsed().as_secs_f64()));
    let missing: BTreeSet<i32> = leaders.iter().filter(|(_, &l)| l == 3).map(|(&p, _)| p).collect();
    assert!(!missing.is_empty(), "precondition: broker 3 leads a partition of {topic}: {leaders:?}");
    wait_until("broker 3's partitions leaderless on nodes 1 and 2", Duration::from_secs(20), POLL, || {
        for id in [1, 2] {
            let md = metadata(&c.bootstrap(id), Some(&[topic]))?;
            for (p, (err, l)) in partition_leaders(&md, topic)? {
                let want = if missing.contains(&p) { (LEADER_NOT_AVAILABLE, -1) } else { (NONE, leaders[&p]) };
                if (err, l) != want {
                    return Err(format!("node {id}: {topic}-{p} (error, leader) ({err}, {l}), want {want:?}"));
                }
            }
        }
        Ok(())
    });
    c.step("broker 3's partitions are leaderless, the others led as before");

    c.start_node(3);
    c.wait_formed();
    assert_eq!(wait_leaders(&c, topic, 6, &c.ids(), OP), leaders, "leaders after node 3 returned");
    assert_all_records(&c, &c.bootstrap(3), topic, 6, 100);
    assert_eq!(committed(&c.bootstrap(2), group, topic, 6), offsets, "committed offsets after the crash");
}
