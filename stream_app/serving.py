"""The serving models: @champion and @candidate, followed in the registry and swapped atomically.

A :class:`ServingModels` holds an immutable :class:`Slot` per role; a batch takes a reference to
the current slot once, so a swap never splits a batch between versions and every verdict names
the version that scored it. :meth:`ServingModels.refresh` asks the registry (a port with
``resolve(alias)`` and ``load(ref)``); :class:`ModelFollower` calls it from its own thread, so
a slow registry never stalls the stream. A loaded model that needs a feature the worker does
not compute is refused (``check``), and the current slot keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
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
    """One loaded model version (``model`` is a ``training.model.FraudModel``; ``ref`` the
    registry's reference it was loaded from, for what else the version holds: its reference
    profile)."""

    name: str
    version: str
    model: Any
    ref: Any = None


class ServingModels:
    """The current champion and candidate, their registry status, and swap callbacks."""

    def __init__(self, registry: Registry, on_swap: Any = None,
                 check: Callable[[Any], None] | None = None,
                 on_refused: Callable[[str, str], None] | None = None) -> None:
        self._registry = registry
        self._on_swap = on_swap
        self._check = check
        self._on_refused = on_refused
        self.champion: Slot | None = None
        self.candidate: Slot | None = None
        self.registry_up = False
        self.registry_error: str | None = None
        self._refused: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Resolve both aliases and load any new version; True when something changed."""
        with self._lock:
            try:
                refs = self._registry.resolve(CHAMPION), self._registry.resolve(CANDIDATE)
            except Exception as exc:  # registry down: keep serving what is loaded
                if self.registry_up or self.registry_error is None:
                    logger.warning("registry unreachable, serving loaded models error=%s", exc)
                self.registry_up, self.registry_error = False, type(exc).__name__
                return False
            self.registry_up, self.registry_error = True, None
            changed = False
            for role, ref in zip((CHAMPION, CANDIDATE), refs, strict=True):
                changed |= self._apply(role, ref)
            return changed

    def _apply(self, role: str, ref: Any) -> bool:
        current: Slot | None = getattr(self, role)
        if ref is None:
            if current is None or role == CHAMPION:  # never drop a serving champion
                return False
            self._swap(role, None)
            return True
        version = str(ref.version)
        if current is not None and current.version == version:
            return False
        if (role, version) in self._refused:
            return False
        try:
            model = self._registry.load(ref)
            if self._check is not None:
                self._check(model)
        except Exception as exc:
            self._refused.add((role, version))
            logger.error("model refused role=%s version=%s error=%s", role, version, exc)
            if self._on_refused is not None:
                self._on_refused(role, type(exc).__name__)
            return False
        self._swap(role, Slot(str(ref.name), version, model, ref))
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


class ModelFollower:
    """Refreshes :class:`ServingModels` every ``interval_s`` (and on :meth:`wake`) in a thread."""

    def __init__(self, models: ServingModels, interval_s: float,
                 after: Callable[[], None] = lambda: None) -> None:
        self._models = models
        self._interval = interval_s
        self._after = after
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._models.refresh()
                self._after()
            except Exception:  # the follower must outlive any registry surprise
                logger.exception("model refresh failed")
            self._wake.wait(self._interval)
            self._wake.clear()
