import asyncio
import warnings
from types import SimpleNamespace

import pytest
from mode import Service

from stream_app import faust_fastpath


class Recorder(Service):
    """A mode service whose original wait_first counts its calls."""

    calls = 0

    async def wait_first(self, *coros, timeout=None):  # type: ignore[no-untyped-def,override]
        self.calls += 1
        return await super().wait_first(*coros, timeout=timeout)


def _fast(service: Recorder):  # type: ignore[no-untyped-def]
    assert faust_fastpath.install(service)
    assert faust_fastpath.install(service)  # idempotent
    return service.wait_first


def test_a_callback_that_does_not_suspend_runs_inline() -> None:
    async def main() -> None:
        service = Recorder()
        wait_first = _fast(service)
        seen = []

        async def callback(x: int) -> int:
            seen.append(x)
            return x * 2

        stop = asyncio.Event()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the unused stop.wait() must be closed quietly
            result = await wait_first(callback(21), stop.wait())
        assert result.results == [42] and not result.stopped
        assert seen == [21] and service.calls == 0

    asyncio.run(main())


def test_a_suspending_callback_is_continued_by_the_original() -> None:
    async def main() -> None:
        service = Recorder()
        wait_first = _fast(service)
        gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def callback() -> str:
            await asyncio.sleep(0)
            value = await gate
            return value + "!"

        asyncio.get_running_loop().call_later(0.01, gate.set_result, "done")
        result = await wait_first(callback(), asyncio.Event().wait())
        assert result.results == ["done!"] and service.calls == 1

    asyncio.run(main())


def test_a_blocked_callback_is_still_interrupted_and_cancelled() -> None:
    async def main() -> None:
        service = Recorder()
        wait_first = _fast(service)
        suspend = asyncio.Event()
        cleaned = []

        async def callback() -> None:
            try:
                await asyncio.get_running_loop().create_future()  # blocks forever
            finally:
                cleaned.append(True)

        asyncio.get_running_loop().call_later(0.01, suspend.set)
        result = await wait_first(callback(), suspend.wait())
        await asyncio.sleep(0)  # let the cancelled continuation run its finally
        assert result.results == [True]  # the suspend event won
        assert cleaned == [True] and service.calls == 1

    asyncio.run(main())


def test_an_error_in_the_inline_step_propagates() -> None:
    async def main() -> None:
        wait_first = _fast(Recorder())

        async def callback() -> None:
            raise ValueError("bad message")

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match="bad message"):
                await wait_first(callback(), asyncio.Event().wait())

    asyncio.run(main())


def test_timeouts_and_non_coroutines_use_the_original() -> None:
    async def main() -> None:
        service = Recorder()
        wait_first = _fast(service)
        event = asyncio.Event()
        event.set()
        result = await wait_first(event)
        assert result.done == [event] and service.calls == 1
        result = await wait_first(asyncio.sleep(0, "x"), timeout=1.0)
        assert result.results == ["x"] and service.calls == 2

    asyncio.run(main())


def test_drop_monitor_takes_only_the_monitor_off_the_sensors() -> None:
    other = object()
    monitor = object()
    sensors = {monitor, other}

    class _Sensors:
        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter(sensors)

        def remove(self, sensor: object) -> None:
            sensors.remove(sensor)

    app = SimpleNamespace(monitor=monitor, sensors=_Sensors())
    assert faust_fastpath.drop_monitor(app)
    assert sensors == {other}
    assert not faust_fastpath.drop_monitor(app)
