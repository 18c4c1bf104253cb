//! The pure parts of `shardlog partitions reassign`: kafka-reassign-partitions.sh's
//! JSON file formats, Kafka's replica placement for `--generate`, and the
//! throttled-replica lists `--execute --throttle` sets. No I/O here, so all of
//! it is unit-tested.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::client::CliError;

/// One partition's target replicas, a line of a reassignment JSON file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMove {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Target replicas, preferred leader first.
    pub replicas: Vec<i32>,
}

/// A broker for placement: its id and rack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementBroker {
    /// Broker id.
    pub id: i32,
    /// `broker.rack`, if any.
    pub rack: Option<String>,
}

fn input(msg: String) -> CliError {
    CliError::Input(msg)
}

/// Parses a topics-to-move file: `{"version":1,"topics":[{"topic":"t"}]}`.
pub fn parse_topics_json(text: &str) -> Result<Vec<String>, CliError> {
    let bad = |why: &str| input(format!("topics-to-move JSON: {why} (expected {{\"version\":1,\"topics\":[{{\"topic\":\"t\"}}]}})"));
    let v: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    check_version(&v).map_err(|w| bad(&w))?;
    let list = v.get("topics").and_then(Value::as_array).ok_or_else(|| bad("no \"topics\" array"))?;
    let mut out: Vec<String> = Vec::new();
    for t in list {
        let name = t.get("topic").and_then(Value::as_str).ok_or_else(|| bad("an entry without a \"topic\" string"))?;
        if out.iter().any(|n| n == name) {
            return Err(input(format!("topics-to-move JSON: duplicate topic {name}")));
        }
        out.push(name.to_string());
    }
    if out.is_empty() {
        return Err(bad("the topic list is empty"));
    }
    Ok(out)
}

fn check_version(v: &Value) -> Result<(), String> {
    match v.get("version") {
        None => Ok(()),
        Some(n) if n.as_i64() == Some(1) => Ok(()),
        Some(n) => Err(format!("unsupported version {n}")),
    }
}

/// Parses a reassignment file:
/// `{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2],"log_dirs":["any","any"]}]}`.
/// Refuses what Kafka refuses: an empty list, a partition listed twice, a
/// replica listed twice, log_dirs of the wrong length; and log dirs other
/// than "any", which this tool cannot move.
pub fn parse_reassignment_json(text: &str) -> Result<Vec<PartitionMove>, CliError> {
    let bad = |why: &str| input(format!("reassignment JSON: {why}"));
    let v: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    check_version(&v).map_err(|w| bad(&w))?;
    let list = v.get("partitions").and_then(Value::as_array).ok_or_else(|| bad("no \"partitions\" array"))?;
    let mut out: Vec<PartitionMove> = Vec::new();
    for p in list {
        let topic = p.get("topic").and_then(Value::as_str).ok_or_else(|| bad("an entry without a \"topic\" string"))?;
        let partition =
            p.get("partition").and_then(Value::as_i64).and_then(|n| i32::try_from(n).ok()).ok_or_else(|| bad("an entry without a \"partition\" number"))?;
        let name = format!("{topic}-{partition}");
        let replicas: Vec<i32> = p
            .get("replicas")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(&format!("{name} has no \"replicas\" array")))?
            .iter()
            .map(|r| r.as_i64().and_then(|n| i32::try_from(n).ok()).filter(|n| *n >= 0))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(&format!("{name}: replicas must be broker ids")))?;
        if replicas.is_empty() {
            return Err(bad(&format!("{name} has an empty replica list")));
        }
        if replicas.iter().collect::<BTreeSet<_>>().len() != replicas.len() {
            return Err(bad(&format!("duplicate replica assignment found for {name}: {replicas:?}")));
        }
        if let Some(dirs) = p.get("log_dirs") {
            let dirs = dirs.as_array().ok_or_else(|| bad(&format!("{name}: \"log_dirs\" must be an array")))?;
            if dirs.len() != replicas.len() {
                return Err(bad(&format!("{name}: log_dirs has {} entries for {} replicas", dirs.len(), replicas.len())));
            }
            if dirs.iter().any(|d| d.as_str() != Some("any")) {
                return Err(bad(&format!("{name}: only \"any\" log dirs are supported (moving replicas between log dirs is not)")));
            }
        }
        if out.iter().any(|m| m.topic == topic && m.partition == partition) {
            return Err(bad(&format!("duplicate reassignment for partition {name}")));
        }
        out.push(PartitionMove { topic: topic.to_string(), partition, replicas });
    }
    if out.is_empty() {
        return Err(bad("partition reassignment list cannot be empty"));
    }
    Ok(out)
}

