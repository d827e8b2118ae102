"""Fault loops of the streaming worker, too long for ``make test`` (issue 16).

Run (starts and stops its own embedded broker on free ports)::

    .venv/bin/python bench/bench_faults.py --customers 300 --days 30 --kills 20
    .venv/bin/python bench/bench_faults.py --scenarios zombie   # one scenario

Each scenario runs the real ``sentinel worker`` process(es) on fresh topics: simulated
transactions with their labels 7 event-days later, interleaved by time as a chargeback feed
sends them, a third of the cards produced to a partition the worker's own partitioner would not
choose, poison in the middle of the transactions and the labels (the producer of
``tests/e2e/test_stream_parity.py``). Half of the feed is a backlog produced before the first
worker starts; the rest is produced live, at ``--rate`` events/s, while the fault happens:

- ``kill9``: SIGKILL of the worker ``--kills`` times, restarted each time: three in four a
  seeded random 0-5 s after it answers ``/ready`` (catch-up and live processing), one in four
  0.5-4 s after its start (start-up, group join, restore);
- ``broker``: the embedded broker stopped for ``--broker-down`` s mid-stream and started again
  on the same ports and data directory;
- ``join_leave``: a second worker joins mid-stream, stays ``--join-s`` s, and leaves (SIGTERM);
  then the first leaves and a third takes over;
- ``zombie``: two workers; one is SIGSTOPped past its session timeout, the other takes its
  partitions, then the stopped one is resumed (its late checkpoint must be fenced).

The harness acts as a supervisor: a worker that exits is restarted (and counted). Pass, per
scenario (read_committed consumer): every valid transaction has exactly one committed verdict;
each verdict's feature row (``SENTINEL_SCORING__VERDICT_FEATURES=true``) equals
``features.offline.compute_features`` over the same transactions and labels; and no partition
stalls: every verdict arrives within ``--settle`` s of the end of the feed. Prints one JSON line
per scenario and exits non-zero when any fails.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features import FeatureConfig  # noqa: E402
from features.offline import compute_features  # noqa: E402
from lifecycle.registry import ModelRegistry  # noqa: E402
from sentinel.infra.admin import create_topics, delete_topics  # noqa: E402
from sentinel.infra.broker import EmbeddedKafka  # noqa: E402
from sentinel.infra.worker_process import free_port  # noqa: E402
from sentinel.settings import (  # noqa: E402
    EmbeddedBrokerSettings,
    KafkaSettings,
    MlflowSettings,
    Settings,
    TopicSettings,
)
from sentinel.topics import catalog  # noqa: E402
from tests.e2e.test_stream_parity import _Feed, _poison, _Reader  # noqa: E402
from tests.e2e.worker_support import http, register, start_worker, worker_env  # noqa: E402
from training.producer import label_event, transaction_event  # noqa: E402
from training.simulation import SimulationConfig, simulate  # noqa: E402
from training.stream_order import label_frame, stream_order  # noqa: E402

logger = logging.getLogger("bench_faults")
SCENARIOS = ("kill9", "broker", "join_leave", "zombie")


class Data:
    """The feed (transactions and labels in stream order) and its offline feature rows."""

    def __init__(self, customers: int, days: int, seed: int) -> None:
        frame = simulate(SimulationConfig(n_customers=customers, n_terminals=customers * 2,
                                          n_days=days, seed=seed))
        labels = label_frame(frame)
        last = frame["event_time"].max()
        self.items = [(k, r) for k, r in stream_order(frame, labels)
                      if k == "transaction" or r.label_time <= last]
        self.ids = set(frame["transaction_id"].astype(str))
        self.frame = frame.set_index(frame["transaction_id"].astype(str))
        self.position = {r.transaction_id: i for i, (k, r) in enumerate(self.items)
                         if k == "transaction"}
        self.dump_to: Path | None = None
        config = FeatureConfig()
        self.names = list(config.names)
        self.offline = compute_features(frame, labels, config).set_index("transaction_id")
        self.offline.index = self.offline.index.astype(str)
        self.offline = self.offline[self.names]
        example = json.loads(transaction_event(
            next(r for k, r in self.items if k == "transaction")).model_dump_json())
        self.poison = [(key, value) for _, key, value in _poison(example)]


class Fleet:
    """Worker processes of one group; restarts any that exit (a supervisor's job)."""

    def __init__(self, settings: Settings, app_id: str, tmp: Path, extra: dict[str, str]) -> None:
        self.settings, self.app_id, self.tmp, self.extra = settings, app_id, tmp, extra
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.exits: list[tuple[str, int]] = []
        self.starts = 0

    def start(self, name: str) -> subprocess.Popen[bytes]:
        port = free_port()
        self.ports[name] = port
        env = worker_env(self.settings, port, self.app_id)
        env.update({"SENTINEL_SCORING__VERDICT_FEATURES": "true",
                    "SENTINEL_LOG_LEVEL": "INFO", **self.extra})
        proc = start_worker(env, self.tmp / f"{self.app_id}-{name}.log")
        self.procs[name] = proc
        self.starts += 1
        return proc

    def ready(self, name: str) -> bool:
        try:
            return http(self.ports[name], "/ready")[0] == 200
        except OSError:
            return False

    def supervise(self) -> None:
        for name, proc in list(self.procs.items()):
            if proc.poll() is not None:
                self.exits.append((name, proc.returncode))
                logger.info("  worker %s exited with %s: restarted", name, proc.returncode)
                self.start(name)

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


class Live(threading.Thread):
    """Produces the feed's items in [start, end) at ``rate`` events/s, with poison."""

    def __init__(self, feed: _Feed, data: Data, start: int, end: int, rate: float,
                 poison_at: dict[int, tuple[bytes | None, bytes | None]]) -> None:
        super().__init__(daemon=True)
        self.feed, self.data, self.start_i, self.end = feed, data, start, end
        self.rate, self.poison_at = rate, poison_at
        self.done_at: float | None = None

    def run(self) -> None:
        produce(self.feed, self.data, self.start_i, self.end, self.poison_at, self.rate)
        self.done_at = time.monotonic()


def produce(feed: _Feed, data: Data, start: int, end: int,
            poison_at: dict[int, tuple[bytes | None, bytes | None]], rate: float = 0.0) -> None:
    t0 = time.monotonic()
    for i in range(start, end):
        kind, row = data.items[i]
        if kind == "label":
            event = label_event(row)
            feed.label(event.card_id, event.model_dump_json().encode())
        else:
            tx = transaction_event(row)
            feed.transaction(tx.card_id, tx.model_dump_json().encode())
        if i in poison_at:
            feed.raw(feed.tx_topic, *poison_at[i])
        if rate and (i - start) % 200 == 0:
            ahead = (i - start) / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    feed.flush()


class Verdicts:
    """Counts committed verdicts per transaction id, keeping each one's feature row."""

    def __init__(self, settings: Settings) -> None:
        self.reader = _Reader(settings, settings.topics.name("verdicts"))
        self.count: collections.Counter[str] = collections.Counter()
        self.rows: dict[str, list[float]] = {}
        self.meta: dict[str, tuple[int, int, int]] = {}  # partition, offset, timestamp ms
        self.last_new = time.monotonic()
        # the reader commits no offsets, so after a broker restart its group may start over
        # from the earliest offset: a message read twice is not a second verdict
        self.next_offset: dict[int, int] = {}

    def until(self, count: int, timeout_s: float) -> None:
        """Poll until ``count`` distinct transactions have a verdict (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        while len(self.count) < count and time.monotonic() < deadline:
            self.poll(0.5)

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.reader.consumer.consume(10_000, 0.2):
                part, offset, value = msg.partition(), msg.offset(), msg.value()
                if msg.error() is not None or part is None or offset is None or value is None:
                    continue
                if offset < self.next_offset.get(part, 0):
                    continue
                self.next_offset[part] = offset + 1
                v = json.loads(value)
                tid = v["transaction_id"]
                if tid not in self.count:
                    self.last_new = time.monotonic()
                self.count[tid] += 1
                self.rows[tid] = v["features"]
                self.meta[tid] = (part, offset, msg.timestamp()[1])


def verdict_check(data: Data, verdicts: Verdicts) -> dict[str, Any]:
    missing = data.ids - set(verdicts.count)
    dups = sum(c - 1 for c in verdicts.count.values() if c > 1)
    out: dict[str, Any] = {"transactions": len(data.ids), "missing": len(missing),
                           "duplicates": dups, "unexpected": len(set(verdicts.count) - data.ids)}
    have = [t for t in data.offline.index if t in verdicts.rows]
    online = pd.DataFrame.from_dict({t: verdicts.rows[t] for t in have}, orient="index",
                                    columns=data.names).loc[have]
    offline = data.offline.loc[have]
    diff = ~np.isclose(online.to_numpy(), offline.to_numpy(), atol=1e-9, rtol=0)
    bad = np.flatnonzero(diff.any(axis=1))
    out["feature_rows_differ"] = len(bad)
    if len(bad):
        i = bad[0]
        cols = [data.names[c] for c in np.flatnonzero(diff[i])]
        out["first_difference"] = {"transaction_id": have[i],
                                   "stream": online.iloc[i][cols].to_dict(),
                                   "offline": offline.iloc[i][cols].to_dict()}
    if len(bad) and data.dump_to is not None:  # every differing row, for a post-mortem
        rows = []
        for i in bad:
            tid = have[i]
            cols = [data.names[c] for c in np.flatnonzero(diff[i])]
            tx = data.frame.loc[tid]
            rows.append({"transaction_id": tid, "card_id": tx["card_id"],
                         "terminal_id": tx["terminal_id"], "event_time": tx["event_time"],
                         "feed_index": data.position.get(tid, -1),
                         "verdict": verdicts.meta.get(tid), "columns": " ".join(cols),
                         "stream": [online.iloc[i][c] for c in cols],
                         "offline": [offline.iloc[i][c] for c in cols]})
        pd.DataFrame(rows).to_csv(data.dump_to, index=False)
        out["differences_file"] = str(data.dump_to)
    if missing:
        out["missing_examples"] = sorted(missing)[:5]
    out["passed"] = not missing and not dups and not len(bad) and not out["unexpected"]
    return out


def run(name: str, args: argparse.Namespace, data: Data, broker: EmbeddedKafka,
        base: Settings, tmp: Path) -> dict[str, Any]:
    rng = random.Random(f"{args.seed}-{name}")
    settings = base.model_copy(update={"topics": TopicSettings(
        prefix=f"f{uuid.uuid4().hex[:8]}.", partitions=args.partitions)})
    conf = settings.librdkafka()
    create_topics(conf, catalog(settings.topics))
    n = len(data.items)
    cut = n // 2
    spots = sorted(rng.sample(range(100, n - 100), len(data.poison)))
    poison_at = dict(zip(spots, data.poison, strict=True))
    feed = _Feed(settings, args.partitions)
    data.dump_to = tmp / f"{name}-differences.csv"
    produce(feed, data, 0, cut, poison_at)  # the backlog
    app_id = f"faults-{name}-{uuid.uuid4().hex[:6]}"
    extra = {"SENTINEL_WORKER__SESSION_TIMEOUT_MS": str(args.session_ms)}
    fleet = Fleet(settings, app_id, tmp, extra)
    verdicts = Verdicts(settings)
    started = time.monotonic()
    load0 = os.getloadavg()[0]
    live = Live(feed, data, cut, n, args.rate, poison_at)
    notes: dict[str, Any] = {}
    fleet.start("a")
    live.start()
    try:
        if name == "kill9":
            kills, at_start = 0, 0
            while kills < args.kills:
                if kills % 4 == 3:  # during start-up: restore, group join
                    wait = rng.uniform(0.5, 4.0)
                    at_start += 1
                else:  # while processing: a random time after /ready
                    deadline = time.monotonic() + 180
                    while not fleet.ready("a") and time.monotonic() < deadline:
                        verdicts.poll(0.3)
                    wait = rng.uniform(0.0, 5.0)
                verdicts.poll(wait)
                fleet.supervise()
                fleet.procs["a"].send_signal(signal.SIGKILL)
                fleet.procs["a"].wait(10)
                kills += 1
                fleet.start("a")
                logger.info("  kill %d after %.1fs: %d verdicts so far", kills, wait,
                            len(verdicts.count))
            notes["kills"] = kills
            notes["kills_during_start_up"] = at_start
        elif name == "broker":
            verdicts.until(int(len(data.ids) * args.fault_at), 300)
            fleet.supervise()
            before = len(verdicts.count)
            broker.stop()
            logger.info("  broker stopped at %d verdicts", before)
            time.sleep(args.broker_down)
            status = broker.start()
            logger.info("  broker started again: %s", status.bootstrap)
            notes["verdicts_at_stop"] = before
        elif name == "join_leave":
            verdicts.until(int(len(data.ids) * args.fault_at), 300)
            fleet.start("b")
            logger.info("  worker b joined at %d verdicts", len(verdicts.count))
            for _ in range(int(args.join_s)):
                verdicts.poll(1.0)
                fleet.supervise()
            fleet.stop("b")
            logger.info("  worker b left at %d verdicts", len(verdicts.count))
            verdicts.poll(args.join_s / 2)
            fleet.start("c")
            verdicts.poll(args.join_s / 2)
            fleet.stop("a")
            logger.info("  worker a left (c took over) at %d verdicts", len(verdicts.count))
        elif name == "zombie":
            fleet.start("b")
            verdicts.until(int(len(data.ids) * args.fault_at), 300)
            verdicts.poll(3.0)  # b has joined and holds its share
            fleet.supervise()
            zombie = fleet.procs["a"]
            zombie.send_signal(signal.SIGSTOP)
            stopped = args.session_ms / 1000 * 2 + 5
            before = len(verdicts.count)
            logger.info("  worker a SIGSTOPped for %.0fs at %d verdicts", stopped,
                        len(verdicts.count))
            verdicts.poll(stopped)
            zombie.send_signal(signal.SIGCONT)
            logger.info("  worker a resumed at %d verdicts", len(verdicts.count))
            notes["stopped_s"] = stopped
            notes["verdicts_at_stop"] = before
        while live.is_alive():
            verdicts.poll(1.0)
            fleet.supervise()
        logger.info("  feed done after %.0fs", time.monotonic() - started)
        settle = time.monotonic() + args.settle
        while time.monotonic() < settle and not data.ids <= set(verdicts.count):
            verdicts.poll(1.0)
            fleet.supervise()
        verdicts.poll(5.0)  # a duplicate would arrive now
        fleet.supervise()
    finally:
        fleet.stop_all()
        verdicts.reader.close()
    if name == "zombie":  # what the resumed worker was told
        text = (tmp / f"{app_id}-a.log").read_text(errors="replace").lower()
        notes["zombie_log_lines_fenced"] = text.count("fenc")
        notes["zombie_log_lines_aborted"] = text.count("abort")
    result = {"scenario": name, **verdict_check(data, verdicts), **notes,
              "worker_starts": fleet.starts, "unplanned_exits": fleet.exits,
              "seconds": round(time.monotonic() - started, 1),
              "feed_to_last_verdict_s": round(verdicts.last_new - (live.done_at or 0), 1),
              "load": [round(load0, 1), round(os.getloadavg()[0], 1)], "app_id": app_id}
    if not result["passed"]:
        result["logs"] = str(tmp)
    delete_topics(conf, [s.name for s in catalog(settings.topics)])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--customers", type=int, default=300)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--rate", type=float, default=150.0, help="live events/s")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--fault-at", type=float, default=0.6,
                    help="share of the transactions with a verdict before the fault")
    ap.add_argument("--broker-down", type=float, default=8.0)
    ap.add_argument("--join-s", type=float, default=10.0)
    ap.add_argument("--session-ms", type=int, default=6000)
    ap.add_argument("--settle", type=float, default=240.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    names = args.scenarios.split(",")
    for name in names:
        if name not in SCENARIOS:
            raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")

    tmp = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    broker = EmbeddedKafka(EmbeddedBrokerSettings(port=free_port(), controller_port=free_port(),
                                                  heap="1g"), tmp / "kafka")
    status = broker.start()
    try:
        uri = f"sqlite:///{tmp}/mlflow.db"
        base = Settings(data_dir=tmp / "sentinel",
                        kafka=KafkaSettings(bootstrap_servers=status.bootstrap),
                        topics=TopicSettings(prefix="f.", partitions=args.partitions),
                        mlflow=MlflowSettings(model_name="faults", tracking_uri=uri,
                                              registry_uri=uri))
        base.data_dir.mkdir(parents=True, exist_ok=True)
        registry = ModelRegistry(base)
        for role, seed in (("champion", 1), ("candidate", 2)):
            registry.client.set_registered_model_alias("faults", role, register(registry, seed))
        t0 = time.monotonic()
        data = Data(args.customers, args.days, args.seed)
        logger.info("feed: %d events (%d transactions) in %.0fs; logs in %s", len(data.items),
                    len(data.ids), time.monotonic() - t0, tmp)
        failed = 0
        for name in names:
            logger.info("scenario %s", name)
            result = run(name, args, data, broker, base, tmp)
            failed += not result["passed"]
            print(json.dumps(result), flush=True)
    finally:
        broker.stop()
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
