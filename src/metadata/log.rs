//! The metadata log: the controller appends every metadata change as records
//! (see [`super::records`]) to `<log.dirs>/__cluster_metadata-0/`, fdatasynced
//! through the ring before the change is answered or published, and every
//! `metadata.log.max.record.bytes.between.snapshots` bytes writes a checkpoint
//! (the image as records, `<offset>.checkpoint`, Kafka's name for KRaft
//! snapshots) and starts a new segment, deleting the older ones. At start the
//! newest readable checkpoint is loaded and the records after it replayed.
//!
//! Each append is one frame, `[length: u32][crc32c: u32][JSON array of records]`,
//! so the records of one change (a topic and its partitions) are applied all or
//! none. A frame torn by a crash can only be at the end of the last segment
//! (appends are synced before they are acknowledged): it is cut off at start. A bad frame anywhere else is
//! corruption and the broker refuses to start rather than serve a wrong image.
//!
//! The cluster id lives in `<log.dirs>/meta.properties` (`cluster.id=`, as Kafka
//! keeps it; see [`super::meta_properties`]): written here on a single node's
//! first start, by `shardlog storage format` before a cluster node's. A data directory from before the metadata log (one JSON file,
//! `shardlog-metadata.json`, with shard placement inside) is migrated at start.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Deserialize;

use super::image::{MetadataImage, PartitionMeta, TopicMeta};
use super::meta_properties::{self, MetaProperties};
use super::records::MetadataRecord;
use crate::io::durable::replace_file;
use crate::io::ring::Ring;

/// The metadata log's directory under `log.dirs` (Kafka's name for it).
pub const METADATA_DIR: &str = "__cluster_metadata-0";
/// Cluster id and node id of the data directory (kept here for older callers).
pub use super::meta_properties::META_PROPERTIES;
/// The single-file image of earlier versions, migrated at start.
pub const LEGACY_IMAGE_FILE: &str = "shardlog-metadata.json";
/// Bytes of a frame before its records.
const FRAME_HEADER: usize = 8;

/// The controller's handle on the metadata log (owned by the controller shard).
pub struct MetadataLog {
    dir: PathBuf,
    segment: File,
    segment_len: u64,
    next_offset: u64,
    bytes_since_checkpoint: u64,
    checkpoint_every: u64,
}

/// Partition placement found in a migrated legacy image: (topic id, partition, shard).
pub type LegacyPlacement = Vec<(uuid::Uuid, i32, usize)>;

fn file_name(offset: u64, ext: &str) -> String {
    format!("{offset:020}.{ext}")
}

/// Files `<20 digits>.<ext>` in `dir`, by offset.
fn list(dir: &Path, ext: &str) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        let parsed = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(&format!(".{ext}"))).and_then(|s| s.parse::<u64>().ok());
        if let Some(o) = parsed {
            out.push((o, path));
        }
    }
    out.sort();
    Ok(out)
}

/// One frame holding `recs` (one append, applied all or none).
fn encode_frames(recs: &[MetadataRecord]) -> io::Result<Bytes> {
    let json = serde_json::to_vec(recs).map_err(io::Error::other)?;
    let len = u32::try_from(json.len()).map_err(|_| io::Error::other("metadata change over 4 GiB"))?;
    let mut buf = BytesMut::with_capacity(FRAME_HEADER + json.len());
    buf.put_u32(len);
    buf.put_u32(crc32c::crc32c(&json));
    buf.put_slice(&json);
    Ok(buf.freeze())
}

