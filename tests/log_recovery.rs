//! Segment rolling and crash recovery, through the real binary: segments roll
//! at `log.segment.bytes` with Kafka's file names, indexes are rebuilt when
//! missing or corrupt, and a torn or corrupt tail of the active segment is
//! truncated after a crash while everything before it stays readable.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Offset;

use common::*;

const WAIT: Duration = Duration::from_secs(60);

/// Produces `n` records `v{i}` (about 200 bytes each) to partition 0 and returns their offsets.
async fn produce(bootstrap: &str, topic: &str, from: usize, n: usize) -> Vec<i64> {
    let p: FutureProducer = producer_config(bootstrap).set("batch.size", "8192").create().expect("producer");
    let mut futs = Vec::new();
    for i in from..from + n {
        let v = format!("v{i}-{}", "x".repeat(190));
        let k = format!("k{i}");
        futs.push(p.send_result(FutureRecord::to(topic).partition(0).key(&k).payload(&v)).expect("enqueue"));
    }
    let mut offsets = Vec::new();
    for f in futs {
        let delivery = tokio::time::timeout(WAIT, f).await.expect("delivery in time").expect("not canceled").expect("delivered");
        offsets.push(delivery.offset);
    }
    offsets
}

fn segment_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        fs::read_dir(dir).expect("partition dir").filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == ext)).collect();
    v.sort();
    v
}

/// Length of the valid batches at the start of a segment's bytes (walking
/// batch lengths while the magic byte says v2), and whether every byte after
/// them is zero: the active segment ends with the DMA writer's padding, less
/// than a block of zeros, until a roll, a clean close or recovery cuts it.
fn data_len(raw: &[u8]) -> (usize, bool) {
    let pos = whole_batches_len(raw);
    (pos, raw[pos..].iter().all(|&b| b == 0))
}

fn check_values(recs: &[Rec], n: usize) {
    assert_eq!(recs.len(), n, "record count");
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.offset, i as i64, "contiguous offsets");
        let v = String::from_utf8(r.value.clone().expect("value")).expect("utf8");
        assert!(v.starts_with(&format!("v{i}-")), "record {i} has value {v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn segments_roll_and_indexes_are_rebuilt() {
    let mut b = Broker::start(&[("log.segment.bytes", "65536"), ("message.max.bytes", "16384"), ("log.index.interval.bytes", "1024")]);
    let topic = topic_name("roll");
    create_topic(&b.bootstrap(), &topic, 1).await;
    let offs = produce(&b.bootstrap(), &topic, 0, 2000).await;
    assert_eq!(offs, (0..2000).collect::<Vec<i64>>());
    let pdir = b.log_dir().join(format!("{topic}-0"));
    let logs = segment_files(&pdir, "log");
    assert!(logs.len() >= 5, "2000 x ~250 B in 64 KiB segments must roll several times, got {logs:?}");
    for l in &logs {
        let stem = l.file_stem().unwrap().to_string_lossy().to_string();
        assert_eq!(stem.len(), 20, "Kafka's 20-digit base offset names: {stem}");
        assert!(fs::metadata(l).unwrap().len() <= 65536, "segment {stem} exceeds segment.bytes");
    }
    // Rolled segments have their indexes on disk.
    assert!(segment_files(&pdir, "index").len() >= logs.len() - 1);
    assert!(segment_files(&pdir, "timeindex").len() >= logs.len() - 1);
    check_values(&consume_all(&b.bootstrap(), &topic, 1, 2000, WAIT), 2000);

    b.stop();
    // A missing offset index and a corrupt time index must be rebuilt at start.
    let idx = segment_files(&pdir, "index");
    fs::remove_file(&idx[0]).unwrap();
    let tidx = segment_files(&pdir, "timeindex");
    fs::OpenOptions::new().append(true).open(&tidx[1]).unwrap().write_all(b"junk!").unwrap();
    b.restart();
    check_values(&consume_all(&b.bootstrap(), &topic, 1, 2000, WAIT), 2000);
    // A fetch in the middle of an old segment starts at the right record.
    let mid = consume_from(&b.bootstrap(), &topic, &[(0, Offset::Offset(1234))], 10, WAIT);
    assert_eq!(mid.first().map(|r| r.offset), Some(1234));
    // Appends continue after the last offset.
    assert_eq!(produce(&b.bootstrap(), &topic, 2000, 5).await, (2000..2005).collect::<Vec<i64>>());
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn torn_and_corrupt_tails_are_truncated_after_a_crash() {
    let mut b = Broker::start(&[]);
    let topic = topic_name("torn");
    create_topic(&b.bootstrap(), &topic, 1).await;
    produce(&b.bootstrap(), &topic, 0, 100).await;
    b.kill9();
    let pdir = b.log_dir().join(format!("{topic}-0"));
    let log = segment_files(&pdir, "log").pop().expect("active segment");
    let (good_len, zeros) = data_len(&fs::read(&log).unwrap());
    assert!(zeros, "only padding follows the batches");
    let good_len = good_len as u64;
    // A torn write: a batch header claiming more bytes than were written.
    let mut torn = Vec::new();
    torn.extend_from_slice(&100i64.to_be_bytes());
    torn.extend_from_slice(&5000i32.to_be_bytes());
    torn.extend_from_slice(&[0u8; 4]);
    torn.push(2);
    torn.extend_from_slice(&[0u8; 40]);
    let f = fs::OpenOptions::new().write(true).open(&log).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &torn, good_len).unwrap();
    b.restart();
    check_values(&consume_all(&b.bootstrap(), &topic, 1, 100, WAIT), 100);
    assert_eq!(fs::metadata(&log).unwrap().len(), good_len, "the torn tail is cut off");
    assert_eq!(produce(&b.bootstrap(), &topic, 100, 10).await, (100..110).collect::<Vec<i64>>());
    check_values(&consume_all(&b.bootstrap(), &topic, 1, 110, WAIT), 110);

    // A flipped byte inside the last batch: its CRC fails, so recovery drops that
    // batch (and only it); the offsets it held are given to new appends.
    b.kill9();
    let mut raw = fs::read(&log).unwrap();
    let len = data_len(&raw).0 as u64;
    let last = len as usize - 5;
    raw[last] ^= 0xff;
    fs::write(&log, &raw).unwrap();
    b.restart();
    let recs = consume_all(&b.bootstrap(), &topic, 1, 110, Duration::from_secs(10));
    assert!(recs.len() < 110 && recs.len() >= 100, "the corrupt last batch is dropped, the rest kept: {}", recs.len());
    check_values(&recs, recs.len());
    assert!(fs::metadata(&log).unwrap().len() < len);
    let next = produce(&b.bootstrap(), &topic, recs.len(), 1).await;
    assert_eq!(next, vec![recs.len() as i64]);
    b.stop();
}

