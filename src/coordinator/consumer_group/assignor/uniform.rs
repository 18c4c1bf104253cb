//! The `uniform` assignor (Kafka's server-side default): balanced first —
//! any two members eligible for the same partitions differ by at most one —
//! then sticky: a member keeps as much of its current target as balance allows,
//! so a membership change moves as few partitions as possible.
//!
//! All members subscribed alike (the common case): each member's quota is
//! `total / members`, the remainder going to the members that already hold the
//! most (they keep more); members keep their partitions up to their quota and
//! the rest fill the others in topic and partition order. Differing
//! subscriptions: members keep what they still subscribe to, each free
//! partition goes to the least loaded member subscribed to its topic, then
//! single moves from a fuller to an emptier eligible member run until none
//! helps (each move lowers the sum of squared loads, so this ends).

use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

use super::{homogeneous, partitions_of, MemberSpec};
use crate::coordinator::consumer_group::member::{partition_count, Assignment};

/// Spreads `partitions` (topic id -> partition count) evenly over `members`,
/// moving as few as possible from their current targets; returns the
/// assignment by member id.
pub fn assign(members: &[MemberSpec<'_>], partitions: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    if members.is_empty() {
        return BTreeMap::new();
    }
    if homogeneous(members) {
        assign_homogeneous(members, partitions)
    } else {
        assign_heterogeneous(members, partitions)
    }
}

/// The member's current partitions that are still valid for it, in order.
fn keepable<'a>(m: &'a MemberSpec<'_>, partitions: &'a BTreeMap<Uuid, i32>) -> impl Iterator<Item = (Uuid, i32)> + 'a {
    m.current
        .iter()
        .filter(|(t, _)| m.topics.contains(t))
        .flat_map(move |(t, ps)| ps.iter().filter(move |p| partitions_of(partitions, *t).contains(p)).map(move |p| (*t, *p)))
}

