"""``sentinel demo``: the main job end to end on the local broker.

1. Kafka: the embedded broker (or the configured cluster) and the topic catalog.
2. Training: a simulated history; a champion (one training week) promoted, then a candidate
   (four training weeks) that must pass the data gate and beat the baseline and the champion.
3. The worker (`sentinel worker`) as a process, scoring with both.
4. A simulated stream with a few malformed events, and a live summary of the verdicts.
5. A synchronous `/predict`, the metrics, and a final reckoning: a verdict for every
   transaction, a shadow result for every verdict, every malformed event dead-lettered.

Each run uses its own topic prefix and model name so that runs never see each other's data.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from schemas import DeadLetter, ShadowResult, Verdict, decode
from sentinel.errors import SentinelError
from sentinel.infra.admin import create_topics
from sentinel.infra.kafka_io import EventConsumer, EventProducer
from sentinel.infra.runtime import ensure_kafka
from sentinel.infra.worker_process import WorkerProcess
from sentinel.redact import redact_uri
from sentinel.settings import Settings
from sentinel.topics import catalog

logger = logging.getLogger(__name__)

POISON = [
    b"{not json",
    b'{"schema_version": 1, "transaction_id": "bad-1", "card_id": "c1", "terminal_id": "t1", '
    b'"amount": -5, "event_time": "2018-08-20T10:00:00Z"}',
    b'{"schema_version": 9, "transaction_id": "bad-2", "card_id": "c1", "terminal_id": "t1", '
    b'"amount": 5, "event_time": "2018-08-20T10:00:00Z"}',
]


DECISIONS = ("approve", "review", "decline")


def _say(text: str) -> None:
    print(text, flush=True)


@dataclass
class Tally:
    """What the demo's consumer has seen on the output topics."""

    verdicts: dict[str, Verdict] = field(default_factory=dict)
    duplicates: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    shadow: int = 0
    agree: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


def _follow(settings: Settings, tally: Tally, stop: threading.Event) -> None:
    topics = {settings.topics.name(t): t for t in ("verdicts", "shadow", "dead_letters")}
    with EventConsumer(settings.librdkafka(), f"demo-reader-{uuid.uuid4().hex[:6]}",
                       list(topics)) as consumer:
        while not stop.is_set():
            for msg in consumer.poll(5000, 0.3):
                kind = topics[msg.topic() or ""]
                if kind == "verdicts":
                    verdict = decode(Verdict, msg.value())
                    if verdict.transaction_id in tally.verdicts:
                        tally.duplicates += 1
                        continue
                    tally.verdicts[verdict.transaction_id] = verdict
                    tally.decisions[verdict.decision] += 1
                    tally.versions[verdict.model_version] += 1
                    tally.latencies.append(verdict.latency_ms)
                elif kind == "shadow":
                    result = decode(ShadowResult, msg.value())
                    tally.shadow += 1
                    tally.agree += result.agree
                else:
                    tally.dead.append(decode(DeadLetter, msg.value()))


def _for_this_run(settings: Settings) -> Settings:
    run = time.strftime("%Y%m%d%H%M%S")
    prefix = f"{settings.topics.prefix}demo{run}."
    return settings.model_copy(update={
        "topics": settings.topics.model_copy(update={"prefix": prefix}),
        "mlflow": settings.mlflow.model_copy(update={"model_name": f"sentinel-demo-{run}"}),
        "worker": settings.worker.model_copy(update={"app_id": f"sentinel-demo-{run}"}),
    })


