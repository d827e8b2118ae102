"""What the model sees: feature names in input order and the windows that define them.

Label availability (the parity definition): a transaction's fraud label counts in a terminal
feature at event time ``t`` only if its ``label_time <= t``. The simulator delivers every label
``label_delay_days`` after its transaction; online, a label counts once it has been applied
before the event, and the replay applies labels with ``label_time <= t`` before the transaction
at ``t``; a label with ``label_time <= transaction time`` is therefore never counted, in either
form. A transaction with several labels (a chargeback, fraud reports: ``features.reports``) is a
fraud from the earliest ``label_time`` of its fraud labels; a genuine label never takes a fraud
back, so the arrival order of labels does not matter. Terminal windows are shifted back by the
delay ``D``: transactions with time in ``(t - (D + w), t - D]`` (with ``D = 0``: ``(t - w, t)``,
never the transaction itself). Card windows include the current transaction: ``(t - w, t]``, and
among transactions with the same time only those earlier in stream order. The card's history
comparisons use its previous transactions in ``(t - h, t)`` (``h`` the widest card window): the
amount ratio to their mean, the z-score, the rank (share of them with a smaller amount, 0.5 when
there are none), and the ratio to the mean of the older ones in ``(t - h, t - w]`` for each
shorter window ``w``, a baseline that a burst of recent frauds on a compromised card does not
inflate. The terminal's fraud history over the widest shifted window: the number of counted
frauds and the seconds from the earliest and the latest of them to ``t`` (-1 when there is
none), which tell a terminal whose compromise is ongoing from one whose compromise has ended.
Times are int64 microseconds since the epoch and amounts int64 cents, so the online and offline
forms agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentinel.settings import FeatureSettings

SECOND_US = 1_000_000
HOUR_US = 3600 * SECOND_US
DAY_US = 24 * HOUR_US

TRANSACTION_FEATURES: tuple[str, ...] = ("amount", "is_weekend", "is_night")


@dataclass(frozen=True)
class FeatureConfig:
    """Windows (days) of the card and terminal features and the label delay ``D`` (days).

    ``retention_slack_days`` only affects online state: how long past the windows entries are
    kept so that slightly late events still see their history.
    """

    label_delay_days: int = 7
    card_windows: tuple[int, ...] = (1, 7, 30)
    terminal_windows: tuple[int, ...] = (1, 7, 30)
    retention_slack_days: int = 1
    card_spans_us: tuple[int, ...] = field(init=False, repr=False, compare=False)
    terminal_spans_us: tuple[int, ...] = field(init=False, repr=False, compare=False)
    history_us: int = field(init=False, repr=False, compare=False)
    delay_us: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.label_delay_days < 0 or self.retention_slack_days < 0:
            raise ValueError("label_delay_days and retention_slack_days must be >= 0")
        if not self.card_windows or not self.terminal_windows:
            raise ValueError("card_windows and terminal_windows must not be empty")
        if min(self.card_windows) < 1 or min(self.terminal_windows) < 1:
            raise ValueError("windows are whole days >= 1")
        set_ = object.__setattr__
        set_(self, "card_spans_us", tuple(w * DAY_US for w in self.card_windows))
        set_(self, "terminal_spans_us", tuple(w * DAY_US for w in self.terminal_windows))
        set_(self, "history_us", max(self.card_windows) * DAY_US)
        set_(self, "delay_us", self.label_delay_days * DAY_US)

    @classmethod
    def from_settings(cls, settings: FeatureSettings) -> FeatureConfig:
        """The feature config of a deployment (``Settings().features``)."""
        return cls(label_delay_days=settings.label_delay_days)

    @property
    def history_days(self) -> int:
        return max(self.card_windows)

    @property
    def card_names(self) -> tuple[str, ...]:
        h = self.history_days
        windows = tuple(
            name
            for w in self.card_windows
            for name in (f"card_nb_tx_{w}d", f"card_avg_amount_{w}d")
        )
        return (
            *windows,
            "card_nb_tx_1h",
            f"card_amount_ratio_{h}d",
            f"card_amount_zscore_{h}d",
            f"card_terminal_seen_{h}d",
            "card_seconds_since_last",
            f"card_amount_rank_{h}d",
            *(f"card_amount_ratio_{h}d_before_{w}d" for w in self.card_windows if w < h),
        )

    @property
    def terminal_names(self) -> tuple[str, ...]:
        w = max(self.terminal_windows)
        return (
            *(
                name
                for w in self.terminal_windows
                for name in (f"terminal_nb_tx_{w}d", f"terminal_risk_{w}d")
            ),
            f"terminal_nb_fraud_{w}d",
            f"terminal_seconds_since_first_fraud_{w}d",
            f"terminal_seconds_since_last_fraud_{w}d",
        )

    @property
    def names(self) -> tuple[str, ...]:
        """Model input order: transaction, card, then terminal features (each stage's output
        in order, so the stages concatenate; features added later go at the end of their stage)."""
        return (*TRANSACTION_FEATURES, *self.card_names, *self.terminal_names)


FEATURE_NAMES: tuple[str, ...] = FeatureConfig().names
