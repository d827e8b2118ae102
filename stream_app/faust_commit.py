"""Offsets are committed only after the worker's outputs are delivered.

The stages acknowledge a batch as soon as it has *sent* its outputs (see ``stream_app.sink``);
this hook makes every commit of Faust's consumer first await the sink's barrier, so an offset
reaches the broker only after every output sent before it. Faust commits through
``Consumer.force_commit -> _commit_tps`` only (periodic timer, rebalance and shutdown alike),
and ``_commit_tps`` reads the acknowledged offsets without yielding first, so anything
acknowledged after the barrier waits for the next commit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sentinel.errors import SentinelKafkaError

logger = logging.getLogger(__name__)


def install(consumer: Any, barrier: Callable[[], Awaitable[None]]) -> None:
    """Wrap ``consumer._commit_tps`` (once) so that ``barrier`` runs before each commit; a
    failed delivery crashes the consumer instead of committing (the inputs are then consumed
    again after the restart: at-least-once)."""
    if getattr(consumer, "_sentinel_commit_barrier", None) == barrier:  # bound methods: ==
        return
    original = consumer._commit_tps

    async def commit_tps(tps: Any, start_new_transaction: bool = True) -> bool:
        try:
            await barrier()
        except SentinelKafkaError as exc:
            logger.error("outputs not delivered, offsets not committed error=%s", exc)
            await consumer.crash(exc)
            return False
        return bool(await original(tps, start_new_transaction=start_new_transaction))

    consumer._commit_tps = commit_tps
    consumer._sentinel_commit_barrier = barrier