/// Decodes frames from the start of `data`: their records in order, and the
/// length of the valid prefix (less than `data.len()` when a frame is torn or
/// corrupt; a frame's records are all taken or none).
fn decode_frames(data: &[u8]) -> (Vec<MetadataRecord>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while data.len() - pos >= FRAME_HEADER {
        let mut header = &data[pos..pos + FRAME_HEADER];
        let (len, crc) = (header.get_u32() as usize, header.get_u32());
        if data.len() - pos - FRAME_HEADER < len {
            break;
        }
        let body = &data[pos + FRAME_HEADER..pos + FRAME_HEADER + len];
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Ok(recs) = serde_json::from_slice::<Vec<MetadataRecord>>(body) else { break };
        out.extend(recs);
        pos += FRAME_HEADER + len;
    }
    (out, pos)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// `cluster.id` of `meta.properties`, if the file exists.
fn read_cluster_id(log_dir: &Path) -> io::Result<Option<String>> {
    Ok(meta_properties::read(log_dir)?.map(|m| m.cluster_id))
}

/// Writes `meta.properties` (start-up only; blocking is fine before serving).
fn write_meta_properties(log_dir: &Path, cluster_id: &str, node_id: i32) -> io::Result<()> {
    meta_properties::write(log_dir, &MetaProperties { cluster_id: cluster_id.to_string(), node_id })
}

/// Kafka cluster ids are 16 random bytes in URL-safe base64 without padding (22 chars).
/// Encoded as Kafka's `Uuid.toString()` does (the bytes big-endian, 6 bits per
/// character from the top), and, as Kafka's `Uuid.randomUuid()`, never starting
/// with `-`, which a command line would read as an option.
pub fn new_cluster_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    loop {
        // 128 bits in 22 characters: the last one carries 2 bits, padded with 4 zero bits.
        let bits = uuid::Uuid::new_v4().as_u128();
        let id: String = (0..22)
            .map(|i| {
                let shift: i32 = 128 - 6 * (i + 1);
                let v = if shift >= 0 { bits >> shift } else { bits << -shift };
                ALPHABET[(v & 63) as usize] as char
            })
            .collect();
        if !id.starts_with('-') {
            return id;
        }
    }
}

