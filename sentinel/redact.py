"""Credentials out of everything Sentinel prints, logs, tags or serves.

:func:`redact_uri` drops a URI's userinfo (``http://user:pw@host`` -> ``http://***@host``) and
masks secret-looking query values; :func:`redact_text` does the same to every URI inside free
text (an exception message) and masks the literal secrets of a :class:`Settings` (SASL
password, HTTP tokens, the userinfo of the MLflow and label store URIs); :func:`redact_settings`
is a settings dump fit to print. :class:`RedactingFormatter` applies :func:`redact_text` to
every log line.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from pydantic import SecretStr

if TYPE_CHECKING:
    from sentinel.settings import Settings

MASK = "***"
SECRET_KEYS = re.compile(r"pass|secret|token|key|sig|auth|credential", re.IGNORECASE)
# scheme://userinfo@ inside any text; userinfo stops at the first "/", whitespace or quote
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"<>]+@")
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&](?:[A-Za-z0-9_.-]*(?:pass|secret|token|key|sig|auth|credential)"
    r"[A-Za-z0-9_.-]*)=)[^&\s'\"<>#]+",
    re.IGNORECASE,
)


def redact_uri(uri: str) -> str:
    """``uri`` without userinfo and with secret-looking query values masked.

    >>> redact_uri("http://alice:S3cret@mlflow.internal:5000/path?x=1&token=abc")
    'http://***@mlflow.internal:5000/path?x=1&token=%2A%2A%2A'
    >>> redact_uri("sqlite:////data/mlflow.db")
    'sqlite:////data/mlflow.db'
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        return redact_text(uri)
    out = uri
    if "@" in parts.netloc:
        out = out.replace(parts.netloc, f"{MASK}@{parts.netloc.rpartition('@')[2]}", 1)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(SECRET_KEYS.search(k) for k, _ in pairs):
            query = urlencode([(k, MASK if SECRET_KEYS.search(k) else v) for k, v in pairs])
            out = out.replace(f"?{parts.query}", f"?{query}", 1)
    return out


def secrets_of(settings: Settings) -> list[str]:
    """The literal secrets in ``settings``: SecretStr values, and the user info and secret
    query values of the MLflow and label store URIs."""
    found: list[str] = []
    if settings.kafka.sasl_password is not None:
        found.append(settings.kafka.sasl_password.get_secret_value())
    found += [t.get_secret_value() for t in settings.http.tokens]
    uris = [settings.mlflow.tracking_uri, settings.mlflow.registry_uri]
    if settings.label_store.uri is not None:
        uris.append(settings.label_store.uri.get_secret_value())
    for uri in filter(None, uris):
        parts = urlsplit(uri)
        if "@" in parts.netloc:
            userinfo = parts.netloc.rpartition("@")[0]
            password = userinfo.split(":", 1)[1:]
            found += [userinfo, *password, *map(unquote, password)]
        found += [v for k, v in parse_qsl(parts.query) if SECRET_KEYS.search(k)]
    return [s for s in found if len(s) >= 4]  # a 1-3 character "secret" would mask everything


def redact_text(text: str, settings: Settings | None = None) -> str:
    """``text`` with every URI's userinfo and secret query values masked, and, given the
    settings, every literal secret of them (see :func:`secrets_of`)."""
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    out = _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", out)
    if settings is not None:
        for secret in sorted(secrets_of(settings), key=len, reverse=True):
            out = out.replace(secret, MASK)
    return out


def redact_settings(settings: Settings) -> dict[str, Any]:
    """The settings as a JSON-ready dict: SecretStr masked, URIs without userinfo."""

    def clean(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return MASK
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, str) and "://" in value:
            return redact_uri(value)
        return value if isinstance(value, int | float | bool | None) else str(value)

    return {k: clean(v) for k, v in settings.model_dump().items()}


class RedactingFormatter(logging.Formatter):
    """A log formatter whose lines (tracebacks included) pass through :func:`redact_text`."""

    def __init__(self, fmt: str | None = None, settings: Settings | None = None,
                 **kwargs: Any) -> None:
        super().__init__(fmt, **kwargs)
        self.settings = settings

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record), self.settings)


def configure_logging(settings: Settings, level: int | str, fmt: str) -> None:
    """``logging.basicConfig`` for an entry point, every line through :func:`redact_text`.

    Also redacts each record's message as it is created, so libraries that log through
    handlers of their own (MLflow does) print no credential either.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(fmt, settings=settings))
    logging.basicConfig(level=level, handlers=[handler])
    install_record_redaction(settings)


def install_record_redaction(settings: Settings) -> None:
    """Make every new log record's message redacted (see :func:`configure_logging`)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "sentinel_redacting", False):
        previous = previous.wrapped  # type: ignore[attr-defined]

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return record
        clean = redact_text(message, settings)
        if clean != message or record.args:
            record.msg, record.args = clean, ()
        return record

    factory.sentinel_redacting = True  # type: ignore[attr-defined]
    factory.wrapped = previous  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
