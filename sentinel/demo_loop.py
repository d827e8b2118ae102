"""The closed loop, live: a new fraud pattern -> drift alert -> retrain -> shadow -> promotion.

The last part of ``sentinel demo``. A small simulated world (300 cards, labels one day after
the payment, card testing at a high intensity from day 6) streams through a worker process of
its own; the worker's drift monitor alerts on the drift-alerts topic; the retrainer
(``training.retrainer_kafka.run``, the code of ``sentinel retrainer``, here in a thread)
retrains on the store it has consumed and registers ``@candidate``; the worker shadow-scores
the candidate; the retrainer's promotion evaluator promotes it on evidence; the worker's next
verdicts carry the new version. The same stages as ``tests/e2e/test_closed_loop.py``.

Everything is private to the run (topic prefix, model name, worker app id and web port, data
directory, consumer groups), so it never collides with the first part of the demo.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from schemas import DriftAlert, LabelFeedback, ShadowResult, Transaction, Verdict, decode
from sentinel.errors import SentinelError
from sentinel.infra.admin import create_topics
from sentinel.infra.kafka_io import EventConsumer, EventProducer
from sentinel.infra.worker_process import WorkerProcess, free_port
from sentinel.settings import Settings
from sentinel.topics import catalog

logger = logging.getLogger(__name__)

Say = Callable[[str], None]


@dataclass(frozen=True)
class LoopWorld:
    """The simulated world of the loop: small so that the whole loop takes a few minutes."""

    customers: int = 300
    days: int = 14
    onset_day: int = 6
    phase1_days: int = 12  # streamed before the retrain; the rest feeds the shadow comparison
    intensity: float = 10.0
    seed: int = 2  # seed 1: the pre-shift champion loses to the logistic baseline


@dataclass(frozen=True)
class LoopTimeouts:
    """Seconds each stage may take before the loop gives up (and says which stage)."""

    ready: float = 120.0
    alert: float = 150.0
    candidate: float = 150.0
    shadow: float = 120.0
    promotion: float = 90.0
    verdict: float = 60.0


class StageTimeout(Exception):
    """A stage of the loop did not complete in time (the demo reports it and goes on)."""


@dataclass
class Outputs:
    """What the loop's reader has seen on the worker's output topics."""

    alerts: list[DriftAlert] = field(default_factory=list)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    shadows: list[ShadowResult] = field(default_factory=list)


def loop_settings(settings: Settings, bootstrap: str) -> Settings:
    """Settings private to one run of the loop, with drift and retrain knobs for a small world.

    The MLflow store stays the demo's (a model name of its own); the data directory is new so
    that the retrainer's label store starts empty.
    """
    run = time.strftime("%Y%m%d%H%M%S")
    data_dir = settings.data_dir.resolve() / f"loop-{run}"
    return settings.model_copy(update={
        "data_dir": data_dir,
        "kafka": settings.kafka.model_copy(update={"bootstrap_servers": bootstrap}),
        "topics": settings.topics.model_copy(update={
            "prefix": f"{settings.topics.prefix}loop{run}."}),
        "mlflow": settings.mlflow.model_copy(update={
            "model_name": f"sentinel-loop-{run}", "tracking_uri": settings.tracking_uri,
            "registry_uri": settings.registry_uri}),
        "worker": settings.worker.model_copy(update={
            "app_id": f"sentinel-loop-{run}", "web_port": free_port()}),
        "scoring": settings.scoring.model_copy(update={"model_poll_interval_s": 1.0}),
        "log_level": "WARNING",
        "features": settings.features.model_copy(update={"label_delay_days": 1}),
        "drift": settings.drift.model_copy(update={
            "grace_events": 500, "min_block_events": 5, "alert_cooldown_events": 1_000_000,
            "retrainer_port": 0, "retrain_min_labels": 1500,
            "retrain_cooldown_s": 30 * 86_400,  # one shift, one retrain
            "retrain_test_days": 1, "promotion_interval_s": 2.0, "promotion_min_labels": 300,
            "promotion_min_frauds": 10, "promotion_min_live": 100}),
    })


def follow(settings: Settings, out: Outputs, stop: threading.Event) -> None:
    """Read drift alerts, verdicts and shadow results into ``out`` until ``stop`` is set."""
    kinds: dict[str, type[Any]] = {settings.topics.name("drift_alerts"): DriftAlert,
                                   settings.topics.name("verdicts"): Verdict,
                                   settings.topics.name("shadow"): ShadowResult}
    with EventConsumer(settings.librdkafka(), f"loop-reader-{uuid.uuid4().hex[:6]}",
                       list(kinds)) as consumer:
        while not stop.is_set():
            for msg in consumer.poll(5000, 0.3):
                event = decode(kinds[str(msg.topic())], msg.value() or b"")
                if isinstance(event, DriftAlert):
                    out.alerts.append(event)
                elif isinstance(event, Verdict):
                    out.verdicts[event.transaction_id] = event
                else:
                    out.shadows.append(event)


LIVE_RATE = 2000  # messages per second: live traffic, not a backlog (see produce)


def produce(settings: Settings, rows: pd.DataFrame, labels: pd.DataFrame,
            rate: float = LIVE_RATE) -> None:
    """Transactions in event-time order, then the labels that have matured by then, paced at
    ``rate`` messages per second like live traffic.

    Paced, because the drift detectors work in event-time blocks and drop events that arrive
    more than one block late (``DriftMonitor.late_events``): sent all at once, the
    stream is a backlog that the worker fetches partition by partition, one partition's events
    running days of event time ahead of another's, and the detectors then saw a different,
    partial stream on every run (detection 334-3,022 events after the onset, and no alert at
    all in about one run of four)."""
    t = settings.topics
    interval, start = 1.0 / rate, time.monotonic()
    with EventProducer(settings.librdkafka()) as producer:
        def paced(i: int) -> None:
            if i % 100 == 0 and (ahead := start + i * interval - time.monotonic()) > 0:
                time.sleep(ahead)

        for i, r in enumerate(rows.itertuples(index=False)):
            paced(i)
            producer.send(t.name("transactions"), r.card_id, Transaction(
                transaction_id=r.transaction_id, card_id=r.card_id, terminal_id=r.terminal_id,
                amount=r.amount, event_time=r.event_time))
        for j, r in enumerate(labels.itertuples(index=False), start=len(rows)):
            paced(j)
            producer.send(t.name("labels"), r.terminal_id, LabelFeedback(
                transaction_id=r.transaction_id, card_id=r.card_id, terminal_id=r.terminal_id,
                is_fraud=bool(r.is_fraud), transaction_time=r.event_time,
                reported_at=r.label_time, source="simulator"))


def wait_for(what: str, check: Callable[[], Any], timeout_s: float,
              alive: Callable[[], bool] = lambda: True) -> Any:
    """Poll ``check`` until it returns something truthy; StageTimeout after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        if not alive():
            raise StageTimeout(f"{what}: a process of the loop stopped")
        if time.monotonic() > deadline:
            raise StageTimeout(f"{what}: nothing within {timeout_s:.0f}s")
        time.sleep(0.5)
    return result


