"""The Docker engine the stack test runs on: one that answers, or a private ``dockerd`` it starts.

Preference: ``DOCKER_HOST`` or the default socket when an engine answers there; otherwise, as
root with ``dockerd`` installed, a private daemon on its own socket, pid file and exec root (other
sessions' ``docker info`` on the default socket keep seeing no engine), stopped by its PID at the
end. Its data root is the default one, so base images and build layers stay cached between runs.
Anything else is a skip whose reason says what is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PRIVATE_ROOT = Path("/run/sentinel-stack")


class EngineUnavailable(Exception):
    """No Docker engine can be used here; the message says why (it becomes the skip reason)."""


@dataclass
class DockerEngine:
    """Environment for docker/docker-compose calls, and the daemon this test started (if any)."""

    env: dict[str, str]
    started_pid: int | None = None
    log: Path | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def acquire(cls, timeout_s: float = 30.0) -> DockerEngine:
        missing = [tool for tool in ("docker", "docker-compose") if shutil.which(tool) is None]
        if missing:
            raise EngineUnavailable(
                f"{' and '.join(missing)} not installed (Debian: apt-get install docker.io "
                "docker-compose, or run scripts/install-system-deps.sh as root)")
        env = dict(os.environ)
        if _answers(env):
            return cls(env=env)
        if os.geteuid() != 0:
            raise EngineUnavailable("no Docker engine answers and this is not root, so the test "
                                    "cannot start dockerd (start one, or run as root)")
        if shutil.which("dockerd") is None:
            raise EngineUnavailable("no Docker engine answers and dockerd is not installed "
                                    "(apt-get install docker.io)")
        return cls._start_private(env, timeout_s)

    @classmethod
    def _start_private(cls, env: dict[str, str], timeout_s: float) -> DockerEngine:
        PRIVATE_ROOT.mkdir(parents=True, exist_ok=True)
        sock = PRIVATE_ROOT / "docker.sock"
        env = {**env, "DOCKER_HOST": f"unix://{sock}"}
        if _answers(env):  # a private daemon left by an earlier run: use it, leave it running
            return cls(env=env, notes=[f"reused the engine on {sock}"])
        log = PRIVATE_ROOT / "dockerd.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["dockerd", "-H", f"unix://{sock}", "--pidfile", str(PRIVATE_ROOT / "dockerd.pid"),
                 "--exec-root", str(PRIVATE_ROOT / "exec")],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise EngineUnavailable("dockerd exited at start: " + " | ".join(tail))
            if _answers(env):
                return cls(env=env, started_pid=proc.pid, log=log,
                           notes=[f"started dockerd (pid {proc.pid}) on {sock}"])
            time.sleep(0.5)
        proc.terminate()
        raise EngineUnavailable(f"dockerd did not answer within {timeout_s:.0f}s (log {log})")

    def docker(self, *args: str, timeout: float = 120.0,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {result.stderr.strip()[-2000:]}")
        return result

    def release(self, timeout_s: float = 60.0) -> None:
        """Stop the daemon this test started (by its PID only); leave any other engine alone."""
        if self.started_pid is None:
            return
        try:
            os.kill(self.started_pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(self.started_pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done:
                return
            time.sleep(0.2)
        os.kill(self.started_pid, signal.SIGKILL)


def _answers(env: dict[str, str]) -> bool:
    try:
        result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], env=env,
                                capture_output=True, text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and bool(result.stdout.strip())
