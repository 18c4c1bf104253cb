//! Coordinators under faults: a consumer group's committed offsets and a
//! transactional consume-transform-produce application survive kill -9 of
//! the broker that coordinates them, with `__consumer_offsets` and
//! `__transaction_state` replicated (replication factor 3) over three
//! combined nodes.
//!
//! What [`coordinator_failover_keeps_offsets_and_transactions`] proves:
//!
//! (a) offsets a group member committed are on the followers of the group's
//!     `__consumer_offsets` partition: once its leader (the coordinator) is
//!     killed and a follower elected, FindCoordinator names the new leader,
//!     which serves the same committed offsets (OffsetFetch), and a new member
//!     of the group starts every partition at its committed offset, not at the
//!     beginning;
//! (b) the transaction coordinator's state is replicated too: the coordinator
//!     of a transactional id is killed twice while a transaction is open
//!     (its output records written, EndTxn not sent): the first time the
//!     application still tries to commit (the commit has to reach the new
//!     coordinator), the second time it crashes without (the new coordinator
//!     must abort the transaction when the application re-inits). Each time
//!     the application re-inits with the same transactional.id through the
//!     survivors and resumes from the offsets its transactions committed; a
//!     read_committed consumer of the output sees every input record exactly
//!     once (nothing lost, nothing from the aborted transaction, no
//!     duplicate), and read_uncommitted shows the aborted records are there.
//!
//! Run with `cargo test --test cluster coordinators:: -- --nocapture`.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::FindCoordinatorRequest;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::cluster_harness::*;
use crate::common::{client_config, sb};
use crate::faults::*;
use crate::replication::{Layout, Scenario, MIN_ISR, PARTITIONS, RF};
use crate::txn_common::{read_topic, txn_producer_config, value_str, Isolation};

/// `offsets.topic.num.partitions` and `transaction.state.log.num.partitions`
/// (Kafka's 50 would cost 300 replicas to create and load on 2 cores).
const INTERNAL_PARTITIONS: i32 = 6;
/// Records per partition of the group's topic; the group commits `COMMIT_AT + p`.
const PER: usize = 30;
const COMMIT_AT: i64 = 10;
/// Input records per partition of the consume-transform-produce application.
const CTP_PER: usize = 40;
/// Records per transaction (at most).
const CHUNK: usize = 10;
/// The transaction coordinator is killed in the transaction after this many
/// committed ones: the first time the app then tries to commit it (the commit
/// goes to the new coordinator), the second time the app crashes with it open
/// (the new coordinator aborts it); the first killed broker is back by then.
const KILL_AT: [usize; 2] = [3, 7];
/// Transactional API calls.
const TXN_TIMEOUT: Duration = Duration::from_secs(60);

/// FindCoordinator v3 from `addr`: (error code, node id) for a group
/// (`key_type` 0) or a transactional id (1).
fn find_coordinator(addr: &str, key: &str, key_type: i8) -> Result<(i16, i32), String> {
    let resp = raw_call(addr, 3, &FindCoordinatorRequest::default().with_key(sb(key)).with_key_type(key_type), RAW_TIMEOUT)?;
    Ok((resp.error_code, resp.node_id.0))
}

/// The coordinator every live broker names for `key`, and that it is the
/// leader of `key`'s partition of `internal` (`__consumer_offsets` or
/// `__transaction_state`): (coordinator, partition).
fn coordinator(c: &Cluster, internal: &str, key: &str, key_type: i8, timeout: Duration) -> (i32, i32) {
    let p = offsets_partition(key, INTERNAL_PARTITIONS);
    let node = wait_until(&format!("the coordinator of {key} (= the leader of {internal}-{p}) from every live broker"), timeout, POLL, || {
        let leader = leader_of(c, internal, p)?;
        for id in live_brokers(c) {
            match find_coordinator(&c.bootstrap(id), key, key_type)? {
                (NONE, n) if n == leader => {}
                other => return Err(format!("node {id}: (error, coordinator) {other:?}, {internal}-{p} led by {leader}")),
            }
        }
        Ok(leader)
    });
    (node, p)
}

fn group_consumer(bootstrap: &str, group: &str, isolation: &str) -> BaseConsumer {
    client_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .expect("group consumer")
}

