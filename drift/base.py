"""The one interface of Sentinel's drift detectors, in river's style (``river.drift.base``).

A detector watches one stream of numbers: :meth:`DriftDetector.update` folds a value in and
says whether it completed a change (also kept in :attr:`DriftDetector.drift_detected` until
the next update); :meth:`DriftDetector.reset` starts it over, as after an alert the new world
becomes the reference. :attr:`DriftDetector.name` is the ``detector`` field of the alerts it
raises. What a detector holds besides (a window, a statistic, a learned rate) is its own.

>>> class Threshold(DriftDetector):
...     name = "threshold"
...     def __init__(self, limit: float) -> None:
...         super().__init__()
...         self.limit = limit
...     def update(self, x: float, /) -> bool:
...         self.drift_detected = x > self.limit
...         return self.drift_detected
>>> detector = Threshold(1.0)
>>> [detector.update(x) for x in (0.5, 2.0, 0.5)]
[False, True, False]
>>> detector.reset(); detector.drift_detected
False
"""

from __future__ import annotations

import abc

from sentinel.errors import SentinelError


class DriftInputError(SentinelError, ValueError):
    """observe_batch/observe_labels got arrays of inconsistent shapes."""


class DriftDetector(abc.ABC):
    """A detector of change in one stream of values: ``update``, ``drift_detected``, ``reset``.

    Subclasses set :attr:`name` and implement :meth:`update`; one with state beyond
    ``drift_detected`` overrides :meth:`reset` too. ``update`` may take further optional
    arguments after the value (a block's size, say) as long as the value alone works.
    """

    name: str = "detector"
    """The ``detector`` field of the alerts raised on this detector's changes."""

    def __init__(self) -> None:
        self.drift_detected = False

    @abc.abstractmethod
    def update(self, x: float, /) -> bool:
        """Fold one value in; True when it completed a change (as :attr:`drift_detected`)."""

    def reset(self) -> None:
        """Start over: forget what was learned (after a change the new world is the
        reference)."""
        self.drift_detected = False