def _quiet_libraries() -> None:
    """The demo narrates; MLflow's and GX's own INFO/WARNING lines would drown it."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.WARNING)
    import great_expectations  # noqa: F401 - configures its loggers on import
    import mlflow  # noqa: F401 - likewise

    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("great_expectations", "mlflow", "alembic")):
            logging.getLogger(name).setLevel(logging.ERROR)


def _train(settings: Settings, history: Any) -> tuple[str, str]:
    from lifecycle.pipeline import TrainingConfig, run_training
    from lifecycle.registry import ModelRegistry
    from training.learners import BoosterParams
    from training.split import SplitConfig

    registry = ModelRegistry(settings)
    # The first champion is deliberately modest (an older week, a smaller model) so that the
    # candidate trained next, on the latest week with the full model, has something to beat.
    first = run_training(
        settings, history, source="demo simulation", registry=registry, promote=True,
        config=TrainingConfig(split=SplitConfig(train_days=7, train_start=date(2018, 6, 20)),
                              booster=BoosterParams(num_trees=100, num_leaves=15)),
        reason="demo: first champion",
    )
    if first.model is None:
        raise SentinelError("the first model did not pass the gates: " +
                            "; ".join(first.gate_reasons))
    _say(f"   champion  v{first.model.version}: week of 2018-06-20, 100 trees of 15 leaves  "
         f"AP {first.metrics['average_precision']:.3f}  AUC {first.metrics['roc_auc']:.3f}  "
         f"(logistic baseline AP {first.baseline_metrics['average_precision']:.3f})")
    second = run_training(settings, history, source="demo simulation", registry=registry,
                          reason="demo: candidate on the latest week")
    ap = second.metrics["average_precision"]
    if second.model is None:
        _say(f"   candidate rejected by the training gate (AP {ap:.3f}): "
             + "; ".join(second.gate_reasons))
        return first.model.version, ""
    _say(f"   candidate v{second.model.version}: week of 2018-07-25, 400 trees  AP {ap:.3f}  "
         f"AUC {second.metrics['roc_auc']:.3f}  -> @candidate (shadow)")
    return first.model.version, second.model.version


def run(settings: Settings, args: argparse.Namespace) -> int:
    from training.producer import produce_history
    from training.simulation.config import SimulationConfig
    from training.simulation.simulator import simulate

    started = time.monotonic()
    if not args.verbose:
        _quiet_libraries()
    _say("== 1. Kafka")
    bootstrap = ensure_kafka(settings)
    settings = _for_this_run(settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"bootstrap_servers": bootstrap}),
        "log_level": "WARNING"}))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    create_topics(settings.librdkafka(), catalog(settings.topics))
    _say(f"   broker {bootstrap}; topics {settings.topics.prefix}* created")

    _say("== 2. Training (simulated history, MLflow registry, data and training gates)")
    history = simulate(SimulationConfig(
        n_customers=args.customers, n_terminals=2 * args.customers, seed=7,
        label_delay_days=settings.features.label_delay_days))
    _say(f"   simulated {len(history):,} transactions, {history['is_fraud'].mean():.2%} fraud")
    champion, candidate = _train(settings, history)

    _say("== 3. Worker")
    tally, stop = Tally(), threading.Event()
    follower = threading.Thread(target=_follow, args=(settings, tally, stop), daemon=True)
    with WorkerProcess(settings) as worker:
        try:
            worker.wait_ready(timeout_s=120)
            _say(f"   ready on http://127.0.0.1:{worker.port} (log {worker.log})")
            follower.start()
            code = _stream(settings, history, tally, args, worker, champion, candidate,
                           produce_history)
        finally:
            stop.set()
    if args.closed_loop:
        from cli.demo_loop import run_closed_loop

        _say("== 6. Closed loop: new fraud pattern -> drift alert -> retrain -> shadow "
             "-> promotion")
        if not run_closed_loop(settings, bootstrap, _say):
            code = code or 1
    _say(f"== done in {time.monotonic() - started:.0f}s; "
         f"MLflow store {redact_uri(settings.tracking_uri)}, topics {settings.topics.prefix}*")
    return code


def _stream(settings: Settings, history: Any, tally: Tally, args: argparse.Namespace,
            worker: WorkerProcess, champion: str, candidate: str, produce_history: Any) -> int:
    live = history[history["event_time"] >= "2018-08-15"].head(args.count)
    _say(f"== 4. Stream {len(live):,} transactions from 2018-08-15 at {args.rate:.0f}/s "
         f"(+{len(POISON)} malformed) and follow the verdicts")
    conf = settings.librdkafka()
    sender = threading.Thread(target=_send, daemon=True, args=(
        conf, settings, live, args.rate, produce_history))
    t0 = time.monotonic()
    sender.start()
    expected = len(live)
    deadline = t0 + expected / args.rate + 120
    promoted = False
    while time.monotonic() < deadline:
        time.sleep(2)
        n = len(tally.verdicts)
        decisions = " ".join(f"{d} {tally.decisions[d]:,}" for d in DECISIONS)
        agreement = f"{tally.agree / tally.shadow:.1%}" if tally.shadow else "-"
        _say(f"   t={time.monotonic() - t0:5.1f}s verdicts {n:,}/{expected:,} "
             f"({n / (time.monotonic() - t0):,.0f}/s) | {decisions} | shadow {tally.shadow:,} "
             f"agree {agreement} | dead letters {len(tally.dead)}")
        if candidate and not promoted and n >= expected // 2:
            promoted = _promote(settings, candidate)
        if n >= expected and len(tally.dead) >= len(POISON):
            break
    sender.join(5)

    _say("== 5. Synchronous scoring and metrics")
    card = str(live["card_id"].iloc[0])
    status, body = worker.http("/predict", {"id": card, "amount": 150000.0})
    _say(f"   POST /predict {{\"id\": \"{card}\", \"amount\": 150000.0}} -> {status} {body}")
    status, metrics = worker.http("/metrics")
    wanted = ("sentinel_transactions_total", "sentinel_dead_letters_total",
              "sentinel_shadow_results_total", "sentinel_model_info")
    for line in str(metrics).splitlines():
        if line.startswith(wanted):
            _say(f"   {line}")

    latencies = sorted(tally.latencies) or [0.0]
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    missing = expected - len(tally.verdicts)
    _say("== Summary")
    _say(f"   verdicts {len(tally.verdicts):,} of {expected:,} transactions (missing {missing}, "
         f"duplicates {tally.duplicates}); by model version {dict(tally.versions)}")
    _say(f"   decisions {dict(tally.decisions)}; event-to-verdict latency p50 {p50:.1f} ms, "
         f"p99 {p99:.1f} ms")
    _say(f"   shadow results {tally.shadow:,} (candidate v{candidate or '-'} vs champion "
         f"v{champion}), agreement {tally.agree / max(tally.shadow, 1):.1%}")
    for dead in tally.dead:
        _say(f"   dead letter @{dead.source_topic}[{dead.source_partition}]:{dead.source_offset}"
             f" {dead.error_type}: {dead.reason[:90]}")
    ok = missing == 0 and len(tally.dead) == len(POISON)
    _say("   every transaction has a verdict and every malformed event is dead-lettered: "
         + ("yes" if ok else "NO"))
    return 0 if ok else 1


def _promote(settings: Settings, candidate: str) -> bool:
    """Promote the candidate mid-stream: the worker swaps models without pausing."""
    from cli.data import model_event_publisher
    from lifecycle.registry import ModelRegistry

    ModelRegistry(settings, publish=model_event_publisher(settings)).promote(
        candidate, reason="demo: promoted mid-stream")
    _say(f"   >>> sentinel promote: v{candidate} is now @champion (live swap, no pause)")
    return True


def _send(conf: dict[str, Any], settings: Settings, live: Any, rate: float,
          produce_history: Any) -> None:
    with EventProducer(conf) as producer:
        for poison in POISON:
            producer.send(settings.topics.name("transactions"), b"demo-poison", poison)
        produce_history(producer, live, settings.topics.name("transactions"),
                        settings.topics.name("labels"), rate=rate)
