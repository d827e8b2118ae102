"""The retrainer under faults, on the real MLflow store (SQLite) and each label store backend
(SQLite, PostgreSQL): kill -9 at each step of a retrain, a restart mid-sequence, a registry
outage, and registry changes left half done."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from lifecycle.labelstore import LabelStore
from lifecycle.registry import CANDIDATE, CHAMPION, ModelRegistry
from lifecycle.retrainer import JOB_TAG, Retrainer
from lifecycle.retrainer_http import RetrainerMetrics, serve, status_of
from schemas.events import DriftAlert
from sentinel.settings import MlflowSettings, Settings
from tests.integration.lifecycle_support import (
    T0,
    EventLog,
    alert,
    alert_json,
    fault_settings,
    quick_train,
    tiny_model,
)
from tests.integration.test_closed_loop_parts import _labelled, _verdicts

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for the module (each test has its own model name)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


def _retrainer(settings: Settings, log: EventLog, registry: ModelRegistry | None = None
               ) -> Retrainer:
    """A fresh retrainer on the same files: what a restarted process builds."""
    store = LabelStore(settings.label_store_location)
    return Retrainer(settings, store, registry or ModelRegistry(settings), log,
                     train=quick_train)


class _Killed(BaseException):
    """Stops an in-process retrainer where it stands (no ``except Exception`` catches it)."""


def _run_until_killed(settings: Settings, log: EventLog, step: str, first: DriftAlert,
                      real_kill: bool) -> None:
    if real_kill:  # a process killed with SIGKILL at the step
        child = subprocess.run(
            [sys.executable, "-m", "tests.integration.retrainer_child", step,
             alert_json(first), str(log.path)], env={**os.environ, **settings.as_env()},
            cwd=ROOT, capture_output=True, timeout=180, check=False)
        assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
        return

    def stop_at(name: str) -> None:
        if name == step:
            raise _Killed(name)

    doomed = _retrainer(settings, log)  # the same code as the child, stopped in-process
    doomed.on_step = stop_at
    with pytest.raises(_Killed):
        doomed.start()
        doomed.state.enqueue_alerts([first])
        stop_at("queued")
        for queued in doomed.state.queued_alerts():
            doomed.on_alert(queued)


# a real kill -9 where a crash leaves the registry and the store apart (a process start costs
# ~5 s, and 15-30 s on a loaded machine), the same code stopped in-process elsewhere; on
# PostgreSQL one real kill (its server drops the dead process's connection)
@pytest.mark.parametrize(("step", "real_kill"), [
    ("queued", False), ("job_started", False), ("trained", False), ("registered", True),
    ("alias_set", True)])
def test_kill_9_at_each_step_of_a_retrain_then_a_restart_completes_it_once(
        tmp_path: Path, step: str, real_kill: bool, mlflow_uri: str,
        store_uri: str | None) -> None:
    """The alert read (queued, offset committed); its retrain recorded; the model trained
    and logged; the version registered; @candidate set: kill there, start again, and there
    is exactly one candidate, and each event is published once."""
    settings = fault_settings(tmp_path / "data", mlflow_uri, store_uri)
    log = EventLog(tmp_path / "events.jsonl")
    first = alert("a1")
    if store_uri and step == "alias_set":  # one real kill per backend beyond SQLite's two
        real_kill = False
    _run_until_killed(settings, log, step, first, real_kill)

    retrainer = _retrainer(settings, log)
    retrainer.start()  # what `sentinel retrainer` does on start, then the queued alerts
    for queued in retrainer.state.queued_alerts():
        retrainer.on_alert(queued)
    assert retrainer.on_alert(first).reason == "redelivered"
    registry = ModelRegistry(settings)
    versions = registry.versions()
    assert len(versions) == 1 and versions[0].tags.get(JOB_TAG), versions
    assert registry.resolve(CANDIDATE).version == versions[0].version
    assert sorted(log.actions()) == [("alias_set", "1"), ("registered", "1")]
    assert len({e.event_id for e in log.events()}) == 2
    assert retrainer.state.open_jobs() == []
    assert retrainer.guardrails.retrains_today(T0) == 1  # one retrain counted, not two
    if step in ("registered", "alias_set"):
        assert [d[0] for d in retrainer.state.decisions("reconciled")] == ["reconciled"]


def _followups(retrainer: Retrainer) -> list[datetime]:
    """The follow-up retrains due, as the retrainer keeps them in its durable state."""
    return [datetime.fromisoformat(t) for t in retrainer.state.load_state()["followups"]]


def _tick_until(retrainer: Retrainer, now: datetime, done: Callable[[], bool],
                timeout_s: float = 30.0) -> None:
    """Tick until ``done()``: a tick within the registry's retry backoff (at most
    registry_retry_max_s after a failure) leaves the registry alone."""
    deadline = time.monotonic() + timeout_s
    retrainer.tick(now)
    while not done():
        assert time.monotonic() < deadline, "the retrainer never retried the registry"
        time.sleep(0.01)
        retrainer.tick(now)


def test_a_restart_mid_sequence_resumes_guardrails_follow_ups_and_judged_champion(
        tmp_path: Path, mlflow_uri: str, store_uri: str | None) -> None:
    settings = fault_settings(tmp_path / "data", mlflow_uri, store_uri, retrain_cooldown_s=3600,
                              retrain_followups=2,
                              retrain_followup_hours=6, retrain_daily_cap=3,
                              rollback_min_labels=100)
    log = EventLog(tmp_path / "events.jsonl")
    first = _retrainer(settings, log)
    assert first.on_alert(alert("a1", "score", T0)).retrain
    followups = _followups(first)
    assert len(followups) == 2

    second = _retrainer(settings, log)  # restarted: the same memory
    assert _followups(second) == followups and second.guardrails.retrains_today(T0) == 1
    assert second.on_alert(alert("a2", "amount", T0 + timedelta(minutes=10))).reason == \
        "cooldown"
    assert second.on_alert(alert("a1", "score", T0)).reason == "redelivered"
    second.tick(followups[0])  # the first follow-up is due: v2
    assert [a for a, _ in log.actions()].count("registered") == 2

    third = _retrainer(settings, log)
    assert _followups(third) == followups[1:]
    assert third.guardrails.retrains_today(followups[0]) == 2
    assert [s for _, s, _ in third.state.decisions("alert")] == ["a1", "a2"]
    assert len(third.state.decisions("retrain")) == 2

    # the champion judged for rollback stays judged across a restart
    registry = ModelRegistry(settings)
    registry.promote("1")
    registry.promote("2")
    for version, seed in (("1", 5), ("2", 6)):
        ids, y = _labelled(third.store, 300, seed, f"v{version}")
        third.store.add_verdicts(_verdicts(ids, version, np.where(y, 0.9, 0.1)))
    assert third.check_rollback().action == "keep"
    assert len(third.state.decisions("rollback_check")) == 1
    restarted = _retrainer(settings, log)
    again = restarted.check_rollback()  # only the every-tick live guards run (issue 24)
    assert again is None or again.reason.startswith("live"), again
    assert len(restarted.state.decisions("rollback_check")) == 1  # not judged twice


def test_a_registry_outage_is_retried_and_never_burns_the_retrain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        mlflow_uri: str, store_uri: str | None) -> None:
    """The registry points at an address that refuses connections (with credentials in its
    URI): no exception, /ready and the metric say down, the URI's password is printed
    nowhere; restored, the retrain held open completes, counted once."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    settings = fault_settings(tmp_path / "data", mlflow_uri, store_uri,
                              registry_retry_initial_s=0.01,
                              registry_retry_max_s=0.02)
    down_uri = "http://alice:s3cret@127.0.0.1:9"
    down = ModelRegistry(settings.model_copy(update={"mlflow": MlflowSettings(
        tracking_uri=down_uri, registry_uri=down_uri, model_name=settings.mlflow.model_name)}))
    log = EventLog(tmp_path / "events.jsonl")
    retrainer = _retrainer(settings, log, registry=down)
    caplog.set_level(logging.WARNING)

    assert retrainer.on_alert(alert("a1")).retrain  # decided; the registry fails under it
    assert not retrainer.registry_up and retrainer.registry_failures == 1
    assert len(retrainer.state.open_jobs()) == 1
    for minutes in (5, 10, 15):  # the outage lasts: ticks retry, nothing raises
        failures = retrainer.registry_failures
        _tick_until(retrainer, T0 + timedelta(minutes=minutes),
                    lambda before=failures: retrainer.registry_failures > before)
    assert retrainer.registry_failures >= 4 and not retrainer.registry_up
    assert retrainer.on_alert(alert("a2", "score", T0 + timedelta(minutes=5))).reason == \
        "duplicate"  # the same shift: its retrain is still to come, not lost
    state = status_of(retrainer, lambda: True)
    assert state["registry"] == "down" and not state["ready"]
    server = serve(0, RetrainerMetrics(retrainer, lambda: True), lambda: status_of(
        retrainer, lambda: True), host="127.0.0.1")
    port = server.server_address[1]
    try:
        with pytest.raises(urllib.error.HTTPError) as ready:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5)
        assert ready.value.code == 503
        body = json.loads(ready.value.read())
        metrics = urllib.request.urlopen(
            f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
    assert body["registry"] == "down" and "alice:s3cret" not in body["registry_error"]
    assert "sentinel_registry_up 0.0" in metrics
    printed = caplog.text + body["registry_error"]
    assert "s3cret" not in printed and "http://***@127.0.0.1:9" in printed
    assert log.events() == []

    retrainer.registry = ModelRegistry(settings)  # the registry is back
    _tick_until(retrainer, T0 + timedelta(minutes=30), lambda: retrainer.registry_up)
    assert retrainer.registry_up and retrainer.state.open_jobs() == []
    assert sorted(log.actions()) == [("alias_set", "1"), ("registered", "1")]
    assert retrainer.guardrails.retrains_today(T0) == 1
    assert retrainer.retrains["registered"] == 1


def test_no_promotion_without_evidence_and_half_done_changes_are_completed_on_start(
        tmp_path: Path, mlflow_uri: str, store_uri: str | None) -> None:
    settings = fault_settings(tmp_path / "data", mlflow_uri, store_uri)
    log = EventLog(tmp_path / "events.jsonl")
    registry = ModelRegistry(settings)
    logged = registry.log_run(tiny_model(), params={}, metrics={}, tags={})
    first = registry.register(logged, reason="first").version
    retrainer = _retrainer(settings, log)
    retrainer.tick(T0)  # no @champion: the candidate waits for a person
    assert registry.resolve(CHAMPION) is None and registry.resolve(CANDIDATE).version == first
    assert retrainer.promotions["waiting_for_first_champion"] == 1 and log.events() == []

    registry.promote(first, reason="sentinel promote")  # the first champion: a person's
    second = registry.register(registry.log_run(tiny_model(), params={}, metrics={}, tags={}),
                               reason="second").version
    # `sentinel promote` stopped between moving @champion and dropping @candidate
    registry.tag_version(second, {"sentinel.previous_champion": first})
    registry.client.set_registered_model_alias(registry.name, CHAMPION, second)
    _retrainer(settings, log).start()
    assert registry.resolve(CANDIDATE) is None and registry.resolve(CHAMPION).version == second
    assert ("promoted", second) in log.actions()
    assert [e.previous_version for e in log.events() if e.action == "promoted"] == [first]

    # a rollback recorded, @champion moved back, then killed: the tag and event follow
    restarted = _retrainer(settings, log)
    with restarted.state.transaction():
        restarted.state.add_job("rollback", {"from": second, "to": first, "reason": "live AP",
                                             "evidence": {"live_ap": 0.1}})
    registry.client.set_registered_model_alias(registry.name, CHAMPION, first)
    _retrainer(settings, log).start()
    rolled = [e for e in log.events() if e.action == "rolled_back"]
    assert [(e.version, e.previous_version) for e in rolled] == [(first, second)]
    assert rolled[0].evidence == {"live_ap": 0.1}
    assert registry.versions()[1].tags.get("sentinel.rolled_back") == "true"
    assert Counter(a for a, _ in log.actions()) == {"promoted": 1, "rolled_back": 1}

    # a job that cannot succeed (its version is gone) is closed as failed; the rest goes on
    broken = _retrainer(settings, log)
    with broken.state.transaction():
        broken.state.add_job("promote", {"version": "99", "previous": first, "reason": "x",
                                         "evidence": {}})
    broken.start()
    assert broken.state.open_jobs() == [] and broken.registry_up
    assert broken.state.jobs()[-1][:2] == ("promote", "failed")
    assert registry.resolve(CHAMPION).version == first
