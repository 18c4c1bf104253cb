//! Fault helpers for the replication scenarios, beside the process faults on
//! [`Cluster`] itself (`kill9`, `stop_nodes`, `start_node`, `pause`, `resume`):
//!
//! - a partition's state (leader, epoch, replicas, ISR) as the live brokers'
//!   Metadata gives it: [`partition_state`], [`leader_of`], [`isr_of`], and
//!   waits on it: [`wait_leader`], [`wait_isr`], [`wait_full_isr`];
//! - a seeded random source ([`Seed`]) every scenario prints, replayable with
//!   `SHARDLOG_SEED`;
//! - [`broker_accepts`]: whether this `shardlog` build knows a config key
//!   (start-up refuses an unknown key);
//! - a cuttable TCP link ([`Proxy`]): std threads, bounded, for placing
//!   between two processes.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cluster_harness::*;

// ---------------------------------------------------------------------------
// Partition state from Metadata
// ---------------------------------------------------------------------------

/// One partition as a broker's Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartState {
    pub error: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    /// Sorted.
    pub isr: Vec<i32>,
}

/// The brokers whose process runs and is not paused (a paused node would not
/// answer until [`RAW_TIMEOUT`]).
pub fn live_brokers(c: &Cluster) -> Vec<i32> {
    c.broker_ids().into_iter().filter(|&id| c.pid(id).is_some() && !c.is_paused(id)).collect()
}

/// Partition `p` of `topic` as node `via`'s Metadata gives it.
pub fn partition_state_via(c: &Cluster, via: i32, topic: &str, p: i32) -> Result<PartState, String> {
    let md = metadata(&c.bootstrap(via), Some(&[topic]))?;
    let t =
        md.topics.iter().find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic)).ok_or_else(|| format!("node {via}: topic {topic} not in Metadata"))?;
    if t.error_code != NONE {
        return Err(format!("node {via}: topic {topic}: error code {}", t.error_code));
    }
    let part = t.partitions.iter().find(|x| x.partition_index == p).ok_or_else(|| format!("node {via}: {topic} has no partition {p}"))?;
    let mut isr: Vec<i32> = part.isr_nodes.iter().map(|b| b.0).collect();
    isr.sort();
    Ok(PartState {
        error: part.error_code,
        leader: part.leader_id.0,
        leader_epoch: part.leader_epoch,
        replicas: part.replica_nodes.iter().map(|b| b.0).collect(),
        isr,
    })
}

/// Partition `p` of `topic` as every live broker's Metadata gives it, all of
/// them agreeing on leader, epoch and ISR; an error when one does not answer
/// or they disagree (callers poll).
pub fn partition_state(c: &Cluster, topic: &str, p: i32) -> Result<PartState, String> {
    let mut agreed: Option<(i32, PartState)> = None;
    for id in live_brokers(c) {
        let s = partition_state_via(c, id, topic, p)?;
        match &agreed {
            Some((first, a)) if (a.leader, a.leader_epoch, &a.isr) != (s.leader, s.leader_epoch, &s.isr) => {
                return Err(format!("{topic}-{p}: node {first} says {a:?}, node {id} says {s:?}"));
            }
            Some(_) => {}
            None => agreed = Some((id, s)),
        }
    }
    agreed.map(|(_, s)| s).ok_or_else(|| "no live broker".to_string())
}

/// The leader of partition `p` of `topic` every live broker agrees on (an
/// error while there is none).
pub fn leader_of(c: &Cluster, topic: &str, p: i32) -> Result<i32, String> {
    let s = partition_state(c, topic, p)?;
    if s.error != NONE || s.leader < 0 {
        return Err(format!("{topic}-{p}: no leader: {s:?}"));
    }
    Ok(s.leader)
}

/// The ISR (sorted) of partition `p` of `topic` every live broker agrees on.
pub fn isr_of(c: &Cluster, topic: &str, p: i32) -> Result<Vec<i32>, String> {
    Ok(partition_state(c, topic, p)?.isr)
}

