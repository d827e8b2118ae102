"""The compose stack under test: docker-compose calls, container lookups, host-side readers.

One project name (``sentinel-stacktest``) so nothing clashes with a user's own stack; host
ports are free loopback ports chosen per run; the database password is generated per run and
passed in the environment (the user's ``.env`` is never read or written).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from sentinel.infra.worker_process import free_port
from tests.stack.engine import DockerEngine

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "sentinel-stacktest"
PORTS = ("SENTINEL_KAFKA_HOST_PORT", "SENTINEL_MLFLOW_PORT", "SENTINEL_PREDICT_PORT",
         "SENTINEL_PROMETHEUS_PORT", "SENTINEL_DASHBOARD_PORT")


@dataclass
class Stack:
    engine: DockerEngine
    local_images: bool = True
    env: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    slices: dict[int, set[str]] = field(default_factory=dict)
    compose_dir: Path = ROOT

    def __post_init__(self) -> None:
        self.env = {**self.engine.env, "COMPOSE_PROJECT_NAME": PROJECT,
                    "MLFLOW_DB_PASSWORD": secrets.token_hex(16),
                    "SENTINEL_API_TOKEN": secrets.token_hex(16),
                    **{name: str(free_port()) for name in PORTS}}

    # -- docker-compose ---------------------------------------------------------------------
    @property
    def files(self) -> list[str]:
        files = ["-f", "docker-compose.yml"]
        return [*files, "-f", "docker-compose.local.yml"] if self.local_images else files

    def compose(self, *args: str, timeout: float = 300.0,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["docker-compose", "--ansi", "never", *self.files, *args]
        result = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"docker-compose {' '.join(args)} failed:\n"
                               f"{(result.stdout + result.stderr).strip()[-3000:]}")
        return result

    def exec(self, service: str, *cmd: str, timeout: float = 300.0,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.compose("exec", "-T", service, *cmd, timeout=timeout, check=check)

    def popen_exec(self, service: str, *cmd: str) -> subprocess.Popen[str]:
        return subprocess.Popen(["docker-compose", "--ansi", "never", *self.files, "exec", "-T",
                                 service, *cmd], cwd=ROOT, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def container(self, service: str) -> str:
        out = self.compose("ps", "-q", service).stdout.strip()
        if not out:
            raise RuntimeError(f"no container for service {service}")
        return out.splitlines()[0]

    def inspect(self, service: str) -> dict[str, Any]:
        out = self.engine.docker("inspect", self.container(service)).stdout
        return dict(json.loads(out)[0])

    def health(self, service: str) -> str:
        state = self.inspect(service)["State"]
        return str(state.get("Health", {}).get("Status", state["Status"]))

    def wait_healthy(self, *services: str, timeout_s: float = 240.0) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(services)
        while pending and time.monotonic() < deadline:
            pending = [s for s in pending if self.health(s) != "healthy"]
            if pending:
                time.sleep(2)
        if pending:
            states = {s: self.health(s) for s in pending}
            logs = {s: self.logs(s, tail=15) for s in pending}
            raise AssertionError(f"not healthy after {timeout_s:.0f}s: {states}\n{logs}")

    def logs(self, service: str, tail: int = 40) -> str:
        return self.compose("logs", "--no-color", f"--tail={tail}", service, check=False).stdout

    def port(self, name: str) -> int:
        return int(self.env[name])

    # -- host-side readers -------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port('SENTINEL_KAFKA_HOST_PORT')}"

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def end_offsets(self, topic: str, timeout_s: float = 30.0) -> dict[int, int]:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "stacktest-offsets"})
        try:
            meta = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p),
                                                      timeout=timeout_s)[1]
                    for p in meta.partitions}
        finally:
            consumer.close()

    def read_topic(self, topic: str, field_name: str = "transaction_id",
                   timeout_s: float = 30.0) -> list[str]:
        """``field_name`` of every JSON message now in ``topic`` (all partitions, from 0)."""
        return [value for _, value in self.read_partitions(topic, field_name, timeout_s)]

    def read_partitions(self, topic: str, field_name: str = "transaction_id",
                        timeout_s: float = 30.0) -> list[tuple[int, str]]:
        """(partition, ``field_name``) of every JSON message now in ``topic``."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap,
                             "group.id": f"stacktest-{uuid.uuid4().hex[:8]}",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        try:
            meta = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
            parts = [TopicPartition(topic, p) for p in meta.partitions]
            ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=timeout_s)[1]
                    for tp in parts}
            consumer.assign([TopicPartition(topic, p, 0) for p in ends])
            remaining = {p for p, end in ends.items() if end > 0}
            values: list[tuple[int, str]] = []
            deadline = time.monotonic() + timeout_s
            while remaining and time.monotonic() < deadline:
                for msg in consumer.consume(1000, timeout=1.0):
                    if msg.error():
                        continue
                    values.append((msg.partition(), str(json.loads(msg.value())[field_name])))
                    if msg.offset() + 1 >= ends[msg.partition()]:
                        remaining.discard(msg.partition())
            return values
        finally:
            consumer.close()

    def http(self, port_name: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"http://127.0.0.1:{self.port(port_name)}{path}"
        return httpx.request(kwargs.pop("method", "GET"), url, timeout=10.0, **kwargs)


def eventually(check: Callable[[], Any], timeout_s: float, what: str, every_s: float = 2.0) -> Any:
    """Call ``check`` until it returns a truthy value; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # a service that restarts refuses for a while
            last = exc
        else:
            if last:
                return last
        time.sleep(every_s)
    raise AssertionError(f"{what}: not within {timeout_s:.0f}s (last: {last!r})")
