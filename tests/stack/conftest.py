"""The stack test's fixtures: a Docker engine (started when needed), the images, the stack.

``make stack-test`` runs this directory; ``make test`` runs it too. Without a usable engine
every test here skips with one line that says why. Images: the local Debian stand-ins
(scripts/build-local-images.sh + docker-compose.local.yml) unless SENTINEL_STACK_IMAGES=official
(a registry is reachable). Kept between runs as a cache: the sentinel-local/* base images and
the sentinel:local image's layers; removed: every container, network and volume of the run.
SENTINEL_STACK_KEEP=1 leaves the stack (project sentinel-stacktest) and the engine running, to
look at a failure; remove them by hand afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.stack.engine import DockerEngine, EngineUnavailable
from tests.stack.stack import ROOT, Stack

REPORT = ROOT / ".sentinel" / "stack-test" / "report.json"


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    try:
        engine = DockerEngine.acquire()
    except EngineUnavailable as exc:
        pytest.skip(f"stack test skipped: {exc}")
    try:
        yield engine
    finally:
        if os.environ.get("SENTINEL_STACK_KEEP") != "1":
            engine.release()


@pytest.fixture(scope="session")
def stack(engine: DockerEngine) -> Iterator[Stack]:
    local = os.environ.get("SENTINEL_STACK_IMAGES", "local") != "official"
    stack = Stack(engine, local_images=local)
    stack.compose("down", "-v", "--remove-orphans", check=False)  # an aborted earlier run
    try:
        if local:
            started = time.monotonic()
            result = subprocess.run(["bash", "scripts/build-local-images.sh"], cwd=ROOT,
                                    env=stack.env, capture_output=True, text=True, timeout=900,
                                    check=False)
            if result.returncode != 0:
                raise RuntimeError(
                    "scripts/build-local-images.sh failed:\n" + result.stderr[-3000:])
            stack.timings["base_images_s"] = time.monotonic() - started
        started = time.monotonic()
        # One build: every Sentinel service runs the same image (sentinel:local).
        stack.compose("build", *([] if local else ["--pull"]), "topics-init", timeout=1800)
        stack.timings["sentinel_image_s"] = time.monotonic() - started
        started = time.monotonic()
        stack.compose("up", "-d", timeout=600)
        stack.timings["up_s"] = time.monotonic() - started
        yield stack
    finally:
        _teardown(stack)


def _teardown(stack: Stack) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({"timings_s": stack.timings, "notes": stack.engine.notes},
                                 indent=2))
    if os.environ.get("SENTINEL_STACK_KEEP") == "1":  # to look at a failure; down -v by hand
        return
    stack.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300, check=False)
    if stack.engine.started_pid is not None:  # our own engine: its dangling layers too
        try:
            stack.engine.docker("image", "prune", "-f", timeout=900, check=False)
        except subprocess.TimeoutExpired:
            stack.engine.notes.append("image prune did not finish within 900 s")