/// Waits until partition `p` has a leader that is not `not` and is live:
/// that leader and the time it took.
pub fn wait_leader(c: &Cluster, topic: &str, p: i32, not: Option<i32>, timeout: Duration) -> (i32, Duration) {
    let t0 = Instant::now();
    let l = wait_until(&format!("a leader of {topic}-{p} other than {not:?}"), timeout, Duration::from_millis(50), || {
        let l = leader_of(c, topic, p)?;
        if Some(l) == not {
            return Err(format!("leader still {l}"));
        }
        if !live_brokers(c).contains(&l) {
            return Err(format!("leader {l} is not a live broker"));
        }
        Ok(l)
    });
    let took = t0.elapsed();
    c.step(&format!("{topic}-{p}: leader {l} ({:.3}s)", took.as_secs_f64()));
    (l, took)
}

/// Waits until partition `p`'s ISR has exactly `expected_len` members (and
/// a leader): the ISR and the time it took.
pub fn wait_isr(c: &Cluster, topic: &str, p: i32, expected_len: usize, timeout: Duration) -> (Vec<i32>, Duration) {
    let t0 = Instant::now();
    let isr = wait_until(&format!("the ISR of {topic}-{p} to have {expected_len} members"), timeout, Duration::from_millis(50), || {
        let s = partition_state(c, topic, p)?;
        if s.isr.len() != expected_len || s.leader < 0 {
            return Err(format!("{s:?}"));
        }
        Ok(s.isr)
    });
    let took = t0.elapsed();
    c.step(&format!("{topic}-{p}: ISR {isr:?} ({:.3}s)", took.as_secs_f64()));
    (isr, took)
}

/// Waits until every partition `0..partitions` has a leader and all its
/// replicas in the ISR: partition -> state.
pub fn wait_full_isr(c: &Cluster, topic: &str, partitions: i32, timeout: Duration) -> BTreeMap<i32, PartState> {
    let t0 = Instant::now();
    let all = wait_until(&format!("every partition of {topic} to have a leader and a full ISR"), timeout, Duration::from_millis(100), || {
        let mut m = BTreeMap::new();
        for p in 0..partitions {
            let s = partition_state(c, topic, p)?;
            let mut replicas = s.replicas.clone();
            replicas.sort();
            if s.error != NONE || s.leader < 0 || s.isr != replicas || replicas.is_empty() {
                return Err(format!("{topic}-{p}: {s:?}"));
            }
            m.insert(p, s);
        }
        Ok(m)
    });
    c.step(&format!(
        "{topic}: every ISR full ({:.2}s): {:?}",
        t0.elapsed().as_secs_f64(),
        all.iter().map(|(p, s)| (*p, s.leader, s.isr.clone())).collect::<Vec<_>>()
    ));
    all
}

// ---------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------

/// A scenario's random source: splitmix64 from a seed taken from
/// `SHARDLOG_SEED` (to replay a run) or the clock.
pub struct Seed {
    pub seed: u64,
    state: u64,
}

