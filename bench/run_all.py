"""Run the benchmarks of docs/benchmarks.md in one go (`make bench`).

Run: .venv/bin/python bench/run_all.py [--bootstrap HOST:PORT] [--only worker,drift,...]

Without ``--bootstrap`` an embedded broker is started on free ports in a temporary data
directory and stopped at the end. Each benchmark runs as its own process with the command
docs/benchmarks.md gives, and its output goes straight to this one's; the exit code is the
first failing benchmark's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from sentinel.infra.broker import EmbeddedKafka
from sentinel.infra.worker_process import free_port
from sentinel.settings import EmbeddedBrokerSettings

ROOT = Path(__file__).resolve().parents[1]
BENCHES: dict[str, Callable[[str], list[str]]] = {
    "worker": lambda bootstrap: ["bench_worker.py", "--bootstrap", bootstrap, "--n", "100000",
                                 "--seconds", "15", "--batch", "1000", "--window", "0.005"],
    "restore": lambda bootstrap: ["bench_restore.py", "--bootstrap", bootstrap,
                                  "--n", "1000000"],
    "faults": lambda _: ["bench_faults.py", "--kills", "20"],  # its own broker (restarts it)
    "drift": lambda _: ["bench_drift.py"],
    "closed-loop": lambda _: ["bench_closed_loop.py", "--seed", "0"],
    "training": lambda _: ["bench_training.py"],
    "attributes": lambda _: ["bench_attributes.py"],
    "attributes-worker": lambda bootstrap: ["bench_attributes.py", "--worker", "--bootstrap",
                                            bootstrap, "--n", "50000", "--rounds", "5"],
}
ON_A_BROKER = {"worker", "restore", "attributes-worker"}  # the others start their own


def run(names: list[str], bootstrap: str) -> int:
    for name in names:
        script, *options = BENCHES[name](bootstrap)
        cmd = [sys.executable, str(ROOT / "bench" / script), *options]
        print(f"== {name}: bench/{script} {' '.join(options)}", flush=True)
        code = subprocess.call(cmd, cwd=ROOT)
        if code:
            print(f"== {name} failed with exit code {code}", flush=True)
            return code
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", help="an existing broker (default: start an embedded one)")
    ap.add_argument("--only", default=",".join(BENCHES),
                    help=f"comma-separated subset of {', '.join(BENCHES)}")
    args = ap.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    if args.bootstrap or not ON_A_BROKER & set(names):
        sys.exit(run(names, args.bootstrap or ""))
    broker = EmbeddedKafka(EmbeddedBrokerSettings(port=free_port(), controller_port=free_port()),
                           Path(tempfile.mkdtemp(prefix="bench-kafka-")))
    status = broker.start()
    try:
        code = run(names, status.bootstrap)
    finally:
        broker.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
