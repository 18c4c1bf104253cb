//! `<log.dirs>/meta.properties`: which cluster and which node a data directory
//! belongs to, in Kafka's format (`version=1`, `cluster.id=`, `node.id=`; `#`
//! and `!` start comments). Written by `shardlog storage format` (Kafka's
//! `kafka-storage.sh format`) before a cluster node first starts, or by the
//! metadata log on the first start of a single node (no quorum, no format step).
//!
//! In a cluster a node refuses a directory that is not formatted, or that is
//! formatted for another node id ([`check_formatted`]): starting on the wrong
//! disk would otherwise join the quorum with another node's log.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::log::LEGACY_IMAGE_FILE;

/// The file's name under `log.dirs`.
pub const META_PROPERTIES: &str = "meta.properties";

/// What `meta.properties` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// `cluster.id`: 16 bytes as 22 characters of URL-safe base64 (see [`validate_cluster_id`]).
    pub cluster_id: String,
    /// `node.id`: the node the directory was formatted for.
    pub node_id: i32,
}

/// Why a data directory cannot be used (or formatted) as asked; each message
/// names the directory and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// No `meta.properties` in a cluster node's directory.
    #[error(
        "{} is not formatted: run `shardlog storage format --cluster-id <id> --config <file>` first (`shardlog storage random-uuid` makes an id)",
        .0.display()
    )]
    NotFormatted(PathBuf),
    /// The directory belongs to another node.
    #[error("{} is formatted for node.id {formatted} but node.id is {configured}", .dir.display())]
    OtherNode {
        /// The data directory.
        dir: PathBuf,
        /// `node.id` in its `meta.properties`.
        formatted: i32,
        /// `node.id` of the configuration.
        configured: i32,
    },
    /// The directory belongs to another cluster.
    #[error("{} is formatted for cluster {formatted} but the cluster is {expected}", .dir.display())]
    OtherCluster {
        /// The data directory.
        dir: PathBuf,
        /// `cluster.id` in its `meta.properties`.
        formatted: String,
        /// The cluster id the caller knows.
        expected: String,
    },
    /// `shardlog storage format` on a formatted directory, without `--ignore-formatted`.
    #[error("{} is already formatted (cluster {}, node {}); --ignore-formatted leaves it as it is", .dir.display(), .found.cluster_id, .found.node_id)]
    AlreadyFormatted {
        /// The data directory.
        dir: PathBuf,
        /// Its `meta.properties`.
        found: MetaProperties,
    },
    /// Not a cluster id.
    #[error("`{id}` is not a cluster id: {why} (a cluster id is 16 bytes as 22 characters of URL-safe base64; `shardlog storage random-uuid` makes one)")]
    BadClusterId {
        /// The id given.
        id: String,
        /// What is wrong with it.
        why: String,
    },
    /// The directory holds data of an earlier shardlog, migrated by the metadata log on start.
    #[error(
        "{} holds data of an earlier shardlog version ({LEGACY_IMAGE_FILE}): start it once with no controller.quorum.voters to migrate it, then format",
        .0.display()
    )]
    LegacyData(PathBuf),
    /// Reading or writing the directory failed (or `meta.properties` is malformed).
    #[error("{}: {source}", .dir.display())]
    Io {
        /// The data directory.
        dir: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

fn io_err(dir: &Path) -> impl FnOnce(io::Error) -> FormatError + '_ {
    move |source| FormatError::Io { dir: dir.to_path_buf(), source }
}

fn invalid(path: &Path, why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()))
}

/// Parses the text of a `meta.properties` file (Kafka's v0 writes `broker.id`, v1 `node.id`).
fn parse(path: &Path, text: &str) -> io::Result<MetaProperties> {
    let (mut cluster_id, mut node_id, mut broker_id) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(invalid(path, format!("`{line}` is not key=value")));
        };
        let v = v.trim();
        let id = |what: &str| v.parse::<i32>().map_err(|_| invalid(path, format!("{what} `{v}` is not a number")));
        match k.trim() {
            "version" if v != "0" && v != "1" => return Err(invalid(path, format!("version {v} is not 0 or 1"))),
            "cluster.id" => cluster_id = Some(v.to_string()),
            "node.id" => node_id = Some(id("node.id")?),
            "broker.id" => broker_id = Some(id("broker.id")?),
            _ => {}
        }
    }
    let cluster_id = cluster_id.filter(|c| !c.is_empty()).ok_or_else(|| invalid(path, "no cluster.id".into()))?;
    let node_id = node_id.or(broker_id).ok_or_else(|| invalid(path, "no node.id".into()))?;
    Ok(MetaProperties { cluster_id, node_id })
}

