//! `shardlog leader-election` (kafka-leader-election.sh): ElectLeaders (key
//! 43) for one partition, the partitions of a JSON file, or every partition.
//!
//! v0 of the API has no election type and always means preferred; an
//! unclean election needs v1+. As Kafka's tool, ELECTION_NOT_NEEDED ("Valid
//! replica already elected") is not a failure; any other error is, and makes
//! the command exit non-zero after every result is printed.

use std::path::PathBuf;

use kafka_protocol::messages::elect_leaders_request::{ElectLeadersRequest, TopicPartitions};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};

use super::client::{error_name, CliError, ConnectArgs, OP_TIMEOUT};
use super::output::{print_json, print_line, Format, OutputArgs};

/// Kafka's ELECTION_NOT_NEEDED error code.
const ELECTION_NOT_NEEDED: i16 = 84;

/// Which leader to elect.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// The first live in-sync replica of the assignment.
    Preferred,
    /// Any live replica, in sync or not (may lose data).
    Unclean,
}

impl ElectionType {
    fn code(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }

    fn label(self) -> &'static str {
        match self {
            ElectionType::Preferred => "PREFERRED",
            ElectionType::Unclean => "UNCLEAN",
        }
    }
}

/// `shardlog leader-election`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example: shardlog leader-election --election-type preferred --all-topic-partitions")]
pub struct ElectionArgs {
    /// How to reach the cluster (--bootstrap-server, or SHARDLOG_BOOTSTRAP).
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Output format (--output table or json).
    #[command(flatten)]
    pub out: OutputArgs,
    /// Type of election.
    #[arg(long, value_enum)]
    pub election_type: ElectionType,
    /// Topic of the one partition to elect a leader for (with --partition).
    #[arg(long, requires = "partition", conflicts_with_all = ["all_topic_partitions", "path_to_json_file"])]
    pub topic: Option<String>,
    /// The partition of --topic.
    #[arg(long, requires = "topic")]
    pub partition: Option<i32>,
    /// Every partition of every topic.
    #[arg(long, conflicts_with = "path_to_json_file")]
    pub all_topic_partitions: bool,
    /// JSON file of partitions: {"partitions":[{"topic":"t","partition":0}]}.
    #[arg(long, value_name = "FILE")]
    pub path_to_json_file: Option<PathBuf>,
}

/// Parses kafka-leader-election.sh's JSON file format into (topic, partition)
/// pairs; duplicates are refused, as Kafka does.
pub fn parse_partitions_json(text: &str) -> Result<Vec<(String, i32)>, CliError> {
    let bad = |why: &str| CliError::Input(format!("partitions JSON: {why} (expected {{\"partitions\":[{{\"topic\":\"t\",\"partition\":0}}]}})"));
    let v: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let list = v.get("partitions").and_then(Value::as_array).ok_or_else(|| bad("no \"partitions\" array"))?;
    let mut out: Vec<(String, i32)> = Vec::new();
    for p in list {
        let topic = p.get("topic").and_then(Value::as_str).ok_or_else(|| bad("an entry without a \"topic\" string"))?;
        let partition =
            p.get("partition").and_then(Value::as_i64).and_then(|n| i32::try_from(n).ok()).ok_or_else(|| bad("an entry without a \"partition\" number"))?;
        if out.iter().any(|(t, q)| t == topic && *q == partition) {
            return Err(CliError::Input(format!("partitions JSON: duplicate partition {topic}-{partition}")));
        }
        out.push((topic.to_string(), partition));
    }
    if out.is_empty() {
        return Err(bad("the partition list is empty"));
    }
    Ok(out)
}

/// Groups (topic, partition) pairs by topic, in first-seen order.
fn by_topic(parts: &[(String, i32)]) -> Vec<TopicPartitions> {
    let mut out: Vec<TopicPartitions> = Vec::new();
    for (t, p) in parts {
        match out.iter_mut().find(|x| x.topic.0.as_str() == t) {
            Some(x) => x.partitions.push(*p),
            None => out.push(TopicPartitions::default().with_topic(TopicName(StrBytes::from_string(t.clone()))).with_partitions(vec![*p])),
        }
    }
    out
}

