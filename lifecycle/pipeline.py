"""Training, end to end: data gate, features, split, fit, thresholds, metrics, gate, registry.

``run_training`` is what ``sentinel train`` calls; ``train_and_register`` is the same for a
retraining consumer that already holds transactions (and maybe separate labels) in memory.
Features come through a port (default :func:`features.offline.compute_features`) so the
pipeline is testable on small frames.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from drift.reference_profile import ARTIFACT_DIR as PROFILE_DIR
from drift.reference_profile import ReferenceProfile, training_profile, write_profile
from features.attributes import AttributeSpec, encode_frame, fit
from sentinel.settings import Settings
from training.dataset import Dataset, make_dataset
from training.errors import ModelLoadRefusedError, TrainingError
from training.gate import judge
from training.learners import BoosterParams, fit_booster, fit_logistic
from training.model import FraudModel
from training.model_metrics import evaluate
from training.quality import QualityConfig, QualityReport, validate_transactions
from training.selection import ThresholdPolicy, choose_thresholds
from training.split import Split, SplitConfig, days_since, split

if TYPE_CHECKING:
    from lifecycle.registry import ModelRef, ModelRegistry, Publish

logger = logging.getLogger(__name__)

Featurizer = Callable[[pd.DataFrame, "pd.DataFrame | None", Any], pd.DataFrame]


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that shapes a training run besides the data."""

    split: SplitConfig = field(default_factory=SplitConfig)
    booster: BoosterParams = field(default_factory=BoosterParams)
    policy: ThresholdPolicy = field(default_factory=ThresholdPolicy)
    quality: QualityConfig = field(default_factory=QualityConfig)
    top_k: int = 100
    min_improvement: float = 0.0
    seed: int = 42
    # Refit the booster on every labelled row from the train window's start to the newest
    # (train + gap + test) once measured, and serve that. For a retrain on a fresh shift: the
    # newest labels hold most of the examples of the new pattern, and the held-out model never
    # sees them. Test metrics and the gate stay those of the held-out fit; the shadow evaluation
    # judges the refit model before it can be promoted.
    refit_on_newest: bool = False
    # A retrain after a drift alert: frauds from the estimated onset of the shift on weigh
    # ``shift_fraud_weight`` in the booster's fit. A new pattern is a few dozen of the train
    # window's frauds; unweighted, the trees separate those few bursts by whatever feature
    # happens to (the amount ratio) and miss the next ones.
    shift_onset: datetime | None = None
    shift_fraud_weight: float = 1.0
    # Transaction attributes as model inputs (``--attributes``/``--categorical``): columns of
    # the file, encoded by the feature spec learned on the train window (features.attributes)
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()

    def as_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for section in ("split", "booster", "policy", "quality"):
            for key, value in asdict(getattr(self, section)).items():
                out[f"{section}.{key}"] = value
        out |= {"top_k": self.top_k, "min_improvement": self.min_improvement, "seed": self.seed,
                "refit_on_newest": self.refit_on_newest,
                "shift_onset": str(self.shift_onset), "shift_fraud_weight": self.shift_fraud_weight,
                "attributes.numeric": ",".join(self.numeric),
                "attributes.categorical": ",".join(self.categorical)}
        return out


@dataclass(frozen=True)
class Evaluation:
    """The fitted models and their test metrics (before anything is logged)."""

    candidate: FraudModel
    baseline: FraudModel
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    split: Split
    feature_names: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class TrainingOutcome:
    """What a training run produced. ``status`` is ``registered`` or ``rejected`` (gate)."""

    status: Literal["registered", "rejected"]
    run_id: str | None
    model: ModelRef | None
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    gate_reasons: tuple[str, ...]
    dataset_digest: str
    windows: dict[str, str]
    promoted: bool = False

    @property
    def accepted(self) -> bool:
        return self.status == "registered"


