"""The worker's garbage-collector policy: keep full collections off the verdict path.

A generation-2 collection walks every object the collector tracks. The worker's imports
(MLflow, pandas, scikit-learn, LightGBM) and its loaded models leave several hundred thousand of
them, and one such pass paused the event loop for 135-220 ms in the middle of a 2,000 tx/s
stream (measured with ``gc.callbacks``): the largest single cause of the p99 latency. Those
objects live until the next model swap, so after start-up and after every swap everything is
collected once and then frozen (``gc.freeze``: moved out of the collector's view; reference
counting still frees them). Later collections see only what was created since.

What the worker creates while it runs is mostly feature state (a few objects per card and
terminal, living until a rebalance): full collections kept walking it, 34-80 ms each, several
times per 15 s at 2,000 tx/s. :class:`FreezeSurvivors` freezes whatever survives each full
collection, so the next one walks only what was promoted since. The price is that cyclic
garbage among frozen objects waits for the next :func:`settle`: after each model swap and
every ``worker.gc_settle_interval_s`` (one full pause there, instead of one every few seconds).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Histogram


def settle() -> None:
    """Unfreeze, collect everything once, then freeze what survived.

    The unfreeze first lets garbage that was frozen earlier (a swapped-out model in reference
    cycles) be collected now instead of never; the price is one full collection per call
    (start-up and model swaps only)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class Settling:
    """When to :func:`settle`: once when start-up is done, then after each model swap. Swaps
    during start-up (the first champion and candidate) are covered by the start-up settle, so
    start-up pays one full collection, not one per loaded model."""

    def __init__(self, settle_fn: Callable[[], None] = settle) -> None:
        self._settle = settle_fn
        self._started = False

    def started(self) -> None:
        self._started = True
        self._settle()

    def swapped(self) -> None:
        if self._started:
            self._settle()

    # the timer's settle: frees cyclic garbage frozen since the last one (same rule as a swap)
    periodic = swapped


class _Hook:
    """A ``gc.callbacks`` entry that can be installed and removed (each at most once)."""

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        raise NotImplementedError

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


class FreezeSurvivors(_Hook):
    """After every full collection, freeze its survivors."""

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            gc.freeze()


class PauseObserver(_Hook):
    """Observes each collection's duration, by generation, into ``histogram``."""

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._histogram.labels(generation=str(info["generation"])).observe(
                time.perf_counter() - self._started)
