"""Where the label store lives: a SQLite file or a PostgreSQL database, named by one URI.

``SENTINEL_LABEL_STORE__URI`` accepts a file path or ``sqlite:///relative/path`` /
``sqlite:////absolute/path`` (SQLAlchemy's convention) for SQLite, and
``postgresql://user:password@host:port/database`` (or ``postgres://``, with any libpq
parameters in the query, e.g. ``?sslmode=require&connect_timeout=5``) for PostgreSQL.
A :class:`StoreLocation` prints without its credentials, so it can go into any log line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from sentinel.redact import SECRET_KEYS as _SECRET_KEYS
from sentinel.redact import redact_uri

Backend = Literal["sqlite", "postgresql"]
_POSTGRES_SCHEMES = ("postgresql", "postgres")
EXPECTED = ("a file path, sqlite:///relative/path, sqlite:////absolute/path or "
            "postgresql://user:password@host:port/database")


@dataclass(frozen=True)
class StoreLocation:
    """A parsed store URI. ``target`` is the SQLite file or the full libpq URI, credentials
    included: pass it to the driver only; ``str()`` and ``repr()`` are redacted."""

    backend: Backend
    target: str = field(repr=False)

    @classmethod
    def sqlite(cls, path: Path | str) -> StoreLocation:
        return cls("sqlite", str(path))

    @property
    def path(self) -> Path:
        """The SQLite file (only for the SQLite backend)."""
        if self.backend != "sqlite":
            raise ValueError(f"{self} is not a SQLite file")
        return Path(self.target)

    @property
    def redacted(self) -> str:
        return redact_uri(self.target) if self.backend == "postgresql" else self.target

    def secrets(self) -> list[str]:
        """The literal credentials in the URI (user info, password, secret-looking query
        values), to mask wherever a driver might quote them."""
        if self.backend != "postgresql":
            return []
        parts = urlsplit(self.target)
        found: list[str] = []
        if "@" in parts.netloc:
            userinfo = parts.netloc.rpartition("@")[0]
            found += [userinfo, *[unquote(p) for p in userinfo.split(":", 1)[1:]]]
        found += [v for k, v in parse_qsl(parts.query) if _SECRET_KEYS.search(k)]
        return [s for s in found if len(s) >= 4]  # shorter ones would mask everything

    def __str__(self) -> str:
        return self.redacted if self.backend == "postgresql" else f"sqlite:///{self.target}"

    def __repr__(self) -> str:
        return f"StoreLocation({self!s})"


def as_location(where: StoreLocation | Path | str) -> StoreLocation:
    """A location from what the stores accept: a location, a SQLite file, or a store URI."""
    if isinstance(where, StoreLocation):
        return where
    if isinstance(where, Path):
        return StoreLocation.sqlite(where)
    return parse_store_uri(where)


def parse_store_uri(uri: str) -> StoreLocation:
    """The location a store URI names; ``ValueError`` (its message without the URI's
    credentials) for one that names none.

    >>> parse_store_uri("sqlite:////data/labelstore.sqlite").path
    PosixPath('/data/labelstore.sqlite')
    >>> parse_store_uri("postgresql://app:s3cret@db.internal:5432/sentinel")
    StoreLocation(postgresql://***@db.internal:5432/sentinel)
    >>> parse_store_uri("mysql://app:s3cret@db/sentinel")
    Traceback (most recent call last):
    ...
    ValueError: unsupported label store URI mysql://***@db/sentinel: expected a file path, sqlite:///relative/path, sqlite:////absolute/path or postgresql://user:password@host:port/database
    """  # noqa: E501
    text = uri.strip()
    if not text:
        raise ValueError(f"empty label store URI: expected {EXPECTED}")
    if "://" not in text:
        return StoreLocation.sqlite(Path(text).expanduser())
    shown = redact_uri(text)
    try:
        parts = urlsplit(text)
        if "," not in parts.netloc:  # libpq's host1:port1,host2:port2 (failover) is valid
            parts.port  # noqa: B018 - parses the port: a bad one raises here, not at connect
    except ValueError as exc:
        raise ValueError(f"malformed label store URI {shown}: {_reason(exc)}") from None
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or parts.path in ("/", "/:memory:"):
            raise ValueError(f"label store URI {shown} names no file: expected "
                             "sqlite:///relative/path or sqlite:////absolute/path")
        return StoreLocation.sqlite(Path(unquote(parts.path[1:])).expanduser())
    if scheme in _POSTGRES_SCHEMES:
        return StoreLocation("postgresql", text)
    raise ValueError(f"unsupported label store URI {shown}: expected {EXPECTED}")


def _reason(exc: ValueError) -> str:
    """A urlsplit error without the text it quotes (which may hold a password)."""
    message = str(exc)
    return "the port is not a number between 0 and 65535" if "port" in message.lower() \
        else message.split(":", 1)[0]
