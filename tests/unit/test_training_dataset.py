"""The canonical frame and its digest: same content, same digest, whatever the file format."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from training.dataset import make_dataset, read_transactions
from training.errors import DatasetError


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": ["t2", "t1", "t3"],
            "event_time": [
                "2018-04-01T10:00:00Z",
                "2018-04-01T09:00:00",
                "2018-04-02 08:00:00+02:00",
            ],
            "card_id": ["c1", "c2", "c1"],
            "terminal_id": ["m1", "m1", "m2"],
            "amount": [10.5, 20.0, 3.25],
            "is_fraud": [0, 1, 0],
            "fraud_scenario": [0, 1, 0],
        }
    )


def test_digest_ignores_row_order_format_and_extra_columns(tmp_path: Path) -> None:
    frame = _frame()
    base = make_dataset(frame, "memory")
    assert list(base.frame["transaction_id"]) == ["t1", "t2", "t3"]
    assert str(base.frame["event_time"].dtype) == "datetime64[ns, UTC]"
    assert "fraud_scenario" not in base.frame
    frame.to_csv(tmp_path / "tx.csv", index=False)
    from_csv = make_dataset(read_transactions(tmp_path / "tx.csv"), "csv")
    shuffled = make_dataset(frame.iloc[[2, 0, 1]], "shuffled")
    assert base.digest == from_csv.digest == shuffled.digest
    assert len(base.digest) == 64


def test_digest_changes_with_content() -> None:
    changed = _frame().assign(amount=[10.5, 20.0, 3.26])
    assert make_dataset(changed, "a").digest != make_dataset(_frame(), "b").digest


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DatasetError, match="unknown format"):
        read_transactions(tmp_path / "x.json")
    with pytest.raises(DatasetError, match="no such file"):
        read_transactions(tmp_path / "missing.csv")
