"""Where attributes come from: the simulator (seeded, different for fraud) and a user's file
streamed by ``sentinel produce --input`` (attributes included, ids and times as in training)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli.data import stream_history
from schemas import Transaction, decode, encode
from sentinel.errors import ConfigurationError
from sentinel.settings import Settings
from training.producer import transaction_event
from training.simulation.attributes import COLUMNS, add_attributes
from training.simulation.config import SimulationConfig
from training.simulation.simulator import simulate


def test_simulated_attributes_are_seeded_and_differ_for_fraud() -> None:
    frame = simulate(SimulationConfig(n_customers=200, n_terminals=400, n_days=30, seed=1))
    a, b = add_attributes(frame, 1), add_attributes(frame, 1)
    pd.testing.assert_frame_equal(a, b)
    assert not a["new_device"].equals(add_attributes(frame, 2)["new_device"])
    assert list(a.columns[-4:]) == list(COLUMNS)
    pd.testing.assert_frame_equal(a[frame.columns], frame)  # the transactions are unchanged
    fraud = a["is_fraud"] == 1
    assert a.loc[fraud, "new_device"].mean() > 3 * a.loc[~fraud, "new_device"].mean()
    assert (a.loc[fraud, "channel"] == "ecom").mean() > (a.loc[~fraud, "channel"] == "ecom").mean()


def test_produce_input_streams_a_users_file_with_attributes(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    pd.DataFrame({"Time": [5.0, 1.0, 3.0], "Amount": [10.0, 20.0, 30.0], "Class": [0, 1, 0],
                  "V1": [0.5, np.nan, 2.0], "mcc": [5411, 7995, 5411],
                  "3ds": [True, False, True]}).to_csv(path, index=False)
    args = argparse.Namespace(input=str(path), columns="event_time=Time,amount=Amount,"
                              "is_fraud=Class", time_origin="2013-09-01T00:00:00Z")
    frame, attributes = stream_history(Settings(), args)
    assert attributes == ("V1", "mcc", "3ds")
    assert frame["transaction_id"].tolist() == ["row-1", "row-2", "row-0"]  # time order
    assert frame["card_id"].iloc[0] == "card-row-1"
    positions = tuple((n, list(frame.columns).index(n)) for n in attributes)
    rows = list(frame.itertuples(index=False))
    tx = decode(Transaction, encode(transaction_event(rows[0], positions)))
    assert tx.attributes == {"V1": None, "mcc": 7995, "3ds": False}
    assert tx.event_time.isoformat() == "2013-09-01T00:00:01+00:00"
    assert type(decode(Transaction, encode(transaction_event(rows[1], positions))).attributes[
        "V1"]) is float  # type: ignore[index]
    with pytest.raises(ConfigurationError, match="not in the file"):
        stream_history(Settings(), argparse.Namespace(**vars(args), attributes="V9"))


def test_the_shipped_example_is_what_its_documented_command_writes(tmp_path: Path) -> None:
    from training.simulation.anonymised import main

    out = tmp_path / "t.csv"
    assert main(["--rows", "4000", "--out", str(out)]) == 0
    shipped = Path(__file__).parents[2] / "examples" / "transactions.csv"
    assert out.read_bytes() == shipped.read_bytes()
    frame = pd.read_csv(shipped)
    assert {"card_id", "terminal_id"}.isdisjoint(frame.columns)
