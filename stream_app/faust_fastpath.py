"""Cheaper per-message steps for Faust (faust-streaming 0.15, mode 0.4 internals).

Faust's fetch loop hands every message to the agents with
``await self.wait_first(callback(message), self.suspend_flow.wait())``: mode's ``wait_first``
wraps each argument plus the service's ``stopped`` and ``crashed`` events in four tasks, waits
for the first and cancels three. Per message that was about 14 % of the worker's main-thread
CPU (py-spy, 250,000-transaction run), more than the card features.

Almost always the callback finishes without suspending: the agent's queue has room and the flow
is not paused. :func:`install` gives the consumer a ``wait_first`` that first runs the callback's
coroutine one step inline. If it finishes, that is the result, with no task created and nothing
else to wait for. If it suspends (queue full, flow paused for a rebalance), the started coroutine
is handed, unchanged, to the original ``wait_first``, so a suspended flow still interrupts it
exactly as before.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Coroutine, Generator
from typing import Any

from mode.services import WaitResults

logger = logging.getLogger(__name__)

MARK = "_sentinel_fast_wait_first"


@types.coroutine
def resume(coro: Coroutine[Any, Any, Any], pending: Any) -> Generator[Any, Any, Any]:
    """Continue ``coro``, which has yielded ``pending`` to its driver, as a task would: what
    the driver sends or throws goes on to ``coro`` until it returns."""
    while True:
        try:
            value = yield pending
        except BaseException as exc:  # thrown in by the task (e.g. cancel)
            try:
                pending = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            pending = coro.send(value)
        except StopIteration as stop:
            return stop.value


def fast_wait_first(original: Any) -> Any:
    """``wait_first`` with the inline first step (see the module docstring)."""

    async def wait_first(*coros: Any, timeout: Any = None) -> Any:
        first = coros[0] if coros else None
        if timeout is not None or not asyncio.iscoroutine(first):
            return await original(*coros, timeout=timeout)
        try:
            pending = first.send(None)
        except StopIteration as stop:
            _close(coros[1:])
            return _results(first, stop.value)
        except BaseException:
            _close(coros[1:])
            raise

        async def rest() -> Any:
            return await resume(first, pending)

        return await original(rest(), *coros[1:])

    setattr(wait_first, MARK, True)
    return wait_first


def _close(coros: tuple[Any, ...]) -> None:
    for coro in coros:
        if asyncio.iscoroutine(coro):
            coro.close()  # never started: close it quietly


def _results(done: Any, value: Any) -> WaitResults:
    return WaitResults([done], [value], False)


def install(consumer: Any) -> bool:
    """Give ``consumer`` the fast ``wait_first`` (once); False when it has none to replace."""
    current = getattr(consumer, "wait_first", None)
    if current is None:
        logger.warning("Faust consumer has no wait_first: fast path not installed")
        return False
    if getattr(current, MARK, False):
        return True
    consumer.wait_first = fast_wait_first(current)
    return True


def drop_monitor(app: Any) -> bool:
    """Take Faust's ``Monitor`` off the sensor hooks (True if it was on them).

    The Monitor keeps per-event statistics for Faust's own web pages, which Sentinel does not
    serve (its metrics are Prometheus'); its two hooks per event cost about 3 % of the event
    loop. Faust calls it directly for consumer lag and commits, which still work.
    """
    monitor = app.monitor
    if monitor not in set(app.sensors):
        return False
    app.sensors.remove(monitor)
    return True
