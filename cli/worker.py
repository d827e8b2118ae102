"""``sentinel worker``: run the streaming scorer. OpenMP is pinned to one thread before any
LightGBM import (the worker scores whole batches; more threads only fight the broker)."""

from __future__ import annotations

import argparse
import os

from sentinel.settings import Settings


def worker(settings: Settings, args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from sentinel.infra.runtime import check_access, ensure_kafka

    if getattr(args, "web_port", None):
        settings = settings.model_copy(
            update={"worker": settings.worker.model_copy(update={"web_port": args.web_port})})
    if settings.uses_embedded_broker:
        ensure_kafka(settings)
    check_access(settings)  # refused credentials: one line and exit 1, not endless retries
    from drift.monitor import DriftMonitor
    from features import FeatureConfig
    from lifecycle.registry import ModelRegistry
    from stream_app.app import Worker

    names = FeatureConfig.from_settings(settings.features).names
    drift = DriftMonitor(settings.drift, names) if settings.drift.enabled else None
    return Worker(settings, ModelRegistry(settings), drift).run()
