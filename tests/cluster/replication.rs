//! Replication under faults, against Kafka's behaviour: a topic of 3
//! partitions, replication factor 3, `min.insync.replicas=2`, under an
//! idempotent acks=all load ([`crate::checker::Load`]); faults from
//! [`crate::faults`] and the [`Cluster`]; at the end the faults are healed,
//! every ISR is full again, everything is read back and checked
//! ([`crate::checker::check`]: nothing acknowledged lost, no duplicates, no
//! offset with two values, no gaps, nothing refused readable) and every
//! partition's replicas are byte-identical.
//!
//! Every scenario prints its seed (`SHARDLOG_SEED=N` replays the value prefix
//! and every random choice) and its steps with their times. Timings: broker
//! session 3 s (the harness default), `replica.lag.time.max.ms=5000`.
//!
//! Run with `cargo test --test cluster replication:: -- --nocapture`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::{Decodable, HeaderVersion};
use kafka_protocol::records::Compression;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::checker::*;
use crate::cluster_harness::*;
use crate::common::{parse_response_header, plain_record, record_batch, sb, RawConn};
use crate::faults::*;

/// Partitions of the scenario topic.
pub const PARTITIONS: i32 = 3;
/// Its replication factor.
pub const RF: i16 = 3;
/// Its `min.insync.replicas`.
pub const MIN_ISR: &str = "2";
/// `replica.lag.time.max.ms` of every broker.
pub const LAG_MS: u64 = 5000;
/// Slack on the bounds below for a slow, shared 2-core machine.
pub const SLACK: Duration = Duration::from_secs(3);

/// How long a killed leader's partition may go without an acknowledgement:
/// the session timeout (the controller notices), 2 s for the election and the
/// producer's metadata refresh, and [`SLACK`].
pub fn failover_bound() -> Duration {
    Duration::from_millis(SESSION_TIMEOUT_MS) + Duration::from_secs(2) + SLACK
}

/// How long a dead follower may stay in the ISR: the lag time (or the
/// session timeout, whichever removes it first) and 5 s of slack.
pub fn isr_shrink_bound() -> Duration {
    Duration::from_millis(LAG_MS.max(SESSION_TIMEOUT_MS)) + Duration::from_secs(5)
}

/// Which processes the cluster runs.
#[derive(Debug, Clone, Copy)]
pub enum Layout {
    /// Three combined nodes (ids 1..=3): each broker is also a voter.
    Combined,
    /// Three controller-only voters (1..=3) and three brokers (4..=6): two
    /// brokers can be down while the quorum lives.
    Split,
}

/// One scenario's cluster, topic, seed, load and the records its raw probes
/// had acknowledged or refused.
pub struct Scenario {
    pub name: &'static str,
    pub c: Cluster,
    pub seed: Seed,
    pub topic: String,
    /// Prefix of every value: the scenario and its seed.
    pub prefix: String,
    pub load: Option<Load>,
    pub probe_acked: Vec<Acked>,
    pub probe_refused: Vec<Refused>,
    t0: Instant,
    last: Instant,
}

impl Scenario {
    /// Starts the cluster, creates the topic (RF 3, min ISR 2) and waits until
    /// every partition has a leader and a full ISR.
    pub fn start(name: &'static str, layout: Layout) -> Scenario {
        Scenario::start_with(name, layout, &[], &[])
    }

    /// [`Scenario::start`] with more `--set` pairs for every node
    /// (`broker_extra`) and more configs on the topic (`topic_configs`,
    /// besides `min.insync.replicas`).
    pub fn start_with(name: &'static str, layout: Layout, broker_extra: &[(&str, &str)], topic_configs: &[(&str, &str)]) -> Scenario {
        let seed = Seed::from_env_or_random();
        eprintln!("[{name}] seed {} (replay with SHARDLOG_SEED={})", seed.seed, seed.seed);
        let t0 = Instant::now();
        let lag = LAG_MS.to_string();
        let mut extra: Vec<(&str, &str)> = broker_extra.to_vec();
        extra.push(("replica.lag.time.max.ms", &lag));
        let c = match layout {
            Layout::Combined => Cluster::start(3, &extra),
            Layout::Split => Cluster::start_roles(3, 3, &extra),
        };
        let prefix = format!("{name}-{:016x}", seed.seed);
        let mut s =
            Scenario { name, c, seed, topic: name.replace('_', "-"), prefix, load: None, probe_acked: Vec::new(), probe_refused: Vec::new(), t0, last: t0 };
        s.step(&format!("cluster up ({layout:?}, brokers {:?})", s.c.broker_ids()));
        let via = s.c.broker_ids()[0];
        let mut configs = vec![("min.insync.replicas", MIN_ISR)];
        configs.extend_from_slice(topic_configs);
        let r = create_topic_rf(&s.c.bootstrap(via), &s.topic, PARTITIONS, RF, &configs, OP)
            .unwrap_or_else(|e| panic!("CreateTopics {} via node {via}: {e}", s.topic));
        assert_eq!(r.0, NONE, "CreateTopics {} ({PARTITIONS} partitions, replication factor {RF}) via node {via}: (error code, message) {r:?}", s.topic);
        s.step(&format!("created {} ({PARTITIONS} partitions, RF {RF}, configs {configs:?})", s.topic));
        let states = wait_full_isr(&s.c, &s.topic, PARTITIONS, OP);
        for (p, st) in &states {
            assert_eq!(st.replicas.len(), RF as usize, "{}-{p}: {st:?}", s.topic);
        }
        s.step("every partition led, every ISR full");
        s
    }

    /// Prints `msg` with the time since the scenario began and since the last step.
    pub fn step(&mut self, msg: &str) {
        let now = Instant::now();
        eprintln!("[{} +{:7.3}s (+{:6.3}s)] {msg}", self.name, (now - self.t0).as_secs_f64(), (now - self.last).as_secs_f64());
        self.last = now;
    }

    /// Starts the load on every partition through every broker.
    pub fn start_load(&mut self, opts: LoadOpts) {
        assert!(self.load.is_none(), "load already running");
        self.load = Some(Load::start(&self.c.bootstrap_all(), &self.topic, PARTITIONS, &self.prefix, opts.clone()));
        self.step(&format!("load started: {opts:?}"));
    }

    pub fn load(&self) -> &Load {
        self.load.as_ref().expect("load running")
    }

    /// Partition `p`'s state once it has a live leader.
    pub fn state(&mut self, p: i32) -> PartState {
        let topic = self.topic.clone();
        let (_, _) = wait_leader(&self.c, &topic, p, None, OP);
        wait_until(&format!("the state of {topic}-{p}"), OP, POLL, || partition_state(&self.c, &topic, p))
    }

