"""Helpers of the worker tests: a small registered model pair, a worker process, transactions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from features import FEATURE_NAMES
from lifecycle.registry import ModelRegistry
from schemas import Transaction, encode
from sentinel.infra.kafka_io import EventProducer
from sentinel.settings import Settings
from training.model import FraudModel, Thresholds


def small_model(seed: int) -> FraudModel:
    """A tiny LightGBM on random rows with the real feature names (fast to train)."""
    rng = np.random.default_rng(seed)
    X = rng.random((2000, len(FEATURE_NAMES)))
    X[:, 0] *= 500
    y = ((X[:, 0] > 300) & (rng.random(2000) < 0.7)).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": seed,
                         "num_threads": 1}, lgb.Dataset(X, y), num_boost_round=15)
    return FraudModel("lightgbm", FEATURE_NAMES, Thresholds(review=0.3, decline=0.6), booster)


def register(registry: ModelRegistry, seed: int) -> str:
    logged = registry.log_run(small_model(seed), params={"seed": seed}, metrics={}, tags={})
    return registry.register(logged, reason="test").version


def transactions(n: int, cards: int = 200, terminals: int = 50, seed: int = 0,
                 start: datetime | None = None) -> list[Transaction]:
    rng = np.random.default_rng(seed)
    t0 = start or datetime(2024, 3, 1, tzinfo=UTC)
    gaps = np.cumsum(rng.integers(1, 120, n))
    return [Transaction(transaction_id=f"tx{seed}-{i}", card_id=f"c{rng.integers(cards)}",
                        terminal_id=f"m{rng.integers(terminals)}",
                        amount=float(np.round(rng.gamma(2.0, 60.0), 2)),
                        event_time=t0 + timedelta(seconds=int(gaps[i]))) for i in range(n)]


def produce(settings: Settings, txs: list[Transaction], poison: dict[int, bytes] | None = None,
            ) -> None:
    topic = settings.topics.name("transactions")
    with EventProducer(settings.librdkafka()) as producer:
        for i, tx in enumerate(txs):
            if poison and i in poison:
                producer.send(topic, b"poison", poison[i])
            producer.send(topic, tx.card_id, encode(tx))


def worker_env(settings: Settings, port: int, app_id: str) -> dict[str, str]:
    """A worker process's environment: exactly ``settings``, with its own port and group."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env.update(settings.as_env())
    env.update({
        "SENTINEL_WORKER__WEB_PORT": str(port),
        "SENTINEL_WORKER__APP_ID": app_id,
        "SENTINEL_SCORING__MODEL_POLL_INTERVAL_S": "1.0",
        "SENTINEL_LOG_LEVEL": "WARNING",
    })
    return env


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "cli.main", "worker"], env=env,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
                timeout_s: float = 15.0) -> bool:
    """Stop with ``sig``, falling back to SIGKILL; True when ``sig`` alone stopped it."""
    if proc.poll() is not None:
        return True
    proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return False


def log_tail(directory: Path, lines: int = 40) -> str:
    """The last lines of each worker log under ``directory``: a failing assertion shows them
    (pytest's temporary directories, and the logs with them, do not outlive the session)."""
    parts = []
    for log in sorted(directory.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log.name} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts)


def http(port: int, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def wait_serving(port: int, champion: str | None = None, candidate: str | None = None,
                 timeout_s: float = 90.0) -> None:
    """Until the worker's /health says it serves these versions (None: whatever)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _, body = http(port, "/health")
        except OSError:
            body = None
        if isinstance(body, dict) and all(
                want is None or (body.get(role) or {}).get("version") == want
                for role, want in (("champion", champion), ("candidate", candidate))):
            return
        time.sleep(0.2)
    raise TimeoutError(f"worker not serving champion={champion} candidate={candidate}")


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}")
        try:
            if http(port, "/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError("worker not ready")