fn assign_homogeneous(members: &[MemberSpec<'_>], partitions: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    let topics = &members[0].topics;
    let total: usize = topics.iter().map(|t| partitions_of(partitions, *t).len()).sum();
    let n = members.len();
    let (min, mut extra) = (total / n, total % n);
    // Members holding the most keep the extra partitions: fewer moves.
    let mut order: Vec<&MemberSpec<'_>> = members.iter().collect();
    order.sort_by_cached_key(|m| (std::cmp::Reverse(keepable(m, partitions).count()), m.member_id));
    let mut taken: HashSet<(Uuid, i32)> = HashSet::new();
    let mut out: BTreeMap<String, Assignment> = BTreeMap::new();
    let mut room: Vec<(&str, usize)> = Vec::new();
    for m in &order {
        let mut quota = min;
        if extra > 0 {
            quota += 1;
            extra -= 1;
        }
        let mut a = Assignment::new();
        let mut kept = 0;
        for (t, p) in keepable(m, partitions) {
            if kept == quota {
                break;
            }
            if taken.insert((t, p)) {
                a.entry(t).or_default().insert(p);
                kept += 1;
            }
        }
        room.push((m.member_id, quota - kept));
        out.insert(m.member_id.to_string(), a);
    }
    let mut free = topics.iter().flat_map(|t| partitions_of(partitions, *t).map(move |p| (*t, p))).filter(|tp| !taken.contains(tp));
    for (id, left) in room {
        let a = out.entry(id.to_string()).or_default();
        for (t, p) in free.by_ref().take(left) {
            a.entry(t).or_default().insert(p);
        }
    }
    out
}

fn assign_heterogeneous(members: &[MemberSpec<'_>], partitions: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    let mut order: Vec<&MemberSpec<'_>> = members.iter().collect();
    order.sort_by_key(|m| m.member_id);
    let mut subscribers: BTreeMap<Uuid, Vec<usize>> = BTreeMap::new();
    for (i, m) in order.iter().enumerate() {
        for t in &m.topics {
            subscribers.entry(*t).or_default().push(i);
        }
    }
    let mut owner: HashMap<(Uuid, i32), usize> = HashMap::new();
    let mut load = vec![0usize; order.len()];
    for (i, m) in order.iter().enumerate() {
        for tp in keepable(m, partitions) {
            if let std::collections::hash_map::Entry::Vacant(e) = owner.entry(tp) {
                e.insert(i);
                load[i] += 1;
            }
        }
    }
    // Free partitions, the topics with the fewest subscribers first (they have the least choice).
    let mut topics: Vec<(&Uuid, &Vec<usize>)> = subscribers.iter().collect();
    topics.sort_by_key(|(t, s)| (s.len(), **t));
    for (t, subs) in &topics {
        for p in partitions_of(partitions, **t) {
            if owner.contains_key(&(**t, p)) {
                continue;
            }
            if let Some(&i) = subs.iter().min_by_key(|&&i| (load[i], i)) {
                owner.insert((**t, p), i);
                load[i] += 1;
            }
        }
    }
    // Balance: move a partition from a member to an eligible one holding two or more fewer.
    let mut all: Vec<(Uuid, i32)> = owner.keys().copied().collect();
    all.sort();
    loop {
        let mut moved = false;
        for tp in &all {
            let from = owner[tp];
            let Some(&to) = subscribers[&tp.0].iter().filter(|&&i| i != from).min_by_key(|&&i| (load[i], i)) else { continue };
            if load[to] + 1 < load[from] {
                owner.insert(*tp, to);
                load[from] -= 1;
                load[to] += 1;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut out: BTreeMap<String, Assignment> = order.iter().map(|m| (m.member_id.to_string(), Assignment::new())).collect();
    for ((t, p), i) in owner {
        if let Some(a) = out.get_mut(order[i].member_id) {
            a.entry(t).or_default().insert(p);
        }
    }
    out
}

/// Total partitions per member (for tests and logs).
pub fn loads(out: &BTreeMap<String, Assignment>) -> BTreeMap<&str, usize> {
    out.iter().map(|(m, a)| (m.as_str(), partition_count(a))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn u(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn spec<'a>(id: &'a str, topics: &[u128], cur: &'a Assignment) -> MemberSpec<'a> {
        MemberSpec { member_id: id, instance_id: None, topics: topics.iter().map(|t| u(*t)).collect(), current: cur }
    }

    /// Every partition of the subscribed topics assigned exactly once, to a subscriber.
    fn check_complete(members: &[MemberSpec<'_>], counts: &BTreeMap<Uuid, i32>, out: &BTreeMap<String, Assignment>) {
        let mut seen = BTreeSet::new();
        for m in members {
            for (t, ps) in &out[m.member_id] {
                assert!(m.topics.contains(t), "{} got a topic it does not subscribe to", m.member_id);
                for p in ps {
                    assert!(seen.insert((*t, *p)), "partition {t}-{p} assigned twice");
                }
            }
        }
        let subscribed: BTreeSet<Uuid> = members.iter().flat_map(|m| m.topics.iter().copied()).collect();
        let expected: usize = subscribed.iter().map(|t| counts.get(t).copied().unwrap_or(0) as usize).sum();
        assert_eq!(seen.len(), expected, "some partition left unassigned");
    }

    fn spread(out: &BTreeMap<String, Assignment>) -> usize {
        let l = loads(out);
        l.values().max().unwrap() - l.values().min().unwrap()
    }

    #[test]
    fn balanced_and_complete_from_scratch() {
        let e = Assignment::new();
        let counts = BTreeMap::from([(u(1), 4), (u(2), 3)]);
        for n in 1..=9 {
            let ids: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
            let members: Vec<MemberSpec<'_>> = ids.iter().map(|id| spec(id, &[1, 2], &e)).collect();
            let out = assign(&members, &counts);
            check_complete(&members, &counts, &out);
            assert!(spread(&out) <= 1, "{n} members: {:?}", loads(&out));
        }
    }

    #[test]
    fn two_members_share_four_partitions_two_each() {
        let e = Assignment::new();
        let counts = BTreeMap::from([(u(1), 4)]);
        let members = [spec("a", &[1], &e), spec("b", &[1], &e)];
        let out = assign(&members, &counts);
        assert_eq!(loads(&out).values().copied().collect::<Vec<_>>(), vec![2, 2]);
    }

    #[test]
    fn sticky_when_a_member_joins_and_when_one_leaves() {
        let counts = BTreeMap::from([(u(1), 6)]);
        let all: Assignment = BTreeMap::from([(u(1), (0..6).collect())]);
        let e = Assignment::new();
        // a owned everything; b joins: a keeps 3 of its own, b gets the other 3.
        let out = assign(&[spec("a", &[1], &all), spec("b", &[1], &e)], &counts);
        assert_eq!(loads(&out).values().copied().collect::<Vec<_>>(), vec![3, 3]);
        assert!(out["a"][&u(1)].is_subset(&all[&u(1)]));
        // c joins: a and b each give one up and keep the rest.
        let (a, b) = (out["a"].clone(), out["b"].clone());
        let out2 = assign(&[spec("a", &[1], &a), spec("b", &[1], &b), spec("c", &[1], &e)], &counts);
        assert!(out2["a"][&u(1)].is_subset(&a[&u(1)]) && out2["a"][&u(1)].len() == 2);
        assert!(out2["b"][&u(1)].is_subset(&b[&u(1)]) && out2["b"][&u(1)].len() == 2);
        // b leaves: a and c keep all they had and split b's.
        let (a2, c2) = (out2["a"].clone(), out2["c"].clone());
        let out3 = assign(&[spec("a", &[1], &a2), spec("c", &[1], &c2)], &counts);
        assert!(a2[&u(1)].is_subset(&out3["a"][&u(1)]));
        assert!(c2[&u(1)].is_subset(&out3["c"][&u(1)]));
        assert_eq!(loads(&out3).values().copied().collect::<Vec<_>>(), vec![3, 3]);
    }

    #[test]
    fn partitions_of_a_dropped_topic_or_shrunk_count_are_not_kept() {
        let counts = BTreeMap::from([(u(1), 2)]);
        let cur: Assignment = BTreeMap::from([(u(1), BTreeSet::from([0, 1, 5])), (u(9), BTreeSet::from([0]))]);
        let members = [spec("a", &[1], &cur)];
        let out = assign(&members, &counts);
        assert_eq!(out["a"], BTreeMap::from([(u(1), BTreeSet::from([0, 1]))]));
    }

    #[test]
    fn heterogeneous_subscriptions_balance_among_eligible_members() {
        let e = Assignment::new();
        let counts = BTreeMap::from([(u(1), 6), (u(2), 2)]);
        // a: t1 only; b: t1 and t2; c: t2 only.
        let members = [spec("a", &[1], &e), spec("b", &[1, 2], &e), spec("c", &[2], &e)];
        let out = assign(&members, &counts);
        check_complete(&members, &counts, &out);
        let l = loads(&out);
        // 8 partitions over 3 members, c can only take t2's 2.
        assert!(l["a"].abs_diff(l["b"]) <= 1, "{l:?}");
        assert!(l["c"] >= 1, "{l:?}");
        // Sticky: recomputing from the result changes nothing.
        let (a, b, c) = (out["a"].clone(), out["b"].clone(), out["c"].clone());
        let again = assign(&[spec("a", &[1], &a), spec("b", &[1, 2], &b), spec("c", &[2], &c)], &counts);
        assert_eq!(again, out);
    }

    #[test]
    fn no_topics_or_no_partitions_gives_empty_assignments() {
        let e = Assignment::new();
        let out = assign(&[spec("a", &[], &e), spec("b", &[], &e)], &BTreeMap::new());
        assert!(out.values().all(|a| a.is_empty()));
        let out = assign(&[spec("a", &[1], &e)], &BTreeMap::from([(u(1), 0)]));
        assert!(out["a"].is_empty());
    }
}
