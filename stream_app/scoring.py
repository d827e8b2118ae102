"""Scoring a batch, pure: feature rows in, verdicts and shadow results out (no Kafka here).

Reason codes are computed for flagged rows (review or decline) only: they explain a flag, and
the contribution pass costs several times a prediction.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import numpy as np

from features import attributes as attrs
from stream_app.handoff import Handoff, Packed, unpack
from stream_app.serving import Slot

_STR = json.encoder.encode_basestring_ascii  # json's C escaper


def finite(*arrays: np.ndarray) -> None:
    """Refuse NaN and infinities, as ``json.dumps(allow_nan=False)`` would; finite floats are
    then written with ``repr``, as ``json.dumps`` does."""
    for values in arrays:
        if not np.isfinite(values).all():
            raise ValueError("out of range float value for JSON: scores must be finite")


def feature_hash(row: np.ndarray) -> str:
    """blake2b of the float64 feature row: equal features give equal hashes."""
    data = np.ascontiguousarray(row, dtype=np.float64).tobytes()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True)
class Scored:
    """One model's output on a batch."""

    version: str
    name: str
    scores: np.ndarray
    decisions: np.ndarray
    seconds: float


def columns(model_names: tuple[str, ...], names: tuple[str, ...]) -> np.ndarray:
    """Indices of a model's computed inputs in the computed feature row (models may use a
    subset or an older order); attribute inputs (``attr.*``, the last ones, read from each
    event through the model's feature spec: :func:`attribute_matrix`) are not in it.
    ``KeyError`` names a feature the worker does not compute or an attribute kind it cannot
    encode, so that the worker refuses the model."""
    index = {n: i for i, n in enumerate(names)}
    unknown = [n for n in model_names if attrs.column_kind(n) is not None
               and not attrs.encodable(n)]
    if unknown:
        raise KeyError(f"model needs attributes this worker cannot encode: {unknown}")
    computed = [n for n in model_names if attrs.column_kind(n) is None]
    missing = [n for n in computed if n not in index]
    if missing:
        raise KeyError(f"model needs features the worker does not compute: {missing}")
    return np.asarray([index[n] for n in computed], dtype=np.intp)


def spec_of(model: Any) -> attrs.AttributeSpec:
    """A model's feature spec (an empty one for models without it)."""
    spec = getattr(model, "attributes", None)
    return spec if isinstance(spec, attrs.AttributeSpec) else attrs.AttributeSpec()


class BatchAttributes:
    """A batch's attribute inputs, encoded once per feature spec: a champion and a shadow
    candidate that read the same attributes (a retrain keeps the champion's) share the work.
    Thread-safe (the candidate scores in a thread beside the champion); what was absent is
    remembered, so the champion counts it whichever model encoded first."""

    def __init__(self, events: Sequence[Mapping[str, Any] | Packed | None]) -> None:
        self.events = events
        self._lock = threading.Lock()
        self._encoded: dict[attrs.AttributeSpec, tuple[np.ndarray, list[str]]] = {}

    def matrix(self, spec: attrs.AttributeSpec, missing: list[str] | None = None) -> np.ndarray:
        with self._lock:
            done = self._encoded.get(spec)
            if done is None:
                absent: list[str] = []
                done = self._encoded[spec] = (self._encode(spec, absent), absent)
        if missing is not None:
            missing.extend(done[1])
        return done[0]

    def _encode(self, spec: attrs.AttributeSpec, missing: list[str]) -> np.ndarray:
        events = self.events
        kinds = set(map(type, events))
        if kinds <= {tuple, type(None)}:  # crossed the hand-off topic: packed
            return packed_matrix(spec, events, missing)  # type: ignore[arg-type]
        if tuple in kinds:
            events = [unpack(e) for e in events]
        return spec.matrix(events, missing)  # type: ignore[arg-type]


def packed_matrix(spec: attrs.AttributeSpec, events: Sequence[Packed | None],
                  missing: list[str]) -> np.ndarray:
    """A spec's inputs from :func:`stream_app.handoff.pack`-ed attributes, equal to
    :meth:`features.attributes.AttributeSpec.row` per event: the events that share a list of
    names (one tuple object per hand-off message) are read as one float64 matrix; only the
    values that were not floats (kept as they were) and categorical ones are encoded one by
    one."""
    out = np.full((len(events), len(spec.attributes)), np.nan)
    for rows, names in _groups(events, missing, spec):
        where = {name: p for p, name in enumerate(names)}
        data = ([events[i][1] for i in rows]  # type: ignore[index]
                if isinstance(rows, list) else map(_DATA, events))  # type: ignore[arg-type]
        block = np.frombuffer(b"".join(data), dtype="<f8").reshape(-1, len(names))
        numeric = [(j, where[a.name]) for j, a in enumerate(spec.attributes)
                   if a.kind == "num" and a.name in where]
        if numeric:
            js, ps = (list(c) for c in zip(*numeric, strict=True))
            if isinstance(rows, slice):
                out[:, js] = block[:, ps]
            else:
                out[np.ix_(rows, js)] = block[:, ps]
        for j, a in enumerate(spec.attributes):
            p = where.get(a.name)
            if p is None:
                missing.extend([a.name] * len(block))
            elif a.kind != "num":
                out[rows, j] = [math.nan if v != v else attrs.encode_value(a, v)
                                for v in block[:, p].tolist()]
    if None not in events and not any(map(_OTHERS, events)):  # type: ignore[arg-type]
        return out  # floats only: the common case, without a Python loop per event
    for i, event in enumerate(events):
        others = event[2] if event is not None else None
        if others:
            for j, a in enumerate(spec.attributes):
                if a.name in others:
                    out[i, j] = attrs.encode_value(a, others[a.name])
    return out


