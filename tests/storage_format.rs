//! `shardlog storage` (Kafka's `kafka-storage.sh`) and the start-up check of a
//! cluster node's data directory, through the real binary:
//!
//! - `random-uuid` prints a valid cluster id;
//! - `format` loads the config as `start` does and writes `meta.properties`;
//!   a second `format` is refused, `--ignore-formatted` accepts it, but not
//!   with another node id;
//! - `start` with `controller.quorum.voters` on an unformatted directory exits
//!   non-zero, saying to format it; a directory formatted for node 2 is refused
//!   to node 1.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::broker_bin;

/// The voter port of the nodes these tests configure (never bound: every start here is refused first).
const VOTER_PORT: u16 = 19093;

fn shardlog(args: &[&str]) -> Output {
    Command::new(broker_bin()).args(args).stdin(Stdio::null()).output().expect("run shardlog")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A config file of node `node_id` of a two-controller quorum, data in `dir`.
fn node_config(at: &Path, node_id: i32, dir: &Path) -> std::path::PathBuf {
    let port = if node_id == 1 { VOTER_PORT } else { VOTER_PORT + 2 };
    let toml = format!(
        "\"node.id\" = {node_id}\n\"process.roles\" = \"broker,controller\"\n\
         \"controller.quorum.voters\" = \"1@127.0.0.1:{VOTER_PORT},2@127.0.0.1:{}\"\n\
         \"listeners\" = \"PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}\"\n\
         \"log.dirs\" = \"{}\"\n\"shard.cores\" = \"0\"\n",
        VOTER_PORT + 2,
        dir.display()
    );
    let path = at.join(format!("node{node_id}.toml"));
    std::fs::write(&path, toml).expect("write config");
    path
}

fn random_uuid() -> String {
    let out = shardlog(&["storage", "random-uuid"]);
    assert!(out.status.success(), "{out:?}");
    text(&out.stdout).trim().to_string()
}

/// Runs `shardlog start` that must refuse to start: its exit status and stderr.
fn start_refused(config: &Path, sets: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(broker_bin());
    cmd.args(["start", "--config"]).arg(config).args(["--set", "admin.listener=http://127.0.0.1:0"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn shardlog start");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!("shardlog start did not refuse to start: {}{}", text(&out.stdout), text(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("collect output");
    (out.status.code().unwrap_or(-1), text(&out.stderr))
}

#[test]
fn random_uuid_prints_a_cluster_id() {
    let a = random_uuid();
    assert_eq!(a.len(), 22, "{a}");
    assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{a}");
    assert_ne!(a, random_uuid());
}

#[test]
fn format_writes_meta_properties_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("node1/data");
    let cfg = node_config(tmp.path(), 1, &data);
    let id = random_uuid();
    let cfg_s = cfg.to_str().unwrap();

    let out = shardlog(&["storage", "format", "--cluster-id", &id, "--config", cfg_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("Formatted {} for cluster {id}, node 1", data.display()));
    let meta = std::fs::read_to_string(data.join("meta.properties")).unwrap();
    assert!(meta.contains("version=1\n") && meta.contains(&format!("cluster.id={id}\n")) && meta.contains("node.id=1\n"), "{meta}");

    // Twice: refused; --ignore-formatted: accepted, the file as it was.
    let out = shardlog(&["storage", "format", "--cluster-id", &id, "--config", cfg_s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is already formatted"), "{}", text(&out.stderr));
    let out = shardlog(&["storage", "format", "--cluster-id", &id, "--config", cfg_s, "--ignore-formatted"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(data.join("meta.properties")).unwrap(), meta);
    // --ignore-formatted with another cluster id or (--set, as `start` takes it) node id: refused.
    let out = shardlog(&["storage", "format", "--cluster-id", &random_uuid(), "--config", cfg_s, "--ignore-formatted"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let out = shardlog(&[
        "storage",
        "format",
        "--cluster-id",
        &id,
        "--config",
        cfg_s,
        "--ignore-formatted",
        "--set",
        "node.id=2",
        "--set",
        &format!("listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}", VOTER_PORT + 2),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("is formatted for node.id 1 but node.id is 2"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(data.join("meta.properties")).unwrap(), meta);

    // A bad cluster id or a bad config: refused before anything is written.
    let other = tmp.path().join("other");
    let out = shardlog(&["storage", "format", "--cluster-id", "not-an-id", "--set", &format!("log.dirs={}", other.display())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is not a cluster id"), "{}", text(&out.stderr));
    let out = shardlog(&["storage", "format", "--cluster-id", &id, "--set", &format!("log.dirs={}", other.display()), "--set", "process.roles=broker"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("process.roles"), "{}", text(&out.stderr));
    assert!(!other.exists());
}

#[test]
fn a_cluster_node_starts_only_on_a_directory_formatted_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let node1 = node_config(tmp.path(), 1, &data);

    let (code, err) = start_refused(&node1, &[]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("{} is not formatted", data.display())) && err.contains("shardlog storage format --cluster-id"), "{err}");
    assert!(!data.join("meta.properties").exists() && !data.join("__cluster_metadata-0").exists(), "nothing written before the check");

    let node2 = node_config(tmp.path(), 2, &data);
    let out = shardlog(&["storage", "format", "--cluster-id", &random_uuid(), "--config", node2.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (code, err) = start_refused(&node1, &[]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("{} is formatted for node.id 2 but node.id is 1", data.display())), "{err}");
}