def _train_champion(settings: Settings, history: pd.DataFrame) -> Any:
    """The champion before the shift: trained on the days before the new pattern appears."""
    from training.pipeline import TrainingConfig, run_training
    from training.split import SplitConfig

    config = TrainingConfig(split=SplitConfig(train_days=3, delay_days=1, test_days=1,
                                              validation_days=1, anchor="end"))
    return run_training(settings, history, source="demo loop: before the shift",
                        config=config, promote=True, reason="demo loop: first champion")


def run_closed_loop(settings: Settings, bootstrap: str, say: Say) -> bool:
    """Run the closed loop on the broker at ``bootstrap``; say one line per stage.

    Returns False (after saying why) when a stage does not complete in time or a process of
    the loop stops; never raises for that.
    """
    started = time.monotonic()
    settings = loop_settings(settings, bootstrap)
    try:
        return _run(settings, say, LoopWorld(), LoopTimeouts(), started)
    except (StageTimeout, SentinelError) as exc:
        say(f"   closed loop stopped after {time.monotonic() - started:.0f}s: {exc}")
        return False
    except Exception as exc:
        logger.exception("closed loop failed")
        say(f"   closed loop failed after {time.monotonic() - started:.0f}s: "
            f"{type(exc).__name__}: {exc}")
        return False


