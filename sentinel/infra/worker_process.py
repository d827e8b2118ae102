"""A ``sentinel worker`` as a child process: started with exactly the given settings, probed
over its HTTP API, stopped by PID. Used by the demo (and usable by tests and benchmarks)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from sentinel.errors import SentinelError
from sentinel.settings import Settings


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """``sentinel worker`` with its own log file; a context manager that stops it."""

    def __init__(self, settings: Settings, **env: str) -> None:
        self.port = settings.worker.web_port
        tokens = settings.http.tokens
        self._auth = {"Authorization": f"Bearer {tokens[0].get_secret_value()}"} if tokens else {}
        self.log = settings.data_dir.resolve() / f"{settings.worker.app_id}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
        child_env.update(settings.as_env())
        child_env.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker"], env=child_env,
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def http(self, path: str, body: Any = None, timeout_s: float = 10.0) -> tuple[int, Any]:
        """(status, parsed JSON or text) of a request to the worker's web server, with the
        first configured HTTP token (``SENTINEL_HTTP__TOKENS``) when there is one."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data,
            headers={"Content-Type": "application/json", **self._auth})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode()

    def wait_ready(self, timeout_s: float) -> None:
        """Return once ``GET /ready`` answers 200; raise if the worker dies or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise SentinelError(f"the worker exited with code {self.proc.returncode}; "
                                    f"see {self.log}")
            try:
                if self.http("/ready", timeout_s=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise SentinelError(f"the worker was not ready within {timeout_s:.0f}s; see {self.log}")

    def stop(self, timeout_s: float = 20.0) -> None:
        if not self.alive():
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
