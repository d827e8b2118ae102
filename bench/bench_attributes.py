"""Transaction attributes as model inputs: what they are worth, in one run (no MLflow).

    .venv/bin/python bench/bench_attributes.py [--customers 2000] [--rows 100000]

1. The simulator with ``--with-attributes``: the test AP of Sentinel's LightGBM without and
   with the attributes (channel, merchant_category categorical; new_device, country_mismatch
   numeric), same data, same split.
2. An anonymised-numeric file (``training.simulation.anonymised``: Time, V1..V8, Amount,
   channel, Class; no card or terminal ids), shaped as ``sentinel train --columns ...
   --time-origin ... --split-fractions 0.6,0.1,0.3`` does: Sentinel's pipeline against a plain
   LightGBM (``lightgbm.LGBMClassifier()`` defaults, ``channel`` as a categorical) fitted on the
   same columns and the same train rows, AP on the same test rows. Target: ratio >= 0.97.
3. ``--cost``: the per-event work attributes add on the worker's path, in process: decode
   a Transaction, encode and decode its hand-off (chunks of 500), and build a 1000-row
   batch's model inputs from the hand-offs (``scoring.inputs``), with 0 and with 30 numeric
   attributes; 1,000 different events, as the worker sees them.
4. ``--worker --bootstrap HOST:PORT``: the real worker process (``sentinel worker``) on real
   topics, without attributes and with ``--k`` (30) numeric attributes per event, ``--rounds``
   runs of each, interleaved (A B, B A, A B, ...), the same ``--n`` transactions each time.
   Per run: fresh topics, the backlog produced first, then one worker whose champion and
   shadow candidate (``--trees`` trees each) read no attributes, or the ``--k`` attributes
   through their feature spec; sustained = ``--n`` / (the wall time at which a
   ``read_committed`` consumer holds every verdict - the moment ``/ready`` answered, i.e. the
   start of consumption), and the worker's CPU per transaction. Yardstick, as
   ``bench_worker.py`` prints it: the plain confluent-kafka loop (batching as the worker,
   features, champion score, verdicts; no attributes) on the same backlog, once per round.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from lifecycle.pipeline import TrainingConfig, featurize, fit_and_evaluate, with_attributes
from sentinel.settings import Settings
from training import columns
from training.dataset import make_dataset
from training.simulation.anonymised import anonymised
from training.simulation.attributes import add_attributes
from training.simulation.config import SimulationConfig
from training.simulation.simulator import simulate
from training.split import SplitConfig

SIM_NUMERIC = ("new_device", "country_mismatch")
SIM_CATEGORICAL = ("channel", "merchant_category")
V = tuple(f"V{i}" for i in range(1, 9))


def _ap(frame: pd.DataFrame, config: TrainingConfig) -> tuple[float, np.ndarray, np.ndarray]:
    dataset = make_dataset(frame, "bench", config.numeric, config.categorical)
    X, names = featurize(dataset, Settings())
    X, names, spec = with_attributes(dataset, X, names, config)
    evaluation = fit_and_evaluate(dataset, X, names, config, spec=spec)
    return (evaluation.metrics["average_precision"], evaluation.split.train,
            evaluation.split.test)


def simulator(customers: int, seed: int) -> None:
    frame = add_attributes(simulate(SimulationConfig(
        n_customers=customers, n_terminals=2 * customers, n_days=120, seed=seed)), seed)
    base = TrainingConfig()
    without, _, test = _ap(frame, base)
    with_, _, _ = _ap(frame, TrainingConfig(numeric=SIM_NUMERIC, categorical=SIM_CATEGORICAL))
    print(f"simulator: {len(frame)} rows, {frame['is_fraud'].mean():.2%} fraud, "
          f"test rows {len(test)}")
    print(f"| AP without attributes | AP with attributes |\n|---|---|\n"
          f"| {without:.4f} | {with_:.4f} |")


def anonymised_file(rows: int, seed: int) -> None:
    raw = anonymised(rows=rows, fraud_rate=0.01, days=30, seed=seed)
    frame = columns.shape(raw, {"event_time": "Time", "amount": "Amount", "is_fraud": "Class"},
                          columns.parse_origin("2013-09-01T00:00:00Z"))
    config = TrainingConfig(split=SplitConfig(fractions=(0.6, 0.1, 0.3)), numeric=V,
                            categorical=("channel",))
    started = time.perf_counter()
    ours, train, test = _ap(frame, config)
    seconds = time.perf_counter() - started
    # the plain LightGBM: same columns, same rows (the canonical order is by time, then id)
    canonical = make_dataset(frame, "bench", V, ("channel",)).frame
    plain_X = canonical[[*V, "amount", "channel"]].astype({"channel": "category"})
    y = canonical["is_fraud"].to_numpy()
    model = lgb.LGBMClassifier(random_state=0, verbose=-1, n_jobs=1)
    model.fit(plain_X.iloc[train], y[train])
    plain = average_precision_score(y[test], model.predict_proba(plain_X.iloc[test])[:, 1])
    print(f"anonymised file: {rows} rows, {y.mean():.2%} fraud, train {len(train)} "
          f"test {len(test)} rows; sentinel pipeline {seconds:.1f}s")
    print(f"| sentinel train AP | plain LightGBM AP | ratio (target >= 0.97) |\n|---|---|---|\n"
          f"| {ours:.4f} | {plain:.4f} | {ours / plain:.3f} |")


def cost(n: int = 20_000) -> None:
    import json

    from features.attributes import Attribute, AttributeSpec, attributes_of
    from schemas import Transaction, decode
    from stream_app import scoring
    from stream_app.handoff import Handoff

    base = {"transaction_id": "t1", "card_id": "c1", "terminal_id": "m1", "amount": 12.5,
            "event_time": "2024-03-01T10:00:00+00:00"}
    spec = AttributeSpec(tuple(Attribute(f"a{i}", "num") for i in range(30)))
    rng = np.random.default_rng(0)
    head = rng.random(26).tolist()
    print("| attributes | decode us/event | hand-off encode+decode us/event "
          "| model inputs us/event | total us/event |\n|---|---|---|---|---|")
    import gc

    gc.collect()
    gc.freeze()  # as the worker does after start-up: collections see only what is new
    for k in (0, 30):
        # 1,000 different events (as the worker sees them: each its own dict after decoding)
        raws = [json.dumps({**base, "attributes": {f"a{i}": round(float(v), 6)
                                                   for i, v in enumerate(rng.normal(size=k))}}
                           if k else base).encode() for _ in range(1000)]
        started = time.perf_counter()
        for _ in range(n // 1000):
            txs = [decode(Transaction, raw) for raw in raws]
        t_decode = (time.perf_counter() - started) / (n // 1000 * 1000) * 1e6
        batch = [Handoff(tx.transaction_id, tx.card_id, tx.terminal_id, tx.amount, "x", 0, 0,
                         head, 0, attributes_of(tx)) for tx in txs]
        started = time.perf_counter()
        for _ in range(n // 1000):
            crossed = [h for i in range(0, 1000, 500)  # the card stage's chunks of 500
                       for h in Handoff.decode_many(Handoff.encode_batch(batch[i:i + 500]))]
        t_handoff = (time.perf_counter() - started) / (n // 1000 * 1000) * 1e6
        X = rng.random((1000, 26))
        cols = np.arange(26)
        use = spec if k else AttributeSpec()
        started = time.perf_counter()
        for _ in range(n // 1000):
            scoring.inputs(use, X, cols, [h.attrs for h in crossed])
        t_inputs = (time.perf_counter() - started) / (n // 1000 * 1000) * 1e6
        print(f"| {k} | {t_decode:.1f} | {t_handoff:.1f} | {t_inputs:.1f} | "
              f"{t_decode + t_handoff + t_inputs:.1f} |")


def _attribute_models(frame: pd.DataFrame, k: int, trees: int, seed: int,
                      ) -> tuple[Any, list[dict[str, float]]]:
    """(champion, candidate) reading the computed features and ``k`` numeric attributes, and
    each transaction's attributes (seeded; a few informative, so the trees split on them)."""
    from features import FeatureConfig
    from features.attributes import Attribute, AttributeSpec
    from features.offline import compute_features
    from training.model import FraudModel, Thresholds

    rng = np.random.default_rng([seed, k])
    A = rng.normal(size=(len(frame), k)).round(6)
    y = frame["is_fraud"].to_numpy(int)
    A[y == 1, : min(k, 5)] += 1.5
    spec = AttributeSpec(tuple(Attribute(f"a{i:02d}", "num") for i in range(k)))
    config = FeatureConfig()
    X = np.hstack([compute_features(frame, config=config)[list(config.names)].to_numpy(
        np.float64), A])
    models = []
    for model_seed in (1, 2):  # as bench_worker.train, on the features and the attributes
        booster = lgb.train({"objective": "binary", "num_leaves": 31, "verbose": -1,
                             "seed": model_seed, "num_threads": 1, "bagging_fraction": 0.8,
                             "bagging_freq": 1}, lgb.Dataset(X, y), num_boost_round=trees)
        p = booster.predict(X)
        models.append(FraudModel(
            "lightgbm", (*config.names, *spec.columns),
            Thresholds(review=float(np.quantile(p, 0.98)), decline=float(np.quantile(p, 0.995))),
            booster, attributes=spec))
    names = [a.name for a in spec.attributes]
    return tuple(models), [dict(zip(names, row, strict=True)) for row in A.tolist()]


