//! `shardlog dev cluster`: a local cluster of N combined nodes
//! (`process.roles=broker,controller`, all voters) in one command, for trying
//! out replication, failover and the operator tools.
//!
//! - Layout: node i (1..=N) serves clients on `P + 2(i-1)` and the quorum on
//!   the port after it, all on 127.0.0.1, data in `DIR/node-i`. A fresh
//!   directory is formatted with a new cluster id (as `shardlog storage
//!   format`); one already formatted is started again as it is (restart).
//! - Each node is a child process (`shardlog start --set ...`), in its own
//!   process group (a terminal's Ctrl-C reaches only us, and we stop the nodes
//!   in order) with PR_SET_PDEATHSIG(SIGTERM), so a dev cluster killed with
//!   SIGKILL leaves no node behind.
//! - Its output is streamed line by line, prefixed `[node-i] `.
//! - SIGINT/SIGTERM: SIGTERM to every node, up to 20 s each, then SIGKILL;
//!   exit 0. A node that exits on its own stops the others; exit 1.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequest;

use super::client::{parse_key_value, Conn};
use super::output::{eprint_line, print_line};
use crate::config::Config;
use crate::metadata::log::new_cluster_id;
use crate::metadata::meta_properties::{self, MetaProperties};

/// How long a SIGTERM'd node may take before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the nodes may take until every broker is registered.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// `shardlog dev`.
#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// The dev subcommand to run.
    #[command(subcommand)]
    pub cmd: DevCmd,
}

/// Subcommands of `shardlog dev`.
#[derive(clap::Subcommand, Debug)]
pub enum DevCmd {
    /// Format and run a local cluster of combined broker+controller nodes until Ctrl-C.
    ///
    /// Example: shardlog dev cluster --nodes 3 --dir /tmp/dev --set log.segment.bytes=1048576
    Cluster(DevClusterArgs),
}

/// Options of `shardlog dev cluster`.
#[derive(clap::Args, Debug)]
pub struct DevClusterArgs {
    /// Number of nodes, each a broker and a quorum voter.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub nodes: u16,
    /// Data directory (node i uses DIR/node-i); a formatted one is restarted. Default: a new temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the temporary directory at exit (without --dir).
    #[arg(long)]
    pub keep: bool,
    /// First client port; node i listens on BASE+2(i-1), its controller on the port after,
    /// and its admin listener (metrics, console) on BASE+2N+(i-1), after all of those.
    #[arg(long, default_value_t = 19092)]
    pub base_port: u16,
    /// Shards (cores) per node.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub shards_per_node: u16,
    /// Broker config for every node, KEY=VALUE (repeatable; applied after the dev cluster's own).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// One node's `--set` pairs, as [`node_sets`] builds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// Node id, 1..=N.
    pub id: u16,
    /// Client port.
    pub port: u16,
    /// Admin listener port (metrics, admin API, console).
    pub admin_port: u16,
    /// The `--set KEY=VALUE` pairs of `shardlog start` (and of the format step).
    pub sets: Vec<String>,
}

/// Every node's settings: ids, ports, voters, data directories, replication
/// factors of min(3, N), shard cores spread over the machine's `cpus`.
pub fn plan(nodes: u16, base_port: u16, dir: &Path, shards: u16, cpus: usize, extra: &[String]) -> Result<Vec<NodePlan>, String> {
    let n = nodes as u32;
    let last = base_port as u32 + 3 * n - 1;
    if last > u16::MAX as u32 {
        return Err(format!("--base-port {base_port} leaves no room for {n} nodes (ports up to {last})"));
    }
    if shards as usize > cpus {
        return Err(format!("--shards-per-node {shards} is more than this machine's {cpus} CPUs"));
    }
    let port = |i: u32| (base_port as u32 + 2 * (i - 1)) as u16;
    let admin_port = |i: u32| (base_port as u32 + 2 * n + (i - 1)) as u16;
    let voters = (1..=n).map(|i| format!("{i}@127.0.0.1:{}", port(i) + 1)).collect::<Vec<_>>().join(",");
    let rf = n.min(3);
    Ok((1..=n)
        .map(|i| {
            let first = ((i - 1) as usize * shards as usize) % cpus;
            let cores = (0..shards as usize).map(|k| ((first + k) % cpus).to_string()).collect::<Vec<_>>().join(",");
            let mut sets = vec![
                format!("node.id={i}"),
                "process.roles=broker,controller".to_string(),
                format!("log.dirs={}", dir.join(format!("node-{i}")).display()),
                format!("controller.quorum.voters={voters}"),
                format!("listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}", port(i), port(i) + 1),
                format!("shard.cores={cores}"),
                format!("admin.listener=http://127.0.0.1:{}", admin_port(i)),
                format!("default.replication.factor={rf}"),
                format!("offsets.topic.replication.factor={rf}"),
                format!("transaction.state.log.replication.factor={rf}"),
            ];
            if rf < 2 {
                // The default (2) cannot be met by one replica.
                sets.push("transaction.state.log.min.isr=1".to_string());
            }
            sets.extend(extra.iter().cloned());
            NodePlan { id: i as u16, port: port(i), admin_port: admin_port(i), sets }
        })
        .collect())
}