impl Seed {
    /// `SHARDLOG_SEED` (decimal or 0x-hex) when set, else a fresh one.
    pub fn from_env_or_random() -> Seed {
        let seed = match std::env::var("SHARDLOG_SEED") {
            Ok(s) => {
                let s = s.trim();
                let parsed = match s.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16),
                    None => s.parse(),
                };
                parsed.unwrap_or_else(|e| panic!("SHARDLOG_SEED={s:?}: {e}"))
            }
            Err(_) => {
                let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
                splitmix(nanos ^ ((std::process::id() as u64) << 32))
            }
        };
        Seed::new(seed)
    }

    pub fn new(seed: u64) -> Seed {
        Seed { seed, state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.state)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------
// Config keys this build knows
// ---------------------------------------------------------------------------

/// Whether this `shardlog` build accepts `--set key=value` (start-up refuses
/// unknown keys): formats a scratch node directory with it.
pub fn broker_accepts(key: &str, value: &str) -> bool {
    let tmp = tempfile::Builder::new().prefix("shardlog-probe-").tempdir().expect("temp dir");
    let sets = [
        format!("log.dirs={}", tmp.path().display()),
        "node.id=1".to_string(),
        "process.roles=broker,controller".to_string(),
        "controller.quorum.voters=1@127.0.0.1:1".to_string(),
        "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:1".to_string(),
        format!("{key}={value}"),
    ];
    let mut args: Vec<String> = vec!["storage".into(), "format".into(), "--cluster-id=MkU3OEVBNTcwNTJENDM2Qg".into()];
    for s in sets {
        args.push("--set".into());
        args.push(s);
    }
    let out = shardlog(&args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        return true;
    }
    assert!(err.contains("unknown config key"), "probing {key}={value}: storage format failed for another reason: {err}");
    false
}

// ---------------------------------------------------------------------------
// A cuttable TCP link
// ---------------------------------------------------------------------------

/// Most connections a [`Proxy`] carries at once; more are refused (closed).
pub const PROXY_MAX_CONNS: usize = 64;

/// A TCP forwarder on 127.0.0.1 to `upstream`, two std threads per
/// connection (at most [`PROXY_MAX_CONNS`]). [`Proxy::cut`] closes every
/// connection and refuses new ones (both ends see a reset or EOF, as after a
/// cable pull followed by a timeout); [`Proxy::heal`] accepts again.
/// [`Proxy::blackhole`] instead keeps connections open and drops the bytes
/// (the peers only notice by their own timeouts).
pub struct Proxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    mode: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<(TcpStream, TcpStream)>>>,
    forwarded: Arc<AtomicU64>,
    acceptor: Option<JoinHandle<()>>,
}

const MODE_OPEN: u64 = 0;
const MODE_CUT: u64 = 1;
const MODE_BLACKHOLE: u64 = 2;

