"""Pure parts of the streaming worker: replay memory, partitioner, /predict parsing, metrics."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from features import CardState, FeatureConfig, TransactionRecord, card_stage
from stream_app.errors import PredictInputError
from stream_app.metrics import WorkerMetrics
from stream_app.partitioning import partition_for
from stream_app.predict import parse
from stream_app.scoring import columns, feature_hash
from stream_app.state import KeyedState


def test_replayed_transaction_gets_same_features_and_state_is_not_updated_twice() -> None:
    config = FeatureConfig()
    entry = KeyedState(CardState())
    rec = TransactionRecord("t1", "c1", "m1", 10.0, 1_700_000_000_000_000)
    first = entry.features("t1", 7, lambda s: card_stage(s, rec, config))
    restored = KeyedState.from_dict(entry.to_dict(), CardState.from_dict)
    again = restored.features("t1", 7, lambda s: card_stage(s, rec, config))
    assert again == first and len(restored.state) == 1


def test_replay_memory_is_pruned_below_the_committed_offset() -> None:
    config = FeatureConfig()
    entry = KeyedState(CardState())
    for offset in (3, 8, 9):
        rec = TransactionRecord(f"t{offset}", "c1", "m1", 10.0, 1_700_000_000_000_000 + offset)
        entry.features(rec.transaction_id, offset, lambda s, r=rec: card_stage(s, r, config))
    entry.prune(None)
    assert len(entry.recent) == 3
    entry.prune(8)  # offset 8 is the next to read: 8 and 9 may still be replayed
    restored = KeyedState.from_dict(entry.to_dict(), CardState.from_dict)
    assert set(restored.recent) == {"t8", "t9"} and len(restored.state) == 3


def test_replay_memory_is_invisible_to_full_collections() -> None:
    """Thousands of keys each remember a few transactions: those memories must not be objects
    the collector walks on every full collection (they were: 45-68k lists in one worker)."""
    import gc

    config = FeatureConfig()
    entry = KeyedState(CardState())
    for offset in range(3):
        rec = TransactionRecord(f"t{offset}", "c1", "m1", 10.0, 1_700_000_000_000_000 + offset)
        entry.features(rec.transaction_id, offset, lambda s, r=rec: card_stage(s, r, config))
    for _ in range(3):  # each pass untracks one level: inner tuples, entries, then the dict
        gc.collect()
    assert not gc.is_tracked(entry.recent)
    assert not any(gc.is_tracked(v) for v in entry.recent.values())
    restored = KeyedState.from_dict(entry.to_dict(), CardState.from_dict)
    for _ in range(3):
        gc.collect()
    assert not gc.is_tracked(restored.recent)


def test_partition_matches_librdkafka_consistent_partitioner() -> None:
    assert partition_for(b"m42", 6) == zlib.crc32(b"m42") % 6


def test_predict_body_defaults_and_field_errors() -> None:
    tx = parse({"id": 1, "amount": 150000.0})
    assert tx.card_id == "1" and tx.terminal_id == "predict"
    with pytest.raises(PredictInputError) as err:
        parse({"amount": -1, "bogus": 2})
    assert {f for f, _ in err.value.problems} == {"id", "bogus"}


def test_columns_and_hash() -> None:
    assert columns(("b", "a"), ("a", "b", "c")).tolist() == [1, 0]
    with pytest.raises(KeyError):
        columns(("z",), ("a",))
    row = np.arange(3, dtype=np.float64)
    assert feature_hash(row) == feature_hash(row.copy()) != feature_hash(row + 1)


def test_metric_names_are_the_contract() -> None:
    m = WorkerMetrics(fraud_window=4)
    m.observe_decisions([True, False, False, False, True])
    text = m.render().decode()
    for name in ("sentinel_transactions_total", "sentinel_candidate_failures_total",
                 "sentinel_shadow_results_total", "sentinel_fraud_rate 0.25"):
        assert name in text


def test_encoded_verdicts_and_shadow_results_follow_the_schema() -> None:
    from schemas import ShadowResult, Verdict, decode
    from stream_app.handoff import Handoff
    from stream_app.scoring import Scored, shadow_results, verdicts

    h = Handoff("t1", "c1", "m1", 12.5, "2024-03-01T10:00:00+00:00", 0, 1_700_000_000_000, [])
    X = np.zeros((1, 3))
    a = Scored("1", "m", np.array([0.7]), np.array(["decline"], dtype=object), 0.0)
    b = Scored("2", "m", np.array([0.1]), np.array(["approve"], dtype=object), 0.0)
    (key, value), = verdicts([h], X, a, [["amount"]])
    v = decode(Verdict, value)
    assert key == "t1" and v.decision == "decline" and v.reason_codes == ["amount"]
    assert v.feature_hash == feature_hash(X[0]) and v.event_time.hour == 10
    (key, value, agree), = shadow_results([h], a, b)
    s = decode(ShadowResult, value)
    assert not agree and not s.agree and s.candidate_score == 0.1


def test_templated_verdicts_and_shadow_results_equal_json_dumps_byte_for_byte() -> None:
    import json
    from datetime import UTC, datetime
    from unittest import mock

    from stream_app import scoring
    from stream_app.handoff import Handoff

    dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    odd = ['t"1\\x', "c\u00e9\n\t\u0001", "\u2603 card", "", "plain-id-42"]
    rng = np.random.default_rng(5)
    batch = [Handoff(odd[i % 5], odd[(i + 1) % 5], "m", 1.0, f"2024-03-01T10:0{i}:00+00:00", 0,
                     1_700_000_000_000 + i, []) for i in range(5)]
    X = rng.random((5, 4))
    scores = np.array([0.0, 1.0, 1e-17, 0.123456789012345678, 0.5])
    a = scoring.Scored('v"1', "m\u00e9", scores, np.array(["approve", "review", "decline",
                                                           "review", "approve"]), 0.0)
    b = scoring.Scored("2", "m", scores[::-1].copy(), np.array(["approve"] * 5), 0.0)
    codes = [[], ["amount", 'q"uote'], ["\u00e9"], ["a", "b", "c"], []]
    now = datetime(2024, 3, 1, 10, 0, 1, 234567, tzinfo=UTC)
    with mock.patch.object(scoring, "datetime") as clock:
        clock.now.return_value = now
        got = scoring.verdicts(batch, X, a, codes)
    now_ms = now.timestamp() * 1000.0
    for i, (key, value) in enumerate(got):
        h = batch[i]
        assert key == h.transaction_id
        assert value == dumps({
            "schema_version": 1, "transaction_id": h.transaction_id, "card_id": h.card_id,
            "score": float(scores[i]), "decision": str(a.decisions[i]), "model_name": a.name,
            "model_version": a.version, "reason_codes": codes[i],
            "feature_hash": scoring.feature_hash(X[i]), "event_time": h.event_time,
            "scored_at": now.isoformat(),
            "latency_ms": max(0.0, now_ms - h.arrival_ms)}).encode()
    for i, (key, value, agree) in enumerate(scoring.shadow_results(batch, a, b)):
        h = batch[i]
        assert key == h.transaction_id
        assert value == dumps({
            "schema_version": 1, "transaction_id": h.transaction_id, "card_id": h.card_id,
            "champion_version": a.version, "champion_score": float(a.scores[i]),
            "champion_decision": str(a.decisions[i]), "candidate_version": b.version,
            "candidate_score": float(b.scores[i]), "candidate_decision": str(b.decisions[i]),
            "agree": agree, "event_time": h.event_time}).encode()
    nan = scoring.Scored("1", "m", np.array([np.nan]), np.array(["approve"]), 0.0)
    with pytest.raises(ValueError, match="out of range"):
        scoring.verdicts(batch[:1], X[:1], nan, [[]])


def test_changelog_values_round_trip_and_old_json_values_still_load() -> None:
    import json

    from stream_app.state import decode_value, encode_value

    config = FeatureConfig()
    entry = KeyedState(CardState())
    rec = TransactionRecord("t1", "c1", "m1", 10.0, 1_700_000_000_000_000)
    entry.features("t1", 3, lambda s: card_stage(s, rec, config))
    data = entry.to_dict()
    assert decode_value(encode_value(data)) == data
    old = {"s": entry.state.to_dict(), "r": data["r"]}  # older workers wrote JSON, int lists
    assert decode_value(json.dumps(old).encode()) == json.loads(json.dumps(old))


def test_handoff_round_trip_keeps_floats_exact() -> None:
    import json

    from stream_app.handoff import Handoff

    h = Handoff("t1", "c1", "m1", 0.1 + 0.2, "2024-03-01T10:00:00+00:00", 5, 7, [1 / 3, 2.5])
    assert Handoff.decode(h.encode()) == h
    old = json.dumps(["t1", "c1", "m1", 0.3, "2024-03-01T10:00:00+00:00", 5, 7, [1.0]])
    assert Handoff.decode(old.encode()).head == [1.0]


def test_handoff_batches_keep_order() -> None:
    from stream_app.handoff import Handoff

    records = [Handoff(f"t{i}", "c1", "m1", 1.0, "2024-03-01T10:00:00+00:00", i, 7, [0.5])
               for i in range(5)]
    assert Handoff.decode_many(Handoff.encode_batch(records)) == records
    assert Handoff.decode_many(records[0].encode()) == records[:1]


def _terminal_with_history():  # type: ignore[no-untyped-def]
    from features import TerminalState

    config = FeatureConfig()
    state = TerminalState()
    base = 1_700_000_000_000_000
    for i in range(40):
        state.update(f"tx-{i}", base + i * 3_600_000_000, config)
    state.apply_label("tx-3", base + 3 * 3_600_000_000, True, base + 50 * 3_600_000_000)
    return state


def test_changelog_values_carry_int_columns_as_bytes_and_restore_the_same_state() -> None:
    from features import TerminalState
    from stream_app.state import decode_value, encode_value

    config = FeatureConfig()
    card = KeyedState(CardState())
    for i in range(30):
        rec = TransactionRecord(f"t{i}", "c1", f"m{i % 4}", 10.0 + i, 1_700_000_000_000_000 + i)
        card.features(rec.transaction_id, i, lambda s, r=rec: card_stage(s, r, config))
    terminal = KeyedState(_terminal_with_history())
    for entry, load in ((card, CardState.from_dict), (terminal, TerminalState.from_dict)):
        stored = decode_value(encode_value(entry.to_dict()))
        assert isinstance(stored["s"]["t"], bytes)
        restored = KeyedState.from_dict(stored, load)
        assert restored.state.to_dict() == entry.state.to_dict()  # type: ignore[attr-defined]
        assert restored.recent == entry.recent


def test_changelog_values_of_older_workers_with_int_lists_still_load() -> None:
    from features import TerminalState
    from stream_app.state import decode_value, encode_value

    config = FeatureConfig()
    card = CardState()
    rec = TransactionRecord("t1", "c1", "m1", 12.5, 1_700_000_000_000_000)
    card_stage(card, rec, config)
    terminal = _terminal_with_history()
    for state, load in ((card, CardState.from_dict), (terminal, TerminalState.from_dict)):
        old = decode_value(encode_value({"s": state.to_dict(), "r": []}))
        assert isinstance(old["s"]["t"], list)
        assert KeyedState.from_dict(old, load).state.to_dict() == state.to_dict()
    later = TransactionRecord("t2", "c1", "m1", 99.0, 1_700_000_100_000_000)
    restored = CardState.from_dict(decode_value(encode_value(card.to_dict())))
    assert card_stage(restored, later, config) == card_stage(card, later, config)


@pytest.mark.parametrize("values", [[], ["a"], ["T1", "T2", "T1"], ["", ""], ["a\x00b", "c"]])
def test_packed_string_columns_round_trip_any_strings(values: list[str]) -> None:
    from features.packed import pack_strings, unpack_strings

    packed = pack_strings(values)
    assert unpack_strings(packed) == values
    assert isinstance(packed, list) == (not values or any("\x00" in v for v in values))


def test_a_card_state_with_a_nul_in_a_terminal_id_survives_the_changelog() -> None:
    from stream_app.state import decode_value, encode_value

    config = FeatureConfig()
    card = CardState()
    for i, terminal in enumerate(["m\x001", "m2", "m\x001"]):
        card_stage(card, TransactionRecord(f"t{i}", "c1", terminal, 5.0, 1_700_000_000_000_000 + i),
                   config)
    restored = CardState.from_dict(decode_value(encode_value(card.pack())))
    assert restored.terminals == ["m\x001", "m2", "m\x001"]