/// Reads `<log_dir>/meta.properties`; None when there is none.
pub fn read(log_dir: &Path) -> io::Result<Option<MetaProperties>> {
    let path = log_dir.join(META_PROPERTIES);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&path, &text).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `<log_dir>/meta.properties` durably: a temporary file, fsynced,
/// renamed over the old one, then the directory fsynced (blocking I/O: start-up
/// and `shardlog storage format` only).
pub fn write(log_dir: &Path, meta: &MetaProperties) -> io::Result<()> {
    let tmp = log_dir.join(format!("{META_PROPERTIES}.tmp"));
    std::fs::write(&tmp, format!("#shardlog\nversion=1\ncluster.id={}\nnode.id={}\n", meta.cluster_id, meta.node_id))?;
    File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, log_dir.join(META_PROPERTIES))?;
    File::open(log_dir)?.sync_all()
}

/// Checks a cluster id's shape: 22 characters of URL-safe base64 without
/// padding (16 bytes, Kafka's `Uuid.toString`), not the all-zero id.
pub fn validate_cluster_id(id: &str) -> Result<(), FormatError> {
    let refuse = |why: &str| Err(FormatError::BadClusterId { id: id.to_string(), why: why.to_string() });
    if id.len() != 22 {
        return refuse(&format!("{} characters, not 22", id.chars().count()));
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return refuse("only A-Z, a-z, 0-9, '-' and '_' may appear");
    }
    if id.bytes().all(|b| b == b'A') {
        return refuse("the all-zero id is reserved");
    }
    Ok(())
}

/// A cluster node's check before it reads anything from `log_dir`: the directory
/// must be formatted, for `cfg_node_id`, and (when the caller knows the cluster's
/// id, e.g. from the quorum) for `expected_cluster_id`. Returns what it holds.
pub fn check_formatted(log_dir: &Path, cfg_node_id: i32, expected_cluster_id: Option<&str>) -> Result<MetaProperties, FormatError> {
    let meta = read(log_dir).map_err(io_err(log_dir))?.ok_or_else(|| FormatError::NotFormatted(log_dir.to_path_buf()))?;
    if meta.node_id != cfg_node_id {
        return Err(FormatError::OtherNode { dir: log_dir.to_path_buf(), formatted: meta.node_id, configured: cfg_node_id });
    }
    if let Some(expected) = expected_cluster_id.filter(|e| *e != meta.cluster_id) {
        return Err(FormatError::OtherCluster { dir: log_dir.to_path_buf(), formatted: meta.cluster_id, expected: expected.to_string() });
    }
    Ok(meta)
}

/// What [`format`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formatted {
    /// `meta.properties` was written.
    Written,
    /// The directory was already formatted with the same cluster and node id
    /// (`--ignore-formatted`): left as it was.
    AlreadyFormatted,
}

