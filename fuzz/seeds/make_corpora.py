#!/usr/bin/env python3
"""Builds fuzz/corpus/<target>/ from captured client traffic and a broker's
data directory (see fuzz/README.md for the whole procedure).

  request_decode  request frames as capture_proxy.py saved them, up to
                  PER_KEY of the smallest per (API key, version), plus a
                  hand-encoded frame for each advertised API no client sent
                  (SYNTHETIC below; none of the clients used speaks them).
  record_batch    the `records` of every partition of the captured Produce
                  requests (v3-v9), and the control batches (transaction
                  markers) found in the data directories, up to PER_KEY of the
                  smallest per (codec, transactional, control).
  log_recovery    segments of the data directories whose .log fits a
                  section (< 64 KiB), with their .index, .timeindex,
                  .txnindex and the partition's newest .snapshot, in the
                  layout fuzz_targets/log_recovery.rs reads, CRC check on.

usage: make_corpora.py --frames DIR... --data DIR... --out fuzz/corpus
"""
import argparse
import glob
import hashlib
import os
import struct

PER_KEY = 6
MAX_LEN = 65536


def put(out_dir, data):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


class Reader:
    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        if n < 0 or self.i + n > len(self.b):
            raise ValueError("short")
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def uvarint(self):
        shift = v = 0
        while True:
            c = self.take(1)[0]
            v |= (c & 0x7F) << shift
            if c < 0x80:
                return v
            shift += 7

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def produce_records(frame):
    """The records fields of a Produce request (v3-v9)."""
    r = Reader(frame)
    api, ver = r.i16(), r.i16()
    if api != 0 or not 3 <= ver <= 9:
        return []
    flex = ver >= 9
    r.i32()  # correlation id
    n = r.i16()  # client id (nullable string, also in header v2)
    r.take(max(n, 0))
    if flex:
        r.tags()
        n = r.uvarint() - 1  # transactional id
    else:
        n = r.i16()
    r.take(max(n, 0))
    r.i16()  # acks
    r.i32()  # timeout
    out = []
    topics = r.uvarint() - 1 if flex else r.i32()
    for _ in range(topics):
        n = r.uvarint() - 1 if flex else r.i16()
        r.take(n)
        parts = r.uvarint() - 1 if flex else r.i32()
        for _ in range(parts):
            r.i32()
            n = r.uvarint() - 1 if flex else r.i32()
            if n >= 0:
                out.append(r.take(n))
            if flex:
                r.tags()
        if flex:
            r.tags()
    return out


def batch_key(records):
    attrs = struct.unpack(">h", records[21:23])[0] if len(records) >= 23 else 0
    return (attrs & 7, bool(attrs & 0x10), bool(attrs & 0x20))


def batches(log):
    pos = 0
    while pos + 61 <= len(log):
        (length,) = struct.unpack(">i", log[pos + 8:pos + 12])
        end = pos + 12 + length
        if length < 49 or end > len(log):
            return
        yield log[pos:end]
        pos = end


def header(api, ver, flex):
    # api key, version, correlation id, client id "seed"; tagged fields in header v2
    h = struct.pack(">hhih", api, ver, 1, 4) + b"seed"
    return h + (b"\x00" if flex else b"")


def cstr(s):
    return bytes([len(s) + 1]) + s