#[derive(Deserialize)]
struct LegacyPartition {
    owner_shard: usize,
    leader: i32,
    leader_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

#[derive(Deserialize)]
struct LegacyTopic {
    name: String,
    topic_id: uuid::Uuid,
    partitions: Vec<LegacyPartition>,
    configs: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct LegacyImage {
    cluster_id: String,
    topics: BTreeMap<String, LegacyTopic>,
    #[serde(default)]
    next_producer_id: i64,
}

/// The records and placement of a legacy single-file image, if `log_dir` has one.
fn read_legacy(log_dir: &Path) -> io::Result<Option<(String, Vec<MetadataRecord>, LegacyPlacement)>> {
    let path = log_dir.join(LEGACY_IMAGE_FILE);
    let raw = match std::fs::read(&path) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let old: LegacyImage = serde_json::from_slice(&raw).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    let mut recs = Vec::new();
    let mut placement = Vec::new();
    if old.next_producer_id > 0 {
        recs.push(MetadataRecord::ProducerIds { next_producer_id: old.next_producer_id });
    }
    for t in old.topics.into_values() {
        placement.extend(t.partitions.iter().enumerate().map(|(i, p)| (t.topic_id, i as i32, p.owner_shard)));
        let partitions = t
            .partitions
            .into_iter()
            .map(|p| PartitionMeta {
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                replicas: p.replicas,
                isr: p.isr,
                elr: Vec::new(),
                adding: Vec::new(),
                removing: Vec::new(),
            })
            .collect();
        TopicMeta { name: t.name, topic_id: t.topic_id, partitions, configs: t.configs }.push_records(&mut recs);
    }
    Ok(Some((old.cluster_id, recs, placement)))
}

/// The image the metadata under `log_dir` adds up to, read without changing
/// anything (for `shardlog tune` and start-up planning). None when the directory
/// has no metadata yet.
pub fn read_image(log_dir: &Path) -> io::Result<Option<MetadataImage>> {
    let dir = log_dir.join(METADATA_DIR);
    if !dir.exists() || log_dir.join(LEGACY_IMAGE_FILE).exists() {
        return Ok(read_legacy(log_dir)?.map(|(id, recs, _)| {
            let mut img = MetadataImage::empty(id);
            for r in &recs {
                let _ = img.apply(r);
            }
            img
        }));
    }
    let cluster_id = read_cluster_id(log_dir)?.unwrap_or_default();
    replay(&dir, cluster_id, false).map(|(img, _)| Some(img))
}

/// Loads the newest readable checkpoint and replays the segments after it.
/// With `repair`, a torn tail of the last segment is cut off. Returns the image
/// and the last segment's (base offset, valid length), if any.
fn replay(dir: &Path, cluster_id: String, repair: bool) -> io::Result<(MetadataImage, Option<(u64, u64)>)> {
    let mut image = MetadataImage::empty(cluster_id.clone());
    for (offset, path) in list(dir, "checkpoint")?.into_iter().rev() {
        let data = std::fs::read(&path)?;
        let (recs, valid) = decode_frames(&data);
        let mut img = MetadataImage::empty(cluster_id.clone());
        let applied = valid == data.len() && recs.iter().all(|r| img.apply(r).is_ok());
        if applied {
            img.version = offset;
            image = img;
            break;
        }
        tracing::warn!(file = %path.display(), "unreadable metadata checkpoint; trying an older one");
    }
    let segments = list(dir, "log")?;
    let mut last = None;
    for (i, (base, path)) in segments.iter().enumerate() {
        let data = std::fs::read(path)?;
        let (recs, valid) = decode_frames(&data);
        if valid < data.len() {
            if i + 1 < segments.len() {
                return Err(invalid(format!("{}: corrupt metadata record at byte {valid} (not the log's tail)", path.display())));
            }
            if repair {
                tracing::warn!(file = %path.display(), kept = valid, dropped = data.len() - valid, "cutting off a torn metadata record (an unacknowledged change)");
                let f = std::fs::OpenOptions::new().write(true).open(path)?;
                f.set_len(valid as u64)?;
                f.sync_all()?;
            }
        }
        for (j, r) in recs.iter().enumerate() {
            let offset = base + j as u64;
            if offset < image.version {
                continue;
            }
            if offset > image.version {
                return Err(invalid(format!("metadata log has a gap: record {offset} follows {}", image.version)));
            }
            image.apply(r).map_err(|e| invalid(format!("{}: record {offset}: {e}", path.display())))?;
        }
        last = Some((*base, valid as u64));
    }
    Ok((image, last))
}

impl MetadataLog {
    /// Opens the metadata log under `log_dir` at start-up (blocking I/O: nothing is
    /// served yet): migrates a legacy image, replays the log, and returns it with
    /// the image and, after a migration, the old placement of partitions on shards.
    pub fn open(log_dir: &Path, node_id: i32, checkpoint_every: u64) -> io::Result<(MetadataLog, MetadataImage, Option<LegacyPlacement>)> {
        let dir = log_dir.join(METADATA_DIR);
        let mut legacy_placement = None;
        if let Some((cluster_id, recs, placement)) = read_legacy(log_dir)? {
            // A metadata dir beside the legacy file is an interrupted migration: redo it.
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
            if read_cluster_id(log_dir)?.is_none() {
                write_meta_properties(log_dir, &cluster_id, node_id)?;
            }
            let path = dir.join(file_name(recs.len() as u64, "checkpoint"));
            std::fs::write(&path, encode_frames(&recs)?)?;
            File::open(&path)?.sync_all()?;
            File::open(&dir)?.sync_all()?;
            tracing::info!(
                topics = recs.iter().filter(|r| matches!(r, MetadataRecord::Topic { .. })).count(),
                "migrated {LEGACY_IMAGE_FILE} to the metadata log"
            );
            legacy_placement = Some(placement);
        }
        std::fs::create_dir_all(&dir)?;
        let cluster_id = match read_cluster_id(log_dir)? {
            Some(id) => id,
            None => {
                let id = new_cluster_id();
                write_meta_properties(log_dir, &id, node_id)?;
                id
            }
        };
        let (image, last) = replay(&dir, cluster_id, true)?;
        let (segment, segment_len) = match last {
            // Append to the last segment only if it reaches the image's end (it may end
            // before a newer checkpoint, if a crash came between checkpoint and roll).
            Some((base, len)) if base <= image.version && base + count_records(&dir.join(file_name(base, "log")))? == image.version => {
                (std::fs::OpenOptions::new().write(true).open(dir.join(file_name(base, "log")))?, len)
            }
            _ => {
                let f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(dir.join(file_name(image.version, "log")))?;
                File::open(&dir)?.sync_all()?;
                (f, 0)
            }
        };
        let log = MetadataLog { dir, segment, segment_len, next_offset: image.version, bytes_since_checkpoint: segment_len, checkpoint_every };
        Ok((log, image, legacy_placement))
    }

