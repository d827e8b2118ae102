"""The training gate: a new model is registered only if it beats the baseline and the champion.

Pure: it compares average precision measured on the same test window.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateVerdict:
    """Whether the candidate passed, and why (one line per comparison)."""

    passed: bool
    reasons: tuple[str, ...]


def judge(
    candidate_ap: float,
    baseline_ap: float,
    champion_ap: float | None,
    *,
    min_improvement: float = 0.0,
) -> GateVerdict:
    """Pass when the candidate's AP exceeds the baseline's and the champion's by a margin.

    >>> judge(0.7, 0.6, None).passed
    True
    >>> judge(0.7, 0.6, 0.72).reasons[-1]
    'AP 0.7000 <= champion 0.7200 + 0.0000'
    """
    reasons = []
    passed = True
    for name, other in (("baseline", baseline_ap), ("champion", champion_ap)):
        if other is None:
            reasons.append(f"no {name} to beat")
            continue
        ok = candidate_ap > other + min_improvement
        passed &= ok
        sign = ">" if ok else "<="
        reasons.append(f"AP {candidate_ap:.4f} {sign} {name} {other:.4f} + {min_improvement:.4f}")
    return GateVerdict(passed=passed, reasons=tuple(reasons))