    /// Partition `p`'s leader and its other replicas.
    pub fn leader_and_followers(&mut self, p: i32) -> (i32, Vec<i32>) {
        let st = self.state(p);
        let followers = st.replicas.iter().copied().filter(|&r| r != st.leader).collect();
        (st.leader, followers)
    }

    /// Waits `d` while the load runs.
    pub fn run_for(&mut self, d: Duration) {
        std::thread::sleep(d);
        let (ok, failed) = self.load.as_ref().map(|l| l.counts()).unwrap_or_default();
        self.step(&format!("ran {:.1}s ({ok} acknowledged, {failed} failed so far)", d.as_secs_f64()));
    }

    /// Sends one acks=all Produce of a unique value to partition `p` on node
    /// `via` and records the answer: acknowledged (must be readable) or
    /// definitely refused (must never be): the error code.
    pub fn probe(&mut self, via: i32, p: i32, tag: &str) -> i16 {
        let value = format!("{}-probe-{tag}", self.prefix);
        let (mut conn, corr) = probe_send(&self.c.bootstrap(via), &self.topic, p, &value);
        let answer = probe_recv(&mut conn, corr);
        self.record_probe(via, p, value, answer)
    }

    fn record_probe(&mut self, via: i32, p: i32, value: String, answer: Result<(i16, i64), String>) -> i16 {
        let code = match answer {
            Ok((NONE, offset)) => {
                self.probe_acked.push(Acked { partition: p, offset, value: value.clone() });
                NONE
            }
            Ok((code, _)) => {
                self.probe_refused.push(Refused {
                    partition: p,
                    value: value.clone(),
                    error: format!("Kafka error {code}"),
                    definite: kafka_code_is_definite_refusal(code),
                });
                code
            }
            Err(e) => {
                self.probe_refused.push(Refused { partition: p, value: value.clone(), error: e.clone(), definite: false });
                -1
            }
        };
        self.step(&format!("probe {value} to {}-{p} on node {via}: error code {code}", self.topic));
        code
    }

    /// Resumes paused nodes and starts the ones down; waits for every ISR to be full.
    pub fn heal(&mut self) {
        for id in self.c.ids() {
            if self.c.is_paused(id) {
                self.c.resume(id);
            }
        }
        let down: Vec<i32> = self.c.ids().into_iter().filter(|&id| self.c.pid(id).is_none()).collect();
        if !down.is_empty() {
            self.c.start_nodes(&down);
        }
        wait_full_isr(&self.c, &self.topic, PARTITIONS, OP + Duration::from_millis(LAG_MS));
        self.step(&format!("healed (started {down:?})"));
    }

    /// Heals, stops the load, reads everything back and asserts the checker
    /// is clean and every partition's replicas are byte-identical.
    pub fn finish(mut self) {
        self.heal();
        self.check_everything();
    }

    /// [`Scenario::finish`] without the heal (nodes stopped for good stay down):
    /// stops the load, reads everything back, asserts the checker is clean and
    /// the replicas identical.
    pub fn check_everything(mut self) {
        let reports = self.load.take().map(|l| l.stop()).unwrap_or_default();
        self.step(&format!("load stopped; failures by error: {:?}", error_histogram(&reports)));
        // The last records reach every follower.
        wait_full_isr(&self.c, &self.topic, PARTITIONS, OP);
        let (mut acked, mut refused) = split_reports(&reports);
        acked.extend(self.probe_acked.iter().cloned());
        refused.extend(self.probe_refused.iter().cloned());
        let (read, bounds) = read_all(&self.c.bootstrap_all(), &self.topic, PARTITIONS, Duration::from_secs(120));
        let report = check(&acked, &refused, &read, &bounds);
        self.step(&format!("checker: {}", report.summary()));
        assert!(report.is_clean(), "[{}] seed {}: checker found: {}", self.name, self.seed.seed, report.summary());
        assert!(!acked.is_empty(), "nothing was acknowledged at all");
        self.assert_replicas_identical();
        self.step("done: checker clean, replicas identical");
    }

    /// Waits until every partition's replicas hold byte-identical logs.
    pub fn assert_replicas_identical(&mut self) {
        for p in 0..PARTITIONS {
            let st = self.state(p);
            let (c, topic) = (&self.c, self.topic.clone());
            let len = wait_until(&format!("the replicas {:?} of {topic}-{p} byte-identical", st.replicas), OP, Duration::from_millis(250), || {
                let mut all = Vec::new();
                for &id in &st.replicas {
                    all.push((id, replica_bytes(&c.data_dir(id), &topic, p).map_err(|e| format!("node {id}: {e}"))?));
                }
                compare_replicas(&all)
            });
            self.step(&format!("{}-{p}: replicas {:?} identical ({len} bytes)", self.topic, st.replicas));
        }
    }
}

/// Connects to `addr` and writes one acks=all Produce (v9) of `value` to
/// `topic`-`p`, without reading the answer (the node may be paused).
pub fn probe_send(addr: &str, topic: &str, p: i32, value: &str) -> (RawConn, i32) {
    probe_send_acks(addr, topic, p, value, -1)
}

/// [`probe_send`] with the given `acks` (-1: all, 1: the leader only).
pub fn probe_send_acks(addr: &str, topic: &str, p: i32, value: &str, acks: i16) -> (RawConn, i32) {
    let mut conn = RawConn::connect(addr);
    conn.set_read_timeout(Duration::from_secs(20));
    let batch = record_batch(&[plain_record(0, now_ms(), None, Some(Bytes::from(value.to_string())))], Compression::None);
    let req = ProduceRequest::default().with_acks(acks).with_timeout_ms(10_000).with_topic_data(vec![TopicProduceData::default()
        .with_name(TopicName(sb(topic)))
        .with_partition_data(vec![PartitionProduceData::default().with_index(p).with_records(Some(batch))])]);
    let corr = conn.send(9, &req);
    (conn, corr)
}

