"""The streaming worker's throughput and latency, against two baselines in the same run.

Run (a broker of your own; 9092 is usually someone else's)::

    SENTINEL_BROKER__PORT=19392 SENTINEL_BROKER__CONTROLLER_PORT=19393 \
        SENTINEL_DATA_DIR=/tmp/wk-bench .venv/bin/sentinel kafka start
    .venv/bin/python bench/bench_worker.py --bootstrap 127.0.0.1:19392 --n 100000

What it does, on fresh topics (a unique prefix) and a temporary MLflow store:

1. simulates a history (the project's simulator), trains a LightGBM champion and candidate on
   its offline features (``--trees`` trees each) and registers them;
2. **sustained**, once per ``--guarantees`` entry (``exactly_once,at_least_once``), each on
   fresh topics: pre-produces ``--n`` transactions, starts one ``sentinel worker`` process (both
   models, features and drift on) and times from its ``/ready`` to the last verdict's produce
   time (imports and model loading excluded; verdicts read with ``read_committed``);
3. **latency**: with that worker still running, produces ``--rate`` tx/s for ``--seconds`` s
   and reports p50/p99 of the wall time at which a ``read_committed`` consumer received each
   verdict minus the transaction's produce time, and the worker's CPU per transaction paced
   against at saturation;
4. **baselines** on the same pre-produced topic (new consumer groups, same process as this
   script): (a) seed-style, the model called once per event and one produce per event;
   (b) a plain confluent-kafka loop with the worker's batching: consume ``--batch``,
   validate, card and terminal features, champion score + reason codes, produce verdicts.
   (b) holds all state in one process, so it has no repartition hop, no changelog, no
   candidate and no drift: it is the Python ceiling, not an equal.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from confluent_kafka import Consumer, Producer

from features import (
    CardState,
    FeatureConfig,
    TerminalState,
    TransactionRecord,
    card_stage,
    terminal_stage,
    transaction_stage,
)
from features.offline import compute_features
from lifecycle.registry import ModelRegistry
from schemas import Transaction, decode
from sentinel.infra.admin import create_topics, delete_topics
from sentinel.infra.worker_process import free_port
from sentinel.settings import MlflowSettings, Settings, TopicSettings
from sentinel.topics import TopicSpec, catalog
from stream_app import scoring
from stream_app.handoff import Handoff
from stream_app.serving import Slot
from training.model import FraudModel, Thresholds
from training.simulation import SimulationConfig, simulate

logger = logging.getLogger("bench_worker")
ROOT = Path(__file__).resolve().parents[1]


# -- data and models -----------------------------------------------------------------------------
def history(n: int, seed: int = 0) -> pd.DataFrame:
    """The first ``n`` transactions of a simulated history (about 3,800 a day)."""
    days = max(8, int(n / 3500) + 8)
    frame = simulate(SimulationConfig(n_customers=2000, n_terminals=4000, n_days=days,
                                      seed=seed))
    if len(frame) < n:
        raise SystemExit(f"simulated only {len(frame)} transactions, asked for {n}")
    return frame.iloc[:n].reset_index(drop=True)


def train(frame: pd.DataFrame, trees: int, seed: int) -> FraudModel:
    config = FeatureConfig()
    X = compute_features(frame, config=config)[list(config.names)].to_numpy(np.float64)
    y = frame["is_fraud"].to_numpy(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 31, "verbose": -1, "seed": seed,
                         "num_threads": 1, "bagging_fraction": 0.8, "bagging_freq": 1},
                        lgb.Dataset(X, y), num_boost_round=trees)
    p = booster.predict(X)
    review, decline = float(np.quantile(p, 0.98)), float(np.quantile(p, 0.995))
    return FraudModel("lightgbm", config.names, Thresholds(review=review, decline=decline),
                      booster)


def encoded(frame: pd.DataFrame) -> list[tuple[bytes, bytes]]:
    out = []
    for r in frame.itertuples(index=False):
        tx = Transaction(transaction_id=r.transaction_id, card_id=r.card_id,
                         terminal_id=r.terminal_id, amount=r.amount, event_time=r.event_time)
        out.append((r.card_id.encode(), tx.model_dump_json().encode()))
    return out


# -- kafka helpers -------------------------------------------------------------------------------
def produce_all(conf: dict[str, Any], topic: str, records: list[tuple[bytes, bytes]]) -> None:
    p = Producer({**conf, "linger.ms": 20, "compression.type": "lz4",
                  "queue.buffering.max.messages": 1_000_000})
    for key, value in records:
        while True:
            try:
                p.produce(topic, value, key)
                break
            except BufferError:
                p.poll(0.05)
    p.flush(60)


def consumer(conf: dict[str, Any], topics: list[str], **extra: Any) -> Consumer:
    c = Consumer({**conf, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 5, **extra})
    c.subscribe(topics)
    return c


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def collect(c: Consumer, want: int, timeout_s: float, proc: subprocess.Popen[bytes],
            ) -> tuple[dict[str, int], float]:
    """transaction id -> verdict message timestamp (ms) of the first verdict of each, and the
    worker's CPU seconds between the first verdict seen and the last. Stops early when the
    worker process has exited (its log says why)."""
    seen: dict[str, int] = {}
    cpu0 = None
    pid = proc.pid
    deadline = time.monotonic() + timeout_s
    while len(seen) < want and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited with code {proc.returncode} after "
                             f"{len(seen)} verdicts")
        for m in c.consume(5000, 0.2):
            if m.error():
                continue
            if cpu0 is None:
                cpu0 = cpu_seconds(pid)
            tid = m.key().decode()
            if tid not in seen:
                seen[tid] = m.timestamp()[1]
    return seen, cpu_seconds(pid) - (cpu0 or 0.0)


# -- the worker process --------------------------------------------------------------------------
def worker_env(settings: Settings, port: int, batch: int, window: float,
               extra: list[str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env.update(settings.as_env())
    env.update({
        "SENTINEL_WORKER__WEB_PORT": str(port),
        "SENTINEL_WORKER__APP_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "SENTINEL_SCORING__BATCH_SIZE": str(batch),
        "SENTINEL_SCORING__BATCH_WINDOW_S": str(window),
        "SENTINEL_LOG_LEVEL": "WARNING",
    })
    for item in extra or []:  # --worker-env KEY=VALUE: a setting under test, applied last
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--worker-env expects KEY=VALUE, got {item!r}")
        env[key] = value
    return env


def ready(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


# -- baselines -----------------------------------------------------------------------------------
class _Features:
    """Card and terminal state of all keys in this process (no repartition, no changelog)."""

    def __init__(self) -> None:
        self.config = FeatureConfig()
        self.cards: dict[str, CardState] = {}
        self.terminals: dict[str, TerminalState] = {}

    def row(self, tx: Transaction) -> tuple[Handoff, list[float]]:
        rec = TransactionRecord.from_event(tx)
        card = self.cards.setdefault(rec.card_id, CardState())
        term = self.terminals.setdefault(rec.terminal_id, TerminalState())
        head = [*transaction_stage(rec), *card_stage(card, rec, self.config)]
        h = Handoff(rec.transaction_id, rec.card_id, rec.terminal_id, rec.amount,
                    tx.event_time.isoformat(), rec.event_time_us, 0, head)
        return h, [*head, *terminal_stage(term, rec, self.config)]


def baseline(conf: dict[str, Any], src: str, out: str, champion: Slot, n: int, batch: int,
             window: float, per_event: bool) -> tuple[float, float]:
    """tx/s and CPU µs per tx of a consume -> features -> score -> produce loop over ``n``
    messages (CPU of this whole process, librdkafka threads included)."""
    c = consumer(conf, [src])
    p = Producer({**conf, "linger.ms": 2, "compression.type": "lz4",
                  "enable.idempotence": True, "queue.buffering.max.messages": 1_000_000})
    feats = _Features()
    done, started, cpu0 = 0, None, 0.0
    while done < n:
        msgs = [m for m in c.consume(1 if per_event else batch, window) if not m.error()]
        if not msgs:
            continue
        if started is None:
            started, cpu0 = time.perf_counter(), cpu_seconds(os.getpid())
        pending, rows = [], []
        for m in msgs:
            h, row = feats.row(decode(Transaction, m.value()))
            pending.append(h)
            rows.append(row)
        X = np.asarray(rows, dtype=np.float64)
        result = scoring.score(champion, X)
        codes = scoring.reasons(champion, X, result.decisions, 3)
        for key, value in scoring.verdicts(pending, X, result, codes):
            p.produce(out, value, key)
        p.poll(0)
        if not per_event:
            p.flush(30)  # the worker also waits for acks before committing a batch
        done += len(msgs)
    p.flush(30)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    cpu = cpu_seconds(os.getpid()) - cpu0
    c.close()
    return done / elapsed, cpu / done * 1e6


def run_worker(settings: Settings, conf: dict[str, Any], args: argparse.Namespace, tmp: Path,
               pre: list[tuple[bytes, bytes]], paced: list[tuple[bytes, bytes]],
               extra_env: list[str]) -> dict[str, Any]:
    """One worker process on ``settings``' topics (``pre`` already produced): the sustained
    rate over the backlog, then the paced latency as a read_committed consumer sees it."""
    results: dict[str, Any] = {}
    tx_topic, verdicts = settings.topics.name("transactions"), settings.topics.name("verdicts")
    port = free_port()
    log = (tmp / f"worker-{settings.topics.prefix}log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "worker"],
                            env=worker_env(settings, port, args.batch, args.window,
                                           extra_env), cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    logger.info("worker pid=%d log=%s", proc.pid, log.name)
    try:
        # what a downstream reader sees: only committed checkpoints (issue 16)
        vc = consumer(conf, [verdicts], **{"isolation.level": "read_committed"})
        # from /ready (group joined, state restored; imports and model loading excluded) to
        # the last verdict's produce time: the consume, re-key hop, alignment wait and scoring
        deadline = time.monotonic() + 300
        while not ready(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker never became ready (log {log.name})")
            time.sleep(0.05)
        ready_ms, cpu_ready = time.time() * 1000.0, cpu_seconds(proc.pid)
        seen, _ = collect(vc, args.n, 900, proc)
        cpu = cpu_seconds(proc.pid) - cpu_ready
        if len(seen) < args.n:
            raise SystemExit(f"only {len(seen)} of {args.n} verdicts (log {log.name})")
        last_ms = max(seen.values())
        span = (last_ms - ready_ms) / 1000.0
        results["worker_tx_s"] = round(args.n / span, 1)
        results["worker_cpu_us_per_tx"] = round(cpu / args.n * 1e6, 1)
        results["verdict_burst_s"] = round((last_ms - min(seen.values())) / 1000.0, 2)
        logger.info("worker: %d verdicts, ready->last %.2fs = %.0f tx/s, %.0f us CPU/tx",
                    args.n, span, args.n / span, cpu / args.n * 1e6)

        # paced latency
        produced: dict[str, float] = {}
        p = Producer({**conf, "linger.ms": 1})
        # connect and learn the topic's leader first: otherwise the first messages wait for
        # that and their latency is the client's start-up, not the worker's
        p.list_topics(tx_topic, timeout=10)
        interval, i, start = 1.0 / args.rate, 0, time.perf_counter()
        pending_ids = [json.loads(v)["transaction_id"] for _, v in paced]

        def pace() -> None:
            nonlocal i
            due = min(len(paced), int((time.perf_counter() - start) / interval) + 1)
            while i < due:
                key, value = paced[i]
                p.produce(tx_topic, value, key)
                produced[pending_ids[i]] = time.time() * 1000.0
                i += 1
            p.poll(0)

        flood = None
        if args.flood:
            from http_flood import Flood  # next to this script

            flood = Flood(f"http://127.0.0.1:{port}/predict", args.flood, args.flood_token)
            flood.start()
        got: dict[str, int] = {}
        # the worker's CPU over the steady paced window: (time, cpu seconds, produced) at its
        # start and end; at a fixed rate, the share of a core it needs (latency grows with it)
        marks: list[tuple[float, float, int]] = []
        deadline = time.monotonic() + args.warmup + args.seconds + 60
        while len(got) < len(paced) and time.monotonic() < deadline:
            pace()
            if (len(marks) == 0 and time.perf_counter() - start >= args.warmup) or (
                    len(marks) == 1 and i >= len(paced)):
                marks.append((time.perf_counter(), cpu_seconds(proc.pid), i))
            for m in vc.consume(2000, 0.01):
                if m.error():
                    continue
                tid = m.key().decode()
                if tid in produced and tid not in got:
                    # received by a read_committed consumer: the checkpoint's commit included
                    got[tid] = int(time.time() * 1000)
        if flood is not None:
            results["flood_threads"] = args.flood
            results["flood_answers"] = flood.stop()
            logger.info("flood answers %s", results["flood_answers"])
        all_lat = np.array([got[t] - produced[t] for t in got])
        all_at = np.array([produced[t] for t in got])
        t0_ms = float(all_at.min())
        all_at = (all_at - t0_ms) / 1000.0
        # the first --warmup seconds follow the sustained run's backlog: paced, checked for a
        # verdict each, but not in the steady-state statistics (reported apart)
        steady = all_at >= args.warmup
        lat, at = all_lat[steady], all_at[steady] - args.warmup
        if args.warmup:
            results["p99_warmup_ms"] = round(float(np.percentile(all_lat[~steady], 99)), 1)
        slices = {f"{a}-{a + 5}s": round(float(np.percentile(lat[(at >= a) & (at < a + 5)], 99)), 1)
                  for a in range(0, int(args.seconds), 5) if ((at >= a) & (at < a + 5)).any()}
        results["p99_ms_by_5s"] = slices
        if len(marks) == 2:
            (w0, c0, n0), (w1, c1, n1) = marks
            results["paced_worker_cpu_us_per_tx"] = round((c1 - c0) / max(1, n1 - n0) * 1e6, 1)
            results["paced_worker_cores"] = round((c1 - c0) / (w1 - w0), 2)
        if args.dump:
            np.savez(args.dump, at=all_at, lat=all_lat, t0_ms=t0_ms, warmup=args.warmup)
        logger.info("p99 by 5 s of pacing: %s", slices)
        results.update({"paced_rate": args.rate, "paced_n": len(paced), "paced_seen": len(got),
                        "p50_ms": round(float(np.percentile(lat, 50)), 1),
                        "p99_ms": round(float(np.percentile(lat, 99)), 1),
                        "max_ms": round(float(lat.max()), 1)})
        logger.info("paced %d tx/s: %d/%d verdicts p50=%.1fms p99=%.1fms max=%.1fms",
                    args.rate, len(got), len(paced), results["p50_ms"], results["p99_ms"],
                    results["max_ms"])
        vc.close()
    finally:
        if not args.keep_worker:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

    return results


# -- main ----------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--window", type=float, default=0.005)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--seed-n", type=int, default=5000, help="events for the seed-style baseline")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--skip-baselines", action="store_true")
    ap.add_argument("--guarantees", default="exactly_once,at_least_once",
                    help="processing guarantees to run, one worker each, comma-separated")
    ap.add_argument("--keep-worker", action="store_true", help="leave the worker running")
    ap.add_argument("--warmup", type=float, default=2.0,
                    help="seconds of pacing before the latency is measured")
    ap.add_argument("--dump", help="save each paced transaction's (seconds, latency ms) to .npz")
    ap.add_argument("--worker-env", action="append", metavar="KEY=VALUE",
                    help="an environment variable for the worker (repeatable), e.g. "
                         "SENTINEL_SCORING__MODEL_POLL_INTERVAL_S=60")
    ap.add_argument("--flood", type=int, default=0, metavar="THREADS",
                    help="flood POST /predict from this many threads while pacing (issue 18)")
    ap.add_argument("--flood-token", default=None, help="bearer token the flood sends")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    prefix = f"b{uuid.uuid4().hex[:8]}."
    uri = f"sqlite:///{tmp}/mlflow.db"
    # the security options (SASL, TLS) come from SENTINEL_KAFKA__* like any deployment's
    kafka = Settings().kafka.model_copy(update={"bootstrap_servers": args.bootstrap})
    settings = Settings(data_dir=tmp, kafka=kafka,
                        topics=TopicSettings(prefix=prefix, partitions=args.partitions),
                        mlflow=MlflowSettings(model_name="bench-worker", tracking_uri=uri,
                                              registry_uri=uri))
    conf = settings.librdkafka()
    paced_n = int(args.rate * (args.warmup + args.seconds))
    frame = history(args.n + paced_n)
    t0 = time.perf_counter()
    champion = train(frame.iloc[:args.n], args.trees, seed=1)
    candidate = train(frame.iloc[:args.n], args.trees, seed=2)
    logger.info("trained two models (%d trees) in %.1fs", args.trees, time.perf_counter() - t0)
    registry = ModelRegistry(settings)
    for role, model in (("champion", champion), ("candidate", candidate)):
        version = registry.register(registry.log_run(model, params={}, metrics={}, tags={}),
                                    reason="bench").version
        registry.client.set_registered_model_alias("bench-worker", role, version)
    records = encoded(frame)
    pre, paced = records[:args.n], records[args.n:]
    results: dict[str, Any] = {"n": args.n, "batch": args.batch, "window_s": args.window,
                               "trees": args.trees, "partitions": args.partitions,
                               "load_before": os.getloadavg()[0]}
    for guarantee in args.guarantees.split(","):
        # each guarantee on fresh topics (its own prefix), the same data and models
        gs = settings.model_copy(update={"topics": TopicSettings(
            prefix=f"b{uuid.uuid4().hex[:8]}.", partitions=args.partitions)})
        specs = catalog(gs.topics)
        create_topics(conf, specs)
        t0 = time.perf_counter()
        produce_all(conf, gs.topics.name("transactions"), pre)
        logger.info("[%s] pre-produced %d transactions in %.1fs", guarantee, args.n,
                    time.perf_counter() - t0)
        extra_env = [f"SENTINEL_WORKER__PROCESSING_GUARANTEE={guarantee}",
                     *(args.worker_env or [])]
        results[guarantee] = run_worker(gs, conf, args, tmp, pre, paced, extra_env)
        results[guarantee]["load_after"] = os.getloadavg()[0]
        logger.info("[%s] %s", guarantee, json.dumps(results[guarantee]))
        delete_topics(conf, [sp.name for sp in specs])
    specs = catalog(settings.topics)
    extra = [TopicSpec(n, f"{prefix}{n}", "k", "bytes", args.partitions, {}, "bench")
             for n in ("base-a", "base-b")]
    tx_topic = settings.topics.name("transactions")
    if not args.skip_baselines:
        create_topics(conf, [*specs, *extra])
        produce_all(conf, tx_topic, pre)
        slot = Slot("bench-worker", "1", champion)
        plain, plain_cpu = baseline(conf, tx_topic, f"{prefix}base-b", slot, args.n,
                                    args.batch, args.window, per_event=False)
        seed, seed_cpu = baseline(conf, tx_topic, f"{prefix}base-a", slot,
                                  args.seed_n, 1, args.window, per_event=True)
        results.update({"plain_tx_s": round(plain, 1), "seed_tx_s": round(seed, 1),
                        "plain_cpu_us_per_tx": round(plain_cpu, 1),
                        "seed_cpu_us_per_tx": round(seed_cpu, 1)})
        for guarantee in args.guarantees.split(","):
            r = results[guarantee]
            r.update({"worker_vs_plain": round(r["worker_tx_s"] / plain, 2),
                      "worker_vs_seed": round(r["worker_tx_s"] / seed, 1),
                      "worker_vs_plain_cpu": round(plain_cpu / r["worker_cpu_us_per_tx"], 2)})
            if "paced_worker_cpu_us_per_tx" in r:
                r["paced_vs_saturated_cpu"] = round(
                    r["paced_worker_cpu_us_per_tx"] / r["worker_cpu_us_per_tx"], 2)
        logger.info("plain confluent loop %.0f tx/s, seed-style %.0f tx/s", plain, seed)
        delete_topics(conf, [s.name for s in [*specs, *extra]])
    results["load_after"] = os.getloadavg()[0]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
