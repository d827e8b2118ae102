"""The model registry: MLflow runs, registered versions, aliases, promotion and rollback.

With :mod:`training.flavor`, the only module that imports mlflow. Models are logged in
Sentinel's own format (:mod:`training.artifact`: LightGBM text and JSON, never a pickle), their
SHA-256 is recorded as a version tag at registration, and :meth:`ModelRegistry.load` checks
flavor and digest before reading anything. Aliases: a newly registered
version becomes ``@candidate``; ``promote`` moves ``@champion`` to it and records the previous
champion (a version tag and a ModelEvent through the ``publish`` port) so ``rollback`` can
restore it. Every alias move is also appended to the registered model's tags as a history
entry (``sentinel.history.<ms>``) that :meth:`ModelRegistry.history` reads back.
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from schemas.events import ModelEvent
from sentinel.redact import redact_text, redact_uri
from sentinel.settings import Settings
from training import artifact
from training.errors import (
    AliasNotSetError,
    ModelLoadError,
    RegistryError,
    RegistryUnavailableError,
)
from training.flavor import write_mlmodel
from training.model import FraudModel

logger = logging.getLogger(__name__)

CANDIDATE = "candidate"
CHAMPION = "champion"
PREVIOUS_CHAMPION_TAG = "sentinel.previous_champion"
HISTORY_PREFIX = "sentinel.history."
DIGEST_TAG = artifact.DIGEST_TAG
MODEL_ARTIFACT_PATH = "model"
_MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")

Publish = Callable[[ModelEvent], None]
StepHook = Callable[[str], None]


@dataclass(frozen=True)
class ModelRef:
    """One registered model version, as the worker needs it."""

    name: str
    version: str
    run_id: str | None
    source: str
    alias: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class HistoryEntry:
    """An alias move: what happened to which version, from which, when and why."""

    action: str
    version: str
    previous_version: str | None
    at: datetime
    reason: str = ""


@dataclass(frozen=True)
class LoggedRun:
    """A finished MLflow run with its logged model."""

    run_id: str
    model_uri: str
    artifact_sha256: str | None = None
    # MLflow 3's logged-model id: a tracking server refuses a ``models:/m-...`` source without it
    # (our own format registers the run's artifact folder, which needs none)
    model_id: str | None = None


def _is_missing(exc: MlflowException) -> bool:
    return getattr(exc, "error_code", "") in _MISSING


class ModelRegistry:
    """Registry operations for ``settings.mlflow.model_name`` on the configured stores."""

    def __init__(self, settings: Settings, publish: Publish | None = None) -> None:
        self.settings = settings
        self.name = settings.mlflow.model_name
        self.tracking_uri = settings.tracking_uri
        self.registry_uri = settings.registry_uri
        self._publish = publish
        self._client: MlflowClient | None = None
        self._cache: dict[str, FraudModel] = {}
        # called between the steps of a registration ("trained", "registered", "alias_set"):
        # the retrainer's crash tests stop there
        self.step_hook: StepHook | None = None

    def publishing(self, publish: Publish | None, step_hook: StepHook | None = None
                   ) -> ModelRegistry:
        """This registry (same client and cache) publishing through ``publish``."""
        other = copy.copy(self)
        other._publish, other.step_hook = publish, step_hook
        return other

    def _step(self, name: str) -> None:
        if self.step_hook is not None:
            self.step_hook(name)

    # -- plumbing -------------------------------------------------------------------------

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._prepare_local_store()
            self._client = MlflowClient(self.tracking_uri, self.registry_uri)
        return self._client

    def _prepare_local_store(self) -> None:
        for uri in (self.tracking_uri, self.registry_uri):
            if uri.startswith("sqlite:///"):
                Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def _store(self, what: str) -> Iterator[None]:
        """Translate MLflow and connection errors at the boundary."""
        try:
            yield
        except RegistryError:
            raise
        except MlflowException as exc:
            if _is_missing(exc):
                raise RegistryError(self._clean(f"{what}: {exc.message}")) from exc
            raise self._unavailable(f"{what}: {exc.message}") from exc
        except (OSError, ConnectionError) as exc:
            raise self._unavailable(f"{what}: {exc}") from exc
        except Exception as exc:  # sqlalchemy/requests errors surface here
            if type(exc).__module__.split(".")[0] in ("sqlalchemy", "requests", "urllib3"):
                raise self._unavailable(f"{what}: {exc}") from exc
            raise

    def _clean(self, text: str) -> str:
        """``text`` without credentials (URI userinfo, the store URIs' secrets)."""
        return redact_text(text, self.settings)

    def _unavailable(self, reason: str) -> RegistryUnavailableError:
        return RegistryUnavailableError(redact_uri(self.registry_uri), self._clean(reason))

    def _use_fluent(self) -> None:
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)

    def _experiment_id(self) -> str:
        name = self.settings.mlflow.experiment
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        location = None
        if not self.tracking_uri.startswith(("http://", "https://", "databricks")):
            location = self.settings.artifact_root.as_uri()
        return str(self.client.create_experiment(name, artifact_location=location))

    # -- the worker's side ----------------------------------------------------------------

    def resolve(self, alias: str) -> ModelRef | None:
        """The version carrying ``@alias``, or ``None`` when the alias (or model) is unset."""
        with self._store(f"resolve {self.name}@{alias}"):
            try:
                mv = self.client.get_model_version_by_alias(self.name, alias)
            except MlflowException as exc:
                if _is_missing(exc):
                    return None
                raise
        return ModelRef(
            name=self.name,
            version=str(mv.version),
            run_id=mv.run_id,
            source=str(mv.source),
            alias=alias,
            tags=dict(mv.tags or {}),
        )

    def load(self, ref: ModelRef) -> FraudModel:
        """The FraudModel of a version; cached by version.

        Only Sentinel's own format is loaded, and only when its files hash to the version's
        ``sentinel.artifact_sha256`` tag (read from the registry now, not from ``ref``):
        otherwise :class:`~training.errors.ModelLoadRefusedError` (one line, counted in
        ``sentinel_model_load_refused_total{reason}``). Nothing in the artifact is unpickled.
        """
        if ref.version in self._cache:
            return self._cache[ref.version]
        with self._store(f"read {ref.uri}"):
            mv = self.client.get_model_version(ref.name, str(ref.version))
        expected = dict(mv.tags or {}).get(DIGEST_TAG)
        self._use_fluent()
        with tempfile.TemporaryDirectory(prefix="sentinel-model-") as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(artifact_uri=ref.uri, dst_path=tmp)
            except MlflowException as exc:
                raise ModelLoadError(ref.uri, self._clean(exc.message)) from exc
            except OSError as exc:
                raise ModelLoadError(ref.uri, self._clean(str(exc))) from exc
            model = artifact.load(Path(local), expected, ref.uri)
        self._cache[ref.version] = model
        return model

    # -- the training side -----------------------------------------------------------------

    def log_run(
        self,
        model: FraudModel,
        *,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        artifacts: Mapping[str, Path] | None = None,
        dataset: Any = None,
        dataset_digest: str | None = None,
        run_name: str | None = None,
    ) -> LoggedRun:
        """Log one training run: params, metrics, tags, files, the dataset and the model."""
        with self._store("log training run"):
            experiment_id = self._experiment_id()
            self._use_fluent()
            with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
                mlflow.log_params({k: self._clean(str(v))[:6000] for k, v in params.items()})
                mlflow.log_metrics(dict(metrics))
                mlflow.set_tags({k: self._clean(str(v)) for k, v in tags.items()})
                for subdir, path in (artifacts or {}).items():
                    mlflow.log_artifact(str(path), artifact_path=subdir)
                if dataset is not None:
                    mlflow.log_input(
                        mlflow.data.from_pandas(  # type: ignore[attr-defined]
                            dataset, name="transactions", digest=(dataset_digest or "")[:36]
                        ),
                        context="training",
                    )
                with tempfile.TemporaryDirectory() as tmp:
                    model_dir = write_mlmodel(model.save(Path(tmp) / MODEL_ARTIFACT_PATH), model)
                    sha256 = artifact.digest(model_dir)
                    mlflow.set_tag(DIGEST_TAG, sha256)
                    mlflow.log_artifacts(str(model_dir), artifact_path=MODEL_ARTIFACT_PATH)
                model_uri = mlflow.get_artifact_uri(MODEL_ARTIFACT_PATH)
        logger.info("run logged run_id=%s sha256=%s", run.info.run_id, sha256)
        return LoggedRun(run_id=run.info.run_id, model_uri=model_uri, artifact_sha256=sha256)

    def register(
        self,
        logged: LoggedRun,
        *,
        reason: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> ModelRef:
        """Register a logged model as a new version and give it ``@candidate``; the version's
        ``sentinel.artifact_sha256`` tag is the digest its loads are checked against."""
        self._step("trained")
        sha256 = logged.artifact_sha256 or self._run_digest(logged.run_id)
        with self._store(f"register {self.name}"):
            try:
                self.client.get_registered_model(self.name)
            except MlflowException as exc:
                if not _is_missing(exc):
                    raise
                self.client.create_registered_model(self.name)
            mv = self.client.create_model_version(
                self.name,
                logged.model_uri,
                run_id=logged.run_id,
                tags={**dict(tags or {}), DIGEST_TAG: sha256},
                description=reason or None,
                model_id=logged.model_id,
            )
        version = str(mv.version)
        logger.info("registered model=%s version=%s", self.name, version)
        self._step("registered")
        self._emit("registered", version, reason=reason)
        return self.set_candidate(version, reason=reason)

    def _run_digest(self, run_id: str) -> str:
        with self._store(f"read run {run_id}"):
            found = self.client.get_run(run_id).data.tags.get(DIGEST_TAG)
        if not found:
            raise RegistryError(f"run {run_id} logged no {DIGEST_TAG}: log it with log_run")
        return str(found)

    def set_candidate(self, version: str, *, reason: str = "") -> ModelRef:
        """Point ``@candidate`` at ``version``."""
        with self._store(f"set {self.name}@{CANDIDATE}"):
            self.client.set_registered_model_alias(self.name, CANDIDATE, str(version))
        self._step("alias_set")
        self._record("alias_set", str(version), None, reason, alias=CANDIDATE)
        ref = self.resolve(CANDIDATE)
        assert ref is not None  # noqa: S101 - just set
        return ref

    def promote(self, version: str | None = None, *, reason: str = "") -> ModelRef:
        """Move ``@champion`` to ``version`` (default: the ``@candidate``)."""
        if version is None:
            candidate = self.resolve(CANDIDATE)
            if candidate is None:
                raise AliasNotSetError(self.name, CANDIDATE, ": train a model first")
            version = candidate.version
        previous = self.resolve(CHAMPION)
        previous_version = previous.version if previous else None
        if previous_version == str(version):
            raise RegistryError(f"version {version} of {self.name} is already @champion")
        with self._store(f"promote {self.name} v{version}"):
            self.client.get_model_version(self.name, str(version))
            if previous_version is not None:
                self.client.set_model_version_tag(
                    self.name, str(version), PREVIOUS_CHAMPION_TAG, previous_version
                )
            self.client.set_registered_model_alias(self.name, CHAMPION, str(version))
            candidate = self.resolve(CANDIDATE)
            if candidate is not None and candidate.version == str(version):
                self.client.delete_registered_model_alias(self.name, CANDIDATE)
        logger.info(
            "promoted model=%s version=%s previous=%s", self.name, version, previous_version
        )
        self._record("promoted", str(version), previous_version, reason, alias=CHAMPION)
        ref = self.resolve(CHAMPION)
        assert ref is not None  # noqa: S101 - just set
        return ref

    def tag_version(self, version: str, tags: Mapping[str, str]) -> None:
        """Set tags on a version (idempotent)."""
        with self._store(f"tag {self.name} v{version}"):
            for key, value in tags.items():
                self.client.set_model_version_tag(self.name, str(version), key, value)

    def drop_alias(self, alias: str, version: str) -> bool:
        """Remove ``@alias`` if ``version`` carries it (idempotent); whether it did."""
        current = self.resolve(alias)
        if current is None or current.version != str(version):
            return False
        with self._store(f"delete {self.name}@{alias}"):
            self.client.delete_registered_model_alias(self.name, alias)
        return True

    def rollback(self, *, reason: str = "") -> ModelRef:
        """Give ``@champion`` back to the version it replaced."""
        current = self.resolve(CHAMPION)
        if current is None:
            raise AliasNotSetError(self.name, CHAMPION, ": nothing to roll back")
        previous = current.tags.get(PREVIOUS_CHAMPION_TAG)
        if not previous:
            raise RegistryError(
                f"@champion of {self.name} (version {current.version}) has no previous champion "
                "to roll back to; promote another version instead"
            )
        with self._store(f"rollback {self.name}"):
            self.client.set_registered_model_alias(self.name, CHAMPION, previous)
            self.client.set_model_version_tag(
                self.name, current.version, "sentinel.rolled_back", "true"
            )
        logger.info("rolled back model=%s from=%s to=%s", self.name, current.version, previous)
        self._record("rolled_back", previous, current.version, reason, alias=CHAMPION)
        ref = self.resolve(CHAMPION)
        assert ref is not None  # noqa: S101 - just set
        return ref

    def reject(self, version: str | None, *, reason: str, evidence: Mapping[str, Any]) -> None:
        """Announce a model that failed the training gate (nothing is registered)."""
        self._emit("rejected", version or "unregistered", reason=reason, evidence=evidence)

    def history(self) -> list[HistoryEntry]:
        """Alias moves, oldest first (promotions, rollbacks, candidates), for the dashboard."""
        with self._store(f"history of {self.name}"):
            try:
                model = self.client.get_registered_model(self.name)
            except MlflowException as exc:
                if _is_missing(exc):
                    return []
                raise
        entries = []
        for key, value in (model.tags or {}).items():
            if key.startswith(HISTORY_PREFIX):
                item = json.loads(value)
                entries.append(
                    HistoryEntry(
                        action=item["action"],
                        version=item["version"],
                        previous_version=item.get("previous_version"),
                        at=datetime.fromisoformat(item["at"]),
                        reason=item.get("reason", ""),
                    )
                )
        return sorted(entries, key=lambda e: e.at)

    def versions(self) -> list[ModelRef]:
        """All registered versions (aliases not included: resolve them)."""
        with self._store(f"list versions of {self.name}"):
            found = self.client.search_model_versions(f"name='{self.name}'")
        return sorted(
            (
                ModelRef(
                    self.name, str(v.version), v.run_id, str(v.source), None, dict(v.tags or {})
                )
                for v in found
            ),
            key=lambda r: int(r.version),
        )

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """The metrics a run logged (e.g. the champion's test AP)."""
        with self._store(f"read run {run_id}"):
            return dict(self.client.get_run(run_id).data.metrics)

    def run_experiment_id(self, run_id: str) -> str:
        """The experiment of a run (for a link to it in the MLflow UI)."""
        with self._store(f"read run {run_id}"):
            return str(self.client.get_run(run_id).info.experiment_id)

    def download_run_artifact(self, run_id: str, path: str, dest: Path) -> Path | None:
        """A file a run logged, downloaded under ``dest``; ``None`` when the run has no such
        artifact (e.g. the reference profile of a model trained before profiles existed)."""
        parent, _, name = path.rpartition("/")
        with self._store(f"read artifacts of run {run_id}"):
            if name not in {Path(f.path).name for f in self.client.list_artifacts(run_id, parent)}:
                return None
            dest.mkdir(parents=True, exist_ok=True)
            return Path(self.client.download_artifacts(run_id, path, str(dest)))

    # -- events -----------------------------------------------------------------------------

    def _record(
        self, action: str, version: str, previous: str | None, reason: str, *, alias: str
    ) -> None:
        at = datetime.now(UTC)
        entry = {
            "action": action if action != "alias_set" else f"{alias}_set",
            "version": version,
            "previous_version": previous,
            "at": at.isoformat(),
            "reason": reason[:500],
        }
        key = f"{HISTORY_PREFIX}{time.time_ns() // 1000}"
        with self._store(f"record history of {self.name}"):
            self.client.set_registered_model_tag(self.name, key, json.dumps(entry))
        self._emit(action, version, previous=previous, reason=reason, alias=alias, at=at)

    def _emit(
        self,
        action: str,
        version: str,
        *,
        previous: str | None = None,
        reason: str = "",
        alias: str | None = None,
        evidence: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        if self._publish is None:
            return
        event = model_event(self.name, action, version, previous=previous, reason=reason,
                            alias=alias, evidence=evidence, at=at)
        try:
            self._publish(event)
        except Exception as exc:
            raise RegistryError(
                f"{action} of {self.name} version {version} is done in the registry but the "
                f"ModelEvent could not be published: {exc}"
            ) from exc


def model_event(model_name: str, action: str, version: str, *, previous: str | None = None,
                reason: str = "", alias: str | None = None,
                evidence: Mapping[str, Any] | None = None, at: datetime | None = None,
                event_id: str | None = None) -> ModelEvent:
    """The one builder of a ``ModelEvent`` (registry operations and the retrainer's outbox)."""
    return ModelEvent(
        event_id=event_id or uuid.uuid4().hex, model_name=model_name,
        action=action,  # type: ignore[arg-type]
        alias=alias, version=version, previous_version=previous, reason=reason,
        evidence={k: v if isinstance(v, float | str) else str(v)
                  for k, v in (evidence or {}).items()},
        at=at or datetime.now(UTC))