def _events(frame: pd.DataFrame, attributes: list[dict[str, float]] | None,
            ) -> list[tuple[bytes, bytes]]:
    from schemas import Transaction

    out = []
    for i, r in enumerate(frame.itertuples(index=False)):
        tx = Transaction(transaction_id=r.transaction_id, card_id=r.card_id,
                         terminal_id=r.terminal_id, amount=r.amount, event_time=r.event_time,
                         attributes=attributes[i] if attributes else None)
        out.append((r.card_id.encode(), tx.model_dump_json().encode()))
    return out


def _metric(port: int, name: str) -> float:
    """The sum of a counter's samples on the worker's /metrics (0 when absent)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def _sustained(settings: Any, conf: dict[str, Any], args: argparse.Namespace,
               records: list[tuple[bytes, bytes]], tmp: Path) -> dict[str, Any]:
    """One worker on fresh topics over a pre-produced backlog of ``records``."""
    import signal
    import subprocess
    import sys

    import bench_worker as bw

    from sentinel.infra.admin import create_topics, delete_topics
    from sentinel.infra.worker_process import free_port
    from sentinel.topics import catalog

    specs = catalog(settings.topics)
    create_topics(conf, specs)
    bw.produce_all(conf, settings.topics.name("transactions"), records)
    load = os.getloadavg()[0]
    port = free_port()
    log = (tmp / f"worker-{settings.topics.prefix}log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "worker"],
                            env=bw.worker_env(settings, port, args.batch, args.window),
                            cwd=bw.ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        vc = bw.consumer(conf, [settings.topics.name("verdicts")],
                         **{"isolation.level": "read_committed"})
        deadline = time.monotonic() + 300
        while not bw.ready(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker never became ready (log {log.name})")
            time.sleep(0.05)
        ready_s, cpu_ready = time.time(), bw.cpu_seconds(proc.pid)
        seen, _ = bw.collect(vc, args.n, 900, proc)
        done_s = time.time()  # every verdict committed and read (read_committed)
        cpu = bw.cpu_seconds(proc.pid) - cpu_ready
        vc.close()
        if len(seen) < args.n:
            raise SystemExit(f"only {len(seen)} of {args.n} verdicts (log {log.name})")
        scored = _metric(port, 'sentinel_transactions_total{outcome="scored"}')
        missing = _metric(port, "sentinel_attribute_missing_total")
        dead = _metric(port, "sentinel_dead_letters_total")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        delete_topics(conf, [sp.name for sp in specs])
    if scored != args.n or missing or dead:
        raise SystemExit(f"scored {scored} of {args.n}, {missing} missing attributes, "
                         f"{dead} dead letters (log {log.name})")
    span = done_s - ready_s
    return {"tx_s": round(args.n / span, 1), "cpu_us_per_tx": round(cpu / args.n * 1e6, 1),
            "span_s": round(span, 2), "last_verdict_produced_s": round(
                max(seen.values()) / 1000.0 - ready_s, 2),
            "load_before": round(load, 1), "load_after": round(os.getloadavg()[0], 1)}


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Section 4: the worker process without and with ``--k`` numeric attributes."""
    import bench_worker as bw

    from lifecycle.registry import ModelRegistry
    from sentinel.infra.admin import create_topics, delete_topics
    from sentinel.settings import MlflowSettings, Settings, TopicSettings
    from sentinel.topics import TopicSpec
    from stream_app.serving import Slot

    tmp = Path(tempfile.mkdtemp(prefix="bench-attr-worker-"))
    uri = f"sqlite:///{tmp}/mlflow.db"
    kafka = Settings().kafka.model_copy(update={"bootstrap_servers": args.bootstrap})
    frame = bw.history(args.n, seed=args.seed)
    plain = (bw.train(frame, args.trees, seed=1), bw.train(frame, args.trees, seed=2))
    with_attrs, attributes = _attribute_models(frame, args.k, args.trees, args.seed)
    configs = {0: (plain, bw.encoded(frame)), args.k: (with_attrs, _events(frame, attributes))}
    settings: dict[int, Settings] = {}
    for k, (models, _) in configs.items():
        name = f"bench-attr-{k}"
        settings[k] = Settings(data_dir=tmp, kafka=kafka, mlflow=MlflowSettings(
            model_name=name, tracking_uri=uri, registry_uri=uri))
        registry = ModelRegistry(settings[k])
        for role, model in zip(("champion", "candidate"), models, strict=True):
            version = registry.register(registry.log_run(model, params={}, metrics={}, tags={}),
                                        reason="bench").version
            registry.client.set_registered_model_alias(name, role, version)
    conf = settings[0].librdkafka()
    runs: dict[str, list[dict[str, Any]]] = {"0": [], str(args.k): [], "plain": []}
    for r in range(args.rounds):
        for k in ((0, args.k) if r % 2 == 0 else (args.k, 0)):
            topics = TopicSettings(prefix=f"ba{uuid.uuid4().hex[:8]}.",
                                   partitions=args.partitions)
            result = _sustained(settings[k].model_copy(update={"topics": topics}), conf, args,
                                configs[k][1], tmp)
            logging.getLogger("bench_attributes").warning("round %d, %d attributes: %s", r, k,
                                                          json.dumps(result))
            runs[str(k)].append(result)
        # the yardstick: bench_worker.py's plain loop on a backlog without attributes
        prefix = f"bp{uuid.uuid4().hex[:8]}."
        topics = [TopicSpec(n, f"{prefix}{n}", "k", "bytes", args.partitions, {}, "bench")
                  for n in ("in", "out")]
        create_topics(conf, topics)
        bw.produce_all(conf, topics[0].name, configs[0][1])
        tx_s, cpu_us = bw.baseline(conf, topics[0].name, topics[1].name,
                                   Slot("bench", "1", plain[0]), args.n, args.batch,
                                   args.window, per_event=False)
        delete_topics(conf, [t.name for t in topics])
        runs["plain"].append({"tx_s": round(tx_s, 1), "cpu_us_per_tx": round(cpu_us, 1),
                              "load_after": round(os.getloadavg()[0], 1)})
    med = {key: {m: statistics.median(run[m] for run in value)
                 for m in ("tx_s", "cpu_us_per_tx")} for key, value in runs.items()}
    without, with_k, yard = med["0"], med[str(args.k)], med["plain"]
    return {"n": args.n, "k": args.k, "trees": args.trees, "batch": args.batch,
            "partitions": args.partitions, "rounds": args.rounds, "runs": runs,
            "median": med,
            "ratio_tx_s": round(with_k["tx_s"] / without["tx_s"], 3),
            "ratio_cpu": round(without["cpu_us_per_tx"] / with_k["cpu_us_per_tx"], 3),
            "ratio_tx_s_by_round": [round(a["tx_s"] / b["tx_s"], 3) for a, b in
                                    zip(runs[str(args.k)], runs["0"], strict=True)],
            "worker_vs_plain": {"0": round(without["tx_s"] / yard["tx_s"], 3),
                                str(args.k): round(with_k["tx_s"] / yard["tx_s"], 3)},
            "worker_vs_plain_cpu": {
                "0": round(yard["cpu_us_per_tx"] / without["cpu_us_per_tx"], 3),
                str(args.k): round(yard["cpu_us_per_tx"] / with_k["cpu_us_per_tx"], 3)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cost", action="store_true", help="only the per-event cost (3.)")
    parser.add_argument("--worker", action="store_true",
                        help="only the worker process without and with attributes (4.)")
    parser.add_argument("--bootstrap", help="the broker for --worker (one of your own)")
    parser.add_argument("--n", type=int, default=50_000, help="transactions per worker run")
    parser.add_argument("--k", type=int, default=30, help="numeric attributes per event")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--window", type=float, default=0.005)
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    if args.cost:
        cost()
        return
    if args.worker:
        if not args.bootstrap:
            parser.error("--worker needs --bootstrap HOST:PORT")
        print(json.dumps(worker(args)))
        return
    simulator(args.customers, args.seed)
    print()
    anonymised_file(args.rows, args.seed)


if __name__ == "__main__":
    main()