/// Runs `shardlog leader-election`.
pub fn run(args: ElectionArgs) -> Result<(), CliError> {
    let parts: Option<Vec<(String, i32)>> = match (&args.topic, args.partition, args.all_topic_partitions, &args.path_to_json_file) {
        (Some(t), Some(p), false, None) => Some(vec![(t.clone(), p)]),
        (None, None, true, None) => None,
        (None, None, false, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| CliError::io(format!("read {}", path.display()), e))?;
            Some(parse_partitions_json(&text)?)
        }
        _ => return Err(CliError::Input("give one of --topic with --partition, --all-topic-partitions, or --path-to-json-file".into())),
    };
    let mut c = args.conn.connect()?;
    let v = c.version_for::<ElectLeadersRequest>(2)?;
    if v == 0 && args.election_type == ElectionType::Unclean {
        return Err(CliError::Client {
            context: format!("ElectLeaders to {}", c.addr()),
            detail: "the broker supports only ElectLeaders v0, which has no unclean elections".into(),
            advice: String::new(),
        });
    }
    let req = ElectLeadersRequest::default()
        .with_election_type(if v >= 1 { args.election_type.code() } else { 0 })
        .with_topic_partitions(parts.as_deref().map(by_topic))
        .with_timeout_ms(OP_TIMEOUT.as_millis() as i32);
    let resp = c.roundtrip(v, &req)?;
    if resp.error_code != 0 {
        return Err(CliError::kafka("elect leaders", resp.error_code));
    }
    let label = args.election_type.label();
    let mut results = Vec::new();
    for t in &resp.replica_election_results {
        for p in &t.partition_result {
            let name = format!("{}-{}", t.topic.0, p.partition_id);
            let (status, line) = match p.error_code {
                0 => ("elected", format!("Successfully completed leader election ({label}) for partitions {name}")),
                ELECTION_NOT_NEEDED => ("not_needed", format!("Valid replica already elected for partitions {name}")),
                code => {
                    let msg = p.error_message.as_ref().map(|m| format!(": {m}")).unwrap_or_default();
                    ("failed", format!("Error completing leader election ({label}) for partition: {name}: {}{msg}", error_name(code)))
                }
            };
            results.push((
                json!({"topic": t.topic.0.to_string(), "partition": p.partition_id, "status": status,
                                 "error": (p.error_code != 0).then(|| error_name(p.error_code)),
                                 "message": p.error_message.as_ref().map(|m| m.to_string())}),
                line,
            ));
        }
    }
    results.sort_by(|a, b| (a.0["topic"].as_str(), a.0["partition"].as_i64()).cmp(&(b.0["topic"].as_str(), b.0["partition"].as_i64())));
    let failed = results.iter().filter(|(d, _)| d["status"] == "failed").count();
    match args.out.output {
        Format::Json => print_json(&Value::Array(results.iter().map(|(d, _)| d.clone()).collect())),
        Format::Table => {
            if results.is_empty() {
                print_line("No partitions needed a leader election");
            }
            for (_, line) in &results {
                print_line(line);
            }
        }
    }
    if failed > 0 {
        return Err(CliError::Client { context: "leader election".into(), detail: format!("{failed} replica(s) could not be elected"), advice: String::new() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_file_format_is_kafkas() {
        let got = parse_partitions_json(r#"{"partitions":[{"topic":"a","partition":0},{"topic":"b","partition":2},{"topic":"a","partition":1}]}"#).unwrap();
        assert_eq!(got, vec![("a".into(), 0), ("b".into(), 2), ("a".into(), 1)]);
        let grouped = by_topic(&got);
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped[0].partitions, vec![0, 1]);
        assert!(parse_partitions_json(r#"{"partitions":[{"topic":"a","partition":0},{"topic":"a","partition":0}]}"#).is_err());
        assert!(parse_partitions_json(r#"{"partitions":[]}"#).is_err());
        assert!(parse_partitions_json(r#"{"partitions":[{"topic":"a"}]}"#).is_err());
        assert!(parse_partitions_json("not json").is_err());
    }
}
