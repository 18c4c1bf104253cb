//! Moving one member from what it owns towards its target assignment (Kafka's
//! `CurrentAssignmentBuilder`), as a pure function so each step is testable.
//!
//! The rule that keeps a partition from having two owners: a member is first
//! told to revoke what it loses (it stays at its epoch, state
//! UnrevokedPartitions); only once its heartbeat no longer lists them does it
//! move to the next epoch; and a partition is handed to its new owner only when
//! no member holds it any more (else the new owner waits, UnreleasedPartitions).

use std::collections::BTreeSet;

use uuid::Uuid;

use super::member::{intersects, Assignment, ConsumerGroupMember, MemberState};

/// The next state of `member`. `target_epoch`/`target`: the group's target
/// assignment for it; `held_by_other(topic, partition)`: whether another member
/// (or this member's own pending revocation) still holds the partition;
/// `owned`: what the member's heartbeat says it owns (None = not sent).
pub fn reconcile(
    member: &ConsumerGroupMember,
    target_epoch: i32,
    target: &Assignment,
    held: &dyn Fn(Uuid, i32) -> bool,
    owned: Option<&Assignment>,
) -> ConsumerGroupMember {
    match member.state {
        MemberState::Stable if member.member_epoch == target_epoch => member.clone(),
        MemberState::Stable | MemberState::UnreleasedPartitions => next(member, member.member_epoch, target_epoch, target, held, owned),
        MemberState::UnrevokedPartitions => {
            if still_owns(owned, &member.pending_revocation) {
                member.clone()
            } else {
                // Revocation done: on to the next epoch, then towards the latest target.
                next(member, member.member_epoch + 1, target_epoch, target, held, owned)
            }
        }
    }
}

/// Whether the member still owns any of `revoking`. Not sending its owned
/// partitions counts as still owning them (nothing proves it let them go).
fn still_owns(owned: Option<&Assignment>, revoking: &Assignment) -> bool {
    owned.is_none_or(|o| intersects(o, revoking))
}