/// A reassignment file's JSON, one line in Kafka's key order (version,
/// then topic, partition, replicas, log_dirs per partition), partitions
/// sorted by topic and index, with "any" log dirs.
pub fn reassignment_json(moves: &[PartitionMove]) -> String {
    let mut sorted: Vec<&PartitionMove> = moves.iter().collect();
    sorted.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let parts: Vec<String> = sorted
        .iter()
        .map(|m| {
            let replicas = m.replicas.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(",");
            let dirs = vec!["\"any\""; m.replicas.len()].join(",");
            format!("{{\"topic\":{},\"partition\":{},\"replicas\":[{replicas}],\"log_dirs\":[{dirs}]}}", Value::String(m.topic.clone()), m.partition)
        })
        .collect();
    format!("{{\"version\":1,\"partitions\":[{}]}}", parts.join(","))
}

/// Parses `--broker-list 1,2,4`: ids, no duplicates.
pub fn parse_broker_list(s: &str) -> Result<Vec<i32>, CliError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let id: i32 = part.parse().ok().filter(|n: &i32| *n >= 0).ok_or_else(|| input(format!("--broker-list: '{part}' is not a broker id")))?;
        if out.contains(&id) {
            return Err(input(format!("--broker-list contains duplicate entries: {id}")));
        }
        out.push(id);
    }
    if out.is_empty() {
        return Err(input("--broker-list is empty".into()));
    }
    Ok(out)
}

/// Kafka's `replicaIndex`: the broker index of the `replica_index`-th
/// follower, shifted from the first replica.
fn replica_index(first: usize, shift: usize, replica_index: usize, n: usize) -> usize {
    let s = 1 + (shift + replica_index) % (n - 1);
    (first + s) % n
}

/// Kafka's rack-alternated broker list: racks in name order, taking the
/// next-lowest broker id of each rack in turn.
fn rack_alternated(brokers: &[PlacementBroker]) -> Vec<i32> {
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.rack.as_deref().unwrap_or("")).or_default().push(b.id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
        ids.reverse();
    }
    let mut out = Vec::with_capacity(brokers.len());
    while out.len() < brokers.len() {
        for ids in by_rack.values_mut() {
            if let Some(id) = ids.pop() {
                out.push(id);
            }
        }
    }
    out
}

/// Kafka's replica placement (`AdminUtils.assignReplicasToBrokers`):
/// partition p's first replica is broker `(p + start) % n`, the others
/// follow at a shift that grows by one every n partitions, so leaders and
/// followers spread evenly. When every broker has a rack the list is
/// rack-alternated and each replica goes to a rack without one while any is
/// left. Kafka picks `start` and `shift` at random; they are parameters here
/// so the placement is testable. Returns one replica list per partition.
pub fn assign_replicas(
    brokers: &[PlacementBroker],
    partitions: usize,
    replication_factor: usize,
    start: usize,
    shift: usize,
) -> Result<Vec<Vec<i32>>, CliError> {
    if partitions == 0 {
        return Err(input("number of partitions must be larger than 0".into()));
    }
    if replication_factor == 0 {
        return Err(input("replication factor must be larger than 0".into()));
    }
    if replication_factor > brokers.len() {
        return Err(input(format!("replication factor: {replication_factor} larger than available brokers: {}", brokers.len())));
    }
    let with_rack = brokers.iter().filter(|b| b.rack.is_some()).count();
    if with_rack == 0 {
        let mut ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
        ids.sort_unstable();
        return Ok(rack_unaware(&ids, partitions, replication_factor, start, shift));
    }
    if with_rack != brokers.len() {
        return Err(input("not all brokers have rack information for replica rack aware assignment (use --disable-rack-aware)".into()));
    }
    Ok(rack_aware(brokers, partitions, replication_factor, start, shift))
}

