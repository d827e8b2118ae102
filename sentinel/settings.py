"""The one settings object. Built once at an entry point and passed down.

Every value can be set from the environment with the ``SENTINEL_`` prefix and ``__`` between
sections, e.g. ``SENTINEL_KAFKA__BOOTSTRAP_SERVERS=broker:9092``. Nothing else reads os.environ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from sentinel.infra.database.location import StoreLocation


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(_Section):
    """Where the cluster is and how to reach it. ``bootstrap_servers`` unset means: use the
    embedded broker.

    Security, as every bank's cluster needs it: SASL (``PLAIN``, ``SCRAM-SHA-256``,
    ``SCRAM-SHA-512``) over ``SASL_SSL`` (or ``SASL_PLAINTEXT``), TLS with a private CA
    (``ssl_ca_location``) and mutual TLS (``ssl_certificate_location`` + ``ssl_key_location``,
    optionally ``ssl_key_password``). A combination that cannot work is rejected when the
    settings are built, with one line that says which setting to change.
    """

    bootstrap_servers: str | None = None
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None  # PEM file of the CA(s); unset: the system's store
    ssl_certificate_location: str | None = None  # PEM client certificate (mutual TLS)
    ssl_key_location: str | None = None  # PEM private key of that certificate
    ssl_key_password: SecretStr | None = None  # when that key is encrypted
    # check that the broker's certificate names the host it was reached at (librdkafka's
    # ssl.endpoint.identification.algorithm https); turn off only for a broker addressed by
    # a name its certificate lacks
    ssl_endpoint_identification: bool = True
    client_id: str = "sentinel"

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _coherent(self) -> KafkaSettings:
        problem = _security_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol.endswith("SSL")

    def as_librdkafka_dict(self, bootstrap: str | None = None) -> dict[str, Any]:
        """Connection settings in librdkafka's vocabulary (confluent-kafka clients); every
        client of every process is built on this, so the security options reach them all."""
        servers = bootstrap or self.bootstrap_servers
        if not servers:
            raise ValueError("no bootstrap servers: start the embedded broker or set them")
        conf: dict[str, Any] = {
            "bootstrap.servers": servers,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
        }
        if self.uses_sasl:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username
            conf["sasl.password"] = _secret(self.sasl_password)
        if self.uses_tls:
            optional = {"ssl.ca.location": _path(self.ssl_ca_location),
                        "ssl.certificate.location": _path(self.ssl_certificate_location),
                        "ssl.key.location": _path(self.ssl_key_location),
                        "ssl.key.password": _secret(self.ssl_key_password)}
            conf.update({k: v for k, v in optional.items() if v is not None})
            conf["ssl.endpoint.identification.algorithm"] = (
                "https" if self.ssl_endpoint_identification else "none")
        return conf


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _path(value: str | None) -> str | None:
    return str(Path(value).expanduser()) if value is not None else None


def _security_problem(k: KafkaSettings) -> str | None:
    """What is wrong with this combination of security settings, or None."""
    env = "SENTINEL_KAFKA__"
    if k.uses_sasl:
        if k.sasl_mechanism is None:
            return (f"security_protocol {k.security_protocol} needs sasl_mechanism "
                    f"(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512): set {env}SASL_MECHANISM")
        if not k.sasl_username or k.sasl_password is None:
            return (f"sasl_mechanism {k.sasl_mechanism} needs sasl_username and sasl_password: "
                    f"set {env}SASL_USERNAME and {env}SASL_PASSWORD")
    else:
        sasl = [n for n in ("sasl_mechanism", "sasl_username", "sasl_password")
                if getattr(k, n) is not None]
        if sasl:
            return (f"{sasl[0]} is set but security_protocol {k.security_protocol} does not use "
                    f"SASL: set {env}SECURITY_PROTOCOL to SASL_SSL (or SASL_PLAINTEXT)")
    tls = [n for n in ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location",
                       "ssl_key_password") if getattr(k, n) is not None]
    if tls and not k.uses_tls:
        return (f"{tls[0]} is set but security_protocol {k.security_protocol} does not use TLS: "
                f"set {env}SECURITY_PROTOCOL to SSL or SASL_SSL")
    if (k.ssl_certificate_location is None) != (k.ssl_key_location is None):
        return ("mutual TLS needs both ssl_certificate_location and ssl_key_location "
                "(the client certificate and its private key)")
    if k.ssl_key_password is not None and k.ssl_key_location is None:
        return "ssl_key_password is set without ssl_key_location"
    for name in ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location"):
        path = getattr(k, name)
        if path is not None and not Path(_path(path) or "").is_file():
            return f"{name}: no file at {path}"
    return None


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
    """Feature definitions shared by training and serving.

    ``label_delay_days`` (D) shifts the terminal windows back: the book's protocol, where every
    label arrives D days late. With per-label arrival times (fraud reports within hours, labels
    carrying their own ``reported_at``) set it to 0: windows ``(t - w, t)``, each label counted
    from its own arrival time, no global shift. ``split_gap_days`` is the training split's gap
    between the train and test windows (None: D); with D = 0 set it to the time after which a
    train label is final (the genuine labels' delay, 7 for the simulator's report arrival).
    """

    label_delay_days: int = Field(default=7, ge=0)
    split_gap_days: float | None = Field(default=None, ge=0)

    @property
    def gap_days(self) -> float:
        """The split's gap: ``split_gap_days``, else the label delay."""
        return self.label_delay_days if self.split_gap_days is None else self.split_gap_days


