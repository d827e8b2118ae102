"""The serving models: @champion and @candidate, followed in the registry and swapped atomically.

A :class:`ServingModels` holds an immutable :class:`Slot` per role; a batch takes a reference to
the current slot once, so a swap never splits a batch between versions and every verdict names
the version that scored it. :meth:`ServingModels.refresh` asks the registry (a port with
``resolve(alias)`` and ``load(ref)``); loading runs off the event loop in an executor.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CANDIDATE = "candidate"


class Registry(Protocol):
    def resolve(self, alias: str) -> Any: ...

    def load(self, ref: Any) -> Any: ...


@dataclass(frozen=True)
class Slot:
    """One loaded model version (``model`` is a ``training.model.FraudModel``)."""

    name: str
    version: str
    model: Any


class ServingModels:
    """The current champion and candidate, their registry status, and swap callbacks."""

    def __init__(self, registry: Registry, on_swap: Any = None) -> None:
        self._registry = registry
        self._on_swap = on_swap
        self.champion: Slot | None = None
        self.candidate: Slot | None = None
        self.registry_up = False
        self.registry_error: str | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> bool:
        """Resolve both aliases and load any new version; True when something changed."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            try:
                refs = await loop.run_in_executor(None, self._resolve_both)
            except Exception as exc:  # registry down: keep serving what is loaded
                if self.registry_up or self.registry_error is None:
                    logger.warning("registry unreachable, serving loaded models error=%s", exc)
                self.registry_up, self.registry_error = False, str(exc)
                return False
            self.registry_up, self.registry_error = True, None
            changed = False
            for role, ref in zip((CHAMPION, CANDIDATE), refs, strict=True):
                changed |= await self._apply(loop, role, ref)
            return changed

    def _resolve_both(self) -> tuple[Any, Any]:
        return self._registry.resolve(CHAMPION), self._registry.resolve(CANDIDATE)

    async def _apply(self, loop: asyncio.AbstractEventLoop, role: str, ref: Any) -> bool:
        current: Slot | None = getattr(self, role)
        if ref is None:
            if current is None:
                return False
            if role == CHAMPION:  # never drop a serving champion because an alias vanished
                return False
            self._swap(role, None)
            return True
        if current is not None and current.version == str(ref.version):
            return False
        try:
            model = await loop.run_in_executor(None, self._registry.load, ref)
        except Exception as exc:
            logger.error("model load failed role=%s version=%s error=%s", role, ref.version, exc)
            return False
        self._swap(role, Slot(str(ref.name), str(ref.version), model))
        return True

    def _swap(self, role: str, slot: Slot | None) -> None:
        old: Slot | None = getattr(self, role)
        setattr(self, role, slot)
        logger.info("model swap role=%s from=%s to=%s", role,
                    old.version if old else None, slot.version if slot else None)
        if self._on_swap is not None:
            self._on_swap(role, slot)

    def describe(self) -> dict[str, Any]:
        def one(slot: Slot | None) -> dict[str, str] | None:
            return None if slot is None else {"name": slot.name, "version": slot.version}

        return {"champion": one(self.champion), "candidate": one(self.candidate),
                "registry_up": self.registry_up, "registry_error": self.registry_error}