fn next(
    member: &ConsumerGroupMember,
    epoch: i32,
    target_epoch: i32,
    target: &Assignment,
    held: &dyn Fn(Uuid, i32) -> bool,
    owned: Option<&Assignment>,
) -> ConsumerGroupMember {
    let mut assigned = Assignment::new();
    let mut revoking = Assignment::new();
    let mut adding = Assignment::new();
    let mut unreleased = false;
    let empty = BTreeSet::new();
    let topics: BTreeSet<Uuid> = target.keys().chain(member.assigned.keys()).copied().collect();
    for t in topics {
        let want = target.get(&t).unwrap_or(&empty);
        let have = member.assigned.get(&t).unwrap_or(&empty);
        let keep: BTreeSet<i32> = have.intersection(want).copied().collect();
        let lose: BTreeSet<i32> = have.difference(&keep).copied().collect();
        let mut gain: BTreeSet<i32> = want.difference(&keep).copied().collect();
        let before = gain.len();
        gain.retain(|&p| !held(t, p));
        unreleased |= gain.len() != before;
        if !keep.is_empty() {
            assigned.insert(t, keep);
        }
        if !lose.is_empty() {
            revoking.insert(t, lose);
        }
        if !gain.is_empty() {
            adding.insert(t, gain);
        }
    }
    let mut m = member.clone();
    if !revoking.is_empty() && still_owns(owned, &revoking) {
        // Give up first; the epoch stays until the member confirms.
        m.state = MemberState::UnrevokedPartitions;
        m.update_epoch(epoch);
        m.assigned = assigned;
        m.pending_revocation = revoking;
        return m;
    }
    for (t, ps) in adding {
        assigned.entry(t).or_default().extend(ps);
    }
    m.state = if unreleased { MemberState::UnreleasedPartitions } else { MemberState::Stable };
    m.update_epoch(target_epoch);
    m.assigned = assigned;
    m.pending_revocation = Assignment::new();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn asg(parts: &[(u128, &[i32])]) -> Assignment {
        parts.iter().map(|(id, ps)| (t(*id), ps.iter().copied().collect())).collect()
    }

    fn member(epoch: i32, state: MemberState, assigned: Assignment, pending: Assignment) -> ConsumerGroupMember {
        let mut m = ConsumerGroupMember::new("m");
        m.member_epoch = epoch;
        m.previous_member_epoch = epoch - 1;
        m.state = state;
        m.assigned = assigned;
        m.pending_revocation = pending;
        m
    }

    const FREE: &dyn Fn(Uuid, i32) -> bool = &|_, _| false;

    #[test]
    fn stable_member_at_target_epoch_is_unchanged() {
        let m = member(3, MemberState::Stable, asg(&[(1, &[0, 1])]), Assignment::new());
        assert_eq!(reconcile(&m, 3, &asg(&[(1, &[0])]), FREE, None), m);
    }

    #[test]
    fn new_partitions_are_given_at_once_when_free() {
        let m = member(3, MemberState::Stable, asg(&[(1, &[0])]), Assignment::new());
        let n = reconcile(&m, 4, &asg(&[(1, &[0, 1]), (2, &[5])]), FREE, Some(&asg(&[(1, &[0])])));
        assert_eq!((n.state, n.member_epoch, n.previous_member_epoch), (MemberState::Stable, 4, 3));
        assert_eq!(n.assigned, asg(&[(1, &[0, 1]), (2, &[5])]));
        assert!(n.pending_revocation.is_empty());
    }

    #[test]
    fn lost_partitions_are_revoked_first_at_the_same_epoch() {
        let m = member(3, MemberState::Stable, asg(&[(1, &[0, 1])]), Assignment::new());
        let target = asg(&[(1, &[0]), (2, &[7])]);
        let n = reconcile(&m, 4, &target, FREE, Some(&asg(&[(1, &[0, 1])])));
        assert_eq!((n.state, n.member_epoch), (MemberState::UnrevokedPartitions, 3));
        assert_eq!(n.assigned, asg(&[(1, &[0])]));
        assert_eq!(n.pending_revocation, asg(&[(1, &[1])]));
        // Still listed as owned: nothing moves.
        assert_eq!(reconcile(&n, 4, &target, FREE, Some(&asg(&[(1, &[0, 1])]))), n);
        // Not told (null owned partitions): nothing moves either.
        assert_eq!(reconcile(&n, 4, &target, FREE, None), n);
        // Released: the member moves to the target epoch and gets the new partition.
        let d = reconcile(&n, 4, &target, FREE, Some(&asg(&[(1, &[0])])));
        assert_eq!((d.state, d.member_epoch, d.previous_member_epoch), (MemberState::Stable, 4, 3));
        assert_eq!(d.assigned, target);
        assert!(d.pending_revocation.is_empty());
    }

    #[test]
    fn partitions_another_member_holds_wait_until_released() {
        let m = member(3, MemberState::Stable, asg(&[(1, &[0])]), Assignment::new());
        let target = asg(&[(1, &[0, 1])]);
        let held = |topic: Uuid, p: i32| topic == t(1) && p == 1;
        let n = reconcile(&m, 4, &target, &held, Some(&asg(&[(1, &[0])])));
        assert_eq!((n.state, n.member_epoch), (MemberState::UnreleasedPartitions, 4));
        assert_eq!(n.assigned, asg(&[(1, &[0])]));
        // Once the other member let go, the next heartbeat gets it.
        let d = reconcile(&n, 4, &target, FREE, Some(&asg(&[(1, &[0])])));
        assert_eq!((d.state, d.member_epoch), (MemberState::Stable, 4));
        assert_eq!(d.assigned, target);
    }

    #[test]
    fn a_member_that_already_dropped_what_it_loses_is_not_asked_to_revoke() {
        // A rejoining member reports owning nothing: no revocation round trip.
        let m = member(3, MemberState::Stable, asg(&[(1, &[0, 1])]), Assignment::new());
        let n = reconcile(&m, 5, &asg(&[(1, &[0])]), FREE, Some(&Assignment::new()));
        assert_eq!((n.state, n.member_epoch), (MemberState::Stable, 5));
        assert_eq!(n.assigned, asg(&[(1, &[0])]));
    }

    #[test]
    fn revocation_then_unreleased_then_stable() {
        // Two members swap a partition each: both revoke, then wait for the
        // other's release, then complete — never owning a partition twice.
        let a = member(1, MemberState::Stable, asg(&[(1, &[0])]), Assignment::new());
        let b = member(1, MemberState::Stable, asg(&[(1, &[1])]), Assignment::new());
        let ta = asg(&[(1, &[1])]);
        let tb = asg(&[(1, &[0])]);
        let a1 = reconcile(&a, 2, &ta, FREE, Some(&a.assigned));
        let b1 = reconcile(&b, 2, &tb, FREE, Some(&b.assigned));
        assert_eq!(a1.state, MemberState::UnrevokedPartitions);
        assert_eq!(b1.state, MemberState::UnrevokedPartitions);
        // a confirms while b still holds partition 1.
        let held_by_b = |_: Uuid, p: i32| p == 1;
        let a2 = reconcile(&a1, 2, &ta, &held_by_b, Some(&Assignment::new()));
        assert_eq!((a2.state, a2.member_epoch), (MemberState::UnreleasedPartitions, 2));
        assert!(a2.assigned.is_empty());
        // b confirms; a holds nothing now, so b gets 0 at once.
        let b2 = reconcile(&b1, 2, &tb, FREE, Some(&Assignment::new()));
        assert_eq!((b2.state, b2.member_epoch), (MemberState::Stable, 2));
        assert_eq!(b2.assigned, tb);
        let a3 = reconcile(&a2, 2, &ta, FREE, Some(&Assignment::new()));
        assert_eq!((a3.state, a3.assigned.clone()), (MemberState::Stable, ta));
    }
}