/// `shardlog storage format`: creates `log_dir` if needed and writes `meta`
/// into it. A formatted directory is refused unless `ignore_formatted`, and even
/// then when it holds another cluster or node id. A directory with data of an
/// earlier shardlog version (not yet migrated) is refused.
pub fn format(log_dir: &Path, meta: &MetaProperties, ignore_formatted: bool) -> Result<Formatted, FormatError> {
    validate_cluster_id(&meta.cluster_id)?;
    std::fs::create_dir_all(log_dir).map_err(io_err(log_dir))?;
    if let Some(found) = read(log_dir).map_err(io_err(log_dir))? {
        if !ignore_formatted {
            return Err(FormatError::AlreadyFormatted { dir: log_dir.to_path_buf(), found });
        }
        if found.cluster_id != meta.cluster_id {
            return Err(FormatError::OtherCluster { dir: log_dir.to_path_buf(), formatted: found.cluster_id, expected: meta.cluster_id.clone() });
        }
        if found.node_id != meta.node_id {
            return Err(FormatError::OtherNode { dir: log_dir.to_path_buf(), formatted: found.node_id, configured: meta.node_id });
        }
        return Ok(Formatted::AlreadyFormatted);
    }
    if log_dir.join(LEGACY_IMAGE_FILE).exists() {
        return Err(FormatError::LegacyData(log_dir.to_path_buf()));
    }
    write(log_dir, meta).map_err(io_err(log_dir))?;
    Ok(Formatted::Written)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "MkU3OEVBNTcwNTJENDM2Qg";

    fn meta(node_id: i32) -> MetaProperties {
        MetaProperties { cluster_id: ID.into(), node_id }
    }

    #[test]
    fn write_then_read_round_trips_in_kafkas_format() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read(d.path()).unwrap(), None);
        write(d.path(), &meta(3)).unwrap();
        assert_eq!(read(d.path()).unwrap(), Some(meta(3)));
        let text = std::fs::read_to_string(d.path().join(META_PROPERTIES)).unwrap();
        assert!(text.contains("version=1\n") && text.contains(&format!("cluster.id={ID}\n")) && text.contains("node.id=3\n"), "{text}");
        assert!(!d.path().join("meta.properties.tmp").exists());
    }

    #[test]
    fn reads_kafkas_files_comments_and_v0() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(META_PROPERTIES);
        std::fs::write(&p, "#\n#Thu Jan 01 00:00:00 UTC 2025\n! also a comment\nnode.id=2\ndirectory.id=abc\nversion=1\ncluster.id=x1\n\n").unwrap();
        assert_eq!(read(d.path()).unwrap(), Some(MetaProperties { cluster_id: "x1".into(), node_id: 2 }));
        std::fs::write(&p, "version=0\nbroker.id=4\ncluster.id=x2\n").unwrap();
        assert_eq!(read(d.path()).unwrap(), Some(MetaProperties { cluster_id: "x2".into(), node_id: 4 }));
        for bad in ["version=1\nnode.id=1\n", "version=1\ncluster.id=x\n", "version=2\ncluster.id=x\nnode.id=1\n", "cluster.id=x\nnode.id=one\n", "garbage\n"] {
            std::fs::write(&p, bad).unwrap();
            assert_eq!(read(d.path()).unwrap_err().kind(), io::ErrorKind::InvalidData, "{bad}");
        }
    }

    #[test]
    fn cluster_id_shape() {
        validate_cluster_id(ID).unwrap();
        validate_cluster_id(&crate::metadata::log::new_cluster_id()).unwrap();
        for bad in ["", "short", "MkU3OEVBNTcwNTJENDM2QgX", "MkU3OEVBNTcwNTJENDM2Q=", "MkU3OEVBNTcwNTJENDM2Q+", "AAAAAAAAAAAAAAAAAAAAAA"] {
            assert!(matches!(validate_cluster_id(bad), Err(FormatError::BadClusterId { .. })), "{bad}");
        }
    }

    #[test]
    fn check_formatted_refuses_unformatted_and_other_node_or_cluster() {
        let d = tempfile::tempdir().unwrap();
        let e = check_formatted(d.path(), 1, None).unwrap_err();
        assert!(matches!(e, FormatError::NotFormatted(_)));
        let msg = e.to_string();
        assert!(
            msg.contains("is not formatted") && msg.contains("shardlog storage format --cluster-id") && msg.contains("shardlog storage random-uuid"),
            "{msg}"
        );
        write(d.path(), &meta(2)).unwrap();
        let msg = check_formatted(d.path(), 1, None).unwrap_err().to_string();
        assert!(msg.ends_with("is formatted for node.id 2 but node.id is 1"), "{msg}");
        assert_eq!(check_formatted(d.path(), 2, None).unwrap(), meta(2));
        assert_eq!(check_formatted(d.path(), 2, Some(ID)).unwrap(), meta(2));
        let e = check_formatted(d.path(), 2, Some("other")).unwrap_err();
        assert!(matches!(e, FormatError::OtherCluster { .. }), "{e}");
        std::fs::write(d.path().join(META_PROPERTIES), "node.id=2\n").unwrap();
        assert!(matches!(check_formatted(d.path(), 2, None), Err(FormatError::Io { .. })));
    }

    #[test]
    fn format_once_then_only_with_ignore_formatted_and_the_same_ids() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("new/data");
        assert_eq!(format(&dir, &meta(1), false).unwrap(), Formatted::Written);
        assert_eq!(read(&dir).unwrap(), Some(meta(1)));
        assert!(matches!(format(&dir, &meta(1), false), Err(FormatError::AlreadyFormatted { .. })));
        assert_eq!(format(&dir, &meta(1), true).unwrap(), Formatted::AlreadyFormatted);
        assert!(matches!(format(&dir, &meta(2), true), Err(FormatError::OtherNode { formatted: 1, configured: 2, .. })));
        let other = MetaProperties { cluster_id: "AAAAAAAAAAAAAAAAAAAAAQ".into(), node_id: 1 };
        assert!(matches!(format(&dir, &other, true), Err(FormatError::OtherCluster { .. })));
        assert_eq!(read(&dir).unwrap(), Some(meta(1)), "refusals leave the file as it was");
        assert!(matches!(format(&dir, &MetaProperties { cluster_id: "x".into(), node_id: 1 }, false), Err(FormatError::BadClusterId { .. })));
        let legacy = d.path().join("legacy");
        std::fs::create_dir_all(&legacy).unwrap();
        std::fs::write(legacy.join(LEGACY_IMAGE_FILE), "{}").unwrap();
        assert!(matches!(format(&legacy, &meta(1), false), Err(FormatError::LegacyData(_))));
    }
}
