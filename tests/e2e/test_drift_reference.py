"""The worker as a process compares the stream with its champion's training profile (issue 22):
a champion without a profile is served with PSI off; after the swap to one with a profile, an
unshifted stream raises no ``psi_reference`` alert and a stream whose amounts moved away from
the training amounts raises exactly one."""

from __future__ import annotations

import re
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drift.reference_profile import (
    ARTIFACT_DIR,
    Distribution,
    ReferenceProfile,
    write_profile,
)
from lifecycle.registry import ModelRegistry
from schemas import DriftAlert, Transaction, Verdict
from sentinel.infra.worker_process import free_port
from tests.e2e.worker_support import (
    http,
    log_tail,
    produce,
    small_model,
    start_worker,
    stop_worker,
    transactions,
    wait_ready,
    worker_env,
)
from tests.plugin import TopicCollector

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PSI_ENV = {"SENTINEL_DRIFT__PSI_WINDOW_EVENTS": "2000", "SENTINEL_DRIFT__PSI_EVERY_EVENTS": "500",
           "SENTINEL_DRIFT__PSI_MIN_EVENTS": "1000"}


def _register_with_profile(registry: ModelRegistry, tmp_path: Path) -> str:
    """A version whose run holds a reference profile of the amounts it was 'trained' on: the
    same generator as the test streams (seeded), 20,000 payments."""
    training = transactions(20_000, seed=70)
    profile = ReferenceProfile({"amount": Distribution.from_values([t.amount for t in training])})
    logged = registry.log_run(small_model(7), params={}, metrics={}, tags={},
                              artifacts={ARTIFACT_DIR: write_profile(profile, tmp_path / "p")})
    return registry.register(logged, reason="test").version


def _metric(text: str, name: str, labels: str = "") -> float | None:
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def _shifted(txs: list[Transaction], factor: float) -> list[Transaction]:
    return [t.model_copy(update={"amount": round(t.amount * factor, 2)}) for t in txs]


def test_worker_alerts_once_when_amounts_leave_the_champions_training_profile(
        worker_settings, tmp_path: Path) -> None:
    settings, registry = worker_settings(champion="1", candidate=None)  # v1: no profile
    name = settings.mlflow.model_name
    version = _register_with_profile(registry, tmp_path)
    registry.client.delete_registered_model_alias(name, "candidate")
    port = free_port()
    env = worker_env(settings, port, f"w-{uuid.uuid4().hex[:8]}") | PSI_ENV
    env["SENTINEL_LOG_LEVEL"] = "INFO"
    proc = start_worker(env, tmp_path / "worker.log")
    verdicts = TopicCollector(settings, "verdicts", Verdict, proc)
    alerts = TopicCollector(settings, "drift_alerts", DriftAlert, proc)

    def metrics() -> str:
        status, text = http(port, "/metrics")
        assert status == 200
        return str(text)

    def psi_alerts(items: list[DriftAlert]) -> list[DriftAlert]:
        return [a for a in items if a.detector == "psi_reference"]

    published = ("sentinel_drift_alerts_total", '{detector="psi_reference",signal="amount"}')
    try:
        wait_ready(port, proc)
        # a champion logged without a profile: served, PSI off, one log line and a metric
        assert _metric(metrics(), "sentinel_drift_reference_profile") == 0.0
        assert "no reference profile, PSI drift monitoring off version=1" in (
            (tmp_path / "worker.log").read_text())
        assert _metric(metrics(), "sentinel_drift_psi_threshold") == 0.2

        registry.client.set_registered_model_alias(name, "champion", version)
        deadline = time.monotonic() + 30
        while _metric(metrics(), "sentinel_drift_reference_profile") != 1.0:
            assert time.monotonic() < deadline, log_tail(tmp_path)
            time.sleep(0.3)

        steady = transactions(3000, seed=71)  # the profile's world
        produce(settings, steady)
        ids = {t.transaction_id for t in steady}
        verdicts.until(lambda v: ids <= {x.transaction_id for x in v}, 60)
        # a batch's verdicts and alerts are published together: every verdict is out, and no
        # psi_reference alert was
        assert {v.model_version for v in verdicts.items if v.transaction_id in ids} == {version}
        text = metrics()
        steady_psi = _metric(text, "sentinel_drift_psi", '{feature="amount"}')
        assert steady_psi is not None and steady_psi < 0.05, text
        assert _metric(text, *published) is None, text

        moved = _shifted(transactions(3000, seed=72, start=datetime(2024, 3, 5, tzinfo=UTC)),
                         4.0)
        produce(settings, moved)
        ids = {t.transaction_id for t in moved}
        verdicts.until(lambda v: ids <= {x.transaction_id for x in v}, 60)
        text = metrics()
        assert _metric(text, *published) == 1.0, log_tail(tmp_path)  # one shift, one alert
        moved_psi = _metric(text, "sentinel_drift_psi", '{feature="amount"}')
        assert moved_psi is not None and moved_psi > 0.2, text
        fired = psi_alerts(alerts.until(lambda a: bool(psi_alerts(a)), 30))
        assert [(a.signal, a.model_version) for a in fired] == [("amount", version)], fired
        assert fired[0].statistic > 0.2 and fired[0].reference["threshold"] == 0.2
        assert fired[0].event_time >= datetime(2024, 3, 5, tzinfo=UTC)  # the moved stream's
    finally:
        stop_worker(proc, signal.SIGKILL)
        verdicts.close()
        alerts.close()
