"""A flood of HTTP requests against a worker, for measuring what it costs the stream.

``Flood(url, threads).start()`` keeps ``threads`` connections busy with ``POST /predict`` (each
request sent as soon as the previous answer arrived) until ``stop()``; ``counts`` tallies the
answers by status (``"error"`` for a refused or broken connection). bench_worker.py runs one
during its paced phase (``--flood N``). Alone::

    python bench/http_flood.py http://127.0.0.1:6066/predict --threads 32 --seconds 10
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

BODY = json.dumps({"id": "c00001", "amount": 42.0}).encode()


class Flood:
    """``threads`` clients requesting as fast as the server answers."""

    def __init__(self, url: str, threads: int, token: str | None = None) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                conn.request("POST", self.path, body=BODY, headers=self.headers)
                response = conn.getresponse()
                response.read()
                status = str(response.status)
            except OSError:
                status = "error"
            finally:
                conn.close()
            with self._lock:
                self.counts[status] += 1

    def start(self) -> Flood:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> dict[str, int]:
        self._stop.set()
        for t in self._threads:
            t.join(15)
        return dict(self.counts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url")
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--token", default=None)
    args = ap.parse_args()
    flood = Flood(args.url, args.threads, args.token).start()
    time.sleep(args.seconds)
    counts = flood.stop()
    print(json.dumps({"seconds": args.seconds, "threads": args.threads, "answers": counts,
                      "per_s": round(sum(counts.values()) / args.seconds, 1)}))


if __name__ == "__main__":
    main()
