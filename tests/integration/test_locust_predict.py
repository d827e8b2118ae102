"""bench/locustfile.py: its request generator is seeded and speaks the /predict contract.

The headless run against the real worker's /predict (zero failures) is in
``test_worker_ops.py``, which shares one worker process between the ops tests; ``run_locust``
here is the runner it uses.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "bench" / "locustfile.py"
CARD = re.compile(r"^c\d{5}$")
TERMINAL = re.compile(r"^t\d{5}$")


def run_locust(host: str, csv_prefix: Path, seconds: int = 4, users: int = 4,
               ) -> dict[str, str]:
    """Run the locustfile headless against ``host``; the aggregated row of its CSV stats."""
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
         "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--only-summary",
         "--csv", str(csv_prefix), "--seed", "7", "--cards", "500", "--terminals", "1000",
         "--loglevel", "WARNING"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    with Path(f"{csv_prefix}_stats.csv").open() as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    return rows["Aggregated"]


def test_the_request_generator_is_seeded_and_speaks_predict() -> None:
    # In a subprocess: importing locust monkey-patches the interpreter (gevent).
    code = ("import json, random, sys; sys.path.insert(0, 'bench'); "
            "from locustfile import transaction; "
            "rng = random.Random('7-0'); "
            "print(json.dumps([transaction(rng, i, 500, 1000) for i in range(200)]))")
    runs = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, check=True).stdout for _ in range(2)]
    bodies = json.loads(runs[0])
    assert runs[0] == runs[1]
    # the worker's body: ``id`` is the card id; no other field outside its allowed set
    assert all(set(b) == {"id", "terminal_id", "amount", "transaction_id"} for b in bodies)
    assert all(CARD.match(b["id"]) and TERMINAL.match(b["terminal_id"]) for b in bodies)
    assert all(b["amount"] >= 0 for b in bodies)
    assert len({b["transaction_id"] for b in bodies}) == len(bodies)
    assert len({b["id"] for b in bodies}) > 100  # spread over the 500 known cards
