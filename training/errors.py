"""Errors of the offline pipeline and the model registry."""

from __future__ import annotations

import re
from pathlib import Path

from sentinel.errors import SentinelError

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redact_uri(text: str) -> str:
    """``text`` with the user and password of every URI in it replaced by ``***``: a registry
    URI may carry credentials, and errors and logs must not print them.

    >>> redact_uri("model registry at https://bob:s3cret@mlflow.example:5000 is down")
    'model registry at https://***@mlflow.example:5000 is down'
    """
    return _USERINFO.sub(lambda m: f"{m['scheme']}***@", text)


class TrainingError(SentinelError):
    """Training could not run to the end."""


class DatasetError(TrainingError):
    """The training data could not be read, or lacks what the pipeline needs."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message if source is None else f"{message} (source={source})")
        self.source = source


class DataQualityError(TrainingError):
    """The data gate failed: each failed expectation is summarised; the report is on disk."""

    def __init__(self, failures: list[str], report_path: Path | None = None) -> None:
        where = f"; report: {report_path}" if report_path else ""
        super().__init__(
            f"data gate failed ({len(failures)} expectation(s)): " + "; ".join(failures) + where
        )
        self.failures = failures
        self.report_path = report_path


class SplitError(TrainingError):
    """The time-based split leaves a window empty or without both classes."""


class RegistryError(SentinelError):
    """A registry operation failed; the message names the model and the alias or version."""


class RegistryUnavailableError(RegistryError):
    """The MLflow tracking or registry store cannot be reached."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(redact_uri(f"model registry at {uri} is unreachable: {reason}"))
        self.uri = redact_uri(uri)


class AliasNotSetError(RegistryError):
    """An operation needs an alias (e.g. @candidate) that no version carries."""

    def __init__(self, model_name: str, alias: str, hint: str = "") -> None:
        super().__init__(f"model {model_name} has no @{alias} version{hint}")
        self.model_name, self.alias = model_name, alias


class ModelLoadError(RegistryError):
    """A registered model could not be loaded into a FraudModel."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"cannot load model {uri}: {reason}")
        self.uri = uri


class ModelLoadRefusedError(ModelLoadError):
    """A registered model is not in Sentinel's own format, or its files are not the ones that
    were registered: it is refused before anything in it is read as code.

    ``reason`` is one of :data:`training.artifact.REFUSAL_REASONS` (the metric's label).
    """

    def __init__(self, uri: str, reason: str, detail: str) -> None:
        super().__init__(uri, f"refused ({reason}): {detail}")
        self.reason = reason
