//! Helpers for the CLI tests: run `shardlog <subcommand>` (the same binary the
//! broker runs from) against a test broker and parse what it prints.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use super::common::broker_bin;

/// What one CLI run printed, and its exit code.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Assert exit code 0 and return stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        &self.stdout
    }

    /// Assert a non-zero exit and an error line naming `needle`.
    pub fn fails_with(&self, needle: &str) {
        assert_ne!(self.code, 0, "expected failure\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert!(self.stderr.contains(needle), "stderr should mention {needle}:\n{}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "a CLI error must not be a panic:\n{}", self.stderr);
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// JSON lines (one document per line).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.ok().lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))).collect()
    }
}

/// Run `shardlog ARGS --bootstrap-server B` with `stdin` fed in.
pub fn run_with_stdin(bootstrap: &str, args: &[&str], stdin: &[u8]) -> Out {
    let mut child = Command::new(broker_bin())
        .args(args)
        .args(["--bootstrap-server", bootstrap])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shardlog");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("wait shardlog");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run `shardlog ARGS --bootstrap-server B` with empty stdin.
pub fn run(bootstrap: &str, args: &[&str]) -> Out {
    run_with_stdin(bootstrap, args, b"")
}

/// Parse an aligned table (header line, then rows; columns start where the
/// header names start) into one map per row, header -> cell.
pub fn parse_table(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = match lines.next() {
        Some(h) => h,
        None => return Vec::new(),
    };
    // Column names are separated by at least two spaces.
    let mut starts = Vec::new();
    let mut names = Vec::new();
    let mut i = 0;
    let bytes = header.as_bytes();
    while i < bytes.len() {
        if bytes[i] != b' ' {
            let start = i;
            while i < bytes.len() && !(bytes[i] == b' ' && (i + 1 >= bytes.len() || bytes[i + 1] == b' ')) {
                i += 1;
            }
            starts.push(start);
            names.push(header[start..i].to_string());
        } else {
            i += 1;
        }
    }
    lines
        .map(|l| {
            let mut row = BTreeMap::new();
            for (k, name) in names.iter().enumerate() {
                let from = starts[k].min(l.len());
                let to = starts.get(k + 1).copied().unwrap_or(l.len()).min(l.len());
                row.insert(name.clone(), l[from..to].trim().to_string());
            }
            row
        })
        .collect()
}

/// Lines of a table after the first line that starts with `header_start`
/// (skips notes printed before a table).
pub fn table_from<'a>(text: &'a str, header_start: &str) -> &'a str {
    let at = text.find(header_start).unwrap_or_else(|| panic!("no table starting with {header_start} in:\n{text}"));
    &text[at..]
}