_NAMES, _DATA, _OTHERS = itemgetter(0), itemgetter(1), itemgetter(2)


def _groups(events: Sequence[Packed | None], missing: list[str], spec: attrs.AttributeSpec,
            ) -> list[tuple[slice | list[int], tuple[str, ...]]]:
    """The events by their list of names: one slice when all share one (the common case, found
    without a Python loop per event: the events of one hand-off message share one tuple, and
    the few tuples of a batch's messages are compared once), else lists of rows; absent
    attributes are counted."""
    if events and None not in events:
        lists = list(map(_NAMES, events))  # type: ignore[arg-type]
        distinct = dict(zip(map(id, lists), lists, strict=True))
        if len(distinct) == 1 or len(set(distinct.values())) == 1:
            return [(slice(None), lists[0])]
    groups: dict[int, list[int]] = {}
    names: dict[int, tuple[str, ...]] = {}
    for i, event in enumerate(events):
        if event is None:
            missing.extend(a.name for a in spec.attributes)
            continue
        rows = groups.get(id(event[0]))
        if rows is None:
            rows = groups[id(event[0])] = []
            names[id(event[0])] = event[0]
        rows.append(i)
    return [(rows, names[key]) for key, rows in groups.items()]


def inputs(spec: attrs.AttributeSpec, X: np.ndarray, cols: np.ndarray,
           events: Sequence[Mapping[str, Any] | Packed | None] | BatchAttributes,
           missing: list[str] | None = None) -> np.ndarray:
    """The model's input matrix: its computed columns of ``X``, then its attribute columns
    from each event's attributes (:func:`features.attributes.attributes_of`, a hand-off's
    ``attrs``; or a batch's, shared between models); absent names are appended to
    ``missing``."""
    Xc = X[:, cols]
    if not spec:
        return Xc
    batch = events if isinstance(events, BatchAttributes) else BatchAttributes(events)
    return np.hstack([Xc, batch.matrix(spec, missing)])


def score(slot: Slot, X: np.ndarray) -> Scored:
    """Score and decide a whole batch with one model (``X`` already in its input order)."""
    started = time.perf_counter()
    scores = slot.model.score(X)
    decisions = slot.model.decide(scores)
    return Scored(slot.version, slot.name, scores, decisions, time.perf_counter() - started)


def reasons(slot: Slot, X: np.ndarray, decisions: np.ndarray, k: int) -> list[list[str]]:
    """Reason codes for flagged rows; empty lists for approved ones."""
    out: list[list[str]] = [[] for _ in range(len(X))]
    flagged = np.flatnonzero(decisions != "approve")
    if k > 0 and len(flagged):
        for i, codes in zip(flagged, slot.model.reasons(X[flagged], k), strict=True):
            out[i] = codes
    return out


def verdicts(batch: list[Handoff], X: np.ndarray, champion: Scored,
             codes: list[list[str]], rows: np.ndarray | None = None,
             ) -> list[tuple[str, bytes]]:
    """The champion's verdicts as (transaction id, JSON of a :class:`Verdict`).

    Written from a template with the JSON module's own string escaping and float ``repr``:
    byte for byte what ``json.dumps`` of the same dict gives (a unit test compares them, and
    decodes them with the schema), at a fraction of the cost per event. With ``rows``, each
    verdict also carries its feature row (``features``)."""
    finite(champion.scores)
    now = datetime.now(UTC)
    now_ms = now.timestamp() * 1000.0
    scores, decisions = champion.scores.tolist(), champion.decisions.tolist()
    s = _STR
    model = f'"model_name":{s(champion.name)},"model_version":{s(champion.version)}'
    stamp = s(now.isoformat())
    out = []
    extra = [""] * len(batch) if rows is None else [
        ',"features":[' + ",".join(map(repr, r)) + "]" for r in rows.tolist()]
    for i, h in enumerate(batch):
        reasons = ",".join(map(s, codes[i]))
        out.append((h.transaction_id, (
            f'{{"schema_version":1,"transaction_id":{s(h.transaction_id)},'
            f'"card_id":{s(h.card_id)},"score":{scores[i]!r},'
            f'"decision":{s(decisions[i])},{model},"reason_codes":[{reasons}],'
            f'"feature_hash":"{feature_hash(X[i])}","event_time":{s(h.event_time)},'
            f'"scored_at":{stamp},"latency_ms":{max(0.0, now_ms - h.arrival_ms)!r}{extra[i]}}}'
        ).encode()))
    return out


def shadow_results(batch: list[Handoff], champion: Scored,
                   candidate: Scored) -> list[tuple[str, bytes, bool]]:
    """The candidate next to the champion: (transaction id, JSON of a :class:`ShadowResult`,
    agree) per transaction (same template technique as :func:`verdicts`)."""
    finite(champion.scores, candidate.scores)
    a_scores, a_dec = champion.scores.tolist(), champion.decisions.tolist()
    b_scores, b_dec = candidate.scores.tolist(), candidate.decisions.tolist()
    s = _STR
    av, bv = s(champion.version), s(candidate.version)
    out = []
    for i, h in enumerate(batch):
        agree = a_dec[i] == b_dec[i]
        out.append((h.transaction_id, (
            f'{{"schema_version":1,"transaction_id":{s(h.transaction_id)},'
            f'"card_id":{s(h.card_id)},"champion_version":{av},'
            f'"champion_score":{a_scores[i]!r},"champion_decision":{s(a_dec[i])},'
            f'"candidate_version":{bv},"candidate_score":{b_scores[i]!r},'
            f'"candidate_decision":{s(b_dec[i])},"agree":{"true" if agree else "false"},'
            f'"event_time":{s(h.event_time)}}}'
        ).encode(), agree))
    return out