def _outcome(status: Literal["registered", "rejected"], run_id: str | None,
             model: ModelRef | None, evaluation: Evaluation, reasons: tuple[str, ...],
             digest: str, windows: dict[str, str], promoted: bool = False) -> TrainingOutcome:
    """The one place a run's outcome is built, by keyword."""
    return TrainingOutcome(
        status=status, run_id=run_id, model=model, metrics=evaluation.metrics,
        baseline_metrics=evaluation.baseline_metrics,
        champion_metrics=evaluation.champion_metrics, gate_reasons=reasons,
        dataset_digest=digest, windows=windows, promoted=promoted)


@contextmanager
def _step(name: str) -> Iterator[None]:
    started = time.perf_counter()
    logger.info("step=%s started", name)
    yield
    logger.info("step=%s done seconds=%.2f", name, time.perf_counter() - started)


def code_version() -> str:
    """The git commit of the working tree, or ``unknown``."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
            check=False,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def _default_featurizer() -> Featurizer:
    from features.offline import compute_features

    return compute_features


def _labels(frame: pd.DataFrame, delay_days: int) -> pd.DataFrame:
    """The label stream the features may use: given label_time, else event time + delay."""
    label_time = (
        frame["label_time"]
        if "label_time" in frame
        else (frame["event_time"] + pd.Timedelta(days=delay_days))
    )
    return pd.DataFrame(
        {
            "transaction_id": frame["transaction_id"],
            "is_fraud": frame["is_fraud"],
            "label_time": label_time,
        }
    )


def featurize(
    dataset: Dataset, settings: Settings, featurizer: Featurizer | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The feature matrix of a canonical frame, rows aligned with it, and the names."""
    from features.spec import FeatureConfig

    featurizer = featurizer or _default_featurizer()
    config = FeatureConfig.from_settings(settings.features)
    frame = dataset.frame
    features = featurizer(frame, _labels(frame, config.label_delay_days), config)
    ids = features["transaction_id"].astype(str).to_numpy()
    if len(ids) != len(frame) or not np.array_equal(ids, frame["transaction_id"].to_numpy()):
        raise TrainingError("features are not aligned with the transactions (transaction_id)")
    names = tuple(c for c in features.columns if c != "transaction_id")
    return features[list(names)].to_numpy(dtype=np.float64), names


def with_attributes(dataset: Dataset, X: np.ndarray, names: tuple[str, ...],
                    config: TrainingConfig) -> tuple[np.ndarray, tuple[str, ...], AttributeSpec]:
    """The computed features followed by the declared attributes, encoded by a spec learned
    on the train window's rows (categories seen there; the rest are ``other``)."""
    if not (config.numeric or config.categorical):
        return X, names, AttributeSpec()
    frame = dataset.frame
    with _step("attributes"):
        train = split(frame, config.split).train
        spec = fit(frame.iloc[train], config.numeric, config.categorical)
        A = encode_frame(spec, frame)
    return np.hstack([X, A]), (*names, *spec.columns), spec


