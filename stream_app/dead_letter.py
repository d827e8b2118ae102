"""Dead letters: the original bytes of a rejected input, why it was rejected, and where it was.

A dead letter must never fail for size (a failed dead letter would stop the worker or lose the
input): originals above ``max_bytes`` are truncated, keeping their length and SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from schemas import DeadLetter, SchemaValidationError, encode


def category(exc: Exception) -> str:
    """The dead-letter reason of a decoding error: invalid_json, schema or undecodable."""
    if isinstance(exc, SchemaValidationError):
        if any(r.startswith("not valid JSON") for _, r in exc.problems):
            return "invalid_json"
        return "schema"
    return "undecodable"


def dead_letter(value: bytes | None, key: bytes | None, reason: str, exc: BaseException,
                topic: str, partition: int, offset: int, max_bytes: int) -> bytes:
    """The encoded :class:`DeadLetter` for one input (``reason`` is the metric label; the
    error's own message, bounded, is its ``detail``)."""
    raw = value or b""
    truncated = len(raw) > max_bytes
    head = raw[:max_bytes]
    key_head = (key or b"")[:1024]
    detail = str(exc)[:2000]
    letter = DeadLetter(
        original_base64=base64.b64encode(head).decode(),
        original_key_base64=base64.b64encode(key_head).decode() if key else None,
        original_length=len(raw), original_sha256=hashlib.sha256(raw).hexdigest(),
        truncated=truncated, reason=reason, error_type=type(exc).__name__, detail=detail,
        source_topic=topic,
        source_partition=partition, source_offset=offset, at=datetime.now(UTC))
    return encode(letter)