/// Formats every node directory not formatted yet, with the cluster id the
/// others have (a new one when none is): restarting a dev cluster reuses it.
fn format_dirs(plans: &[NodePlan]) -> Result<String, String> {
    let mut cfgs = Vec::new();
    for p in plans {
        cfgs.push(Config::load(None, None, &p.sets).map_err(|e| format!("node {}: {e}", p.id))?);
    }
    let mut existing = None;
    for c in &cfgs {
        if let Some(m) = meta_properties::read(&c.log_dir).map_err(|e| format!("{}: {e}", c.log_dir.display()))? {
            match &existing {
                Some(id) if *id != m.cluster_id => {
                    return Err(format!("{} holds cluster {}, another node directory cluster {id}", c.log_dir.display(), m.cluster_id))
                }
                _ => existing = Some(m.cluster_id),
            }
        }
    }
    let cluster_id = existing.unwrap_or_else(new_cluster_id);
    for c in &cfgs {
        let meta = MetaProperties { cluster_id: cluster_id.clone(), node_id: c.broker_id };
        meta_properties::format(&c.log_dir, &meta, true).map_err(|e| e.to_string())?;
    }
    Ok(cluster_id)
}

/// Copies `from` to our stdout or stderr line by line, prefixed.
fn stream(from: impl std::io::Read + Send + 'static, prefix: String, to_stderr: bool) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(from);
        let mut line = Vec::new();
        while let Ok(n) = r.read_until(b'\n', &mut line) {
            if n == 0 {
                break;
            }
            let mut text = format!("{prefix}{}", String::from_utf8_lossy(&line));
            if !text.ends_with('\n') {
                text.push('\n');
            }
            // A closed stdout/stderr must not stop the node: its pipe is drained regardless.
            if to_stderr {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            } else {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
            }
            line.clear();
        }
    })
}

