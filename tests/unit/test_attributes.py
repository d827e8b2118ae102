"""Transaction attributes: the contract bounds them, the feature spec encodes them the same way
per event and over a frame, travels with the model, and a model the worker cannot feed is
refused."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features import FEATURE_NAMES
from features.attributes import (
    Attribute,
    AttributeSpec,
    AttributeTypeError,
    attributes_of,
    encode_frame,
    fit,
    training_columns,
)
from schemas import SchemaValidationError, Transaction, decode
from stream_app import predict, scoring
from stream_app.handoff import Handoff, pack, unpack
from training import artifact
from training.learners import BoosterParams, fit_booster
from training.model import FraudModel, Thresholds

BASE = {"transaction_id": "t1", "card_id": "c1", "terminal_id": "m1", "amount": 10.0,
        "event_time": "2024-03-01T10:00:00+00:00"}


def _tx(**changes: Any) -> bytes:
    return json.dumps({**BASE, **changes}).encode()


def test_attributes_are_optional_and_typed() -> None:
    assert decode(Transaction, _tx()).attributes is None  # old producers are unchanged
    tx = decode(Transaction, _tx(attributes={"risk": 0.5, "n": 3, "device": "new",
                                             "3ds": True, "gone": None}))
    assert tx.attributes == {"risk": 0.5, "n": 3, "device": "new", "3ds": True, "gone": None}
    # a JSON number is a float, integral or not (3 and 3.0 are one number); booleans stay
    assert type(tx.attributes["n"]) is float and type(tx.attributes["3ds"]) is bool


@pytest.mark.parametrize(("attributes", "field"), [
    ({"a": [1]}, "attributes.a"),
    ({"a": {"b": 1}}, "attributes.a"),
    ({"bad name": 1}, "attributes.bad name"),
    ({"s": "x" * 300}, "attributes.s"),
    ({f"a{i}": 1 for i in range(65)}, "attributes"),
    ("not-an-object", "attributes"),
])
def test_bad_attributes_name_the_field(attributes: Any, field: str) -> None:
    with pytest.raises(SchemaValidationError) as caught:
        decode(Transaction, _tx(attributes=attributes))
    assert any(f.startswith(field) for f, _ in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("raw", [
    '{"a": 1.5, "b": -2, "c": true, "d": null}', '{"a": 10000000000000000000000, "b": 0.5}',
    '{"a": 1.5, "b": -2}', '{"a": 1' + "0" * 400 + ', "b": 1.0}',
    '{"a": NaN, "b": 1.0}', '{"a": Infinity, "b": null}', '{"a": 1e999, "b": 2.0}',
    '{"a": 1e308, "b": 1e308}', '{"a": [], "b": null}', '{"a": {}, "b": 1.0}',
    '{"a": "", "b": null}', '{"a": "' + "x" * 257 + '", "b": 1.0}', '{"a": 1.0, "b c": 2.0}',
    '{' + ", ".join(f'"a{i}": 1.0' for i in range(65)) + '}', '{}', 'null',
])
def test_known_names_take_a_shortcut_to_the_same_verdict(raw: str) -> None:
    """Attributes that are all numbers under names seen before skip the whole schema's
    per-value union and name pattern: what it accepts and refuses, and the event it gives,
    are unchanged; ``decode_transaction`` says when every attribute is a float."""
    from schemas import codec

    body = (b'{"transaction_id": "t1", "card_id": "c1", "terminal_id": "m1", "amount": 1.0, '
            b'"event_time": "2024-03-01T10:00:00+00:00", "attributes": ' + raw.encode() + b"}")

    def verdict() -> Any:
        try:
            tx, numeric = codec.decode_transaction(body)
        except SchemaValidationError as exc:
            return sorted(exc.problems)
        floats = bool(tx.attributes) and all(type(v) is float for v in tx.attributes.values())
        assert not numeric or floats
        return tx.model_dump(), numeric

    saved = set(codec._KNOWN_NAMES)
    try:
        codec._KNOWN_NAMES.clear()
        full = verdict()  # names never seen: the whole schema
        codec._KNOWN_NAMES.update(["a", "b", *(f"a{i}" for i in range(65))])  # valid ones
        fast = verdict()
        if isinstance(full, tuple) and isinstance(fast, tuple):
            assert repr(fast[0]) == repr(full[0])  # NaN != NaN: compared as text
            assert fast[1] == (raw in ('{"a": 10000000000000000000000, "b": 0.5}',
                                       '{"a": 1.5, "b": -2}', '{"a": 1e308, "b": 1e308}'))
        else:
            assert repr(fast) == repr(full)
        assert repr(decode(Transaction, body).model_dump() if isinstance(fast, tuple)
                    else fast) == repr(fast[0] if isinstance(fast, tuple) else fast)
    finally:
        codec._KNOWN_NAMES.clear()
        codec._KNOWN_NAMES.update(saved)


def test_predict_accepts_attributes() -> None:
    tx = predict.parse({"id": 7, "amount": 5.0, "attributes": {"risk": 0.9}, "channel": "ecom"})
    assert attributes_of(tx) == {"risk": 0.9, "channel": "ecom"}
    with pytest.raises(Exception, match="attributes"):
        predict.parse({"id": 7, "amount": 5.0, "attributes": {"risk": [1]}})


SPEC = AttributeSpec((
    Attribute("risk", "num"),
    Attribute("new_device", "num"),
    Attribute("channel", "cat", ("ecom", "pos")),
    Attribute("mcc", "cat", ("5411", "7995")),
))


def test_encoding_unseen_and_missing() -> None:
    missing: list[str] = []
    row = SPEC.row({"risk": 2, "new_device": True, "channel": "atm", "mcc": 7995}, missing)
    assert row == [2.0, 1.0, 2.0, 1.0]  # atm is unseen: "other" = len(categories)
    assert missing == []
    row = SPEC.row({"channel": "pos", "new_device": None}, missing)
    assert math.isnan(row[0]) and math.isnan(row[1]) and row[2] == 1.0 and math.isnan(row[3])
    assert missing == ["risk", "mcc"]  # null is a missing value but not an absent attribute
    with pytest.raises(AttributeTypeError, match=r"attributes\.risk"):
        SPEC.row({"risk": "high"})


def test_fit_learns_categories_by_frequency() -> None:
    frame = pd.DataFrame({"channel": ["pos", "ecom", "pos", None, "atm", "pos", "ecom"],
                          "mcc": [5411.0, 5411.0, np.nan, 7995.0, 5411.0, 1.0, 2.0]})
    spec = fit(frame, ["risk"], ["channel", "mcc"], max_categories=2)
    assert spec.attributes[1] == Attribute("channel", "cat", ("pos", "ecom"))
    assert spec.attributes[2].categories[0] == "5411"  # integer floats read as the integer
    assert spec.columns == ("attr.num.risk", "attr.cat.channel", "attr.cat.mcc")


def test_offline_and_online_encodings_are_equal() -> None:
    rng = np.random.default_rng(3)
    n = 500
    frame = pd.DataFrame({
        "risk": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "new_device": rng.random(n) < 0.2,
        "channel": rng.choice(["pos", "ecom", "atm", "moto", None], size=n),  # type: ignore[arg-type]
        "mcc": rng.choice([5411, 7995, 4829, 5999], size=n),
    })
    spec = fit(frame.iloc[:250], ["risk", "new_device"], ["channel", "mcc"], max_categories=3)
    offline = encode_frame(spec, frame)
    for i, record in enumerate(frame.to_dict("records")):
        event = json.loads(json.dumps({k: (None if isinstance(v, float) and math.isnan(v)
                                           else (v.item() if hasattr(v, "item") else v))
                                       for k, v in record.items()}))
        tx = decode(Transaction, _tx(attributes={k: v for k, v in event.items()
                                                 if k != "channel"},
                                     channel=event["channel"]))
        online = np.asarray(spec.row(attributes_of(tx)))
        assert np.array_equal(online, offline[i], equal_nan=True), (i, record)


def _model(spec: AttributeSpec) -> FraudModel:
    rng = np.random.default_rng(0)
    names = (*FEATURE_NAMES[:2], *spec.columns)
    X = rng.normal(size=(300, len(names)))
    y = (X[:, 0] + X[:, -1] > 1.0).astype(int)
    return fit_booster(X, y, names, BoosterParams(num_trees=3, num_leaves=4,
                                                  min_child_samples=5, seed=0)
                       ).with_thresholds(Thresholds(0.3, 0.8))


def test_spec_is_stored_inside_the_digested_model(tmp_path: Path) -> None:
    from training.flavor import write_mlmodel

    model = FraudModel(**{**_model(SPEC).__dict__, "attributes": SPEC})
    saved = write_mlmodel(model.save(tmp_path / "m"), model)
    sha = artifact.digest(saved)
    loaded = artifact.load(saved, sha, "models:/m/1")
    assert loaded.attributes == SPEC
    meta = json.loads((saved / "fraud_model.json").read_text())
    meta["attributes"]["attributes"][2]["categories"] = ["pos"]
    (saved / "fraud_model.json").write_text(json.dumps(meta))
    with pytest.raises(artifact.ModelLoadRefusedError, match="digest_mismatch"):
        artifact.load(saved, sha, "models:/m/1")


def test_spec_must_match_the_feature_names() -> None:
    with pytest.raises(ValueError, match="must end feature_names"):
        FraudModel(**{**_model(SPEC).__dict__, "attributes": AttributeSpec(SPEC.attributes[:2])})
    with pytest.raises(ValueError, match="unknown kind"):
        AttributeSpec.from_dict({"version": 1, "attributes": [{"name": "x", "kind": "embed"}]})


def test_worker_refuses_a_model_it_cannot_feed() -> None:
    names = FEATURE_NAMES
    cols = scoring.columns((names[3], "attr.num.risk", "attr.cat.channel"), names)
    assert cols.tolist() == [3]
    with pytest.raises(KeyError, match="cannot encode"):
        scoring.columns((names[0], "attr.embedding.device"), names)


def test_scoring_inputs_append_the_attributes() -> None:
    X = np.arange(6, dtype=np.float64).reshape(2, 3)
    missing: list[str] = []
    out = scoring.inputs(SPEC, X, np.asarray([2, 0]), [{"risk": 1.5, "channel": "pos"}, None],
                         missing)
    assert out.shape == (2, 6)
    assert out[0, :3].tolist() == [2.0, 0.0, 1.5] and math.isnan(out[0, 3])
    assert out[0, 4] == 1.0 and math.isnan(out[1, 2])
    assert missing == ["new_device", "mcc", "risk", "new_device", "channel", "mcc"]


def test_a_batch_is_encoded_as_each_event_would_be() -> None:
    """The worker's per-batch encoding (:meth:`AttributeSpec.matrix`) equals the per-event one
    (:meth:`AttributeSpec.row`), value for value and missing count for missing count."""

    rng = np.random.default_rng(11)
    choices: list[Any] = [1.5, -2.25, 3, 2**60 + 1, True, False, None, "absent"]
    categories: list[Any] = ["pos", "ecom", "atm", 7995, 5411.0, 2**60 + 1, True, None, "absent"]
    events: list[dict[str, Any] | None] = []
    for _ in range(400):
        if rng.random() < 0.05:
            events.append(None)
            continue
        event = {"risk": choices[rng.integers(len(choices))],
                 "new_device": choices[rng.integers(len(choices))] if rng.random() < 0.3
                 else float(rng.normal()),
                 "channel": categories[rng.integers(len(categories))],
                 "mcc": categories[rng.integers(len(categories))]}
        events.append({k: v for k, v in event.items() if v != "absent"})
    # ... and so does the scorer's, from the attributes as they cross the hand-off topic
    # (packed: names once per message, numbers as float64 bytes)
    records = [Handoff(f"t{i}", "c", "m", 1.0, "x", 0, 0, [], 0, e)
               for i, e in enumerate(events)]
    crossed = [h.attrs for part in (records[:150], records[150:])  # two hand-off messages
               for h in Handoff.decode_many(Handoff.encode_batch(part))]
    assert [unpack(a) for a in crossed] == [e or None for e in events]
    for spec in (SPEC, AttributeSpec(SPEC.attributes[:2]), AttributeSpec(SPEC.attributes[:1]),
                 AttributeSpec(SPEC.attributes[2:])):
        by_row: list[str] = []
        expected = np.asarray([spec.row(e, by_row) for e in events]).reshape(len(events), -1)
        by_batch: list[str] = []
        assert np.array_equal(spec.matrix(events, by_batch), expected, equal_nan=True)
        assert Counter(by_batch) == Counter(by_row) and by_row
        by_packed: list[str] = []
        assert np.array_equal(scoring.BatchAttributes(crossed).matrix(spec, by_packed),
                              expected, equal_nan=True)
        assert Counter(by_packed) == Counter(by_row)
        mixed = [*events[:200], *crossed[200:]]  # hand-offs of an older worker: dicts
        assert np.array_equal(scoring.BatchAttributes(mixed).matrix(spec), expected,
                              equal_nan=True)
        fast = [e for e in events if e and {"risk", "new_device"} <= set(e)]
        assert np.array_equal(spec.matrix(fast), np.asarray([spec.row(e) for e in fast]),
                              equal_nan=True)
    assert spec.matrix([]).shape == (0, 2)
    bad = [*events[:5], {"risk": "1.5", "new_device": 1.0}]
    with pytest.raises(AttributeTypeError, match=r"attributes\.risk"):
        SPEC.matrix(bad)
    with pytest.raises(AttributeTypeError, match=r"attributes\.risk"):
        scoring.BatchAttributes([pack(e) for e in bad]).matrix(SPEC)


@pytest.mark.parametrize("odd", [None, True, "pos", "absent"])
def test_one_message_of_numbers_is_read_as_each_event_would_be(odd: Any) -> None:
    """The scorer's common case: every event of a hand-off message has the same names and
    only floats (read as one block), or all but one event (``odd``: a boolean, a string, a
    missing name) so the general path is taken."""
    rng = np.random.default_rng(3)
    events: list[dict[str, Any]] = [{"risk": float(rng.normal()), "new_device": float(
        rng.normal()), "channel": float(rng.integers(3)), "mcc": 7995.0} for _ in range(50)]
    if odd == "absent":
        del events[7]["risk"]
    elif odd is not None:
        events[7]["channel" if isinstance(odd, str) else "new_device"] = odd
    records = [Handoff(f"t{i}", "c", "m", 1.0, "x", 0, 0, [], 0, e)
               for i, e in enumerate(events)]
    crossed = [h.attrs for h in Handoff.decode_many(Handoff.encode_batch(records))]
    for spec in (SPEC, AttributeSpec(SPEC.attributes[1::2]), AttributeSpec(SPEC.attributes[:1])):
        by_row: list[str] = []
        expected = np.asarray([spec.row(e, by_row) for e in events]).reshape(len(events), -1)
        by_packed: list[str] = []
        assert np.array_equal(scoring.BatchAttributes(crossed).matrix(spec, by_packed),
                              expected, equal_nan=True)
        assert Counter(by_packed) == Counter(by_row)


@pytest.mark.parametrize("reordered", [False, True])
def test_messages_with_the_same_names_are_read_as_one_block(reordered: bool) -> None:
    """A batch of several hand-off messages (each its own tuple of names) whose names are
    equal is read as one block (the worker's common case); with another order of names in one
    message, by message. Either way each row equals the event's own encoding."""
    rng = np.random.default_rng(5)
    names = ["risk", "new_device", "channel", "mcc"]
    events: list[dict[str, Any]] = []
    for i in range(300):
        order = names[::-1] if reordered and 100 <= i < 200 else names
        events.append({n: float(rng.normal()) for n in order})
    records = [Handoff(f"t{i}", "c", "m", 1.0, "x", 0, 0, [], 0, e)
               for i, e in enumerate(events)]
    crossed = [h.attrs for part in (records[:100], records[100:200], records[200:])
               for h in Handoff.decode_many(Handoff.encode_batch(part))]
    assert len({id(a[0]) for a in crossed}) == 3  # one tuple of names per message
    groups = scoring._groups(crossed, [], SPEC)
    assert len(groups) == (3 if reordered else 1)  # else by message
    for spec in (SPEC, AttributeSpec(SPEC.attributes[::-1]), AttributeSpec(SPEC.attributes[1:3])):
        by_row: list[str] = []
        expected = np.asarray([spec.row(e, by_row) for e in events]).reshape(len(events), -1)
        by_packed: list[str] = []
        got = scoring.BatchAttributes(crossed).matrix(spec, by_packed)
        assert got.tobytes() == expected.tobytes()
        assert Counter(by_packed) == Counter(by_row)


def test_champion_and_candidate_share_a_batchs_encoding() -> None:
    events = [{"risk": 1.5, "channel": "pos"}, None]
    batch = scoring.BatchAttributes(events)
    first = batch.matrix(SPEC)  # the candidate, in its thread, may come first
    missing: list[str] = []
    assert batch.matrix(SPEC, missing) is first  # encoded once
    assert sorted(missing) == ["channel", "mcc", "mcc", "new_device", "new_device", "risk"]
    other = batch.matrix(AttributeSpec(SPEC.attributes[:1]))  # another spec: its own
    assert other.shape == (2, 1) and other[0, 0] == 1.5 and math.isnan(other[1, 0])


def test_replay_feeds_a_model_its_attributes_like_the_worker() -> None:
    from lifecycle.replay import evaluate

    model = FraudModel(**{**_model(SPEC).__dict__, "attributes": SPEC})
    events = [{"risk": 1.5, "channel": "pos"}, None, {"mcc": 7995, "new_device": True}]
    columns, ok = training_columns(SPEC, events)
    feats = pd.DataFrame({n: [0.1, 0.2, 0.3] for n in FEATURE_NAMES[:2]})
    X = model.inputs(feats, columns)
    online = np.asarray([SPEC.row(e) for e in events])
    assert np.array_equal(X[:, 2:], online, equal_nan=True) and ok.all()
    assert X[:, :2].tolist() == feats.to_numpy().tolist()
    # a backtest scores what the worker scores: an event whose attribute has the wrong type
    # is dead-lettered there, so it is not in the report
    t0 = pd.Timestamp("2024-03-01", tz="UTC")
    tx = pd.DataFrame({"transaction_id": ["a", "b", "c"], "card_id": "c1", "terminal_id": "m1",
                       "amount": 10.0, "event_time": [t0 + pd.Timedelta(minutes=i)
                                                      for i in range(3)],
                       "attributes": [*events[:2], {"risk": "high"}]})
    labels = pd.DataFrame({"transaction_id": ["a", "b", "c"], "is_fraud": [1, 0, 1],
                           "label_time": t0 + pd.Timedelta(days=30)})
    assert evaluate(model, "1", tx, labels, None, None).transactions == 2


def test_training_columns_are_a_files_columns_and_encode_like_the_worker() -> None:
    events = [{"risk": 1.5, "new_device": True, "channel": "pos", "mcc": 7995},
              None, {"risk": None, "mcc": "5411", "channel": 3},
              {"risk": "high", "new_device": False}]
    columns, ok = training_columns(SPEC, events)
    assert ok.tolist() == [True, True, True, False]
    assert columns["risk"].dtype == np.float64 and columns["new_device"].dtype == np.float64
    assert columns["new_device"].tolist()[0] == 1.0 and math.isnan(columns["risk"][3])
    assert columns["channel"].tolist() == ["pos", None, 3, None]
    # a file's columns, encoded offline, equal the worker's per-event encoding
    assert np.array_equal(encode_frame(SPEC, columns)[:3],
                          np.asarray([SPEC.row(e) for e in events[:3]]), equal_nan=True)


def test_json_schema_accepts_attributes_and_bounds_them() -> None:
    import jsonschema

    from schemas.jsonschema_export import render

    schema = json.loads(render("Transaction"))
    jsonschema.validate({**BASE, "attributes": {"3ds": True, "risk": 0.2, "x": None}}, schema)
    for bad in ({"bad name": 1}, {"a": [1]}, {"s": "x" * 300}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**BASE, "attributes": bad}, schema)
