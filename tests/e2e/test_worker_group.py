"""Two workers of one group on the real broker: a second joins mid-stream and the first leaves;
every transaction gets exactly one verdict, scored on the features of an uninterrupted run."""

from __future__ import annotations

import collections
import json
import signal
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import FeatureConfig
from features.offline import compute_features
from sentinel.infra.worker_process import free_port
from tests.e2e.worker_support import (
    log_tail,
    produce,
    start_worker,
    stop_worker,
    transactions,
    wait_ready,
    worker_env,
)
from tests.plugin import TopicCollector

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_a_second_worker_joins_and_the_first_leaves_without_a_lost_or_double_verdict(
        worker_settings, tmp_path: Path) -> None:
    settings, _ = worker_settings(champion="1", candidate=None)
    txs = transactions(9000, cards=300, terminals=40, seed=17)
    app_id = f"g-{uuid.uuid4().hex[:8]}"
    envs = []
    for name in ("a", "b"):
        env = worker_env(settings, free_port(), app_id)
        env.update({"SENTINEL_SCORING__VERDICT_FEATURES": "true",
                    "SENTINEL_WORKER__INSTANCE_ID": name})
        envs.append(env)
    first = start_worker(envs[0], tmp_path / "a.log")
    second = None
    verdicts = TopicCollector(settings, "verdicts", None, first)
    try:
        wait_ready(int(envs[0]["SENTINEL_WORKER__WEB_PORT"]), first)
        produce(settings, txs[:3000])
        verdicts.until(lambda got: len(got) >= 1000, 120)
        second = start_worker(envs[1], tmp_path / "b.log")
        produce(settings, txs[3000:6000])
        wait_ready(int(envs[1]["SENTINEL_WORKER__WEB_PORT"]), second)
        verdicts.proc = second
        verdicts.until(lambda got: len(got) >= 4000, 180)
        assert stop_worker(first, signal.SIGTERM), "SIGTERM did not stop the first worker"
        produce(settings, txs[6000:])
        verdicts.until(lambda got: len(got) >= len(txs), 180)
        verdicts.drain()
    except (TimeoutError, AssertionError, RuntimeError) as exc:
        raise AssertionError(f"{exc}\n{log_tail(tmp_path)}") from exc
    finally:
        for proc in (first, second):
            if proc is not None:
                stop_worker(proc, signal.SIGKILL)
        verdicts.close()
    counts = collections.Counter()
    rows = {}
    for raw in verdicts.items:
        v = json.loads(raw)
        counts[v["transaction_id"]] += 1
        rows[v["transaction_id"]] = v["features"]
    assert set(counts) == {t.transaction_id for t in txs}
    assert max(counts.values()) == 1
    frame = pd.DataFrame([t.model_dump() for t in txs])
    config = FeatureConfig()
    offline = compute_features(frame, pd.DataFrame(columns=["transaction_id", "is_fraud",
                                                            "label_time"]), config)
    online = np.asarray([rows[t] for t in offline["transaction_id"]])
    np.testing.assert_allclose(online, offline[list(config.names)].to_numpy(), atol=1e-9, rtol=0)