# Advertised APIs none of the clients in more_clients.sh or tests/compat sent,
# encoded by hand (every one of these versions is flexible: tagged fields end
# each struct).
SYNTHETIC = [
    # OffsetForLeaderEpoch v4: replica id, topics [name, partitions [partition, current epoch, leader epoch]]
    header(23, 4, True) + struct.pack(">i", -1) + b"\x02" + cstr(b"t") + b"\x02"
    + struct.pack(">iii", 0, -1, 0) + b"\x00" + b"\x00" + b"\x00",
    # OffsetForLeaderEpoch v2 (not flexible): topics [name, partitions [partition, current epoch, leader epoch]]
    struct.pack(">hhih", 23, 2, 1, 4) + b"seed" + struct.pack(">i", 1) + struct.pack(">h", 1) + b"t"
    + struct.pack(">i", 1) + struct.pack(">iii", 0, -1, 0),
    # DescribeLogDirs v4: topics null (all)
    header(35, 4, True) + b"\x00" + b"\x00",
    # DescribeLogDirs v1 (not flexible): topics [name, partitions [i32]]
    struct.pack(">hhih", 35, 1, 1, 4) + b"seed" + struct.pack(">i", 1) + struct.pack(">h", 1) + b"t"
    + struct.pack(">ii", 1, 0),
    # DescribeCluster v1: include authorized operations, endpoint type 1 (brokers)
    header(60, 1, True) + b"\x00" + b"\x01" + b"\x00",
    # DescribeCluster v2: + include fenced brokers
    header(60, 2, True) + b"\x00" + b"\x01" + b"\x00" + b"\x00",
    # DescribeProducers v0: topics [name, partition indexes]
    header(61, 0, True) + b"\x02" + cstr(b"t") + b"\x02" + struct.pack(">i", 0) + b"\x00" + b"\x00",
    # DescribeTransactions v0: transactional ids
    header(65, 0, True) + b"\x02" + cstr(b"tx") + b"\x00",
    # ListTransactions v0: state filters, producer id filters
    header(66, 0, True) + b"\x01" + b"\x01" + b"\x00",
    # ListTransactions v1: + duration filter
    header(66, 1, True) + b"\x02" + cstr(b"Ongoing") + b"\x02" + struct.pack(">q", 7) + struct.pack(">q", -1) + b"\x00",
]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--frames", nargs="+", required=True)
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    frames = {}
    for d in a.frames:
        for path in glob.glob(os.path.join(d, "*")):
            data = open(path, "rb").read()
            if 8 <= len(data) <= MAX_LEN:
                frames.setdefault(struct.unpack(">hh", data[:4]), []).append(data)
    for (api, ver), fs in sorted(frames.items()):
        for data in sorted(fs, key=len)[:PER_KEY]:
            put(os.path.join(a.out, "request_decode"), data)
    for data in SYNTHETIC:
        put(os.path.join(a.out, "request_decode"), data)

    records = {}
    for fs in frames.values():
        for data in fs:
            try:
                for rec in produce_records(data):
                    records.setdefault(batch_key(rec), set()).add(rec)
            except ValueError:
                pass
    logs = sorted(glob.glob(os.path.join(d, "*", "*.log")) for d in a.data)
    logs = [path for group in logs for path in sorted(group)]
    for path in logs:
        for b in batches(open(path, "rb").read()):
            if batch_key(b)[2]:
                records.setdefault(batch_key(b), set()).add(b)
    for key, recs in sorted(records.items()):
        for rec in sorted(recs, key=len)[:PER_KEY]:
            if len(rec) <= MAX_LEN:
                put(os.path.join(a.out, "record_batch"), rec)

    def section(tag, data):
        return struct.pack(">BH", tag, len(data)) + data

    def read(path):
        return open(path, "rb").read() if os.path.exists(path) else None

    for path in logs:
        log = read(path)
        if not log or len(log) >= 65536:
            continue
        stem = path[:-len(".log")]
        parts = [bytes([1]), section(0, log)]
        for tag, ext in ((1, ".index"), (2, ".timeindex"), (3, ".txnindex")):
            data = read(stem + ext)
            if data is not None and len(data) < 65536:
                parts.append(section(tag, data))
        snaps = sorted(glob.glob(os.path.join(os.path.dirname(path), "*.snapshot")))
        if snaps:
            data = read(snaps[-1])
            if len(data) < 65536:
                parts.append(section(4, data))
        put(os.path.join(a.out, "log_recovery"), b"".join(parts))


if __name__ == "__main__":
    main()
