"""The worker's watchdog: a loop stuck in one call ends the process instead of idling silently.

librdkafka has calls that can block past their own timeout after a broker restart (a
transactional ``send_offsets_to_transaction`` whose cached group coordinator is gone:
librdkafka issues 5456 and 5511). A worker stuck there holds its partitions, answers
``/health`` and scores nothing. The engine beats before every call that may block; when no beat
comes for ``limit_s`` the watchdog logs what the loop was doing and exits the process with
status 1, so its supervisor (compose's ``restart: unless-stopped``, systemd, Kubernetes)
starts a fresh one. Under exactly-once that loses nothing: the new instance fences the old
transactional id, and the unfinished transaction is aborted.

>>> dog = Watchdog(limit_s=60.0, on_hang=lambda phase, idle: None)
>>> dog.beat("commit")
>>> dog.phase
'commit'
>>> dog.overdue(now=dog.last + 61.0)
True
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


def exit_process(phase: str, idle_s: float) -> None:
    """The default reaction: log, flush the logs, and leave with status 1 at once."""
    logger.critical("worker loop stuck for %.0fs in %s: exiting so a supervisor restarts it",
                    idle_s, phase)
    logging.shutdown()
    os._exit(1)


class Watchdog:
    """Calls ``on_hang(phase, idle_s)`` once when :meth:`beat` is silent for ``limit_s``."""

    def __init__(self, limit_s: float,
                 on_hang: Callable[[str, float], None] = exit_process) -> None:
        self.limit_s = limit_s
        self._on_hang = on_hang
        self.last = time.monotonic()
        self.phase = "start"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self, phase: str) -> None:
        self.last = time.monotonic()
        self.phase = phase

    def overdue(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) - self.last > self.limit_s

    def start(self) -> None:
        self.beat("start")
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.limit_s / 4)):
            if self.overdue():
                self._on_hang(self.phase, time.monotonic() - self.last)
                return