/// `group`'s committed offsets of `topic` through `bootstrap` (OffsetFetch,
/// retried while a coordinator loads): partition -> offset (-1: none).
fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer = group_consumer(bootstrap, group, "read_committed");
    wait_until(&format!("committed offsets of {group} through {bootstrap}"), Duration::from_secs(60), Duration::from_millis(300), || {
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let t = consumer.committed_offsets(tpl, Duration::from_secs(10)).map_err(|e| e.to_string())?;
        t.elements()
            .iter()
            .map(|e| e.error().map(|()| (e.partition(), if let Offset::Offset(o) = e.offset() { o } else { -1 })).map_err(|x| x.to_string()))
            .collect()
    })
}

/// Drops `x` on a thread, waiting at most 60 s (librdkafka's close waits on
/// brokers; a killed one must not hang the test).
fn drop_bounded<T: Send + 'static>(x: T, what: &str) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(x);
        let _ = tx.send(());
    });
    assert!(rx.recv_timeout(Duration::from_secs(60)).is_ok(), "{what}: close did not finish within 60 s");
}

/// The crashed application's consumer: leaves the group while still polling,
/// then is dropped on a thread nobody waits for (see tests/transactions.rs:
/// closing a BaseConsumer that reconnects to a lost broker can block).
fn abandon_consumer(c: BaseConsumer) {
    c.unsubscribe();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let _ = c.poll(Duration::from_millis(100));
    }
    std::thread::spawn(move || drop(c));
}

/// Polls up to [`CHUNK`] records; stops early after 1 s without one.
fn poll_chunk(c: &BaseConsumer) -> Vec<(i32, i64, String)> {
    let mut out = Vec::new();
    let mut idle_since = Instant::now();
    while out.len() < CHUNK && idle_since.elapsed() < Duration::from_secs(1) {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.push((m.partition(), m.offset(), String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()));
                idle_since = Instant::now();
            }
            Some(Err(e)) => eprintln!("[ctp] consumer error (keeps polling): {e}"),
            None => {}
        }
    }
    out
}

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

/// One kill of the transaction coordinator: (transactions committed before,
/// the coordinator killed, the outcome of the commit attempted through the
/// failover or None when the application crashed instead).
type Kill = (usize, i32, Option<Result<(), String>>);

/// The client listeners of the live brokers.
fn bootstrap_survivors(c: &Cluster) -> String {
    live_brokers(c).iter().map(|&id| c.bootstrap(id)).collect::<Vec<_>>().join(",")
}

/// A transactional producer after init_transactions (retried, bounded: the
/// coordinator may be moving).
fn txn_producer(bootstrap: &str, tid: &str) -> TxnProducer {
    let t0 = Instant::now();
    wait_until(&format!("init_transactions({tid}) through {bootstrap}"), Duration::from_secs(120), Duration::from_millis(500), || {
        let p: TxnProducer = txn_producer_config(bootstrap, tid).set("request.timeout.ms", "10000").create().map_err(|e| e.to_string())?;
        match p.init_transactions(Duration::from_secs(30)) {
            Ok(()) => Ok(p),
            Err(e) => {
                eprintln!("[ctp] init_transactions({tid}) after {:.1}s: {e}; retrying with a new producer", t0.elapsed().as_secs_f64());
                drop_bounded(p, "a producer whose init_transactions failed");
                Err(e.to_string())
            }
        }
    })
}

#[test]
fn coordinator_failover_keeps_offsets_and_transactions() {
    let parts = INTERNAL_PARTITIONS.to_string();
    let mut extra: Vec<(&str, &str)> = vec![
        ("offsets.topic.replication.factor", "3"),
        ("transaction.state.log.replication.factor", "3"),
        ("offsets.topic.num.partitions", &parts),
        ("transaction.state.log.num.partitions", &parts),
        ("group.initial.rebalance.delay.ms", "0"),
    ];
    if broker_accepts("transaction.state.log.min.isr", "2") {
        extra.push(("transaction.state.log.min.isr", "2"));
    } else {
        eprintln!("[coordinators] NOTE: this shardlog build refuses transaction.state.log.min.isr (unknown config key); started without it");
    }
    let mut s = Scenario::start_with("coordinator_failover_keeps_offsets_and_transactions", Layout::Combined, &extra, &[]);
    group_offsets_survive_coordinator_kill(&mut s);
    s.heal();
    wait_full_isr(&s.c, "__consumer_offsets", INTERNAL_PARTITIONS, OP);
    transactions_survive_coordinator_kill(&mut s);
    s.step("done");
}

