"""What a /predict flood costs a paced stream loop in the same process, with and without the
guard's concurrency limit (issue 18).

The process runs a stream stand-in (``--rate`` events/s, each ``--event-us`` of pure-Python
work, the worker's per-event order of magnitude) on the main thread, and a stdlib
``ThreadingHTTPServer`` guarded by ``sentinel.http_guard`` whose ``/predict`` costs
``--predict-ms`` of pure-Python work; a separate process (``bench/http_flood.py``) floods it.
Reported per configuration: the stream's achieved rate, its lateness p50/p99 (completion minus
schedule) and the flood's answers by status. Run::

    .venv/bin/python bench/bench_http_guard.py --seconds 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from sentinel.http_guard import HttpGuard

HERE = Path(__file__).resolve().parent
TOKEN = "bench-token-0123456789"  # noqa: S105 - a throwaway token of the bench


def _work(us: float) -> None:
    end = time.perf_counter() + us / 1e6
    x = 0
    while time.perf_counter() < end:
        x += 1


def serve(guard: HttpGuard, predict_ms: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            rejection = guard.check(self.command, self.path, self.headers)
            if rejection is None:
                with guard.slot() as full:
                    rejection = full
                    if full is None:
                        self.rfile.read(int(self.headers.get("Content-Length") or 0))
                        _work(predict_ms * 1000)
                        body = b'{"score": 0.5}'
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
            body = rejection.body()
            self.send_response(rejection.status)
            for name, value in rejection.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stream(rate: float, seconds: float, event_us: float) -> dict[str, float]:
    interval, start = 1.0 / rate, time.perf_counter()
    late: list[float] = []
    i = 0
    while (now := time.perf_counter()) - start < seconds:
        due = int((now - start) / interval)
        while i <= due:
            _work(event_us)
            late.append(time.perf_counter() - (start + i * interval))
            i += 1
        time.sleep(max(0.0, start + i * interval - time.perf_counter()))
    lat = np.array(late) * 1000
    return {"events_per_s": round(i / (time.perf_counter() - start), 1),
            "late_p50_ms": round(float(np.percentile(lat, 50)), 2),
            "late_p99_ms": round(float(np.percentile(lat, 99)), 2)}


def run(label: str, args: argparse.Namespace, max_concurrent: int | None) -> dict[str, object]:
    out: dict[str, object] = {"config": label}
    if max_concurrent is None:
        out.update(stream(args.rate, args.seconds, args.event_us))
        return out
    guard = HttpGuard([TOKEN], max_concurrent=max_concurrent)
    server = serve(guard, args.predict_ms)
    url = f"http://127.0.0.1:{server.server_address[1]}/predict"
    flood = subprocess.Popen(
        [sys.executable, str(HERE / "http_flood.py"), url, "--threads", str(args.threads),
         "--seconds", str(args.seconds + 1), "--token", TOKEN], stdout=subprocess.PIPE)
    time.sleep(0.5)
    out.update(stream(args.rate, args.seconds, args.event_us))
    answers, _ = flood.communicate(timeout=args.seconds + 60)
    server.shutdown()
    server.server_close()
    out["flood"] = json.loads(answers)["answers"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--event-us", type=float, default=100.0)
    ap.add_argument("--predict-ms", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    configs: list[tuple[str, int | None]] = [("no flood", None)]
    configs += [(f"flood, max_concurrent={n}", n) for n in (1, 2, 4)]
    configs += [("flood, max_concurrent=1000 (no limit)", 1000)]
    for label, limit in configs:
        print(json.dumps(run(label, args, limit)), flush=True)


if __name__ == "__main__":
    main()
