"""The timeline: registrations, promotions, rollbacks and drift alerts, newest first, each
with a link to the MLflow run of the version it concerns. Pure.

>>> run_url("http://mlflow.example:5000/", "3", "ab12")
'http://mlflow.example:5000/#/experiments/3/runs/ab12'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from schemas import DriftAlert, ModelEvent

KINDS = {"registered": "registration", "promoted": "promotion", "rolled_back": "rollback",
         "rejected": "rejection", "alias_set": "alias moved"}
DRIFT = "drift alert"


@dataclass(frozen=True)
class Marker:
    at: datetime
    kind: str
    model_version: str
    detail: str
    run: str | None = None  # the MLflow run's URL

    def row(self) -> dict[str, str]:
        return {"at (UTC)": self.at.strftime("%Y-%m-%d %H:%M:%S"), "event": self.kind,
                "version": self.model_version, "detail": self.detail, "MLflow run": self.run or ""}


def timeline(events: Sequence[ModelEvent], alerts: Sequence[DriftAlert],
             runs: Mapping[str, str] | None = None) -> list[Marker]:
    """Markers newest first; ``runs`` maps a model version to its run's URL."""
    runs = runs or {}
    markers = [Marker(e.at, KINDS.get(e.action, e.action), e.version,
                      _event_detail(e), runs.get(e.version))
               for e in events]
    markers += [Marker(a.detected_at, DRIFT, a.model_version or "",
                       f"{a.detector} on {a.signal}, statistic {a.statistic:.3g}",
                       runs.get(a.model_version or ""))
                for a in alerts]
    return sorted(markers, key=lambda m: m.at, reverse=True)


def _event_detail(event: ModelEvent) -> str:
    parts = []
    if event.previous_version:
        parts.append(f"from version {event.previous_version}")
    if event.alias:
        parts.append(f"@{event.alias}")
    if event.reason:
        parts.append(event.reason)
    return " · ".join(parts)


def run_url(ui_base: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI."""
    return f"{ui_base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