/// (a): see the module doc.
fn group_offsets_survive_coordinator_kill(s: &mut Scenario) {
    let topic = s.topic.clone();
    let group = format!("{}-group", s.prefix);
    produce(&s.c, &s.c.bootstrap_all(), &topic, PARTITIONS, PER);
    let want: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, COMMIT_AT + p as i64)).collect();

    // A member of the group reads and commits `want` (with its generation).
    let member = group_consumer(&s.c.bootstrap_all(), &group, "read_committed");
    member.subscribe(&[&topic]).expect("subscribe");
    let mut got = 0usize;
    let t0 = Instant::now();
    while got < PARTITIONS as usize * PER {
        assert!(t0.elapsed() < Duration::from_secs(60), "the first member of {group} read {got} records within 60 s");
        match member.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => got += 1,
            Some(Err(e)) => eprintln!("[group] member error (keeps polling): {e}"),
            None => {}
        }
    }
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in &want {
        tpl.add_partition_offset(&topic, p, Offset::Offset(o)).expect("tpl");
    }
    member.commit(&tpl, CommitMode::Sync).unwrap_or_else(|e| panic!("commit of {group}: {e}"));
    drop_bounded(member, "the first member");
    s.step(&format!("a member of {group} read {got} records and committed {want:?}"));

    let (coord, p) = coordinator(&s.c, "__consumer_offsets", &group, 0, OP);
    let (isr, _) = wait_isr(&s.c, "__consumer_offsets", p, 3, OP);
    for id in s.c.broker_ids() {
        assert_eq!(committed(&s.c.bootstrap(id), &group, &topic, PARTITIONS), want, "committed offsets of {group} through node {id}");
    }
    s.step(&format!("coordinator of {group}: node {coord} (leader of __consumer_offsets-{p}, ISR {isr:?}); every broker reads the commits"));

    let t_kill = Instant::now();
    s.c.kill9(coord);
    let (new_leader, elected) = wait_leader(&s.c, "__consumer_offsets", p, Some(coord), OP);
    let (new_coord, _) = coordinator(&s.c, "__consumer_offsets", &group, 0, OP);
    assert_eq!(new_coord, new_leader);
    let found = t_kill.elapsed();
    let survivors: Vec<i32> = live_brokers(&s.c);
    let bootstrap = survivors.iter().map(|&id| s.c.bootstrap(id)).collect::<Vec<_>>().join(",");
    assert_eq!(committed(&bootstrap, &group, &topic, PARTITIONS), want, "committed offsets of {group} from the new coordinator {new_coord}");
    let fetched = t_kill.elapsed();
    s.step(&format!(
        "killed coordinator {coord}: __consumer_offsets-{p} led by {new_leader} after {:.3}s, FindCoordinator names it after {:.3}s, OffsetFetch answers the commits after {:.3}s",
        elected.as_secs_f64(),
        found.as_secs_f64(),
        fetched.as_secs_f64()
    ));

    // A new member, through the survivors only, starts at the commits.
    let member = group_consumer(&bootstrap, &group, "read_committed");
    member.subscribe(&[&topic]).expect("subscribe");
    let mut first: BTreeMap<i32, i64> = BTreeMap::new();
    let t0 = Instant::now();
    while first.len() < PARTITIONS as usize {
        assert!(t0.elapsed() < Duration::from_secs(60), "the new member of {group} got first records {first:?} within 60 s");
        match member.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.entry(m.partition()).or_insert(m.offset());
            }
            Some(Err(e)) => eprintln!("[group] new member error (keeps polling): {e}"),
            None => {}
        }
    }
    drop_bounded(member, "the new member");
    s.step(&format!("a new member of {group} through {survivors:?} started at {first:?} ({:.3}s after the kill)", t_kill.elapsed().as_secs_f64()));
    assert_eq!(first, want, "the first offset the new member of {group} read on each partition: want the committed offsets, not the beginning");
    eprintln!(
        "TIMING group_coordinator_kill elected_s={:.3} find_coordinator_s={:.3} offset_fetch_s={:.3} first_record_s={:.3}",
        elected.as_secs_f64(),
        found.as_secs_f64(),
        fetched.as_secs_f64(),
        t_kill.elapsed().as_secs_f64()
    );
}

