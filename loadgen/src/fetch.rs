//! Fetch response decoding of loadgen's own: the few fields the consumer
//! reads, every tagged field skipped.
//!
//! Why not `kafka_protocol::messages::FetchResponse::decode`: its decoder
//! rejects tagged fields that are *known* to the schema but defined only
//! from a later version. Tansu 0.6.0 answers Fetch v12 with the top-level
//! tag 0 (NodeEndpoints, defined from v16), so every fetch failed with `Tag 0
//! is not valid for version 12`. The protocol says unknown tags are to be
//! skipped (that is what tagged fields are for, and librdkafka and the Java
//! client do so), so a decoder that skips every tag is the correct one. The
//! alternatives were worse: stripping the tag from the frame first means
//! parsing the whole frame anyway (the top-level tags come last, after all
//! the records) and then copying it; forcing Fetch v11 (no tagged fields)
//! would change what is measured against every broker to dodge one peer's
//! quirk; forking kafka-protocol is a maintenance burden for one `match`.
//!
//! Why it costs nothing on the hot path: the consumer needs per partition
//! only the error code and the records (it scans batch headers itself, see
//! `batch::batches`); the records come back as a `Bytes` slice of the
//! response frame (no copy), and nothing else is allocated but one `Vec`
//! per topic, where kafka-protocol builds a struct with a map of tagged
//! fields per partition and per aborted transaction and validates topic
//! names as UTF-8.
//!
//! Versions 4..=12 (`wire::FETCH`): v4-v11 are non-flexible (i16/i32
//! lengths), v12 is flexible (compact lengths, tagged fields everywhere, and
//! response header v1 with its own tagged fields). v13+ name topics by id
//! and are not spoken. Every read is bounds-checked: a malformed frame is an
//! error, never a panic or an oversized allocation.

use anyhow::{bail, Result};
use bytes::{Buf, Bytes};

/// First Fetch version with flexible encoding (compact lengths, tagged fields).
const FLEXIBLE_FROM: i16 = 12;

/// One partition of a Fetch response, as far as the consumer reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedPartition {
    pub partition: i32,
    pub error_code: i16,
    /// The record batches, a slice of the response frame; None when null.
    pub records: Option<Bytes>,
}

/// One topic of a Fetch response.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedTopic {
    pub name: Bytes,
    pub partitions: Vec<FetchedPartition>,
}

/// A decoded Fetch response (header included).
#[derive(Debug, Clone, PartialEq)]
pub struct FetchResp {
    pub correlation_id: i32,
    /// Top-level error (v7+; 0 before).
    pub error_code: i16,
    pub topics: Vec<FetchedTopic>,
}

/// Bounds-checked reads over a frame; every read fails cleanly at the end.
struct Rd {
    buf: Bytes,
    flexible: bool,
}