/// A rolled segment is synced in the background after the roll, so after a
/// crash the segment before the active one may be torn as well: recovery
/// checks it by CRC, cuts it at the first bad batch and drops the segment
/// after it (its records continued the lost ones), leaving a contiguous log.
#[tokio::test(flavor = "multi_thread")]
async fn a_torn_segment_before_the_active_one_is_cut_and_later_data_dropped() {
    let mut b = Broker::start(&[("log.segment.bytes", "65536"), ("message.max.bytes", "16384")]);
    let topic = topic_name("torn-prev");
    create_topic(&b.bootstrap(), &topic, 1).await;
    produce(&b.bootstrap(), &topic, 0, 1000).await;
    b.kill9();
    let pdir = b.log_dir().join(format!("{topic}-0"));
    let logs = segment_files(&pdir, "log");
    assert!(logs.len() >= 3, "1000 x ~250 B in 64 KiB segments roll: {logs:?}");
    let prev = &logs[logs.len() - 2];
    let active = &logs[logs.len() - 1];
    // Flip a byte in the last batch of the segment before the active one.
    let mut raw = fs::read(prev).unwrap();
    let at = raw.len() - 3;
    raw[at] ^= 0xff;
    fs::write(prev, &raw).unwrap();
    let prev_len = raw.len() as u64;
    b.restart();
    assert!(fs::metadata(prev).unwrap().len() < prev_len, "the bad batch is cut off");
    assert!(!active.exists(), "the segment after the cut one is removed");
    let recs = consume_all(&b.bootstrap(), &topic, 1, 1000, Duration::from_secs(10));
    assert!(recs.len() < 1000 && !recs.is_empty(), "a prefix survives: {}", recs.len());
    check_values(&recs, recs.len());
    // New appends continue right after the surviving prefix.
    assert_eq!(produce(&b.bootstrap(), &topic, recs.len(), 1).await, vec![recs.len() as i64]);
    b.stop();
}