def fit_and_evaluate(
    dataset: Dataset,
    X: np.ndarray,
    feature_names: tuple[str, ...],
    config: TrainingConfig,
    champion: FraudModel | None = None,
    spec: AttributeSpec | None = None,
) -> Evaluation:
    """Split, fit the booster and the baseline, pick thresholds, measure on the test window.
    With a feature spec (the last columns of ``X``), both models carry it."""
    frame = dataset.frame
    y = frame["is_fraud"].to_numpy()
    spec = spec or AttributeSpec()
    with _step("split"):
        parts = split(frame, config.split)
    weight = shift_weights(frame, y, config, parts.windows.train[0])
    with _step("fit_booster"):
        booster = fit_booster(X[parts.train], y[parts.train], feature_names, config.booster,
                              None if weight is None else weight[parts.train])
    with _step("fit_baseline"):
        baseline = fit_logistic(_imputed(X[parts.train]), y[parts.train], feature_names,
                                config.seed)
    booster, baseline = replace(booster, attributes=spec), replace(baseline, attributes=spec)
    val = parts.validation
    booster = booster.with_thresholds(
        choose_thresholds(y[val], booster.score(X[val]), config.policy)
    )
    baseline = baseline.with_thresholds(
        choose_thresholds(y[val], baseline.score(_imputed(X[val])), config.policy)
    )
    test = parts.test
    cards = frame["card_id"].to_numpy()[test]
    days = days_since(frame["event_time"].iloc[test], parts.windows.test[0])

    def measure(model: FraudModel, columns: list[int] | None = None,
                matrix: np.ndarray | None = None) -> dict[str, float]:
        rows = (X if matrix is None else matrix)[test]
        rows = rows if columns is None else rows[:, columns]
        scores = model.score(_imputed(rows) if model.kind == "logistic" else rows)
        return evaluate(y[test], scores, cards, days, model.thresholds.review, config.top_k)

    with _step("evaluate"):
        metrics, baseline_metrics = measure(booster), measure(baseline)
        champion_metrics = None
        if champion is not None:
            champion_metrics = _measure_champion(champion, X, feature_names, measure, frame)
    if config.refit_on_newest:
        booster = replace(_refit_on_newest(frame, X, y, parts, feature_names, config, weight),
                          attributes=spec)
    logger.info(
        "test ap=%.4f auc=%.4f cp@%d=%.4f baseline_ap=%.4f champion_ap=%s",
        metrics["average_precision"],
        metrics["roc_auc"],
        config.top_k,
        metrics[f"card_precision_at_{config.top_k}"],
        baseline_metrics["average_precision"],
        None if champion_metrics is None else round(champion_metrics["average_precision"], 4),
    )
    return Evaluation(
        booster, baseline, metrics, baseline_metrics, champion_metrics, parts, feature_names
    )


def shift_weights(
    frame: pd.DataFrame, y: np.ndarray, config: TrainingConfig, train_start: pd.Timestamp
) -> np.ndarray | None:
    """Per-row booster weights: ``shift_fraud_weight`` for frauds at or after the shift's
    onset, 1 elsewhere; ``None`` (unweighted) without a shift, with a weight of 1, or when the
    onset is not after ``train_start``: then every fraud of the train window would weigh more,
    which is a class weight, not an emphasis on the new pattern (and it lowers AP)."""
    if config.shift_onset is None or config.shift_fraud_weight == 1.0:
        return None
    onset = pd.Timestamp(config.shift_onset)
    if onset <= train_start:
        return None
    after = (frame["event_time"] >= onset).to_numpy()
    return np.where(after & (y == 1), config.shift_fraud_weight, 1.0)


def _refit_on_newest(
    frame: pd.DataFrame,
    X: np.ndarray,
    y: np.ndarray,
    parts: Split,
    feature_names: tuple[str, ...],
    config: TrainingConfig,
    weight: np.ndarray | None,
) -> FraudModel:
    """The booster refit on the train window's start to the newest row (see TrainingConfig),
    thresholds chosen again on the validation window (before the train window, unseen)."""
    times = frame["event_time"]
    newest = (times >= parts.windows.train[0]).to_numpy(copy=True)
    newest[parts.validation] = False  # when validation is the train window's tail
    rows = np.flatnonzero(newest)
    with _step("refit_on_newest"):
        booster = fit_booster(X[rows], y[rows], feature_names, config.booster,
                              None if weight is None else weight[rows])
    val = parts.validation
    logger.info("refit on %d rows (held-out fit: %d), frauds %d (held-out fit: %d)",
                len(rows), len(parts.train), int(y[rows].sum()), int(y[parts.train].sum()))
    return booster.with_thresholds(
        choose_thresholds(y[val], booster.score(X[val]), config.policy)
    )


