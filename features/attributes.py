"""Transaction attributes as model inputs: the feature spec, versioned with the model.

A spec names the inputs a model reads beyond the computed features: numeric attributes
(``float``; booleans are 1/0) and categorical ones (each value's index among the categories
learned at training, in order of frequency; an unseen value is ``other`` = the number of
categories). ``merchant_category`` and ``channel`` (fields of the contract) are categoricals
like the attributes. A missing attribute or ``null`` is a missing value (NaN), which LightGBM
routes as it learned.

One encoding, two callers: :func:`encode_value` per event (serving) and :func:`encode_frame`
over a pandas frame (training), which maps each value through the same function, so that the
two forms agree exactly (``tests/unit/test_attributes.py`` proves it).

Model column names are ``attr.<kind>.<name>`` (``attr.num.risk``, ``attr.cat.channel``): the
worker can tell from a name alone whether it knows how to encode it (:func:`encodable`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from schemas.events import Transaction

SPEC_VERSION = 1
PREFIX = "attr."
KINDS = ("num", "cat")
FIELDS = ("merchant_category", "channel")
"""Contract fields (not ``attributes`` entries) that a spec may read as categoricals."""
MAX_CATEGORIES = 64
OTHER = "other"

Kind = Literal["num", "cat"]
_NUMBERS = frozenset({float, int, bool, type(None)})


class AttributeTypeError(TypeError):
    """A value of the wrong type for its declared kind (a dead letter names ``field``)."""

    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field = field
        super().__init__(f"attributes.{field}: expected {expected}, got {type(value).__name__}")


@dataclass(frozen=True)
class Attribute:
    """One input: its name, kind and (categoricals) the categories learned at training."""

    name: str
    kind: Kind
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"attribute {self.name!r}: unknown kind {self.kind!r}")
        if self.kind == "num" and self.categories:
            raise ValueError(f"numeric attribute {self.name!r} has categories")

    @property
    def column(self) -> str:
        return f"{PREFIX}{self.kind}.{self.name}"

    @cached_property
    def index(self) -> dict[str, int]:
        """Each category's code (its first position)."""
        return {c: i for i, c in reversed(list(enumerate(self.categories)))}


def column_kind(column: str) -> str | None:
    """The kind in an attribute column name, or ``None`` for a computed feature."""
    if not column.startswith(PREFIX):
        return None
    return column[len(PREFIX):].partition(".")[0]


def encodable(column: str) -> bool:
    """Whether this worker can feed the column (a computed feature is not an attribute)."""
    return column_kind(column) in KINDS


def encode_value(attribute: Attribute, value: Any) -> float:
    """One value as the model's float; :class:`AttributeTypeError` for a wrong type."""
    if value is None:
        return math.nan
    if attribute.kind == "num":
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, int | float):
            return float(value)
        raise AttributeTypeError(attribute.name, value, "a number or boolean")
    if not isinstance(value, str | int | float):
        raise AttributeTypeError(attribute.name, value, "a string, number or boolean")
    code = _category(value)
    other = len(attribute.categories)
    return float(other if code is None else attribute.index.get(code, other))


@dataclass(frozen=True)
class AttributeSpec:
    """The attributes a model reads, in its input order (after the computed features)."""

    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        names = [a.name for a in self.attributes]
        if len(set(names)) != len(names):
            raise ValueError(f"attribute names repeat: {names}")

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(a.column for a in self.attributes)

    def __bool__(self) -> bool:
        return bool(self.attributes)

    def row(self, attributes: Mapping[str, Any] | None,
            missing: list[str] | None = None) -> list[float]:
        """One event's inputs from what :func:`attributes_of` read from it; absent names are
        missing values (NaN) and are appended to ``missing``."""
        attrs = attributes or {}
        out = []
        nan = math.nan
        for a in self.attributes:
            value = attrs.get(a.name)
            if value is None:
                if missing is not None and a.name not in attrs:
                    missing.append(a.name)
                out.append(nan)
            elif a.kind == "num" and type(value) is float:  # the common case, inline
                out.append(value)
            else:
                out.append(encode_value(a, value))
        return out

    def matrix(self, events: Sequence[Mapping[str, Any] | None],
               missing: list[str] | None = None) -> np.ndarray:
        """Every event's inputs at once (float64, events x attributes), equal to :meth:`row`
        per event: the worker's path, per batch. The numeric attributes of the events that
        carry all of them as numbers, booleans or nulls are read in one pass (one
        ``itemgetter`` call per event, one type check and one ``numpy`` conversion per batch);
        categorical ones are looked up per value; any other event (a name absent, a value not
        a number) is encoded by :meth:`row`, which counts it in ``missing`` or raises
        :class:`AttributeTypeError`.

        >>> spec = AttributeSpec((Attribute("risk", "num"), Attribute("channel", "cat",
        ...                                                           ("pos", "ecom"))))
        >>> missing = []
        >>> spec.matrix([{"risk": 2, "channel": "ecom"}, {"risk": None, "channel": "atm"},
        ...              {"channel": "pos"}], missing).tolist(), missing
        ([[2.0, 1.0], [nan, 2.0], [nan, 0.0]], ['risk'])
        """
        import numpy as np

        out = np.full((len(events), len(self.attributes)), np.nan)
        numeric = [j for j, a in enumerate(self.attributes) if a.kind == "num"]
        slow: list[int] = []  # rows left to row()
        if numeric:
            getter = itemgetter(*(self.attributes[j].name for j in numeric))
            get: Callable[[Any], Any] = (getter if len(numeric) > 1
                                         else (lambda event: (getter(event),)))
            blank = (None,) * len(numeric)
            rows = []
            for i, event in enumerate(events):
                try:
                    rows.append(get(event))
                except (KeyError, TypeError):  # a name absent, or no attributes at all
                    rows.append(blank)
                    slow.append(i)
            if set(map(type, chain.from_iterable(rows))) <= _NUMBERS:
                out[:, numeric] = np.array(rows, dtype=np.float64).reshape(len(rows),
                                                                          len(numeric))
            else:  # a string among them: each event on its own says which
                slow = list(range(len(events)))
        skip = set(slow)
        for j, a in enumerate(self.attributes):
            if a.kind != "cat":
                continue
            for i, event in enumerate(events):
                if i in skip:
                    continue
                value = event.get(a.name) if event else None
                if value is not None:
                    out[i, j] = encode_value(a, value)
                elif missing is not None and (not event or a.name not in event):
                    missing.append(a.name)
        for i in slow:
            out[i] = self.row(events[i], missing)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"version": SPEC_VERSION, "attributes": [
            {"name": a.name, "kind": a.kind, **({"categories": list(a.categories)}
                                               if a.kind == "cat" else {})}
            for a in self.attributes]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> AttributeSpec:
        if not data:
            return cls()
        if data.get("version") != SPEC_VERSION:
            raise ValueError(f"feature spec version {data.get('version')!r} is not "
                             f"{SPEC_VERSION}")
        return cls(tuple(Attribute(str(a["name"]), a["kind"],
                                   tuple(str(c) for c in a.get("categories", ())))
                         for a in data["attributes"]))


