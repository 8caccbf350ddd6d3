#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tools/tls_idle_rss.py PID PORT N CAFILE - memory per idle TLS connection.

Reads the server's VmRSS (/proc/PID/status), opens N TLS connections to
127.0.0.1:PORT (each completes its handshake and one echo-less idle wait),
lets them sit idle for a second, reads VmRSS again and prints the
difference per connection.  Loopback only; the connections are closed at
the end.  Needs RLIMIT_NOFILE above N (the script raises its soft limit)."""
import resource
import socket
import ssl
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    pid, port, n, ca = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    before = rss_kib(pid)
    conns = []
    t0 = time.monotonic()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        conns.append(ctx.wrap_socket(s, server_hostname="localhost"))
    took = time.monotonic() - t0
    time.sleep(1.0)
    after = rss_kib(pid)
    print(f"{n} idle TLS connections in {took:.1f} s: server RSS {before} KiB -> {after} KiB, "
          f"{(after - before) * 1024 / n:.0f} bytes per connection "
          f"({conns[0].version()}, {conns[0].cipher()[0]})")
    for c in conns:
        c.close()


if __name__ == "__main__":
    main()