def _imputed(X: np.ndarray) -> np.ndarray:
    """Missing attribute values as 0 for the logistic baseline (the booster routes NaN)."""
    return np.nan_to_num(X, nan=0.0) if np.isnan(X).any() else X


def _measure_champion(
    champion: FraudModel,
    X: np.ndarray,
    names: tuple[str, ...],
    measure: Callable[..., dict[str, float]],
    frame: pd.DataFrame | None = None,
) -> dict[str, float] | None:
    """The champion on the same test rows, fed its own feature columns by name (its attribute
    columns encoded by its own feature spec, whose categories may differ)."""
    spec = champion.attributes
    if spec and frame is not None:
        computed = [n for n in champion.feature_names if n not in spec.columns]
        if set(computed) - set(names):
            logger.warning("champion needs features that are not computed: not compared")
            return None
        own = np.hstack([X[:, [names.index(n) for n in computed]], encode_frame(spec, frame)])
        return measure(champion, None, own)
    if champion.feature_names == names:
        return measure(champion, None)
    missing = set(champion.feature_names) - set(names)
    if missing:
        logger.warning(
            "champion needs features %s that are not computed: not compared", sorted(missing)
        )
        return None
    return measure(champion, [names.index(name) for name in champion.feature_names])


def run_training(
    settings: Settings,
    frame: pd.DataFrame,
    *,
    source: str,
    config: TrainingConfig | None = None,
    registry: ModelRegistry | None = None,
    publish: Publish | None = None,
    featurizer: Featurizer | None = None,
    promote: bool = False,
    reason: str = "",
    version_tags: Mapping[str, str] | None = None,
) -> TrainingOutcome:
    """Train on raw transactions; register a ``@candidate`` only when both gates pass.

    Raises :class:`training.errors.DataQualityError` when the data gate fails (nothing is
    logged or registered; the JSON report is under ``<data_dir>/reports``).
    """
    from lifecycle.registry import CHAMPION, ModelRegistry

    config = config or TrainingConfig()
    report_dir = settings.data_dir.resolve() / "reports"
    quality = replace(config.quality, numeric=config.numeric, categorical=config.categorical)
    with _step("data_gate"):
        report = validate_transactions(frame, report_dir, quality)
    with _step("dataset"):
        dataset = make_dataset(frame, source, config.numeric, config.categorical)
    with _step("features"):
        X, names = featurize(dataset, settings, featurizer)
    X, names, spec = with_attributes(dataset, X, names, config)
    registry = registry or ModelRegistry(settings, publish=publish)
    champion = None
    with _step("champion"):
        ref = registry.resolve(CHAMPION)
        if ref is not None:
            try:
                champion = registry.load(ref)
            except ModelLoadRefusedError as exc:  # e.g. a pickled champion of an old release
                logger.warning("champion not compared, its artifact is refused: %s", exc)
    evaluation = fit_and_evaluate(dataset, X, names, config, champion, spec)
    verdict = judge(
        evaluation.metrics["average_precision"],
        evaluation.baseline_metrics["average_precision"],
        None
        if evaluation.champion_metrics is None
        else evaluation.champion_metrics["average_precision"],
        min_improvement=config.min_improvement,
    )
    with _step("reference_profile"):
        held_out = evaluation.candidate.score(X[evaluation.split.test])
        profile = training_profile(dataset.frame, held_out, numeric=config.numeric)
    with _step("log_run"):
        logged = _log(registry, evaluation, dataset, report, config, verdict.passed, ref, profile)
    windows = evaluation.split.windows.as_params()
    if not verdict.passed:
        registry.reject(
            None,
            reason="; ".join(verdict.reasons),
            evidence={
                "average_precision": evaluation.metrics["average_precision"],
                "run_id": logged.run_id,
            },
        )
        logger.warning("training gate failed: %s", "; ".join(verdict.reasons))
        return _outcome("rejected", logged.run_id, None, evaluation, verdict.reasons,
                        dataset.digest, windows)
    with _step("register"):
        tags = {
            "sentinel.dataset_digest": dataset.digest,
            "sentinel.test_ap": f"{evaluation.metrics['average_precision']:.6f}",
            **(version_tags or {}),
        }
        model_ref = registry.register(logged, reason=reason or "sentinel train", tags=tags)
        if promote:
            model_ref = registry.promote(model_ref.version, reason=reason or "train --promote")
    return _outcome("registered", logged.run_id, model_ref, evaluation, verdict.reasons,
                    dataset.digest, windows, promoted=promote)