fn rack_unaware(ids: &[i32], partitions: usize, rf: usize, start: usize, shift: usize) -> Vec<Vec<i32>> {
    let n = ids.len();
    let start = start % n;
    let mut shift = shift % n;
    (0..partitions)
        .map(|p| {
            if p > 0 && p % n == 0 {
                shift += 1;
            }
            let first = (p + start) % n;
            let mut replicas = vec![ids[first]];
            replicas.extend((0..rf - 1).map(|j| ids[replica_index(first, shift, j, n)]));
            replicas
        })
        .collect()
}

fn rack_aware(brokers: &[PlacementBroker], partitions: usize, rf: usize, start: usize, shift: usize) -> Vec<Vec<i32>> {
    let rack_of: BTreeMap<i32, &str> = brokers.iter().map(|b| (b.id, b.rack.as_deref().unwrap_or(""))).collect();
    let num_racks = rack_of.values().collect::<BTreeSet<_>>().len();
    let list = rack_alternated(brokers);
    let n = list.len();
    let start = start % n;
    let mut shift = shift % n;
    (0..partitions)
        .map(|p| {
            if p > 0 && p % n == 0 {
                shift += 1;
            }
            let first = (p + start) % n;
            let leader = list[first];
            let mut replicas = vec![leader];
            let mut racks: BTreeSet<&str> = BTreeSet::from([rack_of[&leader]]);
            let mut used: BTreeSet<i32> = BTreeSet::from([leader]);
            let mut k = 0;
            for _ in 0..rf - 1 {
                loop {
                    let b = list[replica_index(first, shift * num_racks, k, n)];
                    let rack = rack_of[&b];
                    k += 1;
                    // Skip a broker on a rack that has a replica while another rack has none,
                    // and a broker that has one while another broker has none.
                    if (!racks.contains(rack) || racks.len() == num_racks) && (!used.contains(&b) || used.len() == n) {
                        replicas.push(b);
                        racks.insert(rack);
                        used.insert(b);
                        break;
                    }
                }
            }
            replicas
        })
        .collect()
}

/// One moving partition for [`throttled_replicas`]: (index, current replicas, target replicas).
pub type ReplicaMove = (i32, Vec<i32>, Vec<i32>);

