//! The `range` assignor (Kafka's server-side RangeAssignor): per topic, the
//! members subscribed to it, in a fixed order, each take the next contiguous
//! range; the first `partitions % members` take one extra. With co-partitioned
//! topics every member gets the same partition numbers of each (joins by key).
//! Members sort static first (by instance id), then by member id, so a rolling
//! restart of static members keeps their ranges.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::{partitions_of, MemberSpec};
use crate::coordinator::consumer_group::member::Assignment;

/// Assigns each subscribed topic's `partitions` (topic id -> partition count) to
/// `members` in contiguous ranges; returns the assignment by member id (every
/// member present, maybe with nothing).
pub fn assign(members: &[MemberSpec<'_>], partitions: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    let mut order: Vec<&MemberSpec<'_>> = members.iter().collect();
    order.sort_by(|a, b| match (a.instance_id, b.instance_id) {
        (Some(x), Some(y)) => x.cmp(y).then_with(|| a.member_id.cmp(b.member_id)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.member_id.cmp(b.member_id),
    });
    let mut out: BTreeMap<String, Assignment> = members.iter().map(|m| (m.member_id.to_string(), Assignment::new())).collect();
    let topics: BTreeSet<Uuid> = members.iter().flat_map(|m| m.topics.iter().copied()).collect();
    for topic in topics {
        let subscribers: Vec<&&MemberSpec<'_>> = order.iter().filter(|m| m.topics.contains(&topic)).collect();
        let count = partitions_of(partitions, topic).end;
        let n = subscribers.len() as i32;
        if n == 0 || count == 0 {
            continue;
        }
        let (quota, extra) = (count / n, count % n);
        let mut start = 0;
        for (i, m) in subscribers.iter().enumerate() {
            let len = quota + i32::from((i as i32) < extra);
            if len > 0 {
                if let Some(a) = out.get_mut(m.member_id) {
                    a.insert(topic, (start..start + len).collect());
                }
            }
            start += len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(id: &'a str, inst: Option<&'a str>, topics: &[u128], cur: &'a Assignment) -> MemberSpec<'a> {
        MemberSpec { member_id: id, instance_id: inst, topics: topics.iter().map(|t| Uuid::from_u128(*t)).collect(), current: cur }
    }

    fn parts(a: &Assignment, t: u128) -> Vec<i32> {
        a.get(&Uuid::from_u128(t)).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }

    #[test]
    fn co_partitioned_ranges_with_extra_to_the_first() {
        let e = Assignment::new();
        let members = [spec("m1", None, &[1, 2], &e), spec("m0", None, &[1, 2], &e)];
        let counts = BTreeMap::from([(Uuid::from_u128(1), 3), (Uuid::from_u128(2), 3)]);
        let out = assign(&members, &counts);
        // m0 sorts first: [0, 1] of both topics; m1 gets [2] of both.
        assert_eq!((parts(&out["m0"], 1), parts(&out["m0"], 2)), (vec![0, 1], vec![0, 1]));
        assert_eq!((parts(&out["m1"], 1), parts(&out["m1"], 2)), (vec![2], vec![2]));
    }

    #[test]
    fn static_members_first_by_instance_id() {
        let e = Assignment::new();
        let members = [spec("a", None, &[1], &e), spec("z", Some("i0"), &[1], &e), spec("b", Some("i1"), &[1], &e)];
        let out = assign(&members, &BTreeMap::from([(Uuid::from_u128(1), 3)]));
        assert_eq!(parts(&out["z"], 1), vec![0]);
        assert_eq!(parts(&out["b"], 1), vec![1]);
        assert_eq!(parts(&out["a"], 1), vec![2]);
    }

    #[test]
    fn heterogeneous_subscriptions_split_each_topic_among_its_subscribers() {
        let e = Assignment::new();
        let members = [spec("a", None, &[1], &e), spec("b", None, &[1, 2], &e), spec("c", None, &[2], &e)];
        let counts = BTreeMap::from([(Uuid::from_u128(1), 4), (Uuid::from_u128(2), 1)]);
        let out = assign(&members, &counts);
        assert_eq!(parts(&out["a"], 1), vec![0, 1]);
        assert_eq!(parts(&out["b"], 1), vec![2, 3]);
        assert_eq!(parts(&out["b"], 2), vec![0]);
        assert!(out["c"].is_empty());
    }

    #[test]
    fn more_members_than_partitions_leaves_some_empty() {
        let e = Assignment::new();
        let members = [spec("a", None, &[1], &e), spec("b", None, &[1], &e), spec("c", None, &[1], &e)];
        let out = assign(&members, &BTreeMap::from([(Uuid::from_u128(1), 2)]));
        assert_eq!((parts(&out["a"], 1), parts(&out["b"], 1)), (vec![0], vec![1]));
        assert!(out["c"].is_empty());
    }
}
