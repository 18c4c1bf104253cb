//! `shardlog dev cluster` as a user runs it: three real nodes from one
//! command, a replication-factor-3 topic created through the CLI, records
//! produced and consumed through librdkafka; Ctrl-C (SIGINT) stops every node
//! and leaves no process behind; a restart on the same directory keeps the
//! data; and a SIGKILLed dev cluster takes its nodes with it (PDEATHSIG).

mod cli_common;
#[path = "common/cluster.rs"]
mod cluster_harness;
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cli_common::run;
use cluster_harness::free_port_run;
use common::{broker_bin, by_partition, consume_all, producer_config};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// A running `shardlog dev cluster`, its stdout lines arriving on `lines`.
struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Dev {
    fn start(nodes: usize, dir: &Path) -> (Dev, String) {
        let base = free_port_run(3 * nodes);
        let mut child = Command::new(broker_bin())
            .args(["dev", "cluster", "--nodes", &nodes.to_string(), "--base-port", &base.to_string(), "--dir"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shardlog dev cluster");
        let (tx, lines) = mpsc::channel();
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (out, err) = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
        let o = output.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                o.lock().unwrap().push_str(&format!("{l}\n"));
                let _ = tx.send(l);
            }
        });
        let o = output.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                o.lock().unwrap().push_str(&format!("{l}\n"));
            }
        });
        let mut dev = Dev { child, lines, output };
        let bootstrap = dev.wait_line("bootstrap: ", Duration::from_secs(120));
        let expected: Vec<String> = (0..nodes).map(|i| format!("127.0.0.1:{}", base as usize + 2 * i)).collect();
        assert_eq!(bootstrap, expected.join(","), "bootstrap list");
        (dev, bootstrap)
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest.
    fn wait_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l[prefix.len()..].to_string(),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no line starting with {prefix:?} within {timeout:?}; output:\n{}", self.output.lock().unwrap());
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "dev cluster did not exit within {timeout:?}; output:\n{}", self.output.lock().unwrap());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pids of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                out.push(format!("{name}: {cmd}"));
            }
        }
    }
    out
}

fn wait_no_processes(needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let left = processes_mentioning(needle);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes left behind:\n{}", left.join("\n"));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn produce(bootstrap: &str, topic: &str, partitions: i32, per: usize) {
    let p: BaseProducer = producer_config(bootstrap).set("acks", "all").create().expect("producer");
    for part in 0..partitions {
        for i in 0..per {
            let v = format!("v{part}-{i}");
            p.send(BaseRecord::<(), _>::to(topic).partition(part).payload(&v)).expect("enqueue");
        }
    }
    p.flush(Duration::from_secs(60)).expect("every record acknowledged");
}

fn assert_records(bootstrap: &str, topic: &str, partitions: i32, per: usize) {
    let recs = consume_all(bootstrap, topic, partitions, partitions as usize * per, Duration::from_secs(60));
    let parts = by_partition(&recs);
    for part in 0..partitions {
        let got: Vec<String> =
            parts.get(&part).into_iter().flatten().map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or(b"")).into_owned()).collect();
        let want: Vec<String> = (0..per).map(|i| format!("v{part}-{i}")).collect();
        assert_eq!(got, want, "partition {part}");
    }
}

#[test]
fn three_nodes_replicate_stop_on_ctrl_c_restart_and_die_with_their_parent() {
    let tmp = tempfile::Builder::new().prefix("shardlog-dev-it-").tempdir().expect("tmp");
    let dir = tmp.path().to_path_buf();
    let needle = dir.display().to_string();

    let (mut dev, bs) = Dev::start(3, &dir);
    assert_eq!(run(&bs, &["topic", "create", "dev-demo", "--partitions", "3", "--replication-factor", "3"]).ok(), "Created topic dev-demo.\n");
    produce(&bs, "dev-demo", 3, 20);
    assert_records(&bs, "dev-demo", 3, 20);
    let d = run(&bs, &["topic", "describe", "dev-demo", "--output", "json"]).json();
    assert_eq!(d[0]["replication_factor"], 3);
    for p in d[0]["partitions"].as_array().unwrap() {
        let mut r: Vec<i64> = p["replicas"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
        r.sort();
        assert_eq!(r, vec![1, 2, 3], "{p}");
    }
    let nodes = processes_mentioning(&needle);
    assert_eq!(nodes.iter().filter(|l| l.contains(" start ")).count(), 3, "three node processes:\n{}", nodes.join("\n"));

    // Ctrl-C: every node stops, the command exits 0, nothing is left.
    dev.signal(libc::SIGINT);
    let st = dev.wait_exit(Duration::from_secs(90));
    assert!(st.success(), "dev cluster exit after SIGINT: {st}; output:\n{}", dev.output.lock().unwrap());
    wait_no_processes(&needle, Duration::from_secs(5));
    assert!(dir.join("node-1").join("meta.properties").exists(), "--dir is kept");

    // Restart on the same directory: the same cluster, the data still there.
    let (mut dev, bs) = Dev::start(3, &dir);
    assert_records(&bs, "dev-demo", 3, 20);

    // SIGKILL of the dev cluster: its nodes get SIGTERM from the kernel and exit.
    dev.signal(libc::SIGKILL);
    dev.wait_exit(Duration::from_secs(10));
    wait_no_processes(&needle, Duration::from_secs(60));
}