    /// Called once a migration's placement table is durable: the legacy file goes.
    pub fn finish_migration(log_dir: &Path) -> io::Result<()> {
        match std::fs::remove_file(log_dir.join(LEGACY_IMAGE_FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => File::open(log_dir)?.sync_all(),
        }
    }

    /// Appends `records` and makes them durable (fdatasync through the ring).
    /// On failure nothing of them stays in the log.
    pub async fn append(&mut self, ring: &Ring, records: &[MetadataRecord]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let bytes = Rc::new(encode_frames(records)?);
        let len = bytes.len() as u64;
        let iov = vec![libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() }];
        let fd = self.segment.as_raw_fd();
        let mut res = ring.writev_all(fd, iov, bytes.clone(), self.segment_len).await;
        if res.is_ok() {
            res = ring.fdatasync(fd).await;
        }
        if let Err(e) = res {
            let _ = self.segment.set_len(self.segment_len);
            return Err(e);
        }
        self.segment_len += len;
        self.next_offset += records.len() as u64;
        self.bytes_since_checkpoint += len;
        Ok(())
    }

    /// Offset of the next record.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Whether enough has been appended since the last checkpoint to write one.
    pub fn checkpoint_due(&self) -> bool {
        self.bytes_since_checkpoint >= self.checkpoint_every
    }