def _run(settings: Settings, say: Say, world: LoopWorld, limits: LoopTimeouts,
         started: float) -> bool:
    from training.registry import ModelRegistry
    from training.simulation import DriftScenario, SimulationConfig, simulate

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    create_topics(settings.librdkafka(), catalog(settings.topics))
    frame = simulate(SimulationConfig(
        n_customers=world.customers, n_terminals=2 * world.customers, n_days=world.days,
        seed=world.seed, label_delay_days=1,
        drift=DriftScenario("card_testing", world.onset_day, world.intensity)))
    frame = frame.sort_values("event_time", kind="stable").reset_index(drop=True)
    day0 = frame["event_time"].min().normalize()
    onset = day0 + timedelta(days=world.onset_day)
    cut = day0 + timedelta(days=world.phase1_days)
    phase1, phase2 = frame[frame["event_time"] < cut], frame[frame["event_time"] >= cut]
    say(f"   world: {world.customers} cards, {len(frame):,} payments over {world.days} days; "
        f"card testing (intensity {world.intensity:g}) from day {world.onset_day}; "
        f"topics {settings.topics.prefix}*, model {settings.mlflow.model_name}")

    registry = ModelRegistry(settings)
    first = _train_champion(settings, frame[frame["event_time"] < onset])
    if first.model is None:
        raise StageTimeout("the champion before the shift did not pass the training gate: "
                           + "; ".join(first.gate_reasons))
    champion = first.model.version
    say(f"   champion v{champion}: trained before the onset (3 days, tested on day "
        f"{world.onset_day - 1}; no card testing), AP {first.metrics['average_precision']:.3f} "
        f"(logistic baseline {first.baseline_metrics['average_precision']:.3f})")

    out, stop = Outputs(), threading.Event()
    retrainer: list[Any] = []
    with WorkerProcess(settings) as worker:
        reader = threading.Thread(target=follow, args=(settings, out, stop), daemon=True)
        retrain_thread = threading.Thread(target=lambda: retrainer.append(_retrainer(
            settings, stop)), daemon=True)
        try:
            worker.wait_ready(limits.ready)
            say(f"   worker {settings.worker.app_id} ready on port {worker.port}")
            reader.start()
            _stages(settings, say, world, limits, frame, phase1, phase2, onset, cut, champion,
                    registry, worker, out, retrain_thread, started)
        finally:
            stop.set()
            reader.join(10)
            if retrain_thread.is_alive():
                retrain_thread.join(30)
    say(f"   closed loop done in {time.monotonic() - started:.0f}s")
    return True


def _retrainer(settings: Settings, stop: threading.Event) -> Any:
    from training.retrainer_kafka import run

    return run(settings, serve_metrics=False, stop=stop,
               group_id=f"{settings.worker.app_id}-retrainer")