/// (b): see the module doc.
fn transactions_survive_coordinator_kill(s: &mut Scenario) {
    let input = format!("{}-in", s.topic);
    let output = format!("{}-out", s.topic);
    for t in [&input, &output] {
        let r = create_topic_rf(&s.c.bootstrap(s.c.broker_ids()[0]), t, PARTITIONS, RF, &[("min.insync.replicas", MIN_ISR)], OP)
            .unwrap_or_else(|e| panic!("CreateTopics {t}: {e}"));
        assert_eq!(r.0, NONE, "CreateTopics {t}: {r:?}");
        wait_full_isr(&s.c, t, PARTITIONS, OP);
    }
    produce(&s.c, &s.c.bootstrap_all(), &input, PARTITIONS, CTP_PER);
    let ends: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, CTP_PER as i64)).collect();
    let tid = format!("{}-tid", s.prefix);
    let group = format!("{}-app", s.prefix);
    s.step(&format!("{input} -> {output}: {} input records; transactional.id {tid}, group {group}", PARTITIONS as usize * CTP_PER));

    let mut bootstrap = s.c.bootstrap_all();
    let mut producer = txn_producer(&bootstrap, &tid);
    let mut consumer = group_consumer(&bootstrap, &group, "read_committed");
    consumer.subscribe(&[&input]).expect("subscribe");
    let mut done: BTreeMap<i32, i64> = BTreeMap::new();
    let mut txns = 0usize;
    // Per kill: (transaction number, coordinator, commit attempted: its outcome).
    let mut kills: Vec<Kill> = Vec::new();
    // Records of transactions certainly aborted (the app crashed in them).
    let mut aborted = 0usize;
    let mut down: Option<i32> = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    while done != ends {
        assert!(Instant::now() < deadline, "not done within 300 s: committed {done:?} of {ends:?} after {txns} transactions");
        let chunk = poll_chunk(&consumer);
        if chunk.is_empty() {
            continue;
        }
        producer.begin_transaction().expect("begin_transaction");
        for (p, _, v) in &chunk {
            let out = format!("out:{v}");
            producer.send(BaseRecord::<(), str>::to(&output).partition(*p).payload(&out)).map_err(|(e, _)| e).expect("enqueue an output record");
        }
        let pos = consumer.position().expect("position");
        let mut offsets = TopicPartitionList::new();
        for e in pos.elements() {
            if let Offset::Offset(o) = e.offset() {
                offsets.add_partition_offset(e.topic(), e.partition(), Offset::Offset(o)).expect("tpl");
            }
        }
        if kills.len() < KILL_AT.len() && txns == KILL_AT[kills.len()] {
            let (k, before) = (kills.len(), txns);
            if let Some(id) = down.take() {
                // Two of three replicas stay live at each kill (min.insync.replicas 2).
                s.c.start_node(id);
                wait_full_isr(&s.c, "__transaction_state", INTERNAL_PARTITIONS, OP);
                wait_full_isr(&s.c, &output, PARTITIONS, OP);
            }
            let (tc, tp) = coordinator(&s.c, "__transaction_state", &tid, 1, OP);
            // The output records of this open transaction are in the log; its
            // coordinator dies before EndTxn (and maybe the offsets) reach it.
            producer.flush(TXN_TIMEOUT).expect("flush the open transaction");
            let t_kill = Instant::now();
            s.c.kill9(tc);
            down = Some(tc);
            let outcome = if k == 0 {
                // The app tries to finish the transaction through the failover, on a thread of
                // its own: librdkafka's send_offsets_to_transaction was once seen blocking far
                // past its timeout here (CI, 2026-12-06). A call that has not returned in 60 s
                // is abandoned (its producer leaked) and the app restarts as after a crash; the
                // re-init fences it, so exactly-once must hold either way.
                let cgm = consumer.group_metadata().expect("group metadata");
                let (tx, rx) = std::sync::mpsc::channel();
                let (p, offs) = (producer, offsets.clone());
                std::thread::spawn(move || {
                    let r = p
                        .send_offsets_to_transaction(&offs, &cgm, Duration::from_secs(20))
                        .and_then(|()| p.commit_transaction(Duration::from_secs(20)))
                        .map_err(|e| e.to_string());
                    let _ = tx.send((r, p));
                });
                match rx.recv_timeout(Duration::from_secs(60)) {
                    Ok((r, p)) => {
                        if r.is_ok() {
                            txns += 1;
                        }
                        producer = p;
                        Some(r)
                    }
                    Err(_) => {
                        eprintln!("[ctp] NOTE: send_offsets_to_transaction/commit_transaction did not return within 60 s; abandoned");
                        producer = txn_producer(&bootstrap_survivors(&s.c), &tid);
                        Some(Err("blocked past its timeout; abandoned".to_string()))
                    }
                }
            } else {
                // The app crashes with the transaction open: the new coordinator must abort it.
                aborted += chunk.len();
                None
            };
            s.step(&format!(
                "killed transaction coordinator {tc} (leader of __transaction_state-{tp}) in transaction {} ({} records); commit attempted: {outcome:?}",
                before + 1,
                chunk.len()
            ));
            // The application restarts: same transactional.id, same group, through the survivors.
            drop_bounded(producer, "the old producer");
            abandon_consumer(consumer);
            bootstrap = bootstrap_survivors(&s.c);
            producer = txn_producer(&bootstrap, &tid);
            let (new_tc, _) = coordinator(&s.c, "__transaction_state", &tid, 1, OP);
            s.step(&format!("re-initialised {tid} through {bootstrap}: coordinator {new_tc}, {:.3}s after the kill", t_kill.elapsed().as_secs_f64()));
            eprintln!("TIMING txn_coordinator_kill kill={} commit_attempted={} reinit_s={:.3}", k + 1, outcome.is_some(), t_kill.elapsed().as_secs_f64());
            consumer = group_consumer(&bootstrap, &group, "read_committed");
            consumer.subscribe(&[&input]).expect("subscribe");
            // What the restarted application resumes from: its transactions' commits.
            done = committed(&bootstrap, &group, &input, PARTITIONS).into_iter().filter(|(_, o)| *o >= 0).collect();
            kills.push((before, tc, outcome));
            continue;
        }
        let cgm = consumer.group_metadata().expect("group metadata");
        producer.send_offsets_to_transaction(&offsets, &cgm, TXN_TIMEOUT).expect("send_offsets_to_transaction");
        producer.commit_transaction(TXN_TIMEOUT).expect("commit_transaction");
        txns += 1;
        for e in offsets.elements() {
            if let Offset::Offset(o) = e.offset() {
                done.insert(e.partition(), o);
            }
        }
    }
    assert_eq!(kills.len(), KILL_AT.len(), "kills {kills:?}");
    s.step(&format!("copied everything: {txns} transactions committed; kills (transactions before, coordinator, commit attempt) {kills:?}"));
    drop_bounded(producer, "the producer");
    abandon_consumer(consumer);

    let n = PARTITIONS as usize * CTP_PER;
    let read = read_topic(&bootstrap, &output, PARTITIONS, Isolation::ReadCommitted, n);
    let mut seen: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    for r in &read {
        seen.entry(value_str(r)).or_default().push((r.partition, r.offset));
    }
    let want: Vec<String> = (0..PARTITIONS).flat_map(|p| (0..CTP_PER).map(move |i| format!("out:{}", value(p, i)))).collect();
    let missing: Vec<&String> = want.iter().filter(|v| !seen.contains_key(*v)).collect();
    let dups: Vec<(&String, &Vec<(i32, i64)>)> = seen.iter().filter(|(_, at)| at.len() > 1).collect();
    let extra: Vec<&String> = seen.keys().filter(|v| !want.contains(v)).collect();
    s.step(&format!(
        "read_committed {output}: {} records, {} distinct; missing {}, duplicated {}, unexpected {}",
        read.len(),
        seen.len(),
        missing.len(),
        dups.len(),
        extra.len()
    ));
    assert!(
        missing.is_empty() && dups.is_empty() && extra.is_empty() && read.len() == n,
        "read_committed {output}: every input record exactly once; missing {missing:?}; duplicated {dups:?}; unexpected {extra:?}"
    );
    // read_uncommitted: the crashed transaction's records are in the log
    // too (the crash really hit an open transaction), and nothing else but
    // what a commit attempt through the failover may have left aborted.
    let attempts_failed = kills.iter().filter(|(_, _, o)| matches!(o, Some(Err(_)))).count();
    let ru = read_topic(&bootstrap, &output, PARTITIONS, Isolation::ReadUncommitted, n + aborted);
    s.step(&format!("read_uncommitted {output}: {} records ({n} committed + {aborted} of the crashed transaction)", ru.len()));
    if attempts_failed == 0 {
        assert_eq!(ru.len(), n + aborted, "read_uncommitted {output}: the committed records plus the {aborted} of the aborted transaction");
    } else {
        assert!(ru.len() >= n + aborted, "read_uncommitted {output}: {} records, want at least {}", ru.len(), n + aborted);
    }
}
