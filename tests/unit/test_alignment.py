"""The frontier: when a held hand-off may be scored, and what eviction must keep."""

from __future__ import annotations

import pytest

from stream_app.alignment import MARKER, Frontier, Marks, decode_marker, encode_marker

DAY = 86_400_000_000


def update(f: Frontier, labels: Marks, transactions: Marks) -> None:
    """A marker whose marks also came relayed through every card partition (no re-keyed
    backlog or report in flight): the direct rules alone decide."""
    cards = range(f.transaction_partitions)
    f.update(labels, transactions, {c: transactions for c in cards} if transactions else None,
             {c: labels for c in cards} if labels else None)


def test_a_message_waits_for_every_labels_and_transactions_partition() -> None:
    f = Frontier(label_partitions=2, transaction_partitions=2, delay_us=7 * DAY)
    t = 30 * DAY
    assert not f.passes(t, read_ms=1_000)  # no marker yet: nothing is known
    update(f, {0: (t, None)}, {0: (t, None), 1: (t, None)})
    assert not f.passes(t, read_ms=1_000)  # labels partition 1 unknown
    update(f, {1: (t - 1, None)}, {})
    assert not f.passes(t, read_ms=1_000)  # labels partition 1 has not reached t
    update(f, {1: (t - 1, 2_000)}, {})  # ...but was caught up after the message was read
    assert f.passes(t, read_ms=1_000)
    assert not f.passes(t, read_ms=3_000)  # read after that look: could miss a new label


def test_transactions_only_need_to_be_read_past_t_minus_the_delay() -> None:
    f = Frontier(label_partitions=1, transaction_partitions=2, delay_us=7 * DAY)
    update(f, {0: (100 * DAY, None)}, {0: (23 * DAY, None), 1: (24 * DAY, None)})
    assert f.passes(30 * DAY, read_ms=0)
    assert not f.passes(31 * DAY, read_ms=0)  # partition 0 may still hold day-23.5 payments


def test_marks_only_move_forward_and_caught_up_stays_true() -> None:
    f = Frontier(label_partitions=1, transaction_partitions=1, delay_us=0)
    f.update({0: (50, 900)}, {0: (50, None)})
    f.update({0: (40, None)}, {0: (60, None)})  # an older owner's late marker
    assert f.labels[0] == (50, 900) and f.transactions[0] == (60, None)


def test_safe_time_is_the_slowest_busy_transactions_partition() -> None:
    f = Frontier(label_partitions=1, transaction_partitions=2, delay_us=0)
    assert f.safe_us() is None  # unknown: evict nothing
    update(f, {}, {0: (10, None), 1: (20, None)})
    assert f.safe_us() == 10
    update(f, {}, {0: (12, 5)})  # partition 0 caught up: what comes later is new
    assert f.safe_us() == 20
    update(f, {}, {0: (15, None)})  # busy again
    assert f.safe_us() == 15


def test_markers_round_trip_and_hostile_ones_are_refused() -> None:
    marker = encode_marker({0: (5, None)}, {1: (7, 99)})
    assert marker[:1] == MARKER
    assert decode_marker(marker) == ({0: (5, None)}, {1: (7, 99)}, {}, {})
    for bad in (MARKER + b"[]", MARKER + b'{"l": {"0": ["x", null]}}', MARKER + b"{"):
        with pytest.raises(ValueError):
            decode_marker(bad)


def test_caught_up_counts_only_a_grace_after_the_message_was_read() -> None:
    """A label sent just before a payment may land just after it (two partitions' batches):
    a look at the end counts only if it came at least ``grace_ms`` after the read."""
    f = Frontier(label_partitions=1, transaction_partitions=1, delay_us=0, grace_ms=100)
    update(f, {0: (0, 1_050)}, {0: (0, 1_050)})
    assert not f.passes(10, read_ms=1_000)
    update(f, {0: (0, 1_100)}, {0: (0, 1_100)})
    assert f.passes(10, read_ms=1_000)


def test_a_payment_re_keyed_through_a_lagging_card_partition_holds_the_message() -> None:
    """Read directly past t - D is not enough: payments re-keyed to another worker's card
    partition reach the terminal stage one hop later, so card partition 1's relay lags."""
    f = Frontier(label_partitions=1, transaction_partitions=2, delay_us=7 * DAY)
    f.update({0: (100 * DAY, None)}, {0: (30 * DAY, None), 1: (30 * DAY, None)}, None,
             {0: {0: (100 * DAY, None)}, 1: {0: (100 * DAY, None)}})
    assert not f.passes(30 * DAY, read_ms=0)  # nothing relayed yet
    f.update({}, {}, {0: {0: (30 * DAY, None), 1: (30 * DAY, None)},
                      1: {0: (20 * DAY, None), 1: (30 * DAY, None)}})
    assert f.passes(27 * DAY, read_ms=0)
    assert not f.passes(28 * DAY, read_ms=0)  # partition 0's payments via 1 reached day 20
    assert f.safe_us() == 20 * DAY  # and eviction keeps what they may still need
    f.update({}, {}, {1: {0: (21 * DAY, 500)}})  # relayed: partition 0 caught up at 500 ms
    assert f.passes(30 * DAY, read_ms=400) and not f.passes(30 * DAY, read_ms=600)


def test_relayed_marks_round_trip() -> None:
    marker = encode_marker({}, {0: (7, None)}, {1: {0: (5, 99)}}, {0: {2: (3, None)}})
    assert decode_marker(marker) == ({}, {0: (7, None)}, {1: {0: (5, 99)}}, {0: {2: (3, None)}})
    with pytest.raises(ValueError):
        decode_marker(MARKER + b'{"v": []}')


def test_a_report_re_keyed_to_its_card_holds_the_labels_it_may_resolve() -> None:
    """A fraud report forwarded to its card's partition becomes labels there, one hop later
    than its labels partition's direct mark says."""
    f = Frontier(label_partitions=1, transaction_partitions=2, delay_us=0)
    update(f, {0: (50, None)}, {0: (60, None), 1: (60, None)})
    assert f.passes(50, read_ms=0)
    f.update({0: (80, None)}, {}, None, {0: {0: (80, None)}, 1: {0: (55, None)}})
    assert not f.passes(60, read_ms=0)  # reports read before 60 may still be in card 1's hop
    f.update({}, {}, None, {1: {0: (70, 10)}})  # card 1 relayed: caught up at 10 ms
    assert f.passes(60, read_ms=0)