class ReportSettings(_Section):
    """Fraud reports (``FraudReport`` on the labels topic or ``POST /reports``).

    ``lookback_days``: a report by transaction id or by a card's time range names payments of
    the card at most this long before its ``reported_at``. The worker keeps each card's
    payments (id, terminal, time) for this long, by the card's event time, in its
    changelogged state; offline resolution (``features.reports.resolve_reports``) applies the
    same bound. 0 keeps no payments: such reports then label nothing (an id report is
    dead-lettered ``report_unresolved``).

    ``presume_genuine_hours``: with fraud reports, a genuine payment's label comes days later
    (a chargeback window), so the newest payments have fraud labels only. When > 0, the
    retrainer reads a stored payment older than this (stream time: the newest stored payment's
    event time) that has no label as genuine, and a payment younger than this as unlabelled,
    fraud-reported or not: training, the label counts of the guardrails, and the promotion and
    rollback evidence all see complete labels up to that horizon and none after it. A label or
    report that comes later still wins (a fraud over a genuine label). 0 (the default) reads
    only the labels that arrived, which suits labels that all come after the same delay.
    """

    lookback_days: float = Field(default=120.0, ge=0)
    presume_genuine_hours: float = Field(default=0.0, ge=0)


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
    # an event time further than this ahead of the wall clock is dead-lettered: a far-future
    # time would move the card's and terminal's watermark and spoil every later feature
    max_event_time_skew_s: float = Field(default=300.0, gt=0)
    # include the scored feature row in each verdict (parity checks, debugging; larger verdicts)
    verdict_features: bool = False
    # attempts to score a batch before its rows are isolated and the failing ones dead-lettered
    scoring_attempts: int = Field(default=2, ge=1)
    # a dead letter keeps at most this many bytes of the original (plus its length and SHA-256)
    dead_letter_max_bytes: int = Field(default=256 * 1024, ge=1024)


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
    # Added for the drift monitor (drift/monitor.py): event-time blocks and seasonality.
    block_seconds: int = Field(default=3600, ge=1)
    season_seconds: int = Field(default=86_400, ge=1)
    profile_seasons: int = Field(default=2, ge=1)
    profile_memory_seasons: int = Field(default=14, ge=1)
    min_block_events: int = Field(default=20, ge=1)
    min_shift_z: float = Field(default=2.0, gt=0)
    kswin_alpha: float = Field(default=1e-9, gt=0, lt=1)  # 1e-6: false alarms on LightGBM scores
    seed: int = 0
    # Added for rare-event rate signals (drift/rate.py): Poisson CUSUM per block (drift/cusum.py).
    rate_cusum_ratio: float = Field(default=10.0, gt=1)
    rate_cusum_threshold: float = Field(default=22.0, gt=0)
    rate_min_baseline: int = Field(default=5, ge=1)
    label_fraud_cusum_ratio: float = Field(default=2.0, gt=1)
    label_fraud_cusum_threshold: float = Field(default=25.0, gt=0)
    # Added for the reference profile (issue 22; drift/psi.py): the live window of
    # amount, score and each numeric attribute against the serving champion's training bins.
    # PSI above psi_threshold is a significant shift (below 0.1 none, 0.1-0.2 moderate): the
    # worker alerts once per shift (it re-arms when PSI falls back below) and the dashboard
    # colours its panels with the same threshold. The window is the newest psi_window_events
    # events, and with psi_window_seconds > 0 only those within that many seconds of event
    # time of the newest; PSI is computed every psi_every_events events once the window holds
    # psi_min_events values of a variable.
    psi_threshold: float = Field(default=0.2, gt=0)
    psi_window_events: int = Field(default=10_000, ge=10)
    psi_window_seconds: float = Field(default=0.0, ge=0)
    psi_every_events: int = Field(default=1_000, ge=1)
    psi_min_events: int = Field(default=1_000, ge=1)
    # Added for the retrainer and promotion (lifecycle/retrainer.py, lifecycle/promotion.py).
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
    # and weigh the frauds since the estimated shift onset (lifecycle/pipeline.py). The weight
    # is off by default: on a shift that is not a new fraud pattern (a score alert, seeded
    # test in tests/integration/test_retrainer.py) x20 put the held-out AP just under the
    # logistic baseline; bench/bench_closed_loop.py --preset fast uses 20.
    retrain_refit_on_newest: bool = True
    retrain_shift_fraud_weight: float = Field(default=1.0, ge=1)  # 20 for a new pattern
    promotion_interval_s: float = Field(default=60.0, gt=0)
    # a new candidate's shadow evidence starts with the payments after its training data,
    # scored after the fact with the same feature code (lifecycle/backfill.py)
    promotion_backfill: bool = True
    promotion_min_labels: int = Field(default=2000, ge=1)
    promotion_min_frauds: int = Field(default=30, ge=1)
    # Always-valid promotion tests (lifecycle/promotion.py, lifecycle/sequential.py): the net
    # gain (a flagged fraud 1, a flagged genuine payment promotion_false_alert_cost) proved
    # above promotion_min_gain at promotion_alpha, however often it is checked; the
    # known-pattern recall no more than promotion_known_margin (a share of the champion's)
    # below the champion's, proved or observed beyond chance (one-sided exact McNemar p below
    # promotion_known_block_p on the frauds only one model caught); the flagged
    # share of genuine payments within alert_budget (also the retrain's threshold cap); at
    # least promotion_min_live of the worker's own shadow results (backfill only starts it:
    # these show the candidate served by the worker; the proof is the always-valid test over
    # all the evidence, so waiting for more only delays: 1,000 cost ~7 h at the fast preset's
    # ~375 labelled payments an hour, after the label delay).
    promotion_min_live: int = Field(default=300, ge=0)
    promotion_alpha: float = Field(default=0.05, gt=0, lt=0.5)
    promotion_min_gain: float = Field(default=0.0005, ge=0)  # net gain a payment to prove
    promotion_false_alert_cost: float = Field(default=0.1, ge=0, le=1)
    promotion_known_margin: float = Field(default=0.05, ge=0, lt=1)
    promotion_known_block_p: float = Field(default=0.2, gt=0, le=1)
    alert_budget: float = Field(default=0.01, gt=0, le=1)
    rollback_min_labels: int = Field(default=2000, ge=1)
    rollback_ap_tolerance: float = Field(default=0.05, ge=0)
    # Added for the lifecycle under faults (lifecycle/retrainer.py, lifecycle/leadership.py):
    # with no @champion, a candidate is promoted only when this is set (else by a person,
    # ``sentinel promote``); a registry outage is retried with exponential backoff between
    # these bounds; one retrainer leads per lease, held in the label store and renewed every
    # third of leader_lease_s (a standby takes over within a lease and a 1 s poll of the death).
    promote_first_candidate: bool = False
    registry_retry_initial_s: float = Field(default=1.0, gt=0)
    registry_retry_max_s: float = Field(default=60.0, gt=0)
    leader_lease_s: float = Field(default=15.0, gt=0)

    @model_validator(mode="after")
    def _psi_window_fits(self) -> DriftSettings:
        if self.psi_min_events > self.psi_window_events:
            raise ValueError(f"psi_min_events ({self.psi_min_events}) exceeds psi_window_events "
                             f"({self.psi_window_events}): PSI would never be computed; lower "
                             "SENTINEL_DRIFT__PSI_MIN_EVENTS or raise __PSI_WINDOW_EVENTS")
        return self


