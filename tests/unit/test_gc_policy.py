import gc

from prometheus_client import CollectorRegistry, Histogram

from stream_app import gc_policy


def _count(registry: CollectorRegistry, generation: str) -> float:
    value = registry.get_sample_value("pauses_seconds_count", {"generation": generation})
    return value or 0.0


def test_pause_observer_records_each_collection_by_generation() -> None:
    registry = CollectorRegistry()
    observer = gc_policy.PauseObserver(Histogram("pauses_seconds", "p", ["generation"],
                                                 registry=registry))
    observer.install()
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        observer.remove()
    assert _count(registry, "0") >= 1
    assert _count(registry, "2") >= 1
    gc.collect(2)  # removed: no longer observed
    assert observer not in gc.callbacks


def test_settle_freezes_what_survives_and_frees_garbage_cycles() -> None:
    class Node:
        pass

    try:
        cycle = Node()
        cycle.self = cycle  # type: ignore[attr-defined]
        del cycle
        kept = [Node()]
        gc_policy.settle()
        assert gc.get_freeze_count() > 0
        assert not any(type(o) is Node and getattr(o, "self", None) is o
                       for o in gc.get_objects())  # the cycle was collected, not frozen
        assert kept[0] is not None
    finally:
        gc.unfreeze()


def test_garbage_frozen_earlier_is_collected_by_the_next_settle() -> None:
    import weakref

    class Model:
        pass

    try:
        model = Model()
        model.self = model  # type: ignore[attr-defined]  # a cycle, like a loaded model's
        ref = weakref.ref(model)
        gc_policy.settle()  # frozen while in use
        del model  # swapped out: now cyclic garbage among frozen objects
        gc.collect()
        assert ref() is not None  # frozen: the collector does not see it
        gc_policy.settle()
        assert ref() is None
    finally:
        gc.unfreeze()


def test_start_up_settles_once_and_each_later_swap_once() -> None:
    calls: list[str] = []
    settling = gc_policy.Settling(lambda: calls.append("settle"))
    settling.swapped()  # first champion loaded during start-up
    settling.swapped()  # first candidate
    assert calls == []
    settling.started()
    assert calls == ["settle"]
    settling.swapped()  # a live swap
    assert calls == ["settle", "settle"]


def test_settling_periodic_waits_for_start_up() -> None:
    calls: list[str] = []
    settling = gc_policy.Settling(lambda: calls.append("settle"))
    settling.periodic()
    assert calls == []
    settling.started()
    settling.periodic()
    assert calls == ["settle", "settle"]


def test_survivors_of_a_full_collection_are_frozen_and_young_objects_are_not() -> None:
    class State:
        pass

    hook = gc_policy.FreezeSurvivors()
    hook.install()
    automatic = gc.isenabled()
    gc.disable()  # no automatic collection (other threads allocate) between the explicit ones
    try:
        gc.unfreeze()
        survivor = State()
        gc.collect(2)
        frozen = gc.get_freeze_count()
        assert frozen > 0
        assert not any(o is survivor for o in gc.get_objects())  # frozen: out of view
        young = State()
        gc.collect(1)  # a young collection freezes nothing
        # not equal: a frozen object freed meanwhile (by any thread) leaves the count
        assert gc.get_freeze_count() <= frozen
        assert any(o is young for o in gc.get_objects())
    finally:
        hook.remove()
        gc.unfreeze()
        if automatic:
            gc.enable()
    assert hook not in gc.callbacks