impl Proxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        Proxy::start_on(l, upstream)
    }

    /// Forwards connections accepted on `l` to `upstream`.
    pub fn start_on(l: TcpListener, upstream: SocketAddr) -> Proxy {
        let addr = l.local_addr().expect("proxy addr");
        l.set_nonblocking(true).expect("nonblocking listener");
        let mode = Arc::new(AtomicU64::new(MODE_OPEN));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<(TcpStream, TcpStream)>>> = Arc::new(Mutex::new(Vec::new()));
        let forwarded = Arc::new(AtomicU64::new(0));
        let (m, s, cs, fw) = (mode.clone(), stop.clone(), conns.clone(), forwarded.clone());
        let acceptor = std::thread::spawn(move || {
            let mut pumps: Vec<JoinHandle<()>> = Vec::new();
            while !s.load(Ordering::Relaxed) {
                pumps.retain(|h| !h.is_finished());
                match l.accept() {
                    Ok((down, _)) => {
                        if m.load(Ordering::Relaxed) == MODE_CUT || pumps.len() / 2 >= PROXY_MAX_CONNS {
                            let _ = down.shutdown(Shutdown::Both);
                            continue;
                        }
                        let Ok(up) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
                            let _ = down.shutdown(Shutdown::Both);
                            continue;
                        };
                        let _ = down.set_nonblocking(false);
                        let _ = down.set_nodelay(true);
                        let _ = up.set_nodelay(true);
                        if let (Ok(d2), Ok(u2)) = (down.try_clone(), up.try_clone()) {
                            cs.lock().unwrap_or_else(|e| e.into_inner()).push((d2, u2));
                        }
                        for (from, to) in [(down.try_clone(), up.try_clone()), (up.try_clone(), down.try_clone())] {
                            if let (Ok(from), Ok(to)) = (from, to) {
                                let (m, fw) = (m.clone(), fw.clone());
                                pumps.push(std::thread::spawn(move || pump(from, to, &m, &fw)));
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for h in pumps {
                let _ = h.join();
            }
        });
        Proxy { addr, upstream, mode, stop, conns, forwarded, acceptor: Some(acceptor) }
    }

    /// Closes every connection and refuses new ones until [`Proxy::heal`].
    pub fn cut(&self) {
        self.mode.store(MODE_CUT, Ordering::Relaxed);
        self.close_all();
    }

    /// Keeps connections open but drops every byte until [`Proxy::heal`].
    pub fn blackhole(&self) {
        self.mode.store(MODE_BLACKHOLE, Ordering::Relaxed);
    }

    /// Forwards again (new connections; a cut closed the old ones).
    pub fn heal(&self) {
        self.mode.store(MODE_OPEN, Ordering::Relaxed);
    }

    /// Bytes forwarded so far, both directions.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    fn close_all(&self) {
        for (d, u) in self.conns.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = d.shutdown(Shutdown::Both);
            let _ = u.shutdown(Shutdown::Both);
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, mode: &AtomicU64, forwarded: &AtomicU64) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => match mode.load(Ordering::Relaxed) {
                MODE_OPEN => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    forwarded.fetch_add(n as u64, Ordering::Relaxed);
                }
                MODE_BLACKHOLE => {}
                _ => break,
            },
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.close_all();
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

/// The process faults and partition waits on what runs today (single-replica
/// partitions): a SIGSTOPped broker is fenced after the session timeout and
/// its partition goes leaderless; SIGCONT, and it leads it again.
#[test]
fn paused_broker_is_fenced_and_leads_again_after_resume() {
    let mut c = Cluster::start(3, &[]);
    create(&c, 1, "paused", 3, &[]);
    wait_full_isr(&c, "paused", 3, OP);
    let victim = leader_of(&c, "paused", 0).expect("leader of partition 0");
    let t0 = Instant::now();
    c.pause(victim);
    assert!(!live_brokers(&c).contains(&victim));
    let limit = Duration::from_millis(SESSION_TIMEOUT_MS) + Duration::from_secs(10);
    let st = wait_until("partition 0 leaderless while its only replica is paused", limit, POLL, || match partition_state(&c, "paused", 0) {
        Ok(st) if st.leader < 0 => Ok(st),
        other => Err(format!("{other:?}")),
    });
    c.step(&format!("paused broker {victim} fenced after {:.3}s: {st:?}", t0.elapsed().as_secs_f64()));
    c.resume(victim);
    let (leader, took) = wait_leader(&c, "paused", 0, None, OP);
    assert_eq!(leader, victim);
    c.step(&format!("resumed broker {victim} leads partition 0 again after {:.3}s", took.as_secs_f64()));
    // Stopping a paused node resumes it first.
    c.pause(victim);
    c.stop_nodes(&[victim]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server thread for one connection at a time, until the test ends.
    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn echo(addr: SocketAddr, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        s.write_all(msg)?;
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got)?;
        Ok(got)
    }

    #[test]
    fn proxy_forwards_cuts_and_heals() {
        let p = Proxy::start(echo_server());
        assert_eq!(echo(p.addr, b"hello").unwrap(), b"hello");
        // A connection open across the cut is closed.
        let mut open = TcpStream::connect(p.addr).unwrap();
        open.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        open.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        open.read_exact(&mut one).unwrap();
        p.cut();
        let mut rest = Vec::new();
        assert!(matches!(open.read_to_end(&mut rest), Ok(0) | Err(_)), "cut closes open connections");
        assert!(echo(p.addr, b"during").is_err(), "a cut link carries nothing");
        p.heal();
        assert_eq!(echo(p.addr, b"again").unwrap(), b"again");
        p.blackhole();
        assert!(echo(p.addr, b"lost").is_err(), "a blackholed link answers nothing");
        p.heal();
        assert!(p.forwarded() >= 2 * (5 + 1 + 5) as u64);
    }

    #[test]
    fn seeds_replay() {
        let (mut a, mut b) = (Seed::new(42), Seed::new(42));
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
        assert!((0..100).all(|_| a.below(3) < 3));
    }
}