class LabelStoreSettings(_Section):
    """Where the retrainer keeps its label store, its lifecycle state (guardrails, follow-ups,
    judged champions, jobs, event outbox, decision history, alert ids) and its leadership
    lease: one database.

    ``uri`` unset: SQLite at ``<data_dir>/retrainer/labelstore.sqlite``. A file path or
    ``sqlite:///relative/path`` / ``sqlite:////absolute/path`` selects another SQLite file;
    ``postgresql://user:password@host:port/database`` (libpq options in the query, e.g.
    ``?sslmode=require``) selects PostgreSQL, which retrainers on several hosts can share:
    one leads, the others stand by (``docs/operations.md``). A secret: never printed with its
    credentials.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    uri: SecretStr | None = None

    @field_validator("uri")
    @classmethod
    def _parses(cls, value: SecretStr | None) -> SecretStr | None:
        from sentinel.infra.database.location import parse_store_uri

        if value is not None:
            parse_store_uri(value.get_secret_value())  # its ValueError names no secret
        return value


class WorkerSettings(_Section):
    """The streaming worker: identity (consumer group, internal topics), delivery, web server."""

    app_id: str = "sentinel-scorer"
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    # exactly_once: outputs, changelogs and input offsets commit in one Kafka transaction;
    # at_least_once: outputs are flushed, then offsets committed (duplicates after a crash)
    processing_guarantee: Literal["exactly_once", "at_least_once"] = "exactly_once"
    checkpoint_interval_s: float = Field(default=0.05, gt=0)
    # ... and while the worker is behind (its last poll returned a full batch): a backlog's
    # verdicts wait for it anyway, and each commit costs broker round trips (1.5x throughput)
    checkpoint_interval_behind_s: float = Field(default=0.25, gt=0)
    # this worker's stable identity within the group (its transactional.id); default:
    # host name and web port, so a restarted worker fences its own unfinished transaction
    instance_id: str | None = None
    transaction_timeout_ms: int = Field(default=10_000, ge=1000)
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    # /health fails when a stage has lag but has made no progress for this long
    stall_timeout_s: float = Field(default=60.0, gt=0)
    # the process exits (status 1, for its supervisor to restart it) when its loop is stuck
    # this long in one call: longer than the 30 s each Kafka transaction call may take
    hang_timeout_s: float = Field(default=90.0, gt=30)
    # hand-off messages held per partition (waiting for labels or a champion) before pausing it
    max_held_messages: int = Field(default=200, ge=1)
    # labels (and payments of other partitions) that reach the broker up to this long after a
    # payment still count for it: a producer's batches for two partitions land in either
    # order (stream_app/alignment.py; Kafka Streams' max.task.idle.ms). Adds to the latency of
    # a payment that no newer label or payment has already passed.
    alignment_grace_ms: int = Field(default=100, ge=0)
    # full garbage collection (one pause of ~0.1-0.2 s) that frees cyclic garbage frozen since
    # the last one (stream_app.gc_policy)
    gc_settle_interval_s: float = Field(default=900.0, gt=0)


class HttpSettings(_Section):
    """Who may call Sentinel's HTTP APIs, and how much (``sentinel.http_guard``).

    ``tokens``: bearer tokens, any of which is accepted (several, to rotate one at a time);
    from the environment as ``SENTINEL_HTTP__TOKENS=t1,t2`` or a JSON list. Without a token
    the APIs are open, so a server may then bind only to loopback unless
    ``allow_insecure_bind`` says otherwise. ``open_paths`` never need a token (they serve
    nothing secret).
    """

    tokens: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    max_body_bytes: int = Field(default=64 * 1024, ge=1)
    max_concurrent: int = Field(default=4, ge=1)
    open_paths: Annotated[tuple[str, ...], NoDecode] = ("/metrics", "/health", "/ready")
    allow_insecure_bind: bool = False

    @field_validator("tokens", "open_paths", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("tokens")
    @classmethod
    def _strong_enough(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for token in value:
            if len(token.get_secret_value()) < 16:
                raise ValueError("an HTTP token needs at least 16 characters")
        return value


class DashboardSettings(_Section):
    """The monitoring dashboard (``sentinel dashboard``). Its data sources come from here and
    from the kafka, topics and mlflow sections only: nothing in a page's URL changes them."""

    host: str = "127.0.0.1"
    port: int = Field(default=8501, ge=1, le=65535)
    prometheus_url: str = "http://127.0.0.1:9090"
    # the MLflow UI as a browser reaches it, for links to runs (default: the tracking URI
    # when it is http(s))
    mlflow_ui_url: str | None = None
    # asked before anything is shown when set; compared in constant time
    password: SecretStr | None = None
    refresh_s: int = Field(default=30, ge=0)  # 0: no auto-refresh
    sample: int = Field(default=20_000, ge=100)  # most messages read per topic and window
    # the PSI threshold of the drift panels is the worker's: SENTINEL_DRIFT__PSI_THRESHOLD


