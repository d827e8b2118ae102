"""The last values of a watched stream, to say where a detected change happened and how big.

A detector says *that* a stream changed; the alert says from what to what. A
:class:`SplitWindow` keeps the last z-scores, raw means and sizes (of blocks, or of single
labels) and splits them at the most likely change point.

>>> window = SplitWindow(maxlen=100)
>>> for z in [0.0] * 10 + [2.0] * 5:
...     window.push(z, 10.0 + z, 100)
>>> reference, current, shift = window.split()
>>> reference["blocks"], current["blocks"], shift, current["mean"]
(10.0, 5.0, 2.0, 12.0)
"""

from __future__ import annotations

from collections import deque

import numpy as np


class SplitWindow:
    """The last blocks' z-scores, raw means and sizes, to summarise an ADWIN split."""

    def __init__(self, maxlen: int) -> None:
        self.z: deque[float] = deque(maxlen=maxlen)
        self.mean: deque[float] = deque(maxlen=maxlen)
        self.n: deque[int] = deque(maxlen=maxlen)

    def push(self, z: float, mean: float, n: int) -> None:
        self.z.append(z)
        self.mean.append(mean)
        self.n.append(n)

    def split(self, min_blocks: int = 3) -> tuple[dict[str, float], dict[str, float], float]:
        """Reference and current summaries around the most likely change point, and the shift.

        ADWIN says *that* the window changed, not cleanly *where* (after a detection its width
        still mixes old and new blocks), so the cut is re-estimated here: the one maximising
        the two-sample t statistic of the z means, each side holding ``min_blocks`` or more.
        """
        z, means, ns = np.array(self.z), np.array(self.mean), np.array(self.n, dtype=float)
        total = len(z)
        cuts = np.arange(min_blocks, total - min_blocks + 1)
        if len(cuts) == 0:
            cuts = np.array([max(1, total // 2)])
        csum = np.concatenate([[0.0], np.cumsum(z)])
        left = csum[cuts] / cuts
        right = (csum[-1] - csum[cuts]) / (total - cuts)
        tstat = np.abs(right - left) * np.sqrt(cuts * (total - cuts) / total)
        cut = int(cuts[int(np.argmax(tstat))])
        ref, cur = slice(0, cut), slice(cut, total)

        def summary(part: slice) -> dict[str, float]:
            w = ns[part]
            return {"mean": float(np.average(means[part], weights=w)), "n": float(w.sum()),
                    "z_mean": float(z[part].mean()), "blocks": float(len(w))}

        shift = float(z[cur].mean() - z[ref].mean())
        return summary(ref), summary(cur), shift

    def clear(self) -> None:
        self.z.clear()
        self.mean.clear()
        self.n.clear()