/// Disk reserved ahead of the writes grows with the data, so many small partitions
/// do not each pin a whole `log.segment.bytes` (1 GiB by default) of disk.
#[tokio::test(flavor = "multi_thread")]
async fn small_partitions_reserve_little_disk() {
    use std::os::unix::fs::MetadataExt;
    let mut b = Broker::start(&[]);
    let topic = topic_name("small");
    create_topic(&b.bootstrap(), &topic, 20).await;
    let p: FutureProducer = producer_config(&b.bootstrap()).create().expect("producer");
    for part in 0..20 {
        let f = p.send_result(FutureRecord::to(&topic).partition(part).key("k").payload("v")).expect("enqueue");
        tokio::time::timeout(WAIT, f).await.expect("in time").expect("not canceled").expect("delivered");
    }
    let mut allocated = 0u64;
    for part in 0..20 {
        for l in segment_files(&b.log_dir().join(format!("{topic}-{part}")), "log") {
            allocated += fs::metadata(&l).unwrap().blocks() * 512;
        }
    }
    assert!(allocated <= 20 * 1024 * 1024, "20 one-record partitions hold {allocated} bytes of disk");
    b.stop();
}

/// SIGKILL while a producer keeps the active segment's partial last block
/// being rewritten (small batches with acks=1, each DMA write starting at the
/// block's start again): after each restart every acknowledged record is
/// there with its value, and the segment file holds whole batches only — no
/// garbage and no padding past the last batch.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_while_partial_blocks_are_rewritten_loses_no_acknowledged_record() {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    let mut b = Broker::start(&[]);
    let topic = topic_name("dma-kill");
    create_topic(&b.bootstrap(), &topic, 1).await;
    let pdir = b.log_dir().join(format!("{topic}-0"));
    let mut acked: BTreeMap<i64, String> = BTreeMap::new();
    let mut sent = 0usize;
    for round in 0..3 {
        let p: FutureProducer = producer_config(&b.bootstrap())
            .set("acks", "1")
            .set("linger.ms", "0")
            .set("batch.size", "1500")
            .set("message.timeout.ms", "3000")
            .set("retries", "0")
            .create()
            .expect("producer");
        let got: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = {
            let (got, stop, topic) = (got.clone(), stop.clone(), topic.clone());
            tokio::spawn(async move {
                let mut i = sent;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Five records in flight at a time, ~300 bytes each: writes of a few hundred bytes.
                    let mut futs = Vec::new();
                    for _ in 0..5 {
                        let v = format!("r{i}-{}", "y".repeat(290));
                        i += 1;
                        match p.send_result(FutureRecord::<(), _>::to(&topic).partition(0).payload(&v)) {
                            Ok(f) => futs.push((f, v)),
                            Err(_) => break,
                        }
                    }
                    for (f, v) in futs {
                        if let Ok(Ok(d)) = f.await {
                            got.lock().unwrap().push((d.offset, v));
                        }
                    }
                }
                i
            })
        };
        tokio::time::sleep(Duration::from_millis(1200 + 400 * round)).await;
        b.kill9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sent = task.await.expect("producer task");
        let got = std::mem::take(&mut *got.lock().unwrap());
        assert!(!got.is_empty(), "round {round}: records were acknowledged before the kill");
        acked.extend(got);

        b.restart();
        // Recovery cut the padding (and anything torn): the file is whole batches.
        let log = segment_files(&pdir, "log").pop().expect("active segment");
        let raw = fs::read(&log).unwrap();
        assert_eq!(data_len(&raw).0, raw.len(), "round {round}: only whole batches remain in {}", log.display());
        let last = *acked.keys().next_back().unwrap();
        let recs = consume_all(&b.bootstrap(), &topic, 1, last as usize + 1, WAIT);
        let stored: BTreeMap<i64, Vec<u8>> = recs.into_iter().map(|r| (r.offset, r.value.unwrap_or_default())).collect();
        for (off, v) in &acked {
            assert_eq!(stored.get(off).map(|s| s.as_slice()), Some(v.as_bytes()), "round {round}: acknowledged offset {off}");
        }
        eprintln!("round {round}: {} acknowledged records intact, {} stored", acked.len(), stored.len());
    }
    b.stop();
}
