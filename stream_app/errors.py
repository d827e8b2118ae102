"""Errors of the streaming worker."""

from __future__ import annotations

from sentinel.errors import SentinelError


class WorkerError(SentinelError):
    """The streaming worker could not start or run."""


class NoChampionError(WorkerError):
    """No ``@champion`` model is loaded, so nothing can be scored."""

    def __init__(self, model_name: str) -> None:
        super().__init__(
            f"no @champion for model {model_name!r}: train and promote one "
            "(`sentinel train --promote`)"
        )
        self.model_name = model_name


class PredictInputError(WorkerError):
    """A /predict body failed validation; ``problems`` lists (field, reason) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{f}: {r}" for f, r in problems))