class Settings(BaseSettings):
    """All of Sentinel's configuration. Frozen: pass it down, never mutate it."""

    model_config = SettingsConfigDict(
        env_prefix="SENTINEL_", env_nested_delimiter="__", frozen=True, extra="ignore",
        hide_input_in_errors=True,  # a rejected value may hold a secret (a store URI)
    )

    data_dir: Path = Path(".sentinel")
    log_level: str = "INFO"
    kafka: KafkaSettings = KafkaSettings()
    broker: EmbeddedBrokerSettings = EmbeddedBrokerSettings()
    topics: TopicSettings = TopicSettings()
    mlflow: MlflowSettings = MlflowSettings()
    features: FeatureSettings = FeatureSettings()
    reports: ReportSettings = ReportSettings()
    scoring: ScoringSettings = ScoringSettings()
    drift: DriftSettings = DriftSettings()
    worker: WorkerSettings = WorkerSettings()
    http: HttpSettings = HttpSettings()
    dashboard: DashboardSettings = DashboardSettings()
    label_store: LabelStoreSettings = LabelStoreSettings()

    def as_env(self) -> dict[str, str]:
        """These settings as ``SENTINEL_*`` variables, for a child process that must see
        exactly them (the worker started by the demo or a test)."""
        env = {"SENTINEL_DATA_DIR": str(self.data_dir.resolve()),
               "SENTINEL_LOG_LEVEL": self.log_level}
        for section in ("kafka", "broker", "topics", "mlflow", "features", "reports", "scoring",
                        "drift", "worker", "http", "dashboard", "label_store"):
            for name, value in getattr(self, section):
                if value is None:
                    continue
                if isinstance(value, SecretStr):
                    value = value.get_secret_value()
                if isinstance(value, tuple):
                    value = [v.get_secret_value() if isinstance(v, SecretStr) else v
                             for v in value]
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
    def label_store_location(self) -> StoreLocation:
        """The label store's database: ``label_store.uri``, else SQLite in the data dir."""
        from sentinel.infra.database.location import StoreLocation, parse_store_uri

        if self.label_store.uri is None:
            return StoreLocation.sqlite(self.data_dir / "retrainer" / "labelstore.sqlite")
        return parse_store_uri(self.label_store.uri.get_secret_value())

    @property
    def artifact_root(self) -> Path:
        return self.data_dir.resolve() / "mlartifacts"
