//! Kafka's rules for topic names, in one place (Kafka keeps them in its client
//! library's `Topic` class): which names are legal, which names collide, and
//! which topics belong to the broker itself.
//!
//! - Legal: 1-249 characters of `[a-zA-Z0-9._-]`, not `.` or `..` (a topic is a
//!   directory `<name>-<partition>` and a metric name).
//! - Colliding: `.` and `_` are the same character in metric names, so `a.b`
//!   and `a_b` cannot both exist ([`unify_collision_chars`]).
//! - Internal: topics the broker creates and owns ([`INTERNAL_TOPICS`]). A
//!   client cannot create, delete, grow, produce to or delete records of them:
//!   their partition count places every group and transactional id, and their
//!   contents are the coordinators' state.

/// Offsets and group metadata (the group coordinator's log).
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Transaction state (the transaction coordinator's log).
pub const TXN_STATE_TOPIC: &str = "__transaction_state";
/// Kafka's KRaft metadata log. This broker keeps its metadata elsewhere, but a
/// client-made topic by that name would confuse Kafka tools and a later quorum.
pub const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";
/// Kafka's share-group state (KIP-932); reserved so a later share coordinator
/// never finds a client-made topic in its place.
pub const SHARE_GROUP_STATE_TOPIC: &str = "__share_group_state";

/// Every topic the broker owns. Add a new internal topic here and the
/// CreateTopics, DeleteTopics, CreatePartitions, Produce, DeleteRecords and
/// Metadata paths all treat it as internal.
pub const INTERNAL_TOPICS: &[&str] = &[OFFSETS_TOPIC, TXN_STATE_TOPIC, CLUSTER_METADATA_TOPIC, SHARE_GROUP_STATE_TOPIC];

/// Kafka's longest topic name (a partition directory `<name>-<partition>` must fit 255 bytes).
pub const TOPIC_NAME_LEN_MAX: usize = 249;

/// True for a topic the broker owns (see [`INTERNAL_TOPICS`]).
pub fn is_internal_topic(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// Kafka's topic name rule; the error says why, in Kafka's words.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        "the empty string is not allowed".to_string()
    } else if name == "." || name == ".." {
        format!("'{name}' is not allowed")
    } else if name.len() > TOPIC_NAME_LEN_MAX {
        format!("the length of '{name}' is longer than the max allowed length {TOPIC_NAME_LEN_MAX}")
    } else if !name.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-')) {
        format!("'{name}' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'")
    } else {
        return Ok(());
    };
    Err(format!("Topic name is invalid: {why}"))
}

/// The name with `.` and `_` made equal: two names collide when these match.
pub fn unify_collision_chars(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafkas_rule() {
        assert!(validate_topic_name("a-b_c.D9").is_ok());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ü", "a\0"] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_topic_name(&"x".repeat(250)).unwrap_err().contains("249"));
    }

    #[test]
    fn dot_and_underscore_collide() {
        assert_eq!(unify_collision_chars("col.x"), unify_collision_chars("col_x"));
        assert_ne!(unify_collision_chars("col-x"), unify_collision_chars("col_x"));
    }

    #[test]
    fn internal_topics_are_a_fixed_list() {
        assert!(is_internal_topic("__consumer_offsets") && is_internal_topic("__transaction_state"));
        assert!(!is_internal_topic("__my_topic") && !is_internal_topic("consumer_offsets"));
    }
}