impl Rd {
    fn need(&self, n: usize, what: &str) -> Result<()> {
        if self.buf.remaining() < n {
            bail!("fetch response truncated reading {what} ({} bytes left, {n} needed)", self.buf.remaining());
        }
        Ok(())
    }
    fn i16(&mut self, what: &str) -> Result<i16> {
        self.need(2, what)?;
        Ok(self.buf.get_i16())
    }
    fn i32(&mut self, what: &str) -> Result<i32> {
        self.need(4, what)?;
        Ok(self.buf.get_i32())
    }
    fn skip(&mut self, n: usize, what: &str) -> Result<()> {
        self.need(n, what)?;
        self.buf.advance(n);
        Ok(())
    }
    fn uvarint(&mut self, what: &str) -> Result<u32> {
        let mut v: u32 = 0;
        for i in 0..5 {
            self.need(1, what)?;
            let b = self.buf.get_u8();
            if i == 4 && b > 0x0f {
                bail!("fetch response: varint too long in {what}");
            }
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("fetch response: varint too long in {what}")
    }
    /// An array length; None for a null array. Compact arrays carry N+1.
    fn array_len(&mut self, what: &str) -> Result<Option<usize>> {
        if self.flexible {
            Ok(match self.uvarint(what)? {
                0 => None,
                n => Some(n as usize - 1),
            })
        } else {
            let n = self.i32(what)?;
            if n < -1 {
                bail!("fetch response: bad length {n} for {what}");
            }
            Ok(usize::try_from(n).ok())
        }
    }
    /// A (nullable) bytes field, sliced out of the frame without copying.
    fn bytes(&mut self, what: &str) -> Result<Option<Bytes>> {
        let Some(n) = self.array_len(what)? else { return Ok(None) };
        self.need(n, what)?;
        Ok(Some(self.buf.split_to(n)))
    }
    /// A non-null string, as raw bytes.
    fn string(&mut self, what: &str) -> Result<Bytes> {
        let n = if self.flexible {
            match self.uvarint(what)? {
                0 => bail!("fetch response: null {what}"),
                n => n as usize - 1,
            }
        } else {
            let n = self.i16(what)?;
            usize::try_from(n).map_err(|_| anyhow::anyhow!("fetch response: bad length {n} for {what}"))?
        };
        self.need(n, what)?;
        Ok(self.buf.split_to(n))
    }
    /// A tagged-field section (flexible versions only): every tag is
    /// skipped, known or not.
    fn tagged_fields(&mut self, what: &str) -> Result<()> {
        if !self.flexible {
            return Ok(());
        }
        let n = self.uvarint(what)?;
        for _ in 0..n {
            let _tag = self.uvarint(what)?;
            let size = self.uvarint(what)? as usize;
            self.skip(size, what)?;
        }
        Ok(())
    }
    /// Capacity for `n` elements of at least `min_size` bytes each, capped by
    /// what the frame can hold (a corrupt count must not allocate gigabytes).
    fn cap(&self, n: usize, min_size: usize) -> usize {
        n.min(self.buf.remaining() / min_size.max(1))
    }
}

/// Decodes a Fetch response frame (without its size prefix) of `version`.
pub fn decode(frame: Bytes, version: i16) -> Result<FetchResp> {
    if !(4..=FLEXIBLE_FROM).contains(&version) {
        bail!("fetch response v{version}: loadgen decodes v4..=v{FLEXIBLE_FROM}");
    }
    let mut r = Rd { buf: frame, flexible: version >= FLEXIBLE_FROM };
    let correlation_id = r.i32("correlation id")?;
    r.tagged_fields("response header")?;
    r.skip(4, "throttle_time_ms")?;
    let error_code = if version >= 7 {
        let e = r.i16("error_code")?;
        r.skip(4, "session_id")?;
        e
    } else {
        0
    };
    let n_topics = r.array_len("responses")?.unwrap_or(0);
    let mut topics = Vec::with_capacity(r.cap(n_topics, 4));
    for _ in 0..n_topics {
        let name = r.string("topic")?;
        let n_parts = r.array_len("partitions")?.unwrap_or(0);
        // partition_index + error_code + high_watermark + last_stable_offset
        let mut partitions = Vec::with_capacity(r.cap(n_parts, 22));
        for _ in 0..n_parts {
            let partition = r.i32("partition_index")?;
            let error_code = r.i16("partition error_code")?;
            r.skip(8 + 8, "high_watermark, last_stable_offset")?;
            if version >= 5 {
                r.skip(8, "log_start_offset")?;
            }
            if let Some(n) = r.array_len("aborted_transactions")? {
                for _ in 0..n {
                    r.skip(8 + 8, "aborted transaction")?;
                    r.tagged_fields("aborted transaction")?;
                }
            }
            if version >= 11 {
                r.skip(4, "preferred_read_replica")?;
            }
            let records = r.bytes("records")?;
            r.tagged_fields("partition")?;
            partitions.push(FetchedPartition { partition, error_code, records });
        }
        r.tagged_fields("topic")?;
        topics.push(FetchedTopic { name, partitions });
    }
    r.tagged_fields("response")?;
    Ok(FetchResp { correlation_id, error_code, topics })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};

    fn frame(resp: &FetchResponse, version: i16, corr: i32) -> Bytes {
        let mut buf = Vec::new();
        ResponseHeader::default().with_correlation_id(corr).encode(&mut buf, FetchResponse::header_version(version)).expect("header");
        resp.encode(&mut buf, version).expect("body");
        Bytes::from(buf)
    }

