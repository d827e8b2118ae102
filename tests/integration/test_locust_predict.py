"""bench/locustfile.py runs headless against a /predict endpoint with zero failures.

Until the worker can be started in tests, the target is a small real HTTP server in this test
that validates bodies the way /predict does (422 on bad input) and scores them.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "bench" / "locustfile.py"
CARD = re.compile(r"^c\d{5}$")
TERMINAL = re.compile(r"^t\d{5}$")


class _PredictStub(BaseHTTPRequestHandler):
    seen: list[dict[str, object]]
    rejected: list[bytes]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            payload = json.loads(body)
            ok = (self.path == "/predict" and isinstance(payload.get("id"), int)
                  and isinstance(payload.get("amount"), int | float) and payload["amount"] >= 0
                  and CARD.match(payload.get("card_id", ""))
                  and TERMINAL.match(payload.get("terminal_id", "")))
        except (ValueError, AttributeError):
            ok = False
        if not ok:
            self.rejected.append(body)
            self._reply(422, {"detail": "invalid transaction"})
            return
        self.seen.append(payload)
        score = min(payload["amount"] / 10_000, 1.0)
        self._reply(200, {"id": payload["id"], "score": score,
                          "decision": "decline" if score > 0.5 else "approve",
                          "model_version": "stub", "shadow": None})

    def _reply(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def predict_stub() -> Iterator[tuple[str, list[dict[str, object]]]]:
    seen: list[dict[str, object]] = []
    handler = type("Handler", (_PredictStub,), {"seen": seen, "rejected": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _run_locust(host: str, csv_prefix: Path, seconds: int = 4) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
         "-u", "4", "-r", "4", "-t", f"{seconds}s", "--only-summary", "--csv", str(csv_prefix),
         "--seed", "7", "--cards", "500", "--terminals", "1000", "--loglevel", "WARNING"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    with Path(f"{csv_prefix}_stats.csv").open() as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    return rows["Aggregated"]


def test_locust_drives_predict_with_zero_failures(
    predict_stub: tuple[str, list[dict[str, object]]], tmp_path: Path
) -> None:
    host, seen = predict_stub
    stats = _run_locust(host, tmp_path / "run")
    requests, failures = int(stats["Request Count"]), int(stats["Failure Count"])
    assert requests > 50
    assert failures == 0
    # every request the stub received was a valid /predict body (locust's CSV may miss the
    # last requests before the stop, so the stub can have seen more than it counts)
    assert all(isinstance(body, dict) for body in seen)
    assert len(seen) >= requests
    assert len({body["card_id"] for body in seen}) > 20  # spread over the known cards
    assert len({body["id"] for body in seen}) == len(seen)  # ids never repeat


def test_the_request_generator_is_seeded() -> None:
    # In a subprocess: importing locust monkey-patches the interpreter (gevent).
    code = ("import json, random, sys; sys.path.insert(0, 'bench'); "
            "from locustfile import transaction; "
            "print(json.dumps([transaction(random.Random('7-0'), i, 500, 1000) "
            "for i in range(5)]))")
    runs = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, check=True).stdout for _ in range(2)]
    first = json.loads(runs[0])
    assert runs[0] == runs[1]
    assert all(CARD.match(t["card_id"]) and TERMINAL.match(t["terminal_id"]) for t in first)
    assert all(t["amount"] >= 0 for t in first)
