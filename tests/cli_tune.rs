//! `shardlog tune` through the real binary: text and JSON output, exit code 0
//! whatever the host looks like (findings are advice), every check reported.
//! Never passes `--apply`: tests must not change the host.

use std::process::Command;

/// Every check `shardlog tune` runs (mirrors `shardlog::cli::tune::CHECK_NAMES`,
/// spelled out so a renamed check is a visible change to this test).
const CHECKS: [&str; 11] = [
    "shard_cores",
    "memlock",
    "io_uring",
    "transparent_hugepages",
    "swappiness",
    "cpufreq_governor",
    "nic_irq_affinity",
    "disk_irq_affinity",
    "nofile",
    "somaxconn",
    "tcp_buffers",
];

fn tune(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shardlog")).arg("tune").args(args).output().expect("run shardlog tune");
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).expect("utf-8 stdout"), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn text_output_has_one_line_per_check() {
    let (code, stdout, stderr) = tune(&[]);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(CHECKS.to_vec(), shardlog::cli::tune::CHECK_NAMES.to_vec());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), CHECKS.len(), "{stdout}");
    for (line, name) in lines.iter().zip(CHECKS) {
        let (status, rest) = line.split_once("  ").expect("STATUS  name: ...");
        assert!(["OK", "WARN", "INFO"].contains(&status.trim()), "{line}");
        assert!(rest.trim_start().starts_with(&format!("{name}: ")), "{line}");
        if status.trim() == "WARN" {
            assert!(line.contains(" — fix: "), "a WARN names its fix: {line}");
        }
    }
}

#[test]
fn json_output_parses() {
    let (code, stdout, stderr) = tune(&["--output", "json"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    assert!(!v["shard_cores"].as_array().expect("shard_cores array").is_empty());
    let checks = v["checks"].as_array().expect("checks array");
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().expect("name")).collect();
    assert_eq!(names, CHECKS.to_vec());
    for c in checks {
        assert!(["OK", "WARN", "INFO"].contains(&c["status"].as_str().expect("status")), "{c}");
        assert!(c["finding"].is_string(), "{c}");
        assert!(c["fix"].is_string() || c["fix"].is_null(), "{c}");
    }
    assert!(v.get("applied").is_none(), "nothing applied without --apply");
}

#[test]
fn profile_sets_the_shard_cores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("one-core.toml");
    std::fs::write(&profile, "[shard]\ncores = \"0\"\n").expect("write profile");
    let (code, stdout, stderr) = tune(&["--profile", profile.to_str().expect("utf-8 path"), "--output", "json"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    assert_eq!(v["shard_cores"], serde_json::json!([0]));
    let (code, _, stderr) = tune(&["--profile", "/nonexistent/profile.toml"]);
    assert_eq!(code, 2, "a profile that cannot be read is an error: {stderr}");
}
