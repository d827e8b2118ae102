"""The record stage 1 (cards) hands to stage 2 (terminals) on the internal repartition topic."""

from __future__ import annotations

import json
import marshal
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MARSHAL = b"M"  # one record
BATCH = b"B"  # a list of records: what stage 1 sends, one message per partition and chunk

Packed = tuple[tuple[str, ...], bytes, dict[str, Any] | None]
"""An event's attributes on the hand-off: (names, their values as little-endian float64
bytes, the values that are not floats by name); see :func:`pack`."""
_FLOATS = {float}
_NAN = float("nan")
_NAME_LISTS: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple per list of names
_MAX_NAME_LISTS = 1024
_LAYOUTS: dict[int, struct.Struct] = {}  # little-endian float64 x n


def pack(attrs: Mapping[str, Any] | None) -> Packed | None:
    """An event's attributes as the hand-off carries them: the names (one tuple object per
    list of names, so marshal writes it once per message), the values as one bytes object of
    float64 (a null is NaN: the contract has no NaN) and the values that are not floats
    (booleans, integers, strings) as they are, by name (their float64 is NaN). Stage 2 reads a
    batch's numbers with one ``numpy`` call (:class:`stream_app.scoring.BatchAttributes`)
    instead of rebuilding a dict of Python floats per event.

    >>> names, data, others = pack({"risk": 0.5, "device": None, "new": True})
    >>> names, len(data), others
    (('risk', 'device', 'new'), 24, {'new': True})
    >>> unpack(pack({"risk": 0.5, "device": None, "new": True}))
    {'risk': 0.5, 'device': None, 'new': True}
    """
    if not attrs:
        return None
    values = attrs.values()
    if set(map(type, values)) == _FLOATS:
        return pack_floats(attrs)  # type: ignore[arg-type]
    names, data, _ = pack_floats({n: v if type(v) is float else _NAN for n, v in attrs.items()})
    others = {n: v for n, v in attrs.items() if v is not None and type(v) is not float}
    return names, data, others or None


def pack_floats(attrs: dict[str, float]) -> Packed:
    """:func:`pack` of attributes known to be all floats (``schemas.codec.decode_transaction``
    says so): without its per-value type check.

    >>> pack_floats({"risk": 0.5, "age": 3.0}) == pack({"risk": 0.5, "age": 3.0})
    True
    """
    names = tuple(attrs)
    shared = _NAME_LISTS.get(names)
    if shared is None:
        if len(_NAME_LISTS) >= _MAX_NAME_LISTS:
            _NAME_LISTS.clear()
        shared = _NAME_LISTS[names] = names
    layout = _LAYOUTS.get(len(names))
    if layout is None:
        layout = _LAYOUTS[len(names)] = struct.Struct(f"<{len(names)}d")
    return shared, layout.pack(*attrs.values()), None


def unpack(attrs: Packed | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The attributes as the event had them, as a new dict (a dict is copied)."""
    if attrs is None or isinstance(attrs, Mapping):
        return None if attrs is None else dict(attrs)
    names, data, others = attrs
    numbers = struct.unpack(f"<{len(names)}d", data)
    out: dict[str, Any] = {n: None if v != v else v for n, v in zip(names, numbers, strict=True)}
    out.update(others or {})
    return out


@dataclass(slots=True)  # not frozen: a frozen __init__ costs a setattr call per field
class Handoff:
    """A validated transaction with its stateless and card features computed.

    ``arrival_ms`` is the Kafka timestamp of the original transaction message: the start of the
    event-to-verdict latency. ``read_ms`` is the wall time at which a card stage first read it
    (``stream_app.alignment`` compares it with the label frontier). ``attrs`` holds the event's
    ``attributes`` and its ``merchant_category``/``channel`` when it has any (``None``
    otherwise), as a dict in stage 1 and :func:`pack`-ed once it has crossed the hand-off
    topic: the scorer reads a model's attribute inputs from it (``features.attributes``).
    ``reported_us`` is when a fraud report that was read before this payment labels it (the
    earliest such ``reported_at``, ``features.reports``), else None: the label travels with
    the payment, so the terminal stage applies it before any frontier that passed the payment.
    """

    transaction_id: str
    card_id: str
    terminal_id: str
    amount: float
    event_time: str
    event_time_us: int
    arrival_ms: int
    head: list[float]
    read_ms: int = 0
    attrs: dict[str, Any] | Packed | None = None
    reported_us: int | None = None

    def encode(self) -> bytes:
        """``b"M"`` + marshal of the fields: floats travel as binary, exact, and encoding costs
        a tenth of JSON (this runs once per transaction). The topic is internal to the worker."""
        return MARSHAL + marshal.dumps(self.fields(), 4)

    def fields(self) -> tuple[Any, ...]:
        """The record's fields; ``reported_us`` only when set, so that a worker of the version
        before it still reads every record without a report label."""
        attrs = self.attrs
        base = (self.transaction_id, self.card_id, self.terminal_id, self.amount,
                self.event_time, self.event_time_us, self.arrival_ms, self.head, self.read_ms,
                pack(attrs) if isinstance(attrs, dict) else attrs)
        return base if self.reported_us is None else (*base, self.reported_us)

    @staticmethod
    def encode_batch(records: list[Handoff]) -> bytes:
        """Many records in one message: stage 2 then pays the per-message cost once per
        chunk instead of once per transaction (that cost was most of the worker's CPU)."""
        return BATCH + marshal.dumps([h.fields() for h in records], 4)

    @classmethod
    def decode_many(cls, data: bytes) -> list[Handoff]:
        """The records of a hand-off message (a batch, or one record of an older worker)."""
        if data[:1] == BATCH:
            return [cls(*f) for f in marshal.loads(data[1:])]  # noqa: S302 - ours
        return [cls.decode(data)]

    @classmethod
    def decode(cls, data: bytes) -> Handoff:
        """Read a hand-off record (JSON arrays of older workers too)."""
        if data[:1] == MARSHAL:
            return cls(*marshal.loads(data[1:]))  # noqa: S302 - written by this worker
        return cls(*json.loads(data))

    @property
    def event_datetime(self) -> datetime:
        return datetime.fromisoformat(self.event_time)

    def describe(self) -> dict[str, Any]:
        return {"transaction_id": self.transaction_id, "card_id": self.card_id}
