"""The one settings object. Built once at an entry point and passed down.

Every value can be set from the environment with the ``SENTINEL_`` prefix and ``__`` between
sections, e.g. ``SENTINEL_KAFKA__BOOTSTRAP_SERVERS=broker:9092``. Nothing else reads os.environ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """Where the cluster is. ``bootstrap_servers`` unset means: use the embedded broker."""

    bootstrap_servers: str | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    client_id: str = "sentinel"

    def as_librdkafka_dict(self, bootstrap: str | None = None) -> dict[str, Any]:
        """Connection settings in librdkafka's vocabulary (confluent-kafka clients)."""
        servers = bootstrap or self.bootstrap_servers
        if not servers:
            raise ValueError("no bootstrap servers: start the embedded broker or set them")
        conf: dict[str, Any] = {
            "bootstrap.servers": servers,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        return conf


class EmbeddedBrokerSettings(_Section):
    """The single-node KRaft broker that Sentinel runs itself from Maven Central artifacts."""

    kafka_version: str = "3.9.1"
    scala_version: str = "2.13"
    host: str = "127.0.0.1"
    port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    heap: str = "768m"
    cache_dir: Path = Path.home() / ".cache" / "sentinel" / "kafka"
    start_timeout_s: float = 60.0

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


class TopicSettings(_Section):
    """Topic names; ``prefix`` isolates environments (and tests) sharing one cluster."""

    prefix: str = ""
    transactions: str = "sentinel.transactions"
    labels: str = "sentinel.labels"
    verdicts: str = "sentinel.verdicts"
    shadow: str = "sentinel.shadow"
    drift_alerts: str = "sentinel.drift-alerts"
    model_events: str = "sentinel.model-events"
    dead_letters: str = "sentinel.dead-letters"
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)

    def name(self, logical: str) -> str:
        return f"{self.prefix}{getattr(self, logical)}"


class MlflowSettings(_Section):
    """MLflow tracking and registry. Unset URIs mean SQLite in the data directory."""

    tracking_uri: str | None = None
    registry_uri: str | None = None
    experiment: str = "sentinel-fraud"
    model_name: str = "sentinel-fraud"


class FeatureSettings(_Section):
    """Feature definitions shared by training and serving."""

    label_delay_days: int = Field(default=7, ge=0)


class ScoringSettings(_Section):
    """How the worker scores."""

    # the benchmarked setting (docs/benchmarks.md): a short window for latency; under load
    # batches fill before it ends, so it costs CPU only at moderate rates
    batch_size: int = Field(default=1000, ge=1)
    batch_window_s: float = Field(default=0.005, gt=0)
    model_poll_interval_s: float = Field(default=5.0, gt=0)
    candidate_timeout_s: float = Field(default=0.5, gt=0)
    no_champion_policy: Literal["hold", "dead_letter"] = "hold"
    reason_codes: int = Field(default=3, ge=0)