    /// Writes `image` (which must be at this log's end) as a checkpoint, starts a
    /// new segment at its offset, and deletes the segments and checkpoints before it.
    pub async fn checkpoint(&mut self, ring: &Ring, image: &MetadataImage) -> io::Result<()> {
        if image.version != self.next_offset {
            return Err(io::Error::other(format!("checkpoint of image {} at log end {}", image.version, self.next_offset)));
        }
        let at = self.next_offset;
        replace_file(ring, &self.dir.join(file_name(at, "checkpoint")), encode_frames(&image.to_records())?).await?;
        // The new segment; a crash before it exists leaves the checkpoint, which is enough.
        let seg = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(self.dir.join(file_name(at, "log")))?;
        let dir_file = File::open(&self.dir)?;
        ring.fsync(dir_file.as_raw_fd()).await?;
        self.segment = seg;
        self.segment_len = 0;
        self.bytes_since_checkpoint = 0;
        for (o, path) in list(&self.dir, "log")?.into_iter().chain(list(&self.dir, "checkpoint")?) {
            if o < at {
                std::fs::remove_file(path)?;
            }
        }
        Ok(())
    }
}

fn count_records(path: &Path) -> io::Result<u64> {
    Ok(decode_frames(&std::fs::read(path)?).0.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::io::run_on_executor as run;

    #[test]
    fn cluster_ids_are_kafka_base64_and_never_start_with_a_dash() {
        for _ in 0..2000 {
            let id = new_cluster_id();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'), "{id}");
            assert!(matches!(id.as_bytes()[21], b'A' | b'Q' | b'g' | b'w'), "{id}: the last character carries 2 bits");
        }
    }

    fn topic(name: &str, parts: i32) -> Vec<MetadataRecord> {
        let id = uuid::Uuid::new_v4();
        let mut v = vec![MetadataRecord::Topic { name: name.into(), topic_id: id }];
        v.extend((0..parts).map(|p| MetadataRecord::Partition { topic_id: id, partition: p, replicas: vec![0], isr: vec![0], leader: 0, leader_epoch: 0 }));
        v
    }

    #[test]
    fn appended_records_replay_after_reopen_and_checkpoints_compact_the_log() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_path_buf();
        run(move || async move {
            let ring = Ring::start().unwrap();
            let (mut log, mut img, legacy) = MetadataLog::open(&p, 0, 200).unwrap();
            assert!(legacy.is_none());
            for i in 0..5 {
                let recs = topic(&format!("t{i}"), 2);
                log.append(&ring, &recs).await.unwrap();
                for r in &recs {
                    img.apply(r).unwrap();
                }
                if log.checkpoint_due() {
                    log.checkpoint(&ring, &img).await.unwrap();
                }
            }
            let (log2, img2, _) = MetadataLog::open(&p, 0, 200).unwrap();
            assert_eq!(img2, img);
            assert_eq!(log2.next_offset(), 15);
            let files = std::fs::read_dir(p.join(METADATA_DIR)).unwrap().count();
            assert!(files <= 3, "old segments and checkpoints are deleted ({files} files)");
        });
    }

    #[test]
    fn a_torn_tail_is_cut_and_corruption_before_it_refuses_to_start() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_path_buf();
        let q = p.clone();
        run(move || async move {
            let ring = Ring::start().unwrap();
            let (mut log, _, _) = MetadataLog::open(&q, 0, u64::MAX).unwrap();
            log.append(&ring, &topic("a", 1)).await.unwrap();
            log.append(&ring, &topic("b", 1)).await.unwrap();
        });
        let seg = p.join(METADATA_DIR).join(file_name(0, "log"));
        let whole = std::fs::read(&seg).unwrap();
        // A crash in the middle of the last append: half of its last frame.
        std::fs::write(&seg, &whole[..whole.len() - 5]).unwrap();
        let img = MetadataLog::open(&p, 0, u64::MAX).unwrap().1;
        assert_eq!(img.topics.keys().collect::<Vec<_>>(), ["a"], "b's append was torn: none of it applies");
        assert_eq!(img.version, 2);
        // A flipped byte in the first frame: not a tail, refuse.
        let mut bad = std::fs::read(&seg).unwrap();
        bad[12] ^= 0xff;
        std::fs::write(&seg, &bad).unwrap();
        std::fs::write(p.join(METADATA_DIR).join(file_name(99, "log")), b"").unwrap();
        let err = MetadataLog::open(&p, 0, u64::MAX).err().expect("corruption before the tail");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    #[test]
    fn a_legacy_image_is_migrated_with_its_placement() {
        let d = tempfile::tempdir().unwrap();
        let id = uuid::Uuid::new_v4();
        let legacy = serde_json::json!({
            "cluster_id": "abc", "version": 7, "next_producer_id": 5000,
            "topics": { "t": { "name": "t", "topic_id": id, "configs": {"retention.ms": "1000"},
                "partitions": [
                    {"owner_shard": 1, "leader": 0, "leader_epoch": 0, "replicas": [0], "isr": [0]},
                    {"owner_shard": 0, "leader": 0, "leader_epoch": 0, "replicas": [0], "isr": [0]}]}}
        });
        std::fs::write(d.path().join(LEGACY_IMAGE_FILE), legacy.to_string()).unwrap();
        let before = read_image(d.path()).unwrap().unwrap();
        let (_, img, placement) = MetadataLog::open(d.path(), 0, u64::MAX).unwrap();
        assert_eq!(img.cluster_id, "abc");
        assert_eq!(img.next_producer_id, 5000);
        assert_eq!(img.topics["t"].configs["retention.ms"], "1000");
        assert_eq!(placement.unwrap(), vec![(id, 0, 1), (id, 1, 0)]);
        assert_eq!(before.topics, img.topics);
        MetadataLog::finish_migration(d.path()).unwrap();
        let (_, again, placement) = MetadataLog::open(d.path(), 0, u64::MAX).unwrap();
        assert!(placement.is_none());
        assert_eq!(again.topics, img.topics);
        assert_eq!(read_cluster_id(d.path()).unwrap().as_deref(), Some("abc"));
    }
}