def _stages(settings: Settings, say: Say, world: LoopWorld, limits: LoopTimeouts,
            frame: pd.DataFrame, phase1: pd.DataFrame, phase2: pd.DataFrame, onset: datetime,
            cut: datetime, champion: str, registry: Any, worker: WorkerProcess, out: Outputs,
            retrain_thread: threading.Thread, started: float) -> None:
    t0 = time.monotonic()
    matured = phase1[phase1["label_time"] < cut].sort_values("label_time")
    produce(settings, phase1, matured)
    steady = int((phase1["event_time"] < onset).sum())
    say(f"1. traffic: {steady:,} steady payments, then {len(phase1) - steady:,} with the new "
        f"pattern ({int((phase1['fraud_scenario'] >= 4).sum())} card-testing payments); "
        f"{len(matured):,} labels")

    def new_alert() -> DriftAlert | None:
        return next((a for a in out.alerts if a.event_time >= onset), None)

    alert = wait_for("drift alert", new_alert, limits.alert, worker.alive)
    since = int(((frame["event_time"] >= onset) & (frame["event_time"] <= alert.event_time)).sum())
    early = sum(a.event_time < onset for a in out.alerts)
    say(f"2. drift alert from the worker: {alert.detector} on {alert.signal}, {since:,} events "
        f"({(alert.event_time - onset).total_seconds() / 3600:.1f} simulated h) after onset; "
        f"model v{alert.model_version}; false alarms before onset: {early} "
        f"[{time.monotonic() - t0:.0f}s]")

    retrain_thread.start()
    candidate = wait_for("candidate", lambda: registry.resolve("candidate"), limits.candidate,
                         retrain_thread.is_alive)
    ap = float(candidate.tags.get("sentinel.test_ap", "nan"))
    say(f"3. retrainer: trained on the newest labelled days -> v{candidate.version} is "
        f"@candidate (test AP {ap:.3f}; champion v{champion}) [{time.monotonic() - t0:.0f}s]")

    time.sleep(2.5)  # > the worker's model poll interval: it follows @candidate
    produce(settings, phase2, pd.concat([phase1[phase1["label_time"] >= cut], phase2])
            .sort_values("label_time"))

    def shadowed() -> list[ShadowResult] | None:
        mine = [s for s in out.shadows if s.candidate_version == candidate.version]
        if len(mine) >= 300:
            return mine
        # the backfilled evidence (training/backfill.py) can promote it before that
        champion_now = registry.resolve("champion")
        return mine if mine and champion_now and champion_now.version == candidate.version \
            else None

    shadows = wait_for("shadow results", shadowed, limits.shadow, worker.alive)
    agree = sum(s.agree for s in shadows) / len(shadows)
    say(f"4. shadow: v{candidate.version} scored beside v{champion} on {len(shadows):,} "
        f"payments, decisions agree on {agree:.1%} [{time.monotonic() - t0:.0f}s]")

    def promoted() -> Any:
        ref = registry.resolve("champion")
        # the retrainer moves the alias first, then tags the version with its evidence
        done = ref is not None and ref.version == candidate.version
        return ref if done and "sentinel.promotion.n" in ref.tags else None

    ref = wait_for("promotion", promoted, limits.promotion, retrain_thread.is_alive)
    e = {k.removeprefix("sentinel.promotion."): float(v) for k, v in ref.tags.items()
         if k.startswith("sentinel.promotion.") and _is_number(v)}
    say(f"5. promoted v{ref.version} on evidence: {e.get('n', 0):.0f} labelled payments "
        f"({e.get('backfilled', 0):.0f} backfilled), "
        f"{e.get('frauds', 0):.0f} frauds; AP {e.get('ap_champion', 0):.3f} -> "
        f"{e.get('ap_candidate', 0):.3f} (gain CI low {e.get('ap_gain_low', 0):+.3f}); recall at "
        f"{e.get('alert_rate', 0):.1%} alert rate {e.get('recall_champion', 0):.3f} -> "
        f"{e.get('recall_candidate', 0):.3f} [{time.monotonic() - t0:.0f}s]")

    time.sleep(2.5)
    tail = frame.iloc[-1]
    probe = Transaction(transaction_id=f"loop-probe-{uuid.uuid4().hex[:6]}", card_id=tail.card_id,
                        terminal_id=tail.terminal_id, amount=3.0,
                        event_time=tail.event_time + timedelta(minutes=5))
    with EventProducer(settings.librdkafka()) as producer:
        producer.send(settings.topics.name("transactions"), probe.card_id, probe)
    verdict = wait_for("verdict of the new champion",
                       lambda: out.verdicts.get(probe.transaction_id), limits.verdict,
                       worker.alive)
    say(f"6. worker now serves v{verdict.model_version}: next verdict {verdict.decision} "
        f"(score {verdict.score:.3f}) [{time.monotonic() - t0:.0f}s]")
    if verdict.model_version != candidate.version:
        raise StageTimeout(f"the verdict carries v{verdict.model_version}, "
                           f"not v{candidate.version}")


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True