/// Starts one node: its own process group, SIGTERM when we die.
#[allow(unsafe_code)]
fn spawn(plan: &NodePlan) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("start");
    for s in &plan.sets {
        cmd.arg("--set").arg(s);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (setpgid, prctl, getppid, _exit)
    // between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // We may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Waits until node 1 lists all `n` brokers (so topics with replication
/// factor N can be created at once), or a node exits, or we are asked to stop.
fn wait_ready(addr: &str, n: usize, children: &mut [(u16, Child)], stop: &AtomicUsize) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) != 0 {
            return Ok(());
        }
        if let Some(msg) = exited(children) {
            return Err(msg);
        }
        if let Ok(mut c) = Conn::open(addr) {
            if let Ok(md) = c.request(12, &MetadataRequest::default().with_topics(Some(Vec::new()))) {
                if md.brokers.len() >= n {
                    return Ok(());
                }
            }
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(format!("the cluster did not form within {} s", READY_TIMEOUT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A node that has exited, as a message.
fn exited(children: &mut [(u16, Child)]) -> Option<String> {
    for (id, c) in children.iter_mut() {
        if let Ok(Some(st)) = c.try_wait() {
            return Some(format!("node-{id} exited on its own ({st})"));
        }
    }
    None
}

/// SIGTERM to our child `c` (std's `Child::kill` only sends SIGKILL).
#[allow(unsafe_code)]
fn terminate(c: &mut Child) {
    if matches!(c.try_wait(), Ok(None)) {
        // SAFETY: kill(2) on the pid of our own child, not yet reaped.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
    }
}

/// SIGTERM to every running node, then up to [`STOP_TIMEOUT`] each before SIGKILL.
fn stop_all(children: &mut [(u16, Child)]) {
    for (_, c) in children.iter_mut() {
        terminate(c);
    }
    for (id, c) in children.iter_mut() {
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                Ok(None) => {
                    eprint_line(&format!("[dev] node-{id} did not stop within {} s: killing it", STOP_TIMEOUT.as_secs()));
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
            }
        }
    }
}

/// Runs `shardlog dev`.
pub fn run(args: DevArgs) -> ExitCode {
    let DevCmd::Cluster(a) = args.cmd;
    match run_cluster(a) {
        Ok(code) => code,
        Err(e) => {
            eprint_line(&format!("shardlog: error: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn run_cluster(a: DevClusterArgs) -> Result<ExitCode, String> {
    for s in &a.sets {
        parse_key_value(s).map_err(|e| e.to_string())?;
    }
    let (dir, temporary) = match &a.dir {
        Some(d) => (d.clone(), false),
        None => {
            let d = std::env::temp_dir().join(format!("shardlog-dev-{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]));
            (d, true)
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let plans = plan(a.nodes, a.base_port, &dir, a.shards_per_node, cpus, &a.sets)?;
    let cluster_id = format_dirs(&plans)?;
    // The signal that asked us to stop (0: none yet).
    let stop = Arc::new(AtomicUsize::new(0));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_usize(sig, stop.clone(), sig as usize).map_err(|e| format!("install signal handler: {e}"))?;
    }
    eprint_line(&format!("[dev] cluster {cluster_id}: {} node(s), data in {}", plans.len(), dir.display()));
    let mut children: Vec<(u16, Child)> = Vec::new();
    let mut readers = Vec::new();
    let mut failure = None;
    for p in &plans {
        match spawn(p) {
            Ok(mut c) => {
                if let Some(o) = c.stdout.take() {
                    readers.push(stream(o, format!("[node-{}] ", p.id), false));
                }
                if let Some(e) = c.stderr.take() {
                    readers.push(stream(e, format!("[node-{}] ", p.id), true));
                }
                children.push((p.id, c));
            }
            Err(e) => {
                failure = Some(format!("start node-{}: {e}", p.id));
                break;
            }
        }
    }
    let bootstrap = plans.iter().map(|p| format!("127.0.0.1:{}", p.port)).collect::<Vec<_>>().join(",");
    if failure.is_none() {
        match wait_ready(&format!("127.0.0.1:{}", plans[0].port), plans.len(), &mut children, &stop) {
            Ok(()) if stop.load(Ordering::SeqCst) == 0 => {
                print_line(&format!("bootstrap: {bootstrap}"));
                print_line(&format!("Connect with: shardlog topic create demo --bootstrap-server {bootstrap}"));
                print_line(&format!("  or: export SHARDLOG_BOOTSTRAP={bootstrap}"));
                let consoles = plans.iter().map(|p| format!("http://127.0.0.1:{}", p.admin_port)).collect::<Vec<_>>().join(" ");
                print_line(&format!("Console and /metrics (one per node): {consoles}"));
                print_line("Press Ctrl-C to stop the cluster.");
            }
            Ok(()) => {}
            Err(e) => failure = Some(e),
        }
    }
    while failure.is_none() && stop.load(Ordering::SeqCst) == 0 {
        failure = exited(&mut children);
        std::thread::sleep(Duration::from_millis(100));
    }
    match &failure {
        Some(msg) => eprint_line(&format!("[dev] {msg}: stopping the other nodes")),
        None => eprint_line(&format!("[dev] signal {}: stopping {} node(s)", stop.load(Ordering::SeqCst), children.len())),
    }
    stop_all(&mut children);
    for r in readers {
        let _ = r.join();
    }
    if temporary && !a.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprint_line(&format!("[dev] data kept in {} (start again with --dir {})", dir.display(), dir.display()));
    }
    Ok(if failure.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_lays_out_ports_voters_and_cores() {
        let p = plan(3, 19092, Path::new("/d"), 1, 2, &["log.segment.bytes=10485760".into()]).unwrap();
        assert_eq!(p.iter().map(|n| n.port).collect::<Vec<_>>(), vec![19092, 19094, 19096]);
        let voters = "controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097";
        assert!(p.iter().all(|n| n.sets.contains(&voters.to_string())));
        assert!(p[1].sets.contains(&"listeners=PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095".to_string()));
        assert!(p[2].sets.contains(&"log.dirs=/d/node-3".to_string()));
        assert_eq!(p.iter().map(|n| n.admin_port).collect::<Vec<_>>(), vec![19098, 19099, 19100]);
        assert!(p[0].sets.contains(&"admin.listener=http://127.0.0.1:19098".to_string()));
        assert_eq!(
            p.iter().map(|n| n.sets.iter().find(|s| s.starts_with("shard.cores=")).unwrap().as_str()).collect::<Vec<_>>(),
            vec!["shard.cores=0", "shard.cores=1", "shard.cores=0"]
        );
        assert!(p[0].sets.contains(&"default.replication.factor=3".to_string()));
        assert_eq!(p[0].sets.last().unwrap(), "log.segment.bytes=10485760");
        for n in &p {
            Config::load(None, None, &n.sets).expect("a valid node config");
        }
        let one = plan(1, 19092, Path::new("/d"), 2, 2, &[]).unwrap();
        assert!(one[0].sets.contains(&"default.replication.factor=1".to_string()));
        assert!(one[0].sets.contains(&"shard.cores=0,1".to_string()));
        assert!(plan(2, 65534, Path::new("/d"), 1, 2, &[]).is_err());
        assert!(plan(2, 19092, Path::new("/d"), 3, 2, &[]).is_err());
    }
}
