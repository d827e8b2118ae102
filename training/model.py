"""The frozen fraud model the worker scores with: scores, decisions and reason codes.

Two kinds behind one object: a LightGBM booster (scored by ``Booster.predict`` with one thread
on a 2-D float array, the fast path) or a logistic regression (standardise, dot, sigmoid in
numpy). Both are saved as plain files (booster text or JSON), never pickled.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from features.attributes import AttributeSpec, encode_frame

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

_META = "fraud_model.json"
_BOOSTER = "booster.txt"


@dataclass(frozen=True)
class Thresholds:
    """Score cut-offs: ``review <= score < decline`` is reviewed, ``>= decline`` declined.

    ``alert_budget`` is the share of payments the review threshold was capped to flag at most
    (on validation data), or ``None`` when uncapped.
    """

    review: float
    decline: float
    alert_budget: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.review <= self.decline <= 1.0:
            raise ValueError(f"need 0 <= review <= decline <= 1, got {self.review}, {self.decline}")


@dataclass(frozen=True)
class LinearParams:
    """A logistic regression on standardised inputs."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float


@dataclass(frozen=True, eq=False)
class FraudModel:
    """A trained model, frozen. ``kind`` is ``"lightgbm"`` or ``"logistic"``."""

    kind: str
    feature_names: tuple[str, ...]
    thresholds: Thresholds
    booster: Any = None
    linear: LinearParams | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    attributes: AttributeSpec = field(default_factory=AttributeSpec)
    """The feature spec: attribute inputs, the last ``len(attributes.columns)`` features."""

    def __post_init__(self) -> None:
        tail = self.attributes.columns
        if tail and self.feature_names[len(self.feature_names) - len(tail):] != tail:
            raise ValueError(f"the feature spec's columns {list(tail)} must end feature_names")
        if self.kind == "lightgbm" and self.booster is None:
            raise ValueError("a lightgbm FraudModel needs a booster")
        if self.kind == "logistic" and self.linear is None:
            raise ValueError("a logistic FraudModel needs linear parameters")
        if self.kind not in ("lightgbm", "logistic"):
            raise ValueError(f"unknown model kind {self.kind!r}")

    def _matrix(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"expected shape (n, {len(self.feature_names)}), got {X.shape}")
        return X

    def inputs(self, features: pd.DataFrame, attributes: pd.DataFrame | None = None,
               ) -> np.ndarray:
        """The input matrix offline (replay, shadow backfill): the computed features this model
        reads, by name, from ``features``, then its feature spec's attributes encoded from
        ``attributes`` (columns named after them, as in a training file or
        :func:`features.attributes.training_columns`; absent ones are missing), rows aligned:
        the encoding the worker applies per event."""
        spec = self.attributes
        computed = [n for n in self.feature_names if n not in spec.columns]
        X: np.ndarray = features[computed].to_numpy(dtype=np.float64)
        if not spec:
            return X
        import pandas as pd

        A = encode_frame(spec, attributes if attributes is not None
                         else pd.DataFrame(index=range(len(X))))
        return np.hstack([X, A])

    def score(self, X: np.ndarray) -> np.ndarray:
        """Fraud probability per row of a 2-D float array in ``feature_names`` order."""
        X = self._matrix(X)
        if self.kind == "lightgbm":
            return np.asarray(self.booster.predict(X, num_threads=1), dtype=np.float64)
        z = self._standardised(X) @ self._coef + self.linear.intercept  # type: ignore[union-attr]
        return cast(np.ndarray, 1.0 / (1.0 + np.exp(-z)))

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """``"approve"``, ``"review"`` or ``"decline"`` per score."""
        scores = np.asarray(scores)
        out = np.full(scores.shape, "approve", dtype=object)
        out[scores >= self.thresholds.review] = "review"
        out[scores >= self.thresholds.decline] = "decline"
        return out

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature contribution to each row's log-odds (SHAP values for the booster)."""
        X = self._matrix(X)
        if self.kind == "lightgbm":
            contrib = self.booster.predict(X, pred_contrib=True, num_threads=1)
            return np.asarray(contrib)[:, : len(self.feature_names)]
        return cast(np.ndarray, self._standardised(X) * self._coef)

    def reasons(self, X: np.ndarray, k: int = 3) -> list[list[str]]:
        """The ``k`` features that pushed each row's score up the most (positive only)."""
        if k <= 0:
            return [[] for _ in range(len(X))]
        contrib = self.contributions(X)
        order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
        names = self.feature_names
        return [[names[j] for j in row if contrib[i, j] > 0] for i, row in enumerate(order)]

    @property
    def _coef(self) -> np.ndarray:
        return np.asarray(self.linear.coef)  # type: ignore[union-attr]

    def _standardised(self, X: np.ndarray) -> np.ndarray:
        linear = self.linear
        return (X - np.asarray(linear.mean)) / np.asarray(linear.scale)  # type: ignore[union-attr]

    def with_thresholds(self, thresholds: Thresholds) -> FraudModel:
        """A copy with other thresholds (the model itself is unchanged)."""
        return FraudModel(
            self.kind, self.feature_names, thresholds, self.booster, self.linear, self.metadata,
            self.attributes,
        )

    def save(self, directory: Path) -> Path:
        """Write the model as plain files into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "kind": self.kind,
            "feature_names": list(self.feature_names),
            "thresholds": asdict(self.thresholds),
            "linear": asdict(self.linear) if self.linear else None,
            "metadata": self.metadata,
            "attributes": self.attributes.to_dict(),
        }
        (directory / _META).write_text(json.dumps(meta, indent=1, default=str))
        if self.booster is not None:
            self.booster.save_model(str(directory / _BOOSTER))
        return directory

    @classmethod
    def load(cls, directory: Path) -> FraudModel:
        """Read a model written by :meth:`save`."""
        meta = json.loads((Path(directory) / _META).read_text())
        booster = None
        if meta["kind"] == "lightgbm":
            import lightgbm as lgb

            booster = lgb.Booster(model_file=str(Path(directory) / _BOOSTER))
        linear = meta.get("linear")
        return cls(
            kind=meta["kind"],
            feature_names=tuple(meta["feature_names"]),
            thresholds=Thresholds(**meta["thresholds"]),
            booster=booster,
            linear=LinearParams(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in linear.items()}  # type: ignore[arg-type]
            )
            if linear
            else None,
            metadata=meta.get("metadata", {}),
            attributes=AttributeSpec.from_dict(meta.get("attributes")),
        )