def attributes_of(tx: Transaction) -> dict[str, Any] | None:
    """What a feature spec may read from an event: its attributes and the contract's
    ``merchant_category`` and ``channel`` (which take precedence over same-named attributes);
    ``None`` when it has none of them. Without those two fields it is the event's own
    ``attributes`` (not a copy: nothing writes to it)."""
    if tx.merchant_category is None and tx.channel is None:
        return tx.attributes
    out: dict[str, Any] = dict(tx.attributes or {})
    if tx.merchant_category is not None:
        out["merchant_category"] = tx.merchant_category
    if tx.channel is not None:
        out["channel"] = tx.channel
    return out


def _category(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # pandas reads an integer column with gaps as floats
    return str(value)


def fit(frame: pd.DataFrame, numeric: Iterable[str] = (), categorical: Iterable[str] = (),
        max_categories: int = MAX_CATEGORIES) -> AttributeSpec:
    """Learn a spec from training rows: categories by frequency, the ``max_categories`` most
    frequent kept (the rest become ``other``)."""
    attrs = [Attribute(n, "num") for n in numeric]
    for name in categorical:
        counts = frame[name].map(_category).dropna().value_counts(sort=False)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        attrs.append(Attribute(name, "cat", tuple(k for k, _ in ranked[:max_categories]
                                                  if k != OTHER)))
    return AttributeSpec(tuple(attrs))


def frame_value(attribute: Attribute, value: Any) -> float:
    """A pandas cell as the event would carry it, encoded (NaN/None are missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    return encode_value(attribute, value)


def encode_frame(spec: AttributeSpec, frame: pd.DataFrame) -> np.ndarray:
    """The spec's columns for every row of ``frame`` (a float64 array, rows x attributes);
    a column absent from the frame is all missing."""
    import numpy as np

    out = np.full((len(frame), len(spec.attributes)), np.nan)
    for j, a in enumerate(spec.attributes):
        if a.name in frame.columns:
            out[:, j] = [frame_value(a, v) for v in frame[a.name].tolist()]
    return out


def training_columns(spec: AttributeSpec, events: Sequence[Mapping[str, Any] | None],
                     ) -> tuple[pd.DataFrame, np.ndarray]:
    """A spec's attributes of each event (what :func:`attributes_of` read from it) as the
    columns a training file holds: numeric ones float64 (booleans 1/0, missing NaN),
    categorical ones the values as sent (missing ``None``); and a boolean array of the events
    whose values all have their kind's type. A wrong type is a missing value here: the worker
    dead-letters that event at scoring (after its card and terminal state counted it), so a
    retrain keeps the row and a backtest does not score it.

    >>> spec = AttributeSpec((Attribute("risk", "num"), Attribute("channel", "cat")))
    >>> cols, ok = training_columns(spec, [{"risk": True, "channel": "pos"}, None,
    ...                                    {"risk": "high"}])
    >>> cols["risk"].tolist(), cols["channel"].tolist(), ok.tolist()
    ([1.0, nan, nan], ['pos', None, None], [True, True, False])
    """
    import numpy as np
    import pandas as pd

    ok = np.ones(len(events), dtype=bool)
    columns: dict[str, Any] = {}
    for a in spec.attributes:
        values: list[Any] = []
        for i, event in enumerate(events):
            value = event.get(a.name) if event else None
            try:
                encoded = encode_value(a, value)
            except AttributeTypeError:
                ok[i] = False
                value, encoded = None, math.nan
            values.append(encoded if a.kind == "num" else value)
        columns[a.name] = (np.asarray(values, dtype=np.float64) if a.kind == "num"
                           else pd.Series(values, dtype=object))
    return pd.DataFrame(columns, index=pd.RangeIndex(len(events))), ok
