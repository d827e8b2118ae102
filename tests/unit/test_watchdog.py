"""The worker's watchdog ends a loop that stops beating, and leaves a beating one alone."""

from __future__ import annotations

import threading

from stream_app.watchdog import Watchdog


def test_a_silent_loop_is_reported_once_with_its_phase() -> None:
    hung: list[tuple[str, float]] = []
    fired = threading.Event()

    def on_hang(phase: str, idle_s: float) -> None:
        hung.append((phase, idle_s))
        fired.set()

    dog = Watchdog(limit_s=0.2, on_hang=on_hang)
    dog.start()
    dog.beat("send_offsets_to_transaction")
    assert fired.wait(timeout=30)
    dog.stop()
    assert [phase for phase, _ in hung] == ["send_offsets_to_transaction"]
    assert hung[0][1] > 0.2


def test_a_beating_loop_is_never_reported() -> None:
    hung: list[str] = []
    dog = Watchdog(limit_s=5.0, on_hang=lambda phase, idle: hung.append(phase))
    dog.start()
    stop = threading.Event()
    for _ in range(40):  # beats every 25 ms for about a second: never 5 s apart
        dog.beat("consume")
        stop.wait(0.025)
    dog.stop()
    assert hung == []
    assert not dog.overdue()


def test_overdue_is_measured_from_the_last_beat() -> None:
    dog = Watchdog(limit_s=10.0, on_hang=lambda phase, idle: None)
    dog.beat("restore")
    assert not dog.overdue(now=dog.last + 9.9)
    assert dog.overdue(now=dog.last + 10.1)
