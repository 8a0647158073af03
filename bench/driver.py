"""A load driver process for `make bench` where wrk is not installed: C connections (threads), each
sending GET URL in a loop for D seconds with the given headers; prints one JSON line.

    python bench/driver.py URL --seconds 10 --connections 4 [--header 'Cookie: ...']
"""
from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from urllib.parse import urlsplit


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    parts = urlsplit(args.url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback only")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = dict(h.split(": ", 1) for h in args.header)
    latencies, bad, errors = [], [0], [0]
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def worker():
        conn = None
        mine, my_bad, my_err = [], 0, 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                my_err += 1
                conn = None
                continue
            mine.append(time.perf_counter() - started)
            if resp.status != 200:
                my_bad += 1
        with lock:
            latencies.extend(mine)
            bad[0] += my_bad
            errors[0] += my_err

    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else float("nan")

    print(json.dumps({"requests": len(latencies), "rps": len(latencies) / elapsed, "p50": pct(50),
                      "p99": pct(99), "non_200": bad[0], "errors": errors[0]}))


if __name__ == "__main__":
    main()
