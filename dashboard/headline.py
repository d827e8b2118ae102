"""Status at a glance: the headline numbers, each with the objective it is coloured against,
the models serving, and the alerts Prometheus has pending or firing."""

from __future__ import annotations

from dataclasses import dataclass, field

from dashboard import objectives as obj
from dashboard.prometheus import Alert, PrometheusAPI, Sample

LATENCY = "sentinel_event_to_verdict_latency_seconds_bucket"


@dataclass(frozen=True)
class Tile:
    """One headline number: how to query it, how to show it, what it must keep."""

    key: str
    title: str
    expr: str
    unit: str = ""
    scale: float = 1.0
    digits: int = 1
    objective: obj.Objective | None = None


TILES: tuple[Tile, ...] = (
    Tile("verdicts", "Verdicts", "sum(rate(sentinel_verdicts_total[5m]))", " /s",
         objective=obj.VERDICTS),
    Tile("throughput", "Throughput", "sum(rate(sentinel_transactions_total[1m]))", " tx/s"),
    Tile("flag_rate", "Flag rate", "avg(sentinel_fraud_rate)", " %", 100, 2),
    Tile("latency_p50", "Latency p50",
         f"histogram_quantile(0.50, sum by (le) (rate({LATENCY}[5m])))", " ms", 1000,
         objective=obj.LATENCY_P50),
    Tile("latency_p99", "Latency p99",
         f"histogram_quantile(0.99, sum by (le) (rate({LATENCY}[5m])))", " ms", 1000,
         objective=obj.LATENCY_P99),
    Tile("dead_letter_ratio", "Dead letters",
         "sum(rate(sentinel_dead_letters_total[5m])) / sum(rate(sentinel_transactions_total[5m]))",
         " %", 100, 2, obj.DEAD_LETTER_RATIO),
    Tile("shadow_disagreement", "Shadow disagreement",
         'sum(rate(sentinel_shadow_results_total{agree="false"}[10m]))'
         " / sum(rate(sentinel_shadow_results_total[10m]))", " %", 100, 1,
         obj.SHADOW_DISAGREEMENT),
    Tile("held", "Held (no champion)",
         'sum(rate(sentinel_transactions_total{outcome="held"}[5m]))', " tx/s",
         objective=obj.HELD),
)
WORKERS = {"ready": "sum(sentinel_worker_ready)", "total": "count(sentinel_worker_ready)",
           "min": "min(sentinel_worker_ready)"}
REGISTRY = "min(sentinel_registry_up)"
MODELS = "sentinel_model_info == 1"


@dataclass(frozen=True)
class Reading:
    tile: Tile
    value: float | None

    @property
    def status(self) -> obj.Status:
        if self.tile.objective is None:
            return "nodata" if self.value is None else "ok"
        return self.tile.objective.status(self.value)

    @property
    def text(self) -> str:
        if self.value is None:
            return "no data"
        return f"{self.value * self.tile.scale:,.{self.tile.digits}f}{self.tile.unit}"


@dataclass(frozen=True)
class ModelServing:
    role: str
    model_name: str
    model_version: str
    instances: int


@dataclass(frozen=True)
class Headline:
    """One consistent read of the headline; ``problems`` lists queries Prometheus rejected."""

    readings: list[Reading]
    workers: dict[str, float | None]
    registry_up: float | None
    models: list[ModelServing]
    alerts: list[Alert]
    problems: list[str] = field(default_factory=list)

    def reading(self, key: str) -> Reading:
        return next(r for r in self.readings if r.tile.key == key)


def read_headline(api: PrometheusAPI) -> Headline:
    """Every headline query. Raises SourceUnavailable when Prometheus cannot be reached."""
    problems: list[str] = []

    def first(expr: str, name: str) -> float | None:
        try:
            samples = api.query(expr)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            return None
        return samples[0].value if samples else None

    readings = [Reading(tile, first(tile.expr, tile.key)) for tile in TILES]
    workers = {k: first(expr, f"workers_{k}") for k, expr in WORKERS.items()}
    registry = first(REGISTRY, "registry_up")
    try:
        models = models_serving(api.query(MODELS))
    except ValueError as exc:
        problems.append(f"models: {exc}")
        models = []
    return Headline(readings, workers, registry, models, api.alerts(), problems)


def models_serving(samples: list[Sample]) -> list[ModelServing]:
    """Collapse sentinel_model_info series into one row per (role, name, version)."""
    counts: dict[tuple[str, str, str], int] = {}
    for sample in samples:
        key = (sample.labels.get("role", "?"), sample.labels.get("model_name", "?"),
               sample.labels.get("model_version", "?"))
        counts[key] = counts.get(key, 0) + 1
    order = {"champion": 0, "candidate": 1}
    return [ModelServing(role, name, version, n) for (role, name, version), n in
            sorted(counts.items(), key=lambda kv: (order.get(kv[0][0], 2), kv[0]))]
