"""Shared by the retrainer fault tests and their child process: a quick trainer on the real
registry, settings, alerts and an event log in a file (what two processes both publish)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from pydantic import SecretStr

from schemas import decode, encode
from schemas.events import DriftAlert, ModelEvent
from sentinel.settings import DriftSettings, LabelStoreSettings, MlflowSettings, Settings
from training.learners import BoosterParams, fit_booster
from training.model import FraudModel, Thresholds

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def tiny_model(seed: int = 0) -> FraudModel:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 2))
    y = (X[:, 0] + rng.normal(scale=0.5, size=300) > 1.0).astype(int)
    model = fit_booster(X, y, ("amount", "velocity"),
                        BoosterParams(num_trees=3, num_leaves=4, min_child_samples=5, seed=seed))
    return model.with_thresholds(Thresholds(review=0.5, decline=0.8))


def quick_train(settings: Settings, frame: Any, labels: Any, *, reason: str, registry: Any,
                version_tags: dict[str, str], **_: Any) -> SimpleNamespace:
    """The retrainer's train contract without the pipeline: log a tiny model, register it
    through the registry the retrainer gives (its outbox and step hook)."""
    logged = registry.log_run(tiny_model(), params={}, metrics={}, tags={})
    ref = registry.register(logged, reason=reason, tags=version_tags)
    return SimpleNamespace(status="registered", model=ref)


def fault_settings(data_dir: Path, tracking_uri: str | None = None,
                   store_uri: str | None = None, **drift: Any) -> Settings:
    """Settings for one test: its own data directory and model name; ``tracking_uri`` shares
    one MLflow store between tests (creating one costs seconds); ``store_uri`` is the label
    store's database (None: SQLite in the data directory)."""
    base: dict[str, Any] = {"retrain_min_labels": 0, "promotion_backfill": False,
                            "retrainer_port": 0, "promotion_interval_s": 3600}
    return Settings(data_dir=data_dir, mlflow=MlflowSettings(
        tracking_uri=tracking_uri, model_name=f"faults-{data_dir.parent.name}"),
        drift=DriftSettings(**(base | drift)),
        label_store=LabelStoreSettings(uri=SecretStr(store_uri) if store_uri else None))


def alert(alert_id: str, signal: str = "score", at: datetime = T0) -> DriftAlert:
    return DriftAlert(alert_id=alert_id, detector="adwin", signal=signal, statistic=5.0,
                      reference={}, current={"blocks": 2.0}, event_time=at, detected_at=at,
                      events_seen=1000)


class EventLog:
    """ModelEvents appended to a file, one JSON per line, flushed to disk at once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, event: ModelEvent) -> None:
        with self.path.open("ab") as f:
            f.write(encode(event) + b"\n")

    def events(self) -> list[ModelEvent]:
        if not self.path.exists():
            return []
        return [decode(ModelEvent, line) for line in self.path.read_bytes().splitlines()]

    def actions(self) -> list[tuple[str, str]]:
        return [(e.action, e.version) for e in self.events()]


def alert_json(a: DriftAlert) -> str:
    return json.dumps(json.loads(encode(a)))
