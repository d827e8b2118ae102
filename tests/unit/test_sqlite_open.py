"""Opening one new SQLite store from several connections at once (a retrainer and a standby,
or a test reading beside it): SQLite refuses the WAL switch at once while another connection
opens the file, so the store retries it instead of failing with "database is locked"."""

from __future__ import annotations

import threading
from pathlib import Path

from lifecycle.labelstore import LabelStore


def test_a_new_store_opened_from_four_threads_at_once_opens_everywhere(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    for k in range(30):
        path = tmp_path / f"s{k}.sqlite"
        barrier = threading.Barrier(4)

        def open_it(path: Path = path, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                LabelStore(path).close()
            except BaseException as exc:  # collected, asserted below
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    store = LabelStore(tmp_path / "s0.sqlite")
    assert store.count("transactions") == 0
    store.close()
