"""The checkpoint's bookkeeping, without a broker (the real-broker tests cover the commits)."""

from __future__ import annotations

from typing import Any

from stream_app.checkpoint import Checkpoint


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def produce(self, topic: str, value: bytes, key: Any, **kwargs: Any) -> None:
        self.sent.append((topic, value))


def test_an_abort_forgets_the_offsets_and_tells_whoever_holds_outputs_for_it() -> None:
    dropped: list[str] = []
    checkpoint = Checkpoint(_Producer(), object(), False, lambda: None)  # type: ignore[arg-type]
    checkpoint.on_abort.append(lambda: dropped.append("verdicts waiting for reason codes"))
    checkpoint.produce("verdicts", b"k", b"v")
    checkpoint.done("transactions", 0, 10)
    assert checkpoint.pending
    checkpoint.abort()
    assert dropped == ["verdicts waiting for reason codes"]
    assert not checkpoint.pending
