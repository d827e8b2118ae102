"""Fixtures of the worker end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lifecycle.registry import ModelRegistry
from sentinel.settings import Settings
from tests.e2e.worker_support import register


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store with three small registered versions, shared by every worker test."""
    root = tmp_path_factory.mktemp("models")
    settings = Settings(data_dir=root)
    registry = ModelRegistry(settings.model_copy(update={"mlflow": settings.mlflow.model_copy(
        update={"model_name": "e2e-base"})}))
    for seed in (1, 2, 3):
        register(registry, seed)
    return root


@pytest.fixture
def worker_settings(settings_factory: Callable[..., Settings], model_store: Path,
                    ) -> Callable[..., tuple[Settings, ModelRegistry]]:
    """Settings on the test broker whose MLflow store already holds v1..v3 of a model."""
    import uuid

    def make(champion: str | None = "1", candidate: str | None = "2") -> tuple[Settings,
                                                                             ModelRegistry]:
        settings = settings_factory()
        name = f"e2e-{uuid.uuid4().hex[:8]}"
        uri = f"sqlite:///{model_store}/mlflow.db"
        settings = settings.model_copy(update={"mlflow": settings.mlflow.model_copy(update={
            "model_name": name, "tracking_uri": uri, "registry_uri": uri})})
        registry = ModelRegistry(settings)
        base = ModelRegistry(settings.model_copy(update={"mlflow": settings.mlflow.model_copy(
            update={"model_name": "e2e-base"})}))
        registry.client.create_registered_model(name)
        for v in base.versions():
            registry.client.create_model_version(name, v.source, run_id=v.run_id, tags=v.tags)
        if champion:
            registry.client.set_registered_model_alias(name, "champion", champion)
        if candidate:
            registry.client.set_registered_model_alias(name, "candidate", candidate)
        return settings, registry

    return make