/// The throttled-replica config values of one topic, as Kafka's tool sets
/// them: `leader.replication.throttled.replicas` lists every current replica
/// of each moving partition ("p:b"), `follower.replication.throttled.replicas`
/// each target replica that is not a current one. Sorted as Kafka's (string
/// order of the "p:b" entries).
pub fn throttled_replicas(moves: &[ReplicaMove]) -> (String, String) {
    let mut leader = BTreeSet::new();
    let mut follower = BTreeSet::new();
    for (p, current, target) in moves {
        leader.extend(current.iter().map(|b| format!("{p}:{b}")));
        follower.extend(target.iter().filter(|b| !current.contains(b)).map(|b| format!("{p}:{b}")));
    }
    (leader.into_iter().collect::<Vec<_>>().join(","), follower.into_iter().collect::<Vec<_>>().join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(ids: &[i32]) -> Vec<PlacementBroker> {
        ids.iter().map(|&id| PlacementBroker { id, rack: None }).collect()
    }

    #[test]
    fn rack_unaware_matches_kafka() {
        // Kafka's AdminUtilsTest.testReplicaAssignment: 5 brokers, 10 partitions, RF 3, fixed start 0.
        let got = assign_replicas(&brokers(&[0, 1, 2, 3, 4]), 10, 3, 0, 0).unwrap();
        let want: Vec<Vec<i32>> = vec![
            vec![0, 1, 2],
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![3, 4, 0],
            vec![4, 0, 1],
            vec![0, 2, 3],
            vec![1, 3, 4],
            vec![2, 4, 0],
            vec![3, 0, 1],
            vec![4, 1, 2],
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn every_assignment_is_valid_and_balanced() {
        for start in 0..4 {
            for shift in 0..4 {
                let got = assign_replicas(&brokers(&[1, 2, 4, 7]), 8, 3, start, shift).unwrap();
                let mut leaders = BTreeMap::new();
                for r in &got {
                    assert_eq!(r.len(), 3);
                    assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), 3, "{r:?}");
                    assert!(r.iter().all(|b| [1, 2, 4, 7].contains(b)));
                    *leaders.entry(r[0]).or_insert(0) += 1;
                }
                assert!(leaders.values().all(|&n| n == 2), "{leaders:?}");
            }
        }
    }

    #[test]
    fn rack_aware_spreads_over_racks() {
        let bs: Vec<PlacementBroker> =
            [(0, "a"), (1, "a"), (2, "b"), (3, "b"), (4, "c"), (5, "c")].iter().map(|(id, r)| PlacementBroker { id: *id, rack: Some(r.to_string()) }).collect();
        assert_eq!(rack_alternated(&bs), vec![0, 2, 4, 1, 3, 5]);
        for start in 0..6 {
            let got = assign_replicas(&bs, 12, 3, start, start).unwrap();
            for r in &got {
                let racks: BTreeSet<i32> = r.iter().map(|b| b / 2).collect();
                assert_eq!(racks.len(), 3, "each replica on its own rack: {r:?}");
            }
        }
        let mut mixed = bs.clone();
        mixed[0].rack = None;
        assert!(assign_replicas(&mixed, 1, 1, 0, 0).is_err());
    }

    #[test]
    fn placement_refuses_impossible_requests() {
        assert!(assign_replicas(&brokers(&[1, 2]), 3, 3, 0, 0).is_err());
        assert!(assign_replicas(&brokers(&[1, 2]), 0, 1, 0, 0).is_err());
        assert!(assign_replicas(&brokers(&[1]), 2, 1, 5, 9).unwrap() == vec![vec![1], vec![1]]);
    }

    #[test]
    fn json_formats_round_trip() {
        let moves = vec![
            PartitionMove { topic: "b".into(), partition: 0, replicas: vec![3, 1] },
            PartitionMove { topic: "a".into(), partition: 1, replicas: vec![1, 2, 4] },
        ];
        let text = reassignment_json(&moves);
        assert_eq!(
            text,
            r#"{"version":1,"partitions":[{"topic":"a","partition":1,"replicas":[1,2,4],"log_dirs":["any","any","any"]},{"topic":"b","partition":0,"replicas":[3,1],"log_dirs":["any","any"]}]}"#
        );
        let back = parse_reassignment_json(&text).unwrap();
        assert_eq!(back, vec![moves[1].clone(), moves[0].clone()]);
        assert_eq!(parse_topics_json(r#"{"version":1,"topics":[{"topic":"x"},{"topic":"y"}]}"#).unwrap(), vec!["x", "y"]);
    }

    #[test]
    fn bad_files_are_refused_with_reasons() {
        let refused = |t: &str| parse_reassignment_json(t).unwrap_err().to_string();
        assert!(refused(r#"{"version":1,"partitions":[]}"#).contains("cannot be empty"));
        assert!(refused(r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1,1]}]}"#).contains("duplicate replica"));
        assert!(refused(r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1]},{"topic":"t","partition":0,"replicas":[2]}]}"#)
            .contains("duplicate reassignment"));
        assert!(refused(r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1],"log_dirs":["/d"]}]}"#).contains("any"));
        assert!(refused(r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1],"log_dirs":[]}]}"#).contains("log_dirs"));
        assert!(refused(r#"{"version":2,"partitions":[]}"#).contains("version"));
        assert!(refused("[").contains("reassignment JSON"));
        assert!(parse_topics_json(r#"{"topics":[]}"#).is_err());
        assert!(parse_broker_list("1,2,1").is_err());
        assert!(parse_broker_list("1,x").is_err());
        assert_eq!(parse_broker_list("1, 2,4").unwrap(), vec![1, 2, 4]);
    }

    #[test]
    fn throttles_are_kafkas() {
        let (l, f) = throttled_replicas(&[(0, vec![1, 2], vec![2, 3]), (1, vec![2, 3], vec![2, 3])]);
        assert_eq!(l, "0:1,0:2,1:2,1:3");
        assert_eq!(f, "0:3");
    }
}
