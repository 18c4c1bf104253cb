//! `shardlog group lag [GROUP] [--watch]`: consumer lag with its verdict.
//!
//! The verdict needs a history of the group's offsets, which only the broker
//! coordinating the group keeps (its admin listener samples them; see the
//! broker's `admin::lag`). So this command reads the admin API
//! (`/api/v1/groups`, `/api/v1/groups/{group}/lag`) rather than the Kafka
//! protocol: the metric, this command and the console show the same numbers.
//! A broker that does not coordinate the group answers 404 naming the one that
//! does; the command says so.

use std::time::Duration;

use serde_json::{json, Value};

use super::client::CliError;
use super::output::{print_json, print_line, print_rows, Format};

/// Where the admin API is and how often to refresh.
#[derive(clap::Args, Debug)]
pub struct LagArgs {
    /// The group; without it, every group the broker coordinates with its total lag and verdict.
    pub group: Option<String>,
    /// The admin listener of the broker coordinating the group.
    #[arg(long, env = "SHARDLOG_ADMIN_URL", default_value = "http://127.0.0.1:9644", value_name = "URL")]
    pub admin_url: String,
    /// Print again every --interval seconds until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between two prints with --watch.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
}

/// How long one admin API call may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

fn get(url: &str) -> Result<Value, CliError> {
    let agent = ureq::AgentBuilder::new().timeout(HTTP_TIMEOUT).build();
    match agent.get(url).call() {
        Ok(r) => r.into_json().map_err(|e| CliError::Io { context: format!("reading {url}"), source: e }),
        Err(ureq::Error::Status(_, r)) => {
            let v: Value = r.into_json().unwrap_or(Value::Null);
            let msg = v.get("message").and_then(Value::as_str).unwrap_or("");
            Err(CliError::Input(format!("{url}: {} {msg}", v.get("error").and_then(Value::as_str).unwrap_or("error"))))
        }
        Err(e) => Err(CliError::Input(format!("{url}: {e} (is the broker's admin listener at --admin-url, or SHARDLOG_ADMIN_URL?)"))),
    }
}

/// One print of the lag (a group's partitions, or every group).
fn once(format: Format, a: &LagArgs) -> Result<(), CliError> {
    let base = a.admin_url.trim_end_matches('/');
    match &a.group {
        None => {
            let groups = get(&format!("{base}/api/v1/groups"))?;
            let columns = [("GROUP", "group_id"), ("STATE", "state"), ("MEMBERS", "members"), ("TOTAL-LAG", "total_lag"), ("VERDICT", "verdict")];
            print_rows(format, &columns, groups.as_array().map(Vec::as_slice).unwrap_or(&[]));
        }
        Some(g) => {
            let lag = get(&format!("{base}/api/v1/groups/{}/lag", encode_segment(g)))?;
            if format == Format::Json {
                print_json(&lag);
                return Ok(());
            }
            let rows: Vec<Value> = lag
                .get("partitions")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            json!({
                                "group": g,
                                "topic": p["topic"],
                                "partition": p["partition"],
                                "committed": p["committed_offset"],
                                "hw": p["high_watermark"],
                                "lag": p["lag"],
                                "rate": p["commit_rate"].as_f64().map(|r| format!("{r:.1}/s")),
                                "age": p["last_commit_age_ms"].as_i64().map(|ms| format!("{:.1}s", ms as f64 / 1000.0)),
                                "verdict": p["verdict"],
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let columns = [
                ("GROUP", "group"),
                ("TOPIC", "topic"),
                ("PARTITION", "partition"),
                ("CURRENT-OFFSET", "committed"),
                ("LOG-END-OFFSET", "hw"),
                ("LAG", "lag"),
                ("COMMIT-RATE", "rate"),
                ("SINCE-LAST-MOVE", "age"),
                ("VERDICT", "verdict"),
            ];
            print_rows(format, &columns, &rows);
            print_line(&format!(
                "group {g}: {} (state {}, {} member(s), total lag {})",
                lag["verdict"].as_str().unwrap_or("?"),
                lag["state"].as_str().unwrap_or("?"),
                lag["members"],
                lag["total_lag"]
            ));
        }
    }
    Ok(())
}

/// Escapes a group id for a URL path segment (all but RFC 3986's unreserved characters).
fn encode_segment(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// Runs `shardlog group lag`.
pub fn run(format: Format, a: LagArgs) -> Result<(), CliError> {
    loop {
        once(format, &a)?;
        if !a.watch {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(a.interval));
        print_line("");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_are_escaped_for_paths() {
        assert_eq!(encode_segment("billing.v2"), "billing.v2");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }
}