def _log(
    registry: ModelRegistry,
    evaluation: Evaluation,
    dataset: Dataset,
    report: QualityReport,
    config: TrainingConfig,
    passed: bool,
    champion: ModelRef | None,
    profile: ReferenceProfile | None = None,
) -> Any:
    metrics = {f"test.{k}": v for k, v in evaluation.metrics.items()}
    metrics |= {f"baseline.{k}": v for k, v in evaluation.baseline_metrics.items()}
    if evaluation.champion_metrics:
        metrics |= {f"champion.{k}": v for k, v in evaluation.champion_metrics.items()}
    thresholds = evaluation.candidate.thresholds
    metrics |= {
        "threshold.review": thresholds.review,
        "threshold.decline": thresholds.decline,
        "data.rows": float(dataset.rows),
        "data.fraud_rate": dataset.fraud_rate,
    }
    params = (
        config.as_params()
        | evaluation.split.windows.as_params()
        | {
            "data.digest": dataset.digest,
            "data.source": dataset.source,
            "data.rows": dataset.rows,
            "data.start": dataset.start,
            "data.end": dataset.end,
            "model.kind": evaluation.candidate.kind,
            "features": ",".join(evaluation.feature_names),
            "split.train_rows": len(evaluation.split.train),
            "split.test_rows": len(evaluation.split.test),
        }
    )
    tags = {
        "sentinel.code_version": code_version(),
        "sentinel.dataset_digest": dataset.digest,
        "sentinel.gate": "passed" if passed else "failed",
        "sentinel.champion_version": champion.version if champion else "none",
    }
    with tempfile.TemporaryDirectory() as tmp:
        features_file = Path(tmp) / "features.json"
        features_file.write_text(json.dumps(list(evaluation.feature_names)))
        artifacts = {"features": features_file}
        if report.path is not None:
            artifacts["data_quality"] = report.path
        if profile is not None:
            artifacts[PROFILE_DIR] = write_profile(profile, Path(tmp) / PROFILE_DIR)
        return registry.log_run(
            evaluation.candidate,
            params=params,
            metrics=metrics,
            tags=tags,
            artifacts=artifacts,
            dataset_digest=dataset.digest,
            run_name=f"train-{dataset.digest[:8]}",
        )


def train_and_register(
    settings: Settings,
    frame: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    *,
    reason: str = "retrain",
    config: TrainingConfig | None = None,
    publish: Publish | None = None,
    registry: ModelRegistry | None = None,
    featurizer: Featurizer | None = None,
    version_tags: Mapping[str, str] | None = None,
) -> TrainingOutcome:
    """For a retraining consumer: transactions in memory, labels (transaction_id, is_fraud,
    label_time) either in ``frame`` or separate; registers a ``@candidate`` if it passes."""
    if labels is not None:
        keep = [c for c in ("transaction_id", "is_fraud", "label_time") if c in labels]
        frame = frame.drop(columns=[c for c in ("is_fraud", "label_time") if c in frame])
        frame = frame.merge(labels[keep], on="transaction_id", how="inner")
    return run_training(
        settings,
        frame,
        source=f"retrain:{reason}",
        config=config,
        registry=registry,
        publish=publish,
        featurizer=featurizer,
        reason=reason,
        version_tags=version_tags,
    )