    fn sample(version: i16) -> FetchResponse {
        let batches = Bytes::from_static(b"not really batches, just bytes");
        let part = |p: i32, err: i16, records: Option<Bytes>| {
            let mut pd = PartitionData::default().with_partition_index(p).with_error_code(err).with_high_watermark(1000 + p as i64).with_records(records);
            pd = pd.with_aborted_transactions(Some(vec![AbortedTransaction::default().with_producer_id(7.into()).with_first_offset(3)]));
            if version >= 5 {
                pd = pd.with_log_start_offset(5);
            }
            if version >= 11 {
                pd = pd.with_preferred_read_replica(2.into());
            }
            pd
        };
        let mut r = FetchResponse::default().with_throttle_time_ms(9).with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t1")))
                .with_partitions(vec![part(0, 0, Some(batches.clone())), part(1, 1, None)]),
            FetchableTopicResponse::default().with_topic(TopicName(StrBytes::from_static_str("other"))).with_partitions(vec![part(4, 0, Some(Bytes::new()))]),
        ]);
        if version >= 7 {
            r = r.with_error_code(0).with_session_id(0);
        }
        r
    }

    #[test]
    fn decodes_what_kafka_protocol_encodes_at_every_version() {
        for v in crate::wire::FETCH.0..=crate::wire::FETCH.1 {
            let r = decode(frame(&sample(v), v, 42 + v as i32), v).unwrap_or_else(|e| panic!("v{v}: {e:#}"));
            assert_eq!(r.correlation_id, 42 + v as i32, "v{v}");
            assert_eq!(r.error_code, 0);
            assert_eq!(r.topics.len(), 2, "v{v}");
            assert_eq!(&r.topics[0].name[..], b"t1");
            assert_eq!(&r.topics[1].name[..], b"other");
            let p = &r.topics[0].partitions;
            assert_eq!(p.len(), 2);
            assert_eq!((p[0].partition, p[0].error_code), (0, 0));
            assert_eq!(p[0].records.as_deref(), Some(&b"not really batches, just bytes"[..]), "v{v}");
            assert_eq!((p[1].partition, p[1].error_code, p[1].records.is_none()), (1, 1, true));
            assert_eq!(r.topics[1].partitions[0].records.as_deref(), Some(&b""[..]));
        }
    }

    #[test]
    fn records_are_a_slice_of_the_frame() {
        let f = frame(&sample(12), 12, 1);
        let range = f.as_ptr_range();
        let r = decode(f.clone(), 12).expect("decode");
        let rec = r.topics[0].partitions[0].records.clone().expect("records");
        assert!(range.contains(&rec.as_ptr()), "records were copied");
    }

    /// Tansu 0.6.0's answer to Fetch v12: a top-level tag 0 (NodeEndpoints,
    /// defined only from v16), which kafka-protocol 0.18 refuses. Hand-built
    /// bytes, so the test does not depend on any encoder.
    #[test]
    fn v12_with_unknown_top_level_tag_decodes() {
        let records = b"RECORDS!";
        let mut f: Vec<u8> = Vec::new();
        f.extend_from_slice(&7i32.to_be_bytes()); // correlation id
        f.push(0); // response header tagged fields: none
        f.extend_from_slice(&0i32.to_be_bytes()); // throttle_time_ms
        f.extend_from_slice(&0i16.to_be_bytes()); // error_code
        f.extend_from_slice(&0i32.to_be_bytes()); // session_id
        f.push(2); // responses: compact array of 1
        f.push(3); // topic: compact string "lg"
        f.extend_from_slice(b"lg");
        f.push(2); // partitions: 1
        f.extend_from_slice(&3i32.to_be_bytes()); // partition_index
        f.extend_from_slice(&0i16.to_be_bytes()); // error_code
        f.extend_from_slice(&100i64.to_be_bytes()); // high_watermark
        f.extend_from_slice(&100i64.to_be_bytes()); // last_stable_offset
        f.extend_from_slice(&0i64.to_be_bytes()); // log_start_offset
        f.push(0); // aborted_transactions: null
        f.extend_from_slice(&(-1i32).to_be_bytes()); // preferred_read_replica
        f.push(records.len() as u8 + 1); // records: compact bytes
        f.extend_from_slice(records);
        f.extend_from_slice(&[1, 5, 3, 0xaa, 0xbb, 0xcc]); // partition tags: an unknown tag 5, 3 bytes
        f.push(0); // topic tagged fields: none
                   // Top-level tagged fields: tag 0 (NodeEndpoints: one node, id 1,
                   // host "h", port 9092, rack null, no tags), and an unknown tag 99.
        let node: &[u8] = &[2, 0, 0, 0, 1, 2, b'h', 0, 0, 0x23, 0x84, 0, 0];
        f.push(2);
        f.push(0);
        f.push(node.len() as u8);
        f.extend_from_slice(node);
        f.extend_from_slice(&[99, 1, 0xff]);

        let frame = Bytes::from(f);
        // The failure this module exists for (if kafka-protocol ever accepts
        // the frame, its decoder could be used again).
        let theirs = crate::wire::decode_response::<kafka_protocol::messages::FetchRequest>(frame.clone(), 12).map(|_| ());
        let err = format!("{:#}", theirs.expect_err("kafka-protocol 0.18 rejects tag 0 at v12"));
        assert!(err.contains("Tag 0 is not valid for version 12"), "{err}");
        let r = decode(frame, 12).expect("decode");
        assert_eq!(r.correlation_id, 7);
        assert_eq!(r.topics.len(), 1);
        assert_eq!(&r.topics[0].name[..], b"lg");
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.partition, p.error_code), (3, 0));
        assert_eq!(p.records.as_deref(), Some(&records[..]));
    }

    #[test]
    fn truncated_or_corrupt_frames_are_errors() {
        let f = frame(&sample(12), 12, 1);
        for cut in [0, 3, 5, 20, f.len() / 2, f.len() - 1] {
            assert!(decode(f.slice(..cut), 12).is_err(), "cut at {cut}");
        }
        let f = frame(&sample(11), 11, 1);
        for cut in [0, 10, f.len() - 1] {
            assert!(decode(f.slice(..cut), 11).is_err(), "v11 cut at {cut}");
        }
        // A huge partition count must fail on the data, not allocate for it.
        let mut v = frame(&FetchResponse::default().with_error_code(0).with_session_id(0), 11, 1).to_vec();
        let at = v.len() - 4;
        v[at..].copy_from_slice(&1i32.to_be_bytes()); // one topic ...
        v.extend_from_slice(&[0, 1, b't']);
        v.extend_from_slice(&i32::MAX.to_be_bytes()); // ... claiming 2^31 partitions
        assert!(decode(Bytes::from(v), 11).is_err());
        assert!(decode(Bytes::from_static(&[0, 0, 0, 1]), 13).is_err());
    }
}