/// The answer to [`probe_send`]: (error code, base offset).
pub fn probe_recv(conn: &mut RawConn, corr: i32) -> Result<(i16, i64), String> {
    let mut frame = conn.read_frame().map_err(|e| format!("no answer: {e}"))?;
    let got = parse_response_header(&mut frame, ProduceResponse::header_version(9));
    if got != corr {
        return Err(format!("correlation id {got}, want {corr}"));
    }
    let resp = ProduceResponse::decode(&mut frame, 9).map_err(|e| format!("decode: {e}"))?;
    let pr = resp.responses.first().and_then(|t| t.partition_responses.first()).ok_or("no partition in the answer")?;
    Ok((pr.error_code, pr.base_offset))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

/// 1. No fault: ~10 s of load, every partition's ISR stays 3 in every
///    broker's Metadata throughout; checker clean; replicas identical.
#[test]
fn baseline_no_fault() {
    let mut s = Scenario::start("baseline_no_fault", Layout::Combined);
    s.start_load(LoadOpts::default());
    let until = Instant::now() + Duration::from_secs(10);
    let (mut polls, mut unanswered) = (0usize, 0usize);
    let mut shrunk: Vec<String> = Vec::new();
    while Instant::now() < until {
        for id in s.c.broker_ids() {
            for p in 0..PARTITIONS {
                polls += 1;
                match partition_state_via(&s.c, id, &s.topic, p) {
                    Ok(st) if st.isr.len() != RF as usize => shrunk.push(format!("node {id}: {}-{p} {st:?}", s.topic)),
                    Ok(_) => {}
                    Err(_) => unanswered += 1,
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    s.step(&format!("polled ISRs {polls} times ({unanswered} unanswered): {} shrunk", shrunk.len()));
    assert!(shrunk.is_empty(), "ISR shrank without a fault: {:?}", &shrunk[..shrunk.len().min(10)]);
    assert!(unanswered * 10 <= polls, "{unanswered} of {polls} Metadata polls unanswered");
    s.finish();
}

/// How a leader is taken down in [`leader_failover_rounds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takedown {
    /// kill -9.
    Kill,
    /// SIGTERM (a clean stop: the controlled shutdown moves leadership first).
    Term,
}

/// Rounds of a failover test: `SHARDLOG_FAILOVER_ROUNDS` overrides `default`
/// (the benchmark in BENCHMARKS.md runs 10).
fn rounds(default: usize) -> usize {
    std::env::var("SHARDLOG_FAILOVER_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `rounds` times under load: take down the leader of partition 0 (`how`),
/// wait for a new leader, restart the old one, wait for a full ISR. Per round,
/// the time from the takedown to partition 0's first acknowledgement after it
/// is at most the session timeout + 2 s + 3 s of slack ([`failover_bound`]);
/// at the end nothing acknowledged is lost and the replicas are identical.
fn leader_failover_rounds(name: &'static str, how: Takedown, rounds: usize) {
    let mut s = Scenario::start(name, Layout::Combined);
    s.start_load(LoadOpts::default());
    s.run_for(Duration::from_secs(2));
    let topic = s.topic.clone();
    let mut rows = Vec::new();
    for round in 1..=rounds {
        let (leader, _) = s.leader_and_followers(0);
        let t_down = Instant::now();
        match how {
            Takedown::Kill => s.c.kill9(leader),
            Takedown::Term => s.c.stop_nodes(&[leader]),
        }
        s.step(&format!("round {round}: {how:?} of leader {leader} of {topic}-0"));
        let (new, elected) = wait_leader(&s.c, &topic, 0, Some(leader), OP);
        let acked = s.load().wait_ack_after(0, t_down, OP).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let recovery = acked - t_down;
        s.step(&format!("round {round}: leader {new} elected after {}, first acknowledgement after {}", secs(elected), secs(recovery)));
        s.c.start_node(leader);
        let (_, rejoined) = wait_isr(&s.c, &topic, 0, RF as usize, OP + Duration::from_millis(LAG_MS));
        wait_full_isr(&s.c, &topic, PARTITIONS, OP);
        s.step(&format!("round {round}: broker {leader} back in the ISR after {}", secs(rejoined)));
        rows.push((round, leader, new, elected, recovery));
        s.run_for(Duration::from_secs(1));
    }
    eprintln!(
        "[{}] {how:?} -> first acknowledgement on partition 0 (bound {} = session {SESSION_TIMEOUT_MS} ms + 2 s + {} slack):",
        s.name,
        secs(failover_bound()),
        secs(SLACK)
    );
    for (round, old, new, elected, recovery) in &rows {
        eprintln!("TIMING leader_{how:?} round={round} old={old} new={new} elected_s={:.3} first_ack_s={:.3}", elected.as_secs_f64(), recovery.as_secs_f64());
    }
    let mut times: Vec<f64> = rows.iter().map(|r| r.4.as_secs_f64()).collect();
    times.sort_by(f64::total_cmp);
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        eprintln!("TIMING leader_{how:?} rounds={} min_s={min:.3} median_s={:.3} max_s={max:.3}", times.len(), times[times.len() / 2]);
    }
    for (round, _, _, _, recovery) in &rows {
        assert!(*recovery <= failover_bound(), "round {round}: first acknowledgement {} after the {how:?}, bound {}", secs(*recovery), secs(failover_bound()));
    }
    s.finish();
}

/// 2. Five times under load: kill -9 the leader of partition 0 (see [`leader_failover_rounds`]).
#[test]
fn leader_killed_five_times() {
    leader_failover_rounds("leader_killed_five_times", Takedown::Kill, rounds(5));
}

/// 2b. The same with SIGTERM: a clean stop loses nothing and fails over within the same bound.
#[test]
fn leader_stopped_with_sigterm() {
    leader_failover_rounds("leader_stopped_with_sigterm", Takedown::Term, rounds(2));
}

/// 3. Under load, kill -9 a follower of partition 0: the ISR shrinks to 2
///    within the lag time + slack, acknowledgements go on, nothing fails; the
///    follower restarts and rejoins the ISR; checker clean; replicas identical.
#[test]
fn follower_killed_rejoins() {
    let mut s = Scenario::start("follower_killed_rejoins", Layout::Combined);
    s.start_load(LoadOpts::default());
    s.run_for(Duration::from_secs(2));
    let topic = s.topic.clone();
    let (leader, followers) = s.leader_and_followers(0);
    let victim = s.seed.pick(&followers);
    let t_kill = Instant::now();
    s.c.kill9(victim);
    s.step(&format!("killed follower {victim} of {topic}-0 (leader {leader})"));
    let (isr, shrink) = wait_isr(&s.c, &topic, 0, 2, isr_shrink_bound() + OP);
    assert!(!isr.contains(&victim), "ISR {isr:?} still has the killed broker {victim}");
    assert!(shrink <= isr_shrink_bound(), "ISR shrank {} after the kill, bound {}", secs(shrink), secs(isr_shrink_bound()));
    let t_shrunk = Instant::now();
    let acked = s.load().wait_ack_after(0, t_shrunk, Duration::from_secs(10)).expect("acknowledgements with the ISR at 2");
    s.step(&format!("ISR {isr:?} after {}; acknowledged again {} after the shrink", secs(shrink), secs(acked - t_shrunk)));
    s.run_for(Duration::from_secs(3));
    s.c.start_node(victim);
    let (_, rejoined) = wait_isr(&s.c, &topic, 0, RF as usize, OP + Duration::from_millis(LAG_MS));
    s.step(&format!("follower {victim} back in the ISR {} after its restart", secs(rejoined)));
    s.run_for(Duration::from_secs(2));
    let (_, failed) = s.load().reports_after(0, t_kill);
    assert!(failed.is_empty(), "{} deliveries to {topic}-0 failed after the follower's kill: {:?}", failed.len(), &failed[..failed.len().min(5)]);
    s.finish();
}

/// 4. Kill both followers of partition 0 (brokers only; the quorum lives):
///    once the ISR is 1, acks=all Produce to partition 0 is refused with
///    NOT_ENOUGH_REPLICAS (raw probes) and the load's deliveries there fail
///    (NOT_ENOUGH_REPLICAS or timed out), none acknowledged; nothing refused
///    is later readable; one follower back: deliveries resume; checker clean.
#[test]
fn two_followers_down_not_enough_replicas() {
    let mut s = Scenario::start("two_followers_down_not_enough_replicas", Layout::Split);
    let message_timeout = Duration::from_secs(8);
    s.start_load(LoadOpts { message_timeout, ..LoadOpts::default() });
    s.run_for(Duration::from_secs(2));
    let topic = s.topic.clone();
    let (leader, followers) = s.leader_and_followers(0);
    assert_eq!(followers.len(), 2, "{topic}-0 followers {followers:?}");
    s.c.kill9(followers[0]);
    s.c.kill9(followers[1]);
    s.step(&format!("killed both followers {followers:?} of {topic}-0 (leader {leader})"));
    let (isr, shrink) = wait_isr(&s.c, &topic, 0, 1, isr_shrink_bound() + OP);
    assert_eq!(isr, vec![leader], "ISR of {topic}-0");
    let t_isr1 = Instant::now();
    s.step(&format!("ISR {isr:?} after {}", secs(shrink)));
    for i in 0..5 {
        let code = s.probe(leader, 0, &format!("isr1-{i}"));
        assert_eq!(code, 19, "acks=all Produce to {topic}-0 with ISR {isr:?} < min.insync.replicas {MIN_ISR}: want NOT_ENOUGH_REPLICAS (19)");
    }
    // Long enough for the load's records to partition 0 to time out.
    s.run_for(message_timeout + Duration::from_secs(4));
    let (ok, failed) = s.load().reports_after(0, t_isr1 + Duration::from_secs(1));
    s.step(&format!("with ISR 1: {} acknowledged, {} failed on {topic}-0: {:?}", ok.len(), failed.len(), error_histogram(&failed)));
    assert!(ok.is_empty(), "{} deliveries to {topic}-0 acknowledged with ISR 1: {:?}", ok.len(), &ok[..ok.len().min(5)]);
    assert!(!failed.is_empty(), "no delivery to {topic}-0 failed with ISR 1");
    let back = s.seed.pick(&followers);
    let t_back = Instant::now();
    s.c.start_node(back);
    let (isr2, rejoined) = wait_isr(&s.c, &topic, 0, 2, OP + Duration::from_millis(LAG_MS));
    let resumed = s.load().wait_ack_after(0, t_back, OP).expect("deliveries to partition 0 resume with one follower back");
    s.step(&format!("follower {back} back: ISR {isr2:?} after {}, acknowledged again {} after its start", secs(rejoined), secs(resumed - t_back)));
    assert_eq!(s.probe(leader, 0, "isr2"), NONE, "acks=all Produce with ISR {isr2:?}");
    s.run_for(Duration::from_secs(2));
    s.finish();
}

/// 5. SIGSTOP the leader of partition 0 for twice the session timeout under
///    load: a new leader is elected; a Produce written to the paused leader
///    is answered after SIGCONT without an acknowledgement that is not kept;
///    the old leader must not have advanced its high watermark after losing
///    leadership: after healing, checker clean and replicas identical.
#[test]
fn paused_leader_is_fenced() {
    let mut s = Scenario::start("paused_leader_is_fenced", Layout::Combined);
    s.start_load(LoadOpts::default());
    s.run_for(Duration::from_secs(2));
    let topic = s.topic.clone();
    let (old, _) = s.leader_and_followers(0);
    let t_pause = Instant::now();
    s.c.pause(old);
    s.step(&format!("paused leader {old} of {topic}-0"));
    let (new, elected) = wait_leader(&s.c, &topic, 0, Some(old), OP);
    s.step(&format!("new leader {new} after {}", secs(elected)));
    let acked = s.load().wait_ack_after(0, t_pause, OP).expect("acknowledgements from the new leader");
    s.step(&format!("acknowledged again {} after the pause", secs(acked - t_pause)));
    let paused_for = Duration::from_millis(2 * SESSION_TIMEOUT_MS);
    if let Some(left) = paused_for.checked_sub(t_pause.elapsed()) {
        std::thread::sleep(left);
    }
    // The first thing the old leader reads after SIGCONT: an acks=all Produce.
    let value = format!("{}-probe-zombie", s.prefix);
    let (mut conn, corr) = probe_send(&s.c.bootstrap(old), &topic, 0, &value);
    s.c.resume(old);
    let answer = probe_recv(&mut conn, corr);
    let code = s.record_probe(old, 0, value, answer);
    s.step(&format!("old leader {old} resumed after {}; its answer to a Produce: error code {code}", secs(t_pause.elapsed())));
    let (_, rejoined) = wait_isr(&s.c, &topic, 0, RF as usize, OP + Duration::from_millis(LAG_MS));
    s.step(&format!("old leader {old} back in the ISR after {}", secs(rejoined)));
    s.run_for(Duration::from_secs(2));
    s.finish();
}

/// 6. A (the leader of partition 0) killed, B elected, B killed before A
///    returns, then both return (in a seeded order): replicas identical,
///    nothing acknowledged lost.
#[test]
fn rapid_double_failover() {
    let mut s = Scenario::start("rapid_double_failover", Layout::Split);
    s.start_load(LoadOpts::default());
    s.run_for(Duration::from_secs(2));
    let topic = s.topic.clone();
    let (a, _) = s.leader_and_followers(0);
    s.c.kill9(a);
    let (b, elected_b) = wait_leader(&s.c, &topic, 0, Some(a), OP);
    s.step(&format!("killed A={a}; B={b} elected after {}", secs(elected_b)));
    s.run_for(Duration::from_millis(500));
    s.c.kill9(b);
    let t_b = Instant::now();
    s.step(&format!("killed B={b}"));
    // The last replica leads if it was in the ISR; either way it is the only live one.
    let after_b = wait_until(&format!("{topic}-0 after B's kill"), OP, POLL, || {
        let st = partition_state(&s.c, &topic, 0)?;
        if st.leader == b {
            return Err(format!("still led by {b}: {st:?}"));
        }
        Ok(st)
    });
    s.step(&format!("{topic}-0 {} after B's kill: {after_b:?}", secs(t_b.elapsed())));
    s.run_for(Duration::from_secs(2));
    let order: Vec<Vec<i32>> = match s.seed.below(3) {
        0 => vec![vec![a], vec![b]],
        1 => vec![vec![b], vec![a]],
        _ => vec![vec![a, b]],
    };
    for ids in order {
        s.c.start_nodes(&ids);
        s.step(&format!("started {ids:?}"));
        wait_leader(&s.c, &topic, 0, None, OP);
        s.run_for(Duration::from_secs(1));
    }
    let mut rows = BTreeMap::new();
    for p in 0..PARTITIONS {
        rows.insert(p, s.state(p));
    }
    s.step(&format!("after both returned: {rows:?}"));
    s.finish();
}

/// 7. Last replica standing (KIP-966): under load, both followers of
///    partition 0 stop cleanly one after the other (SIGTERM) — the second one
///    leaves an ISR below `min.insync.replicas`, so it stays an eligible leader
///    replica (ELR) — then the leader is killed (kill -9) and loses its
///    unflushed tail (the harness cuts its active segment to half, as a power
///    loss would). Restarted, the old leader reveals its unclean shutdown: it
///    must not lead (the partition stays leaderless); the eligible follower
///    returns and leads with every acknowledged record; the old leader truncates
///    to it. Checker clean, replicas identical.
#[test]
fn last_replica_standing() {
    let mut s = Scenario::start("last_replica_standing", Layout::Split);
    s.start_load(LoadOpts { message_timeout: Duration::from_secs(8), ..LoadOpts::default() });
    s.run_for(Duration::from_secs(2));
    let topic = s.topic.clone();
    let (leader, followers) = s.leader_and_followers(0);
    let (first, eligible) = (followers[0], followers[1]);
    s.c.stop_nodes(&[first]);
    wait_isr(&s.c, &topic, 0, 2, isr_shrink_bound() + OP);
    s.step(&format!("follower {first} stopped cleanly; ISR of {topic}-0 is 2"));
    s.run_for(Duration::from_secs(2));
    s.c.stop_nodes(&[eligible]);
    let (isr, _) = wait_isr(&s.c, &topic, 0, 1, isr_shrink_bound() + OP);
    assert_eq!(isr, vec![leader], "ISR of {topic}-0");
    s.step(&format!("follower {eligible} stopped cleanly; ISR {isr:?}: below min.insync.replicas, {eligible} is an eligible leader replica"));
    s.c.kill9(leader);
    let dir = s.c.data_dir(leader).join(format!("{topic}-0"));
    let mut logs: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .expect("partition dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    let active = logs.last().expect("an active segment").clone();
    // The data's length: the file goes on with zeros allocated ahead of the writes.
    let len = whole_batches_len(&std::fs::read(&active).expect("segment")) as u64;
    std::fs::OpenOptions::new().write(true).open(&active).and_then(|f| f.set_len(len / 2)).expect("cut the active segment");
    s.step(&format!("leader {leader} killed; its active segment {} cut from {len} to {} bytes (its unflushed tail lost)", active.display(), len / 2));
    s.c.start_node(leader);
    let t_back = Instant::now();
    while t_back.elapsed() < Duration::from_millis(SESSION_TIMEOUT_MS * 2) {
        if let Ok(st) = partition_state_via(&s.c, leader, &topic, 0) {
            assert_ne!(st.leader, leader, "{topic}-0 is led by broker {leader}, which restarted without a clean shutdown and lost records: {st:?}");
        }
        std::thread::sleep(POLL);
    }
    s.step(&format!("old leader {leader} back for {}: {topic}-0 stayed without it as leader", secs(t_back.elapsed())));
    s.c.start_node(eligible);
    let (new, elected) = wait_leader(&s.c, &topic, 0, Some(leader), OP);
    assert_eq!(new, eligible, "{topic}-0 must be led by the eligible replica {eligible}");
    s.step(&format!("eligible replica {eligible} back: leads {topic}-0 after {}", secs(elected)));
    s.run_for(Duration::from_secs(2));
    s.finish();
}

/// A small ext4 filesystem in a file, loop-mounted on a node's data
/// directory (root only); [`Drop`] unmounts it (lazily: a node killed by a
/// failed test may still hold it) and removes the image.
pub struct SmallDisk {
    pub mount: std::path::PathBuf,
    image: std::path::PathBuf,
    mounted: bool,
}

impl SmallDisk {
    /// Moves `dir`'s contents onto a fresh `mib` MiB ext4 filesystem mounted
    /// at `dir` (the node must be stopped).
    pub fn mount_over(dir: &std::path::Path, mib: u64) -> SmallDisk {
        let image = dir.with_extension("img");
        let orig = dir.with_extension("orig");
        let run = |cmd: &str, args: &[&str]| {
            let out = std::process::Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
            assert!(out.status.success(), "{cmd} {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        };
        let (img, o, d) = (image.display().to_string(), orig.display().to_string(), dir.display().to_string());
        run("dd", &["if=/dev/zero", &format!("of={img}"), "bs=1M", &format!("count={mib}"), "status=none"]);
        run("mkfs.ext4", &["-q", "-m", "0", &img]);
        std::fs::rename(dir, &orig).expect("move the data directory aside");
        std::fs::create_dir(dir).expect("mount point");
        let mut disk = SmallDisk { mount: dir.to_path_buf(), image, mounted: false };
        run("mount", &["-o", "loop", &img, &d]);
        disk.mounted = true;
        run("cp", &["-a", &format!("{o}/."), &d]);
        std::fs::remove_dir_all(&orig).expect("remove the moved directory");
        disk
    }

    /// (total, available) bytes of the filesystem.
    pub fn space(&self) -> (u64, u64) {
        let out = std::process::Command::new("df").args(["-B1", "--output=size,avail"]).arg(&self.mount).output().expect("df");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let nums: Vec<u64> = text.lines().nth(1).unwrap_or_default().split_whitespace().filter_map(|x| x.parse().ok()).collect();
        (nums.first().copied().unwrap_or(0), nums.get(1).copied().unwrap_or(0))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.mount).status();
        }
        let _ = std::fs::remove_file(&self.image);
    }
}

/// 10. A follower's disk fills up (split layout; its data directory is a
///     24 MiB loop-mounted ext4): under the acks=all load plus 256 KiB records
///     to partition 0, the follower can no longer append what it fetches: it
///     leaves the ISR of partition 0 within the lag time, the leader goes on
///     acknowledging acks=all (ISR 2 = min.insync.replicas), and no broker
///     process exits; nothing acknowledged is lost (checker, read from the
///     brokers with room).
#[test]
fn follower_disk_full() {
    const DISK_MIB: u64 = 24;
    const BIG: usize = 256 * 1024;
    let is_root = std::process::Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false);
    if !is_root {
        eprintln!("[follower_disk_full] NOTE: NOT RUN: it loop-mounts a small filesystem, which needs root");
        return;
    }
    let mut s = Scenario::start("follower_disk_full", Layout::Split);
    let topic = s.topic.clone();
    let (leader, followers) = s.leader_and_followers(0);
    let victim = s.seed.pick(&followers);
    s.c.stop_nodes(&[victim]);
    let disk = SmallDisk::mount_over(&s.c.data_dir(victim), DISK_MIB);
    let (total, avail) = disk.space();
    s.step(&format!("follower {victim} of {topic}-0 (leader {leader}) stopped; its data directory is now a loop-mounted ext4 of {total} bytes ({avail} free)"));
    s.c.start_node(victim);
    wait_full_isr(&s.c, &topic, PARTITIONS, OP + Duration::from_millis(LAG_MS));
    s.step(&format!("follower {victim} restarted on the small disk; every ISR full"));
    s.start_load(LoadOpts::default());
    s.run_for(Duration::from_secs(2));

    // 256 KiB records to partition 0 until the follower's disk is full.
    let filler: FutureProducer =
        load_producer_config(&s.c.bootstrap_all(), &LoadOpts::default()).set("client.id", "shardlog-disk-filler").create().expect("filler");
    // Unique values (the checker counts a value read twice as a duplicate).
    let padding = "x".repeat(BIG);
    let t_fill = Instant::now();
    let mut sent = 0usize;
    let shrunk = loop {
        assert!(
            t_fill.elapsed() < Duration::from_secs(120),
            "{topic}-0's ISR still has {victim} after {sent} records of {BIG} bytes; its disk: {:?}",
            disk.space()
        );
        if (sent * BIG) as u64 <= 2 * total {
            let payload = format!("{}-fill-{sent}-{padding}", s.prefix);
            let fut = filler.send_result(FutureRecord::<(), str>::to(&topic).partition(0).payload(&payload));
            if fut.is_ok() {
                sent += 1;
            }
        }
        match partition_state_via(&s.c, leader, &topic, 0) {
            Ok(st) if !st.isr.contains(&victim) => break st,
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let t_shrunk = Instant::now();
    s.step(&format!(
        "after {sent} records of {BIG} bytes to {topic}-0: ISR {:?} ({} after the filling began); {victim}'s disk: {:?}",
        shrunk.isr,
        secs(t_fill.elapsed()),
        disk.space()
    ));
    let out = s.c.node(victim).output();
    let enospc: Vec<&str> = out.lines().filter(|l| l.contains("No space left") || l.contains("os error 28")).collect();
    s.step(&format!("{victim} logged {} lines about the full disk; the first: {:?}", enospc.len(), &enospc[..enospc.len().min(4)]));
    assert_eq!(shrunk.leader, leader, "{topic}-0 changed leader: {shrunk:?}");
    assert_eq!(shrunk.isr.len(), 2, "{topic}-0: {shrunk:?}");
    let acked = s.load().wait_ack_after(0, t_shrunk, Duration::from_secs(10)).expect("acks=all acknowledgements on partition 0 with the ISR at 2");
    s.step(&format!("acks=all acknowledged on {topic}-0 {} after the shrink", secs(acked - t_shrunk)));
    s.run_for(Duration::from_secs(3));
    let _ = filler.flush(Duration::from_secs(30));
    let running = s.c.running();
    assert_eq!(running, s.c.ids(), "a node exited (disk full on {victim}); running: {running:?}");
    let (ok, failed) = s.load().reports_after(0, t_shrunk);
    s.step(&format!("{topic}-0 after the shrink: {} acknowledged, {} failed {:?}; every node still runs", ok.len(), failed.len(), error_histogram(&failed)));
    assert!(failed.is_empty(), "deliveries to {topic}-0 failed with the ISR at 2: {:?}", &failed[..failed.len().min(5)]);

    let reports = s.load.take().map(|l| l.stop()).unwrap_or_default();
    s.step(&format!("load stopped; failures by error: {:?}", error_histogram(&reports)));
    let running = s.c.running();
    assert_eq!(running, s.c.ids(), "a node exited (disk full on {victim}); running: {running:?}");
    let others: Vec<i32> = s.c.broker_ids().into_iter().filter(|&id| id != victim).collect();
    let bootstrap = others.iter().map(|&id| s.c.bootstrap(id)).collect::<Vec<_>>().join(",");
    let (acked, refused) = split_reports(&reports);
    let (read, bounds) = read_all(&bootstrap, &topic, PARTITIONS, Duration::from_secs(120));
    let report = check(&acked, &refused, &read, &bounds);
    s.step(&format!("checker: {}", report.summary()));
    assert!(report.is_clean(), "[{}] seed {}: checker found: {}", s.name, s.seed.seed, report.summary());
    // The nodes go before the disk is unmounted.
    for id in s.c.running() {
        s.c.kill9(id);
    }
    drop(disk);
    s.step("done: the full follower left the ISR, acks=all went on, no node exited");
}

/// A librdkafka consumer assigned to one partition from its beginning (no
/// group membership, nothing committed), polled by the test: what it read
/// and the errors it was given, in order.
pub struct Tail {
    pub consumer: BaseConsumer,
    /// (offset, value) in the order read; an offset read twice appears twice.
    pub read: Vec<(i64, String)>,
    /// (error code, text) of every consumer error.
    pub errors: Vec<(Option<RDKafkaErrorCode>, String)>,
}

impl Tail {
    /// `auto_offset_reset`: `earliest`, `latest` or `error`.
    pub fn start(bootstrap: &str, topic: &str, p: i32, auto_offset_reset: &str) -> Tail {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("client.id", format!("shardlog-tail-{auto_offset_reset}"))
            .set("broker.address.family", "v4")
            .set("group.id", format!("shardlog-tail-{}-{auto_offset_reset}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", auto_offset_reset)
            .set("fetch.wait.max.ms", "100")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create()
            .expect("tail consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("tpl");
        consumer.assign(&tpl).expect("assign");
        Tail { consumer, read: Vec::new(), errors: Vec::new() }
    }

    /// Polls until `done(self)` or `timeout` (panics then, with `what`).
    pub fn poll_until(&mut self, what: &str, timeout: Duration, done: impl Fn(&Tail) -> bool) {
        let t0 = Instant::now();
        while !done(self) {
            assert!(t0.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}; read {:?}; errors {:?}", self.read, self.errors);
            match self.consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(m)) => self.read.push((m.offset(), String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())),
                Some(Err(e)) => self.errors.push((e.rdkafka_error_code(), e.to_string())),
            }
        }
    }

    /// Whether `offset` was read with `value`.
    pub fn has(&self, offset: i64, value: &str) -> bool {
        self.read.iter().any(|(o, v)| *o == offset && v == value)
    }
}

/// One raw Produce of `value` to `topic`-`p` on `addr` with `acks`: (error code, base offset).
fn produce_one(addr: &str, topic: &str, p: i32, value: &str, acks: i16) -> (i16, i64) {
    let (mut conn, corr) = probe_send_acks(addr, topic, p, value, acks);
    probe_recv(&mut conn, corr).unwrap_or_else(|e| panic!("Produce (acks={acks}) of {value} to {topic}-{p} on {addr}: {e}"))
}

/// 8. Unclean leader election is opt-in (split layout: the quorum outlives the
///    brokers). Partition 0 (`unclean.leader.election.enable=false`) gets
///    acks=all records (on every replica); both followers are killed, the ISR
///    shrinks to the leader: acks=all is refused NOT_ENOUGH_REPLICAS, acks=1
///    records are appended but not committed (KIP-966 part 1: the high
///    watermark stays while the ISR is below `min.insync.replicas`) until the
///    topic's `min.insync.replicas` is lowered to 1, so consumers read them;
///    the leader is killed; one follower (out of sync: it lacks the acks=1
///    records) restarts: the partition stays leaderless for 6 s.
///    Setting `unclean.leader.election.enable=true` on the topic makes the
///    controller elect it (Kafka: the controller acts on the config change);
///    the acks=all records are readable there, the acks=1 ones are lost;
///    new records take the lost offsets. Two librdkafka consumers that had
///    read past the new log end detect the truncation (KIP-320,
///    OffsetForLeaderEpoch): with `auto.offset.reset=earliest` it seeks back to
///    the new log end and reads every new record (no silent skip); with
///    `auto.offset.reset=error` it gets an error (`_AUTO_OFFSET_RESET`, "log
///    truncation detected").
#[test]
fn unclean_election_opt_in() {
    const KEPT: usize = 10;
    const LOST: usize = 5;
    const NEW: usize = 8;
    let leaderless_for = Duration::from_secs(6);
    let election_bound = Duration::from_millis(SESSION_TIMEOUT_MS) + Duration::from_secs(2) + SLACK;
    let mut s = Scenario::start_with("unclean_election_opt_in", Layout::Split, &[], &[("unclean.leader.election.enable", "false")]);
    let topic = s.topic.clone();
    let (leader, followers) = s.leader_and_followers(0);
    let mut kept: BTreeMap<i64, String> = BTreeMap::new();
    for i in 0..KEPT {
        let v = format!("{}-all-{i}", s.prefix);
        let (code, offset) = produce_one(&s.c.bootstrap(leader), &topic, 0, &v, -1);
        assert_eq!(code, NONE, "acks=all Produce of {v} with a full ISR");
        kept.insert(offset, v);
    }
    assert_eq!(kept.keys().copied().collect::<Vec<_>>(), (0..KEPT as i64).collect::<Vec<_>>(), "acks=all offsets");
    s.step(&format!("{KEPT} acks=all records at offsets 0..{KEPT} of {topic}-0 (leader {leader}, followers {followers:?})"));
    let mut earliest = Tail::start(&s.c.bootstrap_all(), &topic, 0, "earliest");
    let mut strict = Tail::start(&s.c.bootstrap_all(), &topic, 0, "error");

    s.c.kill9(followers[0]);
    s.c.kill9(followers[1]);
    let (isr, shrink) = wait_isr(&s.c, &topic, 0, 1, isr_shrink_bound() + OP);
    assert_eq!(isr, vec![leader], "ISR of {topic}-0 with both followers down");
    s.step(&format!("killed followers {followers:?}; ISR {isr:?} after {}", secs(shrink)));
    let refused = produce_one(&s.c.bootstrap(leader), &topic, 0, &format!("{}-refused", s.prefix), -1);
    assert_eq!(refused.0, 19, "acks=all with ISR {isr:?} < min.insync.replicas {MIN_ISR}: want NOT_ENOUGH_REPLICAS (19), got {refused:?}");
    let mut lost: BTreeMap<i64, String> = BTreeMap::new();
    for i in 0..2 * LOST {
        if i == LOST {
            // KIP-966 part 1: the high watermark stays while the ISR is
            // below min.insync.replicas, so the acks=1 records are not
            // committed (not readable) yet. Lowering min.insync.replicas to 1
            // commits them (on the next append): a consumer reads past what
            // the followers hold.
            let wm = earliest.consumer.fetch_watermarks(&topic, 0, Duration::from_secs(10)).expect("watermarks");
            assert_eq!(
                wm,
                (0, KEPT as i64),
                "(log start, high watermark) of {topic}-0 after {LOST} acks=1 records with ISR {isr:?} < min.insync.replicas {MIN_ISR}"
            );
            let r = set_topic_config(&s.c.bootstrap(leader), &topic, "min.insync.replicas", "1").expect("IncrementalAlterConfigs");
            assert_eq!(r.0, NONE, "min.insync.replicas=1 on {topic}: {r:?}");
            s.step(&format!("{LOST} acks=1 records appended, high watermark stays {KEPT} (ISR 1 < min ISR {MIN_ISR}); set min.insync.replicas=1"));
        }
        let v = format!("{}-one-{i}", s.prefix);
        let (code, offset) = produce_one(&s.c.bootstrap(leader), &topic, 0, &v, 1);
        assert_eq!(code, NONE, "acks=1 Produce of {v} with ISR {isr:?}");
        lost.insert(offset, v);
    }
    let end = (KEPT + 2 * LOST) as i64;
    assert_eq!(lost.keys().copied().collect::<Vec<_>>(), (KEPT as i64..end).collect::<Vec<_>>(), "acks=1 offsets");
    let wm = wait_until(&format!("the high watermark of {topic}-0 at {end}"), OP, POLL, || {
        match earliest.consumer.fetch_watermarks(&topic, 0, Duration::from_secs(5)).map_err(|e| e.to_string())? {
            (lo, hw) if hw == end => Ok((lo, hw)),
            other => Err(format!("{other:?}")),
        }
    });
    s.step(&format!("{} acks=1 records at offsets {KEPT}..{end} on the leader alone, committed: watermarks {wm:?}", 2 * LOST));
    for (name, t) in [("earliest", &mut earliest), ("error", &mut strict)] {
        t.poll_until(&format!("the {name} consumer to read offsets 0..{end}"), OP, |t| t.read.iter().any(|(o, _)| *o == end - 1));
        let want: Vec<(i64, String)> = kept.iter().chain(lost.iter()).map(|(o, v)| (*o, v.clone())).collect();
        assert_eq!(t.read, want, "the {name} consumer before the failover");
    }
    s.step(&format!("both consumers read offsets 0..{end} (position {end})"));

    s.c.kill9(leader);
    let back = s.seed.pick(&followers);
    s.c.start_node(back);
    wait_until(&format!("broker {back} unfenced (in its own Metadata)"), OP, POLL, || {
        let md = metadata(&s.c.bootstrap(back), Some(&[]))?;
        let ids = broker_ids(&md);
        if ids != vec![back] {
            return Err(format!("brokers {ids:?}"));
        }
        Ok(())
    });
    s.step(&format!("killed leader {leader}; restarted out-of-sync follower {back}, unfenced"));
    let until = Instant::now() + leaderless_for;
    let mut polls = 0;
    while Instant::now() < until {
        let st = partition_state_via(&s.c, back, &topic, 0).unwrap_or_else(|e| panic!("Metadata of {topic}-0 from {back}: {e}"));
        assert!(st.leader < 0, "{topic}-0 elected a leader with unclean.leader.election.enable=false: {st:?}");
        assert!(st.error == LEADER_NOT_AVAILABLE || st.error == NONE, "{topic}-0 leaderless: error code {}", st.error);
        polls += 1;
        std::thread::sleep(POLL);
    }
    let st = partition_state_via(&s.c, back, &topic, 0).expect("Metadata");
    s.step(&format!("{topic}-0 stayed leaderless for {} ({polls} polls): {st:?}", secs(leaderless_for)));

    let r = set_topic_config(&s.c.bootstrap(back), &topic, "unclean.leader.election.enable", "true").expect("IncrementalAlterConfigs");
    assert_eq!(r.0, NONE, "IncrementalAlterConfigs unclean.leader.election.enable=true on {topic}: {r:?}");
    let t_set = Instant::now();
    s.step("set unclean.leader.election.enable=true on the topic");
    let (new, elected) = {
        let what = format!(
            "an unclean leader for {topic}-0 (only {back} is live; ISR {isr:?}) within {} of setting unclean.leader.election.enable=true",
            secs(election_bound)
        );
        let l = wait_until(&what, election_bound, Duration::from_millis(50), || {
            let st = partition_state_via(&s.c, back, &topic, 0)?;
            if st.leader < 0 {
                return Err(format!("{st:?}"));
            }
            Ok(st)
        });
        (l, t_set.elapsed())
    };
    assert_eq!(new.leader, back, "{topic}-0 after the unclean election: {new:?}");
    assert_eq!(new.isr, vec![back], "{topic}-0 ISR after the unclean election: {new:?}");
    s.step(&format!("unclean election: {back} leads {topic}-0 {} after the config change: {new:?}", secs(elected)));

    let (read, bounds) = read_all(&s.c.bootstrap(back), &topic, 1, OP);
    assert_eq!(bounds.get(&0), Some(&(0, KEPT as i64)), "{topic}-0 (log start, high watermark) on the new leader");
    let got: BTreeMap<i64, String> = read.iter().map(|r| (r.offset, r.value.clone())).collect();
    assert_eq!(got, kept, "{topic}-0 on the new leader: every acks=all record, nothing else");
    s.step(&format!("{back} holds exactly the {KEPT} acks=all records; the {} acks=1 records are gone", 2 * LOST));

    let mut new_records: BTreeMap<i64, String> = BTreeMap::new();
    for i in 0..NEW {
        let v = format!("{}-new-{i}", s.prefix);
        let (code, offset) = wait_until(&format!("acks=1 Produce of {v} to {back}"), OP, POLL, || match produce_one(&s.c.bootstrap(back), &topic, 0, &v, 1) {
            (NONE, o) => Ok((NONE, o)),
            other => Err(format!("{other:?}")),
        });
        assert_eq!(code, NONE);
        new_records.insert(offset, v);
    }
    let new_end = KEPT as i64 + NEW as i64;
    assert_eq!(new_records.keys().copied().collect::<Vec<_>>(), (KEPT as i64..new_end).collect::<Vec<_>>(), "offsets of the new records");
    s.step(&format!("{NEW} new records at offsets {KEPT}..{new_end} (over the lost ones)"));

    let n_before = earliest.read.len();
    earliest.poll_until("the earliest consumer to read every new record", OP, |t| new_records.iter().all(|(o, v)| t.has(*o, v)));
    let after = &earliest.read[n_before..];
    s.step(&format!("earliest consumer after the failover read {after:?}; errors {:?}", earliest.errors));
    assert!(
        after.iter().all(|(o, v)| kept.get(o) == Some(v) || new_records.get(o) == Some(v)),
        "the earliest consumer read a record that is not in the new leader's log: {after:?}"
    );
    let position = earliest.consumer.position().expect("position");
    let pos = position.find_partition(&topic, 0).map(|e| e.offset());
    assert_eq!(pos, Some(Offset::Offset(new_end)), "the earliest consumer's position after reading every new record");
    strict.poll_until("the error consumer's truncation error", OP, |t| {
        t.errors.iter().any(|(code, _)| *code == Some(RDKafkaErrorCode::AutoOffsetReset)) || t.read.len() > end as usize
    });
    s.step(&format!("error consumer: errors {:?}, read after the failover {:?}", strict.errors, &strict.read[end as usize..]));
    assert!(
        // The rdkafka crate gives the code only; librdkafka's reason
        // ("Partition log truncation detected at ...") is in its log.
        strict.errors.iter().any(|(code, _)| *code == Some(RDKafkaErrorCode::AutoOffsetReset)),
        "auto.offset.reset=error: want an _AUTO_OFFSET_RESET error for the log truncation, got errors {:?} and records {:?}",
        strict.errors,
        &strict.read[end as usize..]
    );
    assert_eq!(strict.read.len(), end as usize, "the error consumer read records after the truncation: {:?}", &strict.read[end as usize..]);
    s.step("done: leaderless until opted in, unclean leader holds the acknowledged-by-all records, truncation detected by both consumers");
}
