"""The model's reference profile: what its training data looked like, for drift monitoring.

At training, :func:`build_profile` takes quantile bins of the amount, of the model's score and
of each declared numeric attribute of the transactions; the pipeline logs the profile as a small
JSON artifact (``reference_profile/reference_profile.json``) next to the model. The dashboard
compares live windows of the topics with the profile of the champion serving now
(:meth:`Distribution.psi`), and so does the worker's drift monitor, incrementally
(:mod:`drift.psi`, on :meth:`Distribution.bin_index` and :func:`psi_of_shares`),
as Evidently and NannyML compare live data with a model's reference data, instead of with the
oldest messages still retained. Both read the threshold ``DriftSettings.psi_threshold`` (0.2).

Pure apart from :func:`write_profile` / :func:`read_profile` (a file) and
:func:`load_profile` (through the registry port).

>>> p = Distribution.from_values([1, 2, 3, 4] * 25, bins=4)
>>> [round(s, 2) for s in p.shares]
[0.25, 0.25, 0.25, 0.25]
>>> round(p.psi([1, 2, 3, 4] * 10), 6)
0.0
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sentinel.errors import SentinelError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
ARTIFACT_DIR = "reference_profile"
FILE_NAME = "reference_profile.json"
ARTIFACT_PATH = f"{ARTIFACT_DIR}/{FILE_NAME}"
DEFAULT_BINS = 10
_EPS = 1e-4


class ProfileError(SentinelError):
    """A reference profile cannot be read (missing, foreign format, corrupt)."""


@dataclass(frozen=True)
class Distribution:
    """One variable's quantile bins: ``edges`` (len ``k + 1``, increasing) and the share of
    reference values in each bin. The outer bins are open: live values below the first or
    above the last edge count in the first or last bin."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]
    count: int
    source: str = "transactions"

    @classmethod
    def from_values(cls, values: Iterable[float], bins: int = DEFAULT_BINS,
                    source: str = "transactions") -> Distribution:
        """Equal-mass bins on the values' quantiles (ties merge bins: a score with many equal
        values gets fewer, wider bins, never empty ones)."""
        data = _finite(values)
        if data.size == 0:
            raise ValueError("cannot profile an empty sample")
        edges = np.unique(np.quantile(data, np.linspace(0.0, 1.0, bins + 1)))
        if edges.size < 2:
            edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
        counts = np.bincount(_bins(edges, data), minlength=len(edges) - 1).astype(np.float64)
        return cls(tuple(float(e) for e in edges), tuple(float(c) for c in counts / data.size),
                   int(data.size), source)

    def bin_index(self, values: np.ndarray) -> np.ndarray:
        """The bin of each (finite) value: open outer bins, a value on an inner edge goes to
        the upper bin.

        >>> Distribution((0.0, 1.0, 2.0), (0.5, 0.5), 2).bin_index(np.array([-5.0, 1.0, 9.0]))
        array([0, 1, 1])
        """
        return _bins(np.asarray(self.edges), values)

    def live_shares(self, values: Iterable[float]) -> tuple[list[float], int]:
        """The shares of ``values`` in this distribution's bins, and how many were counted."""
        data = _finite(values)
        if data.size == 0:
            return [0.0] * len(self.shares), 0
        counts = np.bincount(self.bin_index(data), minlength=len(self.shares))
        return [float(c) for c in counts / data.size], int(data.size)

    def psi(self, values: Iterable[float]) -> float:
        """Population stability index of ``values`` against the reference
        (:func:`psi_of_shares`)."""
        live, n = self.live_shares(values)
        return psi_of_shares(self.shares, live) if n else math.nan

    def as_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "shares": list(self.shares), "count": self.count,
                "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Distribution:
        edges = tuple(float(x) for x in data["edges"])
        shares = tuple(float(x) for x in data["shares"])
        if len(edges) != len(shares) + 1 or list(edges) != sorted(edges):
            raise ValueError("edges must be increasing and one more than the shares")
        return cls(edges, shares, int(data["count"]), str(data.get("source", "transactions")))


