"""The worker's Prometheus metrics, in their own registry (names are a contract with ops)."""

from __future__ import annotations

from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)


class WorkerMetrics:
    """Every metric the worker exports; ``render()`` is the /metrics body."""

    def __init__(self, fraud_window: int = 1000) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.transactions = Counter("sentinel_transactions", "transactions by outcome",
                                    ["outcome"], registry=r)
        self.verdicts = Counter("sentinel_verdicts", "verdicts produced",
                                ["decision", "model_version"], registry=r)
        self.dead_letters = Counter("sentinel_dead_letters", "inputs sent to the dead-letter topic",
                                    ["reason"], registry=r)
        self.attribute_missing = Counter(
            "sentinel_attribute_missing", "scored events without an attribute the champion "
            "reads (scored as a missing value)", ["attribute"], registry=r)
        self.shadow_results = Counter("sentinel_shadow_results", "candidate results", ["agree"],
                                      registry=r)
        self.candidate_failures = Counter("sentinel_candidate_failures",
                                          "candidate scoring failures", ["kind"], registry=r)
        self.scoring_latency = Histogram("sentinel_scoring_latency_seconds",
                                         "model time per batch", buckets=_LATENCY_BUCKETS,
                                         registry=r)
        self.event_to_verdict = Histogram("sentinel_event_to_verdict_latency_seconds",
                                          "Kafka message timestamp to verdict produce",
                                          buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("sentinel_batch_size", "transactions per scored batch",
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.model_info = Gauge("sentinel_model_info", "serving models (1)",
                                ["role", "model_name", "model_version"], registry=r)
        self.registry_up = Gauge("sentinel_registry_up", "model registry reachable", registry=r)
        self.worker_ready = Gauge("sentinel_worker_ready",
                                  "champion loaded and partitions assigned",
                                  registry=r)
        self.fraud_rate = Gauge("sentinel_fraud_rate",
                                "share of review+decline over the last verdicts", registry=r)
        self.labels = Counter("sentinel_labels", "label feedback events applied", registry=r)
        self.reports = Counter("sentinel_reports", "fraud reports by id alone or by a card's "
                               "range, by outcome (received, unresolved)", ["outcome"],
                               registry=r)
        self.report_labels = Counter("sentinel_report_labels", "fraud labels resolved from "
                                     "reports by id alone or by a card's range", registry=r)
        self.drift_alerts = Counter("sentinel_drift_alerts", "drift alerts published",
                                    ["detector", "signal"], registry=r)
        self.drift_psi = Gauge("sentinel_drift_psi",
                               "PSI of the live window against the serving champion's reference "
                               "profile", ["feature"], registry=r)
        self.drift_psi_threshold = Gauge("sentinel_drift_psi_threshold",
                                         "PSI above which a psi_reference drift alert fires",
                                         registry=r)
        self.drift_reference = Gauge("sentinel_drift_reference_profile",
                                     "1 when the serving champion's reference profile is loaded "
                                     "(PSI monitored), 0 when it has none", registry=r)
        self.model_swaps = Counter("sentinel_model_swaps", "model swaps", ["role"], registry=r)
        self.consumer_lag = Gauge("sentinel_consumer_lag",
                                  "records behind the end of each assigned input partition",
                                  ["topic", "partition"], registry=r)
        self.restore_progress = Gauge("sentinel_restore_progress",
                                      "share of a state partition's changelog restored (0-1)",
                                      ["store", "partition"], registry=r)
        self.restored_records = Counter("sentinel_restored_keys",
                                        "state keys restored from changelogs", ["store"],
                                        registry=r)
        self.checkpoints = Counter("sentinel_checkpoints", "checkpoints by outcome",
                                   ["outcome"], registry=r)
        self.checkpoint_seconds = Histogram("sentinel_checkpoint_seconds",
                                            "time to commit a checkpoint",
                                            buckets=_LATENCY_BUCKETS, registry=r)
        self.held_messages = Gauge("sentinel_held_messages",
                                   "hand-off messages waiting for labels or a champion",
                                   registry=r)
        self.rekeyed = Counter("sentinel_rekeyed", "inputs re-keyed to the worker's partitioning",
                               ["topic"], registry=r)
        self.models_refused = Counter("sentinel_models_refused",
                                      "model versions refused at load", ["role", "reason"],
                                      registry=r)
        self.gc_pause = Histogram("sentinel_gc_pause_seconds",
                                  "garbage-collector pauses of the worker process",
                                  ["generation"], buckets=_LATENCY_BUCKETS, registry=r)
        self._flags: deque[int] = deque(maxlen=fraud_window)
        self._flagged = 0
        for outcome in ("scored", "dead_lettered", "held"):
            self.transactions.labels(outcome=outcome)
        for kind in ("missing", "timeout", "error"):
            self.candidate_failures.labels(kind=kind)
        for agree in ("true", "false"):
            self.shadow_results.labels(agree=agree)
        for outcome in ("committed", "aborted"):
            self.checkpoints.labels(outcome=outcome)
        for outcome in ("received", "unresolved"):
            self.reports.labels(outcome=outcome)

    def observe_decisions(self, flagged: list[bool]) -> None:
        """Feed the rolling fraud rate (review or decline counts as flagged)."""
        window = self._flags
        for flag in flagged:
            if len(window) == window.maxlen:
                self._flagged -= window[0]
            window.append(int(flag))
            self._flagged += int(flag)
        if window:
            self.fraud_rate.set(self._flagged / len(window))

    def set_model(self, role: str, name: str | None, version: str | None) -> None:
        """Mark the serving model of ``role`` (clearing the previous one)."""
        for sample in list(next(iter(self.model_info.collect())).samples):
            if sample.labels.get("role") == role:
                self.model_info.remove(role, sample.labels["model_name"],
                                       sample.labels["model_version"])
        if name is not None and version is not None:
            self.model_info.labels(role=role, model_name=name, model_version=version).set(1)

    def set_drift_psi(self, values: dict[str, float]) -> None:
        """The latest PSI per variable of the champion's profile (others' series removed)."""
        self.drift_psi.clear()
        for feature, value in values.items():
            self.drift_psi.labels(feature=feature).set(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)