class DriftSettings(_Section):
    """Online drift detection and the retraining guardrails."""

    enabled: bool = True
    adwin_delta: float = Field(default=0.002, gt=0, lt=1)
    grace_events: int = Field(default=5_000, ge=0)
    alert_cooldown_events: int = Field(default=20_000, ge=0)
    kswin_every: int = Field(default=200, ge=1)
    retrain_cooldown_s: float = Field(default=600.0, ge=0)
    retrain_daily_cap: int = Field(default=4, ge=1)
    retrain_min_labels: int = Field(default=500, ge=0)
    retrain_min_frauds: int = Field(default=0, ge=0)  # labelled frauds since the shift (0: off)
    # after a drift-triggered retrain, retrain again every retrain_followup_hours (event time)
    # while the new pattern's labels accumulate, within the cooldown and the daily cap
    retrain_followups: int = Field(default=3, ge=0)
    retrain_followup_hours: float = Field(default=6.0, gt=0)
    # Added for the drift monitor (stream_app/drift.py): event-time blocks and seasonality.
    block_seconds: int = Field(default=3600, ge=1)
    season_seconds: int = Field(default=86_400, ge=1)
    profile_seasons: int = Field(default=2, ge=1)
    profile_memory_seasons: int = Field(default=14, ge=1)
    min_block_events: int = Field(default=20, ge=1)
    min_shift_z: float = Field(default=2.0, gt=0)
    kswin_alpha: float = Field(default=1e-9, gt=0, lt=1)  # 1e-6: false alarms on LightGBM scores
    seed: int = 0
    # Added for rare-event rate signals (stream_app/drift_rate.py): Poisson CUSUM per block.
    rate_cusum_ratio: float = Field(default=10.0, gt=1)
    rate_cusum_threshold: float = Field(default=22.0, gt=0)
    rate_min_baseline: int = Field(default=5, ge=1)
    label_fraud_cusum_ratio: float = Field(default=2.0, gt=1)
    label_fraud_cusum_threshold: float = Field(default=25.0, gt=0)
    # Added for the retrainer and promotion (training/retrainer.py, training/promotion.py).
    retrainer_port: int = Field(default=6067, ge=0, le=65535)
    retrain_label_window_days: int = Field(default=60, ge=1)
    retrain_train_days: int = Field(default=7, ge=1)
    retrain_test_days: int = Field(default=2, ge=1)
    # Labels within hours (fast fraud confirmation): a retrain's test window is the newest
    # retrain_test_hours before the newest labelled payment and the gap retrain_gap_hours (the
    # label delay), instead of calendar days (0: days; training/split.py, anchor "latest").
    retrain_test_hours: float = Field(default=0.0, ge=0)
    retrain_gap_hours: float = Field(default=0.0, ge=0)
    # Serve the booster refit on train + gap + test (the newest labels hold the new pattern)
    # and weigh the frauds since the estimated shift onset (training/pipeline.py). The weight
    # is off by default: on a shift that is not a new fraud pattern (a score alert, seeded
    # test in tests/integration/test_retrainer.py) x20 put the held-out AP just under the
    # logistic baseline; bench/bench_closed_loop.py --preset fast uses 20.
    retrain_refit_on_newest: bool = True
    retrain_shift_fraud_weight: float = Field(default=1.0, ge=1)  # 20 for a new pattern
    promotion_interval_s: float = Field(default=60.0, gt=0)
    # a new candidate's shadow evidence starts with the payments after its training data,
    # scored after the fact with the same feature code (training/backfill.py)
    promotion_backfill: bool = True
    promotion_min_labels: int = Field(default=2000, ge=1)
    promotion_min_frauds: int = Field(default=30, ge=1)
    # Always-valid promotion tests (training/promotion.py, training/sequential.py): the net
    # gain (a flagged fraud 1, a flagged genuine payment promotion_false_alert_cost) proved
    # above promotion_min_gain at promotion_alpha, however often it is checked; the
    # known-pattern recall no more than promotion_known_margin (a share of the champion's)
    # below the champion's; the flagged
    # share of genuine payments within alert_budget (also the retrain's threshold cap); at
    # least promotion_min_live of the worker's own shadow results (backfill only starts it).
    promotion_min_live: int = Field(default=1000, ge=0)
    promotion_alpha: float = Field(default=0.05, gt=0, lt=0.5)
    promotion_min_gain: float = Field(default=0.0005, ge=0)  # net gain a payment to prove
    promotion_false_alert_cost: float = Field(default=0.1, ge=0, le=1)
    promotion_known_margin: float = Field(default=0.05, ge=0, lt=1)
    alert_budget: float = Field(default=0.01, gt=0, le=1)
    rollback_min_labels: int = Field(default=2000, ge=1)
    rollback_ap_tolerance: float = Field(default=0.05, ge=0)


class WorkerSettings(_Section):
    """The Faust worker's identity and web server."""

    app_id: str = "sentinel-scorer"
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    # full garbage collection (one pause of ~0.1-0.2 s) that frees cyclic garbage frozen since
    # the last one (stream_app.gc_policy)
    gc_settle_interval_s: float = Field(default=900.0, gt=0)


class Settings(BaseSettings):
    """All of Sentinel's configuration. Frozen: pass it down, never mutate it."""

    model_config = SettingsConfigDict(
        env_prefix="SENTINEL_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    data_dir: Path = Path(".sentinel")
    log_level: str = "INFO"
    kafka: KafkaSettings = KafkaSettings()
    broker: EmbeddedBrokerSettings = EmbeddedBrokerSettings()
    topics: TopicSettings = TopicSettings()
    mlflow: MlflowSettings = MlflowSettings()
    features: FeatureSettings = FeatureSettings()
    scoring: ScoringSettings = ScoringSettings()
    drift: DriftSettings = DriftSettings()
    worker: WorkerSettings = WorkerSettings()

    def as_env(self) -> dict[str, str]:
        """These settings as ``SENTINEL_*`` variables, for a child process that must see
        exactly them (the worker started by the demo or a test)."""
        env = {"SENTINEL_DATA_DIR": str(self.data_dir.resolve()),
               "SENTINEL_LOG_LEVEL": self.log_level}
        for section in ("kafka", "broker", "topics", "mlflow", "features", "scoring", "drift",
                        "worker"):
            for name, value in getattr(self, section):
                if value is None:
                    continue
                if isinstance(value, SecretStr):
                    value = value.get_secret_value()
                text = json.dumps(value) if isinstance(value, list | tuple | dict) else str(value)
                env[f"SENTINEL_{section.upper()}__{name.upper()}"] = text
        env["SENTINEL_KAFKA__BOOTSTRAP_SERVERS"] = self.bootstrap_servers
        env["SENTINEL_MLFLOW__TRACKING_URI"] = self.tracking_uri
        env["SENTINEL_MLFLOW__REGISTRY_URI"] = self.registry_uri
        return env

    @property
    def uses_embedded_broker(self) -> bool:
        return not self.kafka.bootstrap_servers

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers or self.broker.bootstrap

    def librdkafka(self, **extra: Any) -> dict[str, Any]:
        """librdkafka config for this deployment, with per-client extras."""
        return {**self.kafka.as_librdkafka_dict(self.bootstrap_servers), **extra}

    @property
    def tracking_uri(self) -> str:
        return self.mlflow.tracking_uri or f"sqlite:///{self.data_dir.resolve()}/mlflow.db"

    @property
    def registry_uri(self) -> str:
        return self.mlflow.registry_uri or self.tracking_uri

    @property
    def artifact_root(self) -> Path:
        return self.data_dir.resolve() / "mlartifacts"
