"""The embedded single-node Apache Kafka broker (KRaft, combined broker + controller).

The broker's jars come from Maven Central, resolved once by the machine's Maven from
``infra/kafka/pom.xml`` and cached under ``settings.broker.cache_dir/<version>``; the second start
needs no network. It runs with the machine's Java 17 on loopback, its storage formatted on first
start, and is stopped by the PID it recorded — only that process. With a
:class:`~sentinel.infra.broker_security.BrokerSecurity` it also listens with SASL_SSL (and
mutual TLS), beside its PLAINTEXT listener.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sentinel.errors import BrokerError, PortInUseError
from sentinel.infra.broker_security import BrokerSecurity
from sentinel.settings import EmbeddedBrokerSettings

logger = logging.getLogger(__name__)

POM = Path(__file__).resolve().parents[2] / "infra" / "kafka" / "pom.xml"
MAIN_CLASS = "kafka.Kafka"
LOG4J = """log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
"""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    detail: str


class EmbeddedKafka:
    """Fetch, format, start, probe and stop one local broker rooted at ``home``."""

    def __init__(self, settings: EmbeddedBrokerSettings, home: Path,
                 security: BrokerSecurity | None = None) -> None:
        self.settings = settings
        self.security = security
        self.home = home.resolve()
        self.libs = settings.cache_dir.expanduser() / settings.kafka_version / "libs"

    # -- paths -------------------------------------------------------------------------------
    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.home / "data"

    @property
    def bootstrap(self) -> str:
        return self.settings.bootstrap

    @property
    def secured_bootstraps(self) -> dict[str, str]:
        """Listener name (``SASL_SSL``, ``MTLS``) -> its bootstrap address."""
        if self.security is None:
            return {}
        host = self.settings.host
        return {name: url.split("://", 1)[1]
                for name, url in self.security.listeners(host).items()}

    # -- artifacts ---------------------------------------------------------------------------
    def ensure_artifacts(self) -> Path:
        """Resolve the broker's jars with Maven into the cache, once per Kafka version."""
        marker = self.libs / ".complete"
        if marker.exists():
            return self.libs
        if shutil.which("mvn") is None:
            raise BrokerError("Maven (mvn) is not on PATH: it is needed once to fetch the broker")
        if shutil.which("java") is None:
            raise BrokerError("Java is not on PATH: the embedded broker needs Java 17")
        self.libs.mkdir(parents=True, exist_ok=True)
        logger.info("fetching Kafka %s from Maven Central into %s", self.settings.kafka_version,
                    self.libs)
        cmd = [
            "mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
            f"-Dkafka.version={self.settings.kafka_version}",
            f"-Dscala.binary.version={self.settings.scala_version}",
            f"-DoutputDirectory={self.libs}", "-DincludeScope=runtime",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
            raise BrokerError("Maven could not fetch the Kafka broker: " + " | ".join(tail))
        marker.write_text(self.settings.kafka_version)
        return self.libs

    # -- lifecycle ---------------------------------------------------------------------------
    def status(self) -> BrokerStatus:
        pid = self._recorded_pid()
        if pid is None:
            return BrokerStatus(False, None, self.bootstrap, "not running")
        if not self._is_our_broker(pid):
            return BrokerStatus(False, pid, self.bootstrap, f"stale PID file (pid {pid} is gone)")
        if self._answers():
            return BrokerStatus(True, pid, self.bootstrap, "running")
        return BrokerStatus(True, pid, self.bootstrap, "starting (process up, not answering yet)")

    def start(self) -> BrokerStatus:
        """Start the broker unless it already runs; wait until it answers a metadata request."""
        current = self.status()
        if current.running:
            self._wait_until_ready(current.pid)
            return self.status()
        if current.pid is not None:
            logger.warning("removing stale PID file %s (pid %s)", self.pid_file, current.pid)
            self.pid_file.unlink(missing_ok=True)
        extra = self.security.ports if self.security is not None else []
        for port in (self.settings.port, self.settings.controller_port, *extra):
            if _port_busy(self.settings.host, port):
                raise PortInUseError(self.settings.host, port)
        libs = self.ensure_artifacts()
        self.home.mkdir(parents=True, exist_ok=True)
        self._write_config()
        if not (self.log_dir / "meta.properties").exists():
            self._format(libs)
        pid = self._launch(libs)
        self._wait_until_ready(pid)
        return self.status()

    def stop(self, timeout_s: float = 30.0) -> str:
        """Stop the recorded broker process (and only it). Returns what happened."""
        pid = self._recorded_pid()
        if pid is None:
            return "not running"
        if not self._is_our_broker(pid):
            self.pid_file.unlink(missing_ok=True)
            return f"not running (removed stale PID file for pid {pid})"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            logger.warning("broker pid %s ignored SIGTERM for %ss; killing", pid, timeout_s)
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        self.pid_file.unlink(missing_ok=True)
        return f"stopped (pid {pid})"

    # -- internals ---------------------------------------------------------------------------
    def _write_config(self) -> None:
        s = self.settings
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{s.host}:{s.controller_port}",
            "listeners": f"PLAINTEXT://{s.host}:{s.port},CONTROLLER://{s.host}:{s.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{s.host}:{s.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.retention.hours": "168",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        if self.security is not None:
            props.update(self._secured(props, self.security))
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.home / "log4j.properties").write_text(LOG4J)

    def _secured(self, props: dict[str, str], sec: BrokerSecurity) -> dict[str, str]:
        """``props``' listener settings with the secured listeners added, and their config."""
        host = self.settings.host
        listeners = ",".join(sec.listeners(host).values())
        protocols = ",".join(f"{n}:{p}" for n, p in sec.protocol_map().items())
        return {
            "listeners": f"{props['listeners']},{listeners}",
            "advertised.listeners": f"{props['advertised.listeners']},{listeners}",
            "listener.security.protocol.map":
                f"{props['listener.security.protocol.map']},{protocols}",
            **sec.properties(),
        }

    def _java(self, libs: Path, main: str, *args: str) -> list[str]:
        return [
            "java", f"-Xmx{self.settings.heap}", "-Xms128m", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
            "-cp", f"{libs}/*", main, *args,
        ]

    def _format(self, libs: Path) -> None:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # "=" form: a random id starts with "-" one time in 64 and would read as an option
        cmd = self._java(libs, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                         "-c", str(self.config_file), "--ignore-formatted",
                         *(self.security.scram_arguments() if self.security else []))
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed: {result.stderr.strip()[-300:]}")

    def _launch(self, libs: Path) -> int:
        log = self.log_file.open("ab")
        proc = subprocess.Popen(
            self._java(libs, MAIN_CLASS, str(self.config_file)),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=self.home,
        )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def _wait_until_ready(self, pid: int | None) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            if pid is not None and not _alive(pid):
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(f"the broker exited during start-up; see {self.log_file}")
            if self._answers():
                return
            time.sleep(0.25)
        raise BrokerError(
            f"the broker did not answer on {self.bootstrap} within "
            f"{self.settings.start_timeout_s:.0f}s; see {self.log_file}"
        )

    def _answers(self) -> bool:
        from sentinel.infra.admin import broker_answers  # local: keeps confluent_kafka at the edge

        return broker_answers(self.bootstrap)

    def _recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _is_our_broker(self, pid: int) -> bool:
        """True when ``pid`` is alive and is a Kafka broker running our config file."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return _alive(pid)
        return MAIN_CLASS.encode() in cmdline and str(self.config_file).encode() in cmdline


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _port_busy(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
