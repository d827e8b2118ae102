"""Handlers of the infrastructure subcommands: kafka, topics, schemas, dashboard."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from sentinel.errors import ConfigurationError
from sentinel.infra.admin import create_topics, list_topics
from sentinel.infra.runtime import embedded_broker, ensure_kafka
from sentinel.settings import Settings
from sentinel.topics import catalog


def kafka(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.uses_embedded_broker:
        print(f"using the configured cluster at {settings.bootstrap_servers}; "
              f"nothing to {args.action}")
        return 0
    broker = embedded_broker(settings)
    if args.action == "start":
        status = broker.start()
        print(f"kafka {status.detail} at {status.bootstrap} (pid {status.pid})")
    elif args.action == "stop":
        print(f"kafka {broker.stop()}")
    else:
        status = broker.status()
        print(f"kafka {status.detail} at {status.bootstrap}" +
              (f" (pid {status.pid})" if status.pid else ""))
        return 0 if status.running else 3
    return 0


def topics(settings: Settings, args: argparse.Namespace) -> int:
    ensure_kafka(settings)
    conf = settings.librdkafka()
    specs = catalog(settings.topics)
    if args.action == "create":
        outcome = create_topics(conf, specs, settings.topics.replication_factor)
        for spec in specs:
            print(f"{outcome[spec.name]:8} {spec.name} partitions={spec.partitions} key={spec.key}")
    else:
        existing = list_topics(conf)
        for spec in specs:
            parts = existing.get(spec.name)
            state = f"partitions={parts}" if parts is not None else "missing"
            print(f"{spec.name:32} {state:14} key={spec.key:15} value={spec.value}")
    return 0


def schemas(settings: Settings, args: argparse.Namespace) -> int:
    from schemas.jsonschema_export import SCHEMA_DIR, export

    for path in export(Path(args.dir) if args.dir else SCHEMA_DIR):
        print(path)
    return 0


def dashboard(settings: Settings, args: argparse.Namespace) -> int:
    """Streamlit on ``settings.dashboard.host`` (loopback unless set wider), with exactly
    these settings in its environment: the page reads its sources from them only."""
    app = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
    if not app.exists():
        raise ConfigurationError("the dashboard is not installed in this checkout")
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
           "--server.address", settings.dashboard.host,
           "--server.port", str(args.port or settings.dashboard.port),
           "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env.update(settings.as_env())
    return subprocess.call(cmd, env=env)
