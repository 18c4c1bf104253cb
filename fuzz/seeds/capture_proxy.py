#!/usr/bin/env python3
"""A TCP proxy that records every request frame clients send to a broker.

Used to seed the fuzz corpora from real clients (see fuzz/README.md): the
broker advertises the proxy's address, so every connection a client makes
(bootstrap and after Metadata) goes through here. Each client->broker frame
is saved without its 4-byte size prefix -- the bytes the router decodes -- as
OUT/<api key>-v<version>-<sha1 prefix>, so identical frames are stored once.
Bytes are forwarded unchanged in both directions.

usage: capture_proxy.py --listen PORT --upstream HOST:PORT --out DIR
"""
import argparse
import asyncio
import hashlib
import os
import struct


def save(out, frame):
    if len(frame) < 4:
        return
    api, ver = struct.unpack(">hh", frame[:4])
    name = "%02d-v%d-%s" % (api, ver, hashlib.sha1(frame).hexdigest()[:16])
    path = os.path.join(out, name)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(frame)


async def pump(reader, writer, out=None):
    buf = b""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
            if out is None:
                continue
            buf += data
            while len(buf) >= 4:
                (size,) = struct.unpack(">i", buf[:4])
                if size < 0 or len(buf) < 4 + size:
                    break
                save(out, buf[4:4 + size])
                buf = buf[4 + size:]
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    host, port = a.upstream.rsplit(":", 1)

    async def handle(cr, cw):
        try:
            br, bw = await asyncio.open_connection(host, int(port))
        except OSError:
            cw.close()
            return
        await asyncio.gather(pump(cr, bw, a.out), pump(br, cw))

    server = await asyncio.start_server(handle, "127.0.0.1", a.listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
