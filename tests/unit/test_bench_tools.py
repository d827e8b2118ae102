"""The benchmark drivers' own logic: what `make bench` runs and how a worker setting under test
reaches the worker (the benchmarks themselves are measurements, not tests)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from sentinel.settings import KafkaSettings, Settings

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_all_runs_each_benchmark_in_order_and_stops_at_the_first_failure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    run_all = _load("run_all")
    calls: list[list[str]] = []

    def call(cmd: list[str], cwd: Path) -> int:
        calls.append(cmd)
        return 3 if cmd[1].endswith("bench_drift.py") else 0

    monkeypatch.setattr(run_all.subprocess, "call", call)
    assert run_all.run(["worker", "drift", "training"], "127.0.0.1:1") == 3
    assert [Path(c[1]).name for c in calls] == ["bench_worker.py", "bench_drift.py"]
    assert calls[0][calls[0].index("--bootstrap") + 1] == "127.0.0.1:1"


def test_run_all_rejects_an_unknown_benchmark_in_one_line() -> None:
    out = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--only", "worker,nope"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert "unknown benchmark(s) nope" in out.stderr and "Traceback" not in out.stderr


def test_worker_env_applies_settings_under_test_last_and_refuses_malformed_ones(
        tmp_path: Path) -> None:
    bench_worker = _load("bench_worker")
    settings = Settings(data_dir=tmp_path, kafka=KafkaSettings(bootstrap_servers="h:1"))
    env = bench_worker.worker_env(settings, 1234, 1000, 0.005,
                                  ["SENTINEL_SCORING__BATCH_WINDOW_S=0.01", "EXTRA=a=b"])
    assert env["SENTINEL_SCORING__BATCH_WINDOW_S"] == "0.01"  # overrides --window
    assert env["EXTRA"] == "a=b"
    assert env["SENTINEL_WORKER__WEB_PORT"] == "1234"
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        bench_worker.worker_env(settings, 1234, 1000, 0.005, ["no-equals-sign"])


def test_unseen_compromises_are_those_no_arrived_label_of_their_terminal_reveals() -> None:
    import pandas as pd

    features_bench = _load("bench_features")
    day = pd.Timedelta(days=1)
    t0 = pd.Timestamp("2018-08-01", tz="UTC")
    # terminal A: compromise frauds on days 0, 3, 9 (labels 7 days late), one on day 40;
    # terminal B: a fraud on day 8 while A's labels have arrived (another terminal: unseen)
    rows = [("A", 0), ("A", 3), ("A", 9), ("A", 40), ("B", 8)]
    frame = pd.DataFrame({
        "terminal_id": [r[0] for r in rows],
        "event_time": [t0 + r[1] * day for r in rows],
        "label_time": [t0 + (r[1] + 7) * day for r in rows],
    })
    scenario = np.array([2, 2, 2, 2, 2])
    unseen = features_bench._unseen_compromises(frame, scenario)
    # day 9 is revealed by day 0's label (arrived day 7, within the 28-day compromise); day 40
    # is past every revealing window (day 9's ends on day 37)
    assert unseen.tolist() == [True, True, False, True, True]
    other = features_bench._unseen_compromises(frame, np.array([2, 2, 1, 2, 0]))
    assert other.tolist() == [True, True, False, True, False]


class _Msg:
    def __init__(self, partition: int, offset: int, tid: str, row: list[float]) -> None:
        self._p, self._o = partition, offset
        self._v = json.dumps({"transaction_id": tid, "features": row}).encode()

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes:
        return self._v

    def timestamp(self) -> tuple[int, int]:
        return 1, 1_000 + self._o


def test_fault_bench_counts_a_reread_message_once_and_a_second_verdict_twice() -> None:
    faults = _load("bench_faults")
    batches = [[_Msg(0, 0, "t1", [1.0]), _Msg(0, 1, "t2", [2.0])],
               [_Msg(0, 0, "t1", [1.0]), _Msg(0, 1, "t2", [2.0]),  # re-read from earliest
                _Msg(0, 2, "t1", [1.0])]]  # a real second verdict

    class Consumer:
        def consume(self, n: int, timeout: float) -> list[_Msg]:
            return batches.pop(0) if batches else []

    v = faults.Verdicts.__new__(faults.Verdicts)
    v.reader = type("R", (), {"consumer": Consumer()})()
    v.count, v.rows, v.next_offset, v.last_new = faults.collections.Counter(), {}, {}, 0.0
    v.meta = {}
    v.poll(0.5)
    assert dict(v.count) == {"t1": 2, "t2": 1}


def test_fault_bench_check_fails_on_a_missing_verdict_a_duplicate_and_a_differing_row() -> None:
    import collections

    import pandas as pd

    faults = _load("bench_faults")
    data = type("D", (), {})()
    data.names = ["a", "b"]
    data.dump_to = None
    data.ids = {"t1", "t2", "t3"}
    data.offline = pd.DataFrame([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], columns=data.names,
                                index=["t1", "t2", "t3"])
    v = type("V", (), {})()
    v.count = collections.Counter({"t1": 1, "t2": 1, "t3": 1})
    v.rows = {"t1": [1.0, 2.0], "t2": [3.0, 4.0], "t3": [5.0, 6.0]}
    assert faults.verdict_check(data, v)["passed"]
    v.rows["t2"] = [3.0, 4.5]
    out = faults.verdict_check(data, v)
    assert not out["passed"] and out["feature_rows_differ"] == 1
    assert out["first_difference"]["transaction_id"] == "t2"
    v.rows["t2"] = [3.0, 4.0]
    v.count["t1"] = 2
    del v.count["t3"]
    out = faults.verdict_check(data, v)
    assert (out["missing"], out["duplicates"], out["passed"]) == (1, 1, False)
