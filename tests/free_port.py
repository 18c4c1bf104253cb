#!/usr/bin/env python3
"""Prints N (default 1) distinct TCP ports on 127.0.0.1 that bind now, one per
line, taken below the kernel's ephemeral range.

The test scripts pick a port here and a broker or worker binds it a moment
later. A port from the ephemeral range may be handed out meanwhile to any
socket bound to port 0 or to a connection's source port, and the bind then
fails with "address in use" (CI saw a cluster broker exit at start so). Below
the range the kernel hands out no port by itself. The Rust harness's
`free_ports` (tests/common/cluster.rs) follows the same rule.
"""
import random
import socket
import sys

LOWEST = 10_000


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    top = ephemeral_low()
    held = []
    for port in random.sample(range(LOWEST, top), top - LOWEST):
        if len(held) == n:
            break
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        held.append(s)
    if len(held) < n:
        sys.exit(f"free_port.py: fewer than {n} free ports in {LOWEST}..{top}")
    for s in held:
        print(s.getsockname()[1])
        s.close()


if __name__ == "__main__":
    main()