@dataclass(frozen=True)
class ReferenceProfile:
    """The reference distributions of one model version, by variable name."""

    variables: dict[str, Distribution]
    model_version: str | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> str:
        return json.dumps({"format": "sentinel.reference_profile", "version": FORMAT_VERSION,
                           "model_version": self.model_version, "meta": self.meta,
                           "variables": {k: v.as_dict() for k, v in self.variables.items()}},
                          indent=1)

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        try:
            data = json.loads(text)
            if data.get("format") != "sentinel.reference_profile":
                raise ValueError("not a Sentinel reference profile")
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"unknown profile version {data.get('version')!r}")
            variables = {str(k): Distribution.from_dict(v) for k, v in data["variables"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProfileError(f"unreadable reference profile: {exc}") from exc
        return cls(variables, data.get("model_version"), dict(data.get("meta") or {}))


def build_profile(amounts: Iterable[float], scores: Iterable[float],
                  attributes: Mapping[str, Iterable[float]] | None = None,
                  bins: int = DEFAULT_BINS, meta: Mapping[str, str] | None = None
                  ) -> ReferenceProfile:
    """The profile of a training run: amounts and attributes of the training transactions,
    scores of the model on held-out rows (what it will emit in serving)."""
    variables = {"amount": Distribution.from_values(amounts, bins, "transactions"),
                 "score": Distribution.from_values(scores, bins, "verdicts")}
    for name, values in (attributes or {}).items():
        if len(_finite(values)):
            variables[name] = Distribution.from_values(values, bins, "transactions")
    return ReferenceProfile(variables, meta=dict(meta or {}))


def declared_attributes() -> tuple[str, ...]:
    """The numeric fields of the Transaction contract besides the amount (none today; a float
    field added to the schema is profiled without touching this module)."""
    from schemas import Transaction

    numeric = []
    for name, info in Transaction.model_fields.items():
        if name != "amount" and info.annotation in (float, int, float | None, int | None):
            numeric.append(name)
    return tuple(numeric)


def training_profile(frame: Any, held_out_scores: Iterable[float],
                     bins: int = DEFAULT_BINS, numeric: Iterable[str] = ()) -> ReferenceProfile:
    """The profile of a training frame (the pipeline's canonical transactions) and of the
    candidate's scores on the held-out test rows; ``numeric`` names the model's declared
    numeric attributes (``--attributes``), profiled beside the contract's numeric fields."""
    scores = _finite(held_out_scores)
    names = dict.fromkeys((*declared_attributes(), *numeric))
    attributes = {name: frame[name].to_numpy(dtype=np.float64)
                  for name in names if name in frame}
    return build_profile(frame["amount"].to_numpy(dtype=np.float64), scores, attributes, bins,
                         meta={"rows": str(len(frame)), "scored_rows": str(len(scores))})


def write_profile(profile: ReferenceProfile, directory: Path) -> Path:
    """Write the profile as ``directory/reference_profile.json`` (the artifact to log)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    path.write_text(profile.as_json())
    return path


def read_profile(path: Path) -> ReferenceProfile:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(f"reference profile {path} unreadable: {exc}") from exc
    return ReferenceProfile.from_json(text)


class VersionRef(Protocol):
    """A registered version, as :func:`load_profile` needs it (``lifecycle.registry.ModelRef``)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def run_id(self) -> str | None: ...


class RunArtifacts(Protocol):
    """Where a run's files are read (``lifecycle.registry.ModelRegistry``)."""

    def download_run_artifact(self, run_id: str, path: str, dest: Path) -> Path | None: ...


def load_profile(registry: RunArtifacts, ref: VersionRef, directory: Path | None = None
                 ) -> ReferenceProfile:
    """The reference profile logged with a registered version's run, downloaded into
    ``directory`` (None: a temporary one, removed after reading). Raises ProfileError when the
    version has no run or its run has no profile (a model trained before profiles); registry
    trouble is the registry's error. The dashboard and the worker both read it here."""
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="sentinel-profile-") as tmp:
            return load_profile(registry, ref, Path(tmp))
    if not ref.run_id:
        raise ProfileError(f"version {ref.version} of {ref.name} has no training run")
    path = registry.download_run_artifact(ref.run_id, ARTIFACT_PATH, directory)
    if path is None:
        raise ProfileError(f"version {ref.version} of {ref.name} was logged without a "
                           f"reference profile ({ARTIFACT_PATH}); retrain it to get one")
    profile = read_profile(path)
    return ReferenceProfile(profile.variables, ref.version, profile.meta)


def psi_of_shares(reference: Sequence[float] | np.ndarray,
                  live: Sequence[float] | np.ndarray) -> float:
    """Population stability index of ``live`` shares against ``reference`` shares on the same
    bins: sum over bins of (live - ref) * ln(live / ref), shares floored at 1e-4.

    Below 0.1 no shift to speak of; 0.1-0.2 a moderate shift; above 0.2 a significant one (the
    usual reading in credit scoring, and the default threshold).

    >>> round(psi_of_shares([0.5, 0.5], [0.9, 0.1]), 3)
    0.879
    """
    ref = np.asarray(reference, dtype=np.float64) + _EPS
    cur = np.asarray(live, dtype=np.float64) + _EPS
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _finite(values: Iterable[float]) -> np.ndarray:
    data = np.asarray(list(values) if not isinstance(values, np.ndarray) else values,
                      dtype=np.float64)
    return data[np.isfinite(data)]


def _bins(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The bin of each value on ``edges``: open outer bins; a value on an inner edge goes to
    the upper bin."""
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
