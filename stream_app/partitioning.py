"""The worker's own partitioner for its internal topics and its card placement."""

from __future__ import annotations

import zlib


def partition_for(key: bytes, partitions: int) -> int:
    """librdkafka's default partitioner for a keyed message (``consistent_random``: CRC32)."""
    return zlib.crc32(key) % partitions
