"""Registration through an MLflow tracking server (HTTP), as in the compose stack.

A file store accepts a ``models:/m-...`` source on its own; a tracking server refuses it unless
the logged model's id comes with it (MLflow 3), which failed ``sentinel train`` in the stack.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from lifecycle.registry import CANDIDATE, ModelRegistry
from sentinel.infra.worker_process import free_port
from sentinel.settings import MlflowSettings, Settings
from training.learners import BoosterParams, fit_booster
from training.model import Thresholds

FEATURES = ("amount", "velocity", "risk")


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("mlflow", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the mlflow server command is not installed in this environment")
    home = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
         "--artifacts-destination", str(home / "artifacts"), "--serve-artifacts"],
        stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, (home / "server.log").read_text()[-2000:]
            try:
                if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not answer /health within 120 s")
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_a_logged_model_registers_through_a_tracking_server(tracking_uri: str,
                                                             tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, len(FEATURES)))
    y = (X[:, 0] + rng.normal(scale=0.5, size=300) > 1.0).astype(int)
    model = fit_booster(X, y, FEATURES, BoosterParams(
        num_trees=5, num_leaves=4, min_child_samples=5, seed=0)).with_thresholds(
            Thresholds(review=0.3, decline=0.8))
    settings = Settings(data_dir=tmp_path, mlflow=MlflowSettings(
        tracking_uri=tracking_uri, model_name="fraud-server-test"))
    registry = ModelRegistry(settings, publish=lambda event: None)
    logged = registry.log_run(model, params={"kind": model.kind},
                              metrics={"average_precision": 0.5}, tags={})
    # the project's own format: the run's artifact folder (no pickled model, no logged-model id)
    assert logged.model_uri.endswith("/artifacts/model") and logged.artifact_sha256
    ref = registry.register(logged, reason="server test")
    assert ref.version == "1"
    resolved = registry.resolve(CANDIDATE)
    assert resolved is not None and resolved.version == "1"
    loaded = registry.load(resolved)  # through the server, digest checked
    np.testing.assert_array_equal(loaded.score(X), model.score(X))
