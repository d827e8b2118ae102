"""Sentinel's model artifact: plain files that load without running code, and their digest.

A registered version is a directory of ``fraud_model.json`` (kind, feature names, thresholds,
logistic coefficients/intercept/scaler, metadata), ``booster.txt`` (LightGBM's own text
format, boosters only) and ``MLmodel`` naming the ``sentinel_fraud`` flavor
(:mod:`training.flavor` writes it). Nothing in it is pickled, and nothing in it is imported.

At registration the SHA-256 of the directory (:func:`digest`) is recorded as the version's
``sentinel.artifact_sha256`` tag. :func:`load` checks the flavor and the digest before it reads
a byte of the model, and refuses anything else with one
:class:`~training.errors.ModelLoadRefusedError` and a count in
``sentinel_model_load_refused_total{reason}``; the caller (the worker) keeps serving what it has.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY, Counter

from training.errors import ModelLoadRefusedError
from training.model import FraudModel

FLAVOR = "sentinel_fraud"
FORMAT_VERSION = 1
DIGEST_TAG = "sentinel.artifact_sha256"
MLMODEL = "MLmodel"
DESCRIPTION = "fraud_model.json"
BOOSTER = "booster.txt"
# written by MLflow itself next to a downloaded models:/ URI; not part of what was registered
_NOT_CONTENT = frozenset({"registered_model_meta"})
_MAX_MLMODEL_BYTES = 1 << 20

REFUSAL_REASONS = ("foreign_flavor", "no_digest", "digest_mismatch", "malformed")

LOAD_REFUSED = Counter(
    "sentinel_model_load_refused",
    "registered model versions refused before loading, by reason",
    ["reason"],
    registry=None,
)
for _reason in REFUSAL_REASONS:
    LOAD_REFUSED.labels(_reason)
REGISTRY.register(LOAD_REFUSED)  # the retrainer's /metrics; the worker registers it in its own


def _refuse(uri: str, reason: str, detail: str) -> ModelLoadRefusedError:
    LOAD_REFUSED.labels(reason).inc()
    return ModelLoadRefusedError(uri, reason, detail)


def _files(directory: Path) -> list[tuple[str, Path]]:
    out = []
    for path in directory.rglob("*"):
        rel = path.relative_to(directory).as_posix()
        if path.is_symlink():
            raise ValueError(f"symbolic link {rel} in the model directory")
        if path.is_file() and rel not in _NOT_CONTENT:
            out.append((rel, path))
    return sorted(out)


def digest(directory: Path) -> str:
    """SHA-256 over every file of the model directory (relative path and content), so an added,
    removed, renamed or changed file changes it."""
    h = hashlib.sha256()
    for rel, path in _files(Path(directory)):
        h.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def flavor_of(directory: Path) -> dict[str, Any] | None:
    """The ``sentinel_fraud`` flavor section of the directory's MLmodel (YAML, read safely),
    or ``None`` when the directory is something else (e.g. a pickled ``python_function``)."""
    path = Path(directory) / MLMODEL
    if not path.is_file() or path.stat().st_size > _MAX_MLMODEL_BYTES:
        return None
    try:
        spec = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        return None
    flavors = spec.get("flavors") if isinstance(spec, dict) else None
    flavor = flavors.get(FLAVOR) if isinstance(flavors, dict) else None
    return flavor if isinstance(flavor, dict) else None


def verify(directory: Path, expected_sha256: str | None, uri: str) -> None:
    """Refuse a directory that is not Sentinel's format or not the one registered."""
    directory = Path(directory)
    flavor = flavor_of(directory)
    if flavor is None:
        found = sorted(p.name for p in directory.iterdir())[:6] if directory.is_dir() else []
        raise _refuse(uri, "foreign_flavor",
                      f"not a {FLAVOR} model (files: {', '.join(found) or 'none'}); "
                      "only Sentinel's own format is loaded, never pickles: retrain it")
    if flavor.get("format_version") != FORMAT_VERSION:
        raise _refuse(uri, "foreign_flavor",
                      f"{FLAVOR} format {flavor.get('format_version')!r} is not "
                      f"{FORMAT_VERSION}")
    if not expected_sha256:
        raise _refuse(uri, "no_digest",
                      f"the version has no {DIGEST_TAG} tag; register it with sentinel train")
    try:
        actual = digest(directory)
    except (OSError, ValueError) as exc:
        raise _refuse(uri, "malformed", str(exc)) from exc
    if not hmac.compare_digest(actual, expected_sha256):
        raise _refuse(uri, "digest_mismatch",
                      f"files have SHA-256 {actual[:16]}..., the registry recorded "
                      f"{expected_sha256[:16]}...: the artifact was changed after registration")


def read(directory: Path, uri: str = "") -> FraudModel:
    """The FraudModel of a directory in Sentinel's format (no digest check: see :func:`load`)."""
    import lightgbm as lgb

    try:
        model = FraudModel.load(Path(directory))
        n = len(model.feature_names)
        if not all(isinstance(name, str) for name in model.feature_names):
            raise ValueError("feature names must be strings")
        if model.booster is not None and model.booster.num_feature() != n:
            raise ValueError(f"booster has {model.booster.num_feature()} inputs, not {n}")
        linear = model.linear
        if linear is not None and not (
            len(linear.mean) == len(linear.scale) == len(linear.coef) == n
        ):
            raise ValueError("logistic parameters do not match the feature names")
    except (OSError, KeyError, TypeError, ValueError, AttributeError, lgb.basic.LightGBMError,
            json.JSONDecodeError) as exc:
        raise _refuse(uri, "malformed", f"{type(exc).__name__}: {exc}") from exc
    return model


def load(directory: Path, expected_sha256: str | None, uri: str) -> FraudModel:
    """Verify (flavor, then digest), then read: the only way a registered model is loaded."""
    verify(directory, expected_sha256, uri)
    return read(directory, uri)
